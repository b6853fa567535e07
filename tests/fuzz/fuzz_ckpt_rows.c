/* libFuzzer target for the rows-checkpoint reader (engine/train/checkpoint.c): any bytes must load or fail with
   a message; a failed load must leave every value of the model as it was; a successful one must have read
   strict JSON metadata and put each listed row's values into the model exactly. */
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

/* The model the seeds were written for (tests/fuzz/corpus/ckpt_rows/): vocab 8, hidden 4, 1 layer. */
static adept_model *model;
static float *before;
static size_t total;

static void setup(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 8;
    c.hidden_size = 4;
    c.intermediate_size = 8;
    c.num_layers = 1;
    c.num_heads = 2;
    FUZZ_ASSERT(adept_model_create(&c, 1, 0.1f, &model) == ADEPT_OK);
    for (size_t i = 0; i < adept_model_num_params(model); i++) total += adept_model_param(model, i)->numel;
    FUZZ_ASSERT((before = malloc(total * sizeof *before)) != NULL);
}

/* The model's values, in table order, into dst (the CPU backend: values are host memory). */
static void snapshot(float *dst) {
    for (size_t i = 0, at = 0; i < adept_model_num_params(model); i++) {
        const adept_param *p = adept_model_param(model, i);
        memcpy(dst + at, adept_tensor_f32(p->value), p->numel * sizeof(float));
        at += p->numel;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!model) setup();
    adept_safetensors *sf = NULL;
    if (adept_safetensors_parse(data, size, "fuzz", &sf) != ADEPT_OK) return 0;
    snapshot(before);
    char *meta = NULL;
    adept_status s = adept_ckpt_rows_read_parsed(sf, "fuzz", model, 1, &meta);
    if (s != ADEPT_OK) {
        FUZZ_ASSERT(adept_last_error()[0] != '\0' && meta == NULL);
        float *after = malloc(total * sizeof *after);
        FUZZ_ASSERT(after != NULL);
        snapshot(after);
        FUZZ_ASSERT(memcmp(before, after, total * sizeof *after) == 0);
        free(after);
    } else {
        /* strict JSON (a repeated key is refused, never read one way), and every listed row loaded bitwise */
        cJSON *j = NULL;
        FUZZ_ASSERT(meta && adept_json_parse(meta, strlen(meta), "fuzz", &j) == ADEPT_OK);
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "rows")) {
            const adept_st_entry *e = adept_safetensors_find(sf, r->valuestring);
            adept_param *p = adept_model_find(model, r->valuestring);
            FUZZ_ASSERT(e && p);
            adept_tensor *v = NULL;
            FUZZ_ASSERT(adept_safetensors_view(sf, e, &v) == ADEPT_OK);
            FUZZ_ASSERT(memcmp(adept_tensor_data(v), adept_tensor_f32(p->value), p->numel * sizeof(float)) == 0);
            adept_tensor_free(v);
        }
        cJSON_Delete(j);
    }
    free(meta);
    adept_safetensors_close(sf);
    return 0;
}
