/* Instruction items (issue 15 point 3, first piece): one JSON object in any of the supported layouts
   ({instruction, input, output}, {prompt, completion}, {messages: [{role, content}]}) rendered with the
   plain template into text segments, each marked whether its tokens carry loss (the response) or not
   (the prompt and the template). Tokenising segments and setting prompt targets to -1 is the dataset's job. */
#ifndef ADEPT_INSTRUCT_H
#define ADEPT_INSTRUCT_H

#include <stddef.h>

#include "adept/error.h"

typedef struct adept_instr_segment {
    char *text;   /* NUL-terminated, owned */
    int trained;  /* 1: the response (loss counts), 0: prompt or template text (targets -1) */
} adept_instr_segment;

typedef struct adept_instr_item {
    adept_instr_segment *segs;
    int n;
} adept_instr_item;

/* Parses one JSON Lines record (`json`, `len` bytes) and renders it with the plain template (docs/dataset.md).
   Errors name `name`:`line` and the field at fault. */
adept_status adept_instr_item_parse(const char *name, size_t line, const char *json, size_t len,
                                    adept_instr_item *out);
void adept_instr_item_free(adept_instr_item *item);

#endif
