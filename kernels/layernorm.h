/* layernorm.h: y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis. */
#ifndef LAYERNORM_H
#define LAYERNORM_H

#define LAYERNORM_EPS 1e-5f  /* PyTorch's default, so parity holds */

/* out (N,C); mean, rstd (N) saved for backward; inp (N,C); weight (C); bias (C) or
 * NULL for none. N = B*T. */
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C);

/* The residual sum and the layer norm after it in one pass over the rows:
 * res = a + b, then layernorm_forward(out, mean, rstd, res, ...). */
void residual_layernorm_forward(float* res, float* out, float* mean, float* rstd, const float* a,
                                const float* b, const float* weight, const float* bias, int N, int C);

/* dinp (N,C), dweight (C), dbias (C) all +=; dbias NULL when there is no bias. */
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean,
                        const float* rstd, int N, int C);

#endif
