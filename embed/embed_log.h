/* embed_log.h: watching E during training. At every evaluation: one row of
 * out_dir/embeddings.csv (embeddings.h's measurements), a warning when the rows
 * collapse towards one direction, and the nearest neighbours of the probe tokens.
 * Every embed_snapshot_interval steps: E itself, in out_dir/embeddings/. */
#ifndef EMBED_LOG_H
#define EMBED_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "formats/config.h"
#include "model.h"
#include "tokenizer/tokenizer.h"
#include "training/log.h"

#define EMBED_LOG_HEADER "step,norm_mean,norm_std,norm_freq_spearman,mean_cosine,effective_rank,knn_purity,seconds"
enum { EMBED_KNN = 5, EMBED_MAX_PROBES = 32 };

typedef struct {
    const TrainConfig* cfg;
    const Tokenizer* tok;
    int V, C;
    double* freq;       /* (V) count of each token in the training split */
    int* classes;       /* (V) TokenClass, or NULL for multi-byte vocabularies */
    int probes[EMBED_MAX_PROBES];
    int n_probes;
    CsvFile csv;        /* embeddings.csv, grown by whole rows */
    char csv_path[CONFIG_STR_MAX + 64];  /* its path, for messages: rebuilt from dir at each use */
    const char* dir;    /* where the files go: the caller's string, which may change between calls (run.h's dir) */
    double seconds;     /* spent measuring, for the cost report */
} EmbedLog;

/* Open dir/embeddings.csv (append when resuming, after the caller truncated it). dir
 * must outlive the log; a run whose files move changes the string it points to. */
void embed_log_open(EmbedLog* e, const char* dir, const TrainConfig* cfg, const Tokenizer* tok,
                    const uint16_t* train_tokens, size_t n_train, int append);
/* At an evaluation: measure E, write the row, print the summary and the probes' neighbours. */
void embed_log_eval(EmbedLog* e, const GPT* model, long step);
/* When step is a snapshot step: write dir/embeddings/E_<step>.safetensors. */
void embed_log_snapshot(EmbedLog* e, const GPT* model, long step);
/* The snapshot file of step in a run's out_dir: out_dir/embeddings/E_<step, 6 digits>.safetensors. */
void embed_snapshot_path(char* path, size_t size, const char* out_dir, long step);
void embed_log_close(EmbedLog* e);

#endif
