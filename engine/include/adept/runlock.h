/* One writer per run directory: an exclusive advisory lock (flock) on a lock file that holds the writer's PID,
   and the liveness test that decides whether a writer's leftovers may be removed. */
#ifndef ADEPT_RUNLOCK_H
#define ADEPT_RUNLOCK_H

#include "adept/error.h"

typedef struct adept_runlock adept_runlock;

/* Creates `path` if needed, takes flock(LOCK_EX | LOCK_NB) on it and writes this process's PID into it. When
   another open file holds the lock, fails at once (ADEPT_ESTATE) naming the holder's PID as written in the file:
   "<path>: another adeptlua run (PID 1234) is writing here; wait for it to end or use another directory"
   (or "this process (PID n)" when the holder is this process, a nested run on the same directory). The
   descriptor is close-on-exec, so children never inherit the lock; the kernel releases it when the process ends,
   however it ends. */
adept_status adept_runlock_acquire(const char *path, adept_runlock **out);
/* Empties the PID (the file itself stays: removing it would let two writers lock two different files of one
   name) and releases the lock. NULL is fine. */
void adept_runlock_release(adept_runlock *lock);
const char *adept_runlock_path(const adept_runlock *lock);

/* 0 only when no process `pid` exists (kill(pid, 0) fails with ESRCH); a process of another user (EPERM) is
   alive. pid <= 0 is never a writer and counts as dead. */
int adept_pid_alive(long pid);

#endif
