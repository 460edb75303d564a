/* word2vec.h: word2vec's text format of word vectors, read into E.
 *
 *   V C                      the header: how many words, how many numbers each
 *   word v1 v2 ... vC        one line per word
 *
 * `./embeddings OUT_DIR export --format=word2vec` writes E this way, a word being
 * the token's printable piece (tokenizer_piece, with a space written \x20); the
 * reader maps words back to ids through the same form (tokenizer_piece_to_id). */
#ifndef WORD2VEC_H
#define WORD2VEC_H

#include <stddef.h>

#include "tokenizer/tokenizer.h"

/* E (V, C) = the vectors of the file at path, row id = the word's token id. The
 * file must hold exactly this vocabulary: V words of C numbers each, every token
 * once. Returns 0, or -1 with a message naming the file and line (and the word
 * or number) in err; E may then hold part of the file. */
int word2vec_read(const char* path, const Tokenizer* tok, float* E, int V, int C, char* err, size_t errlen);

#endif
