/* gemm.h: the register-tiled product that the fast layer's kernels share
 * (kernels/fast/matmul.c defines it; attention.c and layernorm.c call it).
 * Private to kernels/fast/: not part of the kernel API, and the reference
 * layer (kernels/reference/) has no such helper. */
#ifndef FAST_GEMM_H
#define FAST_GEMM_H

#include <stddef.h>

/* The core product: c[m][n] += sum_k A(m,k) * b[k][n] for m < M, n < N, k < K,
 * where A(m,k) = a[m*a_row + k*a_col] (any strides, so A^T costs nothing),
 * b is row-major with row stride ldb and c with row stride ldc.
 * k runs from 0 to K-1 for every element: the result never depends on threads. */
void gemm_accumulate(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float* b, int ldb, int M, int N, int K);

/* gemm_accumulate on the calling thread alone (for kernels that already run
 * one task per thread, such as attention's per-head products). Same bits. */
void gemm_accumulate_serial(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                            const float* b, int ldb, int M, int N, int K);

/* gemm_accumulate_serial with c overwritten, c = A b: the sums start from 0
 * instead of c (the same bits as zeroing c first, without the pass over it). */
void gemm_set_serial(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float* b, int ldb, int M, int N, int K);

/* dst (cols, rows) = src (rows, cols)^T, with row strides ldd and lds (the
 * packed W^T of the forward, attention's blocks of q^T and dy^T, layernorm's
 * lane sums). On the calling thread. */
void transpose(float* dst, int ldd, const float* src, int lds, int rows, int cols);

#endif
