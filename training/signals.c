/* signals.c: SIGINT / SIGTERM / SIGHUP end a run after its step, with a checkpoint;
 * a failing standard output never ends it (see signals.h). */
#include "training/signals.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/utils.h"

static volatile sig_atomic_t stop_signal = 0;
static volatile sig_atomic_t deferred = 0;  /* 1 once the loop checks for stops */

static const char* signal_name(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
}

/* Only write() in here: it is async-signal-safe, stdio is not. */
static void say(const char* a, const char* b, const char* c) {
    const char* parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (write(STDERR_FILENO, parts[i], strlen(parts[i])) < 0) { /* stderr gone too: nothing to be done */ }
}

static void on_stop_signal(int sig) {
    if (!deferred) {  /* data, model, outputs being prepared: nothing to checkpoint yet */
        say("\nstopped by ", signal_name(sig), " before training: no checkpoint written\n");
        _exit(128 + sig);
    }
    if (stop_signal) {
        if (sig == SIGHUP) return;  /* a closing terminal's second SIGHUP: go on to the checkpoint */
        _exit(128 + sig);
    }
    stop_signal = sig;
    say("\n", signal_name(sig), ": stopping after this step: writing a checkpoint (SIGINT or SIGTERM again to quit at once)\n");
}

void catch_stop_signals(void) {
    struct sigaction sa, hup;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  /* a write the signal interrupts carries on */
    /* nohup started the run to outlive its terminal: SIGHUP stays ignored */
    int keep_hup_ignored = sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler == SIG_IGN;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        (!keep_hup_ignored && sigaction(SIGHUP, &sa, NULL) != 0))
        die(EXIT_IO_FAILURE, "cannot install the SIGINT/SIGTERM/SIGHUP handler: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);  /* a closed stdout is check_stdout's to handle */
    signal(SIGXFSZ, SIG_IGN);
}

void defer_stop_signals(void) { deferred = 1; }

int stop_signal_received(void) { return stop_signal; }

int stop_requested(const Dist* dist) {
    int sig = stop_signal;
    if (dist->size > 1 && dist_sum_double(sig) > 0 && !sig) sig = SIGTERM;  /* another rank's */
    return sig;
}

void report_stop(int sig, long last_step, double seconds, const char* state_path, const char* out_dir) {
    if (last_step > 0)
        fprintf(stderr, "stopped by %s after step %ld (%.1f s): checkpoint in %s; continue with: "
                "./train %s/config.conf --resume\n", signal_name(sig), last_step, seconds, state_path, out_dir);
    else
        fprintf(stderr, "stopped by %s before training: no checkpoint written\n", signal_name(sig));
}

void check_stdout(void) {
    static int quiet = 0;
    if (quiet || !ferror(stdout)) return;
    quiet = 1;
    /* the writer's end of a pipe polls POLLERR once the last reader has closed it */
    struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
    int reader_gone = poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
    /* from now on the progress lines (and what stdio still holds) go nowhere, and
     * the flush at exit succeeds: the exit status stays the run's */
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        if (dup2(null, STDOUT_FILENO) >= 0) {
            clearerr(stdout);
            fflush(stdout);
        }
        close(null);
    }
    fprintf(stderr, "note: %s: progress is no longer printed; the run goes on, writing log.csv and its "
            "checkpoints as usual\n", reader_gone ? "standard output's reader went away (a closed pipe)"
                                                  : "writing to standard output failed");
}
