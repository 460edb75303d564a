/* train.c: the training program.
 *   config -> data (tokenizer + token files) -> model -> loop -> log.csv + checkpoints
 * Usage: ./train CONFIG [--key=value ...] [--resume]     ./train --help
 *
 * out_dir after a run:
 *   config.conf                the resolved config (./train it to repeat the run)
 *   log.csv                    one row per step (see LOG_HEADER)
 *   model.safetensors, config.json, tokenizer.bin   the best model so far (lowest val loss)
 *   last/                      the same three files for the newest model
 *   train_state.safetensors    everything --resume needs, written with last/
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/checkpoint.h"
#include "formats/config.h"
#include "data/dataloader.h"
#include "training/dist.h"
#include "embed/embed_log.h"
#include "gpt/diagnose.h"
#include "gpt/evaluate.h"
#include "gpt/groups.h"
#include "gpt/memory.h"
#include "model.h"
#include "training/optim.h"
#include "gpt/sampler.h"
#include "util/utils.h"

/* Independent RNG streams from the one seed: changing eval settings never changes
 * the training batches, and every evaluation scores the same batches. */
enum { STREAM_TRAIN = 1, STREAM_EVAL = 2, STREAM_SAMPLE = 3 };  /* stream 0 initialises the model */

/* The first seven columns are those of the first log.csv (scripts keep working);
 * later columns are appended. train_loss is the loss of the step's batch before
 * its update; val_loss, val_bpb (val loss in bits per byte of text, comparable
 * across tokenizers) and train_loss_eval (the same estimate on the train split)
 * are measured after it, at evaluation steps. ms_per_step, tokens_per_s and
 * elapsed_s are timing; every other column repeats bit for bit. */
#define LOG_HEADER "step,lr,train_loss,val_loss,grad_norm,ms_per_step,tokens_per_s,val_bpb,train_loss_eval,elapsed_s"

static void usage(FILE* f) {
    fprintf(f, "usage: ./train CONFIG [--key=value ...]\n"
               "Trains a GPT on the text named by `input`. Keys (file lines `key = value`, or overrides):\n\n");
    config_print_help(f);
}

/* The step's batch on this rank: the global batch (ranks x batch_size windows)
 * drawn from `rng`, which advances the same way on every rank, then this rank's
 * slice of it. One process: the slice is the whole batch. */
typedef struct {
    const DataLoader* dl;
    Rng* rng;
    const Dist* dist;
    int B, T;                       /* per rank */
    int *all_inputs, *all_targets;  /* (ranks * B, T) */
} Batches;

static void next_batch(void* ctx, int* inputs, int* targets) {
    Batches* b = ctx;
    size_t n = (size_t)b->B * b->T, first = (size_t)b->dist->rank * n;
    dataloader_next_batch(b->dl, b->rng, b->all_inputs, b->all_targets, b->dist->size * b->B, b->T);
    memcpy(inputs, b->all_inputs + first, n * sizeof(int));
    memcpy(targets, b->all_targets + first, n * sizeof(int));
}

/* The mean loss over eval_iters global batches of one split, drawn from a fixed
 * stream: every evaluation sees the same batches. Each rank scores its slice of
 * every batch; the slices are equal, so the mean of the ranks' means is the
 * mean over the global batches. Eval mode: no dropout. */
static float evaluate(GPT* model, Batches b, const TrainConfig* cfg, int* inputs, int* targets) {
    Rng rng;
    rng_seed(&rng, (uint64_t)cfg->seed, STREAM_EVAL);
    b.rng = &rng;
    float mine = gpt_mean_loss(model, cfg->eval_iters, next_batch, &b, inputs, targets, b.B, b.T);
    return (float)(dist_sum_double(mine) / b.dist->size);
}

/* "# global batch: R ranks x batch_size B" in the saved config: the rank count
 * of the run a --resume continues (1 when the line is absent: a one-process run). */
#define GLOBAL_BATCH_NOTE "# global batch: %d rank(s) x batch_size %d = %d windows of %d tokens\n"

static int saved_ranks(const char* saved_config) {
    const char* line = strstr(saved_config, "# global batch: ");
    int ranks = 1;
    if (line) sscanf(line, "# global batch: %d", &ranks);
    return ranks;
}

static void format_duration(double seconds, char* out, size_t len) {
    int s = (int)(seconds + 0.5);
    if (s >= 3600) snprintf(out, len, "%dh%02dm", s / 3600, s / 60 % 60);
    else if (s >= 60) snprintf(out, len, "%dm%02ds", s / 60, s % 60);
    else snprintf(out, len, "%ds", s);
}

/* A short sample of what the model writes now, from a newline, as nanoGPT's sample.py starts. */
static void print_sample(GPT* model, const Tokenizer* tok, const TrainConfig* cfg, int step) {
    double t0 = now_seconds();
    SamplerSettings settings = {.temperature = 0.8f, .top_k = 200};
    char err[256];
    uint16_t start = 0;
    if (tokenizer_encode(tok, (const unsigned char*)"\n", 1, &start, 1, err, sizeof err) != 1) start = 0;
    uint16_t* ids = xmalloc(((size_t)cfg->sample_tokens + 1) * sizeof(uint16_t), "sample");
    Rng rng;
    rng_seed(&rng, (uint64_t)cfg->seed, ((uint64_t)step << 8) | STREAM_SAMPLE);
    size_t n = generate(model, &start, 1, (size_t)cfg->sample_tokens, &settings, &rng, ids);
    size_t len;
    char* text = tokenizer_decode(tok, ids + 1, n - 1, &len, err, sizeof err);
    if (!text) die(EXIT_BAD_INPUT, "cannot decode a sample: %s", err);
    printf("sample at step %d (%.2f s):\n%s\n----\n", step, now_seconds() - t0, text);
    free(text);
    free(ids);
}

/* The resolved config as text: config.conf, and the record in the training state. */
static char* config_text(const TrainConfig* cfg) {
    char* buf = NULL;
    size_t len = 0;
    FILE* mem = open_memstream(&buf, &len);
    if (!mem) die(EXIT_IO_FAILURE, "cannot allocate the config text");
    config_write(cfg, mem);
    if (fclose(mem) != 0) die(EXIT_IO_FAILURE, "cannot allocate the config text");
    return buf;
}

static const char* SAFE_TO_CHANGE[] = {"max_iters", "log_interval", "sample_tokens", "out_dir", "data_dir",
                                       "eval_interval"};

/* Print each key whose value differs between the saved config and this one
 * (but resume itself): a resumed run with other settings is a different curve. */
static void report_changed_keys(const char* saved, const char* now) {
    const char* line = now;
    while (*line) {
        size_t n = strcspn(line, "\n");
        size_t key_len = strcspn(line, "=");
        if (line[0] != '#' && key_len < n && strncmp(line, "resume ", 7) != 0) {
            /* the same key's line in the saved text */
            const char* s = saved;
            int found = 0;
            while (*s && !found) {
                size_t m = strcspn(s, "\n");
                if (m >= key_len && strncmp(s, line, key_len) == 0) {
                    found = 1;
                    if (m != n || strncmp(s, line, n) != 0) {
                        int harmless = 0;  /* keys that change no loss of the steps both runs make */
                        for (int k = 0; k < (int)(sizeof SAFE_TO_CHANGE / sizeof *SAFE_TO_CHANGE); k++)
                            harmless |= strncmp(line, SAFE_TO_CHANGE[k], strlen(SAFE_TO_CHANGE[k])) == 0 &&
                                        line[strlen(SAFE_TO_CHANGE[k])] == ' ';
                        const char* was = s + key_len + 1;
                        while (*was == ' ') was++;
                        printf("%s: resume: %.*s (was %.*s)%s\n", harmless ? "note" : "warning", (int)n, line,
                               (int)(s + m - was), was,
                               harmless ? "" : ": the curve will differ from an uninterrupted run");
                    }
                }
                s += m + (s[m] == '\n');
            }
        }
        line += n + (line[n] == '\n');
    }
}

/* Keep the header and the rows of steps <= step of a CSV log: the rows after the
 * checkpoint are about to be run again. */
static void truncate_log(const char* path, const char* header_text, long step) {
    if (!file_exists(path)) {
        FILE* f = xfopen(path, "w");
        fprintf(f, "%s\n", header_text);
        xfclose_synced(f, path);
        printf("warning: resume: %s was missing; it starts again from step %ld\n", path, step + 1);
        return;
    }
    size_t len;
    char* text = (char*)read_file(path, &len);
    size_t header = strcspn(text, "\n");
    if (header != strlen(header_text) || strncmp(text, header_text, header) != 0)
        die(EXIT_BAD_INPUT, "%s: its header is not '%s' (a log of another version?): move it away to resume", path,
            header_text);
    size_t keep = header + (text[header] == '\n');
    while (keep < len) {
        size_t n = strcspn(text + keep, "\n");
        if (text[keep + n] != '\n' || atol(text + keep) > step) break;  /* a torn last row goes too */
        keep += n + 1;
    }
    write_file_atomic(path, text, keep);
    free(text);
}

/* SIGINT / SIGTERM: the first one lets the loop finish its step, write a
 * checkpoint and exit; a second one exits at once. Every checkpoint file is
 * written as NAME.tmp and then renamed, so even that exit leaves the last
 * complete checkpoint as it was. */
static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
    if (stop_signal) _exit(128 + sig);
    stop_signal = sig;
    static const char note[] = "\nstopping after this step: writing a checkpoint (signal again to quit at once)\n";
    if (write(STDERR_FILENO, note, sizeof note - 1) < 0) { /* nothing to be done in a handler */ }
}

static void catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  /* a write the signal interrupts carries on */
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        die(EXIT_IO_FAILURE, "cannot install the SIGINT/SIGTERM handler: %s", strerror(errno));
    /* a file growing past `ulimit -f` would kill the process with SIGXFSZ; ignored,
     * the write fails with EFBIG instead and is reported like a full disk */
    signal(SIGXFSZ, SIG_IGN);
}

/* Has any rank been asked to stop? The same answer on every rank. */
static int stop_requested(const Dist* dist) {
    int sig = stop_signal;
    if (dist->size > 1 && dist_sum_double(sig) > 0 && !sig) sig = SIGTERM;  /* another rank's */
    return sig;
}

/* What a checkpoint writes, besides the model and the optimizer. */
typedef struct {
    const char *out_dir, *last_dir, *state_path;
    const char* cfg_text;                 /* the resolved config, kept in the state */
    const unsigned char* tok_file;        /* the tokenizer, copied beside every model */
    size_t tok_len;
    TokenizerId tok_id;
    long saved_step;                      /* of the newest complete checkpoint; -1: none */
} Checkpoints;

/* The training state and out_dir/last/ always; out_dir itself too when `best`
 * (the lowest val loss so far). val_loss is NAN for a step that was not evaluated.
 * The state (what --resume reads) goes first: when the disk fills up, it is the
 * largest file, and its failure then leaves every file of the last checkpoint as it was. */
static void save_checkpoint(Checkpoints* ck, const GPT* model, const AdamW* opt, const TrainProgress* progress,
                            float val_loss, int best) {
    char err[CONFIG_ERR_MAX + 512];
    double t0 = now_seconds();
    if (checkpoint_save_state(ck->state_path, model, opt, progress, ck->cfg_text, &ck->tok_id, err, sizeof err) != 0)
        die(EXIT_IO_FAILURE, "%s; %s", err, ck->saved_step >= 0 ? "the last checkpoint is intact"
                                                                 : "no checkpoint had been written before");
    ck->saved_step = progress->step;
    if (checkpoint_save_model(ck->last_dir, model, ck->tok_file, ck->tok_len, progress->step, val_loss, err,
                              sizeof err) != 0 ||
        (best && checkpoint_save_model(ck->out_dir, model, ck->tok_file, ck->tok_len, progress->step, val_loss, err,
                                       sizeof err) != 0))
        die(EXIT_IO_FAILURE, "%s; the training state of step %ld is written (--resume continues from it)", err,
            progress->step);
    printf("checkpoint: step %ld in %s (best val %.4f in %s), %.2f s\n", progress->step, ck->last_dir,
           progress->best_val_loss, ck->out_dir, now_seconds() - t0);
}

/* A NaN or an Inf in the loss or the gradient norm: no update is made from it.
 * Say where the first non-finite value is and which checkpoint survives. */
static _Noreturn void stop_non_finite(const GPT* model, long step, float loss, float norm, const Checkpoints* ck) {
    char where[256], saved[CONFIG_STR_MAX + 128];
    if (!gpt_find_nonfinite(model, where, sizeof where))
        snprintf(where, sizeof where, "none: every value is finite, the sum of squares of the gradient overflows");
    if (ck->saved_step >= 0)
        snprintf(saved, sizeof saved, "the checkpoint of step %ld in %s is intact (--resume continues from it)",
                 ck->saved_step, ck->out_dir);
    else
        snprintf(saved, sizeof saved, "no checkpoint had been written yet");
    char loss_text[32], norm_text[32];  /* "nan", never glibc's "-nan" */
    snprintf(loss_text, sizeof loss_text, isnan(loss) ? "nan" : "%g", loss);
    snprintf(norm_text, sizeof norm_text, isnan(norm) ? "nan" : "%g", norm);
    die(EXIT_NON_FINITE, "step %ld: loss %s, gradient norm %s: first non-finite value: %s; stopped before the "
        "update, %s; lower learning_rate or raise warmup_iters", step, loss_text, norm_text, where, saved);
}

int main(int argc, char** argv) {
    Dist dist;  /* rank 0 of 1 without MPI */
    dist_init(&dist, &argc, &argv);
    int root = dist.rank == 0;  /* the one rank that writes files */
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_BAD_INPUT : 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);  /* progress lines appear at once, also through a pipe */
    catch_signals();
    TrainConfig cfg;
    char err[CONFIG_ERR_MAX + 512];
    /* file, overrides, checks: nothing is written before this passes */
    if (config_from_args(&cfg, argc, argv, err, CONFIG_ERR_MAX) != 0) die(EXIT_BAD_INPUT, "%s", err);
    char state_path[CONFIG_STR_MAX + 64], last_dir[CONFIG_STR_MAX + 64], log_path[CONFIG_STR_MAX + 64];
    xsnprintf(state_path, sizeof state_path, "%s/%s", cfg.out_dir, CHECKPOINT_STATE_FILE);
    xsnprintf(last_dir, sizeof last_dir, "%s/last", cfg.out_dir);
    xsnprintf(log_path, sizeof log_path, "%s/log.csv", cfg.out_dir);
    if (cfg.resume && !file_exists(state_path))
        die(EXIT_BAD_INPUT, "--resume: %s does not exist (no checkpoint has been written to out_dir = %s yet)",
            state_path, cfg.out_dir);

    /* ---- data ---- */
    PreparedData data;
    /* tokenizer and token files, made once and cached: by rank 0 first, then the
     * others find the cache (or, on a host without out_dir's disk, make their own) */
    if (root) data_prepare(&cfg, &data);
    dist_barrier();
    if (!root) data_prepare(&cfg, &data);
    data_print_summary(&cfg, &data, stdout);
    DataLoader train_data, val_data;
    dataloader_open(&train_data, data.train_path, cfg.input, data.vocab_size, cfg.block_size);
    dataloader_open(&val_data, data.val_path, cfg.input, data.vocab_size, cfg.block_size);
    /* the tokenizer decodes samples and travels with every checkpoint */
    size_t tok_len;
    unsigned char* tok_file = read_file(data.tokenizer_path, &tok_len);
    Tokenizer* tok = tokenizer_deserialize(tok_file, tok_len, data.tokenizer_path, err, sizeof err);
    if (!tok) die(EXIT_BAD_INPUT, "%s", err);
    TokenizerId tok_id = tokenizer_id(tok, tok_file, tok_len);

    /* ---- model and optimizer ---- */
    GPT model;
    GPTConfig mc = config_model(&cfg, data.vocab_size);
    MemoryEstimate mem = gpt_memory_estimate(&mc, cfg.batch_size, cfg.batch_groups);
    double token_bytes = (double)(train_data.n + val_data.n) * sizeof(uint16_t);
    gpt_memory_estimate_print(&mem, "token data", token_bytes / BYTES_PER_MB);
    const char* limit_name;
    double limit = memory_limit_bytes(&limit_name);
    if (mem.total + token_bytes > limit)  /* refused before allocating any of it */
        die(EXIT_BAD_INPUT, "%s: this run needs an estimated %.1f MB (the memory estimate above), more than the "
            "%.1f MB of %s: lower batch_size, block_size, n_embd or n_layer", argv[1],
            (mem.total + token_bytes) / BYTES_PER_MB, limit / BYTES_PER_MB, limit_name);
    gpt_build(&model, &mc, cfg.batch_size, (uint64_t)cfg.seed);
    gpt_set_batch_groups(&model, cfg.batch_groups);
    AdamW opt;
    adamw_init(&opt, model.num_params);
    int B = cfg.batch_size, T = cfg.block_size;
    int* inputs = xmalloc(sizeof(int) * B * T, "batch inputs");
    int* targets = xmalloc(sizeof(int) * B * T, "batch targets");
    int global_batch = dist.size * B;
    Batches batches = {.dist = &dist, .B = B, .T = T,
                       .all_inputs = xmalloc(sizeof(int) * global_batch * T, "global batch inputs"),
                       .all_targets = xmalloc(sizeof(int) * global_batch * T, "global batch targets")};
    Batches train_batches = batches, val_batches = batches;
    train_batches.dl = &train_data;
    val_batches.dl = &val_data;
    gpt_set_batch_offset(&model, (long)dist.rank * B);  /* dropout masks of the global batch */
    printf("model: n_layer %d, n_head %d, n_embd %d, block_size %d, %s positions (embed_scale %g), %s weights, %s, "
           "dropout %g: %zu parameters\n", cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size,
           cfg.pos_encoding == POS_LEARNED ? "learned" : "sinusoidal", cfg.embed_scale,
           cfg.tie_weights ? "tied" : "untied", cfg.bias ? "biases" : "no biases", cfg.dropout, model.num_params);

    /* ---- where the run starts: step 0, or the state --resume finds ---- */
    TrainProgress progress = {.step = 0, .val_loss = NAN, .best_val_loss = INFINITY, .elapsed_s = 0.0};
    rng_seed(&progress.batch_rng, (uint64_t)cfg.seed, STREAM_TRAIN);
    char* cfg_text = config_text(&cfg);
    {   /* config.conf records the global batch: "# global batch: ..." (a comment) */
        char note[256];
        snprintf(note, sizeof note, GLOBAL_BATCH_NOTE, dist.size, B, global_batch, T);
        size_t len = strlen(cfg_text);
        cfg_text = realloc(cfg_text, len + strlen(note) + 1);
        if (!cfg_text) die(EXIT_IO_FAILURE, "out of memory for the config text");
        memcpy(cfg_text + len, note, strlen(note) + 1);
    }
    if (cfg.resume) {
        char* saved_cfg = NULL;
        if (checkpoint_load_state(state_path, &model, &opt, &progress, &tok_id, &saved_cfg, err, sizeof err) != 0)
            die(EXIT_BAD_INPUT, "%s", err);
        report_changed_keys(saved_cfg, cfg_text);
        int was = saved_ranks(saved_cfg);
        if (was != dist.size)
            printf("warning: resume: %d rank(s) (was %d): the global batch is now %d windows (was %d x batch_size "
                   "%d): the curve will differ from an uninterrupted run\n", dist.size, was, global_batch, was, B);
        free(saved_cfg);
        printf("resuming from %s: step %ld, val loss %.4f (best %.4f)\n", state_path, progress.step,
               progress.val_loss, progress.best_val_loss);
    }
    if (dist_enabled())
        printf("training: steps %ld to %d of %d x %d tokens: %d MPI rank(s) x batch_size %d = global batch %d, "
               "%d OpenMP threads per rank\n", progress.step + 1, cfg.max_iters, global_batch, T, dist.size, B,
               global_batch, omp_get_max_threads());
    else
        printf("training: steps %ld to %d of %d x %d tokens on %d OpenMP threads\n", progress.step + 1,
               cfg.max_iters, B, T, omp_get_max_threads());
    if (cfg.batch_groups > 1)
        printf("batch groups: %d of %d sequences, each a forward and backward of its own, gradients summed in "
               "order (gpt_set_batch_groups)\n", cfg.batch_groups, B / cfg.batch_groups);
    int lanes = gpt_eval_lanes(&model);
    printf("evaluation: %d batches per split every %d steps, %s\n", cfg.eval_iters, cfg.eval_interval,
           lanes > 1 ? "each thread scoring whole batches (gpt_eval_lanes)" : "each batch on all threads");

    /* ---- outputs (rank 0): the resolved config, then the log ---- */
    FILE* log = NULL;
    EmbedLog elog;  /* embeddings.csv, probes and snapshots of E */
    if (root) {
        make_dirs(cfg.out_dir);
        if (!cfg.resume && file_exists(state_path)) {
            /* a new run in an old out_dir: a later --resume must not find the old run's state */
            printf("warning: %s holds an earlier run; this new run replaces its files (--resume would have "
                   "continued it)\n", cfg.out_dir);
            if (remove(state_path) != 0) die(EXIT_IO_FAILURE, "cannot remove %s: %s", state_path, strerror(errno));
        }
        xsnprintf(err, sizeof err, "%s/config.conf", cfg.out_dir);
        write_file_atomic(err, cfg_text, strlen(cfg_text));
        if (cfg.resume) truncate_log(log_path, LOG_HEADER, progress.step);
        log = xfopen(log_path, cfg.resume ? "a" : "w");
        if (!cfg.resume) fprintf(log, "%s\n", LOG_HEADER);
        xsnprintf(err, sizeof err, "%s/embeddings.csv", cfg.out_dir);
        if (cfg.resume) truncate_log(err, EMBED_LOG_HEADER, progress.step);
        embed_log_open(&elog, &cfg, tok, train_data.tokens, train_data.n, cfg.resume);
    }

    /* ---- the loop ---- */
    Checkpoints ck = {.out_dir = cfg.out_dir, .last_dir = last_dir, .state_path = state_path, .cfg_text = cfg_text,
                      .tok_file = tok_file, .tok_len = tok_len, .tok_id = tok_id,
                      .saved_step = cfg.resume ? progress.step : -1};
    double t_session = now_seconds(), train_seconds = 0.0;
    double t_start = t_session - progress.elapsed_s;  /* elapsed_s continues across resumes */
    long first = cfg.resume ? progress.step + 1 : 0, last_step = first - 1;
    int stopped_by = 0;  /* the signal that ended the run early, or 0 */
    for (long step = first; step <= cfg.max_iters && !stopped_by; step++) {
        /* step s makes the s-th update (step 0 none), then evaluates the model it
         * leaves: before training, after every eval_interval updates and after the last */
        double lr = 0.0, dt = 0.0;
        float loss = NAN, norm = NAN;
        if (step > 0) {
            double t0 = now_seconds();
            lr = lr_schedule((int)step - 1, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters);
            train_batches.rng = &progress.batch_rng;
            next_batch(&train_batches, inputs, targets);
            gpt_train_mode(&model, (uint64_t)cfg.seed, step);  /* dropout masks keyed by (seed, step) */
            loss = gpt_forward_backward(&model, inputs, targets, B, T);  /* grads = this batch's, in groups */
            gpt_eval_mode(&model);
            /* every rank's slice has B x T positions: the global mean loss and its
             * gradient are the means over ranks (one allreduce of the whole buffer) */
            dist_mean_floats(model.grads_memory, model.num_params);
            loss = (float)(dist_sum_double(loss) / dist.size);
            norm = grad_global_norm(model.grads_memory, model.num_params);
            if (!isfinite(loss) || !isfinite(norm)) stop_non_finite(&model, step, loss, norm, &ck);
            grad_clip(model.grads_memory, model.num_params, norm, (float)cfg.grad_clip);
            adamw_update(&opt, model.params_memory, model.grads_memory, model.tensors, NUM_PARAM_TENSORS, (float)lr,
                         (float)cfg.beta1, (float)cfg.beta2, (float)cfg.weight_decay);
            dt = now_seconds() - t0;
            train_seconds += dt;
            if (step % cfg.log_interval == 0 || step == cfg.max_iters) {
                char eta[32];
                format_duration(train_seconds / (step - first + 1) * (cfg.max_iters - step), eta, sizeof eta);
                printf("step %5ld/%d | loss %.4f | lr %.2e | norm %.3f | %.1f ms | %.0f tok/s | ETA %s\n", step,
                       cfg.max_iters, loss, lr, norm, dt * 1e3, global_batch * T / dt, eta);
            }
        }

        int eval_step = step % cfg.eval_interval == 0 || step == cfg.max_iters;
        char val_text[32] = "", eval_text[64] = ",";  /* val_loss; val_bpb,train_loss_eval */
        if (eval_step) {
            double t0 = now_seconds();
            float train_loss = evaluate(&model, train_batches, &cfg, inputs, targets);
            progress.val_loss = evaluate(&model, val_batches, &cfg, inputs, targets);
            /* the ranks make the same updates from the same gradients: their weights
             * must agree bit for bit, or the run is no longer one model */
            if (dist.size > 1 &&
                !dist_all_equal_u64(fnv1a64(model.params_memory, model.num_params * sizeof(float))))
                die(EXIT_IO_FAILURE, "step %ld: the parameters differ between MPI ranks (checksums disagree); "
                    "stopping, the last checkpoint is intact", step);
            double val_bpb = data_bits_per_byte(&data, progress.val_loss);
            printf("step %ld: train loss %.4f, val loss %.4f, val_bpb %.4f (eval %.1f s)\n", step, train_loss,
                   progress.val_loss, val_bpb, now_seconds() - t0);
            snprintf(val_text, sizeof val_text, "%.9g", progress.val_loss);
            snprintf(eval_text, sizeof eval_text, "%.9g,%.9g", val_bpb, train_loss);
        }

        /* a row per step, written whole and flushed (a crash leaves only complete
         * rows), before the checkpoint that records the step */
        progress.step = last_step = step;
        progress.elapsed_s = now_seconds() - t_start;
        stopped_by = stop_requested(&dist);
        if (!root) continue;  /* the rest of the step writes files */
        if (step == 0) fprintf(log, "0,,,%s,,,,%s,%.3f\n", val_text, eval_text, progress.elapsed_s);
        else fprintf(log, "%ld,%.9g,%.9g,%s,%.9g,%.3f,%.1f,%s,%.3f\n", step, lr, loss, val_text, norm, dt * 1e3,
                     global_batch * T / dt, eval_text, progress.elapsed_s);
        if (fflush(log) != 0 || ferror(log)) die(EXIT_IO_FAILURE, "cannot write %s: %s", log_path, strerror(errno));

        if (eval_step) embed_log_eval(&elog, &model, step);
        embed_log_snapshot(&elog, &model, step);
        if (eval_step && cfg.sample_tokens > 0) print_sample(&model, tok, &cfg, (int)step);
        /* at evaluations and when stopped early: out_dir/last/ and the state, and
         * out_dir itself when the val loss is the lowest so far */
        if (step > 0 && (eval_step || stopped_by)) {
            int best = eval_step && progress.val_loss < progress.best_val_loss;
            if (best) progress.best_val_loss = progress.val_loss;
            save_checkpoint(&ck, &model, &opt, &progress, eval_step ? progress.val_loss : NAN, best);
        }
    }
    if (root) {
        xfclose_synced(log, log_path);
        printf("watching E (embeddings.csv, probes, snapshots) took %.2f s\n", elog.seconds);
        embed_log_close(&elog);
    }
    long steps_run = last_step - first + 1 - (first == 0);
    if (!stopped_by) printf("done: %ld steps in %.1f s wall (%.1f ms/step training), final val loss %.4f (%.4f bits per byte)\n",
           steps_run, now_seconds() - t_session, steps_run > 0 ? train_seconds / steps_run * 1e3 : 0.0,
           progress.val_loss, data_bits_per_byte(&data, progress.val_loss));

    free(cfg_text);
    free(tok_file);
    tokenizer_free(tok);
    free(inputs);
    free(targets);
    adamw_free(&opt);
    gpt_free(&model);
    dataloader_free(&train_data);
    dataloader_free(&val_data);
    free(batches.all_inputs);
    free(batches.all_targets);
    dist_finalize();
    if (stopped_by) {
        if (!root) return 128 + stopped_by;
        if (last_step > 0)
            fprintf(stderr, "stopped by %s after step %ld (%.1f s): checkpoint in %s; continue with: "
                    "./train %s/config.conf --resume\n", stopped_by == SIGINT ? "SIGINT" : "SIGTERM", last_step,
                    now_seconds() - t_session, state_path, cfg.out_dir);
        else
            fprintf(stderr, "stopped by %s before training: no checkpoint written\n",
                    stopped_by == SIGINT ? "SIGINT" : "SIGTERM");
        return 128 + stopped_by;
    }
    return 0;
}
