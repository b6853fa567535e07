/* safetensors writer: header JSON in the caller's order, padded with spaces to 8 bytes, contiguous data.
   A regular file is replaced atomically: data goes to a temporary file beside it, fsynced, then renamed over
   the target, so a crash never leaves half a file and tensors still mapped from the old file stay valid
   (truncating a mapped file in place would make reading them fault). Non-regular targets (/dev/...) are
   written directly. */
#include "adept/device.h"
#include "adept/safetensors.h"
#include "safetensors_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_INT 9007199254740992.0 /* 2^53: offsets beyond are not exact as JSON doubles */

static int is_utf8(const char *s) { return adept_st_utf8_valid((const unsigned char *)s, strlen(s)); }

static adept_status write_all(int fd, const void *data, size_t n, const char *path) {
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return adept_fail(ADEPT_EIO, "%s: write failed: %s", path, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return ADEPT_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* A name given twice, found by sorting a copy (O(n log n) for checkpoints of many tensors); `*dup` NULL if none. */
static adept_status find_duplicate(const char *path, const char *const *names, size_t n, size_t stride,
                                   const char **dup) {
    *dup = NULL;
    if (n < 2) return ADEPT_OK;
    const char **sorted = malloc(n * sizeof *sorted);
    if (!sorted) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) sorted[i] = *(const char *const *)((const char *)names + i * stride);
    qsort(sorted, n, sizeof *sorted, cmp_str);
    for (size_t i = 1; i < n && !*dup; i++)
        if (!strcmp(sorted[i - 1], sorted[i])) *dup = sorted[i];
    free(sorted);
    return ADEPT_OK;
}

/* The header JSON (unpadded), or NULL with the error set. cJSON keeps insertion order: tensors stay in the
   caller's order, __metadata__ first as the reference writer puts it. */
static adept_status build_header(const char *path, const adept_st_item *items, size_t n_items,
                                 const char *const *meta_keys, const char *const *meta_values, size_t n_meta,
                                 char **out) {
    adept_status s = ADEPT_EINVAL;
    cJSON *root = cJSON_CreateObject();
    if (!root) goto oom;
    if (n_meta) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        if (!meta) goto oom;
        for (size_t i = 0; i < n_meta; i++) {
            if (!meta_keys[i] || !meta_values[i]) {
                s = adept_fail(ADEPT_EINVAL, "%s: metadata entry %zu has a NULL key or value", path, i + 1);
                goto fail;
            }
            if (!is_utf8(meta_keys[i]) || !is_utf8(meta_values[i])) {
                s = adept_fail(ADEPT_EINVAL, "%s: metadata entry \"%.40s\" is not valid UTF-8", path, meta_keys[i]);
                goto fail;
            }
            if (!cJSON_AddStringToObject(meta, meta_keys[i], meta_values[i])) goto oom;
        }
    }
    const char *dup;
    if ((s = find_duplicate(path, meta_keys, n_meta, sizeof *meta_keys, &dup)) != ADEPT_OK) goto fail;
    if (dup) {
        s = adept_fail(ADEPT_EINVAL, "%s: metadata key \"%s\" given twice", path, dup);
        goto fail;
    }
    size_t offset = 0;
    for (size_t i = 0; i < n_items; i++) {
        const char *name = items[i].name;
        const adept_tensor *t = items[i].tensor;
        if (!name || !t) {
            s = adept_fail(ADEPT_EINVAL, "%s: item %zu has a NULL name or tensor", path, i + 1);
            goto fail;
        }
        if (!strcmp(name, "__metadata__")) {
            s = adept_fail(ADEPT_EINVAL, "%s: \"__metadata__\" cannot name a tensor", path);
            goto fail;
        }
        if (!is_utf8(name)) {
            s = adept_fail(ADEPT_EINVAL, "%s: tensor name \"%.40s\" is not valid UTF-8", path, name);
            goto fail;
        }
        size_t nbytes = adept_tensor_nbytes(t);
        cJSON *e = cJSON_AddObjectToObject(root, name);
        if (!e || !cJSON_AddStringToObject(e, "dtype", adept_dtype_safetensors_name(t->dtype))) goto oom;
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        if (!shape) goto oom;
        for (int d = 0; d < t->ndim; d++) {
            cJSON *v = cJSON_CreateNumber((double)t->shape[d]);
            if (!v || !cJSON_AddItemToArray(shape, v)) { cJSON_Delete(v); goto oom; }
        }
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON *b = offs ? cJSON_CreateNumber((double)offset) : NULL;
        if (!b || !cJSON_AddItemToArray(offs, b)) { cJSON_Delete(b); goto oom; }
        offset += nbytes;
        cJSON *en = cJSON_CreateNumber((double)offset);
        if (!en || !cJSON_AddItemToArray(offs, en)) { cJSON_Delete(en); goto oom; }
        if ((double)offset >= ST_MAX_INT) {
            s = adept_fail(ADEPT_EUNSUPPORTED, "%s: data section beyond 2^53 bytes", path);
            goto fail;
        }
    }
    if (n_items > 1 && (s = find_duplicate(path, &items[0].name, n_items, sizeof *items, &dup)) != ADEPT_OK) goto fail;
    if (dup) {
        s = adept_fail(ADEPT_EINVAL, "%s: tensor name '%s' given twice", path, dup);
        goto fail;
    }
    *out = cJSON_PrintUnformatted(root);
    if (!*out) goto oom;
    cJSON_Delete(root);
    return ADEPT_OK;
oom:
    s = adept_fail(ADEPT_ENOMEM, "%s: out of memory building the header", path);
fail:
    cJSON_Delete(root);
    return s;
}

adept_status adept_safetensors_write(const char *path, const adept_st_item *items, size_t n_items,
                                     const char *const *meta_keys, const char *const *meta_values, size_t n_meta) {
    if (!path) return adept_fail(ADEPT_EINVAL, "safetensors write: NULL path");
    if (n_items && !items) return adept_fail(ADEPT_EINVAL, "%s: NULL item list", path);
    if (n_meta && (!meta_keys || !meta_values)) return adept_fail(ADEPT_EINVAL, "%s: NULL metadata arrays", path);
    char *json = NULL;
    ADEPT_TRY(build_header(path, items, n_items, meta_keys, meta_values, n_meta, &json));
    size_t len = strlen(json), padded = (len + 7) / 8 * 8; /* data section starts 8-byte aligned */
    char *header = malloc(8 + padded);
    if (!header) {
        cJSON_free(json);
        return adept_fail(ADEPT_ENOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < 8; i++) header[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
    memcpy(header + 8, json, len);
    memset(header + 8 + len, ' ', padded - len);
    cJSON_free(json);

    /* the final target: a symlink is followed so that the link stays and its file is replaced */
    char resolved[PATH_MAX];
    struct stat sb;
    const char *target = path;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) && realpath(path, resolved)) target = resolved;
    int direct = stat(target, &sb) == 0 && !S_ISREG(sb.st_mode);
    char tmp[PATH_MAX];
    static unsigned counter;
    if (!direct && snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%u", target, (long)getpid(),
                            __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED)) >= (int)sizeof tmp) {
        free(header);
        return adept_fail(ADEPT_EINVAL, "%s: path too long", path);
    }
    const char *dest = direct ? target : tmp;
    int fd = open(dest, O_WRONLY | O_CLOEXEC | (direct ? O_TRUNC : O_CREAT | O_EXCL), 0644);
    if (fd < 0) {
        int err = errno;
        free(header);
        return adept_fail(err == ENOENT ? ADEPT_ENOTFOUND : ADEPT_EIO, "%s: cannot create: %s", path, strerror(err));
    }
    adept_status s = write_all(fd, header, 8 + padded, path);
    free(header);
    /* a tensor on a device is brought to the host one at a time, through a buffer of the largest of them */
    void *staged = NULL;
    size_t staged_cap = 0;
    for (size_t i = 0; i < n_items && s == ADEPT_OK; i++) {
        const adept_tensor *t = items[i].tensor;
        size_t nb = adept_tensor_nbytes(t);
        const void *bytes = adept_tensor_data(t);
        if (adept_tensor_device(t) != ADEPT_CPU) {
            if (nb > staged_cap) {
                free(staged);
                staged_cap = 0;
                if (!(staged = malloc(nb))) {
                    s = adept_fail(ADEPT_ENOMEM, "%s: out of memory staging tensor %s from the device", path,
                                   items[i].name);
                    break;
                }
                staged_cap = nb;
            }
            if ((s = adept_tensor_read(t, 0, staged, nb)) != ADEPT_OK) {
                adept_fail_context(s, "%s: tensor %s", path, items[i].name);
                break;
            }
            bytes = staged;
        }
        s = write_all(fd, bytes, nb, path);
    }
    free(staged);
    if (s == ADEPT_OK && fsync(fd) != 0 && !direct)
        s = adept_fail(ADEPT_EIO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && s == ADEPT_OK) s = adept_fail(ADEPT_EIO, "%s: close failed: %s", path, strerror(errno));
    if (direct) return s;
    if (s == ADEPT_OK && rename(tmp, target) != 0)
        s = adept_fail(ADEPT_EIO, "%s: cannot rename the temporary file into place: %s", path, strerror(errno));
    if (s != ADEPT_OK) {
        unlink(tmp);
        return s;
    }
    /* make the rename itself durable; a directory that refuses fsync (some filesystems) is not an error */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", target);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return ADEPT_OK;
}
