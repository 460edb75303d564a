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
/* How well the predicted probabilities match the frequencies of being right:
 * the positions' top probability p_max in ECE_BINS equal-width bins of [0, 1],
 * per bin their count, the sum of p_max and how many of them have the target as
 * their top token (the first with the largest logit). */
enum { ECE_BINS = 15 };
typedef struct {
    double count[ECE_BINS], confidence[ECE_BINS], correct[ECE_BINS];
} Calibration;
/* total += part, bin by bin (in a fixed order, callers add batches in batch order). */
void calibration_add(Calibration* total, const Calibration* part);
/* The expected calibration error, sum_b (n_b / N) |correct_b / n_b - confidence_b / n_b|:
 * 0 for a model whose p_max is the probability of being right. */
double calibration_ece(const Calibration* c);

/* losses[i] = gpt_loss of batch i, for i < n_batches: gpt_mean_loss's
 * parts, for a caller that scores an evaluation a few batches at a time (adding
 * the losses in batch order in a double gives gpt_mean_loss's bits). With cal
 * (else NULL), cal[i] = batch i's calibration counts. */
void gpt_batch_losses(GPT* model, float* losses, Calibration* cal, int n_batches, NextBatch next_batch, void* ctx,
                      int* inputs, int* targets, int B, int T);
/* The threads gpt_mean_loss runs as lanes, one batch each at a time: all of
 * omp_get_max_threads() when each one's block of activations fits in the
 * model's activation memory, else 1 (one batch at a time on all threads). */
int gpt_eval_lanes(const GPT* model);

#endif
