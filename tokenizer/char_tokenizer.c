/* char_tokenizer.c: the char and byte backends, one table of byte values each.
 * char: the sorted distinct bytes of the training text (id i is the i-th);
 * byte: all 256 values, id = byte. Both are lossless on any text they cover. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/backends.h"

static void set_err(char* err, size_t errlen, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void table_set(ByteTable* t, const unsigned char* bytes, int n) {
    t->vocab_size = n;
    for (int b = 0; b < 256; b++) t->byte_to_id[b] = -1;
    for (int i = 0; i < n; i++) {
        t->id_to_byte[i] = bytes[i];
        t->byte_to_id[bytes[i]] = i;
    }
}

void bytetable_from_text(ByteTable* t, const unsigned char* text, size_t len) {
    int seen[256] = {0};
    for (size_t i = 0; i < len; i++) seen[text[i]] = 1;
    unsigned char bytes[256];
    int n = 0;
    for (int b = 0; b < 256; b++)
        if (seen[b]) bytes[n++] = (unsigned char)b;
    table_set(t, bytes, n);
}

void bytetable_all(ByteTable* t) {
    unsigned char bytes[256];
    for (int b = 0; b < 256; b++) bytes[b] = (unsigned char)b;
    table_set(t, bytes, 256);
}

int bytetable_from_bytes(ByteTable* t, const unsigned char* bytes, size_t n, const char* name, char* err,
                         size_t errlen) {
    if (n < 1 || n > 256) {
        set_err(err, errlen, "%s: char vocabulary of %zu bytes, outside [1, 256]", name, n);
        return -1;
    }
    for (size_t i = 1; i < n; i++)
        if (bytes[i] <= bytes[i - 1]) {
            set_err(err, errlen, "%s: vocabulary bytes are not sorted and distinct at entry %zu", name, i);
            return -1;
        }
    table_set(t, bytes, (int)n);
    return 0;
}

long bytetable_encode(const ByteTable* t, const unsigned char* text, size_t len, uint16_t* ids, size_t cap,
                      char* err, size_t errlen) {
    if (len > cap) {
        set_err(err, errlen, "output holds %zu ids, the text needs %zu", cap, len);
        return -1;
    }
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

char* bytetable_decode(const ByteTable* t, const uint16_t* ids, size_t n, size_t* out_len, char* err,
                       size_t errlen) {
    char* out = malloc(n + 1);
    if (!out) {
        set_err(err, errlen, "out of memory decoding %zu ids", n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= t->vocab_size) {
            set_err(err, errlen, "id %d at position %zu is outside the vocabulary [0, %d)", ids[i], i, t->vocab_size);
            free(out);
            return NULL;
        }
        out[i] = (char)t->id_to_byte[ids[i]];
    }
    out[n] = 0;
    *out_len = n;
    return out;
}
