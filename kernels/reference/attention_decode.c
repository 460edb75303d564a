/* reference/attention_decode.c: one query against a key/value cache, for
 * generation: the last row of attention_forward (reference/attention.c) without
 * dropout, the same passes. A file of its own because the fast layer has no twin
 * of it: one query row is too little work to tile, so every build links this one.
 */
#include "kernels/attention.h"

#include <math.h>
#include <stddef.h>

/* out (C) for the query at position t = n_ctx - 1; scores: n_ctx floats;
 * q (C); k_cache, v_cache (n_ctx, C): the keys and values of positions 0..t.
 * The last row of attention_forward without dropout, the same passes. */
void attention_decode(float* out, float* scores, const float* q, const float* k_cache, const float* v_cache,
                      int n_ctx, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < NH; h++) {
        const float* qh = q + h * hs;
        /* pass 1: the scores, and their max */
        float m = -INFINITY;
        for (int s = 0; s < n_ctx; s++) {
            const float* k = k_cache + (size_t)s * C + h * hs;
            float dot = 0.0f;
            for (int i = 0; i < hs; i++) dot += qh[i] * k[i];
            scores[s] = scale * dot;
            if (scores[s] > m) m = scores[s];
        }
        /* pass 2: the exponentials, and their sum */
        float sum = 0.0f;
        for (int s = 0; s < n_ctx; s++) {
            scores[s] = expf(scores[s] - m);
            sum += scores[s];
        }
        /* pass 3: the probabilities */
        float inv_sum = 1.0f / sum;
        for (int s = 0; s < n_ctx; s++) scores[s] *= inv_sum;
        /* pass 4: the weighted sum of the values */
        float* o = out + h * hs;
        for (int i = 0; i < hs; i++) o[i] = 0.0f;
        for (int s = 0; s < n_ctx; s++) {
            const float* v = v_cache + (size_t)s * C + h * hs;
            for (int i = 0; i < hs; i++) o[i] += scores[s] * v[i];
        }
    }
}
