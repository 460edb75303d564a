/* model.c: the GPT: its parameter table, build and init, the forward and the
 * backward pass, built from the kernels. The parameters live in one allocation
 * laid out by PARAM_TABLE; gradients mirror it, so the optimizer and gradient
 * clipping are single loops over one array.
 * Not here: the layer math (kernels/), the activations' layout (gpt/layout.c),
 * evaluation lanes, batch groups, generation (gpt/), the optimizer, file I/O.
 */
#include "model.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "gpt/internal.h"
#include "kernels/dropout.h"
#include "kernels/kernels.h"
#include "util/utils.h"

#define INIT_STD 0.02f  /* GPT-2 / nanoGPT */

const char* const POS_ENCODING_NAMES[NUM_POS_ENCODINGS] = {
    [POS_LEARNED] = "learned", [POS_SINUSOIDAL] = "sinusoidal", [POS_NONE] = "none", [POS_ROPE] = "rope"};

/* ------------------------------------------------------------------------- */
/* the parameter table                                                       */

#define FIELD(f) #f, offsetof(ParameterTensors, f)  /* the row's name, and the pointer it fills */
#define HF_BLOCK "transformer.h.%d."                  /* GPT-2's block tensors, %d the layer */

const ParamSpec PARAM_TABLE[NUM_PARAM_TENSORS] = {
    /* field          Hugging Face GPT-2 name        Conv1D stage     rows       cols      present     decay init */
    {FIELD(wte),      "transformer.wte.weight",      0, STAGE_EMBED,  DIM_V,     DIM_C,    IF_FULL_E,  1, INIT_NORMAL},
    {FIELD(wte_a),    "transformer.wte_a.weight",    0, STAGE_EMBED,  DIM_V,     DIM_R,    IF_FACTORED,1, INIT_NORMAL},
    {FIELD(wte_b),    "transformer.wte_b.weight",    0, STAGE_EMBED,  DIM_C,     DIM_R,    IF_FACTORED,1, INIT_NORMAL},
    {FIELD(wpe),      "transformer.wpe.weight",      0, STAGE_EMBED,  DIM_BLOCK, DIM_C,    IF_LEARNED, 1, INIT_NORMAL},
    {FIELD(ln1w),     HF_BLOCK "ln_1.weight",        0, STAGE_BLOCK,  DIM_C,     DIM_NONE, ALWAYS,     0, INIT_ONES},
    {FIELD(ln1b),     HF_BLOCK "ln_1.bias",          0, STAGE_BLOCK,  DIM_C,     DIM_NONE, IF_BIAS,    0, INIT_ZEROS},
    {FIELD(qkvw),     HF_BLOCK "attn.c_attn.weight", 1, STAGE_BLOCK,  DIM_3C,    DIM_C,    ALWAYS,     1, INIT_NORMAL},
    {FIELD(qkvb),     HF_BLOCK "attn.c_attn.bias",   0, STAGE_BLOCK,  DIM_3C,    DIM_NONE, IF_BIAS,    0, INIT_ZEROS},
    {FIELD(attprojw), HF_BLOCK "attn.c_proj.weight", 1, STAGE_BLOCK,  DIM_C,     DIM_C,    ALWAYS,     1, INIT_RESID},
    {FIELD(attprojb), HF_BLOCK "attn.c_proj.bias",   0, STAGE_BLOCK,  DIM_C,     DIM_NONE, IF_BIAS,    0, INIT_ZEROS},
    {FIELD(ln2w),     HF_BLOCK "ln_2.weight",        0, STAGE_BLOCK,  DIM_C,     DIM_NONE, ALWAYS,     0, INIT_ONES},
    {FIELD(ln2b),     HF_BLOCK "ln_2.bias",          0, STAGE_BLOCK,  DIM_C,     DIM_NONE, IF_BIAS,    0, INIT_ZEROS},
    {FIELD(fcw),      HF_BLOCK "mlp.c_fc.weight",    1, STAGE_BLOCK,  DIM_4C,    DIM_C,    ALWAYS,     1, INIT_NORMAL},
    {FIELD(fcb),      HF_BLOCK "mlp.c_fc.bias",      0, STAGE_BLOCK,  DIM_4C,    DIM_NONE, IF_BIAS,    0, INIT_ZEROS},
    {FIELD(fcprojw),  HF_BLOCK "mlp.c_proj.weight",  1, STAGE_BLOCK,  DIM_C,     DIM_4C,   ALWAYS,     1, INIT_RESID},
    {FIELD(fcprojb),  HF_BLOCK "mlp.c_proj.bias",    0, STAGE_BLOCK,  DIM_C,     DIM_NONE, IF_BIAS,    0, INIT_ZEROS},
    {FIELD(lnfw),     "transformer.ln_f.weight",     0, STAGE_OUTPUT, DIM_C,     DIM_NONE, ALWAYS,     0, INIT_ONES},
    {FIELD(lnfb),     "transformer.ln_f.bias",       0, STAGE_OUTPUT, DIM_C,     DIM_NONE, IF_BIAS,    0, INIT_ZEROS},
    {FIELD(lm_head),  "lm_head.weight",              0, STAGE_OUTPUT, DIM_V,     DIM_C,    IF_UNTIED,  1, INIT_NORMAL},
};

/* The table's rows worked out for config c, one after another in memory. */
size_t param_layout(ParamTensorInfo t[NUM_PARAM_TENSORS], const GPTConfig* c) {
    float resid_std = INIT_STD / sqrtf(2.0f * c->n_layer);
    float e_std = c->embed_init_std > 0 ? c->embed_init_std : INIT_STD;
    /* E = A B: E_vc = sum_k A_vk B_kc sums r products of independent zero-mean
     * draws, so its variance is r s_a^2 s_b^2. s_a = s_b = sqrt(e_std / sqrt(r))
     * gives E the spread of the unfactorised init (e_std), and the two factors
     * one scale, so that AdamW's steps (about lr whatever a tensor's scale) move
     * both at the same relative rate. */
    float factor_std = c->embed_rank > 0 ? sqrtf(e_std / sqrtf((float)c->embed_rank)) : 0.0f;
    int C = c->n_embd;
    int dims[] = {[DIM_NONE] = 0, [DIM_C] = C, [DIM_3C] = 3 * C, [DIM_4C] = 4 * C, [DIM_V] = c->vocab_size,
                  [DIM_BLOCK] = c->block_size, [DIM_R] = c->embed_rank};
    int present[] = {[ALWAYS] = 1, [IF_BIAS] = c->bias,
                     [IF_LEARNED] = c->pos_encoding == POS_LEARNED, [IF_UNTIED] = !c->tie_weights,
                     [IF_FULL_E] = c->embed_rank == 0, [IF_FACTORED] = c->embed_rank > 0};
    size_t offset = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const ParamSpec* s = &PARAM_TABLE[i];
        ParamTensorInfo* info = &t[i];
        memset(info, 0, sizeof(*info));
        info->name = s->name;
        info->spec = s;
        info->layers = s->stage == STAGE_BLOCK ? c->n_layer : 1;
        info->slice[0] = dims[s->rows];
        info->slice[1] = dims[s->cols];
        info->ndim = info->slice[1] ? 2 : 1;
        int d = 0;
        if (s->stage == STAGE_BLOCK) info->shape[d++] = c->n_layer;
        info->shape[d++] = info->slice[0];
        if (info->slice[1]) info->shape[d] = info->slice[1];
        if (!present[s->present]) info->shape[0] = 0;
        size_t floats = (size_t)info->layers * info->slice[0] * (info->slice[1] ? info->slice[1] : 1);
        info->size = present[s->present] ? floats : 0;
        info->decay = s->decay;
        info->init_std = s->init == INIT_NORMAL ? INIT_STD : s->init == INIT_RESID ? resid_std : 0.0f;
        if (s->field == offsetof(ParameterTensors, wte)) info->init_std = e_std;
        if (s->present == IF_FACTORED) info->init_std = factor_std;
        info->init_const = s->init == INIT_ONES ? 1.0f : 0.0f;
        info->offset = offset;
        offset += info->size;
    }
    return offset;
}

void point_params(ParameterTensors* p, float* memory, const ParamTensorInfo t[NUM_PARAM_TENSORS], int tie_weights,
                  float* embedding) {
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        float** field = (float**)((char*)p + t[i].spec->field);
        *field = t[i].size ? memory + t[i].offset : NULL;
    }
    if (embedding) p->wte = embedding;     /* embed_rank > 0: E = A B (or dE) outside the parameters */
    if (tie_weights) p->lm_head = p->wte;  /* the same memory: both paths write into dE */
}

/* ------------------------------------------------------------------------- */
/* build / free, modes                                                       */

void gpt_build(GPT* m, const GPTConfig* config, int max_batch, uint64_t seed) {
    memset(m, 0, sizeof(*m));
    m->config = *config;
    m->max_batch = max_batch;
    const GPTConfig* c = &m->config;
    int C = c->n_embd, T = c->block_size;

    m->num_params = param_layout(m->tensors, c);
    m->params_memory = xmalloc(m->num_params * sizeof(float), "parameters");
    m->grads_memory = xcalloc(m->num_params, sizeof(float), "parameter gradients");
    if (c->embed_rank > 0) {  /* E = A B and its gradient dE, each (V, C), outside the parameters */
        m->embed = xmalloc((size_t)c->vocab_size * C * sizeof(float), "E = A B");
        m->dembed = xcalloc(embed_grad_floats(c), sizeof(float), "dE");
    }
    point_params(&m->params, m->params_memory, m->tensors, c->tie_weights, m->embed);
    point_params(&m->grads, m->grads_memory, m->tensors, c->tie_weights, m->dembed);

    /* init in table order from one seeded stream, so the same seed gives the same model */
    Rng rng;
    rng_seed(&rng, seed, 0);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const ParamTensorInfo* t = &m->tensors[i];
        float* p = m->params_memory + t->offset;
        for (size_t j = 0; j < t->size; j++) p[j] = t->init_std > 0 ? t->init_std * rng_normal(&rng) : t->init_const;
    }

    if (max_batch > 0) {  /* 0: generation only (gpt/generate.h), no batch activations */
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
    if (c->pos_encoding == POS_ROPE) {
        m->rope_cs = xmalloc((size_t)T * (C / c->n_head) * sizeof(float), "rotary table");
        rope_table(m->rope_cs, T, C / c->n_head);
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
    gpt_sync_embedding(m);
}

void gpt_free(GPT* m) {
    free(m->params_memory); free(m->grads_memory);
    free(m->acts_memory); free(m->dacts_memory);
    free(m->pe_table); free(m->rope_cs); free(m->scratch);
    free(m->inputs); free(m->targets); free(m->lane_tokens);
    free(m->group_grads); free(m->group_scratch); free(m->group_dembed);
    free(m->embed); free(m->dembed);
    memset(m, 0, sizeof(*m));
}

size_t embed_grad_floats(const GPTConfig* c) {
    return c->embed_rank > 0 ? (size_t)c->vocab_size * (c->n_embd + c->embed_rank) : 0;
}

void gpt_sync_embedding(GPT* m) {
    const GPTConfig* c = &m->config;
    if (c->embed_rank == 0) return;
    if (omp_get_max_threads() > m->scratch_threads)
        die(EXIT_BAD_INPUT, "gpt_sync_embedding: %d OpenMP threads, but the model's scratch was sized for %d at build",
            omp_get_max_threads(), m->scratch_threads);
    /* E = A B: the linear layer E = A wte_b^T, row v of E from row v of A */
    matmul_forward(m->embed, m->params.wte_a, m->params.wte_b, NULL, m->scratch, c->vocab_size, c->embed_rank,
                   c->n_embd);
}

void gpt_train_mode(GPT* m, uint64_t seed, long step) {
    m->training = 1;
    m->dropout_seed = seed;
    m->dropout_step = step;
}

void gpt_eval_mode(GPT* m) { m->training = 0; }

void gpt_set_batch_offset(GPT* m, long first_row) { m->batch_offset = first_row; }

float drop_p(const GPT* m) { return m->training ? m->config.dropout : 0.0f; }

float drop_token_p(const GPT* m) { return m->training ? m->config.embed_dropout : 0.0f; }

const float* positions(const GPT* m) {
    return m->config.pos_encoding == POS_LEARNED ? m->params.wpe : m->pe_table;  /* NULL: none, rope */
}

/* The mask key of one dropout site. first_row: the rows of this batch that come
 * before the ones being computed (a batch group), 0 for the whole batch. */
static uint64_t drop_key(const GPT* m, long first_row, int layer, DropoutSite site) {
    uint64_t key = dropout_key(m->dropout_seed, m->dropout_step, layer, site);
    /* rows batch_offset + first_row.. of a global batch: element i here is element
     * first + i of the global one (the (B,NH,T,T) matrix for attention, else
     * (B,T,C); (B,T) for token rows), and dropout_keep hashes key + index * DROPOUT_INDEX_STRIDE */
    uint64_t row = site == DROP_ATTN    ? (uint64_t)m->config.n_head * m->T * m->T
                 : site == DROP_TOKEN ? (uint64_t)m->T  /* one mask bit per position */
                                      : (uint64_t)m->T * m->config.n_embd;
    return key + (uint64_t)(m->batch_offset + first_row) * row * DROPOUT_INDEX_STRIDE;
}

void check_batch(const GPT* m, const int* inputs, const int* targets, int B, int T) {
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

/* ------------------------------------------------------------------------- */
/* the layers of a block                                                     */

float* at(float* base, size_t offset) { return base ? base + offset : NULL; }

void linear_shape(const GPTConfig* c, Linear which, int* in, int* out) {
    int C = c->n_embd;
    int shapes[NUM_BLOCK_LINEAR][2] = {[LIN_QKV] = {C, 3 * C}, [LIN_ATTPROJ] = {C, C}, [LIN_FC] = {C, 4 * C},
                                       [LIN_FCPROJ] = {4 * C, C}};
    *in = shapes[which][0];
    *out = shapes[which][1];
}

/* Layer l's W (out, in) and b (out, or NULL without biases) of a linear layer,
 * in p: the parameters or their gradients. */
static void linear_params(const GPTConfig* c, const ParameterTensors* p, int l, Linear which, float** w, float** b) {
    float* ws[NUM_BLOCK_LINEAR] = {p->qkvw, p->attprojw, p->fcw, p->fcprojw};
    float* bs[NUM_BLOCK_LINEAR] = {p->qkvb, p->attprojb, p->fcb, p->fcprojb};
    int in, out;
    linear_shape(c, which, &in, &out);
    *w = ws[which] + (size_t)l * in * out;
    *b = at(bs[which], (size_t)l * out);
}

/* out (BT, out) = inp (BT, in) W^T + b. matmul_forward packs W^T into scratch
 * just before its product, so the copy is still in cache when the product reads it. */
static void linear_forward(const GPT* m, const ForwardBuffers* buf, int l, Linear which, float* out, const float* inp,
                           int BT) {
    int in, OC;
    float *w, *b;
    linear_shape(&m->config, which, &in, &OC);
    linear_params(&m->config, &m->params, l, which, &w, &b);
    matmul_forward(out, inp, w, b, buf->scratch, BT, in, OC);
}

/* dinp (BT, in) = dout W; dW += or = dout^T inp, db likewise (mode). */
static void linear_backward(const GPT* m, const BackwardBuffers* buf, int l, Linear which, float* dinp,
                            const float* dout, const float* inp, int BT, GradMode mode) {
    int in, OC;
    float *w, *b, *dw, *db;
    linear_shape(&m->config, which, &in, &OC);
    linear_params(&m->config, &m->params, l, which, &w, &b);
    linear_params(&m->config, &buf->grads, l, which, &dw, &db);
    matmul_backward(dinp, dw, db, dout, inp, w, buf->scratch, BT, in, OC, mode);
}

/* out = a + b, elementwise: the residual stream after a branch */
static void residual_forward(float* out, const float* a, const float* b, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

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

/* One block's slice of the stacked activations (or of their gradients): slot s. */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att_stats, *attproj, *residual2;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *fcproj, *residual3;
} BlockActs;

static BlockActs block_slice(const ActivationTensors* a, size_t s, const GPTConfig* c, int B, int T) {
    size_t BT = (size_t)B * T, BTC = BT * c->n_embd, stats = BT * c->n_head * 2;
    return (BlockActs){
        .ln1 = at(a->ln1, s * BTC), .ln1_mean = at(a->ln1_mean, s * BT), .ln1_rstd = at(a->ln1_rstd, s * BT),
        .qkv = at(a->qkv, s * BTC * 3), .atty = at(a->atty, s * BTC), .att_stats = at(a->att_stats, s * stats),
        .attproj = at(a->attproj, s * BTC), .residual2 = at(a->residual2, s * BTC), .ln2 = at(a->ln2, s * BTC),
        .ln2_mean = at(a->ln2_mean, s * BT), .ln2_rstd = at(a->ln2_rstd, s * BT), .fch = at(a->fch, s * BTC * 4),
        .fch_gelu = at(a->fch_gelu, s * BTC * 4), .fcproj = at(a->fcproj, s * BTC),
        .residual3 = at(a->residual3, s * BTC)};
}

/* ------------------------------------------------------------------------- */
/* forward                                                                   */

/* Block l on x (B,T,C) into o; its output, x + attn(LN1(x)) + mlp(LN2(...)), is o.residual3. */
static void block_forward(const GPT* m, const ForwardBuffers* buf, int l, BlockActs o, const float* x, int B, int T) {
    const GPTConfig* c = &m->config;
    const ParameterTensors* p = &m->params;
    int C = c->n_embd, NH = c->n_head, BT = B * T;
    size_t BTC = (size_t)BT * C;
    float pdrop = drop_p(m);  /* 0 in eval mode: every dropout below is then a no-op */
    long row0 = buf->first_row;

    /* x = x + attn(LN1(x)) */
    layernorm_forward(o.ln1, o.ln1_mean, o.ln1_rstd, x, p->ln1w + l * C, at(p->ln1b, l * C), BT, C);
    linear_forward(m, buf, l, LIN_QKV, o.qkv, o.ln1, BT);
    if (m->rope_cs) rope_forward(o.qkv, m->rope_cs, B, T, C, NH);  /* q, k turned by their positions */
    attention_forward(o.atty, o.att_stats, buf->scratch, o.qkv, B, T, C, NH, pdrop, drop_key(m, row0, l, DROP_ATTN));
    linear_forward(m, buf, l, LIN_ATTPROJ, o.attproj, o.atty, BT);
    dropout_forward(o.attproj, BTC, pdrop, drop_key(m, row0, l, DROP_ATTN_RESID));
    /* residual2 = x + attproj and ln2 = LN2(residual2), in one pass */
    residual_layernorm_forward(o.residual2, o.ln2, o.ln2_mean, o.ln2_rstd, x, o.attproj, p->ln2w + l * C,
                               at(p->ln2b, l * C), BT, C);
    /* x = x + mlp(LN2(x)) */
    linear_forward(m, buf, l, LIN_FC, o.fch, o.ln2, BT);
    gelu_forward(o.fch_gelu, o.fch, BTC * 4);
    linear_forward(m, buf, l, LIN_FCPROJ, o.fcproj, o.fch_gelu, BT);
    dropout_forward(o.fcproj, BTC, pdrop, drop_key(m, row0, l, DROP_MLP_RESID));
    residual_forward(o.residual3, o.residual2, o.fcproj, BTC);
}

float forward_pass(const GPT* m, ForwardBuffers buf, const int* inputs, const int* targets, int B, int T, int keep) {
    const GPTConfig* c = &m->config;
    int C = c->n_embd, L = c->n_layer, V = c->vocab_size;
    check_batch(m, inputs, targets, B, T);
    const ParameterTensors* p = &m->params;
    ActivationTensors a = buf.acts;
    size_t BT = (size_t)B * T;

    /* e_t = E[i_t];  x_t = embed_scale * e_t + PE_t  (no PE_t with pos_encoding none;
     * embed_dropout drops whole e_t in training). With embed_rank, E is A B, made
     * before the pass (gpt_sync_embedding); backward_pass ends by undoing it. */
    encoder_forward(a.encoded, inputs, p->wte, positions(m), c->embed_scale, drop_token_p(m),
                    drop_key(m, buf.first_row, 0, DROP_TOKEN), B, T, C);
    dropout_forward(a.encoded, BT * C, drop_p(m), drop_key(m, buf.first_row, 0, DROP_EMBED));

    const float* x = a.encoded;  /* the residual stream entering block l */
    for (int l = 0; l < L; l++) {
        BlockActs o = block_slice(&a, keep ? (size_t)l : 0, c, B, T);
        block_forward(m, &buf, l, o, x, B, T);
        x = o.residual3;
    }
    /* h = LNf(x) */
    layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, x, p->lnfw, p->lnfb, BT, C);
    /* z = h E^T: tied, the output weight IS the embedding E (wte); untied, lm_head. No bias. */
    const float* head = c->tie_weights ? p->wte : p->lm_head;
    matmul_forward(a.logits, a.lnf, head, NULL, buf.scratch, BT, C, V);

    return targets ? crossentropy_forward(a.ce_stats, a.losses, a.logits, targets, BT, V) : -1.0f;
}

/* forward_pass on the model's own buffers, recording the batch and its loss for
 * gpt_backward (which also needs the ids, for dE's lookup scatter). */
static float forward(GPT* m, const int* inputs, const int* targets, int B, int T, int keep) {
    m->B = B; m->T = T;
    gpt_sync_embedding(m);  /* E = A B of the factors as they are now */
    ForwardBuffers own = {m->acts, m->scratch, 0};
    m->mean_loss = forward_pass(m, own, inputs, targets, B, T, keep);
    memcpy(m->inputs, inputs, sizeof(int) * B * T);  /* B, T checked by forward_pass */
    if (targets) memcpy(m->targets, targets, sizeof(int) * B * T);
    m->forward_dropout = drop_p(m);
    m->forward_token_dropout = drop_token_p(m);
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

/* ------------------------------------------------------------------------- */
/* backward: the forward in reverse, one call per step                        */

void gpt_zero_grad(GPT* m) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m->num_params; i++) m->grads_memory[i] = 0.0f;
}

/* The parameter gradients a backward only adds into: layer norms' and positions'
 * sums over the rows, E's lookup scatter when E is not the output weight. Zeroed
 * before a GRADS_SET backward; every other gradient (the linear layers', and E
 * through the tied head, its first writer) is written whole by its product.
 * With embed_rank, dE is not a parameter gradient but the pass's own (V, C)
 * scratch, which backward_pass zeroes itself. */
static void zero_summed_grads(const GPTConfig* c, const ParameterTensors* g) {
    size_t C = c->n_embd, LC = (size_t)c->n_layer * C;
    struct { float* grad; size_t n; } summed[] = {
        {g->wpe, (size_t)c->block_size * C}, {g->ln1w, LC}, {g->ln1b, LC}, {g->ln2w, LC}, {g->ln2b, LC},
        {g->lnfw, C}, {g->lnfb, C}, {c->tie_weights ? NULL : g->wte, (size_t)c->vocab_size * C}};
    for (size_t i = 0; i < sizeof summed / sizeof summed[0]; i++)
        if (summed[i].grad) memset(summed[i].grad, 0, summed[i].n * sizeof(float));
}

/* block_forward reversed. dx holds d(block output) and leaves as d(block input):
 * at a sum x + f(LN(x)) the gradient reaches the branch f unchanged (dx itself is
 * the branch's dout) and LN's backward then adds its part to dx. o: block l's
 * activations; d: the gradients of one block's, reused by every block. */
static void block_backward(const GPT* m, const BackwardBuffers* buf, int l, BlockActs o, BlockActs d, const float* x,
                           float* dx, int B, int T, GradMode mode) {
    const GPTConfig* c = &m->config;
    const ParameterTensors *p = &m->params, *g = &buf->grads;
    int C = c->n_embd, NH = c->n_head, BT = B * T;
    size_t BTC = (size_t)BT * C;
    float pdrop = m->forward_dropout;  /* the masks of the forward: same keys */
    long row0 = buf->first_row;

    /* undo residual3 = residual2 + dropout(fcproj): dx reaches fcproj through the mask */
    const float* dbranch = branch_grad(d.fcproj, dx, BTC, pdrop, drop_key(m, row0, l, DROP_MLP_RESID));
    /* undo fcproj = fch_gelu Wfcproj^T + b */
    linear_backward(m, buf, l, LIN_FCPROJ, d.fch_gelu, dbranch, o.fch_gelu, BT, mode);
    /* undo fch_gelu = gelu(fch) */
    gelu_backward(d.fch, o.fch, d.fch_gelu, BTC * 4);
    /* undo fch = ln2 Wfc^T + b */
    linear_backward(m, buf, l, LIN_FC, d.ln2, d.fch, o.ln2, BT, mode);
    /* undo ln2 = LN2(residual2), residual2 = x + attproj: dx becomes d(residual2) and reaches attproj */
    layernorm_backward(dx, g->ln2w + l * C, at(g->ln2b, l * C), d.ln2, o.residual2, p->ln2w + l * C, o.ln2_mean,
                       o.ln2_rstd, BT, C);
    /* undo the dropout on attproj */
    dbranch = branch_grad(d.attproj, dx, BTC, pdrop, drop_key(m, row0, l, DROP_ATTN_RESID));
    /* undo attproj = atty Wattproj^T + b */
    linear_backward(m, buf, l, LIN_ATTPROJ, d.atty, dbranch, o.atty, BT, mode);
    /* undo atty = attention(qkv) */
    attention_backward(d.qkv, buf->scratch, d.atty, o.qkv, o.att_stats, B, T, C, NH, pdrop,
                       drop_key(m, row0, l, DROP_ATTN));
    /* undo the rotary turn of q and k: their gradient turned back */
    if (m->rope_cs) rope_backward(d.qkv, m->rope_cs, B, T, C, NH);
    /* undo qkv = ln1 Wqkv^T + b */
    linear_backward(m, buf, l, LIN_QKV, d.ln1, d.qkv, o.ln1, BT, mode);
    /* undo ln1 = LN1(x): dx becomes d(x), the gradient of block l-1's output */
    layernorm_backward(dx, g->ln1w + l * C, at(g->ln1b, l * C), d.ln1, x, p->ln1w + l * C, o.ln1_mean, o.ln1_rstd,
                       BT, C);
}

void backward_pass(const GPT* m, BackwardBuffers buf, const int* inputs, const int* targets, int B, int T,
                   int batch_rows, GradMode mode) {
    const GPTConfig* c = &m->config;
    int C = c->n_embd, L = c->n_layer, V = c->vocab_size;
    size_t BT = (size_t)B * T, BTC = BT * C;
    const ParameterTensors *p = &m->params, *g = &buf.grads;
    ActivationTensors a = buf.acts, d = buf.dacts;
    /* The residual stream's gradient is one buffer, dx, updated in place from the top
     * down. Every other gradient is first written whole (kernels.h): only dx is zeroed. */
    float* dx = d.encoded;
    /* With embed_rank, g->wte is this pass's dE, a scratch: written whole whatever
     * mode says (e_mode), then folded into dA and dB with mode, at the end */
    GradMode e_mode = c->embed_rank ? GRADS_SET : mode;
    if (mode == GRADS_SET) zero_summed_grads(c, g);
    else if (c->embed_rank && !c->tie_weights) memset(g->wte, 0, (size_t)V * C * sizeof(float));
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BTC; i++) dx[i] = 0.0f;

    /* loss = mean_n -log softmax(z_n)[y_n]  ->  dz = (softmax(z) - onehot(y)) / batch_rows */
    crossentropy_backward(d.logits, a.logits, a.ce_stats, targets, BT, V, batch_rows);
    /* undo z = h E^T: dh = dz E and dE = dz^T h (+= with GRADS_ADD). Tied, dE is wte's
     * gradient and this its DENSE part: every row of E gets one from every position. */
    const float* head = c->tie_weights ? p->wte : p->lm_head;
    float* dhead = c->tie_weights ? g->wte : g->lm_head;
    matmul_backward(d.lnf, dhead, NULL, d.logits, a.lnf, head, buf.scratch, BT, C, V,
                    c->tie_weights ? e_mode : mode);
    /* undo h = LNf(x) */
    const float* x_last = a.residual3 + (L - 1) * BTC;
    layernorm_backward(dx, g->lnfw, g->lnfb, d.lnf, x_last, p->lnfw, a.lnf_mean, a.lnf_rstd, BT, C);

    BlockActs d_block = block_slice(&d, 0, c, B, T);
    for (int l = L - 1; l >= 0; l--) {
        const float* x = l == 0 ? a.encoded : a.residual3 + (l - 1) * BTC;  /* block l's input */
        block_backward(m, &buf, l, block_slice(&a, (size_t)l, c, B, T), d_block, x, dx, B, T, mode);
    }

    /* undo x_t = s E[i_t] + PE_t: dE += s * (SPARSE row scatter: only rows of tokens in
     * the batch); dPE += dx summed over the batch (learned positions only). Tied, dE
     * now holds (lookup scatter) + (dense output term). */
    dropout_backward(dx, BTC, m->forward_dropout, drop_key(m, buf.first_row, 0, DROP_EMBED));
    encoder_backward(g->wte, g->wpe, dx, inputs, c->embed_scale, m->forward_token_dropout,
                     drop_key(m, buf.first_row, 0, DROP_TOKEN), B, T, C);

    /* undo E = A B (embed_rank > 0), the linear layer E = A wte_b^T: dE, complete
     * now, reaches the factors as any layer's output gradient reaches its input and
     * weight: dA = dE B^T (sparse rows and the dense term alike), and
     * dB = A^T dE, stored as its transpose dwte_b = dE^T A. matmul_backward
     * overwrites its input gradient, so a GRADS_ADD pass writes dA past dE first
     * (embed_grad_floats) and adds it. */
    if (c->embed_rank) {
        int r = c->embed_rank;
        size_t Vr = (size_t)V * r;
        float* da = mode == GRADS_SET ? g->wte_a : g->wte + (size_t)V * C;
        matmul_backward(da, g->wte_b, NULL, g->wte, p->wte_a, p->wte_b, buf.scratch, V, r, C, mode);
        if (mode == GRADS_ADD) {
            #pragma omp parallel for schedule(static)
            for (size_t i = 0; i < Vr; i++) g->wte_a[i] += da[i];
        }
    }
}

void model_backward(GPT* m, GradMode mode) {
    if (!m->backward_ready) die(EXIT_BAD_INPUT, "gpt_backward: the last forward had no targets, or was gpt_loss");
    BackwardBuffers own = {m->acts, m->dacts, m->grads, m->scratch, 0};
    backward_pass(m, own, m->inputs, m->targets, m->B, m->T, m->B * m->T, mode);
}

void gpt_backward(GPT* m) { model_backward(m, GRADS_ADD); }
