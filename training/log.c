/* log.c: log.csv's rows, and the truncation of a run's CSV files on resume (see log.h). */
#include "training/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/utils.h"

void csv_truncate(const char* path, const char* header, long step) {
    if (!file_exists(path)) {
        FILE* f = xfopen(path, "w");
        fprintf(f, "%s\n", header);
        xfclose_synced(f, path);
        printf("warning: resume: %s was missing; it starts again from step %ld\n", path, step + 1);
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

void train_log_open(TrainLog* log, const char* path, int append) {
    log->path = path;
    log->f = xfopen(path, append ? "a" : "w");
    if (!append) fprintf(log->f, "%s\n", LOG_HEADER);
}

void train_log_row(TrainLog* log, const LogRow* r) {
    char val[32] = "", eval[64] = ",";  /* val_loss; val_bpb,train_loss_eval */
    if (r->evaluated) {
        snprintf(val, sizeof val, "%.9g", r->val_loss);
        snprintf(eval, sizeof eval, "%.9g,%.9g", r->val_bpb, r->train_loss_eval);
    }
    if (r->step == 0) fprintf(log->f, "0,,,%s,,,,%s,%.3f\n", val, eval, r->elapsed_s);
    else fprintf(log->f, "%ld,%.9g,%.9g,%s,%.9g,%.3f,%.1f,%s,%.3f\n", r->step, r->lr, r->loss, val, r->norm,
                 r->seconds * 1e3, r->tokens / r->seconds, eval, r->elapsed_s);
    if (fflush(log->f) != 0 || ferror(log->f)) die(EXIT_IO_FAILURE, "cannot write %s: %s", log->path, strerror(errno));
}

void train_log_close(TrainLog* log) { xfclose_synced(log->f, log->path); }
