/* optim.c: AdamW, learning-rate schedule, gradient clipping. */
#include "training/optim.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "util/utils.h"

#define PI 3.14159265358979323846
#define CLIP_EPS 1e-6f
enum {
    NORM_CHUNK = 1 << 14,     /* fixed partition of the gradient for the norm... */
    NORM_MAX_CHUNKS = 1024,   /* ...into at most this many chunks (larger ones past 16M parameters) */
    NORM_LANES = 16,          /* partial sums per chunk */
};

TrainedParams trained_params(const GPT* m, int freeze_embeddings) {
    TrainedParams t = {m->tensors, NUM_PARAM_TENSORS, 0, m->num_params};
    if (!freeze_embeddings) return t;
    /* E's tensors lead the table: wte, then its factors wte_a and wte_b (embed_rank > 0);
     * the absent ones take no floats */
    static const size_t E_FIELDS[] = {offsetof(ParameterTensors, wte), offsetof(ParameterTensors, wte_a),
                                      offsetof(ParameterTensors, wte_b)};
    enum { NUM_E = sizeof E_FIELDS / sizeof E_FIELDS[0] };
    for (int i = 0; i < NUM_E; i++)
        if (m->tensors[i].spec->field != E_FIELDS[i] || m->tensors[i].offset != t.first)
            die(EXIT_IO_FAILURE, "trained_params: E's tensors are not the parameter table's first");
        else t.first += m->tensors[i].size;
    t.tensors += NUM_E;
    t.num_tensors -= NUM_E;
    t.count -= t.first;
    return t;
}

void adamw_init(AdamW* opt, size_t num_params) {
    opt->m = xcalloc(num_params, sizeof(float), "AdamW first moment");
    opt->v = xcalloc(num_params, sizeof(float), "AdamW second moment");
    opt->n = num_params;
    opt->step = 0;
}

void adamw_free(AdamW* opt) {
    free(opt->m);
    free(opt->v);
    opt->m = opt->v = NULL;
}

void adamw_update(AdamW* opt, float* params, const float* grads, const ParamTensorInfo* tensors, int num_tensors,
                  float lr, float beta1, float beta2, float weight_decay) {
    opt->step++;
    /* the bias corrections in double, as PyTorch computes its scalars */
    float bias2_sqrt = (float)sqrt(1.0 - pow(beta2, opt->step));
    float step_size = (float)(lr / (1.0 - pow(beta1, opt->step)));
    /* one parallel region for all tensors, each split over threads without a
     * barrier between them (nowait): the update is elementwise, so any split
     * gives the same bits, and small tensors cost no fork/join of their own */
    #pragma omp parallel
    for (int t = 0; t < num_tensors; t++) {
        const ParamTensorInfo* info = &tensors[t];
        float decay = info->decay ? 1.0f - lr * weight_decay : 1.0f;
        float* p = params + info->offset;
        const float* g = grads + info->offset;
        float* m = opt->m + info->offset;
        float* v = opt->v + info->offset;
        #pragma omp for schedule(static) nowait
        for (size_t i = 0; i < info->size; i++) {
            m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
            v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
            float denom = sqrtf(v[i]) / bias2_sqrt + ADAMW_EPS;
            p[i] = p[i] * decay - step_size * m[i] / denom;
        }
    }
}

double lr_schedule(int it, double learning_rate, double min_lr, int warmup_iters, int lr_decay_iters) {
    if (it < warmup_iters) return learning_rate * (it + 1) / (warmup_iters + 1);
    if (it >= lr_decay_iters) return min_lr;
    double ratio = (double)(it - warmup_iters) / (lr_decay_iters - warmup_iters);
    double coeff = 0.5 * (1.0 + cos(PI * ratio));  /* 1 -> 0 */
    return min_lr + coeff * (learning_rate - min_lr);
}

float grad_global_norm(const float* grads, size_t n) {
    /* chunk sums added in chunk order: the partition depends on n alone, never on
     * the threads; on the stack, so that a training step allocates nothing */
    size_t chunk = NORM_CHUNK;
    while ((n + chunk - 1) / chunk > NORM_MAX_CHUNKS) chunk *= 2;
    size_t chunks = (n + chunk - 1) / chunk;
    double partial[NORM_MAX_CHUNKS];
    #pragma omp parallel for schedule(static)
    for (size_t c = 0; c < chunks; c++) {
        size_t i0 = c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        /* in NORM_LANES interleaved double sums (a single running sum would be one
         * serial chain of adds): a fixed order, vector adds */
        double acc[NORM_LANES] = {0};
        size_t i = i0;
        for (; i + NORM_LANES <= i1; i += NORM_LANES) {
            #pragma omp simd  /* without it gcc keeps 16 scalar FMAs; a float's square is exact in double */
            for (int j = 0; j < NORM_LANES; j++) acc[j] += (double)grads[i + j] * grads[i + j];
        }
        double s = 0.0;
        for (int j = 0; j < NORM_LANES; j++) s += acc[j];
        for (; i < i1; i++) s += (double)grads[i] * grads[i];
        partial[c] = s;
    }
    double total = 0.0;
    for (size_t c = 0; c < chunks; c++) total += partial[c];
    return (float)sqrt(total);
}

void grad_clip(float* grads, size_t n, float norm, float max_norm) {
    if (max_norm <= 0.0f) return;
    float coef = max_norm / (norm + CLIP_EPS);
    if (coef >= 1.0f) return;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) grads[i] *= coef;
}
