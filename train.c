/* train.c: the training program.
 *   config -> data (tokenizer + token files) -> model -> (resume) -> loop -> log.csv + checkpoints
 * Usage: ./train CONFIG [--key=value ...] [--resume | --overwrite]     ./train [CONFIG] --help
 *
 * The files a run leaves in out_dir are training/run.h's; log.csv's columns are
 * training/log.h's. The step itself is main's loop; everything around it (the
 * files, resuming, signals, each rank's slice of the batch) lives in training/.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/dataloader.h"
#include "embed/embed_log.h"
#include "formats/checkpoint.h"
#include "formats/config.h"
#include "formats/word2vec.h"
#include "gpt/evaluate.h"
#include "gpt/groups.h"
#include "gpt/memory.h"
#include "gpt/sampler.h"
#include "model.h"
#include "tokenizer/tokenizer.h"
#include "training/dist.h"
#include "training/log.h"
#include "training/optim.h"
#include "training/run.h"
#include "training/signals.h"
#include "util/utils.h"

/* Independent RNG streams from the one seed: changing eval settings never changes
 * the training batches, and every evaluation scores the same batches. */
enum { STREAM_TRAIN = 1, STREAM_EVAL = 2, STREAM_SAMPLE = 3 };  /* stream 0 initialises the model */

static void usage(FILE* f) {
    fprintf(f, "usage: ./train CONFIG [--key=value ...] [--resume | --overwrite]\n"
               "Trains a GPT on the text named by `input`. Keys (file lines `key = value`, or overrides):\n\n");
    config_print_help(f);
}

/* The tokenizer and token files, made once and cached: by rank 0 first, then the
 * others find the cache (or, on a host without out_dir's disk, make their own).
 * Then a loader for each split. */
static void open_data(const TrainConfig* cfg, const Dist* dist, PreparedData* data, DataLoader* train,
                      DataLoader* val) {
    /* every rank reads the text (the others to find rank 0's cache, named by its hash):
     * a pipe, FIFO or terminal gives its text once, to one reader */
    struct stat st;
    if (dist->size > 1 && stat(cfg->input, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        die(EXIT_BAD_INPUT, "input = %s is not a regular file (a pipe, FIFO or terminal): with %d MPI ranks every rank "
            "reads the input, and a stream can be read only once; save the text to a file and train on that",
            cfg->input, dist->size);
    if (dist->rank == 0) data_prepare(cfg, data);
    dist_barrier();
    if (dist->rank != 0) data_prepare(cfg, data);
    data_print_summary(cfg, data, stdout);
    dataloader_open(train, data->train_path, cfg->input, data->vocab_size, cfg->block_size);
    dataloader_open(val, data->val_path, cfg->input, data->vocab_size, cfg->block_size);
}

/* Print the memory estimate, and refuse a run that needs more than the memory
 * limit before allocating any of it. token_bytes: both splits' tokens. */
static void check_memory(const GPTConfig* mc, const TrainConfig* cfg, double token_bytes, const char* config_path) {
    MemoryEstimate mem = gpt_memory_estimate(mc, cfg->batch_size, cfg->batch_groups);
    gpt_memory_estimate_print(&mem, "token data", token_bytes / BYTES_PER_MB);
    const char* limit_name;
    double limit = memory_limit_bytes(&limit_name);
    if (mem.total + token_bytes > limit)
        die(EXIT_BAD_INPUT, "%s: this run needs an estimated %.1f MB (the memory estimate above), more than the "
            "%.1f MB of %s: lower batch_size, block_size, n_embd or n_layer", config_path,
            (mem.total + token_bytes) / BYTES_PER_MB, limit / BYTES_PER_MB, limit_name);
}

static void print_model(const TrainConfig* cfg, const GPT* model) {
    printf("model: n_layer %d, n_head %d, n_embd %d, block_size %d, %s positions (embed_scale %g), %s weights, %s, "
           "dropout %g: %zu parameters\n", cfg->n_layer, cfg->n_head, cfg->n_embd, cfg->block_size,
           POS_ENCODING_NAMES[cfg->pos_encoding], cfg->embed_scale,
           cfg->tie_weights ? "tied" : "untied", cfg->bias ? "biases" : "no biases", cfg->dropout, model->num_params);
    if (cfg->embed_rank > 0) {
        size_t V = (size_t)model->config.vocab_size, C = (size_t)cfg->n_embd, r = (size_t)cfg->embed_rank;
        printf("embeddings: E = A B, A (%zu x %zu) and B (%zu x %zu): %zu parameters in place of E's %zu\n", V, r, r,
               C, (V + C) * r, V * C);
    }
    int from_file = cfg->embed_init[0] && !cfg->resume;
    if (cfg->embed_init_std != 0.02 || from_file || cfg->freeze_embeddings || cfg->embed_dropout > 0) {
        if (from_file) printf("embeddings: E starts as the vectors of %s", cfg->embed_init);
        else printf("embeddings: E starts as N(0, %g^2)", cfg->embed_init_std);
        printf("%s; embed_dropout %g\n", cfg->freeze_embeddings ? " and stays frozen: only the layers after it train" : "",
               cfg->embed_dropout);
    }
}

/* The steps to run from first_step, the batch and its threads, the evaluation. */
static void print_plan(const TrainConfig* cfg, const Dist* dist, const GPT* model, long first_step) {
    int B = cfg->batch_size, T = cfg->block_size, global_batch = dist->size * B;
    if (dist_enabled())
        printf("training: steps %ld to %d of %d x %d tokens: %d MPI rank(s) x batch_size %d = global batch %d, "
               "%d OpenMP threads per rank\n", first_step, cfg->max_iters, global_batch, T, dist->size, B,
               global_batch, omp_get_max_threads());
    else
        printf("training: steps %ld to %d of %d x %d tokens on %d OpenMP threads\n", first_step, cfg->max_iters, B, T,
               omp_get_max_threads());
    if (cfg->batch_groups > 1)
        printf("batch groups: %d of %d sequences, each a forward and backward of its own, gradients summed in "
               "order (gpt_set_batch_groups)\n", cfg->batch_groups, B / cfg->batch_groups);
    int lanes = gpt_eval_lanes(model);
    printf("evaluation: %d batches per split every %d steps, %s\n", cfg->eval_iters, cfg->eval_interval,
           lanes > 1 ? "each thread scoring whole batches (gpt_eval_lanes)" : "each batch on all threads");
}

/* Rank 0's files: config.conf, log.csv and the record of E in the run's folder (the
 * two CSV files cut back to the checkpoint's step on --resume). Returns 1 when the
 * resumed step's evaluation is to be made first: its row has none, a stop
 * abandoned it (eval_due: the step is one this run evaluates). */
static int open_outputs(Run* run, long step, int eval_due, TrainLog* log, EmbedLog* elog, const Tokenizer* tok,
                        const DataLoader* train_data) {
    run_prepare_out_dir(run, step);
    int redo = run->cfg->resume && eval_due && train_log_eval_missing(run->log_path, step);
    if (redo) {  /* an earlier try at that evaluation, stopped before its row, may have left its E row */
        char path[sizeof run->dir + 32];
        xsnprintf(path, sizeof path, "%s/embeddings.csv", run->dir);
        csv_truncate(path, EMBED_LOG_HEADER, step - 1);
        printf("step %ld's evaluation was abandoned when the run stopped: making it first\n", step);
    }
    train_log_open(log, run->log_path, run->cfg->resume);
    embed_log_open(elog, run->dir, run->cfg, tok, train_data->tokens, train_data->n, run->cfg->resume);
    return redo;
}

static void close_outputs(TrainLog* log, EmbedLog* elog) {
    train_log_close(log);
    printf("watching E (embeddings.csv, probes, snapshots) took %.2f s\n", elog->seconds);
    embed_log_close(elog);
}

static void format_duration(double seconds, char* out, size_t len) {
    int s = (int)(seconds + 0.5);
    if (s >= 3600) snprintf(out, len, "%dh%02dm", s / 3600, s / 60 % 60);
    else if (s >= 60) snprintf(out, len, "%dm%02ds", s / 60, s % 60);
    else snprintf(out, len, "%ds", s);
}

/* An update's progress line; the time left assumes the mean step time so far. */
static void print_step(const LogRow* r, int max_iters, double mean_step_seconds) {
    char eta[32];
    format_duration(mean_step_seconds * (max_iters - r->step), eta, sizeof eta);
    printf("step %5ld/%d | loss %.4f | lr %.2e | norm %.3f | %.1f ms | %.0f tok/s | ETA %s\n", r->step, max_iters,
           r->loss, r->lr, r->norm, r->seconds * 1e3, r->tokens / r->seconds, eta);
}

static void print_done(long steps_run, double wall_seconds, double train_seconds, float val_loss,
                       const PreparedData* data) {
    printf("done: %ld steps in %.1f s wall (%.1f ms/step training), final val loss %.4f (%.4f bits per byte)\n",
           steps_run, wall_seconds, steps_run > 0 ? train_seconds / steps_run * 1e3 : 0.0, val_loss,
           data_bits_per_byte(data, val_loss));
}

static int is_eval_step(const TrainConfig* cfg, long step) {
    return step % cfg->eval_interval == 0 || step == cfg->max_iters;
}

/* *loss = the mean loss over eval_iters global batches of one split, drawn from a
 * fixed stream: every evaluation sees the same batches. Each rank scores its slice
 * of every batch; the slices are equal, so the mean of the ranks' means is the
 * mean over the global batches. Eval mode: no dropout. The batches go a round at
 * a time, one per evaluation lane, and before each round every rank asks together
 * whether to stop: a signal waits for one batch's forward, not the evaluation.
 * Returns that signal (the evaluation abandoned), or 0. */
static int evaluate(GPT* model, RankBatches b, const TrainConfig* cfg, int* inputs, int* targets, float* loss,
                    double* ece) {
    Rng rng;
    rng_seed(&rng, (uint64_t)cfg->seed, STREAM_EVAL);
    b.rng = &rng;
    /* the same rounds on every rank, whatever its thread count: the same number of stop checks */
    int per_round = (int)(dist_sum_double(gpt_eval_lanes(model)) / b.dist->size), stop = 0;
    if (per_round < 1) per_round = 1;
    float* losses = xmalloc((size_t)cfg->eval_iters * sizeof(float), "evaluation losses");
    Calibration* cal = xmalloc((size_t)cfg->eval_iters * sizeof(Calibration), "evaluation calibration");
    for (int done = 0; done < cfg->eval_iters && !stop; done += per_round) {
        stop = stop_requested(b.dist);
        int n = cfg->eval_iters - done < per_round ? cfg->eval_iters - done : per_round;
        if (!stop) gpt_batch_losses(model, losses + done, cal + done, n, rank_batch_next, &b, inputs, targets, b.B, b.T);
    }
    double total = 0.0;  /* in batch order, in a double: gpt_mean_loss's bits */
    Calibration all;
    memset(&all, 0, sizeof all);
    for (int i = 0; i < cfg->eval_iters && !stop; i++) {
        total += losses[i];
        calibration_add(&all, &cal[i]);
    }
    free(losses);
    free(cal);
    if (stop) return stop;
    float mine = (float)(total / cfg->eval_iters);
    *loss = (float)(dist_sum_double(mine) / b.dist->size);
    for (int k = 0; k < ECE_BINS && b.dist->size > 1; k++) {  /* every rank's positions */
        all.count[k] = dist_sum_double(all.count[k]);
        all.confidence[k] = dist_sum_double(all.confidence[k]);
        all.correct[k] = dist_sum_double(all.correct[k]);
    }
    *ece = calibration_ece(&all);
    return 0;
}

/* An evaluation step's columns of its row (row->evaluated = 1): the loss of the model the
 * step leaves, on both splits, and the val loss in bits per byte. The ranks make the same
 * updates from the same gradients: their weights must agree bit for bit, or the
 * run is no longer one model. Returns the signal that abandoned it (the row as it was), or 0. */
static int evaluate_splits(LogRow* row, GPT* model, const RankBatches* train, const RankBatches* val,
                           const TrainConfig* cfg, const PreparedData* data, int* inputs, int* targets) {
    double t0 = now_seconds();
    float train_loss, val_loss;
    double train_ece, val_ece;
    int stop = evaluate(model, *train, cfg, inputs, targets, &train_loss, &train_ece);
    if (!stop) stop = evaluate(model, *val, cfg, inputs, targets, &val_loss, &val_ece);
    if (stop) return stop;
    row->train_loss_eval = train_loss;
    row->val_loss = val_loss;
    row->val_ece = val_ece;
    if (train->dist->size > 1 &&
        !dist_all_equal_u64(fnv1a64(model->params_memory, model->num_params * sizeof(float))))
        die(EXIT_IO_FAILURE, "step %ld: the parameters differ between MPI ranks (checksums disagree); "
            "stopping, the last checkpoint is intact", row->step);
    row->val_bpb = data_bits_per_byte(data, row->val_loss);
    row->evaluated = 1;
    printf("step %ld: train loss %.4f, val loss %.4f, val_bpb %.4f, val ECE %.4f (eval %.1f s)\n", row->step,
           row->train_loss_eval, row->val_loss, row->val_bpb, row->val_ece, now_seconds() - t0);
    return 0;
}

static int sample_stop(void* ctx) {
    (void)ctx;
    return stop_signal_received() != 0;
}

/* A short sample of what the model writes now, from a newline, as nanoGPT's sample.py starts.
 * A signal abandons it between two tokens: it is only printed, no file holds it. */
static void print_sample(GPT* model, const Tokenizer* tok, const TrainConfig* cfg, int step) {
    double t0 = now_seconds();
    SamplerSettings settings = {.temperature = 0.8f, .top_k = 200};
    char err[256];
    uint16_t start = 0;
    if (tokenizer_encode(tok, (const unsigned char*)"\n", 1, &start, 1, err, sizeof err) != 1) start = 0;
    uint16_t* ids = xmalloc(((size_t)cfg->sample_tokens + 1) * sizeof(uint16_t), "sample");
    Rng rng;
    rng_seed(&rng, (uint64_t)cfg->seed, ((uint64_t)step << 8) | STREAM_SAMPLE);
    size_t n = generate_until(model, &start, 1, (size_t)cfg->sample_tokens, &settings, &rng, ids, NULL, sample_stop,
                              NULL);
    if (stop_signal_received()) {
        printf("sample at step %d abandoned after %zu tokens: stopping\n", step, n - 1);
        free(ids);
        return;
    }
    size_t len;
    char* text = tokenizer_decode(tok, ids + 1, n - 1, &len, err, sizeof err);
    if (!text) die(EXIT_BAD_INPUT, "cannot decode a sample: %s", err);
    printf("sample at step %d (%.2f s):\n%s\n----\n", step, now_seconds() - t0, text);
    free(text);
    free(ids);
}

int main(int argc, char** argv) {
    Dist dist;  /* rank 0 of 1 without MPI */
    dist_init(&dist, &argc, &argv);
    int root = dist.rank == 0;  /* the one rank that writes files */
    if (argc < 2 || config_wants_help(argc, argv)) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_BAD_INPUT : 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);  /* progress lines appear at once, also through a pipe */
    catch_stop_signals();

    /* ---- config: file, overrides, checks; nothing is written before this passes ---- */
    TrainConfig cfg;
    char err[CONFIG_ERR_MAX];
    if (config_from_args(&cfg, argc, argv, err, sizeof err) != 0) die(EXIT_BAD_INPUT, "%s", err);
    Run run;  /* out_dir's files: config.conf, log.csv, checkpoints */
    run_init(&run, &cfg, &dist);

    /* ---- data ---- */
    PreparedData data;
    DataLoader train_data, val_data;
    open_data(&cfg, &dist, &data, &train_data, &val_data);
    /* the tokenizer decodes samples and travels with every checkpoint */
    Tokenizer* tok = run_load_tokenizer(&run, &data);

    /* ---- model and optimizer ---- */
    if (config_check_vocab(&cfg, data.vocab_size, err, sizeof err) != 0) die(EXIT_BAD_INPUT, "%s", err);
    GPTConfig mc = config_model(&cfg, data.vocab_size);
    check_memory(&mc, &cfg, (double)(train_data.n + val_data.n) * sizeof(uint16_t), argv[1]);
    GPT model;
    gpt_build(&model, &mc, cfg.batch_size, (uint64_t)cfg.seed);
    if (cfg.embed_init[0] && !cfg.resume &&  /* E from vectors learned before (a resume has its own E) */
        word2vec_read(cfg.embed_init, tok, model.params.wte, mc.vocab_size, mc.n_embd, err, sizeof err) != 0)
        die(EXIT_BAD_INPUT, "embed_init: %s", err);
    gpt_set_batch_groups(&model, cfg.batch_groups);
    gpt_set_batch_offset(&model, (long)dist.rank * cfg.batch_size);  /* dropout masks of the global batch */
    AdamW opt;
    adamw_init(&opt, model.num_params);
    int B = cfg.batch_size, T = cfg.block_size;
    int* inputs = xmalloc(sizeof(int) * B * T, "batch inputs");
    int* targets = xmalloc(sizeof(int) * B * T, "batch targets");
    RankBatches train_batches, val_batches;  /* each rank's slice of the global batches */
    rank_batches_init(&train_batches, &dist, &train_data, B, T);
    rank_batches_init(&val_batches, &dist, &val_data, B, T);
    print_model(&cfg, &model);

    /* ---- where the run starts: step 0, or the state --resume finds ---- */
    TrainProgress progress = {.step = 0, .val_loss = NAN, .best_val_loss = INFINITY, .elapsed_s = 0.0};
    rng_seed(&progress.batch_rng, (uint64_t)cfg.seed, STREAM_TRAIN);
    if (cfg.resume) run_resume(&run, &model, &opt, &progress);
    train_batches.rng = &progress.batch_rng;  /* the stream a checkpoint saves */
    print_plan(&cfg, &dist, &model, progress.step + 1);
    TrainLog log;
    EmbedLog elog;  /* embeddings.csv, probes and snapshots of E */
    /* redo: the checkpoint's step is to be evaluated first (its update is in the state, its row in log.csv) */
    int redo = root ? open_outputs(&run, progress.step, is_eval_step(&cfg, progress.step), &log, &elog, tok,
                                   &train_data) : 0;
    redo = dist_sum_double(redo) > 0;

    /* ---- the loop ---- */
    double t_session = now_seconds(), train_seconds = 0.0;
    double t_start = t_session - progress.elapsed_s;  /* elapsed_s continues across resumes */
    long first = cfg.resume ? progress.step + 1 - redo : 0, updates = 0;
    int stopped_by = 0;  /* the signal that ended the run early, or 0 */
    TrainedParams trained = trained_params(&model, cfg.freeze_embeddings);  /* all, or all but E */
    defer_stop_signals();  /* from here a signal stops the loop at its next check, with a checkpoint */
    for (long step = first; step <= cfg.max_iters && !stopped_by; step++) {
        /* step s makes the s-th update (step 0 none), then evaluates the model it
         * leaves: before training, after every eval_interval updates and after the last */
        check_stdout();
        LogRow row = {.step = step, .loss = NAN, .norm = NAN, .tokens = (double)dist.size * B * T};
        int redo_step = redo && step == first;  /* only the evaluation is left to do */
        if (step > 0 && !redo_step) {
            double t0 = now_seconds();
            rank_batch_next(&train_batches, inputs, targets);
            gpt_train_mode(&model, (uint64_t)cfg.seed, step);  /* dropout masks keyed by (seed, step) */
            float loss = gpt_forward_backward(&model, inputs, targets, B, T);  /* grads = this batch's, in groups */
            gpt_eval_mode(&model);
            /* every rank's slice has B x T positions: the global mean loss and its
             * gradient are the means over ranks (one allreduce of the whole buffer) */
            dist_mean_floats(model.grads_memory, model.num_params);
            row.loss = (float)(dist_sum_double(loss) / dist.size);
            row.norm = grad_global_norm(model.grads_memory + trained.first, trained.count);
            if (!isfinite(row.loss) || !isfinite(row.norm)) run_stop_non_finite(&run, &model, step, row.loss, row.norm);
            grad_clip(model.grads_memory + trained.first, trained.count, row.norm, (float)cfg.grad_clip);
            row.lr = lr_schedule((int)step - 1, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters);
            adamw_update(&opt, model.params_memory, model.grads_memory, trained.tensors, trained.num_tensors,
                         (float)row.lr, (float)cfg.beta1, (float)cfg.beta2, (float)cfg.weight_decay);
            gpt_sync_embedding(&model);  /* E = A B of the updated factors, for snapshots read before a forward */
            row.seconds = now_seconds() - t0;
            train_seconds += row.seconds;
            updates++;
            if (step % cfg.log_interval == 0 || step == cfg.max_iters)
                print_step(&row, cfg.max_iters, train_seconds / updates);
        }
        /* A signal during the update stops the run before the evaluation, one during the
         * evaluation abandons it: the step's checkpoint then holds the update and its row
         * no evaluation, which --resume makes first. Every rank agrees on each check. */
        stopped_by = stop_requested(&dist);
        if (is_eval_step(&cfg, step) && !stopped_by) {
            stopped_by = evaluate_splits(&row, &model, &train_batches, &val_batches, &cfg, &data, inputs, targets);
            if (row.evaluated) {
                progress.val_loss = row.val_loss;
                stopped_by = stop_requested(&dist);
            }
        }
        progress.step = step;
        progress.elapsed_s = row.elapsed_s = now_seconds() - t_start;
        if (!root) continue;  /* the rest of the step writes files */
        if (redo_step && !row.evaluated) continue;  /* abandoned again: the step's checkpoint stands as it was */
        /* before the checkpoint that records the step; a step 0 without its evaluation has nothing to say */
        if (!redo_step && (step > 0 || row.evaluated)) train_log_row(&log, &row);
        if (row.evaluated) embed_log_eval(&elog, &model, step);
        if (!redo_step) embed_log_snapshot(&elog, &model, step);  /* a redone step made it before it stopped */
        if (row.evaluated && cfg.sample_tokens > 0 && !stopped_by) print_sample(&model, tok, &cfg, (int)step);
        /* one process: a signal during the sample or E's measures stops the run here. With
         * several ranks it waits for the next step's check, which every rank makes. */
        if (dist.size == 1 && !stopped_by) stopped_by = stop_signal_received();
        /* at evaluations and when stopped early; step 0 is the untrained model */
        if (step > 0 && (row.evaluated || stopped_by)) run_checkpoint(&run, &model, &opt, &progress, row.evaluated);
        /* last: until the row holds its evaluation, a --resume makes it again */
        if (redo_step) train_log_complete_eval(&log, &row);
    }
    if (root) close_outputs(&log, &elog);
    if (!stopped_by)
        print_done(updates, now_seconds() - t_session, train_seconds, progress.val_loss, &data);
    /* before MPI_Finalize: once another rank has exited with 128 + the signal, mpirun may end this one */
    if (stopped_by && root)
        report_stop(stopped_by, progress.step, now_seconds() - t_session, run.state_path, cfg.out_dir);

    tokenizer_free(tok);
    free(inputs);
    free(targets);
    rank_batches_free(&train_batches);
    rank_batches_free(&val_batches);
    adamw_free(&opt);
    gpt_free(&model);
    dataloader_free(&train_data);
    dataloader_free(&val_data);
    dist_finalize();
    run_free(&run);
    return stopped_by ? 128 + stopped_by : 0;
}
