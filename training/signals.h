/* signals.h: stopping a run early with SIGINT or SIGTERM, cleanly.
 *
 * The first signal lets the loop finish its step, write a checkpoint and exit
 * with 128 + the signal; a second one exits at once. Every checkpoint file is
 * written to a temporary (NAME.<pid>.tmp) and then renamed, so even that exit
 * leaves the last complete checkpoint as it was. */
#ifndef SIGNALS_H
#define SIGNALS_H

#include "training/dist.h"

/* Install the handlers (dies if it cannot); SIGXFSZ is ignored, so a file growing
 * past `ulimit -f` fails its write with EFBIG, reported like a full disk. */
void catch_stop_signals(void);
/* The signal that asked any rank to stop (SIGTERM for another rank's), or 0.
 * The same answer on every rank: they stop after the same step. */
int stop_requested(const Dist* dist);
/* The closing line on stderr: which signal stopped the run after last_step
 * (0: before any update) and how it continues. */
void report_stop(int sig, long last_step, double seconds, const char* state_path, const char* out_dir);

#endif
