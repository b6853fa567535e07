/* Out of device memory (issue 12): on a device with a fixed amount of memory (the fake device with a capacity),
   the gradient slab that does not fit fails naming itself, the device's free memory and what shrinks it; and
   a batch whose activations do not fit fails with ADEPT_ENOMEM and a message that states what was asked against
   the device's free memory, what the model holds, the plan by class and what each way out would need, with the
   figures of the plan the allocation uses; following its advice (recompute) then fits, and the model, untouched
   by the failure, trains. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/backend.h"
#include "adept/device.h"
#include "check.h"
#include "fake_device.h"
#include "model/model_internal.h"

static adept_config small_config(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.hidden_size = 64, c.num_layers = 6, c.num_heads = 4, c.num_kv_heads = 2, c.intermediate_size = 160;
    c.vocab_size = 96, c.max_position_embeddings = 128;
    return c;
}

/* The gradient slab past the device's memory: ENOMEM naming the slab, its size, the device's free memory and
   what shrinks it; the model is unchanged, and with the memory back it lays the slab and trains. */
static void test_gradient_slab(const adept_config *cfg) {
    adept_model *m = NULL;
    CHECK_OK(adept_model_create_on(cfg, ADEPT_CUDA, 5, 0.2f, &m));
    if (!m) return;
    adept_fake_device_set_capacity(adept_fake_device_stats_now().live_bytes + 4096);
    CHECK_FAILS(adept_model_grads_materialize(m), ADEPT_ENOMEM);
    const char *msg = adept_last_error();
    printf("%s\n", msg);
    CHECK(strstr(msg, "cannot allocate the gradient slab") && strstr(msg, "MiB free") && strstr(msg, "fewer copies"));
    adept_fake_device_set_capacity(0);
    CHECK_OK(adept_model_grads_materialize(m));
    CHECK(adept_model_memory(m).grads > 0);
    adept_model_free(m);
}

int main(void) {
    adept_fake_device_install();
    adept_config cfg = small_config();
    CHECK_OK(adept_model_config_check(&cfg));
    test_gradient_slab(&cfg);
    adept_model *m = NULL;
    CHECK_OK(adept_model_create_on(&cfg, ADEPT_CUDA, 5, 0.2f, &m));
    if (!m) return check_summary();
    CHECK(m->be->memory_info != NULL);
    CHECK_OK(adept_model_grads_materialize(m));
    enum { B = 4, T = 96 };
    int32_t ids[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + 3) % cfg.vocab_size, tg[i] = (i * 5 + 1) % cfg.vocab_size;
    adept_batch batch = {.B = B, .T = T, .inputs = ids, .targets = tg};

    /* a capacity between what recompute needs and what keeping every layer needs (page-rounded blocks) */
    adept_plan_split all, rec;
    CHECK_OK(adept_model_plan_split(&cfg, B, T, 0, 0, 0, &all));
    CHECK_OK(adept_model_plan_split(&cfg, B, T, 0, 0, 1, &rec));
    CHECK(rec.total < all.total / 2);
    size_t held = adept_fake_device_stats_now().live_bytes;
    adept_fake_device_set_capacity(held + (rec.total + all.total) / 2);

    double nll = 0;
    int64_t n = 0;
    CHECK_FAILS(adept_model_forward_backward(m, &batch, 1.0f / (B * T), &nll, &n), ADEPT_ENOMEM);
    const char *msg = adept_last_error();
    printf("%s\n", msg);
    char want[160];
    snprintf(want, sizeof want, "out of memory on test-device for the activations of batch %d x %d: %.1f MiB asked",
             B, T, all.total / 1048576.0);
    CHECK(strstr(msg, want) != NULL);
    CHECK(strstr(msg, "MiB free") != NULL);
    CHECK(strstr(msg, "held: params") != NULL);
    snprintf(want, sizeof want, "kept for backward %.1f (layers 0..%d)", all.kept / 1048576.0, cfg.num_layers - 1);
    CHECK(strstr(msg, want) != NULL);
    snprintf(want, sizeof want, "recompute (m:set_recompute(true)) %.1f MiB", rec.total / 1048576.0);
    CHECK(strstr(msg, want) != NULL);
    snprintf(want, sizeof want, "batch %d x %d", B / 2, T);
    CHECK(strstr(msg, want) != NULL);
    snprintf(want, sizeof want, "batch %d x %d", B, T / 2);
    CHECK(strstr(msg, want) != NULL);
    CHECK(strstr(msg, "fewer copies") != NULL);

    /* the advice works: with recompute the step fits, and trains as it would have */
    adept_model_set_recompute(m, 1);
    CHECK_OK(adept_model_forward_backward(m, &batch, 1.0f / (B * T), &nll, &n));
    CHECK(n == B * T && nll > 0);

    /* a forward-only pass keeps no layer for backward: its plan fits in what is left, with or without recompute */
    adept_model_set_recompute(m, 0);
    double nll2 = 0;
    int64_t n2 = 0;
    CHECK_OK(adept_model_forward(m, &batch, &nll2, &n2, NULL));
    CHECK(n2 == n && nll2 == nll); /* the same weights, the same loss */

    adept_fake_device_set_capacity(0);
    adept_model_free(m);
    return check_summary();
}
