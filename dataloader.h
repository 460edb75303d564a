/* dataloader.h: text -> token files (prepared once, cached) -> random batches.
 *
 * Token files use llm.c's format so prepared data moves between the projects:
 * a header of 256 int32 (magic 20240520, version 1, token count, and in slot 3,
 * which llm.c leaves 0, the vocabulary size), then the ids as uint16. */
#ifndef DATALOADER_H
#define DATALOADER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "utils.h"

#define TOKENS_MAGIC 20240520
#define TOKENS_VERSION 1
enum { TOKENS_HEADER_INTS = 256, TOKENS_SLOT_VOCAB = 3 };

typedef struct {
    char train_path[CONFIG_STR_MAX + 64];
    char val_path[CONFIG_STR_MAX + 64];
    char tokenizer_path[CONFIG_STR_MAX + 64];
    int vocab_size;
    size_t text_bytes, n_train, n_val;
    int reused;                        /* 1: the cached files were up to date */
} PreparedData;

/* Make sure the token files for cfg->input and cfg->tokenizer exist in
 * cfg->data_dir, keyed by a hash of the text's content, and return their
 * paths. The first 90% of the tokens train, the last 10% validate.
 * Bad input (missing or empty text, ...) exits with EXIT_BAD_INPUT and a message. */
void data_prepare(const TrainConfig* cfg, PreparedData* out);

/* Write ids as a token file, atomically. */
void tokens_write(const char* path, const uint16_t* ids, size_t n, int vocab_size);
/* Read a token file, checking magic, version, size and that every id < vocab_size
 * (when the file records a vocab_size, it must equal the one given). */
uint16_t* tokens_read(const char* path, int vocab_size, size_t* n);

typedef struct {
    const char* path;   /* for messages */
    uint16_t* tokens;
    size_t n;
} DataLoader;

/* Open a token file for windows of block_size+1 tokens; dies if it holds fewer,
 * naming `source` (the text it was made from) in the message. */
void dataloader_open(DataLoader* dl, const char* path, const char* source, int vocab_size, int block_size);
void dataloader_free(DataLoader* dl);
/* B random windows: inputs[b] = tokens[i..i+T), targets[b] = tokens[i+1..i+T+1),
 * i drawn uniformly from the rng (as nanoGPT's get_batch). */
void dataloader_next_batch(const DataLoader* dl, Rng* rng, int* inputs, int* targets, int B, int T);

#endif
