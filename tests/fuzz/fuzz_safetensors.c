/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (st_parse).
 *
 * The input is a whole file. When it parses, every F32 tensor it lists is read
 * back with st_read_f32 under its own shape (and must come out as the bytes of
 * its range), a wrong shape and other dtypes are refused with a message, and
 * every metadata key finds its value. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "formats/safetensors.h"

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    fuzz_setup();
    return 0;
}

static void exercise_tensor(const StFile* f, const StTensor* t) {
    char err[1024] = "";
    fuzz_check(st_find(f, t->name) == t, "st_find finds each tensor (names are unique)");
    fuzz_check(t->begin <= t->end && t->end <= f->len - f->data_start, "a tensor's range lies in the data section");
    size_t bytes = t->end - t->begin;
    float* out = malloc(bytes + 1);
    int rc = st_read_f32(f, t->name, out, t->ndim, t->shape, err, sizeof err);
    if (strcmp(t->dtype, "F32") != 0) {
        fuzz_check(rc == -1, "st_read_f32 refuses other dtypes");
        fuzz_check_refusal_has_message(err);
    } else {
        if (rc != 0) fprintf(stderr, "%s\n", err);
        fuzz_check(rc == 0, "an F32 tensor reads under its own shape");
        fuzz_check(memcmp(out, f->buf + f->data_start + t->begin, bytes) == 0, "st_read_f32 copies the tensor's bytes");
        int64_t other[ST_MAX_DIMS + 1];
        memcpy(other, t->shape, sizeof t->shape);
        other[t->ndim] = 2;  /* one more dimension: another shape */
        err[0] = 0;
        fuzz_check(st_read_f32(f, t->name, out, t->ndim + 1, other, err, sizeof err) == -1,
                   "st_read_f32 refuses another shape");
        fuzz_check_refusal_has_message(err);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    unsigned char* buf = malloc(size ? size : 1);
    if (size) memcpy(buf, data, size);
    StFile f;
    char err[1024] = "";
    if (st_parse(&f, buf, size, "fuzz.safetensors", err, sizeof err) != 0) {  /* buf is freed */
        fuzz_check_refusal_has_message(err);
        fuzz_check(f.buf == NULL && f.n_tensors == 0, "a refused file is left empty");
        st_free(&f);
        return 0;
    }
    for (int i = 0; i < f.n_tensors; i++) exercise_tensor(&f, &f.tensors[i]);
    for (int i = 0; i < f.n_meta; i++)
        fuzz_check(st_meta(&f, f.meta_keys[i]) == f.meta_values[i], "st_meta finds each key (keys are unique)");
    err[0] = 0;
    fuzz_check(st_read_f32(&f, "\xff (not UTF-8: no tensor has this name)", NULL, 0, NULL, err, sizeof err) == -1, "a missing tensor");
    fuzz_check_refusal_has_message(err);
    st_free(&f);
    return 0;
}
