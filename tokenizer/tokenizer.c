/* tokenizer.c: the public API of tokenizer.h: dispatch to the backends, the
 * file format, printable pieces and the round-trip check. */
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer/backends.h"
#include "util/utils.h"

#define TOKENIZER_MAGIC 0x4b4f5445u  /* "ETOK" little-endian */
#define TOKENIZER_VERSION 3u         /* 1: char only; 2: no checksum */
enum { HEADER_WORDS = 4 };           /* magic, version, kind, vocab_size */
enum { CHECKSUM_BYTES = 8 };         /* the file's last 8 bytes: fnv1a64 of the rest */
enum { SPM_MIN_VOCAB = 1 };          /* the library checks the real minimum and says why */

struct Tokenizer {
    TokenizerKind kind;
    SpmModelType spm_type;
    ByteTable table;  /* char and byte */
    SpmModel* spm;    /* sentencepiece */
};

static void set_err(char* err, size_t errlen, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int tokenizer_has_sentencepiece(void) { return spm_available(); }

static Tokenizer* new_tokenizer(TokenizerKind kind, char* err, size_t errlen) {
    Tokenizer* t = calloc(1, sizeof(Tokenizer));
    if (!t) set_err(err, errlen, "out of memory");
    else t->kind = kind;
    return t;
}

Tokenizer* tokenizer_train(const TokenizerSpec* spec, const unsigned char* text, size_t len, char* err,
                           size_t errlen) {
    if (len == 0 && spec->kind != TOKENIZER_BYTE) {
        set_err(err, errlen, "cannot build a vocabulary from empty text");
        return NULL;
    }
    if (spec->kind == TOKENIZER_SENTENCEPIECE &&
        (spec->vocab_size < SPM_MIN_VOCAB || spec->vocab_size > TOKENIZER_MAX_VOCAB)) {
        set_err(err, errlen, "vocab_size %d is outside [%d, %d] (ids are uint16)", spec->vocab_size, SPM_MIN_VOCAB,
                TOKENIZER_MAX_VOCAB);
        return NULL;
    }
    Tokenizer* t = new_tokenizer(spec->kind, err, errlen);
    if (!t) return NULL;
    switch (spec->kind) {
    case TOKENIZER_CHAR: bytetable_from_text(&t->table, text, len); return t;
    case TOKENIZER_BYTE: bytetable_all(&t->table); return t;
    case TOKENIZER_SENTENCEPIECE:
        t->spm_type = spec->spm_model_type;
        t->spm = spm_train(text, len, spec->vocab_size, spec->spm_model_type == SPM_UNIGRAM, err, errlen);
        if (t->spm) return t;
        break;
    default: set_err(err, errlen, "unknown tokenizer kind %d", (int)spec->kind);
    }
    free(t);
    return NULL;
}

void tokenizer_free(Tokenizer* t) {
    if (!t) return;
    if (t->spm) spm_free(t->spm);
    free(t);
}

TokenizerKind tokenizer_kind(const Tokenizer* t) { return t->kind; }

int tokenizer_vocab_size(const Tokenizer* t) {
    return t->kind == TOKENIZER_SENTENCEPIECE ? spm_vocab_size(t->spm) : t->table.vocab_size;
}

const char* tokenizer_describe(const Tokenizer* t) {
    switch (t->kind) {
    case TOKENIZER_CHAR: return "char";
    case TOKENIZER_BYTE: return "byte";
    default: return t->spm_type == SPM_UNIGRAM ? "sentencepiece unigram" : "sentencepiece bpe";
    }
}

/* ------------------------------------------------------------------------- */
/* the file format                                                            */

unsigned char* tokenizer_serialize(const Tokenizer* t, size_t* len) {
    uint32_t header[HEADER_WORDS] = {TOKENIZER_MAGIC, TOKENIZER_VERSION, (uint32_t)t->kind,
                                     (uint32_t)tokenizer_vocab_size(t)};
    const unsigned char* payload = NULL;
    size_t payload_len = 0;
    unsigned char* proto = NULL;
    uint32_t spm_type = (uint32_t)t->spm_type;
    if (t->kind == TOKENIZER_CHAR) {
        payload = t->table.id_to_byte;
        payload_len = (size_t)t->table.vocab_size;
    } else if (t->kind == TOKENIZER_SENTENCEPIECE) {
        proto = spm_serialize(t->spm, &payload_len);
        if (!proto) return NULL;
        payload = proto;
    }
    size_t extra = t->kind == TOKENIZER_SENTENCEPIECE ? sizeof spm_type : 0;
    size_t body = sizeof header + extra + payload_len;
    *len = body + CHECKSUM_BYTES;
    unsigned char* buf = malloc(*len);
    if (buf) {
        memcpy(buf, header, sizeof header);
        if (extra) memcpy(buf + sizeof header, &spm_type, extra);
        if (payload_len) memcpy(buf + sizeof header + extra, payload, payload_len);
        uint64_t sum = fnv1a64(buf, body);
        for (int i = 0; i < CHECKSUM_BYTES; i++) buf[body + i] = (unsigned char)(sum >> (8 * i));
    }
    free(proto);
    return buf;
}

Tokenizer* tokenizer_deserialize(const unsigned char* buf, size_t len, const char* name, char* err, size_t errlen) {
    uint32_t header[HEADER_WORDS];
    if (len < sizeof header) {
        set_err(err, errlen, "%s: %zu bytes, too short for a tokenizer header", name, len);
        return NULL;
    }
    memcpy(header, buf, sizeof header);
    if (header[0] != TOKENIZER_MAGIC) {
        set_err(err, errlen, "%s: not a tokenizer file (bad magic 0x%08x)", name, header[0]);
        return NULL;
    }
    if (header[1] != TOKENIZER_VERSION) {
        set_err(err, errlen, "%s: tokenizer version %u%s, this build reads %u", name, header[1],
                header[1] < TOKENIZER_VERSION ? " (an earlier version's file, without a checksum)" : "",
                TOKENIZER_VERSION);
        return NULL;
    }
    if (len < sizeof header + CHECKSUM_BYTES) {
        set_err(err, errlen, "%s: %zu bytes, too short for a tokenizer header and checksum", name, len);
        return NULL;
    }
    size_t body = len - CHECKSUM_BYTES;
    uint64_t want = 0, got = fnv1a64(buf, body);
    for (int i = CHECKSUM_BYTES - 1; i >= 0; i--) want = want << 8 | buf[body + i];
    if (want != got) {
        set_err(err, errlen, "%s: checksum mismatch (file corrupted?): its bytes hash to %016llx, its last 8 bytes "
                "say %016llx", name, (unsigned long long)got, (unsigned long long)want);
        return NULL;
    }
    const unsigned char* payload = buf + sizeof header;
    size_t payload_len = body - sizeof header;
    if (header[2] > TOKENIZER_SENTENCEPIECE) {
        set_err(err, errlen, "%s: unknown tokenizer kind %u", name, header[2]);
        return NULL;
    }
    Tokenizer* t = new_tokenizer((TokenizerKind)header[2], err, errlen);
    if (!t) return NULL;
    int ok = 0;
    if (t->kind == TOKENIZER_CHAR) {
        ok = bytetable_from_bytes(&t->table, payload, payload_len, name, err, errlen) == 0;
    } else if (t->kind == TOKENIZER_BYTE) {
        bytetable_all(&t->table);
        ok = payload_len == 0;
        if (!ok) set_err(err, errlen, "%s: %zu unexpected bytes after a byte tokenizer's header", name, payload_len);
    } else if (payload_len < sizeof(uint32_t)) {
        set_err(err, errlen, "%s: sentencepiece tokenizer without a model", name);
    } else {
        uint32_t spm_type;
        memcpy(&spm_type, payload, sizeof spm_type);
        t->spm_type = spm_type == SPM_UNIGRAM ? SPM_UNIGRAM : SPM_BPE;
        char inner[512];
        t->spm = spm_load(payload + sizeof spm_type, payload_len - sizeof spm_type, inner, sizeof inner);
        ok = t->spm != NULL && spm_type <= SPM_UNIGRAM;
        if (!t->spm) set_err(err, errlen, "%s: %s", name, inner);
        else if (!ok) set_err(err, errlen, "%s: unknown SentencePiece model type %u", name, spm_type);
    }
    if (ok && (uint32_t)tokenizer_vocab_size(t) != header[3]) {
        set_err(err, errlen, "%s: header says vocab_size %u, the stored vocabulary has %d", name, header[3],
                tokenizer_vocab_size(t));
        ok = 0;
    }
    if (!ok) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

Tokenizer* tokenizer_load(const char* path, uint64_t* file_hash, char* err, size_t errlen) {
    FILE* f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "cannot open tokenizer %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char* buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            unsigned char* grown = realloc(buf, cap);
            if (!grown) {
                set_err(err, errlen, "out of memory reading %s", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    int failed = ferror(f);
    fclose(f);
    Tokenizer* t = NULL;
    if (failed) set_err(err, errlen, "cannot read tokenizer %s", path);
    else t = tokenizer_deserialize(buf, len, path, err, errlen);
    if (t && file_hash) *file_hash = fnv1a64(buf, len);
    free(buf);
    return t;
}

int tokenizer_save(const Tokenizer* t, const char* path, char* err, size_t errlen) {
    size_t len;
    unsigned char* buf = tokenizer_serialize(t, &len);
    if (!buf) {
        set_err(err, errlen, "out of memory serialising the tokenizer for %s", path);
        return -1;
    }
    size_t tmp_len = strlen(path) + 48;  /* room for create_temp_beside's ".<pid>-<n>.tmp" */
    char* tmp = malloc(tmp_len);
    FILE* f = NULL;
    const char* failed = NULL;
    if (!tmp) failed = "allocate a name beside";
    else if (!(f = create_temp_beside(path, tmp, tmp_len))) failed = "create a temporary file beside";
    int created = f != NULL;
    if (created) {
        if (fwrite(buf, 1, len, f) != len) failed = "write";
        else if (fflush(f) != 0) failed = "flush";
        else if (fsync(fileno(f)) != 0) failed = "sync";
        if (fclose(f) != 0 && !failed) failed = "close";
        if (!failed && rename(tmp, path) != 0) failed = "rename";
    }
    if (failed) {
        set_err(err, errlen, "cannot %s %s: %s", failed, created ? tmp : path, strerror(errno));
        if (created) remove(tmp);  /* the temporary only: path is untouched */
    }
    free(tmp);
    free(buf);
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------------- */
/* encode, decode                                                             */

long tokenizer_encode(const Tokenizer* t, const unsigned char* text, size_t len, uint16_t* ids, size_t cap,
                      char* err, size_t errlen) {
    if (t->kind == TOKENIZER_SENTENCEPIECE) return spm_encode(t->spm, text, len, ids, cap, err, errlen);
    return bytetable_encode(&t->table, text, len, ids, cap, err, errlen);
}

char* tokenizer_decode(const Tokenizer* t, const uint16_t* ids, size_t n, size_t* out_len, char* err,
                       size_t errlen) {
    if (t->kind == TOKENIZER_SENTENCEPIECE) return spm_decode(t->spm, ids, n, out_len, err, errlen);
    return bytetable_decode(&t->table, ids, n, out_len, err, errlen);
}

/* ------------------------------------------------------------------------- */
/* printable pieces                                                           */

/* Append the printable form of bytes[0..n) to out; `keep_utf8` leaves bytes >= 0x80
 * as they are (SentencePiece pieces are UTF-8), else they are escaped (a char or
 * byte token may be half of a character). Returns the length, or -1 if cap is short. */
static int escape_bytes(const unsigned char* bytes, size_t n, int keep_utf8, char* out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = bytes[i];
        char tmp[5];
        const char* s = tmp;
        if (b == '\n') s = "\\n";
        else if (b == '\t') s = "\\t";
        else if (b == '\r') s = "\\r";
        else if (b == '\\') s = "\\\\";
        else if (b < 0x20 || b == 0x7f || (b >= 0x80 && !keep_utf8)) snprintf(tmp, sizeof tmp, "\\x%02x", b);
        else { tmp[0] = (char)b; tmp[1] = 0; }
        size_t sl = strlen(s);
        if (k + sl + 1 > cap) return -1;
        memcpy(out + k, s, sl);
        k += sl;
    }
    if (k + 1 > cap) return -1;
    out[k] = 0;
    return (int)k;
}

/* The inverse of escape_bytes; returns the byte count or -1 on a malformed escape. */
static long unescape(const char* s, unsigned char* out, size_t cap) {
    size_t k = 0;
    for (; *s; s++) {
        unsigned char b = (unsigned char)*s;
        if (b == '\\') {
            s++;
            if (*s == 'n') b = '\n';
            else if (*s == 't') b = '\t';
            else if (*s == 'r') b = '\r';
            else if (*s == '\\') b = '\\';
            else if (*s == 'x') {
                unsigned v;
                if (sscanf(s + 1, "%2x", &v) != 1 || !s[1] || !s[2]) return -1;
                b = (unsigned char)v;
                s += 2;
            } else return -1;
        }
        if (k == cap) return -1;
        out[k++] = b;
    }
    return (long)k;
}

int tokenizer_piece(const Tokenizer* t, int id, char* out, size_t cap) {
    if (id < 0 || id >= tokenizer_vocab_size(t)) return -1;
    if (t->kind == TOKENIZER_SENTENCEPIECE) {
        const char* p = spm_piece(t->spm, id);
        return p ? escape_bytes((const unsigned char*)p, strlen(p), 1, out, cap) : -1;
    }
    return escape_bytes(&t->table.id_to_byte[id], 1, 0, out, cap);
}

int tokenizer_piece_to_id(const Tokenizer* t, const char* piece) {
    size_t cap = strlen(piece) + 1;
    unsigned char* raw = malloc(cap);
    if (!raw) return -1;
    long n = unescape(piece, raw, cap - 1);
    int id = -1;
    if (n > 0 && t->kind == TOKENIZER_SENTENCEPIECE) {
        raw[n] = 0;
        if (strlen((char*)raw) == (size_t)n) id = spm_piece_to_id(t->spm, (char*)raw);
    } else if (n == 1) {
        id = t->table.byte_to_id[raw[0]];
    }
    free(raw);
    return id;
}

/* ------------------------------------------------------------------------- */
/* the round-trip check                                                       */

/* Length of the UTF-8 character at s (at most n bytes); 1 for an invalid byte. */
static size_t utf8_len(const unsigned char* s, size_t n, unsigned* codepoint) {
    unsigned char b = s[0];
    size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) { *codepoint = 0xFFFFFFFFu; return 1; }
    unsigned cp = len == 1 ? b : b & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *codepoint = 0xFFFFFFFFu; return 1; }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *codepoint = cp;
    return len;
}

size_t utf8_valid_prefix(const unsigned char* text, size_t len) {
    size_t i = 0;
    unsigned cp;
    while (i < len) {
        size_t n = utf8_len(text + i, len - i, &cp);
        if (cp == 0xFFFFFFFFu) return i;
        i += n;
    }
    return len;
}

/* 1 if text[0..len) comes back unchanged through encode and decode. */
static int survives(const Tokenizer* t, const unsigned char* text, size_t len, uint16_t* ids, int* error, char* err,
                    size_t errlen) {
    long n = tokenizer_encode(t, text, len, ids, len, err, errlen);
    if (n < 0) { *error = 1; return 0; }
    size_t dlen;
    char* dec = tokenizer_decode(t, ids, (size_t)n, &dlen, err, errlen);
    if (!dec) { *error = 1; return 0; }
    int same = dlen == len && memcmp(dec, text, len) == 0;
    free(dec);
    return same;
}

int tokenizer_check_roundtrip(const Tokenizer* t, const unsigned char* text, size_t len, const uint16_t* ids,
                              size_t n, size_t* first_bad, size_t* bad_bytes, char* err, size_t errlen) {
    *first_bad = 0;
    *bad_bytes = 0;
    size_t dlen;
    char* dec = tokenizer_decode(t, ids, n, &dlen, err, errlen);
    if (!dec) return -1;
    int same = dlen == len && memcmp(dec, text, len) == 0;
    size_t diff = 0;
    while (!same && diff < len && diff < dlen && (unsigned char)dec[diff] == text[diff]) diff++;
    free(dec);
    if (same) return 0;

    /* Find the characters at fault: each line that does not survive alone, then
     * each character of that line alone. */
    uint16_t* scratch = malloc((len ? len : 1) * sizeof(uint16_t));
    if (!scratch) { set_err(err, errlen, "out of memory checking the round trip"); return -1; }
    int error = 0, found = 0;
    size_t line_no = 1, first_line = 0;
    unsigned first_cp = 0;
    for (size_t start = 0; start < len && !error;) {
        size_t end = start;
        while (end < len && text[end] != '\n') end++;
        if (end < len) end++;  /* the line with its newline */
        if (!survives(t, text + start, end - start, scratch, &error, err, errlen) && !error) {
            for (size_t i = start; i < end && !error;) {
                unsigned cp;
                size_t cl = utf8_len(text + i, end - i, &cp);
                if (!survives(t, text + i, cl, scratch, &error, err, errlen) && !error) {
                    *bad_bytes += cl;
                    if (!found) { found = 1; *first_bad = i; first_line = line_no; first_cp = cp; }
                }
                i += cl;
            }
        }
        line_no++;
        start = end;
    }
    free(scratch);
    if (error) return -1;
    if (!found) {  /* no character fails alone: report where the whole text first differs */
        while (diff > 0 && (text[diff] & 0xC0) == 0x80) diff--;
        *first_bad = diff;
        *bad_bytes = 1;
        set_err(err, errlen, "decode(encode(text)) differs from the text from byte offset %zu on", diff);
        return 1;
    }
    char shown[64];
    size_t cl = utf8_len(text + *first_bad, len - *first_bad, &first_cp);
    escape_bytes(text + *first_bad, cl, 1, shown, sizeof shown);
    if (first_cp == 0xFFFFFFFFu)
        set_err(err, errlen, "byte offset %zu (line %zu): byte 0x%02x (not valid UTF-8) does not survive "
                "encode + decode", *first_bad, first_line, text[*first_bad]);
    else
        set_err(err, errlen, "byte offset %zu (line %zu): the character U+%04X '%s' does not survive encode + decode",
                *first_bad, first_line, first_cp, shown);
    return 1;
}
