/* dropout.h: inverted dropout with masks that are a pure function of (key, index).
 *
 * Training drops each element with probability p and scales the kept ones by
 * 1/(1-p), so eval (no dropout) sees the same expected activation. The mask of
 * element i is a hash of (key, i): no RNG state is carried from element to
 * element, so every thread computes the same mask for any split of the work,
 * the backward pass recomputes the mask instead of storing it, and a run with
 * the same seed draws the same masks. The caller derives one key per step, layer
 * and site (dropout_key). */
#ifndef DROPOUT_H
#define DROPOUT_H

#include <stddef.h>
#include <stdint.h>

#include "util/utils.h"

/* Where dropout sits: nanoGPT's places (the embedding + position sum, the
 * attention probabilities, and the two residual branches of every block), and
 * embed_dropout's whole token rows (one mask bit per position, kernels/encoder.h). */
typedef enum { DROP_EMBED = 0, DROP_ATTN = 1, DROP_ATTN_RESID = 2, DROP_MLP_RESID = 3, DROP_TOKEN = 4 } DropoutSite;

/* The mask key for one step, layer and site, from the run's seed. */
uint64_t dropout_key(uint64_t seed, long step, int layer, DropoutSite site);

/* Whole probability p as a 32-bit threshold: element i is kept when its hash's
 * top 32 bits are >= threshold (keep probability 1 - threshold / 2^32). */
static inline uint32_t dropout_threshold(float p) { return (uint32_t)((double)p * 4294967296.0); }
#define DROPOUT_INDEX_STRIDE 0x9E3779B97F4A7C15ULL  /* 2^64 / golden ratio: indices spread over the key space */
static inline int dropout_keep(uint64_t key, size_t i, uint32_t threshold) {
    return (uint32_t)(mix64(key + (uint64_t)i * DROPOUT_INDEX_STRIDE) >> 32) >= threshold;
}

/* x (N) = mask * x / (1-p), in place. p = 0 leaves x untouched. */
void dropout_forward(float* x, size_t N, float p, uint64_t key);
/* dx (N) = mask * dx / (1-p), in place: the gradient through the same mask. */
void dropout_backward(float* dx, size_t N, float p, uint64_t key);

#endif
