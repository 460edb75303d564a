/* tokenizer.h: text <-> token ids, one C API for every backend.
 *
 * The library never prints and never exits: functions that can fail return
 * NULL or -1 and write a message into err. The caller owns a Tokenizer and
 * frees it with tokenizer_free.
 * Backends: char (the sorted distinct bytes of the training text, as
 * nanoGPT's shakespeare_char). byte and SentencePiece come with issue 3.
 */
#ifndef TOKENIZER_H
#define TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TOKENIZER_CHAR = 0 } TokenizerKind;
typedef struct Tokenizer Tokenizer;

/* Build a tokenizer of `kind` from the training text. */
Tokenizer* tokenizer_train(TokenizerKind kind, const unsigned char* text, size_t len, char* err, size_t errlen);
/* Serialise to a malloc'd buffer (magic, version, kind, vocab); *len gets its size. */
unsigned char* tokenizer_serialize(const Tokenizer* t, size_t* len);
/* Read back a file written from tokenizer_serialize; checks magic, version, sizes. */
Tokenizer* tokenizer_load(const char* path, char* err, size_t errlen);
void tokenizer_free(Tokenizer* t);

int tokenizer_vocab_size(const Tokenizer* t);
/* Encode len bytes into ids (capacity cap). Returns the number of ids, or -1 with a
 * message naming the byte offset and value that the vocabulary cannot represent. */
long tokenizer_encode(const Tokenizer* t, const unsigned char* text, size_t len, uint16_t* ids, size_t cap,
                      char* err, size_t errlen);
/* Decode n ids into out (capacity cap bytes, NUL-terminated). Returns bytes written
 * (excluding the NUL), or -1 if an id is out of range or out is too small. */
long tokenizer_decode(const Tokenizer* t, const uint16_t* ids, size_t n, char* out, size_t cap);

#endif
