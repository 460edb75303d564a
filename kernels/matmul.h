/* matmul.h: the linear layer y = x W^T + b and its backward.
 * W is stored as PyTorch's nn.Linear stores it, (OC, C): row o holds the
 * weights of output o. With W = E this is exactly the tied output layer. */
#ifndef MATMUL_H
#define MATMUL_H

#include <stddef.h>

/* out (B*T, OC) = inp (B*T, C) W^T + bias.  weight (OC, C), bias (OC) or NULL.
 * scratch: matmul_scratch_floats(C, OC) floats (the fast layer packs W^T
 * there; the reference layer needs none and returns 0). */
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, float* scratch,
                    int BT, int C, int OC);
size_t matmul_scratch_floats(int C, int OC);

/* One row, as generation needs it: out (OC) = W inp (C) + bias, without
 * scratch. It may sum in another order than matmul_forward (the fast layer
 * does): equal to it within float rounding, not always bit for bit. */
void matvec_forward(float* out, const float* inp, const float* weight, const float* bias, int C, int OC);

/* How a backward treats its parameter gradients. GRADS_ADD: += (a tensor used
 * twice, or several batches, gather their sums). GRADS_SET: = (the same bits
 * as zeroing the gradient and adding, without that pass over it). */
typedef enum { GRADS_ADD, GRADS_SET } GradMode;

/* dinp (B*T, C) = dout W (overwritten);  dweight (OC, C) (+)= dout^T inp;
 * dbias (OC) (+)= sum_rows dout, added or set as mode says. dinp or dbias may
 * be NULL to skip that product. scratch: matmul_backward_scratch_floats(C, OC)
 * floats (the fast layer packs W there when dinp is wanted; the reference
 * layer needs none). */
void matmul_backward(float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, float* scratch,
                     int BT, int C, int OC, GradMode mode);
size_t matmul_backward_scratch_floats(int C, int OC);

/* The products this build runs, as one word for the benchmark's report:
 * "reference", or "fast-ISA-vlenN-tileRxVv": the vector path kernels/fast/simd.h
 * picked for the target, N floats a vector, a register tile of R rows x V vectors. */
const char* matmul_path(void);

#endif
