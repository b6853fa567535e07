/* Multiple-choice items from JSON Lines, normalised to {question, choices[], answer index} from the common
   layouts: plain/MMLU ({question, choices, answer}), CSV-derived MMLU ({question, A, B, C, D, answer:"B"}),
   MedQA ({question, options:{A:..}, answer_idx}) and ARC ({question:{stem, choices:[{text,label}]}, answerKey}).

   Answer rules (documented in docs/eval.md): the first present of answer_idx, answerKey, answer, label is used;
   an integer is a 0-based index; a string is a choice label ("A".., or ARC's "1".."4"), else a choice's exact
   text. Anything else is an error naming the file and line. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/eval.h"
#include "adept/input.h"
#include "adept/json.h"

#define MAX_CHOICES 26

typedef struct item_builder {
    const char *name;
    size_t line;
    const char *question;
    const char *choices[MAX_CHOICES];
    char labels[MAX_CHOICES][16];
    int n;
} item_builder;

static adept_status item_fail(const item_builder *b, const char *what) {
    return adept_fail(ADEPT_EFORMAT, "%s:%zu: %s", b->name, b->line, what);
}

static adept_status add_choice(item_builder *b, const cJSON *text, const char *label, const char *where) {
    char msg[160];
    if (b->n >= MAX_CHOICES) {
        snprintf(msg, sizeof msg, "more than %d choices", MAX_CHOICES);
        return item_fail(b, msg);
    }
    if (!cJSON_IsString(text)) {
        snprintf(msg, sizeof msg, "choice %d (%s) must be a string", b->n + 1, where);
        return item_fail(b, msg);
    }
    b->choices[b->n] = text->valuestring;
    if (label) snprintf(b->labels[b->n], sizeof b->labels[b->n], "%s", label);
    else snprintf(b->labels[b->n], sizeof b->labels[b->n], "%c", 'A' + b->n);
    b->n++;
    return ADEPT_OK;
}

/* ARC: question = {stem, choices: [{text, label}]}; HF's ARC: choices = {text: [...], label: [...]}. */
static adept_status choices_from_label_arrays(item_builder *b, const cJSON *c) {
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "text");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(c, "label");
    if (!cJSON_IsArray(text)) return item_fail(b, "'choices' object must hold a 'text' array");
    if (label && (!cJSON_IsArray(label) || cJSON_GetArraySize(label) != cJSON_GetArraySize(text)))
        return item_fail(b, "'choices.label' must be an array as long as 'choices.text'");
    const cJSON *l = label ? label->child : NULL;
    for (const cJSON *t = text->child; t; t = t->next, l = l ? l->next : NULL) {
        if (l && !cJSON_IsString(l)) return item_fail(b, "choice labels must be strings");
        ADEPT_TRY(add_choice(b, t, l ? l->valuestring : NULL, "choices.text"));
    }
    return ADEPT_OK;
}

static adept_status choices_from_array(item_builder *b, const cJSON *arr, const char *field) {
    for (const cJSON *c = arr->child; c; c = c->next) {
        if (cJSON_IsObject(c)) { /* [{text, label}] (ARC) or [{key, value}] (some MedQA exports) */
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text");
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, "label");
            if (!t) t = cJSON_GetObjectItemCaseSensitive(c, "value"), l = cJSON_GetObjectItemCaseSensitive(c, "key");
            if (l && !cJSON_IsString(l)) return item_fail(b, "choice labels must be strings");
            ADEPT_TRY(add_choice(b, t, l ? l->valuestring : NULL, field));
        } else ADEPT_TRY(add_choice(b, c, NULL, field));
    }
    return ADEPT_OK;
}

static adept_status read_choices(item_builder *b, const cJSON *j, const cJSON *arc_choices) {
    const cJSON *c = arc_choices ? arc_choices : cJSON_GetObjectItemCaseSensitive(j, "choices");
    const char *field = arc_choices ? "question.choices" : "choices";
    if (!c) c = cJSON_GetObjectItemCaseSensitive(j, "options"), field = "options";
    if (c) {
        if (cJSON_IsArray(c)) ADEPT_TRY(choices_from_array(b, c, field));
        else if (cJSON_IsObject(c) && !strcmp(field, "options")) { /* MedQA: {A: text, B: text, ...} */
            for (const cJSON *o = c->child; o; o = o->next) ADEPT_TRY(add_choice(b, o, o->string, "options"));
        } else if (cJSON_IsObject(c)) ADEPT_TRY(choices_from_label_arrays(b, c));
        else {
            char msg[96];
            snprintf(msg, sizeof msg, "'%s' must be an array or an object", field);
            return item_fail(b, msg);
        }
    } else { /* CSV-derived MMLU: fields A, B, C, D (, E ...) */
        for (int k = 0; k < MAX_CHOICES; k++) {
            char key[2] = {(char)('A' + k), 0};
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, key);
            if (!o) break;
            ADEPT_TRY(add_choice(b, o, key, key));
        }
        if (b->n == 0)
            return item_fail(b, "no choices: expected 'choices', 'options', fields A, B, C, ... or an ARC "
                                "question {stem, choices}");
    }
    if (b->n < 2) {
        char msg[64];
        snprintf(msg, sizeof msg, "an item needs at least 2 choices, got %d", b->n);
        return item_fail(b, msg);
    }
    return ADEPT_OK;
}

static adept_status resolve_answer(const item_builder *b, const cJSON *j, int *answer) {
    static const char *const fields[] = {"answer_idx", "answerKey", "answer", "label"};
    const cJSON *a = NULL;
    const char *field = NULL;
    for (size_t k = 0; k < sizeof fields / sizeof fields[0] && !a; k++)
        a = cJSON_GetObjectItemCaseSensitive(j, field = fields[k]);
    if (!a) return item_fail(b, "no answer: expected 'answer', 'answer_idx' or 'answerKey'");
    char msg[256];
    if (cJSON_IsNumber(a)) {
        int64_t v;
        if (!adept_json_int(a, 0, b->n - 1, &v)) {
            snprintf(msg, sizeof msg, "'%s' %g is not a 0-based index of the %d choices", field, a->valuedouble, b->n);
            return item_fail(b, msg);
        }
        *answer = (int)v;
        return ADEPT_OK;
    }
    if (!cJSON_IsString(a)) {
        snprintf(msg, sizeof msg, "'%s' must be an integer index, a label or a choice's text", field);
        return item_fail(b, msg);
    }
    for (int k = 0; k < b->n; k++)
        if (!strcmp(a->valuestring, b->labels[k])) return *answer = k, ADEPT_OK;
    for (int k = 0; k < b->n; k++)
        if (!strcmp(a->valuestring, b->choices[k])) return *answer = k, ADEPT_OK;
    snprintf(msg, sizeof msg, "'%s' \"%.60s\" matches no choice label (%s..%s) and no choice text", field,
             a->valuestring, b->labels[0], b->labels[b->n - 1]);
    return item_fail(b, msg);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void item_free(adept_choice_item *it) {
    free(it->question);
    for (int k = 0; k < it->n_choices && it->choices; k++) free(it->choices[k]);
    free(it->choices);
}

static adept_status build_item(const char *name, size_t line, const cJSON *j, adept_choice_item *out) {
    item_builder b = {.name = name, .line = line};
    if (!cJSON_IsObject(j)) return item_fail(&b, "an item must be a JSON object");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "question");
    const cJSON *arc_choices = NULL;
    if (cJSON_IsObject(q)) { /* ARC */
        arc_choices = cJSON_GetObjectItemCaseSensitive(q, "choices");
        q = cJSON_GetObjectItemCaseSensitive(q, "stem");
        if (!cJSON_IsString(q)) return item_fail(&b, "ARC 'question' object must hold a string 'stem'");
        if (!arc_choices) return item_fail(&b, "ARC 'question' object must hold 'choices'");
    } else if (!q) return item_fail(&b, "no 'question' field");
    else if (!cJSON_IsString(q)) return item_fail(&b, "'question' must be a string or an ARC object {stem, choices}");
    b.question = q->valuestring;
    ADEPT_TRY(read_choices(&b, j, arc_choices));
    int answer = -1;
    ADEPT_TRY(resolve_answer(&b, j, &answer));
    memset(out, 0, sizeof *out);
    out->line = line;
    out->answer = answer;
    out->question = dup_str(b.question);
    out->choices = calloc((size_t)b.n, sizeof *out->choices);
    if (out->question && out->choices) {
        for (out->n_choices = 0; out->n_choices < b.n; out->n_choices++)
            if (!(out->choices[out->n_choices] = dup_str(b.choices[out->n_choices]))) break;
        if (out->n_choices == b.n) return ADEPT_OK;
    }
    item_free(out);
    return adept_fail(ADEPT_ENOMEM, "%s:%zu: out of memory", name, line);
}

void adept_choice_set_free(adept_choice_set *set) {
    if (!set) return;
    for (size_t i = 0; i < set->n; i++) item_free(&set->items[i]);
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

/* one parsed line: the set grows by one item (adept_jsonl_each) */
typedef struct choice_reader {
    const char *name;
    adept_choice_set *out;
    size_t cap;
} choice_reader;

static adept_status add_choice_item(void *ctx, const cJSON *j, const char *where, size_t line) {
    choice_reader *r = ctx;
    adept_choice_set *out = r->out;
    if (out->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        adept_choice_item *grown = realloc(out->items, nc * sizeof *grown);
        if (!grown) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", where);
        out->items = grown;
        r->cap = nc;
    }
    ADEPT_TRY(build_item(r->name, line, j, &out->items[out->n]));
    out->n++;
    return ADEPT_OK;
}

adept_status adept_choice_items_parse(const char *name, const char *text, size_t len, size_t limit,
                                      adept_choice_set *out) {
    if (!out) return adept_fail(ADEPT_EINVAL, "choice items: NULL output");
    out->items = NULL;
    out->n = 0;
    if (!name) name = "<items>";
    choice_reader r = {name, out, 0};
    adept_status st = adept_jsonl_each(name, text, len, limit, add_choice_item, &r);
    if (st != ADEPT_OK) adept_choice_set_free(out);
    return st;
}

adept_status adept_choice_items_read(const char *path, size_t limit, adept_choice_set *out) {
    if (!path || !out) return adept_fail(ADEPT_EINVAL, "choice items: NULL path or output");
    out->items = NULL;
    out->n = 0;
    char *buf;
    size_t len;
    ADEPT_TRY(adept_input_read(path, "choice items", (size_t)1 << 32, &buf, &len));
    adept_status st = adept_choice_items_parse(path, buf, len, limit, out);
    free(buf);
    return st;
}
