/* Instruction items rendered into prompt/response segments, with the plain template or a recognised chat
   template family (the rules are documented in docs/dataset.md "Instruction data").

   Plain template:
     {instruction, input, output}:
       "### Instruction:\n" instruction "\n\n" ["### Input:\n" input "\n\n" when input is non-empty]
       "### Response:\n"  | output (trained)
     {prompt, completion}:  prompt | completion (trained); the prompt is taken verbatim.
     {messages}: system -> "### System:\n" c, user -> "### Instruction:\n" c,
       assistant -> "### Response:\n" | c (trained); "\n\n" (untrained) between messages.

   Chat templates take a message list; the other layouts become one:
     {instruction, input, output} -> user: instruction [+ "\n\n" + input], assistant: output
     {prompt, completion}         -> user: prompt, assistant: completion
   Qwen3 (ChatML): what its template renders for messages without tools or reasoning, with
     add_generation_prompt false: a system message first gives "<|im_start|>system\n" c "<|im_end|>\n"; each
     user (or later system) turn "<|im_start|>" role "\n" c "<|im_end|>\n"; an assistant turn
     "<|im_start|>assistant\n" [+ "<think>\n\n</think>\n\n" for the last message when it follows the last user
     turn] then content | "<|im_end|>" and "\n". The content and its "<|im_end|>" train: the model learns to stop.
   Llama 3: bos + for each message "<|start_header_id|>" role "<|end_header_id|>\n\n" trim(c) "<|eot_id|>",
     then the template's unconditional "<|start_header_id|>assistant<|end_header_id|>\n\n" (untrained).
     Assistant content and its "<|eot_id|>" train. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/instruct.h"

typedef enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT } role;
static const char *const role_names[] = {"system", "user", "assistant"};

typedef struct message {
    role role;
    const char *content; /* borrowed from the cJSON tree or from `owned` */
} message;

typedef struct builder {
    const char *name;
    size_t line;
    adept_instr_item *item;
    int cap;
} builder;

static adept_status fail(const builder *b, const char *what) {
    return adept_fail(ADEPT_EFORMAT, "%s:%zu: %s", b->name, b->line, what);
}

/* Appends text to the last segment when it has the same mark, else starts a new segment. */
static adept_status push_n(builder *b, const char *text, size_t add, int trained) {
    adept_instr_item *it = b->item;
    if (add == 0) return ADEPT_OK;
    if (it->n > 0 && it->segs[it->n - 1].trained == trained) {
        adept_instr_segment *s = &it->segs[it->n - 1];
        size_t old = strlen(s->text);
        char *t = realloc(s->text, old + add + 1);
        if (!t) return adept_fail(ADEPT_ENOMEM, "instruction item: out of memory");
        memcpy(t + old, text, add);
        t[old + add] = 0;
        s->text = t;
        return ADEPT_OK;
    }
    if (it->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 8;
        adept_instr_segment *s = realloc(it->segs, (size_t)cap * sizeof *s);
        if (!s) return adept_fail(ADEPT_ENOMEM, "instruction item: out of memory");
        it->segs = s;
        b->cap = cap;
    }
    char *t = malloc(add + 1);
    if (!t) return adept_fail(ADEPT_ENOMEM, "instruction item: out of memory");
    memcpy(t, text, add);
    t[add] = 0;
    it->segs[it->n].text = t;
    it->segs[it->n].trained = trained;
    it->n++;
    return ADEPT_OK;
}

static adept_status push(builder *b, const char *text, int trained) { return push_n(b, text, strlen(text), trained); }

static adept_status string_field(const builder *b, const cJSON *j, const char *key, int required, const char **out) {
    char msg[160];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    *out = NULL;
    if (!v) {
        if (!required) return ADEPT_OK;
        snprintf(msg, sizeof msg, "missing '%s'", key);
        return fail(b, msg);
    }
    if (!cJSON_IsString(v)) {
        snprintf(msg, sizeof msg, "'%s' must be a string", key);
        return fail(b, msg);
    }
    *out = v->valuestring;
    return ADEPT_OK;
}

/* ---- plain template ------------------------------------------------------------------------------- */

static adept_status plain_alpaca(builder *b, const char *ins, const char *in, const char *out) {
    ADEPT_TRY(push(b, "### Instruction:\n", 0));
    ADEPT_TRY(push(b, ins, 0));
    ADEPT_TRY(push(b, "\n\n", 0));
    if (in && *in) {
        ADEPT_TRY(push(b, "### Input:\n", 0));
        ADEPT_TRY(push(b, in, 0));
        ADEPT_TRY(push(b, "\n\n", 0));
    }
    ADEPT_TRY(push(b, "### Response:\n", 0));
    return push(b, out, 1);
}

static adept_status plain_messages(builder *b, const message *m, int n) {
    static const char *const headers[] = {"### System:\n", "### Instruction:\n", "### Response:\n"};
    for (int k = 0; k < n; k++) {
        if (k > 0) ADEPT_TRY(push(b, "\n\n", 0));
        ADEPT_TRY(push(b, headers[m[k].role], 0));
        ADEPT_TRY(push(b, m[k].content, m[k].role == ROLE_ASSISTANT));
    }
    return ADEPT_OK;
}

/* ---- chat template families ----------------------------------------------------------------------- */

static adept_status qwen3_messages(builder *b, const message *m, int n) {
    int last_user = n - 1; /* the template's ns.last_query_index: the last user turn (no tool turns here) */
    for (int k = n - 1; k >= 0; k--)
        if (m[k].role == ROLE_USER) { last_user = k; break; }
    for (int k = 0; k < n; k++) {
        if (m[k].role != ROLE_ASSISTANT) {
            ADEPT_TRY(push(b, "<|im_start|>", 0));
            ADEPT_TRY(push(b, role_names[m[k].role], 0));
            ADEPT_TRY(push(b, "\n", 0));
            ADEPT_TRY(push(b, m[k].content, 0));
            ADEPT_TRY(push(b, "<|im_end|>\n", 0));
            continue;
        }
        const char *c = m[k].content;
        ADEPT_TRY(push(b, "<|im_start|>assistant\n", 0));
        if (k > last_user && k == n - 1) {
            ADEPT_TRY(push(b, "<think>\n\n</think>\n\n", 0));
            while (*c == '\n') c++; /* content.lstrip('\n') */
        }
        ADEPT_TRY(push(b, c, 1));
        ADEPT_TRY(push(b, "<|im_end|>", 1));
        ADEPT_TRY(push(b, "\n", 0));
    }
    return ADEPT_OK;
}

static int is_jinja_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static adept_status llama3_messages(builder *b, const message *m, int n, const char *bos) {
    if (bos) ADEPT_TRY(push(b, bos, 0));
    for (int k = 0; k < n; k++) {
        const char *c = m[k].content, *e = c + strlen(c);
        while (c < e && is_jinja_space(*c)) c++; /* the template's `| trim` */
        while (e > c && is_jinja_space(e[-1])) e--;
        int t = m[k].role == ROLE_ASSISTANT;
        ADEPT_TRY(push(b, "<|start_header_id|>", 0));
        ADEPT_TRY(push(b, role_names[m[k].role], 0));
        ADEPT_TRY(push(b, "<|end_header_id|>\n\n", 0));
        ADEPT_TRY(push_n(b, c, (size_t)(e - c), t));
        ADEPT_TRY(push(b, "<|eot_id|>", t));
    }
    return push(b, "<|start_header_id|>assistant<|end_header_id|>\n\n", 0);
}

static adept_status render_messages(builder *b, const message *m, int n, adept_instr_template t, const char *bos) {
    switch (t) {
    case ADEPT_INSTR_QWEN3: return qwen3_messages(b, m, n);
    case ADEPT_INSTR_LLAMA3: return llama3_messages(b, m, n, bos);
    case ADEPT_INSTR_PLAIN: break;
    }
    return plain_messages(b, m, n);
}

/* ---- layouts ------------------------------------------------------------------------------------- */

static adept_status no_response(const builder *b, const char *field) {
    char msg[120];
    snprintf(msg, sizeof msg, "'%s' is empty: an item needs a response to train on", field);
    return fail(b, msg);
}

static adept_status layout_alpaca(builder *b, const cJSON *j, adept_instr_template t, const char *bos) {
    const char *ins, *in, *out;
    ADEPT_TRY(string_field(b, j, "instruction", 1, &ins));
    ADEPT_TRY(string_field(b, j, "input", 0, &in));
    ADEPT_TRY(string_field(b, j, "output", 1, &out));
    if (!*out) return no_response(b, "output");
    if (t == ADEPT_INSTR_PLAIN) return plain_alpaca(b, ins, in, out);
    char *user = NULL;
    if (in && *in) {
        size_t a = strlen(ins), c = strlen(in);
        user = malloc(a + 2 + c + 1);
        if (!user) return adept_fail(ADEPT_ENOMEM, "instruction item: out of memory");
        memcpy(user, ins, a);
        memcpy(user + a, "\n\n", 2);
        memcpy(user + a + 2, in, c + 1);
    }
    message m[2] = {{ROLE_USER, user ? user : ins}, {ROLE_ASSISTANT, out}};
    adept_status s = render_messages(b, m, 2, t, bos);
    free(user);
    return s;
}

static adept_status layout_prompt_completion(builder *b, const cJSON *j, adept_instr_template t, const char *bos) {
    const char *p, *c;
    ADEPT_TRY(string_field(b, j, "prompt", 1, &p));
    ADEPT_TRY(string_field(b, j, "completion", 1, &c));
    if (!*c) return no_response(b, "completion");
    if (t == ADEPT_INSTR_PLAIN) {
        ADEPT_TRY(push(b, p, 0));
        return push(b, c, 1);
    }
    message m[2] = {{ROLE_USER, p}, {ROLE_ASSISTANT, c}};
    return render_messages(b, m, 2, t, bos);
}

static adept_status layout_messages(builder *b, const cJSON *msgs, adept_instr_template t, const char *bos) {
    char msg[200];
    if (!cJSON_IsArray(msgs)) return fail(b, "'messages' must be an array of {role, content}");
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return fail(b, "'messages' is empty");
    message *m = calloc((size_t)n, sizeof *m);
    if (!m) return adept_fail(ADEPT_ENOMEM, "instruction item: out of memory");
    adept_status s = ADEPT_OK;
    int k = 0, assistant = 0;
    for (const cJSON *e = msgs->child; e && s == ADEPT_OK; e = e->next, k++) {
        const cJSON *r = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "role") : NULL;
        const cJSON *c = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "content") : NULL;
        if (!cJSON_IsString(r) || !cJSON_IsString(c)) {
            snprintf(msg, sizeof msg, "messages[%d] must be an object with string 'role' and 'content'", k + 1);
            s = fail(b, msg);
            break;
        }
        int found = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(r->valuestring, role_names[i]) == 0) found = i;
        if (found < 0) {
            snprintf(msg, sizeof msg, "messages[%d]: role '%.60s' is not system, user or assistant", k + 1,
                     r->valuestring);
            s = fail(b, msg);
            break;
        }
        if (found == ROLE_ASSISTANT && t == ADEPT_INSTR_QWEN3 && strstr(c->valuestring, "</think>")) {
            snprintf(msg, sizeof msg, "messages[%d]: assistant content with '</think>' (reasoning) is not supported "
                                      "by the Qwen3 rendering; use template = \"plain\"", k + 1);
            s = fail(b, msg);
            break;
        }
        m[k].role = (role)found;
        m[k].content = c->valuestring;
        if (found == ROLE_ASSISTANT && *c->valuestring) assistant = 1;
    }
    if (s == ADEPT_OK && !assistant) s = fail(b, "'messages' has no non-empty assistant turn to train on");
    if (s == ADEPT_OK) s = render_messages(b, m, n, t, bos);
    free(m);
    return s;
}

adept_status adept_instr_item_parse(const char *name, size_t line, const char *json, size_t len,
                                    adept_instr_template t, const char *bos, adept_instr_item *out) {
    memset(out, 0, sizeof *out);
    builder b = {name, line, out, 0};
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j) return fail(&b, "not valid JSON");
    adept_status s;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    if (!cJSON_IsObject(j)) s = fail(&b, "an instruction item must be a JSON object");
    else if (msgs) s = layout_messages(&b, msgs, t, bos);
    else if (cJSON_GetObjectItemCaseSensitive(j, "instruction")) s = layout_alpaca(&b, j, t, bos);
    else if (cJSON_GetObjectItemCaseSensitive(j, "prompt")) s = layout_prompt_completion(&b, j, t, bos);
    else s = fail(&b, "not an instruction item: expected 'messages', 'instruction'/'output' or 'prompt'/'completion'");
    cJSON_Delete(j);
    if (s != ADEPT_OK) adept_instr_item_free(out);
    return s;
}

void adept_instr_item_free(adept_instr_item *item) {
    if (!item) return;
    for (int i = 0; i < item->n; i++) free(item->segs[i].text);
    free(item->segs);
    item->segs = NULL;
    item->n = 0;
}

/* ---- template recognition ------------------------------------------------------------------------- */

/* Markers that identify each family's template text exactly enough that the rendering above is the template's
   (checked against Jinja on the real files by tests/parity/test_chat_templates.py). Variants that add default
   system prompts (Qwen2.5's "You are Qwen", Llama 3.1's "Cutting Knowledge Date") are not these families. */
adept_status adept_instr_template_detect(const char *source, const char *tpl, adept_instr_template *out) {
    if (strstr(tpl, "<|im_start|>") && strstr(tpl, "<|im_end|>") && strstr(tpl, "</think>") &&
        strstr(tpl, "last_query_index") && !strstr(tpl, "You are Qwen")) {
        *out = ADEPT_INSTR_QWEN3;
        return ADEPT_OK;
    }
    if (strstr(tpl, "<|start_header_id|>") && strstr(tpl, "<|end_header_id|>") && strstr(tpl, "<|eot_id|>") && strstr(tpl, "| trim") &&
        !strstr(tpl, "Cutting Knowledge") && !strstr(tpl, "tools")) {
        *out = ADEPT_INSTR_LLAMA3;
        return ADEPT_OK;
    }
    return adept_fail(ADEPT_EUNSUPPORTED,
                      "%s: chat_template is not of a supported family (Qwen3 ChatML, Llama 3 headers); "
                      "choose the plain template with template = \"plain\"",
                      source);
}

const char *adept_instr_template_name(adept_instr_template t) {
    switch (t) {
    case ADEPT_INSTR_QWEN3: return "qwen3";
    case ADEPT_INSTR_LLAMA3: return "llama3";
    case ADEPT_INSTR_PLAIN: break;
    }
    return "plain";
}
