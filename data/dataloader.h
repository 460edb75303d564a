/* dataloader.h: text -> token files (prepared once, cached) -> random batches.
 *
 * Token files use llm.c's format so prepared data moves between the projects:
 * a header of 256 int32 (magic 20240520, version 1, token count), then the ids as
 * uint16. Slots llm.c leaves 0 hold, in this project's files, the vocabulary size
 * (slot 3) and a checksum: slot 4 = TOKENS_CHECKSUM_FNV1A64, slots 5 and 6 the low
 * and high 32 bits of fnv1a64 (util/utils.h) over the whole file with slots 5 and 6
 * read as 0. A file with slot 4 = 0 (llm.c's) has no checksum: the readers accept
 * it, the data cache does not (it prepares the file again). */
#ifndef DATALOADER_H
#define DATALOADER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/config.h"
#include "util/utils.h"

#define TOKENS_MAGIC 20240520
#define TOKENS_VERSION 1
enum { TOKENS_HEADER_INTS = 256, TOKENS_SLOT_VOCAB = 3, TOKENS_SLOT_CHECKSUM_KIND = 4, TOKENS_SLOT_CHECKSUM = 5 };
enum { TOKENS_CHECKSUM_FNV1A64 = 1 };

typedef struct {
    char train_path[CONFIG_STR_MAX + 64];
    char val_path[CONFIG_STR_MAX + 64];
    char tokenizer_path[CONFIG_STR_MAX + 64];
    const char* tokenizer_name;        /* "char", "byte", "sentencepiece bpe", ... */
    int vocab_size;
    uint64_t text_hash;                /* fnv1a64 of the text */
    uint64_t train_checksum, val_checksum;  /* of the token files (their header's) */
    size_t text_bytes, train_bytes, val_bytes;  /* the text and its two parts */
    size_t n_train, n_val;                      /* tokens */
    size_t lossy_bytes;                /* bytes that do not survive encode + decode (allow_lossy) */
    int reused;                        /* 1: the cached files were up to date */
    double seconds;                    /* spent preparing (or checking the cache) */
} PreparedData;

/* Make sure the tokenizer and token files for cfg->input and the tokenizer
 * settings exist in cfg->data_dir, in files named by a hash of the text's content
 * and the settings, and return their paths. The text is split at 90% of its
 * bytes (at a character boundary): the first part trains (and trains the
 * SentencePiece model), the rest validates; each part is encoded on its own.
 * Before anything is written, decode(encode(text)) must give the text back,
 * unless cfg->allow_lossy. Bad input (missing or empty text, a vocab_size the
 * text cannot support, ...) exits with EXIT_BAD_INPUT and a message. */
void data_prepare(const TrainConfig* cfg, PreparedData* out);
/* One line: vocab size, token counts, tokens per byte, time. */
void data_print_summary(const TrainConfig* cfg, const PreparedData* d, FILE* f);
/* Bits per byte of the validation text for a loss in nats per validation token. */
double data_bits_per_byte(const PreparedData* d, double nats_per_token);

/* Write ids as a token file with its checksum, atomically; returns the checksum. */
uint64_t tokens_write(const char* path, const uint16_t* ids, size_t n, int vocab_size);
/* Read a token file, checking magic, version, size, that every id < vocab_size
 * (when the file records a vocab_size, it must equal the one given) and the
 * checksum when it has one. Dies with EXIT_BAD_INPUT and the message of the checks
 * below. */
uint16_t* tokens_read(const char* path, int vocab_size, size_t* n);
/* The checks, without exiting: 0, or -1 with a message naming path in err.
 * tokens_check_header: head holds the first 1024 bytes of a file of len bytes
 * (it is not read when len is shorter); *n receives the token count, *checksum
 * (unless NULL) the checksum the header records, 0 when it has none.
 * tokens_check_ids: every id < vocab_size.
 * tokens_check_sum: the checksum of a file with this header and these ids, when
 * the header has one. */
int tokens_check_header(const void* head, size_t len, const char* path, int vocab_size, size_t* n,
                        uint64_t* checksum, char* err, size_t errlen);
int tokens_check_ids(const uint16_t* ids, size_t n, const char* path, int vocab_size, char* err, size_t errlen);
int tokens_check_sum(const void* head, const uint16_t* ids, size_t n, const char* path, char* err, size_t errlen);
/* A whole token file held in memory (buf, len bytes), checked as tokens_read does:
 * the ids (malloc'd, *n of them), or NULL with a message. */
uint16_t* tokens_parse(const unsigned char* buf, size_t len, const char* path, int vocab_size, size_t* n, char* err,
                       size_t errlen);

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
