/* SIGINT/SIGTERM as a flag: long loops poll adept_interrupted() between steps, write a checkpoint and stop
   cleanly. The handler only stores the signal number (async-signal-safe). Installs nest as a stack: each
   saves the actions it replaced and its uninstall restores exactly those, so a training loop run inside
   another's callback hands the outer loop its handling back when it returns. */
#include <signal.h>
#include <string.h>

#include "adept/fsutil.h"

enum { MAX_DEPTH = 64 };

static volatile sig_atomic_t pending;
static struct sigaction saved_int[MAX_DEPTH], saved_term[MAX_DEPTH];
static int depth;

static void on_signal(int sig) {
    if (pending == sig) { /* asked twice: the user means it */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    pending = sig;
}

adept_status adept_interrupt_install(void) {
    if (depth == MAX_DEPTH)
        return adept_fail(ADEPT_ESTATE, "signal handling nested more than %d deep (training loops calling "
                          "training loops?)", MAX_DEPTH);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &saved_int[depth]);
    sigaction(SIGTERM, &sa, &saved_term[depth]);
    depth++;
    return ADEPT_OK;
}

void adept_interrupt_uninstall(void) {
    if (depth == 0) return;
    depth--;
    sigaction(SIGINT, &saved_int[depth], NULL);
    sigaction(SIGTERM, &saved_term[depth], NULL);
}

int adept_interrupt_depth(void) { return depth; }
int adept_interrupted(void) { return (int)pending; }
void adept_interrupt_clear(void) { pending = 0; }
