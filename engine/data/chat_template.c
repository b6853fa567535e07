/* Chat template families rendered in C (contract in adept/chat_template.h). Each renderer follows its Jinja
   template statement by statement for the messages it accepts (system, user, assistant; no tools). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "adept/chat_template.h"
#include "adept/input.h"

adept_status adept_chat_template_detect(const char *name, const char *tmpl, const char *bos_token,
                                        adept_chat_template *out) {
    if (!tmpl || !out) return adept_fail(ADEPT_EINVAL, "chat template: NULL argument");
    memset(out, 0, sizeof *out);
    if (!name) name = "<template>";
    if (strstr(tmpl, "<|im_start|>") && strstr(tmpl, "<|im_end|>") && strstr(tmpl, "last_query_index") &&
        strstr(tmpl, "<think>"))
        out->family = ADEPT_CHAT_QWEN3;
    else if (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|end_header_id|>") && strstr(tmpl, "<|eot_id|>") &&
             strstr(tmpl, "| trim") && !strstr(tmpl, "Cutting Knowledge") && !strstr(tmpl, "tools"))
        out->family = ADEPT_CHAT_LLAMA3;
    else
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: chat template not recognised (supported: Qwen3 ChatML, Llama 3 "
                          "headers); use template = \"plain\" for the plain instruction template", name);
    if (bos_token) {
        size_t k = strlen(bos_token);
        if (k >= sizeof out->bos_token) return adept_fail(ADEPT_EFORMAT, "%s: bos_token is too long", name);
        memcpy(out->bos_token, bos_token, k + 1);
    }
    return ADEPT_OK;
}

/* bos_token is a string or {"content": string} (AddedToken form). */
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

adept_status adept_chat_template_load(const char *path, adept_chat_template *out) {
    if (!path || !out) return adept_fail(ADEPT_EINVAL, "chat template: NULL argument");
    char *buf;
    size_t len;
    ADEPT_TRY(adept_input_read(path, "tokenizer_config.json", (size_t)64 << 20, &buf, &len));
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j) return adept_fail(ADEPT_EFORMAT, "%s: invalid JSON", path);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
    adept_status st;
    if (!cJSON_IsString(t))
        st = adept_fail(ADEPT_EFORMAT, "%s: no chat_template string; use template = \"plain\"", path);
    else st = adept_chat_template_detect(path, t->valuestring, token_text(cJSON_GetObjectItemCaseSensitive(j, "bos_token")), out);
    cJSON_Delete(j);
    return st;
}

void adept_chat_render_free(adept_chat_render *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) free(r->seg[i].text);
    free(r->seg);
    r->seg = NULL;
    r->n = 0;
}

char *adept_chat_render_join(const adept_chat_render *r) {
    size_t len = 0;
    for (size_t i = 0; i < r->n; i++) len += strlen(r->seg[i].text);
    char *s = malloc(len + 1);
    if (!s) return NULL;
    size_t at = 0;
    for (size_t i = 0; i < r->n; i++) {
        size_t k = strlen(r->seg[i].text);
        memcpy(s + at, r->seg[i].text, k);
        at += k;
    }
    s[at] = 0;
    return s;
}

/* A growing render; the first failure sticks (later pushes are no-ops) and is reported once at the end. */
typedef struct builder {
    adept_chat_render *r;
    size_t cap;
    int failed;
} builder;

/* Appends text[0..len) as a segment (merged with the previous one when both have the same target flag). */
static void push(builder *b, const char *text, size_t len, int target) {
    if (b->failed || len == 0) return;
    adept_chat_render *r = b->r;
    if (r->n && r->seg[r->n - 1].target == target) {
        char *old = r->seg[r->n - 1].text;
        size_t k = strlen(old);
        char *s = realloc(old, k + len + 1);
        if (!s) { b->failed = 1; return; }
        memcpy(s + k, text, len);
        s[k + len] = 0;
        r->seg[r->n - 1].text = s;
        return;
    }
    if (r->n == b->cap) {
        size_t nc = b->cap ? 2 * b->cap : 16;
        adept_chat_segment *g = realloc(r->seg, nc * sizeof *g);
        if (!g) { b->failed = 1; return; }
        r->seg = g, b->cap = nc;
    }
    char *s = malloc(len + 1);
    if (!s) { b->failed = 1; return; }
    memcpy(s, text, len);
    s[len] = 0;
    r->seg[r->n].text = s, r->seg[r->n].target = target;
    r->n++;
}
static void push_str(builder *b, const char *s, int target) { push(b, s, strlen(s), target); }

static int is_nl(char c) { return c == '\n'; }
/* Jinja's trim is Python's str.strip(): ASCII whitespace here (and the FS/GS/RS/US controls Python also strips). */
static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

/* [*s, *e) trimmed on the left/right of characters for which pred holds. */
static void lstrip(const char **s, const char *e, int (*pred)(char)) { while (*s < e && pred(**s)) (*s)++; }
static void rstrip(const char *s, const char **e, int (*pred)(char)) { while (*e > s && pred((*e)[-1])) (*e)--; }

static const char *find_last(const char *s, const char *e, const char *needle) {
    size_t k = strlen(needle);
    const char *last = NULL;
    for (const char *p = s; p + k <= e; p++)
        if (!memcmp(p, needle, k)) last = p;
    return last;
}

static int starts_ends(const char *c, const char *pre, const char *suf) {
    size_t n = strlen(c), a = strlen(pre), z = strlen(suf);
    return n >= a && n >= z && !strncmp(c, pre, a) && !strcmp(c + n - z, suf);
}

static void render_qwen3(builder *b, const char *const *roles, const char *const *contents, size_t n) {
    if (n && !strcmp(roles[0], "system")) {
        push_str(b, "<|im_start|>system\n", 0), push_str(b, contents[0], 0), push_str(b, "<|im_end|>\n", 0);
    }
    size_t last_query = n - 1; /* the last user message that is not a wrapped tool response */
    for (size_t k = n; k-- > 0;) {
        if (!strcmp(roles[k], "user") && !starts_ends(contents[k], "<tool_response>", "</tool_response>")) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *role = roles[i], *c = contents[i];
        if (!strcmp(role, "user") || (!strcmp(role, "system") && i > 0)) {
            push_str(b, "<|im_start|>", 0), push_str(b, role, 0), push_str(b, "\n", 0);
            push_str(b, c, 0), push_str(b, "<|im_end|>\n", 0);
        } else if (!strcmp(role, "assistant")) {
            const char *cs = c, *ce = c + strlen(c), *rs = "", *re = rs;
            const char *end_think = strstr(c, "</think>");
            if (end_think) { /* content after the last </think>; reasoning between the last <think> and the first </think> */
                cs = find_last(c, ce, "</think>") + strlen("</think>");
                lstrip(&cs, ce, is_nl);
                rs = c, re = end_think;
                rstrip(rs, &re, is_nl);
                const char *open = find_last(rs, re, "<think>");
                if (open) rs = open + strlen("<think>");
                lstrip(&rs, re, is_nl);
            }
            push_str(b, "<|im_start|>assistant\n", 0);
            if (i > last_query && (i == n - 1 || re > rs)) {
                lstrip(&rs, re, is_nl), rstrip(rs, &re, is_nl);
                lstrip(&cs, ce, is_nl);
                push_str(b, "<think>\n", 1), push(b, rs, (size_t)(re - rs), 1), push_str(b, "\n</think>\n\n", 1);
            }
            push(b, cs, (size_t)(ce - cs), 1), push_str(b, "<|im_end|>", 1), push_str(b, "\n", 0);
        }
    }
}

static void render_llama3(builder *b, const char *bos, const char *const *roles, const char *const *contents,
                          size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i == 0) push_str(b, bos, 0);
        int assistant = !strcmp(roles[i], "assistant");
        push_str(b, "<|start_header_id|>", 0), push_str(b, roles[i], 0), push_str(b, "<|end_header_id|>\n\n", 0);
        const char *s = contents[i], *e = s + strlen(s);
        lstrip(&s, e, is_space), rstrip(s, &e, is_space);
        push(b, s, (size_t)(e - s), assistant), push_str(b, "<|eot_id|>", assistant);
    }
    push_str(b, "<|start_header_id|>assistant<|end_header_id|>\n\n", 0);
}

adept_status adept_chat_render_messages(const adept_chat_template *t, const char *const *roles,
                                        const char *const *contents, size_t n, adept_chat_render *out) {
    if (!t || !out || (n && (!roles || !contents))) return adept_fail(ADEPT_EINVAL, "chat render: NULL argument");
    out->seg = NULL, out->n = 0;
    if (n == 0) return adept_fail(ADEPT_EINVAL, "chat render: no messages");
    for (size_t i = 0; i < n; i++) {
        if (!roles[i] || !contents[i]) return adept_fail(ADEPT_EINVAL, "chat render: message %zu is NULL", i + 1);
        if (strcmp(roles[i], "system") && strcmp(roles[i], "user") && strcmp(roles[i], "assistant"))
            return adept_fail(ADEPT_EFORMAT, "message %zu: role \"%s\" is not supported (system, user, assistant)",
                              i + 1, roles[i]);
    }
    builder b = {out, 0, 0};
    if (t->family == ADEPT_CHAT_QWEN3) render_qwen3(&b, roles, contents, n);
    else render_llama3(&b, t->bos_token, roles, contents, n);
    if (b.failed) {
        adept_chat_render_free(out);
        return adept_fail(ADEPT_ENOMEM, "chat render: out of memory");
    }
    return ADEPT_OK;
}
