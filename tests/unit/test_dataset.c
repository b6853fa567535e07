/* Dataset: packing with EOS into overlapping seq_len windows, -1 padded targets, holdout disjoint by document,
   shuffling determined by the seed, exact cursor resume, cache reuse and invalidation, thread independence. */
#include <dirent.h>
#include <string.h>

#include "adept/dataset.h"
#include "adept/log.h"
#include "check.h"
#include "data/corpus_internal.h"
#include "corpus_fixtures.h"

static adept_dataset_options base(const char **paths, int n) {
    adept_dataset_options o;
    adept_dataset_options_init(&o);
    o.paths = paths, o.npaths = n;
    static char cache[512]; /* a copy: fx_path's buffers rotate */
    snprintf(cache, sizeof cache, "%s", fx_path("cache"));
    o.cache_dir = cache;
    o.progress = 0;
    return o;
}

/* Shard with documents [1 2 3] [4 5] [6 7 8 9] separated by 0. */
static void test_packing(void) {
    uint16_t t[] = {1, 2, 3, 0, 4, 5, 0, 6, 7, 8, 9};
    fx_write("pack.u16", t, sizeof t);
    const char *paths[] = {fx_path("pack.u16")};
    adept_dataset_options o = base(paths, 1);
    o.eos_id = 0, o.seq_len = 4, o.holdout = 0, o.shuffle = 0, o.cache = 0;
    adept_dataset *ds;
    CHECK_OK(adept_dataset_open(&o, &ds));
    if (!ds) return;
    CHECK(adept_dataset_num_documents(ds) == 3);
    CHECK(adept_dataset_num_tokens(ds) == 12); /* 9 tokens + 3 EOS */
    CHECK(adept_dataset_num_windows(ds) == 3);
    adept_tensor *x, *y;
    CHECK_OK(adept_dataset_next_batch(ds, 8, 0, &x, &y));
    if (x) {
        CHECK(x->shape[0] == 3 && x->shape[1] == 4 && x->dtype == ADEPT_I32);
        int32_t ex[12] = {1, 2, 3, 0, 4, 5, 0, 6, 7, 8, 9, 0};
        int32_t ey[12] = {2, 3, 0, 4, 5, 0, 6, 7, 8, 9, 0, -1};
        CHECK(!memcmp(adept_tensor_i32(x), ex, sizeof ex));
        CHECK(!memcmp(adept_tensor_i32(y), ey, sizeof ey));
    }
    adept_tensor_free(x), adept_tensor_free(y);
    adept_dataset_cursor c = adept_dataset_get_cursor(ds);
    CHECK(c.epoch == 0 && c.position == 3);
    CHECK_OK(adept_dataset_next_batch(ds, 8, 0, &x, &y)); /* end of epoch: no batch, next epoch */
    CHECK(x == NULL && y == NULL);
    c = adept_dataset_get_cursor(ds);
    CHECK(c.epoch == 1 && c.position == 0);
    CHECK_OK(adept_dataset_next_batch(ds, 5, 1, &x, &y)); /* wrap: always full batches */
    CHECK(x && x->shape[0] == 5);
    c = adept_dataset_get_cursor(ds);
    CHECK(c.epoch == 2 && c.position == 2);
    adept_tensor_free(x), adept_tensor_free(y);
    c.position = 4;
    CHECK_FAILS(adept_dataset_set_cursor(ds, c), ADEPT_EINVAL);
    CHECK_FAILS(adept_dataset_next_batch(ds, 0, 1, &x, &y), ADEPT_EINVAL);
    adept_dataset_free(ds);

    o.seq_len = 0;
    CHECK_FAILS(adept_dataset_open(&o, &ds), ADEPT_EINVAL);
    o.seq_len = 4, o.holdout = 1.5;
    CHECK_FAILS(adept_dataset_open(&o, &ds), ADEPT_EINVAL);
}

/* 200 documents; document d holds tokens (d+1)*10 + k, so every token names its document. */
static void write_many(const char *name, int ndocs) {
    static uint32_t t[200 * 16];
    size_t n = 0;
    for (int d = 0; d < ndocs; d++) {
        int len = 3 + d % 11;
        for (int k = 0; k < len; k++) t[n++] = (uint32_t)((d + 1) * 100 + k);
        t[n++] = 0;
    }
    fx_write(name, t, n * 4);
}

static int doc_of(int32_t tok) { return tok > 0 ? tok / 100 - 1 : -1; }

static void test_holdout(void) {
    write_many("many.u32", 200);
    const char *paths[] = {fx_path("many.u32")};
    adept_dataset_options o = base(paths, 1);
    o.eos_id = 0, o.seq_len = 8, o.holdout = 0.1, o.seed = 7, o.cache = 0;
    adept_dataset *all, *tr, *ho, *ho2;
    CHECK_OK(adept_dataset_open(&o, &all));
    if (!all) return;
    CHECK_OK(adept_dataset_split(all, ADEPT_SPLIT_TRAIN, &tr));
    CHECK_OK(adept_dataset_split(all, ADEPT_SPLIT_HOLDOUT, &ho));
    CHECK(adept_dataset_num_documents(all) == 200);
    CHECK(adept_dataset_num_documents(ho) == 20 && adept_dataset_num_documents(tr) == 180);
    CHECK(adept_dataset_num_tokens(tr) + adept_dataset_num_tokens(ho) == adept_dataset_num_tokens(all));
    int in_ho[200] = {0}, seen[200] = {0};
    for (int64_t i = 0; i < 20; i++) in_ho[adept_dataset_document_id(ho, i)] = 1, seen[adept_dataset_document_id(ho, i)]++;
    for (int64_t i = 0; i < 180; i++) seen[adept_dataset_document_id(tr, i)]++;
    int disjoint = 1, sorted = 1;
    for (int d = 0; d < 200; d++) disjoint &= seen[d] == 1;
    for (int64_t i = 1; i < 20; i++) sorted &= adept_dataset_document_id(ho, i) > adept_dataset_document_id(ho, i - 1);
    CHECK(disjoint && sorted);
    /* every token of every train batch comes from a train document, and vice versa */
    int leak = 0;
    adept_tensor *x, *y;
    for (int b = 0; b < 40; b++) {
        CHECK_OK(adept_dataset_next_batch(tr, 4, 1, &x, &y));
        if (!x) break;
        for (size_t i = 0; i < adept_tensor_numel(x); i++) {
            int d = doc_of(adept_tensor_i32(x)[i]);
            if (d >= 0 && in_ho[d]) leak++;
        }
        adept_tensor_free(x), adept_tensor_free(y);
    }
    while (adept_dataset_next_batch(ho, 4, 0, &x, &y) == ADEPT_OK && x) {
        for (size_t i = 0; i < adept_tensor_numel(y); i++) {
            int d = doc_of(adept_tensor_i32(y)[i]);
            if (d >= 0 && !in_ho[d]) leak++;
        }
        adept_tensor_free(x), adept_tensor_free(y);
    }
    CHECK(leak == 0);
    /* the split is a function of the seed */
    CHECK_OK(adept_dataset_split(all, ADEPT_SPLIT_HOLDOUT, &ho2));
    int same = 1;
    for (int64_t i = 0; i < 20; i++) same &= adept_dataset_document_id(ho, i) == adept_dataset_document_id(ho2, i);
    CHECK(same);
    adept_dataset_free(ho2);
    adept_dataset *all8;
    o.seed = 8;
    CHECK_OK(adept_dataset_open(&o, &all8));
    CHECK_OK(adept_dataset_split(all8, ADEPT_SPLIT_HOLDOUT, &ho2));
    same = 1;
    for (int64_t i = 0; i < 20; i++) same &= adept_dataset_document_id(ho, i) == adept_dataset_document_id(ho2, i);
    CHECK(!same);
    adept_dataset_free(ho2), adept_dataset_free(all8);
    adept_dataset_free(tr), adept_dataset_free(ho), adept_dataset_free(all);
}

/* Reads n batches of a fresh train view; returns a hash of their contents. */
static uint64_t batches_hash(adept_dataset *ds, int n, int bsz) {
    adept_hash h;
    adept_hash_init(&h, 0);
    for (int b = 0; b < n; b++) {
        adept_tensor *x, *y;
        if (adept_dataset_next_batch(ds, bsz, 1, &x, &y) != ADEPT_OK) return 0;
        adept_hash_update(&h, adept_tensor_data(x), adept_tensor_nbytes(x));
        adept_hash_update(&h, adept_tensor_data(y), adept_tensor_nbytes(y));
        adept_tensor_free(x), adept_tensor_free(y);
    }
    return adept_hash_final(&h);
}

static void test_shuffle_and_cursor(void) {
    const char *paths[] = {fx_path("many.u32")};
    adept_dataset_options o = base(paths, 1);
    o.eos_id = 0, o.seq_len = 8, o.holdout = 0.1, o.cache = 0;
    adept_dataset *a1, *a2, *b1, *t1, *t2, *u1;
    o.seed = 1;
    CHECK_OK(adept_dataset_open(&o, &a1));
    CHECK_OK(adept_dataset_open(&o, &a2));
    o.seed = 2;
    CHECK_OK(adept_dataset_open(&o, &b1));
    if (!a1 || !a2 || !b1) return;
    CHECK_OK(adept_dataset_split(a1, ADEPT_SPLIT_TRAIN, &t1));
    CHECK_OK(adept_dataset_split(a2, ADEPT_SPLIT_TRAIN, &t2));
    CHECK_OK(adept_dataset_split(b1, ADEPT_SPLIT_TRAIN, &u1));
    int64_t nw = adept_dataset_num_windows(t1);
    uint64_t h1 = batches_hash(t1, 30, 5), h2 = batches_hash(t2, 30, 5), h3 = batches_hash(u1, 30, 5);
    CHECK(h1 == h2 && h1 != 0);
    CHECK(h1 != h3);
    /* one epoch of a shuffled view hands out every window exactly once */
    adept_dataset *t3;
    CHECK_OK(adept_dataset_split(a1, ADEPT_SPLIT_TRAIN, &t3));
    int64_t T = 8, rows = 0;
    int32_t *win = malloc((size_t)nw * (T + 1) * 4);
    int64_t *wl = malloc((size_t)nw * 8);
    char *used = calloc((size_t)nw, 1);
    for (int64_t w = 0; w < nw; w++) CHECK_OK(adept_dataset_window(t3, w, win + w * (T + 1), &wl[w]));
    int all_found = 1, in_order = 1;
    adept_tensor *x, *y;
    while (adept_dataset_next_batch(t3, 7, 0, &x, &y) == ADEPT_OK && x) {
        for (int64_t r = 0; r < x->shape[0]; r++, rows++) {
            int32_t *xi = adept_tensor_i32(x) + r * T;
            int64_t found = -1;
            for (int64_t w = 0; w < nw && found < 0; w++)
                if (!used[w] && !memcmp(xi, win + w * (T + 1), (size_t)(wl[w] < T ? wl[w] : T) * 4)) found = w;
            if (found < 0) all_found = 0; else used[found] = 1;
            if (found != rows) in_order = 0;
        }
        adept_tensor_free(x), adept_tensor_free(y);
    }
    CHECK(rows == nw && all_found);
    CHECK(!in_order); /* shuffled */
    free(win), free(wl), free(used);
    adept_dataset_free(t3);

    /* cursor: stop after k batches, restore on a fresh view, continue identically (also across epochs) */
    adept_dataset *r1, *r2;
    CHECK_OK(adept_dataset_split(a1, ADEPT_SPLIT_TRAIN, &r1));
    CHECK_OK(adept_dataset_split(a2, ADEPT_SPLIT_TRAIN, &r2));
    int k = (int)(nw / 6) - 1; /* a few batches short of an epoch of 6-row batches */
    batches_hash(r1, k, 6);
    adept_dataset_cursor c = adept_dataset_get_cursor(r1);
    CHECK(c.epoch == 0 && c.position == 6 * k);
    uint64_t cont1 = batches_hash(r1, 10, 6);
    CHECK_OK(adept_dataset_set_cursor(r2, c));
    uint64_t cont2 = batches_hash(r2, 10, 6);
    CHECK(cont1 == cont2 && cont1 != 0);
    CHECK(adept_dataset_get_cursor(r1).epoch == 1);
    /* peek (take) does not move the cursor, and batch 0 is the first batch of a fresh view */
    adept_dataset_cursor before = adept_dataset_get_cursor(r1);
    adept_tensor *px, *py, *fx, *fy;
    CHECK_OK(adept_dataset_peek_batch(r1, 0, 4, &px, &py));
    CHECK(adept_dataset_get_cursor(r1).epoch == before.epoch && adept_dataset_get_cursor(r1).position == before.position);
    adept_dataset *r3;
    CHECK_OK(adept_dataset_split(a1, ADEPT_SPLIT_TRAIN, &r3));
    CHECK_OK(adept_dataset_next_batch(r3, 4, 1, &fx, &fy));
    CHECK(px && fx && !memcmp(adept_tensor_data(px), adept_tensor_data(fx), adept_tensor_nbytes(px)));
    adept_tensor_free(px), adept_tensor_free(py), adept_tensor_free(fx), adept_tensor_free(fy);
    adept_dataset_free(r1), adept_dataset_free(r2), adept_dataset_free(r3);
    adept_dataset_free(t1), adept_dataset_free(t2), adept_dataset_free(u1);
    adept_dataset_free(a1), adept_dataset_free(a2), adept_dataset_free(b1);
}

static int count_files(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, needle)) n++;
    if (d) closedir(d);
    return n;
}

/* Errors on either side of the reader/worker pipeline, with several batches in flight: no deadlock, the
   error names the file. */
static void test_pipeline_errors(adept_tokenizer *tok) {
    enum { N = 80000 }; /* documents: more than two batches of 32768 */
    static uint16_t t[2 * N];
    for (int i = 0; i < N; i++) t[2 * i] = (uint16_t)(3 + i % 200), t[2 * i + 1] = 2; /* EOS of tok259 */
    t[2 * 40000] = 4000; /* outside the vocabulary (259), in the second batch */
    fx_write("pipe/oov.u16", t, sizeof t);
    const char *paths[] = {fx_path("pipe/oov.u16")};
    adept_dataset_options o = base(paths, 1);
    o.tokenizer = tok, o.cache = 0, o.threads = 2;
    adept_dataset *ds = NULL;
    CHECK_FAILS(adept_dataset_open(&o, &ds), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "oov.u16") && strstr(adept_last_error(), "4000"));
    t[2 * 40000] = 7;
    fx_write("pipe/oov.u16", t, sizeof t);
    CHECK_OK(adept_dataset_open(&o, &ds));
    CHECK(ds && adept_dataset_num_documents(ds) == N);
    adept_dataset_free(ds);
    /* a reader-side error late in a long JSON Lines file */
    size_t cap = (size_t)N * 24 + 64, n = 0;
    char *j = malloc(cap);
    for (int i = 0; i < N; i++) n += (size_t)snprintf(j + n, cap - n, "{\"text\": \"doc %d\"}\n", i);
    n += (size_t)snprintf(j + n, cap - n, "{\"text\": broken\n");
    fx_write("pipe/long.jsonl", j, n);
    free(j);
    paths[0] = fx_path("pipe/long.jsonl");
    CHECK_FAILS(adept_dataset_open(&o, &ds), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "long.jsonl: line 80001: invalid JSON") != NULL);
    o.skip_errors = 1;
    adept_log_set_level(ADEPT_LOG_ERROR);
    CHECK_OK(adept_dataset_open(&o, &ds));
    adept_log_set_level(ADEPT_LOG_INFO);
    adept_dataset_stats s;
    if (ds) adept_dataset_get_stats(ds, &s);
    CHECK(ds && adept_dataset_num_documents(ds) == N && s.skipped == 1 && s.tokenized_documents == N);
    adept_dataset_free(ds);
}

static void test_cache_and_text(void) {
    adept_tokenizer *tok = NULL;
    CHECK_OK(adept_tokenizer_load(fx_byte_tokenizer(), &tok));
    if (!tok) return;
    char text[4096] = "";
    for (int i = 0; i < 40; i++) {
        char line[96];
        snprintf(line, sizeof line, "Document %d says hello %s.\n\n", i, i % 3 ? "world" : "caf\xc3\xa9 \xff");
        strcat(text, line);
    }
    fx_write_str("ct/corpus.txt", text);
    fx_member m = {"data", text, strlen(text)};
    CHECK(fx_archive("ct/more.txt.gz", "raw", "gzip", &m, 1));
    char p0[512], p1[512]; /* own copies: fx_path's buffers rotate */
    snprintf(p0, sizeof p0, "%s", fx_path("ct/corpus.txt"));
    snprintf(p1, sizeof p1, "%s", fx_path("ct/*.gz"));
    const char *paths[] = {p0, p1};
    adept_dataset_options o = base(paths, 2);
    o.tokenizer = tok, o.seq_len = 16, o.holdout = 0.05;
    char cdir[512];
    snprintf(cdir, sizeof cdir, "%s", fx_path("cache_text"));
    o.cache_dir = cdir;
    adept_dataset *d1, *d2, *d3, *d4;
    adept_dataset_stats s;
    CHECK_OK(adept_dataset_open(&o, &d1));
    if (!d1) { adept_tokenizer_free(tok); return; }
    adept_dataset_get_stats(d1, &s);
    CHECK(!s.cache_hit && s.tokenized_documents == 80 && s.cache_path[0]);
    CHECK(adept_dataset_num_documents(d1) == 80);
    CHECK(count_files(fx_path("cache_text"), ".tok") == 1 && count_files(fx_path("cache_text"), ".tmp") == 0);
    /* the tokens of a document are the tokenizer's ids of its text */
    adept_ids ids = {0};
    const char *doc5 = "Document 5 says hello world.";
    CHECK_OK(adept_tokenizer_encode(tok, doc5, strlen(doc5), -1, 0, &ids));
    const int32_t *dt;
    int64_t dn;
    CHECK_OK(adept_dataset_document(d1, 5, &dt, &dn));
    CHECK(dn == (int64_t)ids.n && !memcmp(dt, ids.ids, ids.n * 4));
    adept_ids_free(&ids);
    CHECK(adept_dataset_eos_id(d1) == adept_tokenizer_eos_id(tok));

    /* second open: mapped from the cache, nothing tokenized, same tokens */
    CHECK_OK(adept_dataset_open(&o, &d2));
    adept_dataset_get_stats(d2, &s);
    CHECK(s.cache_hit && s.tokenized_documents == 0);
    CHECK(adept_dataset_num_tokens(d2) == adept_dataset_num_tokens(d1));
    CHECK(batches_hash(d1, 5, 3) == batches_hash(d2, 5, 3));

    /* same size, one byte changed: the content hash misses, the corpus is re-tokenized */
    text[10] = text[10] == 'X' ? 'Y' : 'X';
    fx_write_str("ct/corpus.txt", text);
    CHECK_OK(adept_dataset_open(&o, &d3));
    adept_dataset_get_stats(d3, &s);
    CHECK(!s.cache_hit && s.tokenized_documents == 80);
    CHECK(count_files(fx_path("cache_text"), ".tok") == 2);

    /* a corrupt cache file is rebuilt, not trusted */
    FILE *f = fopen(s.cache_path, "r+b");
    if (f) { fseek(f, 8, SEEK_SET); fputc(0x77, f); fclose(f); }
    adept_log_set_level(ADEPT_LOG_ERROR);
    CHECK_OK(adept_dataset_open(&o, &d4));
    adept_log_set_level(ADEPT_LOG_INFO);
    adept_dataset_get_stats(d4, &s);
    CHECK(!s.cache_hit && s.tokenized_documents == 80);
    adept_dataset_free(d4);

    /* an unusable cache directory (below a regular file) falls back to memory with a warning */
    adept_dataset_options nc = o;
    nc.cache_dir = fx_path("ct/corpus.txt/cache");
    adept_log_set_level(ADEPT_LOG_ERROR);
    CHECK_OK(adept_dataset_open(&nc, &d4));
    adept_log_set_level(ADEPT_LOG_INFO);
    if (d4) adept_dataset_get_stats(d4, &s);
    CHECK(d4 && !s.cache_hit && s.cache_path[0] == 0 && adept_dataset_num_tokens(d4) == adept_dataset_num_tokens(d3));
    adept_dataset_free(d4);

    /* threads do not change the tokens */
    o.cache = 0, o.threads = 1;
    CHECK_OK(adept_dataset_open(&o, &d4));
    o.threads = 4;
    adept_dataset *d5;
    CHECK_OK(adept_dataset_open(&o, &d5));
    CHECK(d4 && d5 && adept_dataset_num_tokens(d4) == adept_dataset_num_tokens(d3));
    int same = 1;
    for (int64_t i = 0; d4 && d5 && i < adept_dataset_num_documents(d4); i++) {
        const int32_t *a, *b;
        int64_t na, nb;
        adept_dataset_document(d4, i, &a, &na);
        adept_dataset_document(d5, i, &b, &nb);
        same &= na == nb && !memcmp(a, b, (size_t)na * 4);
    }
    CHECK(same);
    adept_dataset_free(d4), adept_dataset_free(d5);

    /* errors: an empty corpus; text without a tokenizer; bad records counted with skip */
    fx_write_str("ct/empty.txt", "\n\n   \n");
    const char *ep[] = {fx_path("ct/empty.txt")};
    adept_dataset_options e = base(ep, 1);
    e.tokenizer = tok;
    CHECK_FAILS(adept_dataset_open(&e, &d4), ADEPT_ENOTFOUND);
    CHECK(strstr(adept_last_error(), "no documents") && strstr(adept_last_error(), "empty.txt"));
    e.tokenizer = NULL, ep[0] = fx_path("ct/corpus.txt");
    CHECK_FAILS(adept_dataset_open(&e, &d4), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "tokenizer") != NULL);
    fx_write_str("ct/bad.jsonl", "{\"text\": \"good one\"}\nnot json\n{\"text\": 1}\n{\"text\": \"good two\"}\n");
    ep[0] = fx_path("ct/bad.jsonl");
    e.tokenizer = tok, e.skip_errors = 1;
    adept_log_set_level(ADEPT_LOG_ERROR);
    CHECK_OK(adept_dataset_open(&e, &d4));
    CHECK_OK(adept_dataset_open(&e, &d5)); /* from the cache: the count survives */
    adept_log_set_level(ADEPT_LOG_INFO);
    adept_dataset_get_stats(d4, &s);
    CHECK(s.skipped == 2 && adept_dataset_num_documents(d4) == 2);
    adept_dataset_get_stats(d5, &s);
    CHECK(s.cache_hit && s.skipped == 2);
    adept_dataset_free(d4), adept_dataset_free(d5);
    e.skip_errors = 0;
    CHECK_FAILS(adept_dataset_open(&e, &d4), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "bad.jsonl: line 2") != NULL);

    adept_dataset_free(d1), adept_dataset_free(d2), adept_dataset_free(d3);
    test_pipeline_errors(tok);
    adept_tokenizer_free(tok);
}

/* Data parallelism: ranks 0..N-1 reading shards of b rows see, together and in rank order, the rows one reader
   sees with batch N*b (crossing epochs, shuffled), and every rank's cursor ends where that reader's does. */
static void test_shards(void) {
    uint16_t t[64];
    for (int i = 0; i < 64; i++) t[i] = (uint16_t)(i % 9 == 8 ? 0 : 1 + i % 50);
    fx_write("shard.u16", t, sizeof t);
    const char *paths[] = {fx_path("shard.u16")};
    adept_dataset_options o = base(paths, 1);
    o.eos_id = 0, o.seq_len = 4, o.holdout = 0, o.shuffle = 1, o.seed = 5, o.cache = 0;
    enum { N = 3, B = 2, STEPS = 5 };
    adept_dataset *one, *rank[N];
    CHECK_OK(adept_dataset_open(&o, &one));
    for (int r = 0; r < N; r++) CHECK_OK(adept_dataset_open(&o, &rank[r]));
    if (!one) return;
    for (int s = 0; s < STEPS; s++) { /* 5 global batches of 6 windows cross the epoch of 16 windows */
        adept_tensor *x, *y;
        CHECK_OK(adept_dataset_next_batch(one, N * B, 1, &x, &y));
        for (int r = 0; r < N; r++) {
            adept_tensor *xr, *yr;
            CHECK_OK(adept_dataset_next_shard(rank[r], B, r, N, &xr, &yr));
            CHECK(xr && xr->shape[0] == B);
            if (xr && x) {
                CHECK(!memcmp(adept_tensor_i32(xr), adept_tensor_i32(x) + r * B * 4, B * 4 * sizeof(int32_t)));
                CHECK(!memcmp(adept_tensor_i32(yr), adept_tensor_i32(y) + r * B * 4, B * 4 * sizeof(int32_t)));
            }
            adept_tensor_free(xr), adept_tensor_free(yr);
            adept_dataset_cursor a = adept_dataset_get_cursor(one), c = adept_dataset_get_cursor(rank[r]);
            CHECK(a.epoch == c.epoch && a.position == c.position);
        }
        adept_tensor_free(x), adept_tensor_free(y);
    }
    adept_tensor *x, *y;
    CHECK_FAILS(adept_dataset_next_shard(one, B, N, N, &x, &y), ADEPT_EINVAL); /* rank out of range */
    CHECK_FAILS(adept_dataset_next_shard(one, 0, 0, N, &x, &y), ADEPT_EINVAL);
    adept_dataset_free(one);
    for (int r = 0; r < N; r++) adept_dataset_free(rank[r]);
}

int main(void) {
    fx_tmpdir();
    test_packing();
    test_shards();
    test_holdout();
    test_shuffle_and_cursor();
    test_cache_and_text();
    fx_rm_rf(fx_dir);
    return check_summary();
}
