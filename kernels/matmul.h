/* matmul.h: the linear layer y = x W^T + b and its backward.
 * W is stored as PyTorch's nn.Linear stores it, (OC, C): row o holds the
 * weights of output o. With W = E this is exactly the tied output layer. */
#ifndef MATMUL_H
#define MATMUL_H

#include <stddef.h>

/* out (B*T, OC) = inp (B*T, C) W^T + bias.  weight (OC, C), bias (OC) or NULL.
 * scratch: matmul_scratch_floats(C, OC) floats, to hold W^T in packed panels. */
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, float* scratch,
                    int BT, int C, int OC);
size_t matmul_scratch_floats(int C, int OC);

/* One row, as generation needs it: out (OC) = W inp (C) + bias, without the
 * transposed copy of W that matmul_forward makes. Sums in another order than
 * matmul_forward: equal to it within float rounding, not bit for bit. */
void matvec_forward(float* out, const float* inp, const float* weight, const float* bias, int C, int OC);

/* How a backward treats its parameter gradients. GRADS_ADD: += (a tensor used
 * twice, or several batches, gather their sums). GRADS_SET: = (the same bits
 * as zeroing the gradient and adding, without that pass over it, nor the load
 * of the zeros into the product's accumulators). */
typedef enum { GRADS_ADD, GRADS_SET } GradMode;

/* dinp (B*T, C) = dout W;  dweight (OC, C) (+)= dout^T inp;  dbias (OC) (+)= sum_rows dout,
 * added or set as mode says. dinp or dbias may be NULL to skip that product.
 * scratch: matmul_backward_scratch_floats(C, OC) floats, to hold W in packed
 * panels (unused when dinp is NULL). */
void matmul_backward(float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, float* scratch,
                     int BT, int C, int OC, GradMode mode);
size_t matmul_backward_scratch_floats(int C, int OC);

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
 * packed W^T of the forward, attention's blocks of q^T and dy^T). On the calling thread. */
void transpose(float* dst, int ldd, const float* src, int lds, int rows, int cols);

/* Straightforward triple loop with the same contract, kept as the reference
 * the tests compare the tiled kernel against. */
void gemm_accumulate_naive(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                           const float* b, int ldb, int M, int N, int K);

#endif
