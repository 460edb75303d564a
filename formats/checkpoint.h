/* checkpoint.h: a trained model on disk, and the state to resume its training.
 *
 * A model checkpoint is a directory holding
 *   model.safetensors  the parameters. When the model is GPT-2 shaped (learned
 *                      positions, embed_scale 1) the names, shapes and layouts are
 *                      Hugging Face's GPT2LMHeadModel: transformer.wte.weight,
 *                      transformer.h.{i}.attn.c_attn.weight in Conv1D [in, out]
 *                      layout, ... (the table in checkpoint.c). Its metadata holds
 *                      this project's model config, so the file alone rebuilds the model,
 *                      and the hash of the tokenizer file it was trained with.
 *   config.json        GPT2Config's fields, for transformers' from_pretrained, plus
 *                      emergent_* fields for what GPT-2 cannot express (and the
 *                      tokenizer's hash again; nothing here reads it back).
 *   tokenizer.bin      the run's tokenizer (tokenizer.h's file format).
 * The training state is one file, train_state.safetensors: the parameters, the
 * AdamW moments, the step, the batch RNG, the best val loss and the config, so
 * a resume reads a single file written by one atomic rename: it can never pair
 * the parameters of one step with the moments of another. It also records the
 * hashes of the tokenizer, the text and the token files the run trained on.
 * Both safetensors files carry the checksums of safetensors.h (data and header).
 *
 * Every file is written to a temporary name, fsynced and renamed. Loaders return
 * -1 with a message naming the file and what does not match; they never exit.
 */
#ifndef CHECKPOINT_H
#define CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "training/optim.h"
#include "tokenizer/tokenizer.h"
#include "util/utils.h"

#define CHECKPOINT_MODEL_FILE "model.safetensors"
#define CHECKPOINT_CONFIG_FILE "config.json"
#define CHECKPOINT_TOKENIZER_FILE "tokenizer.bin"
#define CHECKPOINT_STATE_FILE "train_state.safetensors"

/* Where a run stands after `step` updates: everything besides the parameters and
 * the moments that the next step depends on. */
typedef struct {
    long step;
    float val_loss;        /* at step */
    float best_val_loss;   /* lowest so far (INFINITY before the first eval) */
    double elapsed_s;      /* wall time of the run so far, for log.csv */
    Rng batch_rng;         /* the training batch stream, ready to draw step+1's batch */
} TrainProgress;

/* Write dir/model.safetensors, dir/config.json and dir/tokenizer.bin (tokenizer_file:
 * the bytes of the tokenizer's file) for the model after `step` updates. */
int checkpoint_save_model(const char* dir, const GPT* model, const unsigned char* tokenizer_file,
                          size_t tokenizer_len, long step, float val_loss, char* err, size_t errlen);

/* Build *model (activations for max_batch sequences) from dir/model.safetensors and
 * load *tokenizer from dir/tokenizer.bin, which must be the file the model records
 * (its fnv1a64); *step receives the checkpoint's step. */
int checkpoint_load_model(const char* dir, GPT* model, int max_batch, Tokenizer** tokenizer, long* step,
                          char* err, size_t errlen);

/* Which tokenizer a run trains with: the hash of its file, and words for messages. */
typedef struct {
    uint64_t hash;         /* fnv1a64 of the tokenizer file */
    char description[96];  /* "char, 65 tokens" */
} TokenizerId;
TokenizerId tokenizer_id(const Tokenizer* tokenizer, const unsigned char* file, size_t len);

/* Which data a run trains on: fnv1a64 of the text, and the checksums of its two
 * token files (data/dataloader.h). Whether other data may continue a run is the
 * caller's decision (training/run.c), so loading only hands the saved one back. */
typedef struct {
    uint64_t text;
    uint64_t train_tokens, val_tokens;
} DataId;

/* Write path (train_state.safetensors). config_text: the run's resolved config. */
int checkpoint_save_state(const char* path, const GPT* model, const AdamW* opt, const TrainProgress* progress,
                          const char* config_text, const TokenizerId* tokenizer, const DataId* data, char* err,
                          size_t errlen);

/* Load a state into a model and optimizer already built for the current config.
 * Refuses a state whose tokenizer, model config or shapes differ (naming what
 * differs). *data receives the data the state was trained on; *config_text the
 * saved config (malloc'd, the caller frees). */
int checkpoint_load_state(const char* path, GPT* model, AdamW* opt, TrainProgress* progress,
                          const TokenizerId* tokenizer, DataId* data, char** config_text, char* err, size_t errlen);

#endif
