/* model.h: the GPT. Config, parameter layout, forward, backward.
 *
 * Data flow (shapes with the legend of kernels.h):
 *   ids (B,T) -> x = embed_scale * E[ids] + PE        (B,T,C)
 *   n_layer x [ x += attn(LN1(x)) ; x += mlp(LN2(x)) ] (pre-LayerNorm blocks)
 *   h = LNf(x) -> logits z = h E^T                     (B,T,V), E tied or a separate head
 *   loss = mean cross-entropy of the next token
 */
#ifndef MODEL_H
#define MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum { POS_LEARNED = 0, POS_SINUSOIDAL = 1 } PosEncoding;

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
} GPTConfig;

/* Every parameter tensor, in memory order. Per-layer tensors are stacked over L. */
typedef struct {
    float* wte;       /* (V, C)        E, the token embedding */
    float* wpe;       /* (block_size, C) learned positions; NULL when sinusoidal */
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
enum { NUM_PARAM_TENSORS = 17 };

/* Describes one parameter tensor: where it lives in params_memory and how it is
 * trained. size 0 means absent in this config (wpe when sinusoidal, lm_head when
 * tied, the biases when bias = 0). */
typedef struct {
    const char* name;
    size_t offset, size;   /* in floats, within params_memory / grads_memory */
    int ndim;              /* dims of one layer's tensor: 2 for matrices, 1 for vectors */
    int shape[3];          /* full shape, stacked layers first; unused dims are 0 */
    int decay;             /* AdamW weight decay applies (ndim >= 2, as nanoGPT) */
    float init_std;        /* N(0, init_std); 0 means a constant (LN weight 1, biases 0) */
    float init_const;
} ParamTensorInfo;

/* Everything the forward pass keeps for the backward pass. Among the gradients of
 * activations (GPT.dacts) only those the backward differentiates have memory; the
 * statistics, the losses and residual2/residual3 are NULL there (model.c). */
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
    float* pe_table;                       /* (block_size, C) sinusoid table, or NULL */
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
    uint64_t dropout_seed;
    long dropout_step;
    long batch_offset;                     /* first row of the global batch (gpt_set_batch_offset) */
    int batch_groups;                      /* gpt_set_batch_groups; 1 by default */
    int group_threads;                     /* the threads per group group_scratch was sized for */
    float* group_grads;                    /* groups 1.. add their gradients here, (batch_groups - 1) x num_params */
    float* group_scratch;                  /* each group's scratch, batch_groups blocks */
    int acts_groups;                       /* the groups the last forward's activations are laid out in */
} GPT;

/* Generation state: the keys and values of every position so far, per layer, so
 * each new token costs one position's forward, not the whole window's. */
typedef struct {
    int n_ctx;                 /* positions held, <= block_size */
    float* k;                  /* (L, block_size, C) */
    float* v;                  /* (L, block_size, C) */
    float* x;                  /* (C) the residual stream of the current position */
    float* ln;                 /* (C) */
    float* qkv;                /* (3C) */
    float* atty;               /* (C) */
    float* proj;               /* (C) */
    float* fch;                /* (4C) */
    float* fch_gelu;           /* (4C) */
    float* scores;             /* (block_size) */
    float* logits;             /* (V) */
} KVCache;

/* What gpt_build plus AdamW will allocate, in bytes, worked out from the config
 * alone (nothing is allocated): ./train prints it before building, and the
 * benchmark compares it with the measured peak RSS. */
typedef struct {
    size_t params, grads, adamw;   /* num_params floats each; adamw holds m and v */
    size_t groups;                 /* batch groups beyond the first: their gradients and scratch */
    size_t acts, dacts;            /* activations and their gradients */
    size_t scratch;                /* packed W^T, or attention's per-thread blocks (or one such slice */
                                   /* per evaluation lane, if larger); gpt_mean_loss's token buffers */
    size_t total;
} MemoryEstimate;
MemoryEstimate gpt_memory_estimate(const GPTConfig* config, int max_batch, int batch_groups);
#define BYTES_PER_MB (1024.0 * 1024.0)
/* Print "memory estimate: TOTAL MB = parameters .. + gradients .. + ..." with one more
 * named part (extra_mb MB, e.g. the token data) unless extra_name is NULL. */
void gpt_memory_estimate_print(const MemoryEstimate* e, const char* extra_name, double extra_mb);

/* Allocate and initialise as GPT-2/nanoGPT: weights N(0,0.02), the two residual
 * output projections N(0, 0.02/sqrt(2 n_layer)), biases 0, LN weight 1.
 * The config must already be valid (config.c checks user input). max_batch 0
 * allocates no batch activations: the model can then only generate (KVCache). */
void gpt_build(GPT* model, const GPTConfig* config, int max_batch, uint64_t seed);
void gpt_free(GPT* model);

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
/* The mean of gpt_loss over n_batches batches that next_batch(ctx, inputs, targets)
 * writes one after another (B*T ids each): an evaluation. With gpt_eval_lanes(model)
 * > 1 each thread scores whole batches on its own; the result has the same bits
 * as (float)(sum of the gpt_loss values in double / n_batches) either way.
 * next_batch is called in batch order, never two at once, but from any thread
 * and into a buffer of that thread's (the caller's inputs/targets when one
 * thread scores them all). Afterwards gpt_backward refuses until a gpt_forward. */
typedef void (*NextBatch)(void* ctx, int* inputs, int* targets);
float gpt_mean_loss(GPT* model, int n_batches, NextBatch next_batch, void* ctx, int* inputs, int* targets,
                    int B, int T);
/* The threads gpt_mean_loss runs as lanes, one batch each at a time: all of
 * omp_get_max_threads() when each one's block of activations fits in the
 * model's activation memory, else 1 (one batch at a time on all threads). */
int gpt_eval_lanes(const GPT* model);
void gpt_zero_grad(GPT* model);
/* Gradients of the mean loss of the last forward (which must have had targets),
 * accumulated into model->grads (after a gpt_zero_grad, or onto another batch's). */
void gpt_backward(GPT* model);

/* Batch groups, for training on several threads. A training step's weight
 * gradients are sums over every position of the batch; on threads that share
 * each product, the cores exchange every row they made and meet at a barrier
 * after each kernel. Split into groups of sequences instead, the batch runs as
 * `groups` independent forwards and backwards, the threads spread over the groups,
 * each group adding into a gradient copy of its own; the copies are then summed
 * in group order. The bits depend on the number of groups, never on the number
 * of threads: the sums over the batch are cut into groups at the same places on
 * any thread count. The losses and activation gradients are those of one pass
 * (every row's forward is computed alone); the weight gradients differ from it
 * by rounding. groups must divide max_batch; 1 (the default) is one pass. */
void gpt_set_batch_groups(GPT* model, int groups);
/* A training step's gradients: gpt_forward, then the backward with its
 * gradients REPLACING what model->grads held (no gpt_zero_grad first: the same
 * bits as with one, without the passes that zero the gradients and the groups'
 * copies), in batch groups when there are more than one. Returns the mean loss
 * of the whole batch. B must be a multiple of the groups; with more than one
 * group gpt_backward refuses afterwards. */
float gpt_forward_backward(GPT* model, const int* inputs, const int* targets, int B, int T);
/* Where a NaN or an Inf first appears, in the order a training step makes them:
 * the parameters (table order), the last forward's activations (layer by layer),
 * then the gradients (table order reversed: the output head first, as backward).
 * Writes e.g. "activation qkv of layer 1 (value 0 of 49152 is inf)" into out
 * and returns 1; returns 0 when every value is finite. A diagnosis for a run
 * whose loss or gradient norm stopped being finite; it reads every value once. */
int gpt_find_nonfinite(const GPT* model, char* out, size_t len);

void kvcache_init(KVCache* cache, const GPTConfig* config);
void kvcache_free(KVCache* cache);
/* Append `token` at position cache->n_ctx (which must be < block_size) and return
 * the logits (V) predicting the next token: the same numbers as row n_ctx of a
 * full forward over the tokens so far. Eval mode always. */
const float* gpt_forward_cached(GPT* model, KVCache* cache, int token);

#endif
