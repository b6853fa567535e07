/* The trainer-state file and strict checkpoint weights (see adept/checkpoint.h). */
#include "adept/checkpoint.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "adept/backend.h"
#include "adept/hash.h"
#include "adept/json.h"
#include "adept/safetensors.h"
#include "model/model_internal.h"

enum { FORMAT = 2 };

/* A host tensor with the contents of `n` device floats at src, shaped like row p (or [n] when p is NULL). */
static adept_status host_copy(const adept_model *m, const float *src, size_t n, const adept_param *p,
                              adept_tensor **out) {
    int64_t flat[1] = {(int64_t)n};
    ADEPT_TRY(adept_tensor_new(ADEPT_F32, p ? p->ndim : 1, p ? p->shape : flat, out));
    adept_status st = m->be->to_host(adept_tensor_data(*out), src, n * sizeof(float));
    if (st != ADEPT_OK) {
        adept_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

adept_status adept_trainer_state_save(const char *path, adept_adamw *opt, const char *const *meta_keys,
                                      const char *const *meta_values, size_t n_meta) {
    adept_model *m = adept_adamw_model(opt);
    size_t P = m->nparams, cap = 3 * P, k = 0;
    adept_st_item *items = calloc(cap ? cap : 1, sizeof *items);
    char **names = calloc(cap ? cap : 1, sizeof *names);
    const char **mk = calloc(n_meta + 1, sizeof *mk), **mv = calloc(n_meta + 1, sizeof *mv);
    cJSON *meta = cJSON_CreateObject(), *rows = cJSON_CreateObject(), *scales = cJSON_CreateObject();
    cJSON *trainable = cJSON_CreateArray();
    adept_status st = ADEPT_OK;
    char *json = NULL;
    if (!items || !names || !mk || !mv || !meta || !rows || !scales || !trainable) {
        st = adept_fail(ADEPT_ENOMEM, "trainer_state: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_meta; i++)
        if (!strcmp(meta_keys[i], "optimizer")) {
            st = adept_fail(ADEPT_EINVAL, "trainer_state: metadata key 'optimizer' is reserved");
            goto done;
        }
    cJSON_AddNumberToObject(meta, "format", FORMAT);
    cJSON_AddNumberToObject(meta, "steps", (double)adept_adamw_steps(opt));
    for (size_t i = 0; i < P && st == ADEPT_OK; i++) {
        const adept_param *p = &m->params[i];
        if (p->trainable) cJSON_AddItemToArray(trainable, cJSON_CreateString(p->name));
        int64_t step;
        float *em, *ev;
        st = adept_adamw_row_state(opt, i, &step, &em, &ev);
        if (st != ADEPT_OK) break;
        if (p->trainable && em) {
            const char *prefix[2] = {"exp_avg.", "exp_avg_sq."};
            float *src[2] = {em, ev};
            for (int j = 0; j < 2 && st == ADEPT_OK; j++) {
                size_t len = strlen(prefix[j]) + strlen(p->name) + 1;
                if (!(names[k] = malloc(len))) { st = adept_fail(ADEPT_ENOMEM, "trainer_state: out of memory"); break; }
                snprintf(names[k], len, "%s%s", prefix[j], p->name);
                items[k].name = names[k];
                adept_tensor *t = NULL;
                st = host_copy(m, src[j], p->numel, p, &t);
                items[k].tensor = t;
                if (st == ADEPT_OK) k++;
                else { free(names[k]); names[k] = NULL; }
            }
            cJSON_AddNumberToObject(rows, p->name, (double)step);
        }
        double scale;
        const float *rv;
        int64_t nr;
        if (st == ADEPT_OK && adept_adamw_get_scale(opt, i, &scale, &rv, &nr)) {
            if (rv) {
                size_t len = strlen("lr_rows.") + strlen(p->name) + 1;
                int64_t shape[1] = {nr};
                if (!(names[k] = malloc(len))) { st = adept_fail(ADEPT_ENOMEM, "trainer_state: out of memory"); break; }
                snprintf(names[k], len, "lr_rows.%s", p->name);
                items[k].name = names[k];
                adept_tensor *t = NULL;
                st = adept_tensor_new(ADEPT_F32, 1, shape, &t);
                items[k].tensor = t;
                if (st == ADEPT_OK) {
                    memcpy(adept_tensor_data(t), rv, (size_t)nr * sizeof(float));
                    k++;
                } else { free(names[k]); names[k] = NULL; }
            }
            cJSON_AddNumberToObject(scales, p->name, rv ? -1.0 : scale);
        }
    }
    if (st != ADEPT_OK) goto done;
    cJSON_AddItemToObject(meta, "trainable", trainable);
    cJSON_AddItemToObject(meta, "rows", rows);
    cJSON_AddItemToObject(meta, "scales", scales);
    trainable = rows = scales = NULL;
    json = cJSON_PrintUnformatted(meta);
    if (!json) { st = adept_fail(ADEPT_ENOMEM, "trainer_state: out of memory"); goto done; }
    mk[0] = "optimizer";
    mv[0] = json;
    for (size_t i = 0; i < n_meta; i++) mk[i + 1] = meta_keys[i], mv[i + 1] = meta_values[i];
    st = adept_safetensors_write(path, items, k, mk, mv, n_meta + 1);
done:
    for (size_t i = 0; i < k; i++) adept_tensor_free((adept_tensor *)items[i].tensor);
    for (size_t i = 0; i < cap; i++) free(names ? names[i] : NULL);
    free(items);
    free(names);
    free(mk);
    free(mv);
    cJSON_Delete(meta);
    cJSON_Delete(rows);
    cJSON_Delete(scales);
    cJSON_Delete(trainable);
    cJSON_free(json);
    return st;
}

/* ---- reading ---- */

/* A JSON number that is a whole count in [0, 2^53]: a corrupt file must never reach a float-to-int cast. */
static int json_count(const cJSON *j) {
    return cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble <= 9007199254740992.0 &&
           j->valuedouble == floor(j->valuedouble);
}

/* The tensor "<prefix><name>" of the file, which must be f32 with exactly `shape` (ndim dims). */
static adept_status state_tensor(const char *path, const adept_safetensors *sf, const char *prefix,
                                 const char *name, int ndim, const int64_t *shape, const adept_st_entry **out) {
    char key[300];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    const adept_st_entry *e = adept_safetensors_find(sf, key);
    if (!e) return adept_fail(ADEPT_EFORMAT, "%s: tensor %s is missing", path, key);
    int same = e->dtype == ADEPT_F32 && e->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
    if (!same) {
        char want[64], got[64];
        adept_shape_str(ndim, shape, want, sizeof want);
        adept_shape_str(e->ndim, e->shape, got, sizeof got);
        return adept_fail(ADEPT_ESHAPE, "%s: tensor %s is %s %s, the model needs f32 %s", path, key,
                          adept_dtype_name(e->dtype), got, want);
    }
    *out = e;
    return ADEPT_OK;
}

static int64_t row_of(const adept_model *m, const char *name) {
    for (size_t i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return (int64_t)i;
    return -1;
}

/* Every check of the file against the model; fills `train` (the trainable mask). */
static adept_status validate(const char *path, const adept_safetensors *sf, const cJSON *meta, const adept_model *m,
                             unsigned char *train) {
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(meta, "format");
    if (!cJSON_IsNumber(format) || format->valuedouble != FORMAT)
        return adept_fail(ADEPT_EFORMAT, "%s: trainer state format %s is not %d (written by another version of "
                          "adeptlua?)", path, cJSON_IsNumber(format) ? "other" : "missing", FORMAT);
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(meta, "steps");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(meta, "trainable");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(meta, "rows");
    const cJSON *scales = cJSON_GetObjectItemCaseSensitive(meta, "scales");
    if (!json_count(steps) || !cJSON_IsArray(tr) || !cJSON_IsObject(rows) || !cJSON_IsObject(scales))
        return adept_fail(ADEPT_EFORMAT, "%s: the \"optimizer\" metadata lacks steps, trainable, rows or scales", path);
    memset(train, 0, m->nparams);
    for (const cJSON *t = tr->child; t; t = t->next) {
        int64_t i = cJSON_IsString(t) ? row_of(m, t->valuestring) : -1;
        if (i < 0)
            return adept_fail(ADEPT_EFORMAT, "%s: trainable tensor %s is not a parameter of the model", path,
                              cJSON_IsString(t) ? t->valuestring : "(not a string)");
        train[i] = 1;
    }
    for (const cJSON *r = rows->child; r; r = r->next) {
        int64_t i = row_of(m, r->string);
        if (i < 0) return adept_fail(ADEPT_EFORMAT, "%s: state for %s, which is not a parameter of the model", path, r->string);
        if (!train[i]) return adept_fail(ADEPT_EFORMAT, "%s: state for %s, which the file does not list as trainable", path, r->string);
        if (!json_count(r)) return adept_fail(ADEPT_EFORMAT, "%s: the step count of %s is not a whole number >= 0", path, r->string);
        const adept_param *p = &m->params[i];
        const adept_st_entry *e;
        ADEPT_TRY(state_tensor(path, sf, "exp_avg.", p->name, p->ndim, p->shape, &e));
        ADEPT_TRY(state_tensor(path, sf, "exp_avg_sq.", p->name, p->ndim, p->shape, &e));
    }
    for (const cJSON *s = scales->child; s; s = s->next) {
        int64_t i = row_of(m, s->string);
        if (i < 0) return adept_fail(ADEPT_EFORMAT, "%s: LR scale for %s, which is not a parameter of the model", path, s->string);
        double x = cJSON_IsNumber(s) ? s->valuedouble : NAN;
        if (x == -1.0) {
            const adept_st_entry *e;
            ADEPT_TRY(state_tensor(path, sf, "lr_rows.", s->string, 1, &m->params[i].shape[0], &e));
            /* the values too: a bad multiplier found while applying would leave the load half done */
            adept_tensor *t;
            ADEPT_TRY(adept_safetensors_view(sf, e, &t));
            const float *v = adept_tensor_f32(t);
            int64_t bad = -1;
            for (int64_t r = 0; r < m->params[i].shape[0] && bad < 0; r++)
                if (!(v[r] >= 0) || !(v[r] <= FLT_MAX)) bad = r;
            double x = bad >= 0 ? (double)v[bad] : 0;
            adept_tensor_free(t);
            if (bad >= 0)
                return adept_fail(ADEPT_EFORMAT, "%s: row %lld of the LR multipliers of %s is %g, not a finite number "
                                  ">= 0", path, (long long)bad, s->string, x);
        } else if (!(x >= 0) || !(x <= FLT_MAX)) {
            return adept_fail(ADEPT_EFORMAT, "%s: the LR scale of %s is not a finite number >= 0 (or -1 with an "
                              "lr_rows tensor)", path, s->string);
        }
    }
    return ADEPT_OK;
}

static char *meta_object(const adept_safetensors *sf) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (size_t i = 0; i < sf->n_meta; i++) cJSON_AddStringToObject(o, sf->meta_keys[i], sf->meta_values[i]);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return NULL;
    char *copy = strdup(s); /* callers free with free() */
    cJSON_free(s);
    return copy;
}

adept_status adept_trainer_state_load(const char *path, adept_adamw *opt, char **meta_json) {
    adept_safetensors *sf;
    ADEPT_TRY(adept_safetensors_open(path, &sf));
    adept_status st = adept_trainer_state_read(sf, path, opt, meta_json);
    adept_safetensors_close(sf);
    return st;
}

adept_status adept_trainer_state_read(const adept_safetensors *sf, const char *path, adept_adamw *opt,
                                      char **meta_json) {
    adept_model *m = adept_adamw_model(opt);
    const char *text = adept_safetensors_meta(sf, "optimizer");
    cJSON *meta = NULL;
    unsigned char *train = malloc(m->nparams ? m->nparams : 1);
    adept_status st = ADEPT_OK;
    char label[512];
    snprintf(label, sizeof label, "%s: the \"optimizer\" metadata", path);
    if (!train) st = adept_fail(ADEPT_ENOMEM, "trainer_state: out of memory");
    else if (!text) st = adept_fail(ADEPT_EFORMAT, "%s: no \"optimizer\" metadata (not a trainer_state file?)", path);
    /* strict: a key given twice (cJSON would take the first, a Python reader the last) is refused by name */
    else if ((st = adept_json_parse(text, strlen(text), label, &meta)) == ADEPT_OK) st = validate(path, sf, meta, m, train);
    /* everything checked: apply */
    if (st == ADEPT_OK) st = adept_model_set_trainable_mask(m, train);
    if (st == ADEPT_OK) {
        adept_adamw_reset(opt);
        adept_adamw_clear_scales(opt);
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(meta, "rows");
        for (const cJSON *r = rows->child; r && st == ADEPT_OK; r = r->next) {
            size_t i = (size_t)row_of(m, r->string);
            adept_tensor *em = NULL, *ev = NULL;
            char key[300];
            snprintf(key, sizeof key, "exp_avg.%s", r->string);
            st = adept_safetensors_view(sf, adept_safetensors_find(sf, key), &em);
            snprintf(key, sizeof key, "exp_avg_sq.%s", r->string);
            if (st == ADEPT_OK) st = adept_safetensors_view(sf, adept_safetensors_find(sf, key), &ev);
            if (st == ADEPT_OK)
                st = adept_adamw_load_row(opt, i, (int64_t)r->valuedouble, adept_tensor_f32(em), adept_tensor_f32(ev));
            adept_tensor_free(em);
            adept_tensor_free(ev);
        }
        const cJSON *scales = cJSON_GetObjectItemCaseSensitive(meta, "scales");
        for (const cJSON *s = scales->child; s && st == ADEPT_OK; s = s->next) {
            size_t i = (size_t)row_of(m, s->string);
            if (s->valuedouble >= 0) {
                st = adept_adamw_set_scale(opt, i, s->valuedouble);
                continue;
            }
            char key[300];
            snprintf(key, sizeof key, "lr_rows.%s", s->string);
            adept_tensor *r = NULL;
            st = adept_safetensors_view(sf, adept_safetensors_find(sf, key), &r);
            if (st == ADEPT_OK)
                st = adept_adamw_set_row_scales(opt, i, adept_tensor_f32(r), (int64_t)adept_tensor_numel(r));
            adept_tensor_free(r);
        }
        if (st == ADEPT_OK)
            adept_adamw_set_steps(opt, (int64_t)cJSON_GetObjectItemCaseSensitive(meta, "steps")->valuedouble);
    }
    if (st == ADEPT_OK && meta_json && !(*meta_json = meta_object(sf)))
        st = adept_fail(ADEPT_ENOMEM, "trainer_state: out of memory");
    cJSON_Delete(meta);
    free(train);
    return st;
}

/* ---- checkpoint weights ---- */

adept_status adept_model_load_weights(adept_model *m, const char *const *paths, size_t n_paths) {
    if (n_paths == 0) return adept_fail(ADEPT_EINVAL, "load_weights: no weight files");
    adept_safetensors **sf = calloc(n_paths, sizeof *sf);
    if (!sf) return adept_fail(ADEPT_ENOMEM, "load_weights: out of memory");
    adept_status st = ADEPT_OK;
    for (size_t f = 0; f < n_paths && st == ADEPT_OK; f++) st = adept_safetensors_open(paths[f], &sf[f]);
    /* check all first: a tensor missing, of another shape (a transposed one included) or not a float */
    for (size_t i = 0; i < m->nparams && st == ADEPT_OK; i++) {
        const adept_param *p = &m->params[i];
        const adept_st_entry *e = NULL;
        size_t f = 0;
        for (; f < n_paths && !e; f++) e = adept_safetensors_find(sf[f], p->name);
        if (!e) { st = adept_fail(ADEPT_ENOTFOUND, "%s: %s is missing", paths[0], p->name); break; }
        int same = e->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
        if (!same || !adept_dtype_is_float(e->dtype)) {
            char want[64], got[64];
            adept_shape_str(p->ndim, p->shape, want, sizeof want);
            adept_shape_str(e->ndim, e->shape, got, sizeof got);
            st = adept_fail(ADEPT_ESHAPE, "%s: %s is %s %s, the model needs a float tensor of shape %s", paths[f - 1],
                            p->name, adept_dtype_name(e->dtype), got, want);
        }
    }
    /* a row kept in bf16/f16 takes a tensor of its dtype as it is; any other is widened to fp32 first */
    unsigned char *widen = st == ADEPT_OK ? calloc(m->nparams ? m->nparams : 1, 1) : NULL;
    if (st == ADEPT_OK && !widen) st = adept_fail(ADEPT_ENOMEM, "load_weights: out of memory");
    for (size_t i = 0; i < m->nparams && widen; i++) {
        const adept_st_entry *e = NULL;
        for (size_t f = 0; f < n_paths && !e; f++) e = adept_safetensors_find(sf[f], m->params[i].name);
        widen[i] = e && e->dtype != m->params[i].value->dtype;
    }
    if (st == ADEPT_OK) st = adept_model_widen_rows(m, widen);
    free(widen);
    float *host = NULL;
    for (size_t i = 0; i < m->nparams && st == ADEPT_OK; i++) {
        adept_param *p = &m->params[i];
        const adept_st_entry *e = NULL;
        size_t f = 0;
        for (; f < n_paths && !e; f++) e = adept_safetensors_find(sf[f], p->name);
        adept_tensor *v;
        st = adept_safetensors_view(sf[f - 1], e, &v);
        if (st != ADEPT_OK) break;
        const float *src = adept_tensor_f32(v);
        if (v->dtype == p->value->dtype && v->dtype != ADEPT_F32) { /* a 16-bit row: the bytes as they are */
            st = m->be->to_device(adept_tensor_data(p->value), adept_tensor_data(v), p->numel * 2);
            adept_tensor_free(v);
            continue;
        }
        if (v->dtype != ADEPT_F32) {
            free(host);
            host = malloc(p->numel * sizeof *host + 1);
            st = host ? adept_convert(host, ADEPT_F32, adept_tensor_data(v), v->dtype, p->numel)
                      : adept_fail(ADEPT_ENOMEM, "load_weights: out of memory");
            src = host;
        }
        if (st == ADEPT_OK) st = m->be->to_device(adept_tensor_data(p->value), src, p->numel * sizeof(float));
        adept_tensor_free(v);
    }
    free(host);
    for (size_t f = 0; f < n_paths; f++) adept_safetensors_close(sf[f]);
    free(sf);
    return st;
}

/* ---- rows checkpoints ---- */

enum { ROWS_FORMAT = 1 };
#define ROWS_META "checkpoint"
#define HASH_CHUNK ((size_t)1 << 20) /* elements copied to the host per step while hashing */

/* n values of row p starting at element `at`, as f32 on the host (dst); `raw` is scratch of n elements of the
   row's dtype when that is not f32. */
static adept_status row_f32_chunk(const adept_model *m, const adept_param *p, size_t at, size_t n, float *dst,
                                  void *raw) {
    adept_dtype dt = p->value->dtype;
    const unsigned char *src = (const unsigned char *)adept_tensor_data(p->value) + at * adept_dtype_size(dt);
    if (dt == ADEPT_F32) return m->be->to_host(dst, src, n * sizeof(float));
    ADEPT_TRY(m->be->to_host(raw, src, n * adept_dtype_size(dt)));
    return adept_convert(dst, ADEPT_F32, raw, dt, n);
}

adept_status adept_model_row_sha256(adept_model *m, size_t i, char hex[ADEPT_SHA256_HEX]) {
    if (i >= m->nparams) return adept_fail(ADEPT_EINVAL, "row_sha256: row %zu of %zu", i, m->nparams);
    const adept_param *p = &m->params[i];
    size_t chunk = p->numel < HASH_CHUNK ? p->numel : HASH_CHUNK;
    int widen = p->value->dtype != ADEPT_F32;
    float *buf = malloc((chunk ? chunk : 1) * sizeof *buf);
    void *raw = widen ? malloc((chunk ? chunk : 1) * adept_dtype_size(p->value->dtype)) : NULL;
    adept_sha256_ctx *ctx = NULL;
    adept_status st = !buf || (widen && !raw) ? adept_fail(ADEPT_ENOMEM, "row_sha256: out of memory")
                                               : adept_sha256_begin(&ctx);
    for (size_t at = 0; st == ADEPT_OK && at < p->numel; at += chunk) {
        size_t n = p->numel - at < chunk ? p->numel - at : chunk;
        st = row_f32_chunk(m, p, at, n, buf, raw);
        if (st == ADEPT_OK) adept_sha256_update(ctx, buf, n * sizeof(float)); /* the host is little-endian */
    }
    if (st == ADEPT_OK) st = adept_sha256_end(ctx, hex);
    else adept_sha256_free(ctx);
    free(buf);
    free(raw);
    return st;
}

static int is_hex_digest(const char *s) {
    size_t k = 0;
    for (; s[k]; k++)
        if (!((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f'))) return 0;
    return k == 64;
}

adept_status adept_ckpt_rows_save(adept_model *m, const unsigned char *held, const char *base_hex, int64_t base_rows,
                                  const char *path) {
    if (!base_hex || !is_hex_digest(base_hex))
        return adept_fail(ADEPT_EINVAL, "rows checkpoint: the base identity must be 64 lowercase hex digits");
    if (base_rows < 0) return adept_fail(ADEPT_EINVAL, "rows checkpoint: base_rows %lld < 0", (long long)base_rows);
    size_t P = m->nparams, k = 0;
    adept_st_item *items = calloc(P ? P : 1, sizeof *items);
    cJSON *meta = cJSON_CreateObject(), *rows = cJSON_CreateArray();
    char *json = NULL;
    adept_status st = items && meta && rows ? ADEPT_OK : adept_fail(ADEPT_ENOMEM, "rows checkpoint: out of memory");
    void *raw = NULL;
    for (size_t i = 0; i < P && st == ADEPT_OK; i++) {
        const adept_param *p = &m->params[i];
        if (!held[i]) continue;
        adept_tensor *t = NULL;
        st = adept_tensor_new(ADEPT_F32, p->ndim, p->shape, &t);
        if (st == ADEPT_OK && p->value->dtype != ADEPT_F32) {
            free(raw);
            raw = malloc(p->numel * adept_dtype_size(p->value->dtype) + 1);
            if (!raw) st = adept_fail(ADEPT_ENOMEM, "rows checkpoint: out of memory");
        }
        if (st == ADEPT_OK) st = row_f32_chunk(m, p, 0, p->numel, adept_tensor_f32(t), raw);
        if (st != ADEPT_OK) {
            adept_tensor_free(t);
            break;
        }
        items[k].name = p->name;
        items[k++].tensor = t;
        cJSON_AddItemToArray(rows, cJSON_CreateString(p->name));
    }
    if (st == ADEPT_OK) {
        cJSON_AddNumberToObject(meta, "format", ROWS_FORMAT);
        cJSON_AddStringToObject(meta, "base", base_hex);
        cJSON_AddNumberToObject(meta, "base_rows", (double)base_rows);
        cJSON_AddItemToObject(meta, "rows", rows);
        rows = NULL;
        json = cJSON_PrintUnformatted(meta);
        if (!json) st = adept_fail(ADEPT_ENOMEM, "rows checkpoint: out of memory");
    }
    if (st == ADEPT_OK) {
        const char *mk[2] = {"format", ROWS_META}, *mv[2] = {"pt", json};
        st = adept_safetensors_write(path, items, k, mk, mv, 2);
    }
    for (size_t i = 0; i < k; i++) adept_tensor_free((adept_tensor *)items[i].tensor);
    free(items);
    free(raw);
    cJSON_Delete(meta);
    cJSON_Delete(rows);
    cJSON_free(json);
    return st;
}

/* The checks of adept_ckpt_rows_read before anything is applied. */
static adept_status rows_validate(const char *path, const adept_safetensors *sf, const cJSON *meta,
                                  const adept_model *m) {
    int64_t format, base_rows;
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(meta, "base");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(meta, "rows");
    if (!adept_json_int(cJSON_GetObjectItemCaseSensitive(meta, "format"), 0, 1000, &format) || format != ROWS_FORMAT)
        return adept_fail(ADEPT_EFORMAT, "%s: the \"%s\" metadata is not of format %d (written by another version of "
                          "adeptlua?)", path, ROWS_META, ROWS_FORMAT);
    if (!cJSON_IsString(base) || !is_hex_digest(base->valuestring))
        return adept_fail(ADEPT_EFORMAT, "%s: the \"%s\" metadata has no base identity (64 hex digits)", path, ROWS_META);
    if (!adept_json_int(cJSON_GetObjectItemCaseSensitive(meta, "base_rows"), 0, INT64_MAX / 2, &base_rows))
        return adept_fail(ADEPT_EFORMAT, "%s: the \"%s\" metadata has no base_rows (a whole number >= 0)", path, ROWS_META);
    if (!cJSON_IsArray(rows))
        return adept_fail(ADEPT_EFORMAT, "%s: the \"%s\" metadata has no rows array", path, ROWS_META);
    size_t listed = 0;
    for (const cJSON *r = rows->child; r; r = r->next, listed++) {
        if (!cJSON_IsString(r)) return adept_fail(ADEPT_EFORMAT, "%s: a row name is not a string", path);
        for (const cJSON *q = rows->child; q != r; q = q->next)
            if (!strcmp(q->valuestring, r->valuestring))
                return adept_fail(ADEPT_EFORMAT, "%s: row %s is listed twice", path, r->valuestring);
        const adept_st_entry *e = adept_safetensors_find(sf, r->valuestring);
        if (!e) return adept_fail(ADEPT_EFORMAT, "%s: row %s is listed but not in the file", path, r->valuestring);
        if (e->dtype != ADEPT_F32)
            return adept_fail(ADEPT_EFORMAT, "%s: row %s is %s, a checkpoint holds f32", path, r->valuestring,
                              adept_dtype_name(e->dtype));
        if (!m) continue;
        int64_t i = row_of(m, r->valuestring);
        if (i < 0)
            return adept_fail(ADEPT_EFORMAT, "%s: row %s is not a parameter of the model", path, r->valuestring);
        const adept_param *p = &m->params[i];
        int same = e->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
        if (!same) {
            char want[64], got[64];
            adept_shape_str(p->ndim, p->shape, want, sizeof want);
            adept_shape_str(e->ndim, e->shape, got, sizeof got);
            return adept_fail(ADEPT_ESHAPE, "%s: row %s is %s, the model's is %s", path, r->valuestring, got, want);
        }
        if (p->value->dtype != ADEPT_F32) /* rows that train are f32; a checkpoint never lands on a narrower row */
            return adept_fail(ADEPT_EUNSUPPORTED, "%s: row %s is stored as %s in the model, a checkpoint row needs an "
                              "f32 row", path, r->valuestring, adept_dtype_name(p->value->dtype));
    }
    if (listed != sf->n_entries) {
        for (size_t k = 0; k < sf->n_entries; k++) {
            int found = 0;
            for (const cJSON *r = rows->child; r && !found; r = r->next) found = !strcmp(r->valuestring, sf->entries[k].name);
            if (!found)
                return adept_fail(ADEPT_EFORMAT, "%s: tensor %s is not listed in the \"%s\" metadata", path,
                                  sf->entries[k].name, ROWS_META);
        }
    }
    return ADEPT_OK;
}

adept_status adept_ckpt_rows_read(const char *path, adept_model *m, int apply, char **meta_json) {
    if (meta_json) *meta_json = NULL;
    adept_safetensors *sf;
    ADEPT_TRY(adept_safetensors_open(path, &sf));
    adept_status st = adept_ckpt_rows_read_parsed(sf, path, m, apply, meta_json);
    adept_safetensors_close(sf);
    return st;
}

adept_status adept_ckpt_rows_read_parsed(const adept_safetensors *sf, const char *path, adept_model *m, int apply,
                                         char **meta_json) {
    if (meta_json) *meta_json = NULL;
    if (apply && !m) return adept_fail(ADEPT_EINVAL, "rows checkpoint: applying needs a model");
    const char *text = adept_safetensors_meta(sf, ROWS_META);
    char label[512];
    snprintf(label, sizeof label, "%s: the \"%s\" metadata", path, ROWS_META);
    cJSON *meta = NULL;
    adept_status st = text ? adept_json_parse(text, strlen(text), label, &meta)
                           : adept_fail(ADEPT_EFORMAT, "%s: no \"%s\" metadata (not a rows checkpoint?)", path, ROWS_META);
    if (st == ADEPT_OK) st = rows_validate(path, sf, meta, m);
    if (st == ADEPT_OK && apply) {
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(meta, "rows");
        for (const cJSON *r = rows->child; r && st == ADEPT_OK; r = r->next) {
            adept_param *p = &m->params[row_of(m, r->valuestring)];
            adept_tensor *v = NULL;
            st = adept_safetensors_view(sf, adept_safetensors_find(sf, r->valuestring), &v);
            if (st == ADEPT_OK) st = m->be->to_device(adept_tensor_data(p->value), adept_tensor_f32(v), p->numel * sizeof(float));
            adept_tensor_free(v);
        }
    }
    if (st == ADEPT_OK && meta_json && !(*meta_json = strdup(text)))
        st = adept_fail(ADEPT_ENOMEM, "rows checkpoint: out of memory");
    cJSON_Delete(meta);
    return st;
}
