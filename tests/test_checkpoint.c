/* test_checkpoint.c: checkpoints (save, load, same logits; GPT-2's names and
 * layouts; damaged or mismatched files refused), the training state (restored bit
 * for bit; refused for another model or tokenizer), and the sampler (greedy,
 * top_k, frequencies, seeds, the sliding window). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <unistd.h>

#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "gpt/sampler.h"
#include "test_util.h"

enum { V = 11, BLOCK = 6 };

static char tmpdir[64];

static int setup(void** state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_checkpoint.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void** state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

static GPTConfig tiny(PosEncoding pos, int tied, int bias) {
    GPTConfig c = {.vocab_size = V, .block_size = BLOCK, .n_layer = 2, .n_head = 2, .n_embd = 8,
                   .pos_encoding = pos, .tie_weights = tied, .bias = bias};
    c.embed_scale = pos == POS_SINUSOIDAL ? sqrtf(8.0f) : 1.0f;
    return c;
}

/* A model with every parameter moved off its init (LN weights 1 and biases 0
 * would hide a tensor that is not saved or not loaded). */
static void build(GPT* m, const GPTConfig* c, uint64_t seed) {
    gpt_build(m, c, 1, seed);
    Rng rng;
    rng_seed(&rng, seed, 9);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] += 0.1f * rng_normal(&rng);
}

/* The char tokenizer of 11 distinct bytes: V ids, as the tiny model has. */
static unsigned char* tokenizer_file(size_t* len) {
    char err[256];
    TokenizerSpec spec = {.kind = TOKENIZER_CHAR};
    Tokenizer* t = tokenizer_train(&spec, (const unsigned char*)"abcdefghij\n", 11, err, sizeof err);
    assert_non_null(t);
    unsigned char* buf = tokenizer_serialize(t, len);
    tokenizer_free(t);
    return buf;
}

static void save(const GPT* m, const char* dir) {
    size_t len;
    unsigned char* tok = tokenizer_file(&len);
    char err[512];
    int rc = checkpoint_save_model(dir, m, tok, len, 42, 1.5f, err, sizeof err);
    if (rc != 0) fail_msg("%s", err);
    free(tok);
}

static const int IDS[BLOCK] = {3, 1, 4, 1, 5, 9};

/* ---- model checkpoints ------------------------------------------------------ */

static void round_trip(PosEncoding pos, int tied, int bias) {
    GPTConfig c = tiny(pos, tied, bias);
    GPT a, b;
    build(&a, &c, 5);
    char dir[128], err[512];
    snprintf(dir, sizeof dir, "%s/rt_%d%d%d", tmpdir, pos, tied, bias);
    save(&a, dir);
    Tokenizer* tok = NULL;
    long step = 0;
    if (checkpoint_load_model(dir, &b, 1, &tok, &step, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(step, 42);
    assert_int_equal(b.num_params, a.num_params);
    assert_memory_equal(&b.config, &a.config, sizeof(GPTConfig));
    assert_memory_equal(b.params_memory, a.params_memory, a.num_params * sizeof(float));
    assert_int_equal(tokenizer_vocab_size(tok), V);
    gpt_forward(&a, IDS, NULL, 1, BLOCK);
    gpt_forward(&b, IDS, NULL, 1, BLOCK);
    assert_memory_equal(a.acts.logits, b.acts.logits, (size_t)BLOCK * V * sizeof(float));
    tokenizer_free(tok);
    gpt_free(&a);
    gpt_free(&b);
}

static void test_saved_model_loads_with_the_same_parameters_and_logits(void** state) {
    round_trip(POS_LEARNED, 1, 1);
    round_trip(POS_LEARNED, 0, 1);
    round_trip(POS_SINUSOIDAL, 1, 1);
    round_trip(POS_SINUSOIDAL, 0, 0);
    round_trip(POS_LEARNED, 1, 0);
    round_trip(POS_NONE, 0, 1);
    round_trip(POS_ROPE, 1, 1);
}

/* The file is GPT-2's: its names, Conv1D [in, out] matrices, no lm_head when tied,
 * zeros where this model has no biases, metadata format "pt". */
static void test_checkpoint_uses_gpt2_names_and_layouts(void** state) {
    GPTConfig c = tiny(POS_LEARNED, 1, 0);
    GPT m;
    build(&m, &c, 6);
    char dir[128], path[160], err[512];
    snprintf(dir, sizeof dir, "%s/hf", tmpdir);
    save(&m, dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    StFile f;
    if (st_load(&f, path, err, sizeof err) != 0) fail_msg("%s", err);
    assert_string_equal(st_meta(&f, "format"), "pt");
    int C = c.n_embd;
    const StTensor* t = st_find(&f, "transformer.h.1.attn.c_attn.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], C);      /* [in, out] */
    assert_int_equal(t->shape[1], 3 * C);
    float* w = xmalloc(sizeof(float) * 3 * C * C, "c_attn");
    int64_t shape[2] = {C, 3 * C};
    assert_int_equal(st_read_f32(&f, "transformer.h.1.attn.c_attn.weight", w, 2, shape, err, sizeof err), 0);
    const float* q = m.params.qkvw + (size_t)3 * C * C;  /* layer 1, (3C, C) [out, in] */
    for (int o = 0; o < 3 * C; o++)
        for (int i = 0; i < C; i++) assert_true(w[i * 3 * C + o] == q[o * C + i]);
    int64_t fc_shape[2] = {4 * C, C};
    float* fc = xmalloc(sizeof(float) * 4 * C * C, "c_proj");
    assert_int_equal(st_read_f32(&f, "transformer.h.0.mlp.c_proj.weight", fc, 2, fc_shape, err, sizeof err), 0);
    assert_true(fc[1 * C + 2] == m.params.fcprojw[2 * 4 * C + 1]);  /* [4C, C][k][o] = W[o][k] */
    const char* present[] = {"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                             "transformer.h.1.mlp.c_fc.bias", "transformer.ln_f.bias"};
    for (size_t k = 0; k < sizeof present / sizeof *present; k++) assert_non_null(st_find(&f, present[k]));
    assert_null(st_find(&f, "lm_head.weight"));
    float bias[4 * 8];
    int64_t b_shape[1] = {4 * C};
    assert_int_equal(st_read_f32(&f, "transformer.h.1.mlp.c_fc.bias", bias, 1, b_shape, err, sizeof err), 0);
    for (int i = 0; i < 4 * C; i++) assert_true(bias[i] == 0.0f);
    assert_int_equal(f.n_tensors, 2 + 2 * 12 + 2);
    st_free(&f);
    free(w);
    free(fc);
    gpt_free(&m);
}

/* Rewrite a file with one byte changed, or cut short. */
static void damage(const char* path, long offset, long truncate_to) {
    size_t len;
    unsigned char* buf = read_file(path, &len);
    if (offset >= 0) buf[offset] ^= 0x40;
    FILE* f = xfopen(path, "wb");
    xfwrite(buf, 1, truncate_to >= 0 ? (size_t)truncate_to : len, f, path);
    fclose(f);
    free(buf);
}

static void expect_load_error(const char* dir, const char* fragment) {
    GPT m;
    Tokenizer* tok = NULL;
    long step;
    char err[1024] = "";
    assert_int_equal(checkpoint_load_model(dir, &m, 1, &tok, &step, err, sizeof err), -1);
    if (!strstr(err, fragment)) fail_msg("message '%s' lacks '%s'", err, fragment);
    printf("  refused: %s\n", err);
}

static void test_damaged_checkpoints_are_refused_with_the_reason(void** state) {
    GPTConfig c = tiny(POS_LEARNED, 1, 1);
    GPT m;
    build(&m, &c, 7);
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/bad", tmpdir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t len;
    save(&m, dir);
    free(read_file(path, &len));
    damage(path, -1, (long)len / 2);
    expect_load_error(dir, "model.safetensors");  /* truncated */
    save(&m, dir);
    damage(path, (long)len - 100, -1);
    expect_load_error(dir, "checksum mismatch");  /* a flipped bit in the data */
    save(&m, dir);
    damage(path, -1, 5);
    expect_load_error(dir, "model.safetensors");  /* not even a header */
    /* a tokenizer of another vocabulary beside the model */
    save(&m, dir);
    char tok_path[160], err[256];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", dir);
    TokenizerSpec spec = {.kind = TOKENIZER_BYTE};
    Tokenizer* bytes = tokenizer_train(&spec, NULL, 0, err, sizeof err);
    assert_int_equal(tokenizer_save(bytes, tok_path, err, sizeof err), 0);
    tokenizer_free(bytes);
    expect_load_error(dir, "vocabulary of 256 tokens, but the model's is 11");
    snprintf(dir, sizeof dir, "%s/none", tmpdir);
    expect_load_error(dir, "none/model.safetensors");
    gpt_free(&m);
}

/* Rewrite a safetensors file with the metadata value of key replaced (the checksum
 * covers the data only: the file stays consistent). */
static void set_meta(const char* path, const char* key, const char* value) {
    StFile f;
    char err[512];
    if (st_load(&f, path, err, sizeof err) != 0) fail_msg("%s", err);
    StWriter* w = st_writer_new();
    for (int i = 0; i < f.n_meta; i++)
        if (strcmp(f.meta_keys[i], ST_CHECKSUM_KEY) != 0)
            assert_int_equal(st_add_meta(w, f.meta_keys[i], strcmp(f.meta_keys[i], key) ? f.meta_values[i] : value), 0);
    for (int i = 0; i < f.n_tensors; i++) {  /* the writer aligns the data section: these are float pointers */
        const StTensor* t = &f.tensors[i];
        assert_int_equal(st_add_f32(w, t->name, t->ndim, t->shape, (const float*)(f.buf + f.data_start + t->begin)), 0);
    }
    if (st_write(w, path, err, sizeof err) != 0) fail_msg("%s", err);
    st_writer_free(w);
    st_free(&f);
}

/* An embed_scale past float's range passed the check on the double and became an
 * infinite float in the model; the config's own range (0, 1e6] now applies. */
static void test_an_embed_scale_outside_the_configs_range_is_refused(void** state) {
    GPTConfig c = tiny(POS_SINUSOIDAL, 1, 1);
    GPT m;
    build(&m, &c, 7);
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/scale", tmpdir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    save(&m, dir);
    set_meta(path, "emergent.embed_scale", "1e300");
    expect_load_error(dir, "metadata emergent.embed_scale is 1e300, expected a number in (0, 1e6]");
    set_meta(path, "emergent.embed_scale", "-2");
    expect_load_error(dir, "emergent.embed_scale is -2");
    set_meta(path, "emergent.embed_scale", "1e6");  /* the largest the config allows loads */
    Tokenizer* tok = NULL;
    long step;
    GPT b;
    char err[1024];
    if (checkpoint_load_model(dir, &b, 1, &tok, &step, err, sizeof err) != 0) fail_msg("%s", err);
    assert_true(b.config.embed_scale == 1e6f);
    tokenizer_free(tok);
    gpt_free(&b);
    gpt_free(&m);
}

/* Found by fuzzing (tests/fuzz/fuzz_checkpoint_model): a 37 KB file whose metadata
 * said n_layer 256, n_embd 1024 made the loader allocate and initialise a 12.9 GB
 * model before noticing that the file holds only the embedding. The file must hold
 * every parameter before anything is allocated for them (here 200 MB for 11 KB). */
static void test_metadata_describing_more_than_the_file_holds_is_refused_before_allocating(void** state) {
    char dir[128], path[160], err[1024];
    snprintf(dir, sizeof dir, "%s/huge", tmpdir);
    make_dirs(dir);
    const char* meta[][2] = {{"emergent.vocab_size", "11"}, {"emergent.block_size", "4"}, {"emergent.n_layer", "64"},
                             {"emergent.n_head", "1"}, {"emergent.n_embd", "256"}, {"emergent.pos_encoding", "sinusoidal"},
                             {"emergent.embed_scale", "1"}, {"emergent.tie_weights", "true"}, {"emergent.bias", "true"},
                             {"emergent.step", "1"}};
    StWriter* w = st_writer_new();
    for (size_t i = 0; i < sizeof meta / sizeof *meta; i++) assert_int_equal(st_add_meta(w, meta[i][0], meta[i][1]), 0);
    int64_t shape[2] = {V, 256};
    float* wte = xcalloc((size_t)V * 256, sizeof(float), "wte");
    assert_int_equal(st_add_f32(w, "transformer.wte.weight", 2, shape, wte), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (st_write(w, path, err, sizeof err) != 0) fail_msg("%s", err);
    st_writer_free(w);
    free(wte);
    size_t len;
    unsigned char* tok = tokenizer_file(&len);
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    write_file_atomic(path, tok, len);
    free(tok);
    expect_load_error(dir, "the metadata describes a model of 50547968 parameters (202191872 bytes: vocab_size 11, "
                           "block_size 4, n_layer 64, n_embd 256), but the file's tensors hold only 11264 bytes");
}

/* ---- training state --------------------------------------------------------- */

static void test_training_state_is_restored_bit_for_bit(void** state) {
    GPTConfig c = tiny(POS_LEARNED, 0, 1);
    GPT a, b;
    build(&a, &c, 8);
    gpt_build(&b, &c, 1, 99);
    AdamW oa, ob;
    adamw_init(&oa, a.num_params);
    adamw_init(&ob, b.num_params);
    Rng rng;
    rng_seed(&rng, 3, 3);
    for (size_t i = 0; i < a.num_params; i++) { oa.m[i] = rng_normal(&rng); oa.v[i] = rng_uniform(&rng); }
    oa.step = 1234;
    TrainProgress pa = {.step = 1234, .val_loss = 1.8864f, .best_val_loss = 1.8801f, .elapsed_s = 267.53125},
                  pb = {0};
    rng_seed(&pa.batch_rng, 1337, 1);
    for (int i = 0; i < 10; i++) rng_u32(&pa.batch_rng);
    char path[160], err[1024];
    TokenizerId tok = {.hash = 0xabcdef, .description = "char, 11 tokens"};
    TokenizerId other = {.hash = 0x123, .description = "byte, 256 tokens"};
    snprintf(path, sizeof path, "%s/state.safetensors", tmpdir);
    if (checkpoint_save_state(path, &a, &oa, &pa, "n_layer = 2\nseed = 7\n", &tok, err, sizeof err) != 0)
        fail_msg("%s", err);
    char* text = NULL;
    if (checkpoint_load_state(path, &b, &ob, &pb, &tok, &text, err, sizeof err) != 0) fail_msg("%s", err);
    assert_memory_equal(b.params_memory, a.params_memory, a.num_params * sizeof(float));
    assert_memory_equal(ob.m, oa.m, a.num_params * sizeof(float));
    assert_memory_equal(ob.v, oa.v, a.num_params * sizeof(float));
    assert_int_equal(ob.step, 1234);
    assert_int_equal(pb.step, 1234);
    assert_true(pb.val_loss == pa.val_loss && pb.best_val_loss == pa.best_val_loss && pb.elapsed_s == pa.elapsed_s);
    assert_true(rng_u32(&pb.batch_rng) == rng_u32(&pa.batch_rng));
    assert_string_equal(text, "n_layer = 2\nseed = 7\n");
    free(text);

    /* another model, another tokenizer: refused, naming what differs */
    GPTConfig wider = c;
    wider.n_embd = 16;
    GPT w;
    gpt_build(&w, &wider, 1, 1);
    AdamW ow;
    adamw_init(&ow, w.num_params);
    assert_int_equal(checkpoint_load_state(path, &w, &ow, &pb, &tok, &text, err, sizeof err), -1);
    printf("  refused: %s\n", err);
    assert_non_null(strstr(err, "n_embd = 8, this config gives 16"));
    assert_int_equal(checkpoint_load_state(path, &b, &ob, &pb, &other, &text, err, sizeof err), -1);
    printf("  refused: %s\n", err);
    assert_non_null(strstr(err, "different tokenizer (char, 11 tokens, file hash 0000000000abcdef) than this config "
                                "prepares (byte, 256 tokens"));
    /* a model checkpoint is not a training state */
    snprintf(path, sizeof path, "%s/st_model", tmpdir);
    save(&a, path);
    snprintf(path, sizeof path, "%s/st_model/model.safetensors", tmpdir);
    assert_int_equal(checkpoint_load_state(path, &b, &ob, &pb, &tok, &text, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a training state"));
    adamw_free(&oa); adamw_free(&ob); adamw_free(&ow);
    gpt_free(&a); gpt_free(&b); gpt_free(&w);
}

/* ---- sampler ---------------------------------------------------------------- */

static void test_sampler_greedy_top_k_and_frequencies(void** state) {
    float logits[4] = {logf(0.5f), logf(0.3f), logf(0.2f), -INFINITY};
    float scratch[8];
    Rng rng;
    rng_seed(&rng, 1, 0);
    SamplerSettings greedy = {.temperature = 0.0f}, top1 = {.temperature = 2.0f, .top_k = 1};
    SamplerSettings plain = {.temperature = 1.0f}, top2 = {.temperature = 1.0f, .top_k = 2};
    int counts[4] = {0}, counts2[4] = {0}, n = 200000;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sample_token(logits, 4, &greedy, &rng, scratch), 0);
        assert_int_equal(sample_token(logits, 4, &top1, &rng, scratch), 0);
    }
    for (int i = 0; i < n; i++) {
        counts[sample_token(logits, 4, &plain, &rng, scratch)]++;
        counts2[sample_token(logits, 4, &top2, &rng, scratch)]++;
    }
    printf("  temperature 1: %.4f %.4f %.4f %.4f (want 0.5 0.3 0.2 0)\n", (double)counts[0] / n,
           (double)counts[1] / n, (double)counts[2] / n, (double)counts[3] / n);
    printf("  top_k 2:       %.4f %.4f %.4f (want 0.625 0.375 0)\n", (double)counts2[0] / n, (double)counts2[1] / n,
           (double)counts2[2] / n);
    /* 5 standard errors of a proportion near 0.5 over 200000 draws: 0.0056 */
    assert_true(fabs(counts[0] / (double)n - 0.5) < 0.0056 && fabs(counts[1] / (double)n - 0.3) < 0.0056 &&
                fabs(counts[2] / (double)n - 0.2) < 0.0056 && counts[3] == 0);
    assert_true(fabs(counts2[0] / (double)n - 0.625) < 0.0056 && counts2[2] == 0 && counts2[3] == 0);
}

/* Greedy generation the slow way: a full forward over the window for every token,
 * sliding the window as sampler.h says (rebuild from the last block_size/2 tokens
 * when block_size are held). */
static void greedy_reference(GPT* m, const uint16_t* prompt, int n_prompt, int n_new, uint16_t* out) {
    int T = m->config.block_size, keep = T / 2, Vs = m->config.vocab_size;
    memcpy(out, prompt, sizeof(uint16_t) * n_prompt);
    int n = n_prompt, start = 0, held = n_prompt;  /* window = out[start .. start+held) */
    int ids[BLOCK];
    for (int j = 0; j < n_new; j++) {
        for (int i = 0; i < held; i++) ids[i] = out[start + i];
        gpt_forward(m, ids, NULL, 1, held);
        const float* z = m->acts.logits + (size_t)(held - 1) * Vs;
        int best = 0;
        for (int v = 1; v < Vs; v++)
            if (z[v] > z[best]) best = v;
        out[n++] = (uint16_t)best;
        if (held == T) { start = n - keep; held = keep; }
        else held++;
    }
}

static void test_generation_is_seeded_and_slides_its_window(void** state) {
    GPTConfig c = tiny(POS_LEARNED, 1, 1);
    GPT m;
    build(&m, &c, 10);
    uint16_t prompt[2] = {2, 7}, a[40], b[40], ref[40];
    SamplerSettings s = {.temperature = 1.0f, .top_k = 0}, greedy = {.temperature = 0.0f};
    Rng r1, r2, r3;
    rng_seed(&r1, 5, 0); rng_seed(&r2, 5, 0); rng_seed(&r3, 6, 0);
    assert_int_equal(generate(&m, prompt, 2, 38, &s, &r1, a), 40);
    generate(&m, prompt, 2, 38, &s, &r2, b);
    assert_memory_equal(a, b, sizeof a);  /* the same seed, the same tokens */
    generate(&m, prompt, 2, 38, &s, &r3, b);
    assert_true(memcmp(a, b, sizeof a) != 0);  /* another seed, other tokens */
    /* 38 new tokens through a 6-position window: many slides, each token the
     * full forward's argmax over its window */
    generate(&m, prompt, 2, 38, &greedy, &r1, a);
    greedy_reference(&m, prompt, 2, 38, ref);
    assert_memory_equal(a, ref, sizeof a);
    gpt_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saved_model_loads_with_the_same_parameters_and_logits),
        cmocka_unit_test(test_checkpoint_uses_gpt2_names_and_layouts),
        cmocka_unit_test(test_damaged_checkpoints_are_refused_with_the_reason),
        cmocka_unit_test(test_metadata_describing_more_than_the_file_holds_is_refused_before_allocating),
        cmocka_unit_test(test_an_embed_scale_outside_the_configs_range_is_refused),
        cmocka_unit_test(test_training_state_is_restored_bit_for_bit),
        cmocka_unit_test(test_sampler_greedy_top_k_and_frequencies),
        cmocka_unit_test(test_generation_is_seeded_and_slides_its_window),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, setup, teardown);
}
