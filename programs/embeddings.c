/* embeddings.c: look at a trained E.
 * Usage: ./embeddings OUT_DIR COMMAND ...   or   ./embeddings explain [--digits=N]
 *   neighbors TOKEN [--k=K]                   nearest tokens by cosine, with scores
 *   analogy A B C [--k=K]                     tokens nearest to B - A + C
 *   export --format=tsv|word2vec --out=PATH   TensorBoard projector files (PATH/vectors.tsv +
 *                                             PATH/metadata.tsv) or word2vec's text format
 *                                             (the file PATH); missing folders are made
 *   pca [--dims=2]                            each token's coordinates on E's principal axes, CSV
 *   html --out=FILE.html                      one self-contained page that plays the run's snapshots
 *                                             of E (scripts/embeddings_html.py builds it)
 * --step=S (neighbors, analogy, export, pca): E of the snapshot OUT_DIR/embeddings/E_<S>.safetensors
 * instead of the checkpoint's, the tokenizer still the checkpoint's.
 * OUT_DIR is a checkpoint directory (a run's out_dir, or out_dir/last). Tokens are written
 * readably: tokenizer_piece's escapes (\n, \t, \xHH, SentencePiece's U+2581 for a space),
 * and a bare space as \x20 so every token is one word. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "embed/embed_log.h"
#include "embed/embed_metrics.h"
#include "embed/explain.h"
#include "util/utils.h"

enum { TOKEN_MAX = 256 };

static void usage(FILE* f) {
    fprintf(f, "usage: ./embeddings OUT_DIR COMMAND ...   or   ./embeddings explain [--digits=N]\n"
               "  neighbors TOKEN [--k=K]                   nearest tokens by cosine (default k 10)\n"
               "  analogy A B C [--k=K]                     tokens nearest to B - A + C\n"
               "  export --format=tsv|word2vec --out=PATH   tsv: PATH/vectors.tsv + PATH/metadata.tsv\n"
               "                                            (TensorBoard's projector); word2vec: one text file;\n"
               "                                            missing folders are made\n"
               "  pca [--dims=2]                            coordinates on E's principal axes, as CSV\n"
               "  html --out=FILE.html                      one self-contained page that plays the run's snapshots of E:\n"
               "                                            points on two fixed principal axes, neighbours, curves\n"
               "--step=S (neighbors, analogy, export, pca): E of the snapshot OUT_DIR/embeddings/E_<S>.safetensors\n"
               "instead of the checkpoint's.\n"
               "Tokens are written as printed by the tokenizer (\\n, \\t, \\xHH; a space as \\x20).\n"
               "explain: one training step of a tiny GPT told from E's side, every number from this project's\n"
               "kernels (--digits: significant digits, default 4; 9 prints floats exactly).\n");
}

/* The token as one readable word. */
static void readable(const Tokenizer* tok, int id, char* out, size_t cap) {
    char piece[TOKEN_MAX];
    if (tokenizer_piece(tok, id, piece, sizeof piece) < 0) snprintf(piece, sizeof piece, "<%d>", id);
    size_t n = 0;
    for (const char* p = piece; *p && n + 5 < cap; p++) {
        if (*p == ' ') n += (size_t)snprintf(out + n, cap - n, "\\x20");
        else out[n++] = *p;
    }
    out[n] = 0;
}

/* A token given on the command line: its piece, or its readable form. */
static int find_token(const Tokenizer* tok, const char* arg) {
    int id = tokenizer_piece_to_id(tok, arg);
    char word[TOKEN_MAX];
    for (int v = 0; v < tokenizer_vocab_size(tok) && id < 0; v++) {
        readable(tok, v, word, sizeof word);
        if (strcmp(word, arg) == 0) id = v;
    }
    if (id < 0) die(EXIT_BAD_INPUT, "token '%s' is not in the vocabulary (write tokens as `./embeddings OUT_DIR pca` lists them)", arg);
    return id;
}

static long option(int argc, char** argv, int from, const char* name, long fallback, long lo, long hi) {
    size_t n = strlen(name);
    for (int i = from; i < argc; i++)
        if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') {
            char* end;
            errno = 0;
            long v = strtol(argv[i] + n + 1, &end, 10);
            if (!argv[i][n + 1] || *end || errno || v < lo || v > hi)
                die(EXIT_BAD_INPUT, "%s: expected an integer in [%ld, %ld]", argv[i], lo, hi);
            return v;
        }
    return fallback;
}

static const char* string_option(int argc, char** argv, int from, const char* name) {
    size_t n = strlen(name);
    for (int i = from; i < argc; i++)
        if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') return argv[i] + n + 1;
    return NULL;
}

static void print_neighbours(const float* E, int V, int C, const float* query, const int* skip, int n_skip, int k,
                             const Tokenizer* tok) {
    int* ids = xmalloc(sizeof(int) * (size_t)(k + n_skip), "neighbours");
    float* scores = xmalloc(sizeof(float) * (size_t)(k + n_skip), "scores");
    int n = nearest_rows(E, V, C, query, -1, k + n_skip, ids, scores), shown = 0;
    char word[TOKEN_MAX];
    for (int j = 0; j < n && shown < k; j++) {
        int skipped = 0;
        for (int s = 0; s < n_skip; s++) skipped |= ids[j] == skip[s];
        if (skipped) continue;
        readable(tok, ids[j], word, sizeof word);
        printf("%-12s %.4f\n", word, scores[j]);
        shown++;
    }
    free(ids);
    free(scores);
}

/* The folders a file path names, made as tsv's PATH is: both formats write into
 * folders that do not exist yet. */
static void make_parent_dirs(const char* path) {
    const char* slash = strrchr(path, '/');
    if (!slash || slash == path) return;
    char dir[4096];
    xsnprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    make_dirs(dir);
}

static FILE* create(const char* path) {
    FILE* f = fopen(path, "w");
    if (!f) die(EXIT_IO_FAILURE, "cannot create %s: %s", path, strerror(errno));
    return f;
}

/* --step=S: E (V x C, malloc'd) from the run's snapshot of step S, so that any step's
 * neighbours can be asked for, as the html page shows them. */
static float* snapshot_E(const char* out_dir, long step, int V, int C) {
    char path[4096], err[4352];
    embed_snapshot_path(path, sizeof path, out_dir, step);
    if (!file_exists(path))
        die(EXIT_BAD_INPUT, "--step=%ld: no snapshot %s (the run's out_dir holds embeddings/E_<step>.safetensors "
            "every embed_snapshot_interval steps)", step, path);
    StFile f;
    float* E = xmalloc(sizeof(float) * (size_t)V * C, "snapshot");
    int64_t shape[2] = {V, C};
    if (st_load(&f, path, err, sizeof err) != 0 || st_read_f32(&f, "wte", E, 2, shape, err, sizeof err) != 0)
        die(EXIT_BAD_INPUT, "%s", err);
    st_free(&f);
    return E;
}

/* A snapshot's file name, E_<digits>.safetensors, as ./train writes them. */
static int is_snapshot_name(const char* name) {
    const char* suffix = ".safetensors";
    size_t n = strlen(name), s = strlen(suffix);
    if (n <= 2 + s || strncmp(name, "E_", 2) != 0 || strcmp(name + n - s, suffix) != 0) return 0;
    for (size_t i = 2; i < n - s; i++)
        if (name[i] < '0' || name[i] > '9') return 0;
    return 1;
}

/* html: the page is built by scripts/embeddings_html.py (numpy), beside this program.
 * What the command line names is checked here first, so that a mistake gets its
 * message (exit 2) before Python starts: the run's folder, its snapshots, and that
 * --out can be written (a temporary made beside it and removed; missing folders are
 * made, as export makes them). The script writes the page through a temporary and a
 * rename, so FILE.html is never half-written. */
static int html_page(const char* out_dir, int argc, char** argv) {
    struct stat st;
    if (stat(out_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        die(EXIT_BAD_INPUT, "html: %s is not a directory (give a run's out_dir)", out_dir);
    char path[4096], tmp[4200];
    xsnprintf(path, sizeof path, "%s/embeddings", out_dir);
    DIR* d = opendir(path);
    int snapshots = 0;
    for (struct dirent* e; d && (e = readdir(d));) snapshots += is_snapshot_name(e->d_name);
    if (d) closedir(d);
    if (!snapshots)
        die(EXIT_BAD_INPUT, "html: no snapshots of E in %s (E_<step>.safetensors: train with embed_snapshot_interval "
            "> 0)", path);
    const char* out = string_option(argc, argv, 3, "--out");
    if (!out || !*out) die(EXIT_BAD_INPUT, "html: where to? ./embeddings OUT_DIR html --out=FILE.html");
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) die(EXIT_BAD_INPUT, "html: --out=%s is a directory", out);
    const char* slash = strrchr(out, '/');
    if (slash && slash != out) {
        char dir[4096], err[4352];
        xsnprintf(dir, sizeof dir, "%.*s", (int)(slash - out), out);
        if (make_dirs_checked(dir, err, sizeof err) != 0) die(EXIT_BAD_INPUT, "html: --out=%s: %s", out, err);
    }
    FILE* probe = create_temp_beside(out, tmp, sizeof tmp);
    if (!probe) die(EXIT_BAD_INPUT, "html: --out=%s cannot be written: %s", out, strerror(errno));
    if (fclose(probe) != 0 || remove(tmp) != 0) die(EXIT_IO_FAILURE, "html: %s: %s", tmp, strerror(errno));

    /* the script sits in scripts/ beside the executable (the repository root) */
    char exe[4096], script[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) exe[n] = 0;
    else xsnprintf(exe, sizeof exe, "%s", argv[0]);
    char* cut = strrchr(exe, '/');
    if (cut) *cut = 0;
    else xsnprintf(exe, sizeof exe, ".");
    xsnprintf(script, sizeof script, "%s/scripts/embeddings_html.py", exe);
    if (!file_exists(script)) die(EXIT_IO_FAILURE, "html: cannot find %s, which builds the page", script);
    const char* python = getenv("PYTHON");
    if (!python || !*python) python = "/usr/bin/python3";
    char* args[] = {(char*)python, script, (char*)out_dir, "--out", (char*)out, NULL};
    if (fflush(stdout) != 0) die(EXIT_IO_FAILURE, "cannot write to stdout");
    execv(python, args);
    die(EXIT_IO_FAILURE, "html: cannot run %s (python3 with numpy builds the page; PYTHON= names another): %s", python,
        strerror(errno));
}

int main(int argc, char** argv) {
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    if (argc >= 2 && !strcmp(argv[1], "explain")) {
        explain_embeddings(stdout, (int)option(argc, argv, 2, "--digits", 4, 1, 9));
        return 0;
    }
    if (help || argc < 3) {
        usage(help ? stdout : stderr);
        return help ? 0 : EXIT_BAD_INPUT;
    }
    const char* cmd = argv[2];
    if (!strcmp(cmd, "html")) return html_page(argv[1], argc, argv);  /* the page needs snapshots, not a checkpoint */
    char err[8192];
    GPT model;
    Tokenizer* tok;
    long step;
    if (checkpoint_load_model(argv[1], &model, 0, &tok, &step, err, sizeof err) != 0) die(EXIT_BAD_INPUT, "%s", err);
    const float* E = model.params.wte;
    int V = model.config.vocab_size, C = model.config.n_embd;
    /* options start after the command's own words: a token may look like anything */
    int from = !strcmp(cmd, "analogy") ? 6 : !strcmp(cmd, "neighbors") || !strcmp(cmd, "neighbours") ? 4 : 3;
    long snapshot_step = option(argc, argv, from, "--step", -1, 0, LONG_MAX);
    float* snapshot = snapshot_step >= 0 ? snapshot_E(argv[1], snapshot_step, V, C) : NULL;
    if (snapshot) E = snapshot;
    char word[TOKEN_MAX];

    if (!strcmp(cmd, "neighbors") || !strcmp(cmd, "neighbours")) {
        if (argc < 4) die(EXIT_BAD_INPUT, "neighbors: which token? ./embeddings OUT_DIR neighbors TOKEN [--k=K]");
        int id = find_token(tok, argv[3]), k = (int)option(argc, argv, 4, "--k", 10, 1, V);
        print_neighbours(E, V, C, E + (size_t)id * C, &id, 1, k, tok);
    } else if (!strcmp(cmd, "analogy")) {
        if (argc < 6) die(EXIT_BAD_INPUT, "analogy: ./embeddings OUT_DIR analogy A B C [--k=K] (nearest to B - A + C)");
        int ids[3] = {find_token(tok, argv[3]), find_token(tok, argv[4]), find_token(tok, argv[5])};
        int k = (int)option(argc, argv, 6, "--k", 10, 1, V);
        float* q = xmalloc(sizeof(float) * (size_t)C, "query");
        for (int c = 0; c < C; c++)
            q[c] = E[(size_t)ids[1] * C + c] - E[(size_t)ids[0] * C + c] + E[(size_t)ids[2] * C + c];
        print_neighbours(E, V, C, q, ids, 3, k, tok);  /* the three inputs are not answers */
        free(q);
    } else if (!strcmp(cmd, "export")) {
        const char* format = string_option(argc, argv, 3, "--format");
        const char* out = string_option(argc, argv, 3, "--out");
        if (!format || !out || (strcmp(format, "tsv") && strcmp(format, "word2vec")))
            die(EXIT_BAD_INPUT, "export: ./embeddings OUT_DIR export --format=tsv|word2vec --out=PATH");
        if (!strcmp(format, "tsv")) {
            char vpath[4096], mpath[4096];
            make_dirs(out);
            xsnprintf(vpath, sizeof vpath, "%s/vectors.tsv", out);
            xsnprintf(mpath, sizeof mpath, "%s/metadata.tsv", out);
            FILE* fv = create(vpath);
            FILE* fm = create(mpath);
            for (int v = 0; v < V; v++) {
                for (int c = 0; c < C; c++) fprintf(fv, c ? "\t%.9g" : "%.9g", E[(size_t)v * C + c]);
                fputc('\n', fv);
                readable(tok, v, word, sizeof word);
                fprintf(fm, "%s\n", word);
            }
            xfclose_synced(fv, vpath);
            xfclose_synced(fm, mpath);
            printf("wrote %s and %s: %d tokens x %d dimensions\n", vpath, mpath, V, C);
        } else {
            make_parent_dirs(out);
            FILE* f = create(out);
            fprintf(f, "%d %d\n", V, C);  /* word2vec's text format: a header, then "word v1 ... vC" */
            for (int v = 0; v < V; v++) {
                readable(tok, v, word, sizeof word);
                fputs(word, f);
                for (int c = 0; c < C; c++) fprintf(f, " %.9g", E[(size_t)v * C + c]);
                fputc('\n', f);
            }
            xfclose_synced(f, out);
            printf("wrote %s: %d tokens x %d dimensions (word2vec text format)\n", out, V, C);
        }
    } else if (!strcmp(cmd, "pca")) {
        int dims = (int)option(argc, argv, 3, "--dims", 2, 1, C);
        double* mean = xmalloc(sizeof(double) * (size_t)C, "mean");
        double* basis = xmalloc(sizeof(double) * (size_t)dims * C, "basis");
        pca_basis(E, V, C, dims, mean, basis);
        printf("token");
        for (int d = 0; d < dims; d++) printf(",pc%d", d + 1);
        printf("\n");
        for (int v = 0; v < V; v++) {
            readable(tok, v, word, sizeof word);
            printf("\"");  /* CSV: the token quoted, its quotes doubled */
            for (const char* p = word; *p; p++) {
                if (*p == '"') putchar('"');
                putchar(*p);
            }
            printf("\"");
            for (int d = 0; d < dims; d++) {
                double x = 0.0;
                for (int c = 0; c < C; c++) x += (E[(size_t)v * C + c] - mean[c]) * basis[(size_t)d * C + c];
                printf(",%.6g", x);
            }
            printf("\n");
        }
        free(mean);
        free(basis);
    } else {
        die(EXIT_BAD_INPUT, "unknown command '%s' (neighbors, analogy, export, pca, html; ./embeddings --help)", cmd);
    }
    if (fflush(stdout) != 0) die(EXIT_IO_FAILURE, "cannot write to stdout");
    free(snapshot);
    tokenizer_free(tok);
    gpt_free(&model);
    return 0;
}
