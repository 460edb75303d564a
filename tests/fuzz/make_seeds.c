/* make_seeds.c: writes the fuzzers' binary seed corpora with the project's own
 * writers, so every seed is what the programs really write (plus a few near
 * misses). Run by tests/fuzz/make_seeds.sh, which also copies the text seeds.
 *   make_seeds CORPUS_DIR TEXT_FILE
 * TEXT_FILE trains the char and SentencePiece tokenizers (a few KB suffice). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/checkpoint.h"
#include "formats/config.h"
#include "data/dataloader.h"
#include "fuzz_common.h"
#include "training/optim.h"
#include "formats/safetensors.h"

static const char* corpus;
static char err[4096];

static void check(int ok, const char* what) {
    if (!ok) die(EXIT_IO_FAILURE, "make_seeds: %s: %s", what, err);
}

/* corpus/target/name := data */
static void seed(const char* target, const char* name, const void* data, size_t len) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", corpus, target);
    make_dirs(dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file_atomic(path, data, len);
}

static unsigned char* slurp(const char* path, size_t* len) { return read_file(path, len); }

/* ---- tokens ----------------------------------------------------------------- */

static void token_seeds(const char* tmp) {
    uint16_t ids[100];
    char path[1024];
    size_t len;
    for (int i = 0; i < 100; i++) ids[i] = (uint16_t)((i * 7) % 65);
    snprintf(path, sizeof path, "%s/tokens.bin", tmp);
    struct { const char* name; int vocab; size_t n; } files[] = {
        {"char65_100.bin", 65, 100}, {"llmc_no_vocab_20.bin", 0, 20}, {"empty.bin", 65, 0}, {"one.bin", 65, 1}};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        tokens_write(path, ids, files[f].n, files[f].vocab);
        unsigned char* buf = slurp(path, &len);
        if (files[f].vocab == 0) memset(buf + 4 * TOKENS_SLOT_VOCAB, 0, 4 * 4);  /* llm.c's: no vocab, no checksum */
        seed("tokens", files[f].name, buf, len);
        if (f == 0) {
            seed("tokens", "truncated.bin", buf, len - 3);
            buf[1024 + 2 * 5] = 70;  /* id 70 in a 65-token vocabulary */
            seed("tokens", "id_out_of_range.bin", buf, len);
        }
        free(buf);
    }
}

/* ---- safetensors ---------------------------------------------------------------- */

static void safetensors_seeds(const char* tmp) {
    float a[6] = {1, -2, 3.5f, 0, 1e-30f, -0.0f}, b[4] = {0.25f, 0.5f, 0.75f, 1}, s = 42;
    int64_t sa[2] = {2, 3}, sb[1] = {4}, se[2] = {0, 4};
    StWriter* w = st_writer_new();
    check(w && !st_add_f32(w, "a", 2, sa, a) && !st_add_f32(w, "scalar", 0, NULL, &s) &&
          !st_add_f32(w, "empty", 2, se, NULL) && !st_add_f32(w, "layer.0.b\xc3\xa9\"\\", 1, sb, b) &&
          !st_add_meta(w, "format", "pt") && !st_add_meta(w, "note", "tab\there, newline\n, quote \""),
          "assemble the safetensors seed");
    char path[1024];
    size_t len;
    snprintf(path, sizeof path, "%s/seed.safetensors", tmp);
    check(st_write(w, path, err, sizeof err) == 0, "write the safetensors seed");
    st_writer_free(w);
    unsigned char* buf = slurp(path, &len);
    seed("safetensors", "writer.safetensors", buf, len);
    seed("safetensors", "truncated.safetensors", buf, len - 5);
    free(buf);

    /* as Python's safetensors writes one: no checksum, other dtypes, spaces */
    static const char header[] = "{\"__metadata__\": {\"format\": \"pt\"}, "
                                 "\"h\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}, "
                                 "\"w\": {\"dtype\": \"F32\", \"shape\": [1, 2], \"data_offsets\": [4, 12]}}  ";
    unsigned char file[8 + sizeof header + 12] = {0};
    size_t n = sizeof header - 1;
    for (int i = 0; i < 8; i++) file[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(file + 8, header, n);
    float wv[2] = {1.5f, -1.5f};
    memcpy(file + 8 + n + 4, wv, sizeof wv);
    seed("safetensors", "python_style.safetensors", file, 8 + n + 12);
}

/* ---- checkpoints ------------------------------------------------------------ */

/* A model with every parameter off its init, so that no tensor is all zeros or ones. */
static void build(GPT* m, const GPTConfig* c, uint64_t seed_value) {
    gpt_build(m, c, 1, seed_value);
    Rng rng;
    rng_seed(&rng, seed_value, 9);
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] += 0.1f * rng_normal(&rng);
}

static void state_seeds(const char* tmp) {
    GPTConfig c = fuzz_tiny_config();
    TokenizerId tok = fuzz_tiny_tokenizer_id();
    GPT m;
    build(&m, &c, 3);
    AdamW opt;
    adamw_init(&opt, m.num_params);
    Rng rng;
    rng_seed(&rng, 3, 3);
    for (size_t i = 0; i < m.num_params; i++) { opt.m[i] = 0.01f * rng_normal(&rng); opt.v[i] = 1e-4f * rng_uniform(&rng); }
    opt.step = 20;
    TrainProgress p = {.step = 20, .val_loss = 2.25f, .best_val_loss = 2.125f, .elapsed_s = 1.5};
    rng_seed(&p.batch_rng, 1337, 1);
    TrainConfig cfg;
    config_defaults(&cfg);
    char* text = NULL;
    size_t text_len = 0;
    FILE* f = open_memstream(&text, &text_len);
    config_write(&cfg, f);
    fclose(f);
    char path[1024];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", tmp, CHECKPOINT_STATE_FILE);
    DataId data = {.text = 0x0123456789abcdefULL, .train_tokens = 2, .val_tokens = 3};
    check(checkpoint_save_state(path, &m, &opt, &p, text, &tok, &data, err, sizeof err) == 0, "save the state seed");
    unsigned char* buf = slurp(path, &len);
    seed("checkpoint_state", "step20.safetensors", buf, len);
    seed("checkpoint_state", "truncated.safetensors", buf, len / 2);
    free(buf);
    free(text);
    adamw_free(&opt);
    gpt_free(&m);

    /* another model (wider) and another tokenizer: refused, but valid files */
    c.n_embd = 8;
    build(&m, &c, 4);
    adamw_init(&opt, m.num_params);
    tok.hash ^= 1;
    check(checkpoint_save_state(path, &m, &opt, &p, "n_embd = 8\n", &tok, &data, err, sizeof err) == 0,
          "save a state seed");
    buf = slurp(path, &len);
    seed("checkpoint_state", "other_model.safetensors", buf, len);
    free(buf);
    adamw_free(&opt);
    gpt_free(&m);
}

/* The container fuzz_checkpoint_model reads: 4-byte length, tokenizer.bin, model.safetensors. */
static void model_seed(const char* tmp, const char* name, GPTConfig c) {
    GPT m;
    build(&m, &c, 5);
    size_t tok_len, st_len;
    unsigned char* tok = fuzz_tiny_tokenizer_file(&tok_len);
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    check(checkpoint_save_model(dir, &m, tok, tok_len, 7, 2.5f, err, sizeof err) == 0, "save a model seed");
    snprintf(path, sizeof path, "%s/%s", dir, CHECKPOINT_MODEL_FILE);
    unsigned char* st = slurp(path, &st_len);
    unsigned char* file = xmalloc(4 + tok_len + st_len, "seed");
    for (int i = 0; i < 4; i++) file[i] = (unsigned char)(tok_len >> (8 * i));
    memcpy(file + 4, tok, tok_len);
    memcpy(file + 4 + tok_len, st, st_len);
    char file_name[256];
    snprintf(file_name, sizeof file_name, "%s.bin", name);
    seed("checkpoint_model", file_name, file, 4 + tok_len + st_len);
    if (c.bias && c.tie_weights) {  /* the plain model.safetensors seeds the safetensors target too */
        seed("safetensors", "model.safetensors", st, st_len);
        seed("checkpoint_model", "truncated.bin", file, (4 + tok_len + st_len) * 3 / 4);
    }
    free(file);
    free(st);
    free(tok);
    gpt_free(&m);
}

static void model_seeds(const char* tmp) {
    GPTConfig c = fuzz_tiny_config();
    model_seed(tmp, "tied_learned_bias", c);
    c.tie_weights = 0;
    c.bias = 0;
    c.pos_encoding = POS_SINUSOIDAL;
    c.embed_scale = 2.0f;
    model_seed(tmp, "untied_sinusoidal_nobias", c);
    c = fuzz_tiny_config();
    c.n_layer = 2;
    c.n_embd = 8;
    c.block_size = 16;
    model_seed(tmp, "two_layers", c);
}

/* ---- tokenizers --------------------------------------------------------------- */

static void tokenizer_seed(const TokenizerSpec* spec, const char* name, const unsigned char* text, size_t len) {
    Tokenizer* t = tokenizer_train(spec, text, len, err, sizeof err);
    check(t != NULL, "train a tokenizer seed");
    size_t n;
    unsigned char* buf = tokenizer_serialize(t, &n);
    check(buf != NULL, "serialise a tokenizer seed");
    char file_name[256];
    snprintf(file_name, sizeof file_name, "%s.tokenizer", name);
    seed("tokenizer", file_name, buf, n);
    if (spec->kind == TOKENIZER_SENTENCEPIECE) {  /* the ModelProto after the 20-byte header */
        snprintf(file_name, sizeof file_name, "%s.model", name);
        seed("sentencepiece", file_name, buf + 20, n - 20);
    }
    free(buf);
    tokenizer_free(t);
}

static void tokenizer_seeds(const unsigned char* text, size_t len) {
    TokenizerSpec spec = {.kind = TOKENIZER_CHAR};
    tokenizer_seed(&spec, "char_tiny", (const unsigned char*)FUZZ_TOKENIZER_TEXT, strlen(FUZZ_TOKENIZER_TEXT));
    tokenizer_seed(&spec, "char_text", text, len);
    spec.kind = TOKENIZER_BYTE;
    tokenizer_seed(&spec, "byte", text, len);
    if (!tokenizer_has_sentencepiece()) return;
    spec.kind = TOKENIZER_SENTENCEPIECE;
    spec.vocab_size = 400;
    tokenizer_seed(&spec, "spm_bpe_400", text, len);
    spec.spm_model_type = SPM_UNIGRAM;
    tokenizer_seed(&spec, "spm_unigram_400", text, len);
}

int main(int argc, char** argv) {
    if (argc != 3) die(EXIT_BAD_INPUT, "usage: make_seeds CORPUS_DIR TEXT_FILE");
    corpus = argv[1];
    fuzz_setup();
    size_t len;
    unsigned char* text = slurp(argv[2], &len);
    char tmp[] = "/tmp/emergent_seeds.XXXXXX";
    check(mkdtemp(tmp) != NULL, "make a temporary directory");
    token_seeds(tmp);
    safetensors_seeds(tmp);
    state_seeds(tmp);
    model_seeds(tmp);
    tokenizer_seeds(text, len);
    free(text);
    printf("%s\n", tmp);  /* the script removes it */
    return 0;
}
