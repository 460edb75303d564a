/* sampler.c: sampling a token from logits, and generation with a sliding window. */
#include "gpt/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt/generate.h"

static int descending(const void* a, const void* b) {
    float x = *(const float*)a, y = *(const float*)b;
    return (x < y) - (x > y);
}

int sample_token(const float* logits, int V, const SamplerSettings* s, Rng* rng, float* scratch) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (s->temperature <= 0.0f) return best;
    /* top_k: keep the tokens whose logit reaches the k-th largest (ties all stay) */
    float cutoff = -INFINITY;
    if (s->top_k > 0 && s->top_k < V) {
        float* sorted = scratch + V;
        memcpy(sorted, logits, sizeof(float) * V);
        qsort(sorted, (size_t)V, sizeof(float), descending);
        cutoff = sorted[s->top_k - 1];
    }
    /* p_v = exp((z_v - z_max) / temperature) / sum, over the kept tokens */
    double sum = 0.0;
    for (int v = 0; v < V; v++) {
        scratch[v] = logits[v] >= cutoff ? expf((logits[v] - logits[best]) / s->temperature) : 0.0f;
        sum += scratch[v];
    }
    double u = rng_uniform(rng) * sum, acc = 0.0;
    int last = best;
    for (int v = 0; v < V; v++) {
        if (scratch[v] == 0.0f) continue;
        acc += scratch[v];
        last = v;
        if (u < acc) return v;
    }
    return last;  /* u landed on the rounding error at the top end */
}

size_t generate(GPT* m, const uint16_t* prompt, size_t n_prompt, size_t n_new, const SamplerSettings* s,
                Rng* rng, uint16_t* out) {
    return generate_each(m, prompt, n_prompt, n_new, s, rng, out, NULL, NULL);
}

size_t generate_each(GPT* m, const uint16_t* prompt, size_t n_prompt, size_t n_new, const SamplerSettings* s,
                     Rng* rng, uint16_t* out, TokenCallback on_token, void* ctx) {
    return generate_until(m, prompt, n_prompt, n_new, s, rng, out, on_token, NULL, ctx);
}

size_t generate_until(GPT* m, const uint16_t* prompt, size_t n_prompt, size_t n_new, const SamplerSettings* s,
                      Rng* rng, uint16_t* out, TokenCallback on_token, StopCheck stop, void* ctx) {
    size_t T = (size_t)m->config.block_size, keep = T / 2 ? T / 2 : 1;
    int V = m->config.vocab_size;
    float* scratch = xmalloc(2 * (size_t)V * sizeof(float), "sampler scratch");
    KVCache kv;
    kvcache_init(&kv, &m->config);
    gpt_eval_mode(m);
    memcpy(out, prompt, n_prompt * sizeof(uint16_t));
    size_t n = n_prompt;
    const float* logits = NULL;
    for (size_t i = n > T ? n - T : 0; i < n; i++) logits = gpt_forward_cached(m, &kv, out[i]);
    for (size_t j = 0; j < n_new; j++) {
        int next = sample_token(logits, V, s, rng, scratch);
        out[n++] = (uint16_t)next;
        if (on_token) on_token(ctx, n);
        if (j + 1 == n_new || (stop && stop(ctx))) break;
        if ((size_t)kv.n_ctx == T) {  /* full: slide, rebuilding the cache from the last `keep` tokens */
            kv.n_ctx = 0;
            for (size_t i = n - keep; i < n; i++) logits = gpt_forward_cached(m, &kv, out[i]);
        } else {
            logits = gpt_forward_cached(m, &kv, next);
        }
    }
    kvcache_free(&kv);
    free(scratch);
    return n;
}
