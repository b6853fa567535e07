/* Layer surgery as a table edit: an identity copy after each chosen layer (every tensor cloned, o_proj and
   down_proj zeroed so the copy adds nothing to the residual stream), later layers renumbered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

/* Row `src` as layer `layer` of the new table: renamed (copy = 0, same uid and views), or a surgery copy
   (copy = 1): a new uid, sharing the source's value view until the value slab is re-laid, trainable like it. */
static void place_row(adept_model *m, adept_param *dst, const adept_param *src, int layer, int copy) {
    *dst = *src;
    dst->layer = layer;
    adept_model_layer_name(layer, src->kind, dst->name, sizeof dst->name);
    if (!copy) return;
    dst->uid = m->next_uid++;
    dst->grad = NULL;
}

adept_status adept_model_expand(adept_model *m, const int *layers, int n, int *new_indices) {
    int L = m->cfg.num_layers;
    if (n < 0) return adept_fail(ADEPT_EINVAL, "expand: negative layer count %d", n);
    if (n == 0) return ADEPT_OK;
    if (m->lora_rank)
        return adept_fail(ADEPT_EUNSUPPORTED, "expand: the model has LoRA adapters; merge_lora (or expand before "
                          "add_lora): adapters are not moved with layers");
    int *sorted = malloc(sizeof *sorted * (size_t)n);
    if (!sorted) return adept_fail(ADEPT_ENOMEM, "expand: out of memory");
    memcpy(sorted, layers, sizeof *sorted * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_int);
    for (int i = 0; i < n; i++) {
        if (sorted[i] < 0 || sorted[i] >= L) {
            int bad = sorted[i];
            free(sorted);
            return adept_fail(ADEPT_EINVAL, "expand: layer %d out of range [0, %d)", bad, L);
        }
        if (i && sorted[i] == sorted[i - 1]) {
            int bad = sorted[i];
            free(sorted);
            return adept_fail(ADEPT_EINVAL, "expand: layer %d listed twice", bad);
        }
    }
    unsigned char *chosen = calloc((size_t)L, 1);
    int *newpos = malloc(sizeof *newpos * (size_t)L);
    int L2 = L + n;
    size_t cap = m->nparams + (size_t)n * ADEPT_UNIT_KIND_COUNT;
    adept_param *rows = calloc(cap, sizeof *rows);
    unsigned char *skip = calloc((size_t)L2, 1), *expanded = calloc((size_t)L2, 1);
    adept_status st = ADEPT_OK;
    size_t nr = 0;
    uint64_t first_copy_uid = m->next_uid;
    if (!chosen || !newpos || !rows || !skip || !expanded) { st = adept_fail(ADEPT_ENOMEM, "expand: out of memory"); goto done; }
    for (int i = 0; i < n; i++) chosen[sorted[i]] = 1;
    for (int l = 0, pos = 0; l < L; l++) { newpos[l] = pos; pos += 1 + chosen[l]; }

    /* globals before the layers keep their place; layer rows are emitted layer by layer */
    for (size_t i = 0; i < m->nparams; i++)
        if (m->params[i].layer < 0 && m->params[i].kind == ADEPT_UNIT_EMBED) rows[nr++] = m->params[i];
    for (int l = 0; l < L; l++) {
        for (int pass = 0; pass <= chosen[l]; pass++) {
            int target = newpos[l] + pass;
            for (size_t i = 0; i < m->nparams; i++) {
                if (m->params[i].layer != l) continue;
                place_row(m, &rows[nr], &m->params[i], target, pass);
                nr++;
            }
            skip[target] = pass ? 0 : m->skip[l];
            expanded[target] = pass ? 1 : m->expanded[l];
        }
    }
    for (size_t i = 0; i < m->nparams; i++)
        if (m->params[i].layer < 0 && m->params[i].kind != ADEPT_UNIT_EMBED) rows[nr++] = m->params[i];

    for (int i = 0; i < n; i++) new_indices[i] = -1;
    for (int i = 0; i < n; i++) {
        /* report in the caller's order */
        for (int j = 0; j < n; j++) if (layers[i] == sorted[j]) new_indices[i] = newpos[sorted[j]] + 1;
    }
    /* the new table goes in, then one re-lay of the slabs copies every value to its place; on failure the
       old table comes back untouched */
    adept_param *old_rows = m->params;
    size_t old_n = m->nparams;
    m->params = rows;
    m->nparams = nr;
    st = adept_model_relay_values(m);
    if (st != ADEPT_OK) {
        m->params = old_rows;
        m->nparams = old_n;
        goto done;
    }
    free(old_rows);
    /* the copies add nothing to the residual stream: o_proj and down_proj zero */
    for (size_t i = 0; i < nr && st == ADEPT_OK; i++) {
        adept_param *p = &rows[i];
        if (p->uid >= first_copy_uid && (p->kind == ADEPT_UNIT_O || p->kind == ADEPT_UNIT_DOWN))
            st = m->be->fill_zero(adept_tensor_data(p->value), adept_tensor_nbytes(p->value));
    }
    rows = NULL;
    free(m->skip);
    free(m->expanded);
    m->skip = skip;
    m->expanded = expanded;
    skip = expanded = NULL;
    m->cfg.num_layers = L2;
    adept_model_acts_free(&m->acts); /* the plan depends on the layer count */
    st = adept_model_reindex(m);
done:
    free(rows); /* non-NULL only when the table was not swapped in: its views belong to m->params */
    free(skip);
    free(expanded);
    free(sorted);
    free(chosen);
    free(newpos);
    return st;
}
