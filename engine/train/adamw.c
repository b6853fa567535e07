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
    struct work_item *work; /* the step's chunk list, kept between steps */
    size_t work_cap;
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
    free(o->work);
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

/* ---- the update ----
   All tensors of a step are cut into chunks of at most CHUNK elements and updated in ONE parallel loop:
   a parallel region per tensor costs a fork/join each (~75 per step for a small model), which on a
   shared, oversubscribed machine means waiting for a descheduled thread every time. Elementwise work and
   fixed chunk boundaries keep the result independent of the thread count. */

enum { CHUNK = 1 << 15 };

typedef struct work_item {
    float *p, *m, *v;
    const float *g;
    size_t n;
    float shrink, neg_step, bc2_sqrt; /* per range: lr (scale, row) and the tensor's own step */
    int decay;
} work_item;

typedef struct work_list {
    work_item *items;
    size_t n, cap;
} work_list;

static adept_status work_push(work_list *w, const work_item *it) {
    for (size_t off = 0; off < it->n || (off == 0 && it->n == 0); off += CHUNK) {
        if (w->n == w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 256;
            work_item *grown = realloc(w->items, cap * sizeof *grown);
            if (!grown) return adept_fail(ADEPT_ENOMEM, "adamw.step: out of memory for the work list");
            w->items = grown;
            w->cap = cap;
        }
        work_item c = *it;
        c.p = it->p ? it->p + off : NULL;
        c.m = it->m ? it->m + off : NULL;
        c.v = it->v ? it->v + off : NULL;
        c.g = it->g + off;
        c.n = it->n - off < CHUNK ? it->n - off : CHUNK;
        w->items[w->n++] = c;
        if (it->n == 0) break;
    }
    return ADEPT_OK;
}

/* Scalars as torch's float32 kernels see them: computed in double on the Python side, cast to float. */
static work_item range_item(float *p, const float *g, float *m, float *v, size_t n, double lr,
                            const adept_adamw_config *c, int decay, int64_t step) {
    double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    work_item it = {p, m, v, g, n, (float)(1.0 - lr * c->weight_decay), (float)(-(lr / bc1)), (float)sqrt(bc2),
                    decay && c->weight_decay != 0.0};
    return it;
}

static void adamw_chunk(const work_item *it, const adept_adamw_config *c) {
    const float b1 = (float)c->beta1, one_b1 = (float)(1.0 - c->beta1);
    const float b2 = (float)c->beta2, one_b2 = (float)(1.0 - c->beta2), eps = (float)c->eps;
    const float shrink = it->shrink, neg_step = it->neg_step, bc2_sqrt = it->bc2_sqrt;
    float *restrict p = it->p, *restrict m = it->m, *restrict v = it->v;
    const float *restrict g = it->g;
    const size_t n = it->n;
    if (it->decay)
        for (size_t i = 0; i < n; i++) p[i] *= shrink;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] * b1 + one_b1 * gi;
        float vi = v[i] * b2 + one_b2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] + neg_step * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

static adept_status run_items(const work_list *w, const adept_adamw_config *c) {
    size_t total = 0;
    for (size_t k = 0; k < w->n; k++) total += w->items[k].n;
#pragma omp parallel for schedule(static) if (total > 2 * CHUNK)
    for (size_t k = 0; k < w->n; k++) adamw_chunk(&w->items[k], c);
    return ADEPT_OK;
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
    /* state first (allocation can fail: then nothing has been updated yet), then the work list */
    size_t hint = 0;
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
    }
    /* state of names no longer in the table (removed by surgery, or loaded for another model) goes too */
    for (size_t i = o->n_slots; i-- > 0;)
        if (!o->slots[i].seen) adept_adamw_drop_slot(o, o->slots[i].name);

    work_list w = {o->work, 0, o->work_cap};
    adept_status st = ADEPT_OK;
    int updated = 0;
    hint = 0;
    for (size_t i = 0; i < n && st == ADEPT_OK; i++) {
        adept_param *p = params[i];
        if (!p->trainable || !p->grad) continue;
        adept_adamw_slot *s = find_slot(o, p->name, &hint);
        const scale_entry *e = find_scale(o, p->name);
        int64_t step = s->step + 1;
        double lr = o->cfg.lr * lr_factor * (e ? e->scale : 1.0);
        float *pv = adept_tensor_f32(p->value), *pg = adept_tensor_f32(p->grad);
        if (e && e->rows) {
            size_t row = p->numel / (size_t)e->n_rows;
            for (int64_t r = 0; r < e->n_rows && st == ADEPT_OK; r++) {
                size_t off = (size_t)r * row;
                work_item it = range_item(pv + off, pg + off, s->m + off, s->v + off, row, lr * (double)e->rows[r],
                                          &o->cfg, p->decay, step);
                st = work_push(&w, &it);
            }
        } else {
            work_item it = range_item(pv, pg, s->m, s->v, p->numel, lr, &o->cfg, p->decay, step);
            st = work_push(&w, &it);
        }
        updated = 1;
    }
    o->work = w.items;
    o->work_cap = w.cap;
    ADEPT_TRY(st);
    run_items(&w, &o->cfg);
    hint = 0;
    for (size_t i = 0; i < n; i++) {
        adept_param *p = params[i];
        if (p->trainable && p->grad) find_slot(o, p->name, &hint)->step++;
    }
    if (updated) o->steps++;
    return ADEPT_OK;
}

/* ---- gradient norm and clipping: the same chunking, one parallel loop, partial sums added in order ---- */

typedef struct grad_chunk {
    float *g;
    size_t n;
} grad_chunk;

/* Chunks of every trainable gradient (a malloc'd array; NULL with *count 0 when there is none). */
static adept_status grad_chunks(adept_param *const *params, size_t n, grad_chunk **out, size_t *count, size_t *total) {
    size_t k = 0, tot = 0;
    for (size_t i = 0; i < n; i++)
        if (params[i]->trainable && params[i]->grad) k += (params[i]->numel + CHUNK - 1) / CHUNK;
    *out = NULL;
    *count = 0;
    *total = 0;
    if (!k) return ADEPT_OK;
    grad_chunk *c = malloc(k * sizeof *c);
    if (!c) return adept_fail(ADEPT_ENOMEM, "grad_norm: out of memory");
    k = 0;
    for (size_t i = 0; i < n; i++) {
        const adept_param *p = params[i];
        if (!p->trainable || !p->grad) continue;
        float *g = adept_tensor_f32(p->grad);
        for (size_t off = 0; off < p->numel; off += CHUNK) {
            c[k].g = g + off;
            c[k].n = p->numel - off < CHUNK ? p->numel - off : CHUNK;
            k++;
        }
        tot += p->numel;
    }
    *out = c;
    *count = k;
    *total = tot;
    return ADEPT_OK;
}

adept_status adept_grad_norm(adept_param *const *params, size_t n, double *norm) {
    grad_chunk *c;
    size_t k, total;
    ADEPT_TRY(grad_chunks(params, n, &c, &k, &total));
    double *part = malloc((k ? k : 1) * sizeof *part);
    if (!part) { free(c); return adept_fail(ADEPT_ENOMEM, "grad_norm: out of memory"); }
#pragma omp parallel for schedule(static) if (total > 2 * CHUNK)
    for (size_t j = 0; j < k; j++) {
        double s = 0;
        const float *g = c[j].g;
        for (size_t i = 0; i < c[j].n; i++) s += (double)g[i] * g[i];
        part[j] = s;
    }
    double sum = 0;
    for (size_t j = 0; j < k; j++) sum += part[j];
    free(part);
    free(c);
    *norm = sqrt(sum);
    if (isfinite(*norm)) return ADEPT_OK;
    /* name the first tensor holding a NaN or infinity (a large finite gradient can overflow its square) */
    for (size_t i = 0; i < n; i++) {
        const adept_param *p = params[i];
        if (!p->trainable || !p->grad) continue;
        const float *g = adept_tensor_f32(p->grad);
        for (size_t j = 0; j < p->numel; j++)
            if (!isfinite(g[j]))
                return adept_fail(ADEPT_ENONFINITE, "gradient norm is %g: tensor %s holds a non-finite gradient", *norm,
                                  p->name);
    }
    return adept_fail(ADEPT_ENONFINITE, "gradient norm overflows (every gradient is finite)");
}

adept_status adept_clip_grad_norm(adept_param *const *params, size_t n, double max_norm, double *norm) {
    if (!(max_norm > 0)) return adept_fail(ADEPT_EINVAL, "clip_grad_norm: max norm must be > 0, got %g", max_norm);
    ADEPT_TRY(adept_grad_norm(params, n, norm));
    double coef = max_norm / (*norm + 1e-6);
    if (coef >= 1.0) return ADEPT_OK;
    grad_chunk *c;
    size_t k, total;
    ADEPT_TRY(grad_chunks(params, n, &c, &k, &total));
    const float f = (float)coef;
#pragma omp parallel for schedule(static) if (total > 2 * CHUNK)
    for (size_t j = 0; j < k; j++)
        for (size_t i = 0; i < c[j].n; i++) c[j].g[i] *= f;
    free(c);
    return ADEPT_OK;
}
