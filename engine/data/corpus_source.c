/* Corpus sources: streaming documents out of plain text, JSON Lines and token shards, bare or inside
   compressed streams and archives (libarchive), chunk by chunk. Paths are expanded in corpus_paths.c.

   Choices (see also docs/dataset.md):
   - A file is opened by libarchive when its name says archive (.tar, .tgz, .tar.*, .zip, .7z, .cpio) or
     compressed stream (.gz .zst .xz .bz2 .lz4 .lzma), or when its first bytes carry such a magic number;
     otherwise it is read with stdio. Bare compressed streams use only libarchive's "raw" format, so text that
     happens to look like some archive format (mtree) is never misread; a .gz holding a tar must be named
     .tar.gz or .tgz. Compressed members inside archives are not decompressed again (an error).
   - Names starting with '.' and __MACOSX/ are skipped in archives (corpus_paths.c does so in directories).
   - Text documents keep their bytes; blank_line mode joins a document's lines with '\n' (a trailing '\r'
     is dropped), line mode makes each line a document, file mode strips trailing newlines. Whitespace-only
     documents are dropped. */
#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/input.h"
#include "adept/json.h"
#include "adept/log.h"
#include "data/corpus_internal.h"

#define CHUNK (1u << 20)
/* A single document (or line) larger than this is an error, raised while reading (buffers never grow past it),
   so a hostile source (a gzip of zeros without a newline) costs at most a few times this much memory. 64 MiB is
   far above any real document (a long book is a few MB) and still lets every stage hold one whole. */
#define MAX_DOC ((size_t)64 << 20)

enum { SRC_STDIO, SRC_ARCHIVE, SRC_BUFFER };

typedef struct reader {
    int kind;
    FILE *fp;
    struct archive *a;
    const unsigned char *buf;
    size_t buf_len, buf_pos;
    unsigned char *chunk;
    size_t chunk_pos, chunk_end, chunk_cap;
    int eof, data_error;
    const char *file, *member;
    const adept_read_opts *o;
    adept_doc_fn fn;
    void *ctx;
    adept_read_counts *counts;
    int64_t line;
    char *lbuf; /* current line, NUL-terminated */
    size_t llen, lcap;
    char *doc;
    size_t dlen, dcap;
    uint32_t *toks;
    size_t ntoks, tcap;
    int stop;
} reader;

/* ---- names and formats ---- */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

static const char *const compress_ext[] = {".gz", ".zst", ".zstd", ".xz", ".bz2", ".lz4", ".lzma", ".Z", NULL};

static size_t compress_ext_len(const char *name) {
    for (int i = 0; compress_ext[i]; i++)
        if (ends_with(name, compress_ext[i])) return strlen(compress_ext[i]);
    return 0;
}

static int is_archive_name(const char *name) {
    static const char *const ext[] = {".tar", ".tgz", ".tbz", ".tbz2", ".txz", ".tzst", ".zip", ".7z", ".cpio", NULL};
    for (int i = 0; ext[i]; i++)
        if (ends_with(name, ext[i])) return 1;
    size_t c = compress_ext_len(name);
    if (c) {
        size_t n = strlen(name) - c;
        if (n >= 4 && !strncasecmp(name + n - 4, ".tar", 4)) return 1;
    }
    return 0;
}

/* The format of a source named `name` (compression extension already removed when stem_len < strlen). */
static adept_corpus_format detect_format(const adept_read_opts *o, const char *name, size_t stem_len, int *bits) {
    char stem[512];
    snprintf(stem, sizeof stem, "%.*s", (int)(stem_len < sizeof stem ? stem_len : sizeof stem - 1), name);
    int ext_bits = ends_with(stem, ".u32") ? 32 : 16;
    *bits = o->token_bits ? o->token_bits : ext_bits;
    if (o->format != ADEPT_FORMAT_AUTO) return o->format;
    if (ends_with(stem, ".jsonl") || ends_with(stem, ".ndjson") || ends_with(stem, ".json")) return ADEPT_FORMAT_JSONL;
    if (ends_with(stem, ".bin") || ends_with(stem, ".u16") || ends_with(stem, ".u32")) return ADEPT_FORMAT_TOKENS;
    return ADEPT_FORMAT_TEXT;
}

/* ---- errors with location ---- */

static void where(const reader *r, int64_t line, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s", r->file);
    if (r->member && n >= 0 && (size_t)n < cap) n += snprintf(buf + n, cap - (size_t)n, ": %s", r->member);
    if (line > 0 && n >= 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, ": line %lld", (long long)line);
}

/* A bad record: fails naming file, member and line, or (skip_errors) counts it and returns ADEPT_OK. */
static adept_status bad_record(reader *r, adept_status st, int64_t line, const char *fmt, ...) {
    char loc[600], msg[400];
    where(r, line, loc, sizeof loc);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->o->skip_errors) {
        if (r->counts->skipped++ == 0) snprintf(r->counts->first_skip, sizeof r->counts->first_skip, "%s: %s", loc, msg);
        return ADEPT_OK;
    }
    return adept_fail(st, "%s: %s", loc, msg);
}

/* ---- buffered input ---- */

static adept_status fill(reader *r) {
    r->chunk_pos = r->chunk_end = 0;
    if (r->eof) return ADEPT_OK;
    size_t got = 0;
    if (r->kind == SRC_STDIO) {
        got = fread(r->chunk, 1, r->chunk_cap, r->fp);
        if (got < r->chunk_cap && ferror(r->fp)) return adept_fail(ADEPT_EIO, "%s: read error: %s", r->file, strerror(errno));
        r->counts->disk_current += (int64_t)got;
    } else if (r->kind == SRC_ARCHIVE) {
        la_ssize_t n = archive_read_data(r->a, r->chunk, r->chunk_cap);
        if (n < 0) {
            char loc[600];
            where(r, r->line, loc, sizeof loc);
            r->data_error = 1;
            return adept_fail(ADEPT_EFORMAT, "%s: corrupt data: %s", loc, archive_error_string(r->a) ? archive_error_string(r->a) : "read failed");
        }
        got = (size_t)n;
        r->counts->disk_current = archive_filter_bytes(r->a, -1);
    } else {
        got = r->buf_len - r->buf_pos < r->chunk_cap ? r->buf_len - r->buf_pos : r->chunk_cap;
        memcpy(r->chunk, r->buf + r->buf_pos, got);
        r->buf_pos += got;
    }
    if (got == 0) r->eof = 1;
    r->chunk_end = got;
    return ADEPT_OK;
}

static adept_status grow(reader *r, char **p, size_t *cap, size_t need) {
    if (need + 1 <= *cap) return ADEPT_OK;
    if (need > MAX_DOC) {
        char loc[600];
        where(r, r->line, loc, sizeof loc);
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: a document or line longer than %zu bytes (the limit of one "
                          "document; split the source)", loc, MAX_DOC);
    }
    size_t c = *cap ? *cap : 4096;
    while (c < need + 1) c *= 2;
    if (c > MAX_DOC + 1) c = MAX_DOC + 1; /* never reserve past the cap: need <= MAX_DOC fits */
    char *q = realloc(*p, c);
    if (!q) return adept_fail(ADEPT_ENOMEM, "%s: out of memory for a %zu-byte document", r->file, need);
    *p = q, *cap = c;
    return ADEPT_OK;
}

static adept_status doc_append(reader *r, const char *s, size_t n) {
    ADEPT_TRY(grow(r, &r->doc, &r->dcap, r->dlen + n));
    memcpy(r->doc + r->dlen, s, n);
    r->dlen += n;
    return ADEPT_OK;
}

/* Reads the next line (no '\n', no trailing '\r') into lbuf; *have = 0 at the end. */
static adept_status next_line(reader *r, int *have) {
    r->llen = 0;
    int any = 0;
    for (;;) {
        if (r->chunk_pos == r->chunk_end) {
            ADEPT_TRY(fill(r));
            if (r->chunk_end == 0) break;
        }
        const unsigned char *s = r->chunk + r->chunk_pos;
        size_t n = r->chunk_end - r->chunk_pos;
        const unsigned char *nl = memchr(s, '\n', n);
        size_t take = nl ? (size_t)(nl - s) : n;
        ADEPT_TRY(grow(r, &r->lbuf, &r->lcap, r->llen + take));
        memcpy(r->lbuf + r->llen, s, take);
        r->llen += take;
        r->chunk_pos += take + (nl ? 1 : 0);
        any = 1;
        if (nl) break;
    }
    *have = any;
    if (!any) return ADEPT_OK;
    r->line++;
    if (r->llen && r->lbuf[r->llen - 1] == '\r') r->llen--;
    r->lbuf[r->llen] = 0;
    return ADEPT_OK;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return 0;
    return 1;
}

static int limit_hit(reader *r) {
    const adept_read_opts *o = r->o;
    if ((o->max_documents > 0 && r->counts->documents >= o->max_documents) ||
        (o->max_bytes > 0 && r->counts->text_bytes >= o->max_bytes)) {
        r->stop = r->counts->limit_reached = 1;
        return 1;
    }
    return 0;
}

static adept_status emit(reader *r, const char *text, size_t len, const uint32_t *toks, size_t ntoks, int64_t line) {
    if (limit_hit(r)) return ADEPT_OK;
    if (!toks && is_blank(text, len)) return ADEPT_OK;
    adept_doc d = {text, len, toks, ntoks, r->file, r->member, line};
    ADEPT_TRY(r->fn(r->ctx, &d));
    r->counts->documents++;
    r->counts->text_bytes += toks ? (int64_t)(ntoks * sizeof *toks) : (int64_t)len;
    return ADEPT_OK;
}

/* ---- formats ---- */

static adept_status read_text_blank(reader *r) {
    int have;
    int64_t start = 0;
    r->dlen = 0;
    for (;;) {
        ADEPT_TRY(next_line(r, &have));
        if (!have) break;
        if (is_blank(r->lbuf, r->llen)) {
            if (r->dlen) ADEPT_TRY(emit(r, r->doc, r->dlen, NULL, 0, start));
            r->dlen = 0;
        } else {
            if (r->dlen) ADEPT_TRY(doc_append(r, "\n", 1));
            else start = r->line;
            ADEPT_TRY(doc_append(r, r->lbuf, r->llen));
        }
        if (r->stop) return ADEPT_OK;
    }
    if (r->dlen) ADEPT_TRY(emit(r, r->doc, r->dlen, NULL, 0, start));
    return ADEPT_OK;
}

static adept_status read_text_lines(reader *r) {
    int have;
    for (;;) {
        ADEPT_TRY(next_line(r, &have));
        if (!have || r->stop) return ADEPT_OK;
        ADEPT_TRY(emit(r, r->lbuf, r->llen, NULL, 0, r->line)); /* blank lines are dropped by emit */
    }
}

static adept_status read_text_file(reader *r) {
    r->dlen = 0;
    for (;;) {
        ADEPT_TRY(fill(r));
        if (r->chunk_end == 0) break;
        ADEPT_TRY(doc_append(r, (const char *)r->chunk, r->chunk_end));
    }
    while (r->dlen && (r->doc[r->dlen - 1] == '\n' || r->doc[r->dlen - 1] == '\r')) r->dlen--;
    return emit(r, r->doc ? r->doc : "", r->dlen, NULL, 0, 1);
}

static const char *json_type_name(const cJSON *j) {
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "not a string";
}

static adept_status read_jsonl(reader *r) {
    const char *field = r->o->field ? r->o->field : "text";
    int have;
    for (;;) {
        ADEPT_TRY(next_line(r, &have));
        if (!have) break;
        if (is_blank(r->lbuf, r->llen)) continue;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(r->lbuf, r->llen, &end, 0);
        if (!j) {
            size_t at = end && end >= r->lbuf && end <= r->lbuf + r->llen ? (size_t)(end - r->lbuf) + 1 : 0;
            ADEPT_TRY(bad_record(r, ADEPT_EFORMAT, r->line, "invalid JSON (near byte %zu)", at));
            continue;
        }
        if (end && end >= r->lbuf && end <= r->lbuf + r->llen && !is_blank(end, (size_t)(r->lbuf + r->llen - end))) {
            cJSON_Delete(j);
            ADEPT_TRY(bad_record(r, ADEPT_EFORMAT, r->line, "unexpected data after the JSON value (byte %zu)",
                                 (size_t)(end - r->lbuf) + 1));
            continue;
        }
        const cJSON *f = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, field) : NULL;
        adept_status st = ADEPT_OK;
        char dup[600] = "";
        if (adept_json_check_unique(j, "") != ADEPT_OK) { /* message ": duplicate key ..." */
            snprintf(dup, sizeof dup, "%s", adept_last_error() + 2);
            adept_clear_error();
        }
        if (dup[0]) st = bad_record(r, ADEPT_EFORMAT, r->line, "%s", dup);
        else if (!cJSON_IsObject(j)) st = bad_record(r, ADEPT_EFORMAT, r->line, "not a JSON object");
        else if (!f) st = bad_record(r, ADEPT_ENOTFOUND, r->line, "no field '%s'", field);
        else if (!cJSON_IsString(f) || !f->valuestring)
            st = bad_record(r, ADEPT_EFORMAT, r->line, "field '%s' is %s, not a string", field, json_type_name(f));
        else st = emit(r, f->valuestring, strlen(f->valuestring), NULL, 0, r->line);
        cJSON_Delete(j);
        ADEPT_TRY(st);
        if (r->stop) return ADEPT_OK;
    }
    return ADEPT_OK;
}

static adept_status tok_push(reader *r, uint32_t t) {
    if (r->ntoks == r->tcap) {
        if (r->tcap * sizeof(uint32_t) >= MAX_DOC)
            return adept_fail(ADEPT_EUNSUPPORTED, "%s: a token document longer than %zu tokens", r->file, MAX_DOC / 4);
        size_t c = r->tcap ? 2 * r->tcap : 4096;
        uint32_t *p = realloc(r->toks, c * sizeof *p);
        if (!p) return adept_fail(ADEPT_ENOMEM, "%s: out of memory reading tokens", r->file);
        r->toks = p, r->tcap = c;
    }
    r->toks[r->ntoks++] = t;
    return ADEPT_OK;
}

static adept_status read_tokens(reader *r, int bits) {
    if (bits != 16 && bits != 32)
        return adept_fail(ADEPT_EINVAL, "%s: token shards hold 16- or 32-bit ids, not %d-bit", r->file, bits);
    size_t w = (size_t)bits / 8, carry = 0;
    unsigned char part[4];
    int64_t sep = r->o->sep_token;
    r->ntoks = 0;
    for (;;) {
        ADEPT_TRY(fill(r));
        if (r->chunk_end == 0) break;
        size_t i = 0;
        while (i < r->chunk_end) {
            part[carry++] = r->chunk[i++];
            if (carry < w) continue;
            carry = 0;
            uint32_t t = w == 2 ? (uint32_t)part[0] | (uint32_t)part[1] << 8
                                : (uint32_t)part[0] | (uint32_t)part[1] << 8 | (uint32_t)part[2] << 16 | (uint32_t)part[3] << 24;
            if (sep >= 0 && t == (uint32_t)sep) {
                if (r->ntoks) ADEPT_TRY(emit(r, NULL, 0, r->toks, r->ntoks, 0));
                r->ntoks = 0;
                if (r->stop) return ADEPT_OK;
            } else ADEPT_TRY(tok_push(r, t));
        }
    }
    if (carry) ADEPT_TRY(bad_record(r, ADEPT_EFORMAT, 0, "size is not a multiple of %zu bytes (%d-bit token ids); the last %zu bytes are cut off", w, bits, carry));
    if (r->ntoks) ADEPT_TRY(emit(r, NULL, 0, r->toks, r->ntoks, 0));
    return ADEPT_OK;
}

static adept_status read_stream(reader *r, const char *name, size_t stem_len) {
    int bits;
    adept_corpus_format f = detect_format(r->o, name, stem_len, &bits);
    r->line = 0, r->eof = 0, r->chunk_pos = r->chunk_end = 0, r->data_error = 0;
    switch (f) {
    case ADEPT_FORMAT_JSONL: return read_jsonl(r);
    case ADEPT_FORMAT_TOKENS: return read_tokens(r, bits);
    default:
        return r->o->doc_split == ADEPT_DOC_FILE ? read_text_file(r)
             : r->o->doc_split == ADEPT_DOC_LINE ? read_text_lines(r)
                                                 : read_text_blank(r);
    }
}

/* ---- files and archives ---- */

static void reader_free(reader *r) {
    free(r->chunk), free(r->lbuf), free(r->doc), free(r->toks);
}

static adept_status reader_init(reader *r, const char *file, const adept_read_opts *o, adept_doc_fn fn, void *ctx,
                                adept_read_counts *counts, size_t chunk) {
    memset(r, 0, sizeof *r);
    r->file = file, r->o = o, r->fn = fn, r->ctx = ctx, r->counts = counts, r->chunk_cap = chunk;
    if (!(r->chunk = malloc(chunk))) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", file);
    return ADEPT_OK;
}

static int skip_member(const char *name) {
    if (strstr(name, "__MACOSX/")) return 1;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    return base[0] == '.' || base[0] == 0;
}

static adept_status read_archive(reader *r, int raw, int fd) {
    struct archive *a = archive_read_new();
    if (!a) return adept_fail(ADEPT_ENOMEM, "%s: out of memory opening the archive", r->file);
    archive_read_support_filter_all(a);
    if (raw) archive_read_support_format_raw(a);
    else archive_read_support_format_all(a);
    r->a = a, r->kind = SRC_ARCHIVE;
    adept_status st = ADEPT_OK;
    if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK) {
        st = adept_fail(ADEPT_EFORMAT, "%s: cannot open as %s: %s", r->file, raw ? "a compressed stream" : "an archive",
                        archive_error_string(a) ? archive_error_string(a) : "unknown error");
        archive_read_free(a);
        return st;
    }
    char last[512] = "";
    for (;;) {
        struct archive_entry *e;
        int rc = archive_read_next_header(a, &e);
        if (rc == ARCHIVE_EOF) break;
        if (rc < ARCHIVE_WARN) {
            r->member = last[0] ? last : NULL;
            const char *why = archive_error_string(a) ? archive_error_string(a) : "unreadable header";
            st = last[0] ? bad_record(r, ADEPT_EFORMAT, 0, "corrupt archive after this member: %s", why)
                         : bad_record(r, ADEPT_EFORMAT, 0, "corrupt archive: %s", why);
            r->member = NULL;
            break; /* whether skipped or not, the rest of the archive is not trustworthy */
        }
        if (!raw && archive_entry_filetype(e) != AE_IFREG) continue;
        const char *name = archive_entry_pathname(e);
        if (!name) name = "?";
        snprintf(last, sizeof last, "%s", name);
        if (!raw && skip_member(name)) continue;
        r->member = raw ? NULL : last;
        const char *fmt_name = raw ? r->file : last;
        size_t stem = strlen(fmt_name) - (raw ? compress_ext_len(fmt_name) : 0);
        if (!raw && (compress_ext_len(last) || is_archive_name(last))) {
            st = bad_record(r, ADEPT_EUNSUPPORTED, 0, "compressed or archive members inside archives are not read; "
                                                       "extract the outer archive or repack it");
            if (st != ADEPT_OK) break;
            continue;
        }
        st = read_stream(r, fmt_name, stem);
        if (st != ADEPT_OK && r->data_error && r->o->skip_errors) {
            if (r->counts->skipped++ == 0)
                snprintf(r->counts->first_skip, sizeof r->counts->first_skip, "%s", adept_last_error());
            adept_clear_error();
            st = ADEPT_OK;
        }
        if (st != ADEPT_OK || r->stop) break;
    }
    r->member = NULL;
    archive_read_free(a);
    r->a = NULL;
    return st;
}

/* Magic numbers of compressed streams and archives, for files whose name does not say. */
static int sniff(FILE *fp, int *archive) {
    unsigned char m[264] = {0};
    size_t n = fread(m, 1, sizeof m, fp);
    rewind(fp);
    *archive = 0;
    if (n >= 4 && !memcmp(m, "PK\3\4", 4)) return *archive = 1;
    if (n >= 262 && !memcmp(m + 257, "ustar", 5)) return *archive = 1;
    if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) return 1;
    if (n >= 4 && !memcmp(m, "\x28\xb5\x2f\xfd", 4)) return 1;
    if (n >= 6 && !memcmp(m, "\xfd" "7zXZ\0", 6)) return 1;
    if (n >= 3 && !memcmp(m, "BZh", 3)) return 1;
    return 0;
}

adept_status adept_corpus_read_file(const char *file, const adept_read_opts *o, adept_doc_fn fn, void *ctx,
                                    adept_read_counts *counts) {
    reader r;
    ADEPT_TRY(reader_init(&r, file, o, fn, ctx, counts, CHUNK));
    counts->disk_current = 0;
    adept_status st;
    FILE *fp = NULL;
    st = adept_input_fopen(file, "dataset", &fp); /* a FIFO or device is refused here, never read or waited on */
    if (st == ADEPT_OK) {
        int archive = is_archive_name(file), compressed = !archive && compress_ext_len(file);
        if (!archive && !compressed) compressed = sniff(fp, &archive) && !archive;
        if (archive || compressed) {
            st = read_archive(&r, !archive, fileno(fp)); /* libarchive reads the checked descriptor */
            fclose(fp);
        } else {
            r.kind = SRC_STDIO, r.fp = fp;
            st = read_stream(&r, file, strlen(file));
            fclose(fp);
        }
    }
    counts->disk_done += counts->disk_current;
    counts->disk_current = 0;
    reader_free(&r);
    return st;
}

adept_status adept_corpus_read_buffer(const char *name, const void *buf, size_t len, const adept_read_opts *o,
                                      adept_doc_fn fn, void *ctx, adept_read_counts *counts) {
    reader r;
    ADEPT_TRY(reader_init(&r, name, o, fn, ctx, counts, len < CHUNK ? len + 1 : CHUNK));
    r.kind = SRC_BUFFER, r.buf = buf, r.buf_len = len;
    adept_status st = read_stream(&r, name, strlen(name));
    reader_free(&r);
    return st;
}
