/* llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length, bytes, to EOF.
   Encoding follows llama2.c run.c: a leading " " token, UTF-8 runs looked up, <0xXX> byte fallback (id b+3),
   then the pair whose concatenation has the highest score merges first (leftmost on ties). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

size_t tok_bpe_merge_ids(const tok_pmap *merges, int32_t *ids, size_t n);

/* llama2.c merges are implicit (any pair whose concatenation is a token); we enumerate them once at load as
   (left, right) -> merged with rank = the dense rank of the merged token's score (higher score, lower rank),
   so the shared heap merge reproduces "best score first, leftmost on ties" exactly. */
static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static adept_status build_merges(adept_tokenizer *tok, tok_pmap *pm) {
    int32_t V = tok->nids;
    float *sorted = malloc((size_t)V * sizeof *sorted);
    if (!sorted) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", tok->path);
    memcpy(sorted, tok->scores, (size_t)V * sizeof *sorted);
    qsort(sorted, (size_t)V, sizeof *sorted, cmp_desc);
    size_t nu = 0; /* unique scores, descending */
    for (int32_t i = 0; i < V; i++)
        if (!nu || sorted[nu - 1] != sorted[i]) sorted[nu++] = sorted[i];
    adept_status st = tok_pmap_init(pm, (size_t)V * 2);
    for (int32_t id = 0; id < V && st == ADEPT_OK; id++) {
        const char *t = tok->tok[id];
        uint32_t L = tok->tok_len[id];
        /* binary search the dense rank */
        size_t lo = 0, hi = nu;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (sorted[mid] > tok->scores[id]) lo = mid + 1;
            else hi = mid;
        }
        for (uint32_t k = 1; k < L && st == ADEPT_OK; k++) {
            int32_t a = tok_smap_get(&tok->vocab, t, k), b = tok_smap_get(&tok->vocab, t + k, L - k);
            if (a >= 0 && b >= 0) st = tok_pmap_put(pm, a, b, (int32_t)lo, id);
        }
    }
    free(sorted);
    return st;
}

adept_status tok_llama2c_load(const char *path, const unsigned char *data, size_t n, adept_tokenizer *tok) {
    int32_t maxlen;
    if (n < 4) return adept_fail(ADEPT_EFORMAT, "%s: not a llama2.c tokenizer.bin (%zu bytes)", path, n);
    memcpy(&maxlen, data, 4);
    if (maxlen <= 0 || maxlen > (1 << 16))
        return adept_fail(ADEPT_EFORMAT, "%s: not a llama2.c tokenizer.bin (max_token_length %d at offset 0)", path,
                          maxlen);
    /* count the entries first, checking every length against the file size */
    size_t off = 4, count = 0;
    while (off < n) {
        int32_t len;
        float score;
        if (n - off < 8)
            return adept_fail(ADEPT_EFORMAT, "%s: truncated: token %zu at offset %zu needs an 8-byte score and length, "
                              "but the file ends at %zu", path, count, off, n);
        memcpy(&score, data + off, 4);
        memcpy(&len, data + off + 4, 4);
        if (len < 0 || len > maxlen || !isfinite(score))
            return adept_fail(ADEPT_EFORMAT, "%s: token %zu at offset %zu: %s %s (max_token_length %d): not a "
                              "llama2.c tokenizer.bin, or a corrupt one", path, count, off,
                              isfinite(score) ? "length" : "score", isfinite(score) ? "out of range" : "not finite",
                              maxlen);
        if ((size_t)len > n - off - 8)
            return adept_fail(ADEPT_EFORMAT, "%s: truncated: token %zu at offset %zu declares %d bytes at offset %zu, "
                              "but the file ends at %zu", path, count, off, len, off + 8, n);
        off += 8 + (size_t)len;
        count++;
    }
    if (count == 0 || count > (1u << 24))
        return adept_fail(ADEPT_EFORMAT, "%s: %zu tokens: not a llama2.c tokenizer.bin", path, count);
    tok->nids = (int32_t)count;
    tok->tok = calloc(count, sizeof *tok->tok);
    tok->tok_len = calloc(count, sizeof *tok->tok_len);
    tok->scores = calloc(count, sizeof *tok->scores);
    tok->is_special = calloc(count, 1);
    if (!tok->tok || !tok->tok_len || !tok->scores || !tok->is_special)
        return adept_fail(ADEPT_ENOMEM, "%s: out of memory for %zu tokens", path, count);
    ADEPT_TRY(tok_smap_init(&tok->vocab, count));
    ADEPT_TRY(tok_smap_init(&tok->added_map, 4));
    off = 4;
    for (size_t i = 0; i < count; i++) {
        int32_t len;
        memcpy(&tok->scores[i], data + off, 4);
        memcpy(&len, data + off + 4, 4);
        tok->tok[i] = malloc((size_t)len + 1);
        if (!tok->tok[i]) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", path);
        memcpy(tok->tok[i], data + off + 8, (size_t)len);
        tok->tok[i][len] = 0;
        tok->tok_len[i] = (uint32_t)len;
        /* duplicates: the first id wins */
        if (tok_smap_get(&tok->vocab, tok->tok[i], (size_t)len) < 0)
            ADEPT_TRY(tok_smap_put(&tok->vocab, tok->tok[i], (size_t)len, (int32_t)i));
        off += 8 + (size_t)len;
    }
    /* llama2.c's fixed ids: 0 <unk>, 1 BOS, 2 EOS, 3..258 the bytes <0x00>..<0xFF> */
    tok->bos = count > 1 ? 1 : -1;
    tok->eos = count > 2 ? 2 : -1;
    for (size_t i = 0; i < count && i < 3; i++) tok->is_special[i] = 1;
    tok->llama_space_id = tok_smap_get(&tok->vocab, " ", 1);
    tok->hf = calloc(1, sizeof *tok->hf);
    if (!tok->hf) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", path);
    tok->hf->unk_id = -1;
    tok->hf->metaspace_words = tok->llama_space_id >= 0;
    for (size_t i = 0; i < count && tok->hf->metaspace_words; i++)
        for (uint32_t k = 1; k < tok->tok_len[i]; k++)
            if (tok->tok[i][k] == ' ' && tok->tok[i][k - 1] != ' ') { tok->hf->metaspace_words = 0; break; }
    return build_merges(tok, &tok->hf->merges);
}

adept_status tok_llama2c_encode(const adept_tokenizer *tok, const char *text, size_t len, adept_ids *out) {
    if (!len) return ADEPT_OK;
    size_t start = out->n;
    if (tok->llama_space_id >= 0) ADEPT_TRY(adept_ids_push(out, tok->llama_space_id));
    const unsigned char *u = (const unsigned char *)text;
    unsigned char buf[4];
    size_t bl = 0;
    for (size_t i = 0; i < len; i++) {
        /* run.c's grouping: a non-continuation byte starts a run; up to 4 bytes; works on any bytes */
        if ((u[i] & 0xC0) != 0x80) bl = 0;
        buf[bl++] = u[i];
        if (i + 1 < len && (u[i + 1] & 0xC0) == 0x80 && bl < 4) continue;
        int32_t id = tok_smap_get(&tok->vocab, (const char *)buf, bl);
        if (id >= 0) ADEPT_TRY(adept_ids_push(out, id));
        else
            for (size_t b = 0; b < bl; b++) {
                int32_t bid = (int32_t)buf[b] + 3;
                ADEPT_TRY(adept_ids_push(out, bid < tok->nids ? bid : 0));
            }
        bl = 0;
    }
    if (!tok->hf->metaspace_words) {
        size_t m = tok_bpe_merge_ids(&tok->hf->merges, out->ids + start, out->n - start);
        if (m == (size_t)-1) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory merging %zu bytes", len);
        out->n = start + m;
        return ADEPT_OK;
    }
    /* No token has a space after another character, so no merge crosses the point before a " " that follows
       another symbol: merging segment by segment gives the same ids, in linear rather than n log n time. */
    int32_t *ids = out->ids;
    size_t w = start, seg = start, end = out->n;
    for (size_t i = start; i <= end; i++) {
        int cut = i == end || (i > seg && ids[i] == tok->llama_space_id && ids[i - 1] != tok->llama_space_id);
        if (!cut) continue;
        size_t m = tok_bpe_merge_ids(&tok->hf->merges, ids + seg, i - seg);
        if (m == (size_t)-1) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory merging %zu bytes", len);
        memmove(ids + w, ids + seg, m * sizeof *ids);
        w += m;
        seg = i;
    }
    out->n = w;
    return ADEPT_OK;
}

static int parse_byte_token(const char *t, uint32_t len, unsigned char *b) {
    unsigned v;
    if (len != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return 0;
    if (sscanf(t + 3, "%2x", &v) != 1) return 0;
    *b = (unsigned char)v;
    return 1;
}

adept_status tok_llama2c_decode(const adept_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                                tok_buf *out) {
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (tok->is_special[id] && skip_special) continue;
        const char *t = tok->tok[id];
        uint32_t L = tok->tok_len[id];
        unsigned char b;
        if (parse_byte_token(t, L, &b)) ADEPT_TRY(tok_buf_put(out, (const char *)&b, 1));
        else {
            /* the encoder's leading space comes off the first piece, as SentencePiece does */
            if (first && L && t[0] == ' ') { t++; L--; }
            ADEPT_TRY(tok_buf_put(out, t, L));
        }
        if (!tok->is_special[id]) first = 0;
    }
    return ADEPT_OK;
}
