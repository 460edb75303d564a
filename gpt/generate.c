/* generate.c: the forward of one new position against a key/value cache
 * (generate.h): the same kernels as gpt_forward, on one row. Not here: choosing
 * the next token (sampler.c). */
#include "gpt/generate.h"

#include <stdlib.h>
#include <string.h>

#include "gpt/internal.h"
#include "kernels/kernels.h"
#include "util/utils.h"

void kvcache_init(KVCache* kv, const GPTConfig* c) {
    size_t L = c->n_layer, T = c->block_size, C = c->n_embd;
    memset(kv, 0, sizeof(*kv));
    kv->k = xcalloc(L * T * C, sizeof(float), "key cache");
    kv->v = xcalloc(L * T * C, sizeof(float), "value cache");
    kv->x = xmalloc(C * sizeof(float), "cache activations");
    kv->ln = xmalloc(C * sizeof(float), "cache activations");
    kv->qkv = xmalloc(3 * C * sizeof(float), "cache activations");
    kv->atty = xmalloc(C * sizeof(float), "cache activations");
    kv->proj = xmalloc(C * sizeof(float), "cache activations");
    kv->fch = xmalloc(4 * C * sizeof(float), "cache activations");
    kv->fch_gelu = xmalloc(4 * C * sizeof(float), "cache activations");
    kv->scores = xmalloc(T * sizeof(float), "cache activations");
    kv->logits = xmalloc((size_t)c->vocab_size * sizeof(float), "cache logits");
}

void kvcache_free(KVCache* kv) {
    free(kv->k); free(kv->v); free(kv->x); free(kv->ln); free(kv->qkv); free(kv->atty);
    free(kv->proj); free(kv->fch); free(kv->fch_gelu); free(kv->scores); free(kv->logits);
    memset(kv, 0, sizeof(*kv));
}

/* gpt_forward for one row, position t = n_ctx: attention reads the cached keys
 * and values of positions 0..t. */
const float* gpt_forward_cached(GPT* m, KVCache* kv, int token) {
    const GPTConfig* c = &m->config;
    int C = c->n_embd, NH = c->n_head, L = c->n_layer, V = c->vocab_size, T = c->block_size;
    int t = kv->n_ctx;
    if (t >= T) die(EXIT_BAD_INPUT, "gpt_forward_cached: the cache holds block_size = %d positions already", T);
    if (token < 0 || token >= V) die(EXIT_BAD_INPUT, "token id %d is outside the vocabulary [0, %d)", token, V);
    ParameterTensors p = m->params;
    float mean, rstd;  /* layernorm's saved statistics, unused here */

    /* x_t = embed_scale * E[i_t] + PE_t  (no PE_t with pos_encoding none) */
    const float* pe = positions(m);
    const float* e = p.wte + (size_t)token * C;
    for (int i = 0; i < C; i++) kv->x[i] = c->embed_scale * e[i] + (pe ? pe[(size_t)t * C + i] : 0.0f);

    for (int l = 0; l < L; l++) {
        float* kc = kv->k + (size_t)l * T * C;
        float* vc = kv->v + (size_t)l * T * C;
        /* x = x + attn(LN1(x)) */
        layernorm_forward(kv->ln, &mean, &rstd, kv->x, p.ln1w + l * C, at(p.ln1b, l * C), 1, C);
        matvec_forward(kv->qkv, kv->ln, p.qkvw + (size_t)l * 3 * C * C, at(p.qkvb, l * 3 * C), C, 3 * C);
        if (m->rope_cs) rope_row(kv->qkv, m->rope_cs, t, C, NH);  /* q_t and k_t turned by position t */
        memcpy(kc + (size_t)t * C, kv->qkv + C, C * sizeof(float));      /* k_t joins the cache */
        memcpy(vc + (size_t)t * C, kv->qkv + 2 * C, C * sizeof(float));  /* v_t */
        attention_decode(kv->atty, kv->scores, kv->qkv, kc, vc, t + 1, C, NH);
        matvec_forward(kv->proj, kv->atty, p.attprojw + (size_t)l * C * C, at(p.attprojb, l * C), C, C);
        for (int i = 0; i < C; i++) kv->x[i] += kv->proj[i];
        /* x = x + mlp(LN2(x)) */
        layernorm_forward(kv->ln, &mean, &rstd, kv->x, p.ln2w + l * C, at(p.ln2b, l * C), 1, C);
        matvec_forward(kv->fch, kv->ln, p.fcw + (size_t)l * 4 * C * C, at(p.fcb, l * 4 * C), C, 4 * C);
        gelu_forward(kv->fch_gelu, kv->fch, 4 * C);
        matvec_forward(kv->proj, kv->fch_gelu, p.fcprojw + (size_t)l * 4 * C * C, at(p.fcprojb, l * C), 4 * C, C);
        for (int i = 0; i < C; i++) kv->x[i] += kv->proj[i];
    }
    /* h = LNf(x); z = h E^T (tied: the output weight IS wte) */
    layernorm_forward(kv->ln, &mean, &rstd, kv->x, p.lnfw, p.lnfb, 1, C);
    matvec_forward(kv->logits, kv->ln, c->tie_weights ? p.wte : p.lm_head, NULL, C, V);
    kv->n_ctx = t + 1;
    return kv->logits;
}
