/* libFuzzer target for the config.json parser: any input parses or fails with a message; a config that parses
   satisfies the invariants the model relies on, and what the writer makes of it parses back to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adept/hf_config.h"

#define FUZZ_ASSERT(cond) \
    do {                  \
        if (!(cond)) __builtin_trap(); \
    } while (0)

static int same_fields(const adept_config *a, const adept_config *b) {
    return a->arch == b->arch && a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size &&
           a->intermediate_size == b->intermediate_size && a->num_layers == b->num_layers &&
           a->num_heads == b->num_heads && a->num_kv_heads == b->num_kv_heads && a->head_dim == b->head_dim &&
           a->max_position_embeddings == b->max_position_embeddings && a->rms_norm_eps == b->rms_norm_eps &&
           a->rope_theta == b->rope_theta && a->tie_word_embeddings == b->tie_word_embeddings &&
           a->attention_bias == b->attention_bias && a->qk_norm == b->qk_norm && a->bos_token_id == b->bos_token_id &&
           a->eos_token_id == b->eos_token_id && a->dtype == b->dtype;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    adept_config c;
    adept_status s = adept_hf_config_parse((const char *)data, size, "fuzz", &c);
    if (s != ADEPT_OK) {
        FUZZ_ASSERT(c.config_json == NULL && adept_last_error()[0] != '\0');
        return 0;
    }
    FUZZ_ASSERT(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 && c.num_layers > 0);
    FUZZ_ASSERT(c.num_heads > 0 && c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads == 0);
    FUZZ_ASSERT(c.head_dim > 0 && c.head_dim % 2 == 0 && c.rms_norm_eps > 0 && c.rope_theta > 0);
    FUZZ_ASSERT(c.config_json && memcmp(c.config_json, data, size) == 0 && c.config_json[size] == '\0');
    char *text = NULL;
    if (adept_hf_config_to_json(&c, c.num_layers, NULL, c.dtype, &text) == ADEPT_OK) {
        adept_config back;
        FUZZ_ASSERT(adept_hf_config_parse(text, strlen(text), "fuzz-back", &back) == ADEPT_OK);
        FUZZ_ASSERT(same_fields(&c, &back));
        adept_hf_config_clear(&back);
        free(text);
    }
    adept_hf_config_clear(&c);
    return 0;
}
