/* train.c: the training program.
 *   config -> data (tokenizer + token files) -> model -> loop -> log.csv
 * Usage: ./train CONFIG [--key=value ...]     ./train --help
 * Not here: checkpoints, sampling and resume (issue 4).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dataloader.h"
#include "model.h"
#include "optim.h"
#include "utils.h"

/* Independent RNG streams from the one seed: changing eval settings never changes
 * the training batches, and every evaluation scores the same batches. */
enum { STREAM_TRAIN = 1, STREAM_EVAL = 2 };  /* stream 0 initialises the model */

static void usage(FILE* f) {
    fprintf(f, "usage: ./train CONFIG [--key=value ...]\n"
               "Trains a GPT on the text named by `input`. Keys (file lines `key = value`, or overrides):\n\n");
    config_print_help(f);
}

/* Mean loss over eval_iters batches of one split, always the same batches. */
static float evaluate(GPT* model, const DataLoader* dl, const TrainConfig* cfg, int* inputs, int* targets) {
    Rng rng;
    rng_seed(&rng, (uint64_t)cfg->seed, STREAM_EVAL);
    double total = 0.0;
    for (int i = 0; i < cfg->eval_iters; i++) {
        dataloader_next_batch(dl, &rng, inputs, targets, cfg->batch_size, cfg->block_size);
        total += gpt_forward(model, inputs, targets, cfg->batch_size, cfg->block_size);
    }
    return (float)(total / cfg->eval_iters);
}

static void format_duration(double seconds, char* out, size_t len) {
    int s = (int)(seconds + 0.5);
    if (s >= 3600) snprintf(out, len, "%dh%02dm", s / 3600, s / 60 % 60);
    else if (s >= 60) snprintf(out, len, "%dm%02ds", s / 60, s % 60);
    else snprintf(out, len, "%ds", s);
}

int main(int argc, char** argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_BAD_INPUT : 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);  /* progress lines appear at once, also through a pipe */
    TrainConfig cfg;
    char err[CONFIG_ERR_MAX];
    /* file, overrides, checks: nothing is written before this passes */
    if (config_from_args(&cfg, argc, argv, err, sizeof err) != 0) die(EXIT_BAD_INPUT, "%s", err);

    /* ---- data ---- */
    PreparedData data;
    data_prepare(&cfg, &data);  /* tokenizer and token files, made once and cached */
    data_print_summary(&cfg, &data, stdout);
    DataLoader train_data, val_data;
    dataloader_open(&train_data, data.train_path, cfg.input, data.vocab_size, cfg.block_size);
    dataloader_open(&val_data, data.val_path, cfg.input, data.vocab_size, cfg.block_size);

    /* ---- model and optimizer ---- */
    GPT model;
    GPTConfig mc = config_model(&cfg, data.vocab_size);
    gpt_build(&model, &mc, cfg.batch_size, (uint64_t)cfg.seed);
    AdamW opt;
    adamw_init(&opt, model.num_params);
    int B = cfg.batch_size, T = cfg.block_size;
    int* inputs = xmalloc(sizeof(int) * B * T, "batch inputs");
    int* targets = xmalloc(sizeof(int) * B * T, "batch targets");
    printf("model: n_layer %d, n_head %d, n_embd %d, block_size %d, %s positions (embed_scale %g), %s weights, %s: "
           "%zu parameters\n", cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size,
           cfg.pos_encoding == POS_LEARNED ? "learned" : "sinusoidal", cfg.embed_scale,
           cfg.tie_weights ? "tied" : "untied", cfg.bias ? "biases" : "no biases", model.num_params);
    printf("training: %d steps of %d x %d tokens on %d OpenMP threads\n", cfg.max_iters, B, T, omp_get_max_threads());

    /* ---- outputs: the resolved config, then the log ---- */
    make_dirs(cfg.out_dir);
    char path[CONFIG_STR_MAX + 32];
    xsnprintf(path, sizeof path, "%s/config.conf", cfg.out_dir);
    {
        char* buf = NULL;
        size_t len = 0;
        FILE* mem = open_memstream(&buf, &len);
        if (!mem) die(EXIT_IO_FAILURE, "cannot allocate the config text");
        config_write(&cfg, mem);
        fclose(mem);
        write_file_atomic(path, buf, len);
        free(buf);
    }
    xsnprintf(path, sizeof path, "%s/log.csv", cfg.out_dir);
    FILE* log = xfopen(path, "w");
    /* val_bpb: val loss in bits per byte of text, comparable across tokenizers */
    fprintf(log, "step,lr,train_loss,val_loss,grad_norm,ms_per_step,tokens_per_s,val_bpb\n");

    /* ---- the loop ---- */
    Rng batch_rng;
    rng_seed(&batch_rng, (uint64_t)cfg.seed, STREAM_TRAIN);
    double t_start = now_seconds(), train_seconds = 0.0;
    float val_loss = NAN;
    for (int step = 0; step <= cfg.max_iters; step++) {
        /* step s makes the s-th update (step 0 none), then evaluates the model it
         * leaves: before training, after every eval_interval updates and after the last */
        double lr = 0.0, dt = 0.0;
        float loss = NAN, norm = NAN;
        if (step > 0) {
            double t0 = now_seconds();
            lr = lr_schedule(step - 1, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters);
            dataloader_next_batch(&train_data, &batch_rng, inputs, targets, B, T);
            loss = gpt_forward(&model, inputs, targets, B, T);
            gpt_zero_grad(&model);
            gpt_backward(&model);
            norm = grad_global_norm(model.grads_memory, model.num_params);
            grad_clip(model.grads_memory, model.num_params, norm, (float)cfg.grad_clip);
            adamw_update(&opt, model.params_memory, model.grads_memory, model.tensors, NUM_PARAM_TENSORS, (float)lr,
                         (float)cfg.beta1, (float)cfg.beta2, (float)cfg.weight_decay);
            dt = now_seconds() - t0;
            train_seconds += dt;
            if (!isfinite(loss)) die(EXIT_BAD_INPUT, "loss is %f at step %d: lower learning_rate", loss, step);
            if (step % cfg.log_interval == 0 || step == cfg.max_iters) {
                char eta[32];
                format_duration(train_seconds / step * (cfg.max_iters - step), eta, sizeof eta);
                printf("step %5d/%d | loss %.4f | lr %.2e | norm %.3f | %.1f ms | %.0f tok/s | ETA %s\n", step,
                       cfg.max_iters, loss, lr, norm, dt * 1e3, B * T / dt, eta);
            }
        }

        char val_text[32] = "", bpb_text[32] = "";
        if (step % cfg.eval_interval == 0 || step == cfg.max_iters) {
            double t0 = now_seconds();
            float train_loss = evaluate(&model, &train_data, &cfg, inputs, targets);
            val_loss = evaluate(&model, &val_data, &cfg, inputs, targets);
            double val_bpb = data_bits_per_byte(&data, val_loss);
            printf("step %d: train loss %.4f, val loss %.4f, val_bpb %.4f (eval %.1f s)\n", step, train_loss,
                   val_loss, val_bpb, now_seconds() - t0);
            snprintf(val_text, sizeof val_text, "%.9g", val_loss);
            snprintf(bpb_text, sizeof bpb_text, "%.9g", val_bpb);
        }

        /* a row per step, written whole and flushed: a crash leaves only complete rows.
         * train_loss is the loss of the step's batch before its update; val_loss after it. */
        if (step == 0) fprintf(log, "0,,,%s,,,,%s\n", val_text, bpb_text);
        else fprintf(log, "%d,%.9g,%.9g,%s,%.9g,%.3f,%.1f,%s\n", step, lr, loss, val_text, norm, dt * 1e3,
                     B * T / dt, bpb_text);
        if (fflush(log) != 0) die(EXIT_IO_FAILURE, "cannot write %s", path);
    }
    xfclose_synced(log, path);
    double wall = now_seconds() - t_start;
    printf("done: %d steps in %.1f s wall (%.1f ms/step training), final val loss %.4f (%.4f bits per byte)\n",
           cfg.max_iters, wall, cfg.max_iters ? train_seconds / cfg.max_iters * 1e3 : 0.0, val_loss,
           data_bits_per_byte(&data, val_loss));

    free(inputs);
    free(targets);
    adamw_free(&opt);
    gpt_free(&model);
    dataloader_free(&train_data);
    dataloader_free(&val_data);
    return 0;
}
