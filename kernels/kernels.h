/* kernels.h: the kernel API the model calls, and the shape legend shared by
 * every layer kernel.
 *
 *   B   batch size            T   sequence length (<= block_size)
 *   C   n_embd                OC  output channels of a linear layer
 *   NH  n_head                hs  head size = C / NH
 *   V   vocab_size            N   rows of a row-wise kernel (B*T)
 *
 * Two layers implement this one API, with the same names and contracts:
 *   kernels/reference/  every kernel as plain loops beside its formula, forward
 *                       and backward side by side: the one to read and check.
 *   kernels/fast/       tuned twins of the kernels that dominate a step (matmul,
 *                       attention, layernorm, gelu, cross-entropy), each tested
 *                       against its reference (tests/test_kernels.c).
 * The default build links each fast kernel and the reference of the others
 * (encoder, dropout, rope); `make KERNELS=reference` links the reference layer alone.
 *
 * Conventions (as llm.c): outputs first, inputs next, sizes last. Forward
 * functions overwrite their outputs. Backward functions ACCUMULATE (+=) into
 * parameter gradients, so one zero_grad per step suffices and a tensor used
 * twice (E, tied) simply receives both contributions; and into the gradient of
 * a layernorm's input, where the residual stream's two branches meet. The linear
 * layer's can instead overwrite its weight's and bias's (GRADS_SET, matmul.h):
 * a training step's products are their tensors' first writers, so it zeroes
 * only the small rest (model.c, zero_summed_grads). The other
 * activation gradients have a single writer, which overwrites them (matmul
 * dinp, attention dqkv, gelu dinp, cross-entropy dlogits): no step has to zero
 * them first.
 *
 * Determinism: every kernel splits its OpenMP work over output elements (or
 * fixed tiles of them) and each output's reduction runs in one fixed order,
 * so results are bit-identical for any number of threads.
 */
#ifndef KERNELS_H
#define KERNELS_H

#include "kernels/matmul.h"
#include "kernels/encoder.h"
#include "kernels/layernorm.h"
#include "kernels/attention.h"
#include "kernels/gelu.h"
#include "kernels/crossentropy.h"
#include "kernels/dropout.h"
#include "kernels/rope.h"

#endif
