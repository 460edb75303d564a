/* word2vec.c: word2vec's text format read into E (see word2vec.h). */
#include "formats/word2vec.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utils.h"

/* The next blank-separated field of *s (spaces and tabs), NUL-terminated in
 * place, or NULL at the end of the line. */
static char* next_field(char** s) {
    char* p = *s + strspn(*s, " \t\r\n");
    if (!*p) return NULL;
    char* end = p + strcspn(p, " \t\r\n");
    if (*end) *end++ = 0;
    *s = end;
    return p;
}

/* The lines after the header: every token once, C finite numbers each. */
static int read_rows(FILE* f, const char* path, const Tokenizer* tok, float* E, int V, int C, unsigned char* seen,
                     char* err, size_t errlen) {
    char* line = NULL;
    size_t cap = 0;
    long lineno = 1, rows = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        char* s = line;
        char* word = next_field(&s);
        if (!word) continue;  /* a blank line, as at the end of some files */
        int id = tokenizer_piece_to_id(tok, word);
        if (id < 0) {
            rc = errorf(err, errlen, "%s:%ld: '%s' is not a token of this run's vocabulary (%s): the file was "
                        "exported from another tokenizer", path, lineno, word, tokenizer_describe(tok));
            break;
        }
        if (seen[id]) {
            rc = errorf(err, errlen, "%s:%ld: token '%s' appears a second time", path, lineno, word);
            break;
        }
        seen[id] = 1;
        rows++;
        for (int c = 0; c < C && rc == 0; c++) {
            char* field = next_field(&s);
            char* end = NULL;
            errno = 0;
            float v = field ? strtof(field, &end) : 0.0f;
            if (!field)
                rc = errorf(err, errlen, "%s:%ld: token '%s' has %d numbers, the header says %d", path, lineno, word,
                            c, C);
            else if (*end || errno == ERANGE || !isfinite(v))
                rc = errorf(err, errlen, "%s:%ld: token '%s': value %d is '%s', not a finite 32-bit float", path,
                            lineno, word, c + 1, field);
            else E[(size_t)id * C + c] = v;
        }
        if (rc == 0 && next_field(&s))
            rc = errorf(err, errlen, "%s:%ld: token '%s' has more than the header's %d numbers", path, lineno, word, C);
    }
    if (rc == 0 && ferror(f)) rc = errorf(err, errlen, "%s: read error: %s", path, strerror(errno));
    free(line);
    if (rc == 0 && rows != V) {
        int missing = 0;
        while (seen[missing]) missing++;
        char piece[64];
        if (tokenizer_piece(tok, missing, piece, sizeof piece) < 0) snprintf(piece, sizeof piece, "<%d>", missing);
        rc = errorf(err, errlen, "%s: %ld of the vocabulary's %d tokens have vectors; token %d '%s' has none", path,
                    rows, V, missing, piece);
    }
    return rc;
}

int word2vec_read(const char* path, const Tokenizer* tok, float* E, int V, int C, char* err, size_t errlen) {
    FILE* f = fopen(path, "r");
    if (!f) return errorf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    long file_v = 0, file_c = 0;
    char tail;
    char header[128];
    int rc = 0;
    if (!fgets(header, sizeof header, f) || sscanf(header, "%ld %ld %c", &file_v, &file_c, &tail) != 2 ||
        file_v < 1 || file_c < 1)
        rc = errorf(err, errlen, "%s:1: expected word2vec's header line \"VOCAB DIMENSIONS\" (as `./embeddings "
                    "OUT_DIR export --format=word2vec` writes it)", path);
    else if (file_v != V || file_c != C)
        rc = errorf(err, errlen, "%s:1: the file holds %ld tokens x %ld dimensions; this model's E is %d x %d "
                    "(vocab_size x n_embd)", path, file_v, file_c, V, C);
    unsigned char* seen = rc == 0 ? calloc((size_t)V, 1) : NULL;
    if (rc == 0 && !seen) rc = errorf(err, errlen, "%s: out of memory", path);
    if (rc == 0) rc = read_rows(f, path, tok, E, V, C, seen, err, errlen);
    free(seen);
    fclose(f);
    return rc;
}
