/* File-system primitives for crash-safe checkpoints: a checkpoint is written under a temporary name,
   every file and directory fsynced, then renamed into place and the parent fsynced. */
#include "adept/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_PATH_MAX 4096

static adept_status fail_errno(const char *op, const char *path) {
    return adept_fail(ADEPT_EIO, "%s: %s: %s", op, path, strerror(errno));
}

adept_status adept_fs_mkdir_p(const char *path) {
    char buf[FS_PATH_MAX];
    if (!path || !path[0]) return adept_fail(ADEPT_EINVAL, "mkdir: empty path");
    if (strlen(path) >= sizeof buf) return adept_fail(ADEPT_EINVAL, "mkdir: path too long: %.60s...", path);
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return fail_errno("mkdir", buf);
            struct stat st;
            if (stat(buf, &st) != 0) return fail_errno("mkdir", buf);
            if (!S_ISDIR(st.st_mode)) return adept_fail(ADEPT_EIO, "mkdir: %s exists and is not a directory", buf);
            *p = c;
            if (c == '\0') break;
        }
    }
    return ADEPT_OK;
}

int adept_fs_exists(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    return S_ISDIR(st.st_mode) ? 2 : 1;
}

adept_status adept_fs_fsync(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail_errno("fsync", path);
    /* EINVAL: the file system does not support fsync on this kind of file; nothing more can be done */
    if (fsync(fd) != 0 && errno != EINVAL) {
        adept_status s = fail_errno("fsync", path);
        close(fd);
        return s;
    }
    close(fd);
    return ADEPT_OK;
}

adept_status adept_fs_fsync_tree(const char *dir) {
    char **names;
    size_t n;
    ADEPT_TRY(adept_fs_list(dir, &names, &n));
    adept_status s = ADEPT_OK;
    for (size_t i = 0; i < n && s == ADEPT_OK; i++) {
        char child[FS_PATH_MAX];
        if ((size_t)snprintf(child, sizeof child, "%s/%s", dir, names[i]) >= sizeof child) {
            s = adept_fail(ADEPT_EINVAL, "fsync: path too long under %s", dir);
            break;
        }
        struct stat st;
        if (lstat(child, &st) != 0) s = fail_errno("fsync", child);
        else if (S_ISDIR(st.st_mode)) s = adept_fs_fsync_tree(child);
        else if (S_ISREG(st.st_mode)) s = adept_fs_fsync(child);
    }
    adept_fs_list_free(names, n);
    if (s == ADEPT_OK) s = adept_fs_fsync(dir);
    return s;
}

static void parent_of(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "%s", path);
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/') out[--len] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == out) out[1] = '\0';
    else *slash = '\0';
}

adept_status adept_fs_rename(const char *from, const char *to) {
    if (rename(from, to) != 0)
        return adept_fail(ADEPT_EIO, "rename: %s -> %s: %s", from, to, strerror(errno));
    char parent[FS_PATH_MAX];
    parent_of(to, parent, sizeof parent);
    return adept_fs_fsync(parent);
}

adept_status adept_fs_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return ADEPT_OK;
        return fail_errno("remove", path);
    }
    if (S_ISDIR(st.st_mode)) {
        char **names;
        size_t n;
        ADEPT_TRY(adept_fs_list(path, &names, &n));
        adept_status s = ADEPT_OK;
        for (size_t i = 0; i < n && s == ADEPT_OK; i++) {
            char child[FS_PATH_MAX];
            if ((size_t)snprintf(child, sizeof child, "%s/%s", path, names[i]) >= sizeof child)
                s = adept_fail(ADEPT_EINVAL, "remove: path too long under %s", path);
            else s = adept_fs_remove_tree(child);
        }
        adept_fs_list_free(names, n);
        ADEPT_TRY(s);
        if (rmdir(path) != 0) return fail_errno("remove", path);
    } else if (unlink(path) != 0) {
        return fail_errno("remove", path);
    }
    return ADEPT_OK;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

adept_status adept_fs_list(const char *dir, char ***names, size_t *n) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return fail_errno("list", dir);
    size_t cap = 0, count = 0;
    char **out = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (count == cap) {
            size_t nc = cap ? 2 * cap : 16;
            char **grown = realloc(out, nc * sizeof *grown);
            if (!grown) goto oom;
            out = grown;
            cap = nc;
        }
        if (!(out[count] = strdup(e->d_name))) goto oom;
        count++;
    }
    closedir(d);
    if (count) qsort(out, count, sizeof *out, cmp_names);
    *names = out;
    *n = count;
    return ADEPT_OK;
oom:
    closedir(d);
    adept_fs_list_free(out, count);
    return adept_fail(ADEPT_ENOMEM, "list: %s: out of memory", dir);
}

void adept_fs_list_free(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}
