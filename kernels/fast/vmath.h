/* vmath.h: e^x and row sums in forms the compiler can vectorise. Private to
 * the fast layer (kernels/fast/); the reference layer uses libm's expf.
 *
 * glibc's expf and tanhf are scalar calls, and GCC only swaps in vector versions
 * under -ffast-math (which this project does not use: it would reorder sums).
 * exp_approx is plain arithmetic, so a loop of calls becomes vector code:
 *   e^x = 2^n e^r,  n = round(x / ln 2),  r = x - n ln 2 in [-ln2/2, ln2/2],
 *   e^r by its Taylor series to r^7 (remainder < 0.35^8/8! = 5e-9, below float's 6e-8),
 *   2^n built directly in the exponent bits.
 * Every call does the same operations in the same order, so its result depends
 * only on x: bit-identical however a loop is split over threads or vector lanes.
 * vexp is the same function on a vector of simd.h. */
#ifndef FAST_VMATH_H
#define FAST_VMATH_H

#include <math.h>
#include <stdint.h>

#include "kernels/fast/simd.h"

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
     * and the same operations as vexp below. (The last product, p * 2^n, can
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

/* exp_approx on the VLEN lanes of a vector (simd.h), for kernels written over
 * vectors (attention's softmax): the same arithmetic in the same order, its
 * clamp by the same masks, so the same bits lane by lane (a test compares them
 * on every build). */
static inline vf vexp(vf x) {
    vu below = (vu)(x < vsplat(EXP_MIN_ARG)), above = (vu)(x > vsplat(EXP_MAX_ARG));
    x = (vf)(((vu)x & ~(below | above)) | ((vu)vsplat(EXP_MIN_ARG) & below) | ((vu)vsplat(EXP_MAX_ARG) & above));
    vf t = vfma(x, vsplat(EXP_LOG2E), vsplat(EXP_ROUND));
    vf n = t - vsplat(EXP_ROUND);
    vf r = vfma(-n, vsplat(EXP_LN2_HI), x);
    r = vfma(-n, vsplat(EXP_LN2_LO), r);
    vf p = vfma(vsplat(1.0f / 5040.0f), r, vsplat(1.0f / 720.0f));
    p = vfma(p, r, vsplat(1.0f / 120.0f));
    p = vfma(p, r, vsplat(1.0f / 24.0f));
    p = vfma(p, r, vsplat(1.0f / 6.0f));
    p = vfma(p, r, vsplat(0.5f));
    p = vfma(p, r, vsplat(1.0f));
    p = vfma(p, r, vsplat(1.0f));
    vf scale = (vf)((((vu)t - 0x4B400000u + 127u)) << 23);
    return p * scale;
}

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
