/* fuzz_tokenizer.c: libFuzzer target for the tokenizer file reader
 * (tokenizer_deserialize: the "ETOK" header, the char table, the byte
 * tokenizer, and the SentencePiece payload when the kind says so).
 *
 * The input is a whole tokenizer file (tokenizer.bin of a checkpoint, or the
 * .tokenizer of the data cache). An accepted char or byte tokenizer must
 * serialise back to the very same bytes; any accepted tokenizer is used as
 * fuzz_exercise_tokenizer describes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    char err[1024] = "";
    Tokenizer* t = tokenizer_deserialize(data, size, "fuzz.tokenizer", err, sizeof err);
    if (!t) {
        fuzz_check_refusal_has_message(err);
        return 0;
    }
    if (tokenizer_kind(t) != TOKENIZER_SENTENCEPIECE) {
        size_t len;
        unsigned char* buf = tokenizer_serialize(t, &len);
        fuzz_check(buf != NULL && len == size && memcmp(buf, data, size) == 0,
                   "a char/byte tokenizer serialises to the bytes it was read from");
        free(buf);
    }
    fuzz_exercise_tokenizer(t, data, size);
    tokenizer_free(t);
    return 0;
}
