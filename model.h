/* model.h: the GPT. Config, parameter layout, forward, backward.
 *
 * Data flow (shapes with the legend of kernels.h):
 *   E = A B when embed_rank > 0                          (V,C) from (V,r) and (r,C), else E itself
 *   ids (B,T) -> x = embed_scale * E[ids] + PE        (B,T,C), PE = 0 with pos_encoding none or rope
 *   n_layer x [ x += attn(LN1(x)) ; x += mlp(LN2(x)) ] (pre-LayerNorm blocks)
 *   h = LNf(x) -> logits z = h E^T                     (B,T,V), E tied or a separate head
 *   loss = mean cross-entropy of the next token
 */
#ifndef MODEL_H
#define MODEL_H

#include <stddef.h>
#include <stdint.h>

/* learned: a trained (block_size, C) matrix; sinusoidal: the fixed sinusoids;
 * none: no positions at all (a causal model can still tell order from how many
 * tokens each position attends to); rope: nothing added to x, every head's q and
 * k turned by their position instead (kernels/rope.h). */
typedef enum { POS_LEARNED = 0, POS_SINUSOIDAL = 1, POS_NONE = 2, POS_ROPE = 3, NUM_POS_ENCODINGS } PosEncoding;
extern const char* const POS_ENCODING_NAMES[NUM_POS_ENCODINGS];  /* "learned", "sinusoidal", "none", "rope" */

typedef struct {
    int vocab_size;        /* V */
    int block_size;        /* longest sequence, T <= block_size */
    int n_layer;           /* L */
    int n_head;            /* NH */
    int n_embd;            /* C */
    PosEncoding pos_encoding;
    float embed_scale;     /* multiplies E[i] in the input path only; must be > 0 */
    int tie_weights;       /* 1: logits = h E^T; 0: a separate lm_head (V,C) */
    int bias;              /* 1: Linears (but the output head) and LayerNorms have biases,
                            * as GPT-2; 0: none, as nanoGPT's default (bias = False) */
    float dropout;         /* probability, in training mode only (see gpt_train_mode) */
    float embed_init_std;  /* E's initial values ~ N(0, embed_init_std^2); 0: the default 0.02 */
    float embed_dropout;   /* training only: drop a position's whole E row with this probability,
                            * before positions are added, the kept ones scaled by 1/(1-p) */
    int embed_rank;        /* r: 0, E a (V,C) parameter; 0 < r < min(V,C), E = A B from the
                            * parameters A (V,r) and B (r,C), as ALBERT factorises it */
} GPTConfig;

/* Every parameter tensor, in memory order: the order of PARAM_TABLE's rows.
 * Per-layer tensors are stacked over L. */
typedef struct {
    float* wte;       /* (V, C)        E, the token embedding. With embed_rank > 0 not a parameter
                       *                but E = A B, computed from wte_a and wte_b into the model's
                       *                own memory (gpt_sync_embedding); its gradient a scratch dE */
    float* wte_a;     /* (V, r)        A, embed_rank > 0 only: each token's r coordinates */
    float* wte_b;     /* (C, r)        B^T, embed_rank > 0 only, stored as a Linear (out, in) from r
                       *                to C, so that E = A B is the linear layer E = A wte_b^T */
    float* wpe;       /* (block_size, C) learned positions; NULL when sinusoidal or none */
    float* ln1w;      /* (L, C) */
    float* ln1b;      /* (L, C)        every bias is NULL when config.bias == 0 */
    float* qkvw;      /* (L, 3C, C)    fused q,k,v projection */
    float* qkvb;      /* (L, 3C) */
    float* attprojw;  /* (L, C, C)     attention output projection */
    float* attprojb;  /* (L, C) */
    float* ln2w;      /* (L, C) */
    float* ln2b;      /* (L, C) */
    float* fcw;       /* (L, 4C, C) */
    float* fcb;       /* (L, 4C) */
    float* fcprojw;   /* (L, C, 4C) */
    float* fcprojb;   /* (L, C) */
    float* lnfw;      /* (C) */
    float* lnfb;      /* (C) */
    float* lm_head;   /* (V, C)        == wte when tied (no memory of its own) */
} ParameterTensors;
enum { NUM_PARAM_TENSORS = 19 };

/* ------------------------------------------------------------------------- */
/* the parameter table: one row per tensor, everything else derives from it  */

/* Where a tensor sits in the network, in the order a forward reaches it. */
typedef enum { STAGE_EMBED, STAGE_BLOCK, STAGE_OUTPUT } Stage;
/* One of a tensor's dimensions, in the config's terms. */
typedef enum { DIM_NONE, DIM_C, DIM_3C, DIM_4C, DIM_V, DIM_BLOCK, DIM_R } ParamDim;  /* DIM_BLOCK: block_size; DIM_R: embed_rank */
/* When a tensor exists: always, or only for some configs. */
typedef enum {
    ALWAYS,
    IF_BIAS,                 /* a bias: absent when config.bias = 0 */
    IF_LEARNED,              /* absent with sinusoidal positions (a fixed table) or none */
    IF_UNTIED,               /* absent when tied: the output weight is then E itself */
    IF_FULL_E,               /* E as one parameter: absent when embed_rank > 0 */
    IF_FACTORED,             /* A and B: only when embed_rank > 0 */
} ParamPresence;
/* GPT-2's init. The two projections that write into the residual stream are
 * scaled down so that the stream's variance does not grow with depth. */
typedef enum {
    INIT_NORMAL,             /* N(0, 0.02) */
    INIT_RESID,              /* N(0, 0.02 / sqrt(2 n_layer)) */
    INIT_ONES,               /* LayerNorm weights */
    INIT_ZEROS,              /* biases */
} ParamInit;

typedef struct {
    const char* name;        /* this project's: the ParameterTensors field, e.g. "qkvw" */
    size_t field;            /* offsetof(ParameterTensors, <name>) */
    const char* hf_name;     /* Hugging Face GPT-2's, %d the layer: "transformer.h.%d.attn.c_attn.weight" */
    int hf_transpose;        /* 1: GPT-2 keeps it as Conv1D [in, out]; this project as nn.Linear [out, in] */
    Stage stage;             /* STAGE_BLOCK: one slice per layer, stacked */
    ParamDim rows, cols;     /* one layer's shape; cols DIM_NONE for a vector */
    ParamPresence present;
    int decay;               /* AdamW weight decay applies (the matrices, as nanoGPT) */
    ParamInit init;
} ParamSpec;
/* The rows in memory order (model.c). */
extern const ParamSpec PARAM_TABLE[NUM_PARAM_TENSORS];

/* One tensor as a config lays it out: its row, worked out. */
typedef struct {
    const char* name;        /* the row's name */
    const ParamSpec* spec;   /* the row */
    size_t offset, size;     /* in floats, within params_memory / grads_memory; size 0: absent */
    int ndim;                /* dims of one layer's tensor: 2 for matrices, 1 for vectors */
    int shape[3];            /* full shape, stacked layers first; unused dims are 0, and so is
                              * the first of an absent tensor */
    int slice[2];            /* one layer's shape (rows, cols or 0), absent or not */
    int layers;              /* n_layer slices when spec->stage is STAGE_BLOCK, else 1 */
    int decay;               /* the row's */
    float init_std;          /* N(0, init_std); 0 means a constant (LN weight 1, biases 0) */
    float init_const;
} ParamTensorInfo;

/* Everything the forward pass keeps for the backward pass. Among the gradients of
 * activations (GPT.dacts) only those the backward differentiates have memory; the
 * statistics, the losses and residual2/residual3 are NULL there (gpt/layout.c). */
typedef struct {
    float* encoded;    /* (B,T,C)     x = s E[ids] + PE */
    float* ln1;        /* (L,B,T,C) */
    float* ln1_mean;   /* (L,B,T) */
    float* ln1_rstd;   /* (L,B,T) */
    float* qkv;        /* (L,B,T,3C) */
    float* atty;       /* (L,B,T,C)   attention output before its projection */
    float* att_stats;  /* (L,B,NH,T,2) each attention row's softmax max and 1/sum */
    float* attproj;    /* (L,B,T,C) */
    float* residual2;  /* (L,B,T,C)   x after the attention residual */
    float* ln2;        /* (L,B,T,C) */
    float* ln2_mean;   /* (L,B,T) */
    float* ln2_rstd;   /* (L,B,T) */
    float* fch;        /* (L,B,T,4C) */
    float* fch_gelu;   /* (L,B,T,4C) */
    float* fcproj;     /* (L,B,T,C) */
    float* residual3;  /* (L,B,T,C)   x after the MLP residual: the block's output */
    float* lnf;        /* (B,T,C)     h */
    float* lnf_mean;   /* (B,T) */
    float* lnf_rstd;   /* (B,T) */
    float* logits;     /* (B,T,V)     z = h E^T */
    float* ce_stats;   /* (B,T,2)     each row's max logit and 1/sum: the softmax, recomputed in the backward */
    float* losses;     /* (B,T) */
} ActivationTensors;
enum { NUM_ACTIVATION_TENSORS = 22 };

typedef struct {
    GPTConfig config;
    int max_batch;                         /* activations are sized for (max_batch, block_size) */
    ParamTensorInfo tensors[NUM_PARAM_TENSORS];
    ParameterTensors params, grads;        /* pointers into the two blocks below */
    float* params_memory;                  /* num_params floats, one allocation */
    float* grads_memory;                   /* same layout */
    size_t num_params;
    ActivationTensors acts, dacts;         /* activations and their gradients */
    float* acts_memory;
    float* dacts_memory;
    size_t num_activations;                /* floats in acts_memory (n_layer blocks) */
    size_t num_dactivations;               /* floats in dacts_memory (one block: see gpt_backward) */
    float* embed;                          /* (V, C) E = A B when embed_rank > 0 (params.wte), else NULL */
    float* dembed;                         /* (V, C) dE of the last backward, embed_rank > 0 (grads.wte) */
    float* pe_table;                       /* (block_size, C) sinusoid table, or NULL */
    float* rope_cs;                        /* (block_size, hs/2, 2) rotary cos/sin, or NULL */
    float* scratch;                        /* packed W^T in matmul_forward; attention's blocks; */
                                           /* a slice of both for each evaluation lane */
    int scratch_threads;                   /* the thread count scratch was sized for */
    int* inputs;                           /* (B,T) ids of the last forward */
    int* targets;                          /* (B,T) or unused when forward had none */
    int* lane_tokens;                      /* each thread's (B,T) inputs and targets in gpt_mean_loss */
    int B, T;                              /* shape of the last forward */
    float mean_loss;                       /* of the last forward; -1 if no targets */
    int backward_ready;                    /* the last forward kept what gpt_backward needs */
    int training;                          /* 1: dropout on, masks keyed by (seed, step) */
    float forward_dropout;                 /* the probability the last forward used */
    float forward_token_dropout;           /* and its embed_dropout */
    uint64_t dropout_seed;
    long dropout_step;
    long batch_offset;                     /* first row of the global batch (gpt_set_batch_offset) */
    int batch_groups;                      /* gpt_set_batch_groups; 1 by default */
    int group_threads;                     /* the threads per group group_scratch was sized for */
    float* group_grads;                    /* groups 1.. add their gradients here, (batch_groups - 1) x num_params */
    float* group_scratch;                  /* each group's scratch, batch_groups blocks */
    float* group_dembed;                   /* groups 1..'s dE, (batch_groups - 1) x V x C, embed_rank > 0 */
    int acts_groups;                       /* the groups the last forward's activations are laid out in */
} GPT;

/* Allocate and initialise as GPT-2/nanoGPT: weights N(0,0.02), the two residual
 * output projections N(0, 0.02/sqrt(2 n_layer)), biases 0, LN weight 1.
 * The config must already be valid (config.c checks user input). max_batch 0
 * allocates no batch activations: the model can then only generate (gpt/generate.h). */
void gpt_build(GPT* model, const GPTConfig* config, int max_batch, uint64_t seed);
void gpt_free(GPT* model);
/* With embed_rank > 0: E = A B, from the factors as they are now, into params.wte.
 * The forwards and the checkpoint loaders call it; whoever changes wte_a or
 * wte_b otherwise (the optimizer) calls it before reading E without a forward.
 * Without embed_rank a no-op: E is then the parameter itself. */
void gpt_sync_embedding(GPT* model);

/* Training mode: dropout with masks keyed by (seed, step), so a step's masks are
 * the same on any thread count and after a resume. Eval mode (the default after
 * gpt_build): no dropout. */
void gpt_train_mode(GPT* model, uint64_t seed, long step);
void gpt_eval_mode(GPT* model);
/* The batches given to gpt_forward are rows first_row.. of a larger global batch
 * (data-parallel training, dist.h): dropout then draws the masks those rows have
 * in the global batch, so N ranks train exactly as one process with the whole
 * batch. 0 (the default) for a batch of its own. */
void gpt_set_batch_offset(GPT* model, long first_row);

/* Forward over inputs (B,T) with B <= max_batch, T <= block_size. With targets,
 * computes and returns the mean loss; with targets == NULL only the logits. */
float gpt_forward(GPT* model, const int* inputs, const int* targets, int B, int T);
/* The same loss, bit for bit, for evaluation: every block reuses the first block's
 * activation memory, so gpt_backward cannot follow (it refuses). */
float gpt_loss(GPT* model, const int* inputs, const int* targets, int B, int T);
void gpt_zero_grad(GPT* model);
/* Gradients of the mean loss of the last forward (which must have had targets),
 * accumulated into model->grads (after a gpt_zero_grad, or onto another batch's). */
void gpt_backward(GPT* model);

#endif
