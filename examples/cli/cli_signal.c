/* Stopping on a signal: SIGINT (Ctrl-C), SIGTERM (docker stop, systemd, Slurm at the time limit,
   mpirun forwarding a Ctrl-C) and SIGUSR1 (Slurm's --signal=USR1@90 warning) set a flag that
   the library's loops poll at their next safe point: `train` finishes the current step, writes
   a checkpoint and exits; `eval --model` finishes the current problems and exits with them
   saved. A second SIGINT or SIGTERM exits at once: every file is written to a temporary name
   and renamed, so what is on disk is the old file or the new one, never half of one (the
   leftover temporary is removed by the next run). The flag and the handler belong to the tool,
   not to distill.h: the library never installs a handler behind an embedding program's back. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_sig;   /* 0, or the first stop signal received */

static void on_stop_signal(int sig) {
    if (stop_sig && sig != SIGUSR1) _exit(128 + sig);   /* asked twice: now */
    if (!stop_sig) stop_sig = sig;
}

void cli_catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;   /* reads and writes in progress carry on */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

volatile sig_atomic_t *cli_stop_flag(void) { return &stop_sig; }

static int stopped_cleanly;

/* The shell's convention for "ended by signal sig": 130 SIGINT, 143 SIGTERM, 138 SIGUSR1 (Linux).
   It also records that the command stopped with its work saved, so that main() ends an MPI job
   normally instead of with MPI_Abort (which could kill rank 0 while it saves). */
int cli_stop_status(int sig) {
    stopped_cleanly = 1;
    return 128 + (sig > 0 ? sig : SIGTERM);
}

int cli_stopped_cleanly(void) { return stopped_cleanly; }
