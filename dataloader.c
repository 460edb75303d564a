/* dataloader.c: data preparation, token files and batch sampling. */
#include "dataloader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/tokenizer.h"

#define TRAIN_FRACTION 0.9  /* nanoGPT's split: first 90% train, last 10% val */

static const char* TOKENIZER_NAMES[] = {"char"};

static const char* base_name(const char* path) {
    const char* s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void tokens_write(const char* path, const uint16_t* ids, size_t n, int vocab_size) {
    if (n > INT32_MAX) die(EXIT_BAD_INPUT, "%s: %zu tokens do not fit the int32 count of the header", path, n);
    size_t bytes = TOKENS_HEADER_INTS * sizeof(int32_t) + n * sizeof(uint16_t);
    unsigned char* buf = xcalloc(bytes, 1, path);
    int32_t header[TOKENS_HEADER_INTS] = {0};
    header[0] = TOKENS_MAGIC;
    header[1] = TOKENS_VERSION;
    header[2] = (int32_t)n;
    header[TOKENS_SLOT_VOCAB] = vocab_size;
    memcpy(buf, header, sizeof header);
    memcpy(buf + sizeof header, ids, n * sizeof(uint16_t));
    write_file_atomic(path, buf, bytes);
    free(buf);
}

/* Check a token file's header against its size and the vocabulary; returns the
 * token count. Does not look at the ids (tokens_read does). */
static size_t tokens_check_header(FILE* f, const char* path, int vocab_size) {
    struct stat st;
    if (fstat(fileno(f), &st) != 0) die(EXIT_BAD_INPUT, "cannot stat %s: %s", path, strerror(errno));
    size_t len = (size_t)st.st_size;
    int32_t header[TOKENS_HEADER_INTS];
    if (len < sizeof header) die(EXIT_BAD_INPUT, "%s: %zu bytes, too short for the 1024-byte token file header", path, len);
    xfread(header, sizeof header, 1, f, path);
    if (header[0] != TOKENS_MAGIC) die(EXIT_BAD_INPUT, "%s: bad magic %d, expected %d (not a token file)", path, header[0], TOKENS_MAGIC);
    if (header[1] != TOKENS_VERSION) die(EXIT_BAD_INPUT, "%s: version %d, this build reads uint16 version %d", path, header[1], TOKENS_VERSION);
    if (header[2] < 0 || len != sizeof header + (size_t)header[2] * sizeof(uint16_t))
        die(EXIT_BAD_INPUT, "%s: header says %d tokens (%zu bytes) but the file has %zu bytes", path, header[2],
            sizeof header + (size_t)header[2] * sizeof(uint16_t), len);
    if (header[TOKENS_SLOT_VOCAB] != 0 && header[TOKENS_SLOT_VOCAB] != vocab_size)
        die(EXIT_BAD_INPUT, "%s: made for vocab_size %d, the tokenizer has %d", path, header[TOKENS_SLOT_VOCAB], vocab_size);
    return (size_t)header[2];
}

static size_t tokens_count(const char* path, int vocab_size) {
    FILE* f = xfopen(path, "rb");
    size_t n = tokens_check_header(f, path, vocab_size);
    fclose(f);
    return n;
}

uint16_t* tokens_read(const char* path, int vocab_size, size_t* n) {
    FILE* f = xfopen(path, "rb");
    *n = tokens_check_header(f, path, vocab_size);
    uint16_t* ids = xmalloc(*n * sizeof(uint16_t) + 1, path);
    xfread(ids, sizeof(uint16_t), *n, f, path);
    fclose(f);
    for (size_t i = 0; i < *n; i++)
        if (ids[i] >= vocab_size) die(EXIT_BAD_INPUT, "%s: token %zu has id %d, outside the vocabulary [0, %d)", path, i, ids[i], vocab_size);
    return ids;
}

/* The cache is valid if all three files exist and the token files' headers agree
 * with the tokenizer (the file names already carry the text's hash). */
static int cache_valid(PreparedData* d) {
    if (!file_exists(d->train_path) || !file_exists(d->val_path) || !file_exists(d->tokenizer_path)) return 0;
    char err[512];
    Tokenizer* t = tokenizer_load(d->tokenizer_path, err, sizeof err);
    if (!t) return 0;
    d->vocab_size = tokenizer_vocab_size(t);
    tokenizer_free(t);
    /* headers only: the ids are checked once, when dataloader_open reads them */
    d->n_train = tokens_count(d->train_path, d->vocab_size);
    d->n_val = tokens_count(d->val_path, d->vocab_size);
    return 1;
}

void data_prepare(const TrainConfig* cfg, PreparedData* d) {
    memset(d, 0, sizeof(*d));
    size_t len;
    unsigned char* text = read_file(cfg->input, &len);
    if (len == 0) die(EXIT_BAD_INPUT, "input %s is empty", cfg->input);
    d->text_bytes = len;
    char stem[CONFIG_STR_MAX + 64];
    xsnprintf(stem, sizeof stem, "%s/%s.%016llx.%s", cfg->data_dir, base_name(cfg->input),
             (unsigned long long)fnv1a64(text, len), TOKENIZER_NAMES[cfg->tokenizer]);
    xsnprintf(d->train_path, sizeof d->train_path, "%s.train.bin", stem);
    xsnprintf(d->val_path, sizeof d->val_path, "%s.val.bin", stem);
    xsnprintf(d->tokenizer_path, sizeof d->tokenizer_path, "%s.tokenizer", stem);
    if (cache_valid(d)) {
        d->reused = 1;
        free(text);
        return;
    }

    char err[512];
    Tokenizer* tok = tokenizer_train((TokenizerKind)cfg->tokenizer, text, len, err, sizeof err);
    if (!tok) die(EXIT_BAD_INPUT, "%s: %s", cfg->input, err);
    d->vocab_size = tokenizer_vocab_size(tok);
    uint16_t* ids = xmalloc(len * sizeof(uint16_t), "token ids");
    long n = tokenizer_encode(tok, text, len, ids, len, err, sizeof err);
    if (n < 0) die(EXIT_BAD_INPUT, "%s: %s", cfg->input, err);
    d->n_train = (size_t)(n * TRAIN_FRACTION);
    d->n_val = (size_t)n - d->n_train;

    make_dirs(cfg->data_dir);
    size_t tok_len;
    unsigned char* tok_bytes = tokenizer_serialize(tok, &tok_len);
    if (!tok_bytes) die(EXIT_IO_FAILURE, "out of memory serialising the tokenizer");
    /* tokenizer first: a cache is only trusted when all three files exist */
    write_file_atomic(d->tokenizer_path, tok_bytes, tok_len);
    tokens_write(d->train_path, ids, d->n_train, d->vocab_size);
    tokens_write(d->val_path, ids + d->n_train, d->n_val, d->vocab_size);
    free(tok_bytes);
    free(ids);
    tokenizer_free(tok);
    free(text);
}

void dataloader_open(DataLoader* dl, const char* path, const char* source, int vocab_size, int block_size) {
    dl->path = path;
    dl->tokens = tokens_read(path, vocab_size, &dl->n);
    if (dl->n < (size_t)block_size + 1)
        die(EXIT_BAD_INPUT, "%s: its split %s holds %zu tokens, fewer than block_size + 1 = %d: use more text or a "
            "smaller block_size", source, path, dl->n, block_size + 1);
}

void dataloader_free(DataLoader* dl) {
    free(dl->tokens);
    dl->tokens = NULL;
}

void dataloader_next_batch(const DataLoader* dl, Rng* rng, int* inputs, int* targets, int B, int T) {
    for (int b = 0; b < B; b++) {
        size_t start = rng_below(rng, (uint32_t)(dl->n - T));  /* start + T + 1 <= n */
        for (int t = 0; t < T; t++) {
            inputs[b * T + t] = dl->tokens[start + t];
            targets[b * T + t] = dl->tokens[start + t + 1];
        }
    }
}
