/* evaluate.c: evaluation lanes.
 *
 * An evaluation is many loss-only forwards on fixed weights, and they are
 * independent: each thread can run whole forwards on its own, on the one-thread
 * kernels, instead of every thread taking a share of every kernel. The cores
 * then share no activations and meet at no barrier, and a thread that finishes
 * early takes the next batch. The kernels give the same bits for any thread
 * count, so a batch's loss does not depend on the lane that scored it, and the
 * losses are added in batch order: the same result as one forward after another.
 * A lane needs one block's activations (keep = 0). They are cut from the
 * training activations, which are dead between a step's update and the next
 * forward; the lanes are used only when every thread's fits there.
 */
#include "gpt/evaluate.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gpt/internal.h"
#include "util/utils.h"

static size_t lane_floats(const GPT* m) {
    ActivationTensors unused;
    return point_activations(&unused, NULL, &m->config, m->max_batch, ACTS_ONE_BLOCK);
}

int gpt_eval_lanes(const GPT* m) {
    if (m->max_batch < 1) return 1;
    int threads = omp_get_max_threads(), fit = (int)(m->num_activations / lane_floats(m));
    return threads > 1 && threads <= m->scratch_threads && threads <= fit ? threads : 1;
}

/* Thread `lane`'s buffers: its cut of the activations, its cut of scratch (a
 * one-thread pass's: model_scratch_floats). */
static ForwardBuffers lane_buffers(const GPT* m, int lane) {
    ForwardBuffers buf = {.first_row = 0};
    point_activations(&buf.acts, m->acts_memory + (size_t)lane * lane_floats(m), &m->config, m->max_batch,
                      ACTS_ONE_BLOCK);
    buf.scratch = m->scratch + (size_t)lane * scratch_floats(&m->config, 1);
    return buf;
}

/* One forward's calibration counts: p_max is crossentropy_forward's second
 * statistic, 1 / sum_v e^(z_v - max) (kernels/crossentropy.h). */
static void forward_calibration(Calibration* c, const ActivationTensors* a, const int* targets, int N, int V) {
    memset(c, 0, sizeof *c);
    for (int n = 0; n < N; n++) {
        const float* z = a->logits + (size_t)n * V;
        int top = 0;
        for (int v = 1; v < V; v++)
            if (z[v] > z[top]) top = v;
        double p_max = a->ce_stats[2 * (size_t)n + 1];
        int bin = (int)(p_max * ECE_BINS);
        bin = bin < 0 ? 0 : bin >= ECE_BINS ? ECE_BINS - 1 : bin;  /* p_max = 1 joins the last bin */
        c->count[bin] += 1.0;
        c->confidence[bin] += p_max;
        c->correct[bin] += top == targets[n];
    }
}

void calibration_add(Calibration* total, const Calibration* part) {
    for (int b = 0; b < ECE_BINS; b++) {
        total->count[b] += part->count[b];
        total->confidence[b] += part->confidence[b];
        total->correct[b] += part->correct[b];
    }
}

double calibration_ece(const Calibration* c) {
    double n = 0.0, gap = 0.0;
    for (int b = 0; b < ECE_BINS; b++) {
        n += c->count[b];
        gap += fabs(c->correct[b] - c->confidence[b]);  /* n_b |acc_b - conf_b| */
    }
    return n > 0 ? gap / n : 0.0;
}

/* losses[i] = the loss of batch i, for i < n_batches, the lanes taking batches
 * in order as they become free (next_batch is called in batch order). */
static void lanes_losses(GPT* m, float* losses, Calibration* cal, int n_batches, NextBatch next_batch, void* ctx,
                         int B, int T, int lanes) {
    int next = 0;
    #pragma omp parallel num_threads(lanes)
    {
        int lane = omp_get_thread_num();
        omp_set_num_threads(1);  /* the kernels' regions inside this lane: one thread */
        ForwardBuffers buf = lane_buffers(m, lane);
        size_t n = (size_t)m->max_batch * m->config.block_size;
        int* inputs = m->lane_tokens + (size_t)lane * 2 * n;
        int* targets = inputs + n;
        for (;;) {
            int i;
            #pragma omp critical(emergent_eval_batches)
            {
                i = next < n_batches ? next++ : -1;
                if (i >= 0) next_batch(ctx, inputs, targets);
            }
            if (i < 0) break;
            losses[i] = forward_pass(m, buf, inputs, targets, B, T, 0);
            if (cal) forward_calibration(&cal[i], &buf.acts, targets, B * T, m->config.vocab_size);
        }
    }
}

void gpt_batch_losses(GPT* m, float* losses, Calibration* cal, int n_batches, NextBatch next_batch, void* ctx,
                      int* inputs, int* targets, int B, int T) {
    int lanes = gpt_eval_lanes(m);
    if (lanes > 1 && n_batches > 1) {
        m->B = B; m->T = T;  /* as gpt_loss sets them; the training activations are now spent */
        m->backward_ready = 0;
        gpt_sync_embedding(m);  /* E = A B once for all the lanes, which only read it */
        lanes_losses(m, losses, cal, n_batches, next_batch, ctx, B, T, lanes < n_batches ? lanes : n_batches);
        m->mean_loss = losses[n_batches - 1];
    } else {
        for (int i = 0; i < n_batches; i++) {
            next_batch(ctx, inputs, targets);
            losses[i] = gpt_loss(m, inputs, targets, B, T);
            if (cal) forward_calibration(&cal[i], &m->acts, targets, B * T, m->config.vocab_size);
        }
    }
}

float gpt_mean_loss(GPT* m, int n_batches, NextBatch next_batch, void* ctx, int* inputs, int* targets,
                    int B, int T) {
    float* losses = xmalloc((size_t)n_batches * sizeof(float), "evaluation losses");
    gpt_batch_losses(m, losses, NULL, n_batches, next_batch, ctx, inputs, targets, B, T);
    double total = 0.0;
    for (int i = 0; i < n_batches; i++) total += losses[i];
    free(losses);
    return (float)(total / n_batches);
}
