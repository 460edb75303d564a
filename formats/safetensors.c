/* safetensors.c: a strict reader and a small writer for the safetensors format.
 *
 * The format, as this file reads and writes it:
 *   bytes 0 .. 8       N, the length of the header, unsigned 64-bit little-endian
 *   bytes 8 .. 8+N     the header: one UTF-8 JSON object. Every member but one maps
 *                      a tensor name to {"dtype": "F32", "shape": [d0, d1, ...],
 *                      "data_offsets": [begin, end]}; the optional member
 *                      "__metadata__" maps strings to strings. Writers pad it with
 *                      spaces so the data section starts 8-byte aligned.
 *   bytes 8+N .. end   the data section: each tensor's elements row-major and
 *                      little-endian at [begin, end), relative to the section start.
 * The byte ranges must tile the data section exactly, in any order: no overlap, no
 * hole, nothing after the last tensor (the reference Rust crate's rule).
 * This project's files carry two checksums in the metadata (safetensors.h): one of
 * the data section, one of the header's canonical text (header_hash below).
 *
 * The reader takes hostile input (it is fuzzed): every index is bounds-checked,
 * numbers are checked for overflow, nesting of ignored values is limited, and
 * checks that compare names or ranges sort instead of comparing all pairs.
 * It is deliberately not a general JSON library, not a memory-mapped or streaming
 * reader, and not a dtype converter: only F32 tensors are handed out.
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/utils.h"

/* Floats are copied as the host stores them, both ways. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c copies floats as host bytes: it needs a little-endian host"
#endif

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)  /* the Rust crate's limit too */
#define ST_MAX_DEPTH 64  /* nesting inside ignored values; deeper could exhaust the stack */
#define METADATA_KEY "__metadata__"

/* ---- small helpers ----------------------------------------------------------- */

static const struct { const char* name; size_t size; } DTYPES[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},
    {"I32", 4},  {"U32", 4}, {"F32", 4},
    {"I64", 8},  {"U64", 8}, {"F64", 8},
};

static size_t dtype_size(const char* dtype) {  /* 0: unknown */
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (strcmp(dtype, DTYPES[i].name) == 0) return DTYPES[i].size;
    return 0;
}

/* product(shape) * elem bytes in *out; -1 on a negative dimension or size_t overflow. */
static int shape_bytes(int ndim, const int64_t* shape, size_t elem, size_t* out) {
    size_t n = elem;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)(size_t)shape[i] != (uint64_t)shape[i]) return -1;
        size_t d = (size_t)shape[i];
        if (d != 0 && n > SIZE_MAX / d) return -1;
        n *= d;
    }
    *out = n;
    return 0;
}

/* "[128, 384]" for messages. */
static const char* format_shape(char* out, size_t cap, int ndim, const int64_t* shape) {
    size_t o = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (o < cap) snprintf(out + o, cap - o, "]");
    return out;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available), or 0:
 * overlong forms, UTF-16 surrogates and code points past U+10FFFF are refused. */
static size_t utf8_len(const unsigned char* s, size_t n) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++) if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

static int utf8_valid(const char* str) {
    size_t n = strlen(str), k;
    for (size_t i = 0; i < n; i += k) if (!(k = utf8_len((const unsigned char*)str + i, n - i))) return 0;
    return 1;
}

static size_t utf8_encode(unsigned cp, char* out) {
    static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, cp >>= 6) out[i] = (char)(0x80 | (cp & 0x3F));
    out[0] = (char)(lead[n] | cp);
    return n;
}

/* Append (k, v) to the parallel arrays keys/values (count *n, capacity *cap).
 * -1 on OOM, and then k and v still belong to the caller. */
static int push_pair(char*** keys, char*** values, int* n, int* cap, char* k, char* v) {
    if (*n == *cap) {
        int c = *cap > INT_MAX / 2 ? 0 : *cap ? 2 * *cap : 8;
        char** grown = c ? realloc(*keys, (size_t)c * sizeof *grown) : NULL;
        if (!grown) return -1;
        *keys = grown;
        if (!(grown = realloc(*values, (size_t)c * sizeof *grown))) return -1;
        *values = grown;
        *cap = c;
    }
    (*keys)[*n] = k;
    (*values)[(*n)++] = v;
    return 0;
}

/* ---- JSON, just enough for the header --------------------------------------------- */

typedef struct {
    const unsigned char* s;  /* the header, not NUL-terminated */
    size_t n, pos;
    const char* name;        /* the file's, for messages */
    char* err;
    size_t errlen;
} Parser;

/* A syntax error at the current byte, located in the header and in the file. */
static int syntax(Parser* p, const char* what) {
    return errorf(p->err, p->errlen, "%s: invalid header JSON at header byte %zu (file offset %zu): %s",
                p->name, p->pos, p->pos + 8, what);
}

static int peek(const Parser* p) { return p->pos < p->n ? p->s[p->pos] : -1; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }

static size_t skip_digits(Parser* p) {
    size_t k = 0;
    for (; is_digit(peek(p)); k++) p->pos++;
    return k;
}

static void skip_ws(Parser* p) {
    for (int c = peek(p); c == ' ' || c == '\t' || c == '\n' || c == '\r'; c = peek(p)) p->pos++;
}

static int expect(Parser* p, int c, const char* what) {
    skip_ws(p);
    if (peek(p) != c) return syntax(p, what);
    p->pos++;
    return 0;
}

/* Open a list at `open`: 1 if an element follows, 0 if the list is empty, -1 on error. */
static int list_open(Parser* p, int open, int close, const char* what) {
    if (expect(p, open, what)) return -1;
    skip_ws(p);
    if (peek(p) != close) return 1;
    p->pos++;
    return 0;
}

/* After an element: 1 at ',' (another follows), 0 at the closing bracket, -1 on error. */
static int list_next(Parser* p, int close) {
    skip_ws(p);
    int c = peek(p);
    if (c != ',' && c != close) return syntax(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    p->pos++;
    return c == ',';
}

/* The 4 hex digits at s[at], all before limit, in *out; -1 if there are not 4. */
static int hex4(const Parser* p, size_t at, size_t limit, unsigned* out) {
    if (at > limit || limit - at < 4) return -1;
    *out = 0;
    for (int i = 0; i < 4; i++) {
        int c = p->s[at + i], x = c | 0x20;  /* lower case */
        int d = is_digit(c) ? c - '0' : x >= 'a' && x <= 'f' ? x - 'a' + 10 : -1;
        if (d < 0) return -1;
        *out = *out * 16 + (unsigned)d;
    }
    return 0;
}

/* The JSON string at p->pos, decoded into *out (malloc'd, NUL-terminated UTF-8). */
static int parse_string(Parser* p, char** out) {
    *out = NULL;
    if (peek(p) != '"') return syntax(p, "expected a string");
    /* find the closing quote first to size the copy: decoding never lengthens */
    size_t end = p->pos + 1;
    while (end < p->n && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->n) return syntax(p, "unterminated string");
    char* s = malloc(end - p->pos);  /* the content plus a NUL */
    if (!s) return errorf(p->err, p->errlen, "%s: out of memory reading the header", p->name);
    size_t o = 0;
    for (p->pos++; p->pos < end;) {
        const unsigned char* c = p->s + p->pos;
        const char* bad = NULL;
        size_t k = c[0] >= 0x80 ? utf8_len(c, end - p->pos) : 1;
        if (c[0] < 0x20) bad = "raw control character in a string (it must be escaped)";
        else if (k == 0) bad = "invalid UTF-8 in a string";
        else if (c[0] != '\\') { memcpy(s + o, c, k); o += k; p->pos += k; continue; }
        if (bad) { free(s); return syntax(p, bad); }
        /* an escape: the scan above guarantees c[1] lies before end */
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char* simple = c[1] ? strchr(from, c[1]) : NULL;
        if (simple) { s[o++] = to[simple - from]; p->pos += 2; continue; }
        unsigned cp, lo;
        size_t adv = 6;
        if (c[1] != 'u') bad = "unknown escape sequence";
        else if (hex4(p, p->pos + 2, end, &cp)) bad = "\\u must be followed by 4 hex digits";
        else if (cp >= 0xDC00 && cp <= 0xDFFF) bad = "lone low surrogate in a \\u escape";
        else if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* a UTF-16 pair: the low half must follow as a second \u escape */
            if (end - p->pos < 12 || c[6] != '\\' || c[7] != 'u' || hex4(p, p->pos + 8, end, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF)
                bad = "lone high surrogate in a \\u escape";
            else { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); adv = 12; }
        } else if (cp == 0) bad = "\\u0000 is not allowed (names and metadata are C strings)";
        if (bad) { free(s); return syntax(p, bad); }
        o += utf8_encode(cp, s + o);
        p->pos += adv;
    }
    s[o] = 0;
    p->pos = end + 1;
    *out = s;
    return 0;
}

/* A non-negative integer no larger than max: a size or an offset. */
static int parse_uint(Parser* p, uint64_t max, uint64_t* out) {
    skip_ws(p);
    int c = peek(p);
    if (c == '-') return syntax(p, "negative number where a size or offset belongs");
    if (!is_digit(c)) return syntax(p, "expected a non-negative integer");
    if (c == '0' && p->pos + 1 < p->n && is_digit(p->s[p->pos + 1])) return syntax(p, "number with a leading zero");
    for (*out = 0; is_digit(peek(p)); p->pos++) {
        unsigned d = (unsigned)(peek(p) - '0');
        if (*out > (max - d) / 10) return syntax(p, "integer too large");
        *out = *out * 10 + d;
    }
    c = peek(p);
    if (c == '.' || c == 'e' || c == 'E') return syntax(p, "expected an integer, found a fraction or exponent");
    return 0;
}

/* An object; member(p, key, ctx) parses each value and owns key. */
typedef int (*MemberFn)(Parser* p, char* key, void* ctx);

static int parse_object(Parser* p, MemberFn member, void* ctx) {
    int more = list_open(p, '{', '}', "expected '{'");
    while (more > 0) {
        char* key;
        skip_ws(p);
        if (parse_string(p, &key)) return -1;
        if (expect(p, ':', "expected ':' after a key")) { free(key); return -1; }
        skip_ws(p);
        if (member(p, key, ctx)) return -1;
        more = list_next(p, '}');
    }
    return more;
}

static int skip_value(Parser* p, int depth);

static int skip_member(Parser* p, char* key, void* ctx) {
    free(key);
    return skip_value(p, *(int*)ctx + 1);
}

/* Any JSON value, checked and thrown away (fields this reader does not use). */
static int skip_value(Parser* p, int depth) {
    if (depth > ST_MAX_DEPTH) return syntax(p, "values nested too deeply");
    skip_ws(p);
    int c = peek(p), more;
    char* s;
    if (c == '"') {
        if (parse_string(p, &s)) return -1;
        free(s);
        return 0;
    }
    if (c == '{') return parse_object(p, skip_member, &depth);
    if (c == '[') {
        for (more = list_open(p, '[', ']', ""); more > 0; more = list_next(p, ']'))
            if (skip_value(p, depth + 1)) return -1;
        return more;
    }
    if (c == '-' || is_digit(c)) {  /* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
        p->pos += c == '-';
        if (peek(p) == '0') p->pos++;
        else if (!skip_digits(p)) return syntax(p, "digit expected in a number");
        if (peek(p) == '.' && (p->pos++, !skip_digits(p))) return syntax(p, "digit expected after '.'");
        if (peek(p) != 'e' && peek(p) != 'E') return 0;
        p->pos++;
        p->pos += peek(p) == '+' || peek(p) == '-';
        return skip_digits(p) ? 0 : syntax(p, "digit expected in an exponent");
    }
    static const char* const literals[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(literals[i]);
        if (p->n - p->pos >= k && memcmp(p->s + p->pos, literals[i], k) == 0) { p->pos += k; return 0; }
    }
    return syntax(p, "expected a value");
}

/* ---- the header's meaning ------------------------------------------------------------ */

typedef struct {
    StFile* f;
    size_t data_len;  /* bytes in the data section */
    int tensor_cap, meta_cap, seen_metadata;
} Header;

typedef struct { StTensor* t; unsigned seen; } TensorFields;
enum { SEEN_DTYPE = 1, SEEN_SHAPE = 2, SEEN_OFFSETS = 4 };

/* [a, b, ...]: at most cap non-negative integers <= max, count in *n. */
static int parse_uint_array(Parser* p, uint64_t max, uint64_t* out, int cap, int* n, const StTensor* t,
                            const char* field) {
    int more = list_open(p, '[', ']', "expected '['");
    for (*n = 0; more > 0; more = list_next(p, ']')) {
        if (*n == cap)
            return errorf(p->err, p->errlen, "%s: tensor %s: %s has more than %d entries (header byte %zu)",
                        p->name, t->name, field, cap, p->pos);
        if (parse_uint(p, max, &out[(*n)++])) return -1;
    }
    return more;
}

static int tensor_field(Parser* p, char* key, void* ctx) {
    TensorFields* tf = ctx;
    StTensor* t = tf->t;
    unsigned bit = strcmp(key, "dtype") == 0 ? SEEN_DTYPE : strcmp(key, "shape") == 0 ? SEEN_SHAPE
                 : strcmp(key, "data_offsets") == 0 ? SEEN_OFFSETS : 0;
    int twice = (bit & tf->seen) != 0;
    if (twice)
        errorf(p->err, p->errlen, "%s: tensor %s has \"%s\" twice (header byte %zu)", p->name, t->name, key, p->pos);
    free(key);
    if (twice) return -1;
    tf->seen |= bit;
    uint64_t v[ST_MAX_DIMS];
    int n;
    char* s;
    if (bit == SEEN_DTYPE) {
        if (parse_string(p, &s)) return -1;
        int known = dtype_size(s) != 0;
        if (known) snprintf(t->dtype, sizeof t->dtype, "%s", s);  /* every known name fits */
        else errorf(p->err, p->errlen, "%s: tensor %s has unknown dtype \"%.32s\"", p->name, t->name, s);
        free(s);
        return known ? 0 : -1;
    }
    if (bit == SEEN_SHAPE) {
        if (parse_uint_array(p, INT64_MAX, v, ST_MAX_DIMS, &n, t, "shape")) return -1;
        t->ndim = n;
        for (int i = 0; i < n; i++) t->shape[i] = (int64_t)v[i];
        return 0;
    }
    if (bit == SEEN_OFFSETS) {
        if (parse_uint_array(p, SIZE_MAX, v, 2, &n, t, "data_offsets")) return -1;
        if (n != 2)
            return errorf(p->err, p->errlen, "%s: tensor %s: data_offsets must be [begin, end], found %d number(s)",
                        p->name, t->name, n);
        t->begin = (size_t)v[0];
        t->end = (size_t)v[1];
        return 0;
    }
    return skip_value(p, 1);  /* other fields are ignored, as the Rust crate does */
}

/* One tensor's entry: all three fields, a byte range that holds the shape, inside the data. */
static int parse_tensor(Parser* p, Header* h, char* name) {
    StFile* f = h->f;
    if (f->n_tensors == h->tensor_cap) {
        int cap = h->tensor_cap > INT_MAX / 2 ? 0 : h->tensor_cap ? 2 * h->tensor_cap : 16;
        StTensor* grown = cap ? realloc(f->tensors, (size_t)cap * sizeof *grown) : NULL;
        if (!grown) { free(name); return errorf(p->err, p->errlen, "%s: out of memory reading the header", p->name); }
        f->tensors = grown;
        h->tensor_cap = cap;
    }
    StTensor* t = &f->tensors[f->n_tensors++];  /* counted now so that st_free frees the name */
    memset(t, 0, sizeof *t);
    t->name = name;
    if (peek(p) != '{') return syntax(p, "expected an object describing a tensor");
    TensorFields tf = {t, 0};
    if (parse_object(p, tensor_field, &tf)) return -1;
    const char* missing = !(tf.seen & SEEN_DTYPE) ? "dtype" : !(tf.seen & SEEN_SHAPE) ? "shape"
                        : !(tf.seen & SEEN_OFFSETS) ? "data_offsets" : NULL;
    if (missing) return errorf(p->err, p->errlen, "%s: tensor %s has no \"%s\"", p->name, name, missing);
    char shp[256];
    size_t bytes;
    format_shape(shp, sizeof shp, t->ndim, t->shape);
    if (shape_bytes(t->ndim, t->shape, dtype_size(t->dtype), &bytes))
        return errorf(p->err, p->errlen, "%s: tensor %s: shape %s is too large", p->name, name, shp);
    if (t->begin > t->end || t->end - t->begin != bytes)
        return errorf(p->err, p->errlen, "%s: tensor %s: data_offsets [%zu, %zu] do not hold the %zu bytes of %s %s",
                    p->name, name, t->begin, t->end, bytes, t->dtype, shp);
    if (t->end > h->data_len)
        return errorf(p->err, p->errlen, "%s: tensor %s: data_offsets [%zu, %zu] run past the end of the "
                    "%zu-byte data section", p->name, name, t->begin, t->end, h->data_len);
    return 0;
}

static int metadata_member(Parser* p, char* key, void* ctx) {
    Header* h = ctx;
    StFile* f = h->f;
    char* value = NULL;
    if (peek(p) != '"')
        errorf(p->err, p->errlen, "%s: __metadata__ \"%s\" must be a string (header byte %zu)", p->name, key, p->pos);
    else if (parse_string(p, &value) == 0) {
        if (push_pair(&f->meta_keys, &f->meta_values, &f->n_meta, &h->meta_cap, key, value) == 0) return 0;
        errorf(p->err, p->errlen, "%s: out of memory reading the header", p->name);
    }
    free(key);
    free(value);
    return -1;
}

static int top_member(Parser* p, char* key, void* ctx) {
    Header* h = ctx;
    if (strcmp(key, METADATA_KEY) != 0) return parse_tensor(p, h, key);
    free(key);
    if (h->seen_metadata) return syntax(p, "__metadata__ appears twice");
    h->seen_metadata = 1;
    if (peek(p) != '{') return syntax(p, "__metadata__ must be an object of strings");
    return parse_object(p, metadata_member, h);
}

static int cmp_name(const void* a, const void* b) {
    return strcmp((*(const StTensor* const*)a)->name, (*(const StTensor* const*)b)->name);
}

static int cmp_range(const void* a, const void* b) {
    const StTensor *x = *(const StTensor* const*)a, *y = *(const StTensor* const*)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* ---- the header checksum ------------------------------------------------------------ */

typedef struct { const char* key; const char* value; } MetaRef;

static int cmp_meta(const void* a, const void* b) {
    return strcmp(((const MetaRef*)a)->key, ((const MetaRef*)b)->key);
}

/* s and its NUL into the hash: a NUL ends every field (names and values hold none). */
static uint64_t hash_field(uint64_t h, const char* s) { return fnv1a64_update(h, s, strlen(s) + 1); }

/* fnv1a64 of the header's canonical text:
 *   "M" key NUL value NUL                        each metadata pair but
 *                                                ST_HEADER_CHECKSUM_KEY, by key
 *   "T" name NUL dtype NUL shape NUL begin NUL end NUL   each tensor, by name
 * with the numbers in decimal and the shape's dimensions joined by ',' ("" for a
 * scalar); keys and names sort by their UTF-8 bytes. Free of JSON's spelling (member
 * order, spaces, escapes), the text stays the same when another tool re-serialises
 * the header. meta (n_meta pairs, unique keys) and tensors (n) are sorted in place. */
static uint64_t header_hash(MetaRef* meta, int n_meta, const StTensor** tensors, int n) {
    qsort(meta, (size_t)n_meta, sizeof *meta, cmp_meta);
    qsort(tensors, (size_t)n, sizeof *tensors, cmp_name);
    uint64_t h = FNV1A64_BASIS;
    for (int i = 0; i < n_meta; i++) {
        if (strcmp(meta[i].key, ST_HEADER_CHECKSUM_KEY) == 0) continue;
        h = hash_field(fnv1a64_update(h, "M", 1), meta[i].key);
        h = hash_field(h, meta[i].value);
    }
    for (int i = 0; i < n; i++) {
        const StTensor* t = tensors[i];
        char shape[ST_MAX_DIMS * 21 + 1] = "", num[32];  /* 19 digits and a comma per dimension */
        size_t o = 0;
        for (int d = 0; d < t->ndim; d++)
            o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%" PRId64, d ? "," : "", t->shape[d]);
        h = hash_field(fnv1a64_update(h, "T", 1), t->name);
        h = hash_field(h, t->dtype);
        h = hash_field(h, shape);
        snprintf(num, sizeof num, "%zu", t->begin);
        h = hash_field(h, num);
        snprintf(num, sizeof num, "%zu", t->end);
        h = hash_field(h, num);
    }
    return h;
}

/* The checksum under key, as 16 lowercase hex digits, in *want; 0 when absent. */
static int checksum_value(const StFile* f, const char* key, const char** want, const char* name, char* err,
                          size_t errlen) {
    *want = st_meta(f, key);
    if (*want && (strlen(*want) != 16 || strspn(*want, "0123456789abcdef") != 16))
        return errorf(err, errlen, "%s: __metadata__ %s is \"%.40s\", expected 16 lowercase hex digits", name, key,
                      *want);
    return 0;
}

/* What needs the whole header: unique names and keys, ranges that tile the data
 * section, the checksums. order and meta are scratch arrays of n_tensors and n_meta. */
static int check_whole(const StFile* f, const StTensor** order, MetaRef* meta, const char* name, char* err,
                       size_t errlen) {
    int n = f->n_tensors, own = 0;
    size_t data_len = f->len - f->data_start, at = 0;
    for (int i = 0; i < f->n_meta; i++) {
        meta[i].key = f->meta_keys[i];
        meta[i].value = f->meta_values[i];
        own |= strncmp(meta[i].key, ST_OWN_PREFIX, strlen(ST_OWN_PREFIX)) == 0;
    }
    for (int i = 0; i < n; i++) order[i] = &f->tensors[i];
    uint64_t header = header_hash(meta, f->n_meta, order, n);  /* sorts meta by key, order by name */
    for (int i = 1; i < f->n_meta; i++)
        if (strcmp(meta[i - 1].key, meta[i].key) == 0)
            return errorf(err, errlen, "%s: __metadata__ key \"%s\" appears twice", name, meta[i].key);
    for (int i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            return errorf(err, errlen, "%s: tensor %s appears twice in the header", name, order[i]->name);
    qsort(order, (size_t)n, sizeof *order, cmp_range);
    for (int i = 0; i < n; at = order[i++]->end) {
        const StTensor *t = order[i], *prev = i ? order[i - 1] : NULL;
        if (t->begin < at)
            return errorf(err, errlen, "%s: tensors %s [%zu, %zu] and %s [%zu, %zu] overlap in the data section",
                        name, prev->name, prev->begin, prev->end, t->name, t->begin, t->end);
        if (t->begin > at)
            return errorf(err, errlen, "%s: hole in the data section: bytes [%zu, %zu) before tensor %s belong to "
                        "no tensor", name, at, t->begin, t->name);
    }
    if (at != data_len)
        return errorf(err, errlen, "%s: bytes [%zu, %zu) at the end of the data section belong to no tensor",
                    name, at, data_len);

    const char *want, *want_header;
    char got[17];
    if (checksum_value(f, ST_CHECKSUM_KEY, &want, name, err, errlen) ||
        checksum_value(f, ST_HEADER_CHECKSUM_KEY, &want_header, name, err, errlen))
        return -1;
    if (want) {
        snprintf(got, sizeof got, "%016" PRIx64, fnv1a64(f->buf + f->data_start, data_len));
        if (strcmp(want, got) != 0)
            return errorf(err, errlen, "%s: checksum mismatch (file corrupted?): the data section hashes to %s, the "
                        "header says %s", name, got, want);
    }
    if (want_header) {
        snprintf(got, sizeof got, "%016" PRIx64, header);
        if (strcmp(want_header, got) != 0)
            return errorf(err, errlen, "%s: header checksum mismatch (header edited or corrupted?): its metadata and "
                        "tensor table hash to %s, %s says %s", name, got, ST_HEADER_CHECKSUM_KEY, want_header);
    }
    /* this project's files are under both checksums; without one, a changed value
     * (a step, a shape, the data) would load as if it were the original */
    if (own && (!want || !want_header))
        return errorf(err, errlen, "%s: the metadata holds this project's keys (" ST_OWN_PREFIX "*) but no %s: its "
                    "%s is under no checksum (written by an earlier version, or edited by another tool), so it "
                    "cannot be trusted", name, !want ? ST_CHECKSUM_KEY : ST_HEADER_CHECKSUM_KEY,
                    !want ? "data" : "header");
    return 0;
}

static int parse_file(StFile* f, const char* name, char* err, size_t errlen) {
    uint64_t n = 0;
    if (f->len < 8)
        return errorf(err, errlen, "%s: %zu bytes is too short for a safetensors file (the header length alone is 8)",
                    name, f->len);
    for (int i = 7; i >= 0; i--) n = n << 8 | f->buf[i];
    if (n > ST_MAX_HEADER)
        return errorf(err, errlen, "%s: header length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes", name, n,
                    ST_MAX_HEADER);
    if (n > f->len - 8)
        return errorf(err, errlen, "%s: header length %" PRIu64 " is more than the %zu bytes after it (file "
                    "truncated?)", name, n, f->len - 8);
    f->data_start = 8 + (size_t)n;
    Parser p = {f->buf + 8, (size_t)n, 0, name, err, errlen};
    Header h = {f, f->len - f->data_start, 0, 0, 0};
    if (parse_object(&p, top_member, &h)) return -1;
    skip_ws(&p);
    if (p.pos != p.n) return syntax(&p, "trailing characters after the JSON object");

    const StTensor** order = malloc((size_t)f->n_tensors * sizeof *order + 1);
    MetaRef* meta = malloc((size_t)f->n_meta * sizeof *meta + 1);
    int rc = order && meta ? check_whole(f, order, meta, name, err, errlen)
                           : errorf(err, errlen, "%s: out of memory checking the header", name);
    free(order);
    free(meta);
    return rc;
}

/* ---- reading: the API ------------------------------------------------------------------ */

int st_parse(StFile* f, unsigned char* buf, size_t len, const char* name, char* err, size_t errlen) {
    memset(f, 0, sizeof *f);
    f->buf = buf;
    f->len = len;
    if (err && errlen) err[0] = 0;
    if (!name) name = "(unnamed safetensors)";
    int rc = (f->name = strdup(name)) ? parse_file(f, name, err, errlen) : errorf(err, errlen, "%s: out of memory", name);
    if (rc) st_free(f);
    return rc;
}

int st_load(StFile* f, const char* path, char* err, size_t errlen) {
    memset(f, 0, sizeof *f);
    FILE* fp = fopen(path, "rb");
    if (!fp) return errorf(err, errlen, "%s: cannot open for reading: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        int e = errno;
        fclose(fp);
        return errorf(err, errlen, "%s: cannot stat: %s", path, strerror(e));
    }
    size_t n = (size_t)st.st_size;
    if (!S_ISREG(st.st_mode) || (off_t)n != st.st_size) {
        fclose(fp);
        return errorf(err, errlen, "%s: not a regular file of a size this machine can hold", path);
    }
    unsigned char* buf = malloc(n ? n : 1);
    if (!buf) { fclose(fp); return errorf(err, errlen, "%s: out of memory for %zu bytes", path, n); }
    if (fread(buf, 1, n, fp) != n) {
        int e = errno, had_error = ferror(fp);
        fclose(fp);
        free(buf);
        return errorf(err, errlen, "%s: read failed: %s", path, had_error ? strerror(e) : "file shrank while reading");
    }
    fclose(fp);  /* opened read-only: a failing close loses nothing */
    return st_parse(f, buf, n, path, err, errlen);
}

const StTensor* st_find(const StFile* f, const char* name) {
    for (int i = 0; i < f->n_tensors; i++) if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char* st_meta(const StFile* f, const char* key) {
    for (int i = 0; i < f->n_meta; i++) if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

int st_read_f32(const StFile* f, const char* name, float* out, int ndim, const int64_t* shape, char* err,
                size_t errlen) {
    const char* file = f->name ? f->name : "(no file)";
    const StTensor* t = st_find(f, name);
    if (!t) return errorf(err, errlen, "%s: tensor %s is missing", file, name);
    if (strcmp(t->dtype, "F32") != 0)
        return errorf(err, errlen, "%s: tensor %s has dtype %s, only F32 is supported", file, name, t->dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        return errorf(err, errlen, "%s: tensor %s: asked for %d dimensions, at most %d exist", file, name, ndim,
                    ST_MAX_DIMS);
    int same = ndim == t->ndim;
    for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
    char have[256], want[256];
    if (!same)
        return errorf(err, errlen, "%s: tensor %s has shape %s, expected %s", file, name,
                    format_shape(have, sizeof have, t->ndim, t->shape), format_shape(want, sizeof want, ndim, shape));
    /* memcpy: the data section need not be aligned for float */
    if (t->end > t->begin) memcpy(out, f->buf + f->data_start + t->begin, t->end - t->begin);
    return 0;
}

void st_free(StFile* f) {
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) { free(f->meta_keys[i]); free(f->meta_values[i]); }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->buf);
    free(f->name);
    memset(f, 0, sizeof *f);
}

/* ---- writing ------------------------------------------------------------------------- */

/* A tensor to write: its header entry (begin/end fixed when added) and its data. */
typedef struct { StTensor info; const float* data; } WTensor;

struct StWriter {
    WTensor* tensors;
    int n_tensors, tensor_cap;
    char** keys;
    char** values;
    int n_meta, meta_cap;
    size_t total;  /* bytes in the data section so far */
};

StWriter* st_writer_new(void) { return calloc(1, sizeof(StWriter)); }

int st_add_f32(StWriter* w, const char* name, int ndim, const int64_t* shape, const float* data) {
    size_t bytes;
    if (!w || !name || ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape)) return -1;
    if (!utf8_valid(name) || strcmp(name, METADATA_KEY) == 0) return -1;
    if (shape_bytes(ndim, shape, sizeof(float), &bytes) || (bytes && !data) || bytes > SIZE_MAX - w->total) return -1;
    for (int i = 0; i < w->n_tensors; i++) if (strcmp(w->tensors[i].info.name, name) == 0) return -1;
    if (w->n_tensors == w->tensor_cap) {
        int cap = w->tensor_cap > INT_MAX / 2 ? 0 : w->tensor_cap ? 2 * w->tensor_cap : 16;
        WTensor* grown = cap ? realloc(w->tensors, (size_t)cap * sizeof *grown) : NULL;
        if (!grown) return -1;
        w->tensors = grown;
        w->tensor_cap = cap;
    }
    WTensor* t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->info.name = strdup(name))) return -1;
    snprintf(t->info.dtype, sizeof t->info.dtype, "F32");
    t->info.ndim = ndim;
    if (ndim) memcpy(t->info.shape, shape, (size_t)ndim * sizeof *shape);
    t->info.begin = w->total;
    t->info.end = w->total += bytes;
    t->data = data;
    w->n_tensors++;
    return 0;
}

int st_add_meta(StWriter* w, const char* key, const char* value) {
    if (!w || !key || !value || !utf8_valid(key) || !utf8_valid(value)) return -1;
    if (strcmp(key, ST_CHECKSUM_KEY) == 0 || strcmp(key, ST_HEADER_CHECKSUM_KEY) == 0) return -1;
    for (int i = 0; i < w->n_meta; i++) if (strcmp(w->keys[i], key) == 0) return -1;
    char *k = strdup(key), *v = strdup(value);
    if (k && v && push_pair(&w->keys, &w->values, &w->n_meta, &w->meta_cap, k, v) == 0) return 0;
    free(k);
    free(v);
    return -1;
}

/* s as a JSON string: quote and backslash escaped, control characters as \u00XX. */
static void put_json(FILE* m, const char* s) {
    fputc('"', m);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(m, "\\%c", c);
        else if (c < 0x20) fprintf(m, "\\u%04x", c);
        else fputc(c, m);
    }
    fputc('"', m);
}

/* The JSON header (malloc'd, *len bytes), padded with spaces so that the data
 * section starts at a multiple of 8; NULL when out of memory. */
static char* build_header(const StWriter* w, size_t* len) {
    /* the data section's checksum: the tensors one after another, as they are laid out */
    uint64_t hash = FNV1A64_BASIS;
    for (int i = 0; i < w->n_tensors; i++)
        hash = fnv1a64_update(hash, w->tensors[i].data, w->tensors[i].info.end - w->tensors[i].info.begin);
    char data_hex[17], header_hex[17];
    snprintf(data_hex, sizeof data_hex, "%016" PRIx64, hash);
    /* the header's, over the pairs written (the data checksum among them) and the tensors */
    MetaRef* meta = malloc(((size_t)w->n_meta + 1) * sizeof *meta);
    const StTensor** order = malloc((size_t)w->n_tensors * sizeof *order + 1);
    if (!meta || !order) { free(meta); free(order); return NULL; }
    for (int i = 0; i < w->n_meta; i++) meta[i] = (MetaRef){w->keys[i], w->values[i]};
    meta[w->n_meta] = (MetaRef){ST_CHECKSUM_KEY, data_hex};
    for (int i = 0; i < w->n_tensors; i++) order[i] = &w->tensors[i].info;
    snprintf(header_hex, sizeof header_hex, "%016" PRIx64, header_hash(meta, w->n_meta + 1, order, w->n_tensors));
    free(meta);
    free(order);

    char* s = NULL;
    FILE* m = open_memstream(&s, len);
    if (!m) return NULL;
    fputs("{\"" METADATA_KEY "\":{", m);
    for (int i = 0; i < w->n_meta; i++) {
        put_json(m, w->keys[i]);
        fputc(':', m);
        put_json(m, w->values[i]);
        fputc(',', m);
    }
    fprintf(m, "\"%s\":\"%s\",\"%s\":\"%s\"}", ST_CHECKSUM_KEY, data_hex, ST_HEADER_CHECKSUM_KEY, header_hex);
    for (int i = 0; i < w->n_tensors; i++) {
        const StTensor* t = &w->tensors[i].info;
        fputc(',', m);
        put_json(m, t->name);
        fputs(":{\"dtype\":\"F32\",\"shape\":[", m);
        for (int d = 0; d < t->ndim; d++) fprintf(m, "%s%" PRId64, d ? "," : "", t->shape[d]);
        fprintf(m, "],\"data_offsets\":[%zu,%zu]}", t->begin, t->end);
    }
    fputc('}', m);
    long at = ftell(m);
    if (at >= 0) fprintf(m, "%*s", (int)((8 - (8 + at) % 8) % 8), "");
    int bad = at < 0 || ferror(m);
    if (fclose(m) != 0 || bad) { free(s); return NULL; }
    return s;
}

/* fsync the directory holding path, so that the rename itself survives a crash.
 * 0 or an errno; EINVAL (a filesystem that cannot sync directories) is no error. */
static int sync_parent_dir(const char* path) {
    const char* slash = strrchr(path, '/');
    char* dir = !slash ? strdup(".") : strndup(path, slash == path ? 1 : (size_t)(slash - path));
    if (!dir) return ENOMEM;
    int rc = 0, fd = open(dir, O_RDONLY);
    if (fd < 0) rc = errno;
    else {
        if (fsync(fd) != 0 && errno != EINVAL) rc = errno;
        close(fd);
    }
    free(dir);
    return rc;
}

int st_write(StWriter* w, const char* path, char* err, size_t errlen) {
    if (!w || !path) return errorf(err, errlen, "%s: st_write needs a writer and a path", path ? path : "(null)");
    size_t hlen = 0, tlen = strlen(path) + 48;  /* room for create_temp_beside's ".<pid>-<n>.tmp" */
    char* header = build_header(w, &hlen);
    char* tmp = malloc(tlen);
    if (!header || !tmp) {
        free(header);
        free(tmp);
        return errorf(err, errlen, "%s: out of memory building the header", path);
    }

    const char* step = NULL;
    int e = 0;
    FILE* fp = create_temp_beside(path, tmp, tlen);
    if (!fp) {
        step = "open";
        e = errno;
        snprintf(tmp, tlen, "a temporary file beside it");
    } else {
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
        int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(header, 1, hlen, fp) == hlen;
        for (int i = 0; ok && i < w->n_tensors; i++) {
            size_t bytes = w->tensors[i].info.end - w->tensors[i].info.begin;
            ok = bytes == 0 || fwrite(w->tensors[i].data, 1, bytes, fp) == bytes;
        }
        if (!ok) step = "write";
        else if (fflush(fp) != 0) step = "flush";
        else if (fsync(fileno(fp)) != 0) step = "fsync";
        e = errno;
        if (fclose(fp) != 0 && !step) { step = "close"; e = errno; }
        if (!step && rename(tmp, path) != 0) { step = "rename"; e = errno; }
        if (step) remove(tmp);
    }
    if (step) errorf(err, errlen, "%s: %s of %s failed: %s", path, step, tmp, strerror(e));
    free(header);
    free(tmp);
    if (step) return -1;
    if ((e = sync_parent_dir(path)) != 0)
        return errorf(err, errlen, "%s: written, but syncing its directory failed: %s", path, strerror(e));
    return 0;
}

void st_writer_free(StWriter* w) {
    if (!w) return;
    for (int i = 0; i < w->n_tensors; i++) free(w->tensors[i].info.name);
    for (int i = 0; i < w->n_meta; i++) { free(w->keys[i]); free(w->values[i]); }
    free(w->tensors);
    free(w->keys);
    free(w->values);
    free(w);
}
