/* fuzz_checkpoint_model.c: libFuzzer target for the model-checkpoint reader
 * (checkpoint_load_model, what ./sample and ./embeddings read).
 *
 * A checkpoint is a directory; the input packs the two files the loader reads:
 *   4 bytes   L, little-endian: the length of tokenizer.bin (cut to what follows)
 *   L bytes   tokenizer.bin
 *   the rest  model.safetensors (its metadata holds the model config)
 * config.json is written for transformers and never read back, so it is not fuzzed.
 * The files go to a private directory under /tmp. An accepted checkpoint is used
 * as ./sample uses it: a few tokens generated from it, and decoded. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/checkpoint.h"
#include "fuzz_common.h"
#include "gpt/sampler.h"

enum { NEW_TOKENS = 3 };

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    fuzz_setup();
    return 0;
}

static void use_model(GPT* m, const Tokenizer* tok) {
    fuzz_check(tokenizer_vocab_size(tok) == m->config.vocab_size, "the tokenizer fits the model");
    SamplerSettings s = {.temperature = 0.8f, .top_k = 3};
    Rng rng;
    rng_seed(&rng, 1337, 0);
    uint16_t prompt = 0, out[1 + NEW_TOKENS];
    size_t n = generate(m, &prompt, 1, NEW_TOKENS, &s, &rng, out);
    fuzz_check(n == 1 + NEW_TOKENS, "generate makes the tokens asked for");
    for (size_t i = 0; i < n; i++) fuzz_check(out[i] < m->config.vocab_size, "generated ids lie in the vocabulary");
    char err[512];
    size_t len;
    char* text = tokenizer_decode(tok, out, n, &len, err, sizeof err);
    fuzz_check(text != NULL, "generated ids decode");
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 4) return 0;
    size_t tok_len = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    if (tok_len > size - 4) tok_len = size - 4;
    const char* dir = fuzz_tmpdir();
    fuzz_write_file(dir, CHECKPOINT_TOKENIZER_FILE, data + 4, tok_len);
    fuzz_write_file(dir, CHECKPOINT_MODEL_FILE, data + 4 + tok_len, size - 4 - tok_len);
    GPT m;
    Tokenizer* tok = NULL;
    long step = -1;
    char err[4096 + 512] = "";
    if (checkpoint_load_model(dir, &m, 0, &tok, &step, err, sizeof err) == 0) {
        fuzz_check(tok != NULL && step >= 0, "an accepted checkpoint has a tokenizer and a step");
        use_model(&m, tok);
        tokenizer_free(tok);
        gpt_free(&m);
    } else {
        fuzz_check_refusal_has_message(err);
    }
    return 0;
}
