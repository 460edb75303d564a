/* model.c: the GPT forward and backward passes, built from the kernels.
 *
 * The parameters live in one allocation (params_memory) that the struct
 * ParameterTensors points into, laid out by the table made in param_table();
 * gradients mirror it, so the optimizer and gradient clipping are single
 * loops over one array. Activations are laid out the same way.
 * Not here: the layer math (kernels), the optimizer (optim.c), file I/O.
 */
#include "model.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dropout.h"
#include "kernels/kernels.h"
#include "util/utils.h"

#define INIT_STD 0.02f  /* GPT-2 / nanoGPT */

/* ------------------------------------------------------------------------- */
/* parameter layout                                                          */

static void set_tensor(ParamTensorInfo* t, const char* name, int ndim, int d0, int d1, int d2,
                       float init_std, float init_const) {
    t->name = name;
    t->shape[0] = d0; t->shape[1] = d1; t->shape[2] = d2;
    t->size = (size_t)d0 * (d1 ? d1 : 1) * (d2 ? d2 : 1);
    t->ndim = ndim;
    t->decay = ndim >= 2;
    t->init_std = init_std;
    t->init_const = init_const;
}

/* Names follow the ParameterTensors fields; the order here is the memory order. */
static void param_table(ParamTensorInfo t[NUM_PARAM_TENSORS], const GPTConfig* c) {
    int V = c->vocab_size, C = c->n_embd, L = c->n_layer;
    /* the two projections that write into the residual stream are scaled down so
     * the stream's variance does not grow with depth (GPT-2) */
    float resid_std = INIT_STD / sqrtf(2.0f * L);
    int BL = c->bias ? L : 0, BC = c->bias ? C : 0;  /* bias tensors are absent when bias = 0 */
    set_tensor(&t[0], "wte", 2, V, C, 0, INIT_STD, 0);
    set_tensor(&t[1], "wpe", 2, c->pos_encoding == POS_LEARNED ? c->block_size : 0, C, 0, INIT_STD, 0);
    set_tensor(&t[2], "ln1w", 1, L, C, 0, 0, 1.0f);
    set_tensor(&t[3], "ln1b", 1, BL, C, 0, 0, 0);
    set_tensor(&t[4], "qkvw", 2, L, 3 * C, C, INIT_STD, 0);
    set_tensor(&t[5], "qkvb", 1, BL, 3 * C, 0, 0, 0);
    set_tensor(&t[6], "attprojw", 2, L, C, C, resid_std, 0);
    set_tensor(&t[7], "attprojb", 1, BL, C, 0, 0, 0);
    set_tensor(&t[8], "ln2w", 1, L, C, 0, 0, 1.0f);
    set_tensor(&t[9], "ln2b", 1, BL, C, 0, 0, 0);
    set_tensor(&t[10], "fcw", 2, L, 4 * C, C, INIT_STD, 0);
    set_tensor(&t[11], "fcb", 1, BL, 4 * C, 0, 0, 0);
    set_tensor(&t[12], "fcprojw", 2, L, C, 4 * C, resid_std, 0);
    set_tensor(&t[13], "fcprojb", 1, BL, C, 0, 0, 0);
    set_tensor(&t[14], "lnfw", 1, C, 0, 0, 0, 1.0f);
    set_tensor(&t[15], "lnfb", 1, BC, 0, 0, 0, 0);
    set_tensor(&t[16], "lm_head", 2, c->tie_weights ? 0 : V, C, 0, INIT_STD, 0);
    size_t offset = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) { t[i].offset = offset; offset += t[i].size; }
}

/* Point each field of ParameterTensors (in table order) into memory; absent
 * tensors get NULL, and a tied lm_head points at wte. */
static void point_params(ParameterTensors* p, float* memory, const ParamTensorInfo t[NUM_PARAM_TENSORS],
                         int tie_weights) {
    float** fields[NUM_PARAM_TENSORS] = {
        &p->wte, &p->wpe, &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->attprojw, &p->attprojb,
        &p->ln2w, &p->ln2b, &p->fcw, &p->fcb, &p->fcprojw, &p->fcprojb, &p->lnfw, &p->lnfb, &p->lm_head};
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) *fields[i] = t[i].size ? memory + t[i].offset : NULL;
    if (tie_weights) p->lm_head = p->wte;  /* the same memory: both paths write into dE */
}

/* ------------------------------------------------------------------------- */
/* activation layout                                                         */

/* The activation tensors in ActivationTensors' order, which is the order the
 * forward makes them within a block: `stacked` ones hold one slice per layer;
 * `width` is the floats per position (B*T positions); `grad`: the backward keeps a
 * gradient of it. The others get none: the statistics kept for the backward (means,
 * 1/std, softmax maxima and sums) and the losses are not differentiated through, and
 * the residual stream's gradient is one buffer, `encoded` (see gpt_backward). */
enum { W_1, W_2, W_C, W_3C, W_4C, W_HEADS2, W_V };
static const struct { const char* name; int stacked, width, grad; } ACTIVATION_INFO[NUM_ACTIVATION_TENSORS] = {
    {"encoded", 0, W_C, 1},   {"ln1", 1, W_C, 1},       {"ln1_mean", 1, W_1, 0}, {"ln1_rstd", 1, W_1, 0},
    {"qkv", 1, W_3C, 1},      {"atty", 1, W_C, 1},      {"att_stats", 1, W_HEADS2, 0},
    {"attproj", 1, W_C, 1},   {"residual2", 1, W_C, 0}, {"ln2", 1, W_C, 1},      {"ln2_mean", 1, W_1, 0},
    {"ln2_rstd", 1, W_1, 0},  {"fch", 1, W_4C, 1},      {"fch_gelu", 1, W_4C, 1}, {"fcproj", 1, W_C, 1},
    {"residual3", 1, W_C, 0}, {"lnf", 0, W_C, 1},       {"lnf_mean", 0, W_1, 0}, {"lnf_rstd", 0, W_1, 0},
    {"logits", 0, W_V, 1},    {"ce_stats", 0, W_2, 0},  {"losses", 0, W_1, 0}};
enum { ACT_RESIDUAL3 = 15 };

/* The three layouts of ActivationTensors: the activations of every block (for
 * gpt_backward); one block's, which a loss-only forward reuses block after block
 * (an evaluation lane, see gpt_mean_loss); and the gradients, one block's and no
 * residual2/residual3 (see point_activations). */
typedef enum { ACTS_ALL_BLOCKS, ACTS_ONE_BLOCK, GRADS_ONE_BLOCK } ActLayout;

/* Floats per activation tensor for a (B, T) batch in a layout: n_layer slices of
 * the stacked ones, or one. */
static void activation_sizes(size_t sizes[NUM_ACTIVATION_TENSORS], const GPTConfig* c, int B, int T,
                             ActLayout layout) {
    int gradients = layout == GRADS_ONE_BLOCK;
    size_t C = c->n_embd, L = layout == ACTS_ALL_BLOCKS ? c->n_layer : 1;
    size_t widths[] = {[W_1] = 1, [W_2] = 2, [W_C] = C, [W_3C] = 3 * C, [W_4C] = 4 * C,
                       [W_HEADS2] = 2 * (size_t)c->n_head, [W_V] = c->vocab_size};
    for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) {
        sizes[i] = gradients && !ACTIVATION_INFO[i].grad ? 0
                 : (ACTIVATION_INFO[i].stacked ? L : 1) * (size_t)B * T * widths[ACTIVATION_INFO[i].width];
    }
}

/* Point a's fields into memory in a layout for (B, block_size); the floats it
 * takes. The gradients are needed for one block at a time, and only of the tensors
 * marked `grad` above: the others get no memory and stay NULL. */
static size_t point_activations(ActivationTensors* a, float* memory, const GPTConfig* c, int B, ActLayout layout) {
    size_t sizes[NUM_ACTIVATION_TENSORS];
    activation_sizes(sizes, c, B, c->block_size, layout);
    float** fields[NUM_ACTIVATION_TENSORS] = {
        &a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->atty, &a->att_stats,
        &a->attproj, &a->residual2, &a->ln2, &a->ln2_mean, &a->ln2_rstd, &a->fch, &a->fch_gelu,
        &a->fcproj, &a->residual3, &a->lnf, &a->lnf_mean, &a->lnf_rstd, &a->logits, &a->ce_stats,
        &a->losses};
    size_t total = 0;
    for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) {
        if (memory) *fields[i] = sizes[i] ? memory + total : NULL;
        total += sizes[i];
    }
    return total;
}

/* The linear layers of a block, and the output layer (block index n_layer). */
typedef enum { LIN_QKV, LIN_ATTPROJ, LIN_FC, LIN_FCPROJ, NUM_BLOCK_LINEAR, LIN_HEAD = NUM_BLOCK_LINEAR } Linear;

/* in (C) and out (OC) features of a linear layer: its W is (OC, C) */
static void linear_shape(const GPTConfig* c, Linear which, int* in, int* out) {
    int C = c->n_embd;
    int shapes[][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}, {C, c->vocab_size}};
    *in = shapes[which][0];
    *out = shapes[which][1];
}

/* scratch holds the packed W^T of the forward's widest linear layer, the packed W
 * of the backward's, or attention's blocks for each of `threads` threads (one at a time) */
static size_t scratch_floats(const GPTConfig* c, int threads) {
    size_t need = (size_t)threads * attention_scratch_floats(c->block_size, c->n_embd, c->n_head);
    for (int w = 0; w <= LIN_HEAD; w++) {
        int in, out;
        linear_shape(c, (Linear)w, &in, &out);
        size_t fwd = matmul_scratch_floats(in, out), bwd = matmul_backward_scratch_floats(in, out);
        need = fwd > need ? fwd : need;
        need = bwd > need ? bwd : need;
    }
    return need;
}

/* The model's scratch: a pass's on `threads` threads, or for each of as many
 * evaluation lanes (gpt_mean_loss) a one-thread pass's */
static size_t model_scratch_floats(const GPTConfig* c, int threads) {
    size_t pass = scratch_floats(c, threads), lanes = (size_t)threads * scratch_floats(c, 1);
    return pass > lanes ? pass : lanes;
}

/* Each thread's inputs and targets when gpt_mean_loss runs lanes: (max_batch, block_size) ids each */
static size_t lane_token_ints(const GPTConfig* c, int max_batch, int threads) {
    return (size_t)threads * 2 * max_batch * c->block_size;
}

/* How the threads run `groups` batch groups: `lanes` groups side by side, `inner`
 * threads on each (threads left over when lanes does not divide them stay idle). */
static void group_split(int groups, int* lanes, int* inner) {
    int threads = omp_get_max_threads();
    *lanes = groups < threads ? groups : threads;
    *inner = threads / *lanes;
}

/* Floats of the memory that batch groups beyond the first add: groups 1..'s
 * gradient copies, and every group's scratch. */
static size_t group_floats(const GPTConfig* c, size_t num_params, int groups) {
    if (groups <= 1) return 0;
    int lanes, inner;
    group_split(groups, &lanes, &inner);
    return (size_t)(groups - 1) * num_params + (size_t)groups * scratch_floats(c, inner);
}

MemoryEstimate gpt_memory_estimate(const GPTConfig* config, int max_batch, int batch_groups) {
    ParamTensorInfo t[NUM_PARAM_TENSORS];
    param_table(t, config);
    size_t num_params = t[NUM_PARAM_TENSORS - 1].offset + t[NUM_PARAM_TENSORS - 1].size;
    ActivationTensors unused;
    size_t num_acts = max_batch > 0 ? point_activations(&unused, NULL, config, max_batch, ACTS_ALL_BLOCKS) : 0;
    size_t num_dacts = max_batch > 0 ? point_activations(&unused, NULL, config, max_batch, GRADS_ONE_BLOCK) : 0;
    MemoryEstimate e = {
        .params = num_params * sizeof(float),
        .grads = num_params * sizeof(float),
        .adamw = 2 * num_params * sizeof(float),
        .groups = group_floats(config, num_params, batch_groups) * sizeof(float),
        .acts = num_acts * sizeof(float),
        .dacts = num_dacts * sizeof(float),
        .scratch = model_scratch_floats(config, omp_get_max_threads()) * sizeof(float)
                 + lane_token_ints(config, max_batch, omp_get_max_threads()) * sizeof(int),
    };
    e.total = e.params + e.grads + e.adamw + e.groups + e.acts + e.dacts + e.scratch;
    return e;
}

void gpt_memory_estimate_print(const MemoryEstimate* e, const char* extra_name, double extra_mb) {
    const double mb = BYTES_PER_MB;
    printf("memory estimate: %.1f MB = parameters %.1f + gradients %.1f + AdamW m,v %.1f + activations %.1f "
           "+ their gradients %.1f + scratch %.1f", e->total / mb + (extra_name ? extra_mb : 0.0),
           e->params / mb, e->grads / mb, e->adamw / mb, e->acts / mb, e->dacts / mb, e->scratch / mb);
    if (e->groups) printf(" + batch groups %.1f", e->groups / mb);
    if (extra_name) printf(" + %s %.1f", extra_name, extra_mb);
    printf("\n");
}

/* ------------------------------------------------------------------------- */
/* build / free                                                              */

void gpt_build(GPT* m, const GPTConfig* config, int max_batch, uint64_t seed) {
    memset(m, 0, sizeof(*m));
    m->config = *config;
    m->max_batch = max_batch;
    const GPTConfig* c = &m->config;
    int C = c->n_embd, T = c->block_size;

    param_table(m->tensors, c);
    m->num_params = m->tensors[NUM_PARAM_TENSORS - 1].offset + m->tensors[NUM_PARAM_TENSORS - 1].size;
    m->params_memory = xmalloc(m->num_params * sizeof(float), "parameters");
    m->grads_memory = xcalloc(m->num_params, sizeof(float), "parameter gradients");
    point_params(&m->params, m->params_memory, m->tensors, c->tie_weights);
    point_params(&m->grads, m->grads_memory, m->tensors, c->tie_weights);

    /* init in table order from one seeded stream, so the same seed gives the same model */
    Rng rng;
    rng_seed(&rng, seed, 0);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        float* p = m->params_memory + m->tensors[i].offset;
        for (size_t j = 0; j < m->tensors[i].size; j++)
            p[j] = m->tensors[i].init_std > 0 ? m->tensors[i].init_std * rng_normal(&rng)
                                              : m->tensors[i].init_const;
    }

    if (max_batch > 0) {  /* 0: generation only (KVCache), no batch activations */
        m->num_activations = point_activations(&m->acts, NULL, c, max_batch, ACTS_ALL_BLOCKS);
        m->num_dactivations = point_activations(&m->dacts, NULL, c, max_batch, GRADS_ONE_BLOCK);
        m->acts_memory = xmalloc(m->num_activations * sizeof(float), "activations");
        m->dacts_memory = xmalloc(m->num_dactivations * sizeof(float), "activation gradients");
        point_activations(&m->acts, m->acts_memory, c, max_batch, ACTS_ALL_BLOCKS);
        point_activations(&m->dacts, m->dacts_memory, c, max_batch, GRADS_ONE_BLOCK);
    }

    if (c->pos_encoding == POS_SINUSOIDAL) {
        m->pe_table = xmalloc((size_t)T * C * sizeof(float), "sinusoidal table");
        sinusoidal_table(m->pe_table, T, C);
    }
    m->scratch_threads = omp_get_max_threads();
    m->scratch = xmalloc(model_scratch_floats(c, m->scratch_threads) * sizeof(float), "scratch");
    m->lane_tokens = xmalloc((lane_token_ints(c, max_batch, m->scratch_threads) + 1) * sizeof(int), "lane tokens");
    m->inputs = xmalloc(((size_t)max_batch * T + 1) * sizeof(int), "inputs");
    m->targets = xmalloc(((size_t)max_batch * T + 1) * sizeof(int), "targets");
    m->mean_loss = -1.0f;
    m->batch_groups = 1;
    m->acts_groups = 1;
    gpt_eval_mode(m);
}

void gpt_train_mode(GPT* m, uint64_t seed, long step) {
    m->training = 1;
    m->dropout_seed = seed;
    m->dropout_step = step;
}

void gpt_eval_mode(GPT* m) { m->training = 0; }

void gpt_set_batch_offset(GPT* m, long first_row) { m->batch_offset = first_row; }

/* The dropout probability and mask key of one site in the current mode. */
static float drop_p(const GPT* m) { return m->training ? m->config.dropout : 0.0f; }
/* first_row: the rows of this batch that come before the ones being computed
 * (a group of gpt_forward_backward), 0 for the whole batch. */
static uint64_t drop_key(const GPT* m, long first_row, int layer, DropoutSite site) {
    uint64_t key = dropout_key(m->dropout_seed, m->dropout_step, layer, site);
    /* rows batch_offset + first_row.. of a global batch: element i here is element
     * first + i of the global one (the (B,NH,T,T) matrix for attention, else
     * (B,T,C)), and dropout_keep hashes key + index * DROPOUT_INDEX_STRIDE */
    uint64_t row = site == DROP_ATTN ? (uint64_t)m->config.n_head * m->T * m->T : (uint64_t)m->T * m->config.n_embd;
    return key + (uint64_t)(m->batch_offset + first_row) * row * DROPOUT_INDEX_STRIDE;
}

/* ------------------------------------------------------------------------- */
/* diagnosis                                                                  */

/* The first value of x[0..n) that is not finite: its index, or -1. */
static long first_nonfinite(const float* x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long)i;
    return -1;
}

/* Where a tensor sits in the network: the embedding, the blocks (one slice per
 * layer), or the output. Parameters in table order: wte, wpe | ln1w .. fcprojb | lnfw, lnfb, lm_head. */
enum { STAGE_EMBEDDING, STAGE_BLOCKS, STAGE_OUTPUT };
enum { FIRST_BLOCK_PARAM = 2, FIRST_OUTPUT_PARAM = 14 };

static int param_stage(int i) {
    return i < FIRST_BLOCK_PARAM ? STAGE_EMBEDDING : i < FIRST_OUTPUT_PARAM ? STAGE_BLOCKS : STAGE_OUTPUT;
}

/* The stage of "layer" l when walking the network: -1 the embedding, 0..L-1 the blocks, L the output. */
static int layer_stage(int l, int L) { return l < 0 ? STAGE_EMBEDDING : l < L ? STAGE_BLOCKS : STAGE_OUTPUT; }

static int activation_stage(int i) {
    return ACTIVATION_INFO[i].stacked ? STAGE_BLOCKS : i > ACT_RESIDUAL3 ? STAGE_OUTPUT : STAGE_EMBEDDING;
}

/* Tensor slice: report it in out if it holds a non-finite value (layer -1: not per layer). */
static int report_slice(const float* x, size_t n, const char* what, const char* name, int layer, char* out,
                        size_t len) {
    long bad = x && n ? first_nonfinite(x, n) : -1;
    if (bad < 0) return 0;
    char where[32] = "";
    if (layer >= 0) snprintf(where, sizeof where, " of layer %d", layer);
    snprintf(out, len, "%s %s%s (value %ld of %zu is %s)", what, name, where, bad, n,
             isnan(x[bad]) ? "nan" : "inf");
    return 1;
}

/* Parameter tensor i of `memory` (the parameters or their gradients), layer l when in the blocks. */
static int report_param(const GPT* m, const float* memory, int i, int l, const char* what, char* out, size_t len) {
    const ParamTensorInfo* t = &m->tensors[i];
    int blocks = param_stage(i) == STAGE_BLOCKS;
    size_t n = blocks ? t->size / m->config.n_layer : t->size;
    return report_slice(memory + t->offset + (blocks ? l * n : 0), n, what, t->name, blocks ? l : -1, out, len);
}

int gpt_find_nonfinite(const GPT* m, char* out, size_t len) {
    int L = m->config.n_layer;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        for (int l = 0; l < (param_stage(i) == STAGE_BLOCKS ? L : 1); l++)
            if (report_param(m, m->params_memory, i, l, "parameter", out, len)) return 1;
    if (m->acts_memory && m->B > 0) {  /* as the forward makes them */
        /* where each tensor starts (laid out for max_batch x block_size, or in
         * groups, each for its share of max_batch), and how much of it the last
         * forward's (B, T) filled */
        int G = m->acts_groups;
        size_t layout[NUM_ACTIVATION_TENSORS], sizes[NUM_ACTIVATION_TENSORS], start[NUM_ACTIVATION_TENSORS];
        activation_sizes(layout, &m->config, m->max_batch / G, m->config.block_size, ACTS_ALL_BLOCKS);
        activation_sizes(sizes, &m->config, m->B / G, m->T, ACTS_ALL_BLOCKS);
        size_t group = 0;
        for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) { start[i] = group; group += layout[i]; }
        for (int l = -1; l <= L; l++)
            for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) {
                if (activation_stage(i) != layer_stage(l, L)) continue;
                int blocks = activation_stage(i) == STAGE_BLOCKS;
                size_t n = blocks ? sizes[i] / L : sizes[i];
                for (int g = 0; g < G; g++) {
                    char name[64];  /* "atty", or "atty of batch group 1" */
                    snprintf(name, sizeof name, G > 1 ? "%s of batch group %d" : "%s", ACTIVATION_INFO[i].name, g);
                    if (report_slice(m->acts_memory + g * group + start[i] + (blocks ? l * n : 0), n, "activation",
                                     name, blocks ? l : -1, out, len)) return 1;
                }
            }
    }
    for (int l = L; l >= -1; l--)  /* as backward makes them: output, blocks top down, embedding */
        for (int i = NUM_PARAM_TENSORS - 1; i >= 0; i--)
            if (param_stage(i) == layer_stage(l, L) && report_param(m, m->grads_memory, i, l, "gradient of", out, len))
                return 1;
    return 0;
}

void gpt_free(GPT* m) {
    free(m->params_memory); free(m->grads_memory);
    free(m->acts_memory); free(m->dacts_memory);
    free(m->pe_table); free(m->scratch);
    free(m->inputs); free(m->targets); free(m->lane_tokens);
    free(m->group_grads); free(m->group_scratch);
    memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------------- */
/* forward                                                                   */

/* base + offset into a stacked tensor, or NULL for an absent one (the biases
 * when bias = 0; the kernels then skip them). */
static inline float* at(float* base, size_t offset) { return base ? base + offset : NULL; }

/* The gradient a residual branch receives: dx itself, or with dropout on the
 * branch's output, dx through the forward's mask, copied into `buffer` (dx goes
 * on unmasked to the other side of the sum). */
static const float* branch_grad(float* buffer, const float* dx, size_t n, float pdrop, uint64_t key) {
    if (pdrop <= 0.0f) return dx;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buffer[i] = dx[i];
    dropout_backward(buffer, n, pdrop, key);
    return buffer;
}

/* W and b (NULL when the model has no biases) of a linear layer */
static void linear_params(const GPT* m, int l, Linear which, const float** w, const float** b) {
    const ParameterTensors* p = &m->params;
    size_t C = m->config.n_embd;
    switch (which) {
    case LIN_QKV:     *w = p->qkvw + l * 3 * C * C;    *b = at(p->qkvb, l * 3 * C); break;
    case LIN_ATTPROJ: *w = p->attprojw + l * C * C;    *b = at(p->attprojb, l * C); break;
    case LIN_FC:      *w = p->fcw + l * 4 * C * C;     *b = at(p->fcb, l * 4 * C); break;
    case LIN_FCPROJ:  *w = p->fcprojw + l * 4 * C * C; *b = at(p->fcprojb, l * C); break;
    default:          *w = p->lm_head;                 *b = NULL; break;  /* E when tied */
    }
}

/* out (BT, OC) = inp (BT, C) W^T + b for a linear layer. matmul_forward packs
 * W^T into scratch first, each time: an evaluation's many forwards once shared
 * one packed copy of every W^T, and a training step's batch groups too, but
 * packed just before its product the copy is still in cache when the product
 * reads it, and that was faster (docs/bench_notes.md, tenth round). */
static void linear_forward(const GPT* m, float* scratch, int l, Linear which, float* out, const float* inp,
                           int BT) {
    int C, OC;
    const float *w, *b;
    linear_shape(&m->config, which, &C, &OC);
    linear_params(m, l, which, &w, &b);
    matmul_forward(out, inp, w, b, scratch, BT, C, OC);
}

/* Where a forward writes: its activations, and scratch for the packed W^T and
 * attention's blocks. The model's own (acts, scratch), an evaluation lane's, or
 * a group's of gpt_forward_backward, which also says where its rows start in the
 * batch (first_row, for the dropout masks). */
typedef struct { ActivationTensors acts; float* scratch; long first_row; } ForwardBuffers;

/* The batch a forward is given: its shape within the model's, every id in the
 * vocabulary; and the threads within the scratch's. Dies with a message. */
static void check_batch(const GPT* m, const int* inputs, const int* targets, int B, int T) {
    const GPTConfig* c = &m->config;
    int V = c->vocab_size;
    if (B < 1 || B > m->max_batch || T < 1 || T > c->block_size)
        die(EXIT_BAD_INPUT, "gpt_forward: batch (%d, %d) exceeds the model's (%d, %d)", B, T,
            m->max_batch, c->block_size);
    for (int i = 0; i < B * T; i++)
        if (inputs[i] < 0 || inputs[i] >= V || (targets && (targets[i] < 0 || targets[i] >= V)))
            die(EXIT_BAD_INPUT, "token id at position %d is outside the vocabulary [0, %d)", i, V);
    if (omp_get_max_threads() > m->scratch_threads)
        die(EXIT_BAD_INPUT, "gpt_forward: %d OpenMP threads, but the model's scratch was sized for %d at build",
            omp_get_max_threads(), m->scratch_threads);
}

/* The forward pass into buf, the mean loss its result (-1 without targets). It
 * reads the parameters and the mode, and writes nothing of the model itself, so
 * that lanes can run it side by side (gpt_mean_loss); forward() below records
 * what gpt_backward needs. m->T must already be this T (the dropout keys use it).
 * keep = 1: every block's activations stay for gpt_backward. keep = 0: each block
 * overwrites the one before (slot 0), so a forward for the loss alone keeps its
 * working set in cache instead of writing n_layer blocks to memory. */
static float forward_pass(const GPT* m, ForwardBuffers buf, const int* inputs, const int* targets, int B, int T,
                          int keep) {
    const GPTConfig* c = &m->config;
    int C = c->n_embd, NH = c->n_head, L = c->n_layer, V = c->vocab_size;
    check_batch(m, inputs, targets, B, T);

    ParameterTensors p = m->params;
    ActivationTensors a = buf.acts;
    size_t BT = (size_t)B * T, BTC = BT * C;
    long row0 = buf.first_row;

    /* e_t = E[i_t];  x_t = embed_scale * e_t + PE_t */
    const float* pe = c->pos_encoding == POS_LEARNED ? p.wpe : m->pe_table;
    encoder_forward(a.encoded, inputs, p.wte, pe, c->embed_scale, B, T, C);
    float pdrop = drop_p(m);  /* 0 in eval mode: every dropout below is then a no-op */
    dropout_forward(a.encoded, BTC, pdrop, drop_key(m, row0, 0, DROP_EMBED));

    /* Each residual sum runs in one pass with the layer norm that reads it: the
     * sum after the attention with LN2, the sum after the MLP with the next
     * block's LN1 (or LNf after the last block). */
    layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, a.encoded, p.ln1w, at(p.ln1b, 0), BT, C);
    const float* x = a.encoded;  /* the residual stream entering block l */
    for (int l = 0; l < L; l++) {
        size_t s = keep ? (size_t)l : 0;  /* the activation slot of block l */
        float* ln1 = a.ln1 + s * BTC;     /* LN1(x), already computed */
        float* qkv = a.qkv + s * BTC * 3;
        float* atty = a.atty + s * BTC;
        float* attproj = a.attproj + s * BTC;
        float* residual2 = a.residual2 + s * BTC;
        float* ln2 = a.ln2 + s * BTC;
        float* fch = a.fch + s * BTC * 4;
        float* fch_gelu = a.fch_gelu + s * BTC * 4;
        float* fcproj = a.fcproj + s * BTC;
        float* residual3 = a.residual3 + s * BTC;
        float* att_stats = a.att_stats + s * B * NH * T * 2;

        /* x = x + attn(LN1(x)) */
        linear_forward(m, buf.scratch, l, LIN_QKV, qkv, ln1, BT);
        attention_forward(atty, att_stats, buf.scratch, qkv, B, T, C, NH, pdrop, drop_key(m, row0, l, DROP_ATTN));
        linear_forward(m, buf.scratch, l, LIN_ATTPROJ, attproj, atty, BT);
        dropout_forward(attproj, BTC, pdrop, drop_key(m, row0, l, DROP_ATTN_RESID));
        residual_layernorm_forward(residual2, ln2, a.ln2_mean + s * BT, a.ln2_rstd + s * BT, x, attproj,
                                   p.ln2w + l * C, at(p.ln2b, l * C), BT, C);
        /* x = x + mlp(LN2(x)) */
        linear_forward(m, buf.scratch, l, LIN_FC, fch, ln2, BT);
        gelu_forward(fch_gelu, fch, BTC * 4);
        linear_forward(m, buf.scratch, l, LIN_FCPROJ, fcproj, fch_gelu, BT);
        dropout_forward(fcproj, BTC, pdrop, drop_key(m, row0, l, DROP_MLP_RESID));
        if (l + 1 < L) {
            size_t sn = keep ? (size_t)l + 1 : 0;  /* block l+1's slot */
            residual_layernorm_forward(residual3, a.ln1 + sn * BTC, a.ln1_mean + sn * BT, a.ln1_rstd + sn * BT,
                                       residual2, fcproj, p.ln1w + (l + 1) * C, at(p.ln1b, (l + 1) * C), BT, C);
        } else {
            /* h = LNf(x) */
            residual_layernorm_forward(residual3, a.lnf, a.lnf_mean, a.lnf_rstd, residual2, fcproj,
                                       p.lnfw, p.lnfb, BT, C);
        }
        x = residual3;
    }

    /* z = h E^T (tied: lm_head is E itself), no bias */
    linear_forward(m, buf.scratch, L, LIN_HEAD, a.logits, a.lnf, BT);

    return targets ? crossentropy_forward(a.ce_stats, a.losses, a.logits, targets, BT, V) : -1.0f;
}

/* forward_pass on the model's own buffers, recording the batch and its loss for
 * gpt_backward (which also needs the ids, for dE's lookup scatter). */
static float forward(GPT* m, const int* inputs, const int* targets, int B, int T, int keep) {
    m->B = B; m->T = T;
    ForwardBuffers own = {m->acts, m->scratch, 0};
    m->mean_loss = forward_pass(m, own, inputs, targets, B, T, keep);
    memcpy(m->inputs, inputs, sizeof(int) * B * T);  /* B, T checked by forward_pass */
    if (targets) memcpy(m->targets, targets, sizeof(int) * B * T);
    m->forward_dropout = drop_p(m);
    m->backward_ready = keep && targets;
    m->acts_groups = 1;
    return m->mean_loss;
}

float gpt_forward(GPT* m, const int* inputs, const int* targets, int B, int T) {
    return forward(m, inputs, targets, B, T, 1);
}

float gpt_loss(GPT* m, const int* inputs, const int* targets, int B, int T) {
    return forward(m, inputs, targets, B, T, 0);
}

/* Evaluation lanes. An evaluation is many loss-only forwards on fixed weights,
 * and they are independent: each thread can run whole forwards on its own, on
 * the one-thread kernels, instead of every thread taking a share of every
 * kernel. The cores then share no activations and meet at no barrier (6-17%
 * faster on two cores: docs/bench_notes.md), and a thread that finishes early
 * takes the next batch. The kernels give the same bits for any thread count, so
 * a batch's loss does not depend on the lane that scored it, and the losses are
 * added in batch order: the same result as one forward after another.
 * A lane needs one block's activations (keep = 0). They are cut from the
 * training activations, which are dead between a step's update and the next
 * forward; the lanes are used only when every thread's fits there. */
static size_t lane_floats(const GPT* m) {
    ActivationTensors unused;
    return point_activations(&unused, NULL, &m->config, m->max_batch, ACTS_ONE_BLOCK);
}

int gpt_eval_lanes(const GPT* m) {
    if (m->max_batch < 1) return 1;
    int threads = omp_get_max_threads(), fit = (int)(m->num_activations / lane_floats(m));
    return threads > 1 && threads <= m->scratch_threads && threads <= fit ? threads : 1;
}

/* Thread `lane`'s buffers: its cut of the activations, its cut of scratch (a
 * one-thread pass's: model_scratch_floats). */
static ForwardBuffers lane_buffers(const GPT* m, int lane) {
    ForwardBuffers buf = {.first_row = 0};
    point_activations(&buf.acts, m->acts_memory + (size_t)lane * lane_floats(m), &m->config, m->max_batch,
                      ACTS_ONE_BLOCK);
    const GPTConfig* c = &m->config;
    buf.scratch = m->scratch + (size_t)lane * scratch_floats(c, 1);
    return buf;
}

/* losses[i] = the loss of batch i, for i < n_batches, the lanes taking batches
 * in order as they become free (next_batch is called in batch order). */
static void lanes_losses(GPT* m, float* losses, int n_batches, NextBatch next_batch, void* ctx, int B, int T,
                         int lanes) {
    int next = 0;
    #pragma omp parallel num_threads(lanes)
    {
        int lane = omp_get_thread_num();
        omp_set_num_threads(1);  /* the kernels' regions inside this lane: one thread */
        ForwardBuffers buf = lane_buffers(m, lane);
        size_t n = (size_t)m->max_batch * m->config.block_size;
        int* inputs = m->lane_tokens + (size_t)lane * 2 * n;
        int* targets = inputs + n;
        for (;;) {
            int i;
            #pragma omp critical(emergent_eval_batches)
            {
                i = next < n_batches ? next++ : -1;
                if (i >= 0) next_batch(ctx, inputs, targets);
            }
            if (i < 0) break;
            losses[i] = forward_pass(m, buf, inputs, targets, B, T, 0);
        }
    }
}

float gpt_mean_loss(GPT* m, int n_batches, NextBatch next_batch, void* ctx, int* inputs, int* targets,
                    int B, int T) {
    int lanes = gpt_eval_lanes(m);
    double total = 0.0;
    if (lanes > 1 && n_batches > 1) {
        float* losses = xmalloc((size_t)n_batches * sizeof(float), "evaluation losses");
        m->B = B; m->T = T;  /* as forward() sets them; the training activations are now spent */
        m->backward_ready = 0;
        lanes_losses(m, losses, n_batches, next_batch, ctx, B, T, lanes);
        for (int i = 0; i < n_batches; i++) total += losses[i];
        m->mean_loss = losses[n_batches - 1];
        free(losses);
    } else {
        for (int i = 0; i < n_batches; i++) {
            next_batch(ctx, inputs, targets);
            total += forward(m, inputs, targets, B, T, 0);
        }
    }
    return (float)(total / n_batches);
}

/* ------------------------------------------------------------------------- */
/* backward: the forward in reverse, one call per step                        */

void gpt_zero_grad(GPT* m) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m->num_params; i++) m->grads_memory[i] = 0.0f;
}

/* Where a backward reads and writes: the forward's activations, the gradients
 * of one block's activations, the parameter gradients it adds into, scratch,
 * and where its rows start in the batch (first_row, for the dropout masks). The
 * model's own, or a group's of gpt_forward_backward. */
typedef struct {
    ActivationTensors acts, dacts;
    ParameterTensors grads;
    float* scratch;
    long first_row;
} BackwardBuffers;

/* The parameter gradients that a backward only ever adds into: layer norms'
 * and positions' sums over the rows, E's lookup scatter when E is not the output
 * head. Zeroed before a GRADS_SET backward; every other gradient (the linear
 * layers', and E through the tied head, its first writer) is written whole by
 * its product. Absent tensors are NULL. */
static void zero_summed_grads(const GPTConfig* c, const ParameterTensors* g) {
    size_t C = c->n_embd, LC = (size_t)c->n_layer * C;
    struct { float* grad; size_t n; } summed[] = {
        {g->wpe, (size_t)c->block_size * C}, {g->ln1w, LC}, {g->ln1b, LC}, {g->ln2w, LC}, {g->ln2b, LC},
        {g->lnfw, C}, {g->lnfb, C}, {c->tie_weights ? NULL : g->wte, (size_t)c->vocab_size * C}};
    for (size_t i = 0; i < sizeof summed / sizeof summed[0]; i++)
        if (summed[i].grad) memset(summed[i].grad, 0, summed[i].n * sizeof(float));
}

/* The backward pass of the forward that wrote buf.acts over inputs/targets (B,T):
 * the gradients of the mean loss over batch_rows rows (B*T, or the whole batch's
 * when these rows are one group of it), added into buf.grads or replacing them
 * (mode). */
static void backward_pass(const GPT* m, BackwardBuffers buf, const int* inputs, const int* targets, int B, int T,
                          int batch_rows, GradMode mode) {
    const GPTConfig* c = &m->config;
    int C = c->n_embd, NH = c->n_head, L = c->n_layer, V = c->vocab_size;
    size_t BT = (size_t)B * T, BTC = BT * C;
    ParameterTensors p = m->params, g = buf.grads;
    ActivationTensors a = buf.acts, d = buf.dacts;
    float* scratch = buf.scratch;
    long row0 = buf.first_row;
    float pdrop = m->forward_dropout;  /* the masks of the forward: same keys */
    /* The gradients of one block's activations (d.ln1 .. d.fcproj) are reused by
     * every block. The residual stream's gradient lives in one buffer, dx, updated
     * in place from the top of the network to the bottom: at a sum x + f(LN(x)) the
     * gradient reaches the branch f unchanged (dx itself is the branch's dout) and
     * LN's backward then adds its part to dx. Every other gradient is first written
     * whole (kernels.h), so only dx needs zeroing. */
    float* dx = d.encoded;
    if (mode == GRADS_SET) zero_summed_grads(c, &g);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BTC; i++) dx[i] = 0.0f;

    /* loss = mean_n -log softmax(z_n)[y_n]  ->  dz = (softmax(z) - onehot(y)) / batch_rows */
    crossentropy_backward(d.logits, a.logits, a.ce_stats, targets, BT, V, batch_rows);
    /* z = h E^T:  dh += dz E  and  dE += dz^T h.  When tied, g.lm_head IS g.wte:
     * this is the DENSE part of dE, every row of E gets a gradient from every position. */
    matmul_backward(d.lnf, g.lm_head, NULL, d.logits, a.lnf, p.lm_head, scratch, BT, C, V, mode);
    const float* x_last = a.residual3 + (L - 1) * BTC;
    layernorm_backward(dx, g.lnfw, g.lnfb, d.lnf, x_last, p.lnfw, a.lnf_mean, a.lnf_rstd, BT, C);

    for (int l = L - 1; l >= 0; l--) {
        const float* x = l == 0 ? a.encoded : a.residual3 + (l - 1) * BTC;  /* block input */
        const float* att_stats = a.att_stats + (size_t)l * B * NH * T * 2;

        /* undo x = x + mlp(LN2(x)): dx is d(block output) */
        const float* dbranch = branch_grad(d.fcproj, dx, BTC, pdrop, drop_key(m, row0, l, DROP_MLP_RESID));
        matmul_backward(d.fch_gelu, g.fcprojw + (size_t)l * 4 * C * C, at(g.fcprojb, l * C),
                        dbranch, a.fch_gelu + l * BTC * 4, p.fcprojw + (size_t)l * 4 * C * C, scratch,
                        BT, 4 * C, C, mode);
        gelu_backward(d.fch, a.fch + l * BTC * 4, d.fch_gelu, BTC * 4);
        matmul_backward(d.ln2, g.fcw + (size_t)l * 4 * C * C, at(g.fcb, l * 4 * C),
                        d.fch, a.ln2 + l * BTC, p.fcw + (size_t)l * 4 * C * C, scratch, BT, C, 4 * C, mode);
        layernorm_backward(dx, g.ln2w + l * C, at(g.ln2b, l * C), d.ln2,
                           a.residual2 + l * BTC, p.ln2w + l * C, a.ln2_mean + l * BT, a.ln2_rstd + l * BT, BT, C);
        /* undo x = x + attn(LN1(x)): dx is now d(residual2) */
        dbranch = branch_grad(d.attproj, dx, BTC, pdrop, drop_key(m, row0, l, DROP_ATTN_RESID));
        matmul_backward(d.atty, g.attprojw + (size_t)l * C * C, at(g.attprojb, l * C),
                        dbranch, a.atty + l * BTC, p.attprojw + (size_t)l * C * C, scratch, BT, C, C, mode);
        attention_backward(d.qkv, scratch, d.atty, a.qkv + l * BTC * 3, att_stats, B, T, C, NH,
                           pdrop, drop_key(m, row0, l, DROP_ATTN));
        matmul_backward(d.ln1, g.qkvw + (size_t)l * 3 * C * C, at(g.qkvb, l * 3 * C),
                        d.qkv, a.ln1 + l * BTC, p.qkvw + (size_t)l * 3 * C * C, scratch, BT, C, 3 * C, mode);
        layernorm_backward(dx, g.ln1w + l * C, at(g.ln1b, l * C), d.ln1,
                           x, p.ln1w + l * C, a.ln1_mean + l * BT, a.ln1_rstd + l * BT, BT, C);
        /* dx is now d(block input) = d(output of block l-1) */
    }

    /* undo x_t = s E[i_t] + PE_t: dE += s * (SPARSE row scatter: only rows of tokens in
     * the batch); dPE += dx summed over the batch (learned positions only). With tied
     * weights dE now holds (lookup scatter) + (output projection). */
    dropout_backward(dx, BTC, pdrop, drop_key(m, row0, 0, DROP_EMBED));
    encoder_backward(g.wte, g.wpe, dx, inputs, c->embed_scale, B, T, C);
}

/* The backward of the model's own last forward. */
static void own_backward(GPT* m, GradMode mode) {
    if (!m->backward_ready) die(EXIT_BAD_INPUT, "gpt_backward: the last forward had no targets, or was gpt_loss");
    BackwardBuffers own = {m->acts, m->dacts, m->grads, m->scratch, 0};
    backward_pass(m, own, m->inputs, m->targets, m->B, m->T, m->B * m->T, mode);
}

void gpt_backward(GPT* m) { own_backward(m, GRADS_ADD); }

/* ------------------------------------------------------------------------- */
/* batch groups: a training step as independent passes over groups of sequences */

void gpt_set_batch_groups(GPT* m, int groups) {
    if (groups < 1 || m->max_batch < 1 || m->max_batch % groups != 0)
        die(EXIT_BAD_INPUT, "batch groups: %d groups do not divide the batch of %d sequences", groups, m->max_batch);
    free(m->group_grads); free(m->group_scratch);
    m->group_grads = m->group_scratch = NULL;
    m->batch_groups = groups;
    if (groups == 1) return;
    int lanes;
    group_split(groups, &lanes, &m->group_threads);
    m->group_grads = xmalloc((size_t)(groups - 1) * m->num_params * sizeof(float), "batch groups' gradients");
    m->group_scratch = xmalloc((size_t)groups * scratch_floats(&m->config, m->group_threads) * sizeof(float),
                               "batch groups' scratch");
}

/* Group g's part of the model's activation memory, activation gradients,
 * gradients and scratch. The activations hold max_batch sequences, in groups of
 * max_batch / G: each group's tensors laid out as a whole model's (point_activations),
 * one group after another. Group 0 writes the model's gradients, the others
 * copies of their own. */
static void group_buffers(const GPT* m, int g, int rows, ForwardBuffers* f, BackwardBuffers* b) {
    const GPTConfig* c = &m->config;
    int per_group = m->max_batch / m->batch_groups;
    ActivationTensors unused;
    size_t acts = point_activations(&unused, NULL, c, per_group, ACTS_ALL_BLOCKS);
    size_t dacts = point_activations(&unused, NULL, c, per_group, GRADS_ONE_BLOCK);
    float* scratch = m->group_scratch + (size_t)g * scratch_floats(c, m->group_threads);
    point_activations(&f->acts, m->acts_memory + g * acts, c, per_group, ACTS_ALL_BLOCKS);
    point_activations(&b->dacts, m->dacts_memory + g * dacts, c, per_group, GRADS_ONE_BLOCK);
    f->scratch = b->scratch = scratch;
    f->first_row = b->first_row = (long)g * rows;
    b->acts = f->acts;
    if (g == 0) b->grads = m->grads;
    else point_params(&b->grads, m->group_grads + (size_t)(g - 1) * m->num_params, m->tensors, c->tie_weights);
}

/* Group g's forward and backward: rows g*rows.. of the batch, on the calling
 * thread's team; its gradients replace what its copy held. */
static void group_pass(GPT* m, int g, const int* inputs, const int* targets, int rows, int T, int batch_rows) {
    ForwardBuffers f;
    BackwardBuffers b;
    group_buffers(m, g, rows, &f, &b);
    size_t first = (size_t)g * rows * T;
    forward_pass(m, f, inputs + first, targets + first, rows, T, 1);
    backward_pass(m, b, inputs + first, targets + first, rows, T, batch_rows, GRADS_SET);
}

float gpt_forward_backward(GPT* m, const int* inputs, const int* targets, int B, int T) {
    int G = m->batch_groups;
    if (G == 1) {
        float loss = gpt_forward(m, inputs, targets, B, T);
        own_backward(m, GRADS_SET);
        return loss;
    }
    if (B % G != 0)
        die(EXIT_BAD_INPUT, "gpt_forward_backward: %d batch groups do not divide the batch of %d sequences", G, B);
    if (!targets) die(EXIT_BAD_INPUT, "gpt_forward_backward: no targets");
    check_batch(m, inputs, targets, B, T);  /* here, so that no group dies inside the parallel loop */
    int rows = B / G, lanes, inner;
    group_split(G, &lanes, &inner);
    inner = inner < m->group_threads ? inner : m->group_threads;  /* the scratch's size */
    m->B = B; m->T = T;  /* the dropout keys read T */
    m->forward_dropout = drop_p(m);
    int levels = omp_get_max_active_levels();
    if (inner > 1 && levels < 2) omp_set_max_active_levels(2);  /* each group's kernels: a team of inner threads */
    #pragma omp parallel for num_threads(lanes) schedule(static)
    for (int g = 0; g < G; g++) {
        omp_set_num_threads(inner);
        group_pass(m, g, inputs, targets, rows, T, B * T);
    }
    omp_set_max_active_levels(levels);

    /* grads = ((grads + group 1) + group 2) + ...: one order on any thread count.
     * A pass per group, each a vector loop (with the groups as an inner loop gcc
     * added one float at a time). Every pass splits n alike (static), so each
     * thread adds into the same elements, and needs no barrier between passes. */
    size_t n = m->num_params;
    #pragma omp parallel
    for (int g = 1; g < G; g++) {
        const float* copy = m->group_grads + (size_t)(g - 1) * n;
        #pragma omp for schedule(static) nowait
        for (size_t i = 0; i < n; i++) m->grads_memory[i] += copy[i];
    }

    /* the mean loss, summed as crossentropy_forward sums the whole batch: row by
     * row in double (the groups hold consecutive rows), and every row's loss is
     * what one pass gives */
    double total = 0.0;
    for (int g = 0; g < G; g++) {
        ForwardBuffers f;
        BackwardBuffers b;
        group_buffers(m, g, rows, &f, &b);
        for (int i = 0; i < rows * T; i++) total += f.acts.losses[i];
    }
    memcpy(m->inputs, inputs, sizeof(int) * B * T);
    memcpy(m->targets, targets, sizeof(int) * B * T);
    m->mean_loss = (float)(total / (B * T));
    m->backward_ready = 0;
    m->acts_groups = G;
    return m->mean_loss;
}

/* ------------------------------------------------------------------------- */
/* generation: one position at a time against a key/value cache              */

void kvcache_init(KVCache* kv, const GPTConfig* c) {
    size_t L = c->n_layer, T = c->block_size, C = c->n_embd;
    memset(kv, 0, sizeof(*kv));
    kv->k = xcalloc(L * T * C, sizeof(float), "key cache");
    kv->v = xcalloc(L * T * C, sizeof(float), "value cache");
    kv->x = xmalloc(C * sizeof(float), "cache activations");
    kv->ln = xmalloc(C * sizeof(float), "cache activations");
    kv->qkv = xmalloc(3 * C * sizeof(float), "cache activations");
    kv->atty = xmalloc(C * sizeof(float), "cache activations");
    kv->proj = xmalloc(C * sizeof(float), "cache activations");
    kv->fch = xmalloc(4 * C * sizeof(float), "cache activations");
    kv->fch_gelu = xmalloc(4 * C * sizeof(float), "cache activations");
    kv->scores = xmalloc(T * sizeof(float), "cache activations");
    kv->logits = xmalloc((size_t)c->vocab_size * sizeof(float), "cache logits");
}

void kvcache_free(KVCache* kv) {
    free(kv->k); free(kv->v); free(kv->x); free(kv->ln); free(kv->qkv); free(kv->atty);
    free(kv->proj); free(kv->fch); free(kv->fch_gelu); free(kv->scores); free(kv->logits);
    memset(kv, 0, sizeof(*kv));
}

/* gpt_forward for one row, position t = n_ctx: the same kernels on one row, with
 * attention reading the cached keys and values of positions 0..t. */
const float* gpt_forward_cached(GPT* m, KVCache* kv, int token) {
    const GPTConfig* c = &m->config;
    int C = c->n_embd, NH = c->n_head, L = c->n_layer, V = c->vocab_size, T = c->block_size;
    int t = kv->n_ctx;
    if (t >= T) die(EXIT_BAD_INPUT, "gpt_forward_cached: the cache holds block_size = %d positions already", T);
    if (token < 0 || token >= V) die(EXIT_BAD_INPUT, "token id %d is outside the vocabulary [0, %d)", token, V);
    ParameterTensors p = m->params;
    float mean, rstd;  /* layernorm's saved statistics, unused here */

    /* x_t = embed_scale * E[i_t] + PE_t */
    const float* pe = c->pos_encoding == POS_LEARNED ? p.wpe : m->pe_table;
    const float* e = p.wte + (size_t)token * C;
    for (int i = 0; i < C; i++) kv->x[i] = c->embed_scale * e[i] + pe[(size_t)t * C + i];

    for (int l = 0; l < L; l++) {
        float* kc = kv->k + (size_t)l * T * C;
        float* vc = kv->v + (size_t)l * T * C;
        layernorm_forward(kv->ln, &mean, &rstd, kv->x, p.ln1w + l * C, at(p.ln1b, l * C), 1, C);
        matvec_forward(kv->qkv, kv->ln, p.qkvw + (size_t)l * 3 * C * C, at(p.qkvb, l * 3 * C), C, 3 * C);
        memcpy(kc + (size_t)t * C, kv->qkv + C, C * sizeof(float));      /* k_t joins the cache */
        memcpy(vc + (size_t)t * C, kv->qkv + 2 * C, C * sizeof(float));  /* v_t */
        attention_decode(kv->atty, kv->scores, kv->qkv, kc, vc, t + 1, C, NH);
        matvec_forward(kv->proj, kv->atty, p.attprojw + (size_t)l * C * C, at(p.attprojb, l * C), C, C);
        for (int i = 0; i < C; i++) kv->x[i] += kv->proj[i];
        layernorm_forward(kv->ln, &mean, &rstd, kv->x, p.ln2w + l * C, at(p.ln2b, l * C), 1, C);
        matvec_forward(kv->fch, kv->ln, p.fcw + (size_t)l * 4 * C * C, at(p.fcb, l * 4 * C), C, 4 * C);
        gelu_forward(kv->fch_gelu, kv->fch, 4 * C);
        matvec_forward(kv->proj, kv->fch_gelu, p.fcprojw + (size_t)l * 4 * C * C, at(p.fcprojb, l * C), 4 * C, C);
        for (int i = 0; i < C; i++) kv->x[i] += kv->proj[i];
    }
    layernorm_forward(kv->ln, &mean, &rstd, kv->x, p.lnfw, p.lnfb, 1, C);
    matvec_forward(kv->logits, kv->ln, p.lm_head, NULL, C, V);  /* z = h E^T */
    kv->n_ctx = t + 1;
    return kv->logits;
}
