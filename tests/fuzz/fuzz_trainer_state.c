/* libFuzzer target for the trainer-state reader (engine/train/checkpoint.c): any bytes must load or fail with
   a message, a failed load must leave the model's trainable set and the optimizer as they were, and a
   successful one must have read strict JSON metadata (no repeated key). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adept/checkpoint.h"
#include "adept/json.h"
#include "adept/safetensors.h"

#define FUZZ_ASSERT(cond) \
    do {                  \
        if (!(cond)) __builtin_trap(); \
    } while (0)

/* The model the seeds were written for (tests/fuzz/corpus/trainer_state/): vocab 8, hidden 4, 1 layer. */
static adept_model *model;
static adept_adamw *opt;

static void setup(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 8;
    c.hidden_size = 4;
    c.intermediate_size = 8;
    c.num_layers = 1;
    c.num_heads = 2;
    FUZZ_ASSERT(adept_model_create(&c, 1, 0.1f, &model) == ADEPT_OK);
    FUZZ_ASSERT(adept_adamw_new(model, NULL, &opt) == ADEPT_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!model) setup();
    adept_safetensors *sf = NULL;
    if (adept_safetensors_parse(data, size, "fuzz", &sf) != ADEPT_OK) return 0;
    size_t n = adept_model_num_params(model);
    unsigned char before[64];
    for (size_t i = 0; i < n && i < sizeof before; i++) before[i] = (unsigned char)adept_model_param(model, i)->trainable;
    int64_t steps = adept_adamw_steps(opt);
    char *meta = NULL;
    adept_status s = adept_trainer_state_read(sf, "fuzz", opt, &meta);
    if (s != ADEPT_OK) {
        FUZZ_ASSERT(adept_last_error()[0] != '\0' && meta == NULL);
        for (size_t i = 0; i < n && i < sizeof before; i++)
            FUZZ_ASSERT(before[i] == (unsigned char)adept_model_param(model, i)->trainable);
        FUZZ_ASSERT(adept_adamw_steps(opt) == steps);
    }
    if (s == ADEPT_OK) {
        /* a loaded state's metadata is strict JSON: a repeated key is refused, never read one way (issue 16) */
        const char *text = adept_safetensors_meta(sf, "optimizer");
        cJSON *j = NULL;
        FUZZ_ASSERT(text && adept_json_parse(text, strlen(text), "fuzz", &j) == ADEPT_OK);
        cJSON_Delete(j);
    }
    free(meta);
    adept_safetensors_close(sf);
    return 0;
}
