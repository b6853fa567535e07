/* Reading experiment bundles (tar + zstd) without trusting them: names, member types, duplicates, sizes and the
   compression ratio are checked as the archive streams by, before a byte reaches the caller (adept/bundle.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "adept/bundle.h"

#define NAME_MAX_BYTES 1024
#define RATIO_FLOOR_BYTES (1u << 20) /* below this much output any ratio is fine (a small file of zeros) */

void adept_bundle_limits_default(adept_bundle_limits *l) {
    l->max_member_bytes = (uint64_t)1 << 30;
    l->max_total_bytes = (uint64_t)4 << 30;
    l->max_members = 4096;
    l->max_ratio = 1000;
}

adept_status adept_bundle_check_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0) return adept_fail(ADEPT_EFORMAT, "a member has an empty name");
    if (n > NAME_MAX_BYTES) return adept_fail(ADEPT_EFORMAT, "member name of %zu bytes (at most %d)", n, NAME_MAX_BYTES);
    if (name[0] == '/') return adept_fail(ADEPT_EFORMAT, "member '%.200s' has an absolute path", name);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            return adept_fail(ADEPT_EFORMAT, "member '%.200s' has a control character or backslash in its name", name);
    }
    const char *p = name;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) return adept_fail(ADEPT_EFORMAT, "member '%.200s' has an empty path component", name);
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return adept_fail(ADEPT_EFORMAT, "member '%.200s' has a '%.*s' component (path traversal)", name, (int)len, p);
        if (!end) break;
        p = end + 1;
        if (!*p) return adept_fail(ADEPT_EFORMAT, "member '%.200s' ends with '/'", name);
    }
    return ADEPT_OK;
}

/* Names seen so far: a repeat, or a name that is also another member's folder, is refused. */
typedef struct seen_names {
    char **v;
    size_t n, cap;
} seen_names;

static int is_folder_of(const char *dir, const char *file) {
    size_t n = strlen(dir);
    return strncmp(dir, file, n) == 0 && file[n] == '/';
}

static adept_status remember(seen_names *s, const char *name) {
    for (size_t i = 0; i < s->n; i++) {
        if (!strcmp(s->v[i], name)) return adept_fail(ADEPT_EFORMAT, "member '%.200s' appears twice", name);
        if (is_folder_of(s->v[i], name) || is_folder_of(name, s->v[i]))
            return adept_fail(ADEPT_EFORMAT, "member '%.200s' is both a file and a folder of '%.200s'",
                              is_folder_of(name, s->v[i]) ? name : s->v[i], is_folder_of(name, s->v[i]) ? s->v[i] : name);
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) return adept_fail(ADEPT_ENOMEM, "bundle: out of memory");
        s->v = v, s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(name))) return adept_fail(ADEPT_ENOMEM, "bundle: out of memory");
    s->n++;
    return ADEPT_OK;
}

static void forget_all(seen_names *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
}

static const char *entry_kind(struct archive_entry *e) {
    if (archive_entry_hardlink(e)) return "a hard link";
    switch (archive_entry_filetype(e)) {
    case AE_IFLNK: return "a symbolic link";
    case AE_IFDIR: return "a folder";
    case AE_IFREG: return NULL;
    default: return "a device, pipe or socket";
    }
}

static adept_status read_members(struct archive *a, const char *src, const adept_bundle_limits *l,
                                 const adept_bundle_visitor *v) {
    seen_names seen = {0};
    uint64_t total = 0, produced = 0;
    size_t count = 0;
    adept_status s = ADEPT_OK;
    char *buf = malloc(1 << 16);
    if (!buf) return adept_fail(ADEPT_ENOMEM, "bundle: out of memory");
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK) {
            s = adept_fail(ADEPT_EFORMAT, "%s: not a readable bundle (tar + zstd): %s", src,
                           archive_error_string(a) ? archive_error_string(a) : "unknown error");
            break;
        }
        const char *name = archive_entry_pathname(e);
        if (!name) { s = adept_fail(ADEPT_EFORMAT, "%s: member %zu has no name", src, count + 1); break; }
        const char *kind = entry_kind(e);
        if (kind) { s = adept_fail(ADEPT_EFORMAT, "%s: member '%.200s' is %s (only regular files)", src, name, kind); break; }
        if ((s = adept_bundle_check_name(name)) != ADEPT_OK) { adept_fail_context(s, "%s", src); break; }
        if (++count > l->max_members) {
            s = adept_fail(ADEPT_EFORMAT, "%s: more than %zu members", src, l->max_members);
            break;
        }
        if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0) {
            s = adept_fail(ADEPT_EFORMAT, "%s: member '%.200s' has no size", src, name);
            break;
        }
        uint64_t size = (uint64_t)archive_entry_size(e);
        if (size > l->max_member_bytes) {
            s = adept_fail(ADEPT_EFORMAT, "%s: member '%.200s' is %llu bytes (limit %llu)", src, name,
                           (unsigned long long)size, (unsigned long long)l->max_member_bytes);
            break;
        }
        total += size;
        if (total > l->max_total_bytes) {
            s = adept_fail(ADEPT_EFORMAT, "%s: members add up to more than %llu bytes (at '%.200s')", src,
                           (unsigned long long)l->max_total_bytes, name);
            break;
        }
        if ((s = remember(&seen, name)) != ADEPT_OK) { adept_fail_context(s, "%s", src); break; }
        if (v && v->begin && (s = v->begin(v->ctx, name, size)) != ADEPT_OK) break;
        uint64_t got = 0;
        for (;;) {
            la_ssize_t k = archive_read_data(a, buf, 1 << 16);
            if (k < 0) {
                s = adept_fail(ADEPT_EFORMAT, "%s: member '%.200s': %s", src, name,
                               archive_error_string(a) ? archive_error_string(a) : "read error");
                break;
            }
            if (k == 0) break;
            got += (uint64_t)k, produced += (uint64_t)k;
            if (got > size) {
                s = adept_fail(ADEPT_EFORMAT, "%s: member '%.200s' holds more than its declared %llu bytes", src, name,
                               (unsigned long long)size);
                break;
            }
            int64_t in = archive_filter_bytes(a, -1);
            if (produced > RATIO_FLOOR_BYTES && (double)produced > l->max_ratio * (double)(in > 0 ? in : 1)) {
                s = adept_fail(ADEPT_EFORMAT, "%s: member '%.200s' expands more than %g times (a compression bomb?)",
                               src, name, l->max_ratio);
                break;
            }
            if (v && v->data && (s = v->data(v->ctx, buf, (size_t)k)) != ADEPT_OK) break;
        }
        if (s != ADEPT_OK) break;
        if (got != size) {
            s = adept_fail(ADEPT_EFORMAT, "%s: member '%.200s' is truncated (%llu of %llu bytes)", src, name,
                           (unsigned long long)got, (unsigned long long)size);
            break;
        }
        if (v && v->end && (s = v->end(v->ctx)) != ADEPT_OK) break;
    }
    free(buf);
    forget_all(&seen);
    return s;
}

static struct archive *new_reader(void) {
    struct archive *a = archive_read_new();
    if (!a) return NULL;
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    return a;
}

adept_status adept_bundle_read_file(const char *path, const adept_bundle_limits *l, const adept_bundle_visitor *v) {
    adept_bundle_limits def;
    if (!l) adept_bundle_limits_default(&def), l = &def;
    struct archive *a = new_reader();
    if (!a) return adept_fail(ADEPT_ENOMEM, "bundle: out of memory");
    adept_status s;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK)
        s = adept_fail(ADEPT_EIO, "%s: %s", path, archive_error_string(a) ? archive_error_string(a) : "cannot open");
    else
        s = read_members(a, path, l, v);
    archive_read_free(a);
    return s;
}

adept_status adept_bundle_read_memory(const void *data, size_t n, const adept_bundle_limits *l,
                                      const adept_bundle_visitor *v) {
    adept_bundle_limits def;
    if (!l) adept_bundle_limits_default(&def), l = &def;
    struct archive *a = new_reader();
    if (!a) return adept_fail(ADEPT_ENOMEM, "bundle: out of memory");
    adept_status s;
    if (archive_read_open_memory(a, data, n) != ARCHIVE_OK)
        s = adept_fail(ADEPT_EFORMAT, "(memory): %s", archive_error_string(a) ? archive_error_string(a) : "cannot open");
    else
        s = read_members(a, "(memory)", l, v);
    archive_read_free(a);
    return s;
}

/* ---- extraction ------------------------------------------------------------------------------------------- */

typedef struct extract_ctx {
    const char *dir;
    int fd;
    char path[4096];
} extract_ctx;

static adept_status ex_begin(void *p, const char *name, uint64_t size) {
    extract_ctx *c = p;
    if (snprintf(c->path, sizeof c->path, "%s/%s", c->dir, name) >= (int)sizeof c->path)
        return adept_fail(ADEPT_EINVAL, "%s/%.200s: path too long", c->dir, name);
    /* the parent folders: created here, so never links (members are regular files only) */
    for (char *q = c->path + strlen(c->dir) + 1; (q = strchr(q, '/')); q++) {
        *q = '\0';
        int r = mkdir(c->path, 0755);
        int err = errno;
        *q = '/';
        if (r != 0 && err != EEXIST) return adept_fail(ADEPT_EIO, "%s: %s", c->path, strerror(err));
    }
    c->fd = open(c->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (c->fd < 0) return adept_fail(ADEPT_EIO, "%s: %s", c->path, strerror(errno));
    return ADEPT_OK;
}

static adept_status ex_data(void *p, const void *buf, size_t n) {
    extract_ctx *c = p;
    const char *b = buf;
    while (n) {
        ssize_t w = write(c->fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return adept_fail(ADEPT_EIO, "%s: %s", c->path, strerror(errno));
        }
        b += w, n -= (size_t)w;
    }
    return ADEPT_OK;
}

static adept_status ex_end(void *p) {
    extract_ctx *c = p;
    int r = close(c->fd);
    c->fd = -1;
    if (r != 0) return adept_fail(ADEPT_EIO, "%s: %s", c->path, strerror(errno));
    return ADEPT_OK;
}

adept_status adept_bundle_extract(const char *path, const char *dir, const adept_bundle_limits *l) {
    ADEPT_TRY(adept_bundle_read_file(path, l, NULL)); /* everything checked before anything is written */
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return adept_fail(ADEPT_EIO, "%s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d) return adept_fail(ADEPT_EIO, "%s: %s", dir, strerror(errno));
    struct dirent *de;
    int empty = 1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) empty = 0;
    closedir(d);
    if (!empty) return adept_fail(ADEPT_EINVAL, "%s: the folder to extract a bundle into must be empty", dir);
    extract_ctx c = {.dir = dir, .fd = -1};
    adept_bundle_visitor v = {ex_begin, ex_data, ex_end, &c};
    adept_status s = adept_bundle_read_file(path, l, &v);
    if (c.fd >= 0) close(c.fd);
    return s;
}

/* ---- one member --------------------------------------------------------------------------------------------- */

typedef struct member_ctx {
    const char *want;
    int active, found;
    char *data;
    size_t n, cap;
} member_ctx;

static adept_status mb_begin(void *p, const char *name, uint64_t size) {
    member_ctx *c = p;
    c->active = !strcmp(name, c->want);
    if (!c->active) return ADEPT_OK;
    c->found = 1;
    c->cap = (size_t)size + 1;
    if (!(c->data = malloc(c->cap))) return adept_fail(ADEPT_ENOMEM, "bundle: %s: out of memory", name);
    return ADEPT_OK;
}

static adept_status mb_data(void *p, const void *buf, size_t n) {
    member_ctx *c = p;
    if (!c->active) return ADEPT_OK;
    memcpy(c->data + c->n, buf, n); /* the reader guarantees n stays within the declared size */
    c->n += n;
    return ADEPT_OK;
}

static adept_status mb_end(void *p) {
    ((member_ctx *)p)->active = 0;
    return ADEPT_OK;
}

adept_status adept_bundle_member(const char *path, const char *name, const adept_bundle_limits *l, char **data,
                                 size_t *n) {
    member_ctx c = {.want = name};
    adept_bundle_visitor v = {mb_begin, mb_data, mb_end, &c};
    adept_status s = adept_bundle_read_file(path, l, &v);
    if (s == ADEPT_OK && !c.found) s = adept_fail(ADEPT_ENOTFOUND, "%s: no member '%.200s'", path, name);
    if (s != ADEPT_OK) {
        free(c.data);
        return s;
    }
    c.data[c.n] = '\0';
    *data = c.data, *n = c.n;
    return ADEPT_OK;
}
