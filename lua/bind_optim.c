/* adept.adamw(m, {lr, betas, eps, weight_decay}) and the methods of adept.Optimizer: step, LR scales,
   gradient norm/clipping, and the optimizer part of checkpoints (trainer_state.safetensors). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "adept/model.h"
#include "adept/optim.h"
#include "adept/safetensors.h"
#include "binding.h"

#define OPTIM_MT "adept.Optimizer"

typedef struct optim_box {
    adept_adamw *opt; /* NULL after :free() */
} optim_box;          /* user value 1: the model handle (kept alive; checked on every call) */

static optim_box *check_box(lua_State *L, int arg) {
    optim_box *b = luaL_checkudata(L, arg, OPTIM_MT);
    if (!b->opt) luaL_error(L, "optimizer was freed");
    return b;
}

static adept_adamw *check_opt(lua_State *L, int arg) { return check_box(L, arg)->opt; }

/* The optimizer's model, checked (raises "model was freed"). */
static adept_model *opt_model(lua_State *L, int arg) {
    lua_getiuservalue(L, arg, 1);
    adept_model *m = adept_lua_check_model(L, -1);
    lua_pop(L, 1);
    return m;
}

/* The parameter table as an array of row pointers (a userdata on the stack, freed by the GC). */
static adept_param **param_rows(lua_State *L, adept_model *m, size_t *n) {
    *n = adept_model_num_params(m);
    adept_param **rows = lua_newuserdatauv(L, (*n ? *n : 1) * sizeof *rows, 0);
    for (size_t i = 0; i < *n; i++) rows[i] = adept_model_param(m, i);
    return rows;
}

static int optim_gc(lua_State *L) {
    optim_box *b = luaL_checkudata(L, 1, OPTIM_MT);
    adept_adamw_free(b->opt);
    b->opt = NULL;
    return 0;
}

static void read_config(lua_State *L, int arg, adept_adamw_config *c) {
    luaL_checktype(L, arg, LUA_TTABLE);
    c->lr = adept_lua_opt_num_field(L, arg, "lr", c->lr);
    c->eps = adept_lua_opt_num_field(L, arg, "eps", c->eps);
    c->weight_decay = adept_lua_opt_num_field(L, arg, "weight_decay", c->weight_decay);
    lua_getfield(L, arg, "betas");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1) || luaL_len(L, -1) != 2)
            luaL_argerror(L, arg, "field 'betas' must be a table of two numbers {beta1, beta2}");
        for (int i = 1; i <= 2; i++) {
            lua_geti(L, -1, i);
            int ok;
            double v = lua_tonumberx(L, -1, &ok);
            if (!ok) luaL_argerror(L, arg, "field 'betas' must be a table of two numbers {beta1, beta2}");
            if (i == 1) c->beta1 = v;
            else c->beta2 = v;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* adept.adamw(m, {lr=, betas={b1, b2}, eps=, weight_decay=}) */
static int l_adamw(lua_State *L) {
    adept_lua_check_model(L, 1);
    adept_adamw_config c = adept_adamw_defaults();
    if (!lua_isnoneornil(L, 2)) read_config(L, 2, &c);
    optim_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->opt = NULL;
    luaL_setmetatable(L, OPTIM_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    ADEPT_LUA_TRY(L, "adept.adamw", adept_adamw_new(&c, &b->opt));
    return 1;
}

/* opt:step([lr_factor]) */
static int o_step(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    double factor = luaL_optnumber(L, 2, 1.0);
    adept_model *m = opt_model(L, 1);
    size_t n;
    adept_param **rows = param_rows(L, m, &n);
    if (adept_adamw_step(o, rows, n, factor) != ADEPT_OK) return adept_lua_raise(L, "step");
    return 0;
}

/* opt:grad_norm() -> norm [, message naming the non-finite tensor]. Never raises on NaN: the trainer decides. */
static int o_grad_norm(lua_State *L) {
    check_opt(L, 1);
    adept_model *m = opt_model(L, 1);
    size_t n;
    adept_param **rows = param_rows(L, m, &n);
    double norm;
    adept_status s = adept_grad_norm(rows, n, &norm);
    lua_pushnumber(L, norm);
    if (s == ADEPT_ENONFINITE) { lua_pushstring(L, adept_last_error()); return 2; }
    if (s != ADEPT_OK) return adept_lua_raise(L, "grad_norm");
    return 1;
}

/* opt:clip_grad_norm(max) -> norm before clipping [, message when it is not finite (gradients unchanged)]. */
static int o_clip_grad_norm(lua_State *L) {
    check_opt(L, 1);
    double max = luaL_checknumber(L, 2);
    if (!(max > 0)) return luaL_argerror(L, 2, "max norm must be > 0");
    adept_model *m = opt_model(L, 1);
    size_t n;
    adept_param **rows = param_rows(L, m, &n);
    double norm;
    adept_status s = adept_clip_grad_norm(rows, n, max, &norm);
    lua_pushnumber(L, norm);
    if (s == ADEPT_ENONFINITE) { lua_pushstring(L, adept_last_error()); return 2; }
    if (s != ADEPT_OK) return adept_lua_raise(L, "clip_grad_norm");
    return 1;
}

/* opt:set_lr_scales(map): replaces every multiplier. map: name -> number, or name -> f32 tensor of one
   multiplier per row (dimension 0) of that parameter. Unknown names are an error (a typo would otherwise
   silently train at the base rate). */
static int o_set_lr_scales(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    adept_model *m = opt_model(L, 1);
    /* check all first, so a bad entry leaves the previous scales in place */
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_argerror(L, 2, lua_pushfstring(L, "keys must be parameter names, got %s", luaL_typename(L, -2)));
        const char *name = lua_tostring(L, -2);
        adept_param *p = adept_model_find(m, name);
        if (!p) return luaL_error(L, "set_lr_scales: no parameter named '%s'", name);
        adept_tensor *t = adept_lua_to_tensor(L, -1);
        int64_t rows = p->ndim >= 1 ? p->shape[0] : 1;
        if (t) {
            if (t->dtype != ADEPT_F32 || (int64_t)adept_tensor_numel(t) != rows)
                return luaL_error(L, "set_lr_scales: %s: row multipliers must be an f32 tensor of %d elements (one per row)",
                                  name, (int)rows);
        } else if (lua_istable(L, -1)) {
            if ((int64_t)luaL_len(L, -1) != rows)
                return luaL_error(L, "set_lr_scales: %s: row multipliers must be an array of %d numbers (one per row), got %d",
                                  name, (int)rows, (int)luaL_len(L, -1));
        } else if (!lua_isnumber(L, -1)) {
            return luaL_argerror(L, 2, lua_pushfstring(L, "value of '%s' must be a number, a tensor or an array of row "
                                                       "multipliers, got %s", name, luaL_typename(L, -1)));
        } else if (!(lua_tonumber(L, -1) >= 0) || !isfinite(lua_tonumber(L, -1))) {
            return luaL_error(L, "set_lr_scales: %s: scale must be a finite number >= 0, got %f", name, lua_tonumber(L, -1));
        }
        lua_pop(L, 1);
    }
    adept_adamw_clear_scales(o);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        const char *name = lua_tostring(L, -2);
        adept_tensor *t = adept_lua_to_tensor(L, -1);
        adept_status s;
        if (t) {
            s = adept_adamw_set_row_scales(o, name, adept_tensor_f32(t), (int64_t)adept_tensor_numel(t));
        } else if (lua_istable(L, -1)) {
            lua_Integer n = luaL_len(L, -1);
            float *rows = lua_newuserdatauv(L, (size_t)n * sizeof *rows, 0);
            for (lua_Integer r = 0; r < n; r++) {
                lua_geti(L, -2, r + 1);
                int isnum;
                rows[r] = (float)lua_tonumberx(L, -1, &isnum);
                lua_pop(L, 1);
                if (!isnum) return luaL_error(L, "set_lr_scales: %s: row %d multiplier is not a number", name, (int)r + 1);
            }
            s = adept_adamw_set_row_scales(o, name, rows, (int64_t)n);
            lua_pop(L, 1);
        } else {
            s = adept_adamw_set_scale(o, name, lua_tonumber(L, -1));
        }
        if (s != ADEPT_OK) return adept_lua_raise(L, "set_lr_scales");
        lua_pop(L, 1);
    }
    return 0;
}

/* opt:lr_scales() -> name -> number (or a fresh tensor of row multipliers) */
static int o_lr_scales(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    size_t n = adept_adamw_num_scales(o);
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        double scale;
        const float *rows;
        int64_t n_rows;
        adept_adamw_scale_at(o, i, &name, &scale, &rows, &n_rows);
        if (rows) {
            adept_tensor *t;
            int64_t shape[1] = {n_rows};
            ADEPT_LUA_TRY(L, "lr_scales", adept_tensor_new(ADEPT_F32, 1, shape, &t));
            memcpy(adept_tensor_f32(t), rows, (size_t)n_rows * sizeof(float));
            adept_lua_push_tensor(L, t);
        } else {
            lua_pushnumber(L, scale);
        }
        lua_setfield(L, -2, name);
    }
    return 1;
}

/* opt:lr([new]) -> the base learning rate */
static int o_lr(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        adept_adamw_config c = *adept_adamw_get_config(o);
        c.lr = luaL_checknumber(L, 2);
        ADEPT_LUA_TRY(L, "lr", adept_adamw_set_config(o, &c));
    }
    lua_pushnumber(L, adept_adamw_get_config(o)->lr);
    return 1;
}

/* opt:state() -> {steps=, bytes=, slots={name={step=, numel=}}, config={...}} (a description, no copies) */
static int o_state(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    const adept_adamw_config *c = adept_adamw_get_config(o);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, adept_adamw_steps(o));
    lua_setfield(L, -2, "steps");
    lua_pushinteger(L, (lua_Integer)adept_adamw_state_bytes(o));
    lua_setfield(L, -2, "bytes");
    lua_newtable(L);
    for (size_t i = 0; i < adept_adamw_num_slots(o); i++) {
        const adept_adamw_slot *s = adept_adamw_slot_at(o, i);
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, s->step);
        lua_setfield(L, -2, "step");
        lua_pushinteger(L, (lua_Integer)s->numel);
        lua_setfield(L, -2, "numel");
        lua_setfield(L, -2, s->name);
    }
    lua_setfield(L, -2, "slots");
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, c->lr); lua_setfield(L, -2, "lr");
    lua_pushnumber(L, c->beta1); lua_setfield(L, -2, "beta1");
    lua_pushnumber(L, c->beta2); lua_setfield(L, -2, "beta2");
    lua_pushnumber(L, c->eps); lua_setfield(L, -2, "eps");
    lua_pushnumber(L, c->weight_decay); lua_setfield(L, -2, "weight_decay");
    lua_setfield(L, -2, "config");
    return 1;
}

/* ---- checkpoint state: trainer_state.safetensors ---------------------------------------------------
   tensors "exp_avg.<name>", "exp_avg_sq.<name>" [numel] f32 and "lr_rows.<name>" [rows] f32;
   metadata "optimizer" = JSON {steps, slots: {name: step}, scales: {name: scale}} plus the caller's keys. */

static void noop_release(void *data, size_t nbytes, void *ctx) { (void)data; (void)nbytes; (void)ctx; }

/* A tensor object over borrowed memory (the optimizer's arrays), as a userdata-owned handle. */
static const adept_tensor *borrow(lua_State *L, const float *data, size_t n) {
    adept_storage *s;
    adept_tensor *t;
    if (adept_storage_wrap((void *)data, n * sizeof(float), ADEPT_CPU, noop_release, NULL, &s) != ADEPT_OK)
        adept_lua_raise(L, "save_state");
    int64_t shape[1] = {(int64_t)n};
    adept_status st = adept_tensor_view(s, 0, ADEPT_F32, 1, shape, &t);
    adept_storage_release(s);
    if (st != ADEPT_OK) adept_lua_raise(L, "save_state");
    adept_lua_push_tensor(L, t); /* the handle frees the view when collected */
    return t;
}

/* opt:save_state(path [, metadata table of strings]) */
static int o_save_state(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    const char *path = luaL_checkstring(L, 2);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_WRITE, "save_state");
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    size_t ns = adept_adamw_num_slots(o), nr = adept_adamw_num_scales(o);
    size_t cap = 2 * ns + nr;
    adept_st_item *items = lua_newuserdatauv(L, (cap ? cap : 1) * sizeof *items, 0);
    lua_newtable(L); /* keeps names and borrowed handles alive */
    int keep = lua_gettop(L);
    size_t k = 0;
    cJSON *meta = cJSON_CreateObject(), *slots = cJSON_CreateObject(), *scales = cJSON_CreateObject();
    cJSON_AddNumberToObject(meta, "steps", (double)adept_adamw_steps(o));
    for (size_t i = 0; i < ns; i++) {
        const adept_adamw_slot *s = adept_adamw_slot_at(o, i);
        const char *prefixes[2] = {"exp_avg.", "exp_avg_sq."};
        const float *arrays[2] = {s->m, s->v};
        for (int j = 0; j < 2; j++) {
            items[k].name = lua_pushfstring(L, "%s%s", prefixes[j], s->name);
            lua_rawseti(L, keep, (lua_Integer)(2 * k + 1));
            items[k].tensor = borrow(L, arrays[j], s->numel);
            lua_rawseti(L, keep, (lua_Integer)(2 * k + 2));
            k++;
        }
        cJSON_AddNumberToObject(slots, s->name, (double)s->step);
    }
    for (size_t i = 0; i < nr; i++) {
        const char *name;
        double scale;
        const float *rows;
        int64_t n_rows;
        adept_adamw_scale_at(o, i, &name, &scale, &rows, &n_rows);
        if (rows) {
            items[k].name = lua_pushfstring(L, "lr_rows.%s", name);
            lua_rawseti(L, keep, (lua_Integer)(2 * k + 1));
            items[k].tensor = borrow(L, rows, (size_t)n_rows);
            lua_rawseti(L, keep, (lua_Integer)(2 * k + 2));
            k++;
        }
        /* %.17g round-trips a double exactly; cJSON's own printing does too, but be explicit */
        cJSON_AddNumberToObject(scales, name, rows ? -1.0 : scale);
    }
    cJSON_AddItemToObject(meta, "slots", slots);
    cJSON_AddItemToObject(meta, "scales", scales);
    char *json = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    if (!json) return luaL_error(L, "save_state: out of memory");
    lua_pushstring(L, json);
    cJSON_free(json);
    lua_rawseti(L, keep, 0);
    /* metadata: "optimizer" plus the caller's string pairs */
    size_t n_meta = 1;
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_argerror(L, 3, "metadata must map strings to strings");
            n_meta++;
            lua_pop(L, 1);
        }
    }
    const char **mk = lua_newuserdatauv(L, n_meta * sizeof *mk, 0);
    const char **mv = lua_newuserdatauv(L, n_meta * sizeof *mv, 0);
    lua_rawgeti(L, keep, 0);
    mk[0] = "optimizer";
    mv[0] = lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by keep[0] */
    size_t m_i = 1;
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            mk[m_i] = lua_tostring(L, -2);
            mv[m_i] = lua_tostring(L, -1);
            if (!strcmp(mk[m_i], "optimizer")) return luaL_argerror(L, 3, "metadata key 'optimizer' is reserved");
            m_i++;
            lua_pop(L, 1);
        }
    }
    ADEPT_LUA_TRY(L, "save_state", adept_safetensors_write(path, items, k, mk, mv, n_meta));
    return 0;
}

/* The f32 tensor "<prefix><name>" of a state file with `numel` elements (numel 0: any), or NULL. */
static const adept_st_entry *state_entry(const adept_safetensors *st, const char *prefix, const char *name,
                                         size_t numel) {
    char key[300];
    if ((size_t)snprintf(key, sizeof key, "%s%s", prefix, name) >= sizeof key) return NULL;
    const adept_st_entry *e = adept_safetensors_find(st, key);
    if (!e || e->dtype != ADEPT_F32 || e->ndim != 1) return NULL;
    if (numel && adept_shape_numel(e->ndim, e->shape) != numel) return NULL;
    return e;
}

/* A JSON number that is a whole count in [0, 2^53] (a corrupt file must not reach a float-to-int cast). */
static int json_count(const cJSON *j) {
    return cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble <= 9007199254740992.0 &&
           j->valuedouble == floor(j->valuedouble);
}

/* Checks every entry of the "optimizer" metadata against the file; "" when all is well. */
static void check_state(const adept_safetensors *st, const cJSON *meta, char *err, size_t cap) {
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(meta, "steps");
    const cJSON *slots = cJSON_GetObjectItemCaseSensitive(meta, "slots");
    const cJSON *scales = cJSON_GetObjectItemCaseSensitive(meta, "scales");
    err[0] = '\0';
    if (!meta || !json_count(steps) || !cJSON_IsObject(slots) || !cJSON_IsObject(scales)) {
        snprintf(err, cap, "no valid \"optimizer\" metadata (not a trainer_state file?)");
        return;
    }
    for (const cJSON *s = slots->child; s; s = s->next) {
        const adept_st_entry *m = state_entry(st, "exp_avg.", s->string, 0);
        if (!json_count(s) || strlen(s->string) >= 128 || !m ||
            !state_entry(st, "exp_avg_sq.", s->string, adept_shape_numel(m->ndim, m->shape))) {
            snprintf(err, cap, "the state of %.128s is incomplete (step count, or f32 exp_avg/exp_avg_sq of one size)",
                     s->string);
            return;
        }
    }
    for (const cJSON *s = scales->child; s; s = s->next) {
        int ok = strlen(s->string) < 128 && cJSON_IsNumber(s) && isfinite(s->valuedouble) &&
                 (s->valuedouble >= 0 || (s->valuedouble == -1 && state_entry(st, "lr_rows.", s->string, 0)));
        if (!ok) {
            snprintf(err, cap, "the LR scale of %.128s is not a finite number >= 0 (or -1 with an lr_rows tensor)",
                     s->string);
            return;
        }
    }
}

/* opt:load_state(path) -> metadata table (every string pair of the file, "optimizer" included).
   Replaces the moments, per-tensor step counts, step count and LR scales; the file is checked completely
   first, so a bad file leaves the optimizer as it was. */
static int o_load_state(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    const char *path = luaL_checkstring(L, 2);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "load_state");
    adept_safetensors *st;
    ADEPT_LUA_TRY(L, "load_state", adept_safetensors_open(path, &st));
    const char *json = adept_safetensors_meta(st, "optimizer");
    cJSON *meta = json ? cJSON_Parse(json) : NULL;
    char err[512];
    check_state(st, meta, err, sizeof err);
    if (err[0]) {
        cJSON_Delete(meta);
        adept_safetensors_close(st);
        return luaL_error(L, "load_state: %s: %s", path, err);
    }
    while (adept_adamw_num_slots(o)) adept_adamw_drop_slot(o, adept_adamw_slot_at(o, 0)->name);
    adept_adamw_clear_scales(o);
    adept_status status = ADEPT_OK;
    const cJSON *slots = cJSON_GetObjectItemCaseSensitive(meta, "slots");
    for (const cJSON *s = slots->child; s && status == ADEPT_OK; s = s->next) {
        const adept_st_entry *em = state_entry(st, "exp_avg.", s->string, 0);
        const adept_st_entry *ev = state_entry(st, "exp_avg_sq.", s->string, 0);
        adept_tensor *m = NULL, *v = NULL;
        status = adept_safetensors_view(st, em, &m);
        if (status == ADEPT_OK) status = adept_safetensors_view(st, ev, &v);
        if (status == ADEPT_OK)
            status = adept_adamw_load_slot(o, s->string, adept_tensor_numel(m), (int64_t)s->valuedouble,
                                           adept_tensor_f32(m), adept_tensor_f32(v));
        adept_tensor_free(m);
        adept_tensor_free(v);
    }
    const cJSON *scales = cJSON_GetObjectItemCaseSensitive(meta, "scales");
    for (const cJSON *s = scales->child; s && status == ADEPT_OK; s = s->next) {
        if (s->valuedouble >= 0) {
            status = adept_adamw_set_scale(o, s->string, s->valuedouble);
            continue;
        }
        adept_tensor *r = NULL;
        status = adept_safetensors_view(st, state_entry(st, "lr_rows.", s->string, 0), &r);
        if (status == ADEPT_OK)
            status = adept_adamw_set_row_scales(o, s->string, adept_tensor_f32(r), (int64_t)adept_tensor_numel(r));
        adept_tensor_free(r);
    }
    if (status == ADEPT_OK) adept_adamw_set_steps(o, (int64_t)cJSON_GetObjectItemCaseSensitive(meta, "steps")->valuedouble);
    cJSON_Delete(meta);
    if (status != ADEPT_OK) {
        adept_safetensors_close(st);
        return adept_lua_raise(L, "load_state");
    }
    lua_newtable(L);
    for (size_t i = 0; i < st->n_meta; i++) {
        lua_pushstring(L, st->meta_values[i]);
        lua_setfield(L, -2, st->meta_keys[i]);
    }
    adept_safetensors_close(st);
    return 1;
}

/* opt:reset_state([name]): forgets the moments (and step counts) of one tensor or of all. For after
   surgery that renames tensors (an expansion shifts later layers' names), or a deliberate restart. */
static int o_reset_state(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        adept_adamw_drop_slot(o, luaL_checkstring(L, 2));
        return 0;
    }
    while (adept_adamw_num_slots(o)) adept_adamw_drop_slot(o, adept_adamw_slot_at(o, 0)->name);
    return 0;
}

static int o_tostring(lua_State *L) {
    optim_box *b = luaL_checkudata(L, 1, OPTIM_MT);
    if (!b->opt) { lua_pushstring(L, "adept.Optimizer (freed)"); return 1; }
    const adept_adamw_config *c = adept_adamw_get_config(b->opt);
    lua_pushfstring(L, "adept.Optimizer AdamW(lr=%f, betas=(%f, %f), eps=%f, weight_decay=%f), %d steps", c->lr,
                    c->beta1, c->beta2, c->eps, c->weight_decay, (int)adept_adamw_steps(b->opt));
    return 1;
}

/* The bytes the optimizer holds (for adept.memory in bind_train.c). */
size_t adept_lua_optimizer_bytes(lua_State *L, int arg) { return adept_adamw_state_bytes(check_opt(L, arg)); }

void adept_open_optim(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"step", o_step}, {"grad_norm", o_grad_norm}, {"clip_grad_norm", o_clip_grad_norm},
        {"set_lr_scales", o_set_lr_scales}, {"lr_scales", o_lr_scales}, {"lr", o_lr}, {"state", o_state},
        {"save_state", o_save_state}, {"load_state", o_load_state}, {"reset_state", o_reset_state},
        {"free", optim_gc}, {NULL, NULL}};
    if (luaL_newmetatable(L, OPTIM_MT)) {
        lua_pushcfunction(L, optim_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, optim_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, o_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"adamw", l_adamw}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
