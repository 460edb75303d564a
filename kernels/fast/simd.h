/* simd.h: the fast layer's one map from the target CPU to vectors. Private to
 * kernels/fast/. The kernels are written once over the type vf (VLEN floats)
 * and the primitives below, with GCC/Clang vector extensions: the compiler
 * emits AVX-512, AVX2, SSE or NEON code for the same source, and the element
 * operators of the extension (+, *, [j]) are plain C arithmetic lane by lane.
 *
 * Here, and only here, the preprocessor picks the vector width and the matmul
 * register tile from the target's register file; it never picks an algorithm.
 * The tile is TILE_MR rows x TILE_NV vectors of c held in registers, and each
 * step k needs TILE_NV loads of b and one broadcast of a besides:
 *   TILE_MR * TILE_NV + TILE_NV + 1 <= VREGS   (checked below)
 * so that nothing spills to the stack inside the loop. */
#ifndef FAST_SIMD_H
#define FAST_SIMD_H

#include <math.h>
#include <string.h>

#if defined(__AVX512F__)
/* 32 zmm registers of 16 floats: 8 x 2 = 16 accumulators + 2 loads + 1 broadcast.
 * 16 independent FMA chains cover the 2 FMA pipes x 4 cycles of latency twice. */
#define SIMD_ISA "avx512"
#define VLEN 16
#define VREGS 32
#define TILE_MR 8
#define TILE_NV 2
#elif defined(__AVX__)
/* 16 ymm registers of 8 floats: 6 x 2 = 12 accumulators + 2 loads + 1 broadcast
 * = 15 of 16 (an 8 x 2 tile would need 19 and spill). */
#define SIMD_ISA "avx2"
#define VLEN 8
#define VREGS 16
#define TILE_MR 6
#define TILE_NV 2
#elif defined(__ARM_NEON) || defined(__aarch64__)
/* 32 q registers of 4 floats: 8 x 3 = 24 accumulators + 3 loads + 1 broadcast. */
#define SIMD_ISA "neon"
#define VLEN 4
#define VREGS 32
#define TILE_MR 8
#define TILE_NV 3
#elif defined(__SSE2__)
/* 16 xmm registers of 4 floats: as AVX, 6 x 2 + 2 + 1 = 15. */
#define SIMD_ISA "sse2"
#define VLEN 4
#define VREGS 16
#define TILE_MR 6
#define TILE_NV 2
#else
/* No known vector unit: one float per "vector", so the same source is scalar
 * code; 4 x 4 = 16 accumulators + 4 + 1 fit the 32 registers of most RISC cores. */
#define SIMD_ISA "scalar"
#define VLEN 1
#define VREGS 32
#define TILE_MR 4
#define TILE_NV 4
#endif

/* The lane orders of vzip_lo and vzip_hi below, per width (the shuffle
 * builtins take their lane indices as constants) */
#if VLEN == 16
#define ZIP_LO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define ZIP_HI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#elif VLEN == 8
#define ZIP_LO 0, 8, 1, 9, 2, 10, 3, 11
#define ZIP_HI 4, 12, 5, 13, 6, 14, 7, 15
#elif VLEN == 4
#define ZIP_LO 0, 4, 1, 5
#define ZIP_HI 2, 6, 3, 7
#endif

_Static_assert(TILE_MR * TILE_NV + TILE_NV + 1 <= VREGS, "the register tile must fit the register file");

/* VLEN floats in one register. Aligned like a float, so that vload/vstore can
 * take any float pointer (memcpy compiles to one unaligned vector move). */
typedef float vf __attribute__((vector_size(VLEN * sizeof(float))));
/* the same lanes as unsigned integers: (vu)x and (vf)u reinterpret the bits, and
 * a comparison of two vf gives all ones or zero per lane, as a vu after a cast */
typedef unsigned vu __attribute__((vector_size(VLEN * sizeof(unsigned))));

/* the lanes' 32-bit integers: a comparison of two vf or two vi gives a vi, all
 * ones (-1) in the lanes where it holds and 0 elsewhere: a lane mask */
typedef int vi __attribute__((vector_size(VLEN * sizeof(int))));

static inline vf vload(const float* p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vstore(float* p, vf v) { memcpy(p, &v, sizeof v); }

static inline vf vzero(void) { return (vf){0}; }

/* x in every lane: the extension widens a scalar operand to all lanes, and
 * x - 0 is x for every x, -0 and NaN included, so this is one broadcast (a
 * loop storing lane by lane compiles to one masked move per lane) */
static inline vf vsplat(float x) { return x - vzero(); }

/* 0, 1, ..., VLEN - 1: each lane's index (a constant after inlining) */
static inline vi vlane_index(void) {
    vi v;
    for (int j = 0; j < VLEN; j++) v[j] = j;
    return v;
}

/* n in every lane, as vsplat */
static inline vi vsplati(int n) { return n - (vi){0}; }

/* x in the lanes of mask, +0 in the others (the bits cleared) */
static inline vf vkeep(vi mask, vf x) { return (vf)((vi)x & mask); }

/* a in the lanes of mask, b in the others */
static inline vf vselect(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

/* sqrtf lane by lane: correctly rounded on every target; one vector square root
 * where the build lets sqrtf skip errno (-fno-math-errno) */
static inline vf vsqrt(vf x) {
    for (int j = 0; j < VLEN; j++) x[j] = sqrtf(x[j]);
    return x;
}

/* The lower halves of a and b interleaved (a0 b0 a1 b1 ...), and the upper
 * halves; with one lane there is nothing to interleave. */
#if VLEN > 1
static inline vf vzip_lo(vf a, vf b) { return __builtin_shufflevector(a, b, ZIP_LO); }
static inline vf vzip_hi(vf a, vf b) { return __builtin_shufflevector(a, b, ZIP_HI); }
#endif

/* a * b + c lane by lane, written as the reference kernels' plain loops write
 * it, so it rounds as theirs do: once (vfmadd, fmla) where the build fuses
 * a*b+c (-ffp-contract=fast on a CPU with FMA), twice where it cannot. */
static inline vf vmuladd(vf a, vf b, vf c) { return a * b + c; }

/* fmaf lane by lane: one rounding on every target and with any flags, as
 * exp_approx's fmaf (vexp must give its bits); on a CPU with FMA the compiler
 * makes the loop one vfmadd / fmla. */
static inline vf vfma(vf a, vf b, vf c) {
    for (int j = 0; j < VLEN; j++) a[j] = fmaf(a[j], b[j], c[j]);
    return a;
}

#endif
