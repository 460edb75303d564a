/* internal.h: what the modules around the model (gpt/) need of its insides.
 * Not for programs: they use model.h and the modules' own headers.
 *
 *   model.c          the passes: forward_pass, backward_pass, and their buffers
 *   gpt/layout.c     the activation table, and how many floats each buffer takes
 *   gpt/evaluate.c   evaluation lanes        gpt/groups.c    batch groups
 *   gpt/memory.c     the memory estimate     gpt/diagnose.c  NaN diagnosis
 *   gpt/generate.c   the key/value cache
 */
#ifndef GPT_INTERNAL_H
#define GPT_INTERNAL_H

#include <stddef.h>

#include "kernels/matmul.h"
#include "model.h"

/* ------------------------------------------------------------------------- */
/* the passes (model.c)                                                      */

/* Where a forward writes: its activations, and scratch for the packed W^T and
 * attention's blocks. The model's own (acts, scratch), an evaluation lane's, or
 * a group's of gpt_forward_backward, which also says where its rows start in the
 * batch (first_row, for the dropout masks). */
typedef struct {
    ActivationTensors acts;
    float* scratch;
    long first_row;
} ForwardBuffers;

/* Where a backward reads and writes: the forward's activations, the gradients
 * of one block's activations, the parameter gradients it adds into, scratch,
 * and where its rows start in the batch. The model's own, or a group's. */
typedef struct {
    ActivationTensors acts, dacts;
    ParameterTensors grads;
    float* scratch;
    long first_row;
} BackwardBuffers;

/* The forward pass into buf, the mean loss its result (-1 without targets). It
 * reads the parameters and the mode, and writes nothing of the model itself, so
 * that lanes can run it side by side. m->T must already be this T (the dropout
 * keys use it). keep = 1: every block's activations stay for the backward.
 * keep = 0: each block overwrites the one before (slot 0), so a forward for the
 * loss alone keeps its working set in cache. */
float forward_pass(const GPT* m, ForwardBuffers buf, const int* inputs, const int* targets, int B, int T, int keep);

/* The backward of the forward that wrote buf.acts over inputs/targets (B,T): the
 * gradients of the mean loss over batch_rows rows (B*T, or the whole batch's when
 * these rows are one group of it), added into buf.grads or replacing them (mode). */
void backward_pass(const GPT* m, BackwardBuffers buf, const int* inputs, const int* targets, int B, int T,
                   int batch_rows, GradMode mode);

/* gpt_backward with a choice of mode: the backward of the model's own last forward. */
void model_backward(GPT* m, GradMode mode);

/* Dies with a message unless (B, T) fits the model, every id is in the
 * vocabulary, and the threads fit the scratch. */
void check_batch(const GPT* m, const int* inputs, const int* targets, int B, int T);

/* The dropout probability in the current mode (0 in eval mode). */
float drop_p(const GPT* m);
/* embed_dropout's probability in the current mode (0 in eval mode). */
float drop_token_p(const GPT* m);
/* PE, the (block_size, C) positions added to the embeddings: learned wpe, the
 * sinusoid table, or NULL (pos_encoding none). */
const float* positions(const GPT* m);

/* Each row of PARAM_TABLE worked out for config c, laid out one after another
 * in memory order; returns the floats they take. */
size_t param_layout(ParamTensorInfo t[NUM_PARAM_TENSORS], const GPTConfig* c);

/* Point p's fields at the tensors of table t in memory (absent ones NULL; a tied
 * lm_head at wte): the parameters, their gradients, or a batch group's copy.
 * embedding: with embed_rank > 0, where wte points instead, E = A B for the
 * parameters, a dE scratch for gradients; NULL otherwise. */
void point_params(ParameterTensors* p, float* memory, const ParamTensorInfo t[NUM_PARAM_TENSORS], int tie_weights,
                  float* embedding);

/* Floats of the model's dE with embed_rank > 0 (0 without): (V, C), then room
 * for a GRADS_ADD backward's dA (V, r) before it is added. A GRADS_SET pass (a
 * batch group's) needs only the (V, C). */
size_t embed_grad_floats(const GPTConfig* c);

/* The linear layers of a block: W is (out, in). */
typedef enum { LIN_QKV, LIN_ATTPROJ, LIN_FC, LIN_FCPROJ, NUM_BLOCK_LINEAR } Linear;
void linear_shape(const GPTConfig* c, Linear which, int* in, int* out);

/* base + offset into a stacked tensor, or NULL for an absent one (the biases
 * when bias = 0; the kernels then skip them). */
float* at(float* base, size_t offset);

/* ------------------------------------------------------------------------- */
/* the activation table and buffer sizes (gpt/layout.c)                      */

/* The activation tensors in ActivationTensors' order, which is the order the
 * forward makes them within a block. stage STAGE_BLOCK: one slice per layer;
 * width: floats per position (B*T positions); grad: the backward keeps a
 * gradient of it. */
typedef enum { W_1, W_2, W_C, W_3C, W_4C, W_HEADS2, W_V } ActWidth;
typedef struct {
    const char* name;
    Stage stage;
    ActWidth width;
    int grad;
} ActivationSpec;
extern const ActivationSpec ACTIVATION_TABLE[NUM_ACTIVATION_TENSORS];

/* The three layouts of ActivationTensors: the activations of every block (for
 * the backward); one block's, which a loss-only forward reuses block after block
 * (an evaluation lane); and the gradients, one block's and only of the tensors
 * marked grad. */
typedef enum { ACTS_ALL_BLOCKS, ACTS_ONE_BLOCK, GRADS_ONE_BLOCK } ActLayout;

/* Floats per activation tensor for a (B, T) batch in a layout. */
void activation_sizes(size_t sizes[NUM_ACTIVATION_TENSORS], const GPTConfig* c, int B, int T, ActLayout layout);
/* Point a's fields into memory (unless memory is NULL) in a layout for
 * (B, block_size); returns the floats it takes. */
size_t point_activations(ActivationTensors* a, float* memory, const GPTConfig* c, int B, ActLayout layout);

/* scratch of one pass on `threads` threads: the packed W^T of the forward's
 * widest linear layer, the packed W of the backward's, or attention's blocks */
size_t scratch_floats(const GPTConfig* c, int threads);
/* The model's scratch: a pass's on `threads` threads, or for each of as many
 * evaluation lanes a one-thread pass's */
size_t model_scratch_floats(const GPTConfig* c, int threads);
/* Each thread's inputs and targets when gpt_mean_loss runs lanes */
size_t lane_token_ints(const GPTConfig* c, int max_batch, int threads);

/* ------------------------------------------------------------------------- */
/* batch groups (gpt/groups.c)                                               */

/* How the threads run `groups` batch groups: `lanes` groups side by side, `inner`
 * threads on each (threads left over when lanes does not divide them stay idle). */
void group_split(int groups, int* lanes, int* inner);
/* Floats of the memory that batch groups beyond the first add: groups 1..'s
 * gradient copies, and every group's scratch. */
size_t group_floats(const GPTConfig* c, size_t num_params, int groups);

#endif
