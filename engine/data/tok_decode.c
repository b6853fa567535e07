/* Decoding tokenizer.json ids: ids -> token strings -> the decoder chain (ByteLevel, ByteFallback, Fuse, Strip,
   Replace, Metaspace, Sequence) -> text, with the semantics of @huggingface/tokenizers (invalid UTF-8 from
   byte tokens becomes U+FFFD; added tokens pass through ByteLevel verbatim). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static void swap_pieces(tok_pieces *a, tok_pieces *b) {
    tok_pieces t = *a;
    *a = *b;
    *b = t;
}

static adept_status add_lossy(tok_pieces *out, const char *s, size_t n) {
    const char *v;
    size_t vn;
    char *owned;
    ADEPT_TRY(tok_utf8_sanitize(s, n, &v, &vn, &owned));
    adept_status st = tok_pieces_add(out, v, vn);
    free(owned);
    return st;
}

/* ByteLevel: consecutive ordinary tokens are mapped back to bytes and decoded together. */
static adept_status dec_bytelevel(const adept_tokenizer *tok, tok_pieces *in, tok_pieces *out) {
    tok_buf bytes = {0};
    adept_status st = ADEPT_OK;
    for (size_t k = 0; k <= in->n && st == ADEPT_OK; k++) {
        const char *s = k < in->n ? in->buf + in->sp[k].off : NULL;
        size_t n = k < in->n ? in->sp[k].len : 0;
        int flush = k == in->n || tok_smap_get(&tok->added_map, s, n) >= 0;
        if (flush) {
            if (bytes.n) st = add_lossy(out, bytes.p, bytes.n);
            bytes.n = 0;
            if (st == ADEPT_OK && k < in->n) st = tok_pieces_add(out, s, n);
            continue;
        }
        for (size_t i = 0; i < n && st == ADEPT_OK;) {
            int bad, l = tok_utf8_valid_len((const unsigned char *)s + i, n - i, &bad);
            if (!l) l = 1;
            uint32_t cp = (unsigned char)s[i];
            if (l == 2) cp = ((cp & 31u) << 6) | ((unsigned char)s[i + 1] & 63u);
            int b = l <= 2 ? tok_bytelevel_char_to_byte(cp) : -1;
            if (b >= 0) {
                char c = (char)b;
                st = tok_buf_put(&bytes, &c, 1);
            } else st = tok_buf_put(&bytes, s + i, (size_t)l); /* not a byte-level character: kept as is */
            i += (size_t)l;
        }
    }
    tok_buf_free(&bytes);
    return st;
}

static int byte_token(const char *s, size_t n, unsigned char *b) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return 0;
    unsigned v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + (unsigned)d;
    }
    *b = (unsigned char)v;
    return 1;
}

static adept_status dec_bytefallback(tok_pieces *in, tok_pieces *out) {
    tok_buf bytes = {0};
    adept_status st = ADEPT_OK;
    for (size_t k = 0; k <= in->n && st == ADEPT_OK; k++) {
        unsigned char b;
        const char *s = k < in->n ? in->buf + in->sp[k].off : NULL;
        size_t n = k < in->n ? in->sp[k].len : 0;
        if (k < in->n && byte_token(s, n, &b)) {
            st = tok_buf_put(&bytes, (const char *)&b, 1);
            continue;
        }
        if (bytes.n) st = add_lossy(out, bytes.p, bytes.n);
        bytes.n = 0;
        if (st == ADEPT_OK && k < in->n) st = tok_pieces_add(out, s, n);
    }
    tok_buf_free(&bytes);
    return st;
}

static adept_status dec_one(const adept_tokenizer *tok, const tok_dec *d, tok_pieces *io, tok_pieces *tmp) {
    if (d->kind == TOK_DEC_SEQUENCE) {
        for (int i = 0; i < d->nitems; i++) ADEPT_TRY(dec_one(tok, &d->items[i], io, tmp));
        return ADEPT_OK;
    }
    tok_pieces_clear(tmp);
    switch (d->kind) {
    case TOK_DEC_BYTELEVEL: ADEPT_TRY(dec_bytelevel(tok, io, tmp)); break;
    case TOK_DEC_BYTEFALLBACK: ADEPT_TRY(dec_bytefallback(io, tmp)); break;
    case TOK_DEC_FUSE:
        if (io->n) ADEPT_TRY(tok_pieces_add(tmp, io->buf, io->blen)); /* pieces are contiguous in the buffer */
        break;
    case TOK_DEC_STRIP:
        for (size_t k = 0; k < io->n; k++) {
            const char *s = io->buf + io->sp[k].off;
            size_t a = 0, b = io->sp[k].len, cl = d->len;
            for (int i = 0; i < d->start && cl && a + cl <= b && !memcmp(s + a, d->str, cl); i++) a += cl;
            for (int i = 0; i < d->stop && cl && b >= a + cl && !memcmp(s + b - cl, d->str, cl); i++) b -= cl;
            ADEPT_TRY(tok_pieces_add(tmp, s + a, b - a));
        }
        break;
    case TOK_DEC_REPLACE:
    case TOK_DEC_METASPACE: {
        pcre2_match_data *md = tok_match_data();
        if (!md) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory");
        tok_pattern lit = {.kind = TOK_PAT_STRING, .str = (char *)d->repl, .len = (size_t)d->repl_len};
        const tok_pattern *pat = d->kind == TOK_DEC_REPLACE ? &d->pat : &lit;
        const char *rep = d->kind == TOK_DEC_REPLACE ? d->str : " ";
        size_t rlen = d->kind == TOK_DEC_REPLACE ? d->len : 1;
        tok_buf b = {0};
        for (size_t k = 0; k < io->n; k++) {
            const char *s = io->buf + io->sp[k].off;
            size_t n = io->sp[k].len, pos = 0, ms, me;
            int rc;
            b.n = 0;
            adept_status st = tok_buf_put(&b, "", 0);
            while (st == ADEPT_OK && (rc = tok_pattern_find(pat, s, n, pos, &ms, &me, md)) == 1) {
                st = tok_buf_put(&b, s + pos, ms - pos);
                if (st == ADEPT_OK) st = tok_buf_put(&b, rep, rlen);
                pos = me;
            }
            if (st == ADEPT_OK) st = tok_buf_put(&b, s + pos, n - pos);
            size_t skip = d->kind == TOK_DEC_METASPACE && k == 0 && b.n && b.p[0] == ' ' ? 1 : 0;
            if (st == ADEPT_OK) st = tok_pieces_add(tmp, b.p + skip, b.n - skip);
            if (st != ADEPT_OK) {
                tok_buf_free(&b);
                return st;
            }
        }
        tok_buf_free(&b);
        break;
    }
    case TOK_DEC_SEQUENCE: break;
    }
    swap_pieces(io, tmp);
    return ADEPT_OK;
}

adept_status tok_hf_decode(const adept_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                           tok_buf *out) {
    const tok_hf *hf = tok->hf;
    tok_pieces a = {0}, b = {0};
    adept_status st = ADEPT_OK;
    for (size_t i = 0; i < n && st == ADEPT_OK; i++) {
        if (skip_special && tok->is_special[ids[i]]) continue;
        st = tok_pieces_add(&a, tok->tok[ids[i]], tok->tok_len[ids[i]]);
    }
    if (st == ADEPT_OK && hf->dec) st = dec_one(tok, hf->dec, &a, &b);
    if (st == ADEPT_OK) {
        st = tok_buf_put(out, "", 0);
        for (size_t k = 0; k < a.n && st == ADEPT_OK; k++) {
            if (!hf->dec && k) st = tok_buf_put(out, " ", 1); /* no decoder: tokens joined by spaces */
            if (st == ADEPT_OK) st = tok_buf_put(out, a.buf + a.sp[k].off, a.sp[k].len);
        }
    }
    tok_pieces_free(&a);
    tok_pieces_free(&b);
    return st;
}

void tok_dec_free(tok_dec *d) {
    free(d->str);
    tok_pattern_free(&d->pat);
    for (int i = 0; i < d->nitems; i++) tok_dec_free(&d->items[i]);
    free(d->items);
    memset(d, 0, sizeof *d);
}
