/* out_dir.c: the lock of an out_dir, the files that make a run, and moving a run
 * aside for the one that replaces it (see out_dir.h). Not here: what the files
 * hold (training/run.c, training/log.c, formats/checkpoint.c). */
#include "training/out_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "formats/checkpoint.h"
#include "util/utils.h"

enum { PATH_CAP = 4096 };

/* Everything a run writes into out_dir. One of them present means out_dir holds a run;
 * --overwrite moves exactly these, and leaves every other file where it is. */
static const char* const RUN_FILES[] = {
    "config.conf", "log.csv", "embeddings.csv", CHECKPOINT_STATE_FILE, CHECKPOINT_MODEL_FILE,
    CHECKPOINT_CONFIG_FILE, CHECKPOINT_TOKENIZER_FILE, "last", "embeddings",
};
enum { NUM_RUN_FILES = sizeof RUN_FILES / sizeof RUN_FILES[0] };

/* ---- the lock ---- */

int out_dir_lock(const char* out_dir) {
    char path[PATH_CAP];
    xsnprintf(path, sizeof path, "%s/%s", out_dir, OUT_DIR_LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) die(EXIT_IO_FAILURE, "cannot open the lock file %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) die(EXIT_IO_FAILURE, "cannot lock %s: %s", path, strerror(errno));
        /* the holder writes its pid just after locking: empty only in that instant */
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        die(EXIT_BAD_INPUT, "out_dir %s is in use by another ./train (pid %s holds %s): two runs in one out_dir would "
            "write into each other's files; wait for it to end, or choose another out_dir", out_dir,
            pid[0] ? pid : "unknown", path);
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        die(EXIT_IO_FAILURE, "cannot write the pid into the lock file %s: %s", path, strerror(errno));
    return fd;
}

/* ---- the files of a run ---- */

int out_dir_run_files(const char* dir, char* list, size_t cap) {
    int count = 0;
    list[0] = 0;
    for (int i = 0; i < NUM_RUN_FILES; i++) {
        char path[PATH_CAP];
        struct stat st;
        xsnprintf(path, sizeof path, "%s/%s", dir, RUN_FILES[i]);
        if (lstat(path, &st) != 0) continue;
        size_t at = strlen(list);
        snprintf(list + at, cap - at, "%s%s%s", count ? ", " : "", RUN_FILES[i], S_ISDIR(st.st_mode) ? "/" : "");
        count++;
    }
    return count;
}

/* A temporary one of the run's files was being written through (create_temp_beside:
 * NAME.<pid>.tmp), left by a run killed while writing it. */
static int is_run_temporary(const char* name) {
    size_t n = strlen(name);
    if (n < 4 || strcmp(name + n - 4, ".tmp") != 0) return 0;
    if (strncmp(name, "E_", 2) == 0) return 1;  /* a snapshot of E, in embeddings/ */
    for (int i = 0; i < NUM_RUN_FILES; i++) {
        size_t k = strlen(RUN_FILES[i]);
        if (strncmp(name, RUN_FILES[i], k) == 0 && name[k] == '.') return 1;
    }
    return 0;
}

/* Remove the run's temporaries in dir; the number removed. */
static int remove_temporaries(const char* dir) {
    DIR* d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        die(EXIT_IO_FAILURE, "cannot open directory %s: %s", dir, strerror(errno));
    }
    int removed = 0;
    struct dirent* entry;
    while ((entry = readdir(d)) != NULL) {
        if (!is_run_temporary(entry->d_name)) continue;
        char path[PATH_CAP];
        xsnprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        if (unlink(path) != 0)
            die(EXIT_IO_FAILURE, "cannot remove the leftover temporary %s: %s", path, strerror(errno));
        removed++;
    }
    closedir(d);
    return removed;
}

/* rename(2) each of the run's files present in from into to, fsyncing both folders. */
static void move_run_files(const char* from, const char* to) {
    char src[PATH_CAP], dst[PATH_CAP];
    for (int i = 0; i < NUM_RUN_FILES; i++) {
        xsnprintf(src, sizeof src, "%s/%s", from, RUN_FILES[i]);
        xsnprintf(dst, sizeof dst, "%s/%s", to, RUN_FILES[i]);
        struct stat st;
        if (lstat(src, &st) != 0) continue;
        if (rename(src, dst) != 0) die(EXIT_IO_FAILURE, "cannot move %s to %s: %s", src, dst, strerror(errno));
    }
    fsync_parent_dir(src);
    fsync_parent_dir(dst);
}

/* The journal of a move (out_dir.h): the previous-* folder's name, then the names of
 * the run's files staging holds, a line each. */
static void write_journal(const char* journal, const char* previous_name, const char* staging) {
    char text[PATH_CAP + 512];
    size_t at = (size_t)snprintf(text, sizeof text, "%s\n", previous_name);
    for (int i = 0; i < NUM_RUN_FILES; i++) {
        char path[PATH_CAP];
        xsnprintf(path, sizeof path, "%s/%s", staging, RUN_FILES[i]);
        if (file_exists(path)) at += (size_t)snprintf(text + at, sizeof text - at, "%s\n", RUN_FILES[i]);
    }
    if (at >= sizeof text) die(EXIT_IO_FAILURE, "%s: the journal does not fit", journal);
    write_file_atomic(journal, text, at);
}

/* Redo what out_dir_replace had not done when it stopped. The old run's files all
 * leave out_dir before the first staged file enters it, so: while every staged file
 * the journal names is still in staging, the first phase may be unfinished, and the
 * run's files in out_dir are old ones (to previous); then the rest of staging comes in. */
static void finish_move(const char* out_dir, const char* staging, const char* journal, char* previous, size_t cap) {
    size_t len;
    char* text = (char*)read_file(journal, &len);
    text = realloc(text, len + 1);
    if (!text) die(EXIT_IO_FAILURE, "out of memory reading %s", journal);
    text[len] = 0;
    char* line = strtok(text, "\n");
    if (!line || strncmp(line, "previous-", 9) != 0 || strchr(line, '/'))
        die(EXIT_BAD_INPUT, "%s: not a journal of this program (first line '%s'); move the files by hand", journal,
            line ? line : "");
    xsnprintf(previous, cap, "%s/%s", out_dir, line);
    int second_phase = 0;
    for (char* name = strtok(NULL, "\n"); name; name = strtok(NULL, "\n")) {
        char path[PATH_CAP];
        xsnprintf(path, sizeof path, "%s/%s", staging, name);
        if (!file_exists(path)) second_phase = 1;
    }
    free(text);
    if (!second_phase) {
        make_dirs(previous);
        move_run_files(out_dir, previous);
    }
    move_run_files(staging, out_dir);
}

void out_dir_clean_leftovers(const char* out_dir) {
    char path[PATH_CAP], err[PATH_CAP + 256];
    int removed = remove_temporaries(out_dir);
    xsnprintf(path, sizeof path, "%s/last", out_dir);
    removed += remove_temporaries(path);
    xsnprintf(path, sizeof path, "%s/embeddings", out_dir);
    removed += remove_temporaries(path);
    if (removed) fprintf(stderr, "note: removed %d temporary file(s) that an interrupted run left in %s\n", removed, out_dir);

    char staging[PATH_CAP], journal[PATH_CAP];
    xsnprintf(staging, sizeof staging, "%s/%s", out_dir, OUT_DIR_STAGING);
    if (!file_exists(staging)) return;
    xsnprintf(journal, sizeof journal, "%s/%s", staging, OUT_DIR_JOURNAL);
    if (file_exists(journal)) {
        /* killed inside out_dir_replace's renames: finish them (no journal: killed
         * before the new run's first checkpoint, and the old run was never touched) */
        char previous[PATH_CAP];
        finish_move(out_dir, staging, journal, previous, sizeof previous);
        fprintf(stderr, "note: finished moving an interrupted --overwrite: the replaced run is in %s, the new one in %s\n",
                previous, out_dir);
    }
    if (remove_tree(staging, err, sizeof err) != 0) die(EXIT_IO_FAILURE, "%s", err);
}

/* ---- --overwrite ---- */

void out_dir_replace(const char* out_dir, const char* staging, char* previous, size_t cap) {
    char stamp[32];
    time_t now = time(NULL);
    struct tm utc;
    if (!gmtime_r(&now, &utc) || strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc) == 0)
        die(EXIT_IO_FAILURE, "cannot format the UTC time for %s/previous-*", out_dir);
    /* two replacements within one second get -2, -3, ... */
    for (int n = 1;; n++) {
        if (n == 1) xsnprintf(previous, cap, "%s/previous-%s", out_dir, stamp);
        else xsnprintf(previous, cap, "%s/previous-%s-%d", out_dir, stamp, n);
        if (mkdir(previous, 0777) == 0) break;
        if (errno != EEXIST || n >= 1000)
            die(EXIT_IO_FAILURE, "cannot create directory %s: %s", previous, strerror(errno));
    }
    /* the journal first: a kill between the renames below leaves it, and the next
     * run into out_dir finishes them (out_dir_clean_leftovers) */
    char journal[PATH_CAP];
    xsnprintf(journal, sizeof journal, "%s/%s", staging, OUT_DIR_JOURNAL);
    write_journal(journal, strrchr(previous, '/') + 1, staging);
    move_run_files(out_dir, previous);
    move_run_files(staging, out_dir);
    char err[PATH_CAP + 256];
    if (remove_tree(staging, err, sizeof err) != 0) die(EXIT_IO_FAILURE, "%s", err);
    fsync_parent_dir(staging);
}
