/* layernorm.c: layer normalisation, forward and backward. */
#include "layernorm.h"

#include <math.h>
#include <stddef.h>

enum {
    CHANNEL_SLICE = 16,  /* channels per OpenMP work item in the dweight/dbias pass */
    LANES = 16,          /* a row's sums run in LANES interleaved partial sums */
};

/* The row sums below are kept in LANES partial sums (lane j takes channels
 * j, j+LANES, ...) that are added up in lane order at the end: a fixed order,
 * so the same bits on any thread count, but one the compiler can run as vector
 * adds (a single running sum would have to stay scalar without -ffast-math). */
static inline float lanes_total(const float acc[LANES]) {
    float total = 0.0f;
    for (int j = 0; j < LANES; j++) total += acc[j];
    return total;
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        float acc[LANES] = {0};
        int c = 0;
        for (; c + LANES <= C; c += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += x[c + j];
        float m = lanes_total(acc);
        for (; c < C; c++) m += x[c];
        m /= C;
        /* two passes: numerically safer than E[x^2] - m^2 */
        for (int j = 0; j < LANES; j++) acc[j] = 0.0f;
        for (c = 0; c + LANES <= C; c += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += (x[c + j] - m) * (x[c + j] - m);
        float v = lanes_total(acc);
        for (; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        float s = 1.0f / sqrtf(v + LAYERNORM_EPS);
        float* y = out + (size_t)n * C;
        for (c = 0; c < C; c++) y[c] = (x[c] - m) * s * weight[c] + (bias ? bias[c] : 0.0f);
        mean[n] = m;
        rstd[n] = s;
    }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean,
                        const float* rstd, int N, int C) {
    /* pass 1, per row: with xhat = (x - mean) * rstd and g = dout * weight,
     * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        const float* dy = dout + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float acc_g[LANES] = {0}, acc_gx[LANES] = {0};
        int c = 0;
        for (; c + LANES <= C; c += LANES)
            for (int j = 0; j < LANES; j++) {
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
    /* pass 2, per channel: dweight = sum_n dout * xhat, dbias = sum_n dout,
     * threads own channel slices and sum rows in order */
    int slices = (C + CHANNEL_SLICE - 1) / CHANNEL_SLICE;
    #pragma omp parallel for schedule(static)
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
