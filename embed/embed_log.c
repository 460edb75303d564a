/* embed_log.c: E's measurements, probes and snapshots during training (embed_log.h). */
#include "embed/embed_log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "embed/embed_metrics.h"
#include "formats/safetensors.h"
#include "training/log.h"
#include "util/utils.h"

/* The probe list "e,T,\n": pieces as tokenizer_piece prints them, comma-separated. */
static void find_probes(EmbedLog* e) {
    char piece[64];
    const char* s = e->cfg->embed_probes;
    while (*s && e->n_probes < EMBED_MAX_PROBES) {
        size_t n = strcspn(s, ",");
        snprintf(piece, sizeof piece, "%.*s", (int)(n < sizeof piece ? n : sizeof piece - 1), s);
        int id = n ? tokenizer_piece_to_id(e->tok, piece) : -1;
        if (id >= 0) e->probes[e->n_probes++] = id;
        else if (n) fprintf(stderr, "note: embed_probes: '%s' is not a token of this vocabulary\n", piece);
        s += n + (s[n] == ',');
    }
}

/* dir/embeddings.csv into e->csv_path, at each use: dir changes when the run's
 * files move (the open file moves with them; only its name for messages changes) */
static void update_csv_path(EmbedLog* e) { xsnprintf(e->csv_path, sizeof e->csv_path, "%s/embeddings.csv", e->dir); }

void embed_log_open(EmbedLog* e, const char* dir, const TrainConfig* cfg, const Tokenizer* tok,
                    const uint16_t* train_tokens, size_t n_train, int append) {
    memset(e, 0, sizeof(*e));
    e->dir = dir;
    e->cfg = cfg;
    e->tok = tok;
    e->V = tokenizer_vocab_size(tok);
    e->C = cfg->n_embd;
    e->freq = xcalloc((size_t)e->V, sizeof(double), "token counts");
    for (size_t i = 0; i < n_train; i++) e->freq[train_tokens[i]] += 1.0;
    TokenizerKind kind = tokenizer_kind(tok);
    if (kind == TOKENIZER_CHAR || kind == TOKENIZER_BYTE) {  /* one byte per token: classes apply */
        e->classes = xmalloc((size_t)e->V * sizeof(int), "token classes");
        for (int v = 0; v < e->V; v++) {
            uint16_t id = (uint16_t)v;
            size_t len;
            char err[128];
            char* text = tokenizer_decode(tok, &id, 1, &len, err, sizeof err);
            e->classes[v] = text && len == 1 ? (int)byte_class((unsigned char)text[0]) : CLASS_NONE;
            free(text);
        }
    }
    if (e->classes && !append)
        printf("E: %d-NN class purity by chance would be %.3f\n", EMBED_KNN, knn_chance_purity(e->classes, e->V));
    find_probes(e);
    update_csv_path(e);
    csv_open(&e->csv, e->csv_path, EMBED_LOG_HEADER, append);
}

/* x in format fmt, or fallback for NAN (a measurement that does not apply). */
static const char* field(double x, const char* fmt, const char* fallback, char* buf, size_t cap) {
    if (isnan(x)) snprintf(buf, cap, "%s", fallback);
    else snprintf(buf, cap, fmt, x);
    return buf;
}

void embed_log_eval(EmbedLog* e, const GPT* model, long step) {
    double t0 = now_seconds();
    EmbeddingStats s;
    const float* E = model->params.wte;
    embedding_stats(E, e->V, e->C, e->freq, e->classes, EMBED_KNN, &s);
    double dt = now_seconds() - t0;
    char a[32], b[32], row[512];
    update_csv_path(e);
    int len = snprintf(row, sizeof row, "%ld,%.6g,%.6g,%s,%.6g,%.6g,%s,%.4f\n", step, s.norm_mean, s.norm_std,
                       field(s.norm_freq_spearman, "%.6g", "", a, sizeof a), s.mean_cosine, s.effective_rank,
                       field(s.knn_purity, "%.6g", "", b, sizeof b), dt);
    if (len < 0 || (size_t)len >= sizeof row) die(EXIT_IO_FAILURE, "%s: step %ld's row is too long", e->csv_path, step);
    csv_append(&e->csv, row, (size_t)len);
    printf("E at step %ld: |e| %.3f +- %.3f, rank corr(|e|, freq) %s, mean cos %.3f, effective rank %.1f of %d, "
           "%d-NN class purity %s\n", step, s.norm_mean, s.norm_std, field(s.norm_freq_spearman, "%.3f", "n/a", a, sizeof a),
           s.mean_cosine, s.effective_rank, e->V < e->C ? e->V : e->C, EMBED_KNN,
           field(s.knn_purity, "%.3f", "n/a", b, sizeof b));
    if (s.mean_cosine > e->cfg->anisotropy_warn)
        fprintf(stderr, "warning: E's rows are collapsing: mean cosine %.3f > anisotropy_warn %.3f (learning rate "
                "too high? too few tokens per row?)\n", s.mean_cosine, e->cfg->anisotropy_warn);
    for (int p = 0; p < e->n_probes; p++) {
        int ids[EMBED_KNN];
        float scores[EMBED_KNN];
        char piece[64];
        int id = e->probes[p];
        int n = nearest_rows(E, e->V, e->C, E + (size_t)id * e->C, id, EMBED_KNN, ids, scores);
        tokenizer_piece(e->tok, id, piece, sizeof piece);
        printf("  '%s' ->", piece);
        for (int j = 0; j < n; j++) {
            tokenizer_piece(e->tok, ids[j], piece, sizeof piece);
            printf(" '%s' %.2f", piece, scores[j]);
        }
        printf("\n");
    }
    e->seconds += now_seconds() - t0;
}

void embed_snapshot_path(char* path, size_t size, const char* out_dir, long step) {
    xsnprintf(path, size, "%s/embeddings/E_%06ld.safetensors", out_dir, step);
}

void embed_log_snapshot(EmbedLog* e, const GPT* model, long step) {
    int interval = e->cfg->embed_snapshot_interval;
    if (interval <= 0 || (step % interval != 0 && step != e->cfg->max_iters)) return;
    double t0 = now_seconds();
    char dir[CONFIG_STR_MAX + 96], path[CONFIG_STR_MAX + 128], value[32], err[CONFIG_STR_MAX + 256];
    xsnprintf(dir, sizeof dir, "%s/embeddings", e->dir);
    make_dirs(dir);
    embed_snapshot_path(path, sizeof path, e->dir, step);
    StWriter* w = st_writer_new();
    int64_t shape[2] = {e->V, e->C};
    snprintf(value, sizeof value, "%ld", step);
    if (!w || st_add_f32(w, "wte", 2, shape, model->params.wte) != 0 || st_add_meta(w, "emergent.step", value) != 0 ||
        st_write(w, path, err, sizeof err) != 0)
        die(EXIT_IO_FAILURE, "cannot write the snapshot %s: %s", path, w ? err : "out of memory");
    st_writer_free(w);
    e->seconds += now_seconds() - t0;
}

void embed_log_close(EmbedLog* e) {
    if (e->csv.path) {
        update_csv_path(e);
        csv_close(&e->csv);
    }
    free(e->freq);
    free(e->classes);
    memset(e, 0, sizeof(*e));
}
