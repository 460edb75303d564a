/* diagnose.c: the first non-finite value of a model (diagnose.h), found by
 * walking the parameter and activation tables in the order a step fills them.
 * Not here: deciding that a run went wrong (train.c). */
#include "gpt/diagnose.h"

#include <math.h>
#include <stdio.h>

#include "gpt/internal.h"

/* The first value of x[0..n) that is not finite: its index, or -1. */
static long first_nonfinite(const float* x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long)i;
    return -1;
}

/* The stage of "layer" l when walking the network: -1 the embedding, 0..L-1 the blocks, L the output. */
static Stage layer_stage(int l, int L) { return l < 0 ? STAGE_EMBED : l < L ? STAGE_BLOCK : STAGE_OUTPUT; }

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
    int blocks = t->spec->stage == STAGE_BLOCK;
    size_t n = t->size / t->layers;
    return report_slice(memory + t->offset + (blocks ? l * n : 0), n, what, t->name, blocks ? l : -1, out, len);
}

/* The last forward's activations, stage by stage, each batch group's in turn. */
static int report_activations(const GPT* m, char* out, size_t len) {
    int L = m->config.n_layer, G = m->acts_groups;
    /* where each tensor starts (laid out for max_batch x block_size, or in groups,
     * each for its share of max_batch), and how much of it the last forward's
     * (B, T) filled */
    size_t layout[NUM_ACTIVATION_TENSORS], sizes[NUM_ACTIVATION_TENSORS], start[NUM_ACTIVATION_TENSORS];
    activation_sizes(layout, &m->config, m->max_batch / G, m->config.block_size, ACTS_ALL_BLOCKS);
    activation_sizes(sizes, &m->config, m->B / G, m->T, ACTS_ALL_BLOCKS);
    size_t group = 0;
    for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) { start[i] = group; group += layout[i]; }
    for (int l = -1; l <= L; l++)
        for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) {
            if (ACTIVATION_TABLE[i].stage != layer_stage(l, L)) continue;
            int blocks = ACTIVATION_TABLE[i].stage == STAGE_BLOCK;
            size_t n = blocks ? sizes[i] / L : sizes[i];
            for (int g = 0; g < G; g++) {
                char name[64];  /* "atty", or "atty of batch group 1" */
                snprintf(name, sizeof name, G > 1 ? "%s of batch group %d" : "%s", ACTIVATION_TABLE[i].name, g);
                if (report_slice(m->acts_memory + g * group + start[i] + (blocks ? l * n : 0), n, "activation", name,
                                 blocks ? l : -1, out, len))
                    return 1;
            }
        }
    return 0;
}

int gpt_find_nonfinite(const GPT* m, char* out, size_t len) {
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        for (int l = 0; l < m->tensors[i].layers; l++)
            if (report_param(m, m->params_memory, i, l, "parameter", out, len)) return 1;
    if (m->acts_memory && m->B > 0 && report_activations(m, out, len)) return 1;
    int L = m->config.n_layer;
    for (int l = L; l >= -1; l--)  /* as backward makes them: output, blocks top down, embedding */
        for (int i = NUM_PARAM_TENSORS - 1; i >= 0; i--)
            if (m->tensors[i].spec->stage == layer_stage(l, L) &&
                report_param(m, m->grads_memory, i, l, "gradient of", out, len))
                return 1;
    return 0;
}
