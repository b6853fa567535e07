/* Strict JSON for every reader of the engine: cJSON parses, then these refuse what cJSON lets through
   silently (a key given twice in one object, numbers that do not fit the C integer they become). */
#ifndef ADEPT_JSON_H
#define ADEPT_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"

/* Fails on the first object (in document order) that holds a key twice, naming the key and where it is:
   "config.json: duplicate key \"num_hidden_layers\" in the top-level object". cJSON keeps both entries and
   lookups return the first, while Python's json (and so transformers) keeps the last: either reading would be a
   silent guess, so such files are refused. */
adept_status adept_json_check_unique(const cJSON *root, const char *label);

/* cJSON_ParseWithLength, then only whitespace may follow the value, then adept_json_check_unique.
   Messages: "label: invalid JSON near byte N", "label: unexpected data after the JSON value at byte N". */
adept_status adept_json_parse(const char *text, size_t len, const char *label, cJSON **out);

/* JSON Lines: one value per non-blank line of text, parsed strictly (whitespace only after it, no duplicate key),
   handed to fn in order with "name:line" until fn fails or it has accepted `limit` values (0: no limit). Errors
   name the line: "name:7: invalid JSON (near byte 3 of the line)", "name:7: text after the JSON value (one item
   per line)". fn borrows j (deleted after the call). The item readers (choice items, instruction items) use it. */
typedef adept_status (*adept_jsonl_fn)(void *ctx, const cJSON *j, const char *where, size_t line);
adept_status adept_jsonl_each(const char *name, const char *text, size_t len, size_t limit, adept_jsonl_fn fn,
                              void *ctx);

/* 1 when d is an integer in [lo, hi], checked before any conversion (so NaN, infinities and values beyond the
   target type are refused without undefined behaviour); *out gets it. lo and hi must lie within +-2^53. */
int adept_double_to_int(double d, int64_t lo, int64_t hi, int64_t *out);

/* The same for a cJSON value: 0 when v is not a number or not an integer in [lo, hi]. */
int adept_json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out);

#endif
