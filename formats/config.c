/* config.c: the table of keys and the parser for config files and overrides.
 * Not here: reading the data, building the model. */
#include "formats/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/utils.h"

typedef enum { KEY_INT, KEY_FLOAT, KEY_BOOL, KEY_STRING, KEY_ENUM, KEY_SCALE } KeyType;

typedef struct {
    const char* name;
    KeyType type;
    size_t offset;           /* into TrainConfig */
    const char* default_value;
    double min, max;         /* allowed range for numbers */
    int min_open, max_open;  /* 1: that bound is excluded */
    const char* choices;     /* KEY_ENUM: "a|b|c", index = stored value */
    const char* help;
} KeyInfo;

#define OFF(field) offsetof(TrainConfig, field)
#define BIG 1e9

static const KeyInfo KEYS[] = {
    /* name            type        offset               default           min   max   open   choices              help */
    {"out_dir",        KEY_STRING, OFF(out_dir),        "out",            0, 0, 0, 0, NULL, "directory for log.csv and the resolved config.conf"},
    {"input",          KEY_STRING, OFF(input),          "data/tinyshakespeare.txt", 0, 0, 0, 0, NULL, "raw UTF-8 text to train on"},
    {"data_dir",       KEY_STRING, OFF(data_dir),       "data/cache",     0, 0, 0, 0, NULL, "cache for prepared token files"},
    {"seed",           KEY_INT,    OFF(seed),           "1337",           0, 2147483647, 0, 0, NULL, "seeds init, batch sampling and evaluation batches"},
    {"n_layer",        KEY_INT,    OFF(n_layer),        "4",              1, 256, 0, 0, NULL, "transformer blocks"},
    {"n_head",         KEY_INT,    OFF(n_head),         "4",              1, 256, 0, 0, NULL, "attention heads; must divide n_embd"},
    {"n_embd",         KEY_INT,    OFF(n_embd),         "128",            1, 16384, 0, 0, NULL, "embedding width C: each token is a row of E (vocab_size x n_embd)"},
    {"block_size",     KEY_INT,    OFF(block_size),     "64",             1, 65536, 0, 0, NULL, "context length T"},
    {"pos_encoding",   KEY_ENUM,   OFF(pos_encoding),   "learned",        0, 0, 0, 0, "learned|sinusoidal|none|rope", "positions: a learned (block_size x n_embd) matrix, the fixed sinusoids, none (order only from the causal mask), or rope (q and k of every head rotated by their position, base 10000)"},
    {"embed_scale",    KEY_SCALE,  OFF(embed_scale),    "auto",           0, 1e6, 1, 0, NULL, "x = embed_scale*E[i] + PE; auto = sqrt(n_embd) if sinusoidal, else 1"},
    {"embed_init_std", KEY_FLOAT,  OFF(embed_init_std), "0.02",           0, 100, 1, 0, NULL, "E starts as N(0, embed_init_std^2), as GPT-2's 0.02 by default"},
    {"embed_init",     KEY_STRING, OFF(embed_init),     "",               0, 0, 0, 0, NULL, "a word2vec text file (./embeddings OUT export --format=word2vec) whose vectors start E instead of random ones; tokens matched by their printed form; a resume ignores it"},
    {"embed_rank",     KEY_INT,    OFF(embed_rank),     "0",              0, 16383, 0, 0, NULL, "0: E is one (vocab_size x n_embd) matrix; r > 0: E = A B, A (vocab_size x r) and B (r x n_embd) trained in its place (ALBERT's factorisation; tied, logits = h (A B)^T); r must be less than vocab_size and n_embd"},
    {"freeze_embeddings", KEY_BOOL, OFF(freeze_embeddings), "false",      0, 0, 0, 0, NULL, "E is never updated (AdamW and the gradient norm leave it out; tied, the output weight stays fixed too); dE is still computed"},
    {"tie_weights",    KEY_BOOL,   OFF(tie_weights),    "true",           0, 0, 0, 0, NULL, "output logits z = h E^T share E with the input"},
    {"bias",           KEY_BOOL,   OFF(bias),           "true",           0, 0, 0, 0, NULL, "biases in Linears and LayerNorms (GPT-2); nanoGPT's default is false"},
    {"tokenizer",      KEY_ENUM,   OFF(tokenizer),      "char",           0, 0, 0, 0, "char|byte|sentencepiece", "char: one id per distinct byte of the text; byte: 256 ids; sentencepiece: trained BPE/unigram"},
    {"vocab_size",     KEY_INT,    OFF(vocab_size),     "1024",           1, 65536, 0, 0, NULL, "sentencepiece vocabulary size (char takes the text's distinct bytes, byte 256)"},
    {"spm_model_type", KEY_ENUM,   OFF(spm_model_type), "bpe",            0, 0, 0, 0, "bpe|unigram", "sentencepiece algorithm"},
    {"dropout",        KEY_FLOAT,  OFF(dropout),        "0",              0, 1, 0, 1, NULL, "training only: drop probability on embeddings, attention weights, residual branches"},
    {"embed_dropout",  KEY_FLOAT,  OFF(embed_dropout),  "0",              0, 1, 0, 1, NULL, "training only: drop a position's whole token embedding E[i] (before positions are added) with this probability, the kept ones scaled by 1/(1-p)"},
    {"allow_lossy",    KEY_BOOL,   OFF(allow_lossy),    "false",          0, 0, 0, 0, NULL, "prepare data even if decode(encode(text)) != text (reports the bytes lost)"},
    {"batch_size",     KEY_INT,    OFF(batch_size),     "12",             1, 65536, 0, 0, NULL, "sequences per step B"},
    {"batch_groups",   KEY_INT,    OFF(batch_groups),   "1",              1, 65536, 0, 0, NULL, "split each batch into this many groups of sequences, trained side by side and their gradients summed in order; must divide batch_size; the bits depend on it, not on the thread count"},
    {"learning_rate",  KEY_FLOAT,  OFF(learning_rate),  "1e-3",           0, 10, 1, 0, NULL, "peak learning rate, after warmup"},
    {"min_lr",         KEY_FLOAT,  OFF(min_lr),         "1e-4",           0, 10, 0, 0, NULL, "learning rate at and after lr_decay_iters"},
    {"warmup_iters",   KEY_INT,    OFF(warmup_iters),   "100",            0, BIG, 0, 0, NULL, "steps of linear warmup"},
    {"lr_decay_iters", KEY_INT,    OFF(lr_decay_iters), "2000",           1, BIG, 0, 0, NULL, "step where the cosine decay reaches min_lr"},
    {"max_iters",      KEY_INT,    OFF(max_iters),      "2000",           0, BIG, 0, 0, NULL, "optimizer steps to run"},
    {"weight_decay",   KEY_FLOAT,  OFF(weight_decay),   "0.1",            0, 10, 0, 0, NULL, "AdamW decoupled decay, on matrices only"},
    {"beta1",          KEY_FLOAT,  OFF(beta1),          "0.9",            0, 1, 0, 1, NULL, "AdamW first-moment decay"},
    {"beta2",          KEY_FLOAT,  OFF(beta2),          "0.99",           0, 1, 0, 1, NULL, "AdamW second-moment decay"},
    {"grad_clip",      KEY_FLOAT,  OFF(grad_clip),      "1.0",            0, 1e6, 0, 0, NULL, "clip the global gradient norm to this; 0 = off"},
    {"eval_interval",  KEY_INT,    OFF(eval_interval),  "250",            1, BIG, 0, 0, NULL, "steps between evaluations of train and val loss"},
    {"eval_iters",     KEY_INT,    OFF(eval_iters),     "200",            1, BIG, 0, 0, NULL, "batches per split in each evaluation"},
    {"log_interval",   KEY_INT,    OFF(log_interval),   "10",             1, BIG, 0, 0, NULL, "steps between progress lines"},
    {"sample_tokens",  KEY_INT,    OFF(sample_tokens),  "100",            0, BIG, 0, 0, NULL, "tokens sampled and printed at each evaluation; 0 = none"},
    {"embed_snapshot_interval", KEY_INT, OFF(embed_snapshot_interval), "50", 0, BIG, 0, 0, NULL, "steps between snapshots of E in out_dir/embeddings/; 0 = none"},
    {"embed_probes",   KEY_STRING, OFF(embed_probes),   "e,T,.,\\n",      0, 0, 0, 0, NULL, "tokens (as printed, comma-separated) whose nearest neighbours each eval prints"},
    {"anisotropy_warn", KEY_FLOAT, OFF(anisotropy_warn), "0.5",           -1, 1, 0, 0, NULL, "warn when the mean cosine between rows of E exceeds this (collapse)"},
    {"resume",         KEY_BOOL,   OFF(resume),         "false",          0, 0, 0, 0, NULL, "continue the run in out_dir from out_dir/train_state.safetensors (--resume)"},
    {"overwrite",      KEY_BOOL,   OFF(overwrite),      "false",          0, 0, 0, 0, NULL, "start anew in an out_dir that holds another run (--overwrite): at this run's first checkpoint the old run's files move to out_dir/previous-<UTC time>/"},
    {"allow_data_change", KEY_BOOL, OFF(allow_data_change), "false",      0, 0, 0, 0, NULL, "--resume on other data than the run trained on (the text or a token file hashes otherwise): a warning instead of a refusal; the curve then differs from an uninterrupted run"},
};
enum { NUM_KEYS = sizeof(KEYS) / sizeof(KEYS[0]) };
_Static_assert(NUM_KEYS <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");

/* ------------------------------------------------------------------------- */

static const KeyInfo* find_key(const char* name) {
    for (int i = 0; i < NUM_KEYS; i++)
        if (strcmp(KEYS[i].name, name) == 0) return &KEYS[i];
    return NULL;
}

/* The keys' names, for "unknown key" messages. */
static void key_list(char* out, size_t len) {
    out[0] = 0;
    for (int i = 0; i < NUM_KEYS; i++) {
        strncat(out, KEYS[i].name, len - strlen(out) - 1);
        if (i + 1 < NUM_KEYS) strncat(out, ", ", len - strlen(out) - 1);
    }
}

/* Edit distance between a and b, with a swap of two neighbouring letters as one
 * edit (optimal string alignment): "learnig_rate" is 1 from learning_rate, "bais"
 * 1 from bias. Strings longer than 63 characters are far from every key. */
static int edit_distance(const char* a, const char* b) {
    enum { MAX_LEN = 63 };
    size_t n = strlen(a), m = strlen(b);
    if (n > MAX_LEN || m > MAX_LEN) return MAX_LEN + 1;
    int d[MAX_LEN + 1][MAX_LEN + 1];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

/* The keys a mistyped name most likely meant, "'a' or 'b'", or "" for none: those
 * at the least edit distance, if it is at most 2 (and less than the name's length),
 * else those the name begins (at least 3 letters: "max" -> max_iters) or that
 * begin it ("resume_from" -> resume). */
static void near_keys(const char* name, char* out, size_t len) {
    size_t name_len = strlen(name);
    int best = 3;
    for (int i = 0; i < NUM_KEYS; i++) {
        int d = edit_distance(name, KEYS[i].name);
        if (d < best && (size_t)d < name_len) best = d;
    }
    out[0] = 0;
    for (int i = 0; i < NUM_KEYS; i++) {
        const char* key = KEYS[i].name;
        size_t key_len = strlen(key);
        int near = best <= 2 ? edit_distance(name, key) == best
                             : (name_len >= 3 && strncmp(name, key, name_len < key_len ? name_len : key_len) == 0 &&
                                (name_len < key_len ? name_len : key_len) >= 3);
        if (!near) continue;
        size_t at = strlen(out);
        snprintf(out + at, len - at, "%s'%s'", at ? " or " : "", key);
    }
}

/* The message for a name that is no key: the keys it most likely meant, or all of them. */
static int unknown_key(const char* where, const char* name, char* err, size_t errlen) {
    char near[256];
    near_keys(name, near, sizeof near);
    if (near[0])
        return errorf(err, errlen, "%s: unknown key '%s': did you mean %s? (./train --help lists every key)", where,
                      name, near);
    char keys[1024];
    key_list(keys, sizeof keys);
    return errorf(err, errlen, "%s: unknown key '%s' (known keys: %s)", where, name, keys);
}

static int in_range(const KeyInfo* k, double v) {
    if (k->min_open ? v <= k->min : v < k->min) return 0;
    if (k->max_open ? v >= k->max : v > k->max) return 0;
    return 1;
}

static void range_text(const KeyInfo* k, char* out, size_t len) {
    snprintf(out, len, "%c%.10g, %.10g%c", k->min_open ? '(' : '[', k->min, k->max, k->max_open ? ')' : ']');
}

/* Whether a quote q in s is followed by blanks and a '#': inside quotes q, that
 * quote would end the value early (split_line takes the rest as a comment). */
static int ends_quote_early(const char* s, char q) {
    for (const char* c = strchr(s, q); c; c = strchr(c + 1, q)) {
        const char* rest = c + 1;
        while (isspace((unsigned char)*rest)) rest++;
        if (rest > c + 1 && *rest == '#') return 1;
    }
    return 0;
}

/* How config_write quotes a string so that the reader gets it back exactly: 0 for
 * no quotes, '"' or '\'', or -1 when neither would do (parse_value refuses those).
 * Quotes are needed for blanks at either end, a leading quote or '#', and a '#'
 * after a blank (a comment otherwise). */
static int quote_for(const char* s) {
    size_t n = strlen(s);
    int bare = n == 0 || (!isspace((unsigned char)s[0]) && !isspace((unsigned char)s[n - 1]) && s[0] != '"' &&
                          s[0] != '\'' && s[0] != '#');
    for (const char* h = strchr(s, '#'); bare && h; h = strchr(h + 1, '#'))
        bare = !(h > s && isspace((unsigned char)h[-1]));
    if (bare) return 0;
    if (!ends_quote_early(s, '"')) return '"';
    if (!ends_quote_early(s, '\'')) return '\'';
    return -1;
}

/* Parse value into the field of k; `where` ("file:line" or "--key") prefixes errors. */
static int parse_value(TrainConfig* cfg, const KeyInfo* k, const char* value, const char* where,
                     char* err, size_t errlen) {
    char* field = (char*)cfg + k->offset;
    char range[96];
    range_text(k, range, sizeof range);
    if (*value == 0 && k->type != KEY_STRING)
        return errorf(err, errlen, "%s: key '%s' has no value", where, k->name);
    switch (k->type) {
    case KEY_INT: {
        char* end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (*end != 0 || end == value)
            return errorf(err, errlen, "%s: key '%s' expects an integer, got '%s'", where, k->name, value);
        /* ERANGE: an integer all the same, only too large for any key */
        if (errno == ERANGE || !in_range(k, (double)v))
            return errorf(err, errlen, "%s: key '%s' = %s is out of range %s", where, k->name, value, range);
        *(int*)field = (int)v;
        return 0;
    }
    case KEY_SCALE:
    case KEY_FLOAT: {
        if (k->type == KEY_SCALE && strcmp(value, "auto") == 0) { *(double*)field = 0.0; return 0; }
        char* end;
        errno = 0;
        double v = strtod(value, &end);
        int overflow = errno == ERANGE && isinf(v);  /* a number, beyond any double */
        if (*end != 0 || end == value || (!overflow && !isfinite(v)))
            return errorf(err, errlen, "%s: key '%s' expects a number%s, got '%s'", where, k->name,
                        k->type == KEY_SCALE ? " or auto" : "", value);
        if (overflow || !in_range(k, v))
            return errorf(err, errlen, "%s: key '%s' = %s is out of range %s", where, k->name, value, range);
        /* Training uses these keys as 32-bit floats: a value inside the range as a
         * double can round onto an open bound (beta2 = 0.99999999999 becomes 1.0f,
         * and AdamW divides by 1 - beta2^t = 0) or to 0 below a closed one. */
        float f = (float)v;
        if (!isfinite(f) || !in_range(k, (double)f))
            return errorf(err, errlen, "%s: key '%s' = %s rounds to %.9g as a 32-bit float (the type training "
                        "uses), which is out of range %s", where, k->name, value, (double)f, range);
        *(double*)field = v;
        return 0;
    }
    case KEY_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes")) { *(int*)field = 1; return 0; }
        if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no")) { *(int*)field = 0; return 0; }
        return errorf(err, errlen, "%s: key '%s' expects true or false, got '%s'", where, k->name, value);
    case KEY_STRING:
        if (strlen(value) >= CONFIG_STR_MAX)
            return errorf(err, errlen, "%s: key '%s' is longer than %d characters", where, k->name, CONFIG_STR_MAX - 1);
        for (const char* c = value; *c; c++)
            if ((unsigned char)*c < 0x20)
                return errorf(err, errlen, "%s: key '%s' holds the control character 0x%02x at offset %d: a value "
                            "is one line of printable text", where, k->name, (unsigned char)*c, (int)(c - value));
        if (quote_for(value) < 0)
            return errorf(err, errlen, "%s: key '%s' holds both \" and ' followed by blanks and '#': no quotes "
                        "could write it back into a config file", where, k->name);
        strcpy(field, value);
        return 0;
    case KEY_ENUM: {
        const char* c = k->choices;
        for (int idx = 0; *c; idx++) {
            size_t n = strcspn(c, "|");
            if (strlen(value) == n && strncmp(value, c, n) == 0) { *(int*)field = idx; return 0; }
            c += n + (c[n] == '|');
        }
        return errorf(err, errlen, "%s: key '%s' must be one of %s, got '%s'", where, k->name, k->choices, value);
    }
    }
    return errorf(err, errlen, "%s: key '%s' has an unknown type", where, k->name);
}

static int set_value(TrainConfig* cfg, const KeyInfo* k, const char* value, const char* where,
                     char* err, size_t errlen) {
    if (parse_value(cfg, k, value, where, err, errlen) != 0) return -1;
    snprintf(cfg->origin[k - KEYS], CONFIG_ORIGIN_MAX, "%.*s", CONFIG_ORIGIN_MAX - 1, where);
    return 0;
}

/* "n_head = 5 (configs/x.conf:7)": a key's value and where it was set. */
static const char* described(const TrainConfig* cfg, const char* name, char* out, size_t len) {
    const KeyInfo* k = find_key(name);
    char value[64];
    const char* field = (const char*)cfg + k->offset;
    if (k->type == KEY_INT) snprintf(value, sizeof value, "%d", *(const int*)field);
    else snprintf(value, sizeof value, "%g", *(const double*)field);
    snprintf(out, len, "%s = %s (%s)", name, value, cfg->origin[k - KEYS]);
    return out;
}

/* Trim spaces at both ends, in place. */
static char* trim(char* s) {
    while (isspace((unsigned char)*s)) s++;
    char* e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

/* A '#' that begins a comment: at the start of the line or after a blank. */
static char* comment_start(char* line, char* from) {
    for (char* h = from; (h = strchr(h, '#')) != NULL; h++)
        if (h == line || isspace((unsigned char)h[-1])) return h;
    return NULL;
}

/* The quote that closes a value opened by the quote at open: the first one of its
 * kind followed by nothing but blanks, or by blanks and a comment. NULL if none. */
static char* closing_quote(char* open) {
    for (char* q = open + 1; (q = strchr(q, *open)) != NULL; q++) {
        char* rest = q + 1;
        while (isspace((unsigned char)*rest)) rest++;
        if (*rest == 0 || (*rest == '#' && rest > q + 1)) return q;
    }
    return NULL;
}

/* Split a config line in place into *key and *value, both trimmed. A comment
 * starts at a '#' that begins the line or follows a blank. A value may be quoted
 * (" or '): the quotes keep its blanks and any '#', and it ends at the first
 * quote of its kind that nothing but blanks or a comment follows:
 *   out_dir = runs/a#1              -> runs/a#1
 *   out_dir = "runs #1"  # a note   -> runs #1
 * Returns 1 for a setting, 0 for a blank or comment line, -1 when there is no '='
 * (*key is then the line without its comment). */
static int split_line(char* line, char** key, char** value) {
    char* eq = strchr(line, '=');
    char* hash = comment_start(line, line);
    if (!eq || (hash && hash < eq)) {
        if (hash) *hash = 0;
        *key = trim(line);
        return **key ? -1 : 0;
    }
    *eq = 0;
    *key = trim(line);
    char* v = eq + 1;
    while (isspace((unsigned char)*v)) v++;
    char* close = *v == '"' || *v == '\'' ? closing_quote(v) : NULL;
    if (close) {
        *close = 0;
        *value = v + 1;
        return 1;
    }
    if ((hash = comment_start(line, v)) != NULL) *hash = 0;
    *value = trim(v);
    return 1;
}

void config_defaults(TrainConfig* cfg) {
    memset(cfg, 0, sizeof(*cfg));
    char err[CONFIG_ERR_MAX];
    for (int i = 0; i < NUM_KEYS; i++)
        if (set_value(cfg, &KEYS[i], KEYS[i].default_value, "default", err, sizeof err) != 0) {
            fprintf(stderr, "internal error: %s\n", err);  /* a bad table entry: caught by the tests */
            abort();
        }
}

/* A config file's size limit: far above any real one, and reading stops there. */
#define CONFIG_FILE_MAX (1 << 20)
/* The longest line, comment included: a full-length string value with its key and quotes fits. */
#define CONFIG_LINE_MAX (CONFIG_STR_MAX + 254)

int config_load_text(TrainConfig* cfg, const char* text, size_t len, const char* name, char* err, size_t errlen) {
    int first_line[NUM_KEYS] = {0};
    char line[CONFIG_LINE_MAX + 1], where[CONFIG_STR_MAX + 32];
    int lineno = 0, rc = 0;
    /* Some editors start a UTF-8 file with a byte order mark: it belongs to no key */
    size_t start = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    for (size_t at = start; rc == 0 && at < len;) {
        const char* nl = memchr(text + at, '\n', len - at);
        size_t n = (nl ? (size_t)(nl - text) : len) - at;
        lineno++;
        snprintf(where, sizeof where, "%s:%d", name, lineno);
        if (n > CONFIG_LINE_MAX) {
            rc = errorf(err, errlen, "%s: line too long (more than %d characters)", where, CONFIG_LINE_MAX);
            break;
        }
        if (memchr(text + at, 0, n)) {
            rc = errorf(err, errlen, "%s: NUL byte in the line (not a text file?)", where);
            break;
        }
        memcpy(line, text + at, n);
        line[n] = 0;
        at += n + (nl != NULL);
        char *key, *value;
        int kind = split_line(line, &key, &value);
        if (kind == 0) continue;
        if (kind < 0) { rc = errorf(err, errlen, "%s: expected 'key = value', got '%s'", where, key); break; }
        const KeyInfo* k = find_key(key);
        if (!k) {
            rc = unknown_key(where, key, err, errlen);
            break;
        }
        int idx = (int)(k - KEYS);
        if (first_line[idx]) {
            rc = errorf(err, errlen, "%s: key '%s' is set twice (first on line %d)", where, key, first_line[idx]);
            break;
        }
        first_line[idx] = lineno;
        rc = set_value(cfg, k, value, where, err, errlen);
    }
    return rc;
}

int config_load_file(TrainConfig* cfg, const char* path, char* err, size_t errlen) {
    FILE* f = fopen(path, "r");
    if (!f) return errorf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
    char* text = malloc(CONFIG_FILE_MAX + 1);
    size_t len = text ? fread(text, 1, CONFIG_FILE_MAX + 1, f) : 0;
    int rc = 0;
    if (!text) rc = errorf(err, errlen, "out of memory reading config file %s", path);
    else if (ferror(f)) rc = errorf(err, errlen, "error reading config file %s: %s", path, strerror(errno));
    else if (len > CONFIG_FILE_MAX)
        rc = errorf(err, errlen, "config file %s is larger than %d bytes (not a config file?)", path, CONFIG_FILE_MAX);
    fclose(f);
    if (rc == 0) rc = config_load_text(cfg, text, len, path, err, errlen);
    free(text);
    return rc;
}

#define OVERRIDE_ORIGIN "override --"

/* One key set twice on the command line is refused, as in a file: which of the two
 * was meant cannot be known. */
static int set_override(TrainConfig* cfg, const KeyInfo* k, const char* arg, const char* value, char* err,
                        size_t errlen) {
    if (strncmp(cfg->origin[k - KEYS], OVERRIDE_ORIGIN, strlen(OVERRIDE_ORIGIN)) == 0)
        return errorf(err, errlen, "override '%s': key '%s' is set twice on the command line", arg, k->name);
    char where[160];
    snprintf(where, sizeof where, OVERRIDE_ORIGIN "%s", k->name);
    return set_value(cfg, k, value, where, err, errlen);
}

int config_apply_override(TrainConfig* cfg, const char* arg, char* err, size_t errlen) {
    if (strncmp(arg, "--", 2) != 0) return errorf(err, errlen, "override '%s': expected --key=value", arg);
    char where[160];
    snprintf(where, sizeof where, "override '%.128s'", arg);
    const char* eq = strchr(arg, '=');
    if (!eq) {  /* a bare --flag sets a bool key to true */
        const KeyInfo* k = find_key(arg + 2);
        if (!k) return unknown_key(where, arg + 2, err, errlen);
        if (k->type != KEY_BOOL) return errorf(err, errlen, "override '%s': expected --key=value", arg);
        return set_override(cfg, k, arg, "true", err, errlen);
    }
    char key[128];
    size_t n = (size_t)(eq - arg - 2);
    if (n >= sizeof key) return errorf(err, errlen, "override '%s': key too long", arg);
    memcpy(key, arg + 2, n);
    key[n] = 0;
    const KeyInfo* k = find_key(key);
    if (!k) return unknown_key(where, key, err, errlen);
    return set_override(cfg, k, arg, eq + 1, err, errlen);
}

int config_wants_help(int argc, char** argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* A directory key whose path exists as something else (a file), or runs through
 * a file, is the config's mistake: said with the key before anything is prepared. */
static int check_dir_key(const TrainConfig* cfg, const char* name, char* err, size_t errlen) {
    const KeyInfo* k = find_key(name);
    const char* path = (const char*)cfg + k->offset;
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return 0;
        return errorf(err, errlen, "%s: key '%s' = %s is a file, expected a directory", cfg->origin[k - KEYS], name,
                      path);
    }
    if (errno == ENOTDIR)
        return errorf(err, errlen, "%s: key '%s' = %s: a part of the path is a file, expected directories",
                      cfg->origin[k - KEYS], name, path);
    return 0;
}

int config_from_args(TrainConfig* cfg, int argc, char** argv, char* err, size_t errlen) {
    config_defaults(cfg);
    if (argc < 2) return errorf(err, errlen, "no config file given");
    if (config_load_file(cfg, argv[1], err, errlen) != 0) return -1;
    for (int i = 2; i < argc; i++)
        if (config_apply_override(cfg, argv[i], err, errlen) != 0) return -1;
    if (config_validate(cfg, err, errlen) != 0) return -1;
    if (check_dir_key(cfg, "out_dir", err, errlen) != 0 || check_dir_key(cfg, "data_dir", err, errlen) != 0) return -1;
    return 0;
}

int config_validate(TrainConfig* cfg, char* err, size_t errlen) {
    char a[CONFIG_ORIGIN_MAX + 96], b[CONFIG_ORIGIN_MAX + 96];
#define DESCRIBE(buf, key) described(cfg, key, buf, sizeof buf)
    if (cfg->n_embd % cfg->n_head != 0)
        return errorf(err, errlen, "%s must be divisible by %s", DESCRIBE(a, "n_embd"), DESCRIBE(b, "n_head"));
    if (cfg->pos_encoding == POS_SINUSOIDAL && cfg->n_embd % 2 != 0)
        return errorf(err, errlen, "pos_encoding = sinusoidal (%s) needs an even n_embd, got %s",
                    cfg->origin[find_key("pos_encoding") - KEYS], DESCRIBE(a, "n_embd"));
    if (cfg->pos_encoding == POS_ROPE && (cfg->n_embd / cfg->n_head) % 2 != 0)
        return errorf(err, errlen, "pos_encoding = rope (%s) turns pairs of a head's channels: the head size "
                    "n_embd / n_head must be even, got %s / %s", cfg->origin[find_key("pos_encoding") - KEYS],
                    DESCRIBE(a, "n_embd"), DESCRIBE(b, "n_head"));
    if (cfg->embed_rank >= cfg->n_embd)
        return errorf(err, errlen, "%s must be less than %s: E = A B factorises E through r < n_embd dimensions",
                      DESCRIBE(a, "embed_rank"), DESCRIBE(b, "n_embd"));
    if (cfg->embed_rank > 0 && cfg->embed_init[0])
        return errorf(err, errlen, "embed_init = %s (%s) gives a whole E, but %s trains E's factors A and B: "
                      "use one of the two", cfg->embed_init, cfg->origin[find_key("embed_init") - KEYS],
                      DESCRIBE(a, "embed_rank"));
    if (cfg->min_lr > cfg->learning_rate)
        return errorf(err, errlen, "%s must not exceed %s", DESCRIBE(a, "min_lr"), DESCRIBE(b, "learning_rate"));
    if (cfg->warmup_iters > cfg->lr_decay_iters)
        return errorf(err, errlen, "%s must not exceed %s", DESCRIBE(a, "warmup_iters"), DESCRIBE(b, "lr_decay_iters"));
    if (cfg->batch_size % cfg->batch_groups != 0)
        return errorf(err, errlen, "%s must be divisible by %s", DESCRIBE(a, "batch_size"), DESCRIBE(b, "batch_groups"));
#undef DESCRIBE
    if (cfg->input[0] == 0)
        return errorf(err, errlen, "%s: key 'input' is empty: name a text file to train on", cfg->origin[find_key("input") - KEYS]);
    if (cfg->out_dir[0] == 0) return errorf(err, errlen, "%s: key 'out_dir' is empty", cfg->origin[find_key("out_dir") - KEYS]);
    if (cfg->data_dir[0] == 0) return errorf(err, errlen, "%s: key 'data_dir' is empty", cfg->origin[find_key("data_dir") - KEYS]);
    /* As in "Attention Is All You Need", E is scaled by sqrt(n_embd) before fixed
     * sinusoids are added: E starts at N(0, 0.02) while the sinusoids have amplitude 1,
     * so unscaled they swamp the tokens. Measured with a PyTorch GPT on the default
     * config: sinusoidal with scale 1 reaches val 2.29-2.38 at step 2000, with
     * sqrt(n_embd) 1.93; learned positions (scale 1) 1.89. */
    if (cfg->embed_scale == 0.0)
        cfg->embed_scale = cfg->pos_encoding == POS_SINUSOIDAL ? sqrt((double)cfg->n_embd) : 1.0;
    return 0;
}

static void format_value(const TrainConfig* cfg, const KeyInfo* k, char* out, size_t len) {
    const char* field = (const char*)cfg + k->offset;
    switch (k->type) {
    case KEY_INT: snprintf(out, len, "%d", *(const int*)field); break;
    case KEY_FLOAT:
    case KEY_SCALE: snprintf(out, len, "%.17g", *(const double*)field); break;
    case KEY_BOOL: snprintf(out, len, "%s", *(const int*)field ? "true" : "false"); break;
    case KEY_STRING: {
        int q = quote_for(field);
        if (q > 0) snprintf(out, len, "%c%s%c", q, field, q);
        else snprintf(out, len, "%s", field);
        break;
    }
    case KEY_ENUM: {
        const char* c = k->choices;
        for (int i = 0; i < *(const int*)field; i++) c += strcspn(c, "|") + 1;
        snprintf(out, len, "%.*s", (int)strcspn(c, "|"), c);
        break;
    }
    }
}

void config_write(const TrainConfig* cfg, FILE* f) {
    char value[CONFIG_STR_MAX + 32];
    fprintf(f, "# fully resolved configuration of this run: ./train this_file --out_dir=NEW repeats it\n");
    for (int i = 0; i < NUM_KEYS; i++) {
        if (KEYS[i].offset == OFF(resume) || KEYS[i].offset == OFF(overwrite) ||
            KEYS[i].offset == OFF(allow_data_change))
            continue;  /* config.h says why */
        format_value(cfg, &KEYS[i], value, sizeof value);
        fprintf(f, "%s = %s\n", KEYS[i].name, value);
    }
}

void config_print_help(FILE* f) {
    static const char* TYPE_NAMES[] = {"int", "float", "bool", "string", "choice", "float|auto"};
    fprintf(f, "%-15s %-10s %-26s %-16s %s\n", "key", "type", "default", "range", "meaning");
    for (int i = 0; i < NUM_KEYS; i++) {
        const KeyInfo* k = &KEYS[i];
        char range[96] = "";
        if (k->type == KEY_INT || k->type == KEY_FLOAT || k->type == KEY_SCALE) range_text(k, range, sizeof range);
        else if (k->type == KEY_ENUM) snprintf(range, sizeof range, "%s", k->choices);
        else if (k->type == KEY_BOOL) snprintf(range, sizeof range, "true|false");
        fprintf(f, "%-15s %-10s %-26s %-16s %s\n", k->name, TYPE_NAMES[k->type], k->default_value, range, k->help);
    }
}

int config_check_vocab(const TrainConfig* cfg, int vocab_size, char* err, size_t errlen) {
    char a[CONFIG_ORIGIN_MAX + 96];
    if (cfg->embed_rank >= vocab_size)
        return errorf(err, errlen, "%s must be less than the vocabulary's %d tokens: E = A B factorises E through "
                      "r < vocab_size dimensions", described(cfg, "embed_rank", a, sizeof a), vocab_size);
    return 0;
}

GPTConfig config_model(const TrainConfig* cfg, int vocab_size) {
    GPTConfig m = {
        .vocab_size = vocab_size,
        .block_size = cfg->block_size,
        .n_layer = cfg->n_layer,
        .n_head = cfg->n_head,
        .n_embd = cfg->n_embd,
        .pos_encoding = (PosEncoding)cfg->pos_encoding,
        .embed_scale = (float)cfg->embed_scale,
        .tie_weights = cfg->tie_weights,
        .bias = cfg->bias,
        .dropout = (float)cfg->dropout,
        .embed_init_std = (float)cfg->embed_init_std,
        .embed_dropout = (float)cfg->embed_dropout,
        .embed_rank = cfg->embed_rank,
    };
    return m;
}
