/* The tokenizer.json encode pipeline, following @huggingface/tokenizers: invalid UTF-8 -> U+FFFD, split on
   added tokens (longest match, lstrip/rstrip), normalize each section, split on normalized added tokens,
   pre-tokenize, BPE each piece, then the post-processor's BOS/EOS. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct section {
    size_t off, len;
    int32_t id; /* an added token, or -1 for text */
} section;

typedef struct sections {
    section *v;
    size_t n, cap;
} sections;

static adept_status sec_push(sections *s, size_t off, size_t len, int32_t id) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        section *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory");
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = (section){off, len, id};
    return ADEPT_OK;
}

static int is_js_space_at(const char *s, size_t n, size_t i, size_t *len) {
    unsigned char c = (unsigned char)s[i];
    *len = 1;
    if ((c >= 9 && c <= 13) || c == 32) return 1;
    if (c < 0x80) return 0;
    int bad, l = tok_utf8_valid_len((const unsigned char *)s + i, n - i, &bad);
    if (!l) return 0;
    uint32_t cp = l == 2 ? ((c & 31u) << 6) | (s[i + 1] & 63u)
                : l == 3 ? ((c & 15u) << 12) | ((s[i + 1] & 63u) << 6) | (s[i + 2] & 63u)
                         : ((c & 7u) << 18) | ((s[i + 1] & 63u) << 12) | ((s[i + 2] & 63u) << 6) | (s[i + 3] & 63u);
    *len = (size_t)l;
    return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* Splits s into text and added-token sections: at each position the longest added token wins (a trie walk in
   the reference); `norm` selects the normalized contents. lstrip/rstrip trim JS white space around matches. */
static adept_status split_added(const tok_hf *hf, const char *s, size_t n, int norm, sections *out) {
    const uint8_t *first = norm ? hf->first_norm : hf->first_raw;
    size_t start = 0, base = out->n;
    for (size_t i = 0; i < n;) {
        if (!first[(unsigned char)s[i]]) { i++; continue; }
        int best = -1;
        size_t blen = 0;
        for (int k = 0; k < hf->nadded; k++) {
            const tok_added *a = &hf->added[k];
            int is_norm = a->ncontent != NULL;
            if (is_norm != norm) continue;
            const char *c = norm ? a->ncontent : a->content;
            size_t cl = norm ? a->nlen : a->len;
            if (cl > blen && cl <= n - i && c[0] == s[i] && !memcmp(c, s + i, cl)) {
                best = k;
                blen = cl;
            }
        }
        if (best < 0) { i++; continue; }
        if (i > start) ADEPT_TRY(sec_push(out, start, i - start, -1));
        ADEPT_TRY(sec_push(out, i, blen, best));
        i += blen;
        start = i;
    }
    if (start < n) ADEPT_TRY(sec_push(out, start, n - start, -1));
    /* lstrip / rstrip: trim the neighbouring text sections */
    for (size_t k = base; k < out->n; k++) {
        if (out->v[k].id < 0) continue;
        const tok_added *a = &hf->added[out->v[k].id];
        if (a->lstrip && k > base && out->v[k - 1].id < 0) {
            section *p = &out->v[k - 1];
            /* trim trailing white space: scan forward, remember where the trailing run starts */
            size_t i = p->off, end = p->off + p->len, run = end, l;
            while (i < end) {
                if (is_js_space_at(s, end, i, &l)) { if (run == end || run > i) run = run == end ? i : run; }
                else run = end;
                i += l;
            }
            p->len = run - p->off;
        }
        if (a->rstrip && k + 1 < out->n && out->v[k + 1].id < 0) {
            section *q = &out->v[k + 1];
            size_t l;
            while (q->len && is_js_space_at(s, q->off + q->len, q->off, &l)) {
                q->off += l;
                q->len -= l;
            }
        }
    }
    /* convert added indices to ids */
    for (size_t k = base; k < out->n; k++)
        if (out->v[k].id >= 0) out->v[k].id = hf->added[out->v[k].id].id;
    return ADEPT_OK;
}

typedef struct scratch {
    tok_buf norm, tmp;
    tok_pieces a, b;
    sections sub;
} scratch;

static adept_status encode_section(const adept_tokenizer *tok, const char *s, size_t n, int section_index,
                                   scratch *w, adept_ids *out) {
    const tok_hf *hf = tok->hf;
    const char *t = s;
    size_t tn = n;
    if (hf->norm) {
        w->norm.n = 0;
        ADEPT_TRY(tok_buf_put(&w->norm, s, n));
        ADEPT_TRY(tok_normalize(hf->norm, &w->norm, &w->tmp));
        t = w->norm.p;
        tn = w->norm.n;
    }
    if (!tn) return ADEPT_OK;
    w->sub.n = 0;
    if (hf->n_norm_added) ADEPT_TRY(split_added(hf, t, tn, 1, &w->sub));
    else ADEPT_TRY(sec_push(&w->sub, 0, tn, -1));
    for (size_t k = 0; k < w->sub.n; k++) {
        const section *q = &w->sub.v[k];
        if (!q->len) continue;
        if (q->id >= 0) {
            ADEPT_TRY(adept_ids_push(out, q->id));
            continue;
        }
        if (hf->fast_pat) {
            ADEPT_TRY(tok_scan_bytelevel(tok, t + q->off, q->len, &w->tmp, out));
            continue;
        }
        if (!hf->pre && hf->metaspace_words) {
            ADEPT_TRY(tok_scan_metaspace(tok, t + q->off, q->len, out));
            continue;
        }
        if (!hf->pre) {
            ADEPT_TRY(tok_bpe_word(tok, t + q->off, q->len, out));
            continue;
        }
        tok_pieces_clear(&w->a);
        ADEPT_TRY(tok_pieces_add(&w->a, t + q->off, q->len));
        ADEPT_TRY(tok_pretokenize(hf->pre, &w->a, &w->b, section_index == 0));
        for (size_t p = 0; p < w->a.n; p++) ADEPT_TRY(tok_bpe_word(tok, w->a.buf + w->a.sp[p].off, w->a.sp[p].len, out));
    }
    return ADEPT_OK;
}

adept_status tok_hf_encode(const adept_tokenizer *tok, const char *text, size_t len, int add_bos, int add_eos,
                           adept_ids *out) {
    const tok_hf *hf = tok->hf;
    if (add_bos == -1) {
        for (int i = 0; i < hf->n_tpl_pre; i++) ADEPT_TRY(adept_ids_push(out, hf->tpl_pre[i]));
    } else if (add_bos == 1) {
        if (hf->n_tpl_pre)
            for (int i = 0; i < hf->n_tpl_pre; i++) ADEPT_TRY(adept_ids_push(out, hf->tpl_pre[i]));
        else if (tok->bos >= 0) ADEPT_TRY(adept_ids_push(out, tok->bos));
    }
    const char *s;
    size_t n;
    char *owned;
    ADEPT_TRY(tok_utf8_sanitize(text, len, &s, &n, &owned));
    scratch w;
    memset(&w, 0, sizeof w);
    sections top = {0};
    adept_status st = split_added(hf, s, n, 0, &top);
    int idx = 0;
    for (size_t k = 0; k < top.n && st == ADEPT_OK; k++, idx++) {
        if (!top.v[k].len) continue;
        if (top.v[k].id >= 0) st = adept_ids_push(out, top.v[k].id);
        else st = encode_section(tok, s + top.v[k].off, top.v[k].len, idx, &w, out);
    }
    free(top.v);
    free(owned);
    tok_buf_free(&w.norm);
    tok_buf_free(&w.tmp);
    tok_pieces_free(&w.a);
    tok_pieces_free(&w.b);
    free(w.sub.v);
    ADEPT_TRY(st);
    if (add_eos == -1) {
        for (int i = 0; i < hf->n_tpl_post; i++) ADEPT_TRY(adept_ids_push(out, hf->tpl_post[i]));
    } else if (add_eos == 1) {
        if (hf->n_tpl_post)
            for (int i = 0; i < hf->n_tpl_post; i++) ADEPT_TRY(adept_ids_push(out, hf->tpl_post[i]));
        else if (tok->eos >= 0) ADEPT_TRY(adept_ids_push(out, tok->eos));
    }
    return ADEPT_OK;
}

/* Computes the normalized contents of normalized added tokens and the first-byte filters. */
adept_status tok_hf_prepare(adept_tokenizer *tok, const char *path) {
    tok_hf *hf = tok->hf;
    tok_buf b = {0}, tmp = {0};
    adept_status st = ADEPT_OK;
    for (int k = 0; k < hf->nadded && st == ADEPT_OK; k++) {
        tok_added *a = &hf->added[k];
        if (a->normalized && hf->norm) {
            b.n = 0;
            st = tok_buf_put(&b, a->content, a->len);
            if (st == ADEPT_OK) st = tok_normalize(hf->norm, &b, &tmp);
            if (st == ADEPT_OK && b.n) {
                a->ncontent = malloc(b.n + 1);
                if (!a->ncontent) st = adept_fail(ADEPT_ENOMEM, "%s: out of memory", path);
                else {
                    memcpy(a->ncontent, b.p, b.n + 1);
                    a->nlen = b.n;
                    hf->first_norm[(unsigned char)b.p[0]] = 1;
                    hf->n_norm_added++;
                }
            }
        } else hf->first_raw[(unsigned char)a->content[0]] = 1;
    }
    tok_buf_free(&b);
    tok_buf_free(&tmp);
    const tok_pretok *pre = hf->pre;
    if (pre && pre->kind == TOK_PRE_BYTELEVEL && pre->use_regex && !pre->add_prefix_space) {
        hf->fast_pat = &pre->pat; /* GPT-2 */
        hf->fast_keep_gaps = 0;
    } else if (pre && pre->kind == TOK_PRE_SEQUENCE && pre->nitems == 2 && pre->items[0].kind == TOK_PRE_SPLIT &&
               pre->items[0].behavior == TOK_SPLIT_ISOLATED && !pre->items[0].invert &&
               pre->items[1].kind == TOK_PRE_BYTELEVEL && !pre->items[1].use_regex &&
               !pre->items[1].add_prefix_space) {
        hf->fast_pat = &pre->items[0].pat; /* Llama-3, Qwen2/3 */
        hf->fast_keep_gaps = 1;
    }
    if (!hf->pre) {
        hf->metaspace_words = 1;
        for (int32_t id = 0; id < tok->nids && hf->metaspace_words; id++) {
            const char *v = tok->tok[id];
            uint32_t L = v ? tok->tok_len[id] : 0;
            int seen_other = 0;
            for (uint32_t i = 0; i < L; i++) {
                int meta = i + 3 <= L && !memcmp(v + i, "\xE2\x96\x81", 3);
                if (meta && seen_other) { hf->metaspace_words = 0; break; }
                if (meta) i += 2;
                else seen_other = 1;
            }
        }
    }
    return st;
}
