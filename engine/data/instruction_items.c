/* Instruction items from JSON Lines, rendered with the plain template, and their tokenized rows with the loss on
   the response only (contract in adept/instructions.h, user-facing rules in docs/dataset.md). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/input.h"
#include "adept/instructions.h"
#include "adept/json.h"

static const char PLAIN_INSTRUCTION[] = "### Instruction:\n";
static const char PLAIN_INPUT[] = "\n\n### Input:\n";
static const char PLAIN_RESPONSE[] = "\n\n### Response:\n";

static char *concat(const char *const *parts, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(parts[i]);
    char *s = malloc(len + 1);
    if (!s) return NULL;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(parts[i]);
        memcpy(s + at, parts[i], k);
        at += k;
    }
    s[at] = 0;
    return s;
}

/* A string field: absent -> NULL (*present = 0); present and not a string -> error. */
static adept_status string_field(const char *name, size_t line, const cJSON *j, const char *key, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    *out = NULL;
    if (!v) return ADEPT_OK;
    if (!cJSON_IsString(v)) return adept_fail(ADEPT_EFORMAT, "%s:%zu: '%s' must be a string", name, line, key);
    *out = v->valuestring;
    return ADEPT_OK;
}

/* {"messages": [{"role": ..., "content": ...}, ...]} (no other keys), rendered with the chat template. */
static adept_status build_chat_item(const char *name, size_t line, const cJSON *j, const adept_chat_template *chat,
                                    adept_instruction_item *it) {
    if (!chat)
        return adept_fail(ADEPT_EFORMAT, "%s:%zu: chat 'messages' items need a chat template: give adept.dataset "
                          "chat_template = <tokenizer_config.json> (or a tokenizer directory that has one)", name, line);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    if (cJSON_GetArraySize(j) != 1)
        return adept_fail(ADEPT_EFORMAT, "%s:%zu: a chat item holds only 'messages'", name, line);
    int n = cJSON_IsArray(msgs) ? cJSON_GetArraySize(msgs) : 0;
    if (n < 1) return adept_fail(ADEPT_EFORMAT, "%s:%zu: 'messages' must be a non-empty array", name, line);
    const char **roles = calloc((size_t)n * 2, sizeof *roles);
    if (!roles) return adept_fail(ADEPT_ENOMEM, "%s:%zu: out of memory", name, line);
    const char **contents = roles + n;
    int k = 0, assistant = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, k++) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role"), *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(r) || !cJSON_IsString(c)) {
            free(roles);
            return adept_fail(ADEPT_EFORMAT, "%s:%zu: message %d must be {\"role\": string, \"content\": string}",
                              name, line, k + 1);
        }
        roles[k] = r->valuestring, contents[k] = c->valuestring;
        assistant += !strcmp(r->valuestring, "assistant");
    }
    adept_status st = assistant ? adept_chat_render_messages(chat, roles, contents, (size_t)n, &it->chat)
                                : adept_fail(ADEPT_EFORMAT, "%s:%zu: no assistant message: nothing to learn", name, line);
    free(roles);
    if (st != ADEPT_OK && assistant) { /* the renderer's message, placed at the item (copied: the buffer is reused) */
        char why[512];
        snprintf(why, sizeof why, "%s", adept_last_error());
        return adept_fail(st, "%s:%zu: %s", name, line, why);
    }
    it->line = line;
    return st;
}

static adept_status build_item(const char *name, size_t line, const cJSON *j, const adept_chat_template *chat,
                               adept_instruction_item *it) {
    if (!cJSON_IsObject(j)) return adept_fail(ADEPT_EFORMAT, "%s:%zu: an item must be a JSON object", name, line);
    if (cJSON_GetObjectItemCaseSensitive(j, "messages")) return build_chat_item(name, line, j, chat, it);
    const char *instruction, *input, *output, *prompt, *completion;
    ADEPT_TRY(string_field(name, line, j, "instruction", &instruction));
    ADEPT_TRY(string_field(name, line, j, "input", &input));
    ADEPT_TRY(string_field(name, line, j, "output", &output));
    ADEPT_TRY(string_field(name, line, j, "prompt", &prompt));
    ADEPT_TRY(string_field(name, line, j, "completion", &completion));
    int alpaca = instruction || output || input, plain = prompt || completion;
    if (alpaca && plain)
        return adept_fail(ADEPT_EFORMAT, "%s:%zu: an item is either {instruction, input, output} or "
                          "{prompt, completion}, not both", name, line);
    const char *response;
    if (alpaca) {
        if (!instruction) return adept_fail(ADEPT_EFORMAT, "%s:%zu: missing 'instruction'", name, line);
        if (!output) return adept_fail(ADEPT_EFORMAT, "%s:%zu: missing 'output'", name, line);
        const char *with_input[] = {PLAIN_INSTRUCTION, instruction, PLAIN_INPUT, input ? input : "", PLAIN_RESPONSE};
        const char *without[] = {PLAIN_INSTRUCTION, instruction, PLAIN_RESPONSE};
        it->prompt = input && *input ? concat(with_input, 5) : concat(without, 3);
        response = output;
    } else if (plain) {
        if (!prompt) return adept_fail(ADEPT_EFORMAT, "%s:%zu: missing 'prompt'", name, line);
        if (!completion) return adept_fail(ADEPT_EFORMAT, "%s:%zu: missing 'completion'", name, line);
        it->prompt = strdup(prompt);
        response = completion;
    } else {
        return adept_fail(ADEPT_EFORMAT, "%s:%zu: not an instruction item: expected {instruction, input, output} "
                          "or {prompt, completion}", name, line);
    }
    if (!*response) {
        free(it->prompt);
        it->prompt = NULL;
        return adept_fail(ADEPT_EFORMAT, "%s:%zu: the response ('%s') is empty: nothing to learn", name, line,
                          alpaca ? "output" : "completion");
    }
    it->response = strdup(response);
    it->line = line;
    if (!it->prompt || !it->response) {
        free(it->prompt), free(it->response);
        it->prompt = it->response = NULL;
        return adept_fail(ADEPT_ENOMEM, "%s:%zu: out of memory", name, line);
    }
    return ADEPT_OK;
}

void adept_instruction_set_free(adept_instruction_set *set) {
    if (!set) return;
    for (size_t i = 0; i < set->n; i++) {
        free(set->items[i].prompt), free(set->items[i].response);
        adept_chat_render_free(&set->items[i].chat);
    }
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

adept_status adept_instruction_items_parse(const char *name, const char *text, size_t len, size_t limit,
                                           adept_instruction_set *out) {
    return adept_instruction_items_parse_chat(name, text, len, limit, NULL, out);
}

/* one parsed line: the set grows by one item (adept_jsonl_each) */
typedef struct instruction_reader {
    const char *name;
    const adept_chat_template *chat;
    adept_instruction_set *out;
    size_t cap;
} instruction_reader;

static adept_status add_instruction_item(void *ctx, const cJSON *j, const char *where, size_t line) {
    instruction_reader *r = ctx;
    adept_instruction_set *out = r->out;
    if (out->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        adept_instruction_item *grown = realloc(out->items, nc * sizeof *grown);
        if (!grown) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", where);
        out->items = grown;
        r->cap = nc;
    }
    memset(&out->items[out->n], 0, sizeof out->items[out->n]);
    ADEPT_TRY(build_item(r->name, line, j, r->chat, &out->items[out->n]));
    out->n++;
    return ADEPT_OK;
}

adept_status adept_instruction_items_parse_chat(const char *name, const char *text, size_t len, size_t limit,
                                                const adept_chat_template *chat, adept_instruction_set *out) {
    if (!out) return adept_fail(ADEPT_EINVAL, "instruction items: NULL output");
    out->items = NULL;
    out->n = 0;
    if (!name) name = "<items>";
    instruction_reader r = {name, chat, out, 0};
    adept_status st = adept_jsonl_each(name, text, len, limit, add_instruction_item, &r);
    if (st == ADEPT_OK && out->n == 0) st = adept_fail(ADEPT_EFORMAT, "%s: no instruction items", name);
    if (st != ADEPT_OK) adept_instruction_set_free(out);
    return st;
}

adept_status adept_instruction_items_read(const char *path, size_t limit, adept_instruction_set *out) {
    return adept_instruction_items_read_chat(path, limit, NULL, out);
}

adept_status adept_instruction_items_read_chat(const char *path, size_t limit, const adept_chat_template *chat,
                                               adept_instruction_set *out) {
    if (!path || !out) return adept_fail(ADEPT_EINVAL, "instruction items: NULL path or output");
    out->items = NULL;
    out->n = 0;
    char *buf;
    size_t len;
    ADEPT_TRY(adept_input_read(path, "instruction items", (size_t)1 << 32, &buf, &len));
    adept_status st = adept_instruction_items_parse_chat(path, buf, len, limit, chat, out);
    free(buf);
    return st;
}

void adept_instruction_rows_free(adept_instruction_rows *r) {
    if (!r) return;
    free(r->inputs), free(r->targets);
    memset(r, 0, sizeof *r);
}

/* Writes one row from the item's tokens s[0..n) (learn[k]: token k is learnable); returns the counted targets. */
static int64_t fill_row(const int32_t *s, const uint8_t *learn, int64_t n, int64_t T, int32_t pad, int32_t *x,
                        int32_t *y) {
    int64_t counted = 0;
    for (int64_t t = 0; t < T; t++) {
        x[t] = t < n ? s[t] : pad;
        y[t] = t + 1 < n && learn[t + 1] ? s[t + 1] : -1;
        counted += y[t] >= 0;
    }
    return counted;
}

/* Gives the ids appended since `before` the learnable flag, growing the flag buffer to the ids. */
static adept_status mark(const adept_ids *s, size_t before, uint8_t flag, uint8_t **learn, size_t *cap) {
    if (s->n > *cap) {
        size_t nc = s->n * 2;
        uint8_t *g = realloc(*learn, nc);
        if (!g) return adept_fail(ADEPT_ENOMEM, "instruction rows: out of memory");
        *learn = g, *cap = nc;
    }
    memset(*learn + before, flag, s->n - before);
    return ADEPT_OK;
}

/* Appends the ids of text with the given learnable flag. */
static adept_status append(const adept_tokenizer *tok, const char *text, int add_bos, uint8_t flag, adept_ids *s,
                           uint8_t **learn, size_t *cap) {
    size_t before = s->n;
    ADEPT_TRY(adept_tokenizer_encode(tok, text, strlen(text), add_bos, 0, s));
    return mark(s, before, flag, learn, cap);
}

adept_status adept_instruction_rows_build(const adept_tokenizer *tok, const adept_instruction_set *set,
                                          int64_t seq_len, int32_t eos_id, adept_instruction_rows *out) {
    if (!tok || !set || !out) return adept_fail(ADEPT_EINVAL, "instruction rows: NULL argument");
    memset(out, 0, sizeof *out);
    if (seq_len < 1) return adept_fail(ADEPT_EINVAL, "instruction rows: seq_len must be >= 1, got %lld", (long long)seq_len);
    if (eos_id < 0) eos_id = adept_tokenizer_eos_id(tok);
    int32_t pad = eos_id >= 0 ? eos_id : 0;
    size_t cap = set->n ? set->n : 1;
    out->inputs = malloc(cap * (size_t)seq_len * sizeof(int32_t));
    out->targets = malloc(cap * (size_t)seq_len * sizeof(int32_t));
    out->seq_len = seq_len;
    adept_ids s = {0};
    uint8_t *learn = NULL;
    size_t learn_cap = 0;
    adept_status st = out->inputs && out->targets ? ADEPT_OK : adept_fail(ADEPT_ENOMEM, "instruction rows: out of memory");
    for (size_t i = 0; st == ADEPT_OK && i < set->n; i++) {
        const adept_instruction_item *it = &set->items[i];
        s.n = 0;
        if (it->chat.n) { /* the template holds its own BOS/end-of-turn text */
            for (size_t k = 0; st == ADEPT_OK && k < it->chat.n; k++)
                st = append(tok, it->chat.seg[k].text, 0, (uint8_t)it->chat.seg[k].target, &s, &learn, &learn_cap);
        } else {
            st = append(tok, it->prompt, -1, 0, &s, &learn, &learn_cap);
            if (st == ADEPT_OK) st = append(tok, it->response, 0, 1, &s, &learn, &learn_cap);
            if (st == ADEPT_OK && eos_id >= 0) {
                size_t before = s.n;
                st = adept_ids_push(&s, eos_id);
                if (st == ADEPT_OK) st = mark(&s, before, 1, &learn, &learn_cap);
            }
        }
        if (st != ADEPT_OK) break;
        int64_t first = 1; /* the first learnable token after position 0 (position 0 is never a target) */
        while (first < (int64_t)s.n && !learn[first]) first++;
        if (first > seq_len) { /* no learnable token fits: the prompt alone fills the row */
            out->dropped++;
            continue;
        }
        int64_t n = (int64_t)s.n;
        if (n > seq_len + 1) out->truncated++, n = seq_len + 1;
        out->response_tokens += fill_row(s.ids, learn, n, seq_len, pad, out->inputs + out->n * seq_len,
                                         out->targets + out->n * seq_len);
        out->n++;
    }
    free(learn);
    adept_ids_free(&s);
    if (st == ADEPT_OK && out->n == 0)
        st = adept_fail(ADEPT_EFORMAT, "instruction rows: all %zu items were dropped (every prompt is longer than "
                        "seq_len = %lld tokens)", set->n, (long long)seq_len);
    if (st != ADEPT_OK) adept_instruction_rows_free(out);
    return st;
}

adept_status adept_instruction_batch(const adept_instruction_rows *r, int64_t k, int64_t batch_size,
                                     adept_tensor **inputs, adept_tensor **targets) {
    if (!r || r->n < 1) return adept_fail(ADEPT_EINVAL, "instruction batch: no rows");
    if (k < 0 || batch_size < 1) return adept_fail(ADEPT_EINVAL, "instruction batch: bad index or batch size");
    return adept_instruction_batch_at(r, (int64_t)(((uint64_t)k * (uint64_t)batch_size) % (uint64_t)r->n),
                                      batch_size, inputs, targets);
}

adept_status adept_instruction_batch_at(const adept_instruction_rows *r, int64_t first, int64_t batch_size,
                                        adept_tensor **inputs, adept_tensor **targets) {
    if (!r || !inputs || !targets || r->n < 1) return adept_fail(ADEPT_EINVAL, "instruction batch: no rows");
    if (first < 0 || batch_size < 1) return adept_fail(ADEPT_EINVAL, "instruction batch: bad index or batch size");
    int64_t shape[2] = {batch_size, r->seq_len};
    *inputs = *targets = NULL;
    adept_status st = adept_tensor_new(ADEPT_I32, 2, shape, inputs);
    if (st == ADEPT_OK) st = adept_tensor_new(ADEPT_I32, 2, shape, targets);
    if (st != ADEPT_OK) {
        adept_tensor_free(*inputs);
        *inputs = NULL;
        return st;
    }
    int32_t *x = adept_tensor_i32(*inputs), *y = adept_tensor_i32(*targets);
    size_t T = (size_t)r->seq_len;
    for (int64_t b = 0; b < batch_size; b++) {
        int64_t row = (int64_t)(((uint64_t)first + (uint64_t)b) % (uint64_t)r->n);
        memcpy(x + b * T, r->inputs + row * T, T * sizeof(int32_t));
        memcpy(y + b * T, r->targets + row * T, T * sizeof(int32_t));
    }
    return ADEPT_OK;
}
