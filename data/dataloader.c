/* dataloader.c: data preparation, token files and batch sampling. */
#include "data/dataloader.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/tokenizer.h"

#define TRAIN_FRACTION 0.9  /* nanoGPT's split: first 90% train, last 10% val */

static const char* base_name(const char* path) {
    const char* s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The checksum a header records (slots 5 and 6), and the one a file with this
 * header and these ids has: fnv1a64 of the header with slots 5 and 6 read as 0,
 * then of the ids. */
static uint64_t recorded_checksum(const int32_t* header) {
    uint32_t lo, hi;
    memcpy(&lo, &header[TOKENS_SLOT_CHECKSUM], sizeof lo);
    memcpy(&hi, &header[TOKENS_SLOT_CHECKSUM + 1], sizeof hi);
    return (uint64_t)hi << 32 | lo;
}

static uint64_t file_checksum(const int32_t* header, const uint16_t* ids, size_t n) {
    int32_t h[TOKENS_HEADER_INTS];
    memcpy(h, header, sizeof h);
    h[TOKENS_SLOT_CHECKSUM] = h[TOKENS_SLOT_CHECKSUM + 1] = 0;
    return fnv1a64_update(fnv1a64(h, sizeof h), ids, n * sizeof(uint16_t));
}

uint64_t tokens_write(const char* path, const uint16_t* ids, size_t n, int vocab_size) {
    if (n > INT32_MAX) die(EXIT_BAD_INPUT, "%s: %zu tokens do not fit the int32 count of the header", path, n);
    size_t bytes = TOKENS_HEADER_INTS * sizeof(int32_t) + n * sizeof(uint16_t);
    unsigned char* buf = xcalloc(bytes, 1, path);
    int32_t header[TOKENS_HEADER_INTS] = {0};
    header[0] = TOKENS_MAGIC;
    header[1] = TOKENS_VERSION;
    header[2] = (int32_t)n;
    header[TOKENS_SLOT_VOCAB] = vocab_size;
    header[TOKENS_SLOT_CHECKSUM_KIND] = TOKENS_CHECKSUM_FNV1A64;
    uint64_t sum = file_checksum(header, ids, n);
    uint32_t lo = (uint32_t)sum, hi = (uint32_t)(sum >> 32);
    memcpy(&header[TOKENS_SLOT_CHECKSUM], &lo, sizeof lo);
    memcpy(&header[TOKENS_SLOT_CHECKSUM + 1], &hi, sizeof hi);
    memcpy(buf, header, sizeof header);
    memcpy(buf + sizeof header, ids, n * sizeof(uint16_t));
    write_file_atomic(path, buf, bytes);
    free(buf);
    return sum;
}

int tokens_check_header(const void* head, size_t len, const char* path, int vocab_size, size_t* n,
                        uint64_t* checksum, char* err, size_t errlen) {
    int32_t header[TOKENS_HEADER_INTS];
    if (len < sizeof header)
        return errorf(err, errlen, "%s: %zu bytes, too short for the 1024-byte token file header", path, len);
    memcpy(header, head, sizeof header);
    if (header[0] != TOKENS_MAGIC)
        return errorf(err, errlen, "%s: bad magic %d, expected %d (not a token file)", path, header[0], TOKENS_MAGIC);
    if (header[1] != TOKENS_VERSION)
        return errorf(err, errlen, "%s: version %d, this build reads uint16 version %d", path, header[1],
                      TOKENS_VERSION);
    if (header[2] < 0 || len != sizeof header + (size_t)header[2] * sizeof(uint16_t))
        return errorf(err, errlen, "%s: header says %d tokens (%zu bytes) but the file has %zu bytes", path,
                      header[2], sizeof header + (size_t)header[2] * sizeof(uint16_t), len);
    if (header[TOKENS_SLOT_VOCAB] != 0 && header[TOKENS_SLOT_VOCAB] != vocab_size)
        return errorf(err, errlen, "%s: made for vocab_size %d, the tokenizer has %d", path,
                      header[TOKENS_SLOT_VOCAB], vocab_size);
    int kind = header[TOKENS_SLOT_CHECKSUM_KIND];
    if (kind != 0 && kind != TOKENS_CHECKSUM_FNV1A64)
        return errorf(err, errlen, "%s: header slot %d names checksum kind %d; this build knows %d (fnv1a64) and 0 "
                      "(none)", path, TOKENS_SLOT_CHECKSUM_KIND, kind, TOKENS_CHECKSUM_FNV1A64);
    *n = (size_t)header[2];
    if (checksum) *checksum = kind ? recorded_checksum(header) : 0;
    return 0;
}

int tokens_check_sum(const void* head, const uint16_t* ids, size_t n, const char* path, char* err, size_t errlen) {
    int32_t header[TOKENS_HEADER_INTS];
    memcpy(header, head, sizeof header);
    if (header[TOKENS_SLOT_CHECKSUM_KIND] == 0) return 0;  /* llm.c's file: nothing to check */
    uint64_t want = recorded_checksum(header), got = file_checksum(header, ids, n);
    if (want != got)
        return errorf(err, errlen, "%s: checksum mismatch (file changed or corrupted?): its bytes hash to %016llx, "
                      "its header says %016llx; a token file of the data cache is prepared again from the text "
                      "once it is deleted", path, (unsigned long long)got, (unsigned long long)want);
    return 0;
}

int tokens_check_ids(const uint16_t* ids, size_t n, const char* path, int vocab_size, char* err, size_t errlen) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= vocab_size)
            return errorf(err, errlen, "%s: token %zu has id %d, outside the vocabulary [0, %d)", path, i, ids[i],
                          vocab_size);
    return 0;
}

uint16_t* tokens_parse(const unsigned char* buf, size_t len, const char* path, int vocab_size, size_t* n, char* err,
                       size_t errlen) {
    if (tokens_check_header(buf, len, path, vocab_size, n, NULL, err, errlen) != 0) return NULL;
    uint16_t* ids = malloc(*n * sizeof(uint16_t) + 1);
    if (!ids) { errorf(err, errlen, "%s: out of memory for %zu tokens", path, *n); return NULL; }
    memcpy(ids, buf + TOKENS_HEADER_INTS * sizeof(int32_t), *n * sizeof(uint16_t));
    /* the ids first: an id outside the vocabulary says more than a checksum */
    if (tokens_check_ids(ids, *n, path, vocab_size, err, errlen) != 0 ||
        tokens_check_sum(buf, ids, *n, path, err, errlen) != 0) {
        free(ids);
        return NULL;
    }
    return ids;
}

/* The file's size and header (into header), checked (tokens_check_header); the file
 * is left positioned at the first id. Returns the token count; dies on bad input. */
static size_t read_header(FILE* f, const char* path, int vocab_size, int32_t header[TOKENS_HEADER_INTS],
                          uint64_t* checksum) {
    struct stat st;
    if (fstat(fileno(f), &st) != 0) die(EXIT_BAD_INPUT, "cannot stat %s: %s", path, strerror(errno));
    size_t len = (size_t)st.st_size, n = 0;
    memset(header, 0, TOKENS_HEADER_INTS * sizeof(int32_t));
    char err[CONFIG_STR_MAX + 256];
    if (len >= TOKENS_HEADER_INTS * sizeof(int32_t)) xfread(header, sizeof(int32_t), TOKENS_HEADER_INTS, f, path);
    if (tokens_check_header(header, len, path, vocab_size, &n, checksum, err, sizeof err) != 0)
        die(EXIT_BAD_INPUT, "%s", err);
    return n;
}

/* The token count, and the checksum the header records (0: none). */
static size_t tokens_count(const char* path, int vocab_size, uint64_t* checksum) {
    FILE* f = xfopen(path, "rb");
    int32_t header[TOKENS_HEADER_INTS];
    size_t n = read_header(f, path, vocab_size, header, checksum);
    fclose(f);
    return n;
}

uint16_t* tokens_read(const char* path, int vocab_size, size_t* n) {
    FILE* f = xfopen(path, "rb");
    int32_t header[TOKENS_HEADER_INTS];
    *n = read_header(f, path, vocab_size, header, NULL);
    uint16_t* ids = xmalloc(*n * sizeof(uint16_t) + 1, path);
    xfread(ids, sizeof(uint16_t), *n, f, path);
    fclose(f);
    char err[CONFIG_STR_MAX + 512];
    if (tokens_check_ids(ids, *n, path, vocab_size, err, sizeof err) != 0 ||
        tokens_check_sum(header, ids, *n, path, err, sizeof err) != 0)
        die(EXIT_BAD_INPUT, "%s", err);
    return ids;
}

/* The cache is valid if all three files exist, the token files' headers agree with
 * the tokenizer (the file names already carry the hashes of text and settings) and
 * record checksums. A tokenizer that does not load (an earlier version's file) or a
 * token file without a checksum (an earlier version's, or llm.c's) is prepared again,
 * with a note; a token file whose header is damaged is refused here, one whose ids
 * are, when dataloader_open reads them and checks the checksum. */
static int cache_valid(PreparedData* d) {
    if (!file_exists(d->train_path) || !file_exists(d->val_path) || !file_exists(d->tokenizer_path)) return 0;
    char err[CONFIG_STR_MAX + 512];
    Tokenizer* t = tokenizer_load(d->tokenizer_path, NULL, err, sizeof err);
    if (!t) {
        fprintf(stderr, "note: data cache: %s: preparing the data again\n", err);
        return 0;
    }
    d->vocab_size = tokenizer_vocab_size(t);
    d->tokenizer_name = tokenizer_describe(t);  /* a string literal: outlives t */
    tokenizer_free(t);
    /* headers only: the ids and the checksums are checked once, when dataloader_open reads them */
    d->n_train = tokens_count(d->train_path, d->vocab_size, &d->train_checksum);
    d->n_val = tokens_count(d->val_path, d->vocab_size, &d->val_checksum);
    const char* unchecked = !d->train_checksum ? d->train_path : !d->val_checksum ? d->val_path : NULL;
    if (unchecked) fprintf(stderr, "note: data cache: %s has no checksum: preparing the data again\n", unchecked);
    return unchecked == NULL;
}

/* 90% of the bytes, moved back to the start of a UTF-8 character. */
static size_t split_point(const unsigned char* text, size_t len) {
    size_t cut = (size_t)(len * TRAIN_FRACTION);
    while (cut > 0 && (text[cut] & 0xC0) == 0x80) cut--;
    return cut;
}

/* The part of the cache file names that names the tokenizer and its settings. */
static void tokenizer_tag(const TrainConfig* cfg, char* out, size_t cap) {
    if (cfg->tokenizer == TOKENIZER_SENTENCEPIECE)
        xsnprintf(out, cap, "spm-%s-%d", cfg->spm_model_type == SPM_UNIGRAM ? "unigram" : "bpe", cfg->vocab_size);
    else
        xsnprintf(out, cap, "%s", cfg->tokenizer == TOKENIZER_BYTE ? "byte" : "char");
}

static long encode_or_die(const Tokenizer* tok, const TrainConfig* cfg, const unsigned char* text, size_t len,
                          uint16_t* ids) {
    char err[512];
    long n = tokenizer_encode(tok, text, len, ids, len, err, sizeof err);
    if (n < 0) die(EXIT_BAD_INPUT, "%s: %s", cfg->input, err);
    return n;
}

/* The text to train on, whole. A pipe, FIFO or terminal (--input=<(zcat a.gz),
 * /dev/stdin) has no size to read up front: it is read until its end. */
static unsigned char* read_text(const char* path, size_t* len) {
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return read_file(path, len);
    FILE* f = xfopen(path, "rb");
    size_t cap = (size_t)1 << 16, n = 0, got;
    unsigned char* text = xmalloc(cap + 1, path);
    while ((got = fread(text + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n < cap) continue;
        if (cap > SIZE_MAX / 4) die(EXIT_IO_FAILURE, "%s: more text than memory can hold", path);
        unsigned char* bigger = realloc(text, 2 * cap + 1);
        if (!bigger) die(EXIT_IO_FAILURE, "out of memory reading %s (%zu bytes so far)", path, n);
        text = bigger;
        cap *= 2;
    }
    if (ferror(f)) die(EXIT_BAD_INPUT, "%s: read failed after %zu bytes: %s", path, n, strerror(errno));
    fclose(f);
    text[n] = 0;
    *len = n;
    return text;
}

void data_prepare(const TrainConfig* cfg, PreparedData* d) {
    memset(d, 0, sizeof(*d));
    double t0 = now_seconds();
    size_t len;
    unsigned char* text = read_text(cfg->input, &len);
    if (len == 0) die(EXIT_BAD_INPUT, "input %s is empty", cfg->input);
    d->text_bytes = len;
    d->train_bytes = split_point(text, len);
    d->val_bytes = len - d->train_bytes;
    if (d->train_bytes == 0 || d->val_bytes == 0)
        die(EXIT_BAD_INPUT, "input %s: %zu bytes are too few to split into train and val", cfg->input, len);
    char tag[64], stem[CONFIG_STR_MAX + 64];
    tokenizer_tag(cfg, tag, sizeof tag);
    d->text_hash = fnv1a64(text, len);
    xsnprintf(stem, sizeof stem, "%s/%s.%016llx.%s", cfg->data_dir, base_name(cfg->input),
              (unsigned long long)d->text_hash, tag);
    xsnprintf(d->train_path, sizeof d->train_path, "%s.train.bin", stem);
    xsnprintf(d->val_path, sizeof d->val_path, "%s.val.bin", stem);
    xsnprintf(d->tokenizer_path, sizeof d->tokenizer_path, "%s.tokenizer", stem);
    if (cache_valid(d)) {
        d->reused = 1;
        d->seconds = now_seconds() - t0;
        free(text);
        return;
    }

    /* SentencePiece works on UTF-8: a byte outside it would come back as U+FFFD.
     * Said before training, which can take minutes on a large text. */
    size_t valid = utf8_valid_prefix(text, len);
    if (cfg->tokenizer == TOKENIZER_SENTENCEPIECE && !cfg->allow_lossy && valid < len) {
        size_t line = 1;
        for (size_t i = 0; i < valid; i++) line += text[i] == '\n';
        die(EXIT_BAD_INPUT, "%s: byte offset %zu (line %zu): byte 0x%02x is not valid UTF-8, which the sentencepiece "
            "tokenizer cannot reproduce (it decodes as U+FFFD): convert the text to UTF-8 (e.g. iconv -f latin1 -t "
            "utf-8), use tokenizer = char or byte (they take any bytes), or set allow_lossy = true", cfg->input, valid,
            line, text[valid]);
    }

    /* char: the vocabulary of the whole text, as nanoGPT; sentencepiece learns
     * from the train part only, so val stays unseen (byte fallback covers it) */
    char err[1024];
    TokenizerSpec spec = {.kind = (TokenizerKind)cfg->tokenizer, .vocab_size = cfg->vocab_size,
                          .spm_model_type = (SpmModelType)cfg->spm_model_type};
    size_t tok_text = spec.kind == TOKENIZER_SENTENCEPIECE ? d->train_bytes : len;
    Tokenizer* tok = tokenizer_train(&spec, text, tok_text, err, sizeof err);
    if (!tok) die(EXIT_BAD_INPUT, "%s: %s", cfg->input, err);
    d->vocab_size = tokenizer_vocab_size(tok);
    d->tokenizer_name = tokenizer_describe(tok);

    uint16_t* ids = xmalloc(len * sizeof(uint16_t), "token ids");  /* never more ids than bytes */
    d->n_train = (size_t)encode_or_die(tok, cfg, text, d->train_bytes, ids);
    d->n_val = (size_t)encode_or_die(tok, cfg, text + d->train_bytes, d->val_bytes, ids + d->n_train);

    /* lossless, or the user said otherwise: checked before anything is written */
    size_t first_bad;
    int rc = tokenizer_check_roundtrip(tok, text, len, ids, d->n_train + d->n_val, &first_bad, &d->lossy_bytes, err,
                                       sizeof err);
    if (rc < 0) die(EXIT_BAD_INPUT, "%s: %s", cfg->input, err);
    if (rc > 0 && !cfg->allow_lossy)
        die(EXIT_BAD_INPUT, "%s: the %s tokenizer cannot reproduce this text: %s; %zu byte%s in all would not "
            "round-trip. Remove those characters, or set allow_lossy = true to train on the text as encoded",
            cfg->input, d->tokenizer_name, err, d->lossy_bytes, d->lossy_bytes == 1 ? "" : "s");

    make_dirs(cfg->data_dir);
    /* tokenizer first: a cache is only trusted when all three files exist */
    if (tokenizer_save(tok, d->tokenizer_path, err, sizeof err) != 0) die(EXIT_IO_FAILURE, "%s", err);
    d->train_checksum = tokens_write(d->train_path, ids, d->n_train, d->vocab_size);
    d->val_checksum = tokens_write(d->val_path, ids + d->n_train, d->n_val, d->vocab_size);
    free(ids);
    tokenizer_free(tok);
    free(text);
    d->seconds = now_seconds() - t0;
}

void data_print_summary(const TrainConfig* cfg, const PreparedData* d, FILE* f) {
    fprintf(f, "data: %s, %zu bytes -> %s tokenizer, vocab_size %d: %zu train + %zu val tokens, "
            "%.4f tokens/byte (%s, %.2f s)\n", cfg->input, d->text_bytes, d->tokenizer_name, d->vocab_size,
            d->n_train, d->n_val, (double)(d->n_train + d->n_val) / d->text_bytes,
            d->reused ? "cached" : "prepared", d->seconds);
    if (d->lossy_bytes)
        fprintf(stderr, "warning: allow_lossy: %zu bytes of %s do not survive encode + decode\n", d->lossy_bytes,
                cfg->input);
}

double data_bits_per_byte(const PreparedData* d, double nats_per_token) {
    return nats_per_token / log(2.0) * (double)d->n_val / (double)d->val_bytes;
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
