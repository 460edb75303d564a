/* reference/rope.c: rotary positions, forward and backward (rope.h).
 *
 *   forward    (a, b) -> (a cos - b sin,  a sin + b cos)     angle t * base^(-2i/hs)
 *   backward   (da, db) -> (da cos + db sin, -da sin + db cos)  the transposed rotation
 *
 * Both layers use this file: a few multiplies per pair, nothing for a tuned
 * twin to gain next to the products around it.
 */
#include "kernels/rope.h"

#include <math.h>
#include <stddef.h>

void rope_table(float* cs, int T, int hs) {
    int half = hs / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double angle = t * pow(ROPE_BASE, -2.0 * i / hs);
            cs[((size_t)t * half + i) * 2] = (float)cos(angle);
            cs[((size_t)t * half + i) * 2 + 1] = (float)sin(angle);
        }
}

/* Turn the q and k of one row at position t by sign * angle (sign -1: backward). */
static void turn_row(float* row, const float* cs, int t, int C, int NH, float sign) {
    int hs = C / NH, half = hs / 2;
    const float* c_t = cs + (size_t)t * half * 2;
    for (int part = 0; part < 2; part++)          /* q, then k */
        for (int h = 0; h < NH; h++) {
            float* x = row + (size_t)part * C + (size_t)h * hs;
            for (int i = 0; i < half; i++) {
                float cos_a = c_t[2 * i], sin_a = sign * c_t[2 * i + 1];
                float a = x[2 * i], b = x[2 * i + 1];
                x[2 * i] = a * cos_a - b * sin_a;
                x[2 * i + 1] = a * sin_a + b * cos_a;
            }
        }
}

void rope_forward(float* qkv, const float* cs, int B, int T, int C, int NH) {
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) turn_row(qkv + (size_t)bt * 3 * C, cs, bt % T, C, NH, 1.0f);
}

void rope_backward(float* dqkv, const float* cs, int B, int T, int C, int NH) {
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) turn_row(dqkv + (size_t)bt * 3 * C, cs, bt % T, C, NH, -1.0f);
}

void rope_row(float* qkv, const float* cs, int t, int C, int NH) { turn_row(qkv, cs, t, C, NH, 1.0f); }
