/* log.c: CSV files appended by whole rows, log.csv's rows, and the truncation of a
 * run's CSV files on resume (see log.h). */
#include "training/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/utils.h"

void csv_truncate(const char* path, const char* header, long step) {
    if (!file_exists(path)) {
        FILE* f = xfopen(path, "w");
        fprintf(f, "%s\n", header);
        xfclose_synced(f, path);
        fprintf(stderr, "warning: resume: %s was missing; it starts again from step %ld\n", path, step + 1);
        return;
    }
    size_t len;
    char* text = (char*)read_file(path, &len);
    size_t header_len = strcspn(text, "\n");
    if (header_len != strlen(header) || strncmp(text, header, header_len) != 0)
        die(EXIT_BAD_INPUT, "%s: its header is not '%s' (a log of another version?): move it away to resume", path,
            header);
    size_t keep = header_len + (text[header_len] == '\n');
    while (keep < len) {
        size_t n = strcspn(text + keep, "\n");
        if (text[keep + n] != '\n' || atol(text + keep) > step) break;  /* a torn last row goes too */
        keep += n + 1;
    }
    write_file_atomic(path, text, keep);
    free(text);
}

void csv_open(CsvFile* f, const char* path, const char* header, int append) {
    f->path = path;
    /* O_APPEND: every write lands at the end, where csv_append's cut-back starts */
    f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (append ? 0 : O_TRUNC), 0666);
    if (f->fd < 0) die(EXIT_IO_FAILURE, "cannot open %s for writing: %s", path, strerror(errno));
    if (!append) {
        char line[1024];
        int n = snprintf(line, sizeof line, "%s\n", header);
        csv_append(f, line, (size_t)n);
    }
}

void csv_append(CsvFile* f, const char* row, size_t len) {
    off_t before = lseek(f->fd, 0, SEEK_END);
    if (before < 0) die(EXIT_IO_FAILURE, "%s: lseek failed: %s", f->path, strerror(errno));
    /* One write() holds the whole row; should it come back short (the file size
     * limit falls inside the row), the next write says why it cannot go on. */
    for (size_t done = 0; done < len;) {
        ssize_t n = write(f->fd, row + done, len - done);
        if (n > 0) { done += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        int why = n < 0 ? errno : EIO;
        if (ftruncate(f->fd, before) != 0)
            die(EXIT_IO_FAILURE, "cannot append a row to %s: %s; cutting it back to its last whole row also failed: "
                "%s", f->path, strerror(why), strerror(errno));
        die(EXIT_IO_FAILURE, "cannot append a row to %s: %s (the file keeps its rows up to the last whole one)",
            f->path, strerror(why));
    }
}

void csv_close(CsvFile* f) {
    if (fsync(f->fd) != 0) die(EXIT_IO_FAILURE, "%s: fsync failed: %s", f->path, strerror(errno));
    if (close(f->fd) != 0) die(EXIT_IO_FAILURE, "%s: close failed: %s", f->path, strerror(errno));
    f->fd = -1;
    f->path = NULL;
}

void train_log_open(TrainLog* log, const char* path, int append) { csv_open(&log->csv, path, LOG_HEADER, append); }

/* A row's evaluation columns: val_loss, and val_bpb,train_loss_eval,val_ece (empty when not evaluated). */
static void eval_columns(const LogRow* r, char val[32], char eval[96]) {
    val[0] = '\0';
    snprintf(eval, 96, ",,");
    if (r->evaluated) {
        snprintf(val, 32, "%.9g", r->val_loss);
        snprintf(eval, 96, "%.9g,%.9g,%.9g", r->val_bpb, r->train_loss_eval, r->val_ece);
    }
}

void train_log_row(TrainLog* log, const LogRow* r) {
    char val[32], eval[96], row[512];  /* val_loss; val_bpb,train_loss_eval,val_ece; the row */
    eval_columns(r, val, eval);
    int n;
    if (r->step == 0) n = snprintf(row, sizeof row, "0,,,%s,,,,%s,%.3f\n", val, eval, r->elapsed_s);
    else n = snprintf(row, sizeof row, "%ld,%.9g,%.9g,%s,%.9g,%.3f,%.1f,%s,%.3f\n", r->step, r->lr, r->loss, val,
                      r->norm, r->seconds * 1e3, r->tokens / r->seconds, eval, r->elapsed_s);
    if (n < 0 || (size_t)n >= sizeof row) die(EXIT_IO_FAILURE, "%s: step %ld's row is too long", log->csv.path, r->step);
    csv_append(&log->csv, row, (size_t)n);
}

/* The last row of text (len bytes): 1 when it is step's, ends in '\n' and has
 * LOG_COLUMNS columns; field[i] is then where column i starts. */
enum { LOG_COLUMNS = 11, COL_VAL_LOSS = 3, COL_VAL_BPB = 7, COL_ELAPSED = 10 };
static int last_row_of_step(const char* text, size_t len, long step, size_t field[LOG_COLUMNS]) {
    if (len == 0 || text[len - 1] != '\n') return 0;
    size_t s = len - 1;
    while (s > 0 && text[s - 1] != '\n') s--;
    if (s == 0 || atol(text + s) != step) return 0;  /* s == 0: the header */
    int col = 0;
    field[col++] = s;
    for (size_t i = s; i < len - 1; i++)
        if (text[i] == ',') {
            if (col == LOG_COLUMNS) return 0;
            field[col++] = i + 1;
        }
    return col == LOG_COLUMNS;
}

int train_log_eval_missing(const char* path, long step) {
    if (!file_exists(path)) return 0;
    size_t len, field[LOG_COLUMNS];
    char* text = (char*)read_file(path, &len);
    int missing = last_row_of_step(text, len, step, field) && text[field[COL_VAL_LOSS]] == ',';
    free(text);
    return missing;
}

void train_log_complete_eval(TrainLog* log, const LogRow* r) {
    const char* path = log->csv.path;
    size_t len, field[LOG_COLUMNS];
    csv_close(&log->csv);
    char* text = (char*)read_file(path, &len);
    if (!last_row_of_step(text, len, r->step, field) || text[field[COL_VAL_LOSS]] != ',')
        die(EXIT_IO_FAILURE, "%s: its last row is not step %ld's row without an evaluation", path, r->step);
    char val[32], eval[96];
    eval_columns(r, val, eval);
    /* the row as it was, its evaluation columns filled in: update columns, timing and elapsed_s stay */
    size_t cap = len + 128;
    char* out = xmalloc(cap, "log.csv");
    int n = snprintf(out, cap, "%.*s%s,%.*s%s,%.*s", (int)field[COL_VAL_LOSS], text, val,
                     (int)(field[COL_VAL_BPB] - field[COL_VAL_LOSS + 1]), text + field[COL_VAL_LOSS + 1], eval,
                     (int)(len - field[COL_ELAPSED]), text + field[COL_ELAPSED]);
    if (n < 0 || (size_t)n >= cap) die(EXIT_IO_FAILURE, "%s: step %ld's row is too long", path, r->step);
    /* a whole new file, renamed over the old one: a kill leaves one or the other */
    write_file_atomic(path, out, (size_t)n);
    free(out);
    free(text);
    csv_open(&log->csv, path, LOG_HEADER, 1);
}

void train_log_close(TrainLog* log) { csv_close(&log->csv); }
