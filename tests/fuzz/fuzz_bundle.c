/* libFuzzer target for the bundle reader: any input is read or refused with a message; whatever is read has valid
   member names, each seen once, with exactly its declared number of bytes, within the limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adept/bundle.h"

#define FUZZ_ASSERT(cond) \
    do {                  \
        if (!(cond)) __builtin_trap(); \
    } while (0)

typedef struct state {
    char names[64][64];
    int n;
    uint64_t declared, got, total;
} state;

static adept_status on_begin(void *p, const char *name, uint64_t size) {
    state *s = p;
    FUZZ_ASSERT(adept_bundle_check_name(name) == ADEPT_OK);
    FUZZ_ASSERT(s->n < 64 && size <= 1 << 20);
    for (int i = 0; i < s->n; i++) FUZZ_ASSERT(strncmp(s->names[i], name, 63) != 0 || strlen(name) > 63);
    strncpy(s->names[s->n], name, 63);
    s->names[s->n][63] = '\0';
    s->n++;
    s->declared = size, s->got = 0;
    return ADEPT_OK;
}

static adept_status on_data(void *p, const void *buf, size_t n) {
    state *s = p;
    s->got += n, s->total += n;
    FUZZ_ASSERT(s->got <= s->declared && s->total <= 4u << 20);
    return ADEPT_OK;
}

static adept_status on_end(void *p) {
    state *s = p;
    FUZZ_ASSERT(s->got == s->declared);
    return ADEPT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    adept_bundle_limits l = {.max_member_bytes = 1 << 20, .max_total_bytes = 4u << 20, .max_members = 64,
                             .max_ratio = 1000};
    state s = {0};
    adept_bundle_visitor v = {on_begin, on_data, on_end, &s};
    if (adept_bundle_read_memory(data, size, &l, &v) != ADEPT_OK) FUZZ_ASSERT(adept_last_error()[0] != '\0');
    return 0;
}
