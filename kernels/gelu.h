/* gelu.h: GELU, tanh approximation (GPT-2, PyTorch approximate='tanh'):
 * gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
#ifndef GELU_H
#define GELU_H

/* out (N), inp (N); N = B*T*4C. */
void gelu_forward(float* out, const float* inp, long N);
/* dinp (N) = gelu'(inp) * dout. */
void gelu_backward(float* dinp, const float* inp, const float* dout, long N);

#endif
