/* groups.c: a training step as independent passes over groups of sequences
 * (groups.h), each on a team of its own threads, their gradients summed in group
 * order. Not here: the passes themselves (model.c). */
#include "gpt/groups.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gpt/internal.h"
#include "util/utils.h"

void group_split(int groups, int* lanes, int* inner) {
    int threads = omp_get_max_threads();
    *lanes = groups < threads ? groups : threads;
    *inner = threads / *lanes;
}

size_t group_floats(const GPTConfig* c, size_t num_params, int groups) {
    if (groups <= 1) return 0;
    int lanes, inner;
    group_split(groups, &lanes, &inner);
    size_t dembed = c->embed_rank > 0 ? (size_t)c->vocab_size * c->n_embd : 0;  /* each group's dE */
    return (size_t)(groups - 1) * (num_params + dembed) + (size_t)groups * scratch_floats(c, inner);
}

void gpt_set_batch_groups(GPT* m, int groups) {
    if (groups < 1 || m->max_batch < 1 || m->max_batch % groups != 0)
        die(EXIT_BAD_INPUT, "batch groups: %d groups do not divide the batch of %d sequences", groups, m->max_batch);
    free(m->group_grads); free(m->group_scratch); free(m->group_dembed);
    m->group_grads = m->group_scratch = m->group_dembed = NULL;
    m->batch_groups = groups;
    if (groups == 1) return;
    int lanes;
    group_split(groups, &lanes, &m->group_threads);
    m->group_grads = xmalloc((size_t)(groups - 1) * m->num_params * sizeof(float), "batch groups' gradients");
    m->group_scratch = xmalloc((size_t)groups * scratch_floats(&m->config, m->group_threads) * sizeof(float),
                               "batch groups' scratch");
    if (m->config.embed_rank > 0)  /* groups 1..'s dE, each a (V, C) scratch of its own pass */
        m->group_dembed = xmalloc((size_t)(groups - 1) * m->config.vocab_size * m->config.n_embd * sizeof(float),
                                  "batch groups' dE");
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
    else point_params(&b->grads, m->group_grads + (size_t)(g - 1) * m->num_params, m->tensors, c->tie_weights,
                      at(m->group_dembed, (size_t)(g - 1) * c->vocab_size * c->n_embd));
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
        model_backward(m, GRADS_SET);
        return loss;
    }
    if (B % G != 0)
        die(EXIT_BAD_INPUT, "gpt_forward_backward: %d batch groups do not divide the batch of %d sequences", G, B);
    if (!targets) die(EXIT_BAD_INPUT, "gpt_forward_backward: no targets");
    check_batch(m, inputs, targets, B, T);  /* here, so that no group dies inside the parallel loop */
    gpt_sync_embedding(m);  /* E = A B once for all the groups */
    int rows = B / G, lanes, inner;
    group_split(G, &lanes, &inner);
    inner = inner < m->group_threads ? inner : m->group_threads;  /* the scratch's size */
    m->B = B; m->T = T;  /* the dropout keys read T */
    m->forward_dropout = drop_p(m);
    m->forward_token_dropout = drop_token_p(m);
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
     * adds one float at a time). Every pass splits n alike (static), so each
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
