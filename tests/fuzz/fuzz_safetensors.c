/* libFuzzer target for the safetensors header parser: any input must parse or fail with a message, and a
   parse that succeeds must satisfy the invariants every caller relies on (ranges inside the data section). */
#include <stdint.h>
#include <string.h>

#include "adept/safetensors.h"

#define FUZZ_ASSERT(cond) \
    do {                  \
        if (!(cond)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    adept_safetensors *st = NULL;
    adept_status s = adept_safetensors_parse(data, size, "fuzz", &st);
    if (s != ADEPT_OK) {
        FUZZ_ASSERT(st == NULL && adept_last_error()[0] != '\0');
        return 0;
    }
    FUZZ_ASSERT(st && st->data_offset >= 8 && st->data_offset <= size);
    size_t data_size = size - st->data_offset;
    for (size_t i = 0; i < st->n_entries; i++) {
        const adept_st_entry *e = &st->entries[i];
        FUZZ_ASSERT(e->begin <= e->end && e->end <= data_size);
        FUZZ_ASSERT(adept_safetensors_find(st, e->name) == e); /* names are unique */
        adept_tensor *t = NULL;
        if (adept_safetensors_view(st, e, &t) != ADEPT_OK) continue;
        FUZZ_ASSERT(adept_tensor_nbytes(t) == e->end - e->begin);
        FUZZ_ASSERT(memcmp(adept_tensor_data(t), data + st->data_offset + e->begin, e->end - e->begin) == 0);
        adept_tensor_free(t);
    }
    for (size_t i = 0; i < st->n_meta; i++)
        FUZZ_ASSERT(adept_safetensors_meta(st, st->meta_keys[i]) != NULL);
    adept_safetensors_close(st);
    return 0;
}
