/* encoder.h: token embedding lookup plus positional encoding, the model's input.
 *   e_t = E[i_t]                      (lookup of row i_t of E)
 *   x_t = embed_scale * e_t + PE_t    (PE learned, or the fixed sinusoid table)
 */
#ifndef ENCODER_H
#define ENCODER_H

/* Fill pe (T, C) with the sinusoidal encoding of "Attention Is All You Need":
 * PE[t][2i] = sin(t / 10000^(2i/C)), PE[t][2i+1] = cos(t / 10000^(2i/C)). C even. */
void sinusoidal_table(float* pe, int T, int C);

/* out (B,T,C) = embed_scale * wte[inp[b,t]] + pe[t].
 * inp (B,T) token ids, wte (V,C), pe (T_max,C): learned wpe or the sinusoid table. */
void encoder_forward(float* out, const int* inp, const float* wte, const float* pe,
                     float embed_scale, int B, int T, int C);

/* dwte (V,C) += embed_scale * scatter of dout rows to the rows of their tokens;
 * dwpe (T_max,C) += sum over b of dout[b,t]; dwpe may be NULL (fixed positions). */
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp,
                      float embed_scale, int B, int T, int C);

#endif
