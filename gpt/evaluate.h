/* evaluate.h: an evaluation, the mean loss over many batches on fixed weights. */
#ifndef GPT_EVALUATE_H
#define GPT_EVALUATE_H

#include "model.h"

/* The mean of gpt_loss over n_batches batches that next_batch(ctx, inputs, targets)
 * writes one after another (B*T ids each). With gpt_eval_lanes(model) > 1 each
 * thread scores whole batches on its own; the result has the same bits as
 * (float)(sum of the gpt_loss values in double / n_batches) either way.
 * next_batch is called in batch order, never two at once, but from any thread
 * and into a buffer of that thread's (the caller's inputs/targets when one
 * thread scores them all). Afterwards gpt_backward refuses until a gpt_forward. */
typedef void (*NextBatch)(void* ctx, int* inputs, int* targets);
float gpt_mean_loss(GPT* model, int n_batches, NextBatch next_batch, void* ctx, int* inputs, int* targets,
                    int B, int T);
/* losses[i] = gpt_loss of batch i, for i < n_batches: gpt_mean_loss's
 * parts, for a caller that scores an evaluation a few batches at a time (adding
 * the losses in batch order in a double gives gpt_mean_loss's bits). */
void gpt_batch_losses(GPT* model, float* losses, int n_batches, NextBatch next_batch, void* ctx, int* inputs,
                      int* targets, int B, int T);
/* The threads gpt_mean_loss runs as lanes, one batch each at a time: all of
 * omp_get_max_threads() when each one's block of activations fits in the
 * model's activation memory, else 1 (one batch at a time on all threads). */
int gpt_eval_lanes(const GPT* model);

#endif
