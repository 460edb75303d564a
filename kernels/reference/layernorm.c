/* reference/layernorm.c: layer normalisation over the last axis, forward and
 * backward, as the formulas read. For one row x of C channels:
 *
 *   forward    mean = (1/C) sum_c x_c
 *              rstd = 1 / sqrt((1/C) sum_c (x_c - mean)^2 + eps)
 *              xhat_c = (x_c - mean) rstd,   y_c = xhat_c w_c + b_c
 *   backward   with g_c = dy_c w_c:
 *              dx_c = rstd (g_c - (1/C) sum_c' g_c' - xhat_c (1/C) sum_c' g_c' xhat_c')
 *              dw_c = sum over rows of dy_c xhat_c,   db_c = sum over rows of dy_c
 *
 * The reference that kernels/fast/layernorm.c (lane sums, blocks of 16 rows)
 * must match. Sums run in channel order within a row and in row order for the
 * parameter gradients; threads split rows (or channels) only.
 */
#include "kernels/layernorm.h"

#include <math.h>
#include <stddef.h>

/* One row: y (C) from x (C), weight (C), bias (C) or NULL; its mean and rstd. */
static void normalize_row(float* y, float* mean, float* rstd, const float* x, const float* weight,
                          const float* bias, int C) {
    float sum = 0.0f;
    for (int c = 0; c < C; c++) sum += x[c];
    float m = sum / C;
    float squares = 0.0f;  /* the variance from x - mean: no cancellation as in E[x^2] - mean^2 */
    for (int c = 0; c < C; c++) squares += (x[c] - m) * (x[c] - m);
    float s = 1.0f / sqrtf(squares / C + LAYERNORM_EPS);
    for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * weight[c] + (bias ? bias[c] : 0.0f);
    *mean = m;
    *rstd = s;
}

/* out (N, C); mean, rstd (N); inp (N, C); weight (C); bias (C) or NULL. */
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        normalize_row(out + (size_t)n * C, mean + n, rstd + n, inp + (size_t)n * C, weight, bias, C);
}

/* res (N, C) = a + b; then out, mean, rstd as layernorm_forward of res. */
void residual_layernorm_forward(float* res, float* out, float* mean, float* rstd, const float* a,
                                const float* b, const float* weight, const float* bias, int N, int C) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float* x = res + (size_t)n * C;
        for (int c = 0; c < C; c++) x[c] = a[(size_t)n * C + c] + b[(size_t)n * C + c];
        normalize_row(out + (size_t)n * C, mean + n, rstd + n, x, weight, bias, C);
    }
}

/* dinp (N, C) +=; dweight (C) +=; dbias (C) += or NULL; dout, inp (N, C); weight (C);
 * mean, rstd (N) from the forward. */
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean,
                        const float* rstd, int N, int C) {
    /* dx: each row on its own */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        const float* dy = dout + (size_t)n * C;
        float* dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float g_mean = 0.0f, gx_mean = 0.0f;
        for (int c = 0; c < C; c++) {
            float g = dy[c] * weight[c];
            g_mean += g;
            gx_mean += g * ((x[c] - m) * s);
        }
        g_mean /= C;
        gx_mean /= C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            dx[c] += s * (dy[c] * weight[c] - g_mean - xhat * gx_mean);
        }
    }
    /* dw and db: each channel sums its column, row after row */
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        for (int n = 0; n < N; n++) {
            float dy = dout[(size_t)n * C + c];
            dweight[c] += dy * ((inp[(size_t)n * C + c] - mean[n]) * rstd[n]);
            if (dbias) dbias[c] += dy;
        }
}
