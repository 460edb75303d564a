/* attention.c: causal self-attention, forward and backward, in memory linear in T.
 *
 * The T x T probability matrix of a head is never stored. Forward keeps two
 * floats per query row, the softmax's max and 1/sum; backward recomputes the
 * scores of a block of QB query rows from q and k and rebuilds from them exactly
 * the forward's probabilities (recompute instead of store, as FlashAttention
 * does). A thread works in a few (QB x T) and (hs x T) blocks, whatever the batch.
 *
 * Each (b, h) is one task that one thread runs from start to end: dk_s and dv_s
 * gather terms from every query t >= s in a fixed order, so the bits do not
 * depend on the thread count. The products go through the matmul tile
 * (gemm_accumulate_serial); the scores of a group of GROUP rows stop at the
 * group's last key, so the causal mask wastes at most a triangle per group.
 */
#include "attention.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <string.h>

#include "dropout.h"
#include "matmul.h"
#include "vmath.h"

enum {
    QB = 32,    /* query rows per block */
    GROUP = 8,  /* rows whose scores share one key range (the matmul tile's height) */
    VEC = 16,   /* floats in an AVX-512 vector */
};

size_t attention_scratch_floats(int T, int C, int NH) {
    size_t hs = (size_t)C / NH;
    return 2 * hs * T + 2 * (size_t)QB * T;  /* k^T and v^T of a head, two (QB x T) blocks */
}

/* What forward and backward share: the head size, 1/sqrt(hs), the dropout mask
 * (dropout.h) and the size of a thread's blocks in scratch. */
typedef struct {
    int hs, C3;
    float scale, keep_scale;
    uint32_t threshold;
    uint64_t key;
    size_t per_thread;
} Heads;

static Heads heads(int T, int C, int NH, float dropout, uint64_t key) {
    Heads a = {.hs = C / NH, .C3 = 3 * C, .keep_scale = 1.0f / (1.0f - dropout),
               .threshold = dropout_threshold(dropout), .key = key,
               .per_thread = attention_scratch_floats(T, C, NH)};
    a.scale = 1.0f / sqrtf((float)a.hs);
    return a;
}

/* x through the dropout mask at index i of the (B,NH,T,T) matrix: m_i x / (1-p). */
static inline float dropped(const Heads* a, size_t i, float x) {
    return dropout_keep(a->key, i, a->threshold) ? x * a->keep_scale : 0.0f;
}

/* n rounded up to whole vectors of VEC floats, at most T. A row's elementwise
 * passes run over that many entries: the compiler's vector loop then has no
 * remainder, which it would run one element at a time (three quarters of
 * attention forward's exp_approx time went there). The entries from n on are
 * scores of future keys (block_products computes them), set to 0 afterwards
 * or never read; an element's result does not depend on the pass it is in. */
static inline int whole_vectors(int n, int T) {
    int padded = (n + VEC - 1) / VEC * VEC;
    return padded < T ? padded : T;
}

/* out (rows r0..r1 of a block, row stride T) = x yt for the keys 0..g1-1 of each
 * group of GROUP rows ending at g1 and on to whole_vectors(g1) (x's rows at
 * stride ldx; the same tiles: NR is a multiple of VEC). Entries past that keep
 * whatever they held. */
static void block_products(float* out, const float* x, int ldx, const float* yt, int r0, int r1, int T, int hs) {
    for (int g0 = r0; g0 < r1; g0 += GROUP) {
        int g1 = g0 + GROUP < r1 ? g0 + GROUP : r1;
        gemm_set_serial(out + (size_t)(g0 - r0) * T, T, x + (size_t)g0 * ldx, ldx, 1, yt, T, g1 - g0,
                        whole_vectors(g1, T), hs);
    }
}

void attention_forward(float* out, float* stats, float* scratch, const float* qkv, int B, int T, int C, int NH,
                       float dropout, uint64_t key) {
    Heads a = heads(T, C, NH, dropout, key);
    int hs = a.hs, C3 = a.C3;
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        float* kt = scratch + (size_t)omp_get_thread_num() * a.per_thread;
        float* w = kt + 2 * (size_t)hs * T;  /* (QB, T) scores, then weights */
        const float* q = qkv + (size_t)b * T * C3 + h * hs;
        const float* v = q + 2 * C;
        float* o = out + (size_t)b * T * C + h * hs;
        float* st = stats + (size_t)bh * T * 2;
        transpose(kt, T, q + C, C3, T, hs);  /* kt (hs, T) = k^T: the product with keys needs positions along a row */
        for (int r0 = 0; r0 < T; r0 += QB) {
            int r1 = r0 + QB < T ? r0 + QB : T;
            block_products(w, q, C3, kt, r0, r1, T, hs);  /* q_t . k_s */
            for (int t = r0; t < r1; t++) {
                /* softmax of a_s = q_t.k_s / sqrt(hs) over s <= t: p_s = e^{a_s - max} / sum */
                float* p = w + (size_t)(t - r0) * T;
                int n = t + 1, nv = whole_vectors(n, T);  /* the max and the sum over s < n only */
                for (int s = 0; s < nv; s++) p[s] *= a.scale;
                float amax = lanes_max(p, n);
                for (int s = 0; s < nv; s++) p[s] = exp_approx(p[s] - amax);
                float inv = 1.0f / lanes_sum(p, n);
                st[2 * t] = amax;
                st[2 * t + 1] = inv;
                for (int s = 0; s < nv; s++) p[s] *= inv;
                /* w = p, or dropout(p) in training: the mask is a hash of the index in
                 * the (B,NH,T,T) matrix, which is never stored */
                if (dropout > 0.0f) {
                    size_t row = ((size_t)bh * T + t) * T;
                    for (int s = 0; s <= t; s++) p[s] = dropped(&a, row + s, p[s]);
                }
                for (int s = t + 1; s < r1; s++) p[s] = 0.0f;  /* the future: weight 0 */
            }
            /* out_t = sum_s w_s v_s */
            gemm_set_serial(o + (size_t)r0 * C, C, w, T, 1, v, C3, r1 - r0, hs, r1);
        }
    }
}

void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv, const float* stats,
                        int B, int T, int C, int NH, float dropout, uint64_t key) {
    Heads a = heads(T, C, NH, dropout, key);
    int hs = a.hs, C3 = a.C3;
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        float* kt = scratch + (size_t)omp_get_thread_num() * a.per_thread;
        float* vt = kt + (size_t)hs * T;
        float* w = vt + (size_t)hs * T;   /* (QB, T): scores, then the weights w */
        float* dw = w + (size_t)QB * T;   /* (QB, T): dw, then the score gradients */
        const float* q = qkv + (size_t)b * T * C3 + h * hs;
        const float* k = q + C;
        const float* v = q + 2 * C;
        float* dq = dqkv + (size_t)b * T * C3 + h * hs;
        float* dk = dq + C;
        float* dv = dq + 2 * C;
        const float* dy = dout + (size_t)b * T * C + h * hs;
        const float* st = stats + (size_t)bh * T * 2;
        transpose(kt, T, k, C3, T, hs);  /* kt, vt (hs, T) = k^T, v^T */
        transpose(vt, T, v, C3, T, hs);
        for (int r0 = 0; r0 < T; r0 += QB) {
            int r1 = r0 + QB < T ? r0 + QB : T;
            block_products(w, q, C3, kt, r0, r1, T, hs);   /* q_t . k_s */
            block_products(dw, dy, C, vt, r0, r1, T, hs);  /* undo out = w v: dw_s = dy_t . v_s */
            for (int t = r0; t < r1; t++) {
                float* p = w + (size_t)(t - r0) * T;
                float* dp = dw + (size_t)(t - r0) * T;
                size_t row = ((size_t)bh * T + t) * T;
                /* the forward's p_s, bit for bit, and through the mask m_s of dropout
                 * (w_s = m_s p_s / (1-p)): dp_s = m_s dw_s / (1-p) */
                int nv = whole_vectors(t + 1, T);  /* as in the forward; the dot over s <= t only */
                for (int s = 0; s < nv; s++) p[s] = exp_approx(p[s] * a.scale - st[2 * t]) * st[2 * t + 1];
                if (dropout > 0.0f)
                    for (int s = 0; s <= t; s++) dp[s] = dropped(&a, row + s, dp[s]);
                float pdot = lanes_dot(p, dp, t + 1);
                /* undo the softmax: dscore_s = p_s (dp_s - sum_r p_r dp_r), and 1/sqrt(hs) */
                for (int s = 0; s < nv; s++) dp[s] = p[s] * (dp[s] - pdot) * a.scale;
                if (dropout > 0.0f)
                    for (int s = 0; s <= t; s++) p[s] = dropped(&a, row + s, p[s]);
                for (int s = t + 1; s < r1; s++) { p[s] = 0.0f; dp[s] = 0.0f; }
            }
            /* This task is the only writer of its head's dq, dk, dv. The block's
             * queries t in [r0, r1) reach keys s < r1: dk_s and dv_s of earlier
             * blocks' keys s < r0 add to what those blocks left; the block's own
             * keys start from these terms; each dq_t is all in this block. */
            int n = r1 - r0;
            const float* dyb = dy + (size_t)r0 * C;
            const float* qb = q + (size_t)r0 * C3;
            gemm_accumulate_serial(dv, C3, w, 1, T, dyb, C, r0, hs, n);                        /* dv_s += w_s dy_t */
            gemm_set_serial(dv + (size_t)r0 * C3, C3, w + r0, 1, T, dyb, C, n, hs, n);
            gemm_accumulate_serial(dk, C3, dw, 1, T, qb, C3, r0, hs, n);                       /* dk_s += ds q_t */
            gemm_set_serial(dk + (size_t)r0 * C3, C3, dw + r0, 1, T, qb, C3, n, hs, n);
            gemm_set_serial(dq + (size_t)r0 * C3, C3, dw, T, 1, k, C3, n, hs, r1);             /* dq_t = sum ds k_s */
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
