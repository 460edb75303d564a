/* layout.c: where the model's activations live, and how large its buffers are.
 * The activation table says, for every tensor the forward makes, its width per
 * position, whether it has a slice per layer and whether the backward keeps its
 * gradient; the layouts of ActivationTensors and the scratch sizes follow.
 * Not here: the parameters' layout (model.c, from PARAM_TABLE). */
#include <stddef.h>

#include "gpt/internal.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"

/* The statistics kept for the backward (means, 1/std, softmax maxima and sums)
 * and the losses are not differentiated through, and the residual stream's
 * gradient is one buffer, `encoded` (see backward_pass): grad 0. */
const ActivationSpec ACTIVATION_TABLE[NUM_ACTIVATION_TENSORS] = {
    {"encoded", STAGE_EMBED, W_C, 1},
    {"ln1", STAGE_BLOCK, W_C, 1},
    {"ln1_mean", STAGE_BLOCK, W_1, 0},
    {"ln1_rstd", STAGE_BLOCK, W_1, 0},
    {"qkv", STAGE_BLOCK, W_3C, 1},
    {"atty", STAGE_BLOCK, W_C, 1},
    {"att_stats", STAGE_BLOCK, W_HEADS2, 0},
    {"attproj", STAGE_BLOCK, W_C, 1},
    {"residual2", STAGE_BLOCK, W_C, 0},
    {"ln2", STAGE_BLOCK, W_C, 1},
    {"ln2_mean", STAGE_BLOCK, W_1, 0},
    {"ln2_rstd", STAGE_BLOCK, W_1, 0},
    {"fch", STAGE_BLOCK, W_4C, 1},
    {"fch_gelu", STAGE_BLOCK, W_4C, 1},
    {"fcproj", STAGE_BLOCK, W_C, 1},
    {"residual3", STAGE_BLOCK, W_C, 0},
    {"lnf", STAGE_OUTPUT, W_C, 1},
    {"lnf_mean", STAGE_OUTPUT, W_1, 0},
    {"lnf_rstd", STAGE_OUTPUT, W_1, 0},
    {"logits", STAGE_OUTPUT, W_V, 1},
    {"ce_stats", STAGE_OUTPUT, W_2, 0},
    {"losses", STAGE_OUTPUT, W_1, 0},
};

void activation_sizes(size_t sizes[NUM_ACTIVATION_TENSORS], const GPTConfig* c, int B, int T, ActLayout layout) {
    int gradients = layout == GRADS_ONE_BLOCK;
    size_t C = c->n_embd, L = layout == ACTS_ALL_BLOCKS ? c->n_layer : 1;
    size_t widths[] = {[W_1] = 1, [W_2] = 2, [W_C] = C, [W_3C] = 3 * C, [W_4C] = 4 * C,
                       [W_HEADS2] = 2 * (size_t)c->n_head, [W_V] = c->vocab_size};
    for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) {
        const ActivationSpec* s = &ACTIVATION_TABLE[i];
        size_t slices = s->stage == STAGE_BLOCK ? L : 1;
        sizes[i] = gradients && !s->grad ? 0 : slices * (size_t)B * T * widths[s->width];
    }
}

size_t point_activations(ActivationTensors* a, float* memory, const GPTConfig* c, int B, ActLayout layout) {
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

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* A product with W of (out, in): its forward's packed W^T, its backward's packed W. */
static size_t product_scratch(size_t need, int in, int out) {
    need = max_size(need, matmul_scratch_floats(in, out));
    return max_size(need, matmul_backward_scratch_floats(in, out));
}

size_t scratch_floats(const GPTConfig* c, int threads) {
    size_t need = (size_t)threads * attention_scratch_floats(c->block_size, c->n_embd, c->n_head);
    for (int w = 0; w < NUM_BLOCK_LINEAR; w++) {
        int in, out;
        linear_shape(c, (Linear)w, &in, &out);
        need = product_scratch(need, in, out);
    }
    if (c->embed_rank > 0) need = product_scratch(need, c->embed_rank, c->n_embd);  /* E = A B */
    return product_scratch(need, c->n_embd, c->vocab_size);  /* the logits, z = h E^T */
}

size_t model_scratch_floats(const GPTConfig* c, int threads) {
    return max_size(scratch_floats(c, threads), (size_t)threads * scratch_floats(c, 1));
}

size_t lane_token_ints(const GPTConfig* c, int max_batch, int threads) {
    return (size_t)threads * 2 * max_batch * c->block_size;
}
