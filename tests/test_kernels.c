/* test_kernels.c: every layer's backward against finite differences of its forward,
 * the tiled matmul against the naive one, and bit-identical results for any
 * number of threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <omp.h>

#include "kernels/dropout.h"
#include "kernels/kernels.h"
#include "test_util.h"
#include "kernels/vmath.h"

#define FD_STEP 1e-2   /* central-difference step */
#define FD_ATOL 3e-4   /* see worst_ratio: float32 forwards, O(1) tensors */
#define FD_RTOL 2e-3

/* A scalar objective of the kernel's inputs, recomputed by the forward. */
typedef double (*Objective)(void* ctx);

/* Compare analytic[i] with (f(x+h e_i) - f(x-h e_i)) / 2h for every i < n. */
static void check_gradient(const char* name, float* x, const float* analytic, size_t n, Objective f, void* ctx) {
    double* num = xmalloc(n * sizeof(double), "numeric");
    double* ana = xmalloc(n * sizeof(double), "analytic");
    double max_abs = 0.0;
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        x[i] = saved + (float)FD_STEP;
        double up = f(ctx);
        x[i] = saved - (float)FD_STEP;
        double down = f(ctx);
        x[i] = saved;
        num[i] = (up - down) / (2 * FD_STEP);
        ana[i] = analytic[i];
        if (fabs(ana[i]) > max_abs) max_abs = fabs(ana[i]);
    }
    double worst = worst_ratio(ana, num, n, FD_ATOL, FD_RTOL);
    printf("  %-28s %5zu entries, max|grad| %.3g, worst error/tolerance %.3f\n", name, n, max_abs, worst);
    assert_true(max_abs > 0.0);   /* a zero gradient would pass vacuously */
    assert_true(worst <= 1.0);
    free(num);
    free(ana);
}

/* ---- matmul ---------------------------------------------------------------- */

static void test_tiled_gemm_matches_naive_on_every_shape(void** state) {
    Rng rng;
    rng_seed(&rng, 1, 0);
    /* edges of the 8 x 32 register tile, and K past one KC = 384 block of the reduction */
    int shapes[][3] = {{1, 1, 1}, {4, 32, 8}, {5, 33, 7}, {13, 65, 31}, {64, 96, 128}, {3, 130, 2}, {17, 70, 400}, {9, 15, 800}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int transposed = 0; transposed < 2; transposed++) {
            float* a = random_tensor(&rng, (size_t)M * K, 1.0f);
            float* b = random_tensor(&rng, (size_t)K * N, 1.0f);
            float* c = random_tensor(&rng, (size_t)M * N, 1.0f);
            float* ref = copy_tensor(c, (size_t)M * N);
            /* A as (M,K) row-major, or read transposed from a (K,M) array */
            ptrdiff_t ar = transposed ? 1 : K, ac = transposed ? M : 1;
            gemm_accumulate(c, N, a, ar, ac, b, N, M, N, K);
            gemm_accumulate_naive(ref, N, a, ar, ac, b, N, M, N, K);
            for (int i = 0; i < M * N; i++) assert_true(fabsf(c[i] - ref[i]) <= 1e-5f * (1.0f + fabsf(ref[i])) * K);
            free(a); free(b); free(c); free(ref);
        }
    }
}

/* c = A b (attention's first write of a block) must be the bits of zeroing c and
 * then c += A b, and it must not read c: c starts as NaN. */
static void test_gemm_set_equals_zeroing_then_accumulating(void** state) {
    Rng rng;
    rng_seed(&rng, 2, 0);
    int shapes[][3] = {{1, 1, 1}, {8, 32, 64}, {13, 65, 31}, {17, 70, 400}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float* a = random_tensor(&rng, (size_t)M * K, 1.0f);
        float* b = random_tensor(&rng, (size_t)K * N, 1.0f);
        float* set = xmalloc(sizeof(float) * M * N, "test");
        float* acc = xcalloc((size_t)M * N, sizeof(float), "test");
        for (int i = 0; i < M * N; i++) set[i] = NAN;
        gemm_set_serial(set, N, a, K, 1, b, N, M, N, K);
        gemm_accumulate_serial(acc, N, a, K, 1, b, N, M, N, K);
        assert_memory_equal(set, acc, sizeof(float) * M * N);
        free(a); free(b); free(set); free(acc);
    }
}

typedef struct { float *out, *inp, *weight, *bias, *scratch, *w; int BT, C, OC; } MatmulCtx;
static double matmul_objective(void* p) {
    MatmulCtx* c = p;
    matmul_forward(c->out, c->inp, c->weight, c->bias, c->scratch, c->BT, c->C, c->OC);
    return weighted_sum(c->out, c->w, (size_t)c->BT * c->OC);
}

/* transpose moves every element to its place, and nothing else: whole 16 x 16
 * blocks, ragged edges on either side, and strides wider than the rows. */
static void test_transpose_moves_every_element(void** state) {
    int shapes[][2] = {{1, 1}, {16, 16}, {17, 15}, {40, 33}, {64, 32}, {5, 48}};  /* rows, cols */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int rows = shapes[s][0], cols = shapes[s][1], lds = cols + 3, ldd = rows + 5;
        float* src = xmalloc(sizeof(float) * rows * lds, "src");
        float* dst = xmalloc(sizeof(float) * cols * ldd, "dst");
        for (int i = 0; i < rows * lds; i++) src[i] = (float)i;
        for (int i = 0; i < cols * ldd; i++) dst[i] = -1.0f;
        transpose(dst, ldd, src, lds, rows, cols);
        for (int c = 0; c < cols; c++)
            for (int r = 0; r < ldd; r++)  /* past `rows`: the padding of dst, untouched */
                assert_true(dst[c * ldd + r] == (r < rows ? src[r * lds + c] : -1.0f));
        free(src); free(dst);
    }
}

/* The forward (bias + inp W^T through packed panels) against a double-precision
 * triple loop, on shapes with ragged tiles, K past one KC block and M past one
 * MC row block. */
static void test_matmul_forward_matches_naive(void** state) {
    Rng rng;
    rng_seed(&rng, 3, 0);
    int shapes[][3] = {{5, 7, 3}, {133, 400, 70}, {16, 64, 65}};  /* BT, C, OC */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int BT = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float* inp = random_tensor(&rng, (size_t)BT * C, 1.0f);
        float* w = random_tensor(&rng, (size_t)OC * C, 1.0f);
        float* bias = random_tensor(&rng, OC, 1.0f);
        float* out = xmalloc(sizeof(float) * BT * OC, "out");
        float* scratch = xmalloc(sizeof(float) * matmul_scratch_floats(C, OC), "scratch");
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            matmul_forward(out, inp, w, with_bias ? bias : NULL, scratch, BT, C, OC);
            for (int r = 0; r < BT; r++)
                for (int o = 0; o < OC; o++) {
                    double ref = with_bias ? bias[o] : 0.0;
                    for (int i = 0; i < C; i++) ref += (double)inp[r * C + i] * w[o * C + i];
                    assert_true(fabs(out[r * OC + o] - ref) <= 1e-5 * (1.0 + fabs(ref)) * sqrt((double)C));
                }
        }
        free(inp); free(w); free(bias); free(out); free(scratch);
    }
}

static void test_matmul_backward_matches_finite_differences(void** state) {
    Rng rng;
    rng_seed(&rng, 2, 0);
    int BT = 6, C = 9, OC = 35;  /* edge tiles in both directions */
    MatmulCtx c = {.BT = BT, .C = C, .OC = OC};
    c.inp = random_tensor(&rng, BT * C, 1.0f);
    c.weight = random_tensor(&rng, OC * C, 1.0f);
    c.bias = random_tensor(&rng, OC, 1.0f);
    c.w = random_tensor(&rng, BT * OC, 1.0f);
    c.out = xmalloc(sizeof(float) * BT * OC, "out");
    c.scratch = xmalloc(sizeof(float) * matmul_scratch_floats(C, OC), "scratch");
    float* dinp = xcalloc(BT * C, sizeof(float), "dinp");
    float* dweight = xcalloc(OC * C, sizeof(float), "dweight");
    float* dbias = xcalloc(OC, sizeof(float), "dbias");
    float* bscratch = xmalloc(sizeof(float) * matmul_backward_scratch_floats(C, OC), "scratch");
    matmul_backward(dinp, dweight, dbias, c.w, c.inp, c.weight, bscratch, BT, C, OC, GRADS_ADD);
    check_gradient("matmul dinp", c.inp, dinp, BT * C, matmul_objective, &c);
    check_gradient("matmul dweight", c.weight, dweight, OC * C, matmul_objective, &c);
    check_gradient("matmul dbias", c.bias, dbias, OC, matmul_objective, &c);
    /* GRADS_ADD accumulates: a second call doubles every gradient */
    float* dw1 = copy_tensor(dweight, OC * C);
    float* db1 = copy_tensor(dbias, OC);
    matmul_backward(dinp, dweight, dbias, c.w, c.inp, c.weight, bscratch, BT, C, OC, GRADS_ADD);
    for (int i = 0; i < OC * C; i++) assert_true(fabsf(dweight[i] - 2 * dw1[i]) <= 1e-5f * (1 + fabsf(dw1[i])));
    for (int i = 0; i < OC; i++) assert_true(fabsf(dbias[i] - 2 * db1[i]) <= 1e-5f * (1 + fabsf(db1[i])));
    /* GRADS_SET replaces them: the first call's bits again, whatever they held */
    for (int i = 0; i < OC * C; i++) dweight[i] = NAN;
    for (int i = 0; i < OC; i++) dbias[i] = NAN;
    matmul_backward(dinp, dweight, dbias, c.w, c.inp, c.weight, bscratch, BT, C, OC, GRADS_SET);
    assert_memory_equal(dweight, dw1, sizeof(float) * OC * C);
    assert_memory_equal(dbias, db1, sizeof(float) * OC);
    free(c.inp); free(c.weight); free(c.bias); free(c.w); free(c.out); free(c.scratch);
    free(dinp); free(dweight); free(dbias); free(dw1); free(db1); free(bscratch);
}

/* Both backward products against the triple loop. dinp goes through W packed
 * in panels and dweight walks its tiles in column blocks (matmul.c, tile_origin):
 * the shapes give several panels and a ragged last one, OC past one KC block
 * (dinp's reduction), two whole column blocks and a ragged third, ragged row
 * tiles and BT past one KC block (dweight's reduction). dinp is overwritten
 * (NaN before: never read); dweight adds to what it held (GRADS_ADD), or
 * replaces it (GRADS_SET, NaN before). */
static void test_matmul_backward_matches_naive(void** state) {
    Rng rng;
    rng_seed(&rng, 3, 0);
    int shapes[][3] = {{13, 70, 400}, {400, 200, 37}};  /* BT, C, OC */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int BT = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float* dout = random_tensor(&rng, (size_t)BT * OC, 1.0f);
        float* inp = random_tensor(&rng, (size_t)BT * C, 1.0f);
        float* w = random_tensor(&rng, (size_t)OC * C, 1.0f);
        float* dinp = xmalloc(sizeof(float) * BT * C, "dinp");
        float* dweight = random_tensor(&rng, (size_t)OC * C, 1.0f);
        float* ref_dinp = xcalloc((size_t)BT * C, sizeof(float), "ref");
        float* ref_dweight = copy_tensor(dweight, (size_t)OC * C);
        float* scratch = xmalloc(sizeof(float) * matmul_backward_scratch_floats(C, OC), "scratch");
        for (int i = 0; i < BT * C; i++) dinp[i] = NAN;
        matmul_backward(dinp, dweight, NULL, dout, inp, w, scratch, BT, C, OC, GRADS_ADD);
        gemm_accumulate_naive(ref_dinp, C, dout, OC, 1, w, C, BT, C, OC);
        gemm_accumulate_naive(ref_dweight, C, dout, 1, OC, inp, C, OC, C, BT);
        for (int i = 0; i < BT * C; i++)
            assert_true(fabsf(dinp[i] - ref_dinp[i]) <= 1e-5f * (1.0f + fabsf(ref_dinp[i])) * OC);
        for (int i = 0; i < OC * C; i++)
            assert_true(fabsf(dweight[i] - ref_dweight[i]) <= 1e-5f * (1.0f + fabsf(ref_dweight[i])) * BT);
        for (int i = 0; i < OC * C; i++) { dweight[i] = NAN; ref_dweight[i] = 0.0f; }
        matmul_backward(dinp, dweight, NULL, dout, inp, w, scratch, BT, C, OC, GRADS_SET);
        gemm_accumulate_naive(ref_dweight, C, dout, 1, OC, inp, C, OC, C, BT);
        for (int i = 0; i < OC * C; i++)
            assert_true(fabsf(dweight[i] - ref_dweight[i]) <= 1e-5f * (1.0f + fabsf(ref_dweight[i])) * BT);
        free(dout); free(inp); free(w); free(dinp); free(dweight); free(ref_dinp); free(ref_dweight); free(scratch);
    }
}

/* ---- layernorm ---------------------------------------------------------------- */

typedef struct { float *out, *mean, *rstd, *inp, *weight, *bias, *w; int N, C; } LayernormCtx;
static double layernorm_objective(void* p) {
    LayernormCtx* c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->weight, c->bias, c->N, c->C);
    return weighted_sum(c->out, c->w, (size_t)c->N * c->C);
}

static void test_layernorm_backward_matches_finite_differences(void** state) {
    Rng rng;
    rng_seed(&rng, 3, 0);
    int N = 5, C = 19;
    LayernormCtx c = {.N = N, .C = C};
    c.inp = random_tensor(&rng, N * C, 1.0f);
    c.weight = random_tensor(&rng, C, 1.0f);
    c.bias = random_tensor(&rng, C, 1.0f);
    c.w = random_tensor(&rng, N * C, 1.0f);
    c.out = xmalloc(sizeof(float) * N * C, "out");
    c.mean = xmalloc(sizeof(float) * N, "mean");
    c.rstd = xmalloc(sizeof(float) * N, "rstd");
    layernorm_objective(&c);
    float* dinp = xcalloc(N * C, sizeof(float), "dinp");
    float* dweight = xcalloc(C, sizeof(float), "dweight");
    float* dbias = xcalloc(C, sizeof(float), "dbias");
    layernorm_backward(dinp, dweight, dbias, c.w, c.inp, c.weight, c.mean, c.rstd, N, C);
    check_gradient("layernorm dinp", c.inp, dinp, N * C, layernorm_objective, &c);
    check_gradient("layernorm dweight", c.weight, dweight, C, layernorm_objective, &c);
    check_gradient("layernorm dbias", c.bias, dbias, C, layernorm_objective, &c);
    free(c.inp); free(c.weight); free(c.bias); free(c.w); free(c.out); free(c.mean); free(c.rstd);
    free(dinp); free(dweight); free(dbias);
}

/* The forward normalises whole blocks of 16 rows together (AVX-512) and the
 * rest one by one: a row must come out the same, bit for bit, either way, with
 * and without the residual sum and the bias. 37 rows: two blocks and 5 more. */
static void test_layernorm_rows_are_the_same_in_a_block_or_alone(void** state) {
    Rng rng;
    rng_seed(&rng, 8, 0);
    int N = 37, C = 48;
    float* a = random_tensor(&rng, N * C, 2.0f);
    float* b = random_tensor(&rng, N * C, 1.0f);
    float* weight = random_tensor(&rng, C, 1.0f);
    float* bias = random_tensor(&rng, C, 1.0f);
    float *out = xmalloc(sizeof(float) * N * C, "out"), *res = xmalloc(sizeof(float) * N * C, "res");
    float mean[37], rstd[37], one_out[48], one_res[48], one_mean, one_rstd;
    for (int variant = 0; variant < 4; variant++) {
        int residual = variant & 1;
        const float* bs = variant & 2 ? NULL : bias;
        if (residual) residual_layernorm_forward(res, out, mean, rstd, a, b, weight, bs, N, C);
        else layernorm_forward(out, mean, rstd, a, weight, bs, N, C);
        for (int r = 0; r < N; r++) {
            if (residual) residual_layernorm_forward(one_res, one_out, &one_mean, &one_rstd, a + r * C, b + r * C,
                                                     weight, bs, 1, C);
            else layernorm_forward(one_out, &one_mean, &one_rstd, a + r * C, weight, bs, 1, C);
            assert_memory_equal(one_out, out + r * C, sizeof(float) * C);
            if (residual) assert_memory_equal(one_res, res + r * C, sizeof(float) * C);
            assert_true(one_mean == mean[r] && one_rstd == rstd[r]);
        }
    }
    free(a); free(b); free(weight); free(bias); free(out); free(res);
}

/* ---- attention ---------------------------------------------------------------- */

/* attention's per-thread blocks, for as many threads as OpenMP may use */
static float* attention_scratch(int T, int C, int NH) {
    return xmalloc(sizeof(float) * omp_get_max_threads() * attention_scratch_floats(T, C, NH), "attention scratch");
}

typedef struct { float *out, *stats, *scratch, *qkv, *w; int B, T, C, NH; float dropout; uint64_t key; } AttentionCtx;
static double attention_objective(void* p) {
    AttentionCtx* c = p;
    attention_forward(c->out, c->stats, c->scratch, c->qkv, c->B, c->T, c->C, c->NH, c->dropout, c->key);
    return weighted_sum(c->out, c->w, (size_t)c->B * c->T * c->C);
}

/* With dropout the masks are fixed by the key, so the forward is a fixed function
 * of qkv and finite differences apply as without. */
static void check_attention(int T, int C, int NH, float dropout, const char* name) {
    Rng rng;
    rng_seed(&rng, 4, 0);
    int B = 2;
    AttentionCtx c = {.B = B, .T = T, .C = C, .NH = NH, .dropout = dropout, .key = 77};
    c.qkv = random_tensor(&rng, B * T * 3 * C, 1.0f);
    c.w = random_tensor(&rng, B * T * C, 1.0f);
    c.out = xmalloc(sizeof(float) * B * T * C, "out");
    c.stats = xmalloc(sizeof(float) * B * NH * T * 2, "stats");
    c.scratch = attention_scratch(T, C, NH);
    attention_objective(&c);
    float* dqkv = xcalloc(B * T * 3 * C, sizeof(float), "dqkv");
    attention_backward(dqkv, c.scratch, c.w, c.qkv, c.stats, B, T, C, NH, dropout, c.key);
    check_gradient(name, c.qkv, dqkv, B * T * 3 * C, attention_objective, &c);
    free(c.qkv); free(c.w); free(c.out); free(c.stats); free(c.scratch); free(dqkv);
}

static void test_attention_backward_matches_finite_differences(void** state) {
    check_attention(5, 8, 2, 0.0f, "attention dqkv");
    check_attention(5, 8, 2, 0.3f, "attention dqkv, dropout 0.3");
    /* T = 45: two query blocks, a ragged last group of rows */
    check_attention(45, 8, 2, 0.0f, "attention dqkv, T 45");
    check_attention(45, 8, 2, 0.3f, "attention dqkv, T 45, dropout");
    /* head size 32, T 20: k and v transposed in 16 x 16 blocks and a ragged edge */
    check_attention(20, 64, 2, 0.0f, "attention dqkv, head size 32");
}

/* Generation reads keys and values from a cache: its output for the last query
 * must equal the last row of the full forward. */
static void check_decode_against_forward(int T, int C, int NH) {
    Rng rng;
    rng_seed(&rng, 6, 0);
    float* qkv = random_tensor(&rng, T * 3 * C, 1.0f);
    float* out = xmalloc(sizeof(float) * T * C, "out");
    float* stats = xmalloc(sizeof(float) * NH * T * 2, "stats");
    float* scratch = attention_scratch(T, C, NH);
    float *kc = xmalloc(sizeof(float) * T * C, "k"), *vc = xmalloc(sizeof(float) * T * C, "v");
    float *dec = xmalloc(sizeof(float) * C, "dec"), *scores = xmalloc(sizeof(float) * T, "scores");
    attention_forward(out, stats, scratch, qkv, 1, T, C, NH, 0.0f, 0);
    for (int t = 0; t < T; t++) {
        memcpy(kc + t * C, qkv + t * 3 * C + C, sizeof(float) * C);
        memcpy(vc + t * C, qkv + t * 3 * C + 2 * C, sizeof(float) * C);
    }
    for (int t = 0; t < T; t++) {
        attention_decode(dec, scores, qkv + t * 3 * C, kc, vc, t + 1, C, NH);
        for (int i = 0; i < C; i++) assert_float_equal(dec[i], out[t * C + i], 1e-6f);
    }
    free(qkv); free(out); free(stats); free(scratch); free(kc); free(vc); free(dec); free(scores);
}

static void test_attention_decode_equals_last_row_of_forward(void** state) {
    check_decode_against_forward(45, 12, 3);  /* T past one query block of the blocked forward */
    /* head sizes 32 and 20: whole 16 x 16 blocks of the transposes (AVX-512), and
     * blocks with ragged edges in both T and the head */
    check_decode_against_forward(45, 64, 2);
    check_decode_against_forward(37, 40, 2);
}

/* attention.c built without AVX-512 (tests/attention_portable.o, Makefile): its
 * plain C softmax loops in place of the intrinsics */
size_t portable_attention_scratch_floats(int T, int C, int NH);
void portable_attention_forward(float* out, float* stats, float* scratch, const float* qkv, int B, int T, int C,
                                int NH, float dropout, uint64_t key);
void portable_attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                                 const float* stats, int B, int T, int C, int NH, float dropout, uint64_t key);

/* The two paths of attention give the same bits: out, stats and dqkv, with and
 * without dropout, T a whole number of query blocks or not, head sizes 32, 16
 * and 4. */
static void test_attention_paths_give_the_same_bits(void** state) {
    struct { int B, T, C, NH; float dropout; } cases[] = {
        {2, 64, 128, 4, 0.0f}, {2, 64, 128, 4, 0.2f}, {3, 45, 48, 3, 0.0f}, {1, 130, 96, 3, 0.1f}, {2, 5, 8, 2, 0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int B = cases[i].B, T = cases[i].T, C = cases[i].C, NH = cases[i].NH;
        float p = cases[i].dropout;
        size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_stats = (size_t)B * NH * T * 2;
        Rng rng;
        rng_seed(&rng, 11, i);
        float *qkv = random_tensor(&rng, n_qkv, 3.0f), *dy = random_tensor(&rng, n_out, 1.0f);
        float* got[2][3];
        for (int path = 0; path < 2; path++) {
            size_t per_thread = path ? portable_attention_scratch_floats(T, C, NH) : attention_scratch_floats(T, C, NH);
            float* scratch = xmalloc(sizeof(float) * omp_get_max_threads() * per_thread, "scratch");
            float *out = xmalloc(sizeof(float) * n_out, "out"), *stats = xmalloc(sizeof(float) * n_stats, "stats");
            float* dqkv = xmalloc(sizeof(float) * n_qkv, "dqkv");
            if (path) {
                portable_attention_forward(out, stats, scratch, qkv, B, T, C, NH, p, 5);
                portable_attention_backward(dqkv, scratch, dy, qkv, stats, B, T, C, NH, p, 5);
            } else {
                attention_forward(out, stats, scratch, qkv, B, T, C, NH, p, 5);
                attention_backward(dqkv, scratch, dy, qkv, stats, B, T, C, NH, p, 5);
            }
            got[path][0] = out; got[path][1] = stats; got[path][2] = dqkv;
            free(scratch);
        }
        assert_memory_equal(got[0][0], got[1][0], sizeof(float) * n_out);
        assert_memory_equal(got[0][1], got[1][1], sizeof(float) * n_stats);
        assert_memory_equal(got[0][2], got[1][2], sizeof(float) * n_qkv);
        for (int path = 0; path < 2; path++) for (int k = 0; k < 3; k++) free(got[path][k]);
        free(qkv); free(dy);
    }
}

/* ---- dropout ------------------------------------------------------------------ */

typedef struct { float *x, *y, *w; size_t N; float p; uint64_t key; } DropoutCtx;
static double dropout_objective(void* p) {
    DropoutCtx* c = p;
    memcpy(c->y, c->x, c->N * sizeof(float));
    dropout_forward(c->y, c->N, c->p, c->key);
    return weighted_sum(c->y, c->w, c->N);
}

static void test_dropout_backward_matches_finite_differences(void** state) {
    Rng rng;
    rng_seed(&rng, 9, 0);
    size_t N = 200;
    DropoutCtx c = {.N = N, .p = 0.25f, .key = 12345};
    c.x = random_tensor(&rng, N, 1.0f);
    c.w = random_tensor(&rng, N, 1.0f);
    c.y = xmalloc(N * sizeof(float), "y");
    float* dx = copy_tensor(c.w, N);  /* d(sum w*y)/dy = w, then back through the mask */
    dropout_backward(dx, N, c.p, c.key);
    check_gradient("dropout dx", c.x, dx, N, dropout_objective, &c);
    free(c.x); free(c.w); free(c.y); free(dx);
}

/* Inverted dropout: about p of the elements become 0, the rest are scaled by
 * 1/(1-p), so the mean is kept; p = 0 changes nothing; another key, another mask. */
static void test_dropout_drops_p_and_keeps_the_mean(void** state) {
    size_t N = 200000;
    float p = 0.2f;
    float* x = xmalloc(N * sizeof(float), "x");
    float* y = xmalloc(N * sizeof(float), "y");
    for (size_t i = 0; i < N; i++) x[i] = 1.0f;
    memcpy(y, x, N * sizeof(float));
    dropout_forward(y, N, p, 1);
    size_t zeros = 0, differ = 0;
    double sum = 0;
    for (size_t i = 0; i < N; i++) { zeros += y[i] == 0.0f; sum += y[i]; }
    printf("  dropout p = 0.2: dropped %.4f, mean %.4f\n", (double)zeros / N, sum / N);
    assert_true(fabs((double)zeros / N - p) < 0.005);  /* 5 sigma is about 0.0045 */
    assert_true(fabs(sum / N - 1.0) < 0.01);
    for (size_t i = 0; i < N; i++) assert_true(y[i] == 0.0f || y[i] == 1.0f / (1.0f - p));
    float* z = copy_tensor(x, N);
    dropout_forward(z, N, p, 2);
    for (size_t i = 0; i < N; i++) differ += (y[i] == 0.0f) != (z[i] == 0.0f);
    assert_true(differ > N / 10);
    memcpy(z, x, N * sizeof(float));
    dropout_forward(z, N, 0.0f, 1);
    assert_memory_equal(z, x, N * sizeof(float));
    assert_true(dropout_key(1, 5, 0, DROP_ATTN) != dropout_key(1, 6, 0, DROP_ATTN));
    assert_true(dropout_key(1, 5, 0, DROP_ATTN) != dropout_key(1, 5, 1, DROP_ATTN));
    assert_true(dropout_key(1, 5, 0, DROP_ATTN) != dropout_key(1, 5, 0, DROP_MLP_RESID));
    free(x); free(y); free(z);
}

static void test_attention_never_looks_at_future_positions(void** state) {
    Rng rng;
    rng_seed(&rng, 5, 0);
    int B = 1, T = 6, C = 8, NH = 2, t_changed = 4;
    float* qkv = random_tensor(&rng, B * T * 3 * C, 1.0f);
    float* out1 = xmalloc(sizeof(float) * T * C, "out1");
    float* out2 = xmalloc(sizeof(float) * T * C, "out2");
    float* stats = xmalloc(sizeof(float) * NH * T * 2, "stats");
    float* scratch = attention_scratch(T, C, NH);
    attention_forward(out1, stats, scratch, qkv, B, T, C, NH, 0.0f, 0);
    for (int i = 0; i < 3 * C; i++) qkv[t_changed * 3 * C + i] += 1.0f;  /* change q,k,v at t = 4 */
    attention_forward(out2, stats, scratch, qkv, B, T, C, NH, 0.0f, 0);
    for (int t = 0; t < T; t++) {
        int same = memcmp(out1 + t * C, out2 + t * C, sizeof(float) * C) == 0;
        assert_int_equal(same, t < t_changed);  /* earlier positions untouched, later ones see it */
    }
    free(qkv); free(out1); free(out2); free(stats); free(scratch);
}

/* ---- gelu, cross-entropy, encoder -------------------------------------------------- */

typedef struct { float *out, *inp, *w; long N; } GeluCtx;
static double gelu_objective(void* p) {
    GeluCtx* c = p;
    gelu_forward(c->out, c->inp, c->N);
    return weighted_sum(c->out, c->w, (size_t)c->N);
}

/* exp_approx against exp in double over float's whole useful range (every 61st
 * float from -87 to 88): within 2 ulp, and clamped rather than inf or NaN outside. */
static void test_exp_approx_is_within_2_ulp(void** state) {
    double worst = 0.0;
    long n = 0;
    for (float x = -87.0f; x <= 88.0f; x = nextafterf(x, INFINITY)) {
        if (n++ % 61) continue;
        double ref = exp((double)x), rel = fabs(exp_approx(x) - ref) / ref;
        if (rel > worst) worst = rel;
    }
    printf("  exp_approx: worst relative error %.3g (%.2f ulp of 2^-23)\n", worst, worst / FLT_EPSILON);
    assert_true(worst < 2 * FLT_EPSILON);
    assert_true(exp_approx(0.0f) == 1.0f);
    assert_true(isfinite(exp_approx(1000.0f)) && exp_approx(-1000.0f) > 0.0f);
    assert_true(isnan(exp_approx(NAN)));
    /* the clamp: past either end, the value at the end (infinities included) */
    float outside[] = {-1000.0f, -87.5f, -INFINITY, 88.5f, 1000.0f, INFINITY};
    for (int i = 0; i < 6; i++)
        assert_true(exp_approx(outside[i]) == exp_approx(outside[i] < 0.0f ? EXP_MIN_ARG : EXP_MAX_ARG));
    assert_true(exp_approx(-87.0f) < exp_approx(nextafterf(-87.0f, 0.0f)));  /* the ends themselves unclamped */
    assert_true(exp_approx(nextafterf(88.0f, 0.0f)) < exp_approx(88.0f));
}

/* exp16 (the AVX-512 form, attention's softmax) against exp_approx: the same bits
 * lane by lane, on every 251st bit pattern of a float (NaNs, infinities, zeros
 * and denormals among them). */
static void test_exp16_equals_exp_approx_lane_by_lane(void** state) {
#ifdef __AVX512F__
    enum { STRIDE = 251, LANES = 16 };
    long differ = 0, n = 0;
    for (uint64_t u0 = 0; u0 < (1ull << 32); u0 += (uint64_t)STRIDE * LANES) {
        uint32_t in[LANES], vec[LANES];
        for (int c = 0; c < LANES; c++) in[c] = (uint32_t)(u0 + (uint64_t)c * STRIDE);
        __m512 x;
        memcpy(&x, in, sizeof x);
        __m512 y = exp16(x);
        memcpy(vec, &y, sizeof vec);
        for (int c = 0; c < LANES; c++, n++) {
            float xf, ys;
            memcpy(&xf, &in[c], sizeof xf);
            ys = exp_approx(xf);
            differ += memcmp(&ys, &vec[c], sizeof ys) != 0;
        }
    }
    printf("  exp16: %ld of %ld inputs differ from exp_approx\n", differ, n);
    assert_int_equal(differ, 0);
#else
    skip();  /* no AVX-512 in this build: exp16 does not exist */
#endif
}

/* gelu in float against gelu in double, and its derivative against the
 * derivative of the tanh formula (absolute for tiny derivatives). */
static void test_gelu_matches_the_tanh_formula_in_double(void** state) {
    enum { N = 2001 };
    float x[N], y[N], g[N], ones[N];
    for (int i = 0; i < N; i++) { x[i] = -10.0f + 0.01f * i; ones[i] = 1.0f; g[i] = 0.0f; }
    gelu_forward(y, x, N);
    gelu_backward(g, x, ones, N);
    double worst_y = 0.0, worst_g = 0.0;
    for (int i = 0; i < N; i++) {
        double xd = x[i], k = sqrt(2.0 / 3.14159265358979323846), u = k * (xd + 0.044715 * xd * xd * xd), th = tanh(u);
        double ref = xd / (1.0 + exp(-2.0 * u));  /* = 0.5 x (1 + tanh u), without double's own cancellation */
        double dref = 0.5 * (1.0 + th) + 0.5 * xd * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * xd * xd);
        double ey = fabs(y[i] - ref) / (fabs(ref) + 1e-30), eg = fabs(g[i] - dref) / (fabs(dref) + 1e-3);
        if (ey > worst_y && fabs(ref) > 1e-30) worst_y = ey;
        if (eg > worst_g) worst_g = eg;
    }
    printf("  gelu: worst relative error %.3g, derivative %.3g\n", worst_y, worst_g);
    assert_true(worst_y < 2e-5);  /* relative, down to gelu = 1e-30 (x near -9.5); float u costs 1e-5 there */
    assert_true(worst_g < 1e-5);
}

static void test_gelu_backward_matches_finite_differences(void** state) {
    Rng rng;
    rng_seed(&rng, 6, 0);
    long N = 64;
    GeluCtx c = {.N = N};
    c.inp = random_tensor(&rng, N, 2.0f);
    c.w = random_tensor(&rng, N, 1.0f);
    c.out = xmalloc(sizeof(float) * N, "out");
    float* dinp = xcalloc(N, sizeof(float), "dinp");
    gelu_backward(dinp, c.inp, c.w, N);
    check_gradient("gelu dinp", c.inp, dinp, N, gelu_objective, &c);
    free(c.inp); free(c.w); free(c.out); free(dinp);
}

typedef struct { float *stats, *losses, *logits; int* targets; int N, V; } CrossentropyCtx;
static double crossentropy_objective(void* p) {
    CrossentropyCtx* c = p;
    return crossentropy_forward(c->stats, c->losses, c->logits, c->targets, c->N, c->V);
}

/* V = 11: a row shorter than the sum lanes; 37: two lanes' blocks and a remainder */
static void test_crossentropy_backward_matches_finite_differences(void** state) {
    for (int V = 11; V <= 37; V += 26) {
        Rng rng;
        rng_seed(&rng, 7, 0);
        int N = 4;
        int targets[4] = {0, V - 1, 3, 3};
        CrossentropyCtx c = {.N = N, .V = V, .targets = targets};
        c.logits = random_tensor(&rng, N * V, 2.0f);
        c.stats = xmalloc(sizeof(float) * N * 2, "stats");
        c.losses = xmalloc(sizeof(float) * N, "losses");
        crossentropy_objective(&c);
        float* dlogits = xcalloc(N * V, sizeof(float), "dlogits");
        crossentropy_backward(dlogits, c.logits, c.stats, targets, N, V, N);
        check_gradient("crossentropy dlogits", c.logits, dlogits, N * V, crossentropy_objective, &c);
        free(c.logits); free(c.stats); free(c.losses); free(dlogits);
    }
}

/* The loss and the recomputed probabilities against the softmax in double, on rows
 * of every length class (shorter than the lanes, whole blocks, a remainder) with a
 * spread of logits wide enough that the max matters (e^40 would overflow no float
 * sum here, but e^(z - max) must come out right for the small ones too) */
static void test_crossentropy_matches_softmax_in_double(void** state) {
    int lengths[] = {5, 16, 65, 1030};
    for (int k = 0; k < 4; k++) {
        int N = 3, V = lengths[k];
        Rng rng;
        rng_seed(&rng, 17, (uint64_t)k);
        float* logits = random_tensor(&rng, N * V, 20.0f);
        int targets[3] = {0, V / 2, V - 1};
        float stats[6], losses[3];
        float* dlogits = xmalloc(sizeof(float) * N * V, "dlogits");
        float loss = crossentropy_forward(stats, losses, logits, targets, N, V);
        crossentropy_backward(dlogits, logits, stats, targets, N, V, N);
        double total = 0.0;
        for (int n = 0; n < N; n++) {
            const float* z = logits + (size_t)n * V;
            double m = z[0], sum = 0.0;
            for (int v = 1; v < V; v++) m = z[v] > m ? z[v] : m;
            for (int v = 0; v < V; v++) sum += exp((double)z[v] - m);
            double ref_loss = log(sum) - ((double)z[targets[n]] - m);
            assert_true(fabs(losses[n] - ref_loss) <= 1e-5 * fmax(1.0, ref_loss));
            total += ref_loss;
            for (int v = 0; v < V; v++) {
                double p = exp((double)z[v] - m) / sum;
                double ref = (p - (v == targets[n])) / N;
                assert_true(fabs(dlogits[(size_t)n * V + v] - ref) <= 1e-6 / N + 3e-6 * fabs(ref));
            }
        }
        assert_true(fabs(loss - total / N) <= 1e-5 * fmax(1.0, total / N));
        free(logits); free(dlogits);
    }
}

static void test_crossentropy_of_uniform_logits_is_log_vocab(void** state) {
    int N = 3, V = 65, targets[3] = {0, 7, 64};
    float* logits = xcalloc(N * V, sizeof(float), "logits");
    float stats[6];
    float losses[3];
    float loss = crossentropy_forward(stats, losses, logits, targets, N, V);
    assert_true(fabsf(loss - logf((float)V)) < 1e-6f);
    free(logits);
}

typedef struct { float *out, *wte, *pe, *w; int* ids; float scale; int B, T, C; } EncoderCtx;
static double encoder_objective(void* p) {
    EncoderCtx* c = p;
    encoder_forward(c->out, c->ids, c->wte, c->pe, c->scale, c->B, c->T, c->C);
    return weighted_sum(c->out, c->w, (size_t)c->B * c->T * c->C);
}

static void test_encoder_backward_scatters_into_rows_of_E(void** state) {
    Rng rng;
    rng_seed(&rng, 8, 0);
    int B = 2, T = 4, C = 6, V = 5;
    int ids[8] = {1, 3, 1, 0, 3, 3, 2, 1};  /* repeats: the scatter must add, not overwrite */
    EncoderCtx c = {.B = B, .T = T, .C = C, .ids = ids, .scale = 1.7f};
    c.wte = random_tensor(&rng, V * C, 1.0f);
    c.pe = random_tensor(&rng, T * C, 1.0f);
    c.w = random_tensor(&rng, B * T * C, 1.0f);
    c.out = xmalloc(sizeof(float) * B * T * C, "out");
    float* dwte = xcalloc(V * C, sizeof(float), "dwte");
    float* dwpe = xcalloc(T * C, sizeof(float), "dwpe");
    encoder_backward(dwte, dwpe, c.w, ids, c.scale, B, T, C);
    check_gradient("encoder dE", c.wte, dwte, V * C, encoder_objective, &c);
    check_gradient("encoder dPE", c.pe, dwpe, T * C, encoder_objective, &c);
    for (int i = 0; i < C; i++) assert_true(dwte[4 * C + i] == 0.0f);  /* token 4 absent: row untouched */
    free(c.wte); free(c.pe); free(c.w); free(c.out); free(dwte); free(dwpe);
}

static void test_sinusoidal_table_is_sin_and_cos_of_position(void** state) {
    int T = 10, C = 8;
    float pe[80];
    sinusoidal_table(pe, T, C);
    for (int t = 0; t < T; t++) {
        assert_true(fabsf(pe[t * C + 0] - sinf((float)t)) < 1e-6f);             /* i = 0: frequency 1 */
        assert_true(fabsf(pe[t * C + 1] - cosf((float)t)) < 1e-6f);
        double f = pow(10000.0, -2.0 * 3 / C);                                   /* i = 3 */
        assert_true(fabs(pe[t * C + 7] - cos(t * f)) < 1e-6);
    }
}

/* ---- determinism ---------------------------------------------------------------- */

/* Run every kernel forward and backward on awkward sizes with the given thread
 * count; return all outputs concatenated. */
static float* run_all_kernels(int threads, size_t* n_out) {
    omp_set_num_threads(threads);
    Rng rng;
    rng_seed(&rng, 9, 0);
    int B = 3, T = 7, C = 24, NH = 3, OC = 37, V = 29, BT = B * T;
    int ids[21], targets[21];
    for (int i = 0; i < BT; i++) { ids[i] = (int)rng_below(&rng, V); targets[i] = (int)rng_below(&rng, V); }
    float* x = random_tensor(&rng, BT * C, 1.0f);
    float* w = random_tensor(&rng, OC * C, 1.0f);
    float* bias = random_tensor(&rng, OC, 1.0f);
    float* qkv = random_tensor(&rng, BT * 3 * C, 1.0f);
    float* wte = random_tensor(&rng, V * C, 1.0f);
    float* lnw = random_tensor(&rng, C, 1.0f);
    float* dout = random_tensor(&rng, BT * OC, 1.0f);
    size_t total = BT * OC + BT * C + OC * C + OC       /* matmul */
                 + BT * C + BT * 3 * C                  /* attention */
                 + BT * C + 2 * C + BT * C              /* layernorm */
                 + BT * 2 + BT * V                      /* crossentropy */
                 + V * C + T * C + BT * C;              /* encoder */
    float* all = xcalloc(total, sizeof(float), "outputs");
    float* o = all;
    float* scratch = xmalloc(sizeof(float) * matmul_scratch_floats(C, OC), "scratch");
    float* bscratch = xmalloc(sizeof(float) * matmul_backward_scratch_floats(C, OC), "scratch");
    float* stats = xmalloc(sizeof(float) * B * NH * T * 2, "stats");
    float* att_scratch = attention_scratch(T, C, NH);
    float mean[21], rstd[21];

    matmul_forward(o, x, w, bias, scratch, BT, C, OC); o += BT * OC;
    matmul_backward(o, o + BT * C, o + BT * C + OC * C, dout, x, w, bscratch, BT, C, OC, GRADS_SET);
    o += BT * C + OC * C + OC;
    attention_forward(o, stats, att_scratch, qkv, B, T, C, NH, 0.1f, 3);
    attention_backward(o + BT * C, att_scratch, x, qkv, stats, B, T, C, NH, 0.1f, 3); o += BT * C + BT * 3 * C;
    layernorm_forward(o, mean, rstd, x, lnw, bias, BT, C);
    layernorm_backward(o + BT * C + 2 * C, o + BT * C, o + BT * C + C, dout, x, lnw, mean, rstd, BT, C);
    o += BT * C + 2 * C + BT * C;
    float losses[21];
    crossentropy_forward(o, losses, dout, targets, BT, V);
    crossentropy_backward(o + BT * 2, dout, o, targets, BT, V, BT); o += BT * 2 + BT * V;
    encoder_backward(o, o + V * C, x, ids, 1.5f, B, T, C); o += V * C + T * C;
    encoder_forward(o, ids, wte, wte, 1.5f, B, T, C);
    dropout_forward(o, BT * C, 0.3f, 4); o += BT * C;
    assert_true((size_t)(o - all) == total);
    free(x); free(w); free(bias); free(qkv); free(wte); free(lnw); free(dout); free(scratch); free(bscratch); free(stats); free(att_scratch);
    *n_out = total;
    return all;
}

static void test_kernels_are_bit_identical_for_any_thread_count(void** state) {
    size_t n1, n;
    float* one = run_all_kernels(1, &n1);
    for (int threads = 2; threads <= 5; threads++) {
        float* many = run_all_kernels(threads, &n);
        assert_int_equal(n, n1);
        assert_memory_equal(one, many, n * sizeof(float));
        free(many);
    }
    free(one);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiled_gemm_matches_naive_on_every_shape),
        cmocka_unit_test(test_transpose_moves_every_element),
        cmocka_unit_test(test_matmul_forward_matches_naive),
        cmocka_unit_test(test_gemm_set_equals_zeroing_then_accumulating),
        cmocka_unit_test(test_matmul_backward_matches_finite_differences),
        cmocka_unit_test(test_matmul_backward_matches_naive),
        cmocka_unit_test(test_layernorm_backward_matches_finite_differences),
        cmocka_unit_test(test_layernorm_rows_are_the_same_in_a_block_or_alone),
        cmocka_unit_test(test_attention_backward_matches_finite_differences),
        cmocka_unit_test(test_attention_never_looks_at_future_positions),
        cmocka_unit_test(test_attention_decode_equals_last_row_of_forward),
        cmocka_unit_test(test_attention_paths_give_the_same_bits),
        cmocka_unit_test(test_dropout_backward_matches_finite_differences),
        cmocka_unit_test(test_dropout_drops_p_and_keeps_the_mean),
        cmocka_unit_test(test_exp_approx_is_within_2_ulp),
        cmocka_unit_test(test_exp16_equals_exp_approx_lane_by_lane),
        cmocka_unit_test(test_gelu_matches_the_tanh_formula_in_double),
        cmocka_unit_test(test_gelu_backward_matches_finite_differences),
        cmocka_unit_test(test_crossentropy_backward_matches_finite_differences),
        cmocka_unit_test(test_crossentropy_matches_softmax_in_double),
        cmocka_unit_test(test_crossentropy_of_uniform_logits_is_log_vocab),
        cmocka_unit_test(test_encoder_backward_scatters_into_rows_of_E),
        cmocka_unit_test(test_sinusoidal_table_is_sin_and_cos_of_position),
        cmocka_unit_test(test_kernels_are_bit_identical_for_any_thread_count),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
