/* layernorm.c: layer normalisation, forward and backward. */
#include "layernorm.h"

#include <math.h>
#include <stddef.h>

#include "vmath.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

enum { CHANNEL_SLICE = SUM_LANES };  /* channels per OpenMP work item in the dweight/dbias pass */

/* One row: y = (x - m) s w + b with m the mean of x and s = 1/sqrt(var + eps).
 * y first holds x - m: the variance (two passes, numerically safer than
 * E[x^2] - m^2) is then a dot product of y with itself. Sums in lanes (vmath.h). */
static inline void normalize_row(float* y, float* mean, float* rstd, const float* x,
                                 const float* weight, const float* bias, int C) {
    float m = lanes_sum(x, C) / C;
    for (int c = 0; c < C; c++) y[c] = x[c] - m;
    float s = 1.0f / sqrtf(lanes_dot(y, y, C) / C + LAYERNORM_EPS);
    for (int c = 0; c < C; c++) y[c] = y[c] * s * weight[c] + (bias ? bias[c] : 0.0f);
    *mean = m;
    *rstd = s;
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        normalize_row(out + (size_t)n * C, mean + n, rstd + n, inp + (size_t)n * C, weight, bias, C);
}

void residual_layernorm_forward(float* res, float* out, float* mean, float* rstd, const float* a,
                                const float* b, const float* weight, const float* bias, int N, int C) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float* x = res + (size_t)n * C;
        for (int c = 0; c < C; c++) x[c] = a[(size_t)n * C + c] + b[(size_t)n * C + c];
        normalize_row(out + (size_t)n * C, mean + n, rstd + n, x, weight, bias, C);
    }
}

#ifdef __AVX512F__
/* The lane sums of dinp_rows below over whole vectors of channels, in registers:
 * acc_g[j] = sum of g, acc_gx[j] = sum of round(g (x - m) s), each product
 * rounded before it is added. The portable loop leaves the fusing to the
 * compiler, and gcc had vectorised it across blocks of channels with every
 * lane added in order, one scalar add at a time (4x slower); its results are
 * these wherever it did so (n_embd a multiple of 128, every config here). The
 * *_round intrinsics are never fused into an FMA, as a plain multiply and add
 * may be under -ffp-contract=fast. Returns the channels done. */
static int row_sums_avx512(float acc_g[SUM_LANES], float acc_gx[SUM_LANES], const float* dy, const float* x,
                           const float* weight, float m, float s, int C) {
    enum { R = _MM_FROUND_CUR_DIRECTION };
    __m512 sum_g = _mm512_setzero_ps(), sum_gx = _mm512_setzero_ps();
    __m512 mv = _mm512_set1_ps(m), sv = _mm512_set1_ps(s);
    int c = 0;
    for (; c + SUM_LANES <= C; c += SUM_LANES) {
        __m512 g = _mm512_mul_round_ps(_mm512_loadu_ps(dy + c), _mm512_loadu_ps(weight + c), R);
        sum_g = _mm512_add_round_ps(sum_g, g, R);
        __m512 xm = _mm512_sub_round_ps(_mm512_loadu_ps(x + c), mv, R);
        sum_gx = _mm512_add_round_ps(sum_gx, _mm512_mul_round_ps(_mm512_mul_round_ps(g, xm, R), sv, R), R);
    }
    _mm512_storeu_ps(acc_g, sum_g);
    _mm512_storeu_ps(acc_gx, sum_gx);
    return c;
}

/* dparams_channels below for one whole slice of SUM_LANES channels, the sums in
 * registers through all N rows instead of a load and a store of dweight and
 * dbias per row (2x faster at n_embd 128); the same operations, fused as gcc
 * fuses the portable loop: dweight += (dout (x - m)) s as one FMA. */
static void slice_sums_avx512(float* dweight, float* dbias, const float* dout, const float* inp, const float* mean,
                              const float* rstd, int N, int C, int c0) {
    enum { R = _MM_FROUND_CUR_DIRECTION };
    __m512 sum_w = _mm512_loadu_ps(dweight + c0), sum_b = dbias ? _mm512_loadu_ps(dbias + c0) : _mm512_setzero_ps();
    for (int n = 0; n < N; n++) {
        __m512 dy = _mm512_loadu_ps(dout + (size_t)n * C + c0);
        __m512 xm = _mm512_sub_round_ps(_mm512_loadu_ps(inp + (size_t)n * C + c0), _mm512_set1_ps(mean[n]), R);
        sum_w = _mm512_fmadd_round_ps(_mm512_mul_round_ps(dy, xm, R), _mm512_set1_ps(rstd[n]), sum_w, R);
        sum_b = _mm512_add_round_ps(sum_b, dy, R);
    }
    _mm512_storeu_ps(dweight + c0, sum_w);
    if (dbias) _mm512_storeu_ps(dbias + c0, sum_b);
}
#endif

/* Backward pass 1, per row: with xhat = (x - mean) * rstd and g = dout * weight,
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). Called inside a parallel
 * region: the rows are shared out, and no barrier follows. */
static void dinp_rows(float* dinp, const float* dout, const float* inp, const float* weight,
                      const float* mean, const float* rstd, int N, int C) {
    #pragma omp for schedule(static) nowait
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        const float* dy = dout + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float acc_g[SUM_LANES] = {0}, acc_gx[SUM_LANES] = {0};
        int c = 0;
#ifdef __AVX512F__
        c = row_sums_avx512(acc_g, acc_gx, dy, x, weight, m, s, C);
#endif
        for (; c + SUM_LANES <= C; c += SUM_LANES)
            for (int j = 0; j < SUM_LANES; j++) {
                float g = dy[c + j] * weight[c + j];
                acc_g[j] += g;
                acc_gx[j] += g * (x[c + j] - m) * s;
            }
        float g_mean = lanes_total(acc_g), gx_mean = lanes_total(acc_gx);
        for (; c < C; c++) {
            float g = dy[c] * weight[c];
            g_mean += g;
            gx_mean += g * (x[c] - m) * s;
        }
        g_mean /= C;
        gx_mean /= C;
        float* dx = dinp + (size_t)n * C;
        for (c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            dx[c] += s * (dy[c] * weight[c] - g_mean - xhat * gx_mean);
        }
    }
}

/* Backward pass 2, per channel: dweight = sum_n dout * xhat, dbias = sum_n dout.
 * Threads own channel slices and sum the rows in order; no barrier follows. */
static void dparams_channels(float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* mean, const float* rstd, int N, int C) {
    int slices = (C + CHANNEL_SLICE - 1) / CHANNEL_SLICE;
    #pragma omp for schedule(static) nowait
    for (int sl = 0; sl < slices; sl++) {
        int c0 = sl * CHANNEL_SLICE, c1 = c0 + CHANNEL_SLICE < C ? c0 + CHANNEL_SLICE : C;
#ifdef __AVX512F__
        if (c1 - c0 == SUM_LANES) {
            slice_sums_avx512(dweight, dbias, dout, inp, mean, rstd, N, C, c0);
            continue;
        }
#endif
        for (int n = 0; n < N; n++) {
            const float* x = inp + (size_t)n * C;
            const float* dy = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int c = c0; c < c1; c++) {
                dweight[c] += dy[c] * (x[c] - m) * s;
                if (dbias) dbias[c] += dy[c];
            }
        }
    }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean,
                        const float* rstd, int N, int C) {
    /* the two passes write different tensors: one region, one barrier at its end */
    #pragma omp parallel
    {
        dinp_rows(dinp, dout, inp, weight, mean, rstd, N, C);
        dparams_channels(dweight, dbias, dout, inp, mean, rstd, N, C);
    }
}
