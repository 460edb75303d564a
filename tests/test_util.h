/* test_util.h: helpers shared by the C tests (random tensors, finite differences).
 * Only included by test programs, each of which is a single translation unit. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utils.h"

static inline float* random_tensor(Rng* rng, size_t n, float scale) {
    float* x = xmalloc(n * sizeof(float), "test tensor");
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(rng);
    return x;
}

static inline float* copy_tensor(const float* x, size_t n) {
    float* y = xmalloc(n * sizeof(float), "test tensor copy");
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* sum_i out_i * w_i in double: a scalar objective whose gradient w.r.t. out is w. */
static inline double weighted_sum(const float* out, const float* w, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * w[i];
    return s;
}

/* Largest |a-b| / (atol + rtol*max(|a|,|b|)) over n pairs: <= 1 means all close.
 * For an analytic against a central-difference gradient: float32 forwards give the
 * difference an absolute error of a few 1e-5, far below the size of any real
 * mistake in a backward formula (typically O(gradient)). */
static inline double worst_ratio(const double* a, const double* b, size_t n, double atol, double rtol) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs(a[i] - b[i]) / (atol + rtol * fmax(fabs(a[i]), fabs(b[i])));
        if (r > worst) worst = r;
    }
    return worst;
}

#endif
