/* test_embeddings.c: tests that teach how E works and how it is measured.
 * Each test's name is the fact it shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "embed/embed_metrics.h"
#include "kernels/kernels.h"
#include "model.h"
#include "test_util.h"

enum { V = 11, C = 8, B = 2, T = 5 };

/* The lookup e_t = E[i_t] is the product of a one-hot row with E: an embedding
 * layer is a linear layer (V inputs, C outputs, weight E^T) whose input happens
 * to be one-hot. */
static void test_one_hot_times_E_equals_the_row_lookup(void** state) {
    Rng rng;
    rng_seed(&rng, 1, 0);
    float* E = random_tensor(&rng, V * C, 1.0f);
    float* Et = xmalloc(sizeof(float) * V * C, "E^T");
    for (int v = 0; v < V; v++)
        for (int c = 0; c < C; c++) Et[c * V + v] = E[v * C + c];
    float* scratch = xmalloc(sizeof(float) * (matmul_scratch_floats(V, C) + 1), "scratch");
    float zeros_pe[C] = {0};
    for (int i = 0; i < V; i++) {
        float one_hot[V] = {0}, product[C], looked_up[C];
        one_hot[i] = 1.0f;
        matmul_forward(product, one_hot, Et, NULL, scratch, 1, V, C);  /* (1 x V) (V x C) */
        encoder_forward(looked_up, &i, E, zeros_pe, 1.0f, 0.0f, 0, 1, 1, C);
        assert_memory_equal(product, looked_up, sizeof product);
    }
    free(E); free(Et); free(scratch);
}

/* One forward and backward of a tiny GPT on a batch that uses only some tokens. */
static void one_step(GPT* m, int tied, int* inputs, float** dE_lookup_out) {
    GPTConfig c = {.vocab_size = V, .block_size = T, .n_layer = 1, .n_head = 2, .n_embd = C,
                   .pos_encoding = POS_LEARNED, .embed_scale = 1.0f, .tie_weights = tied, .bias = 1};
    gpt_build(m, &c, B, 3);
    int targets[B * T];
    for (int i = 0; i < B * T; i++) { inputs[i] = 2 + i % 4; targets[i] = (i * 5) % V; }  /* tokens 2..5 only */
    gpt_forward(m, inputs, targets, B, T);
    gpt_zero_grad(m);
    gpt_backward(m);
    /* the lookup's share of dE, recomputed on its own: the scatter of dx into rows */
    float* dE = xcalloc(V * C, sizeof(float), "dE lookup");
    encoder_backward(dE, NULL, m->dacts.encoded, inputs, 1.0f, 0.0f, 0, B, T, C);
    *dE_lookup_out = dE;
}

static int row_is_zero(const float* E, int row) {
    for (int c = 0; c < C; c++)
        if (E[row * C + c] != 0.0f) return 0;
    return 1;
}

/* dE = (lookup scatter) + (output projection). The lookup's part touches only rows
 * of tokens in the batch; with tied weights the output projection z = h E^T sends a
 * gradient to every row (every token's logit is in the softmax), so dE is dense. */
static void test_lookup_gradient_is_sparse_and_the_tied_output_makes_dE_dense(void** state) {
    GPT m;
    int inputs[B * T];
    float* lookup;
    one_step(&m, 1, inputs, &lookup);
    for (int v = 0; v < V; v++) {
        int in_batch = v >= 2 && v <= 5;
        assert_int_equal(row_is_zero(lookup, v), !in_batch);
        assert_false(row_is_zero(m.grads.wte, v));  /* dense: every row has a gradient */
    }
    free(lookup);
    gpt_free(&m);
}

/* Untied, the output layer has its own matrix: E learns from the lookup alone, so
 * rows of tokens that were not in the batch get exactly nothing. */
static void test_untied_E_gets_its_gradient_from_the_lookup_alone(void** state) {
    GPT m;
    int inputs[B * T];
    float* lookup;
    one_step(&m, 0, inputs, &lookup);
    assert_memory_equal(m.grads.wte, lookup, V * C * sizeof(float));
    for (int v = 0; v < V; v++) assert_int_equal(row_is_zero(m.grads.wte, v), !(v >= 2 && v <= 5));
    assert_false(row_is_zero(m.grads.lm_head, 0));  /* the head's matrix gets the dense part */
    free(lookup);
    gpt_free(&m);
}

/* Identical rows: every cosine is 1 and E has rank one. */
static void test_identical_rows_have_cosine_one_and_effective_rank_one(void** state) {
    float E[V * C];
    for (int v = 0; v < V; v++)
        for (int c = 0; c < C; c++) E[v * C + c] = (float)(c + 1);
    assert_true(fabs(mean_pairwise_cosine(E, V, C) - 1.0) < 1e-6);
    assert_true(fabs(effective_rank(E, V, C) - 1.0) < 1e-6);
}

/* Orthonormal rows: every cosine is 0 and all n singular values are equal. */
static void test_orthonormal_rows_have_cosine_zero_and_full_effective_rank(void** state) {
    float E[C * C] = {0};
    for (int i = 0; i < C; i++) E[i * C + (i * 3) % C] = i % 2 ? -1.0f : 1.0f;  /* a signed permutation */
    assert_true(fabs(mean_pairwise_cosine(E, C, C)) < 1e-9);
    assert_true(fabs(effective_rank(E, C, C) - C) < 1e-6);
    /* a rotated orthonormal basis: the same answers */
    float R[2 * 2] = {cosf(0.3f), sinf(0.3f), -sinf(0.3f), cosf(0.3f)};
    assert_true(fabs(effective_rank(R, 2, 2) - 2.0) < 1e-6);
    /* random Gaussian rows in many dimensions: nearly orthogonal, nearly full rank */
    Rng rng;
    rng_seed(&rng, 2, 0);
    float* G = random_tensor(&rng, 65 * 128, 0.02f);
    double cos = mean_pairwise_cosine(G, 65, 128), rank = effective_rank(G, 65, 128);
    printf("  random N(0, 0.02) 65 x 128: mean cosine %.4f, effective rank %.1f of 65\n", cos, rank);
    assert_true(fabs(cos) < 0.01 && rank > 50);
    free(G);
}

static void test_metrics_helpers(void** state) {
    double x[5] = {1, 2, 3, 4, 5}, y[5] = {10, 20, 30, 40, 50}, z[5] = {5, 4, 3, 2, 1}, t[5] = {1, 1, 2, 2, 3};
    assert_true(fabs(spearman(x, y, 5) - 1.0) < 1e-12);
    assert_true(fabs(spearman(x, z, 5) + 1.0) < 1e-12);
    assert_true(spearman(x, t, 5) > 0.9);  /* ties share ranks */
    float E[4 * 2] = {1, 0, 0.9f, 0.1f, 0, 1, -1, 0};
    int ids[3];
    float scores[3];
    assert_int_equal(nearest_rows(E, 4, 2, E, 0, 3, ids, scores), 3);
    assert_int_equal(ids[0], 1);  /* most similar to row 0 */
    assert_int_equal(ids[2], 3);  /* its opposite last */
    assert_true(fabsf(scores[2] + 1.0f) < 1e-6f);
    assert_int_equal(byte_class('Q'), CLASS_UPPER);
    assert_int_equal(byte_class('e'), CLASS_VOWEL);
    assert_int_equal(byte_class('t'), CLASS_CONSONANT);
    assert_int_equal(byte_class('7'), CLASS_DIGIT);
    assert_int_equal(byte_class(';'), CLASS_PUNCT);
    assert_int_equal(byte_class('\n'), CLASS_SPACE);
    assert_int_equal(byte_class(0xC3), CLASS_NONE);
    /* purity: two clean clusters of classes give 1 */
    float P[4 * 2] = {1, 0, 1, 0.01f, 0, 1, 0.01f, 1};
    int classes[4] = {CLASS_UPPER, CLASS_UPPER, CLASS_DIGIT, CLASS_DIGIT};
    EmbeddingStats s;
    embedding_stats(P, 4, 2, NULL, classes, 1, &s);
    assert_true(s.knn_purity == 1.0);
    assert_true(isnan(s.norm_freq_spearman));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_hot_times_E_equals_the_row_lookup),
        cmocka_unit_test(test_lookup_gradient_is_sparse_and_the_tied_output_makes_dE_dense),
        cmocka_unit_test(test_untied_E_gets_its_gradient_from_the_lookup_alone),
        cmocka_unit_test(test_identical_rows_have_cosine_one_and_effective_rank_one),
        cmocka_unit_test(test_orthonormal_rows_have_cosine_zero_and_full_effective_rank),
        cmocka_unit_test(test_metrics_helpers),
    };
    return cmocka_run_group_tests_name("embeddings", tests, NULL, NULL);
}
