/* reference/matmul.c: the linear layer y = x W^T + b and its backward, as the
 * formulas read.
 *
 *   forward    out[r][o]     = bias[o] + sum_i inp[r][i] W[o][i]
 *   backward   dinp[r][i]    = sum_o dout[r][o] W[o][i]
 *              dweight[o][i] = sum_r dout[r][o] inp[r][i]
 *              dbias[o]      = sum_r dout[r][o]
 *
 * The reference that kernels/fast/matmul.c (packed panels, register tiles)
 * must match. Each output element is one sum, run in index order from its
 * start value (the bias, 0, or the gradient it adds to); threads split the
 * outputs only, so the bits do not depend on their number. No scratch: the
 * loops read W where it lies.
 */
#include "kernels/matmul.h"

#include <stddef.h>

const char* matmul_path(void) { return "reference"; }

size_t matmul_scratch_floats(int C, int OC) { return 0; }

size_t matmul_backward_scratch_floats(int C, int OC) { return 0; }

/* out (BT, OC); inp (BT, C); weight (OC, C); bias (OC) or NULL; scratch unused. */
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, float* scratch,
                    int BT, int C, int OC) {
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < BT; r++) {
        const float* x = inp + (size_t)r * C;
        for (int o = 0; o < OC; o++) {
            const float* w = weight + (size_t)o * C;
            float sum = bias ? bias[o] : 0.0f;
            for (int i = 0; i < C; i++) sum += x[i] * w[i];
            out[(size_t)r * OC + o] = sum;
        }
    }
}

/* out (OC); inp (C); weight (OC, C); bias (OC) or NULL: one row of matmul_forward. */
void matvec_forward(float* out, const float* inp, const float* weight, const float* bias, int C, int OC) {
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
        const float* w = weight + (size_t)o * C;
        float sum = bias ? bias[o] : 0.0f;
        for (int i = 0; i < C; i++) sum += inp[i] * w[i];
        out[o] = sum;
    }
}

/* dinp (BT, C) overwritten, or NULL; dweight (OC, C) and dbias (OC) or NULL:
 * added to (GRADS_ADD) or overwritten (GRADS_SET); dout (BT, OC); inp (BT, C);
 * weight (OC, C); scratch unused. */
void matmul_backward(float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, float* scratch,
                     int BT, int C, int OC, GradMode mode) {
    int add = mode == GRADS_ADD;
    /* dinp[r][i] = sum_o dout[r][o] W[o][i]: row r of dinp gathers the rows of W */
    if (dinp) {
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < BT; r++) {
            float* dx = dinp + (size_t)r * C;
            for (int i = 0; i < C; i++) dx[i] = 0.0f;
            for (int o = 0; o < OC; o++) {
                float d = dout[(size_t)r * OC + o];
                const float* w = weight + (size_t)o * C;
                for (int i = 0; i < C; i++) dx[i] += d * w[i];
            }
        }
    }
    /* dweight[o][i] (+)= sum_r dout[r][o] inp[r][i];  dbias[o] (+)= sum_r dout[r][o] */
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
        float* dw = dweight + (size_t)o * C;
        if (!add)
            for (int i = 0; i < C; i++) dw[i] = 0.0f;
        for (int r = 0; r < BT; r++) {
            float d = dout[(size_t)r * OC + o];
            const float* x = inp + (size_t)r * C;
            for (int i = 0; i < C; i++) dw[i] += d * x[i];
        }
        if (dbias) {
            float sum = add ? dbias[o] : 0.0f;
            for (int r = 0; r < BT; r++) sum += dout[(size_t)r * OC + o];
            dbias[o] = sum;
        }
    }
}
