/* bench/bench_step.c: how fast the C model trains: the time of one full training
 * step (forward, backward, clip, AdamW), exactly as train.c's loop makes it, on
 * random token ids, plus one evaluation forward, the peak RSS and the FLOP rate.
 * bench/bench.sh runs it next to its PyTorch peer (bench/bench_torch.py).
 *
 * Not a trainer: no data, no evaluation loop, no checkpoints. The config file is
 * read with ./train's parser (the same keys and checks); only the model shape,
 * batch_size, block_size, dropout, seed and the AdamW settings matter here.
 *
 * Usage: bench/bench_step CONFIG [--key=value ...] [--steps=N] [--warmup=N]
 *                                  [--eval_reps=N] [--vocab_size=V] [--products[=REPS]]
 *   --steps       timed training steps (default 30); the median is reported
 *   --warmup      untimed steps first (default 5): page faults, caches, thread start
 *   --eval_reps   timed evaluation forwards (default 10)
 *   --vocab_size  V of the model (default 65, Tiny Shakespeare's characters): the
 *                 bench has no data to take it from; this is not the config key
 *                 of the same name, which only sizes a SentencePiece vocabulary
 *   --products    instead of steps, the linear layers' products alone (matmul.c), each
 *                 the fastest of REPS calls (default 10) hot and cold: how close the
 *                 kernel comes to the FMA peak, and what the rest of a step costs
 * Threads: OMP_NUM_THREADS, as for ./train.
 *
 * The last line is machine-readable (bench/bench.sh parses it):
 *   bench impl=c config=NAME threads=N kernels= B= T= params= steps= ms_median= ms_min= tok_s=
 *         gflop_per_step= attn_share= gflops= eval_ms= rss_base_mb= rss_mb= est_mb= rss_over_est=
 * (kernels: matmul_path(), the kernel layer and vector path; attn_share: attention's
 * part of the FLOP count). With --products, a line per product
 * and a last line for all the products of a step, their rates in GFLOP/s:
 *   products config=NAME threads=N lanes= rows= layer= C= OC= calls= fwd_hot= fwd_cold= bwd_hot= bwd_cold=
 *   bench impl=c-products config=NAME threads=N kernels= lanes= rows= ms_hot= ms_cold= fwd_hot= fwd_cold= bwd_hot=
 *         bwd_cold= hot= cold=
 * (ms_hot, ms_cold: the time all the products of one training step take)
 * Sizes in MB are 2^20 bytes, as ./train prints them.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "formats/config.h"
#include "gpt/evaluate.h"
#include "gpt/groups.h"
#include "gpt/memory.h"
#include "kernels/matmul.h"
#include "model.h"
#include "training/optim.h"
#include "util/utils.h"

enum { DEFAULT_STEPS = 30, DEFAULT_WARMUP = 5, DEFAULT_EVAL_REPS = 10, DEFAULT_VOCAB = 65, DEFAULT_PRODUCT_REPS = 10 };
enum { STREAM_BENCH_BATCH = 7 };  /* a PCG32 stream of its own for the random batches */

static void usage(FILE* f) {
    fprintf(f, "usage: bench/bench_step CONFIG [--key=value ...] [--steps=N] [--warmup=N] [--eval_reps=N] "
               "[--vocab_size=V]\n"
               "  --steps       timed training steps (default %d)\n"
               "  --warmup      untimed steps before them (default %d)\n"
               "  --eval_reps   timed evaluation forwards (default %d)\n"
               "  --vocab_size  the model's vocabulary (default %d)\n"
               "  --products[=REPS]  the linear products alone, hot and cold, each the fastest of REPS\n"
               "                calls (default %d), instead of training steps\n"
               "  --key=value   any ./train config key (./train --help lists them)\n"
               "Threads: OMP_NUM_THREADS.\n",
            DEFAULT_STEPS, DEFAULT_WARMUP, DEFAULT_EVAL_REPS, DEFAULT_VOCAB, DEFAULT_PRODUCT_REPS);
}

/* ---- FLOPs ---------------------------------------------------------------- */

/* Useful FLOPs of one forward pass over B sequences of T tokens, an FMA = 2 FLOP.
 * Counted: the matrix products, which are nearly all the work. Not counted:
 * layernorm, GELU, softmax, the residual adds, cross-entropy and AdamW, which are
 * O(B T C) or O(params) each, not O(B T C^2).
 *   per layer, with BT rows of width C:
 *     qkv projection      (BT,C) x (C,3C)    2 BT C 3C
 *     attention output    (BT,C) x (C,C)     2 BT C C
 *     MLP up              (BT,C) x (C,4C)    2 BT C 4C
 *     MLP down            (BT,4C) x (4C,C)   2 BT 4C C
 *                                    total   24 BT C^2
 *     causal attention, per (b, head) with head size hs = C/NH: query t sees keys
 *     0..t, so QK^T and PV are each sum_t (t+1) hs = hs T(T+1)/2 multiply-adds,
 *     2 hs T(T+1) FLOPs for the two; over B NH heads (B NH hs = B C): 2 B C T(T+1)
 *   logits  z = h E^T  (BT,C) x (C,V)       2 BT C V   (tied or not: the same product)
 * forward = L (24 BT C^2 + 2 B C T (T+1)) + 2 BT C V.
 * The backward does two products for every forward one (the input gradient and the
 * weight gradient of each matmul; dP and dV, then dQ and dK, for attention): twice
 * the forward. A training step is forward + backward = 3 x forward. A kernel that
 * computes the masked half of T x T anyway does more work than this count. */
typedef struct {
    double matmuls, attention, logits;  /* the three terms of the forward count */
    double forward, step;               /* step = 3 x forward */
} FlopCount;

static FlopCount count_flops(const GPTConfig* c, int B, int T) {
    double L = c->n_layer, C = c->n_embd, V = c->vocab_size, BT = (double)B * T;
    FlopCount f = {
        .matmuls = L * 24.0 * BT * C * C,
        .attention = L * 2.0 * B * C * (double)T * (T + 1),
        .logits = 2.0 * BT * C * V,
    };
    f.forward = f.matmuls + f.attention + f.logits;
    f.step = 3.0 * f.forward;
    return f;
}

/* ---- timing helpers ------------------------------------------------------- */

static int compare_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

/* Median of n values (sorts them in place). */
static double median(double* v, int n) {
    qsort(v, (size_t)n, sizeof(double), compare_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Peak resident set size of this process so far, in MB (Linux reports kB). */
static double peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) die(EXIT_IO_FAILURE, "getrusage failed");
    return ru.ru_maxrss * 1024.0 / BYTES_PER_MB;
}

static void random_batch(Rng* rng, int* inputs, int* targets, int n, int vocab_size) {
    for (int i = 0; i < n; i++) {
        inputs[i] = (int)rng_below(rng, (uint32_t)vocab_size);
        targets[i] = (int)rng_below(rng, (uint32_t)vocab_size);
    }
}

typedef struct { Rng rng; int n, vocab_size; } RandomBatches;

static void next_random_batch(void* ctx, int* inputs, int* targets) {
    RandomBatches* rb = ctx;
    random_batch(&rb->rng, inputs, targets, rb->n, rb->vocab_size);
}

/* "--name=N" with N a positive integer: 1 and *out set; another option: 0. */
static int int_option(const char* arg, const char* name, int* out) {
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || arg[n] != '=') return 0;
    char* end;
    long v = strtol(arg + n + 1, &end, 10);
    if (*end != 0 || end == arg + n + 1 || v < 1 || v > 1000000)
        die(EXIT_BAD_INPUT, "%s expects a positive integer, got '%s'", name, arg + n + 1);
    *out = (int)v;
    return 1;
}

/* The config's name for the report: its file name without directory and ".conf". */
static void config_name(const char* path, char* out, size_t len) {
    const char* base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t n = strcspn(base, ".");
    snprintf(out, len, "%.*s", (int)n, base);
}

/* ---- --products: the linear layers' products alone -------------------------- */

/* A linear layer's product, (rows, C) x W^T -> (rows, OC), used `calls` times a forward. */
typedef struct { const char* layer; int C, OC, calls, bias; } Product;

/* Bytes a cold call's lanes write first, all together: the last-level cache that the
 * system reports (a VM may report the whole socket's: 508 MiB here, where 64 MiB left
 * the products as fast as hot), at least 64 MiB and at most 1 GiB. */
static size_t flush_bytes(void) {
    long l3 = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    size_t lo = (size_t)64 << 20, hi = (size_t)1 << 30;
    return l3 < (long)lo ? lo : (size_t)l3 > hi ? hi : (size_t)l3;
}
static volatile unsigned char flush_sink;  /* a read of the flush: keeps its writes */

static float* random_floats(Rng* rng, size_t n, const char* what) {
    float* p = xmalloc(sizeof(float) * n, what);
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform(rng) - 0.5f;
    return p;
}

/* The fastest forward and backward (dinp, dweight, dbias) of p over reps calls, in
 * seconds, as a step's batch groups run them: `lanes` threads side by side, each on
 * `rows` rows of its own with `inner` threads for its kernels; a call lasts until the
 * slowest lane is done. cold: the lanes first write flush_total bytes elsewhere. */
static void time_product(const Product* p, int rows, int lanes, int inner, int reps, size_t flush_total,
                         int cold, double* fwd, double* bwd) {
    double best[2] = {INFINITY, INFINITY}, t0 = 0.0;
    #pragma omp parallel num_threads(lanes)
    {
        omp_set_num_threads(inner);
        int lane = omp_get_thread_num();
        Rng rng;
        rng_seed(&rng, 1, (uint64_t)lane);
        size_t in = (size_t)rows * p->C, out = (size_t)rows * p->OC, wn = (size_t)p->OC * p->C;
        size_t fs = matmul_scratch_floats(p->C, p->OC), bs = matmul_backward_scratch_floats(p->C, p->OC);
        float *inp = random_floats(&rng, in, "product input"), *w = random_floats(&rng, wn, "product weight");
        float *bias = p->bias ? random_floats(&rng, p->OC, "product bias") : NULL;
        float *y = random_floats(&rng, out, "product output"), *dy = random_floats(&rng, out, "product dout");
        float *dinp = random_floats(&rng, in, "product dinp"), *dw = random_floats(&rng, wn, "product dweight");
        float *db = p->bias ? random_floats(&rng, p->OC, "product dbias") : NULL;
        float* scratch = random_floats(&rng, fs > bs ? fs : bs, "product scratch");
        size_t flush_n = flush_total / (size_t)lanes;
        unsigned char* flush = cold ? xmalloc(flush_n, "cache flush") : NULL;
        for (int r = 0; r < reps; r++)
            for (int phase = 0; phase < 2; phase++) {
                if (cold) {
                    memset(flush, r * 2 + phase, flush_n);
                    flush_sink = flush[(size_t)r * 4099 % flush_n];
                }
                #pragma omp barrier
                if (lane == 0) t0 = now_seconds();
                if (phase == 0) matmul_forward(y, inp, w, bias, scratch, rows, p->C, p->OC);
                else matmul_backward(dinp, dw, db, dy, inp, w, scratch, rows, p->C, p->OC, GRADS_SET);
                #pragma omp barrier
                double dt = now_seconds() - t0;
                if (lane == 0 && dt < best[phase]) best[phase] = dt;
            }
        free(inp); free(w); free(bias); free(y); free(dy); free(dinp); free(dw); free(db); free(scratch); free(flush);
    }
    *fwd = best[0];
    *bwd = best[1];
}

/* Every linear product of the model (the four of a layer, then the logits z = h E^T),
 * hot and cold, and all of a step's products together: their FLOPs over the time
 * their fastest calls add up to. */
static void bench_products(const TrainConfig* cfg, int vocab_size, int reps, const char* name) {
    int C = cfg->n_embd, L = cfg->n_layer, threads = omp_get_max_threads(), G = cfg->batch_groups;
    int lanes = G < threads ? G : threads, inner = threads / lanes;  /* as gpt_forward_backward splits them */
    int rows = cfg->batch_size * cfg->block_size / G;
    Product ps[] = {{"qkv", C, 3 * C, L, cfg->bias}, {"attproj", C, C, L, cfg->bias}, {"fc", C, 4 * C, L, cfg->bias},
                    {"fcproj", 4 * C, C, L, cfg->bias}, {"logits", C, vocab_size, 1, 0}};
    if (inner > 1 && omp_get_max_active_levels() < 2) omp_set_max_active_levels(2);
    size_t flush = flush_bytes();
    printf("bench_step --products: %s on %d OpenMP threads: %d lane(s) of %d rows side by side (the batch groups), "
           "%d thread(s) each; the fastest of %d calls, hot and after %zu MiB written (cold)\n",
           name, threads, lanes, rows, inner, reps, flush >> 20);
    double flops[2] = {0, 0}, secs[2][2] = {{0, 0}, {0, 0}};  /* [forward, backward], [hot, cold] */
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        const Product* p = &ps[i];
        double f = 2.0 * lanes * rows * (double)p->C * p->OC, t[2][2];
        for (int cold = 0; cold < 2; cold++) time_product(p, rows, lanes, inner, reps, flush, cold, &t[0][cold], &t[1][cold]);
        for (int d = 0; d < 2; d++) {
            flops[d] += p->calls * f * (d + 1);  /* the backward's two products: twice the forward */
            for (int cold = 0; cold < 2; cold++) secs[d][cold] += p->calls * t[d][cold];
        }
        printf("products config=%s threads=%d lanes=%d rows=%d layer=%s C=%d OC=%d calls=%d fwd_hot=%.1f "
               "fwd_cold=%.1f bwd_hot=%.1f bwd_cold=%.1f\n", name, threads, lanes, rows, p->layer, p->C, p->OC,
               p->calls, f / t[0][0] * 1e-9, f / t[0][1] * 1e-9, 2 * f / t[1][0] * 1e-9, 2 * f / t[1][1] * 1e-9);
    }
    int rounds = (G + lanes - 1) / lanes;  /* a step runs its groups in this many rounds of lanes */
    printf("bench impl=c-products config=%s threads=%d kernels=%s lanes=%d rows=%d ms_hot=%.3f ms_cold=%.3f "
           "fwd_hot=%.1f fwd_cold=%.1f bwd_hot=%.1f bwd_cold=%.1f hot=%.1f cold=%.1f\n", name, threads, matmul_path(),
           lanes, rows,
           rounds * (secs[0][0] + secs[1][0]) * 1e3, rounds * (secs[0][1] + secs[1][1]) * 1e3,
           flops[0] / secs[0][0] * 1e-9, flops[0] / secs[0][1] * 1e-9, flops[1] / secs[1][0] * 1e-9,
           flops[1] / secs[1][1] * 1e-9, (flops[0] + flops[1]) / (secs[0][0] + secs[1][0]) * 1e-9,
           (flops[0] + flops[1]) / (secs[0][1] + secs[1][1]) * 1e-9);
}

int main(int argc, char** argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_BAD_INPUT : 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    double rss_base = peak_rss_mb();

    /* ---- command line: the bench's own options, the rest to the config parser ---- */
    int steps = DEFAULT_STEPS, warmup = DEFAULT_WARMUP, eval_reps = DEFAULT_EVAL_REPS, vocab_size = DEFAULT_VOCAB;
    int product_reps = 0;  /* --products: the products alone, not steps */
    char** config_argv = xmalloc(sizeof(char*) * (size_t)argc, "arguments");
    int config_argc = 0;
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && (int_option(argv[i], "--steps", &steps) || int_option(argv[i], "--warmup", &warmup) ||
                       int_option(argv[i], "--eval_reps", &eval_reps) ||
                       int_option(argv[i], "--vocab_size", &vocab_size) ||
                       int_option(argv[i], "--products", &product_reps)))
            continue;
        if (i >= 2 && !strcmp(argv[i], "--products")) {
            product_reps = DEFAULT_PRODUCT_REPS;
            continue;
        }
        config_argv[config_argc++] = argv[i];
    }
    if (vocab_size > 65536) die(EXIT_BAD_INPUT, "--vocab_size=%d: token ids are 16-bit, at most 65536", vocab_size);
    TrainConfig cfg;
    char err[CONFIG_ERR_MAX];
    if (config_from_args(&cfg, config_argc, config_argv, err, sizeof err) != 0) die(EXIT_BAD_INPUT, "%s", err);
    free(config_argv);
    char name[256];
    config_name(argv[1], name, sizeof name);
    if (product_reps > 0) {
        bench_products(&cfg, vocab_size, product_reps, name);
        return 0;
    }

    /* ---- model, optimizer, batch ---- */
    int B = cfg.batch_size, T = cfg.block_size, threads = omp_get_max_threads();
    GPTConfig mc = config_model(&cfg, vocab_size);
    MemoryEstimate mem = gpt_memory_estimate(&mc, B, cfg.batch_groups);
    GPT model;
    gpt_build(&model, &mc, B, (uint64_t)cfg.seed);
    gpt_set_batch_groups(&model, cfg.batch_groups);
    AdamW opt;
    adamw_init(&opt, model.num_params);
    int* inputs = xmalloc(sizeof(int) * (size_t)B * T, "batch inputs");
    int* targets = xmalloc(sizeof(int) * (size_t)B * T, "batch targets");
    Rng rng;
    rng_seed(&rng, (uint64_t)cfg.seed, STREAM_BENCH_BATCH);
    FlopCount flops = count_flops(&mc, B, T);

    printf("bench_step: %s on %d OpenMP threads\n", argv[1], threads);
    printf("model: n_layer %d, n_head %d, n_embd %d, block_size %d, vocab_size %d, %s weights, %s, dropout %g: "
           "%zu parameters\n", cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, vocab_size,
           cfg.tie_weights ? "tied" : "untied", cfg.bias ? "biases" : "no biases", cfg.dropout, model.num_params);
    printf("batch: %d x %d = %d tokens per step in %d batch group(s), random ids (PCG32, seed %d)\n", B, T, B * T,
           cfg.batch_groups, cfg.seed);
    printf("FLOPs: %.3f G per step = 3 x forward %.3f G (matmuls %.3f, attention %.3f, logits %.3f)\n",
           flops.step * 1e-9, flops.forward * 1e-9, flops.matmuls * 1e-9, flops.attention * 1e-9,
           flops.logits * 1e-9);
    gpt_memory_estimate_print(&mem, NULL, 0.0);

    /* ---- training steps: train.c's loop body, batch drawn outside the clock ---- */
    double* times = xmalloc(sizeof(double) * (size_t)steps, "step times");
    float first_loss = 0.0f, loss = 0.0f;
    for (int step = 1; step <= warmup + steps; step++) {
        random_batch(&rng, inputs, targets, B * T, vocab_size);
        double t0 = now_seconds();
        double lr = lr_schedule(step - 1, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters);
        gpt_train_mode(&model, (uint64_t)cfg.seed, step);
        loss = gpt_forward_backward(&model, inputs, targets, B, T);
        gpt_eval_mode(&model);
        float norm = grad_global_norm(model.grads_memory, model.num_params);
        grad_clip(model.grads_memory, model.num_params, norm, (float)cfg.grad_clip);
        adamw_update(&opt, model.params_memory, model.grads_memory, model.tensors, NUM_PARAM_TENSORS, (float)lr,
                     (float)cfg.beta1, (float)cfg.beta2, (float)cfg.weight_decay);
        double dt = now_seconds() - t0;
        if (step == 1) first_loss = loss;
        if (step > warmup) times[step - warmup - 1] = dt;
    }
    double ms_mean = 0.0;
    for (int i = 0; i < steps; i++) ms_mean += times[i] * 1e3 / steps;
    double ms_median = median(times, steps) * 1e3;  /* sorts times: then the first is the least */
    double ms_min = times[0] * 1e3, ms_max = times[steps - 1] * 1e3;

    /* ---- evaluation forwards (gpt_mean_loss over eval_reps batches, as train.c's
     * evaluate): the time per forward, the median of EVAL_ROUNDS such evaluations ---- */
    enum { EVAL_ROUNDS = 3 };
    double eval_times[EVAL_ROUNDS];
    RandomBatches rb = {.rng = rng, .n = B * T, .vocab_size = vocab_size};
    gpt_eval_mode(&model);
    for (int i = 0; i < EVAL_ROUNDS; i++) {
        double t0 = now_seconds();
        gpt_mean_loss(&model, eval_reps, next_random_batch, &rb, inputs, targets, B, T);
        eval_times[i] = (now_seconds() - t0) / eval_reps;
    }
    double eval_ms = median(eval_times, EVAL_ROUNDS) * 1e3;
    double rss = peak_rss_mb(), est = mem.total / BYTES_PER_MB;

    printf("loss: %.4f at step 1, %.4f at step %d (random ids: about ln %d = %.2f)\n", first_loss, loss,
           warmup + steps, vocab_size, log((double)vocab_size));
    printf("train step: median %.2f ms, min %.2f, mean %.2f, max %.2f over %d steps after %d warmup: "
           "%.0f tokens/s, %.1f GFLOP/s\n", ms_median, ms_min, ms_mean, ms_max, steps, warmup,
           B * T / (ms_median * 1e-3), flops.step / (ms_median * 1e-3) * 1e-9);
    printf("eval forward: %.2f ms (the median of %d evaluations of %d batches): %.1f GFLOP/s\n", eval_ms, EVAL_ROUNDS, eval_reps,
           flops.forward / (eval_ms * 1e-3) * 1e-9);
    printf("peak RSS: %.1f MB (%.1f MB before the model), estimate %.1f MB: RSS / estimate %.2f\n", rss, rss_base, est,
           rss / est);
    printf("bench impl=c config=%s threads=%d kernels=%s B=%d T=%d params=%zu steps=%d ms_median=%.3f ms_min=%.3f "
           "tok_s=%.1f gflop_per_step=%.4f attn_share=%.3f gflops=%.2f eval_ms=%.3f rss_base_mb=%.1f rss_mb=%.1f "
           "est_mb=%.1f rss_over_est=%.3f\n", name, threads, matmul_path(), B, T, model.num_params, steps, ms_median, ms_min,
           B * T / (ms_median * 1e-3), flops.step * 1e-9, flops.attention / flops.forward,
           flops.step / (ms_median * 1e-3) * 1e-9, eval_ms, rss_base, rss, est, rss / est);

    free(times);
    free(inputs);
    free(targets);
    adamw_free(&opt);
    gpt_free(&model);
    return 0;
}
