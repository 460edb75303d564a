/* sampler.h: text generation, one token at a time through the key/value cache.
 *
 * Each new token is drawn from softmax(logits / temperature), restricted to the
 * top_k most likely tokens, with the seeded RNG: the same seed gives the same
 * text. The context window holds block_size positions; when it is full it slides:
 * the cache is rebuilt from the last block_size/2 tokens (positions restart at 0,
 * as a model trained on windows of block_size expects), so every token is drawn
 * seeing between block_size/2 and block_size tokens, at a cost of one position's
 * forward per token plus one rebuild per block_size/2 tokens. */
#ifndef SAMPLER_H
#define SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "util/utils.h"

typedef struct {
    float temperature;  /* 0: always the most likely token */
    int top_k;          /* 0 or >= vocab_size: every token */
} SamplerSettings;

/* The next token for logits (V). scratch: at least 2*V floats. */
int sample_token(const float* logits, int V, const SamplerSettings* s, Rng* rng, float* scratch);

/* out[0..n_prompt) = prompt, then n_new generated tokens; returns n_prompt + n_new.
 * out holds at least that many. n_prompt >= 1; the model is used in eval mode. */
size_t generate(GPT* model, const uint16_t* prompt, size_t n_prompt, size_t n_new, const SamplerSettings* s,
                Rng* rng, uint16_t* out);

/* Called as soon as a token is drawn, with out[0..n) filled: a caller can print
 * text while the rest is generated. */
typedef void (*TokenCallback)(void* ctx, size_t n);
/* generate, calling on_token(ctx, n) after each new token (on_token may be NULL);
 * the tokens drawn are the same. */
size_t generate_each(GPT* model, const uint16_t* prompt, size_t n_prompt, size_t n_new, const SamplerSettings* s,
                     Rng* rng, uint16_t* out, TokenCallback on_token, void* ctx);
/* Asked after each new token: nonzero ends the generation there. */
typedef int (*StopCheck)(void* ctx);
/* generate_each, ending early when stop(ctx) (which may be NULL) says so: returns
 * n_prompt + the tokens drawn, the first of those generate_each would draw. */
size_t generate_until(GPT* model, const uint16_t* prompt, size_t n_prompt, size_t n_new, const SamplerSettings* s,
                      Rng* rng, uint16_t* out, TokenCallback on_token, StopCheck stop, void* ctx);

#endif
