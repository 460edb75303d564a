/* reference/crossentropy.c: softmax over the vocabulary and the next-token
 * loss, forward and backward, as the formulas read. For one row z of V logits
 * and its target y:
 *
 *   m = max_v z_v,  S = sum_v e^(z_v - m),  p_v = e^(z_v - m) / S
 *   forward    loss = -log p_y = log S - (z_y - m)
 *   backward   dz_v = (p_v - [v = y]) / batch_rows
 *
 * Subtracting m keeps e^x from overflowing. A row keeps (m, 1/S), and the
 * backward recomputes p_v from them. The reference that
 * kernels/fast/crossentropy.c (vectorised exp, lane sums) must match.
 */
#include "kernels/crossentropy.h"

#include <math.h>
#include <stddef.h>

/* stats (N, 2) = (m, 1/S) per row; losses (N); logits (N, V); targets (N).
 * Returns the mean loss, summed in row order. */
float crossentropy_forward(float* stats, float* losses, const float* logits,
                           const int* targets, int N, int V) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* z = logits + (size_t)n * V;
        float m = z[0];
        for (int v = 1; v < V; v++) m = z[v] > m ? z[v] : m;
        float sum = 0.0f;
        for (int v = 0; v < V; v++) sum += expf(z[v] - m);
        stats[2 * (size_t)n] = m;
        stats[2 * (size_t)n + 1] = 1.0f / sum;
        losses[n] = logf(sum) - (z[targets[n]] - m);
    }
    double total = 0.0;
    for (int n = 0; n < N; n++) total += losses[n];
    return (float)(total / N);
}

/* dlogits (N, V) overwritten; logits (N, V); stats (N, 2) from the forward;
 * targets (N); batch_rows: the rows the mean loss is over (N, or more when
 * these N rows are one group of a batch). */
void crossentropy_backward(float* dlogits, const float* logits, const float* stats, const int* targets,
                           int N, int V, int batch_rows) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* z = logits + (size_t)n * V;
        float* dz = dlogits + (size_t)n * V;
        float m = stats[2 * (size_t)n], inv_sum = stats[2 * (size_t)n + 1];
        for (int v = 0; v < V; v++) {
            float p = expf(z[v] - m) * inv_sum;
            dz[v] = (p - (v == targets[n] ? 1.0f : 0.0f)) / batch_rows;
        }
    }
}
