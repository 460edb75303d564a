/* checkpoint.c: model checkpoints in Hugging Face's GPT-2 layout, and the
 * training state for resume, both as safetensors (see checkpoint.h).
 * Not here: the safetensors format itself (safetensors.c), when to save (train.c). */
#include "formats/checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt/memory.h"
#include "kernels/layernorm.h"
#include "formats/safetensors.h"

#define MODEL_FORMAT "pt"                     /* transformers refuses files without it */
#define STATE_FORMAT "emergent-train-state"
#define STATE_VERSION "2"                     /* 2: the data's hashes, the header checksum */
#define TOKENIZER_HASH_KEY "emergent.tokenizer_fnv1a64"

/* ------------------------------------------------------------------------- */
/* names and layouts: each row of PARAM_TABLE (model.h) carries GPT-2's       */

/* A bias: exported as zeros when the model has none, as GPT-2 loaders expect one. */
static int is_bias(const ParamTensorInfo* t) { return t->spec->present == IF_BIAS; }

/* The shape of one layer's slice of t as this project stores it, absent or not. */
static int slice_shape(const ParamTensorInfo* t, int64_t shape[2]) {
    shape[0] = t->slice[0];
    shape[1] = t->slice[1];
    return t->ndim;
}

/* The row of E, the token embedding, or of its factor A (V, r) with embed_rank:
 * its shape comes first when loading. */
static const ParamSpec* embedding_row(int embed_rank) {
    size_t field = embed_rank ? offsetof(ParameterTensors, wte_a) : offsetof(ParameterTensors, wte);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        if (PARAM_TABLE[i].field == field) return &PARAM_TABLE[i];
    return NULL;
}

static size_t count(int ndim, const int64_t shape[2]) { return (size_t)shape[0] * (ndim > 1 ? (size_t)shape[1] : 1); }

/* Whether the file is a GPT-2 checkpoint that transformers reproduces exactly. */
static int gpt2_compatible(const GPTConfig* c) {
    return c->pos_encoding == POS_LEARNED && c->embed_scale == 1.0f && c->embed_rank == 0;
}

/* ------------------------------------------------------------------------- */
/* the model config in metadata                                             */

typedef struct { char key[32]; char value[64]; } MetaPair;
/* The last, embed_rank, is written only when it is not 0: a file without it is a
 * model with E as one tensor, as every file before the factorisation. */
enum { MODEL_META = 10, META_EMBED_RANK = 9 };

static void model_meta(const GPTConfig* c, MetaPair out[MODEL_META]) {
    const char* keys[MODEL_META] = {"vocab_size", "block_size", "n_layer", "n_head", "n_embd",
                                    "pos_encoding", "embed_scale", "tie_weights", "bias", "embed_rank"};
    for (int i = 0; i < MODEL_META; i++) snprintf(out[i].key, sizeof out[i].key, "emergent.%s", keys[i]);
    snprintf(out[0].value, sizeof out[0].value, "%d", c->vocab_size);
    snprintf(out[1].value, sizeof out[1].value, "%d", c->block_size);
    snprintf(out[2].value, sizeof out[2].value, "%d", c->n_layer);
    snprintf(out[3].value, sizeof out[3].value, "%d", c->n_head);
    snprintf(out[4].value, sizeof out[4].value, "%d", c->n_embd);
    snprintf(out[5].value, sizeof out[5].value, "%s", POS_ENCODING_NAMES[c->pos_encoding]);
    snprintf(out[6].value, sizeof out[6].value, "%.9g", c->embed_scale);
    snprintf(out[7].value, sizeof out[7].value, "%s", c->tie_weights ? "true" : "false");
    snprintf(out[8].value, sizeof out[8].value, "%s", c->bias ? "true" : "false");
    snprintf(out[9].value, sizeof out[9].value, "%d", c->embed_rank);
}

/* A file's metadata value of key, with embed_rank's "0" when the file has none. */
static const char* meta_value(const StFile* f, const MetaPair* pair) {
    const char* have = st_meta(f, pair->key);
    return !have && strcmp(pair->key, "emergent.embed_rank") == 0 ? "0" : have;
}

static int add_model_meta(StWriter* w, const GPTConfig* c) {
    MetaPair meta[MODEL_META];
    model_meta(c, meta);
    for (int i = 0; i < MODEL_META; i++)
        if ((i != META_EMBED_RANK || c->embed_rank != 0) && st_add_meta(w, meta[i].key, meta[i].value) != 0) return -1;
    return 0;
}

static int parse_int(const char* s, long lo, long hi, long* out) {
    if (!s || !*s) return -1;
    char* end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_u64(const char* s, int base, uint64_t* out) {
    if (!s || !*s || *s == '-') return -1;
    char* end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char* s, double* out) {
    if (!s || !*s) return -1;
    char* end;
    errno = 0;
    *out = strtod(s, &end);
    return *end || errno == ERANGE ? -1 : 0;
}

/* The model config from a file's metadata, every value checked (the file may come
 * from anywhere). */
static int config_from_meta(const StFile* f, const char* path, GPTConfig* c, char* err, size_t errlen) {
    static const struct { const char* key; long lo, hi; } INTS[] = {
        {"emergent.vocab_size", 1, 65536}, {"emergent.block_size", 1, 65536}, {"emergent.n_layer", 1, 256},
        {"emergent.n_head", 1, 256}, {"emergent.n_embd", 1, 16384}};
    long v[5];
    for (int i = 0; i < 5; i++)
        if (parse_int(st_meta(f, INTS[i].key), INTS[i].lo, INTS[i].hi, &v[i]) != 0)
            return errorf(err, errlen, "%s: metadata %s is %s%s%s, expected an integer in [%ld, %ld]", path, INTS[i].key,
                        st_meta(f, INTS[i].key) ? "'" : "missing", st_meta(f, INTS[i].key) ? st_meta(f, INTS[i].key) : "",
                        st_meta(f, INTS[i].key) ? "'" : "", INTS[i].lo, INTS[i].hi);
    memset(c, 0, sizeof(*c));
    c->vocab_size = (int)v[0]; c->block_size = (int)v[1]; c->n_layer = (int)v[2];
    c->n_head = (int)v[3]; c->n_embd = (int)v[4];
    if (c->n_embd % c->n_head != 0)
        return errorf(err, errlen, "%s: n_embd %d is not divisible by n_head %d", path, c->n_embd, c->n_head);
    const char* pos = st_meta(f, "emergent.pos_encoding");
    const char* tie = st_meta(f, "emergent.tie_weights");
    const char* bias = st_meta(f, "emergent.bias");
    double scale;
    int pos_index = -1;
    for (int i = 0; i < NUM_POS_ENCODINGS && pos; i++)
        if (strcmp(pos, POS_ENCODING_NAMES[i]) == 0) pos_index = i;
    if (pos_index < 0)
        return errorf(err, errlen, "%s: metadata emergent.pos_encoding must be learned, sinusoidal, none or rope", path);
    /* (0, 1e6], the config's range: a larger double would be an infinite float */
    if (parse_double(st_meta(f, "emergent.embed_scale"), &scale) != 0 || !(scale > 0) || !(scale <= 1e6))
        return errorf(err, errlen, "%s: metadata emergent.embed_scale is %s, expected a number in (0, 1e6]", path,
                    st_meta(f, "emergent.embed_scale") ? st_meta(f, "emergent.embed_scale") : "missing");
    if (!tie || (strcmp(tie, "true") && strcmp(tie, "false")) || !bias || (strcmp(bias, "true") && strcmp(bias, "false")))
        return errorf(err, errlen, "%s: metadata emergent.tie_weights and emergent.bias must be true or false", path);
    c->pos_encoding = (PosEncoding)pos_index;
    if (c->pos_encoding == POS_SINUSOIDAL && c->n_embd % 2)
        return errorf(err, errlen, "%s: sinusoidal positions need an even n_embd, got %d", path, c->n_embd);
    if (c->pos_encoding == POS_ROPE && (c->n_embd / c->n_head) % 2)
        return errorf(err, errlen, "%s: rotary positions need an even head size, got %d / %d", path, c->n_embd,
                    c->n_head);
    c->embed_scale = (float)scale;
    c->tie_weights = strcmp(tie, "true") == 0;
    c->bias = strcmp(bias, "true") == 0;
    /* E = A B needs a rank below both of E's dimensions; absent: E is one tensor */
    const char* rank = st_meta(f, "emergent.embed_rank");
    long least = c->vocab_size < c->n_embd ? c->vocab_size : c->n_embd, r = 0;
    if (rank && parse_int(rank, 0, least - 1, &r) != 0)
        return errorf(err, errlen, "%s: metadata emergent.embed_rank is '%s', expected an integer in [0, %ld) "
                      "(less than vocab_size %d and n_embd %d)", path, rank, least, c->vocab_size, c->n_embd);
    c->embed_rank = (int)r;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* model.safetensors + config.json + tokenizer.bin                          */

static int write_config_json(const char* path, const GPTConfig* c, long step, uint64_t tokenizer_hash, char* err,
                             size_t errlen) {
    char text[2048];
    int n = snprintf(text, sizeof text,
        "{\n"
        "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
        "  \"model_type\": \"gpt2\",\n"
        "  \"vocab_size\": %d,\n  \"n_positions\": %d,\n  \"n_ctx\": %d,\n"
        "  \"n_embd\": %d,\n  \"n_layer\": %d,\n  \"n_head\": %d,\n  \"n_inner\": null,\n"
        "  \"activation_function\": \"gelu_new\",\n"
        "  \"layer_norm_epsilon\": %g,\n  \"initializer_range\": 0.02,\n"
        "  \"resid_pdrop\": %g,\n  \"embd_pdrop\": %g,\n  \"attn_pdrop\": %g,\n"
        "  \"scale_attn_weights\": true,\n  \"use_cache\": true,\n"
        "  \"tie_word_embeddings\": %s,\n"
        "  \"bos_token_id\": null,\n  \"eos_token_id\": null,\n  \"torch_dtype\": \"float32\",\n"
        "  \"emergent_gpt2_compatible\": %s,\n"
        "  \"emergent_pos_encoding\": \"%s\",\n  \"emergent_embed_scale\": %.9g,\n  \"emergent_bias\": %s,\n"
        "  \"emergent_embed_rank\": %d,\n"
        "  \"emergent_step\": %ld,\n"
        "  \"emergent_tokenizer_fnv1a64\": \"%016llx\"\n"
        "}\n",
        c->vocab_size, c->block_size, c->block_size, c->n_embd, c->n_layer, c->n_head, (double)LAYERNORM_EPS,
        c->dropout, c->dropout, c->dropout, c->tie_weights ? "true" : "false",
        gpt2_compatible(c) ? "true" : "false", POS_ENCODING_NAMES[c->pos_encoding],
        c->embed_scale, c->bias ? "true" : "false", c->embed_rank, step, (unsigned long long)tokenizer_hash);
    if (n < 0 || (size_t)n >= sizeof text) return errorf(err, errlen, "%s: config text too long", path);
    return write_file_checked(path, text, (size_t)n, err, errlen);
}

int checkpoint_save_model(const char* dir, const GPT* m, const unsigned char* tokenizer_file,
                          size_t tokenizer_len, long step, float val_loss, char* err, size_t errlen) {
    const GPTConfig* c = &m->config;
    char path[4096], name[128], value[64];
    if (make_dirs_checked(dir, err, errlen) != 0) return -1;
    StWriter* w = st_writer_new();
    /* the exported copies: transposed matrices, and zeros for absent biases */
    size_t zeros = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const ParamTensorInfo* t = &m->tensors[i];
        if (is_bias(t) && t->size == 0) zeros += (size_t)t->layers * t->slice[0];
    }
    float* arena = calloc(m->num_params + zeros + 1, sizeof(float));
    if (!w || !arena) { st_writer_free(w); free(arena); return errorf(err, errlen, "%s: out of memory", dir); }
    float* next = arena;
    uint64_t tokenizer_hash = fnv1a64(tokenizer_file, tokenizer_len);
    int rc = st_add_meta(w, "format", MODEL_FORMAT) | add_model_meta(w, c);
    snprintf(value, sizeof value, "%ld", step);
    rc |= st_add_meta(w, "emergent.step", value);
    snprintf(value, sizeof value, "%.9g", val_loss);
    rc |= st_add_meta(w, "emergent.val_loss", value);
    /* which tokenizer.bin belongs to these weights: another one decodes other text */
    snprintf(value, sizeof value, "%016llx", (unsigned long long)tokenizer_hash);
    rc |= st_add_meta(w, TOKENIZER_HASH_KEY, value);

    for (int i = 0; i < NUM_PARAM_TENSORS && rc == 0; i++) {
        const ParamTensorInfo* t = &m->tensors[i];
        /* absent and not exported: fixed positions, a tied head (GPT-2 ties it on load) */
        if (t->size == 0 && !is_bias(t)) continue;
        int64_t shape[2], out_shape[2];
        int ndim = slice_shape(t, shape);
        size_t n = count(ndim, shape);
        for (int l = 0; l < t->layers && rc == 0; l++) {
            const float* src = t->size ? m->params_memory + t->offset + (size_t)l * n : NULL;
            const float* data = src;
            out_shape[0] = shape[0]; out_shape[1] = ndim > 1 ? shape[1] : 0;
            if (!src) { data = next; next += n; }  /* bias = 0: GPT-2 loaders expect zeros */
            else if (t->spec->hf_transpose) {
                float* tr = next;
                next += n;
                for (int64_t r = 0; r < shape[0]; r++)
                    for (int64_t k = 0; k < shape[1]; k++) tr[k * shape[0] + r] = src[r * shape[1] + k];
                out_shape[0] = shape[1]; out_shape[1] = shape[0];
                data = tr;
            }
            snprintf(name, sizeof name, t->spec->hf_name, l);
            rc |= st_add_f32(w, name, ndim, out_shape, data);
        }
    }
    if (rc != 0) errorf(err, errlen, "%s: cannot assemble the checkpoint (out of memory)", dir);
    snprintf(path, sizeof path, "%s/%s", dir, CHECKPOINT_MODEL_FILE);
    if (rc == 0) rc = st_write(w, path, err, errlen);
    st_writer_free(w);
    free(arena);
    if (rc != 0) return -1;
    snprintf(path, sizeof path, "%s/%s", dir, CHECKPOINT_CONFIG_FILE);
    if (write_config_json(path, c, step, tokenizer_hash, err, errlen) != 0) return -1;
    snprintf(path, sizeof path, "%s/%s", dir, CHECKPOINT_TOKENIZER_FILE);
    return write_file_checked(path, tokenizer_file, tokenizer_len, err, errlen);
}

/* All zeros? (a bias the file holds for GPT-2's sake while bias = false) */
static int all_zero(const float* x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f) return 0;
    return 1;
}

int checkpoint_load_model(const char* dir, GPT* m, int max_batch, Tokenizer** tokenizer, long* step,
                          char* err, size_t errlen) {
    char path[4096], name[128];
    snprintf(path, sizeof path, "%s/%s", dir, CHECKPOINT_MODEL_FILE);
    StFile f;
    if (st_load(&f, path, err, errlen) != 0) return -1;
    GPTConfig c;
    long saved_step = 0;
    if (config_from_meta(&f, path, &c, err, errlen) != 0) { st_free(&f); return -1; }
    if (parse_int(st_meta(&f, "emergent.step"), 0, 2147483647L, &saved_step) != 0) {
        st_free(&f);
        return errorf(err, errlen, "%s: metadata emergent.step is missing or not a step number", path);
    }
    /* the embedding's shape must be in the file before anything is allocated for it:
     * E (V, C), or its factor A (V, r) with embed_rank */
    const char* wte_name = embedding_row(c.embed_rank)->hf_name;
    int wte_cols = c.embed_rank ? c.embed_rank : c.n_embd;
    const StTensor* wte = st_find(&f, wte_name);
    if (!wte || wte->ndim != 2 || wte->shape[0] != c.vocab_size || wte->shape[1] != wte_cols) {
        st_free(&f);
        return errorf(err, errlen, "%s: %s is missing or not [%d, %d] as the metadata says", path, wte_name,
                    c.vocab_size, wte_cols);
    }
    /* and the file must hold every parameter the metadata describes before the model
     * is allocated: a small file must not make this allocate (and initialise) gigabytes */
    MemoryEstimate need = gpt_memory_estimate(&c, 0, 1);
    size_t have = f.len - f.data_start;
    if (need.params > have) {
        st_free(&f);
        return errorf(err, errlen, "%s: the metadata describes a model of %zu parameters (%zu bytes: vocab_size %d, "
                    "block_size %d, n_layer %d, n_embd %d), but the file's tensors hold only %zu bytes", path,
                    need.params / sizeof(float), need.params, c.vocab_size, c.block_size, c.n_layer, c.n_embd, have);
    }
    uint64_t tokenizer_hash = 0;
    if (parse_u64(st_meta(&f, TOKENIZER_HASH_KEY), 16, &tokenizer_hash) != 0) {
        st_free(&f);
        return errorf(err, errlen, "%s: metadata %s is missing or not a hex number: the model does not say which "
                      "tokenizer it was trained with", path, TOKENIZER_HASH_KEY);
    }
    gpt_build(m, &c, max_batch, 0);
    int used = 0, rc = 0;
    /* room for the widest slice read through it: a transposed matrix, or an absent bias to check */
    size_t widest = 1;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const ParamTensorInfo* t = &m->tensors[i];
        int64_t shape[2];
        size_t n = count(slice_shape(t, shape), shape);
        if ((t->spec->hf_transpose || (t->size == 0 && is_bias(t))) && n > widest) widest = n;
    }
    float* buf = xmalloc(widest * sizeof(float), "checkpoint buffer");
    for (int i = 0; i < NUM_PARAM_TENSORS && rc == 0; i++) {
        const ParamTensorInfo* t = &m->tensors[i];
        if (t->size == 0 && !is_bias(t)) {
            /* a tied copy of E under the head's name: GPT-2 files may hold one */
            if (t->spec->present == IF_UNTIED && st_find(&f, t->spec->hf_name)) used++;
            continue;
        }
        int64_t shape[2], file_shape[2];
        int ndim = slice_shape(t, shape);
        size_t n = count(ndim, shape);
        for (int l = 0; l < t->layers && rc == 0; l++) {
            snprintf(name, sizeof name, t->spec->hf_name, l);
            int tr = t->spec->hf_transpose;
            file_shape[0] = tr ? shape[1] : shape[0];
            file_shape[1] = tr ? shape[0] : (ndim > 1 ? shape[1] : 0);
            if (t->size == 0) {  /* bias = false: GPT-2's zeros may be there; they must be zeros */
                if (!st_find(&f, name)) continue;
                used++;
                rc = st_read_f32(&f, name, buf, ndim, file_shape, err, errlen);
                if (rc == 0 && !all_zero(buf, n))
                    rc = errorf(err, errlen, "%s: %s is not zero, but the model has bias = false", path, name);
                continue;
            }
            used++;
            float* dst = m->params_memory + t->offset + (size_t)l * n;
            rc = st_read_f32(&f, name, tr ? buf : dst, ndim, file_shape, err, errlen);
            if (rc == 0 && tr)
                for (int64_t r = 0; r < shape[0]; r++)
                    for (int64_t k = 0; k < shape[1]; k++) dst[r * shape[1] + k] = buf[k * shape[0] + r];
        }
    }
    free(buf);
    if (rc == 0 && used != f.n_tensors)  /* e.g. a 6-layer file whose metadata says 4 */
        for (int k = 0; k < f.n_tensors && rc == 0; k++) {
            int known = 0;
            for (int i = 0; i < NUM_PARAM_TENSORS && !known; i++)
                for (int l = 0; l < m->tensors[i].layers && !known; l++) {
                    snprintf(name, sizeof name, PARAM_TABLE[i].hf_name, l);
                    known = strcmp(name, f.tensors[k].name) == 0;
                }
            if (!known) rc = errorf(err, errlen, "%s: unexpected tensor %s for this model config", path, f.tensors[k].name);
        }
    st_free(&f);
    if (rc == 0) gpt_sync_embedding(m);  /* E = A B of the factors just read */
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/%s", dir, CHECKPOINT_TOKENIZER_FILE);
        uint64_t file_hash = 0;
        *tokenizer = tokenizer_load(path, &file_hash, err, errlen);
        if (!*tokenizer) rc = -1;
        else if (file_hash != tokenizer_hash) {
            rc = errorf(err, errlen, "%s: not the tokenizer this model was trained with: the file (%s, %d tokens) hashes "
                      "to %016llx, %s/%s records %016llx (%s): copy the run's own %s beside the model", path,
                      tokenizer_describe(*tokenizer), tokenizer_vocab_size(*tokenizer), (unsigned long long)file_hash,
                      dir, CHECKPOINT_MODEL_FILE, (unsigned long long)tokenizer_hash, TOKENIZER_HASH_KEY,
                      CHECKPOINT_TOKENIZER_FILE);
            tokenizer_free(*tokenizer);
            *tokenizer = NULL;
        } else if (tokenizer_vocab_size(*tokenizer) != c.vocab_size) {
            rc = errorf(err, errlen, "%s: vocabulary of %d tokens, but the model's is %d", path,
                      tokenizer_vocab_size(*tokenizer), c.vocab_size);
            tokenizer_free(*tokenizer);
            *tokenizer = NULL;
        }
    }
    if (rc != 0) { gpt_free(m); return -1; }
    *step = saved_step;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* train_state.safetensors                                                  */

/* The state's tensors, the one list both save and load walk: every present
 * parameter tensor under its own name, then its AdamW moments as adam_m.NAME and
 * adam_v.NAME, each in its full shape (layers stacked first). */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[3];
    float* data;
} StateTensor;
enum { MAX_STATE_TENSORS = 3 * NUM_PARAM_TENSORS };

static int state_tensors(const GPT* m, const AdamW* opt, StateTensor out[MAX_STATE_TENSORS]) {
    const char* prefix[3] = {"", "adam_m.", "adam_v."};
    float* base[3] = {m->params_memory, opt->m, opt->v};
    int n = 0;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
            const ParamTensorInfo* t = &m->tensors[i];
            if (t->size == 0) continue;
            StateTensor* s = &out[n++];
            snprintf(s->name, sizeof s->name, "%s%s", prefix[k], t->name);
            s->ndim = 0;
            for (int d = 0; d < 3 && t->shape[d]; d++) s->shape[s->ndim++] = t->shape[d];
            s->data = base[k] + t->offset;
        }
    return n;
}

TokenizerId tokenizer_id(const Tokenizer* t, const unsigned char* file, size_t len) {
    TokenizerId id;
    id.hash = fnv1a64(file, len);
    snprintf(id.description, sizeof id.description, "%s, %d tokens", tokenizer_describe(t), tokenizer_vocab_size(t));
    return id;
}

int checkpoint_save_state(const char* path, const GPT* m, const AdamW* opt, const TrainProgress* p,
                          const char* config_text, const TokenizerId* tok, const DataId* data, char* err,
                          size_t errlen) {
    StWriter* w = st_writer_new();
    if (!w) return errorf(err, errlen, "%s: out of memory", path);
    char value[64];
    int rc = st_add_meta(w, "format", STATE_FORMAT) | st_add_meta(w, "emergent.version", STATE_VERSION) |
             add_model_meta(w, &m->config) | st_add_meta(w, "emergent.config", config_text);
#define META(key, ...) (snprintf(value, sizeof value, __VA_ARGS__), st_add_meta(w, key, value))
    rc |= META("emergent.step", "%ld", p->step);
    rc |= META("emergent.adam_step", "%d", opt->step);
    rc |= META("emergent.val_loss", "%.9g", p->val_loss);         /* %.9g: a float exactly */
    rc |= META("emergent.best_val_loss", "%.9g", p->best_val_loss);
    /* %.17e: a double exactly, in a fixed width: where the data starts does not vary with the run's time */
    rc |= META("emergent.elapsed_s", "%.17e", p->elapsed_s);
    rc |= META("emergent.rng_state", "%llu", (unsigned long long)p->batch_rng.state);
    rc |= META("emergent.rng_inc", "%llu", (unsigned long long)p->batch_rng.inc);
    rc |= META(TOKENIZER_HASH_KEY, "%016llx", (unsigned long long)tok->hash);
    rc |= st_add_meta(w, "emergent.tokenizer", tok->description);
    rc |= META("emergent.text_fnv1a64", "%016llx", (unsigned long long)data->text);
    rc |= META("emergent.train_tokens_fnv1a64", "%016llx", (unsigned long long)data->train_tokens);
    rc |= META("emergent.val_tokens_fnv1a64", "%016llx", (unsigned long long)data->val_tokens);
#undef META
    StateTensor tensors[MAX_STATE_TENSORS];
    int n = state_tensors(m, opt, tensors);
    for (int i = 0; i < n && rc == 0; i++)
        rc |= st_add_f32(w, tensors[i].name, tensors[i].ndim, tensors[i].shape, tensors[i].data);
    if (rc != 0) { st_writer_free(w); return errorf(err, errlen, "%s: cannot assemble the training state", path); }
    rc = st_write(w, path, err, errlen);
    st_writer_free(w);
    return rc;
}

int checkpoint_load_state(const char* path, GPT* m, AdamW* opt, TrainProgress* p, const TokenizerId* tok,
                          DataId* data, char** config_text, char* err, size_t errlen) {
    StFile f;
    if (st_load(&f, path, err, errlen) != 0) return -1;
    int rc = 0;
    const char* format = st_meta(&f, "format");
    if (!format || strcmp(format, STATE_FORMAT) != 0 || !st_meta(&f, "emergent.version") ||
        strcmp(st_meta(&f, "emergent.version"), STATE_VERSION) != 0)
        rc = errorf(err, errlen, "%s: not a training state of this program (format %s, version %s; expected %s, %s)", path,
                  format ? format : "missing", st_meta(&f, "emergent.version") ? st_meta(&f, "emergent.version") : "missing",
                  STATE_FORMAT, STATE_VERSION);
    /* the tokenizer first: another tokenizer also changes vocab_size, and this says why */
    uint64_t saved_hash = 0;
    const char* saved_tok = st_meta(&f, "emergent.tokenizer");
    if (rc == 0 && (parse_u64(st_meta(&f, TOKENIZER_HASH_KEY), 16, &saved_hash) != 0 || saved_hash != tok->hash))
        rc = errorf(err, errlen, "%s: the run was trained with a different tokenizer (%s, file hash %s) than this config "
                  "prepares (%s, file hash %016llx): resume with the original tokenizer settings and text, or start "
                  "a new out_dir", path, saved_tok ? saved_tok : "unknown",
                  st_meta(&f, TOKENIZER_HASH_KEY) ? st_meta(&f, TOKENIZER_HASH_KEY) : "missing",
                  tok->description, (unsigned long long)tok->hash);
    /* the model the config builds must be the one the state was trained as */
    MetaPair want[MODEL_META];
    model_meta(&m->config, want);
    for (int i = 0; i < MODEL_META && rc == 0; i++) {
        const char* have = meta_value(&f, &want[i]);
        if (!have || strcmp(have, want[i].value) != 0)
            rc = errorf(err, errlen, "%s: the checkpoint has %s = %s, this config gives %s: resume needs the same model",
                      path, want[i].key + strlen("emergent."), have ? have : "(missing)", want[i].value);
    }
    long step = 0, adam_step = 0;
    double val = 0, best = 0, elapsed = 0;
    uint64_t state = 0, inc = 0;
    if (rc == 0 && (parse_int(st_meta(&f, "emergent.step"), 0, 2147483647L, &step) != 0 ||
                    parse_int(st_meta(&f, "emergent.adam_step"), 0, 2147483647L, &adam_step) != 0 ||
                    parse_double(st_meta(&f, "emergent.val_loss"), &val) != 0 ||
                    parse_double(st_meta(&f, "emergent.best_val_loss"), &best) != 0 ||
                    parse_double(st_meta(&f, "emergent.elapsed_s"), &elapsed) != 0 ||
                    parse_u64(st_meta(&f, "emergent.rng_state"), 10, &state) != 0 ||
                    parse_u64(st_meta(&f, "emergent.rng_inc"), 10, &inc) != 0 || !(inc & 1u)))
        rc = errorf(err, errlen, "%s: metadata step, adam_step, losses, elapsed_s or rng_* missing or malformed", path);
    DataId saved_data = {0};
    if (rc == 0 && (parse_u64(st_meta(&f, "emergent.text_fnv1a64"), 16, &saved_data.text) != 0 ||
                    parse_u64(st_meta(&f, "emergent.train_tokens_fnv1a64"), 16, &saved_data.train_tokens) != 0 ||
                    parse_u64(st_meta(&f, "emergent.val_tokens_fnv1a64"), 16, &saved_data.val_tokens) != 0))
        rc = errorf(err, errlen, "%s: metadata emergent.text_fnv1a64, emergent.train_tokens_fnv1a64 or "
                  "emergent.val_tokens_fnv1a64 missing or malformed", path);
    StateTensor tensors[MAX_STATE_TENSORS];
    int n = state_tensors(m, opt, tensors);
    for (int i = 0; i < n && rc == 0; i++)
        rc = st_read_f32(&f, tensors[i].name, tensors[i].data, tensors[i].ndim, tensors[i].shape, err, errlen);
    if (rc == 0) {
        const char* text = st_meta(&f, "emergent.config");
        *config_text = strdup(text ? text : "");
        if (!*config_text) rc = errorf(err, errlen, "%s: out of memory", path);
    }
    st_free(&f);
    if (rc != 0) return -1;
    gpt_sync_embedding(m);  /* E = A B of the factors just read */
    opt->step = (int)adam_step;
    *data = saved_data;
    p->step = step;
    p->val_loss = (float)val;
    p->best_val_loss = (float)best;
    p->elapsed_s = elapsed;
    p->batch_rng.state = state;
    p->batch_rng.inc = inc;
    return 0;
}
