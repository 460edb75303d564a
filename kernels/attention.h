/* attention.h: causal multi-head self-attention (the part between the qkv
 * projection and the output projection).
 * qkv (B,T,3C) holds q | k | v side by side; head h uses channels h*hs..(h+1)*hs
 * of each, as GPT-2 splits them. */
#ifndef ATTENTION_H
#define ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* Floats of scratch one thread needs; attention_forward and attention_backward
 * take scratch for omp_get_max_threads() threads. */
size_t attention_scratch_floats(int T, int C, int NH);

/* out (B,T,C) = concat over heads of dropout(softmax(q k^T / sqrt(hs), causal)) v.
 * stats (B,NH,T,2): each query row's softmax max and 1/sum, kept for backward in
 * place of the (B,NH,T,T) probabilities. dropout: probability (0 = none); key: its
 * mask (dropout.h): probability (b, h, t, s) is kept when
 * dropout_keep(key, ((b*NH + h)*T + t)*T + s, dropout_threshold(dropout)), its
 * index in the (B,NH,T,T) matrix, which no layer stores. */
void attention_forward(float* out, float* stats, float* scratch, const float* qkv, int B, int T, int C, int NH,
                       float dropout, uint64_t key);

/* dqkv (B,T,3C) = the gradient. stats from the forward; dropout and key as in forward. */
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv, const float* stats,
                        int B, int T, int C, int NH, float dropout, uint64_t key);

/* One query against a key/value cache (generation): out (C) for the query at
 * position t = n_ctx - 1, q (C) its query, k_cache and v_cache (n_ctx, C) the keys
 * and values of positions 0..t. scores: at least n_ctx floats. No dropout. */
void attention_decode(float* out, float* scores, const float* q, const float* k_cache, const float* v_cache,
                      int n_ctx, int C, int NH);

#endif
