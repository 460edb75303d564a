/* encoder.h: token embedding lookup plus positional encoding, the model's input.
 *   e_t = E[i_t]                      (lookup of row i_t of E)
 *   x_t = embed_scale * e_t + PE_t    (PE learned, the fixed sinusoid table, or none)
 */
#ifndef ENCODER_H
#define ENCODER_H

#include <stdint.h>

/* Fill pe (T, C) with the sinusoidal encoding of "Attention Is All You Need":
 * PE[t][2i] = sin(t / 10000^(2i/C)), PE[t][2i+1] = cos(t / 10000^(2i/C)). C even. */
void sinusoidal_table(float* pe, int T, int C);

/* Token dropout (embed_dropout), in training only: row (b,t) keeps its token's
 * embedding with probability 1 - drop_p, scaled by 1/(1 - drop_p), or drops it
 * whole, before the positions are added; the mask of row r = b*T + t is
 * dropout_keep(drop_key, r) (dropout.h). drop_p = 0: every row kept, unscaled. */

/* out (B,T,C) = embed_scale * keep_bt * wte[inp[b,t]] + pe[t].
 * inp (B,T) token ids, wte (V,C), pe (T_max,C): learned wpe, the sinusoid table,
 * or NULL for no positions. */
void encoder_forward(float* out, const int* inp, const float* wte, const float* pe, float embed_scale,
                     float drop_p, uint64_t drop_key, int B, int T, int C);

/* dwte (V,C) += embed_scale * keep_bt * scatter of dout rows to the rows of their
 * tokens; dwpe (T_max,C) += sum over b of dout[b,t]; dwpe may be NULL (fixed or no
 * positions). drop_p and drop_key: the forward's. */
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, float embed_scale,
                      float drop_p, uint64_t drop_key, int B, int T, int C);

#endif
