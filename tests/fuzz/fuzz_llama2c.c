/* libFuzzer target for the llama2.c importer: any bytes import or fail with a message and no model; an import
   that succeeds has the dimensions its header states and a size that matches the header exactly. */
#include <stdint.h>
#include <string.h>

#include "adept/llama2c.h"

#define FUZZ_ASSERT(cond) \
    do {                  \
        if (!(cond)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 20)) return 0; /* a model needs about twice its file size in memory */
    adept_llama2c_header h;
    adept_status hs = adept_llama2c_parse_header(data, size, "fuzz", &h);
    adept_model *m = NULL;
    adept_status s = adept_llama2c_load_buffer(data, size, "fuzz", &m);
    FUZZ_ASSERT((hs == ADEPT_OK) == (s == ADEPT_OK));
    if (s != ADEPT_OK) {
        FUZZ_ASSERT(m == NULL && adept_last_error()[0] != '\0');
        return 0;
    }
    FUZZ_ASSERT(h.header_bytes + h.data_bytes == size);
    const adept_config *c = adept_model_config(m);
    FUZZ_ASSERT(c->hidden_size == h.dim && c->num_layers == h.n_layers && c->vocab_size == h.vocab_size &&
                c->num_heads == h.n_heads && c->num_kv_heads == h.n_kv_heads);
    FUZZ_ASSERT((adept_model_find(m, "lm_head.weight") == NULL) == (h.shared_classifier != 0));
    adept_model_free(m);
    return 0;
}
