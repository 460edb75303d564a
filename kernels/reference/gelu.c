/* reference/gelu.c: GELU, tanh approximation, forward and backward, as the
 * formulas read. With u = k (x + a x^3), k = sqrt(2/pi), a = 0.044715:
 *
 *   forward    y = 0.5 x (1 + tanh u)
 *   backward   dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 a x^2)
 *
 * The reference that kernels/fast/gelu.c (one vectorised exp in place of tanh)
 * must match. For x below about -5 the 1 + tanh u here cancels: this layer's
 * GELU is accurate to about 1e-7 absolute there, not relative.
 */
#include "kernels/gelu.h"

#include <math.h>

#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

/* out (N), inp (N). */
void gelu_forward(float* out, const float* inp, long N) {
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(u));
    }
}

/* dinp (N) overwritten = gelu'(inp) dout; inp, dout (N). */
void gelu_backward(float* dinp, const float* inp, const float* dout, long N) {
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
        float th = tanhf(u);
        float du_dx = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBIC * x * x);
        float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du_dx;
        dinp[i] = grad * dout[i];
    }
}
