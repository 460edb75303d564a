/* reference/encoder.c: embedding lookup plus positions, forward and backward.
 *
 *   forward    x_t = s k_t E[i_t] + PE_t        (s: embed_scale; k_t: token dropout's
 *                                                 keep_t / (1-p), 1 without it)
 *   backward   dE[i_t] += s k_t dx_t  for every position (a token seen twice gets both)
 *              dPE_t   += sum over the batch of dx_t
 *
 * Both layers use this file: a lookup is a copy and its backward a sum per
 * channel, with nothing for a tuned twin to gain.
 */
#include "kernels/encoder.h"

#include <math.h>
#include <stddef.h>

#include "kernels/dropout.h"

enum { CHANNEL_SLICE = 16 };  /* channels per unit of parallel work in the scatter */

/* pe (T, C): PE[t][2i] = sin(t / 10000^(2i/C)), PE[t][2i+1] = cos(t / 10000^(2i/C)) */
void sinusoidal_table(float* pe, int T, int C) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < C / 2; i++) {
            double freq = pow(10000.0, -2.0 * i / C);
            pe[(size_t)t * C + 2 * i] = (float)sin(t * freq);
            pe[(size_t)t * C + 2 * i + 1] = (float)cos(t * freq);
        }
}

/* The factor of row r's embedding: s k_r (k_r = keep_r / (1-p), or 1 when p = 0). */
static inline float row_scale(float embed_scale, float p, uint64_t key, uint32_t threshold, size_t r) {
    if (p <= 0.0f) return embed_scale;
    return dropout_keep(key, r, threshold) ? embed_scale * (1.0f / (1.0f - p)) : 0.0f;
}

/* out (B,T,C) overwritten; inp (B,T) token ids; wte (V,C); pe (T_max,C) or NULL. */
void encoder_forward(float* out, const int* inp, const float* wte, const float* pe, float embed_scale,
                     float drop_p, uint64_t drop_key, int B, int T, int C) {
    uint32_t threshold = dropout_threshold(drop_p);
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        const float* e = wte + (size_t)inp[bt] * C;   /* e_t = E[i_t] */
        float s = row_scale(embed_scale, drop_p, drop_key, threshold, (size_t)bt);
        float* x = out + (size_t)bt * C;
        if (!pe) {
            for (int c = 0; c < C; c++) x[c] = s * e[c];  /* x_t = s e_t: no positions */
            continue;
        }
        const float* p = pe + (size_t)(bt % T) * C;
        for (int c = 0; c < C; c++) x[c] = s * e[c] + p[c];  /* x_t = s e_t + PE_t */
    }
}

/* dwte (V,C) +=; dwpe (T_max,C) += or NULL; dout (B,T,C); inp (B,T). */
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, float embed_scale,
                      float drop_p, uint64_t drop_key, int B, int T, int C) {
    /* The lookup's gradient is a sparse scatter: only the rows of tokens present in
     * the batch receive anything (a dropped position gives nothing). With tied
     * weights E also gets a dense term, from the output projection, added in
     * gpt_backward. Two positions can hold the same token, so threads own channel
     * slices, not rows, and walk positions in order. */
    uint32_t threshold = dropout_threshold(drop_p);
    int slices = (C + CHANNEL_SLICE - 1) / CHANNEL_SLICE;
    #pragma omp parallel for schedule(static)
    for (int s = 0; s < slices; s++) {
        int c0 = s * CHANNEL_SLICE, c1 = c0 + CHANNEL_SLICE < C ? c0 + CHANNEL_SLICE : C;
        for (int bt = 0; bt < B * T; bt++) {
            float k = row_scale(embed_scale, drop_p, drop_key, threshold, (size_t)bt);
            if (k == 0.0f) continue;
            float* de = dwte + (size_t)inp[bt] * C;
            const float* d = dout + (size_t)bt * C;
            for (int c = c0; c < c1; c++) de[c] += k * d[c];
        }
    }
    if (!dwpe) return;
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            const float* d = dout + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) dwpe[(size_t)t * C + c] += d[c];
        }
}
