/* One writer per run directory (adept/runlock.h): flock on a lock file holding the PID of its writer. flock,
   not fcntl locks: an fcntl lock is dropped when any descriptor of the file closes in the process, and two
   opens in one process conflict with flock, which is what refuses a nested run on the same directory. */
#include "adept/runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

struct adept_runlock {
    int fd;
    char path[];
};

/* The PID written in the lock file, or 0 when it holds none (its writer is between flock and write). */
static long holder_pid(int fd) {
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return (end != buf && pid > 0) ? pid : 0;
}

adept_status adept_runlock_acquire(const char *path, adept_runlock **out) {
    *out = NULL;
    size_t len = strlen(path);
    adept_runlock *l = malloc(sizeof *l + len + 1);
    if (!l) return adept_fail(ADEPT_ENOMEM, "lock: out of memory");
    memcpy(l->path, path, len + 1);
    l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (l->fd < 0) {
        adept_status st = adept_fail(ADEPT_EIO, "lock: %s: %s", path, strerror(errno));
        free(l);
        return st;
    }
    if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        long pid = e == EWOULDBLOCK ? holder_pid(l->fd) : 0;
        close(l->fd);
        free(l);
        if (e != EWOULDBLOCK) return adept_fail(ADEPT_EIO, "lock: %s: flock: %s", path, strerror(e));
        char who[64];
        if (pid == (long)getpid()) snprintf(who, sizeof who, "this process (PID %ld)", pid);
        else if (pid > 0) snprintf(who, sizeof who, "another adeptlua run (PID %ld)", pid);
        else snprintf(who, sizeof who, "another adeptlua run (its PID is not yet written)");
        return adept_fail(ADEPT_ESTATE, "%s: %s is writing here; wait for it to end or use another directory",
                          path, who);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, pid, (size_t)n, 0) != n) {
        adept_status st = adept_fail(ADEPT_EIO, "lock: %s: cannot write the PID: %s", path, strerror(errno));
        close(l->fd); /* releases the lock */
        free(l);
        return st;
    }
    *out = l;
    return ADEPT_OK;
}

void adept_runlock_release(adept_runlock *l) {
    if (!l) return;
    if (ftruncate(l->fd, 0) != 0) { /* a stale PID left behind is harmless: only a held lock is read */ }
    close(l->fd);
    free(l);
}

const char *adept_runlock_path(const adept_runlock *l) { return l ? l->path : ""; }

int adept_pid_alive(long pid) {
    if (pid <= 0 || pid != (long)(pid_t)pid) return 0;
    return !(kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}
