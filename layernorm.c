/* layernorm.c: layer normalisation, forward and backward. */
#include "layernorm.h"

#include <math.h>
#include <stddef.h>

#include "vmath.h"

enum { CHANNEL_SLICE = 16 };  /* channels per OpenMP work item in the dweight/dbias pass */

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
