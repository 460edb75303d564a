/* utils.h: checked allocation and file I/O, a seeded RNG, timing.
 *
 * Every wrapper that can fail on outside input reports the file and the
 * operation, then exits; callers never see a NULL or a short read.
 * Exit codes used across the project: EXIT_BAD_INPUT (2) for a bad config,
 * bad data or bad command line; EXIT_IO_FAILURE (1) for a failing system call;
 * EXIT_NON_FINITE (3) when training produced a NaN or an Inf. ./train stopped by
 * SIGINT, SIGTERM or SIGHUP exits with 128 + the signal's number, as a shell reports it.
 */
#ifndef UTILS_H
#define UTILS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { EXIT_IO_FAILURE = 1, EXIT_BAD_INPUT = 2, EXIT_NON_FINITE = 3 };

/* For functions that report instead of exiting: write the message into err
 * (when err is not NULL) and return -1, so `return errorf(err, errlen, ...)`. */
int errorf(char* err, size_t errlen, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

/* Print "error: <message>" on stderr and exit with `code`. */
_Noreturn void die(int code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

void* xmalloc(size_t bytes, const char* what);       /* never returns NULL */
void* xcalloc(size_t count, size_t size, const char* what);
FILE* xfopen(const char* path, const char* mode);   /* dies naming path and errno */
void xfread(void* buf, size_t size, size_t count, FILE* f, const char* path);
void xfwrite(const void* buf, size_t size, size_t count, FILE* f, const char* path);
/* fflush + fsync + fclose, each checked: data is on disk when this returns. */
void xfclose_synced(FILE* f, const char* path);

/* Whole file into memory; *len receives its size. Dies if missing or unreadable. */
unsigned char* read_file(const char* path, size_t* len);
/* A new file for writing beside path, named path.<pid>.tmp (path.<pid>-<n>.tmp when a
 * file of that name is left over): every writer of path has a temporary of its own,
 * so two processes writing the same file never write into each other's. Created with
 * O_EXCL and mode 0666 (the umask applies, as for fopen). Returns the stream and its
 * name in tmp (cap bytes), or NULL with errno set. Every temporary this project
 * writes ends in ".tmp". */
FILE* create_temp_beside(const char* path, char* tmp, size_t cap);
/* Write `len` bytes to `path` through create_temp_beside's file + fsync + rename, so a
 * crash never leaves a half-written file under the final name. */
void write_file_atomic(const char* path, const void* data, size_t len);
/* The same without exiting: -1 with a message in err (the library's style). */
int write_file_checked(const char* path, const void* data, size_t len, char* err, size_t errlen);
/* mkdir -p; dies with the path on failure. */
void make_dirs(const char* path);
int make_dirs_checked(const char* path, char* err, size_t errlen);
int file_exists(const char* path);
/* fsync the directory that holds path, so that a rename into it survives a crash. */
void fsync_parent_dir(const char* path);
/* rm -r: path and, for a directory, everything under it (symbolic links are removed,
 * not followed). 0, or -1 with a message naming the entry that could not be removed. */
int remove_tree(const char* path, char* err, size_t errlen);
/* snprintf that dies instead of silently truncating (paths built from config values). */
void xsnprintf(char* out, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- RNG: PCG32 (O'Neill 2014), fixed-width so streams are portable ---- */
typedef struct { uint64_t state, inc; } Rng;
void rng_seed(Rng* r, uint64_t seed, uint64_t stream);
uint32_t rng_u32(Rng* r);
uint32_t rng_below(Rng* r, uint32_t bound);   /* uniform in [0, bound), unbiased */
float rng_uniform(Rng* r);                    /* uniform in [0, 1) */
float rng_normal(Rng* r);                     /* N(0, 1) by Box-Muller */

double now_seconds(void);                     /* monotonic clock */
/* The memory this process can have, in bytes: the least of physical RAM, the
 * cgroup's memory.max (a container's limit) and RLIMIT_AS (ulimit -v). *what
 * receives which of the three it is, for messages. */
double memory_limit_bytes(const char** what);
/* FNV-1a, 64 bits: fnv1a64(data) = fnv1a64_update(FNV1A64_BASIS, data), and a hash of
 * several pieces feeds each piece to fnv1a64_update in turn. The checksum of every
 * file this project writes. */
#define FNV1A64_BASIS 14695981039346656037ULL
uint64_t fnv1a64(const void* data, size_t len);
uint64_t fnv1a64_update(uint64_t hash, const void* data, size_t len);
/* SplitMix64's finaliser: a bijection of 64-bit words that scatters nearby inputs
 * (seeds RNG streams; a counter-based hash for dropout masks). */
uint64_t mix64(uint64_t z);

#endif
