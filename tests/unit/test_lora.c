/* LoRA in the engine (engine/model/lora.c): adapter rows added to the table with their names, shapes and
   trainable flags, outputs bitwise unchanged at the start, the refusals (rank, alpha, targets, twice, expand,
   generation), merged values against a double-precision W + s B A, and merge removing the rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adept/model.h"
#include "check.h"
#include "model/model_internal.h"

static adept_config tiny(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 29; c.hidden_size = 16; c.intermediate_size = 24; c.num_layers = 3;
    c.num_heads = 4; c.num_kv_heads = 2; c.rms_norm_eps = 1e-5;
    return c;
}

static void all_targets(unsigned char *t) {
    memset(t, 0, ADEPT_UNIT_KIND_COUNT);
    t[ADEPT_UNIT_Q] = t[ADEPT_UNIT_K] = t[ADEPT_UNIT_V] = t[ADEPT_UNIT_O] = 1;
    t[ADEPT_UNIT_GATE] = t[ADEPT_UNIT_UP] = t[ADEPT_UNIT_DOWN] = 1;
}

static void test_add_and_merge(void) {
    adept_config c = tiny();
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 7, 0.3f, &m));
    size_t base_rows = adept_model_num_params(m), V = (size_t)c.vocab_size;
    int32_t in[16], tg[16];
    for (int i = 0; i < 16; i++) { in[i] = (i * 7 + 3) % c.vocab_size; tg[i] = (i * 5 + 1) % c.vocab_size; }
    adept_batch b = {2, 8, in, tg};
    float *before = malloc(16 * V * 4), *after = malloc(16 * V * 4), *merged = malloc(16 * V * 4);
    CHECK_OK(adept_model_forward(m, &b, NULL, NULL, before));

    unsigned char t[ADEPT_UNIT_KIND_COUNT], layers[3] = {1, 0, 1};
    all_targets(t);
    CHECK_FAILS(adept_model_add_lora(m, 0, 8, t, NULL, 1), ADEPT_EINVAL);
    CHECK_FAILS(adept_model_add_lora(m, 4, 0, t, NULL, 1), ADEPT_EINVAL);
    t[ADEPT_UNIT_ATTN_NORM] = 1;
    CHECK_FAILS(adept_model_add_lora(m, 4, 8, t, NULL, 1), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "input_layernorm is not a projection") != NULL);
    t[ADEPT_UNIT_ATTN_NORM] = 0;
    CHECK(adept_model_num_params(m) == base_rows); /* refusals leave the table alone */

    CHECK_OK(adept_model_add_lora(m, 4, 8, t, layers, 1));
    CHECK(adept_model_num_params(m) == base_rows + 2 * 7 * 2);
    double alpha;
    CHECK(adept_model_lora_rank(m, &alpha) == 4 && alpha == 8);
    adept_param *a = adept_model_find(m, "model.layers.2.mlp.up_proj.lora_A.weight");
    adept_param *bb = adept_model_find(m, "model.layers.2.mlp.up_proj.lora_B.weight");
    CHECK(a && bb && a->kind == ADEPT_UNIT_LORA_A && bb->kind == ADEPT_UNIT_LORA_B && a->lora_target == ADEPT_UNIT_UP);
    CHECK(a->shape[0] == 4 && a->shape[1] == 16 && bb->shape[0] == 24 && bb->shape[1] == 4);
    CHECK(adept_model_find(m, "model.layers.1.mlp.up_proj.lora_A.weight") == NULL);
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        CHECK(p->trainable == (p->kind == ADEPT_UNIT_LORA_A || p->kind == ADEPT_UNIT_LORA_B));
    }
    CHECK_OK(adept_model_forward(m, &b, NULL, NULL, after));
    CHECK(memcmp(before, after, 16 * V * 4) == 0);
    CHECK_FAILS(adept_model_add_lora(m, 4, 8, t, NULL, 1), ADEPT_ESTATE);
    int layer = 0, new_idx;
    CHECK_FAILS(adept_model_expand(m, &layer, 1, &new_idx), ADEPT_EUNSUPPORTED);
    int32_t out[4];
    int n_out;
    CHECK_FAILS(adept_model_generate(m, in, 3, 2, 0, 0, 1, -1, out, &n_out), ADEPT_EUNSUPPORTED);

    /* B non-zero: the merged value of every adapted weight is W + (alpha/rank) B A, here checked in double */
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        if (p->kind != ADEPT_UNIT_LORA_B) continue;
        float *v = adept_tensor_f32(p->value);
        for (size_t j = 0; j < p->numel; j++) v[j] = (float)(0.05 * sin((double)(j + i)));
    }
    adept_param *w = adept_model_find(m, "model.layers.0.self_attn.o_proj.weight");
    adept_param *oa = adept_model_find(m, "model.layers.0.self_attn.o_proj.lora_A.weight");
    adept_param *ob = adept_model_find(m, "model.layers.0.self_attn.o_proj.lora_B.weight");
    size_t wi = (size_t)(w - adept_model_param(m, 0));
    float *mv = malloc(w->numel * 4);
    CHECK_OK(adept_model_merged_value(m, wi, mv));
    const float *W = adept_tensor_f32(w->value), *A = adept_tensor_f32(oa->value), *B = adept_tensor_f32(ob->value);
    double worst = 0;
    for (int64_t o = 0; o < w->shape[0]; o++)
        for (int64_t j = 0; j < w->shape[1]; j++) {
            double want = W[o * w->shape[1] + j];
            for (int k = 0; k < 4; k++) want += 2.0 * B[o * 4 + k] * A[k * w->shape[1] + j];
            double d = fabs(mv[o * w->shape[1] + j] - want) / (fabs(want) + 1e-30);
            if (d > worst) worst = d;
        }
    CHECK(worst <= 0x1p-24); /* rounded once from double */
    CHECK_OK(adept_model_forward(m, &b, NULL, NULL, after));
    CHECK(memcmp(before, after, 16 * V * 4) != 0); /* the adapters act now */

    CHECK_OK(adept_model_merge_lora(m));
    CHECK(adept_model_num_params(m) == base_rows);
    CHECK(adept_model_lora_rank(m, NULL) == 0);
    w = adept_model_find(m, "model.layers.0.self_attn.o_proj.weight");
    CHECK(memcmp(adept_tensor_f32(w->value), mv, w->numel * 4) == 0);
    CHECK_OK(adept_model_forward(m, &b, NULL, NULL, merged));
    double dl = 0, scale = 0;
    for (size_t i = 0; i < 16 * V; i++) {
        dl = fmax(dl, fabs((double)merged[i] - after[i]));
        scale = fmax(scale, fabs((double)after[i]));
    }
    CHECK(dl <= 1e-5 * fmax(scale, 1)); /* float32 rounding of the fold and of the two summation orders */
    CHECK_FAILS(adept_model_merge_lora(m), ADEPT_ESTATE);
    CHECK_OK(adept_model_generate(m, in, 3, 2, 0, 0, 1, -1, out, &n_out));
    free(mv);
    free(before);
    free(after);
    free(merged);
    adept_model_free(m);
}

int main(void) {
    test_add_and_merge();
    return check_summary();
}
