/* scripts/bench_step.c: how fast the C model trains: the time of one full training
 * step (forward, backward, clip, AdamW), exactly as train.c's loop makes it, on
 * random token ids, plus one evaluation forward, the peak RSS and the FLOP rate.
 * scripts/bench.sh runs it next to its PyTorch peer (scripts/bench_torch.py).
 *
 * Not a trainer: no data, no evaluation loop, no checkpoints. The config file is
 * read with ./train's parser (the same keys and checks); only the model shape,
 * batch_size, block_size, dropout, seed and the AdamW settings matter here.
 *
 * Usage: scripts/bench_step CONFIG [--key=value ...] [--steps=N] [--warmup=N]
 *                                  [--eval_reps=N] [--vocab_size=V]
 *   --steps       timed training steps (default 30); the median is reported
 *   --warmup      untimed steps first (default 5): page faults, caches, thread start
 *   --eval_reps   timed evaluation forwards (default 10)
 *   --vocab_size  V of the model (default 65, Tiny Shakespeare's characters): the
 *                 bench has no data to take it from; this is not the config key
 *                 of the same name, which only sizes a SentencePiece vocabulary
 * Threads: OMP_NUM_THREADS, as for ./train.
 *
 * The last line is machine-readable (scripts/bench.sh parses it):
 *   bench impl=c config=NAME threads=N B= T= params= steps= ms_median= ms_min= tok_s=
 *         gflop_per_step= attn_share= gflops= eval_ms= rss_base_mb= rss_mb= est_mb= rss_over_est=
 * (attn_share: attention's part of the FLOP count)
 * Sizes in MB are 2^20 bytes, as ./train prints them.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "model.h"
#include "optim.h"
#include "utils.h"

enum { DEFAULT_STEPS = 30, DEFAULT_WARMUP = 5, DEFAULT_EVAL_REPS = 10, DEFAULT_VOCAB = 65 };
enum { STREAM_BENCH_BATCH = 7 };  /* a PCG32 stream of its own for the random batches */

static void usage(FILE* f) {
    fprintf(f, "usage: scripts/bench_step CONFIG [--key=value ...] [--steps=N] [--warmup=N] [--eval_reps=N] "
               "[--vocab_size=V]\n"
               "  --steps       timed training steps (default %d)\n"
               "  --warmup      untimed steps before them (default %d)\n"
               "  --eval_reps   timed evaluation forwards (default %d)\n"
               "  --vocab_size  the model's vocabulary (default %d)\n"
               "  --key=value   any ./train config key (./train --help lists them)\n"
               "Threads: OMP_NUM_THREADS.\n",
            DEFAULT_STEPS, DEFAULT_WARMUP, DEFAULT_EVAL_REPS, DEFAULT_VOCAB);
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

int main(int argc, char** argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_BAD_INPUT : 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    double rss_base = peak_rss_mb();

    /* ---- command line: the bench's own options, the rest to the config parser ---- */
    int steps = DEFAULT_STEPS, warmup = DEFAULT_WARMUP, eval_reps = DEFAULT_EVAL_REPS, vocab_size = DEFAULT_VOCAB;
    char** config_argv = xmalloc(sizeof(char*) * (size_t)argc, "arguments");
    int config_argc = 0;
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && (int_option(argv[i], "--steps", &steps) || int_option(argv[i], "--warmup", &warmup) ||
                       int_option(argv[i], "--eval_reps", &eval_reps) ||
                       int_option(argv[i], "--vocab_size", &vocab_size)))
            continue;
        config_argv[config_argc++] = argv[i];
    }
    if (vocab_size > 65536) die(EXIT_BAD_INPUT, "--vocab_size=%d: token ids are 16-bit, at most 65536", vocab_size);
    TrainConfig cfg;
    char err[CONFIG_ERR_MAX];
    if (config_from_args(&cfg, config_argc, config_argv, err, sizeof err) != 0) die(EXIT_BAD_INPUT, "%s", err);
    free(config_argv);
    char name[256];
    config_name(argv[1], name, sizeof name);

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
    printf("bench impl=c config=%s threads=%d B=%d T=%d params=%zu steps=%d ms_median=%.3f ms_min=%.3f tok_s=%.1f "
           "gflop_per_step=%.4f attn_share=%.3f gflops=%.2f eval_ms=%.3f rss_base_mb=%.1f rss_mb=%.1f est_mb=%.1f "
           "rss_over_est=%.3f\n", name, threads, B, T, model.num_params, steps, ms_median, ms_min,
           B * T / (ms_median * 1e-3), flops.step * 1e-9, flops.attention / flops.forward,
           flops.step / (ms_median * 1e-3) * 1e-9, eval_ms, rss_base, rss, est, rss / est);

    free(times);
    free(inputs);
    free(targets);
    adamw_free(&opt);
    gpt_free(&model);
    return 0;
}
