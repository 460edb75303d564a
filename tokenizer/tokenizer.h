/* tokenizer.h: text <-> token ids, one C API for every backend.
 *
 * Backends (TokenizerKind):
 *   char           the sorted distinct bytes of the text, one id each (nanoGPT's
 *                  shakespeare_char); trained from the text, lossless on it.
 *   byte           the 256 byte values, id = byte; needs no training, lossless.
 *   sentencepiece  BPE or unigram trained in-process by libsentencepiece
 *                  (tokenizer/sentencepiece_shim.cc, the project's only C++), with
 *                  byte fallback so every byte of any text has an encoding.
 *
 * The library never prints and never exits: a function that can fail returns
 * NULL or -1 and writes a message into err (errlen bytes). The caller owns a
 * Tokenizer and frees it with tokenizer_free. Ids are uint16, as in the token files.
 */
#ifndef TOKENIZER_H
#define TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TOKENIZER_CHAR = 0, TOKENIZER_BYTE = 1, TOKENIZER_SENTENCEPIECE = 2 } TokenizerKind;
typedef enum { SPM_BPE = 0, SPM_UNIGRAM = 1 } SpmModelType;

enum { TOKENIZER_MAX_VOCAB = 65536 };  /* ids are uint16 */

typedef struct {
    TokenizerKind kind;
    int vocab_size;               /* sentencepiece: the size to train; ignored by char and byte */
    SpmModelType spm_model_type;  /* sentencepiece only */
} TokenizerSpec;

typedef struct Tokenizer Tokenizer;

/* 1 if this build links libsentencepiece (make SPM=0 builds without it). */
int tokenizer_has_sentencepiece(void);

/* Build a tokenizer from training text. */
Tokenizer* tokenizer_train(const TokenizerSpec* spec, const unsigned char* text, size_t len, char* err,
                           size_t errlen);
/* The file format: "ETOK", version (3), kind, vocab_size (4 x uint32), then the backend's
 * payload (char: the vocabulary bytes; byte: none; sentencepiece: the model type as
 * uint32 and the serialised SentencePiece ModelProto, the same bytes as a .model file),
 * then the checksum: fnv1a64 (util/utils.h) of every byte before it, as a
 * little-endian uint64. Integers are little-endian. Version 2 files (no checksum) are
 * refused with a message: the data cache rebuilds its tokenizer, and a checkpoint of
 * that version is refused anyway (its safetensors have no header checksum).
 * tokenizer_serialize returns a malloc'd buffer (NULL when out of memory). */
unsigned char* tokenizer_serialize(const Tokenizer* t, size_t* len);
/* Parse a buffer from tokenizer_serialize; `name` (a path) is used in messages. */
Tokenizer* tokenizer_deserialize(const unsigned char* buf, size_t len, const char* name, char* err, size_t errlen);
/* Read and parse the file at path; *file_hash (unless NULL) receives fnv1a64 of the
 * whole file, the hash a model and a training state record for their tokenizer. */
Tokenizer* tokenizer_load(const char* path, uint64_t* file_hash, char* err, size_t errlen);
/* Write to path through a temporary file, fsync and rename: never a half-written file. */
int tokenizer_save(const Tokenizer* t, const char* path, char* err, size_t errlen);
void tokenizer_free(Tokenizer* t);

TokenizerKind tokenizer_kind(const Tokenizer* t);
int tokenizer_vocab_size(const Tokenizer* t);
/* "char", "byte", "sentencepiece bpe" or "sentencepiece unigram" */
const char* tokenizer_describe(const Tokenizer* t);

/* Encode len bytes into at most cap ids. Returns the number of ids, or -1 with a
 * message (a byte the char vocabulary lacks: its offset and value). No backend
 * makes more ids than bytes, so cap = len always suffices: SentencePiece gives a
 * byte that is not UTF-8 its byte piece (one id; it decodes to U+FFFD), and refuses
 * to encode with a model that would lengthen text (a normaliser or dummy prefix
 * that ./prepare never trains). */
long tokenizer_encode(const Tokenizer* t, const unsigned char* text, size_t len, uint16_t* ids, size_t cap,
                      char* err, size_t errlen);
/* Decode n ids into a malloc'd, NUL-terminated string of *out_len bytes, or NULL
 * with a message (an id outside the vocabulary). */
char* tokenizer_decode(const Tokenizer* t, const uint16_t* ids, size_t n, size_t* out_len, char* err,
                       size_t errlen);

/* The piece of id, made printable: \n, \t, \r, \\ and other control or non-ASCII
 * bytes of char/byte tokens escaped (\xHH); SentencePiece pieces as the library
 * names them (U+2581 marks a space, <0xHH> a fallback byte) with control
 * characters escaped. Returns its length, or -1 if id is out of range or out
 * (cap bytes) is too small. */
int tokenizer_piece(const Tokenizer* t, int id, char* out, size_t cap);
/* The id whose printable piece is `piece` (the inverse of tokenizer_piece), or -1. */
int tokenizer_piece_to_id(const Tokenizer* t, const char* piece);

/* The length of the longest prefix of text that is valid UTF-8: len when all of it is. */
size_t utf8_valid_prefix(const unsigned char* text, size_t len);

/* Whether ids (the encoding of text) decode back to text exactly. Returns 0 if
 * they do. Otherwise 1, with *first_bad the byte offset of the first character
 * that does not come back, *bad_bytes how many bytes of the text sit in
 * characters that do not (each line that fails is re-checked character by
 * character), and err describing the first (offset, line, the character).
 * -1 with a message on an encode/decode error. */
int tokenizer_check_roundtrip(const Tokenizer* t, const unsigned char* text, size_t len, const uint16_t* ids,
                              size_t n, size_t* first_bad, size_t* bad_bytes, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
