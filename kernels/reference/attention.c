/* reference/attention.c: causal multi-head self-attention, forward and backward,
 * as the formulas read, one query row at a time (the one-query decode of
 * generation: reference/attention_decode.c).
 *
 * For batch b, head h (the hs = C/NH channels h*hs.. of q, k and v) and query t:
 *   pass 1   a_s = scale q_t . k_s  for s <= t,   scale = 1/sqrt(hs)
 *   pass 2   m = max_s a_s,  S = sum_{s<=t} e^(a_s - m)
 *   pass 3   p_s = e^(a_s - m) / S,  w_s = mask_s p_s / (1 - dropout)  (w = p without dropout)
 *   pass 4   out_t = sum_{s<=t} w_s v_s
 * Keys after t are never looked at (the causal mask). A row keeps only
 * stats = (m, 1/S); the backward recomputes p from them. mask_s is
 * dropout_keep(key, ((b*NH + h)*T + t)*T + s, threshold): the element's index
 * in the (B,NH,T,T) probability matrix, which is never stored (attention.h).
 *
 * The reference that kernels/fast/attention.c (blocks of 32 queries, products
 * through the register tile, a vectorised exp) must match. Threads split the
 * (b, h) pairs, whose outputs are disjoint; within one, every sum runs in key
 * order and every gradient gathers its terms in query order.
 */
#include "kernels/attention.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <string.h>

#include "kernels/dropout.h"

/* A thread's scratch: one query row's p and dp (T floats each). */
size_t attention_scratch_floats(int T, int C, int NH) { return 2 * (size_t)T; }

/* x through the dropout mask of element `index`: mask x / (1 - dropout) */
static float dropped(float x, uint64_t key, size_t index, uint32_t threshold, float keep_scale) {
    return dropout_keep(key, index, threshold) ? x * keep_scale : 0.0f;
}

/* out (B,T,C) overwritten; stats (B,NH,T,2); scratch: attention_scratch_floats
 * floats per thread; qkv (B,T,3C). */
void attention_forward(float* out, float* stats, float* scratch, const float* qkv, int B, int T, int C, int NH,
                       float dropout, uint64_t key) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs), keep_scale = 1.0f / (1.0f - dropout);
    uint32_t threshold = dropout_threshold(dropout);
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        float* p = scratch + (size_t)omp_get_thread_num() * attention_scratch_floats(T, C, NH);
        for (int t = 0; t < T; t++) {
            const float* q = qkv + ((size_t)b * T + t) * C3 + h * hs;
            /* pass 1: the scores, and their max */
            float m = -INFINITY;
            for (int s = 0; s <= t; s++) {
                const float* k = qkv + ((size_t)b * T + s) * C3 + C + h * hs;
                float dot = 0.0f;
                for (int i = 0; i < hs; i++) dot += q[i] * k[i];
                p[s] = scale * dot;
                if (p[s] > m) m = p[s];
            }
            /* pass 2: the exponentials, and their sum */
            float sum = 0.0f;
            for (int s = 0; s <= t; s++) {
                p[s] = expf(p[s] - m);
                sum += p[s];
            }
            /* pass 3: the probabilities, through the dropout mask */
            float inv_sum = 1.0f / sum;
            size_t row = ((size_t)bh * T + t) * T;  /* index of (b, h, t, 0) in (B,NH,T,T) */
            for (int s = 0; s <= t; s++) {
                p[s] *= inv_sum;
                if (dropout > 0.0f) p[s] = dropped(p[s], key, row + s, threshold, keep_scale);
            }
            stats[2 * ((size_t)bh * T + t)] = m;
            stats[2 * ((size_t)bh * T + t) + 1] = inv_sum;
            /* pass 4: the weighted sum of the values */
            float* o = out + ((size_t)b * T + t) * C + h * hs;
            for (int i = 0; i < hs; i++) o[i] = 0.0f;
            for (int s = 0; s <= t; s++) {
                const float* v = qkv + ((size_t)b * T + s) * C3 + 2 * C + h * hs;
                for (int i = 0; i < hs; i++) o[i] += p[s] * v[i];
            }
        }
    }
}

/* dqkv (B,T,3C) overwritten; scratch as in forward; dout (B,T,C); qkv (B,T,3C);
 * stats (B,NH,T,2) from the forward; dropout and key as in the forward. */
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv, const float* stats,
                        int B, int T, int C, int NH, float dropout, uint64_t key) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs), keep_scale = 1.0f / (1.0f - dropout);
    uint32_t threshold = dropout_threshold(dropout);
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        float* p = scratch + (size_t)omp_get_thread_num() * attention_scratch_floats(T, C, NH);
        float* dp = p + T;
        /* this (b, h) is the only writer of its head's dq, dk, dv: zero them, then gather */
        for (int t = 0; t < T; t++)
            for (int part = 0; part < 3; part++)
                memset(dqkv + ((size_t)b * T + t) * C3 + part * C + h * hs, 0, sizeof(float) * hs);
        for (int t = 0; t < T; t++) {
            const float* q = qkv + ((size_t)b * T + t) * C3 + h * hs;
            const float* dy = dout + ((size_t)b * T + t) * C + h * hs;
            float* dq = dqkv + ((size_t)b * T + t) * C3 + h * hs;
            float m = stats[2 * ((size_t)bh * T + t)], inv_sum = stats[2 * ((size_t)bh * T + t) + 1];
            size_t row = ((size_t)bh * T + t) * T;
            /* passes 1-3 again: p_s = e^(scale q_t . k_s - m) / S from the kept (m, 1/S) */
            for (int s = 0; s <= t; s++) {
                const float* k = qkv + ((size_t)b * T + s) * C3 + C + h * hs;
                float dot = 0.0f;
                for (int i = 0; i < hs; i++) dot += q[i] * k[i];
                p[s] = expf(scale * dot - m) * inv_sum;
            }
            /* undo pass 4, out_t = sum_s w_s v_s:  dw_s = dy_t . v_s,  dv_s += w_s dy_t */
            for (int s = 0; s <= t; s++) {
                const float* v = qkv + ((size_t)b * T + s) * C3 + 2 * C + h * hs;
                float* dv = dqkv + ((size_t)b * T + s) * C3 + 2 * C + h * hs;
                float w = dropout > 0.0f ? dropped(p[s], key, row + s, threshold, keep_scale) : p[s];
                float dot = 0.0f;
                for (int i = 0; i < hs; i++) dot += dy[i] * v[i];
                dp[s] = dot;
                for (int i = 0; i < hs; i++) dv[i] += w * dy[i];
            }
            /* undo the mask of pass 3, w_s = mask_s p_s / (1 - dropout):  dp_s = mask_s dw_s / (1 - dropout) */
            if (dropout > 0.0f)
                for (int s = 0; s <= t; s++) dp[s] = dropped(dp[s], key, row + s, threshold, keep_scale);
            /* undo the softmax of passes 2-3:  da_s = p_s (dp_s - sum_r p_r dp_r) */
            float p_dot_dp = 0.0f;
            for (int s = 0; s <= t; s++) p_dot_dp += p[s] * dp[s];
            /* undo pass 1, a_s = scale q_t . k_s:  dq_t += scale da_s k_s,  dk_s += scale da_s q_t */
            for (int s = 0; s <= t; s++) {
                const float* k = qkv + ((size_t)b * T + s) * C3 + C + h * hs;
                float* dk = dqkv + ((size_t)b * T + s) * C3 + C + h * hs;
                float da = p[s] * (dp[s] - p_dot_dp);
                for (int i = 0; i < hs; i++) {
                    dq[i] += scale * da * k[i];
                    dk[i] += scale * da * q[i];
                }
            }
        }
    }
}
