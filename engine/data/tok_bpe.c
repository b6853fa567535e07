/* BPE merging: the lowest-rank adjacent pair merges first, leftmost on ties (a binary heap over a linked list
   of symbols, as Hugging Face's Word::merge_all does), plus a per-thread cache of whole-word results. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends; id == -1 marks a merged-away symbol */
} sym;

static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

/* Merges ids[0..n) in place by the ranks of `merges`; returns the new length, or (size_t)-1 on no memory. */
size_t tok_bpe_merge_ids(const tok_pmap *merges, int32_t *ids, size_t n);
size_t tok_bpe_merge_ids(const tok_pmap *merges, int32_t *ids, size_t n) {
    if (n < 2 || !merges->slots) return n;
    sym sbuf[64];
    uint64_t hbuf[128];
    sym *s = n <= 64 ? sbuf : malloc(n * sizeof *s);
    /* every merge pushes at most two pairs, so 3n bounds the heap */
    uint64_t *h = n <= 42 ? hbuf : malloc(3 * n * sizeof *h);
    if (!s || !h) {
        if (s != sbuf) free(s);
        if (h != hbuf) free(h);
        return (size_t)-1;
    }
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) s[i] = (sym){ids[i], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    for (size_t i = 0; i + 1 < n; i++) {
        const tok_pmap_slot *m = tok_pmap_get(merges, ids[i], ids[i + 1]);
        if (m) heap_push(h, &hn, ((uint64_t)(uint32_t)m->rank << 32) | i);
    }
    while (hn) {
        uint64_t top = heap_pop(h, &hn);
        int32_t rank = (int32_t)(top >> 32);
        size_t pos = (uint32_t)top;
        if (s[pos].id < 0 || s[pos].next < 0) continue;
        int32_t nx = s[pos].next;
        const tok_pmap_slot *m = tok_pmap_get(merges, s[pos].id, s[nx].id);
        if (!m || m->rank != rank) continue; /* stale: one side merged since this pair was pushed */
        s[pos].id = m->id;
        s[pos].next = s[nx].next;
        if (s[nx].next >= 0) s[s[nx].next].prev = (int32_t)pos;
        s[nx].id = -1;
        if (s[pos].prev >= 0) {
            int32_t pv = s[pos].prev;
            const tok_pmap_slot *a = tok_pmap_get(merges, s[pv].id, s[pos].id);
            if (a) heap_push(h, &hn, ((uint64_t)(uint32_t)a->rank << 32) | (uint32_t)pv);
        }
        if (s[pos].next >= 0) {
            const tok_pmap_slot *b = tok_pmap_get(merges, s[pos].id, s[s[pos].next].id);
            if (b) heap_push(h, &hn, ((uint64_t)(uint32_t)b->rank << 32) | pos);
        }
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = s[i].next) ids[k++] = s[i].id;
    if (s != sbuf) free(s);
    if (h != hbuf) free(h);
    return k;
}

/* ---- per-thread word cache ------------------------------------------------------------------------- */
#define CACHE_SLOTS 32768
#define CACHE_WORD 30
#define CACHE_IDS 12
typedef struct cache_entry {
    uint64_t serial, hash;
    uint8_t wlen, nids;
    char w[CACHE_WORD];
    int32_t ids[CACHE_IDS];
} cache_entry;
/* One table per thread, allocated on first use and kept for the thread's life (OpenMP threads persist). */
static _Thread_local cache_entry *word_cache;

static adept_status push_ids(adept_ids *out, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) ADEPT_TRY(adept_ids_push(out, ids[i]));
    return ADEPT_OK;
}

static adept_status bpe_word_uncached(const adept_tokenizer *tok, const char *w, size_t n, int32_t **res,
                                      size_t *nres, int32_t *stackbuf, size_t stackcap) {
    const tok_hf *hf = tok->hf;
    /* symbols: at most one per byte (byte fallback) */
    int32_t *ids = n <= stackcap ? stackbuf : malloc(n * sizeof *ids);
    if (!ids) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for a word of %zu bytes", n);
    size_t k = 0;
    int pending_unk = 0;
    const unsigned char *u = (const unsigned char *)w;
    for (size_t i = 0; i < n;) {
        size_t cl = 1;
        if (u[i] >= 0xF0) cl = 4;
        else if (u[i] >= 0xE0) cl = 3;
        else if (u[i] >= 0xC0) cl = 2;
        if (i + cl > n) cl = n - i;
        int32_t id = tok_smap_get(&tok->vocab, w + i, cl);
        if (id >= 0) {
            if (pending_unk) { ids[k++] = hf->unk_id; pending_unk = 0; }
            ids[k++] = id;
        } else {
            int ok = hf->byte_fallback;
            for (size_t b = 0; ok && b < cl; b++) ok = hf->byte_ids[u[i + b]] >= 0;
            if (ok) {
                for (size_t b = 0; b < cl; b++) ids[k++] = hf->byte_ids[u[i + b]];
            } else if (hf->unk_id >= 0) {
                if (pending_unk && !hf->fuse_unk) ids[k++] = hf->unk_id;
                pending_unk = 1;
            } /* no unk token: the character is dropped, as the reference does */
        }
        i += cl;
    }
    if (pending_unk) ids[k++] = hf->unk_id;
    size_t m = tok_bpe_merge_ids(&hf->merges, ids, k);
    if (m == (size_t)-1) {
        if (ids != stackbuf) free(ids);
        return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory merging a word of %zu bytes", n);
    }
    *res = ids;
    *nres = m;
    return ADEPT_OK;
}

adept_status tok_bpe_word(const adept_tokenizer *tok, const char *w, size_t n, adept_ids *out) {
    if (!n) return ADEPT_OK;
    const tok_hf *hf = tok->hf;
    /* the cache holds final results, so it is consulted first (before ignore_merges' whole-word look-up) */
    cache_entry *e = NULL;
    uint64_t h = 0;
    if (n <= CACHE_WORD) {
        if (!word_cache) word_cache = calloc(CACHE_SLOTS, sizeof *word_cache);
        if (word_cache) {
            h = tok_hash_bytes(w, n);
            e = &word_cache[h & (CACHE_SLOTS - 1)];
            if (e->serial == tok->serial && e->hash == h && e->wlen == n && !memcmp(e->w, w, n))
                return push_ids(out, e->ids, e->nids);
        }
    }
    int32_t stackbuf[256], *ids = stackbuf;
    size_t m = 0;
    int32_t whole = hf->ignore_merges ? tok_smap_get(&tok->vocab, w, n) : -1;
    if (whole >= 0) {
        stackbuf[0] = whole;
        m = 1;
    } else ADEPT_TRY(bpe_word_uncached(tok, w, n, &ids, &m, stackbuf, 256));
    adept_status st = push_ids(out, ids, m);
    if (e && m <= CACHE_IDS) {
        e->serial = tok->serial;
        e->hash = h;
        e->wlen = (uint8_t)n;
        memcpy(e->w, w, n);
        e->nids = (uint8_t)m;
        memcpy(e->ids, ids, m * sizeof *ids);
    }
    if (ids != stackbuf) free(ids);
    return st;
}
