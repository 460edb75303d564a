/* test_safetensors.c: the safetensors reader and writer. Written files read back
 * bit-exactly; every malformed file (truncated, corrupted, or written by hand to
 * break one rule) is refused with a message that starts with the file's name and
 * says what is wrong. Run under ASan/UBSan, these also show that hostile input
 * never reads out of bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "test_util.h"

#define ERR 1024
#define NAME "model.safetensors"  /* the name st_parse is given in these tests */

static char dir[64];  /* a fresh mkdtemp directory for the whole group */

static int make_dir(void** state) {
    snprintf(dir, sizeof dir, "/tmp/emergent_st_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

/* rmdir fails, and so the group, if a test left a file behind */
static int remove_dir(void** state) { return rmdir(dir); }

static const char* in_dir(char* out, size_t cap, const char* file) {
    snprintf(out, cap, "%s/%s", dir, file);
    return out;
}

static void assert_contains(const char* message, const char* fragment) {
    if (!strstr(message, fragment)) fail_msg("message '%s' lacks '%s'", message, fragment);
}

/* Parse a private copy exactly len bytes long, so ASan sees any read past it. */
static int parse_copy(StFile* f, const unsigned char* buf, size_t len, char* err) {
    unsigned char* copy = len ? xmalloc(len, "file copy") : NULL;
    if (len) memcpy(copy, buf, len);
    return st_parse(f, copy, len, NAME, err, ERR);
}

/* A file image: 8-byte little-endian header length, header, then data_len zero bytes. */
static unsigned char* image(const char* header, size_t data_len, size_t* len) {
    size_t n = strlen(header);
    *len = 8 + n + data_len;
    unsigned char* buf = xcalloc(*len, 1, "image");
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, n);
    return buf;
}

static float bits_to_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ---- a sample file: names and metadata that need escaping, awkward floats ---- */

enum { N_SAMPLE = 5 };
static const char* const SAMPLE_NAMES[N_SAMPLE] = {
    "wte", "ln_f.bias", "h.0 \"quoted\" back\\slash", "empty", "tab\there"};
static const int SAMPLE_NDIM[N_SAMPLE] = {2, 1, 3, 3, 1};
static const int64_t SAMPLE_SHAPE[N_SAMPLE][3] = {{5, 3}, {7}, {2, 3, 4}, {4, 0, 2}, {1}};
static const char* const META_KEYS[] = {"note", "key \"with\" quotes\n", "empty", "unicode"};
static const char* const META_VALUES[] = {"quote \" backslash \\ newline \n tab \t bell \x07 del \x7f", "v", "",
                                          "\xc3\xa9 \xe2\x9c\x93 \xf0\x9d\x84\x9e"};
enum { N_META = sizeof META_KEYS / sizeof META_KEYS[0] };

typedef struct { float* data[N_SAMPLE]; size_t count[N_SAMPLE]; } Sample;

static Sample sample_new(void) {
    Sample s;
    Rng rng;
    rng_seed(&rng, 7, 0);
    for (int i = 0; i < N_SAMPLE; i++) {
        s.count[i] = 1;
        for (int d = 0; d < SAMPLE_NDIM[i]; d++) s.count[i] *= (size_t)SAMPLE_SHAPE[i][d];
        s.data[i] = s.count[i] ? random_tensor(&rng, s.count[i], 1.0f) : NULL;
    }
    /* values whose bits a float conversion could change: NaN payload, -0, inf, denormal */
    const uint32_t special[] = {0x7fc00123u, 0x80000000u, 0x7f800000u, 0x00000001u, 0xff7fffffu};
    for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) s.data[0][k] = bits_to_float(special[k]);
    return s;
}

static void sample_free(Sample* s) {
    for (int i = 0; i < N_SAMPLE; i++) free(s->data[i]);
}

static void sample_write(const Sample* s, const char* path) {
    char err[ERR];
    StWriter* w = st_writer_new();
    assert_non_null(w);
    for (int i = 0; i < N_SAMPLE; i++)
        assert_int_equal(st_add_f32(w, SAMPLE_NAMES[i], SAMPLE_NDIM[i], SAMPLE_SHAPE[i], s->data[i]), 0);
    for (int i = 0; i < N_META; i++) assert_int_equal(st_add_meta(w, META_KEYS[i], META_VALUES[i]), 0);
    if (st_write(w, path, err, sizeof err) != 0) fail_msg("%s", err);
    st_writer_free(w);
}

/* The sample written to a temporary file and read back as bytes (file removed). */
static unsigned char* sample_bytes(const Sample* s, size_t* len) {
    char path[128];
    in_dir(path, sizeof path, "sample.safetensors");
    sample_write(s, path);
    unsigned char* buf = read_file(path, len);
    unlink(path);
    return buf;
}

/* Where the data section of a valid file image starts. */
static size_t data_start_of(const unsigned char* buf, size_t len) {
    StFile f;
    char err[ERR];
    if (parse_copy(&f, buf, len, err) != 0) fail_msg("%s", err);
    size_t start = f.data_start;
    st_free(&f);
    assert_true(start < len);
    return start;
}

/* ---- round trips ------------------------------------------------------------- */

static void test_written_tensors_and_metadata_read_back_bit_exact(void** state) {
    Sample s = sample_new();
    char path[128], err[ERR];
    in_dir(path, sizeof path, "roundtrip.safetensors");
    sample_write(&s, path);
    StFile f;
    if (st_load(&f, path, err, sizeof err) != 0) fail_msg("%s", err);
    unlink(path);

    assert_int_equal(f.n_tensors, N_SAMPLE);
    assert_int_equal(f.data_start % 8, 0);  /* padded so the floats are aligned in the file */
    size_t at = 0;
    for (int i = 0; i < N_SAMPLE; i++) {
        /* laid out contiguously, in the order added */
        const StTensor* t = st_find(&f, SAMPLE_NAMES[i]);
        assert_ptr_equal(t, &f.tensors[i]);
        assert_string_equal(t->dtype, "F32");
        assert_int_equal(t->begin, at);
        at = t->end;
        float* back = xmalloc(s.count[i] * sizeof(float) + 1, "read back");
        if (st_read_f32(&f, SAMPLE_NAMES[i], back, SAMPLE_NDIM[i], SAMPLE_SHAPE[i], err, sizeof err) != 0)
            fail_msg("%s", err);
        if (s.count[i]) assert_memory_equal(back, s.data[i], s.count[i] * sizeof(float));
        free(back);
    }
    assert_int_equal(at, f.len - f.data_start);
    for (int i = 0; i < N_META; i++) assert_string_equal(st_meta(&f, META_KEYS[i]), META_VALUES[i]);
    assert_null(st_meta(&f, "absent"));
    assert_null(st_find(&f, "absent"));

    /* the checksum is fnv1a64 of the data section, as utils.h computes it */
    char want[17];
    snprintf(want, sizeof want, "%016" PRIx64, fnv1a64(f.buf + f.data_start, f.len - f.data_start));
    assert_string_equal(st_meta(&f, ST_CHECKSUM_KEY), want);
    /* control characters went out as \u00XX, and the padding is spaces */
    char* header = xmalloc(f.data_start - 7, "header text");
    memcpy(header, f.buf + 8, f.data_start - 8);
    header[f.data_start - 8] = 0;
    assert_non_null(strstr(header, "bell \\u0007 del"));
    size_t end = strlen(header);
    while (end > 0 && header[end - 1] == ' ') end--;
    assert_int_equal(header[end - 1], '}');
    free(header);
    st_free(&f);
    sample_free(&s);
}

static void test_rewriting_a_file_replaces_it_and_leaves_no_tmp(void** state) {
    char path[128], tmp[160], err[ERR];
    in_dir(path, sizeof path, "twice.safetensors");
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());  /* create_temp_beside's name */
    float first[2] = {1, 2}, second[3] = {3, 4, 5};
    int64_t two = 2, three = 3;
    for (int round = 0; round < 2; round++) {
        StWriter* w = st_writer_new();
        assert_int_equal(st_add_f32(w, "x", 1, round ? &three : &two, round ? second : first), 0);
        if (st_write(w, path, err, sizeof err) != 0) fail_msg("%s", err);
        st_writer_free(w);
        assert_false(file_exists(tmp));
    }
    StFile f;
    if (st_load(&f, path, err, sizeof err) != 0) fail_msg("%s", err);
    float back[3];
    assert_int_equal(st_read_f32(&f, "x", back, 1, &three, err, sizeof err), 0);
    assert_memory_equal(back, second, sizeof second);
    st_free(&f);
    unlink(path);
}

/* A killed writer that had this pid left its temporary: the next write takes another
 * name (path.<pid>-1.tmp), succeeds, and leaves the leftover alone. Two writers of one
 * file never share a temporary. */
static void test_a_leftover_temporary_of_the_same_name_does_not_block_the_write(void** state) {
    char path[128], leftover[160], next[160], err[ERR];
    in_dir(path, sizeof path, "leftover.safetensors");
    snprintf(leftover, sizeof leftover, "%s.%ld.tmp", path, (long)getpid());
    snprintf(next, sizeof next, "%s.%ld-1.tmp", path, (long)getpid());
    FILE* f = fopen(leftover, "wb");
    assert_non_null(f);
    fputs("half a file", f);
    fclose(f);
    float x = 7;
    int64_t one = 1;
    StWriter* w = st_writer_new();
    assert_int_equal(st_add_f32(w, "x", 1, &one, &x), 0);
    if (st_write(w, path, err, sizeof err) != 0) fail_msg("%s", err);
    st_writer_free(w);
    assert_true(file_exists(path));
    assert_false(file_exists(next));
    struct stat st;
    assert_int_equal(stat(leftover, &st), 0);
    assert_int_equal(st.st_size, 11);
    char tmp[160];
    FILE* mine = create_temp_beside(path, tmp, sizeof tmp);
    assert_non_null(mine);
    assert_string_equal(tmp, next);
    fclose(mine);
    unlink(next);
    unlink(leftover);
    unlink(path);
}

static void test_python_style_header_parses(void** state) {
    const char* header = "{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    float values[2] = {1.5f, -2.0f};
    for (int padded = 0; padded < 2; padded++) {
        char text[256];
        snprintf(text, sizeof text, "%s", header);
        /* unpadded, the data starts at an odd offset: the copy must not assume alignment */
        if (padded) while ((8 + strlen(text)) % 8) strcat(text, " ");
        else assert_int_equal(strlen(text) % 2, 1);
        size_t len;
        unsigned char* buf = image(text, sizeof values, &len);
        memcpy(buf + len - sizeof values, values, sizeof values);
        StFile f;
        char err[ERR];
        if (parse_copy(&f, buf, len, err) != 0) fail_msg("%s", err);
        assert_string_equal(st_meta(&f, "format"), "pt");
        float back[2];
        int64_t shape = 2;
        if (st_read_f32(&f, "a", back, 1, &shape, err, sizeof err) != 0) fail_msg("%s", err);
        assert_memory_equal(back, values, sizeof values);
        st_free(&f);
        free(buf);
    }
}

/* Well-formed headers this writer would never produce still parse. */
static void test_unusual_but_valid_headers_parse(void** state) {
    const char* headers[] = {
        "{}",
        " \t\r\n{ \"a\" : { \"extra\" : {\"x\": [1, 2.5e-3, -0, 1E+2, true, false, null, \"s\", {}, []]},"
        " \"dtype\" : \"F32\", \"shape\" : [ 2 ], \"data_offsets\" : [ 0 , 8 ] } } \n ",
        /* zero-size tensors may sit at the same offset, even inside nothing */
        "{\"z1\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"z2\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
        /* ranges in any order; other dtypes parse (they just cannot be read as F32) */
        "{\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]},"
        "\"a\":{\"dtype\":\"U8\",\"shape\":[2,2],\"data_offsets\":[0,4]}}",
        /* a scalar */
        "{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}",
    };
    const size_t data_len[] = {0, 8, 8, 8, 8};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        size_t len;
        unsigned char* buf = image(headers[i], data_len[i], &len);
        StFile f;
        char err[ERR];
        if (parse_copy(&f, buf, len, err) != 0) fail_msg("header %zu refused: %s", i, err);
        st_free(&f);
        free(buf);
    }
}

static void test_escaped_names_decode_to_utf8(void** state) {
    /* \u00e9 = e-acute, \ud83d\ude00 = U+1F600 as a surrogate pair, \/ = / */
    size_t len;
    unsigned char* buf = image("{\"caf\\u00e9\\/\\ud83d\\ude00\\n\":{\"dtype\":\"F32\",\"shape\":[1],"
                               "\"data_offsets\":[0,4]}}", 4, &len);
    StFile f;
    char err[ERR];
    if (parse_copy(&f, buf, len, err) != 0) fail_msg("%s", err);
    assert_non_null(st_find(&f, "caf\xc3\xa9/\xf0\x9f\x98\x80\n"));
    st_free(&f);
    free(buf);
}

/* ---- st_read_f32 checks ------------------------------------------------------- */

static void test_read_f32_names_both_shapes_when_they_differ(void** state) {
    Sample s = sample_new();
    size_t len;
    unsigned char* buf = sample_bytes(&s, &len);
    StFile f;
    char err[ERR];
    if (parse_copy(&f, buf, len, err) != 0) fail_msg("%s", err);
    float out[64];
    const int64_t transposed[] = {3, 5}, extra_dim[] = {7, 1};
    assert_int_equal(st_read_f32(&f, "wte", out, 2, transposed, err, sizeof err), -1);
    assert_string_equal(err, NAME ": tensor wte has shape [5, 3], expected [3, 5]");
    assert_int_equal(st_read_f32(&f, "ln_f.bias", out, 2, extra_dim, err, sizeof err), -1);
    assert_string_equal(err, NAME ": tensor ln_f.bias has shape [7], expected [7, 1]");
    assert_int_equal(st_read_f32(&f, "wpe", out, 2, transposed, err, sizeof err), -1);
    assert_string_equal(err, NAME ": tensor wpe is missing");
    st_free(&f);
    free(buf);
    sample_free(&s);
}

static void test_read_f32_refuses_other_dtypes_by_name(void** state) {
    size_t len;
    unsigned char* buf = image("{\"half\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, &len);
    StFile f;
    char err[ERR];
    if (parse_copy(&f, buf, len, err) != 0) fail_msg("%s", err);
    float out[2];
    int64_t shape = 2;
    assert_int_equal(st_read_f32(&f, "half", out, 1, &shape, err, sizeof err), -1);
    assert_contains(err, NAME ": tensor half has dtype BF16");
    st_free(&f);
    free(buf);
}

/* ---- damaged files ------------------------------------------------------------- */

static void test_every_truncation_is_refused(void** state) {
    Sample s = sample_new();
    size_t len;
    unsigned char* buf = sample_bytes(&s, &len);
    char err[ERR];
    StFile f;
    for (size_t cut = 0; cut < len; cut++) {
        err[0] = 0;
        if (parse_copy(&f, buf, cut, err) == 0) fail_msg("a file cut to %zu of %zu bytes parsed", cut, len);
        assert_int_equal(strncmp(err, NAME ": ", strlen(NAME) + 2), 0);
        assert_null(f.buf);  /* failure leaves f empty */
        st_free(&f);         /* and freeing it again is harmless */
    }
    if (parse_copy(&f, buf, len, err) != 0) fail_msg("the whole file: %s", err);
    st_free(&f);
    free(buf);
    sample_free(&s);
}

static void test_any_flipped_data_byte_fails_the_checksum(void** state) {
    Sample s = sample_new();
    size_t len;
    unsigned char* buf = sample_bytes(&s, &len);
    StFile f;
    char err[ERR];
    size_t start = data_start_of(buf, len);
    for (size_t i = start; i < len; i++) {
        for (int mask = 1; mask <= 0x80; mask <<= 7) {  /* lowest and highest bit */
            buf[i] ^= (unsigned char)mask;
            assert_int_equal(parse_copy(&f, buf, len, err), -1);
            assert_contains(err, NAME ": checksum mismatch (file corrupted?)");
            buf[i] ^= (unsigned char)mask;
        }
    }
    free(buf);
    sample_free(&s);
}

/* A flipped header byte may leave valid JSON (a changed letter in a name); then the
 * reader must give the original data or an error, never other data or a crash. */
static void test_flipped_header_bytes_give_an_error_or_the_same_data(void** state) {
    Sample s = sample_new();
    size_t len;
    unsigned char* buf = sample_bytes(&s, &len);
    StFile f;
    char err[ERR];
    size_t start = data_start_of(buf, len);
    int accepted = 0, refused = 0;
    const unsigned char masks[] = {0x01, 0x02, 0x08, 0x20, 0x80, 0xff};
    for (size_t i = 0; i < start; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            buf[i] ^= masks[m];
            if (parse_copy(&f, buf, len, err) != 0) {
                assert_int_equal(strncmp(err, NAME ": ", strlen(NAME) + 2), 0);
                refused++;
            } else {
                assert_true(i >= 8);  /* any change to the length must be caught */
                accepted++;
                for (int t = 0; t < N_SAMPLE; t++) {
                    float* back = xmalloc(s.count[t] * sizeof(float) + 1, "read back");
                    if (st_read_f32(&f, SAMPLE_NAMES[t], back, SAMPLE_NDIM[t], SAMPLE_SHAPE[t], err, sizeof err) == 0
                        && s.count[t])
                        assert_memory_equal(back, s.data[t], s.count[t] * sizeof(float));
                    free(back);
                }
                st_free(&f);
            }
            buf[i] ^= masks[m];
        }
    }
    printf("  header flips: %d refused, %d still valid\n", refused, accepted);
    assert_true(accepted > 0 && refused > accepted);  /* both paths were exercised */
    free(buf);
    sample_free(&s);
}

/* ---- hand-written headers that break one rule each ---------------------------------- */

#define T(name, shape, offsets) "\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offsets "}"

static void test_hostile_headers_are_refused_with_a_reason(void** state) {
    static const struct { const char* header; size_t data_len; const char* fragment; } cases[] = {
        {"{" T("a", "[2]", "[0,8]") "," T("b", "[2]", "[4,12]") "}", 12, "overlap"},
        {"{" T("a", "[1]", "[0,4]") "," T("b", "[1]", "[8,12]") "}", 12, "hole in the data section"},
        {"{" T("a", "[2]", "[0,8]") "}", 12, "bytes [8, 12) at the end of the data section belong to no tensor"},
        {"{" T("a", "[4]", "[0,16]") "}", 8, "run past the end"},
        {"{" T("a", "[3]", "[0,8]") "}", 8, "do not hold the 12 bytes of F32 [3]"},
        {"{" T("a", "[0]", "[8,0]") "}", 8, "do not hold"},
        {"{" T("a", "[-2]", "[0,8]") "}", 8, "negative number"},
        {"{" T("a", "[2.0]", "[0,8]") "}", 8, "fraction or exponent"},
        {"{" T("a", "[2e0]", "[0,8]") "}", 8, "fraction or exponent"},
        {"{" T("a", "[+2]", "[0,8]") "}", 8, "expected a non-negative integer"},
        {"{" T("a", "[02]", "[0,8]") "}", 8, "leading zero"},
        {"{" T("a", "[\"2\"]", "[0,8]") "}", 8, "expected a non-negative integer"},
        {"{" T("a", "[2]", "[0,8.0]") "}", 8, "fraction or exponent"},
        {"{" T("a", "[99999999999999999999]", "[0,8]") "}", 8, "integer too large"},
        {"{" T("a", "[9223372036854775808]", "[0,8]") "}", 8, "integer too large"},  /* INT64_MAX + 1 */
        {"{" T("a", "[4294967296,4294967296]", "[0,8]") "}", 8, "too large"},      /* product overflows */
        {"{" T("a", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, "shape has more than 8 entries"},
        {"{" T("a", "[2]", "[0,4,8]") "}", 8, "data_offsets has more than 2 entries"},
        {"{" T("a", "[2]", "[0]") "}", 8, "must be [begin, end]"},
        {"{" T("a", "[2]", "[0,8]") "," T("a", "[2]", "[8,16]") "}", 16, "tensor a appears twice"},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "key \"k\" appears twice"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__ appears twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"dtype\" twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor a has no \"data_offsets\""},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor a has unknown dtype \"F33\""},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype"},
        {"{\"a\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "expected a string"},
        {"{\"a\":5}", 0, "expected an object describing a tensor"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ \"k\" must be a string"},
        {"{\"__metadata__\":{\"k\":null}}", 0, "must be a string"},
        {"{\"__metadata__\":\"x\"}", 0, "__metadata__ must be an object"},
        {"{\"__metadata__\":{\"" ST_CHECKSUM_KEY "\":\"xyz\"}}", 0, "expected 16 lowercase hex digits"},
        {"{\"__metadata__\":{\"" ST_CHECKSUM_KEY "\":\"0000000000000000\"}}", 0, "checksum mismatch"},
        {"{\"\\ud800\":{}}", 0, "lone high surrogate"},
        {"{\"\\ud800x\":{}}", 0, "lone high surrogate"},
        {"{\"\\ud800\\u0041\":{}}", 0, "lone high surrogate"},
        {"{\"\\udc00\":{}}", 0, "lone low surrogate"},
        {"{\"\\u12\":{}}", 0, "4 hex digits"},
        {"{\"\\u0000\":{}}", 0, "\\u0000 is not allowed"},
        {"{\"\\x\":{}}", 0, "unknown escape"},
        {"{\"a\tb\":{}}", 0, "raw control character"},
        {"{\"\xff\":{}}", 0, "invalid UTF-8"},
        {"{\"\xc0\xaf\":{}}", 0, "invalid UTF-8"},          /* overlong '/' */
        {"{\"\xe0\x80\xaf\":{}}", 0, "invalid UTF-8"},      /* overlong '/' in 3 bytes */
        {"{\"\xf0\x80\x80\xaf\":{}}", 0, "invalid UTF-8"},  /* and in 4 */
        {"{\"\xf4\x90\x80\x80\":{}}", 0, "invalid UTF-8"},  /* past U+10FFFF */
        {"{\"\xed\xa0\x80\":{}}", 0, "invalid UTF-8"},      /* a surrogate in UTF-8 */
        {"{\"\xe2\x9c\":{}}", 0, "invalid UTF-8"},          /* cut short */
        {"{\"abc", 0, "unterminated string"},
        {"{\"abc\\\"}", 0, "unterminated string"},
        {"{" T("a", "[2]", "[0,8]") "} x", 8, "trailing characters"},
        {"{}{}", 0, "trailing characters"},
        {"{" T("a", "[2]", "[0,8]") ",}", 8, "expected a string"},
        {"{\"a\" {}}", 0, "expected ':'"},
        {"{" T("a", "[2]", "[0,8]") " \"b\":{}}", 8, "expected ',' or '}'"},
        {"[]", 0, "expected '{'"},
        {"", 0, "expected '{'"},
        {"   ", 0, "expected '{'"},
        {"{\"a\":{\"x\":-,\"dtype\":\"F32\"}}", 0, "digit expected"},
        {"{\"a\":{\"x\":1.,\"dtype\":\"F32\"}}", 0, "digit expected after '.'"},
        {"{\"a\":{\"x\":1e,\"dtype\":\"F32\"}}", 0, "digit expected in an exponent"},
        {"{\"a\":{\"x\":tru,\"dtype\":\"F32\"}}", 0, "expected a value"},
        {"{\"a\":{\"x\":[1,],\"dtype\":\"F32\"}}", 0, "expected a value"},
        {"{\"a\":{\"x\":[1 2],\"dtype\":\"F32\"}}", 0, "expected ',' or ']'"},
        {"{\"a\":{\"x\":01,\"dtype\":\"F32\"}}", 0, "expected ',' or '}'"},
    };
    char err[ERR];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        unsigned char* buf = image(cases[i].header, cases[i].data_len, &len);
        StFile f;
        if (parse_copy(&f, buf, len, err) == 0) fail_msg("header %zu parsed: %s", i, cases[i].header);
        printf("  refused: %s\n", err);
        assert_int_equal(strncmp(err, NAME ": ", strlen(NAME) + 2), 0);
        assert_contains(err, cases[i].fragment);
        free(buf);
    }
}

static void test_deep_nesting_is_refused_without_exhausting_the_stack(void** state) {
    enum { DEPTH = 100000 };
    char* header = xmalloc(2 * DEPTH + 32, "deep header");
    size_t o = (size_t)sprintf(header, "{\"a\":{\"x\":");
    for (int i = 0; i < DEPTH; i++) header[o++] = '[';
    for (int i = 0; i < DEPTH; i++) header[o++] = ']';
    strcpy(header + o, "}}");
    size_t len;
    unsigned char* buf = image(header, 0, &len);
    StFile f;
    char err[ERR];
    assert_int_equal(parse_copy(&f, buf, len, err), -1);
    assert_contains(err, "nested too deeply");
    free(buf);
    free(header);
}

static void test_header_length_beyond_the_file_or_limit_is_refused(void** state) {
    size_t len;
    unsigned char* buf = image("{" T("a", "[2]", "[0,8]") "}", 8, &len);
    StFile f;
    char err[ERR];
    uint64_t lengths[] = {len - 8 + 1, UINT64_MAX, 100u * 1000 * 1000 + 1};
    const char* fragments[] = {"is more than the", "exceeds the limit", "exceeds the limit"};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(lengths[k] >> (8 * i));
        assert_int_equal(parse_copy(&f, buf, len, err), -1);
        assert_contains(err, fragments[k]);
    }
    free(buf);
}

/* ---- the header checksum ----------------------------------------------------------- */

/* ST_HEADER_CHECKSUM_KEY is fnv1a64 of the canonical text safetensors.h describes:
 * metadata pairs by key (the data checksum among them), then each tensor's name,
 * dtype, shape and offsets by name, every field ended by a NUL. */
static void test_the_header_checksum_covers_the_canonical_text(void** state) {
    float x[2] = {1, 2}, s = 3;
    int64_t two = 2;
    StWriter* w = st_writer_new();
    assert_int_equal(st_add_f32(w, "x", 1, &two, x), 0);
    assert_int_equal(st_add_f32(w, "a.scalar", 0, NULL, &s), 0);  /* sorts first, laid out second */
    assert_int_equal(st_add_meta(w, "k", "v"), 0);
    char path[128], err[ERR];
    in_dir(path, sizeof path, "canonical.safetensors");
    if (st_write(w, path, err, sizeof err) != 0) fail_msg("%s", err);
    st_writer_free(w);
    StFile f;
    if (st_load(&f, path, err, sizeof err) != 0) fail_msg("%s", err);
    unlink(path);
    char text[256];
    int n = snprintf(text, sizeof text, "M%s%c%s%cMk%cv%cTa.scalar%cF32%c%c8%c12%cTx%cF32%c2%c0%c8%c",
                     ST_CHECKSUM_KEY, 0, st_meta(&f, ST_CHECKSUM_KEY), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    char want[17];
    snprintf(want, sizeof want, "%016" PRIx64, fnv1a64(text, (size_t)n));
    assert_string_equal(st_meta(&f, ST_HEADER_CHECKSUM_KEY), want);
    st_free(&f);
}

/* A file whose metadata has one of this project's keys must carry both checksums;
 * other files (Hugging Face's, Python's safetensors) carry none and load. */
static void test_a_file_with_own_keys_and_no_checksums_is_refused(void** state) {
    const char* tensor = "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    char header[256];
    snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\",\"emergent.step\":\"30\"},%s", tensor);
    size_t len;
    unsigned char* buf = image(header, 4, &len);
    StFile f;
    char err[ERR];
    assert_int_equal(parse_copy(&f, buf, len, err), -1);
    printf("  refused: %s\n", err);
    assert_contains(err, NAME ": the metadata holds this project's keys (emergent.*) but no emergent.fnv1a64: its "
                         "data is under no checksum");
    free(buf);
    snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\",\"step\":\"30\"},%s", tensor);
    buf = image(header, 4, &len);
    if (parse_copy(&f, buf, len, err) != 0) fail_msg("%s", err);
    st_free(&f);
    free(buf);
}

/* ---- the writer's own refusals ---------------------------------------------------- */

static void test_writer_refuses_bad_tensors_and_keys(void** state) {
    float x[4] = {1, 2, 3, 4};
    int64_t four = 4, neg[2] = {2, -2}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    int64_t huge[2] = {INT64_MAX, INT64_MAX};
    StWriter* w = st_writer_new();
    assert_non_null(w);
    assert_int_equal(st_add_f32(w, "x", 1, &four, x), 0);
    assert_int_equal(st_add_f32(w, "x", 1, &four, x), -1);              /* duplicate */
    assert_int_equal(st_add_f32(w, "__metadata__", 1, &four, x), -1);   /* reserved */
    assert_int_equal(st_add_f32(w, "neg", 2, neg, x), -1);
    assert_int_equal(st_add_f32(w, "nine", 9, nine, x), -1);
    assert_int_equal(st_add_f32(w, "minus", -1, &four, x), -1);
    assert_int_equal(st_add_f32(w, "huge", 2, huge, x), -1);
    assert_int_equal(st_add_f32(w, "null", 1, &four, NULL), -1);
    assert_int_equal(st_add_f32(w, "bad\xff", 1, &four, x), -1);         /* not UTF-8 */
    assert_int_equal(st_add_meta(w, "k", "v"), 0);
    assert_int_equal(st_add_meta(w, "k", "w"), -1);
    assert_int_equal(st_add_meta(w, ST_CHECKSUM_KEY, "0"), -1);
    assert_int_equal(st_add_meta(w, ST_HEADER_CHECKSUM_KEY, "0"), -1);
    assert_int_equal(st_add_meta(w, "k2", "\xc0\xaf"), -1);
    /* what was accepted still makes a valid file */
    char path[128], err[ERR];
    in_dir(path, sizeof path, "refusals.safetensors");
    if (st_write(w, path, err, sizeof err) != 0) fail_msg("%s", err);
    st_writer_free(w);
    StFile f;
    if (st_load(&f, path, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(f.n_tensors, 1);
    assert_int_equal(f.n_meta, 3);  /* k and the two checksums */
    st_free(&f);
    unlink(path);
}

static void test_writing_into_a_missing_directory_fails_and_leaves_no_file(void** state) {
    char path[128], tmp[160], err[ERR] = "";
    in_dir(path, sizeof path, "missing/model.safetensors");
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());  /* create_temp_beside's name */
    float x = 1;
    int64_t one = 1;
    StWriter* w = st_writer_new();
    assert_int_equal(st_add_f32(w, "x", 1, &one, &x), 0);
    assert_int_equal(st_write(w, path, err, sizeof err), -1);
    st_writer_free(w);
    printf("  refused: %s\n", err);
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_contains(err, strerror(ENOENT));
    assert_false(file_exists(path));
    assert_false(file_exists(tmp));
}

/* The .tmp is written, then renaming it onto a directory fails: it must be removed. */
static void test_a_failed_rename_removes_the_tmp_file(void** state) {
    char path[128], tmp[160], err[ERR] = "";
    in_dir(path, sizeof path, "a_directory");
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());  /* create_temp_beside's name */
    assert_int_equal(mkdir(path, 0755), 0);
    float x = 1;
    int64_t one = 1;
    StWriter* w = st_writer_new();
    assert_int_equal(st_add_f32(w, "x", 1, &one, &x), 0);
    assert_int_equal(st_write(w, path, err, sizeof err), -1);
    st_writer_free(w);
    printf("  refused: %s\n", err);
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_contains(err, "rename");
    assert_false(file_exists(tmp));
    assert_int_equal(rmdir(path), 0);  /* still an empty directory */
}

static void test_loading_a_missing_file_or_a_directory_names_the_path(void** state) {
    char path[128], err[ERR];
    StFile f;
    in_dir(path, sizeof path, "absent.safetensors");
    assert_int_equal(st_load(&f, path, err, sizeof err), -1);
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_contains(err, strerror(ENOENT));
    assert_int_equal(st_load(&f, dir, err, sizeof err), -1);
    assert_int_equal(strncmp(err, dir, strlen(dir)), 0);
    assert_contains(err, "not a regular file");
    st_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_written_tensors_and_metadata_read_back_bit_exact),
        cmocka_unit_test(test_rewriting_a_file_replaces_it_and_leaves_no_tmp),
        cmocka_unit_test(test_a_leftover_temporary_of_the_same_name_does_not_block_the_write),
        cmocka_unit_test(test_python_style_header_parses),
        cmocka_unit_test(test_unusual_but_valid_headers_parse),
        cmocka_unit_test(test_escaped_names_decode_to_utf8),
        cmocka_unit_test(test_read_f32_names_both_shapes_when_they_differ),
        cmocka_unit_test(test_read_f32_refuses_other_dtypes_by_name),
        cmocka_unit_test(test_every_truncation_is_refused),
        cmocka_unit_test(test_any_flipped_data_byte_fails_the_checksum),
        cmocka_unit_test(test_flipped_header_bytes_give_an_error_or_the_same_data),
        cmocka_unit_test(test_hostile_headers_are_refused_with_a_reason),
        cmocka_unit_test(test_deep_nesting_is_refused_without_exhausting_the_stack),
        cmocka_unit_test(test_header_length_beyond_the_file_or_limit_is_refused),
        cmocka_unit_test(test_the_header_checksum_covers_the_canonical_text),
        cmocka_unit_test(test_a_file_with_own_keys_and_no_checksums_is_refused),
        cmocka_unit_test(test_writer_refuses_bad_tensors_and_keys),
        cmocka_unit_test(test_writing_into_a_missing_directory_fails_and_leaves_no_file),
        cmocka_unit_test(test_a_failed_rename_removes_the_tmp_file),
        cmocka_unit_test(test_loading_a_missing_file_or_a_directory_names_the_path),
    };
    return cmocka_run_group_tests_name("safetensors", tests, make_dir, remove_dir);
}
