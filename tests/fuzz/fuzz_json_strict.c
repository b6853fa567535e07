/* libFuzzer target: arbitrary bytes through adept_json_parse (the strict parse every engine reader uses).
   Invariant, checked against a brute-force oracle: the parse refuses a duplicate key exactly when some object of
   cJSON's tree repeats a key, and a number accepted by adept_json_int lies in the range asked for. */
#include <stdint.h>
#include <string.h>

#include "adept/json.h"

static int has_duplicate(const cJSON *node) {
    if (!node) return 0;
    if (cJSON_IsObject(node))
        for (const cJSON *a = node->child; a; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (!strcmp(a->string, b->string)) return 1;
    for (const cJSON *c = node->child; c; c = c->next)
        if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && has_duplicate(c)) return 1;
    return 0;
}

static void check_numbers(const cJSON *node) {
    for (const cJSON *c = node ? node->child : NULL; c; c = c->next) {
        int64_t v;
        if (adept_json_int(c, -1000, 1000, &v) && (v < -1000 || v > 1000 || (double)v != c->valuedouble))
            __builtin_trap();
        if (adept_json_int(c, 0, INT32_MAX, &v) && (v < 0 || v > INT32_MAX)) __builtin_trap();
        check_numbers(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0; /* the oracle is quadratic */
    cJSON *root = NULL;
    adept_status st = adept_json_parse((const char *)data, size, "fuzz.json", &root);
    if (st == ADEPT_OK) {
        if (has_duplicate(root)) __builtin_trap();
        check_numbers(root);
        cJSON_Delete(root);
        return 0;
    }
    if (strstr(adept_last_error(), "duplicate key")) {
        /* the same bytes parsed without the check must show a repeated key */
        cJSON *raw = cJSON_ParseWithLength((const char *)data, size);
        if (!raw || !has_duplicate(raw)) __builtin_trap();
        cJSON_Delete(raw);
    }
    return 0;
}
