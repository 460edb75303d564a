/* signals.h: stopping a run early with SIGINT, SIGTERM or SIGHUP, cleanly, and
 * carrying on when standard output goes away.
 *
 * Before the training loop there is nothing to checkpoint: the first signal exits
 * at once with 128 + the signal. In the loop it lets the step's update finish,
 * abandons an evaluation or a sample in progress (they check between batches and
 * between tokens), writes a checkpoint and exits with 128 + the signal; a second
 * SIGINT or SIGTERM exits at once. A second SIGHUP does not: a closing terminal
 * can send it twice (the kernel and the shell). Every checkpoint file is written
 * to a temporary (NAME.<pid>.tmp) and then renamed, so even an exit at once
 * leaves the last complete checkpoint as it was.
 *
 * SIGPIPE is ignored: a progress line written into a pipe whose reader exited
 * (`./train ... | head`, or tee killed by the same Ctrl-C) fails with EPIPE
 * instead of killing the run before its checkpoint. */
#ifndef SIGNALS_H
#define SIGNALS_H

#include "training/dist.h"

/* Install the handlers (dies if it cannot). SIGHUP is left ignored when the run
 * was started ignoring it (nohup). SIGPIPE is ignored, and SIGXFSZ, so a file
 * growing past `ulimit -f` fails its write with EFBIG, reported like a full disk. */
void catch_stop_signals(void);
/* From here on a signal asks the loop to stop at its next check instead of
 * exiting at once. */
void defer_stop_signals(void);
/* The signal that asked any rank to stop (SIGTERM for another rank's), or 0.
 * The same answer on every rank: they stop at the same point. With several
 * ranks this is a collective call: every rank makes it, the same number of times. */
int stop_requested(const Dist* dist);
/* The signal this process received, or 0: no collective, for work one rank does alone. */
int stop_signal_received(void);
/* The closing line on stderr: which signal stopped the run after last_step
 * (0: before any update) and how it continues. */
void report_stop(int sig, long last_step, double seconds, const char* state_path, const char* out_dir);

/* Once standard output has failed (its reader went away, a full disk), send the
 * rest of it to /dev/null and say so on stderr, once: the run goes on, and writes
 * log.csv and its checkpoints as usual. Called once per step. */
void check_stdout(void);

#endif
