/* AdamW over the model's slabs (see adept/optim.h for the exact update): per-row state keyed by stable row
   uids, moment slabs laid out like the gradient slab, LR multiplier tables, and global-norm clipping. The
   arithmetic runs in the model's backend (one fused pass over segments); this file decides the scalars. */
#include "adept/optim.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/backend.h"
#include "adept/dist.h"
#include "model/model_internal.h"

typedef struct row_state {
    uint64_t uid;
    int64_t step;      /* updates applied to this tensor */
    int has_moments;   /* its moments live in the slabs at `off` */
    size_t off;
    int has_scale;
    double scale;
    float *rows;       /* per-row multipliers (host), NULL for a scalar */
    int64_t n_rows;
} row_state;

struct adept_adamw {
    adept_adamw_config cfg;
    adept_model *model;
    const adept_backend *be; /* kept apart from model: freeing the optimizer must not touch a freed model */
    int64_t steps;
    row_state *st;
    size_t n_st, cap_st;
    float *m, *v;            /* device slabs, NULL until the first step: the moments of gradient-slab elements
                                [lo, hi) (all of them unless the optimizer is sharded across ranks) */
    size_t elems;            /* hi - lo */
    size_t lo, hi;
    int shard_rank, shard_world; /* ZeRO-1: this rank updates only its block of the gradient slab; world 1: all */
    int gathered;            /* sharded, with the full moments present for a checkpoint (adept_adamw_gather) */
    uint64_t layout;         /* the gradient layout the slabs follow */
    adept_adamw_segment *segs;
    size_t cap_segs;
    size_t hint;             /* where find_state starts looking */
};

adept_adamw_config adept_adamw_defaults(void) {
    adept_adamw_config c = {1e-4, 0.9, 0.95, 1e-8, 0.1};
    return c;
}

static int f32_range(double x) { return isfinite(x) && fabs(x) <= FLT_MAX; }

static adept_status check_config(const adept_adamw_config *c) {
    if (!(c->lr >= 0) || !f32_range(c->lr))
        return adept_fail(ADEPT_EINVAL, "adamw: lr must be a finite number >= 0 within float32 range, got %g", c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1)) return adept_fail(ADEPT_EINVAL, "adamw: beta1 must be in [0, 1), got %g", c->beta1);
    if (!(c->beta2 >= 0 && c->beta2 < 1)) return adept_fail(ADEPT_EINVAL, "adamw: beta2 must be in [0, 1), got %g", c->beta2);
    if (!(c->eps > 0) || !f32_range(c->eps))
        return adept_fail(ADEPT_EINVAL, "adamw: eps must be a finite number > 0 within float32 range, got %g", c->eps);
    if (!(c->weight_decay >= 0) || !f32_range(c->weight_decay))
        return adept_fail(ADEPT_EINVAL, "adamw: weight_decay must be a finite number >= 0 within float32 range, got %g",
                          c->weight_decay);
    return ADEPT_OK;
}

adept_status adept_adamw_new(adept_model *m, const adept_adamw_config *cfg, adept_adamw **out) {
    *out = NULL;
    if (!m) return adept_fail(ADEPT_EINVAL, "adamw: no model");
    adept_adamw_config c = cfg ? *cfg : adept_adamw_defaults();
    ADEPT_TRY(check_config(&c));
    ADEPT_TRY(adept_model_grads_materialize(m)); /* the moments are laid parallel to the gradient slab */
    adept_adamw *o = calloc(1, sizeof *o);
    if (!o) return adept_fail(ADEPT_ENOMEM, "adamw: out of memory");
    o->cfg = c;
    o->model = m;
    o->be = m->be;
    o->shard_world = 1;
    *out = o;
    return ADEPT_OK;
}

adept_status adept_adamw_set_shard(adept_adamw *o, int rank, int world) {
    if (world < 1 || rank < 0 || rank >= world)
        return adept_fail(ADEPT_EINVAL, "adamw: shard %d of %d is not a valid rank", rank, world);
    if (o->m) return adept_fail(ADEPT_ESTATE, "adamw: shard the optimizer before its first step");
    o->shard_rank = rank, o->shard_world = world;
    return ADEPT_OK;
}

int adept_adamw_sharded(const adept_adamw *o, size_t *lo, size_t *hi) {
    if (o->shard_world <= 1) return 0;
    adept_comm_block(o->model->grad_elems, o->shard_rank, o->shard_world, lo, hi);
    return 1;
}

static void free_slabs(adept_adamw *o) {
    o->be->free(o->m);
    o->be->free(o->v);
    o->m = o->v = NULL;
    o->elems = 0;
}

void adept_adamw_free(adept_adamw *o) {
    if (!o) return;
    free_slabs(o);
    for (size_t i = 0; i < o->n_st; i++) free(o->st[i].rows);
    free(o->st);
    free(o->segs);
    free(o);
}

adept_model *adept_adamw_model(const adept_adamw *o) { return o->model; }
const adept_adamw_config *adept_adamw_get_config(const adept_adamw *o) { return &o->cfg; }

adept_status adept_adamw_set_config(adept_adamw *o, const adept_adamw_config *cfg) {
    ADEPT_TRY(check_config(cfg));
    o->cfg = *cfg;
    return ADEPT_OK;
}

int64_t adept_adamw_steps(const adept_adamw *o) { return o->steps; }
void adept_adamw_set_steps(adept_adamw *o, int64_t steps) { o->steps = steps; }

/* ---- per-row state, by uid: a linear table searched from where the last lookup ended, because callers walk the
   model's rows in table order and the table was filled in that order: on the training step every lookup hits at
   once instead of scanning (P lookups of O(1), not O(P) each). */

static row_state *find_state(const adept_adamw *o, uint64_t uid) {
    adept_adamw *w = (adept_adamw *)o; /* the hint is a cache, not state */
    size_t n = o->n_st;
    for (size_t k = 0; k < n; k++) {
        size_t i = (w->hint + k) % n;
        if (o->st[i].uid == uid) {
            w->hint = i + 1;
            return &o->st[i];
        }
    }
    return NULL;
}

static adept_status state_for(adept_adamw *o, uint64_t uid, row_state **out) {
    row_state *s = find_state(o, uid);
    if (!s) {
        if (o->n_st == o->cap_st) {
            size_t cap = o->cap_st ? 2 * o->cap_st : 64;
            row_state *grown = realloc(o->st, cap * sizeof *grown);
            if (!grown) return adept_fail(ADEPT_ENOMEM, "adamw: out of memory for the state table");
            o->st = grown;
            o->cap_st = cap;
        }
        s = &o->st[o->n_st++];
        memset(s, 0, sizeof *s);
        s->uid = uid;
        s->scale = 1.0;
    }
    *out = s;
    return ADEPT_OK;
}

static adept_status check_row(const adept_adamw *o, size_t row, const char *op) {
    if (row >= o->model->nparams)
        return adept_fail(ADEPT_EINVAL, "%s: row %zu out of range (%zu rows)", op, row, o->model->nparams);
    return ADEPT_OK;
}

/* Re-lays the moment slabs to the model's current gradient layout (allocating them the first time). */
static adept_status sync_layout(adept_adamw *o) {
    adept_model *md = o->model;
    const adept_backend *be = md->be;
    if (o->m && o->layout == md->grad_layout) return ADEPT_OK;
    if (o->shard_world > 1) {
        /* a sharded optimizer's blocks depend on the layout: moving moments between ranks on a re-lay is not
           done, so the trainable set is fixed once the moments exist */
        if (o->m)
            return adept_fail(ADEPT_ESTATE, "adamw: the trainable set changed after the first step of an optimizer "
                              "sharded across ranks (shard_optimizer): create the optimizer after the surgery");
        size_t lo, hi;
        adept_comm_block(md->grad_elems, o->shard_rank, o->shard_world, &lo, &hi);
        float *m = be->alloc((hi - lo) * sizeof(float)), *v = be->alloc((hi - lo) * sizeof(float));
        if (!m || !v) {
            be->free(m), be->free(v);
            return adept_fail(ADEPT_ENOMEM, "adamw: cannot allocate the moments of this rank's shard (2 x %.1f MiB)",
                              (hi - lo) * 4.0 / 1048576);
        }
        adept_status st = ADEPT_OK;
        for (size_t i = 0; i < md->nparams && st == ADEPT_OK; i++) {
            const adept_param *p = &md->params[i];
            if (!p->trainable) continue;
            row_state *s = find_state(o, p->uid);
            if (!s) st = state_for(o, p->uid, &s);
            if (st == ADEPT_OK) s->has_moments = 1, s->off = p->grad_offset;
        }
        o->m = m, o->v = v, o->lo = lo, o->hi = hi, o->elems = hi - lo, o->layout = md->grad_layout;
        return st;
    }
    size_t elems = md->grad_elems;
    float *m = be->alloc(elems * sizeof(float)), *v = be->alloc(elems * sizeof(float));
    if (!m || !v) {
        be->free(m);
        be->free(v);
        char note[96];
        adept_backend_memory_note(be, note, sizeof note);
        return adept_fail(ADEPT_ENOMEM, "adamw: cannot allocate the moments (2 x %.1f MiB on %s%s): fewer trainable "
                          "rows (ADEPT: fewer copies), or shard_optimizer = true across ranks, need fewer",
                          elems * 4.0 / 1048576, be->name, note);
    }
    adept_status st = ADEPT_OK;
    for (size_t i = 0; i < md->nparams && st == ADEPT_OK; i++) {
        const adept_param *p = &md->params[i];
        if (!p->trainable) continue;
        row_state *s = find_state(o, p->uid);
        if (s && s->has_moments) {
            st = be->copy(m + p->grad_offset, o->m + s->off, p->numel * sizeof(float));
            if (st == ADEPT_OK) st = be->copy(v + p->grad_offset, o->v + s->off, p->numel * sizeof(float));
        }
    }
    if (st != ADEPT_OK) {
        be->free(m);
        be->free(v);
        return st;
    }
    /* rows that train keep (or start) their state at their new offset; the others lose their moments */
    for (size_t k = 0; k < o->n_st; k++) o->st[k].has_moments = 0;
    for (size_t i = 0; i < md->nparams && st == ADEPT_OK; i++) {
        const adept_param *p = &md->params[i];
        row_state *s = find_state(o, p->uid);
        if (!p->trainable) {
            if (s) s->step = 0;
            continue;
        }
        if (!s) st = state_for(o, p->uid, &s);
        if (st == ADEPT_OK) {
            s->has_moments = 1;
            s->off = p->grad_offset;
        }
    }
    for (size_t k = 0; k < o->n_st; k++)
        if (!o->st[k].has_moments) o->st[k].step = 0;
    free_slabs(o);
    o->m = m;
    o->v = v;
    o->elems = elems;
    o->lo = 0, o->hi = elems;
    o->layout = md->grad_layout;
    return st;
}

/* ---- LR multipliers ---- */

static adept_status check_scale(const adept_adamw *o, size_t row, double x, const char *what) {
    if (!(x >= 0) || !f32_range(x))
        return adept_fail(ADEPT_EINVAL, "adamw.set_lr_scales: %s: %s must be a finite number >= 0 within float32 "
                          "range, got %g", o->model->params[row].name, what, x);
    return ADEPT_OK;
}

adept_status adept_adamw_set_scale(adept_adamw *o, size_t row, double scale) {
    ADEPT_TRY(check_row(o, row, "adamw.set_lr_scales"));
    ADEPT_TRY(check_scale(o, row, scale, "the scale"));
    row_state *s;
    ADEPT_TRY(state_for(o, o->model->params[row].uid, &s));
    free(s->rows);
    s->rows = NULL;
    s->n_rows = 0;
    s->has_scale = 1;
    s->scale = scale;
    return ADEPT_OK;
}

adept_status adept_adamw_set_row_scales(adept_adamw *o, size_t row, const float *scales, int64_t n) {
    ADEPT_TRY(check_row(o, row, "adamw.set_lr_scales"));
    const adept_param *p = &o->model->params[row];
    if (n != p->shape[0])
        return adept_fail(ADEPT_ESHAPE, "adamw.set_lr_scales: %s: %lld row scales for a tensor of %lld rows", p->name,
                          (long long)n, (long long)p->shape[0]);
    for (int64_t r = 0; r < n; r++) ADEPT_TRY(check_scale(o, row, scales[r], "a row scale"));
    float *copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return adept_fail(ADEPT_ENOMEM, "adamw.set_lr_scales: out of memory");
    memcpy(copy, scales, (size_t)n * sizeof *copy);
    row_state *s;
    adept_status st = state_for(o, p->uid, &s);
    if (st != ADEPT_OK) {
        free(copy);
        return st;
    }
    free(s->rows);
    s->rows = copy;
    s->n_rows = n;
    s->has_scale = 1;
    s->scale = 1.0;
    return ADEPT_OK;
}

void adept_adamw_clear_scales(adept_adamw *o) {
    for (size_t i = 0; i < o->n_st; i++) {
        free(o->st[i].rows);
        o->st[i].rows = NULL;
        o->st[i].n_rows = 0;
        o->st[i].has_scale = 0;
        o->st[i].scale = 1.0;
    }
}

int adept_adamw_get_scale(const adept_adamw *o, size_t row, double *scale, const float **rows, int64_t *n_rows) {
    *scale = 1.0;
    *rows = NULL;
    *n_rows = 0;
    if (row >= o->model->nparams) return 0;
    const row_state *s = find_state(o, o->model->params[row].uid);
    if (!s || !s->has_scale) return 0;
    *scale = s->scale;
    *rows = s->rows;
    *n_rows = s->n_rows;
    return 1;
}

/* ---- state access for checkpoints ---- */

/* Per-row access to the moments needs them whole: a sharded optimizer must be gathered first. */
static adept_status check_whole(const adept_adamw *o, const char *op) {
    if (o->shard_world <= 1 || o->gathered || !o->m) return ADEPT_OK;
    return adept_fail(ADEPT_ESTATE, "%s: the optimizer is sharded across ranks: gather its state first "
                      "(opt:gather_state(), on every rank)", op);
}

adept_status adept_adamw_gather(adept_adamw *o, adept_comm *comm) {
    if (o->shard_world <= 1 || o->gathered) return ADEPT_OK;
    adept_model *md = o->model;
    const adept_backend *be = md->be;
    if (!o->m) ADEPT_TRY(sync_layout(o));
    size_t n = md->grad_elems;
    float *m = be->alloc(n * sizeof(float)), *v = be->alloc(n * sizeof(float));
    adept_status st = m && v ? ADEPT_OK : adept_fail(ADEPT_ENOMEM, "adamw: out of memory to gather the moments");
    if (st == ADEPT_OK) st = be->copy(m + o->lo, o->m, o->elems * sizeof(float));
    if (st == ADEPT_OK) st = be->copy(v + o->lo, o->v, o->elems * sizeof(float));
    if (st == ADEPT_OK) st = comm->ops->all_gather_f32(comm, be, m, n);
    if (st == ADEPT_OK) st = comm->ops->all_gather_f32(comm, be, v, n);
    if (st != ADEPT_OK) {
        be->free(m), be->free(v);
        return st;
    }
    be->free(o->m), be->free(o->v);
    o->m = m, o->v = v, o->lo = 0, o->hi = n, o->elems = n, o->gathered = 1;
    return ADEPT_OK;
}

adept_status adept_adamw_scatter(adept_adamw *o) {
    if (o->shard_world <= 1 || !o->gathered) return ADEPT_OK;
    const adept_backend *be = o->model->be;
    size_t lo, hi;
    adept_comm_block(o->model->grad_elems, o->shard_rank, o->shard_world, &lo, &hi);
    float *m = be->alloc((hi - lo) * sizeof(float)), *v = be->alloc((hi - lo) * sizeof(float));
    adept_status st = m && v ? ADEPT_OK : adept_fail(ADEPT_ENOMEM, "adamw: out of memory to re-shard the moments");
    if (st == ADEPT_OK) st = be->copy(m, o->m + lo, (hi - lo) * sizeof(float));
    if (st == ADEPT_OK) st = be->copy(v, o->v + lo, (hi - lo) * sizeof(float));
    if (st != ADEPT_OK) {
        be->free(m), be->free(v);
        return st;
    }
    be->free(o->m), be->free(o->v);
    o->m = m, o->v = v, o->lo = lo, o->hi = hi, o->elems = hi - lo, o->gathered = 0;
    return ADEPT_OK;
}

adept_status adept_adamw_row_state(adept_adamw *o, size_t row, int64_t *step, float **m, float **v) {
    ADEPT_TRY(check_row(o, row, "adamw.state"));
    ADEPT_TRY(check_whole(o, "adamw.state"));
    *step = 0;
    *m = *v = NULL;
    if (o->m) ADEPT_TRY(sync_layout(o)); /* moments exist: make them follow the current layout */
    const row_state *s = find_state(o, o->model->params[row].uid);
    if (!s) return ADEPT_OK;
    *step = s->step;
    if (s->has_moments && o->m) {
        *m = o->m + s->off;
        *v = o->v + s->off;
    }
    return ADEPT_OK;
}

adept_status adept_adamw_load_row(adept_adamw *o, size_t row, int64_t step, const float *host_m, const float *host_v) {
    ADEPT_TRY(check_row(o, row, "adamw.load_state"));
    const adept_param *p = &o->model->params[row];
    if (!p->trainable)
        return adept_fail(ADEPT_ESTATE, "adamw.load_state: %s is frozen: a frozen tensor has no optimizer state", p->name);
    if (step < 0) return adept_fail(ADEPT_EINVAL, "adamw.load_state: %s: negative step %lld", p->name, (long long)step);
    ADEPT_TRY(sync_layout(o));
    ADEPT_TRY(check_whole(o, "adamw.load_state"));
    row_state *s = find_state(o, p->uid);
    const adept_backend *be = o->model->be;
    ADEPT_TRY(be->to_device(o->m + s->off, host_m, p->numel * sizeof(float)));
    ADEPT_TRY(be->to_device(o->v + s->off, host_v, p->numel * sizeof(float)));
    s->step = step;
    return ADEPT_OK;
}

void adept_adamw_reset_row(adept_adamw *o, size_t row) {
    if (row >= o->model->nparams) return;
    row_state *s = find_state(o, o->model->params[row].uid);
    if (!s) return;
    s->step = 0;
    if (s->has_moments && o->m) { /* the part of the row this optimizer holds (all of it unless sharded) */
        const adept_param *p = &o->model->params[row];
        size_t a = s->off > o->lo ? s->off : o->lo, b = s->off + p->numel < o->hi ? s->off + p->numel : o->hi;
        if (a < b) {
            o->model->be->fill_zero(o->m + (a - o->lo), (b - a) * sizeof(float));
            o->model->be->fill_zero(o->v + (a - o->lo), (b - a) * sizeof(float));
        }
    }
}

void adept_adamw_reset(adept_adamw *o) {
    for (size_t i = 0; i < o->model->nparams; i++) adept_adamw_reset_row(o, i);
}

size_t adept_adamw_state_bytes(const adept_adamw *o) { return o->m ? 2 * o->elems * sizeof(float) : 0; }

/* ---- the update ---- */

static adept_status push_seg(adept_adamw *o, size_t *n, const adept_adamw_segment *seg) {
    if (*n == o->cap_segs) {
        size_t cap = o->cap_segs ? 2 * o->cap_segs : 256;
        adept_adamw_segment *grown = realloc(o->segs, cap * sizeof *grown);
        if (!grown) return adept_fail(ADEPT_ENOMEM, "adamw.step: out of memory for the segment list");
        o->segs = grown;
        o->cap_segs = cap;
    }
    o->segs[(*n)++] = *seg;
    return ADEPT_OK;
}

/* Scalars as torch's float32 kernels see them: computed in double on the Python side, cast to float. */
static adept_adamw_segment segment(float *p, const float *g, float *m, float *v, size_t n, double lr,
                                   const adept_adamw_config *c, int decay, int64_t step) {
    double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    int shrink = decay && c->weight_decay != 0.0;
    adept_adamw_segment s = {p, g, m, v, n, shrink ? (float)(1.0 - lr * c->weight_decay) : 1.0f,
                             (float)(-(lr / bc1)), (float)sqrt(bc2)};
    return s;
}

adept_status adept_adamw_step(adept_adamw *o, double lr_factor) {
    if (!(lr_factor >= 0) || !f32_range(lr_factor))
        return adept_fail(ADEPT_EINVAL, "adamw.step: lr factor must be a finite number >= 0, got %g", lr_factor);
    adept_model *md = o->model;
    /* validate before touching anything, so a failed step leaves the model unchanged */
    for (size_t i = 0; i < md->nparams; i++) {
        const adept_param *p = &md->params[i];
        double scale;
        const float *rows;
        int64_t n_rows;
        if (p->trainable && adept_adamw_get_scale(o, i, &scale, &rows, &n_rows) && rows && n_rows != p->shape[0])
            return adept_fail(ADEPT_ESHAPE, "adamw.step: %s: %lld row LR scales for a tensor of %lld rows", p->name,
                              (long long)n_rows, (long long)p->shape[0]);
    }
    if (!md->grad_elems) return ADEPT_OK; /* nothing trains */
    ADEPT_TRY(sync_layout(o));
    size_t nseg = 0;
    for (size_t i = 0; i < md->nparams; i++) {
        adept_param *p = &md->params[i];
        if (!p->trainable) continue;
        row_state *s = find_state(o, p->uid);
        int64_t step = s->step + 1;
        double lr = o->cfg.lr * lr_factor * (s->has_scale ? s->scale : 1.0);
        float *pv = adept_tensor_f32(p->value), *pg = adept_tensor_f32(p->grad);
        /* the row's elements [a, b) of the slab that this optimizer updates (all unless sharded) */
        size_t base = s->off, a = base > o->lo ? base : o->lo, b = base + p->numel < o->hi ? base + p->numel : o->hi;
        size_t len = s->rows ? p->numel / (size_t)s->n_rows : p->numel;
        for (size_t at = a; at < b;) { /* one segment per LR-multiplier row, clipped to [a, b) */
            size_t r = (at - base) / len, end = base + (r + 1) * len < b ? base + (r + 1) * len : b;
            double lr_r = s->rows ? lr * (double)s->rows[r] : lr;
            size_t in = at - base;
            adept_adamw_segment seg = segment(pv + in, pg + in, o->m + (at - o->lo), o->v + (at - o->lo), end - at,
                                              lr_r, &o->cfg, p->decay, step);
            ADEPT_TRY(push_seg(o, &nseg, &seg));
            at = end;
        }
    }
    ADEPT_TRY(md->be->adamw(o->segs, nseg, o->cfg.beta1, o->cfg.beta2, o->cfg.eps));
    for (size_t i = 0; i < md->nparams; i++)
        if (md->params[i].trainable) find_state(o, md->params[i].uid)->step++;
    o->steps++;
    return ADEPT_OK;
}

/* ---- gradient norm and clipping: one reduction over the slab ---- */

adept_status adept_grad_norm(adept_model *m, double *norm) {
    size_t n;
    float *g = adept_model_grad_slab(m, &n);
    double ss = 0;
    if (n) ADEPT_TRY(m->be->sum_squares(g, n, &ss));
    *norm = sqrt(ss);
    if (isfinite(*norm)) return ADEPT_OK;
    /* name the first tensor holding a NaN or infinity (a large finite gradient can overflow its square) */
    for (size_t i = 0; i < m->nparams; i++) {
        const adept_param *p = &m->params[i];
        if (!p->trainable) continue;
        double r;
        ADEPT_TRY(m->be->sum_squares(adept_tensor_f32(p->grad), p->numel, &r));
        if (isnan(r))
            return adept_fail(ADEPT_ENONFINITE, "gradient norm is %g: tensor %s holds a non-finite gradient", *norm,
                              p->name);
    }
    return adept_fail(ADEPT_ENONFINITE, "gradient norm is %g: the gradients are finite but their squares overflow "
                      "(or a tensor holds an infinity)", *norm);
}

adept_status adept_clip_grad_scale(adept_model *m, double max_norm, double norm) {
    if (!(max_norm > 0)) return adept_fail(ADEPT_EINVAL, "clip_grad_norm: max norm must be > 0, got %g", max_norm);
    double coef = max_norm / (norm + 1e-6);
    if (!(coef < 1.0)) return ADEPT_OK;
    size_t n;
    float *g = adept_model_grad_slab(m, &n);
    if (n) m->be->scale(g, n, (float)coef);
    return ADEPT_OK;
}

adept_status adept_clip_grad_norm(adept_model *m, double max_norm, double *norm) {
    if (!(max_norm > 0)) return adept_fail(ADEPT_EINVAL, "clip_grad_norm: max norm must be > 0, got %g", max_norm);
    ADEPT_TRY(adept_grad_norm(m, norm));
    return adept_clip_grad_scale(m, max_norm, *norm);
}
