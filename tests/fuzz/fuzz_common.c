/* fuzz_common.c: helpers shared by the libFuzzer targets and the seed generator
 * (see fuzz_common.h). Not a fuzz target itself. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_common.h"

#include <dirent.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_setup(void) { omp_set_num_threads(1); }

void fuzz_check(int cond, const char* what) {
    if (cond) return;
    fprintf(stderr, "fuzz property failed: %s\n", what);
    abort();
}

void fuzz_check_refusal_has_message(const char* err) { fuzz_check(err[0] != 0, "a refusal comes with a message"); }

/* ---- a private temporary directory ---------------------------------------- */

static char tmpdir[64];

static void remove_tmpdir(void) {
    DIR* d = opendir(tmpdir);
    if (d) {
        char path[sizeof tmpdir + 256];
        for (struct dirent* e; (e = readdir(d)) != NULL;) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(tmpdir);
}

const char* fuzz_tmpdir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/emergent_fuzz.XXXXXX");
        fuzz_check(mkdtemp(tmpdir) != NULL, "mkdtemp under /tmp");
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

void fuzz_write_file(const char* dir, const char* name, const void* data, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    /* a new file, not one truncated: ext4 flushes a file truncated and rewritten at close */
    unlink(path);
    FILE* f = fopen(path, "wb");
    fuzz_check(f != NULL, "create a file in the temporary directory");
    fuzz_check(fwrite(data, 1, len, f) == len, "write a file in the temporary directory");
    fuzz_check(fclose(f) == 0, "close a file in the temporary directory");
}

/* ---- the tiny model and its tokenizer ------------------------------------- */

GPTConfig fuzz_tiny_config(void) {
    GPTConfig c = {.vocab_size = FUZZ_VOCAB, .block_size = 4, .n_layer = 1, .n_head = 2, .n_embd = 4,
                   .pos_encoding = POS_LEARNED, .embed_scale = 1.0f, .tie_weights = 1, .bias = 1};
    return c;
}

static Tokenizer* tiny_tokenizer(void) {
    char err[256];
    TokenizerSpec spec = {.kind = TOKENIZER_CHAR};
    Tokenizer* t = tokenizer_train(&spec, (const unsigned char*)FUZZ_TOKENIZER_TEXT, strlen(FUZZ_TOKENIZER_TEXT), err,
                                   sizeof err);
    fuzz_check(t != NULL && tokenizer_vocab_size(t) == FUZZ_VOCAB, "the tiny char tokenizer");
    return t;
}

unsigned char* fuzz_tiny_tokenizer_file(size_t* len) {
    Tokenizer* t = tiny_tokenizer();
    unsigned char* buf = tokenizer_serialize(t, len);
    fuzz_check(buf != NULL, "serialise the tiny tokenizer");
    tokenizer_free(t);
    return buf;
}

TokenizerId fuzz_tiny_tokenizer_id(void) {
    Tokenizer* t = tiny_tokenizer();
    size_t len;
    unsigned char* buf = tokenizer_serialize(t, &len);
    fuzz_check(buf != NULL, "serialise the tiny tokenizer");
    TokenizerId id = tokenizer_id(t, buf, len);
    free(buf);
    tokenizer_free(t);
    return id;
}

/* ---- using an accepted tokenizer ------------------------------------------ */

enum { MAX_PIECES_SHOWN = 512, MAX_SAMPLE = 256 };

static void exercise_pieces(const Tokenizer* t) {
    int V = tokenizer_vocab_size(t), bytes = tokenizer_kind(t) != TOKENIZER_SENTENCEPIECE;
    char piece[4096];
    for (int id = 0; id < V && id < MAX_PIECES_SHOWN; id++) {
        int n = tokenizer_piece(t, id, piece, sizeof piece);
        if (!bytes) {  /* a piece may be too long for the buffer; its id need not be unique */
            if (n >= 0) tokenizer_piece_to_id(t, piece);
            continue;
        }
        fuzz_check(n > 0, "every char/byte id has a printable piece");
        fuzz_check(tokenizer_piece_to_id(t, piece) == id, "a char/byte piece maps back to its id");
    }
    fuzz_check(tokenizer_piece(t, V, piece, sizeof piece) == -1, "the piece of id vocab_size is refused");
    fuzz_check(tokenizer_piece(t, -1, piece, sizeof piece) == -1, "the piece of id -1 is refused");
}

static void exercise_file(const Tokenizer* t) {
    char err[1024] = "";
    size_t len, len2;
    unsigned char* buf = tokenizer_serialize(t, &len);
    fuzz_check(buf != NULL, "an accepted tokenizer serialises");
    Tokenizer* again = tokenizer_deserialize(buf, len, "reserialised", err, sizeof err);
    if (!again) fprintf(stderr, "%s\n", err);
    fuzz_check(again != NULL, "a serialised tokenizer loads again");
    fuzz_check(tokenizer_kind(again) == tokenizer_kind(t) && tokenizer_vocab_size(again) == tokenizer_vocab_size(t),
               "a reloaded tokenizer has the same kind and vocabulary size");
    unsigned char* buf2 = tokenizer_serialize(again, &len2);
    fuzz_check(buf2 != NULL && len2 == len && memcmp(buf, buf2, len) == 0, "serialising a reloaded tokenizer is stable");
    free(buf2);
    tokenizer_free(again);
    free(buf);
}

static void exercise_text(const Tokenizer* t, const unsigned char* sample, size_t sample_len) {
    static const char FIXED[] = "Hello, world!\n\tab  cd \xe2\x96\x81<0x41>\\x41 \xc3\xa9\n";
    unsigned char text[sizeof FIXED + MAX_SAMPLE];
    size_t n_fixed = sizeof FIXED - 1, n_sample = sample_len < MAX_SAMPLE ? sample_len : MAX_SAMPLE;
    memcpy(text, FIXED, n_fixed);
    if (n_sample) memcpy(text + n_fixed, sample, n_sample);
    size_t len = n_fixed + n_sample;
    int V = tokenizer_vocab_size(t);
    TokenizerKind kind = tokenizer_kind(t);
    uint16_t ids[sizeof text];
    char err[1024] = "";
    long n = tokenizer_encode(t, text, len, ids, len, err, sizeof err);
    if (n < 0) {
        fuzz_check_refusal_has_message(err);
        fuzz_check(kind != TOKENIZER_BYTE, "the byte tokenizer encodes any text");
        return;
    }
    fuzz_check((size_t)n <= len, "no more ids than bytes");
    for (long i = 0; i < n; i++) fuzz_check(ids[i] < V, "encoded ids lie in the vocabulary");
    size_t dlen;
    char* dec = tokenizer_decode(t, ids, (size_t)n, &dlen, err, sizeof err);
    if (!dec) fprintf(stderr, "%s\n", err);
    fuzz_check(dec != NULL, "encoded ids decode");
    if (kind != TOKENIZER_SENTENCEPIECE)
        fuzz_check(dlen == len && memcmp(dec, text, len) == 0, "char/byte: decode(encode(text)) == text");
    free(dec);
    size_t first_bad, bad_bytes;
    int rc = tokenizer_check_roundtrip(t, text, len, ids, (size_t)n, &first_bad, &bad_bytes, err, sizeof err);
    /* SentencePiece may refuse to encode a piece of the text alone, with a model
     * that lengthens text (more ids than bytes); char and byte never fail here */
    int ran = rc >= 0 || (kind == TOKENIZER_SENTENCEPIECE && err[0]);
    if (!ran) fprintf(stderr, "%s\n", err);
    fuzz_check(ran, "the round-trip check of encodable text runs");
    if (rc > 0) fuzz_check(first_bad < len && bad_bytes >= 1 && err[0], "a lossy round trip is located and described");
    if (V < TOKENIZER_MAX_VOCAB) {  /* an id outside the vocabulary is refused, with a message */
        uint16_t bad = (uint16_t)V;
        err[0] = 0;
        dec = tokenizer_decode(t, &bad, 1, &dlen, err, sizeof err);
        fuzz_check(dec == NULL, "decoding id vocab_size fails");
        fuzz_check_refusal_has_message(err);
    }
}

void fuzz_exercise_tokenizer(const Tokenizer* t, const unsigned char* sample, size_t sample_len) {
    int V = tokenizer_vocab_size(t);
    fuzz_check(V >= 1 && V <= TOKENIZER_MAX_VOCAB, "vocab_size in [1, 65536]");
    exercise_pieces(t);
    exercise_file(t);
    exercise_text(t, sample, sample_len);
}
