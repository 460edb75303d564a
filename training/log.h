/* log.h: out_dir/log.csv, one row per step, and cutting a run's CSV files back
 * to a checkpoint's step when it resumes.
 *
 * A CSV file grows by whole rows only: each row goes to the file in one write(),
 * and a write that fails (a full disk) cuts the file back to where it was. A kill
 * in the middle of a write can still leave a torn last row, which --resume drops. */
#ifndef TRAIN_LOG_H
#define TRAIN_LOG_H

#include <stdio.h>

/* The first seven columns are those of the first log.csv (scripts keep working);
 * later columns are appended. train_loss is the loss of the step's batch before
 * its update; val_loss, val_bpb (val loss in bits per byte of text, comparable
 * across tokenizers) and train_loss_eval (the same estimate on the train split)
 * are measured after it, at evaluation steps, with val_ece, the expected
 * calibration error of the val predictions (15 bins of the top probability,
 * gpt/evaluate.h). ms_per_step, tokens_per_s and elapsed_s are timing; every
 * other column repeats bit for bit. */
#define LOG_HEADER \
    "step,lr,train_loss,val_loss,grad_norm,ms_per_step,tokens_per_s,val_bpb,train_loss_eval,val_ece,elapsed_s"

typedef struct {
    int fd;
    const char* path;  /* for messages; NULL when not open */
} CsvFile;

typedef struct {
    CsvFile csv;
} TrainLog;

/* One step's row. Step 0 makes no update: its row holds only the evaluation. */
typedef struct {
    long step;
    double lr;
    float loss, norm;             /* of the step's batch, before the update */
    double seconds, tokens;       /* the update's wall time; tokens of the global batch */
    int evaluated;                /* 0: the evaluation columns stay empty */
    float val_loss, train_loss_eval;
    double val_bpb, val_ece;
    double elapsed_s;             /* of the whole run, across resumes */
} LogRow;

/* Keep the header and the rows of steps <= step of a CSV file whose first line
 * must be header: the rows after a checkpoint are about to be run again. A missing
 * file starts again with its header (and a warning); another header ends the run. */
void csv_truncate(const char* path, const char* header, long step);

/* Open path for rows: appended to when append (the caller truncated it with
 * csv_truncate), else created anew holding header. path must outlive the file.
 * Dies naming path and errno. */
void csv_open(CsvFile* f, const char* path, const char* header, int append);
/* Append one row (len bytes, its '\n' included) whole, or die naming the file
 * and errno with the file cut back to its previous length. */
void csv_append(CsvFile* f, const char* row, size_t len);
/* fsync and close, each checked. */
void csv_close(CsvFile* f);

/* Open path for rows: appended when resuming (after csv_truncate), else a new
 * file starting with LOG_HEADER. path must outlive the log. */
void train_log_open(TrainLog* log, const char* path, int append);
void train_log_row(TrainLog* log, const LogRow* row);
/* 1 when path's last row is step's and has no evaluation (a stop abandoned it):
 * a resumed run makes that evaluation before its first update. 0 otherwise,
 * also when path does not exist. */
int train_log_eval_missing(const char* path, long step);
/* Fill in the evaluation columns of the log's last row, row->step's (which
 * train_log_eval_missing found without them), from row; its other columns stay
 * as they were. The file is rewritten whole and renamed over the old one. */
void train_log_complete_eval(TrainLog* log, const LogRow* row);
void train_log_close(TrainLog* log);

#endif
