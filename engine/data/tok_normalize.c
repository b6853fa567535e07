/* Normalizers of tokenizer.json: Unicode NFC/NFD/NFKC/NFKD (utf8proc), Lowercase, Strip, Prepend, Replace and
   Sequence. Each rewrites one section of text (between added tokens) in place in a byte buffer. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

static void swap_buf(tok_buf *a, tok_buf *b) {
    tok_buf t = *a;
    *a = *b;
    *b = t;
}

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

static adept_status unicode_form(tok_buf *s, tok_buf *tmp, utf8proc_option_t opts) {
    if (is_ascii(s->p, s->n)) return ADEPT_OK; /* ASCII is invariant under every normal form */
    utf8proc_uint8_t *out = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s->p, (utf8proc_ssize_t)s->n, &out,
                                      opts | UTF8PROC_STABLE);
    if (r < 0) {
        free(out);
        return adept_fail(ADEPT_EINVAL, "tokenizer: Unicode normalization failed: %s", utf8proc_errmsg(r));
    }
    tmp->n = 0;
    adept_status st = tok_buf_put(tmp, (const char *)out, (size_t)r);
    free(out);
    if (st == ADEPT_OK) swap_buf(s, tmp);
    return st;
}

static int is_js_space(int32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

static adept_status strip(tok_buf *s, int left, int right) {
    size_t a = 0, b = s->n;
    while (left && a < b) {
        int32_t c;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s->p + a, (utf8proc_ssize_t)(b - a), &c);
        if (l <= 0 || !is_js_space(c)) break;
        a += (size_t)l;
    }
    while (right && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)s->p[k] & 0xC0) == 0x80) k--;
        int32_t c;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s->p + k, (utf8proc_ssize_t)(b - k), &c);
        if (l <= 0 || !is_js_space(c)) break;
        b = k;
    }
    memmove(s->p, s->p + a, b - a);
    s->n = b - a;
    s->p[s->n] = 0;
    return ADEPT_OK;
}

static adept_status lowercase(tok_buf *s, tok_buf *tmp) {
    tmp->n = 0;
    for (size_t i = 0; i < s->n;) {
        int32_t c;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s->p + i, (utf8proc_ssize_t)(s->n - i), &c);
        if (l <= 0) { c = 0xFFFD; l = 1; }
        char enc[4];
        int el = tok_utf8_encode((uint32_t)utf8proc_tolower(c), enc);
        ADEPT_TRY(tok_buf_put(tmp, enc, (size_t)el));
        i += (size_t)l;
    }
    swap_buf(s, tmp);
    return ADEPT_OK;
}

static adept_status replace(const tok_norm *nz, tok_buf *s, tok_buf *tmp) {
    pcre2_match_data *md = tok_match_data();
    if (!md) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for regex match data");
    tmp->n = 0;
    ADEPT_TRY(tok_buf_put(tmp, "", 0));
    size_t pos = 0, ms, me;
    int rc;
    while ((rc = tok_pattern_find(&nz->pat, s->p, s->n, pos, &ms, &me, md)) == 1) {
        ADEPT_TRY(tok_buf_put(tmp, s->p + pos, ms - pos));
        ADEPT_TRY(tok_buf_put(tmp, nz->str, nz->len));
        pos = me;
    }
    if (rc < 0) return ADEPT_EINVAL;
    ADEPT_TRY(tok_buf_put(tmp, s->p + pos, s->n - pos));
    swap_buf(s, tmp);
    return ADEPT_OK;
}

adept_status tok_normalize(const tok_norm *nz, tok_buf *s, tok_buf *tmp) {
    switch (nz->kind) {
    case TOK_NORM_NFC: return unicode_form(s, tmp, UTF8PROC_COMPOSE);
    case TOK_NORM_NFD: return unicode_form(s, tmp, UTF8PROC_DECOMPOSE);
    case TOK_NORM_NFKC: return unicode_form(s, tmp, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case TOK_NORM_NFKD: return unicode_form(s, tmp, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    case TOK_NORM_LOWERCASE: return lowercase(s, tmp);
    case TOK_NORM_STRIP: return strip(s, nz->left, nz->right);
    case TOK_NORM_PREPEND:
        if (!s->n) return ADEPT_OK;
        tmp->n = 0;
        ADEPT_TRY(tok_buf_put(tmp, nz->str, nz->len));
        ADEPT_TRY(tok_buf_put(tmp, s->p, s->n));
        swap_buf(s, tmp);
        return ADEPT_OK;
    case TOK_NORM_REPLACE: return replace(nz, s, tmp);
    case TOK_NORM_SEQUENCE:
        for (int i = 0; i < nz->nitems; i++) ADEPT_TRY(tok_normalize(&nz->items[i], s, tmp));
        return ADEPT_OK;
    }
    return ADEPT_OK;
}

void tok_norm_free(tok_norm *nz) {
    free(nz->str);
    tok_pattern_free(&nz->pat);
    for (int i = 0; i < nz->nitems; i++) tok_norm_free(&nz->items[i]);
    free(nz->items);
    memset(nz, 0, sizeof *nz);
}
