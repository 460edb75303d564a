/* gelu.c: GELU (tanh approximation), forward and backward. */
#include "gelu.h"

#include <math.h>

#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

void gelu_forward(float* out, const float* inp, long N) {
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(u));
    }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, long N) {
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
        float th = tanhf(u);
        float du_dx = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBIC * x * x);
        float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du_dx;
        dinp[i] += grad * dout[i];
    }
}
