/* fast/gelu.c: GELU (tanh approximation), forward and backward, through one
 * vectorised exp. Must match kernels/reference/gelu.c, the tanh formula as
 * written (tests/test_kernels.c compares them).
 *
 * 0.5 x (1 + tanh(u)) is computed as x sigma(2u) = x / (1 + e^{-2u}): the same
 * function (1 + tanh(u) = 2 / (1 + e^{-2u})), but with one exp_approx that the
 * compiler vectorises, and no cancellation in 1 + tanh(u) for negative x.
 * Threads take fixed blocks of elements, so which code path (vector body or
 * scalar remainder) an element goes through depends on its index alone. */
#include "kernels/gelu.h"

#include "kernels/fast/vmath.h"

#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f
enum { GELU_BLOCK = 4096 };  /* elements per OpenMP work item */

void gelu_forward(float* out, const float* inp, long N) {
    long blocks = (N + GELU_BLOCK - 1) / GELU_BLOCK;
    #pragma omp parallel for schedule(static)
    for (long blk = 0; blk < blocks; blk++) {
        long i1 = (blk + 1) * GELU_BLOCK < N ? (blk + 1) * GELU_BLOCK : N;
        for (long i = blk * GELU_BLOCK; i < i1; i++) {
            float x = inp[i];
            float u = GELU_SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
            out[i] = x / (1.0f + exp_approx(-2.0f * u));
        }
    }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, long N) {
    long blocks = (N + GELU_BLOCK - 1) / GELU_BLOCK;
    #pragma omp parallel for schedule(static)
    for (long blk = 0; blk < blocks; blk++) {
        long i1 = (blk + 1) * GELU_BLOCK < N ? (blk + 1) * GELU_BLOCK : N;
        for (long i = blk * GELU_BLOCK; i < i1; i++) {
            /* d/dx x s(2u) = s + x s (1 - s) 2 u',  s = 1 / (1 + e),  1 - s = e s,  e = e^{-2u} */
            float x = inp[i];
            float u = GELU_SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
            float du_dx = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBIC * x * x);
            float e = exp_approx(-2.0f * u);
            float s = 1.0f / (1.0f + e);
            float grad = s * (1.0f + 2.0f * x * du_dx * (e * s));
            dinp[i] = grad * dout[i];
        }
    }
}
