/* memory.h: what gpt_build plus AdamW will allocate, in bytes, worked out from
 * the config alone (nothing is allocated): ./train prints it before building,
 * the checkpoint loader checks a file's size against it, and the benchmark
 * compares it with the measured peak RSS. */
#ifndef GPT_MEMORY_H
#define GPT_MEMORY_H

#include <stddef.h>

#include "model.h"

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

#endif
