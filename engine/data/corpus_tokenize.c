/* Tokenizing a stream of documents on all threads: a reader thread decompresses and splits the sources into
   batches (at most NBUF in flight, so memory stays bounded), while OpenMP workers encode the previous batch;
   ids reach the sink in reading order, so the result never depends on the thread count. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/log.h"
#include "data/corpus_internal.h"

#define BATCH_BYTES ((size_t)8 << 20)
#define BATCH_DOCS 32768
#define NBUF 3 /* one being filled, one queued, one being encoded */

typedef struct entry {
    size_t off, len; /* bytes in the arena; token documents hold uint32 ids there */
    int64_t line;
    int is_tokens;
    char *where; /* "file" or "file: member"; consecutive entries of one file share the string */
} entry;

typedef struct batch {
    char *arena;
    size_t alen, acap;
    entry *e;
    size_t n, cap;
    int64_t documents, text_bytes, disk; /* reader counters when the batch was queued, for progress */
} batch;

typedef struct pipeline {
    adept_tokenize_job *job;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    batch buf[NBUF];
    batch *queue[NBUF], *spare[NBUF];
    int nqueue, nspare;
    batch *cur; /* the reader's batch */
    int done, abort;
    adept_status rstatus;
    char rmsg[1024];
} pipeline;

static void batch_reset(batch *b) {
    for (size_t i = 0; i < b->n; i++)
        if (i == 0 || b->e[i].where != b->e[i - 1].where) free(b->e[i].where);
    b->n = 0, b->alen = 0;
}

static void batch_free(batch *b) {
    batch_reset(b);
    free(b->arena), free(b->e);
}

/* Reader side: waits for a spare batch (or the abort flag). */
static batch *take_spare(pipeline *p) {
    pthread_mutex_lock(&p->mu);
    while (!p->nspare && !p->abort) pthread_cond_wait(&p->cv, &p->mu);
    batch *b = p->abort ? NULL : p->spare[--p->nspare];
    pthread_mutex_unlock(&p->mu);
    return b;
}

static void enqueue(pipeline *p, batch *b) {
    const adept_read_counts *c = &p->job->counts;
    b->documents = c->documents, b->text_bytes = c->text_bytes, b->disk = c->disk_done + c->disk_current;
    pthread_mutex_lock(&p->mu);
    p->queue[p->nqueue++] = b;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static adept_status add_doc(void *ctx, const adept_doc *d) {
    pipeline *p = ctx;
    if (!d->tokens && !p->job->tok)
        return adept_fail(ADEPT_EINVAL, "%s%s%s: text needs a tokenizer (pass tokenizer=, or format=\"tokens\" for token shards)",
                          d->file, d->member ? ": " : "", d->member ? d->member : "");
    batch *b = p->cur;
    if (__atomic_load_n(&p->abort, __ATOMIC_ACQUIRE)) b = NULL, p->cur = NULL; /* the workers failed: stop early */
    else if (!b) b = p->cur = take_spare(p);
    if (!b) return adept_fail(ADEPT_EINTERRUPTED, "dataset: reading stopped");
    size_t bytes = d->tokens ? d->ntokens * sizeof(uint32_t) : d->len;
    size_t off = (b->alen + 3) & ~(size_t)3; /* token ids stay 4-byte aligned */
    if (off + bytes > b->acap) {
        size_t c = b->acap ? b->acap : BATCH_BYTES;
        while (c < off + bytes) c *= 2;
        char *a = realloc(b->arena, c);
        if (!a) return adept_fail(ADEPT_ENOMEM, "dataset: out of memory for a %zu-byte document", bytes);
        b->arena = a, b->acap = c;
    }
    if (b->n == b->cap) {
        size_t c = b->cap ? 2 * b->cap : 1024;
        entry *e = realloc(b->e, c * sizeof *e);
        if (!e) return adept_fail(ADEPT_ENOMEM, "dataset: out of memory");
        b->e = e, b->cap = c;
    }
    char w[600];
    snprintf(w, sizeof w, "%s%s%s", d->file, d->member ? ": " : "", d->member ? d->member : "");
    entry *e = &b->e[b->n];
    if (b->n && !strcmp(w, b->e[b->n - 1].where)) e->where = b->e[b->n - 1].where;
    else if (!(e->where = strdup(w))) return adept_fail(ADEPT_ENOMEM, "dataset: out of memory");
    memcpy(b->arena + off, d->tokens ? (const void *)d->tokens : (const void *)d->text, bytes);
    e->off = off, e->len = d->tokens ? d->ntokens : d->len, e->line = d->line, e->is_tokens = d->tokens != NULL;
    b->alen = off + bytes;
    b->n++;
    if (b->alen >= BATCH_BYTES || b->n >= BATCH_DOCS) enqueue(p, b), p->cur = NULL;
    return ADEPT_OK;
}

static void *reader_main(void *arg) {
    pipeline *p = arg;
    adept_tokenize_job *j = p->job;
    adept_status st = ADEPT_OK;
    for (size_t i = 0; i < j->nfiles && st == ADEPT_OK && !j->counts.limit_reached; i++)
        st = adept_corpus_read_file(j->files[i], &j->ro, add_doc, p, &j->counts);
    if (st != ADEPT_OK) snprintf(p->rmsg, sizeof p->rmsg, "%s", adept_last_error()); /* thread-local: copy it out */
    if (p->cur && p->cur->n && st == ADEPT_OK) enqueue(p, p->cur), p->cur = NULL;
    pthread_mutex_lock(&p->mu);
    p->rstatus = st, p->done = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Encodes one batch on the workers, then hands each document's ids to the sink in order. */
static adept_status encode_batch(adept_tokenize_job *j, batch *b, adept_ids **ids, size_t *nids) {
    if (*nids < b->n) {
        adept_ids *v = realloc(*ids, b->n * sizeof *v);
        if (!v) return adept_fail(ADEPT_ENOMEM, "dataset: out of memory");
        memset(v + *nids, 0, (b->n - *nids) * sizeof *v);
        *ids = v, *nids = b->n;
    }
    adept_ids *out = *ids;
    long long first_bad = -1, n = (long long)b->n;
    adept_status bad_status = ADEPT_OK;
    char bad_msg[512] = "";
#pragma omp parallel for schedule(dynamic, 1) num_threads(j->threads)
    for (long long i = 0; i < n; i++) {
        if (b->e[i].is_tokens) continue;
        out[i].n = 0;
        adept_status st = adept_tokenizer_encode(j->tok, b->arena + b->e[i].off, b->e[i].len, -1, 0, &out[i]);
        if (st != ADEPT_OK) {
#pragma omp critical(adept_corpus_encode_error)
            if (first_bad < 0 || i < first_bad) {
                first_bad = i, bad_status = st;
                snprintf(bad_msg, sizeof bad_msg, "%s", adept_last_error());
            }
        }
    }
    if (first_bad >= 0)
        return adept_fail(bad_status, "%s: line %lld: tokenizing failed: %s", b->e[first_bad].where,
                          (long long)b->e[first_bad].line, bad_msg);
    for (size_t i = 0; i < b->n; i++) {
        const entry *e = &b->e[i];
        if (!e->is_tokens) {
            ADEPT_TRY(j->sink(j->sink_ctx, out[i].ids, out[i].n));
            j->tokenized++;
            continue;
        }
        const uint32_t *t = (const uint32_t *)(const void *)(b->arena + e->off);
        for (size_t k = 0; k < e->len; k++)
            if (t[k] > INT32_MAX || (j->vocab > 0 && t[k] >= (uint32_t)j->vocab))
                return adept_fail(ADEPT_EFORMAT, "%s: token %zu of a document is id %u, outside the vocabulary (%d)",
                                  e->where, k, t[k], j->vocab);
        ADEPT_TRY(j->sink(j->sink_ctx, (const int32_t *)t, e->len));
    }
    return ADEPT_OK;
}

adept_status adept_corpus_tokenize(adept_tokenize_job *j) {
    memset(&j->counts, 0, sizeof j->counts);
    j->tokenized = 0;
    if (j->threads < 1) j->threads = 1;
    pipeline *p = calloc(1, sizeof *p);
    if (!p) return adept_fail(ADEPT_ENOMEM, "dataset: out of memory");
    p->job = j;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < NBUF; i++) p->spare[p->nspare++] = &p->buf[i];
    adept_progress prog;
    if (j->progress) adept_progress_start(&prog, "tokenizing", j->disk_total);
    pthread_t th;
    adept_status st = ADEPT_OK;
    if (pthread_create(&th, NULL, reader_main, p) != 0) {
        st = adept_fail(ADEPT_EIO, "dataset: cannot start the reader thread");
    } else {
        adept_ids *ids = NULL;
        size_t nids = 0;
        for (;;) {
            pthread_mutex_lock(&p->mu);
            while (!p->nqueue && !p->done) pthread_cond_wait(&p->cv, &p->mu);
            batch *b = NULL;
            if (p->nqueue) {
                b = p->queue[0];
                memmove(p->queue, p->queue + 1, (size_t)(--p->nqueue) * sizeof *p->queue);
            }
            pthread_mutex_unlock(&p->mu);
            if (!b) break;
            st = encode_batch(j, b, &ids, &nids);
            if (j->progress && st == ADEPT_OK) {
                char extra[96];
                snprintf(extra, sizeof extra, "%lld docs | %.1f MB text", (long long)b->documents, (double)b->text_bytes / 1e6);
                adept_progress_update(&prog, b->disk < j->disk_total ? b->disk : j->disk_total - 1, extra);
            }
            batch_reset(b);
            pthread_mutex_lock(&p->mu);
            p->spare[p->nspare++] = b;
            if (st != ADEPT_OK) __atomic_store_n(&p->abort, 1, __ATOMIC_RELEASE);
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
            if (st != ADEPT_OK) break;
        }
        pthread_join(th, NULL);
        if (st == ADEPT_OK && p->rstatus != ADEPT_OK) st = adept_fail(p->rstatus, "%s", p->rmsg);
        for (size_t i = 0; i < nids; i++) adept_ids_free(&ids[i]);
        free(ids);
    }
    if (j->progress && st == ADEPT_OK) {
        char extra[96];
        snprintf(extra, sizeof extra, "%lld docs | %.1f MB text", (long long)j->counts.documents,
                 (double)j->counts.text_bytes / 1e6);
        adept_progress_finish(&prog, extra);
    }
    if (p->cur) batch_reset(p->cur);
    for (int i = 0; i < NBUF; i++) batch_free(&p->buf[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    return st;
}
