/* Small building blocks of the tokenizers: string and id-pair hash maps, UTF-8 validation with U+FFFD
   replacement (the WHATWG TextDecoder rule, so our input matches what a JS reference sees), byte buffers. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

uint64_t tok_hash_bytes(const void *p, size_t n) {
    /* FNV-1a over 8-byte words then a final mix: quick for the short keys of a vocabulary. */
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    while (n--) h = (h ^ *s++) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

adept_status tok_smap_init(tok_smap *m, size_t expect) {
    memset(m, 0, sizeof *m);
    m->cap = pow2_at_least(expect * 2 + 1);
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->slots) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for a map of %zu entries", expect);
    for (size_t i = 0; i < m->cap; i++) m->slots[i].klen = UINT32_MAX;
    return ADEPT_OK;
}

void tok_smap_free(tok_smap *m) {
    free(m->slots);
    free(m->keys);
    memset(m, 0, sizeof *m);
}

static adept_status smap_grow(tok_smap *m) {
    tok_smap_slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->slots) {
        m->slots = old;
        m->cap = oldcap;
        return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory growing a map");
    }
    for (size_t i = 0; i < m->cap; i++) m->slots[i].klen = UINT32_MAX;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].klen == UINT32_MAX) continue;
        size_t j = old[i].hash & (m->cap - 1);
        while (m->slots[j].klen != UINT32_MAX) j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
    return ADEPT_OK;
}

adept_status tok_smap_put(tok_smap *m, const char *k, size_t klen, int32_t val) {
    if (klen >= UINT32_MAX) return adept_fail(ADEPT_EINVAL, "tokenizer: token of %zu bytes is too long", klen);
    if ((m->n + 1) * 2 > m->cap) ADEPT_TRY(smap_grow(m));
    uint32_t h = (uint32_t)tok_hash_bytes(k, klen);
    size_t i = h & (m->cap - 1);
    for (;;) {
        tok_smap_slot *s = &m->slots[i];
        if (s->klen == UINT32_MAX) break;
        if (s->hash == h && s->klen == klen && (!klen || !memcmp(m->keys + s->koff, k, klen))) {
            s->val = val;
            return ADEPT_OK;
        }
        i = (i + 1) & (m->cap - 1);
    }
    if (m->klen + klen > m->kcap) {
        size_t nc = m->kcap ? m->kcap : 4096;
        while (nc < m->klen + klen) nc *= 2;
        char *nk = realloc(m->keys, nc);
        if (!nk) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for map keys");
        m->keys = nk;
        m->kcap = nc;
    }
    if (klen) memcpy(m->keys + m->klen, k, klen);
    m->slots[i] = (tok_smap_slot){.hash = h, .klen = (uint32_t)klen, .koff = m->klen, .val = val};
    m->klen += klen;
    m->n++;
    return ADEPT_OK;
}

int32_t tok_smap_get(const tok_smap *m, const char *k, size_t klen) {
    if (!m->slots) return -1;
    uint32_t h = (uint32_t)tok_hash_bytes(k, klen);
    size_t i = h & (m->cap - 1);
    for (;;) {
        const tok_smap_slot *s = &m->slots[i];
        if (s->klen == UINT32_MAX) return -1;
        if (s->hash == h && s->klen == klen && (!klen || !memcmp(m->keys + s->koff, k, klen))) return s->val;
        i = (i + 1) & (m->cap - 1);
    }
}

adept_status tok_pmap_init(tok_pmap *m, size_t expect) {
    m->n = 0;
    m->cap = pow2_at_least(expect * 2 + 1);
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->slots) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for %zu merges", expect);
    for (size_t i = 0; i < m->cap; i++) m->slots[i].key = UINT64_MAX;
    return ADEPT_OK;
}

void tok_pmap_free(tok_pmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

adept_status tok_pmap_put(tok_pmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if ((m->n + 1) * 2 > m->cap) {
        tok_pmap grown;
        ADEPT_TRY(tok_pmap_init(&grown, m->cap));
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slots[i].key == UINT64_MAX) continue;
            uint64_t h = m->slots[i].key * 0x9E3779B97F4A7C15ull;
            size_t j = (size_t)(h >> 32) & (grown.cap - 1);
            while (grown.slots[j].key != UINT64_MAX) j = (j + 1) & (grown.cap - 1);
            grown.slots[j] = m->slots[i];
        }
        grown.n = m->n;
        free(m->slots);
        *m = grown;
    }
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 32) & (m->cap - 1);
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == key) return ADEPT_OK; /* a duplicate merge keeps its first (best) rank */
        i = (i + 1) & (m->cap - 1);
    }
    m->slots[i] = (tok_pmap_slot){.key = key, .rank = rank, .id = id};
    m->n++;
    return ADEPT_OK;
}

int tok_utf8_valid_len(const unsigned char *s, size_t n, int *bad) {
    unsigned c = s[0];
    *bad = 1;
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) { *bad = k; return 0; }
        unsigned b = s[k];
        if (b < lo || b > hi) { *bad = k; return 0; }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

adept_status tok_utf8_sanitize(const char *src, size_t n, const char **out, size_t *out_len, char **owned) {
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0;
    *owned = NULL;
    while (i < n) { /* fast scan: most text is valid */
        if (s[i] < 0x80) { i++; continue; }
        int bad, l = tok_utf8_valid_len(s + i, n - i, &bad);
        if (!l) break;
        i += l;
    }
    if (i == n) {
        *out = src;
        *out_len = n;
        return ADEPT_OK;
    }
    char *d = malloc(n * 3 + 1); /* each bad byte becomes at most 3 bytes */
    if (!d) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for %zu bytes of text", n);
    memcpy(d, src, i);
    size_t o = i;
    while (i < n) {
        int bad, l = tok_utf8_valid_len(s + i, n - i, &bad);
        if (l) {
            memcpy(d + o, s + i, l);
            o += l;
            i += l;
        } else {
            memcpy(d + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += bad;
        }
    }
    d[o] = 0;
    *out = d;
    *out_len = o;
    *owned = d;
    return ADEPT_OK;
}

int tok_utf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 63)); o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

adept_status tok_buf_put(tok_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for %zu bytes", nc);
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return ADEPT_OK;
}

void tok_buf_free(tok_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static adept_status pieces_reserve(tok_pieces *p, size_t more) {
    if (p->blen + more > p->bcap) {
        size_t nc = p->bcap ? p->bcap : 256;
        while (nc < p->blen + more) nc *= 2;
        char *nb = realloc(p->buf, nc);
        if (!nb) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for pieces");
        p->buf = nb;
        p->bcap = nc;
    }
    return ADEPT_OK;
}

adept_status tok_pieces_add(tok_pieces *p, const char *s, size_t len) {
    if (!len) return ADEPT_OK;
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 32;
        tok_span *ns = realloc(p->sp, nc * sizeof *ns);
        if (!ns) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for pieces");
        p->sp = ns;
        p->cap = nc;
    }
    ADEPT_TRY(pieces_reserve(p, len));
    memmove(p->buf + p->blen, s, len); /* s may point into buf when buf did not move */
    p->sp[p->n++] = (tok_span){p->blen, len};
    p->blen += len;
    return ADEPT_OK;
}

/* Extends the last piece (which must end the buffer) or starts one. */
adept_status tok_pieces_append_to_last(tok_pieces *p, const char *s, size_t len) {
    if (!p->n) return tok_pieces_add(p, s, len);
    ADEPT_TRY(pieces_reserve(p, len));
    memcpy(p->buf + p->blen, s, len);
    p->blen += len;
    p->sp[p->n - 1].len += len;
    return ADEPT_OK;
}

void tok_pieces_clear(tok_pieces *p) {
    p->n = 0;
    p->blen = 0;
}

void tok_pieces_free(tok_pieces *p) {
    free(p->buf);
    free(p->sp);
    memset(p, 0, sizeof *p);
}
