/* libFuzzer target for the multiple-choice JSON Lines reader: any input parses or fails with a message, and every
   parsed item has a question, at least two string choices and an answer index inside them. */
#include <stdint.h>
#include <string.h>

#include "adept/eval.h"

#define FUZZ_ASSERT(cond) \
    do {                  \
        if (!(cond)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    adept_choice_set set;
    adept_status s = adept_choice_items_parse("fuzz.jsonl", (const char *)data, size, 0, &set);
    if (s != ADEPT_OK) {
        FUZZ_ASSERT(set.items == NULL && set.n == 0 && adept_last_error()[0] != '\0');
        return 0;
    }
    size_t prev_line = 0;
    for (size_t i = 0; i < set.n; i++) {
        const adept_choice_item *it = &set.items[i];
        FUZZ_ASSERT(it->question && it->n_choices >= 2 && it->answer >= 0 && it->answer < it->n_choices);
        FUZZ_ASSERT(it->line > prev_line);
        prev_line = it->line;
        for (int k = 0; k < it->n_choices; k++) FUZZ_ASSERT(it->choices[k] && strlen(it->choices[k]) < size);
    }
    adept_choice_set_free(&set);
    return 0;
}
