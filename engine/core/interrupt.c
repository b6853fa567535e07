/* SIGINT/SIGTERM as a flag: long loops poll adept_interrupted() between steps, write a checkpoint and stop
   cleanly. The handler only stores the signal number (async-signal-safe). */
#include <signal.h>
#include <string.h>

#include "adept/fsutil.h"

static volatile sig_atomic_t pending;
static struct sigaction old_int, old_term;
static int installed;

static void on_signal(int sig) {
    if (pending == sig) { /* asked twice: the user means it */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    pending = sig;
}

void adept_interrupt_install(void) {
    if (installed) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    installed = 1;
}

void adept_interrupt_uninstall(void) {
    if (!installed) return;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    installed = 0;
}

int adept_interrupted(void) { return (int)pending; }
void adept_interrupt_clear(void) { pending = 0; }
