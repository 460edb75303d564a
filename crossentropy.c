/* crossentropy.c: fused softmax + cross-entropy, forward and backward. */
#include "crossentropy.h"

#include <math.h>
#include <stddef.h>

float crossentropy_forward(float* probs, float* losses, const float* logits,
                           const int* targets, int N, int V) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* z = logits + (size_t)n * V;
        float* p = probs + (size_t)n * V;
        float zmax = z[0];  /* subtract the max so exp never overflows */
        for (int v = 1; v < V; v++) zmax = z[v] > zmax ? z[v] : zmax;
        float sum = 0.0f;
        for (int v = 0; v < V; v++) { p[v] = expf(z[v] - zmax); sum += p[v]; }
        float inv = 1.0f / sum;
        for (int v = 0; v < V; v++) p[v] *= inv;
        /* -log softmax computed from logits, not from the rounded probability */
        losses[n] = logf(sum) - (z[targets[n]] - zmax);
    }
    double total = 0.0;  /* serial: the sum order is the same on any thread count */
    for (int n = 0; n < N; n++) total += losses[n];
    return (float)(total / N);
}

void crossentropy_backward(float* dlogits, const float* probs, const int* targets, int N, int V, int batch_rows) {
    float scale = 1.0f / batch_rows;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* p = probs + (size_t)n * V;
        float* dz = dlogits + (size_t)n * V;
        for (int v = 0; v < V; v++) dz[v] = (p[v] - (v == targets[n] ? 1.0f : 0.0f)) * scale;
    }
}
