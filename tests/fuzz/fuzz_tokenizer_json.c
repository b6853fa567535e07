/* libFuzzer target: arbitrary bytes loaded as a tokenizer.json (everything before the first NUL byte; inputs not
   starting with '{' go to the llama2.c tokenizer.bin loader instead, whole), then a text encoded and the ids
   decoded. Invariants: ids lie in the vocabulary; decode succeeds on them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adept/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size && data[0] != '{') { /* tokenizer.bin: binary, so no NUL separator */
        adept_tokenizer *tok;
        if (adept_tokenizer_load_memory("fuzz.bin", data, size, &tok) != ADEPT_OK) return 0;
        adept_ids ids = {0};
        const char *t = "Once upon a time \xff\xc3 x";
        if (adept_tokenizer_encode(tok, t, strlen(t), 1, 1, &ids) == ADEPT_OK) {
            for (size_t i = 0; i < ids.n; i++)
                if (ids.ids[i] < 0 || ids.ids[i] >= adept_tokenizer_vocab_size(tok)) __builtin_trap();
            char *s;
            size_t sl;
            if (adept_tokenizer_decode(tok, ids.ids, ids.n, 0, &s, &sl) == ADEPT_OK) free(s);
        }
        adept_ids_free(&ids);
        adept_tokenizer_free(tok);
        return 0;
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t jn = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "Hello wörld 😀 <s> 123\n\t  x\xff";
    size_t tn = nul ? size - jn - 1 : strlen(text);
    adept_tokenizer *tok;
    if (adept_tokenizer_load_memory("fuzz.json", data, jn, &tok) != ADEPT_OK) return 0;
    int32_t V = adept_tokenizer_vocab_size(tok);
    for (int mode = -1; mode <= 1; mode++) {
        adept_ids ids = {0};
        if (adept_tokenizer_encode(tok, text, tn, mode, mode, &ids) == ADEPT_OK) {
            for (size_t i = 0; i < ids.n; i++)
                if (ids.ids[i] < 0 || ids.ids[i] >= V) __builtin_trap();
            char *s;
            size_t sl;
            if (adept_tokenizer_decode(tok, ids.ids, ids.n, mode == 1, &s, &sl) == ADEPT_OK) {
                if (strlen(s) > sl) __builtin_trap(); /* NUL-terminated at sl (NULs inside are allowed) */
                free(s);
            }
        }
        adept_ids_free(&ids);
    }
    adept_tokenizer_free(tok);
    return 0;
}
