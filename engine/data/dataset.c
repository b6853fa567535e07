/* Dataset views: the packed token stream of a split (documents joined with EOS after each one), cut into
   seq_len windows, shuffled per epoch by seed, handed out as int32 batches at an exact, restorable cursor.

   Choices (also in docs/dataset.md):
   - Windows overlap by one token, as in nanoGPT/llm.c loaders: window w is stream[w*T .. w*T+T] (T+1 tokens),
     inputs its first T, targets its last T, so every token after the first is a target exactly once per
     epoch. The last window may be short: its inputs are padded with EOS (0 without one), its targets with -1.
   - holdout: an exact count round(holdout * n_docs) of documents (at least one when holdout > 0 and there
     are two or more documents, never all of them), drawn by a seeded shuffle of document indices; both splits
     keep reading order inside. The ALL view (what adept.dataset returns) holds every document.
   - Shuffling permutes windows, not documents, with a permutation that is a pure function of (seed, split,
     epoch); HOLDOUT is never shuffled so evaluation reads the same windows in the same order every time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adept/rng.h"
#include "data/corpus_internal.h"

struct adept_dataset {
    adept_corpus *c;
    adept_split kind;
    int64_t seq_len;
    uint64_t seed;
    double holdout;
    int shuffle;
    int32_t eos, pad;
    int64_t ndocs;
    uint32_t *docs; /* corpus document indices, NULL for ALL (identity) */
    uint64_t *cum;  /* ndocs + 1: where each document starts in the packed stream */
    int64_t nwin;
    adept_dataset_cursor cur;
    int64_t perm_epoch; /* epoch whose window order is in perm, -1 for none */
    uint32_t *perm;
};

void adept_dataset_options_init(adept_dataset_options *o) {
    memset(o, 0, sizeof *o);
    o->field = "text";
    o->seq_len = 256;
    o->holdout = 0.05;
    o->cache = 1;
    o->shuffle = 1;
    o->eos_id = -1;
    o->sep_token = -1;
    o->progress = 1;
}

static inline int64_t doc_index(const adept_dataset *ds, int64_t i) { return ds->docs ? ds->docs[i] : i; }
static inline int64_t doc_len(const adept_dataset *ds, int64_t i) {
    int64_t d = doc_index(ds, i);
    return (int64_t)(ds->c->offsets[d + 1] - ds->c->offsets[d]);
}

static adept_status make_view(adept_corpus *c, const adept_dataset *proto, adept_split kind, uint32_t *docs,
                              int64_t ndocs, adept_dataset **out) {
    adept_dataset *ds = calloc(1, sizeof *ds);
    uint64_t *cum = malloc((size_t)(ndocs + 1) * sizeof *cum);
    if (!ds || !cum) {
        free(ds), free(cum), free(docs);
        return adept_fail(ADEPT_ENOMEM, "dataset: out of memory for a view of %lld documents", (long long)ndocs);
    }
    *ds = *proto;
    ds->c = c, ds->kind = kind, ds->docs = docs, ds->ndocs = ndocs, ds->cum = cum;
    ds->perm = NULL, ds->perm_epoch = -1, ds->cur = (adept_dataset_cursor){0, 0};
    int64_t sep = ds->eos >= 0 ? 1 : 0;
    cum[0] = 0;
    for (int64_t i = 0; i < ndocs; i++) cum[i + 1] = cum[i] + (uint64_t)(doc_len(ds, i) + sep);
    uint64_t L = cum[ndocs];
    ds->nwin = L >= 2 ? (int64_t)((L - 2) / (uint64_t)ds->seq_len + 1) : 0;
    if (ds->nwin > (int64_t)UINT32_MAX) {
        long long nwin = (long long)ds->nwin;
        free(cum), free(docs), free(ds);
        return adept_fail(ADEPT_EUNSUPPORTED, "dataset: %lld windows are more than this engine indexes (2^32)", nwin);
    }
    adept_corpus_retain(c);
    *out = ds;
    return ADEPT_OK;
}

adept_status adept_dataset_open(const adept_dataset_options *o, adept_dataset **out) {
    *out = NULL;
    if (o->seq_len < 1) return adept_fail(ADEPT_EINVAL, "dataset: seq_len must be a positive integer, got %lld", (long long)o->seq_len);
    if (!(o->holdout >= 0 && o->holdout < 1))
        return adept_fail(ADEPT_EINVAL, "dataset: holdout must be a fraction in [0, 1), got %g", o->holdout);
    if (o->token_bits != 0 && o->token_bits != 16 && o->token_bits != 32)
        return adept_fail(ADEPT_EINVAL, "dataset: token shards hold 16- or 32-bit ids, got %d", o->token_bits);
    if (o->tokenizer && o->eos_id >= adept_tokenizer_vocab_size(o->tokenizer))
        return adept_fail(ADEPT_EINVAL, "dataset: eos id %d is outside the tokenizer's vocabulary (%d)", o->eos_id,
                          adept_tokenizer_vocab_size(o->tokenizer));
    adept_corpus *c;
    ADEPT_TRY(adept_corpus_build(o, &c));
    if (c->n_docs > (int64_t)UINT32_MAX) {
        adept_corpus_release(c);
        return adept_fail(ADEPT_EUNSUPPORTED, "dataset: more than 2^32 documents");
    }
    adept_dataset proto = {0};
    proto.seq_len = o->seq_len, proto.seed = o->seed, proto.holdout = o->holdout, proto.shuffle = o->shuffle;
    proto.eos = o->eos_id >= 0 ? o->eos_id : o->tokenizer ? adept_tokenizer_eos_id(o->tokenizer) : -1;
    proto.pad = proto.eos >= 0 ? proto.eos : 0;
    adept_status st = make_view(c, &proto, ADEPT_SPLIT_ALL, NULL, c->n_docs, out);
    adept_corpus_release(c); /* the view holds its own reference */
    return st;
}

adept_status adept_dataset_split(const adept_dataset *ds, adept_split which, adept_dataset **out) {
    *out = NULL;
    int64_t n = ds->c->n_docs;
    if (which == ADEPT_SPLIT_ALL) {
        return make_view(ds->c, ds, ADEPT_SPLIT_ALL, NULL, n, out);
    }
    if (which != ADEPT_SPLIT_TRAIN && which != ADEPT_SPLIT_HOLDOUT) return adept_fail(ADEPT_EINVAL, "dataset: unknown split %d", which);
    int64_t nh = (int64_t)llround(ds->holdout * (double)n);
    if (ds->holdout > 0 && nh == 0 && n >= 2) nh = 1;
    if (nh >= n) nh = n - 1;
    if (nh < 0) nh = 0;
    /* the first nh documents of a seeded Fisher-Yates shuffle of 0..n-1 are held out */
    uint32_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    unsigned char *held = calloc((size_t)(n ? n : 1), 1);
    if (!order || !held) { free(order), free(held); return adept_fail(ADEPT_ENOMEM, "dataset: out of memory"); }
    for (int64_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    adept_rng r = adept_rng_make(adept_rng_bits(ds->seed, 0x686f6c64 /* "hold" */, 0));
    for (int64_t i = 0; i < nh; i++) {
        int64_t j = i + (int64_t)adept_rng_next_below(&r, (uint64_t)(n - i));
        uint32_t t = order[i]; order[i] = order[j]; order[j] = t;
        held[order[i]] = 1;
    }
    int64_t m = which == ADEPT_SPLIT_HOLDOUT ? nh : n - nh, k = 0;
    for (int64_t i = 0; i < n; i++)
        if (held[i] == (which == ADEPT_SPLIT_HOLDOUT)) order[k++] = (uint32_t)i; /* reading order, in place */
    free(held);
    adept_dataset proto = *ds;
    if (which == ADEPT_SPLIT_HOLDOUT) proto.shuffle = 0;
    return make_view(ds->c, &proto, which, order, m, out);
}

void adept_dataset_free(adept_dataset *ds) {
    if (!ds) return;
    adept_corpus_release(ds->c);
    free(ds->docs), free(ds->cum), free(ds->perm);
    free(ds);
}

adept_split adept_dataset_kind(const adept_dataset *ds) { return ds->kind; }
int64_t adept_dataset_num_documents(const adept_dataset *ds) { return ds->ndocs; }
int64_t adept_dataset_num_tokens(const adept_dataset *ds) { return (int64_t)ds->cum[ds->ndocs]; }
int64_t adept_dataset_num_windows(const adept_dataset *ds) { return ds->nwin; }
int64_t adept_dataset_seq_len(const adept_dataset *ds) { return ds->seq_len; }
int32_t adept_dataset_eos_id(const adept_dataset *ds) { return ds->eos; }
void adept_dataset_get_stats(const adept_dataset *ds, adept_dataset_stats *out) { *out = ds->c->stats; }

adept_status adept_dataset_document(const adept_dataset *ds, int64_t i, const int32_t **tokens, int64_t *n) {
    if (i < 0 || i >= ds->ndocs)
        return adept_fail(ADEPT_EINVAL, "dataset: document %lld out of range [0, %lld)", (long long)i, (long long)ds->ndocs);
    *tokens = ds->c->tokens + ds->c->offsets[doc_index(ds, i)];
    *n = doc_len(ds, i);
    return ADEPT_OK;
}

int64_t adept_dataset_document_id(const adept_dataset *ds, int64_t i) {
    return i >= 0 && i < ds->ndocs ? doc_index(ds, i) : -1;
}

/* Copies window w (up to T+1 tokens) into buf; returns the count. */
static int64_t fill_window(const adept_dataset *ds, int64_t w, int32_t *buf) {
    uint64_t L = ds->cum[ds->ndocs], start = (uint64_t)w * (uint64_t)ds->seq_len;
    uint64_t n = L - start < (uint64_t)ds->seq_len + 1 ? L - start : (uint64_t)ds->seq_len + 1;
    /* the document holding `start`: the last i with cum[i] <= start */
    int64_t lo = 0, hi = ds->ndocs;
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        if (ds->cum[mid] <= start) lo = mid; else hi = mid;
    }
    int64_t i = lo;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t p = start + k;
        while (p >= ds->cum[i + 1]) i++;
        uint64_t off = p - ds->cum[i];
        int64_t len = doc_len(ds, i);
        buf[k] = off < (uint64_t)len ? ds->c->tokens[ds->c->offsets[doc_index(ds, i)] + off] : ds->eos;
    }
    return (int64_t)n;
}

adept_status adept_dataset_window(const adept_dataset *ds, int64_t w, int32_t *tokens, int64_t *n) {
    if (w < 0 || w >= ds->nwin)
        return adept_fail(ADEPT_EINVAL, "dataset: window %lld out of range [0, %lld)", (long long)w, (long long)ds->nwin);
    *n = fill_window(ds, w, tokens);
    return ADEPT_OK;
}

adept_dataset_cursor adept_dataset_get_cursor(const adept_dataset *ds) { return ds->cur; }

adept_status adept_dataset_set_cursor(adept_dataset *ds, adept_dataset_cursor c) {
    if (c.epoch < 0 || c.position < 0 || c.position > ds->nwin)
        return adept_fail(ADEPT_EINVAL, "dataset: cursor {epoch=%lld, position=%lld} is outside this split (%lld windows per epoch)",
                          (long long)c.epoch, (long long)c.position, (long long)ds->nwin);
    ds->cur = c;
    return ADEPT_OK;
}

/* The window at (epoch, position): identity order, or the epoch's seeded permutation. */
static adept_status window_at(adept_dataset *ds, int64_t epoch, int64_t pos, int64_t *w) {
    if (!ds->shuffle) { *w = pos; return ADEPT_OK; }
    if (ds->perm_epoch != epoch) {
        if (!ds->perm && !(ds->perm = malloc((size_t)ds->nwin * sizeof *ds->perm)))
            return adept_fail(ADEPT_ENOMEM, "dataset: out of memory for the order of %lld windows", (long long)ds->nwin);
        for (int64_t i = 0; i < ds->nwin; i++) ds->perm[i] = (uint32_t)i;
        adept_rng r = adept_rng_make(adept_rng_bits(ds->seed, 0x73687566 /* "shuf" */ + (uint64_t)ds->kind, (uint64_t)epoch));
        for (int64_t i = ds->nwin - 1; i > 0; i--) {
            int64_t j = (int64_t)adept_rng_next_below(&r, (uint64_t)i + 1);
            uint32_t t = ds->perm[i]; ds->perm[i] = ds->perm[j]; ds->perm[j] = t;
        }
        ds->perm_epoch = epoch;
    }
    *w = ds->perm[pos];
    return ADEPT_OK;
}

static const char *split_name(adept_split k) { return k == ADEPT_SPLIT_TRAIN ? "train" : k == ADEPT_SPLIT_HOLDOUT ? "holdout" : "whole"; }

/* Fills `rows` windows from *cur (wrapping epochs) into new tensors. */
static adept_status make_batch(adept_dataset *ds, adept_dataset_cursor *cur, int64_t rows, adept_tensor **inputs,
                               adept_tensor **targets) {
    int64_t T = ds->seq_len, shape[2] = {rows, T};
    adept_tensor *x = NULL, *y = NULL;
    int32_t *buf = malloc((size_t)(T + 1) * sizeof *buf);
    adept_status st = buf ? ADEPT_OK : adept_fail(ADEPT_ENOMEM, "dataset: out of memory");
    if (st == ADEPT_OK) st = adept_tensor_new(ADEPT_I32, 2, shape, &x);
    if (st == ADEPT_OK) st = adept_tensor_new(ADEPT_I32, 2, shape, &y);
    for (int64_t r = 0; st == ADEPT_OK && r < rows; r++) {
        if (cur->position >= ds->nwin) cur->epoch++, cur->position = 0;
        int64_t w = 0;
        st = window_at(ds, cur->epoch, cur->position, &w);
        if (st != ADEPT_OK) break;
        int64_t n = fill_window(ds, w, buf);
        int32_t *xi = adept_tensor_i32(x) + r * T, *yi = adept_tensor_i32(y) + r * T;
        for (int64_t t = 0; t < T; t++) {
            xi[t] = t < n ? buf[t] : ds->pad;
            yi[t] = t + 1 < n ? buf[t + 1] : -1;
        }
        cur->position++;
    }
    free(buf);
    if (st != ADEPT_OK) { adept_tensor_free(x), adept_tensor_free(y); return st; }
    *inputs = x, *targets = y;
    return ADEPT_OK;
}

adept_status adept_dataset_read_batch(const adept_dataset *ds, adept_dataset_cursor *c, int64_t batch_size, int wrap,
                                      adept_tensor **inputs, adept_tensor **targets) {
    *inputs = *targets = NULL;
    if (batch_size < 1) return adept_fail(ADEPT_EINVAL, "dataset: batch_size must be a positive integer, got %lld", (long long)batch_size);
    if (ds->nwin == 0)
        return adept_fail(ADEPT_ESTATE, "dataset: the %s split has no window of seq_len %lld (%lld tokens in %lld documents)",
                          split_name(ds->kind), (long long)ds->seq_len, (long long)adept_dataset_num_tokens(ds), (long long)ds->ndocs);
    if (c->epoch < 0 || c->position < 0 || c->position > ds->nwin)
        return adept_fail(ADEPT_EINVAL, "dataset: cursor {epoch=%lld, position=%lld} is outside this split (%lld windows per epoch)",
                          (long long)c->epoch, (long long)c->position, (long long)ds->nwin);
    if (!wrap && c->position >= ds->nwin) {
        c->epoch++, c->position = 0;
        return ADEPT_OK;
    }
    int64_t rows = wrap ? batch_size : (batch_size < ds->nwin - c->position ? batch_size : ds->nwin - c->position);
    adept_dataset_cursor cur = *c;
    /* the permutation cache is a memo of a pure function, so refilling it does not change the view */
    ADEPT_TRY(make_batch((adept_dataset *)ds, &cur, rows, inputs, targets));
    *c = cur;
    return ADEPT_OK;
}

adept_status adept_dataset_next_batch(adept_dataset *ds, int64_t batch_size, int wrap, adept_tensor **inputs,
                                      adept_tensor **targets) {
    return adept_dataset_read_batch(ds, &ds->cur, batch_size, wrap, inputs, targets);
}

/* The cursor moved forward by n windows, crossing epochs. */
static void advance(const adept_dataset *ds, adept_dataset_cursor *c, int64_t n) {
    c->position += n;
    if (c->position >= ds->nwin) c->epoch += c->position / ds->nwin, c->position %= ds->nwin;
}

adept_status adept_dataset_next_shard(adept_dataset *ds, int64_t batch_size, int rank, int world,
                                      adept_tensor **inputs, adept_tensor **targets) {
    *inputs = *targets = NULL;
    if (world < 1 || rank < 0 || rank >= world)
        return adept_fail(ADEPT_EINVAL, "dataset: rank %d of a world of %d processes is not a valid shard", rank, world);
    if (batch_size < 1 || batch_size > INT64_MAX / world)
        return adept_fail(ADEPT_EINVAL, "dataset: batch_size must be a positive integer, got %lld", (long long)batch_size);
    if (ds->nwin == 0)
        return adept_fail(ADEPT_ESTATE, "dataset: the %s split has no window of seq_len %lld (%lld tokens in %lld documents)",
                          split_name(ds->kind), (long long)ds->seq_len, (long long)adept_dataset_num_tokens(ds), (long long)ds->ndocs);
    /* the global batch is world * batch_size windows from the cursor; this rank's rows start rank * batch_size in */
    adept_dataset_cursor cur = ds->cur, end = ds->cur;
    advance(ds, &cur, (int64_t)rank * batch_size);
    advance(ds, &end, (int64_t)world * batch_size);
    ADEPT_TRY(make_batch(ds, &cur, batch_size, inputs, targets));
    ds->cur = end;
    return ADEPT_OK;
}

adept_status adept_dataset_peek_batch(const adept_dataset *ds, int64_t k, int64_t batch_size, adept_tensor **inputs,
                                      adept_tensor **targets) {
    *inputs = *targets = NULL;
    if (batch_size < 1 || k < 0) return adept_fail(ADEPT_EINVAL, "dataset: batch %lld of size %lld is not a valid request", (long long)k, (long long)batch_size);
    if (ds->nwin == 0)
        return adept_fail(ADEPT_ESTATE, "dataset: the %s split has no window of seq_len %lld (%lld tokens in %lld documents)",
                          split_name(ds->kind), (long long)ds->seq_len, (long long)adept_dataset_num_tokens(ds), (long long)ds->ndocs);
    int64_t g = k * batch_size;
    adept_dataset_cursor cur = {g / ds->nwin, g % ds->nwin};
    /* the permutation cache is a memo of a pure function, so refilling it does not change the view */
    return make_batch((adept_dataset *)ds, &cur, batch_size, inputs, targets);
}
