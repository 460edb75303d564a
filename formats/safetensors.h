/* safetensors.h: read and write the safetensors format (F32 data only).
 *
 * A file is an 8-byte little-endian header length N, N bytes of a JSON object
 * naming every tensor's dtype, shape and byte range, then the raw data.
 * Nothing here prints or exits: each function that can fail returns -1 (or
 * NULL) with a message in err that starts with the file's name and says what
 * is wrong and where. err may be NULL when the caller does not want it. */
#ifndef SAFETENSORS_H
#define SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

enum { ST_MAX_DIMS = 8 };

/* The two checksums st_write adds to the metadata, each 16 lowercase hex digits of
 * fnv1a64 (utils.h):
 *   ST_CHECKSUM_KEY         over the whole data section;
 *   ST_HEADER_CHECKSUM_KEY  over the header's canonical text: every other metadata
 *                           pair (ST_CHECKSUM_KEY included, so it covers the data too)
 *                           and every tensor's name, dtype, shape and data_offsets,
 *                           sorted (safetensors.c and docs/checkpoints.md define it),
 *                           so that it survives a tool that re-serialises the JSON.
 * The reader verifies each one present. A file whose metadata holds any key that
 * starts with ST_OWN_PREFIX is this project's, and must hold both: a file without
 * them from anywhere else (Hugging Face, Python's safetensors) loads unchecked. */
#define ST_CHECKSUM_KEY "emergent.fnv1a64"
#define ST_HEADER_CHECKSUM_KEY "emergent.header_fnv1a64"
#define ST_OWN_PREFIX "emergent."

typedef struct {
    char* name;                    /* UTF-8, owned by the StFile */
    char dtype[16];                /* "F32", "BF16", ... (only known dtypes parse) */
    int ndim;                      /* 0 .. ST_MAX_DIMS; 0 is a scalar */
    int64_t shape[ST_MAX_DIMS];
    size_t begin, end;             /* byte range, relative to the data section */
} StTensor;

typedef struct {
    unsigned char* buf;            /* the whole file */
    size_t len;
    size_t data_start;             /* 8 + header length */
    StTensor* tensors;             /* in header order */
    int n_tensors;
    char** meta_keys;              /* "__metadata__" pairs, in header order */
    char** meta_values;
    int n_meta;
    char* name;                    /* copy of the name given to st_parse, for messages */
} StFile;

/* ---- reading ---------------------------------------------------------------- */

/* Parse a whole file held in buf (len bytes). Takes ownership of buf on success
 * AND on failure: on failure buf is already freed and *f is left empty, so a
 * later st_free(f) is harmless. name (usually the path) prefixes every message.
 * The header is checked strictly: one JSON object, known dtypes, byte ranges
 * that match the shapes and cover the data section exactly, no duplicates,
 * and the checksums (required when the file is this project's, see above). */
int st_parse(StFile* f, unsigned char* buf, size_t len, const char* name, char* err, size_t errlen);
/* Read the file at path into memory, then st_parse. */
int st_load(StFile* f, const char* path, char* err, size_t errlen);
/* The tensor called name, or NULL. */
const StTensor* st_find(const StFile* f, const char* name);
/* The metadata value for key, or NULL if absent. Owned by f. */
const char* st_meta(const StFile* f, const char* key);
/* Copy tensor `name` into out (product(shape) floats) after checking that it
 * exists, is F32 and has exactly this shape. */
int st_read_f32(const StFile* f, const char* name, float* out, int ndim, const int64_t* shape,
                char* err, size_t errlen);
/* Release everything f owns (including buf) and leave it empty. */
void st_free(StFile* f);

/* ---- writing ---------------------------------------------------------------- */

typedef struct StWriter StWriter;  /* opaque */

StWriter* st_writer_new(void);     /* NULL when out of memory */
/* Record a tensor; data is NOT copied and must stay valid until st_write.
 * -1 on a duplicate or reserved name, invalid UTF-8, ndim outside
 * 0..ST_MAX_DIMS, a negative dimension, a size that overflows, or OOM. */
int st_add_f32(StWriter* w, const char* name, int ndim, const int64_t* shape, const float* data);
/* Record a metadata pair (both copied). -1 on a duplicate key, the reserved
 * ST_CHECKSUM_KEY or ST_HEADER_CHECKSUM_KEY, invalid UTF-8 or OOM. */
int st_add_meta(StWriter* w, const char* key, const char* value);
/* Write the file through a temporary of its own beside path (create_temp_beside:
 * path.<pid>.tmp), fsync, rename to path, fsync the directory. On failure the
 * temporary is removed and path is untouched, except when
 * only the final directory fsync fails: then -1 says so, and path is complete
 * but may not survive a crash. Tensors are laid out in the order added;
 * ST_CHECKSUM_KEY and ST_HEADER_CHECKSUM_KEY are added to the metadata. */
int st_write(StWriter* w, const char* path, char* err, size_t errlen);
void st_writer_free(StWriter* w);  /* NULL is fine */

#endif
