/* The parameter table's memory: one value slab for every row and one gradient slab for the trainable rows,
   both allocated through the model's backend, with each row a view into them (DESIGN.md §2.2). Re-laying
   a slab is the only way rows move, so every caller (creation, surgery, freezing) shares these two loops. */
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

/* Rows start on 64-byte boundaries: 16 floats, 32 16-bit values. */
static size_t aligned(size_t n, size_t esize) {
    size_t per = 64 / esize;
    return (n + per - 1) / per * per;
}

static void slab_release(void *data, size_t nbytes, void *ctx) {
    (void)nbytes;
    ((const adept_backend *)ctx)->free(data);
}

static adept_status slab_new(adept_model *m, size_t nbytes, const char *what, adept_storage **out) {
    void *p = m->be->alloc(nbytes);
    if (!p) {
        char note[96];
        adept_backend_memory_note(m->be, note, sizeof note);
        /* what shrinks this slab */
        const char *way = strcmp(what, "gradient") == 0
                              ? ": fewer trainable rows (ADEPT: fewer copies) need fewer gradients"
                              : strcmp(what, "value") == 0 ? ": adept.load's dtype \"bf16\" (or \"auto\" on a bf16 "
                                                             "checkpoint) keeps frozen matrices in 16 bits" : "";
        return adept_fail(ADEPT_ENOMEM, "model: cannot allocate the %s slab (%.1f MiB on %s%s)%s", what,
                          nbytes / 1048576.0, m->be->name, note, way);
    }
    adept_status st = adept_storage_wrap(p, nbytes, m->be->device, slab_release, (void *)m->be, out);
    if (st != ADEPT_OK) m->be->free(p);
    return st;
}

static int is16(adept_dtype d) { return d == ADEPT_BF16 || d == ADEPT_F16; }

/* The dtype a row is laid with: its storage in the value slab(s), always f32 in the gradient slab. */
static adept_dtype laid_dtype(const adept_param *p, int grads) { return grads || !is16(p->storage) ? ADEPT_F32 : p->storage; }

/* Copies a row's old value into its new place, converting when the dtype changed (a 16-bit row widened to its
   fp32 master: exact). A conversion runs on the host; only widening needs it, once per row. */
static adept_status copy_row(adept_model *m, adept_tensor *dst, const adept_tensor *src, size_t numel) {
    if (dst->dtype == src->dtype)
        return m->be->copy(adept_tensor_data(dst), adept_tensor_data(src), numel * adept_dtype_size(dst->dtype));
    if (m->be->device == ADEPT_CPU)
        return adept_convert(adept_tensor_data(dst), dst->dtype, adept_tensor_data(src), src->dtype, numel);
    size_t sb = numel * adept_dtype_size(src->dtype), db = numel * adept_dtype_size(dst->dtype);
    void *hs = malloc(sb + 1), *hd = malloc(db + 1);
    adept_status st = hs && hd ? ADEPT_OK : adept_fail(ADEPT_ENOMEM, "model: out of memory widening a row");
    if (st == ADEPT_OK) st = m->be->to_host(hs, adept_tensor_data(src), sb);
    if (st == ADEPT_OK) st = adept_convert(hd, dst->dtype, hs, src->dtype, numel);
    if (st == ADEPT_OK) st = m->be->to_device(adept_tensor_data(dst), hd, db);
    free(hs);
    free(hd);
    return st;
}

/* The shared re-lay: rows selected by `want` (all, or the trainable ones) get a place in a new slab (the value
   rows in the f32 slab or, by their storage dtype, in the 16-bit one); the old contents of each row are copied
   in. grads = 0: value slabs, 1: gradient slab. */
static adept_status relay(adept_model *m, int grads) {
    if (grads && m->grads_deferred) return ADEPT_OK; /* laid at the first need (adept_model_grads_materialize) */
    size_t n = m->nparams, total = 0, total16 = 0;
    size_t *off = malloc((n ? n : 1) * sizeof *off);
    adept_tensor **views = calloc(n ? n : 1, sizeof *views);
    if (!off || !views) {
        free(off);
        free(views);
        return adept_fail(ADEPT_ENOMEM, "model: out of memory re-laying the parameter table");
    }
    for (size_t i = 0; i < n; i++) {
        int want = grads ? m->params[i].trainable : 1;
        off[i] = SIZE_MAX;
        if (!want) continue;
        adept_dtype dt = laid_dtype(&m->params[i], grads);
        size_t *t = dt == ADEPT_F32 ? &total : &total16;
        off[i] = *t;
        *t += aligned(m->params[i].numel, adept_dtype_size(dt));
    }
    adept_storage *slab = NULL, *slab16 = NULL;
    adept_status st = ADEPT_OK;
    if (total || !grads) st = slab_new(m, total * sizeof(float), grads ? "gradient" : "value", &slab);
    if (st == ADEPT_OK && total16) st = slab_new(m, total16 * 2, "16-bit value", &slab16);
    for (size_t i = 0; i < n && st == ADEPT_OK; i++) {
        if (off[i] == SIZE_MAX) continue;
        adept_param *p = &m->params[i];
        adept_dtype dt = laid_dtype(p, grads);
        st = adept_tensor_view(dt == ADEPT_F32 ? slab : slab16, off[i] * adept_dtype_size(dt), dt, p->ndim, p->shape,
                               &views[i]);
    }
    /* copy what survives */
    for (size_t i = 0; i < n && st == ADEPT_OK; i++) {
        adept_tensor *old = grads ? m->params[i].grad : m->params[i].value;
        if (views[i] && old) st = copy_row(m, views[i], old, m->params[i].numel);
    }
    if (st != ADEPT_OK) {
        for (size_t i = 0; i < n; i++) adept_tensor_free(views[i]);
        if (slab) adept_storage_release(slab);
        if (slab16) adept_storage_release(slab16);
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
        if (m->value16_slab) adept_storage_release(m->value16_slab);
        m->value16_slab = slab16;
        m->value16_elems = total16;
    }
    free(off);
    free(views);
    return ADEPT_OK;
}

/* Trainable 16-bit rows get their fp32 masters before the gradient slab is laid (DESIGN.md §2.9): a row
   frozen until then never held an fp32 copy. On failure the storage flags come back. */
static adept_status widen_trainable(adept_model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->nparams; i++) n += m->params[i].trainable && is16(m->params[i].storage);
    if (!n) return ADEPT_OK;
    adept_dtype *before = malloc(m->nparams * sizeof *before);
    if (!before) return adept_fail(ADEPT_ENOMEM, "model: out of memory widening trainable rows");
    for (size_t i = 0; i < m->nparams; i++) {
        before[i] = m->params[i].storage;
        if (m->params[i].trainable) m->params[i].storage = ADEPT_F32;
    }
    adept_status st = relay(m, 0);
    if (st != ADEPT_OK)
        for (size_t i = 0; i < m->nparams; i++) m->params[i].storage = before[i];
    free(before);
    return st;
}

static adept_status relay_grads(adept_model *m) {
    if (m->grads_deferred) return ADEPT_OK;
    ADEPT_TRY(widen_trainable(m));
    return relay(m, 1);
}

adept_status adept_model_widen_rows(adept_model *m, const unsigned char *widen) {
    adept_dtype *before = malloc((m->nparams ? m->nparams : 1) * sizeof *before);
    if (!before) return adept_fail(ADEPT_ENOMEM, "model: out of memory widening rows");
    int any = 0;
    for (size_t i = 0; i < m->nparams; i++) {
        before[i] = m->params[i].storage;
        if (widen[i] && is16(before[i])) m->params[i].storage = ADEPT_F32, any = 1;
    }
    adept_status st = any ? relay(m, 0) : ADEPT_OK;
    if (st != ADEPT_OK)
        for (size_t i = 0; i < m->nparams; i++) m->params[i].storage = before[i];
    free(before);
    return st;
}

adept_status adept_model_relay_values(adept_model *m) {
    ADEPT_TRY(relay(m, 0));
    return relay_grads(m);
}

adept_status adept_model_relay_grads(adept_model *m) { return relay_grads(m); }

adept_status adept_model_grads_materialize(adept_model *m) {
    if (!m->grads_deferred) return ADEPT_OK;
    m->grads_deferred = 0;
    adept_status st = relay_grads(m);
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
    if (m->value16_slab) adept_storage_release(m->value16_slab);
    if (m->grad_slab) adept_storage_release(m->grad_slab);
    m->value_slab = m->value16_slab = m->grad_slab = NULL;
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
    adept_status st = changed ? relay_grads(m) : ADEPT_OK;
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
    adept_status st = relay_grads(m);
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

adept_status adept_model_row_f32(const adept_model *m, const adept_param *p, float *out) {
    const adept_tensor *v = p->value;
    if (v->dtype == ADEPT_F32) return m->be->to_host(out, adept_tensor_data(v), p->numel * sizeof(float));
    if (m->be->device == ADEPT_CPU) return adept_convert(out, ADEPT_F32, adept_tensor_data(v), v->dtype, p->numel);
    /* the 16-bit values land in the upper half of out and are widened front to back in place: out[i] (bytes
       4i..4i+3) only overwrites values at bytes below 2 numel + 2i + 2, i.e. ones already read */
    uint16_t *h = (uint16_t *)(out + p->numel) - p->numel;
    ADEPT_TRY(m->be->to_host(h, adept_tensor_data(v), p->numel * 2));
    for (size_t i = 0; i < p->numel; i++) {
        uint16_t x = h[i];
        out[i] = v->dtype == ADEPT_BF16 ? adept_bf16_to_f32(x) : adept_f16_to_f32(x);
    }
    return ADEPT_OK;
}
