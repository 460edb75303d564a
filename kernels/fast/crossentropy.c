/* fast/crossentropy.c: fused softmax + cross-entropy, forward and backward,
 * through a vectorised exp and lane sums. Must match
 * kernels/reference/crossentropy.c, the same formulas with libm's expf and
 * sums in vocabulary order (tests/test_kernels.c compares them).
 *
 * p_v = e^(z_v - m) / S, with m = max_v z_v and S = sum_v e^(z_v - m): subtracting
 * the max keeps e^x from overflowing. The forward keeps (m, 1/S) per row and no
 * probabilities; the backward recomputes p_v from them with the same exp_approx
 * (vmath.h), a vector loop, where reading a kept (N,V) table back from memory
 * would cost more than the exps (and 2 x N x V floats with its gradient's twin). */
#include "kernels/crossentropy.h"

#include <math.h>
#include <stddef.h>

#include "kernels/fast/vmath.h"

/* max_v z_v in SUM_LANES lanes: a max is exact, so any order gives the same value;
 * written as a > b ? a : b, the instruction x86's maxps is, so gcc vectorises it */
static float row_max(const float* z, int V) {
    float acc[SUM_LANES];
    for (int j = 0; j < SUM_LANES; j++) acc[j] = z[0];
    int v = 0;
    for (; v + SUM_LANES <= V; v += SUM_LANES)
        for (int j = 0; j < SUM_LANES; j++) acc[j] = z[v + j] > acc[j] ? z[v + j] : acc[j];
    float m = acc[0];
    for (int j = 1; j < SUM_LANES; j++) m = acc[j] > m ? acc[j] : m;
    for (; v < V; v++) m = z[v] > m ? z[v] : m;
    return m;
}

float crossentropy_forward(float* stats, float* losses, const float* logits,
                           const int* targets, int N, int V) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* z = logits + (size_t)n * V;
        float m = row_max(z, V);
        /* S = sum_v e^(z_v - m), in the fixed lane order of vmath.h's sums */
        float acc[SUM_LANES] = {0};
        int v = 0;
        for (; v + SUM_LANES <= V; v += SUM_LANES)
            for (int j = 0; j < SUM_LANES; j++) acc[j] += exp_approx(z[v + j] - m);
        float sum = lanes_total(acc);
        for (; v < V; v++) sum += exp_approx(z[v] - m);
        stats[2 * (size_t)n] = m;
        stats[2 * (size_t)n + 1] = 1.0f / sum;
        /* -log p_y = log S - (z_y - m): from the logits, not from a rounded probability */
        losses[n] = logf(sum) - (z[targets[n]] - m);
    }
    double total = 0.0;  /* serial: the sum order is the same on any thread count */
    for (int n = 0; n < N; n++) total += losses[n];
    return (float)(total / N);
}

void crossentropy_backward(float* dlogits, const float* logits, const float* stats, const int* targets,
                           int N, int V, int batch_rows) {
    float scale = 1.0f / batch_rows;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* z = logits + (size_t)n * V;
        float* dz = dlogits + (size_t)n * V;
        float m = stats[2 * (size_t)n], inv = stats[2 * (size_t)n + 1];
        /* dz_v = (p_v - [v = y]) / batch_rows; p_v as the forward's S summed it */
        for (int v = 0; v < V; v++) dz[v] = exp_approx(z[v] - m) * inv * scale;
        int y = targets[n];
        dz[y] = (exp_approx(z[y] - m) * inv - 1.0f) * scale;
    }
}
