/* vmath.h: e^x and row sums in forms the compiler can vectorise. Private to
 * the fast layer (kernels/fast/); the reference layer uses libm's expf.
 *
 * glibc's expf and tanhf are scalar calls, and GCC only swaps in vector versions
 * under -ffast-math (which this project does not use: it would reorder sums).
 * exp_approx is plain arithmetic, so a loop of calls becomes AVX-512 code:
 *   e^x = 2^n e^r,  n = round(x / ln 2),  r = x - n ln 2 in [-ln2/2, ln2/2],
 *   e^r by its Taylor series to r^7 (remainder < 0.35^8/8! = 5e-9, below float's 6e-8),
 *   2^n built directly in the exponent bits.
 * Every call does the same operations in the same order, so its result depends
 * only on x: bit-identical however a loop is split over threads or vector lanes.
 * exp16 is the same function on an AVX-512 vector, for kernels written with
 * intrinsics (attention's softmax). */
#ifndef FAST_VMATH_H
#define FAST_VMATH_H

#include <math.h>
#include <stdint.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define EXP_MAX_ARG 88.0f     /* e^88 = 1.65e38 < FLT_MAX; beyond it the result would be inf */
#define EXP_MIN_ARG -87.0f    /* e^-87 = 1.6e-38 > FLT_MIN: 2^n stays a normal number */
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693145751953125f        /* ln 2 split in two: n * LN2_HI is exact */
#define EXP_LN2_LO 1.42860682030941723212e-6f
#define EXP_ROUND 12582912.0f                /* 1.5 * 2^23: adding it rounds to an integer */

/* e^x, relative error within 2 ulp on [-87, 88]; x is clamped to that range
 * (e^-87 instead of a denormal or 0, e^88 instead of inf). NaN gives NaN. */
static inline float exp_approx(float x) {
    /* x clamped to [EXP_MIN_ARG, EXP_MAX_ARG] (NaN stays NaN) by selecting bits
     * through masks: written as x < lo ? lo : x, gcc keeps a branch (no min/max
     * instruction without -ffinite-math-only), threads the rest of the function
     * along each side, and the vector loops then carry every path under masks,
     * which is slower; the masks give the same results for all 2^32 inputs */
    union { float f; uint32_t u; } in = {.f = x}, lo = {.f = EXP_MIN_ARG}, hi = {.f = EXP_MAX_ARG};
    uint32_t below = -(uint32_t)(x < EXP_MIN_ARG), above = -(uint32_t)(x > EXP_MAX_ARG);
    in.u = (in.u & ~(below | above)) | (lo.u & below) | (hi.u & above);
    x = in.f;
    /* t = x log2(e) + 1.5*2^23: its low mantissa bits now hold n = round(x log2 e).
     * The FMAs are written out (fmaf): the same bits at any optimisation level,
     * and the same operations as exp16 below. (The last product, p * 2^n, can
     * still fuse with an add in the caller: gcc makes GELU's 1 + e^{-2u} one FMA.) */
    union { float f; uint32_t u; } t = {.f = fmaf(x, EXP_LOG2E, EXP_ROUND)}, scale;
    float n = t.f - EXP_ROUND;
    float r = fmaf(-n, EXP_LN2_HI, x);
    r = fmaf(-n, EXP_LN2_LO, r);
    float p = fmaf(1.0f / 5040.0f, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    /* 2^n: n + 127 in the exponent field (the low bits of t minus those of EXP_ROUND) */
    scale.u = (t.u - 0x4B400000u + 127u) << 23;
    return p * scale.f;
}

#ifdef __AVX512F__
/* exp_approx on 16 lanes at once, with AVX-512 intrinsics: the same arithmetic
 * in the same order (its clamp by max and min, which select the same values as
 * exp_approx's masks), so the same bits lane by lane (a test compares them) */
static inline __m512 exp16(__m512 x) {
    /* the clamp: vmaxps and vminps return their second operand, x, when x is NaN */
    x = _mm512_min_ps(_mm512_set1_ps(EXP_MAX_ARG), _mm512_max_ps(_mm512_set1_ps(EXP_MIN_ARG), x));
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(EXP_LOG2E), _mm512_set1_ps(EXP_ROUND));
    __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(EXP_ROUND));
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 5040.0f), r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127 - 0x4B400000)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}
#endif

/* Sums over a row in SUM_LANES interleaved partial sums (lane j takes elements
 * j, j + SUM_LANES, ...), added up in lane order at the end, then the remainder:
 * one fixed order, so the same bits on any thread count, but one the compiler
 * can run as vector adds (a single running sum would stay scalar without
 * -ffast-math). */
enum { SUM_LANES = 16 };

static inline float lanes_total(const float acc[SUM_LANES]) {
    float total = 0.0f;
    for (int j = 0; j < SUM_LANES; j++) total += acc[j];
    return total;
}

/* x[0] + ... + x[n-1] in the lane order above */
static inline float lanes_sum(const float* x, int n) {
    float acc[SUM_LANES] = {0};
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int j = 0; j < SUM_LANES; j++) acc[j] += x[i + j];
    float total = lanes_total(acc);
    for (; i < n; i++) total += x[i];
    return total;
}

/* x . y in the lane order above */
static inline float lanes_dot(const float* x, const float* y, int n) {
    float acc[SUM_LANES] = {0};
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int j = 0; j < SUM_LANES; j++) acc[j] += x[i + j] * y[i + j];
    float total = lanes_total(acc);
    for (; i < n; i++) total += x[i] * y[i];
    return total;
}

#endif
