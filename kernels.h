/* kernels.h: shape legend shared by every layer kernel.
 *
 *   B   batch size            T   sequence length (<= block_size)
 *   C   n_embd                OC  output channels of a linear layer
 *   NH  n_head                hs  head size = C / NH
 *   V   vocab_size
 *
 * Conventions (as llm.c): outputs first, inputs next, sizes last. Forward
 * functions overwrite their outputs; backward functions ACCUMULATE (+=) into
 * every gradient they receive, so one zero_grad per step suffices and a
 * tensor used twice (E, tied) simply receives both contributions.
 *
 * Determinism: every kernel splits its OpenMP work over output elements (or
 * fixed tiles of them) and each output's reduction runs in one fixed order,
 * so results are bit-identical for any number of threads.
 */
#ifndef KERNELS_H
#define KERNELS_H

#include "matmul.h"
#include "encoder.h"
#include "layernorm.h"
#include "attention.h"
#include "gelu.h"
#include "crossentropy.h"

#endif
