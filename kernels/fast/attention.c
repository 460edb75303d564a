/* fast/attention.c: causal self-attention, forward and backward, in memory
 * linear in T. Must match kernels/reference/attention.c, the same passes one
 * query row at a time (tests/test_kernels.c compares them); the dropout masks
 * are the same elements' (attention.h).
 *
 * The T x T probability matrix of a head is never stored. Forward keeps two
 * floats per query row, the softmax's max and 1/sum; backward recomputes the
 * scores of a block of QB queries from q and k and rebuilds from them exactly
 * the forward's probabilities (recompute instead of store, as FlashAttention
 * does). A thread works in a few (T x QB) and (hs x QB) blocks, whatever the batch.
 *
 * A block's scores are kept transposed: row s holds key s against the block's
 * QB queries. A softmax over keys then runs down the rows, VEC queries side by
 * side in the lanes of one vector: the max, the sum and backward's dot product
 * are one chain per query in key order s = 0, 1, ..., t, with no sum across a
 * vector's lanes and no row-by-row remainders (with rows of keys, those
 * horizontal sums and remainders took half of the forward's time).
 *
 * Each (b, h) is one task that one thread runs from start to end: dk_s and dv_s
 * gather terms from every query t >= s in a fixed order, so the bits do not
 * depend on the thread count. The products go through the matmul tile
 * (gemm_accumulate_serial); keys after a group of VEC queries are not scored
 * for that group, so the causal mask wastes at most a triangle per group.
 */
#include "kernels/attention.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <string.h>

#include "kernels/dropout.h"
#include "kernels/fast/gemm.h"
#include "kernels/fast/vmath.h"

enum {
    VEC = 16,           /* queries side by side in a softmax pass (a group) */
    QB = 2 * VEC,       /* queries per block */
    NVEC = VEC / VLEN,  /* vectors (simd.h) across a group's row */
};
_Static_assert(VEC % VLEN == 0, "a group's row is whole vectors");

size_t attention_scratch_floats(int T, int C, int NH) {
    size_t hs = (size_t)C / NH;
    return 2 * hs * QB + 2 * (size_t)T * QB;  /* q^T and dy^T of a block, two (T x QB) blocks */
}

/* What forward and backward share: the head size, 1/sqrt(hs), the dropout mask
 * (dropout.h) and the size of a thread's blocks in scratch. */
typedef struct {
    int hs, C3, T;
    float scale, keep_scale;
    uint32_t threshold;
    uint64_t key;
    size_t per_thread;
} Heads;

static Heads heads(int T, int C, int NH, float dropout, uint64_t key) {
    Heads a = {.hs = C / NH, .C3 = 3 * C, .T = T, .keep_scale = 1.0f / (1.0f - dropout),
               .threshold = dropout_threshold(dropout), .key = key,
               .per_thread = attention_scratch_floats(T, C, NH)};
    a.scale = 1.0f / sqrtf((float)a.hs);
    return a;
}

/* x through the dropout mask at index i of the (B,NH,T,T) matrix: m_i x / (1-p). */
static inline float dropped(const Heads* a, size_t i, float x) {
    return dropout_keep(a->key, i, a->threshold) ? x * a->keep_scale : 0.0f;
}

/* A group: the VEC queries t = t0 + c (lane c) of head bh's block that ends at
 * query r1 - 1. It sees the keys s < end = min(t0 + VEC, r1); the products after
 * it read the block's rows s < r1, so its passes write all of those. */
typedef struct { int t0, end, r1, bh; } Group;

static Group group(int bh, int r0, int r1, int g) {
    int t0 = r0 + g * VEC;
    return (Group){t0, t0 + VEC < r1 ? t0 + VEC : r1, r1, bh};
}

/* Apply the dropout mask to x_s for the group's queries, s <= t (rare: training
 * with dropout; the default configs have none). */
static void drop_group(const Heads* a, const Group* g, float* x) {
    for (int c = 0; c < g->end - g->t0; c++) {
        int t = g->t0 + c;
        size_t row = ((size_t)g->bh * a->T + t) * a->T;
        for (int s = 0; s <= t; s++) x[(size_t)s * QB + c] = dropped(a, row + s, x[(size_t)s * QB + c]);
    }
}

/* sT (keys s < r1, QB) = k_s . q_t for the block's queries t = r0..r1-1, from
 * qt = q^T of the block (hs x QB). Keys from r0 + VEC on are scored only against
 * the groups of queries that reach them. */
static void block_scores(float* sT, const float* k, int ldk, const float* qt, int r0, int r1, int hs) {
    for (int g = 0; r0 + g * VEC < r1; g++) {
        int s0 = g == 0 ? 0 : r0 + g * VEC, s1 = group(0, r0, r1, g).end, col = g * VEC;
        gemm_set_serial(sT + (size_t)s0 * QB + col, QB, k + (size_t)s0 * ldk, ldk, 1, qt + col, QB, s1 - s0,
                        r1 - r0 - col, hs);
    }
    if (r1 - r0 < QB)  /* a last, partial block: its columns past the queries hold no scores; 0 keeps them finite */
        for (int s = 0; s < r1; s++) memset(sT + (size_t)s * QB + (r1 - r0), 0, sizeof(float) * (QB - (r1 - r0)));
}

/* The softmax of one group, forward and backward, runs down the rows of its
 * VEC columns of the block (x, p, dp: rows QB floats apart), lane c for query
 * t = t0 + c, key s in row s. Lane c sees key s when s <= t.
 *
 * softmax_group: in place on the scores a_s = q_t . k_s, for each query
 *   p_s = e^{scale a_s - m} / sum_{r <= t} e^{scale a_r - m}  for s <= t, 0 after,
 *   with m = scale max_{s <= t} a_s (scale > 0: the max of the scaled scores);
 *   the sum runs in key order. stats gets m and 1/sum. Every key row of the
 *   block is written: the product with v reads them all.
 * softmax_group_backward: p (the scores) becomes the forward's weights bit for
 *   bit (the same operations on the same scores and stats), dp (dw_s = dy_t . v_s)
 *   the score gradients dscore_s = p_s (dp_s - sum_{r <= t} p_r dp_r) scale,
 *   both 0 for s > t; the dot runs in key order, one FMA per key.
 * A row of a group is NVEC vectors, and each runs the passes alone. A lane that
 * does not see a key adds +0 to the sums (vkeep clears it): a sum that starts
 * at +0 is never -0 in round-to-nearest, and x + 0 = x for every other x, so
 * the masked keys change no bit. */

/* The group's softmax stats, m and 1/sum, to and from their (T, 2) rows; lanes
 * past the group's last query read 0. */
static void put_stats(float* stats, const Group* g, const float* m, const float* inv) {
    for (int c = 0; c < g->end - g->t0; c++) {
        stats[2 * (g->t0 + c)] = m[c];
        stats[2 * (g->t0 + c) + 1] = inv[c];
    }
}

static void get_stats(const float* stats, const Group* g, float m[VEC], float inv[VEC]) {
    for (int c = 0; c < VEC; c++) {
        int live = c < g->end - g->t0;
        m[c] = live ? stats[2 * (g->t0 + c)] : 0.0f;
        inv[c] = live ? stats[2 * (g->t0 + c) + 1] : 0.0f;
    }
}

/* the lanes of vector i of a group's row that see key s: t0 + i VLEN + j >= s */
static inline vi seen(int s, int t0, int i) { return vlane_index() >= vsplati(s - t0 - i * VLEN); }

static void softmax_group(const Heads* a, const Group* g, float* x, float* stats) {
    const int t0 = g->t0, end = g->end;
    const vf scale = vsplat(a->scale);
    float m[VEC], inv[VEC];
    for (int i = 0; i < NVEC; i++) {
        float* xi = x + i * VLEN;
        vf mx = vload(xi);  /* key 0: every query sees it */
        for (int s = 1; s < end; s++) {
            vf xs = vload(xi + (size_t)s * QB);
            mx = vselect(seen(s, t0, i) & (xs > mx), xs, mx);
        }
        vf mi = mx * scale, sum = vzero();
        for (int s = 0; s < end; s++) {
            float* xs = xi + (size_t)s * QB;
            vf e = vexp(vfma(vload(xs), scale, -mi));
            vstore(xs, e);
            sum += vkeep(seen(s, t0, i), e);
        }
        vf invi = vsplat(1.0f) / sum;
        vstore(m + i * VLEN, mi);
        vstore(inv + i * VLEN, invi);
        for (int s = 0; s < g->r1; s++) {
            float* xs = xi + (size_t)s * QB;
            vi k = s < end ? seen(s, t0, i) : vsplati(0);
            vstore(xs, vkeep(k, vload(xs) * invi));
        }
    }
    put_stats(stats, g, m, inv);
}

static void softmax_group_backward(const Heads* a, const Group* g, float* p, float* dp, const float* stats) {
    const int t0 = g->t0, end = g->end;
    const vf scale = vsplat(a->scale);
    float m[VEC], inv[VEC];
    get_stats(stats, g, m, inv);
    for (int i = 0; i < NVEC; i++) {
        float* pi = p + i * VLEN;
        float* dpi = dp + i * VLEN;
        vf neg_m = -vload(m + i * VLEN), invi = vload(inv + i * VLEN), pdot = vzero();
        for (int s = 0; s < end; s++) {
            float* ps = pi + (size_t)s * QB;
            vf pv = vexp(vfma(vload(ps), scale, neg_m)) * invi;
            vstore(ps, pv);
            pdot = vfma(pv, vkeep(seen(s, t0, i), vload(dpi + (size_t)s * QB)), pdot);
        }
        for (int s = 0; s < g->r1; s++) {
            float* ps = pi + (size_t)s * QB;
            float* dps = dpi + (size_t)s * QB;
            vi k = s < end ? seen(s, t0, i) : vsplati(0);
            vf pv = vload(ps);
            vf ds = pv * (vload(dps) - pdot);
            vstore(dps, vkeep(k, ds * scale));
            vstore(ps, vkeep(k, pv));
        }
    }
}

void attention_forward(float* out, float* stats, float* scratch, const float* qkv, int B, int T, int C, int NH,
                       float dropout, uint64_t key) {
    Heads a = heads(T, C, NH, dropout, key);
    int hs = a.hs, C3 = a.C3;
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        float* qt = scratch + (size_t)omp_get_thread_num() * a.per_thread;
        float* w = qt + (size_t)hs * QB;  /* (T, QB): scores, then weights */
        const float* q = qkv + (size_t)b * T * C3 + h * hs;
        const float* k = q + C;
        const float* v = q + 2 * C;
        float* o = out + (size_t)b * T * C + h * hs;
        float* st = stats + (size_t)bh * T * 2;
        for (int r0 = 0; r0 < T; r0 += QB) {
            int r1 = r0 + QB < T ? r0 + QB : T;
            transpose(qt, QB, q + (size_t)r0 * C3, C3, r1 - r0, hs);  /* qt (hs, QB) = q^T: queries along a row */
            block_scores(w, k, C3, qt, r0, r1, hs);  /* w[s][t] = q_t . k_s */
            for (int gi = 0; r0 + gi * VEC < r1; gi++) {
                Group g = group(bh, r0, r1, gi);
                softmax_group(&a, &g, w + gi * VEC, st);
                /* w = p, or dropout(p) in training: the mask is a hash of the index in
                 * the (B,NH,T,T) matrix, which is never stored */
                if (dropout > 0.0f) drop_group(&a, &g, w + gi * VEC);
            }
            /* out_t = sum_s w_s v_s */
            gemm_set_serial(o + (size_t)r0 * C, C, w, 1, QB, v, C3, r1 - r0, hs, r1);
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
        float* qt = scratch + (size_t)omp_get_thread_num() * a.per_thread;
        float* dyt = qt + (size_t)hs * QB;
        float* w = dyt + (size_t)hs * QB;  /* (T, QB): scores, then the weights w */
        float* dw = w + (size_t)T * QB;    /* (T, QB): dw, then the score gradients */
        const float* q = qkv + (size_t)b * T * C3 + h * hs;
        const float* k = q + C;
        const float* v = q + 2 * C;
        float* dq = dqkv + (size_t)b * T * C3 + h * hs;
        float* dk = dq + C;
        float* dv = dq + 2 * C;
        const float* dy = dout + (size_t)b * T * C + h * hs;
        const float* st = stats + (size_t)bh * T * 2;
        for (int r0 = 0; r0 < T; r0 += QB) {
            int r1 = r0 + QB < T ? r0 + QB : T, n = r1 - r0;
            const float* dyb = dy + (size_t)r0 * C;
            const float* qb = q + (size_t)r0 * C3;
            transpose(qt, QB, qb, C3, n, hs);    /* qt, dyt (hs, QB) = q^T, dy^T of the block */
            transpose(dyt, QB, dyb, C, n, hs);
            block_scores(w, k, C3, qt, r0, r1, hs);    /* q_t . k_s */
            block_scores(dw, v, C3, dyt, r0, r1, hs);  /* undo out = w v: dw_s = dy_t . v_s */
            for (int gi = 0; r0 + gi * VEC < r1; gi++) {
                Group g = group(bh, r0, r1, gi);
                /* through the mask m_s of dropout (w_s = m_s p_s / (1-p)): dp_s = m_s dw_s / (1-p) */
                if (dropout > 0.0f) drop_group(&a, &g, dw + gi * VEC);
                softmax_group_backward(&a, &g, w + gi * VEC, dw + gi * VEC, st);
                if (dropout > 0.0f) drop_group(&a, &g, w + gi * VEC);
            }
            /* This task is the only writer of its head's dq, dk, dv. The block's
             * queries t in [r0, r1) reach keys s < r1: dk_s and dv_s of earlier
             * blocks' keys s < r0 add to what those blocks left; the block's own
             * keys start from these terms; each dq_t is all in this block. */
            gemm_accumulate_serial(dv, C3, w, QB, 1, dyb, C, r0, hs, n);  /* dv_s += w_s dy_t */
            gemm_set_serial(dv + (size_t)r0 * C3, C3, w + (size_t)r0 * QB, QB, 1, dyb, C, n, hs, n);
            gemm_accumulate_serial(dk, C3, dw, QB, 1, qb, C3, r0, hs, n);  /* dk_s += ds q_t */
            gemm_set_serial(dk + (size_t)r0 * C3, C3, dw + (size_t)r0 * QB, QB, 1, qb, C3, n, hs, n);
            gemm_set_serial(dq + (size_t)r0 * C3, C3, dw, 1, QB, k, C3, n, hs, r1);  /* dq_t = sum ds k_s */
        }
    }
}
