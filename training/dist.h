/* dist.h: data-parallel training over MPI, or a single process without it.
 *
 * Built with `make MPI=1` (mpicc, -DUSE_MPI) these wrap Open MPI; in a plain
 * build they are the one-process case (rank 0 of 1) and cost nothing, so
 * train.c reads the same either way. Each rank holds the whole model; a step's
 * global batch (ranks x batch_size windows) is drawn on every rank from the one
 * seeded stream and rank r trains on slice r; the gradients are then averaged in
 * one in-place allreduce over the contiguous gradient buffer, so every rank makes
 * the same AdamW update. */
#ifndef DIST_H
#define DIST_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataloader.h"
#include "util/utils.h"

typedef struct {
    int rank;   /* this process: 0 .. size-1; rank 0 prints and writes every file */
    int size;   /* number of processes (mpirun -np N); 1 without MPI */
} Dist;

/* MPI_Init (threads: only the main thread calls MPI), rank and size. Ranks other
 * than 0 send their standard output to /dev/null: one copy of every progress line. */
void dist_init(Dist* d, int* argc, char*** argv);
void dist_finalize(void);
int dist_enabled(void);   /* 1 in an MPI build */

/* buf (n floats) = the mean over ranks of every rank's buf, the same bits on every rank */
void dist_mean_floats(float* buf, size_t n);
/* the sum over ranks of x, on every rank */
double dist_sum_double(double x);
/* 1 when every rank passed the same value, else 0 (on every rank) */
int dist_all_equal_u64(uint64_t x);
/* wait until every rank gets here */
void dist_barrier(void);

/* The batches of one split on this rank: each is the global batch (ranks x B
 * windows) drawn from rng, which advances the same way on every rank, then this
 * rank's slice of it. One process: the slice is the whole batch. */
typedef struct {
    const DataLoader* dl;
    Rng* rng;                       /* the stream the windows come from; the caller points it */
    const Dist* dist;
    int B, T;                       /* per rank */
    int *all_inputs, *all_targets;  /* (ranks * B, T) */
} RankBatches;

void rank_batches_init(RankBatches* b, const Dist* dist, const DataLoader* dl, int B, int T);
void rank_batches_free(RankBatches* b);
/* Draw the next global batch from ctx (a RankBatches) and copy this rank's slice
 * to inputs and targets (B, T): model.h's NextBatch, for gpt_mean_loss. */
void rank_batch_next(void* ctx, int* inputs, int* targets);

#endif
