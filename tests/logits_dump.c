/* logits_dump.c: the logits of a checkpoint for given token ids, as raw float32
 * (n_ids x vocab_size, row-major), for tests/gpt2_check.py to compare with its
 * own GPT-2 forward over the same file.
 * Usage: tests/logits_dump CKPT_DIR ID,ID,... OUT_FILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/checkpoint.h"

int main(int argc, char** argv) {
    if (argc != 4) die(EXIT_BAD_INPUT, "usage: %s CKPT_DIR ID,ID,... OUT_FILE", argv[0]);
    char err[8192];
    GPT model;
    Tokenizer* tok;
    long step;
    if (checkpoint_load_model(argv[1], &model, 1, &tok, &step, err, sizeof err) != 0) die(EXIT_BAD_INPUT, "%s", err);
    int T = model.config.block_size, V = model.config.vocab_size, n = 0;
    int* ids = xmalloc(sizeof(int) * T, "ids");
    for (char* s = argv[2]; *s && n < T; n++) {
        char* end;
        ids[n] = (int)strtol(s, &end, 10);
        if (end == s) die(EXIT_BAD_INPUT, "ids: expected comma-separated integers, got '%s'", argv[2]);
        s = *end == ',' ? end + 1 : end;
    }
    gpt_forward(&model, ids, NULL, 1, n);
    FILE* f = xfopen(argv[3], "wb");
    xfwrite(model.acts.logits, sizeof(float), (size_t)n * V, f, argv[3]);
    xfclose_synced(f, argv[3]);
    printf("%d positions x %d logits from %s (step %ld)\n", n, V, argv[1], step);
    free(ids);
    tokenizer_free(tok);
    gpt_free(&model);
    return 0;
}
