/* fuzz_tokens.c: libFuzzer target for the token-file reader of dataloader.c
 * (tokens_parse: the header and id checks of tokens_read, on a buffer).
 *
 * The input is a whole token file. It is read for the vocabulary size its header
 * names (when that is a possible size) and for 65 (nanoGPT's char vocabulary);
 * accepted ids are drawn into a batch as dataloader_next_batch does in training. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataloader.h"
#include "fuzz_common.h"

enum { DEFAULT_VOCAB = 65, B = 2, T = 8 };

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    fuzz_setup();
    return 0;
}

static void read_as(const uint8_t* data, size_t size, int vocab_size) {
    char err[512] = "";
    size_t n = 0;
    uint16_t* ids = tokens_parse(data, size, "fuzz.bin", vocab_size, &n, err, sizeof err);
    if (!ids) {
        fuzz_check_refusal_has_message(err);
        return;
    }
    fuzz_check(size == TOKENS_HEADER_INTS * sizeof(int32_t) + n * sizeof(uint16_t), "the count matches the size");
    for (size_t i = 0; i < n; i++) fuzz_check(ids[i] < vocab_size, "accepted ids lie in the vocabulary");
    if (n >= (size_t)T + 1) {  /* enough for a window: draw a batch, as training does */
        DataLoader dl = {.path = "fuzz.bin", .tokens = ids, .n = n};
        Rng rng;
        rng_seed(&rng, 1337, 1);
        int inputs[B * T], targets[B * T];
        dataloader_next_batch(&dl, &rng, inputs, targets, B, T);
        for (int i = 0; i < B * T; i++) fuzz_check(inputs[i] < vocab_size && targets[i] < vocab_size, "batch ids");
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    int32_t named = 0;
    if (size >= (TOKENS_SLOT_VOCAB + 1) * sizeof(int32_t))
        memcpy(&named, data + TOKENS_SLOT_VOCAB * sizeof(int32_t), sizeof named);
    if (named >= 1 && named <= 65536 && named != DEFAULT_VOCAB) read_as(data, size, named);
    read_as(data, size, DEFAULT_VOCAB);
    return 0;
}
