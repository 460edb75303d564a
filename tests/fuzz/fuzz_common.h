/* fuzz_common.h: what the libFuzzer targets (tests/fuzz/fuzz_*.c) and the seed
 * generator (make_seeds.c) share: property checks that abort (libFuzzer reports an
 * abort as a crash, with the input), a private temporary directory for the readers
 * that take a path, and the tiny model and tokenizer that the checkpoint targets
 * load against and the seeds are written from. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "formats/checkpoint.h"
#include "model.h"
#include "tokenizer/tokenizer.h"

/* One OpenMP thread: every run of an input does the same thing, and 2 cores
 * are enough for one fuzzer. Each target calls it from LLVMFuzzerInitialize. */
void fuzz_setup(void);

/* Abort with "fuzz property failed: what" unless cond. */
void fuzz_check(int cond, const char* what);
/* A reader that refused (rc != 0 or a NULL result) must say why: err is not empty. */
void fuzz_check_refusal_has_message(const char* err);

/* A directory of its own under /tmp for this process, made on the first call
 * and removed with its files at exit. */
const char* fuzz_tmpdir(void);
/* dir/name := data (no fsync: the file only lives for one input). */
void fuzz_write_file(const char* dir, const char* name, const void* data, size_t len);

/* The tiny model the checkpoint targets load against: vocab FUZZ_VOCAB (the char
 * tokenizer of FUZZ_TOKENIZER_TEXT), block_size 4, 1 layer, 2 heads, n_embd 4,
 * learned positions, tied, with biases. */
#define FUZZ_TOKENIZER_TEXT "abcdefgh\n"
enum { FUZZ_VOCAB = 9 };
GPTConfig fuzz_tiny_config(void);
/* Its tokenizer's file (malloc'd, *len bytes) and the TokenizerId of that file. */
unsigned char* fuzz_tiny_tokenizer_file(size_t* len);
TokenizerId fuzz_tiny_tokenizer_id(void);

/* Use an accepted tokenizer a little: every piece prints and (char and byte) maps
 * back to its id, the serialised form loads again to the same bytes, text
 * encodes and decodes. sample: extra text to encode (the fuzz input). */
void fuzz_exercise_tokenizer(const Tokenizer* t, const unsigned char* sample, size_t sample_len);

#endif
