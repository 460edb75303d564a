/* signals.c: SIGINT / SIGTERM end a run after its step, with a checkpoint (see signals.h). */
#include "training/signals.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/utils.h"

static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
    if (stop_signal) _exit(128 + sig);
    stop_signal = sig;
    static const char note[] = "\nstopping after this step: writing a checkpoint (signal again to quit at once)\n";
    if (write(STDERR_FILENO, note, sizeof note - 1) < 0) { /* nothing to be done in a handler */ }
}

void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  /* a write the signal interrupts carries on */
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        die(EXIT_IO_FAILURE, "cannot install the SIGINT/SIGTERM handler: %s", strerror(errno));
    signal(SIGXFSZ, SIG_IGN);
}

int stop_requested(const Dist* dist) {
    int sig = stop_signal;
    if (dist->size > 1 && dist_sum_double(sig) > 0 && !sig) sig = SIGTERM;  /* another rank's */
    return sig;
}

void report_stop(int sig, long last_step, double seconds, const char* state_path, const char* out_dir) {
    const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    if (last_step > 0)
        fprintf(stderr, "stopped by %s after step %ld (%.1f s): checkpoint in %s; continue with: "
                "./train %s/config.conf --resume\n", name, last_step, seconds, state_path, out_dir);
    else
        fprintf(stderr, "stopped by %s before training: no checkpoint written\n", name);
}
