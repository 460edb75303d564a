/* fuzz_sentencepiece.c: libFuzzer target for the SentencePiece model loader
 * (spm_load in tokenizer/sentencepiece_shim.cc, through libsentencepiece's
 * LoadFromSerializedProto; in an SPM=0 build, the stub's refusal).
 *
 * The input is a serialised ModelProto, the bytes of a .model file. An accepted
 * model is wrapped in a tokenizer file (the "ETOK" header, model type BPE) and
 * read by tokenizer_deserialize, then used as fuzz_exercise_tokenizer describes.
 * The library itself is not instrumented: ASan sees its crashes, not its
 * out-of-bounds reads, and coverage guides the search through the shim only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tokenizer/backends.h"
#include "tokenizer/tokenizer.h"
#include "util/utils.h"

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    char err[1024] = "";
    SpmModel* m = spm_load(data, size, err, sizeof err);
    if (!m) {
        fuzz_check_refusal_has_message(err);
        return 0;
    }
    int vocab = spm_vocab_size(m);
    spm_free(m);
    /* "ETOK", version 3, kind sentencepiece, vocab_size; then the model type, the proto
     * and the checksum: fnv1a64 of all before it, little-endian */
    uint32_t header[5] = {0x4b4f5445u, 3u, (uint32_t)TOKENIZER_SENTENCEPIECE, (uint32_t)vocab, (uint32_t)SPM_BPE};
    size_t body = sizeof header + size;
    unsigned char* file = malloc(body + 8);
    memcpy(file, header, sizeof header);
    memcpy(file + sizeof header, data, size);
    uint64_t sum = fnv1a64(file, body);
    for (int i = 0; i < 8; i++) file[body + i] = (unsigned char)(sum >> (8 * i));
    Tokenizer* t = tokenizer_deserialize(file, body + 8, "fuzz.tokenizer", err, sizeof err);
    if (!t) fprintf(stderr, "%s\n", err);
    fuzz_check(t != NULL, "a model spm_load accepts makes a tokenizer file that loads");
    fuzz_exercise_tokenizer(t, data, size);
    tokenizer_free(t);
    free(file);
    return 0;
}
