/* test_kernels.c: the two kernel layers (kernels.h).
 *
 * The reference layer (kernels/reference/) is linked a second time under ref_*
 * names (tests/reference_kernels.h), beside the build's kernels: the fast layer
 * by default, the reference itself with KERNELS=reference. The tests prove:
 *   - every backward of both layers against finite differences of its forward;
 *   - every fast kernel against its reference, on ragged shapes (sizes that are
 *     not multiples of the fast layer's vectors and tiles, T = 1, B = 1);
 *   - each layer bit-identical on any number of threads;
 *   - the fast layer's private pieces (TEST_FAST_KERNELS: the tiled gemm,
 *     transpose, vexp), and its GELU's accuracy.
 * A test run on both layers is named with the layer in brackets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <omp.h>

#include "kernels/kernels.h"
#include "kernels/fast/vmath.h"
#include "test_util.h"
#include "reference_kernels.h"
#ifdef TEST_FAST_KERNELS
#include "kernels/fast/gemm.h"
#endif

#define FD_STEP 1e-2   /* central-difference step */
#define FD_ATOL 3e-4   /* see worst_ratio: float32 forwards, O(1) tensors */
#define FD_RTOL 2e-3

/* ---- the two layers ------------------------------------------------------------ */

/* One layer's kernels, so that a test can run on either. */
typedef struct {
    const char* name;
    size_t (*matmul_scratch_floats)(int C, int OC);
    size_t (*matmul_backward_scratch_floats)(int C, int OC);
    void (*matmul_forward)(float* out, const float* inp, const float* weight, const float* bias, float* scratch,
                           int BT, int C, int OC);
    void (*matvec_forward)(float* out, const float* inp, const float* weight, const float* bias, int C, int OC);
    void (*matmul_backward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, float* scratch, int BT, int C, int OC, GradMode mode);
    size_t (*attention_scratch_floats)(int T, int C, int NH);
    void (*attention_forward)(float* out, float* stats, float* scratch, const float* qkv, int B, int T, int C,
                              int NH, float dropout, uint64_t key);
    void (*attention_backward)(float* dqkv, float* scratch, const float* dout, const float* qkv,
                               const float* stats, int B, int T, int C, int NH, float dropout, uint64_t key);
    void (*attention_decode)(float* out, float* scores, const float* q, const float* k_cache,
                             const float* v_cache, int n_ctx, int C, int NH);
    void (*layernorm_forward)(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                              const float* bias, int N, int C);
    void (*residual_layernorm_forward)(float* res, float* out, float* mean, float* rstd, const float* a,
                                       const float* b, const float* weight, const float* bias, int N, int C);
    void (*layernorm_backward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* weight, const float* mean, const float* rstd, int N, int C);
    void (*sinusoidal_table)(float* pe, int T, int C);
    void (*encoder_forward)(float* out, const int* inp, const float* wte, const float* pe, float embed_scale,
                            float drop_p, uint64_t drop_key, int B, int T, int C);
    void (*encoder_backward)(float* dwte, float* dwpe, const float* dout, const int* inp, float embed_scale,
                             float drop_p, uint64_t drop_key, int B, int T, int C);
    void (*gelu_forward)(float* out, const float* inp, long N);
    void (*gelu_backward)(float* dinp, const float* inp, const float* dout, long N);
    float (*crossentropy_forward)(float* stats, float* losses, const float* logits, const int* targets, int N,
                                  int V);
    void (*crossentropy_backward)(float* dlogits, const float* logits, const float* stats, const int* targets,
                                  int N, int V, int batch_rows);
    uint64_t (*dropout_key)(uint64_t seed, long step, int layer, DropoutSite site);
    void (*dropout_forward)(float* x, size_t N, float p, uint64_t key);
    void (*dropout_backward)(float* dx, size_t N, float p, uint64_t key);
} Layer;

#ifdef TEST_FAST_KERNELS
#define BUILD_LAYER_NAME "fast"
#else
#define BUILD_LAYER_NAME "reference"
#endif

/* A layer's table from its names: prefix p (empty, or ref_) before each. */
#define LAYER(p, layer_name) {                                                                              \
    .name = layer_name, .matmul_scratch_floats = p##matmul_scratch_floats,                                  \
    .matmul_backward_scratch_floats = p##matmul_backward_scratch_floats, .matmul_forward = p##matmul_forward, \
    .matvec_forward = p##matvec_forward, .matmul_backward = p##matmul_backward,                            \
    .attention_scratch_floats = p##attention_scratch_floats, .attention_forward = p##attention_forward,     \
    .attention_backward = p##attention_backward, .attention_decode = p##attention_decode,                  \
    .layernorm_forward = p##layernorm_forward, .residual_layernorm_forward = p##residual_layernorm_forward, \
    .layernorm_backward = p##layernorm_backward, .sinusoidal_table = p##sinusoidal_table,                  \
    .encoder_forward = p##encoder_forward, .encoder_backward = p##encoder_backward,                        \
    .gelu_forward = p##gelu_forward, .gelu_backward = p##gelu_backward,                                    \
    .crossentropy_forward = p##crossentropy_forward, .crossentropy_backward = p##crossentropy_backward,    \
    .dropout_key = p##dropout_key, .dropout_forward = p##dropout_forward,                                  \
    .dropout_backward = p##dropout_backward,                                                               \
}

static const Layer BUILD = LAYER(, BUILD_LAYER_NAME);  /* the build's kernels: what the model calls */
static const Layer REFERENCE = LAYER(ref_, "reference");  /* the reference layer, under its ref_* names */

/* cmocka entries for a test run on one layer (its state) */
#define ON_REFERENCE(f) { #f " [reference]", f, NULL, NULL, (void*)&REFERENCE }
#define ON_BUILD(f) { #f " [" BUILD_LAYER_NAME "]", f, NULL, NULL, (void*)&BUILD }

/* at least one float, so that a layer whose scratch_floats is 0 still gets a pointer */
static float* scratch_of(size_t floats) { return xmalloc(sizeof(float) * (floats ? floats : 1), "scratch"); }

/* attention's per-thread scratch, for as many threads as OpenMP may use */
static float* attention_scratch(const Layer* L, int T, int C, int NH) {
    return scratch_of((size_t)omp_get_max_threads() * L->attention_scratch_floats(T, C, NH));
}

/* ---- checks ---------------------------------------------------------------------- */

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
    printf("  %-34s %5zu entries, max|grad| %.3g, worst error/tolerance %.3f\n", name, n, max_abs, worst);
    assert_true(max_abs > 0.0);   /* a zero gradient would pass vacuously */
    assert_true(worst <= 1.0);
    free(num);
    free(ana);
}

/* got (n) against want (n), the reference's: every element within
 * rtol (|want| + rms(want)). The tensor's rms stands for the size of the terms
 * an element sums: two orders of one sum differ by the rounding of those terms,
 * also where they cancel to near 0. Prints the worst error / tolerance. */
static void assert_close(const char* what, const float* got, const float* want, size_t n, double rtol) {
    double squares = 0.0;
    for (size_t i = 0; i < n; i++) squares += (double)want[i] * want[i];
    double rms = n ? sqrt(squares / n) : 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), tol = rtol * (fabs(want[i]) + rms);
        double r = err == 0.0 ? 0.0 : tol > 0.0 ? err / tol : INFINITY;  /* NaN: err is NaN, r stays NaN */
        if (!(r <= worst)) worst = r;
    }
    printf("  %-44s %7zu values, worst error / tolerance %.3f\n", what, n, worst);
    assert_true(worst <= 1.0);
}

/* n floats of NaN, for outputs a kernel must overwrite without reading */
static float* nan_tensor(size_t n) {
    float* x = xmalloc(sizeof(float) * (n ? n : 1), "nan tensor");
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

/* The bar of a fast kernel against its reference (assert_close's rtol).
 * Products (matmul, layernorm): the same sums in the same precision, some in
 * another order: float rounding, 1e-5 with room.
 * Kernels through e^x (attention, gelu, cross-entropy): the fast layer's
 * exp_approx is within 2 ulp of e^x where libm's expf is within 1, and the
 * fast GELU takes x / (1 + e^{-2u}) for 0.5 x (1 + tanh u): a few ulp more on
 * each value, which the softmax's sums and attention's products carry on. */
#define RTOL_PRODUCTS 1e-5
#define RTOL_EXP 2e-5
/* Attention's gradient through a peaked softmax (scores of spread 9, one key
 * taking nearly all the weight): dp_s - sum_r p_r dp_r then cancels to a small
 * fraction of its terms, and the exps' ulps grow by that ratio (2.5e-5 seen). */
#define RTOL_PEAKED 1e-4

/* ---- matmul --------------------------------------------------------------------- */

typedef struct { const Layer* L; float *out, *inp, *weight, *bias, *scratch, *w; int BT, C, OC; } MatmulCtx;
static double matmul_objective(void* p) {
    MatmulCtx* c = p;
    c->L->matmul_forward(c->out, c->inp, c->weight, c->bias, c->scratch, c->BT, c->C, c->OC);
    return weighted_sum(c->out, c->w, (size_t)c->BT * c->OC);
}

/* dinp, dweight and dbias against finite differences; GRADS_ADD adds, GRADS_SET
 * overwrites (NaN before), and NULL dinp or dbias leaves dweight's bits alone. */
static void test_matmul_backward_matches_finite_differences(void** state) {
    const Layer* L = *state;
    Rng rng;
    rng_seed(&rng, 2, 0);
    int BT = 6, C = 9, OC = 35;  /* edge tiles in both directions of the fast tile */
    MatmulCtx c = {.L = L, .BT = BT, .C = C, .OC = OC};
    c.inp = random_tensor(&rng, BT * C, 1.0f);
    c.weight = random_tensor(&rng, OC * C, 1.0f);
    c.bias = random_tensor(&rng, OC, 1.0f);
    c.w = random_tensor(&rng, BT * OC, 1.0f);
    c.out = xmalloc(sizeof(float) * BT * OC, "out");
    c.scratch = scratch_of(L->matmul_scratch_floats(C, OC));
    float* dinp = nan_tensor(BT * C);  /* overwritten */
    float* dweight = xcalloc(OC * C, sizeof(float), "dweight");
    float* dbias = xcalloc(OC, sizeof(float), "dbias");
    float* bscratch = scratch_of(L->matmul_backward_scratch_floats(C, OC));
    L->matmul_backward(dinp, dweight, dbias, c.w, c.inp, c.weight, bscratch, BT, C, OC, GRADS_ADD);
    check_gradient("matmul dinp", c.inp, dinp, BT * C, matmul_objective, &c);
    check_gradient("matmul dweight", c.weight, dweight, OC * C, matmul_objective, &c);
    check_gradient("matmul dbias", c.bias, dbias, OC, matmul_objective, &c);
    /* GRADS_ADD accumulates: a second call doubles every gradient */
    float* dw1 = copy_tensor(dweight, OC * C);
    float* db1 = copy_tensor(dbias, OC);
    L->matmul_backward(dinp, dweight, dbias, c.w, c.inp, c.weight, bscratch, BT, C, OC, GRADS_ADD);
    for (int i = 0; i < OC * C; i++) assert_true(fabsf(dweight[i] - 2 * dw1[i]) <= 1e-5f * (1 + fabsf(dw1[i])));
    for (int i = 0; i < OC; i++) assert_true(fabsf(dbias[i] - 2 * db1[i]) <= 1e-5f * (1 + fabsf(db1[i])));
    /* GRADS_SET replaces them: the first call's bits again, whatever they held */
    for (int i = 0; i < OC * C; i++) dweight[i] = NAN;
    for (int i = 0; i < OC; i++) dbias[i] = NAN;
    L->matmul_backward(dinp, dweight, dbias, c.w, c.inp, c.weight, bscratch, BT, C, OC, GRADS_SET);
    assert_memory_equal(dweight, dw1, sizeof(float) * OC * C);
    assert_memory_equal(dbias, db1, sizeof(float) * OC);
    /* without dinp and dbias: the same dweight, and dbias untouched */
    for (int i = 0; i < OC * C; i++) dweight[i] = NAN;
    for (int i = 0; i < OC; i++) dbias[i] = 7.0f;
    L->matmul_backward(NULL, dweight, NULL, c.w, c.inp, c.weight, bscratch, BT, C, OC, GRADS_SET);
    assert_memory_equal(dweight, dw1, sizeof(float) * OC * C);
    for (int i = 0; i < OC; i++) assert_true(dbias[i] == 7.0f);
    free(c.inp); free(c.weight); free(c.bias); free(c.w); free(c.out); free(c.scratch);
    free(dinp); free(dweight); free(dbias); free(dw1); free(db1); free(bscratch);
}

/* The forward (bias + inp W^T) and matvec against a double-precision triple
 * loop, on shapes with ragged tiles, K past one block of the fast layer's
 * reduction and M past one of its row blocks. */
static void test_matmul_forward_matches_the_sum_in_double(void** state) {
    const Layer* L = *state;
    Rng rng;
    rng_seed(&rng, 3, 0);
    int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {133, 400, 70}, {16, 64, 65}};  /* BT, C, OC */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int BT = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float* inp = random_tensor(&rng, (size_t)BT * C, 1.0f);
        float* w = random_tensor(&rng, (size_t)OC * C, 1.0f);
        float* bias = random_tensor(&rng, OC, 1.0f);
        float* out = xmalloc(sizeof(float) * BT * OC, "out");
        float* row = xmalloc(sizeof(float) * OC, "row");
        float* scratch = scratch_of(L->matmul_scratch_floats(C, OC));
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            L->matmul_forward(out, inp, w, with_bias ? bias : NULL, scratch, BT, C, OC);
            L->matvec_forward(row, inp + (size_t)(BT - 1) * C, w, with_bias ? bias : NULL, C, OC);
            for (int r = 0; r < BT; r++)
                for (int o = 0; o < OC; o++) {
                    double ref = with_bias ? bias[o] : 0.0;
                    for (int i = 0; i < C; i++) ref += (double)inp[r * C + i] * w[o * C + i];
                    assert_true(fabs(out[r * OC + o] - ref) <= 1e-5 * (1.0 + fabs(ref)) * sqrt((double)C));
                    if (r == BT - 1) assert_true(fabs(row[o] - ref) <= 1e-5 * (1.0 + fabs(ref)) * sqrt((double)C));
                }
        }
        free(inp); free(w); free(bias); free(out); free(row); free(scratch);
    }
}

/* The build's matmul against the reference, forward, matvec and backward, on
 * shapes that leave ragged edges in every direction of the fast tile (8 x 32)
 * and its blocks (384 deep, 128 rows), down to one row, one input and one
 * output. Backward: GRADS_ADD onto random gradients, GRADS_SET onto NaN, and
 * NULL dinp and dbias. */
static void test_fast_matmul_matches_reference(void** state) {
#ifndef TEST_FAST_KERNELS
    skip();  /* a KERNELS=reference build: its kernels are the reference */
#endif
    Rng rng;
    rng_seed(&rng, 21, 0);
    int shapes[][3] = {{1, 1, 1}, {1, 7, 3}, {5, 33, 7}, {39, 48, 144}, {13, 70, 400}, {133, 400, 70},
                       {400, 200, 37}, {64, 128, 384}};  /* BT, C, OC */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int BT = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        size_t n_in = (size_t)BT * C, n_out = (size_t)BT * OC, n_w = (size_t)OC * C;
        float *inp = random_tensor(&rng, n_in, 1.0f), *w = random_tensor(&rng, n_w, 1.0f);
        float *bias = random_tensor(&rng, OC, 1.0f), *dout = random_tensor(&rng, n_out, 1.0f);
        float *dw0 = random_tensor(&rng, n_w, 1.0f), *db0 = random_tensor(&rng, OC, 1.0f);
        float *out[2], *row[2], *dinp[2], *dweight[2], *dbias[2], *dweight_set[2], *dbias_set[2];
        const Layer* layers[2] = {&BUILD, &REFERENCE};
        for (int k = 0; k < 2; k++) {
            const Layer* L = layers[k];
            float* scratch = scratch_of(L->matmul_scratch_floats(C, OC));
            float* bscratch = scratch_of(L->matmul_backward_scratch_floats(C, OC));
            out[k] = nan_tensor(n_out);
            row[k] = nan_tensor(OC);
            L->matmul_forward(out[k], inp, w, s % 2 ? NULL : bias, scratch, BT, C, OC);
            L->matvec_forward(row[k], inp + (size_t)(BT - 1) * C, w, s % 2 ? NULL : bias, C, OC);
            dinp[k] = nan_tensor(n_in);
            dweight[k] = copy_tensor(dw0, n_w);
            dbias[k] = copy_tensor(db0, OC);
            L->matmul_backward(dinp[k], dweight[k], dbias[k], dout, inp, w, bscratch, BT, C, OC, GRADS_ADD);
            dweight_set[k] = nan_tensor(n_w);
            dbias_set[k] = nan_tensor(OC);
            L->matmul_backward(NULL, dweight_set[k], dbias_set[k], dout, inp, w, bscratch, BT, C, OC, GRADS_SET);
            free(scratch); free(bscratch);
        }
        char what[96];
        printf("  BT %d, C %d, OC %d\n", BT, C, OC);
        xsnprintf(what, sizeof what, "matmul_forward%s", s % 2 ? " (no bias)" : "");
        assert_close(what, out[0], out[1], n_out, RTOL_PRODUCTS);
        assert_close("matvec_forward", row[0], row[1], OC, RTOL_PRODUCTS);
        assert_close("matmul_backward dinp", dinp[0], dinp[1], n_in, RTOL_PRODUCTS);
        assert_close("matmul_backward dweight (GRADS_ADD)", dweight[0], dweight[1], n_w, RTOL_PRODUCTS);
        assert_close("matmul_backward dbias (GRADS_ADD)", dbias[0], dbias[1], OC, RTOL_PRODUCTS);
        assert_close("matmul_backward dweight (GRADS_SET)", dweight_set[0], dweight_set[1], n_w, RTOL_PRODUCTS);
        assert_close("matmul_backward dbias (GRADS_SET)", dbias_set[0], dbias_set[1], OC, RTOL_PRODUCTS);
        for (int k = 0; k < 2; k++) {
            free(out[k]); free(row[k]); free(dinp[k]); free(dweight[k]); free(dbias[k]);
            free(dweight_set[k]); free(dbias_set[k]);
        }
        free(inp); free(w); free(bias); free(dout); free(dw0); free(db0);
    }
}

/* ---- layernorm ---------------------------------------------------------------- */

typedef struct { const Layer* L; float *out, *mean, *rstd, *inp, *b, *res, *weight, *bias, *w; int N, C; } LayernormCtx;
static double layernorm_objective(void* p) {
    LayernormCtx* c = p;
    c->L->layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->weight, c->bias, c->N, c->C);
    return weighted_sum(c->out, c->w, (size_t)c->N * c->C);
}

/* the same through residual_layernorm_forward: out = layernorm(inp + b) */
static double residual_layernorm_objective(void* p) {
    LayernormCtx* c = p;
    c->L->residual_layernorm_forward(c->res, c->out, c->mean, c->rstd, c->inp, c->b, c->weight, c->bias, c->N,
                                     c->C);
    return weighted_sum(c->out, c->w, (size_t)c->N * c->C);
}

/* dinp, dweight, dbias against finite differences, for layernorm_forward and
 * for residual_layernorm_forward (whose two inputs both get dinp, computed at
 * res = a + b); dinp adds to what it held. */
static void test_layernorm_backward_matches_finite_differences(void** state) {
    const Layer* L = *state;
    Rng rng;
    rng_seed(&rng, 3, 0);
    int N = 5, C = 19;
    LayernormCtx c = {.L = L, .N = N, .C = C};
    c.inp = random_tensor(&rng, N * C, 1.0f);
    c.b = random_tensor(&rng, N * C, 1.0f);
    c.weight = random_tensor(&rng, C, 1.0f);
    c.bias = random_tensor(&rng, C, 1.0f);
    c.w = random_tensor(&rng, N * C, 1.0f);
    c.out = xmalloc(sizeof(float) * N * C, "out");
    c.res = xmalloc(sizeof(float) * N * C, "res");
    c.mean = xmalloc(sizeof(float) * N, "mean");
    c.rstd = xmalloc(sizeof(float) * N, "rstd");
    float* start = random_tensor(&rng, N * C, 1.0f);  /* what dinp holds before: the other branch's gradient */
    float* dinp = copy_tensor(start, N * C);
    float* dweight = xcalloc(C, sizeof(float), "dweight");
    float* dbias = xcalloc(C, sizeof(float), "dbias");
    layernorm_objective(&c);
    L->layernorm_backward(dinp, dweight, dbias, c.w, c.inp, c.weight, c.mean, c.rstd, N, C);
    for (int i = 0; i < N * C; i++) dinp[i] -= start[i];
    check_gradient("layernorm dinp", c.inp, dinp, N * C, layernorm_objective, &c);
    check_gradient("layernorm dweight", c.weight, dweight, C, layernorm_objective, &c);
    check_gradient("layernorm dbias", c.bias, dbias, C, layernorm_objective, &c);

    residual_layernorm_objective(&c);
    for (int i = 0; i < N * C; i++) assert_true(c.res[i] == c.inp[i] + c.b[i]);
    memset(dinp, 0, sizeof(float) * N * C);
    memset(dweight, 0, sizeof(float) * C);
    L->layernorm_backward(dinp, dweight, NULL, c.w, c.res, c.weight, c.mean, c.rstd, N, C);
    check_gradient("residual layernorm d(a)", c.inp, dinp, N * C, residual_layernorm_objective, &c);
    check_gradient("residual layernorm d(b)", c.b, dinp, N * C, residual_layernorm_objective, &c);
    check_gradient("residual layernorm dweight", c.weight, dweight, C, residual_layernorm_objective, &c);
    free(c.inp); free(c.b); free(c.weight); free(c.bias); free(c.w); free(c.out); free(c.res); free(c.mean);
    free(c.rstd); free(start); free(dinp); free(dweight); free(dbias);
}

/* The fast forward normalises whole blocks of 16 rows together and
 * the rest one by one: a row must come out the same, bit for bit, either way,
 * with and without the residual sum and the bias. 37 rows: two blocks and 5
 * more. (The reference has one path, and passes as well.) */
static void test_layernorm_rows_are_the_same_in_a_block_or_alone(void** state) {
    const Layer* L = *state;
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
        if (residual) L->residual_layernorm_forward(res, out, mean, rstd, a, b, weight, bs, N, C);
        else L->layernorm_forward(out, mean, rstd, a, weight, bs, N, C);
        for (int r = 0; r < N; r++) {
            if (residual) L->residual_layernorm_forward(one_res, one_out, &one_mean, &one_rstd, a + r * C, b + r * C,
                                                        weight, bs, 1, C);
            else L->layernorm_forward(one_out, &one_mean, &one_rstd, a + r * C, weight, bs, 1, C);
            assert_memory_equal(one_out, out + r * C, sizeof(float) * C);
            if (residual) assert_memory_equal(one_res, res + r * C, sizeof(float) * C);
            assert_true(one_mean == mean[r] && one_rstd == rstd[r]);
        }
    }
    free(a); free(b); free(weight); free(bias); free(out); free(res);
}

/* The build's layernorm against the reference: both forwards (with and without
 * bias), and the backward adding onto random gradients (dbias NULL too), each
 * layer from its own forward's mean and rstd. C = 1 (a row that is its mean),
 * rows shorter than the fast layer's 16 lanes, whole lanes with and without
 * blocks of 16 rows, a remainder past whole lanes. */
static void test_fast_layernorm_matches_reference(void** state) {
#ifndef TEST_FAST_KERNELS
    skip();  /* a KERNELS=reference build: its kernels are the reference */
#endif
    Rng rng;
    rng_seed(&rng, 22, 0);
    int shapes[][2] = {{1, 1}, {1, 7}, {5, 19}, {37, 48}, {20, 128}, {17, 130}};  /* N, C */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)N * C;
        float *a = random_tensor(&rng, n, 2.0f), *b = random_tensor(&rng, n, 1.0f), *dout = random_tensor(&rng, n, 1.0f);
        float *weight = random_tensor(&rng, C, 1.0f), *bias = random_tensor(&rng, C, 1.0f);
        float *dinp0 = random_tensor(&rng, n, 1.0f), *dw0 = random_tensor(&rng, C, 1.0f), *db0 = random_tensor(&rng, C, 1.0f);
        float *out[2], *res[2], *out_res[2], *mean[2], *rstd[2], *dinp[2], *dweight[2], *dbias[2];
        const Layer* layers[2] = {&BUILD, &REFERENCE};
        const float* bs = s % 2 ? NULL : bias;
        for (int k = 0; k < 2; k++) {
            const Layer* L = layers[k];
            out[k] = nan_tensor(n); res[k] = nan_tensor(n); out_res[k] = nan_tensor(n);
            mean[k] = nan_tensor(2 * N); rstd[k] = nan_tensor(2 * N);
            L->residual_layernorm_forward(res[k], out_res[k], mean[k] + N, rstd[k] + N, a, b, weight, bs, N, C);
            L->layernorm_forward(out[k], mean[k], rstd[k], a, weight, bs, N, C);
            dinp[k] = copy_tensor(dinp0, n); dweight[k] = copy_tensor(dw0, C); dbias[k] = copy_tensor(db0, C);
            L->layernorm_backward(dinp[k], dweight[k], s % 2 ? NULL : dbias[k], dout, a, weight, mean[k], rstd[k], N, C);
        }
        printf("  N %d, C %d%s\n", N, C, s % 2 ? ", no bias" : "");
        assert_close("layernorm_forward out", out[0], out[1], n, RTOL_PRODUCTS);
        assert_close("layernorm_forward mean, residual mean", mean[0], mean[1], 2 * N, RTOL_PRODUCTS);
        assert_close("layernorm_forward rstd, residual rstd", rstd[0], rstd[1], 2 * N, RTOL_PRODUCTS);
        assert_memory_equal(res[0], res[1], sizeof(float) * n);  /* a + b: one rounding either way */
        assert_close("residual_layernorm_forward out", out_res[0], out_res[1], n, RTOL_PRODUCTS);
        assert_close("layernorm_backward dinp", dinp[0], dinp[1], n, RTOL_PRODUCTS);
        assert_close("layernorm_backward dweight", dweight[0], dweight[1], C, RTOL_PRODUCTS);
        assert_close("layernorm_backward dbias", dbias[0], dbias[1], C, RTOL_PRODUCTS);
        for (int k = 0; k < 2; k++) {
            free(out[k]); free(res[k]); free(out_res[k]); free(mean[k]); free(rstd[k]);
            free(dinp[k]); free(dweight[k]); free(dbias[k]);
        }
        free(a); free(b); free(dout); free(weight); free(bias); free(dinp0); free(dw0); free(db0);
    }
}

/* ---- attention ---------------------------------------------------------------- */

typedef struct {
    const Layer* L;
    float *out, *stats, *scratch, *qkv, *w;
    int B, T, C, NH;
    float dropout;
    uint64_t key;
} AttentionCtx;
static double attention_objective(void* p) {
    AttentionCtx* c = p;
    c->L->attention_forward(c->out, c->stats, c->scratch, c->qkv, c->B, c->T, c->C, c->NH, c->dropout, c->key);
    return weighted_sum(c->out, c->w, (size_t)c->B * c->T * c->C);
}

/* With dropout the masks are fixed by the key, so the forward is a fixed function
 * of qkv and finite differences apply as without. dqkv starts as NaN: overwritten. */
static void check_attention(const Layer* L, int B, int T, int C, int NH, float dropout, const char* name) {
    Rng rng;
    rng_seed(&rng, 4, 0);
    AttentionCtx c = {.L = L, .B = B, .T = T, .C = C, .NH = NH, .dropout = dropout, .key = 77};
    c.qkv = random_tensor(&rng, B * T * 3 * C, 1.0f);
    c.w = random_tensor(&rng, B * T * C, 1.0f);
    c.out = xmalloc(sizeof(float) * B * T * C, "out");
    c.stats = xmalloc(sizeof(float) * B * NH * T * 2, "stats");
    c.scratch = attention_scratch(L, T, C, NH);
    attention_objective(&c);
    float* dqkv = nan_tensor(B * T * 3 * C);
    L->attention_backward(dqkv, c.scratch, c.w, c.qkv, c.stats, B, T, C, NH, dropout, c.key);
    check_gradient(name, c.qkv, dqkv, B * T * 3 * C, attention_objective, &c);
    free(c.qkv); free(c.w); free(c.out); free(c.stats); free(c.scratch); free(dqkv);
}

static void test_attention_backward_matches_finite_differences(void** state) {
    const Layer* L = *state;
    check_attention(L, 2, 5, 8, 2, 0.0f, "attention dqkv");
    check_attention(L, 2, 5, 8, 2, 0.3f, "attention dqkv, dropout 0.3");
    check_attention(L, 1, 1, 6, 3, 0.0f, "attention dqkv, T 1, B 1, head size 2");
    /* T = 45: two query blocks of the fast layer, a ragged last group of rows */
    check_attention(L, 2, 45, 8, 2, 0.0f, "attention dqkv, T 45");
    check_attention(L, 2, 45, 8, 2, 0.3f, "attention dqkv, T 45, dropout");
    /* head size 32, T 20: the fast layer's 16 x 16 transposes and a ragged edge */
    check_attention(L, 2, 20, 64, 2, 0.0f, "attention dqkv, head size 32");
}

/* Generation reads keys and values from a cache: its output for the last query
 * must equal the last row of the full forward. */
static void check_decode_against_forward(const Layer* L, int T, int C, int NH) {
    Rng rng;
    rng_seed(&rng, 6, 0);
    float* qkv = random_tensor(&rng, T * 3 * C, 1.0f);
    float* out = xmalloc(sizeof(float) * T * C, "out");
    float* stats = xmalloc(sizeof(float) * NH * T * 2, "stats");
    float* scratch = attention_scratch(L, T, C, NH);
    float *kc = xmalloc(sizeof(float) * T * C, "k"), *vc = xmalloc(sizeof(float) * T * C, "v");
    float *dec = xmalloc(sizeof(float) * C, "dec"), *scores = xmalloc(sizeof(float) * T, "scores");
    L->attention_forward(out, stats, scratch, qkv, 1, T, C, NH, 0.0f, 0);
    for (int t = 0; t < T; t++) {
        memcpy(kc + t * C, qkv + t * 3 * C + C, sizeof(float) * C);
        memcpy(vc + t * C, qkv + t * 3 * C + 2 * C, sizeof(float) * C);
    }
    for (int t = 0; t < T; t++) {
        L->attention_decode(dec, scores, qkv + t * 3 * C, kc, vc, t + 1, C, NH);
        for (int i = 0; i < C; i++) assert_float_equal(dec[i], out[t * C + i], 1e-6f);
    }
    free(qkv); free(out); free(stats); free(scratch); free(kc); free(vc); free(dec); free(scores);
}

static void test_attention_decode_equals_last_row_of_forward(void** state) {
    const Layer* L = *state;
    check_decode_against_forward(L, 45, 12, 3);  /* T past one query block of the fast forward */
    /* head sizes 32 and 20: whole 16 x 16 blocks of the fast layer's transposes,
     * and blocks with ragged edges in both T and the head */
    check_decode_against_forward(L, 45, 64, 2);
    check_decode_against_forward(L, 37, 40, 2);
}

static void test_attention_never_looks_at_future_positions(void** state) {
    const Layer* L = *state;
    Rng rng;
    rng_seed(&rng, 5, 0);
    int B = 1, T = 6, C = 8, NH = 2, t_changed = 4;
    float* qkv = random_tensor(&rng, B * T * 3 * C, 1.0f);
    float* out1 = xmalloc(sizeof(float) * T * C, "out1");
    float* out2 = xmalloc(sizeof(float) * T * C, "out2");
    float* stats = xmalloc(sizeof(float) * NH * T * 2, "stats");
    float* scratch = attention_scratch(L, T, C, NH);
    L->attention_forward(out1, stats, scratch, qkv, B, T, C, NH, 0.0f, 0);
    for (int i = 0; i < 3 * C; i++) qkv[t_changed * 3 * C + i] += 1.0f;  /* change q,k,v at t = 4 */
    L->attention_forward(out2, stats, scratch, qkv, B, T, C, NH, 0.0f, 0);
    for (int t = 0; t < T; t++) {
        int same = memcmp(out1 + t * C, out2 + t * C, sizeof(float) * C) == 0;
        assert_int_equal(same, t < t_changed);  /* earlier positions untouched, later ones see it */
    }
    free(qkv); free(out1); free(out2); free(stats); free(scratch);
}

/* The build's attention against the reference: out, stats and dqkv, with and
 * without dropout (the masks must drop the same elements: a different mask
 * differs by whole probabilities, far past the bar), T = 1, B = 1, T a whole
 * number of the fast layer's 32-query blocks or not, head sizes 2 to 32, and
 * peaked softmaxes (q and k scaled by 3). Then the build's decode against the
 * reference forward's last row. */
static void test_fast_attention_matches_reference(void** state) {
#ifndef TEST_FAST_KERNELS
    skip();  /* a KERNELS=reference build: its kernels are the reference */
#endif
    struct { int B, T, C, NH; float dropout, spread; } cases[] = {
        {1, 1, 8, 2, 0.0f, 1.0f},   {1, 1, 6, 3, 0.5f, 1.0f},    {2, 5, 8, 2, 0.3f, 1.0f},
        {3, 45, 48, 3, 0.0f, 1.0f}, {1, 130, 96, 3, 0.1f, 3.0f}, {2, 64, 128, 4, 0.2f, 1.0f},
        {2, 33, 20, 5, 0.0f, 3.0f}, {1, 17, 36, 2, 0.5f, 1.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int B = cases[i].B, T = cases[i].T, C = cases[i].C, NH = cases[i].NH;
        float p = cases[i].dropout;
        size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_stats = (size_t)B * NH * T * 2;
        Rng rng;
        rng_seed(&rng, 23, i);
        float *qkv = random_tensor(&rng, n_qkv, cases[i].spread), *dy = random_tensor(&rng, n_out, 1.0f);
        float *out[2], *stats[2], *dqkv[2];
        const Layer* layers[2] = {&BUILD, &REFERENCE};
        for (int k = 0; k < 2; k++) {
            float* scratch = attention_scratch(layers[k], T, C, NH);
            out[k] = nan_tensor(n_out); stats[k] = nan_tensor(n_stats); dqkv[k] = nan_tensor(n_qkv);
            layers[k]->attention_forward(out[k], stats[k], scratch, qkv, B, T, C, NH, p, 5);
            layers[k]->attention_backward(dqkv[k], scratch, dy, qkv, stats[k], B, T, C, NH, p, 5);
            free(scratch);
        }
        printf("  B %d, T %d, C %d, NH %d, dropout %.1f, qkv x%.0f\n", B, T, C, NH, p, cases[i].spread);
        assert_close("attention_forward out", out[0], out[1], n_out, RTOL_EXP);
        assert_close("attention_forward stats (max, 1/sum)", stats[0], stats[1], n_stats, RTOL_EXP);
        assert_close("attention_backward dqkv", dqkv[0], dqkv[1], n_qkv, cases[i].spread > 1.0f ? RTOL_PEAKED : RTOL_EXP);
        if (p == 0.0f) {  /* decode: batch 0's last query against the cache of its T positions */
            float *kc = xmalloc(sizeof(float) * T * C, "k"), *vc = xmalloc(sizeof(float) * T * C, "v");
            float *dec = xmalloc(sizeof(float) * C, "dec"), *scores = xmalloc(sizeof(float) * T, "scores");
            for (int t = 0; t < T; t++) {
                memcpy(kc + t * C, qkv + t * 3 * C + C, sizeof(float) * C);
                memcpy(vc + t * C, qkv + t * 3 * C + 2 * C, sizeof(float) * C);
            }
            BUILD.attention_decode(dec, scores, qkv + (size_t)(T - 1) * 3 * C, kc, vc, T, C, NH);
            assert_close("attention_decode, last row of ref forward", dec, out[1] + (size_t)(T - 1) * C, C, RTOL_EXP);
            free(kc); free(vc); free(dec); free(scores);
        }
        for (int k = 0; k < 2; k++) { free(out[k]); free(stats[k]); free(dqkv[k]); }
        free(qkv); free(dy);
    }
}

/* ---- dropout ------------------------------------------------------------------ */

typedef struct { const Layer* L; float *x, *y, *w; size_t N; float p; uint64_t key; } DropoutCtx;
static double dropout_objective(void* p) {
    DropoutCtx* c = p;
    memcpy(c->y, c->x, c->N * sizeof(float));
    c->L->dropout_forward(c->y, c->N, c->p, c->key);
    return weighted_sum(c->y, c->w, c->N);
}

static void test_dropout_backward_matches_finite_differences(void** state) {
    const Layer* L = *state;
    Rng rng;
    rng_seed(&rng, 9, 0);
    size_t N = 200;
    DropoutCtx c = {.L = L, .N = N, .p = 0.25f, .key = 12345};
    c.x = random_tensor(&rng, N, 1.0f);
    c.w = random_tensor(&rng, N, 1.0f);
    c.y = xmalloc(N * sizeof(float), "y");
    float* dx = copy_tensor(c.w, N);  /* d(sum w*y)/dy = w, then back through the mask */
    L->dropout_backward(dx, N, c.p, c.key);
    check_gradient("dropout dx", c.x, dx, N, dropout_objective, &c);
    free(c.x); free(c.w); free(c.y); free(dx);
}

/* Inverted dropout: about p of the elements become 0, the rest are scaled by
 * 1/(1-p), so the mean is kept; p = 0 changes nothing; another key, another mask. */
static void test_dropout_drops_p_and_keeps_the_mean(void** state) {
    const Layer* L = *state;
    size_t N = 200000;
    float p = 0.2f;
    float* x = xmalloc(N * sizeof(float), "x");
    float* y = xmalloc(N * sizeof(float), "y");
    for (size_t i = 0; i < N; i++) x[i] = 1.0f;
    memcpy(y, x, N * sizeof(float));
    L->dropout_forward(y, N, p, 1);
    size_t zeros = 0, differ = 0;
    double sum = 0;
    for (size_t i = 0; i < N; i++) { zeros += y[i] == 0.0f; sum += y[i]; }
    printf("  dropout p = 0.2: dropped %.4f, mean %.4f\n", (double)zeros / N, sum / N);
    assert_true(fabs((double)zeros / N - p) < 0.005);  /* 5 sigma is about 0.0045 */
    assert_true(fabs(sum / N - 1.0) < 0.01);
    for (size_t i = 0; i < N; i++) assert_true(y[i] == 0.0f || y[i] == 1.0f / (1.0f - p));
    float* z = copy_tensor(x, N);
    L->dropout_forward(z, N, p, 2);
    for (size_t i = 0; i < N; i++) differ += (y[i] == 0.0f) != (z[i] == 0.0f);
    assert_true(differ > N / 10);
    memcpy(z, x, N * sizeof(float));
    L->dropout_forward(z, N, 0.0f, 1);
    assert_memory_equal(z, x, N * sizeof(float));
    assert_true(L->dropout_key(1, 5, 0, DROP_ATTN) != L->dropout_key(1, 6, 0, DROP_ATTN));
    assert_true(L->dropout_key(1, 5, 0, DROP_ATTN) != L->dropout_key(1, 5, 1, DROP_ATTN));
    assert_true(L->dropout_key(1, 5, 0, DROP_ATTN) != L->dropout_key(1, 5, 0, DROP_MLP_RESID));
    free(x); free(y); free(z);
}

/* The masks of attention's probabilities are those dropout_keep gives at the
 * index ((b*NH + h)*T + t)*T + s (attention.h). With q = 0 every query spreads
 * 1/(t+1) over its keys, and with v_s = e_s (the unit vector of channel s of
 * the head) channel s of out_t is w_ts itself: (1/(t+1)) / (1-p) where the
 * mask keeps (b, h, t, s), else 0; and exactly 0 for keys after t. */
static void test_attention_dropout_masks_follow_the_index_convention(void** state) {
    const Layer* L = *state;
    enum { B = 2, T = 4, NH = 2, HS = T, C = NH * HS };
    float p = 0.5f;
    uint32_t threshold = dropout_threshold(p);
    float qkv[B * T * 3 * C] = {0}, out[B * T * C], stats[B * NH * T * 2];
    for (int b = 0; b < B; b++)
        for (int s = 0; s < T; s++)
            for (int h = 0; h < NH; h++) qkv[(b * T + s) * 3 * C + 2 * C + h * HS + s] = 1.0f;  /* v_s = e_s */
    float* scratch = attention_scratch(L, T, C, NH);
    int kept = 0, dropped = 0;
    for (uint64_t key = 1; key <= 4; key++) {
        L->attention_forward(out, stats, scratch, qkv, B, T, C, NH, p, key);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++)
                    for (int s = 0; s < T; s++) {
                        size_t index = ((size_t)(b * NH + h) * T + t) * T + s;
                        int keep = s <= t && dropout_keep(key, index, threshold);
                        float got = out[(b * T + t) * C + h * HS + s];
                        if (keep) assert_float_equal(got, (1.0f / (t + 1)) / (1.0f - p), 1e-6f);
                        else assert_true(got == 0.0f);
                        kept += keep;
                        dropped += s <= t && !keep;
                    }
    }
    assert_true(kept > 0 && dropped > 0);
    free(scratch);
}

/* ---- gelu, cross-entropy, encoder -------------------------------------------------- */

typedef struct { const Layer* L; float *out, *inp, *w; long N; } GeluCtx;
static double gelu_objective(void* p) {
    GeluCtx* c = p;
    c->L->gelu_forward(c->out, c->inp, c->N);
    return weighted_sum(c->out, c->w, (size_t)c->N);
}

static void test_gelu_backward_matches_finite_differences(void** state) {
    const Layer* L = *state;
    Rng rng;
    rng_seed(&rng, 6, 0);
    long N = 64;
    GeluCtx c = {.L = L, .N = N};
    c.inp = random_tensor(&rng, N, 2.0f);
    c.w = random_tensor(&rng, N, 1.0f);
    c.out = xmalloc(sizeof(float) * N, "out");
    float* dinp = nan_tensor(N);
    L->gelu_backward(dinp, c.inp, c.w, N);
    check_gradient("gelu dinp", c.inp, dinp, N, gelu_objective, &c);
    free(c.inp); free(c.w); free(c.out); free(dinp);
}

/* gelu and its derivative against the tanh formula in double, on [-10, 10]:
 * within 1e-6 (1 + |value|), the absolute error where the reference's
 * 1 + tanh u cancels (x below -5), relative elsewhere. */
static void test_gelu_matches_the_tanh_formula_in_double(void** state) {
    const Layer* L = *state;
    enum { N = 2001 };
    float x[N], y[N], g[N], ones[N];
    for (int i = 0; i < N; i++) { x[i] = -10.0f + 0.01f * i; ones[i] = 1.0f; }
    L->gelu_forward(y, x, N);
    L->gelu_backward(g, x, ones, N);
    double worst_y = 0.0, worst_g = 0.0;
    for (int i = 0; i < N; i++) {
        double xd = x[i], k = sqrt(2.0 / 3.14159265358979323846), u = k * (xd + 0.044715 * xd * xd * xd), th = tanh(u);
        double ref = xd / (1.0 + exp(-2.0 * u));  /* = 0.5 x (1 + tanh u), without double's own cancellation */
        double dref = 0.5 * (1.0 + th) + 0.5 * xd * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * xd * xd);
        double ey = fabs(y[i] - ref) / (1.0 + fabs(ref)), eg = fabs(g[i] - dref) / (1.0 + fabs(dref));
        if (ey > worst_y) worst_y = ey;
        if (eg > worst_g) worst_g = eg;
    }
    printf("  gelu: worst error / (1 + |gelu|) %.3g, derivative %.3g\n", worst_y, worst_g);
    assert_true(worst_y < 1e-6);
    assert_true(worst_g < 1e-6);
}

/* The fast GELU's x / (1 + e^{-2u}) does not cancel where 0.5 x (1 + tanh u)
 * does: relative accuracy down to gelu = 1e-30, which the reference does not
 * have (it rounds such values to 0). Derivative relative to |gelu'| + 1e-3. */
static void test_fast_gelu_is_accurate_relative_to_its_value(void** state) {
#ifdef TEST_FAST_KERNELS
    enum { N = 2001 };
    float x[N], y[N], g[N], ones[N];
    for (int i = 0; i < N; i++) { x[i] = -10.0f + 0.01f * i; ones[i] = 1.0f; g[i] = 0.0f; }
    gelu_forward(y, x, N);
    gelu_backward(g, x, ones, N);
    double worst_y = 0.0, worst_g = 0.0;
    for (int i = 0; i < N; i++) {
        double xd = x[i], k = sqrt(2.0 / 3.14159265358979323846), u = k * (xd + 0.044715 * xd * xd * xd), th = tanh(u);
        double ref = xd / (1.0 + exp(-2.0 * u));
        double dref = 0.5 * (1.0 + th) + 0.5 * xd * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * xd * xd);
        double ey = fabs(y[i] - ref) / (fabs(ref) + 1e-30), eg = fabs(g[i] - dref) / (fabs(dref) + 1e-3);
        if (ey > worst_y && fabs(ref) > 1e-30) worst_y = ey;
        if (eg > worst_g) worst_g = eg;
    }
    printf("  gelu: worst relative error %.3g, derivative %.3g\n", worst_y, worst_g);
    assert_true(worst_y < 2e-5);  /* relative, down to gelu = 1e-30 (x near -9.5); float u costs 1e-5 there */
    assert_true(worst_g < 1e-5);
#else
    skip();  /* a KERNELS=reference build: no fast GELU */
#endif
}

/* The build's GELU against the reference, forward and backward, on lengths
 * below, at and past the fast layer's 4096-element blocks and vectors. */
static void test_fast_gelu_matches_reference(void** state) {
#ifndef TEST_FAST_KERNELS
    skip();  /* a KERNELS=reference build: its kernels are the reference */
#endif
    long lengths[] = {1, 7, 4096 + 13};
    for (int li = 0; li < 3; li++) {
        long N = lengths[li];
        Rng rng;
        rng_seed(&rng, 24, (uint64_t)li);
        float *x = random_tensor(&rng, N, 3.0f), *dy = random_tensor(&rng, N, 1.0f);
        float *y[2], *dx[2];
        const Layer* layers[2] = {&BUILD, &REFERENCE};
        for (int k = 0; k < 2; k++) {
            y[k] = nan_tensor(N); dx[k] = nan_tensor(N);
            layers[k]->gelu_forward(y[k], x, N);
            layers[k]->gelu_backward(dx[k], x, dy, N);
        }
        printf("  N %ld\n", N);
        assert_close("gelu_forward", y[0], y[1], N, RTOL_EXP);
        assert_close("gelu_backward", dx[0], dx[1], N, RTOL_EXP);
        for (int k = 0; k < 2; k++) { free(y[k]); free(dx[k]); }
        free(x); free(dy);
    }
}

/* A float's place in the order of floats as an integer: the next float up has the
 * next integer (-0 and +0 are both 0, and the one after -0 is the least positive
 * float, as nextafterf goes). float_at is its inverse. */
static int32_t float_rank(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u >> 31 ? -(int32_t)(u & 0x7FFFFFFFu) : (int32_t)u;
}
static float float_at(int32_t rank) {
    uint32_t u = rank < 0 ? 0x80000000u | (uint32_t)-rank : (uint32_t)rank;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* exp_approx (the fast layer's e^x, kernels/fast/vmath.h) against exp in double
 * over float's whole useful range (every 61st float from -87 to 88): within
 * 2 ulp, and clamped rather than inf or NaN outside. The floats are counted by
 * rank, not walked one by one with nextafterf: the same 37 million inputs, without
 * 2.2 billion calls in between (two minutes of them under qemu, make cross-test). */
static void test_exp_approx_is_within_2_ulp(void** state) {
    double worst = 0.0;
    assert_true(float_at(float_rank(-87.0f)) == -87.0f && float_rank(nextafterf(-0.0f, INFINITY)) == 1 &&
                float_rank(nextafterf(88.0f, 0.0f)) == float_rank(88.0f) - 1);
    for (int32_t r = float_rank(-87.0f); r <= float_rank(88.0f); r += 61) {
        float x = float_at(r);
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

/* vexp (exp_approx on a vector of kernels/fast/simd.h, attention's softmax)
 * against exp_approx: the same bits lane by lane, on every 251st of the 2^32
 * inputs (NaN, inf, denormals and the clamped ranges included) */
static void test_vexp_equals_exp_approx_lane_by_lane(void** state) {
    enum { STRIDE = 251 };
    long differ = 0, n = 0;
    for (uint64_t u0 = 0; u0 < (1ull << 32); u0 += (uint64_t)STRIDE * VLEN) {
        uint32_t in[VLEN], vec[VLEN];
        for (int c = 0; c < VLEN; c++) in[c] = (uint32_t)(u0 + (uint64_t)c * STRIDE);
        vf x;
        memcpy(&x, in, sizeof x);
        vf y = vexp(x);
        memcpy(vec, &y, sizeof vec);
        for (int c = 0; c < VLEN; c++, n++) {
            float xf, ys, yv;
            memcpy(&xf, &in[c], sizeof xf);
            memcpy(&yv, &vec[c], sizeof yv);
            ys = exp_approx(xf);
            /* a NaN's payload and sign are not part of the contract: where fmaf is a
             * library call (the -O2 sanitizer build) they differ from the FMA
             * instruction's, on exactly the NaN inputs (1 in 256 of all floats) */
            differ += isnan(ys) ? !isnan(yv) : memcmp(&ys, &yv, sizeof ys) != 0;
        }
    }
    printf("  vexp (%d lanes): %ld of %ld inputs differ from exp_approx\n", VLEN, differ, n);
    assert_int_equal(differ, 0);
}

typedef struct { const Layer* L; float *stats, *losses, *logits; int* targets; int N, V; } CrossentropyCtx;
static double crossentropy_objective(void* p) {
    CrossentropyCtx* c = p;
    return c->L->crossentropy_forward(c->stats, c->losses, c->logits, c->targets, c->N, c->V);
}

/* V = 11: a row shorter than the fast layer's sum lanes; 37: two lanes' blocks
 * and a remainder. dlogits starts as NaN: overwritten. */
static void test_crossentropy_backward_matches_finite_differences(void** state) {
    const Layer* L = *state;
    for (int V = 11; V <= 37; V += 26) {
        Rng rng;
        rng_seed(&rng, 7, 0);
        int N = 4;
        int targets[4] = {0, V - 1, 3, 3};
        CrossentropyCtx c = {.L = L, .N = N, .V = V, .targets = targets};
        c.logits = random_tensor(&rng, N * V, 2.0f);
        c.stats = xmalloc(sizeof(float) * N * 2, "stats");
        c.losses = xmalloc(sizeof(float) * N, "losses");
        crossentropy_objective(&c);
        float* dlogits = nan_tensor(N * V);
        L->crossentropy_backward(dlogits, c.logits, c.stats, targets, N, V, N);
        check_gradient("crossentropy dlogits", c.logits, dlogits, N * V, crossentropy_objective, &c);
        free(c.logits); free(c.stats); free(c.losses); free(dlogits);
    }
}

/* The loss and the recomputed probabilities against the softmax in double, on rows
 * of every length class (shorter than the lanes, whole blocks, a remainder) with a
 * spread of logits wide enough that the max matters (e^40 would overflow no float
 * sum here, but e^(z - max) must come out right for the small ones too) */
static void test_crossentropy_matches_softmax_in_double(void** state) {
    const Layer* L = *state;
    int lengths[] = {5, 16, 65, 1030};
    for (int k = 0; k < 4; k++) {
        int N = 3, V = lengths[k];
        Rng rng;
        rng_seed(&rng, 17, (uint64_t)k);
        float* logits = random_tensor(&rng, N * V, 20.0f);
        int targets[3] = {0, V / 2, V - 1};
        float stats[6], losses[3];
        float* dlogits = xmalloc(sizeof(float) * N * V, "dlogits");
        float loss = L->crossentropy_forward(stats, losses, logits, targets, N, V);
        L->crossentropy_backward(dlogits, logits, stats, targets, N, V, N);
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
    const Layer* L = *state;
    int N = 3, V = 65, targets[3] = {0, 7, 64};
    float* logits = xcalloc(N * V, sizeof(float), "logits");
    float stats[6];
    float losses[3];
    float loss = L->crossentropy_forward(stats, losses, logits, targets, N, V);
    assert_true(fabsf(loss - logf((float)V)) < 1e-6f);
    free(logits);
}

/* The build's cross-entropy against the reference: losses, stats, the mean and
 * dlogits, on rows of one logit, shorter than the fast layer's 16 lanes, whole
 * lanes, and long with a remainder; batch_rows = N and larger (one group of a
 * batch). */
static void test_fast_crossentropy_matches_reference(void** state) {
#ifndef TEST_FAST_KERNELS
    skip();  /* a KERNELS=reference build: its kernels are the reference */
#endif
    int shapes[][2] = {{1, 1}, {3, 5}, {4, 16}, {4, 65}, {2, 1030}};  /* N, V */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], V = shapes[s][1], batch_rows = s % 2 ? 2 * N + 1 : N;
        Rng rng;
        rng_seed(&rng, 25, s);
        float* logits = random_tensor(&rng, (size_t)N * V, 5.0f);
        int targets[4];
        for (int n = 0; n < N; n++) targets[n] = (int)rng_below(&rng, (uint32_t)V);
        float *stats[2], *losses[2], *dlogits[2], mean[2];
        const Layer* layers[2] = {&BUILD, &REFERENCE};
        for (int k = 0; k < 2; k++) {
            stats[k] = nan_tensor(2 * N); losses[k] = nan_tensor(N); dlogits[k] = nan_tensor((size_t)N * V);
            mean[k] = layers[k]->crossentropy_forward(stats[k], losses[k], logits, targets, N, V);
            layers[k]->crossentropy_backward(dlogits[k], logits, stats[k], targets, N, V, batch_rows);
        }
        printf("  N %d, V %d, batch_rows %d\n", N, V, batch_rows);
        assert_close("crossentropy_forward losses", losses[0], losses[1], N, RTOL_EXP);
        assert_close("crossentropy_forward mean", &mean[0], &mean[1], 1, RTOL_EXP);
        assert_close("crossentropy_forward stats (max, 1/sum)", stats[0], stats[1], 2 * N, RTOL_EXP);
        assert_close("crossentropy_backward dlogits", dlogits[0], dlogits[1], (size_t)N * V, RTOL_EXP);
        for (int k = 0; k < 2; k++) { free(stats[k]); free(losses[k]); free(dlogits[k]); }
        free(logits);
    }
}

typedef struct {
    const Layer* L;
    float *out, *wte, *pe, *w;
    int* ids;
    float scale, drop_p;
    uint64_t drop_key;
    int B, T, C;
} EncoderCtx;
static double encoder_objective(void* p) {
    EncoderCtx* c = p;
    c->L->encoder_forward(c->out, c->ids, c->wte, c->pe, c->scale, c->drop_p, c->drop_key, c->B, c->T, c->C);
    return weighted_sum(c->out, c->w, (size_t)c->B * c->T * c->C);
}

/* Without and with token dropout (embed_dropout): dE and dPE against finite
 * differences; a dropped position's output is its PE alone and gives E nothing. */
static void test_encoder_backward_scatters_into_rows_of_E(void** state) {
    const Layer* L = *state;
    const float drops[] = {0.0f, 0.4f};
    for (int k = 0; k < 2; k++) {
        Rng rng;
        rng_seed(&rng, 8, 0);
        int B = 2, T = 4, C = 6, V = 5;
        int ids[8] = {1, 3, 1, 0, 3, 3, 2, 1};  /* repeats: the scatter must add, not overwrite */
        EncoderCtx c = {.L = L, .B = B, .T = T, .C = C, .ids = ids, .scale = 1.7f, .drop_p = drops[k], .drop_key = 11};
        c.wte = random_tensor(&rng, V * C, 1.0f);
        c.pe = random_tensor(&rng, T * C, 1.0f);
        c.w = random_tensor(&rng, B * T * C, 1.0f);
        c.out = xmalloc(sizeof(float) * B * T * C, "out");
        float* dwte = xcalloc(V * C, sizeof(float), "dwte");
        float* dwpe = xcalloc(T * C, sizeof(float), "dwpe");
        L->encoder_backward(dwte, dwpe, c.w, ids, c.scale, c.drop_p, c.drop_key, B, T, C);
        check_gradient("encoder dE", c.wte, dwte, V * C, encoder_objective, &c);
        check_gradient("encoder dPE", c.pe, dwpe, T * C, encoder_objective, &c);
        for (int i = 0; i < C; i++) assert_true(dwte[4 * C + i] == 0.0f);  /* token 4 absent: row untouched */
        encoder_objective(&c);
        int dropped = 0;
        uint32_t threshold = dropout_threshold(c.drop_p);
        for (int bt = 0; bt < B * T; bt++) {
            int kept = c.drop_p == 0.0f || dropout_keep(c.drop_key, (size_t)bt, threshold);
            dropped += !kept;
            for (int i = 0; i < C; i++) {
                float want = kept ? c.scale / (1.0f - c.drop_p) * c.wte[ids[bt] * C + i] + c.pe[(bt % T) * C + i]
                                  : c.pe[(bt % T) * C + i];
                assert_true(fabsf(c.out[bt * C + i] - want) <= 1e-6f * (1.0f + fabsf(want)));
            }
        }
        printf("  token dropout p = %.1f: %d of %d positions dropped\n", c.drop_p, dropped, B * T);
        if (c.drop_p > 0) assert_true(dropped > 0 && dropped < B * T);  /* both kinds of row checked */
        free(c.wte); free(c.pe); free(c.w); free(c.out); free(dwte); free(dwpe);
    }
}

static void test_sinusoidal_table_is_sin_and_cos_of_position(void** state) {
    const Layer* L = *state;
    int T = 10, C = 8;
    float pe[80];
    L->sinusoidal_table(pe, T, C);
    for (int t = 0; t < T; t++) {
        assert_true(fabsf(pe[t * C + 0] - sinf((float)t)) < 1e-6f);             /* i = 0: frequency 1 */
        assert_true(fabsf(pe[t * C + 1] - cosf((float)t)) < 1e-6f);
        double f = pow(10000.0, -2.0 * 3 / C);                                   /* i = 3 */
        assert_true(fabs(pe[t * C + 7] - cos(t * f)) < 1e-6);
    }
}

/* Rotary positions (one source for both layers): the score q_s . k_t depends on
 * the positions only through s - t; the backward is the inverse turn; the turn
 * keeps each pair's length; v is untouched. */
static void test_rope_scores_depend_on_relative_position_only(void** state) {
    enum { T = 12, C = 8, NH = 2, HS = C / NH };
    float cs[T * HS];
    rope_table(cs, T, HS);
    Rng rng;
    rng_seed(&rng, 21, 0);
    float q[3 * C], k[3 * C];
    for (int i = 0; i < 3 * C; i++) { q[i] = rng_normal(&rng); k[i] = rng_normal(&rng); }
    double first = 0;
    for (int shift = 0; shift <= 6; shift += 3) {          /* (s, t) = (5, 2), (8, 5), (11, 8) */
        float qs[3 * C], kt[3 * C];
        memcpy(qs, q, sizeof q);
        memcpy(kt, k, sizeof k);
        rope_row(qs, cs, 5 + shift, C, NH);
        rope_row(kt, cs, 2 + shift, C, NH);
        for (int h = 0; h < NH; h++) {
            double dot = 0;
            for (int i = 0; i < HS; i++) dot += (double)qs[h * HS + i] * kt[C + h * HS + i];
            if (shift == 0 && h == 0) first = dot;
            if (h == 0) assert_true(fabs(dot - first) < 1e-5 * (1 + fabs(first)));
        }
        assert_memory_equal(qs + 2 * C, q + 2 * C, C * sizeof(float));  /* v untouched */
    }
    float x[2 * T * 3 * C], y[2 * T * 3 * C];
    for (int i = 0; i < 2 * T * 3 * C; i++) x[i] = y[i] = rng_normal(&rng);
    rope_forward(y, cs, 2, T, C, NH);
    for (int r = 0; r < 2 * T; r++)                         /* pair lengths kept */
        for (int i = 0; i < C; i += 2) {
            const float *a = x + r * 3 * C + i, *b = y + r * 3 * C + i;
            assert_true(fabsf(hypotf(a[0], a[1]) - hypotf(b[0], b[1])) < 1e-5f);
        }
    rope_backward(y, cs, 2, T, C, NH);
    for (int i = 0; i < 2 * T * 3 * C; i++) assert_true(fabsf(x[i] - y[i]) < 1e-5f);
}

/* ---- the fast layer's private pieces ------------------------------------------------ */

#ifdef TEST_FAST_KERNELS
/* gemm_accumulate's contract as a straightforward triple loop, summed in double */
static void gemm_accumulate_naive(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                                  const float* b, int ldb, int M, int N, int K) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = c[(size_t)m * ldc + n];
            for (int k = 0; k < K; k++) acc += (double)a[m * a_row + k * a_col] * b[(size_t)k * ldb + n];
            c[(size_t)m * ldc + n] = (float)acc;
        }
}
#endif

static void test_tiled_gemm_matches_naive_on_every_shape(void** state) {
#ifdef TEST_FAST_KERNELS
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
#else
    skip();  /* a KERNELS=reference build: no tiled gemm */
#endif
}

/* c = A b (attention's first write of a block) must be the bits of zeroing c and
 * then c += A b, and it must not read c: c starts as NaN. */
static void test_gemm_set_equals_zeroing_then_accumulating(void** state) {
#ifdef TEST_FAST_KERNELS
    Rng rng;
    rng_seed(&rng, 2, 0);
    int shapes[][3] = {{1, 1, 1}, {8, 32, 64}, {13, 65, 31}, {17, 70, 400}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float* a = random_tensor(&rng, (size_t)M * K, 1.0f);
        float* b = random_tensor(&rng, (size_t)K * N, 1.0f);
        float* set = nan_tensor((size_t)M * N);
        float* acc = xcalloc((size_t)M * N, sizeof(float), "test");
        gemm_set_serial(set, N, a, K, 1, b, N, M, N, K);
        gemm_accumulate_serial(acc, N, a, K, 1, b, N, M, N, K);
        assert_memory_equal(set, acc, sizeof(float) * M * N);
        free(a); free(b); free(set); free(acc);
    }
#else
    skip();
#endif
}

/* transpose moves every element to its place, and nothing else: whole 16 x 16
 * blocks, ragged edges on either side, and strides wider than the rows. */
static void test_transpose_moves_every_element(void** state) {
#ifdef TEST_FAST_KERNELS
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
#else
    skip();
#endif
}

/* ---- determinism ---------------------------------------------------------------- */

/* Run every kernel of layer L forward and backward on awkward sizes with the
 * given thread count; return all outputs concatenated. */
static float* run_all_kernels(const Layer* L, int threads, size_t* n_out) {
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
    float* h = random_tensor(&rng, BT * 4 * C, 2.0f);  /* an MLP's hidden layer */
    size_t total = BT * OC + OC + BT * C + OC * C + OC /* matmul */
                 + BT * C + BT * 3 * C                  /* attention */
                 + BT * C + BT * C + 2 * C + BT * C     /* layernorm */
                 + BT * 4 * C + BT * 4 * C              /* gelu */
                 + BT * 2 + BT * V                      /* crossentropy */
                 + V * C + T * C + BT * C;              /* encoder, dropout */
    float* all = xcalloc(total, sizeof(float), "outputs");
    float* o = all;
    float* scratch = scratch_of(L->matmul_scratch_floats(C, OC));
    float* bscratch = scratch_of(L->matmul_backward_scratch_floats(C, OC));
    float* stats = xmalloc(sizeof(float) * B * NH * T * 2, "stats");
    float* att_scratch = attention_scratch(L, T, C, NH);
    float mean[21], rstd[21];

    L->matmul_forward(o, x, w, bias, scratch, BT, C, OC); o += BT * OC;
    L->matvec_forward(o, x, w, bias, C, OC); o += OC;
    L->matmul_backward(o, o + BT * C, o + BT * C + OC * C, dout, x, w, bscratch, BT, C, OC, GRADS_SET);
    o += BT * C + OC * C + OC;
    L->attention_forward(o, stats, att_scratch, qkv, B, T, C, NH, 0.1f, 3);
    L->attention_backward(o + BT * C, att_scratch, x, qkv, stats, B, T, C, NH, 0.1f, 3); o += BT * C + BT * 3 * C;
    L->residual_layernorm_forward(o, o + BT * C, mean, rstd, x, qkv, lnw, bias, BT, C);
    L->layernorm_backward(o + 2 * BT * C + 2 * C, o + 2 * BT * C, o + 2 * BT * C + C, dout, x, lnw, mean, rstd, BT, C);
    o += BT * C + BT * C + 2 * C + BT * C;
    L->gelu_forward(o, h, BT * 4 * C);
    L->gelu_backward(o + BT * 4 * C, h, h, BT * 4 * C); o += 2 * BT * 4 * C;
    float losses[21];
    L->crossentropy_forward(o, losses, dout, targets, BT, V);
    L->crossentropy_backward(o + BT * 2, dout, o, targets, BT, V, BT); o += BT * 2 + BT * V;
    L->encoder_backward(o, o + V * C, x, ids, 1.5f, 0.25f, 9, B, T, C); o += V * C + T * C;
    L->encoder_forward(o, ids, wte, wte, 1.5f, 0.25f, 9, B, T, C);
    L->dropout_forward(o, BT * C, 0.3f, 4); o += BT * C;
    assert_true((size_t)(o - all) == total);
    free(x); free(w); free(bias); free(qkv); free(wte); free(lnw); free(dout); free(h); free(scratch); free(bscratch);
    free(stats); free(att_scratch);
    *n_out = total;
    return all;
}

static void test_kernels_are_bit_identical_for_any_thread_count(void** state) {
    const Layer* L = *state;
    int threads = omp_get_max_threads();
    size_t n1, n;
    float* one = run_all_kernels(L, 1, &n1);
    for (int t = 2; t <= 4; t++) {
        float* many = run_all_kernels(L, t, &n);
        assert_int_equal(n, n1);
        assert_memory_equal(one, many, n * sizeof(float));
        free(many);
    }
    free(one);
    omp_set_num_threads(threads);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        /* every backward against finite differences, on both layers */
        ON_REFERENCE(test_matmul_backward_matches_finite_differences),
        ON_BUILD(test_matmul_backward_matches_finite_differences),
        ON_REFERENCE(test_layernorm_backward_matches_finite_differences),
        ON_BUILD(test_layernorm_backward_matches_finite_differences),
        ON_REFERENCE(test_attention_backward_matches_finite_differences),
        ON_BUILD(test_attention_backward_matches_finite_differences),
        ON_REFERENCE(test_gelu_backward_matches_finite_differences),
        ON_BUILD(test_gelu_backward_matches_finite_differences),
        ON_REFERENCE(test_crossentropy_backward_matches_finite_differences),
        ON_BUILD(test_crossentropy_backward_matches_finite_differences),
        ON_REFERENCE(test_encoder_backward_scatters_into_rows_of_E),
        ON_REFERENCE(test_dropout_backward_matches_finite_differences),
        /* what each layer's forwards must compute */
        ON_REFERENCE(test_matmul_forward_matches_the_sum_in_double),
        ON_BUILD(test_matmul_forward_matches_the_sum_in_double),
        ON_REFERENCE(test_layernorm_rows_are_the_same_in_a_block_or_alone),
        ON_BUILD(test_layernorm_rows_are_the_same_in_a_block_or_alone),
        ON_REFERENCE(test_attention_never_looks_at_future_positions),
        ON_BUILD(test_attention_never_looks_at_future_positions),
        ON_REFERENCE(test_attention_decode_equals_last_row_of_forward),
        ON_BUILD(test_attention_decode_equals_last_row_of_forward),
        ON_REFERENCE(test_attention_dropout_masks_follow_the_index_convention),
        ON_BUILD(test_attention_dropout_masks_follow_the_index_convention),
        ON_REFERENCE(test_dropout_drops_p_and_keeps_the_mean),
        ON_REFERENCE(test_gelu_matches_the_tanh_formula_in_double),
        ON_BUILD(test_gelu_matches_the_tanh_formula_in_double),
        cmocka_unit_test(test_fast_gelu_is_accurate_relative_to_its_value),
        ON_REFERENCE(test_crossentropy_matches_softmax_in_double),
        ON_BUILD(test_crossentropy_matches_softmax_in_double),
        ON_REFERENCE(test_crossentropy_of_uniform_logits_is_log_vocab),
        ON_BUILD(test_crossentropy_of_uniform_logits_is_log_vocab),
        ON_REFERENCE(test_sinusoidal_table_is_sin_and_cos_of_position),
        cmocka_unit_test(test_rope_scores_depend_on_relative_position_only),
        /* the build's kernels against the reference */
        cmocka_unit_test(test_fast_matmul_matches_reference),
        cmocka_unit_test(test_fast_layernorm_matches_reference),
        cmocka_unit_test(test_fast_attention_matches_reference),
        cmocka_unit_test(test_fast_gelu_matches_reference),
        cmocka_unit_test(test_fast_crossentropy_matches_reference),
        /* the fast layer's private pieces */
        cmocka_unit_test(test_tiled_gemm_matches_naive_on_every_shape),
        cmocka_unit_test(test_gemm_set_equals_zeroing_then_accumulating),
        cmocka_unit_test(test_transpose_moves_every_element),
        cmocka_unit_test(test_exp_approx_is_within_2_ulp),
        cmocka_unit_test(test_vexp_equals_exp_approx_lane_by_lane),
        /* determinism */
        ON_REFERENCE(test_kernels_are_bit_identical_for_any_thread_count),
        ON_BUILD(test_kernels_are_bit_identical_for_any_thread_count),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
