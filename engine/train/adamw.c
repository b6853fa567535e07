/* AdamW over the parameter table (see adept/optim.h for the exact update), LR multiplier tables and
   global-norm gradient clipping. State is keyed by tensor name so freezing and surgery never misalign it. */
#include "adept/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct scale_entry {
    char name[128];
    double scale;
    float *rows; /* NULL for a scalar multiplier */
    int64_t n_rows;
} scale_entry;

struct adept_adamw {
    adept_adamw_config cfg;
    int64_t steps;
    adept_adamw_slot *slots;
    size_t n_slots, cap_slots;
    scale_entry *scales;
    size_t n_scales, cap_scales;
};

adept_adamw_config adept_adamw_defaults(void) {
    adept_adamw_config c = {1e-4, 0.9, 0.95, 1e-8, 0.1};
    return c;
}

static adept_status check_config(const adept_adamw_config *c) {
    if (!(c->lr >= 0) || !isfinite(c->lr)) return adept_fail(ADEPT_EINVAL, "adamw: lr must be a finite number >= 0, got %g", c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1)) return adept_fail(ADEPT_EINVAL, "adamw: beta1 must be in [0, 1), got %g", c->beta1);
    if (!(c->beta2 >= 0 && c->beta2 < 1)) return adept_fail(ADEPT_EINVAL, "adamw: beta2 must be in [0, 1), got %g", c->beta2);
    if (!(c->eps > 0) || !isfinite(c->eps)) return adept_fail(ADEPT_EINVAL, "adamw: eps must be a finite number > 0, got %g", c->eps);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return adept_fail(ADEPT_EINVAL, "adamw: weight_decay must be a finite number >= 0, got %g", c->weight_decay);
    return ADEPT_OK;
}

adept_status adept_adamw_new(const adept_adamw_config *cfg, adept_adamw **out) {
    *out = NULL;
    adept_adamw_config c = cfg ? *cfg : adept_adamw_defaults();
    ADEPT_TRY(check_config(&c));
    adept_adamw *o = calloc(1, sizeof *o);
    if (!o) return adept_fail(ADEPT_ENOMEM, "adamw: out of memory");
    o->cfg = c;
    *out = o;
    return ADEPT_OK;
}

static void slot_release(adept_adamw_slot *s) {
    adept_free(s->m);
    adept_free(s->v);
    s->m = s->v = NULL;
}

void adept_adamw_free(adept_adamw *o) {
    if (!o) return;
    for (size_t i = 0; i < o->n_slots; i++) slot_release(&o->slots[i]);
    free(o->slots);
    adept_adamw_clear_scales(o);
    free(o->scales);
    free(o);
}

const adept_adamw_config *adept_adamw_get_config(const adept_adamw *o) { return &o->cfg; }

adept_status adept_adamw_set_config(adept_adamw *o, const adept_adamw_config *cfg) {
    ADEPT_TRY(check_config(cfg));
    o->cfg = *cfg;
    return ADEPT_OK;
}

int64_t adept_adamw_steps(const adept_adamw *o) { return o->steps; }
void adept_adamw_set_steps(adept_adamw *o, int64_t steps) { o->steps = steps; }

/* ---- name tables: slots and scales are found by a linear scan starting at a hint, because params are
   visited in table order and the tables were filled in that order: the hint almost always hits. */

static adept_adamw_slot *find_slot(const adept_adamw *o, const char *name, size_t *hint) {
    size_t n = o->n_slots, start = hint && *hint < n ? *hint : 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!strcmp(o->slots[i].name, name)) {
            if (hint) *hint = i + 1;
            return &o->slots[i];
        }
    }
    return NULL;
}

static scale_entry *find_scale(const adept_adamw *o, const char *name) {
    for (size_t i = 0; i < o->n_scales; i++)
        if (!strcmp(o->scales[i].name, name)) return &o->scales[i];
    return NULL;
}

static adept_status check_name(const char *op, const char *name) {
    if (!name || !name[0]) return adept_fail(ADEPT_EINVAL, "%s: empty tensor name", op);
    if (strlen(name) >= 128) return adept_fail(ADEPT_EINVAL, "%s: tensor name longer than 127 bytes: %.40s...", op, name);
    return ADEPT_OK;
}

static adept_status new_slot(adept_adamw *o, const char *name, size_t numel, adept_adamw_slot **out) {
    if (o->n_slots == o->cap_slots) {
        size_t cap = o->cap_slots ? 2 * o->cap_slots : 64;
        adept_adamw_slot *s = realloc(o->slots, cap * sizeof *s);
        if (!s) return adept_fail(ADEPT_ENOMEM, "adamw: out of memory for the state table");
        o->slots = s;
        o->cap_slots = cap;
    }
    adept_adamw_slot *s = &o->slots[o->n_slots];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->numel = numel;
    s->m = adept_alloc_zeroed(numel * sizeof(float));
    s->v = adept_alloc_zeroed(numel * sizeof(float));
    if (!s->m || !s->v) {
        slot_release(s);
        return adept_fail(ADEPT_ENOMEM, "adamw: out of memory for the moments of %s (%zu elements)", name, numel);
    }
    o->n_slots++;
    *out = s;
    return ADEPT_OK;
}

void adept_adamw_drop_slot(adept_adamw *o, const char *name) {
    adept_adamw_slot *s = find_slot(o, name, NULL);
    if (!s) return;
    slot_release(s);
    size_t i = (size_t)(s - o->slots);
    memmove(&o->slots[i], &o->slots[i + 1], (o->n_slots - i - 1) * sizeof *s);
    o->n_slots--;
}

size_t adept_adamw_num_slots(const adept_adamw *o) { return o->n_slots; }
const adept_adamw_slot *adept_adamw_slot_at(const adept_adamw *o, size_t i) { return i < o->n_slots ? &o->slots[i] : NULL; }
const adept_adamw_slot *adept_adamw_find_slot(const adept_adamw *o, const char *name) { return find_slot(o, name, NULL); }

size_t adept_adamw_state_bytes(const adept_adamw *o) {
    size_t b = 0;
    for (size_t i = 0; i < o->n_slots; i++) b += 2 * o->slots[i].numel * sizeof(float);
    return b;
}

adept_status adept_adamw_load_slot(adept_adamw *o, const char *name, size_t numel, int64_t step, const float *m,
                                   const float *v) {
    ADEPT_TRY(check_name("adamw.load_state", name));
    if (step < 0) return adept_fail(ADEPT_EINVAL, "adamw.load_state: %s: negative step %lld", name, (long long)step);
    adept_adamw_drop_slot(o, name);
    adept_adamw_slot *s;
    ADEPT_TRY(new_slot(o, name, numel, &s));
    memcpy(s->m, m, numel * sizeof(float));
    memcpy(s->v, v, numel * sizeof(float));
    s->step = step;
    return ADEPT_OK;
}

/* ---- LR multipliers ---- */

static adept_status scale_entry_for(adept_adamw *o, const char *name, scale_entry **out) {
    ADEPT_TRY(check_name("adamw.set_lr_scales", name));
    scale_entry *e = find_scale(o, name);
    if (!e) {
        if (o->n_scales == o->cap_scales) {
            size_t cap = o->cap_scales ? 2 * o->cap_scales : 64;
            scale_entry *s = realloc(o->scales, cap * sizeof *s);
            if (!s) return adept_fail(ADEPT_ENOMEM, "adamw: out of memory for the LR scale table");
            o->scales = s;
            o->cap_scales = cap;
        }
        e = &o->scales[o->n_scales++];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", name);
    }
    free(e->rows);
    e->rows = NULL;
    e->n_rows = 0;
    e->scale = 1.0;
    *out = e;
    return ADEPT_OK;
}

adept_status adept_adamw_set_scale(adept_adamw *o, const char *name, double scale) {
    if (!isfinite(scale) || scale < 0)
        return adept_fail(ADEPT_EINVAL, "adamw.set_lr_scales: %s: scale must be a finite number >= 0, got %g",
                          name ? name : "?", scale);
    scale_entry *e;
    ADEPT_TRY(scale_entry_for(o, name, &e));
    e->scale = scale;
    return ADEPT_OK;
}

adept_status adept_adamw_set_row_scales(adept_adamw *o, const char *name, const float *scales, int64_t rows) {
    if (rows <= 0) return adept_fail(ADEPT_EINVAL, "adamw.set_lr_scales: %s: row scales need at least one row", name);
    for (int64_t r = 0; r < rows; r++)
        if (!isfinite(scales[r]) || scales[r] < 0)
            return adept_fail(ADEPT_EINVAL, "adamw.set_lr_scales: %s: row %lld scale must be a finite number >= 0, got %g",
                              name, (long long)r, (double)scales[r]);
    float *copy = malloc((size_t)rows * sizeof *copy);
    if (!copy) return adept_fail(ADEPT_ENOMEM, "adamw.set_lr_scales: out of memory");
    memcpy(copy, scales, (size_t)rows * sizeof *copy);
    scale_entry *e;
    adept_status s = scale_entry_for(o, name, &e);
    if (s != ADEPT_OK) { free(copy); return s; }
    e->rows = copy;
    e->n_rows = rows;
    return ADEPT_OK;
}

void adept_adamw_clear_scales(adept_adamw *o) {
    for (size_t i = 0; i < o->n_scales; i++) free(o->scales[i].rows);
    o->n_scales = 0;
}

size_t adept_adamw_num_scales(const adept_adamw *o) { return o->n_scales; }

void adept_adamw_scale_at(const adept_adamw *o, size_t i, const char **name, double *scale, const float **rows,
                          int64_t *n_rows) {
    const scale_entry *e = &o->scales[i];
    *name = e->name;
    *scale = e->scale;
    *rows = e->rows;
    *n_rows = e->n_rows;
}

double adept_adamw_get_scale(const adept_adamw *o, const char *name) {
    const scale_entry *e = find_scale(o, name);
    return e ? e->scale : 1.0;
}

/* ---- the update ---- */

/* One contiguous range of elements sharing one learning rate. Written as torch's float32 kernels compute:
   the Python-side scalars in double, cast to float where torch casts them. */
static void adamw_range(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                        double lr, const adept_adamw_config *c, int decay, int64_t step) {
    double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    const float shrink = (float)(1.0 - lr * c->weight_decay);
    const float b1 = (float)c->beta1, one_b1 = (float)(1.0 - c->beta1);
    const float b2 = (float)c->beta2, one_b2 = (float)(1.0 - c->beta2);
    const float bc2_sqrt = (float)sqrt(bc2), eps = (float)c->eps;
    const float neg_step = (float)(-(lr / bc1));
    const int do_decay = decay && c->weight_decay != 0.0;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++) {
        float x = p[i];
        if (do_decay) x *= shrink;
        float gi = g[i];
        float mi = m[i] * b1 + one_b1 * gi;
        float vi = v[i] * b2 + one_b2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = x + neg_step * (mi / denom);
    }
}

adept_status adept_adamw_step(adept_adamw *o, adept_param *const *params, size_t n, double lr_factor) {
    if (!isfinite(lr_factor) || lr_factor < 0)
        return adept_fail(ADEPT_EINVAL, "adamw.step: lr factor must be a finite number >= 0, got %g", lr_factor);
    /* validate everything before touching anything, so a failed step leaves the model unchanged */
    for (size_t i = 0; i < n; i++) {
        const adept_param *p = params[i];
        if (!p->trainable || !p->grad) continue;
        if (adept_tensor_numel(p->grad) != p->numel || adept_tensor_numel(p->value) != p->numel ||
            p->value->dtype != ADEPT_F32 || p->grad->dtype != ADEPT_F32)
            return adept_fail(ADEPT_ESHAPE, "adamw.step: %s: value/gradient must be f32 with %zu elements", p->name, p->numel);
        const scale_entry *e = find_scale(o, p->name);
        if (e && e->rows) {
            int64_t rows = p->ndim >= 1 ? p->shape[0] : 1;
            if (e->n_rows != rows)
                return adept_fail(ADEPT_ESHAPE, "adamw.step: %s: %lld row LR scales for a tensor of %lld rows", p->name,
                                  (long long)e->n_rows, (long long)rows);
        }
    }
    size_t hint = 0;
    int updated = 0;
    for (size_t i = 0; i < o->n_slots; i++) o->slots[i].seen = 0;
    for (size_t i = 0; i < n; i++) {
        adept_param *p = params[i];
        adept_adamw_slot *s = find_slot(o, p->name, &hint);
        if (!p->trainable || !p->grad) {
            if (s) adept_adamw_drop_slot(o, p->name); /* frozen tensors own no optimizer memory */
            continue;
        }
        if (s && s->numel != p->numel) { /* the tensor was replaced by one of another size: start afresh */
            adept_adamw_drop_slot(o, p->name);
            s = NULL;
        }
        if (!s) ADEPT_TRY(new_slot(o, p->name, p->numel, &s));
        s->seen = 1;
        s->step++;
        const scale_entry *e = find_scale(o, p->name);
        double lr = o->cfg.lr * lr_factor * (e ? e->scale : 1.0);
        float *pv = adept_tensor_f32(p->value), *pg = adept_tensor_f32(p->grad);
        if (e && e->rows) {
            size_t row = p->numel / (size_t)e->n_rows;
            for (int64_t r = 0; r < e->n_rows; r++) {
                size_t off = (size_t)r * row;
                adamw_range(pv + off, pg + off, s->m + off, s->v + off, row, lr * (double)e->rows[r], &o->cfg, p->decay,
                            s->step);
            }
        } else {
            adamw_range(pv, pg, s->m, s->v, p->numel, lr, &o->cfg, p->decay, s->step);
        }
        updated = 1;
    }
    /* state of names no longer in the table (removed by surgery, or loaded for another model) goes too */
    for (size_t i = o->n_slots; i-- > 0;)
        if (!o->slots[i].seen) adept_adamw_drop_slot(o, o->slots[i].name);
    if (updated) o->steps++;
    return ADEPT_OK;
}

/* ---- gradient norm and clipping ---- */

/* Sum of squares in fixed chunks summed in order: the same value for any thread count. */
static double sum_squares(const float *g, size_t n) {
    enum { CHUNK = 16384 };
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
    if (nchunks <= 1) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
        return s;
    }
    double *part = malloc(nchunks * sizeof *part);
    if (!part) { /* serial fallback: same chunking, same result */
        double total = 0;
        for (size_t c = 0; c < nchunks; c++) {
            double s = 0;
            for (size_t i = c * CHUNK; i < n && i < (c + 1) * CHUNK; i++) s += (double)g[i] * g[i];
            total += s;
        }
        return total;
    }
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        double s = 0;
        size_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (size_t i = c * CHUNK; i < end; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    double total = 0;
    for (size_t c = 0; c < nchunks; c++) total += part[c];
    free(part);
    return total;
}

adept_status adept_grad_norm(adept_param *const *params, size_t n, double *norm) {
    double total = 0;
    const char *bad = NULL;
    for (size_t i = 0; i < n; i++) {
        const adept_param *p = params[i];
        if (!p->trainable || !p->grad) continue;
        double s = sum_squares(adept_tensor_f32(p->grad), p->numel);
        if (!isfinite(s) && !bad) {
            /* a large but finite gradient can overflow its square: name only true NaN/inf holders */
            const float *g = adept_tensor_f32(p->grad);
            for (size_t k = 0; k < p->numel; k++)
                if (!isfinite(g[k])) { bad = p->name; break; }
        }
        total += s;
    }
    *norm = sqrt(total);
    if (bad) return adept_fail(ADEPT_ENONFINITE, "gradient norm is %g: tensor %s holds a non-finite gradient", *norm, bad);
    if (!isfinite(*norm)) return adept_fail(ADEPT_ENONFINITE, "gradient norm overflows (every gradient is finite)");
    return ADEPT_OK;
}

adept_status adept_clip_grad_norm(adept_param *const *params, size_t n, double max_norm, double *norm) {
    if (!(max_norm > 0)) return adept_fail(ADEPT_EINVAL, "clip_grad_norm: max norm must be > 0, got %g", max_norm);
    ADEPT_TRY(adept_grad_norm(params, n, norm));
    double coef = max_norm / (*norm + 1e-6);
    if (coef >= 1.0) return ADEPT_OK;
    const float c = (float)coef;
    for (size_t i = 0; i < n; i++) {
        const adept_param *p = params[i];
        if (!p->trainable || !p->grad) continue;
        float *g = adept_tensor_f32(p->grad);
        size_t len = p->numel;
#pragma omp parallel for schedule(static) if (len > 32768)
        for (size_t k = 0; k < len; k++) g[k] *= c;
    }
    return ADEPT_OK;
}
