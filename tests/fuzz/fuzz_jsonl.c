/* Fuzz target: JSON Lines documents read from a buffer (line splitting, cJSON parsing, field lookup, error
   locations), with and without skipping bad records. Each handed-out document must lie inside sane bounds. */
#include <stdint.h>
#include <string.h>

#include "data/corpus_internal.h"

static adept_status check_doc(void *ctx, const adept_doc *d) {
    size_t limit = *(size_t *)ctx;
    /* a document is at most one line of the input, so never longer than the input */
    if (!d->text || d->len > limit || d->line < 1 || d->tokens) __builtin_trap();
    volatile char sink = 0;
    for (size_t i = 0; i < d->len; i++) sink ^= d->text[i]; /* touch every byte: ASan checks the bounds */
    (void)sink;
    return ADEPT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int skip = 0; skip < 2; skip++) {
        adept_read_opts o = {ADEPT_FORMAT_JSONL, "text", ADEPT_DOC_BLANK_LINE, 0, -1, skip, 0, 0};
        adept_read_counts c = {0};
        size_t limit = size;
        adept_status st = adept_corpus_read_buffer("fuzz.jsonl", data, size, &o, check_doc, &limit, &c);
        if (st != ADEPT_OK && !adept_last_error()[0]) __builtin_trap(); /* failures carry a message */
        if (skip && st != ADEPT_OK) __builtin_trap();                   /* skipping never fails on bad records */
        adept_clear_error();
    }
    return 0;
}
