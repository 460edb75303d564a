/* optim.h: AdamW, the learning-rate schedule and global-norm gradient clipping. */
#ifndef OPTIM_H
#define OPTIM_H

#include <stddef.h>

#include "model.h"

#define ADAMW_EPS 1e-8f

typedef struct {
    float* m;      /* (num_params) first moment */
    float* v;      /* (num_params) second moment */
    size_t n;
    int step;      /* updates done so far: the t of the bias correction */
} AdamW;

/* The parameters the optimizer trains: every tensor, or every one but E
 * (freeze_embeddings: AdamW skips E, or its factors A and B with embed_rank, and
 * the gradient norm leaves their gradients out, as PyTorch does for a parameter
 * without requires_grad; they are still computed, for the embedding diagnostics).
 * E's tensors lead the parameter table, so the trained ones are a single span
 * [first, first + count) of the parameter and gradient arrays. With tied weights,
 * freezing E also fixes the output weight. */
typedef struct {
    const ParamTensorInfo* tensors;  /* the trained tensors' rows of m->tensors */
    int num_tensors;
    size_t first, count;             /* their floats */
} TrainedParams;
TrainedParams trained_params(const GPT* m, int freeze_embeddings);

void adamw_init(AdamW* opt, size_t num_params);
void adamw_free(AdamW* opt);

/* One AdamW update of params from grads, as torch.optim.AdamW computes it:
 * p -= lr * wd * p (decoupled decay, only on the tensors whose PARAM_TABLE row says decay),
 * m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 * p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps). */
void adamw_update(AdamW* opt, float* params, const float* grads, const ParamTensorInfo* tensors, int num_tensors,
                  float lr, float beta1, float beta2, float weight_decay);

/* nanoGPT's schedule for iteration it (0-based): linear warmup over warmup_iters,
 * cosine from learning_rate down to min_lr at lr_decay_iters, then min_lr. */
double lr_schedule(int it, double learning_rate, double min_lr, int warmup_iters, int lr_decay_iters);

/* ||grads||_2 over all n entries; the partial sums use a fixed partition of the
 * array, so the result does not depend on the number of threads. */
float grad_global_norm(const float* grads, size_t n);
/* If max_norm > 0 and norm > max_norm, scale grads by max_norm / (norm + 1e-6)
 * (torch.nn.utils.clip_grad_norm_). */
void grad_clip(float* grads, size_t n, float norm, float max_norm);

#endif
