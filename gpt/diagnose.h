/* diagnose.h: where a NaN or an Inf first appears in a model. */
#ifndef GPT_DIAGNOSE_H
#define GPT_DIAGNOSE_H

#include <stddef.h>

#include "model.h"

/* Where a NaN or an Inf first appears, in the order a training step makes them:
 * the parameters (table order), the last forward's activations (layer by layer),
 * then the gradients (table order reversed: the output head first, as backward).
 * Writes e.g. "activation qkv of layer 1 (value 0 of 49152 is inf)" into out
 * and returns 1; returns 0 when every value is finite. A diagnosis for a run
 * whose loss or gradient norm stopped being finite; it reads every value once. */
int gpt_find_nonfinite(const GPT* model, char* out, size_t len);

#endif
