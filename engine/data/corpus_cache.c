/* Tokenizing a corpus once: ids from adept_corpus_tokenize (corpus_tokenize.c: a reader thread plus OpenMP
   workers, order preserved) go to a cache file that later opens map instead of re-tokenizing.

   Cache key (documented choice): a content hash of every source file's on-disk bytes (plus its base name,
   which decides its format), the reading options and adept_tokenizer_digest. Hashing bytes runs at memory/disk
   speed, so every open re-reads the sources once but never re-tokenizes them unless their content changed —
   a same-size, same-mtime edit still invalidates. The file lives in o->cache_dir, $ADEPT_CACHE or
   .cache/adept/ and is written to a temporary name, fsynced and renamed, so a crash leaves no torn file.

   File layout (host byte order): 64-byte header {magic "ADPTCRP1", key, n_docs, n_tokens, skipped,
   tokens_offset, offsets_offset, 0}, int32 tokens, uint64 document offsets (n_docs + 1). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adept/input.h"
#include "adept/log.h"
#include "adept/threads.h"
#include "data/corpus_internal.h"

#define MAGIC "ADPTCRP1"
#define HEADER_BYTES 64

typedef struct cache_header {
    char magic[8];
    uint64_t key, n_docs, n_tokens, skipped, tokens_offset, offsets_offset, reserved;
} cache_header;

typedef struct builder {
    FILE *fp; /* the temporary cache file, or NULL: tokens stay in memory */
    int32_t *mem;
    size_t nmem, capmem;
    uint64_t *offsets;
    size_t noff, capoff;
    uint64_t ntokens;
} builder;

static adept_status push_offset(builder *b) {
    if (b->noff == b->capoff) {
        size_t c = b->capoff ? 2 * b->capoff : 1024;
        uint64_t *p = realloc(b->offsets, c * sizeof *p);
        if (!p) return adept_fail(ADEPT_ENOMEM, "dataset: out of memory for document offsets");
        b->offsets = p, b->capoff = c;
    }
    b->offsets[b->noff++] = b->ntokens;
    return ADEPT_OK;
}

/* The sink of adept_corpus_tokenize: one document's ids. */
static adept_status sink_tokens(void *ctx, const int32_t *t, size_t n) {
    builder *b = ctx;
    if (b->fp) {
        if (n && fwrite(t, sizeof *t, n, b->fp) != n)
            return adept_fail(ADEPT_EIO, "dataset: writing the token cache failed: %s", strerror(errno));
    } else {
        if (b->nmem + n > b->capmem) {
            size_t c = b->capmem ? b->capmem : 1 << 16;
            while (c < b->nmem + n) c *= 2;
            int32_t *p = realloc(b->mem, c * sizeof *p);
            if (!p) return adept_fail(ADEPT_ENOMEM, "dataset: out of memory for %zu tokens", b->nmem + n);
            b->mem = p, b->capmem = c;
        }
        if (n) memcpy(b->mem + b->nmem, t, n * sizeof *t);
        b->nmem += n;
    }
    b->ntokens += n;
    return push_offset(b);
}

static const char *cache_dir(const adept_dataset_options *o) {
    if (o->cache_dir && o->cache_dir[0]) return o->cache_dir;
    const char *e = getenv("ADEPT_CACHE");
    return e && e[0] ? e : ".cache/adept";
}

static adept_status mkdirs(const char *dir) {
    char p[512];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return adept_fail(ADEPT_EINVAL, "dataset: cache dir path too long");
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) return adept_fail(ADEPT_EIO, "dataset: cannot create %s: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0777) != 0 && errno != EEXIST) return adept_fail(ADEPT_EIO, "dataset: cannot create %s: %s", p, strerror(errno));
    return ADEPT_OK;
}

/* Maps a cache file and checks it completely (a corrupt file is rebuilt, never trusted). */
static adept_status map_cache(const char *path, uint64_t key, adept_corpus *c) {
    FILE *fp;
    adept_status os = adept_input_fopen(path, "token cache", &fp);
    if (os == ADEPT_ENOTFOUND) { adept_clear_error(); return ADEPT_ENOTFOUND; }
    if (os != ADEPT_OK) return os;
    struct stat sb;
    cache_header h;
    int ok = fstat(fileno(fp), &sb) == 0 && fread(&h, sizeof h, 1, fp) == 1 && !memcmp(h.magic, MAGIC, 8) &&
             h.key == key && h.n_tokens < ((uint64_t)1 << 40) && h.n_docs < ((uint64_t)1 << 40) &&
             h.tokens_offset == HEADER_BYTES && h.offsets_offset == ((HEADER_BYTES + 4 * h.n_tokens + 7) & ~7ull) &&
             (uint64_t)sb.st_size == h.offsets_offset + 8 * (h.n_docs + 1);
    void *map = MAP_FAILED;
    if (ok) map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fileno(fp), 0);
    fclose(fp);
    if (!ok || map == MAP_FAILED) return adept_fail(ADEPT_EFORMAT, "%s: not a valid cache file for this corpus", path);
    const uint64_t *off = (const uint64_t *)((char *)map + h.offsets_offset);
    int good = off[0] == 0 && off[h.n_docs] == h.n_tokens;
    for (uint64_t i = 0; good && i < h.n_docs; i++) good = off[i] <= off[i + 1];
    if (!good) {
        munmap(map, (size_t)sb.st_size);
        return adept_fail(ADEPT_EFORMAT, "%s: document offsets are corrupt", path);
    }
    c->map = map, c->map_len = (size_t)sb.st_size;
    c->tokens = (const int32_t *)((char *)map + HEADER_BYTES);
    c->offsets = off;
    c->n_docs = (int64_t)h.n_docs, c->n_tokens = (int64_t)h.n_tokens;
    c->stats.skipped = (int64_t)h.skipped;
    return ADEPT_OK;
}

static adept_status finish_cache_file(builder *b, const char *tmp, const char *path, uint64_t key, int64_t skipped) {
    static const char zeros[8] = {0};
    cache_header h = {MAGIC, key, b->noff - 1, b->ntokens, (uint64_t)skipped, HEADER_BYTES, 0, 0};
    h.offsets_offset = (HEADER_BYTES + 4 * b->ntokens + 7) & ~7ull;
    size_t pad = (size_t)(h.offsets_offset - HEADER_BYTES - 4 * b->ntokens);
    int ok = fwrite(zeros, 1, pad, b->fp) == pad && fwrite(b->offsets, 8, b->noff, b->fp) == b->noff &&
             fseek(b->fp, 0, SEEK_SET) == 0 && fwrite(&h, sizeof h, 1, b->fp) == 1 && fflush(b->fp) == 0 &&
             fsync(fileno(b->fp)) == 0;
    ok = fclose(b->fp) == 0 && ok;
    b->fp = NULL;
    if (!ok || rename(tmp, path) != 0) return adept_fail(ADEPT_EIO, "dataset: writing %s failed: %s", path, strerror(errno));
    return ADEPT_OK;
}

/* Hashes each document a limited read hands out (length, then bytes or token ids), in order. The tokens are a
   function of these documents, the options and the tokenizer, so the key is exact; and the read stops at
   max_bytes / max_documents, so a limited open never reads a whole large source just to name its cache. */
static adept_status hash_doc(void *ctx, const adept_doc *d) {
    adept_hash *h = ctx;
    uint64_t head[2] = {d->tokens ? 1u : 0u, d->tokens ? (uint64_t)d->ntokens : (uint64_t)d->len};
    adept_hash_update(h, head, sizeof head);
    if (d->tokens) adept_hash_update(h, d->tokens, d->ntokens * sizeof *d->tokens);
    else adept_hash_update(h, d->text, d->len);
    return ADEPT_OK;
}

static adept_status hash_documents(adept_hash *h, const adept_dataset_options *o, char **files, size_t nfiles,
                                   int32_t sep) {
    adept_read_opts ro = {o->format, o->field ? o->field : "text", o->doc_split, o->token_bits, sep,
                          o->skip_errors, o->max_documents, o->max_bytes};
    adept_read_counts counts;
    memset(&counts, 0, sizeof counts);
    adept_status st = ADEPT_OK;
    for (size_t i = 0; i < nfiles && st == ADEPT_OK && !counts.limit_reached; i++) {
        const char *base = strrchr(files[i], '/');
        base = base ? base + 1 : files[i];
        adept_hash_update(h, base, strlen(base) + 1);
        st = adept_corpus_read_file(files[i], &ro, hash_doc, h, &counts);
    }
    uint64_t tail[2] = {(uint64_t)counts.documents, (uint64_t)counts.skipped};
    adept_hash_update(h, tail, sizeof tail);
    return st;
}

/* The key: source bytes + names + every option that changes the tokens. */
static adept_status corpus_key(const adept_dataset_options *o, char **files, size_t nfiles, int32_t sep, uint64_t *key) {
    adept_hash h;
    adept_hash_init(&h, 0x41444550542d4331ull);
    int64_t opts[8] = {2 /* layout version */, o->format, o->doc_split, o->token_bits, sep, o->skip_errors,
                       o->max_documents, o->max_bytes};
    adept_hash_update(&h, opts, sizeof opts);
    const char *field = o->field ? o->field : "text";
    adept_hash_update(&h, field, strlen(field) + 1);
    uint64_t td = o->tokenizer ? adept_tokenizer_digest(o->tokenizer) : 0;
    adept_hash_update(&h, &td, sizeof td);
    if (o->max_bytes > 0 || o->max_documents > 0) {
        /* a limited read uses a prefix of the sources: key on exactly the documents it hands out */
        ADEPT_TRY(hash_documents(&h, o, files, nfiles, sep));
        *key = adept_hash_final(&h);
        return ADEPT_OK;
    }
    for (size_t i = 0; i < nfiles; i++) {
        const char *base = strrchr(files[i], '/');
        base = base ? base + 1 : files[i];
        adept_hash_update(&h, base, strlen(base) + 1);
        adept_hash fh;
        adept_hash_init(&fh, i);
        ADEPT_TRY(adept_hash_file(&fh, files[i]));
        uint64_t fk[2] = {adept_hash_final(&fh), fh.total};
        adept_hash_update(&h, fk, sizeof fk);
    }
    *key = adept_hash_final(&h);
    return ADEPT_OK;
}

static void builder_free(builder *b) {
    free(b->mem), free(b->offsets);
    if (b->fp) fclose(b->fp);
}

adept_status adept_corpus_build(const adept_dataset_options *o, adept_corpus **out) {
    *out = NULL;
    char **files;
    size_t nfiles;
    ADEPT_TRY(adept_corpus_list(o->paths, o->npaths, &files, &nfiles));
    adept_corpus *c = calloc(1, sizeof *c);
    if (!c) { adept_corpus_list_free(files, nfiles); return adept_fail(ADEPT_ENOMEM, "dataset: out of memory"); }
    c->refcount = 1;
    int32_t eos = o->eos_id >= 0 ? o->eos_id : o->tokenizer ? adept_tokenizer_eos_id(o->tokenizer) : -1;
    int32_t sep = o->sep_token == -1 ? eos : o->sep_token >= 0 ? o->sep_token : -1;
    builder b = {0};
    char path[640] = "", tmp[700] = "";
    uint64_t key = 0;
    adept_status st = ADEPT_OK;
    if (o->cache) {
        st = corpus_key(o, files, nfiles, sep, &key);
        int writable = 0;
        if (st == ADEPT_OK) {
            /* an unwritable cache directory costs speed, not the run: tokenize into memory instead */
            writable = mkdirs(cache_dir(o)) == ADEPT_OK;
            if (!writable) {
                adept_log(ADEPT_LOG_WARN, "%s; continuing without a token cache", adept_last_error());
                adept_clear_error();
            }
        }
        if (st == ADEPT_OK && writable) {
            snprintf(path, sizeof path, "%s/corpus-%016llx.tok", cache_dir(o), (unsigned long long)key);
            adept_status m = map_cache(path, key, c);
            if (m == ADEPT_OK) {
                c->stats.cache_hit = 1;
                snprintf(c->stats.cache_path, sizeof c->stats.cache_path, "%s", path);
                adept_corpus_list_free(files, nfiles);
                if (c->stats.skipped)
                    adept_log(ADEPT_LOG_WARN, "dataset: %lld bad records were skipped when %s was built",
                              (long long)c->stats.skipped, path);
                *out = c;
                return ADEPT_OK;
            }
            if (m != ADEPT_ENOTFOUND) adept_log(ADEPT_LOG_WARN, "%s; rebuilding it", adept_last_error());
            adept_clear_error();
            snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
            static const char zeros[HEADER_BYTES] = {0};
            b.fp = fopen(tmp, "wb");
            if (!b.fp || fwrite(zeros, 1, HEADER_BYTES, b.fp) != HEADER_BYTES) {
                adept_log(ADEPT_LOG_WARN, "dataset: cannot write the token cache %s: %s; continuing without it", tmp,
                          strerror(errno));
                if (b.fp) fclose(b.fp), b.fp = NULL, unlink(tmp);
                tmp[0] = 0;
            }
        }
    }
    adept_tokenize_job job = {0};
    job.files = files, job.nfiles = nfiles;
    job.ro = (adept_read_opts){o->format, o->field ? o->field : "text", o->doc_split, o->token_bits, sep,
                               o->skip_errors, o->max_documents, o->max_bytes};
    job.tok = o->tokenizer, job.vocab = o->tokenizer ? adept_tokenizer_vocab_size(o->tokenizer) : 0;
    job.threads = o->threads > 0 ? o->threads : adept_get_threads();
    for (size_t i = 0; i < nfiles; i++) {
        struct stat sb;
        if (stat(files[i], &sb) == 0) job.disk_total += sb.st_size;
    }
    job.progress = o->progress && job.disk_total > ((int64_t)8 << 20);
    job.sink = sink_tokens, job.sink_ctx = &b;
    if (st == ADEPT_OK) st = push_offset(&b);
    if (st == ADEPT_OK) st = adept_corpus_tokenize(&job);
    adept_read_counts counts = job.counts;
    if (st == ADEPT_OK && counts.skipped)
        adept_log(ADEPT_LOG_WARN, "dataset: skipped %lld bad records (first: %s)", (long long)counts.skipped, counts.first_skip);
    if (st == ADEPT_OK && b.noff <= 1)
        st = adept_fail(ADEPT_ENOTFOUND, "dataset: no documents in %s%s%s", files[0], nfiles > 1 ? " and the other sources" : "",
                        counts.skipped ? " (every record was skipped as bad)" : "");
    c->stats.skipped = counts.skipped;
    c->stats.tokenized_documents = job.tokenized;
    if (st == ADEPT_OK && b.fp) {
        st = finish_cache_file(&b, tmp, path, key, counts.skipped);
        if (st == ADEPT_OK) st = map_cache(path, key, c);
        if (st == ADEPT_OK) snprintf(c->stats.cache_path, sizeof c->stats.cache_path, "%s", path);
    } else if (st == ADEPT_OK) {
        c->own_tokens = b.mem, c->own_offsets = b.offsets;
        c->tokens = b.mem ? b.mem : (const int32_t *)b.offsets; /* any valid pointer when there are no tokens */
        c->offsets = b.offsets;
        c->n_docs = (int64_t)b.noff - 1, c->n_tokens = (int64_t)b.ntokens;
        b.mem = NULL, b.offsets = NULL;
    }
    if (b.fp) { fclose(b.fp); b.fp = NULL; }
    if (tmp[0] && st != ADEPT_OK) unlink(tmp);
    builder_free(&b);
    adept_corpus_list_free(files, nfiles);
    if (st != ADEPT_OK) { adept_corpus_release(c); return st; }
    *out = c;
    return ADEPT_OK;
}

void adept_corpus_retain(adept_corpus *c) { __atomic_add_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL); }

void adept_corpus_release(adept_corpus *c) {
    if (!c || __atomic_sub_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
    if (c->map) munmap(c->map, c->map_len);
    free(c->own_tokens), free(c->own_offsets);
    free(c);
}
