/* attention.h: causal multi-head self-attention (the part between the qkv
 * projection and the output projection).
 * qkv (B,T,3C) holds q | k | v side by side; head h uses channels h*hs..(h+1)*hs
 * of each, as GPT-2 splits them. */
#ifndef ATTENTION_H
#define ATTENTION_H

/* out (B,T,C) = concat over heads of softmax(q k^T / sqrt(hs), causal) v.
 * att (B,NH,T,T): the attention probabilities, kept for backward (row t is zero past t). */
void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH);

/* dqkv (B,T,3C) +=. scratch: at least B*NH*T floats. */
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* att, int B, int T, int C, int NH);

#endif
