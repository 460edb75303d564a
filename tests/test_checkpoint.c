/* test_checkpoint.c: checkpoints (save, load, same logits; GPT-2's names and
 * layouts; damaged, edited or mismatched files refused, and another run's
 * tokenizer), the training state (restored bit for bit with the data it trained on;
 * refused for another model or tokenizer, or an edited header), and the sampler
 * (greedy, top_k, frequencies, seeds, the sliding window). */
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

/* A char tokenizer of V distinct bytes (the tiny model's vocabulary), from text. */
static unsigned char* char_tokenizer_file(const char* text, size_t* len) {
    char err[256];
    TokenizerSpec spec = {.kind = TOKENIZER_CHAR};
    Tokenizer* t = tokenizer_train(&spec, (const unsigned char*)text, strlen(text), err, sizeof err);
    assert_int_equal(tokenizer_vocab_size(t), V);
    assert_non_null(t);
    unsigned char* buf = tokenizer_serialize(t, len);
    tokenizer_free(t);
    return buf;
}

/* The tokenizer the tiny models are saved with. */
static unsigned char* tokenizer_file(size_t* len) { return char_tokenizer_file("abcdefghij\n", len); }

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

static void round_trip(PosEncoding pos, int tied, int bias, int rank) {
    GPTConfig c = tiny(pos, tied, bias);
    c.embed_rank = rank;
    GPT a, b;
    build(&a, &c, 5);
    char dir[128], err[512];
    snprintf(dir, sizeof dir, "%s/rt_%d%d%d_%d", tmpdir, pos, tied, bias, rank);
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
    if (rank)  /* E = A B, made by the load from the factors it read: a's, after its forward */
        assert_memory_equal(b.params.wte, a.params.wte, (size_t)V * c.n_embd * sizeof(float));
    gpt_forward(&b, IDS, NULL, 1, BLOCK);
    assert_memory_equal(a.acts.logits, b.acts.logits, (size_t)BLOCK * V * sizeof(float));
    tokenizer_free(tok);
    gpt_free(&a);
    gpt_free(&b);
}

static void test_saved_model_loads_with_the_same_parameters_and_logits(void** state) {
    round_trip(POS_LEARNED, 1, 1, 0);
    round_trip(POS_LEARNED, 0, 1, 0);
    round_trip(POS_SINUSOIDAL, 1, 1, 0);
    round_trip(POS_SINUSOIDAL, 0, 0, 0);
    round_trip(POS_LEARNED, 1, 0, 0);
    round_trip(POS_NONE, 0, 1, 0);
    round_trip(POS_ROPE, 1, 1, 0);
    round_trip(POS_LEARNED, 1, 1, 3);  /* E = A B: the file holds A and B */
    round_trip(POS_ROPE, 0, 0, 3);
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
    expect_load_error(dir, "tokenizer.bin: not the tokenizer this model was trained with: the file (byte, 256 tokens)");
    snprintf(dir, sizeof dir, "%s/none", tmpdir);
    expect_load_error(dir, "none/model.safetensors");
    gpt_free(&m);
}

/* Rewrite a safetensors file with the metadata value of key replaced, through the
 * writer: both checksums are the new file's, as if the program had written it. */
static void set_meta(const char* path, const char* key, const char* value) {
    StFile f;
    char err[512];
    if (st_load(&f, path, err, sizeof err) != 0) fail_msg("%s", err);
    StWriter* w = st_writer_new();
    for (int i = 0; i < f.n_meta; i++)
        if (strcmp(f.meta_keys[i], ST_CHECKSUM_KEY) != 0 && strcmp(f.meta_keys[i], ST_HEADER_CHECKSUM_KEY) != 0) {
            const char* v = strcmp(f.meta_keys[i], key) ? f.meta_values[i] : value;
            assert_int_equal(st_add_meta(w, f.meta_keys[i], v), 0);
        }
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

/* ---- edited headers, another run's tokenizer -------------------------------- */

/* The header of a safetensors file (malloc'd, NUL-terminated), and where its data starts. */
static char* header_of(const unsigned char* buf, size_t* data_start) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i];
    char* h = xmalloc(n + 1, "header");
    memcpy(h, buf + 8, n);
    h[n] = 0;
    *data_start = 8 + n;
    return h;
}

/* Rewrite the file at path with header as its header and its data unchanged. */
static void replace_header(const char* path, const char* header) {
    size_t len, start;
    unsigned char* buf = read_file(path, &len);
    free(header_of(buf, &start));
    size_t n = strlen(header), out_len = 8 + n + (len - start);
    unsigned char* out = xmalloc(out_len, "file");
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(out + 8, header, n);
    memcpy(out + 8 + n, buf + start, len - start);
    write_file_atomic(path, out, out_len);
    free(out);
    free(buf);
}

/* Replace the first `from` in path's header by `to`: an edit by hand that leaves valid
 * JSON ("emergent.step":"20" -> "30"). */
static void edit_header(const char* path, const char* from, const char* to) {
    size_t len, start;
    unsigned char* buf = read_file(path, &len);
    char* h = header_of(buf, &start);
    char* at = strstr(h, from);
    if (!at) fail_msg("%s: no '%s' in the header", path, from);
    size_t n = strlen(h), k = strlen(from), m = strlen(to);
    char* edited = xmalloc(n - k + m + 1, "header");
    memcpy(edited, h, (size_t)(at - h));
    memcpy(edited + (at - h), to, m);
    memcpy(edited + (at - h) + m, at + k, n - (size_t)(at - h) - k + 1);
    replace_header(path, edited);
    free(edited);
    free(h);
    free(buf);
}

/* A value changed in the metadata or the tensor table, by hand: the data checksum
 * still holds, the header checksum does not. n_head 2 -> 1 would load (8 % 1 == 0)
 * and compute other logits; the shape of a tensor swapped with another's the same. */
static void test_an_edited_model_header_is_refused(void** state) {
    GPTConfig c = tiny(POS_LEARNED, 1, 1);
    GPT m;
    build(&m, &c, 11);
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/edit", tmpdir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    save(&m, dir);
    edit_header(path, "\"emergent.n_head\":\"2\"", "\"emergent.n_head\":\"1\"");
    expect_load_error(dir, "model.safetensors: header checksum mismatch (header edited or corrupted?): its metadata "
                           "and tensor table hash to ");
    save(&m, dir);
    edit_header(path, "\"emergent.step\":\"42\"", "\"emergent.step\":\"43\"");
    expect_load_error(dir, "header checksum mismatch");
    save(&m, dir);  /* two tensors of one shape trade places in the table */
    edit_header(path, "\"transformer.h.0.ln_1.weight\"", "\"transformer.h.0.ln_X.weight\"");
    edit_header(path, "\"transformer.h.0.ln_2.weight\"", "\"transformer.h.0.ln_1.weight\"");
    edit_header(path, "\"transformer.h.0.ln_X.weight\"", "\"transformer.h.0.ln_2.weight\"");
    expect_load_error(dir, "header checksum mismatch");
    /* without the header checksum: a file of this project's must have it */
    save(&m, dir);
    size_t len, start;
    unsigned char* buf = read_file(path, &len);
    char* h = header_of(buf, &start);
    char* key = strstr(h, ",\"" ST_HEADER_CHECKSUM_KEY "\":\"");
    assert_non_null(key);
    memmove(key, key + strlen(",\"" ST_HEADER_CHECKSUM_KEY "\":\"") + 17, strlen(key) - strlen(",\"" ST_HEADER_CHECKSUM_KEY "\":\"") - 17 + 1);
    replace_header(path, h);
    free(h);
    free(buf);
    expect_load_error(dir, "model.safetensors: the metadata holds this project's keys (emergent.*) but no "
                           "emergent.header_fnv1a64: its header is under no checksum");
    gpt_free(&m);
}

/* Another tool may re-serialise the JSON (spaces, member order): the canonical text
 * the header checksum covers is the same, and the file loads. */
static void test_a_reserialised_header_still_loads(void** state) {
    GPTConfig c = tiny(POS_LEARNED, 0, 1);
    GPT a, b;
    build(&a, &c, 12);
    char dir[128], path[160], err[1024];
    snprintf(dir, sizeof dir, "%s/respaced", tmpdir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    save(&a, dir);
    size_t len, start;
    unsigned char* buf = read_file(path, &len);
    char* h = header_of(buf, &start);
    /* a space after every ',' and ':' (no value here holds either), the metadata
     * object moved from first to last, and a name's letter as a \u escape */
    size_t n = strlen(h);
    char* spaced = xmalloc(3 * n + 16, "header");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        spaced[o++] = h[i];
        if (h[i] == ',' || h[i] == ':') spaced[o++] = ' ';
    }
    spaced[o] = 0;
    while (o > 0 && spaced[o - 1] == ' ') spaced[--o] = 0;  /* the padding */
    char* meta = strstr(spaced, "\"__metadata__\": {");
    char* meta_end = meta ? strchr(meta, '}') : NULL;  /* the metadata holds no braces */
    assert_true(meta == spaced + 1 && meta_end && meta_end[1] == ',');
    const char* rest = meta_end + 3;  /* the tensors, up to the closing brace */
    char* moved = xmalloc(o + 8, "header");
    snprintf(moved, o + 8, "{%.*s, %.*s}", (int)(spaced + o - 1 - rest), rest, (int)(meta_end + 1 - meta), meta);
    char* name = strstr(moved, "\"transformer.wte.weight\"");
    assert_non_null(name);
    char* escaped = xmalloc(strlen(moved) + 16, "header");
    sprintf(escaped, "%.*s\"\\u0074ransformer.wte.weight\"%s", (int)(name - moved), moved,
            name + strlen("\"transformer.wte.weight\""));
    replace_header(path, escaped);
    Tokenizer* tok = NULL;
    long step;
    if (checkpoint_load_model(dir, &b, 1, &tok, &step, err, sizeof err) != 0) fail_msg("%s\nheader: %s", err, escaped);
    assert_memory_equal(b.params_memory, a.params_memory, a.num_params * sizeof(float));
    tokenizer_free(tok);
    free(escaped);
    free(moved);
    free(spaced);
    free(h);
    free(buf);
    gpt_free(&a);
    gpt_free(&b);
}

/* A tokenizer.bin of another run with the same vocabulary size (here 11 other
 * letters) would decode the model's ids as other text: the model records its
 * tokenizer's hash, and the loader names both hashes and the file. One changed byte
 * of the run's own tokenizer.bin fails that file's checksum first. */
static void test_another_runs_tokenizer_is_refused(void** state) {
    GPTConfig c = tiny(POS_LEARNED, 1, 1);
    GPT m;
    build(&m, &c, 13);
    char dir[128], tok_path[160];
    snprintf(dir, sizeof dir, "%s/othertok", tmpdir);
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", dir);
    save(&m, dir);
    size_t len, other_len;
    unsigned char* own = tokenizer_file(&len);
    unsigned char* other = char_tokenizer_file("klmnopqrst\n", &other_len);
    write_file_atomic(tok_path, other, other_len);
    char want[1024];
    snprintf(want, sizeof want, "%s: not the tokenizer this model was trained with: the file (char, 11 tokens) hashes "
             "to %016llx, %s/model.safetensors records %016llx (emergent.tokenizer_fnv1a64): copy the run's own "
             "tokenizer.bin beside the model", tok_path, (unsigned long long)fnv1a64(other, other_len), dir,
             (unsigned long long)fnv1a64(own, len));
    expect_load_error(dir, want);
    own[16] ^= 0x01;  /* the run's own file, one byte changed */
    write_file_atomic(tok_path, own, len);
    expect_load_error(dir, "tokenizer.bin: checksum mismatch (file corrupted?)");
    free(own);
    free(other);
    gpt_free(&m);
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
    DataId data = {.text = 0xfedcba9876543210ULL, .train_tokens = 1, .val_tokens = 0x8000000000000000ULL}, back;
    snprintf(path, sizeof path, "%s/state.safetensors", tmpdir);
    if (checkpoint_save_state(path, &a, &oa, &pa, "n_layer = 2\nseed = 7\n", &tok, &data, err, sizeof err) != 0)
        fail_msg("%s", err);
    char* text = NULL;
    if (checkpoint_load_state(path, &b, &ob, &pb, &tok, &back, &text, err, sizeof err) != 0) fail_msg("%s", err);
    assert_memory_equal(&back, &data, sizeof data);  /* the data it trained on, for the caller to compare */
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
    assert_int_equal(checkpoint_load_state(path, &w, &ow, &pb, &tok, &back, &text, err, sizeof err), -1);
    printf("  refused: %s\n", err);
    assert_non_null(strstr(err, "n_embd = 8, this config gives 16"));
    assert_int_equal(checkpoint_load_state(path, &b, &ob, &pb, &other, &back, &text, err, sizeof err), -1);
    printf("  refused: %s\n", err);
    assert_non_null(strstr(err, "different tokenizer (char, 11 tokens, file hash 0000000000abcdef) than this config "
                                "prepares (byte, 256 tokens"));
    /* a model checkpoint is not a training state */
    snprintf(path, sizeof path, "%s/st_model", tmpdir);
    save(&a, path);
    snprintf(path, sizeof path, "%s/st_model/model.safetensors", tmpdir);
    assert_int_equal(checkpoint_load_state(path, &b, &ob, &pb, &tok, &back, &text, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a training state"));
    /* the step, the optimizer's step and the batch RNG edited by hand: each would resume
     * on another trajectory, silently; the header checksum refuses them */
    snprintf(path, sizeof path, "%s/state.safetensors", tmpdir);
    const char* edits[][2] = {{"\"emergent.step\":\"1234\"", "\"emergent.step\":\"1235\""},
                              {"\"emergent.adam_step\":\"1234\"", "\"emergent.adam_step\":\"1233\""},
                              {"\"emergent.rng_state\":\"", "\"emergent.rng_state\":\"1"}};
    for (size_t e = 0; e < sizeof edits / sizeof *edits; e++) {
        if (checkpoint_save_state(path, &a, &oa, &pa, "n_layer = 2\n", &tok, &data, err, sizeof err) != 0)
            fail_msg("%s", err);
        edit_header(path, edits[e][0], edits[e][1]);
        assert_int_equal(checkpoint_load_state(path, &b, &ob, &pb, &tok, &back, &text, err, sizeof err), -1);
        if (e == 0) printf("  refused: %s\n", err);
        assert_non_null(strstr(err, "state.safetensors: header checksum mismatch (header edited or corrupted?)"));
    }
    adamw_free(&oa); adamw_free(&ob); adamw_free(&ow);
    gpt_free(&a); gpt_free(&b); gpt_free(&w);
}

/* E = A B: the training state holds A and B and their moments; loading it makes E
 * anew from them. A state of another embed_rank (or of none: a file without the
 * key) is refused, naming it. */
static void test_factored_training_state_round_trip(void** state) {
    GPTConfig c = tiny(POS_LEARNED, 1, 1), plain = c;
    c.embed_rank = 3;
    GPT a, b, p;
    build(&a, &c, 8);
    gpt_sync_embedding(&a);
    gpt_build(&b, &c, 1, 99);
    gpt_build(&p, &plain, 1, 99);
    AdamW oa, ob, op;
    adamw_init(&oa, a.num_params);
    adamw_init(&ob, b.num_params);
    adamw_init(&op, p.num_params);
    TrainProgress pa = {.step = 7}, pb = {0};
    rng_seed(&pa.batch_rng, 1, 1);
    TokenizerId tok = {.hash = 0xabcdef, .description = "char, 11 tokens"};
    DataId data = {0}, back;
    char path[160], plain_path[160], err[1024], *text = NULL;
    snprintf(path, sizeof path, "%s/state_rank.safetensors", tmpdir);
    snprintf(plain_path, sizeof plain_path, "%s/state_plain.safetensors", tmpdir);
    if (checkpoint_save_state(path, &a, &oa, &pa, "", &tok, &data, err, sizeof err) != 0 ||
        checkpoint_save_state(plain_path, &p, &op, &pa, "", &tok, &data, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (checkpoint_load_state(path, &b, &ob, &pb, &tok, &back, &text, err, sizeof err) != 0) fail_msg("%s", err);
    free(text);
    assert_memory_equal(b.params_memory, a.params_memory, a.num_params * sizeof(float));
    assert_memory_equal(b.params.wte, a.params.wte, (size_t)V * c.n_embd * sizeof(float));
    assert_int_equal(checkpoint_load_state(path, &p, &op, &pb, &tok, &back, &text, err, sizeof err), -1);
    printf("  refused: %s\n", err);
    assert_non_null(strstr(err, "embed_rank = 3, this config gives 0"));
    assert_int_equal(checkpoint_load_state(plain_path, &b, &ob, &pb, &tok, &back, &text, err, sizeof err), -1);
    printf("  refused: %s\n", err);
    assert_non_null(strstr(err, "embed_rank = 0, this config gives 3"));
    adamw_free(&oa); adamw_free(&ob); adamw_free(&op);
    gpt_free(&a); gpt_free(&b); gpt_free(&p);
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
        cmocka_unit_test(test_an_edited_model_header_is_refused),
        cmocka_unit_test(test_a_reserialised_header_still_loads),
        cmocka_unit_test(test_another_runs_tokenizer_is_refused),
        cmocka_unit_test(test_training_state_is_restored_bit_for_bit),
        cmocka_unit_test(test_factored_training_state_round_trip),
        cmocka_unit_test(test_sampler_greedy_top_k_and_frequencies),
        cmocka_unit_test(test_generation_is_seeded_and_slides_its_window),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, setup, teardown);
}
