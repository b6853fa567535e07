/* Test fixtures for the corpus tests: a temp dir, files, archives and compressed streams written with
   libarchive's write API (no external tool), a tiny llama2.c-style byte tokenizer.bin, a document collector. */
#ifndef ADEPT_CORPUS_FIXTURES_H
#define ADEPT_CORPUS_FIXTURES_H

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fx_dir[256];

static __attribute__((unused)) const char *fx_tmpdir(void) {
    snprintf(fx_dir, sizeof fx_dir, "/tmp/adept-corpus-XXXXXX");
    if (!mkdtemp(fx_dir)) { perror("mkdtemp"); exit(2); }
    return fx_dir;
}

/* A path under the temp dir (rotating static buffers, so a few can be alive at once). */
static __attribute__((unused)) const char *fx_path(const char *name) {
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", fx_dir, name);
    return b;
}

static __attribute__((unused)) void fx_write(const char *name, const void *data, size_t n) {
    const char *p = fx_path(name);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", p);
    for (char *s = dir + strlen(fx_dir) + 1; *s; s++)
        if (*s == '/') { *s = 0; mkdir(dir, 0777); *s = '/'; }
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n) { perror(p); exit(2); }
    fclose(f);
}
static __attribute__((unused)) void fx_write_str(const char *name, const char *s) { fx_write(name, s, strlen(s)); }

typedef struct fx_member {
    const char *name;
    const void *data;
    size_t len;
} fx_member;

/* format: "tar", "zip" or "raw" (one member: a bare compressed stream); filter: NULL, "gzip", "zstd", "xz". */
static __attribute__((unused)) int fx_archive(const char *name, const char *format, const char *filter, const fx_member *m, int n) {
    struct archive *a = archive_write_new();
    int rc = !strcmp(format, "zip") ? archive_write_set_format_zip(a)
           : !strcmp(format, "raw") ? archive_write_set_format_raw(a)
                                    : archive_write_set_format_pax_restricted(a);
    if (rc == ARCHIVE_OK && filter) {
        rc = !strcmp(filter, "gzip") ? archive_write_add_filter_gzip(a)
           : !strcmp(filter, "zstd") ? archive_write_add_filter_zstd(a)
                                     : archive_write_add_filter_xz(a);
    }
    if (rc == ARCHIVE_OK) rc = archive_write_open_filename(a, fx_path(name));
    for (int i = 0; rc == ARCHIVE_OK && i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_size(e, (la_int64_t)m[i].len);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        rc = archive_write_header(a, e);
        if (rc == ARCHIVE_OK && archive_write_data(a, m[i].data, m[i].len) != (la_ssize_t)m[i].len) rc = ARCHIVE_FATAL;
        archive_entry_free(e);
    }
    if (rc != ARCHIVE_OK) fprintf(stderr, "fx_archive %s: %s\n", name, archive_error_string(a));
    archive_write_close(a);
    archive_write_free(a);
    return rc == ARCHIVE_OK;
}

/* A llama2.c tokenizer.bin with <unk>, <s>, </s> and the 256 byte tokens <0x00>..<0xFF> (vocab 259). */
static __attribute__((unused)) const char *fx_byte_tokenizer(void) {
    const char *p = fx_path("tok259.bin");
    FILE *f = fopen(p, "wb");
    int32_t maxlen = 6;
    fwrite(&maxlen, 4, 1, f);
    for (int i = 0; i < 259; i++) {
        char s[16];
        if (i == 0) snprintf(s, sizeof s, "<unk>");
        else if (i == 1) snprintf(s, sizeof s, "\n<s>\n");
        else if (i == 2) snprintf(s, sizeof s, "\n</s>\n");
        else snprintf(s, sizeof s, "<0x%02X>", i - 3);
        float score = 0;
        int32_t len = (int32_t)strlen(s);
        fwrite(&score, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(s, 1, (size_t)len, f);
    }
    fclose(f);
    return p;
}

/* Collected documents. */
typedef struct fx_docs {
    int n;
    char *text[512];
    size_t len[512];
    uint32_t *toks[512];
    size_t ntoks[512];
    char where[512][160];
    int64_t line[512];
} fx_docs;

static __attribute__((unused)) adept_status fx_collect(void *ctx, const adept_doc *d) {
    fx_docs *c = ctx;
    if (c->n >= 512) return ADEPT_OK;
    int i = c->n++;
    c->text[i] = d->text ? strndup(d->text, d->len) : NULL;
    c->len[i] = d->len;
    c->toks[i] = NULL, c->ntoks[i] = d->ntokens;
    if (d->tokens) {
        c->toks[i] = malloc(d->ntokens * sizeof(uint32_t) + 1);
        memcpy(c->toks[i], d->tokens, d->ntokens * sizeof(uint32_t));
    }
    const char *base = strrchr(d->file, '/');
    snprintf(c->where[i], sizeof c->where[i], "%s%s%s", base ? base + 1 : d->file, d->member ? ":" : "", d->member ? d->member : "");
    c->line[i] = d->line;
    return ADEPT_OK;
}

static __attribute__((unused)) void fx_docs_free(fx_docs *c) {
    for (int i = 0; i < c->n; i++) free(c->text[i]), free(c->toks[i]);
    memset(c, 0, sizeof *c);
}

static __attribute__((unused)) void fx_rm_rf(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

#endif
