/* attention.c: causal self-attention, forward and backward.
 * Not here: the fused online-softmax form that avoids storing att (issue 6). */
#include "attention.h"

#include <math.h>

#include "dropout.h"
#include <stddef.h>
#include <string.h>

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH,
                       float dropout, uint64_t key) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    uint32_t threshold = dropout_threshold(dropout);
    float keep_scale = 1.0f / (1.0f - dropout);
    #pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float* q = qkv + ((size_t)b * T + t) * C3 + h * hs;
                float* a = att + (((size_t)b * NH + h) * T + t) * T;
                /* pass 1: scores q.k_s / sqrt(hs) for s <= t, and their max */
                float amax = -INFINITY;
                for (int s = 0; s <= t; s++) {
                    const float* k = qkv + ((size_t)b * T + s) * C3 + C + h * hs;
                    float dot = 0.0f;
                    for (int i = 0; i < hs; i++) dot += q[i] * k[i];
                    a[s] = dot * scale;
                    if (a[s] > amax) amax = a[s];
                }
                /* pass 2: softmax over s <= t; positions after t get probability 0 */
                float sum = 0.0f;
                for (int s = 0; s <= t; s++) { a[s] = expf(a[s] - amax); sum += a[s]; }
                float inv = 1.0f / sum;
                for (int s = 0; s <= t; s++) a[s] *= inv;
                for (int s = t + 1; s < T; s++) a[s] = 0.0f;
                /* pass 3: out_t = sum_s w_s v_s, w = a (or dropout(a) in training; att
                 * keeps a, and backward recomputes the mask from its index) */
                float* o = out + ((size_t)b * T + t) * C + h * hs;
                size_t row = (((size_t)b * NH + h) * T + t) * T;
                memset(o, 0, sizeof(float) * hs);
                for (int s = 0; s <= t; s++) {
                    const float* v = qkv + ((size_t)b * T + s) * C3 + 2 * C + h * hs;
                    float w = a[s];
                    if (dropout > 0.0f) w = dropout_keep(key, row + s, threshold) ? w * keep_scale : 0.0f;
                    for (int i = 0; i < hs; i++) o[i] += w * v[i];
                }
            }
}

void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* att, int B, int T, int C, int NH, float dropout, uint64_t key) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    uint32_t threshold = dropout_threshold(dropout);
    float keep_scale = 1.0f / (1.0f - dropout);
    /* dk_s and dv_s collect terms from every query t >= s, so one thread owns a
     * whole (b, h) and walks t in order: no races, and a fixed summation order. */
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float* datt = scratch + ((size_t)b * NH + h) * T;
            for (int t = 0; t < T; t++) {
                const float* a = att + (((size_t)b * NH + h) * T + t) * T;
                const float* q = qkv + ((size_t)b * T + t) * C3 + h * hs;
                const float* dy = dout + ((size_t)b * T + t) * C + h * hs;
                float* dq = dqkv + ((size_t)b * T + t) * C3 + h * hs;
                /* undo pass 3: dw_s = dy . v_s, dv_s += w_s dy; through the dropout
                 * mask m_s: datt_s = m_s dw_s / (1-p) */
                size_t row = (((size_t)b * NH + h) * T + t) * T;
                for (int s = 0; s <= t; s++) {
                    const float* v = qkv + ((size_t)b * T + s) * C3 + 2 * C + h * hs;
                    float* dv = dqkv + ((size_t)b * T + s) * C3 + 2 * C + h * hs;
                    float m = 1.0f;
                    if (dropout > 0.0f) m = dropout_keep(key, row + s, threshold) ? keep_scale : 0.0f;
                    float w = a[s] * m, dot = 0.0f;
                    for (int i = 0; i < hs; i++) { dot += dy[i] * v[i]; dv[i] += w * dy[i]; }
                    datt[s] = dot * m;
                }
                /* undo pass 2 (softmax): dscore_s = a_s (datt_s - sum_r a_r datt_r) */
                float adot = 0.0f;
                for (int s = 0; s <= t; s++) adot += a[s] * datt[s];
                /* undo pass 1: dq += dscore_s k_s / sqrt(hs), dk_s += dscore_s q / sqrt(hs) */
                for (int s = 0; s <= t; s++) {
                    float dscore = a[s] * (datt[s] - adot) * scale;
                    const float* k = qkv + ((size_t)b * T + s) * C3 + C + h * hs;
                    float* dk = dqkv + ((size_t)b * T + s) * C3 + C + h * hs;
                    for (int i = 0; i < hs; i++) { dq[i] += dscore * k[i]; dk[i] += dscore * q[i]; }
                }
            }
        }
}

void attention_decode(float* out, float* scores, const float* q, const float* k_cache, const float* v_cache,
                      int n_ctx, int C, int NH) {
    /* the same three passes as attention_forward, for its last query row: the
     * cache spares recomputing the keys and values of earlier positions */
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < NH; h++) {
        const float* qh = q + h * hs;
        float amax = -INFINITY;
        for (int s = 0; s < n_ctx; s++) {
            const float* k = k_cache + (size_t)s * C + h * hs;
            float dot = 0.0f;
            for (int i = 0; i < hs; i++) dot += qh[i] * k[i];
            scores[s] = dot * scale;
            if (scores[s] > amax) amax = scores[s];
        }
        float sum = 0.0f;
        for (int s = 0; s < n_ctx; s++) { scores[s] = expf(scores[s] - amax); sum += scores[s]; }
        float inv = 1.0f / sum;
        float* o = out + h * hs;
        memset(o, 0, sizeof(float) * hs);
        for (int s = 0; s < n_ctx; s++) {
            const float* v = v_cache + (size_t)s * C + h * hs;
            float w = scores[s] * inv;
            for (int i = 0; i < hs; i++) o[i] += w * v[i];
        }
    }
}
