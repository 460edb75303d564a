/* bench/fma_peak.c: the machine's FP32 peak, measured: FMA throughput on the
 * widest vector unit the compiler targets (AVX-512, else AVX2 + FMA, else scalar),
 * on 1 thread and on every OpenMP thread at once. The benchmark (bench/bench.sh)
 * divides the model's achieved GFLOP/s by these numbers.
 *
 * Not a model of anything the trainer does: no memory traffic, only registers.
 * Each thread updates NACC independent accumulators, acc = acc * m + c, so NACC
 * FMAs are in flight at once: more than an FMA's latency (4 cycles on current
 * x86 cores) times the FMA pipes (2) needs, so the pipes never wait. The
 * accumulators converge to c / (1 - m) = 0.1 (no overflow, no denormals) and
 * their sum is printed, so the compiler cannot drop the loop.
 *
 * Usage: bench/fma_peak           (OMP_NUM_THREADS picks the "all threads" count)
 * Prints, one line each:
 *   fma_peak isa=avx512 width=16 accumulators=12 iters=...
 *   fma_peak threads=1 isa=avx512 width=16 gflops=...
 *   fma_peak threads=N isa=avx512 width=16 gflops=...
 * An FMA counts as 2 FLOP per lane. Builds with any of
 *   gcc -O2 -march=native -fopenmp bench/fma_peak.c -o bench/fma_peak
 *   gcc -O2 -march=x86-64 -fopenmp bench/fma_peak.c -o bench/fma_peak   (scalar fallback)
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define ISA "avx512"
#define WIDTH 16
typedef __m512 vec;
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
static float vsum(vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ISA "avx2"
#define WIDTH 8
typedef __m256 vec;
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
static float vsum(vec v) {
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    float s = 0.0f;
    for (int i = 0; i < 8; i++) s += lanes[i];
    return s;
}
#else
/* without FMA instructions a * b + c is a multiply and an add: still 2 FLOP */
#define ISA "scalar"
#define WIDTH 1
typedef float vec;
#define VSET(x) (x)
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
static float vsum(vec v) { return v; }
#endif

enum { NACC = 12, REPEATS = 5 };
#define TARGET_SECONDS 0.1  /* per timed run: long against the clock and the thread start */

/* iters x NACC FMAs on WIDTH lanes; returns the accumulators' sum. The multiplier
 * and addend come through volatile reads, so they are not compile-time constants. */
static float fma_loop(long iters) {
    static volatile float mul = 0.999999f, add = 1e-7f;
    vec m = VSET(mul), c = VSET(add);
    vec a0 = VSET(0.0f), a1 = VSET(0.01f), a2 = VSET(0.02f), a3 = VSET(0.03f), a4 = VSET(0.04f),
        a5 = VSET(0.05f), a6 = VSET(0.06f), a7 = VSET(0.07f), a8 = VSET(0.08f), a9 = VSET(0.09f),
        a10 = VSET(0.10f), a11 = VSET(0.11f);
    for (long i = 0; i < iters; i++) {
        a0 = VFMA(a0, m, c); a1 = VFMA(a1, m, c); a2 = VFMA(a2, m, c); a3 = VFMA(a3, m, c);
        a4 = VFMA(a4, m, c); a5 = VFMA(a5, m, c); a6 = VFMA(a6, m, c); a7 = VFMA(a7, m, c);
        a8 = VFMA(a8, m, c); a9 = VFMA(a9, m, c); a10 = VFMA(a10, m, c); a11 = VFMA(a11, m, c);
    }
    vec s = VADD(VADD(VADD(a0, a1), VADD(a2, a3)), VADD(VADD(a4, a5), VADD(a6, a7)));
    s = VADD(s, VADD(VADD(a8, a9), VADD(a10, a11)));
    return vsum(s);
}

static double flops(long iters, int threads) { return 2.0 * WIDTH * NACC * (double)iters * threads; }

/* Every one of `threads` threads runs fma_loop(iters) at once; the time is wall
 * time from a barrier before the loops to a barrier after them, so it leaves out
 * the start of the thread team. *checksum receives the threads' results. */
static double timed_run(int threads, long iters, double* checksum) {
    double t0 = 0.0, t1 = 0.0, sum = 0.0;
    #pragma omp parallel num_threads(threads) reduction(+ : sum)
    {
        #pragma omp barrier
        #pragma omp master
        t0 = omp_get_wtime();
        sum += fma_loop(iters);
        #pragma omp barrier
        #pragma omp master
        t1 = omp_get_wtime();
    }
    *checksum += sum;
    return t1 - t0;
}

int main(void) {
    int max_threads = omp_get_max_threads();
    double checksum = 0.0;
    /* calibrate on one thread: iterations for about TARGET_SECONDS */
    long iters = 1L << 16;
    double dt;
    while ((dt = timed_run(1, iters, &checksum)) < TARGET_SECONDS / 8) iters *= 2;
    iters = (long)(iters * (TARGET_SECONDS / dt)) + 1;
    printf("fma_peak isa=%s width=%d accumulators=%d iters=%ld\n", ISA, WIDTH, NACC, iters);

    int counts[2] = {1, max_threads};
    for (int k = 0; k < (max_threads > 1 ? 2 : 1); k++) {
        double best = 1e30;
        for (int r = 0; r < REPEATS; r++) {
            double t = timed_run(counts[k], iters, &checksum);
            if (t < best) best = t;
        }
        printf("fma_peak threads=%d isa=%s width=%d gflops=%.1f\n", counts[k], ISA, WIDTH,
               flops(iters, counts[k]) / best * 1e-9);
    }
    /* the results, so no loop is dead code (about 0.1 per lane and accumulator) */
    fprintf(stderr, "fma_peak checksum %.6g\n", checksum);
    return EXIT_SUCCESS;
}
