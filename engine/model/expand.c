/* Layer surgery as a table edit: an identity copy after each chosen layer (every tensor cloned, o_proj and
   down_proj zeroed so the copy adds nothing to the residual stream), later layers renumbered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

/* Moves row `src` (rename only) or clones it (copy = 1) into dst as layer `layer`. */
static adept_status place_row(adept_param *dst, adept_param *src, int layer, int copy) {
    *dst = *src;
    dst->layer = layer;
    adept_model_layer_name(layer, src->kind, dst->name, sizeof dst->name);
    if (!copy) return ADEPT_OK;
    dst->value = dst->grad = NULL;
    ADEPT_TRY(adept_tensor_clone(src->value, &dst->value));
    if (src->kind == ADEPT_UNIT_O || src->kind == ADEPT_UNIT_DOWN)
        memset(adept_tensor_data(dst->value), 0, adept_tensor_nbytes(dst->value));
    if (src->grad) {
        adept_status st = adept_tensor_new(ADEPT_F32, src->ndim, src->shape, &dst->grad);
        if (st != ADEPT_OK) { adept_tensor_free(dst->value); dst->value = NULL; return st; }
    }
    return ADEPT_OK;
}

adept_status adept_model_expand(adept_model *m, const int *layers, int n, int *new_indices) {
    int L = m->cfg.num_layers;
    if (n < 0) return adept_fail(ADEPT_EINVAL, "expand: negative layer count %d", n);
    if (n == 0) return ADEPT_OK;
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
    size_t nr = 0, ncopies = 0;
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
                st = place_row(&rows[nr], &m->params[i], target, pass);
                if (st != ADEPT_OK) goto done;
                nr++;
                if (pass) ncopies++;
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
    free(m->params);
    m->params = rows;
    m->nparams = nr;
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
    if (rows) {
        /* only the clones belong to us; moved rows still belong to m->params */
        for (size_t i = 0; i < nr; i++) {
            int is_clone = rows[i].layer >= 0 && rows[i].value != NULL;
            if (is_clone) {
                int shared = 0;
                for (size_t j = 0; j < m->nparams; j++) if (m->params[j].value == rows[i].value) shared = 1;
                if (!shared) { adept_tensor_free(rows[i].value); adept_tensor_free(rows[i].grad); }
            }
        }
        free(rows);
    }
    (void)ncopies;
    free(skip);
    free(expanded);
    free(sorted);
    free(chosen);
    free(newpos);
    return st;
}
