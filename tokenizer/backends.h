/* backends.h: what tokenizer.c dispatches to. Not part of the public API.
 *
 * ByteTable (char_tokenizer.c) serves the char and byte backends: a table of
 * up to 256 byte values, id i <-> byte id_to_byte[i].
 * SpmModel (sentencepiece_shim.cc, or sentencepiece_none.c in a build without
 * libsentencepiece) wraps a SentencePiece processor behind plain C calls.
 * Like the public API, nothing here prints or exits; errors go into err.
 */
#ifndef TOKENIZER_BACKENDS_H
#define TOKENIZER_BACKENDS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- char and byte ---- */
typedef struct {
    int vocab_size;
    unsigned char id_to_byte[256];
    int byte_to_id[256];  /* -1: byte not in the vocabulary */
} ByteTable;

/* The sorted distinct bytes of text (char). */
void bytetable_from_text(ByteTable* t, const unsigned char* text, size_t len);
/* All 256 bytes, id = byte (byte). */
void bytetable_all(ByteTable* t);
/* From stored vocabulary bytes, which must be sorted and distinct. */
int bytetable_from_bytes(ByteTable* t, const unsigned char* bytes, size_t n, const char* name, char* err,
                         size_t errlen);
long bytetable_encode(const ByteTable* t, const unsigned char* text, size_t len, uint16_t* ids, size_t cap,
                      char* err, size_t errlen);
char* bytetable_decode(const ByteTable* t, const uint16_t* ids, size_t n, size_t* out_len, char* err,
                       size_t errlen);

/* ---- sentencepiece ---- */
typedef struct SpmModel SpmModel;

int spm_available(void);
/* Train in-process from text held in memory (unigram when `unigram`, else BPE). */
SpmModel* spm_train(const unsigned char* text, size_t len, int vocab_size, int unigram, char* err, size_t errlen);
/* From a serialised ModelProto (the bytes of a .model file). */
SpmModel* spm_load(const unsigned char* proto, size_t len, char* err, size_t errlen);
/* The serialised ModelProto, malloc'd; NULL when out of memory. */
unsigned char* spm_serialize(const SpmModel* m, size_t* len);
void spm_free(SpmModel* m);
int spm_vocab_size(const SpmModel* m);
long spm_encode(const SpmModel* m, const unsigned char* text, size_t len, uint16_t* ids, size_t cap, char* err,
                size_t errlen);
char* spm_decode(const SpmModel* m, const uint16_t* ids, size_t n, size_t* out_len, char* err, size_t errlen);
/* The piece as the library names it (valid while m lives), or NULL if id is out of range. */
const char* spm_piece(const SpmModel* m, int id);
/* The id of a piece, or -1 if the vocabulary has no such piece. */
int spm_piece_to_id(const SpmModel* m, const char* piece);

#ifdef __cplusplus
}
#endif

#endif
