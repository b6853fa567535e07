/* Non-blocking, type-checked opening of input files (see adept/input.h). */
#include "adept/input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *adept_input_kind(mode_t mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "a special file";
}

adept_status adept_input_open(const char *path, const char *what, int *fd_out, struct stat *st_out) {
    *fd_out = -1;
    const char *w = what ? what : "", *sep = what ? ": " : "";
    if (!path || !*path) return adept_fail(ADEPT_EINVAL, "%s%sempty path", w, sep);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int err = errno;
        struct stat ls;
        /* a socket cannot be opened at all (ENXIO): say what it is rather than "No such device" */
        if (stat(path, &ls) == 0 && !S_ISREG(ls.st_mode) && !S_ISDIR(ls.st_mode))
            return adept_fail(ADEPT_EIO, "%s%s%s is %s, not a regular file", w, sep, path, adept_input_kind(ls.st_mode));
        return adept_fail(err == ENOENT ? ADEPT_ENOTFOUND : ADEPT_EIO, "%s: %s", path, strerror(err));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return adept_fail(ADEPT_EIO, "%s%s%s: %s", w, sep, path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return adept_fail(ADEPT_EIO, "%s%s%s is %s, not a regular file", w, sep, path, adept_input_kind(st.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int err = errno;
        close(fd);
        return adept_fail(ADEPT_EIO, "%s%s%s: %s", w, sep, path, strerror(err));
    }
    if (st_out) *st_out = st;
    *fd_out = fd;
    return ADEPT_OK;
}

adept_status adept_input_fopen(const char *path, const char *what, FILE **out) {
    *out = NULL;
    int fd;
    ADEPT_TRY(adept_input_open(path, what, &fd, NULL));
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int err = errno;
        close(fd);
        return adept_fail(ADEPT_ENOMEM, "%s%s%s: %s", what ? what : "", what ? ": " : "", path, strerror(err));
    }
    *out = f;
    return ADEPT_OK;
}

adept_status adept_input_read(const char *path, const char *what, size_t cap, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    const char *w = what ? what : "", *sep = what ? ": " : "";
    int fd;
    struct stat st;
    ADEPT_TRY(adept_input_open(path, what, &fd, &st));
    if ((unsigned long long)st.st_size > cap) {
        close(fd);
        return adept_fail(ADEPT_EFORMAT, "%s%s%s: %lld bytes is larger than the %zu-byte limit", w, sep, path,
                          (long long)st.st_size, cap);
    }
    /* read to EOF within cap + 1 (the size may change while reading); a file that grew past the cap fails */
    size_t have = 0, alloc = (size_t)st.st_size + 1;
    char *buf = malloc(alloc + 1);
    if (!buf) { close(fd); return adept_fail(ADEPT_ENOMEM, "%s%s%s: out of memory", w, sep, path); }
    for (;;) {
        if (have == alloc) {
            size_t grow = alloc * 2 > cap + 1 ? cap + 1 : alloc * 2;
            if (grow == alloc) break; /* cap + 1 bytes read: too large, refused below */
            char *nb = realloc(buf, grow + 1);
            if (!nb) {
                close(fd);
                free(buf);
                return adept_fail(ADEPT_ENOMEM, "%s%s%s: out of memory", w, sep, path);
            }
            buf = nb, alloc = grow;
        }
        ssize_t n = read(fd, buf + have, alloc - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            free(buf);
            return adept_fail(ADEPT_EIO, "%s%s%s: read error: %s", w, sep, path, strerror(err));
        }
        if (n == 0) break;
        have += (size_t)n;
    }
    close(fd);
    if (have > cap) {
        free(buf);
        return adept_fail(ADEPT_EFORMAT, "%s%s%s: larger than the %zu-byte limit", w, sep, path, cap);
    }
    buf[have] = 0;
    *out = buf;
    *len = have;
    return ADEPT_OK;
}
