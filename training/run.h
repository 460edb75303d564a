/* run.h: one training run's files in out_dir, and continuing a run from them.
 *
 * out_dir after a run:
 *   config.conf                the resolved config (./train it to repeat the run)
 *   log.csv                    one row per step (training/log.h)
 *   model.safetensors, config.json, tokenizer.bin   the best model so far (lowest val loss)
 *   last/                      the same three files for the newest model
 *   train_state.safetensors    everything --resume needs, written with last/
 * Rank 0 writes every file, holding out_dir's lock (training/out_dir.h) from the
 * moment out_dir exists to the end; the other ranks only read the state on --resume.
 * A new run refuses an out_dir that holds another run unless --overwrite says to
 * replace it; it then writes into out_dir/.overwriting until its first checkpoint.
 * Errors exit with a message (util/utils.h's codes). */
#ifndef RUN_H
#define RUN_H

#include <stddef.h>

#include "data/dataloader.h"
#include "formats/checkpoint.h"
#include "formats/config.h"
#include "model.h"
#include "tokenizer/tokenizer.h"
#include "training/dist.h"
#include "training/optim.h"

typedef struct {
    const TrainConfig* cfg;
    const Dist* dist;
    /* Where the files go: out_dir, or out_dir/.overwriting until an --overwrite run's
     * first checkpoint. The paths below are in it; the logs hold pointers to dir and
     * log_path, which change in place when the files move into out_dir. */
    char dir[CONFIG_STR_MAX + 64];
    char state_path[CONFIG_STR_MAX + 96];  /* dir/train_state.safetensors */
    char last_dir[CONFIG_STR_MAX + 96];    /* dir/last */
    char log_path[CONFIG_STR_MAX + 96];    /* dir/log.csv */
    int staged;                    /* 1 while dir is out_dir/.overwriting */
    int lock_fd;                   /* out_dir/.lock, rank 0's; -1 until taken */
    char* cfg_text;                /* the resolved config and the global batch: config.conf, kept in the state */
    unsigned char* tok_file;       /* the tokenizer's file, copied beside every model */
    size_t tok_len;
    TokenizerId tok_id;
    const PreparedData* data;      /* the text and token files trained on (run_load_tokenizer's) */
    DataId data_id;                /* their hashes, recorded in every training state */
    long saved_step;               /* of the newest complete checkpoint; -1: none */
} Run;

/* The paths and the config text. Refuses --resume when out_dir holds no state,
 * --resume with --overwrite, and (rank 0, when out_dir exists) an out_dir another
 * process holds, or a new run into one that holds another run without --overwrite:
 * all before anything is prepared or written. cfg and dist must outlive the run. */
void run_init(Run* run, const TrainConfig* cfg, const Dist* dist);
void run_free(Run* run);

/* Read the prepared data's tokenizer file (kept for the checkpoints) and the
 * tokenizer in it, and take note of the data the run trains on (data must outlive
 * the run). */
Tokenizer* run_load_tokenizer(Run* run, const PreparedData* data);

/* --resume: load the state into a model and optimizer built for the current
 * config, and say which settings differ from the saved run's (another value, or
 * another number of ranks, makes another curve). Other data than the state's (the
 * text, a token file) is refused, naming what changed, unless allow_data_change
 * makes it a warning. */
void run_resume(Run* run, GPT* model, AdamW* opt, TrainProgress* progress);

/* Rank 0, before the loop: make out_dir (taking its lock and making run_init's
 * checks when it did not exist then) and write config.conf into dir. A resumed run
 * cuts log.csv and embeddings.csv back to the rows of steps <= step. */
void run_prepare_out_dir(Run* run, long step);

/* Rank 0, at an evaluation (evaluated = 1) or when stopped early: the training
 * state and dir/last/, and dir itself when the val loss is the lowest so far
 * (progress->best_val_loss follows). The state goes first: when the disk fills up,
 * it is the largest file, and its failure then leaves every file of the last
 * checkpoint as it was. The first checkpoint of an --overwrite run then moves the
 * old run to out_dir/previous-<UTC time>/ and this run's files into out_dir. */
void run_checkpoint(Run* run, const GPT* model, const AdamW* opt, TrainProgress* progress, int evaluated);

/* A NaN or an Inf in the loss or the gradient norm: no update is made from it.
 * Exits with EXIT_NON_FINITE, saying where the first non-finite value is and
 * which checkpoint survives. */
_Noreturn void run_stop_non_finite(const Run* run, const GPT* model, long step, float loss, float norm);

#endif
