/* Writing experiment bundles: a pax/ustar archive through zstd, members as plain files with fixed metadata so that
   the same members give the same bytes; written beside the target and renamed into place (adept/bundle.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "adept/bundle.h"

struct adept_bundle_writer {
    struct archive *a;
    char *path, *tmp;
};

adept_status adept_bundle_writer_open(const char *path, adept_bundle_writer **out) {
    adept_bundle_writer *w = calloc(1, sizeof *w);
    if (!w) return adept_fail(ADEPT_ENOMEM, "bundle: out of memory");
    size_t n = strlen(path) + 32;
    w->path = strdup(path);
    w->tmp = malloc(n);
    w->a = archive_write_new();
    if (!w->path || !w->tmp || !w->a) {
        adept_bundle_writer_abort(w);
        return adept_fail(ADEPT_ENOMEM, "bundle: out of memory");
    }
    snprintf(w->tmp, n, "%s.tmp-%d", path, (int)getpid());
    if (archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK || archive_write_add_filter_zstd(w->a) != ARCHIVE_OK ||
        archive_write_open_filename(w->a, w->tmp) != ARCHIVE_OK) {
        adept_status s = adept_fail(ADEPT_EIO, "%s: %s", path, archive_error_string(w->a) ? archive_error_string(w->a) : "cannot write");
        adept_bundle_writer_abort(w);
        return s;
    }
    *out = w;
    return ADEPT_OK;
}

static adept_status header(adept_bundle_writer *w, const char *name, uint64_t size) {
    ADEPT_TRY(adept_bundle_check_name(name));
    struct archive_entry *e = archive_entry_new();
    if (!e) return adept_fail(ADEPT_ENOMEM, "bundle: out of memory");
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    int r = archive_write_header(w->a, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK) return adept_fail(ADEPT_EIO, "%s: member '%s': %s", w->path, name, archive_error_string(w->a));
    return ADEPT_OK;
}

static adept_status put(adept_bundle_writer *w, const char *name, const void *data, size_t n) {
    if (n && archive_write_data(w->a, data, n) != (la_ssize_t)n)
        return adept_fail(ADEPT_EIO, "%s: member '%s': %s", w->path, name, archive_error_string(w->a));
    return ADEPT_OK;
}

adept_status adept_bundle_add_bytes(adept_bundle_writer *w, const char *name, const void *data, size_t n) {
    ADEPT_TRY(header(w, name, n));
    return put(w, name, data, n);
}

adept_status adept_bundle_add_file(adept_bundle_writer *w, const char *name, const char *src) {
    FILE *f = fopen(src, "rb");
    if (!f) return adept_fail(ADEPT_EIO, "%s: %s", src, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return adept_fail(ADEPT_EINVAL, "%s: not a regular file", src);
    }
    adept_status s = header(w, name, (uint64_t)st.st_size);
    char *buf = s == ADEPT_OK ? malloc(1 << 20) : NULL;
    if (s == ADEPT_OK && !buf) s = adept_fail(ADEPT_ENOMEM, "bundle: out of memory");
    uint64_t left = (uint64_t)st.st_size;
    while (s == ADEPT_OK && left) {
        size_t k = fread(buf, 1, left < (1 << 20) ? (size_t)left : (1 << 20), f);
        if (k == 0) { s = adept_fail(ADEPT_EIO, "%s: shrank while it was being packed", src); break; }
        s = put(w, name, buf, k);
        left -= k;
    }
    free(buf);
    fclose(f);
    return s;
}

adept_status adept_bundle_writer_close(adept_bundle_writer *w) {
    adept_status s = ADEPT_OK;
    if (archive_write_close(w->a) != ARCHIVE_OK)
        s = adept_fail(ADEPT_EIO, "%s: %s", w->path, archive_error_string(w->a));
    else if (rename(w->tmp, w->path) != 0)
        s = adept_fail(ADEPT_EIO, "%s: %s", w->path, strerror(errno));
    if (s != ADEPT_OK) unlink(w->tmp);
    archive_write_free(w->a);
    free(w->path), free(w->tmp), free(w);
    return s;
}

void adept_bundle_writer_abort(adept_bundle_writer *w) {
    if (!w) return;
    if (w->a) archive_write_free(w->a);
    if (w->tmp) unlink(w->tmp);
    free(w->path), free(w->tmp), free(w);
}
