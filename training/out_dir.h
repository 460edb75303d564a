/* out_dir.h: one run at a time in an out_dir, and no run lost to another.
 *
 *   out_dir/.lock         flock'ed by the ./train that writes out_dir, for as long as it
 *                         runs; it holds that process's pid. The kernel drops the lock when
 *                         the process ends, however it ends, so a killed run never blocks.
 *   out_dir/.overwriting  where an --overwrite run writes until its first checkpoint: the
 *                         run it replaces stays whole in out_dir until then.
 *   out_dir/previous-<UTC time>/   that replaced run's files, moved aside.
 * Errors exit with a message (util/utils.h's codes). */
#ifndef OUT_DIR_H
#define OUT_DIR_H

#include <stddef.h>

#define OUT_DIR_LOCK_FILE ".lock"
#define OUT_DIR_STAGING ".overwriting"
/* .overwriting/moving: written before the move that ends an --overwrite (the name of
 * its previous-* folder, then the run's files staged, a line each), so that a move cut
 * short is finished by the next run into out_dir */
#define OUT_DIR_JOURNAL "moving"

/* Take out_dir/.lock (created if missing; out_dir must exist) and write this
 * process's pid into it. Another process holding it: exit EXIT_BAD_INPUT, naming its
 * pid. Returns the descriptor; the lock lasts until it is closed or the process ends. */
int out_dir_lock(const char* out_dir);

/* The names of the run's files that dir holds, ", "-separated ("last/" for a
 * directory), into list; the count. Files of no run (the lock, previous-* folders,
 * data caches) are not among them. */
int out_dir_run_files(const char* dir, char* list, size_t cap);

/* With the lock held: remove what an interrupted run left behind, the temporaries of
 * the run's files and an --overwrite run's staging folder; an --overwrite stopped
 * inside its final move (a journal in staging) has that move finished first. */
void out_dir_clean_leftovers(const char* out_dir);

/* An --overwrite run's first checkpoint is complete in staging: move the run's files
 * of out_dir into a new out_dir/previous-<UTC time>/ (its path into previous, cap
 * bytes), then those of staging into out_dir, and remove staging. */
void out_dir_replace(const char* out_dir, const char* staging, char* previous, size_t cap);

#endif
