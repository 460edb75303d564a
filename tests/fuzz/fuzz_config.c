/* fuzz_config.c: libFuzzer target for config.c: config file text and --key=value
 * overrides.
 *
 * The input is a config file in which every line that starts with "--" is taken
 * out and applied, in order, as a command-line override after the rest is loaded
 * (config_load_text, config_apply_override, config_validate: what
 * config_from_args does with a file). An accepted config must read back as
 * itself: the text config_write makes of it loads and validates, and writes the
 * same text again (the promise of config.conf in every out_dir). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/config.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    fuzz_setup();
    return 0;
}

static char* written(const TrainConfig* cfg) {
    char* text = NULL;
    size_t len = 0;
    FILE* f = open_memstream(&text, &len);
    fuzz_check(f != NULL, "open_memstream");
    config_write(cfg, f);
    fuzz_check(fclose(f) == 0, "config_write into memory");
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    /* split: file lines into `file`, "--" lines into `overrides` (each NUL-terminated) */
    char* file = malloc(size + 1);
    char* overrides = malloc(size + 1);
    size_t file_len = 0, over_len = 0;
    int n_overrides = 0;
    for (size_t at = 0; at < size;) {
        const uint8_t* nl = memchr(data + at, '\n', size - at);
        size_t n = (nl ? (size_t)(nl - data) : size) - at;
        if (n >= 2 && data[at] == '-' && data[at + 1] == '-') {
            memcpy(overrides + over_len, data + at, n);
            over_len += n;
            overrides[over_len++] = 0;
            n_overrides++;
        } else {
            memcpy(file + file_len, data + at, n + (nl != NULL));
            file_len += n + (nl != NULL);
        }
        at += n + (nl != NULL);
    }

    TrainConfig* cfg = malloc(sizeof *cfg);
    char err[CONFIG_ERR_MAX] = "";
    config_defaults(cfg);
    int rc = config_load_text(cfg, file, file_len, "fuzz.conf", err, sizeof err);
    const char* o = overrides;
    for (int i = 0; i < n_overrides && rc == 0; i++, o += strlen(o) + 1)
        rc = config_apply_override(cfg, o, err, sizeof err);
    if (rc == 0) rc = config_validate(cfg, err, sizeof err);

    if (rc != 0) {
        fuzz_check(rc == -1, "config functions return 0 or -1");
        fuzz_check_refusal_has_message(err);
    } else {
        GPTConfig model = config_model(cfg, 65);
        fuzz_check(model.n_embd % model.n_head == 0 && model.embed_scale > 0, "a valid config makes a valid model");
        char* text = written(cfg);
        TrainConfig* again = malloc(sizeof *again);
        config_defaults(again);
        rc = config_load_text(again, text, strlen(text), "written.conf", err, sizeof err);
        if (rc == 0) rc = config_validate(again, err, sizeof err);
        if (rc != 0) fprintf(stderr, "written config:\n%s\nrefused: %s\n", text, err);
        fuzz_check(rc == 0, "the written config loads again");
        char* text2 = written(again);
        if (strcmp(text, text2) != 0) fprintf(stderr, "written:\n%s\nread back and written again:\n%s\n", text, text2);
        fuzz_check(strcmp(text, text2) == 0, "the written config reads back as itself");
        free(text2);
        free(again);
        free(text);
    }
    free(cfg);
    free(file);
    free(overrides);
    return 0;
}
