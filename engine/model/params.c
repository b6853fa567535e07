/* The parameter table's memory: one value slab for every row and one gradient slab for the trainable rows,
   both allocated through the model's backend, with each row a view into them (DESIGN.md §2.2). Re-laying
   a slab is the only way rows move, so every caller (creation, surgery, freezing) shares these two loops. */
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

/* Rows start on 64-byte boundaries: 16 floats. */
static size_t aligned(size_t n) { return (n + 15) / 16 * 16; }

static void slab_release(void *data, size_t nbytes, void *ctx) {
    (void)nbytes;
    ((const adept_backend *)ctx)->free(data);
}

static adept_status slab_new(adept_model *m, size_t elems, const char *what, adept_storage **out) {
    void *p = m->be->alloc(elems * sizeof(float));
    if (!p)
        return adept_fail(ADEPT_ENOMEM, "model: cannot allocate the %s slab (%.1f MiB on %s)", what,
                          elems * 4.0 / 1048576, m->be->name);
    adept_status st = adept_storage_wrap(p, elems * sizeof(float), m->be->device, slab_release, (void *)m->be, out);
    if (st != ADEPT_OK) m->be->free(p);
    return st;
}

/* Views of rows[i] into slab at offsets[i] (rows where offsets[i] == SIZE_MAX get NULL). */
static adept_status make_views(adept_param *rows, size_t n, adept_storage *slab, const size_t *offsets,
                               adept_tensor **views) {
    for (size_t i = 0; i < n; i++) {
        views[i] = NULL;
        if (offsets[i] == SIZE_MAX) continue;
        adept_status st = adept_tensor_view(slab, offsets[i] * sizeof(float), ADEPT_F32, rows[i].ndim, rows[i].shape,
                                            &views[i]);
        if (st != ADEPT_OK) {
            for (size_t j = 0; j < i; j++) adept_tensor_free(views[j]);
            return st;
        }
    }
    return ADEPT_OK;
}

/* The shared re-lay: rows selected by `want` (all, or the trainable ones) get a place in a new slab; the
   old contents of `old_of(row)` are copied in. grads = 0: value slab, 1: gradient slab. */
static adept_status relay(adept_model *m, int grads) {
    if (grads && m->grads_deferred) return ADEPT_OK; /* laid at the first need (adept_model_grads_materialize) */
    size_t n = m->nparams, total = 0;
    size_t *off = malloc((n ? n : 1) * sizeof *off);
    adept_tensor **views = calloc(n ? n : 1, sizeof *views);
    if (!off || !views) {
        free(off);
        free(views);
        return adept_fail(ADEPT_ENOMEM, "model: out of memory re-laying the parameter table");
    }
    for (size_t i = 0; i < n; i++) {
        int want = grads ? m->params[i].trainable : 1;
        off[i] = want ? total : SIZE_MAX;
        if (want) total += aligned(m->params[i].numel);
    }
    adept_storage *slab = NULL;
    adept_status st = ADEPT_OK;
    if (total || !grads) st = slab_new(m, total, grads ? "gradient" : "value", &slab);
    if (st == ADEPT_OK && slab) st = make_views(m->params, n, slab, off, views);
    if (st != ADEPT_OK) {
        if (slab) adept_storage_release(slab);
        free(off);
        free(views);
        return st;
    }
    /* copy what survives, then swap the views in */
    for (size_t i = 0; i < n && st == ADEPT_OK; i++) {
        adept_tensor *old = grads ? m->params[i].grad : m->params[i].value;
        if (views[i] && old)
            st = m->be->copy(adept_tensor_data(views[i]), adept_tensor_data(old), m->params[i].numel * sizeof(float));
    }
    if (st != ADEPT_OK) {
        for (size_t i = 0; i < n; i++) adept_tensor_free(views[i]);
        if (slab) adept_storage_release(slab);
        free(off);
        free(views);
        return st;
    }
    /* two rows may share one old view (surgery's copies): free each old view object once */
    for (size_t i = 0; i < n; i++) {
        adept_tensor **slot = grads ? &m->params[i].grad : &m->params[i].value;
        adept_tensor *old = *slot;
        if (old) {
            for (size_t j = i + 1; j < n; j++) {
                adept_tensor **other = grads ? &m->params[j].grad : &m->params[j].value;
                if (*other == old) *other = NULL;
            }
            adept_tensor_free(old);
        }
        *slot = views[i];
        if (grads) m->params[i].grad_offset = off[i] == SIZE_MAX ? 0 : off[i];
        else m->params[i].value_offset = off[i];
    }
    adept_storage **mine = grads ? &m->grad_slab : &m->value_slab;
    if (*mine) adept_storage_release(*mine); /* views handed to Lua keep the old memory alive */
    *mine = slab;
    if (grads) {
        m->grad_elems = total;
        m->grad_layout++;
    } else {
        m->value_elems = total;
    }
    free(off);
    free(views);
    return ADEPT_OK;
}

adept_status adept_model_relay_values(adept_model *m) {
    ADEPT_TRY(relay(m, 0));
    return relay(m, 1);
}

adept_status adept_model_relay_grads(adept_model *m) { return relay(m, 1); }

adept_status adept_model_grads_materialize(adept_model *m) {
    if (!m->grads_deferred) return ADEPT_OK;
    m->grads_deferred = 0;
    adept_status st = relay(m, 1);
    if (st != ADEPT_OK) m->grads_deferred = 1;
    return st;
}

void adept_model_slabs_free(adept_model *m) {
    for (size_t i = 0; i < m->nparams; i++) {
        adept_tensor_free(m->params[i].value);
        adept_tensor_free(m->params[i].grad);
        m->params[i].value = m->params[i].grad = NULL;
    }
    if (m->value_slab) adept_storage_release(m->value_slab);
    if (m->grad_slab) adept_storage_release(m->grad_slab);
    m->value_slab = m->grad_slab = NULL;
}

adept_status adept_model_set_trainable_mask(adept_model *m, const unsigned char *trainable) {
    unsigned char *before = malloc(m->nparams ? m->nparams : 1);
    if (!before) return adept_fail(ADEPT_ENOMEM, "set_trainable: out of memory");
    int changed = 0;
    for (size_t i = 0; i < m->nparams; i++) {
        before[i] = (unsigned char)m->params[i].trainable;
        m->params[i].trainable = trainable[i] ? 1 : 0;
        changed |= before[i] != m->params[i].trainable;
    }
    adept_status st = changed ? relay(m, 1) : ADEPT_OK;
    if (st != ADEPT_OK)
        for (size_t i = 0; i < m->nparams; i++) m->params[i].trainable = before[i];
    free(before);
    return st;
}

adept_status adept_model_set_trainable(adept_model *m, size_t i, int trainable) {
    if (i >= m->nparams)
        return adept_fail(ADEPT_EINVAL, "set_trainable: row %zu out of range (%zu rows)", i, m->nparams);
    if (!!m->params[i].trainable == !!trainable) return ADEPT_OK;
    m->params[i].trainable = trainable ? 1 : 0;
    adept_status st = relay(m, 1);
    if (st != ADEPT_OK) m->params[i].trainable = !trainable;
    return st;
}

void adept_model_zero_grad(adept_model *m) {
    if (m->grad_slab) m->be->fill_zero(m->grad_slab->data, m->grad_elems * sizeof(float));
}

float *adept_model_grad_slab(adept_model *m, size_t *n) {
    *n = m->grad_slab ? m->grad_elems : 0;
    return m->grad_slab ? (float *)m->grad_slab->data : NULL;
}

uint64_t adept_model_grad_layout(const adept_model *m) { return m->grad_layout; }
adept_device adept_model_device(const adept_model *m) { return m->be->device; }
const struct adept_backend *adept_model_backend(const adept_model *m) { return m->be; }

int64_t adept_model_find_uid(const adept_model *m, uint64_t uid) {
    for (size_t i = 0; i < m->nparams; i++)
        if (m->params[i].uid == uid) return (int64_t)i;
    return -1;
}
