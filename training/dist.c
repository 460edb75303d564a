/* dist.c: the MPI calls of data-parallel training, and each rank's slice of the global batch (see dist.h). */
#include "training/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utils.h"

void rank_batches_init(RankBatches* b, const Dist* dist, const DataLoader* dl, int B, int T) {
    size_t global = (size_t)dist->size * B * T;
    *b = (RankBatches){.dl = dl, .rng = NULL, .dist = dist, .B = B, .T = T,
                       .all_inputs = xmalloc(global * sizeof(int), "global batch inputs"),
                       .all_targets = xmalloc(global * sizeof(int), "global batch targets")};
}

void rank_batches_free(RankBatches* b) {
    free(b->all_inputs);
    free(b->all_targets);
}

void rank_batch_next(void* ctx, int* inputs, int* targets) {
    RankBatches* b = ctx;
    size_t n = (size_t)b->B * b->T, first = (size_t)b->dist->rank * n;
    dataloader_next_batch(b->dl, b->rng, b->all_inputs, b->all_targets, b->dist->size * b->B, b->T);
    memcpy(inputs, b->all_inputs + first, n * sizeof(int));
    memcpy(targets, b->all_targets + first, n * sizeof(int));
}

#ifdef USE_MPI
#include <mpi.h>

static void check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        die(EXIT_IO_FAILURE, "%s failed: %s", what, msg);
    }
}

void dist_init(Dist* d, int* argc, char*** argv) {
    int provided;
    check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    /* errors come back as codes, which check() reports, instead of aborting silently */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check(MPI_Comm_rank(MPI_COMM_WORLD, &d->rank), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &d->size), "MPI_Comm_size");
    if (d->rank != 0 && !freopen("/dev/null", "w", stdout))
        die(EXIT_IO_FAILURE, "rank %d: cannot redirect standard output to /dev/null", d->rank);
}

void dist_finalize(void) { MPI_Finalize(); }
int dist_enabled(void) { return 1; }

void dist_mean_floats(float* buf, size_t n) {
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1) return;
    /* in chunks: MPI counts are ints */
    const size_t chunk = (size_t)1 << 30;
    for (size_t i = 0; i < n; i += chunk) {
        int count = (int)(n - i < chunk ? n - i : chunk);
        check(MPI_Allreduce(MPI_IN_PLACE, buf + i, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    }
    float scale = 1.0f / (float)size;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] *= scale;
}

double dist_sum_double(double x) {
    double total;
    check(MPI_Allreduce(&x, &total, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    return total;
}

int dist_all_equal_u64(uint64_t x) {
    uint64_t lo, hi;
    check(MPI_Allreduce(&x, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
    check(MPI_Allreduce(&x, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    return lo == hi;
}

void dist_barrier(void) { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

#else  /* one process */

void dist_init(Dist* d, int* argc, char*** argv) {
    d->rank = 0;
    d->size = 1;
}
void dist_finalize(void) {}
int dist_enabled(void) { return 0; }
void dist_mean_floats(float* buf, size_t n) {}
double dist_sum_double(double x) { return x; }
int dist_all_equal_u64(uint64_t x) { return 1; }
void dist_barrier(void) {}

#endif
