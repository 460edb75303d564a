/* generate.h: one position at a time against a key/value cache, for sampling. */
#ifndef GPT_GENERATE_H
#define GPT_GENERATE_H

#include "model.h"

/* Generation state: the keys and values of every position so far, per layer, so
 * each new token costs one position's forward, not the whole window's. */
typedef struct {
    int n_ctx;                 /* positions held, <= block_size */
    float* k;                  /* (L, block_size, C) */
    float* v;                  /* (L, block_size, C) */
    float* x;                  /* (C) the residual stream of the current position */
    float* ln;                 /* (C) */
    float* qkv;                /* (3C) */
    float* atty;               /* (C) */
    float* proj;               /* (C) */
    float* fch;                /* (4C) */
    float* fch_gelu;           /* (4C) */
    float* scores;             /* (block_size) */
    float* logits;             /* (V) */
} KVCache;

void kvcache_init(KVCache* cache, const GPTConfig* config);
void kvcache_free(KVCache* cache);
/* Append `token` at position cache->n_ctx (which must be < block_size) and return
 * the logits (V) predicting the next token: the same numbers as row n_ctx of a
 * full forward over the tokens so far. Eval mode always. */
const float* gpt_forward_cached(GPT* model, KVCache* cache, int token);

#endif
