/* The fused byte-level encode path (regex scan -> GPT-2 byte map -> BPE) and its parallel form for one long text:
   chunks are scanned on all threads from arbitrary starting points, then stitched exactly by re-synchronising. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/threads.h"
#include "tok_internal.h"

size_t tok_parallel_min_bytes = (size_t)1 << 20;

/* Maps a piece's bytes to GPT-2 characters (into the reused buffer m) and merges it. */
static adept_status emit(const adept_tokenizer *tok, const char *s, size_t n, tok_buf *m, adept_ids *out) {
    if (!n) return ADEPT_OK;
    if (m->cap < 2 * n + 1) {
        size_t nc = 2 * n + 64;
        char *np = realloc(m->p, nc);
        if (!np) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for a word of %zu bytes", n);
        m->p = np;
        m->cap = nc;
    }
    char *b = m->p;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        b[o] = tok_byte_char[c][0];
        if (tok_byte_char_len[c] == 2) b[o + 1] = tok_byte_char[c][1];
        o += tok_byte_char_len[c];
    }
    return tok_bpe_word(tok, b, o, out);
}

/* One step of the scan from `pos`: the text before the next match (when the pre-tokenizer keeps it) and the
   match, merged into out. *next is the position after the match, or n when no match is left. The scan is a
   function of (text, pos) alone, which is what makes the parallel stitching exact. */
static adept_status step(const adept_tokenizer *tok, const char *s, size_t n, size_t pos, pcre2_match_data *md,
                         tok_buf *m, adept_ids *out, size_t *next) {
    const tok_hf *hf = tok->hf;
    size_t ms, me;
    int rc = tok_pattern_find(hf->fast_pat, s, n, pos, &ms, &me, md);
    if (rc < 0) return ADEPT_EINVAL;
    if (rc == 0) {
        if (hf->fast_keep_gaps) ADEPT_TRY(emit(tok, s + pos, n - pos, m, out));
        *next = n;
        return ADEPT_OK;
    }
    if (hf->fast_keep_gaps && ms > pos) ADEPT_TRY(emit(tok, s + pos, ms - pos, m, out));
    ADEPT_TRY(emit(tok, s + ms, me - ms, m, out));
    *next = me;
    return ADEPT_OK;
}

#define SYNC_STEPS 64 /* positions remembered per chunk for re-synchronisation (it happens within one or two) */

typedef struct chunk {
    size_t start, end, final; /* scanned from start until a step passes end; final = the position reached */
    size_t pos[SYNC_STEPS], ids_at[SYNC_STEPS];
    int nsync;
    adept_ids ids;
    adept_status st;
    char err[256];
} chunk;

static adept_status scan_parallel(const adept_tokenizer *tok, const char *s, size_t n, tok_buf *m, adept_ids *out,
                                  int threads) {
    int K = threads * 4;
    chunk *ch = calloc((size_t)K, sizeof *ch);
    if (!ch) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for %d chunks", K);
    for (int c = 0; c < K; c++) {
        size_t a = (size_t)((double)n * c / K);
        while (a < n && ((unsigned char)s[a] & 0xC0) == 0x80) a++; /* a character boundary */
        ch[c].start = a;
    }
    for (int c = 0; c < K; c++) ch[c].end = c + 1 < K ? ch[c + 1].start : n;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int c = 0; c < K; c++) {
        chunk *k = &ch[c];
        pcre2_match_data *md = tok_match_data();
        tok_buf mb = {0};
        size_t pos = k->start;
        k->st = md ? ADEPT_OK : adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for regex match data");
        while (k->st == ADEPT_OK && pos < k->end) {
            if (k->nsync < SYNC_STEPS) {
                k->pos[k->nsync] = pos;
                k->ids_at[k->nsync++] = k->ids.n;
            }
            k->st = step(tok, s, n, pos, md, &mb, &k->ids, &pos);
        }
        k->final = pos;
        if (k->st != ADEPT_OK) snprintf(k->err, sizeof k->err, "%s", adept_last_error());
        tok_buf_free(&mb);
    }
    adept_status st = ADEPT_OK;
    for (int c = 0; c < K && st == ADEPT_OK; c++)
        if (ch[c].st != ADEPT_OK) st = adept_fail(ch[c].st, "%s", ch[c].err);
    /* stitch: follow the sequential scan; where it lands on a position a chunk started a step from, the chunk's
       ids from there on are exactly what the sequential scan would produce */
    pcre2_match_data *md = tok_match_data();
    if (st == ADEPT_OK && !md) st = adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for regex match data");
    size_t P = 0;
    int c = 0;
    while (st == ADEPT_OK && P < n) {
        while (c + 1 < K && ch[c + 1].start <= P) c++;
        int j = -1;
        for (int i = 0; i < ch[c].nsync; i++)
            if (ch[c].pos[i] == P) { j = i; break; }
        if (j >= 0) {
            for (size_t i = ch[c].ids_at[j]; i < ch[c].ids.n && st == ADEPT_OK; i++) st = adept_ids_push(out, ch[c].ids.ids[i]);
            P = ch[c].final;
            if (c + 1 < K && P < ch[c + 1].start) break; /* cannot happen: a chunk scans past its end */
        } else st = step(tok, s, n, P, md, m, out, &P);
    }
    for (int i = 0; i < K; i++) adept_ids_free(&ch[i].ids);
    free(ch);
    return st;
}

adept_status tok_scan_bytelevel(const adept_tokenizer *tok, const char *s, size_t n, tok_buf *m, adept_ids *out) {
    int threads = adept_get_threads();
    if (n >= tok_parallel_min_bytes && threads > 1 && !omp_in_parallel() && n >= (size_t)threads * 64)
        return scan_parallel(tok, s, n, m, out, threads);
    pcre2_match_data *md = tok_match_data();
    if (!md) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for regex match data");
    size_t pos = 0;
    while (pos < n) ADEPT_TRY(step(tok, s, n, pos, md, m, out, &pos));
    return ADEPT_OK;
}

/* ---- SentencePiece-style words (hf->metaspace_words) --------------------------------------------------- */
/* A word starts at each U+2581 (E2 96 81) that follows another character; no merge crosses such a point. */
static int is_cut(const char *w, size_t i) {
    return w[i] == '\xE2' && w[i + 1] == '\x96' && w[i + 2] == '\x81' &&
           !(i >= 3 && w[i - 3] == '\xE2' && w[i - 2] == '\x96' && w[i - 1] == '\x81');
}

/* Words of w[a, b), where a and b are cut points (or the ends). */
static adept_status words(const adept_tokenizer *tok, const char *w, size_t a, size_t b, adept_ids *out) {
    size_t start = a;
    for (size_t i = a + 1; i + 3 <= b; i++)
        if (is_cut(w, i)) {
            ADEPT_TRY(tok_bpe_word(tok, w + start, i - start, out));
            start = i;
        }
    return tok_bpe_word(tok, w + start, b - start, out);
}

adept_status tok_scan_metaspace(const adept_tokenizer *tok, const char *s, size_t n, adept_ids *out) {
    int threads = adept_get_threads();
    if (!(n >= tok_parallel_min_bytes && threads > 1 && !omp_in_parallel() && n >= (size_t)threads * 64))
        return words(tok, s, 0, n, out);
    int K = threads * 4;
    size_t *cut = malloc(((size_t)K + 1) * sizeof *cut);
    adept_ids *ids = calloc((size_t)K, sizeof *ids);
    adept_status *st = calloc((size_t)K, sizeof *st);
    char (*err)[256] = calloc((size_t)K, sizeof *err);
    if (!cut || !ids || !st || !err) {
        free(cut); free(ids); free(st); free(err);
        return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for %d chunks", K);
    }
    cut[0] = 0;
    cut[K] = n;
    for (int c = 1; c < K; c++) { /* the first cut point at or after c/K of the text (exact boundaries) */
        size_t a = (size_t)((double)n * c / K);
        if (a < cut[c - 1]) a = cut[c - 1];
        while (a < n && !(a >= 1 && a + 3 <= n && is_cut(s, a))) a++;
        cut[c] = a;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int c = 0; c < K; c++) {
        if (cut[c] < cut[c + 1]) st[c] = words(tok, s, cut[c], cut[c + 1], &ids[c]);
        if (st[c] != ADEPT_OK) snprintf(err[c], sizeof err[c], "%s", adept_last_error());
    }
    adept_status res = ADEPT_OK;
    for (int c = 0; c < K && res == ADEPT_OK; c++) {
        if (st[c] != ADEPT_OK) res = adept_fail(st[c], "%s", err[c]);
        for (size_t i = 0; i < ids[c].n && res == ADEPT_OK; i++) res = adept_ids_push(out, ids[c].ids[i]);
    }
    for (int c = 0; c < K; c++) adept_ids_free(&ids[c]);
    free(cut); free(ids); free(st); free(err);
    return res;
}
