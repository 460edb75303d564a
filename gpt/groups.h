/* groups.h: batch groups, for training on several threads.
 *
 * A training step's weight gradients are sums over every position of the batch;
 * on threads that share each product, the cores exchange every row they made and
 * meet at a barrier after each kernel. Split into groups of sequences instead,
 * the batch runs as `groups` independent forwards and backwards, the threads
 * spread over the groups, each group adding into a gradient copy of its own; the
 * copies are then summed in group order. The bits depend on the number of groups,
 * never on the number of threads: the sums over the batch are cut into groups at
 * the same places on any thread count. The losses and activation gradients are
 * those of one pass (every row's forward is computed alone); the weight gradients
 * differ from it by rounding.
 */
#ifndef GPT_GROUPS_H
#define GPT_GROUPS_H

#include "model.h"

/* groups must divide max_batch; 1 (the default) is one pass. */
void gpt_set_batch_groups(GPT* model, int groups);
/* A training step's gradients: gpt_forward, then the backward with its
 * gradients REPLACING what model->grads held (no gpt_zero_grad first: the same
 * bits as with one, without the passes that zero the gradients and the groups'
 * copies), in batch groups when there are more than one. Returns the mean loss
 * of the whole batch. B must be a multiple of the groups; with more than one
 * group gpt_backward refuses afterwards. */
float gpt_forward_backward(GPT* model, const int* inputs, const int* targets, int B, int T);

#endif
