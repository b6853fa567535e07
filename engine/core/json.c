/* Strict JSON helpers (see adept/json.h): duplicate keys refused with their path, checked number-to-integer
   conversions, and one parse entry point that applies both rules. */
#include "adept/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXACT_LIMIT 9007199254740992.0 /* 2^53: every integer up to here is exact in a double */

int adept_double_to_int(double d, int64_t lo, int64_t hi, int64_t *out) {
    /* compare as doubles first: lo and hi are exact there, and a failed comparison (NaN) refuses */
    if (!(d >= (double)lo && d <= (double)hi) || !(fabs(d) <= EXACT_LIMIT) || d != floor(d)) return 0;
    *out = (int64_t)d;
    return 1;
}

int adept_json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out) {
    return cJSON_IsNumber(v) && adept_double_to_int(v->valuedouble, lo, hi, out);
}

/* A readable path to a node: top-level, model.vocab, added_tokens[3], "key with spaces". */
typedef struct path_buf {
    char s[512];
    size_t n;
} path_buf;

static size_t path_push(path_buf *p, const cJSON *parent, const cJSON *child, int index) {
    size_t was = p->n, cap = sizeof p->s;
    if (p->n >= cap - 1) return was;
    int k;
    if (cJSON_IsArray(parent)) k = snprintf(p->s + p->n, cap - p->n, "[%d]", index);
    else {
        const char *key = child->string ? child->string : "";
        int plain = *key != 0;
        for (const char *c = key; *c && plain; c++)
            plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_';
        k = snprintf(p->s + p->n, cap - p->n, plain ? "%s%.80s" : "%s\"%.80s\"", p->n ? "." : "", key);
    }
    p->n = k < 0 ? p->n : p->n + (size_t)k < cap ? p->n + (size_t)k : cap - 1;
    return was;
}

static int cmp_key(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    int c = strcmp(x->string ? x->string : "", y->string ? y->string : "");
    if (c) return c;
    return x < y ? -1 : x > y; /* ties keep document order: the second occurrence is reported */
}

/* The first duplicate of one object's keys: pairwise for small objects, sorted pointers for large ones
   (a tokenizer vocabulary has 10^5 keys). Returns the repeated item, or NULL; *oom on allocation failure. */
static const cJSON *object_duplicate(const cJSON *obj, int *oom) {
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next) n++;
    if (n < 2) return NULL;
    if (n <= 16) {
        for (const cJSON *a = obj->child; a; a = a->next)
            for (const cJSON *b = obj->child; b != a; b = b->next)
                if (!strcmp(a->string ? a->string : "", b->string ? b->string : "")) return a;
        return NULL;
    }
    const cJSON **v = malloc(n * sizeof *v);
    if (!v) { *oom = 1; return NULL; }
    size_t i = 0;
    for (const cJSON *c = obj->child; c; c = c->next) v[i++] = c;
    qsort(v, n, sizeof *v, cmp_key);
    /* reports the repeated key that sorts first: deterministic, and it names a real key */
    const cJSON *dup = NULL;
    for (i = 1; i < n && !dup; i++)
        if (!strcmp(v[i - 1]->string ? v[i - 1]->string : "", v[i]->string ? v[i]->string : "")) dup = v[i];
    free(v);
    return dup;
}

static adept_status walk(const cJSON *node, path_buf *p, const char *label) {
    if (cJSON_IsObject(node)) {
        int oom = 0;
        const cJSON *dup = object_duplicate(node, &oom);
        if (oom) return adept_fail(ADEPT_ENOMEM, "%s: out of memory checking JSON keys", label);
        if (dup)
            return adept_fail(ADEPT_EFORMAT, "%s: duplicate key \"%.100s\" in %s%s (a key may appear once per object)",
                              label, dup->string ? dup->string : "", p->n ? "" : "the top-level object",
                              p->n ? p->s : "");
    }
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node)) return ADEPT_OK;
    int i = 0;
    for (const cJSON *c = node->child; c; c = c->next, i++) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c)) continue;
        size_t was = path_push(p, node, c, i);
        adept_status s = walk(c, p, label);
        p->n = was;
        p->s[was] = 0;
        if (s != ADEPT_OK) return s;
    }
    return ADEPT_OK;
}

adept_status adept_json_check_unique(const cJSON *root, const char *label) {
    path_buf p;
    p.n = 0;
    p.s[0] = 0;
    return root ? walk(root, &p, label ? label : "JSON") : ADEPT_OK; /* cJSON limits nesting to 1000 levels */
}

adept_status adept_json_parse(const char *text, size_t len, const char *label, cJSON **out) {
    *out = NULL;
    if (!label) label = "JSON";
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        const char *e = end; /* cJSON sets it to the error position (its global error pointer is not thread-safe) */
        size_t off = e && e >= text && e <= text + len ? (size_t)(e - text) : 0;
        return adept_fail(ADEPT_EFORMAT, "%s: invalid JSON near byte %zu", label, off + 1);
    }
    for (const char *c = end; c && c < text + len; c++)
        if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r') {
            cJSON_Delete(root);
            return adept_fail(ADEPT_EFORMAT, "%s: unexpected data after the JSON value at byte %zu", label,
                              (size_t)(c - text) + 1);
        }
    adept_status s = adept_json_check_unique(root, label);
    if (s != ADEPT_OK) { cJSON_Delete(root); return s; }
    *out = root;
    return ADEPT_OK;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

adept_status adept_jsonl_each(const char *name, const char *text, size_t len, size_t limit, adept_jsonl_fn fn,
                              void *ctx) {
    if (!name) name = "<items>";
    if (!text && len) return adept_fail(ADEPT_EINVAL, "%s: NULL text", name);
    size_t line = 0, pos = 0, accepted = 0;
    while (pos < len && (limit == 0 || accepted < limit)) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl != NULL);
        line++;
        if (blank(s, n)) continue;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
        if (!j) {
            size_t at = end && end >= s && end <= s + n ? (size_t)(end - s) : 0;
            return adept_fail(ADEPT_EFORMAT, "%s:%zu: invalid JSON (near byte %zu of the line)", name, line, at + 1);
        }
        adept_status st = ADEPT_OK;
        char where[600];
        snprintf(where, sizeof where, "%s:%zu", name, line);
        if (end && !blank(end, (size_t)(s + n - end)))
            st = adept_fail(ADEPT_EFORMAT, "%s: text after the JSON value (one item per line)", where);
        if (st == ADEPT_OK) st = adept_json_check_unique(j, where);
        if (st == ADEPT_OK) st = fn(ctx, j, where, line);
        cJSON_Delete(j);
        if (st != ADEPT_OK) return st;
        accepted++;
    }
    return ADEPT_OK;
}
