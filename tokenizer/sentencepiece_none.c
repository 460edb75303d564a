/* sentencepiece_none.c: the sentencepiece backend in a build without
 * libsentencepiece (make SPM=0, or the library not installed): every call
 * reports that, so tokenizer = sentencepiece fails with a clear message. */
#include <stdio.h>

#include "tokenizer/backends.h"

#define NO_SPM "this build has no SentencePiece: install libsentencepiece-dev (scripts/install_deps.sh) and rebuild"

struct SpmModel { int unused; };

int spm_available(void) { return 0; }

SpmModel* spm_train(const unsigned char* text, size_t len, int vocab_size, int unigram, char* err, size_t errlen) {
    snprintf(err, errlen, "%s", NO_SPM);
    return NULL;
}

SpmModel* spm_load(const unsigned char* proto, size_t len, char* err, size_t errlen) {
    snprintf(err, errlen, "%s", NO_SPM);
    return NULL;
}

/* No SpmModel can exist in this build, so nothing below is ever reached. */
unsigned char* spm_serialize(const SpmModel* m, size_t* len) { return NULL; }
void spm_free(SpmModel* m) {}
int spm_vocab_size(const SpmModel* m) { return 0; }
long spm_encode(const SpmModel* m, const unsigned char* text, size_t len, uint16_t* ids, size_t cap, char* err,
                size_t errlen) {
    snprintf(err, errlen, "%s", NO_SPM);
    return -1;
}
char* spm_decode(const SpmModel* m, const uint16_t* ids, size_t n, size_t* out_len, char* err, size_t errlen) {
    snprintf(err, errlen, "%s", NO_SPM);
    return NULL;
}
const char* spm_piece(const SpmModel* m, int id) { return NULL; }
int spm_piece_to_id(const SpmModel* m, const char* piece) { return -1; }
