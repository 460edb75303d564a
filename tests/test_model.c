/* test_model.c: the whole GPT's backward against finite differences of its loss,
 * for every parameter tensor, in all eight variants (learned, sinusoidal, rotary
 * or no positions x tied or untied output weights) with biases, in nanoGPT's
 * bias-free variant, and with E factorised as A B (embed_rank); and facts about
 * its layout. */
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model.h"
#include "gpt/diagnose.h"
#include "gpt/evaluate.h"
#include "gpt/generate.h"
#include "gpt/groups.h"
#include "test_util.h"

#define FD_STEP 3e-3  /* balances truncation (h^2, see attprojb) against float32 noise (1/h) */
#define FD_ATOL 1e-4   /* loss ~2.4 in float32: central differences carry ~1e-5 of noise */
#define FD_RTOL 1e-2
enum { ENTRIES_PER_TENSOR = 24, B = 2, T = 5 };

static GPTConfig tiny_config(PosEncoding pos, int tied, int bias) {
    GPTConfig c = {.vocab_size = 11, .block_size = 6, .n_layer = 2, .n_head = 2, .n_embd = 8,
                   .pos_encoding = pos, .tie_weights = tied, .bias = bias};
    c.embed_scale = pos == POS_SINUSOIDAL ? sqrtf((float)c.n_embd) : 1.0f;
    return c;
}

static void random_batch(int* inputs, int* targets, int V, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed, 7);
    for (int i = 0; i < B * T; i++) { inputs[i] = (int)rng_below(&rng, V); targets[i] = (int)rng_below(&rng, V); }
}

/* max_i |a[i] - b[i]| in double (b NULL: max_i |a[i]|). A comparison, not
 * fmax(worst, fabs(...)): aarch64 gcc 12 at -O3 (make cross-test) stops with an
 * internal compiler error in vect_transform_reduction when it vectorises an fmax
 * reduction in double over float data. The value is the same: a NaN difference
 * compares false and is skipped, as fmax skips it. */
static double max_abs_diff(const float* a, const float* b, size_t n) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(b ? a[i] - b[i] : a[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

/* Perturb the model's parameters so LN weights and biases are not at their
 * symmetric init values (a zero bias would hide a wrong bias gradient). */
static void break_symmetry(GPT* m) {
    Rng rng;
    rng_seed(&rng, 99, 3);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] += 0.1f * rng_normal(&rng);
}

static void check_every_tensor(PosEncoding pos, int tied, int bias, float dropout, float embed_dropout, int rank) {
    GPTConfig c = tiny_config(pos, tied, bias);
    c.dropout = dropout;
    c.embed_dropout = embed_dropout;
    c.embed_rank = rank;
    GPT m;
    gpt_build(&m, &c, B, 42);
    /* training mode with a fixed (seed, step): every forward draws the same masks,
     * so the loss is a fixed function of the parameters */
    if (dropout > 0 || embed_dropout > 0) gpt_train_mode(&m, 5, 17);
    break_symmetry(&m);
    int inputs[B * T], targets[B * T];
    random_batch(inputs, targets, c.vocab_size, 5);
    gpt_forward(&m, inputs, targets, B, T);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    printf("  %s positions, %s weights, %s, dropout %g, embed_dropout %g, embed_rank %d\n", POS_ENCODING_NAMES[pos],
           tied ? "tied" : "untied", bias ? "biases" : "no biases", dropout, embed_dropout, rank);

    int checked = 0;
    for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
        const ParamTensorInfo* info = &m.tensors[t];
        if (info->size == 0) continue;
        float* p = m.params_memory + info->offset;
        const float* g = m.grads_memory + info->offset;
        /* entries spread over the whole tensor, plus a random direction through all of it */
        Rng rng;
        rng_seed(&rng, 11, (uint64_t)t);
        double num[ENTRIES_PER_TENSOR + 1], ana[ENTRIES_PER_TENSOR + 1];
        int n = info->size < ENTRIES_PER_TENSOR ? (int)info->size : ENTRIES_PER_TENSOR;
        for (int k = 0; k < n; k++) {
            size_t i = info->size <= ENTRIES_PER_TENSOR ? (size_t)k : rng_below(&rng, (uint32_t)info->size);
            float saved = p[i];
            p[i] = saved + (float)FD_STEP;
            double up = gpt_forward(&m, inputs, targets, B, T);
            p[i] = saved - (float)FD_STEP;
            double down = gpt_forward(&m, inputs, targets, B, T);
            p[i] = saved;
            num[k] = (up - down) / (2 * FD_STEP);
            ana[k] = g[i];
        }
        float* dir = random_tensor(&rng, info->size, 1.0f);
        float* saved = copy_tensor(p, info->size);
        double directional = 0.0, norm2 = 0.0;
        for (size_t i = 0; i < info->size; i++) { directional += (double)g[i] * dir[i]; norm2 += (double)dir[i] * dir[i]; }
        double h = FD_STEP / sqrt(norm2);  /* step of length FD_STEP along dir */
        for (size_t i = 0; i < info->size; i++) p[i] = saved[i] + (float)(h * dir[i]);
        double up = gpt_forward(&m, inputs, targets, B, T);
        for (size_t i = 0; i < info->size; i++) p[i] = saved[i] - (float)(h * dir[i]);
        double down = gpt_forward(&m, inputs, targets, B, T);
        memcpy(p, saved, info->size * sizeof(float));
        num[n] = (up - down) / (2 * h) * h;  /* both as derivatives along the unscaled dir, times h */
        ana[n] = directional * h;
        double worst = worst_ratio(ana, num, n + 1, FD_ATOL, FD_RTOL);
        double gmax = 0;
        for (int k = 0; k <= n; k++) gmax = fmax(gmax, fabs(ana[k]));
        printf("    %-9s %7zu params, %2d entries + 1 direction, max|grad| %.3g, worst error/tolerance %.3f\n",
               info->name, info->size, n, gmax, worst);
        assert_true(gmax > 0.0);
        assert_true(worst <= 1.0);
        free(dir);
        free(saved);
        checked++;
    }
    /* 19 rows, less wpe unless learned, less lm_head when tied, less the 7 biases; less
     * wte_a and wte_b without embed_rank, less wte with it */
    assert_int_equal(checked, NUM_PARAM_TENSORS - (pos != POS_LEARNED) - (tied != 0) - (bias ? 0 : 7) - (rank ? 1 : 2));
    gpt_free(&m);
}

static void test_gradients_learned_positions_tied(void** s) { check_every_tensor(POS_LEARNED, 1, 1, 0, 0, 0); }
static void test_gradients_learned_positions_untied(void** s) { check_every_tensor(POS_LEARNED, 0, 1, 0, 0, 0); }
static void test_gradients_sinusoidal_positions_tied(void** s) { check_every_tensor(POS_SINUSOIDAL, 1, 1, 0, 0, 0); }
static void test_gradients_sinusoidal_positions_untied(void** s) { check_every_tensor(POS_SINUSOIDAL, 0, 1, 0, 0, 0); }
static void test_gradients_no_positions_tied(void** s) { check_every_tensor(POS_NONE, 1, 1, 0, 0, 0); }
static void test_gradients_no_positions_untied(void** s) { check_every_tensor(POS_NONE, 0, 1, 0, 0, 0); }
static void test_gradients_rope_tied(void** s) { check_every_tensor(POS_ROPE, 1, 1, 0, 0, 0); }
static void test_gradients_rope_untied(void** s) { check_every_tensor(POS_ROPE, 0, 1, 0, 0, 0); }
static void test_gradients_without_biases(void** s) { check_every_tensor(POS_LEARNED, 1, 0, 0, 0, 0); }
static void test_gradients_with_dropout_fixed_masks(void** s) { check_every_tensor(POS_LEARNED, 1, 1, 0.2f, 0, 0); }
static void test_gradients_with_embed_dropout_fixed_masks(void** s) { check_every_tensor(POS_LEARNED, 0, 1, 0, 0.3f, 0); }
/* E = A B: dA and dB through the lookup alone (untied) and through both paths (tied) */
static void test_gradients_factored_embedding_tied(void** s) { check_every_tensor(POS_LEARNED, 1, 1, 0, 0, 3); }
static void test_gradients_factored_embedding_untied(void** s) { check_every_tensor(POS_LEARNED, 0, 1, 0, 0, 3); }
static void test_gradients_factored_embedding_rope_embed_dropout(void** s) {
    check_every_tensor(POS_ROPE, 1, 0, 0, 0.3f, 5);
}

/* gpt_loss reuses one block's activation memory for every block: the same loss
 * and logits as gpt_forward, bit for bit; it clears backward_ready, the flag
 * gpt_backward checks before it runs. */
static void test_loss_only_forward_equals_the_full_forward(void** state) {
    GPTConfig c = tiny_config(POS_LEARNED, 1, 1);
    GPT m;
    gpt_build(&m, &c, B, 8);
    int inputs[B * T], targets[B * T];
    random_batch(inputs, targets, c.vocab_size, 3);
    size_t n_logits = (size_t)B * T * c.vocab_size;
    float full = gpt_forward(&m, inputs, targets, B, T);
    assert_true(m.backward_ready);
    float* logits = copy_tensor(m.acts.logits, n_logits);
    float loss = gpt_loss(&m, inputs, targets, B, T);
    assert_true(!m.backward_ready);
    assert_true(loss == full);
    assert_memory_equal(logits, m.acts.logits, n_logits * sizeof(float));
    free(logits);
    gpt_free(&m);
}

/* gpt_mean_loss: the same bits as the mean of gpt_loss over the same batches,
 * which come from the callback in order. */
typedef struct { uint64_t next_seed; int V, calls; } SeededBatches;

static void next_seeded_batch(void* ctx, int* inputs, int* targets) {
    SeededBatches* sb = ctx;
    random_batch(inputs, targets, sb->V, sb->next_seed++);
    sb->calls++;
}

static void test_mean_loss_equals_the_mean_of_single_losses(void** state) {
    for (int tie = 0; tie <= 1; tie++) {
        GPTConfig c = tiny_config(POS_LEARNED, tie, 1);
        GPT m;
        gpt_build(&m, &c, B, 8);
        break_symmetry(&m);
        enum { N_BATCHES = 5 };
        int inputs[B * T], targets[B * T];
        double total = 0.0;
        for (int i = 0; i < N_BATCHES; i++) {
            random_batch(inputs, targets, c.vocab_size, 100 + i);
            total += gpt_loss(&m, inputs, targets, B, T);
        }
        SeededBatches sb = {.next_seed = 100, .V = c.vocab_size};
        float mean = gpt_mean_loss(&m, N_BATCHES, next_seeded_batch, &sb, inputs, targets, B, T);
        assert_int_equal(sb.calls, N_BATCHES);
        assert_true(mean == (float)(total / N_BATCHES));
        gpt_free(&m);
    }
}

/* With two threads and four layers, gpt_mean_loss scores the batches in lanes,
 * one whole batch per thread on the one-thread kernels: still the same bits as
 * gpt_loss one batch after another, on one thread or two, with the batches
 * drawn in order, also when scored a round at a time (gpt_batch_losses); and the
 * next training step is unaffected. */
static void test_mean_loss_in_lanes_equals_the_mean_of_single_losses(void** state) {
    GPTConfig c = tiny_config(POS_LEARNED, 1, 1);
    c.n_layer = 4;  /* three lanes' blocks fit in four blocks of activations */
    int threads = omp_get_max_threads();
    omp_set_num_threads(2);
    GPT m;
    gpt_build(&m, &c, B, 8);
    break_symmetry(&m);
    assert_int_equal(gpt_eval_lanes(&m), 2);
    enum { N_BATCHES = 7 };
    int inputs[B * T], targets[B * T];
    double total[2] = {0.0, 0.0};
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        for (int i = 0; i < N_BATCHES; i++) {
            random_batch(inputs, targets, c.vocab_size, 100 + i);
            total[t - 1] += gpt_loss(&m, inputs, targets, B, T);
        }
    }
    assert_true(total[0] == total[1]);
    SeededBatches sb = {.next_seed = 100, .V = c.vocab_size};
    float mean = gpt_mean_loss(&m, N_BATCHES, next_seeded_batch, &sb, inputs, targets, B, T);
    assert_int_equal(sb.calls, N_BATCHES);
    assert_true(mean == (float)(total[0] / N_BATCHES));
    /* in rounds of two batches (the last one alone), as train.c scores an
     * evaluation it may abandon between rounds: the losses add up to the same bits */
    float losses[N_BATCHES];
    sb = (SeededBatches){.next_seed = 100, .V = c.vocab_size};
    for (int done = 0; done < N_BATCHES; done += 2)
        gpt_batch_losses(&m, losses + done, NULL, done + 2 <= N_BATCHES ? 2 : 1, next_seeded_batch, &sb, inputs, targets,
                         B, T);
    double rounds = 0.0;
    for (int i = 0; i < N_BATCHES; i++) rounds += losses[i];
    assert_int_equal(sb.calls, N_BATCHES);
    assert_true((float)(rounds / N_BATCHES) == mean);
    /* the calibration counts of the batches, in lanes and one batch at a time on one
     * thread, against the softmax of gpt_forward's logits in double: the count, the
     * sum of top probabilities and of correct tops per bin; the ECE from them */
    Calibration cal[2][N_BATCHES], sum[2];
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        sb = (SeededBatches){.next_seed = 100, .V = c.vocab_size};
        gpt_batch_losses(&m, losses, cal[t - 1], N_BATCHES, next_seeded_batch, &sb, inputs, targets, B, T);
        memset(&sum[t - 1], 0, sizeof sum[0]);
        for (int i = 0; i < N_BATCHES; i++) calibration_add(&sum[t - 1], &cal[t - 1][i]);
    }
    assert_memory_equal(&sum[0], &sum[1], sizeof sum[0]);
    double want_count[ECE_BINS] = {0}, want_conf[ECE_BINS] = {0}, want_correct[ECE_BINS] = {0};
    for (int i = 0; i < N_BATCHES; i++) {
        random_batch(inputs, targets, c.vocab_size, 100 + i);
        gpt_forward(&m, inputs, targets, B, T);
        for (int n = 0; n < B * T; n++) {
            const float* z = m.acts.logits + (size_t)n * c.vocab_size;
            int top = 0;
            double total_e = 0.0;
            for (int v = 0; v < c.vocab_size; v++) if (z[v] > z[top]) top = v;
            for (int v = 0; v < c.vocab_size; v++) total_e += exp((double)z[v] - z[top]);
            double p = 1.0 / total_e;
            int bin = p >= 1.0 ? ECE_BINS - 1 : (int)(p * ECE_BINS);
            want_count[bin] += 1;
            want_conf[bin] += p;
            want_correct[bin] += top == targets[n];
        }
    }
    double ece = 0.0;
    for (int b = 0; b < ECE_BINS; b++) {
        assert_true(sum[0].count[b] == want_count[b] && sum[0].correct[b] == want_correct[b]);
        assert_true(fabs(sum[0].confidence[b] - want_conf[b]) < 1e-5 * (1 + want_conf[b]));
        ece += fabs(want_correct[b] - want_conf[b]);
    }
    ece /= N_BATCHES * B * T;
    printf("  val ECE of %d batches: %.6f (direct: %.6f), the same counts in lanes and on one thread\n", N_BATCHES,
           calibration_ece(&sum[0]), ece);
    assert_true(fabs(calibration_ece(&sum[0]) - ece) < 1e-6);
    /* a training step after the lanes: the same loss as on a fresh copy of the model */
    random_batch(inputs, targets, c.vocab_size, 3);
    float after = gpt_forward(&m, inputs, targets, B, T);
    GPT fresh;
    gpt_build(&fresh, &c, B, 8);
    break_symmetry(&fresh);
    assert_true(after == gpt_forward(&fresh, inputs, targets, B, T));
    gpt_free(&fresh);
    gpt_free(&m);
    omp_set_num_threads(threads);
}

/* Dropout acts in training mode only; its masks are a function of (seed, step). */
static void test_dropout_only_in_training_mode(void** state) {
    GPTConfig c = tiny_config(POS_LEARNED, 1, 1), cd = c;
    cd.dropout = 0.3f;
    GPT m, md;
    gpt_build(&m, &c, B, 8);
    gpt_build(&md, &cd, B, 8);
    int inputs[B * T], targets[B * T];
    random_batch(inputs, targets, c.vocab_size, 2);
    float plain = gpt_forward(&m, inputs, targets, B, T);
    assert_true(gpt_forward(&md, inputs, targets, B, T) == plain);  /* eval mode: no dropout */
    gpt_train_mode(&md, 1, 10);
    float a = gpt_forward(&md, inputs, targets, B, T);
    float again = gpt_forward(&md, inputs, targets, B, T);
    gpt_train_mode(&md, 1, 11);
    float next_step = gpt_forward(&md, inputs, targets, B, T);
    gpt_train_mode(&m, 1, 10);
    assert_true(gpt_forward(&m, inputs, targets, B, T) == plain);  /* dropout = 0: training mode is eval */
    assert_true(a != plain);
    assert_true(a == again);       /* same (seed, step): same masks */
    assert_true(next_step != a);   /* next step: new masks */
    gpt_eval_mode(&md);
    assert_true(gpt_forward(&md, inputs, targets, B, T) == plain);
    gpt_free(&m);
    gpt_free(&md);
}

/* Generation feeds one token at a time through the key/value cache; each step's
 * logits must be the full forward's logits at that position. */
static void check_cache(PosEncoding pos, int tied, int bias, int rank) {
    GPTConfig c = tiny_config(pos, tied, bias);
    c.embed_rank = rank;
    GPT m;
    gpt_build(&m, &c, 1, 21);
    break_symmetry(&m);
    int T_full = c.block_size, V = c.vocab_size;
    int ids[B * T], dummy[B * T];    /* the first block_size of them are used */
    random_batch(ids, dummy, V, 4);
    gpt_forward(&m, ids, NULL, 1, T_full);
    float* full = copy_tensor(m.acts.logits, (size_t)T_full * V);
    KVCache kv;
    kvcache_init(&kv, &c);
    double worst = 0;
    for (int t = 0; t < T_full; t++) {
        const float* z = gpt_forward_cached(&m, &kv, ids[t]);
        worst = fmax(worst, max_abs_diff(z, full + (size_t)t * V, V));
    }
    printf("  cache vs full forward (%s, %s, %s, embed_rank %d): max |diff| %.2g\n", POS_ENCODING_NAMES[pos],
           tied ? "tied" : "untied", bias ? "biases" : "no biases", rank, worst);
    assert_true(worst < 1e-5);
    assert_int_equal(kv.n_ctx, T_full);
    kvcache_free(&kv);
    free(full);
    gpt_free(&m);
}

static void test_kv_cache_gives_the_full_forward_logits(void** state) {
    check_cache(POS_LEARNED, 1, 1, 0);
    check_cache(POS_SINUSOIDAL, 0, 1, 0);
    check_cache(POS_LEARNED, 1, 0, 0);
    check_cache(POS_NONE, 1, 1, 0);
    check_cache(POS_ROPE, 0, 1, 0);
    check_cache(POS_LEARNED, 1, 1, 3);
    check_cache(POS_LEARNED, 0, 1, 3);
}

static void test_no_bias_removes_exactly_the_biases(void** state) {
    GPTConfig cb = tiny_config(POS_LEARNED, 1, 1), cn = tiny_config(POS_LEARNED, 1, 0);
    GPT mb, mn;
    gpt_build(&mb, &cb, B, 1);
    gpt_build(&mn, &cn, B, 1);
    const char* biases[] = {"ln1b", "qkvb", "attprojb", "ln2b", "fcb", "fcprojb", "lnfb"};
    size_t removed = 0;
    for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
        int is_bias = 0;
        for (int k = 0; k < 7; k++) is_bias |= strcmp(mb.tensors[t].name, biases[k]) == 0;
        if (is_bias) { assert_int_equal(mn.tensors[t].size, 0); removed += mb.tensors[t].size; }
        else assert_int_equal(mn.tensors[t].size, mb.tensors[t].size);
    }
    /* per layer: 2 LN biases (C), qkv (3C), attention proj (C), fc (4C), fc proj (C); plus LNf (C) */
    size_t C = cb.n_embd;
    assert_int_equal(removed, cb.n_layer * (2 * C + 3 * C + C + 4 * C + C) + C);
    assert_int_equal(mb.num_params - mn.num_params, removed);
    assert_null(mn.params.qkvb);
    assert_null(mn.grads.lnfb);
    gpt_free(&mb);
    gpt_free(&mn);
}

static void test_tied_output_layer_is_E_itself(void** state) {
    GPTConfig c = tiny_config(POS_LEARNED, 1, 1);
    GPT m;
    gpt_build(&m, &c, B, 1);
    assert_ptr_equal(m.params.lm_head, m.params.wte);
    assert_ptr_equal(m.grads.lm_head, m.grads.wte);
    GPTConfig cu = tiny_config(POS_LEARNED, 0, 1);
    GPT mu;
    gpt_build(&mu, &cu, B, 1);
    assert_true(mu.params.lm_head != mu.params.wte);
    /* untying adds exactly one (V, C) matrix */
    assert_int_equal(mu.num_params - m.num_params, (size_t)c.vocab_size * c.n_embd);
    gpt_free(&m);
    gpt_free(&mu);
}

static void test_sinusoidal_positions_have_no_parameters(void** state) {
    GPTConfig cl = tiny_config(POS_LEARNED, 1, 1), cs = tiny_config(POS_SINUSOIDAL, 1, 1);
    GPTConfig cn = tiny_config(POS_NONE, 1, 1);
    GPT ml, ms, mn;
    gpt_build(&ml, &cl, B, 1);
    gpt_build(&ms, &cs, B, 1);
    gpt_build(&mn, &cn, B, 1);
    assert_null(ms.params.wpe);
    assert_null(mn.params.wpe);
    assert_null(mn.pe_table);
    assert_int_equal(ml.num_params - ms.num_params, (size_t)cl.block_size * cl.n_embd);
    assert_int_equal(mn.num_params, ms.num_params);
    gpt_free(&ml);
    gpt_free(&ms);
    gpt_free(&mn);
}

/* Without positions, one block's attention sees the earlier tokens as a set: the
 * logits at the last position do not change when two earlier tokens swap places
 * (up to the order of the sums), while with learned positions they do. (In a
 * second block position t holds what block one made of the prefix 0..t, a set
 * that the swap changes: that is how a model without positions recovers order.) */
static void test_no_positions_sees_the_context_as_a_set(void** state) {
    const PosEncoding kinds[] = {POS_LEARNED, POS_NONE};
    for (int k = 0; k < 2; k++) {
        PosEncoding pos = kinds[k];
        GPTConfig c = tiny_config(pos, 1, 1);
        c.n_layer = 1;
        GPT m;
        gpt_build(&m, &c, 1, 3);
        break_symmetry(&m);
        int V = c.vocab_size, a[T] = {1, 4, 7, 2, 9}, b[T] = {7, 4, 1, 2, 9};  /* 0 and 2 swapped */
        gpt_forward(&m, a, NULL, 1, T);
        float* za = copy_tensor(m.acts.logits + (size_t)(T - 1) * V, (size_t)V);
        gpt_forward(&m, b, NULL, 1, T);
        double diff = max_abs_diff(za, m.acts.logits + (size_t)(T - 1) * V, (size_t)V);
        printf("  %s positions: last logits move by %.2g when tokens 0 and 2 swap\n", POS_ENCODING_NAMES[pos], diff);
        if (pos == POS_NONE) assert_true(diff < 1e-5);
        else assert_true(diff > 1e-3);
        free(za);
        gpt_free(&m);
    }
}

/* embed_init_std scales E's initial values and nothing else: the other tensors
 * come out of the same seeded stream with the same bits. */
static void test_embed_init_std_scales_E_only(void** state) {
    GPTConfig c = {.vocab_size = 65, .block_size = 64, .n_layer = 2, .n_head = 4, .n_embd = 128,
                   .pos_encoding = POS_LEARNED, .embed_scale = 1.0f, .tie_weights = 0, .bias = 1};
    GPTConfig wide = c;
    wide.embed_init_std = 0.5f;
    GPT m, w;
    gpt_build(&m, &c, 1, 1337);
    gpt_build(&w, &wide, 1, 1337);
    const ParamTensorInfo* e = &m.tensors[0];
    assert_string_equal(e->name, "wte");
    double sq = 0;
    for (size_t i = 0; i < e->size; i++) sq += (double)w.params_memory[i] * w.params_memory[i];
    double std = sqrt(sq / e->size);
    printf("  embed_init_std 0.5: E's std %.4f over %zu values\n", std, e->size);
    assert_true(fabs(std - 0.5) < 0.025);
    assert_memory_equal(m.params_memory + e->size, w.params_memory + e->size,
                        (m.num_params - e->size) * sizeof(float));
    gpt_free(&m);
    gpt_free(&w);
}

/* PARAM_TABLE names every tensor as Hugging Face's GPT2LMHeadModel does, in its
 * layout: Conv1D [in, out] for the four block matrices, the rest as stored. The
 * table, worked out for a 2-layer untied model with biases, gives exactly this
 * state_dict (written out by hand from transformers' GPT-2); and each row's field
 * is the ParameterTensors pointer at its memory. */
static void test_parameter_table_gives_gpt2_names_and_layouts(void** state) {
    GPTConfig c = tiny_config(POS_LEARNED, 0, 1);
    GPT m;
    gpt_build(&m, &c, B, 1);
    int V = c.vocab_size, P = c.block_size, C = c.n_embd;
    struct { const char* name; int64_t shape[2]; } want[] = {
        {"transformer.wte.weight", {V, C}}, {"transformer.wpe.weight", {P, C}},
        {"transformer.ln_f.weight", {C, 0}}, {"transformer.ln_f.bias", {C, 0}}, {"lm_head.weight", {V, C}},
#define GPT2_BLOCK(i) \
        {"transformer.h." #i ".ln_1.weight", {C, 0}}, {"transformer.h." #i ".ln_1.bias", {C, 0}}, \
        {"transformer.h." #i ".attn.c_attn.weight", {C, 3 * C}}, {"transformer.h." #i ".attn.c_attn.bias", {3 * C, 0}}, \
        {"transformer.h." #i ".attn.c_proj.weight", {C, C}}, {"transformer.h." #i ".attn.c_proj.bias", {C, 0}}, \
        {"transformer.h." #i ".ln_2.weight", {C, 0}}, {"transformer.h." #i ".ln_2.bias", {C, 0}}, \
        {"transformer.h." #i ".mlp.c_fc.weight", {C, 4 * C}}, {"transformer.h." #i ".mlp.c_fc.bias", {4 * C, 0}}, \
        {"transformer.h." #i ".mlp.c_proj.weight", {4 * C, C}}, {"transformer.h." #i ".mlp.c_proj.bias", {C, 0}}
        GPT2_BLOCK(0), GPT2_BLOCK(1),
#undef GPT2_BLOCK
    };
    size_t n_want = sizeof want / sizeof want[0], found = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const ParamTensorInfo* t = &m.tensors[i];
        if (t->size == 0) continue;  /* E's factors wte_a and wte_b: embed_rank only */
        float** field = (float**)((char*)&m.params + t->spec->field);
        assert_ptr_equal(*field, m.params_memory + t->offset);
        for (int l = 0; l < t->layers; l++) {
            char name[128];
            snprintf(name, sizeof name, t->spec->hf_name, l);
            int tr = t->spec->hf_transpose;
            int64_t rows = tr ? t->slice[1] : t->slice[0], cols = tr ? t->slice[0] : t->slice[1];
            size_t k = 0;
            while (k < n_want && strcmp(want[k].name, name) != 0) k++;
            if (k == n_want) fail_msg("%s (row %s) is not a GPT-2 name", name, t->name);
            assert_int_equal(rows, want[k].shape[0]);
            assert_int_equal(cols, want[k].shape[1]);
            found++;
        }
    }
    assert_int_equal(found, n_want);  /* names are distinct: every GPT-2 tensor, once */
    gpt_free(&m);
}

/* E = A B with embed_rank r: A (V, r) and B stored as wte_b (C, r) take the place
 * of E's V x C parameters; E is the model's own memory, (A B) row by row, and the
 * tied output layer reads it. Its values start with embed_init_std's spread
 * (0.02 by default, within 5% over 8320 values), the factors with one spread each,
 * sqrt(0.02 / sqrt(r)); a wider embed_init_std widens E alike. */
static void test_factored_E_is_A_times_B_with_the_init_spread(void** state) {
    GPTConfig c = {.vocab_size = 65, .block_size = 64, .n_layer = 2, .n_head = 4, .n_embd = 128,
                   .pos_encoding = POS_LEARNED, .embed_scale = 1.0f, .tie_weights = 1, .bias = 1};
    GPTConfig cr = c;
    cr.embed_rank = 16;
    GPT m, f;
    gpt_build(&m, &c, 1, 1337);
    gpt_build(&f, &cr, 1, 1337);
    size_t V = 65, C = 128, r = 16;
    assert_int_equal(m.num_params - f.num_params, V * C - (V + C) * r);
    assert_int_equal(f.tensors[0].size, 0);  /* wte: no parameters of its own */
    assert_ptr_equal(f.params.wte, f.embed);
    assert_ptr_equal(f.params.lm_head, f.params.wte);
    assert_ptr_equal(f.grads.wte, f.dembed);
    assert_int_equal(f.tensors[1].size, V * r);
    assert_int_equal(f.tensors[2].size, C * r);
    double worst = 0.0, sq = 0.0;
    for (size_t v = 0; v < V; v++)
        for (size_t j = 0; j < C; j++) {
            double e = 0.0;  /* (A B)_vj = sum_k A_vk B_kj, B_kj = wte_b[j][k] */
            for (size_t k = 0; k < r; k++) e += (double)f.params.wte_a[v * r + k] * f.params.wte_b[j * r + k];
            worst = fmax(worst, fabs(e - f.params.wte[v * C + j]));
            sq += e * e;
        }
    double std = sqrt(sq / (V * C)), factor = sqrt(0.02 / sqrt((double)r)), sa = 0.0, sb = 0.0;
    for (size_t i = 0; i < V * r; i++) sa += (double)f.params.wte_a[i] * f.params.wte_a[i];
    for (size_t i = 0; i < C * r; i++) sb += (double)f.params.wte_b[i] * f.params.wte_b[i];
    sa = sqrt(sa / (V * r));
    sb = sqrt(sb / (C * r));
    printf("  embed_rank %zu: E = A B within %.2g of the double product; std E %.4f, A %.4f, B %.4f (want %.4f)\n",
           r, worst, std, sa, sb, factor);
    assert_true(worst < 1e-6);
    assert_true(fabs(std - 0.02) < 0.05 * 0.02);
    assert_true(fabs(sa - factor) < 0.05 * factor && fabs(sb - factor) < 0.05 * factor);
    GPTConfig wide = cr;
    wide.embed_init_std = 0.5f;
    GPT w;
    gpt_build(&w, &wide, 1, 1337);
    sq = 0.0;
    for (size_t i = 0; i < V * C; i++) sq += (double)w.params.wte[i] * w.params.wte[i];
    printf("  embed_init_std 0.5: E = A B's std %.4f\n", sqrt(sq / (V * C)));
    assert_true(fabs(sqrt(sq / (V * C)) - 0.5) < 0.05 * 0.5);
    gpt_free(&w);
    gpt_free(&m);
    gpt_free(&f);
}

/* gpt_backward adds: after one forward, two backwards give twice one backward's
 * gradients, dA and dB among them (each pass makes its dE anew and adds only its
 * fold: a dE kept from the first pass would make them three times), tied and
 * untied; within rounding, as a product may add into the old sum in its chain. */
static void test_factored_gradients_accumulate(void** state) {
    for (int tied = 0; tied <= 1; tied++) {
        GPTConfig c = tiny_config(POS_LEARNED, tied, 1);
        c.embed_rank = 3;
        GPT m;
        gpt_build(&m, &c, B, 8);
        break_symmetry(&m);  /* the factors change: the next forward makes E anew */
        int inputs[B * T], targets[B * T];
        random_batch(inputs, targets, c.vocab_size, 5);
        gpt_forward(&m, inputs, targets, B, T);
        gpt_zero_grad(&m);
        gpt_backward(&m);
        float* once = copy_tensor(m.grads_memory, m.num_params);
        gpt_backward(&m);
        double gmax = max_abs_diff(once, NULL, m.num_params);
        float* twice = copy_tensor(once, m.num_params);
        for (size_t i = 0; i < m.num_params; i++) twice[i] *= 2.0f;  /* exact: a power of two */
        double worst = max_abs_diff(m.grads_memory, twice, m.num_params);
        free(twice);
        printf("  %s: two backwards give twice one's gradients within %.2g (largest %.3g)\n", tied ? "tied" : "untied",
               worst, gmax);
        assert_true(worst <= 1e-6 * gmax);
        free(once);
        gpt_free(&m);
    }
}

static void test_init_follows_gpt2(void** state) {
    GPTConfig c = {.vocab_size = 65, .block_size = 64, .n_layer = 4, .n_head = 4, .n_embd = 128,
                   .pos_encoding = POS_LEARNED, .embed_scale = 1.0f, .tie_weights = 1, .bias = 1};
    GPT m;
    gpt_build(&m, &c, 1, 1337);
    for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
        const ParamTensorInfo* info = &m.tensors[t];
        if (info->size == 0) continue;
        const float* p = m.params_memory + info->offset;
        double sum = 0, sq = 0;
        for (size_t i = 0; i < info->size; i++) { sum += p[i]; sq += (double)p[i] * p[i]; }
        double mean = sum / info->size, std = sqrt(sq / info->size - mean * mean);
        double want = strstr(info->name, "proj") && info->ndim == 2 ? 0.02 / sqrt(2.0 * c.n_layer)
                    : info->ndim == 2 ? 0.02 : 0.0;
        if (want > 0) {
            assert_true(fabs(std - want) < 0.05 * want);   /* >= 8000 samples: within 5% */
            assert_true(fabs(mean) < 0.1 * want);
        } else {
            double expect = strstr(info->name, "ln") && info->name[strlen(info->name) - 1] == 'w' ? 1.0 : 0.0;
            assert_true(std == 0.0 && mean == expect);     /* LN weights 1, biases 0 */
        }
    }
    int inputs[64], targets[64];
    for (int i = 0; i < 64; i++) { inputs[i] = i % 65; targets[i] = (i * 7) % 65; }
    float loss = gpt_forward(&m, inputs, targets, 1, 64);
    assert_true(fabsf(loss - logf(65.0f)) < 0.05f);  /* small init: near-uniform predictions */
    gpt_free(&m);
}

static void test_forward_accepts_shorter_sequences(void** state) {
    /* the logits at position t depend only on tokens <= t, whatever T is */
    GPTConfig c = tiny_config(POS_LEARNED, 1, 1);
    GPT m;
    gpt_build(&m, &c, B, 3);
    int inputs[B * T], targets[B * T];
    random_batch(inputs, targets, c.vocab_size, 6);
    gpt_forward(&m, inputs, NULL, 1, T);
    float* full = copy_tensor(m.acts.logits, (size_t)T * c.vocab_size);
    gpt_forward(&m, inputs, NULL, 1, 3);
    for (int i = 0; i < 3 * c.vocab_size; i++) assert_true(fabsf(full[i] - m.acts.logits[i]) < 1e-6f);
    free(full);
    gpt_free(&m);
}

/* gpt_find_nonfinite names the first NaN/Inf in step order: parameters, then
 * activations (forward order, layer by layer), then gradients (backward order). */
static void test_find_nonfinite_names_the_first_tensor(void** state) {
    GPTConfig c = tiny_config(POS_LEARNED, 1, 1);
    GPT m;
    gpt_build(&m, &c, B, 3);
    int inputs[B * T], targets[B * T];
    random_batch(inputs, targets, c.vocab_size, 6);
    gpt_forward(&m, inputs, targets, B, T);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    char where[256] = "";
    assert_int_equal(gpt_find_nonfinite(&m, where, sizeof where), 0);

    /* gradients: layer 1's qkvw is made before layer 0's ln2w (backward runs top down) */
    size_t C = c.n_embd;
    m.grads.ln2w[0 * C + 3] = NAN;
    m.grads.qkvw[1 * 3 * C * C + 5] = INFINITY;
    assert_int_equal(gpt_find_nonfinite(&m, where, sizeof where), 1);
    assert_string_equal(where, "gradient of qkvw of layer 1 (value 5 of 192 is inf)");
    /* activations come before every gradient; within them, layer 0 before layer 1 */
    m.acts.fch[(size_t)B * T * 4 * C + 7] = NAN;         /* layer 1 */
    m.acts.atty[2] = -INFINITY;                           /* layer 0 */
    assert_int_equal(gpt_find_nonfinite(&m, where, sizeof where), 1);
    assert_string_equal(where, "activation atty of layer 0 (value 2 of 80 is inf)");
    m.acts.logits[0] = NAN;                               /* after the blocks */
    m.acts.atty[2] = 0.0f;
    assert_int_equal(gpt_find_nonfinite(&m, where, sizeof where), 1);
    assert_string_equal(where, "activation fch of layer 1 (value 7 of 320 is nan)");
    /* parameters come first of all */
    m.params.lnfw[4] = NAN;
    assert_int_equal(gpt_find_nonfinite(&m, where, sizeof where), 1);
    assert_string_equal(where, "parameter lnfw (value 4 of 8 is nan)");
    gpt_free(&m);
}

/* Batch groups: G independent passes over B/G sequences each, their gradients
 * summed. Every row's forward is computed alone, so the loss is the one pass's,
 * bit for bit, with dropout too (each group draws its rows' masks of the whole
 * batch); the weight gradients are the same sums cut into G parts, equal up to
 * rounding. */
enum { GROUPED_B = 6 };
/* A model for the batch-group tests: off its symmetric init, in `groups` groups,
 * in training mode with fixed dropout masks; and their batch of GROUPED_B sequences. */
static void grouped_model(GPT* m, const GPTConfig* c, int groups) {
    gpt_build(m, c, GROUPED_B, 21);
    break_symmetry(m);
    gpt_set_batch_groups(m, groups);
    gpt_train_mode(m, 5, 17);
}

static void grouped_batch(int* inputs, int* targets, int V) {
    Rng rng;
    rng_seed(&rng, 31, 7);
    for (int i = 0; i < GROUPED_B * T; i++) {
        inputs[i] = (int)rng_below(&rng, V);
        targets[i] = (int)rng_below(&rng, V);
    }
}

static float grouped_step(GPT* m, const GPTConfig* c, int groups, int B_run) {
    grouped_model(m, c, groups);
    int inputs[GROUPED_B * T], targets[GROUPED_B * T];
    grouped_batch(inputs, targets, c->vocab_size);
    return gpt_forward_backward(m, inputs, targets, B_run, T);
}

static void test_batch_groups_give_the_one_pass_loss_and_gradients(void** state) {
    GPTConfig c = tiny_config(POS_LEARNED, 1, 1);
    c.dropout = 0.1f;
    GPT one;
    float loss = grouped_step(&one, &c, 1, GROUPED_B);
    double gmax = max_abs_diff(one.grads_memory, NULL, one.num_params);
    int groups[] = {2, 3, 6};
    for (int k = 0; k < 3; k++) {
        GPT m;
        assert_true(grouped_step(&m, &c, groups[k], GROUPED_B) == loss);
        double worst = max_abs_diff(m.grads_memory, one.grads_memory, m.num_params);
        printf("  %d groups: loss %.7f as one pass, gradients within %.2g of it (largest %.3g)\n", groups[k], loss,
               worst, gmax);
        assert_true(worst <= 1e-5 * gmax);
        gpt_free(&m);
    }
    /* a batch smaller than the model's: groups of B/G */
    GPT small1, small2;
    assert_true(grouped_step(&small1, &c, 1, 4) == grouped_step(&small2, &c, 2, 4));
    gpt_free(&small1); gpt_free(&small2);
    gpt_free(&one);
}

/* The bits depend on the number of groups, never on the threads: 1 to 4 threads,
 * groups side by side, in turn, or with a team of threads each. */
static void test_batch_groups_same_bits_on_any_thread_count(void** state) {
    GPTConfig c = tiny_config(POS_LEARNED, 1, 1);
    c.dropout = 0.1f;
    int threads = omp_get_max_threads();
    int groups[] = {2, 3, 2};
    for (int k = 0; k < 3; k++) {
        c.embed_rank = k == 2 ? 3 : 0;  /* E = A B too */
        omp_set_num_threads(1);
        GPT first;
        float loss = grouped_step(&first, &c, groups[k], GROUPED_B);
        for (int t = 2; t <= 4; t++) {
            omp_set_num_threads(t);
            GPT m;
            assert_true(grouped_step(&m, &c, groups[k], GROUPED_B) == loss);
            assert_memory_equal(m.grads_memory, first.grads_memory, first.num_params * sizeof(float));
            gpt_free(&m);
        }
        gpt_free(&first);
    }
    omp_set_num_threads(threads);
}

/* gpt_forward_backward replaces the gradients: with NaN beforehand in the
 * model's gradients and in the groups' copies, it gives the bits of gpt_zero_grad,
 * gpt_forward and gpt_backward (one group), and of the same step on zeroed
 * gradients (two groups), in each variant of the model: every gradient is
 * written, and none is read before that. */
static void test_forward_backward_replaces_the_gradients(void** state) {
    struct { PosEncoding pos; int tied, bias, rank; } variants[] = {
        {POS_LEARNED, 1, 1, 0}, {POS_LEARNED, 0, 1, 0}, {POS_SINUSOIDAL, 1, 1, 0}, {POS_SINUSOIDAL, 0, 0, 0},
        {POS_LEARNED, 1, 1, 3}, {POS_LEARNED, 0, 1, 3}};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        GPTConfig c = tiny_config(variants[v].pos, variants[v].tied, variants[v].bias);
        c.dropout = 0.1f;
        c.embed_rank = variants[v].rank;
        size_t VC = (size_t)c.vocab_size * c.n_embd;
        int inputs[GROUPED_B * T], targets[GROUPED_B * T];
        grouped_batch(inputs, targets, c.vocab_size);
        for (int groups = 1; groups <= 2; groups++) {
            GPT ref, m;
            grouped_model(&ref, &c, groups);
            grouped_model(&m, &c, groups);
            gpt_zero_grad(&ref);
            float loss;
            if (groups == 1) { loss = gpt_forward(&ref, inputs, targets, GROUPED_B, T); gpt_backward(&ref); }
            else loss = gpt_forward_backward(&ref, inputs, targets, GROUPED_B, T);
            for (size_t i = 0; i < m.num_params; i++) m.grads_memory[i] = NAN;
            for (size_t i = 0; i < (size_t)(groups - 1) * m.num_params; i++) m.group_grads[i] = NAN;
            if (c.embed_rank) {  /* and in every dE: each pass writes its own whole */
                for (size_t i = 0; i < VC; i++) m.dembed[i] = NAN;
                for (size_t i = 0; i < (size_t)(groups - 1) * VC; i++) m.group_dembed[i] = NAN;
            }
            assert_true(gpt_forward_backward(&m, inputs, targets, GROUPED_B, T) == loss);
            assert_memory_equal(m.grads_memory, ref.grads_memory, m.num_params * sizeof(float));
            gpt_free(&ref); gpt_free(&m);
        }
    }
}

/* After a grouped step the activations lie group by group: the diagnosis walks
 * them in step order across the groups and names the group. */
static void test_find_nonfinite_in_batch_groups(void** state) {
    GPTConfig c = tiny_config(POS_LEARNED, 1, 1);
    GPT m;
    grouped_step(&m, &c, 2, GROUPED_B);
    char where[256] = "";
    assert_int_equal(gpt_find_nonfinite(&m, where, sizeof where), 0);
    /* each group's block is num_activations / 2 floats, encoded (3 x block_size x C) first */
    float* group1 = m.acts_memory + m.num_activations / 2;
    m.acts_memory[3 * c.block_size * c.n_embd + 1] = NAN;  /* group 0's ln1 of layer 0: a later stage */
    group1[7] = INFINITY;
    assert_int_equal(gpt_find_nonfinite(&m, where, sizeof where), 1);
    assert_string_equal(where, "activation encoded of batch group 1 (value 7 of 120 is inf)");
    group1[7] = 0.0f;
    assert_int_equal(gpt_find_nonfinite(&m, where, sizeof where), 1);
    assert_string_equal(where, "activation ln1 of batch group 0 of layer 0 (value 1 of 120 is nan)");
    gpt_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_learned_positions_tied),
        cmocka_unit_test(test_gradients_learned_positions_untied),
        cmocka_unit_test(test_gradients_sinusoidal_positions_tied),
        cmocka_unit_test(test_gradients_sinusoidal_positions_untied),
        cmocka_unit_test(test_gradients_no_positions_tied),
        cmocka_unit_test(test_gradients_no_positions_untied),
        cmocka_unit_test(test_gradients_rope_tied),
        cmocka_unit_test(test_gradients_rope_untied),
        cmocka_unit_test(test_gradients_without_biases),
        cmocka_unit_test(test_gradients_with_dropout_fixed_masks),
        cmocka_unit_test(test_gradients_with_embed_dropout_fixed_masks),
        cmocka_unit_test(test_gradients_factored_embedding_tied),
        cmocka_unit_test(test_gradients_factored_embedding_untied),
        cmocka_unit_test(test_gradients_factored_embedding_rope_embed_dropout),
        cmocka_unit_test(test_factored_E_is_A_times_B_with_the_init_spread),
        cmocka_unit_test(test_factored_gradients_accumulate),
        cmocka_unit_test(test_loss_only_forward_equals_the_full_forward),
        cmocka_unit_test(test_mean_loss_equals_the_mean_of_single_losses),
        cmocka_unit_test(test_mean_loss_in_lanes_equals_the_mean_of_single_losses),
        cmocka_unit_test(test_dropout_only_in_training_mode),
        cmocka_unit_test(test_kv_cache_gives_the_full_forward_logits),
        cmocka_unit_test(test_no_bias_removes_exactly_the_biases),
        cmocka_unit_test(test_tied_output_layer_is_E_itself),
        cmocka_unit_test(test_sinusoidal_positions_have_no_parameters),
        cmocka_unit_test(test_no_positions_sees_the_context_as_a_set),
        cmocka_unit_test(test_embed_init_std_scales_E_only),
        cmocka_unit_test(test_parameter_table_gives_gpt2_names_and_layouts),
        cmocka_unit_test(test_init_follows_gpt2),
        cmocka_unit_test(test_forward_accepts_shorter_sequences),
        cmocka_unit_test(test_find_nonfinite_names_the_first_tensor),
        cmocka_unit_test(test_batch_groups_give_the_one_pass_loss_and_gradients),
        cmocka_unit_test(test_batch_groups_same_bits_on_any_thread_count),
        cmocka_unit_test(test_find_nonfinite_in_batch_groups),
        cmocka_unit_test(test_forward_backward_replaces_the_gradients),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
