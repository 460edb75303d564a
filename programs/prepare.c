/* prepare.c: text -> tokenizer + token files, without training.
 * Usage: ./prepare CONFIG [--key=value ...]
 * Does what ./train does first (data_prepare in dataloader.c): trains or loads
 * the tokenizer the config names, encodes the text, checks that it decodes back
 * exactly, splits train/val and caches the files in data_dir. A second run with
 * the same text and tokenizer settings finds the cache and changes nothing. */
#include <stdio.h>
#include <string.h>

#include "formats/config.h"
#include "data/dataloader.h"
#include "util/utils.h"

int main(int argc, char** argv) {
    if (argc < 2 || config_wants_help(argc, argv)) {
        FILE* f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: ./prepare CONFIG [--key=value ...]\n"
                   "Prepares (or finds cached) the tokenizer and token files ./train CONFIG would use.\n"
                   "Keys that matter: input, data_dir, tokenizer, vocab_size, spm_model_type, allow_lossy "
                   "(./train --help lists them all).\n");
        return argc < 2 ? EXIT_BAD_INPUT : 0;
    }
    TrainConfig cfg;
    char err[CONFIG_ERR_MAX];
    if (config_from_args(&cfg, argc, argv, err, sizeof err) != 0) die(EXIT_BAD_INPUT, "%s", err);
    PreparedData data;
    data_prepare(&cfg, &data);
    data_print_summary(&cfg, &data, stdout);
    printf("train: %s (%zu bytes of text)\nval:   %s (%zu bytes of text)\ntokenizer: %s\n", data.train_path,
           data.train_bytes, data.val_path, data.val_bytes, data.tokenizer_path);
    return 0;
}
