/* Pre-tokenizers (ByteLevel with GPT-2's byte-to-unicode map and regex, Split, Metaspace, Digits, Sequence) and
   the regex layer under them: patterns run on PCRE2 (UTF + UCP, JIT) with \s rewritten to JavaScript's set. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

const char *const tok_gpt2_regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* \s is spelled out so that ids match the reference exactly. Patterns from tokenizer.json (Split, Replace) are
   Oniguruma's in the Rust library, where \s is Unicode White_Space (the JS reference translates them so);
   ByteLevel's built-in GPT-2 regex is a plain JavaScript RegExp in the reference, whose \s also has U+FEFF
   and lacks U+0085. PCRE2's own \s (Zs, \h, \v) differs from both in corners. */
#define WS_COMMON "\\t\\n\\x0B\\f\\r\\x20\\xA0\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char *const WS_UNICODE = WS_COMMON "\\x{85}";
static const char *const WS_JS = WS_COMMON "\\x{FEFF}";

static char *rewrite_spaces(const char *re, const char *space) {
    size_t n = strlen(re), cap = n * 8 + 64, o = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + strlen(space) + 8 >= cap) {
            cap *= 2;
            char *no = realloc(out, cap);
            if (!no) { free(out); return NULL; }
            out = no;
        }
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char e = re[i + 1];
            if (e == 's') {
                o += (size_t)sprintf(out + o, in_class ? "%s" : "[%s]", space);
                i++;
                continue;
            }
            if (e == 'S' && !in_class) {
                o += (size_t)sprintf(out + o, "[^%s]", space);
                i++;
                continue;
            }
            out[o++] = c;
            out[o++] = e;
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            out[o++] = c;
            if (i + 1 < n && re[i + 1] == '^') out[o++] = re[++i];
            if (i + 1 < n && re[i + 1] == ']') out[o++] = re[++i]; /* a literal ] first in a class */
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        out[o++] = c;
    }
    out[o] = 0;
    return out;
}

adept_status tok_pattern_compile_regex(tok_pattern *p, const char *regex, const char *where) {
    char *re = rewrite_spaces(regex, regex == tok_gpt2_regex ? WS_JS : WS_UNICODE);
    if (!re) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", where);
    int err;
    PCRE2_SIZE off;
    p->kind = TOK_PAT_REGEX;
    p->re = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    free(re);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: regex /%.200s/ does not compile with PCRE2: %s (at offset %zu)",
                          where, regex, (const char *)msg, (size_t)off);
    }
    pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* without JIT the interpreter still works */
    return ADEPT_OK;
}

void tok_pattern_free(tok_pattern *p) {
    free(p->str);
    if (p->re) pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}

/* Per-thread PCRE2 state: match data (ovector for one match) and a JIT stack large enough for long inputs. */
static _Thread_local pcre2_match_data *tls_md;
static _Thread_local pcre2_match_context *tls_mctx;
static _Thread_local pcre2_jit_stack *tls_stack;

pcre2_match_data *tok_match_data(void) {
    if (!tls_md) {
        tls_md = pcre2_match_data_create(1, NULL);
        tls_mctx = pcre2_match_context_create(NULL);
        tls_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (tls_mctx && tls_stack) pcre2_jit_stack_assign(tls_mctx, NULL, tls_stack);
    }
    return tls_md;
}

static size_t utf8_len_at(const char *s, size_t n, size_t i) {
    unsigned char c = (unsigned char)s[i];
    size_t l = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return i + l > n ? n - i : l;
}

int tok_pattern_find(const tok_pattern *p, const char *s, size_t n, size_t from, size_t *ms, size_t *me,
                     pcre2_match_data *md) {
    if (p->kind == TOK_PAT_STRING) {
        if (from > n || !p->len) return 0;
        const char *f = memmem(s + from, n - from, p->str, p->len);
        if (!f) return 0;
        *ms = (size_t)(f - s);
        *me = *ms + p->len;
        return 1;
    }
    while (from <= n) {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, md, tls_mctx);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            adept_fail(ADEPT_EINVAL, "tokenizer: regex match failed on %zu bytes: %s", n, (const char *)msg);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        /* an empty match: step one character, as JavaScript's matchAll does */
        if (ov[0] >= n) return 0;
        from = ov[0] + utf8_len_at(s, n, ov[0]);
    }
    return 0;
}

/* ---- GPT-2 byte-level map --------------------------------------------------------------------------- */
char tok_byte_char[256][3];
uint8_t tok_byte_char_len[256];
static int16_t cp_to_byte[512];
static pthread_once_t bytelevel_once = PTHREAD_ONCE_INIT;

static void bytelevel_build(void) {
    int extra = 0;
    for (int i = 0; i < 512; i++) cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        uint32_t cp = keep ? (uint32_t)b : 256u + (uint32_t)extra++;
        char buf[4];
        int l = tok_utf8_encode(cp, buf);
        memcpy(tok_byte_char[b], buf, (size_t)l);
        tok_byte_char_len[b] = (uint8_t)l;
        cp_to_byte[cp] = (int16_t)b;
    }
}

void tok_bytelevel_init(void) { pthread_once(&bytelevel_once, bytelevel_build); }

int tok_bytelevel_char_to_byte(uint32_t cp) { return cp < 512 ? cp_to_byte[cp] : -1; }

/* ---- pre-tokenizers ------------------------------------------------------------------------------- */
static adept_status add_mapped(tok_pieces *out, const char *s, size_t n) {
    char buf[512];
    size_t o = 0;
    /* most words are short: map into a stack buffer, else piecewise into the last piece */
    int started = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        memcpy(buf + o, tok_byte_char[b], tok_byte_char_len[b]);
        o += tok_byte_char_len[b];
        if (o > sizeof buf - 4) {
            ADEPT_TRY(started ? tok_pieces_append_to_last(out, buf, o) : tok_pieces_add(out, buf, o));
            started = 1;
            o = 0;
        }
    }
    if (o || !started) ADEPT_TRY(started ? tok_pieces_append_to_last(out, buf, o) : tok_pieces_add(out, buf, o));
    return ADEPT_OK;
}

static adept_status split_one(const tok_pretok *pt, const char *s, size_t n, tok_pieces *out, int map_bytes) {
    pcre2_match_data *md = tok_match_data();
    if (!md) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for regex match data");
    size_t pos = 0, ms, me;
    int rc, behavior = pt->kind == TOK_PRE_BYTELEVEL ? -1 : (int)pt->behavior;
    int pending_next = 0; /* MergedWithNext: a delimiter waiting for the next piece */
    size_t pend_s = 0;
    int last_match = 0;
    while ((rc = tok_pattern_find(&pt->pat, s, n, pos, &ms, &me, md)) == 1) {
        if (behavior == -1) { /* ByteLevel: the matches (the regex covers all text) */
            ADEPT_TRY(map_bytes ? add_mapped(out, s + ms, me - ms) : tok_pieces_add(out, s + ms, me - ms));
        } else if (pt->invert) {
            ADEPT_TRY(tok_pieces_add(out, s + ms, me - ms)); /* as the reference: matches only */
        } else {
            switch (pt->behavior) {
            case TOK_SPLIT_ISOLATED:
                ADEPT_TRY(tok_pieces_add(out, s + pos, ms - pos));
                ADEPT_TRY(tok_pieces_add(out, s + ms, me - ms));
                break;
            case TOK_SPLIT_REMOVED: ADEPT_TRY(tok_pieces_add(out, s + pos, ms - pos)); break;
            case TOK_SPLIT_MERGED_PREV: ADEPT_TRY(tok_pieces_add(out, s + pos, me - pos)); break;
            case TOK_SPLIT_MERGED_NEXT:
                if (pending_next) ADEPT_TRY(tok_pieces_add(out, s + pend_s, ms - pend_s));
                else ADEPT_TRY(tok_pieces_add(out, s + pos, ms - pos));
                pending_next = 1;
                pend_s = ms;
                break;
            case TOK_SPLIT_CONTIGUOUS:
                if (ms == pos && last_match && out->n) ADEPT_TRY(tok_pieces_append_to_last(out, s + ms, me - ms));
                else {
                    ADEPT_TRY(tok_pieces_add(out, s + pos, ms - pos));
                    ADEPT_TRY(tok_pieces_add(out, s + ms, me - ms));
                }
                break;
            }
        }
        pos = me;
        last_match = 1;
    }
    if (rc < 0) return ADEPT_EINVAL;
    if (behavior == -1 || pt->invert) return ADEPT_OK;
    if (pending_next) return tok_pieces_add(out, s + pend_s, n - pend_s);
    return tok_pieces_add(out, s + pos, n - pos);
}

static adept_status metaspace_one(const tok_pretok *pt, const char *s, size_t n, tok_pieces *out, int first) {
    /* replace ' ' by the replacement, prepend it (always / first section), split before each (MergedWithNext) */
    tok_buf b = {0};
    adept_status st = ADEPT_OK;
    int starts = n >= (size_t)pt->repl_len && !memcmp(s, pt->repl, (size_t)pt->repl_len);
    if (!starts && n && s[0] == ' ') starts = 1;
    if (!starts && (pt->prepend == 2 || (pt->prepend == 1 && first))) st = tok_buf_put(&b, pt->repl, (size_t)pt->repl_len);
    for (size_t i = 0; i < n && st == ADEPT_OK; i++)
        st = s[i] == ' ' ? tok_buf_put(&b, pt->repl, (size_t)pt->repl_len) : tok_buf_put(&b, s + i, 1);
    if (st == ADEPT_OK && !pt->split) st = tok_pieces_add(out, b.p, b.n);
    else if (st == ADEPT_OK) {
        size_t start = 0;
        for (size_t i = 1; i + (size_t)pt->repl_len <= b.n && st == ADEPT_OK; i++)
            if (!memcmp(b.p + i, pt->repl, (size_t)pt->repl_len)) {
                st = tok_pieces_add(out, b.p + start, i - start);
                start = i;
            }
        if (st == ADEPT_OK) st = tok_pieces_add(out, b.p + start, b.n - start);
    }
    tok_buf_free(&b);
    return st;
}

static adept_status digits_one(const tok_pretok *pt, const char *s, size_t n, tok_pieces *out) {
    /* ASCII and Unicode decimal digits isolated (each, or in runs) */
    size_t i = 0, start = 0;
    while (i < n) {
        int isd = s[i] >= '0' && s[i] <= '9';
        if (isd) {
            ADEPT_TRY(tok_pieces_add(out, s + start, i - start));
            size_t j = i + 1;
            if (!pt->split)
                while (j < n && s[j] >= '0' && s[j] <= '9') j++;
            ADEPT_TRY(tok_pieces_add(out, s + i, j - i));
            start = i = j;
        } else i++;
    }
    return tok_pieces_add(out, s + start, n - start);
}

static void swap_pieces(tok_pieces *a, tok_pieces *b) {
    tok_pieces t = *a;
    *a = *b;
    *b = t;
}

adept_status tok_pretokenize(const tok_pretok *pt, tok_pieces *io, tok_pieces *tmp, int first) {
    if (pt->kind == TOK_PRE_SEQUENCE) {
        for (int i = 0; i < pt->nitems; i++) ADEPT_TRY(tok_pretokenize(&pt->items[i], io, tmp, first));
        return ADEPT_OK;
    }
    tok_pieces_clear(tmp);
    for (size_t k = 0; k < io->n; k++) {
        const char *s = io->buf + io->sp[k].off;
        size_t n = io->sp[k].len;
        switch (pt->kind) {
        case TOK_PRE_BYTELEVEL: {
            char *pre = NULL;
            if (pt->add_prefix_space && (!n || s[0] != ' ')) {
                pre = malloc(n + 1);
                if (!pre) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory");
                pre[0] = ' ';
                memcpy(pre + 1, s, n);
                s = pre;
                n++;
            }
            adept_status st = pt->use_regex ? split_one(pt, s, n, tmp, 1) : add_mapped(tmp, s, n);
            free(pre);
            ADEPT_TRY(st);
            break;
        }
        case TOK_PRE_SPLIT: ADEPT_TRY(split_one(pt, s, n, tmp, 0)); break;
        case TOK_PRE_METASPACE: ADEPT_TRY(metaspace_one(pt, s, n, tmp, first && k == 0)); break;
        case TOK_PRE_DIGITS: ADEPT_TRY(digits_one(pt, s, n, tmp)); break;
        case TOK_PRE_SEQUENCE: break;
        }
    }
    swap_pieces(io, tmp);
    return ADEPT_OK;
}

void tok_pretok_free(tok_pretok *pt) {
    tok_pattern_free(&pt->pat);
    for (int i = 0; i < pt->nitems; i++) tok_pretok_free(&pt->items[i]);
    free(pt->items);
    pt->items = NULL;
}
