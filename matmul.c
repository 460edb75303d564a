/* matmul.c: register-tiled matrix products for the linear layers.
 *
 * Every linear product in the model is reduced to one kernel,
 * c += A b with b row-major: the inner loop then runs along contiguous rows
 * of b and c. Each (MR x NR) tile of c is held in registers while k runs
 * over a block of the reduction (KC at a time, so the KC x NR panel of b it
 * streams through stays in the L1 cache while the tiles below it reuse it).
 * Every element of c is one chain of fused multiply-adds, k = 0, 1, ..., K-1:
 * how the tiles are shared out, blocked or masked at the edges never changes
 * an element's bits.
 *
 * Threads take contiguous runs of tiles, column panel by column panel, and
 * never split a reduction. With AVX-512 (-march=native on a CPU that has it)
 * the tile is written with intrinsics: 8 rows x 32 columns = 16 zmm accumulators,
 * enough to keep both FMA pipes busy; ragged edges use the same code with
 * masked loads and stores. Elsewhere a plain C tile that the compiler vectorises.
 */
#include "matmul.h"

#include <omp.h>
#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

enum {
    MR = 8,    /* rows of a register tile */
    NR = 32,   /* columns of a register tile: two 16-float vectors */
    KC = 256,  /* reduction block: a KC x NR panel of b is 32 KiB */
};

#ifdef __AVX512F__
/* c[0..mr) x [0..nr) += A(0..mr, 0..K) b[0..K) x [0..nr); mr <= MR, nr <= NR.
 * Called with mr = MR (a constant) the row guards fold away. */
static inline void tile(float* restrict c, int ldc, const float* restrict a, ptrdiff_t a_row,
                        ptrdiff_t a_col, const float* restrict b, int ldb, int K, int mr, int nr) {
    __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr <= 16 ? 0 : nr >= 32 ? 0xFFFF : (__mmask16)((1u << (nr - 16)) - 1);
    __m512 acc[MR][2];
    #pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        acc[i][0] = i < mr ? _mm512_maskz_loadu_ps(m0, c + (size_t)i * ldc) : _mm512_setzero_ps();
        acc[i][1] = i < mr ? _mm512_maskz_loadu_ps(m1, c + (size_t)i * ldc + 16) : _mm512_setzero_ps();
    }
    for (int k = 0; k < K; k++) {
        const float* brow = b + (size_t)k * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m0, brow), b1 = _mm512_maskz_loadu_ps(m1, brow + 16);
        const float* ak = a + k * a_col;
        #pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            if (i < mr) {
                __m512 ai = _mm512_set1_ps(ak[i * a_row]);
                acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
            }
        }
    }
    #pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        if (i < mr) {
            _mm512_mask_storeu_ps(c + (size_t)i * ldc, m0, acc[i][0]);
            _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16, m1, acc[i][1]);
        }
    }
}
#else
/* The portable tile: the same chains of a*b+c (fused under -ffp-contract=fast). */
static inline void tile(float* restrict c, int ldc, const float* restrict a, ptrdiff_t a_row,
                        ptrdiff_t a_col, const float* restrict b, int ldb, int K, int mr, int nr) {
    if (mr == MR && nr == NR) {
        float acc[MR][NR];
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] = c[(size_t)i * ldc + j];
        for (int k = 0; k < K; k++) {
            const float* brow = b + (size_t)k * ldb;
            for (int i = 0; i < MR; i++) {
                float aik = a[i * a_row + k * a_col];
                for (int j = 0; j < NR; j++) acc[i][j] += aik * brow[j];
            }
        }
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) c[(size_t)i * ldc + j] = acc[i][j];
        return;
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float acc = c[(size_t)i * ldc + j];
            for (int k = 0; k < K; k++) acc += a[i * a_row + k * a_col] * b[(size_t)k * ldb + j];
            c[(size_t)i * ldc + j] = acc;
        }
}
#endif

/* Tiles t0..t1 of the grid, column panel by column panel (t = panel * tiles_m + row
 * tile), one KC block of the reduction at a time over the whole run. */
static void tile_run(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col, const float* b,
                     int ldb, int M, int N, int K, int t0, int t1) {
    int tiles_m = (M + MR - 1) / MR;
    for (int k0 = 0; k0 < K; k0 += KC) {
        int kc = K - k0 < KC ? K - k0 : KC;
        for (int t = t0; t < t1; t++) {
            int m0 = (t % tiles_m) * MR, n0 = (t / tiles_m) * NR;
            int mr = M - m0 < MR ? M - m0 : MR, nr = N - n0 < NR ? N - n0 : NR;
            float* ct = c + (size_t)m0 * ldc + n0;
            const float* at = a + m0 * a_row + k0 * a_col;
            const float* bt = b + (size_t)k0 * ldb + n0;
            if (mr == MR) tile(ct, ldc, at, a_row, a_col, bt, ldb, kc, MR, nr);
            else tile(ct, ldc, at, a_row, a_col, bt, ldb, kc, mr, nr);
        }
    }
}

void gemm_accumulate_serial(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                            const float* b, int ldb, int M, int N, int K) {
    int tiles = ((M + MR - 1) / MR) * ((N + NR - 1) / NR);
    tile_run(c, ldc, a, a_row, a_col, b, ldb, M, N, K, 0, tiles);
}

void gemm_accumulate(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float* b, int ldb, int M, int N, int K) {
    int tiles = ((M + MR - 1) / MR) * ((N + NR - 1) / NR);
    #pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int t0 = (int)((long)tiles * id / nt), t1 = (int)((long)tiles * (id + 1) / nt);
        tile_run(c, ldc, a, a_row, a_col, b, ldb, M, N, K, t0, t1);
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
