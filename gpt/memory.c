/* memory.c: the memory estimate (memory.h), from the same layouts gpt_build
 * allocates by. */
#include "gpt/memory.h"

#include <omp.h>
#include <stdio.h>

#include "gpt/internal.h"

MemoryEstimate gpt_memory_estimate(const GPTConfig* config, int max_batch, int batch_groups) {
    ParamTensorInfo tensors[NUM_PARAM_TENSORS];
    size_t num_params = param_layout(tensors, config);
    ActivationTensors unused;
    size_t num_acts = max_batch > 0 ? point_activations(&unused, NULL, config, max_batch, ACTS_ALL_BLOCKS) : 0;
    size_t num_dacts = max_batch > 0 ? point_activations(&unused, NULL, config, max_batch, GRADS_ONE_BLOCK) : 0;
    int threads = omp_get_max_threads();
    MemoryEstimate e = {
        .params = num_params * sizeof(float),
        .grads = num_params * sizeof(float),
        .adamw = 2 * num_params * sizeof(float),
        .groups = group_floats(config, num_params, batch_groups) * sizeof(float),
        .acts = num_acts * sizeof(float),
        .dacts = num_dacts * sizeof(float),
        /* with embed_rank, E = A B and dE beside the scratch */
        .scratch = (model_scratch_floats(config, threads) + embed_grad_floats(config)
                    + (config->embed_rank > 0 ? (size_t)config->vocab_size * config->n_embd : 0)) * sizeof(float)
                 + lane_token_ints(config, max_batch, threads) * sizeof(int),
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
