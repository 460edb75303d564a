/* run.c: a run's files in out_dir: config.conf, checkpoints, and --resume (see run.h).
 * log.csv's rows are training/log.c's. */
#include "training/run.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embed/embed_log.h"
#include "gpt/diagnose.h"
#include "training/log.h"
#include "training/out_dir.h"
#include "util/utils.h"

/* "# global batch: R ranks x batch_size B" in the saved config: the rank count
 * of the run a --resume continues (1 when the line is absent: a one-process run). */
#define GLOBAL_BATCH_NOTE "# global batch: %d rank(s) x batch_size %d = %d windows of %d tokens\n"

static int saved_ranks(const char* saved_config) {
    const char* line = strstr(saved_config, "# global batch: ");
    int ranks = 1;
    if (line) sscanf(line, "# global batch: %d", &ranks);
    return ranks;
}

/* The resolved config as text, then the global batch as a comment. */
static char* config_text(const TrainConfig* cfg, int ranks) {
    char* buf = NULL;
    size_t len = 0;
    FILE* mem = open_memstream(&buf, &len);
    if (!mem) die(EXIT_IO_FAILURE, "cannot allocate the config text");
    config_write(cfg, mem);
    if (fclose(mem) != 0) die(EXIT_IO_FAILURE, "cannot allocate the config text");
    char note[256];
    snprintf(note, sizeof note, GLOBAL_BATCH_NOTE, ranks, cfg->batch_size, ranks * cfg->batch_size, cfg->block_size);
    buf = realloc(buf, len + strlen(note) + 1);
    if (!buf) die(EXIT_IO_FAILURE, "out of memory for the config text");
    memcpy(buf + len, note, strlen(note) + 1);
    return buf;
}

/* Point dir and the paths in it at a folder. */
static void run_set_dir(Run* run, const char* dir) {
    xsnprintf(run->dir, sizeof run->dir, "%s", dir);
    xsnprintf(run->state_path, sizeof run->state_path, "%s/%s", dir, CHECKPOINT_STATE_FILE);
    xsnprintf(run->last_dir, sizeof run->last_dir, "%s/last", dir);
    xsnprintf(run->log_path, sizeof run->log_path, "%s/log.csv", dir);
}

/* Rank 0, out_dir existing: take its lock for the rest of the process, clear what an
 * interrupted run left, and see whether another run is there. A new run refuses it
 * without --overwrite; with it, the new run's files go to the staging folder, and the
 * old run stays whole, --resume-able, until the new run's first checkpoint. */
static void run_claim_out_dir(Run* run) {
    const TrainConfig* cfg = run->cfg;
    run->lock_fd = out_dir_lock(cfg->out_dir);
    out_dir_clean_leftovers(cfg->out_dir);
    char files[1024], staging[CONFIG_STR_MAX + 32];
    if (cfg->resume || out_dir_run_files(cfg->out_dir, files, sizeof files) == 0) return;
    if (!cfg->overwrite)
        die(EXIT_BAD_INPUT, "out_dir %s holds another run (%s): continue it with --resume, or start anew with "
            "--overwrite (its files then move to %s/previous-<UTC time>/ at the new run's first checkpoint)",
            cfg->out_dir, files, cfg->out_dir);
    xsnprintf(staging, sizeof staging, "%s/%s", cfg->out_dir, OUT_DIR_STAGING);
    run_set_dir(run, staging);
    run->staged = 1;
    printf("--overwrite: %s holds another run (%s); this run writes into %s until its first checkpoint, then "
           "moves the other run to %s/previous-<UTC time>/\n", cfg->out_dir, files, staging, cfg->out_dir);
}

static int is_directory(const char* path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void run_init(Run* run, const TrainConfig* cfg, const Dist* dist) {
    memset(run, 0, sizeof *run);
    run->cfg = cfg;
    run->dist = dist;
    run->saved_step = -1;
    run->lock_fd = -1;
    run_set_dir(run, cfg->out_dir);
    if (cfg->resume && cfg->overwrite)
        die(EXIT_BAD_INPUT, "--resume and --overwrite exclude each other: --resume continues the run in out_dir = "
            "%s, --overwrite starts a new one there", cfg->out_dir);
    /* a missing out_dir is made (and claimed) only once the run is sure to start:
     * a refused run leaves nothing behind */
    if (dist->rank == 0 && is_directory(cfg->out_dir)) run_claim_out_dir(run);
    /* after the claim: it may finish an interrupted --overwrite, which brings the state in */
    if (cfg->resume && !file_exists(run->state_path))
        die(EXIT_BAD_INPUT, "--resume: %s does not exist (no checkpoint has been written to out_dir = %s yet)",
            run->state_path, cfg->out_dir);
    run->cfg_text = config_text(cfg, dist->size);
}

void run_free(Run* run) {
    free(run->cfg_text);
    free(run->tok_file);
    if (run->lock_fd >= 0) close(run->lock_fd);  /* the lock goes with it */
}

Tokenizer* run_load_tokenizer(Run* run, const PreparedData* data) {
    char err[CONFIG_ERR_MAX + 512];
    const char* path = data->tokenizer_path;
    run->tok_file = read_file(path, &run->tok_len);
    Tokenizer* tok = tokenizer_deserialize(run->tok_file, run->tok_len, path, err, sizeof err);
    if (!tok) die(EXIT_BAD_INPUT, "%s", err);
    run->tok_id = tokenizer_id(tok, run->tok_file, run->tok_len);
    run->data = data;
    run->data_id = (DataId){.text = data->text_hash, .train_tokens = data->train_checksum,
                            .val_tokens = data->val_checksum};
    return tok;
}

/* ---- resume ---- */

/* Keys that change no loss of the steps both runs make. */
static const char* SAFE_TO_CHANGE[] = {"max_iters", "log_interval", "sample_tokens", "out_dir", "data_dir",
                                       "eval_interval"};

/* Print each key whose value differs between the saved config and this one: a
 * resumed run with other settings is a different curve. */
static void report_changed_keys(const char* saved, const char* now) {
    const char* line = now;
    while (*line) {
        size_t n = strcspn(line, "\n");
        size_t key_len = strcspn(line, "=");
        if (line[0] != '#' && key_len < n) {
            /* the same key's line in the saved text */
            const char* s = saved;
            int found = 0;
            while (*s && !found) {
                size_t m = strcspn(s, "\n");
                if (m >= key_len && strncmp(s, line, key_len) == 0) {
                    found = 1;
                    if (m != n || strncmp(s, line, n) != 0) {
                        int harmless = 0;
                        for (int k = 0; k < (int)(sizeof SAFE_TO_CHANGE / sizeof *SAFE_TO_CHANGE); k++)
                            harmless |= strncmp(line, SAFE_TO_CHANGE[k], strlen(SAFE_TO_CHANGE[k])) == 0 &&
                                        line[strlen(SAFE_TO_CHANGE[k])] == ' ';
                        const char* was = s + key_len + 1;
                        while (*was == ' ') was++;
                        fprintf(stderr, "%s: resume: %.*s (was %.*s)%s\n", harmless ? "note" : "warning", (int)n, line,
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

/* Other data than the run trained on makes another curve, silently: the same
 * characters edited in place give the same tokenizer and the same shapes. Refused
 * (exit 2) unless allow_data_change, naming each file that differs. */
static void check_same_data(const Run* run, const DataId* saved) {
    const PreparedData* d = run->data;
    const struct { const char* what; const char* path; uint64_t now, was; } files[] = {
        {"the text", run->cfg->input, run->data_id.text, saved->text},
        {"the train token file", d->train_path, run->data_id.train_tokens, saved->train_tokens},
        {"the val token file", d->val_path, run->data_id.val_tokens, saved->val_tokens}};
    char changed[3 * (CONFIG_STR_MAX + 160)] = "";
    size_t o = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i].now != files[i].was)
            o += (size_t)snprintf(changed + o, sizeof changed - o, "%s%s %s hashes to %016llx, the run's to %016llx",
                                  o ? "; " : "", files[i].what, files[i].path, (unsigned long long)files[i].now,
                                  (unsigned long long)files[i].was);
    if (o == 0) return;
    if (!run->cfg->allow_data_change)
        die(EXIT_BAD_INPUT, "--resume: the data differs from what the run in %s trained on: %s. Resume with the run's "
            "own data, or add --allow_data_change to continue on this data (the curve then differs from an "
            "uninterrupted run)", run->cfg->out_dir, changed);
    fprintf(stderr, "warning: resume: --allow_data_change: the data differs from what the run trained on: %s: the "
            "curve will differ from an uninterrupted run\n", changed);
}

void run_resume(Run* run, GPT* model, AdamW* opt, TrainProgress* progress) {
    char err[CONFIG_ERR_MAX + 512];
    char* saved_cfg = NULL;
    DataId saved_data = {0};
    if (checkpoint_load_state(run->state_path, model, opt, progress, &run->tok_id, &saved_data, &saved_cfg, err,
                              sizeof err) != 0)
        die(EXIT_BAD_INPUT, "%s", err);
    check_same_data(run, &saved_data);
    report_changed_keys(saved_cfg, run->cfg_text);
    int was = saved_ranks(saved_cfg), ranks = run->dist->size, B = run->cfg->batch_size;
    if (was != ranks)
        fprintf(stderr, "warning: resume: %d rank(s) (was %d): the global batch is now %d windows (was %d x batch_size "
               "%d): the curve will differ from an uninterrupted run\n", ranks, was, ranks * B, was, B);
    free(saved_cfg);
    run->saved_step = progress->step;
    printf("resuming from %s: step %ld, val loss %.4f (best %.4f)\n", run->state_path, progress->step,
           progress->val_loss, progress->best_val_loss);
}

void run_prepare_out_dir(Run* run, long step) {
    const TrainConfig* cfg = run->cfg;
    char path[CONFIG_STR_MAX + 96];
    make_dirs(cfg->out_dir);
    if (run->lock_fd < 0) run_claim_out_dir(run);  /* out_dir did not exist at run_init */
    if (run->staged) make_dirs(run->dir);
    xsnprintf(path, sizeof path, "%s/config.conf", run->dir);
    write_file_atomic(path, run->cfg_text, strlen(run->cfg_text));
    if (cfg->resume) {
        csv_truncate(run->log_path, LOG_HEADER, step);
        xsnprintf(path, sizeof path, "%s/embeddings.csv", run->dir);
        csv_truncate(path, EMBED_LOG_HEADER, step);
    }
}

/* ---- checkpoints ---- */

void run_checkpoint(Run* run, const GPT* model, const AdamW* opt, TrainProgress* progress, int evaluated) {
    char err[CONFIG_ERR_MAX + 512];
    const char* out_dir = run->cfg->out_dir;
    int best = evaluated && progress->val_loss < progress->best_val_loss;
    if (best) progress->best_val_loss = progress->val_loss;
    float val_loss = evaluated ? progress->val_loss : NAN;  /* NAN: a step that was not evaluated */
    double t0 = now_seconds();
    if (checkpoint_save_state(run->state_path, model, opt, progress, run->cfg_text, &run->tok_id, &run->data_id,
                              err, sizeof err) != 0)
        die(EXIT_IO_FAILURE, "%s; %s", err,
            run->saved_step >= 0 ? "the last checkpoint is intact"
            : run->staged ? "no checkpoint had been written before, and the other run in out_dir is untouched"
                          : "no checkpoint had been written before");
    run->saved_step = progress->step;
    if (checkpoint_save_model(run->last_dir, model, run->tok_file, run->tok_len, progress->step, val_loss, err,
                              sizeof err) != 0 ||
        (best && checkpoint_save_model(run->dir, model, run->tok_file, run->tok_len, progress->step, val_loss, err,
                                       sizeof err) != 0)) {
        if (run->staged) die(EXIT_IO_FAILURE, "%s; the other run in out_dir is untouched", err);
        die(EXIT_IO_FAILURE, "%s; the training state of step %ld is written (--resume continues from it)", err,
            progress->step);
    }
    if (run->staged) {  /* the new run's first checkpoint is whole: the old run moves aside now */
        char previous[CONFIG_STR_MAX + 64];
        out_dir_replace(out_dir, run->dir, previous, sizeof previous);
        run_set_dir(run, out_dir);
        run->staged = 0;
        printf("--overwrite: the other run's files are now in %s\n", previous);
    }
    printf("checkpoint: step %ld in %s (best val %.4f in %s), %.2f s\n", progress->step, run->last_dir,
           progress->best_val_loss, out_dir, now_seconds() - t0);
}

_Noreturn void run_stop_non_finite(const Run* run, const GPT* model, long step, float loss, float norm) {
    char where[256], saved[CONFIG_STR_MAX + 128];
    if (!gpt_find_nonfinite(model, where, sizeof where))
        snprintf(where, sizeof where, "none: every value is finite, the sum of squares of the gradient overflows");
    if (run->saved_step >= 0)
        snprintf(saved, sizeof saved, "the checkpoint of step %ld in %s is intact (--resume continues from it)",
                 run->saved_step, run->cfg->out_dir);
    else
        snprintf(saved, sizeof saved, "no checkpoint had been written yet%s",
                 run->staged ? " (the other run in out_dir is untouched)" : "");
    char loss_text[32], norm_text[32];  /* "nan", never glibc's "-nan" */
    snprintf(loss_text, sizeof loss_text, isnan(loss) ? "nan" : "%g", loss);
    snprintf(norm_text, sizeof norm_text, isnan(norm) ? "nan" : "%g", norm);
    die(EXIT_NON_FINITE, "step %ld: loss %s, gradient norm %s: first non-finite value: %s; stopped before the "
        "update, %s; lower learning_rate or raise warmup_iters", step, loss_text, norm_text, where, saved);
}
