/* libFuzzer target for the instruction-item reader (plain and chat items) and its rows: any input parses or fails with a message and no
   allocation left; every parsed item has a prompt and a non-empty response; rows built with a byte tokenizer
   account for every item (kept + dropped), and each row's counted targets are one contiguous, non-empty span
   (the response) with -1 before it (the prompt) and after it (padding). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/instructions.h"

#define FUZZ_ASSERT(cond) \
    do {                  \
        if (!(cond)) __builtin_trap(); \
    } while (0)

/* A llama2.c tokenizer.bin in memory: <unk>, <s>, </s> and the 256 byte tokens. */
static adept_tokenizer *byte_tokenizer(void) {
    static unsigned char buf[4 + 259 * (8 + 8)];
    size_t at = 0;
    int32_t maxlen = 6;
    memcpy(buf + at, &maxlen, 4), at += 4;
    for (int i = 0; i < 259; i++) {
        char s[16];
        if (i == 0) snprintf(s, sizeof s, "<unk>");
        else if (i == 1) snprintf(s, sizeof s, "\n<s>\n");
        else if (i == 2) snprintf(s, sizeof s, "\n</s>\n");
        else snprintf(s, sizeof s, "<0x%02X>", i - 3);
        float score = 0;
        int32_t len = (int32_t)strlen(s);
        memcpy(buf + at, &score, 4), at += 4;
        memcpy(buf + at, &len, 4), at += 4;
        memcpy(buf + at, s, (size_t)len), at += (size_t)len;
    }
    adept_tokenizer *tok = NULL;
    if (adept_tokenizer_load_memory("tok259.bin", buf, at, &tok) != ADEPT_OK) __builtin_trap();
    return tok;
}

/* Chat items through a recognised template (the family is chosen by the input's first byte): the rows account
   for every item and count exactly their non-negative targets. */
static void chat_pass(adept_tokenizer *tok, const uint8_t *data, size_t size) {
    static const char *const templates[] = {
        "<|im_start|> <|im_end|> last_query_index <think>",
        "<|start_header_id|> <|end_header_id|> <|eot_id|> | trim"};
    adept_chat_template t;
    if (adept_chat_template_detect("fuzz", templates[size && (data[0] & 1)], "<|begin_of_text|>", &t) != ADEPT_OK)
        __builtin_trap();
    adept_instruction_set set;
    if (adept_instruction_items_parse_chat("fuzz.jsonl", (const char *)data, size, 0, &t, &set) != ADEPT_OK) {
        FUZZ_ASSERT(set.items == NULL && set.n == 0 && adept_last_error()[0] != '\0');
        adept_clear_error();
        return;
    }
    adept_instruction_rows r;
    if (adept_instruction_rows_build(tok, &set, 24, -1, &r) == ADEPT_OK) {
        FUZZ_ASSERT(r.n + r.dropped == (int64_t)set.n);
        int64_t counted = 0;
        for (int64_t k = 0; k < r.n * 24; k++) counted += r.targets[k] >= 0;
        FUZZ_ASSERT(counted == r.response_tokens);
        adept_instruction_rows_free(&r);
    } else {
        adept_clear_error();
    }
    adept_instruction_set_free(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static adept_tokenizer *tok;
    if (!tok) tok = byte_tokenizer(); /* kept for the process: one tokenizer, not one per input */
    chat_pass(tok, data, size);
    adept_instruction_set set;
    adept_status s = adept_instruction_items_parse("fuzz.jsonl", (const char *)data, size, 0, &set);
    if (s != ADEPT_OK) {
        FUZZ_ASSERT(set.items == NULL && set.n == 0 && adept_last_error()[0] != '\0');
        adept_clear_error();
        return 0;
    }
    FUZZ_ASSERT(set.n > 0);
    size_t prev_line = 0;
    for (size_t i = 0; i < set.n; i++) {
        const adept_instruction_item *it = &set.items[i];
        FUZZ_ASSERT(it->prompt && it->response && it->response[0] && it->line > prev_line);
        prev_line = it->line;
    }
    const int64_t T = 16;
    adept_instruction_rows r;
    s = adept_instruction_rows_build(tok, &set, T, -1, &r);
    if (s != ADEPT_OK) { /* only when every item was dropped */
        FUZZ_ASSERT(adept_last_error()[0] != '\0' && r.inputs == NULL && r.n == 0);
        adept_clear_error();
    } else {
        FUZZ_ASSERT(r.n + r.dropped == (int64_t)set.n && r.truncated <= r.n && r.seq_len == T);
        int64_t counted = 0;
        for (int64_t row = 0; row < r.n; row++) {
            const int32_t *y = r.targets + row * T, *x = r.inputs + row * T;
            int64_t t = 0, span = 0;
            while (t < T && y[t] < 0) t++;
            while (t < T && y[t] >= 0) span++, t++;
            while (t < T && y[t] < 0) t++;
            FUZZ_ASSERT(t == T && span >= 1); /* one contiguous response span */
            for (int64_t k = 0; k + 1 < T; k++) /* a counted target is the next row input when both exist */
                if (y[k] >= 0 && k + 1 < T && y[k + 1] >= 0) FUZZ_ASSERT(x[k + 1] == y[k]);
            counted += span;
        }
        FUZZ_ASSERT(counted == r.response_tokens);
        adept_instruction_rows_free(&r);
    }
    adept_instruction_set_free(&set);
    return 0;
}
