/* Fuzz target: documents read from a buffer — JSON Lines first (line splitting, cJSON parsing, field lookup,
   error locations), then the same bytes as blank-line text and as 16/32-bit token shards — with and without
   skipping bad records. Every handed-out document must lie inside sane bounds. */
#include <stdint.h>
#include <string.h>

#include "data/corpus_internal.h"

static adept_status check_doc(void *ctx, const adept_doc *d) {
    size_t limit = *(size_t *)ctx;
    volatile uint32_t sink = 0;
    if (d->tokens) {
        if (d->text || d->ntokens > limit / 2 || d->line != 0) __builtin_trap();
        for (size_t i = 0; i < d->ntokens; i++) sink ^= d->tokens[i]; /* touch every id: ASan checks bounds */
    } else {
        /* a document is made of input lines, so it is never longer than the input */
        if (!d->text || d->len > limit || d->line < 1) __builtin_trap();
        for (size_t i = 0; i < d->len; i++) sink ^= (unsigned char)d->text[i];
    }
    (void)sink;
    return ADEPT_OK;
}

static void run(const uint8_t *data, size_t size, adept_corpus_format f, int bits, int skip) {
    adept_read_opts o = {f, "text", ADEPT_DOC_BLANK_LINE, bits, 0, skip, 0, 0};
    adept_read_counts c = {0};
    size_t limit = size;
    adept_status st = adept_corpus_read_buffer("fuzz.in", data, size, &o, check_doc, &limit, &c);
    if (st != ADEPT_OK && !adept_last_error()[0]) __builtin_trap(); /* failures carry a message */
    if (skip && st != ADEPT_OK) __builtin_trap();                   /* skipping never fails on bad records */
    if (c.documents < 0 || c.skipped < 0) __builtin_trap();
    adept_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int skip = 0; skip < 2; skip++) run(data, size, ADEPT_FORMAT_JSONL, 0, skip);
    run(data, size, ADEPT_FORMAT_TEXT, 0, 0);
    run(data, size, ADEPT_FORMAT_TOKENS, 16, 1);
    run(data, size, ADEPT_FORMAT_TOKENS, 32, 1);
    return 0;
}
