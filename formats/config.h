/* config.h: the run's settings, from a `key = value` file and --key=value overrides.
 *
 * Every key is declared once, in the table in config.c (name, type, default,
 * allowed range, help). Errors never print or exit from here: each function
 * returns 0 on success or -1 with a message in err that names the file and
 * line (or the override) and the key. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "model.h"

#define CONFIG_STR_MAX 1024
#define CONFIG_ERR_MAX 1024
#define CONFIG_MAX_KEYS 48
#define CONFIG_ORIGIN_MAX 256

typedef struct {
    /* I/O */
    char out_dir[CONFIG_STR_MAX];
    char input[CONFIG_STR_MAX];     /* raw UTF-8 text to train on */
    char data_dir[CONFIG_STR_MAX];  /* where prepared token files are cached */
    int seed;
    /* model */
    int n_layer, n_head, n_embd, block_size;
    int pos_encoding;               /* PosEncoding */
    double embed_scale;             /* 0 in the table means auto; resolved by config_validate */
    double embed_init_std;          /* E's initial standard deviation */
    char embed_init[CONFIG_STR_MAX];  /* a word2vec file to start E from, or "" */
    int embed_rank;                 /* 0, or r: E = A B, A (V, r), B (r, C) */
    int freeze_embeddings;          /* E gets no update */
    int tie_weights;
    int bias;                       /* biases in Linears and LayerNorms */
    int tokenizer;                  /* TokenizerKind (tokenizer/tokenizer.h) */
    int vocab_size;                 /* sentencepiece only */
    int spm_model_type;             /* SpmModelType */
    int allow_lossy;                /* accept text the tokenizer cannot round-trip */
    double dropout;                 /* training only */
    double embed_dropout;           /* training only: whole token rows of E */
    /* optimisation */
    int batch_size;
    int batch_groups;               /* gpt_set_batch_groups */
    double learning_rate, min_lr;
    int warmup_iters, lr_decay_iters, max_iters;
    double weight_decay, beta1, beta2, grad_clip;
    /* evaluation and logging */
    int eval_interval, eval_iters, log_interval;
    int sample_tokens;              /* printed at each evaluation */
    int embed_snapshot_interval;    /* E saved every this many steps; 0 = never */
    char embed_probes[CONFIG_STR_MAX];  /* tokens whose neighbours each evaluation prints */
    double anisotropy_warn;         /* mean cosine of E's rows above this: a warning */
    int resume;                     /* continue from out_dir's training state */
    int overwrite;                  /* start anew over the run in out_dir, moving its files aside */
    int allow_data_change;          /* --resume on other data: warn instead of refusing */
    /* where each key got its value ("file:line", "override --key" or "default"),
     * indexed like the key table, so errors between keys can point at both */
    char origin[CONFIG_MAX_KEYS][CONFIG_ORIGIN_MAX];
} TrainConfig;

/* Fill every key with its default. */
void config_defaults(TrainConfig* cfg);
/* Apply the key = value lines of a file (read whole, at most 1 MB, then config_load_text). */
int config_load_file(TrainConfig* cfg, const char* path, char* err, size_t errlen);
/* The same for text held in memory (len bytes, not NUL-terminated); name (the
 * file's path) starts every message, as "name:line". */
int config_load_text(TrainConfig* cfg, const char* text, size_t len, const char* name, char* err, size_t errlen);
/* Apply one command-line override, "--key=value" (or "--flag" for a bool key);
 * a key an earlier override set is refused, as a key set twice in a file is. */
int config_apply_override(TrainConfig* cfg, const char* arg, char* err, size_t errlen);
/* A program's command line, CONFIG [--key=value ...]: defaults, then the file,
 * then the overrides in order (a key given twice is refused), then config_validate;
 * last, out_dir and data_dir must not name a file (they need not exist yet). */
int config_from_args(TrainConfig* cfg, int argc, char** argv, char* err, size_t errlen);
/* Whether a command line asks for help: --help or -h in any place, so that
 * `./train CONFIG --help` prints it too. */
int config_wants_help(int argc, char** argv);
/* Check relations between keys (n_embd % n_head, ...) and resolve embed_scale = auto. */
int config_validate(TrainConfig* cfg, char* err, size_t errlen);
/* Every key as a `key = value` line, fully resolved: reading it back repeats the run.
 * resume, overwrite and allow_data_change are left out: they say how this invocation
 * treats out_dir, not what the run is, and a config.conf that said resume = true would
 * not repeat it. */
void config_write(const TrainConfig* cfg, FILE* f);
/* The table of keys, types, defaults, ranges and help, for --help. */
void config_print_help(FILE* f);
/* The checks that need the data's vocabulary: embed_rank < vocab_size. */
int config_check_vocab(const TrainConfig* cfg, int vocab_size, char* err, size_t errlen);
/* The model part of the config. vocab_size comes from the data. */
GPTConfig config_model(const TrainConfig* cfg, int vocab_size);

#endif
