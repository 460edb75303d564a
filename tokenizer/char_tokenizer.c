/* char_tokenizer.c: the char backend of tokenizer.h. The vocabulary is the
 * sorted set of distinct bytes of the training text; id i is the i-th byte. */
#include "tokenizer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKENIZER_MAGIC 0x4b4f5445u  /* "ETOK" little-endian */
#define TOKENIZER_VERSION 1u
enum { HEADER_WORDS = 4 };           /* magic, version, kind, vocab_size */

struct Tokenizer {
    TokenizerKind kind;
    int vocab_size;
    unsigned char id_to_byte[256];
    int byte_to_id[256];             /* -1: byte not in the vocabulary */
};

static void set_err(char* err, size_t errlen, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static Tokenizer* from_bytes(const unsigned char* bytes, int n) {
    Tokenizer* t = calloc(1, sizeof(Tokenizer));
    if (!t) return NULL;
    t->kind = TOKENIZER_CHAR;
    t->vocab_size = n;
    for (int b = 0; b < 256; b++) t->byte_to_id[b] = -1;
    for (int i = 0; i < n; i++) {
        t->id_to_byte[i] = bytes[i];
        t->byte_to_id[bytes[i]] = i;
    }
    return t;
}

Tokenizer* tokenizer_train(TokenizerKind kind, const unsigned char* text, size_t len, char* err, size_t errlen) {
    if (kind != TOKENIZER_CHAR) { set_err(err, errlen, "unknown tokenizer kind %d", (int)kind); return NULL; }
    if (len == 0) { set_err(err, errlen, "cannot build a vocabulary from empty text"); return NULL; }
    int seen[256] = {0};
    for (size_t i = 0; i < len; i++) seen[text[i]] = 1;
    unsigned char bytes[256];
    int n = 0;
    for (int b = 0; b < 256; b++)
        if (seen[b]) bytes[n++] = (unsigned char)b;
    Tokenizer* t = from_bytes(bytes, n);
    if (!t) set_err(err, errlen, "out of memory");
    return t;
}

unsigned char* tokenizer_serialize(const Tokenizer* t, size_t* len) {
    *len = HEADER_WORDS * sizeof(uint32_t) + (size_t)t->vocab_size;
    unsigned char* buf = malloc(*len);
    if (!buf) return NULL;
    uint32_t header[HEADER_WORDS] = {TOKENIZER_MAGIC, TOKENIZER_VERSION, (uint32_t)t->kind, (uint32_t)t->vocab_size};
    memcpy(buf, header, sizeof header);
    memcpy(buf + sizeof header, t->id_to_byte, (size_t)t->vocab_size);
    return buf;
}

Tokenizer* tokenizer_load(const char* path, char* err, size_t errlen) {
    FILE* f = fopen(path, "rb");
    if (!f) { set_err(err, errlen, "cannot open tokenizer %s: %s", path, strerror(errno)); return NULL; }
    uint32_t header[HEADER_WORDS];
    unsigned char bytes[257];
    Tokenizer* t = NULL;
    size_t n;
    if (fread(header, sizeof(uint32_t), HEADER_WORDS, f) != HEADER_WORDS)
        set_err(err, errlen, "%s: too short for a tokenizer header", path);
    else if (header[0] != TOKENIZER_MAGIC)
        set_err(err, errlen, "%s: not a tokenizer file (bad magic 0x%08x)", path, header[0]);
    else if (header[1] != TOKENIZER_VERSION)
        set_err(err, errlen, "%s: tokenizer version %u, this build reads %u", path, header[1], TOKENIZER_VERSION);
    else if (header[2] != TOKENIZER_CHAR)
        set_err(err, errlen, "%s: tokenizer kind %u is not supported", path, header[2]);
    else if (header[3] < 1 || header[3] > 256)
        set_err(err, errlen, "%s: char vocabulary size %u outside [1, 256]", path, header[3]);
    else if ((n = fread(bytes, 1, sizeof bytes, f)) != header[3])
        set_err(err, errlen, "%s: expected %u vocabulary bytes, found %zu", path, header[3], n);
    else {
        for (size_t i = 1; i < n; i++)
            if (bytes[i] <= bytes[i - 1]) {
                set_err(err, errlen, "%s: vocabulary bytes are not sorted and distinct at entry %zu", path, i);
                fclose(f);
                return NULL;
            }
        t = from_bytes(bytes, (int)n);
        if (!t) set_err(err, errlen, "out of memory");
    }
    fclose(f);
    return t;
}

void tokenizer_free(Tokenizer* t) { free(t); }

int tokenizer_vocab_size(const Tokenizer* t) { return t->vocab_size; }

long tokenizer_encode(const Tokenizer* t, const unsigned char* text, size_t len, uint16_t* ids, size_t cap,
                      char* err, size_t errlen) {
    if (len > cap) { set_err(err, errlen, "output holds %zu ids, the text needs %zu", cap, len); return -1; }
    for (size_t i = 0; i < len; i++) {
        int id = t->byte_to_id[text[i]];
        if (id < 0) {
            set_err(err, errlen, "byte 0x%02x at offset %zu is not in the vocabulary", text[i], i);
            return -1;
        }
        ids[i] = (uint16_t)id;
    }
    return (long)len;
}

long tokenizer_decode(const Tokenizer* t, const uint16_t* ids, size_t n, char* out, size_t cap) {
    if (n + 1 > cap) return -1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= t->vocab_size) return -1;
        out[i] = (char)t->id_to_byte[ids[i]];
    }
    out[n] = 0;
    return (long)n;
}
