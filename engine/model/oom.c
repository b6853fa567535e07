/* What a model says when its activations do not fit the device (issue 12: "out of device memory prints the plan
   (by class) against the device's free memory and suggests recompute, a shorter sequence or fewer copies"):
   what was asked and what the device has free, what the model already holds, the plan by class, and the
   activation bytes of each way out, computed from the same plan the allocation uses (adept_model_plan_split),
   so a researcher can pick the one that fits instead of halving things at random. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model/model_internal.h"

static double mib(size_t bytes) { return bytes / 1048576.0; }

/* appends the formatted text to buf of cap bytes, after "; " when buf already holds something */
static void append(char *buf, size_t cap, const char *fmt, ...) {
    size_t used = strlen(buf);
    if (used && used + 2 < cap) memcpy(buf + used, "; ", 3), used += 2;
    if (used >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

adept_status adept_model_fail_oom_acts(const adept_model *m, size_t asked, int B, int T, int first_kept) {
    const adept_backend *be = m->be;
    const adept_config *c = &m->cfg;
    char device[96];
    adept_backend_memory_note(be, device, sizeof device);
    adept_memory mem = adept_model_memory(m);
    int L = c->num_layers, rows = m->head_rows_override;
    char plan[200] = "";
    adept_plan_split now;
    char kept[64];
    if (first_kept < L) snprintf(kept, sizeof kept, "layers %d..%d%s", first_kept, L - 1, m->recompute ? ", recomputed" : "");
    else snprintf(kept, sizeof kept, "a forward pass: one slot"); /* nothing trains in the layers */
    if (adept_model_plan_split(c, B, T, rows, first_kept, m->recompute, &now) == ADEPT_OK)
        snprintf(plan, sizeof plan, "kept for backward %.1f (%s), classifier chunk %.1f, backward scratch %.1f, "
                 "batch %.1f", mib(now.kept), kept, mib(now.head), mib(now.scratch), mib(now.batch));
    /* the ways out, each with the activations it would need */
    char ways[400] = "";
    adept_plan_split w;
    if (!m->recompute && first_kept < L - 1 &&
        adept_model_plan_split(c, B, T, rows, first_kept, 1, &w) == ADEPT_OK)
        append(ways, sizeof ways, "recompute (m:set_recompute(true)) %.1f MiB", mib(w.total));
    if (B > 1 && adept_model_plan_split(c, B / 2, T, rows, first_kept, m->recompute, &w) == ADEPT_OK)
        append(ways, sizeof ways, "batch %d x %d %.1f MiB", B / 2, T, mib(w.total));
    if (T > 1 && adept_model_plan_split(c, B, T / 2, rows, first_kept, m->recompute, &w) == ADEPT_OK)
        append(ways, sizeof ways, "batch %d x %d %.1f MiB", B, T / 2, mib(w.total));
    if (first_kept < L)
        append(ways, sizeof ways, "fewer trainable layers (ADEPT: fewer copies, or none low in the stack) keep "
               "fewer layers for backward and fewer gradients");
    return adept_fail(ADEPT_ENOMEM, "model: out of memory on %s for the activations of batch %d x %d: %.1f MiB asked%s; "
                      "held: params %.1f MiB, grads %.1f MiB; the plan by class (MiB): %s; what would fit better: %s",
                      be->name, B, T, mib(asked), device, mib(mem.params), mib(mem.grads), plan, ways);
}
