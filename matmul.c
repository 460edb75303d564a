/* matmul.c: register-tiled matrix products for the linear layers.
 *
 * Every linear product in the model is reduced to one kernel,
 * c += A b with b row-major: the inner loop then runs along contiguous rows
 * of b and c, which the compiler vectorises without reordering any sum
 * (no -ffast-math needed). Each (MR x NR) tile of c is kept in registers
 * while k runs over the whole reduction.
 *
 * Threads split the grid of tiles, never a reduction. Edge tiles take a
 * scalar path, but which path an element takes depends only on its position,
 * so the bits do not depend on the thread count.
 * Not here: K-blocking and packing (kept simple; see issue 6 for speed work).
 */
#include "matmul.h"

#include <string.h>

enum { MR = 4, NR = 32 };  /* tile: 4 rows x 32 columns = 8 AVX-512 accumulators */

/* One full MR x NR tile. */
static inline void tile_full(float* restrict c, int ldc, const float* restrict a, ptrdiff_t a_row,
                             ptrdiff_t a_col, const float* restrict b, int ldb, int K) {
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = c[i * ldc + j];
    for (int k = 0; k < K; k++) {
        const float* brow = b + (size_t)k * ldb;
        for (int i = 0; i < MR; i++) {
            float aik = a[i * a_row + k * a_col];
            for (int j = 0; j < NR; j++) acc[i][j] += aik * brow[j];
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i * ldc + j] = acc[i][j];
}

/* A partial tile at the right or bottom edge: rows < mr, cols < nr. */
static void tile_edge(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                      const float* b, int ldb, int K, int mr, int nr) {
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float acc = c[i * ldc + j];
            for (int k = 0; k < K; k++) acc += a[i * a_row + k * a_col] * b[(size_t)k * ldb + j];
            c[i * ldc + j] = acc;
        }
}

void gemm_accumulate(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float* b, int ldb, int M, int N, int K) {
    int tiles_m = (M + MR - 1) / MR, tiles_n = (N + NR - 1) / NR;
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < tiles_m * tiles_n; t++) {
        int m0 = (t / tiles_n) * MR, n0 = (t % tiles_n) * NR;
        int mr = M - m0 < MR ? M - m0 : MR, nr = N - n0 < NR ? N - n0 : NR;
        float* ct = c + (size_t)m0 * ldc + n0;
        const float* at = a + m0 * a_row;
        if (mr == MR && nr == NR) tile_full(ct, ldc, at, a_row, a_col, b + n0, ldb, K);
        else tile_edge(ct, ldc, at, a_row, a_col, b + n0, ldb, K, mr, nr);
    }
}

void gemm_accumulate_naive(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                           const float* b, int ldb, int M, int N, int K) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = c[(size_t)m * ldc + n];
            for (int k = 0; k < K; k++) acc += (double)a[m * a_row + k * a_col] * b[(size_t)k * ldb + n];
            c[(size_t)m * ldc + n] = (float)acc;
        }
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                    float* scratch, int BT, int C, int OC) {
    /* out = bias (broadcast over rows), then out += inp W^T with W^T (C, OC) row-major */
    float* wt = scratch;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < C; i++)
        for (int o = 0; o < OC; o++) wt[(size_t)i * OC + o] = weight[(size_t)o * C + i];
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < BT; r++) {
        if (bias) memcpy(out + (size_t)r * OC, bias, sizeof(float) * OC);
        else memset(out + (size_t)r * OC, 0, sizeof(float) * OC);
    }
    gemm_accumulate(out, OC, inp, C, 1, wt, OC, BT, OC, C);
}

void matmul_backward(float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight,
                     int BT, int C, int OC) {
    /* dinp (BT, C) += dout (BT, OC) W (OC, C) */
    if (dinp) gemm_accumulate(dinp, C, dout, OC, 1, weight, C, BT, C, OC);
    /* dweight (OC, C) += dout^T (OC, BT) inp (BT, C): A(o, r) = dout[r*OC + o] */
    gemm_accumulate(dweight, C, dout, 1, OC, inp, C, OC, C, BT);
    if (dbias) {
        /* each thread owns a slice of outputs and sums the rows in order */
        enum { SLICE = 16 };
        int slices = (OC + SLICE - 1) / SLICE;
        #pragma omp parallel for schedule(static)
        for (int s = 0; s < slices; s++) {
            int o0 = s * SLICE, o1 = o0 + SLICE < OC ? o0 + SLICE : OC;
            for (int r = 0; r < BT; r++)
                for (int o = o0; o < o1; o++) dbias[o] += dout[(size_t)r * OC + o];
        }
    }
}

void matvec_forward(float* out, const float* inp, const float* weight, const float* bias, int C, int OC) {
    /* out_o = b_o + W_o . x, each dot in LANES partial sums so the compiler can
     * use vector FMAs (no -ffast-math): a fixed order per output, any threads */
    enum { LANES = 16 };
    #pragma omp parallel for schedule(static) if (OC * C > 65536)
    for (int o = 0; o < OC; o++) {
        const float* w = weight + (size_t)o * C;
        float acc[LANES] = {0};
        int k = 0;
        for (; k + LANES <= C; k += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += w[k + j] * inp[k + j];
        float sum = bias ? bias[o] : 0.0f;
        for (int j = 0; j < LANES; j++) sum += acc[j];
        for (; k < C; k++) sum += w[k] * inp[k];
        out[o] = sum;
    }
}
