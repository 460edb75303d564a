/* attention.h: causal multi-head self-attention (the part between the qkv
 * projection and the output projection).
 * qkv (B,T,3C) holds q | k | v side by side; head h uses channels h*hs..(h+1)*hs
 * of each, as GPT-2 splits them. */
#ifndef ATTENTION_H
#define ATTENTION_H

#include <stdint.h>

/* out (B,T,C) = concat over heads of dropout(softmax(q k^T / sqrt(hs), causal)) v.
 * att (B,NH,T,T): the attention probabilities before dropout, kept for backward
 * (row t is zero past t). dropout: probability (0 = none); key: its mask (dropout.h). */
void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH,
                       float dropout, uint64_t key);

/* dqkv (B,T,3C) +=. scratch: at least B*NH*T floats. dropout and key as in forward. */
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* att, int B, int T, int C, int NH, float dropout, uint64_t key);

/* One query against a key/value cache (generation): out (C) for the query at
 * position t = n_ctx - 1, q (C) its query, k_cache and v_cache (n_ctx, C) the keys
 * and values of positions 0..t. scores: at least n_ctx floats. No dropout. */
void attention_decode(float* out, float* scores, const float* q, const float* k_cache, const float* v_cache,
                      int n_ctx, int C, int NH);

#endif
