/* reference/dropout.c: inverted dropout, forward and backward (dropout.h).
 *
 *   forward    y_i = mask_i x_i / (1 - p)      mask_i = dropout_keep(key, i, threshold)
 *   backward   dx_i = mask_i dy_i / (1 - p)
 *
 * Both layers use this file: one multiply per element. Attention applies the
 * same masks to its probabilities itself (attention.h), from the same
 * dropout_keep.
 */
#include "kernels/dropout.h"

uint64_t dropout_key(uint64_t seed, long step, int layer, DropoutSite site) {
    /* nested mixing keeps keys of neighbouring (step, layer, site) unrelated */
    return mix64(mix64(mix64(seed ^ 0xD50F0D50F0D50F0DULL) + (uint64_t)step) + (uint64_t)layer * 8u + site);
}

/* x (N) in place: forward and backward are the same map, a multiply by mask / (1-p). */
static void apply_mask(float* x, size_t N, float p, uint64_t key) {
    if (p <= 0.0f) return;
    uint32_t threshold = dropout_threshold(p);
    float scale = 1.0f / (1.0f - p);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; i++) x[i] = dropout_keep(key, i, threshold) ? x[i] * scale : 0.0f;
}

void dropout_forward(float* x, size_t N, float p, uint64_t key) { apply_mask(x, N, p, key); }
void dropout_backward(float* dx, size_t N, float p, uint64_t key) { apply_mask(dx, N, p, key); }
