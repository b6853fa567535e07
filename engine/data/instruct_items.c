/* Instruction items rendered with the plain template into prompt/response segments.

   Plain template (documented in docs/dataset.md):
     Alpaca {instruction, input, output}:
       "### Instruction:\n" instruction "\n\n" ["### Input:\n" input "\n\n" when input is non-empty]
       "### Response:\n"  | output (trained)
     {prompt, completion}:  prompt | completion (trained); the prompt is taken verbatim.
     {messages}: system -> "### System:\n" c "\n\n", user -> "### Instruction:\n" c "\n\n",
       assistant -> "### Response:\n" | c (trained), with "\n\n" (untrained) before the next message.
   Only assistant/response text is trained; everything else gets target -1 downstream. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/instruct.h"

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
static adept_status push(builder *b, const char *text, int trained) {
    adept_instr_item *it = b->item;
    size_t add = strlen(text);
    if (add == 0) return ADEPT_OK;
    if (it->n > 0 && it->segs[it->n - 1].trained == trained) {
        adept_instr_segment *s = &it->segs[it->n - 1];
        size_t old = strlen(s->text);
        char *t = realloc(s->text, old + add + 1);
        if (!t) return adept_fail(ADEPT_ENOMEM, "instruction item: out of memory");
        memcpy(t + old, text, add + 1);
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
    memcpy(t, text, add + 1);
    it->segs[it->n].text = t;
    it->segs[it->n].trained = trained;
    it->n++;
    return ADEPT_OK;
}

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

static adept_status render_alpaca(builder *b, const cJSON *j) {
    const char *ins, *in, *out;
    ADEPT_TRY(string_field(b, j, "instruction", 1, &ins));
    ADEPT_TRY(string_field(b, j, "input", 0, &in));
    ADEPT_TRY(string_field(b, j, "output", 1, &out));
    ADEPT_TRY(push(b, "### Instruction:\n", 0));
    ADEPT_TRY(push(b, ins, 0));
    ADEPT_TRY(push(b, "\n\n", 0));
    if (in && *in) {
        ADEPT_TRY(push(b, "### Input:\n", 0));
        ADEPT_TRY(push(b, in, 0));
        ADEPT_TRY(push(b, "\n\n", 0));
    }
    ADEPT_TRY(push(b, "### Response:\n", 0));
    if (!*out) return fail(b, "'output' is empty: an item needs a response to train on");
    return push(b, out, 1);
}

static adept_status render_prompt_completion(builder *b, const cJSON *j) {
    const char *p, *c;
    ADEPT_TRY(string_field(b, j, "prompt", 1, &p));
    ADEPT_TRY(string_field(b, j, "completion", 1, &c));
    if (!*c) return fail(b, "'completion' is empty: an item needs a response to train on");
    ADEPT_TRY(push(b, p, 0));
    return push(b, c, 1);
}

static adept_status render_messages(builder *b, const cJSON *msgs) {
    char msg[200];
    if (!cJSON_IsArray(msgs)) return fail(b, "'messages' must be an array of {role, content}");
    int k = 0, assistant = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, k++) {
        if (!cJSON_IsObject(m)) {
            snprintf(msg, sizeof msg, "messages[%d] must be an object {role, content}", k + 1);
            return fail(b, msg);
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            snprintf(msg, sizeof msg, "messages[%d] needs string 'role' and 'content'", k + 1);
            return fail(b, msg);
        }
        if (k > 0) ADEPT_TRY(push(b, "\n\n", 0));
        const char *r = role->valuestring;
        if (strcmp(r, "system") == 0) {
            ADEPT_TRY(push(b, "### System:\n", 0));
            ADEPT_TRY(push(b, content->valuestring, 0));
        } else if (strcmp(r, "user") == 0) {
            ADEPT_TRY(push(b, "### Instruction:\n", 0));
            ADEPT_TRY(push(b, content->valuestring, 0));
        } else if (strcmp(r, "assistant") == 0) {
            ADEPT_TRY(push(b, "### Response:\n", 0));
            ADEPT_TRY(push(b, content->valuestring, 1));
            if (*content->valuestring) assistant = 1;
        } else {
            snprintf(msg, sizeof msg, "messages[%d]: role '%.60s' is not system, user or assistant", k + 1, r);
            return fail(b, msg);
        }
    }
    if (!assistant) return fail(b, "'messages' has no non-empty assistant turn to train on");
    return ADEPT_OK;
}

adept_status adept_instr_item_parse(const char *name, size_t line, const char *json, size_t len,
                                    adept_instr_item *out) {
    memset(out, 0, sizeof *out);
    builder b = {name, line, out, 0};
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j) return fail(&b, "not valid JSON");
    adept_status s;
    if (!cJSON_IsObject(j)) s = fail(&b, "an instruction item must be a JSON object");
    else if (cJSON_GetObjectItemCaseSensitive(j, "messages"))
        s = render_messages(&b, cJSON_GetObjectItemCaseSensitive(j, "messages"));
    else if (cJSON_GetObjectItemCaseSensitive(j, "instruction")) s = render_alpaca(&b, j);
    else if (cJSON_GetObjectItemCaseSensitive(j, "prompt")) s = render_prompt_completion(&b, j);
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
