/* adept.adamw(m, {lr, betas, eps, weight_decay}) and the methods of adept.Optimizer: step, LR scales,
   gradient norm/clipping, and the optimizer part of checkpoints (trainer_state.safetensors). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "adept/model.h"
#include "adept/optim.h"
#include "adept/checkpoint.h"
#include "adept/dist.h"
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

static int optim_gc(lua_State *L) {
    optim_box *b = luaL_checkudata(L, 1, OPTIM_MT);
    adept_adamw_free(b->opt);
    b->opt = NULL;
    return 0;
}

static void read_config(lua_State *L, int arg, adept_adamw_config *c) {
    luaL_checktype(L, arg, LUA_TTABLE);
    /* the scalars stay double in the engine but scale float32 weights: beyond the float32 range they can
       only turn weights into infinities */
    c->lr = adept_lua_opt_f32_field(L, arg, "lr", c->lr);
    c->eps = adept_lua_opt_f32_field(L, arg, "eps", c->eps);
    c->weight_decay = adept_lua_opt_f32_field(L, arg, "weight_decay", c->weight_decay);
    lua_getfield(L, arg, "betas");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1) || luaL_len(L, -1) != 2)
            luaL_argerror(L, arg, "field 'betas' must be a table of two numbers {beta1, beta2}");
        for (int i = 1; i <= 2; i++) {
            lua_geti(L, -1, i);
            double v = adept_lua_f32_value(L, -1, i == 1 ? "betas[1]" : "betas[2]");
            if (i == 1) c->beta1 = v;
            else c->beta2 = v;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* adept.adamw(m, {lr=, betas={b1, b2}, eps=, weight_decay=, shard_optimizer=false}); shard_optimizer: ZeRO-1
   over the processes of adept.dist (each rank holds 1/N of the moments; adept/optim.h) */
static int l_adamw(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_adamw_config c = adept_adamw_defaults();
    int shard = 0;
    if (!lua_isnoneornil(L, 2)) {
        read_config(L, 2, &c);
        shard = adept_lua_opt_bool_field(L, 2, "shard_optimizer", 0);
    }
    optim_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->opt = NULL;
    luaL_setmetatable(L, OPTIM_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    ADEPT_LUA_TRY(L, "adept.adamw", adept_adamw_new(m, &c, &b->opt));
    if (shard) {
        adept_comm *w = adept_comm_world();
        ADEPT_LUA_TRY(L, "adept.adamw", adept_adamw_set_shard(b->opt, adept_comm_rank(w), adept_comm_size(w)));
    }
    return 1;
}

/* opt:sharded() -> whether the moments are split across ranks (shard_optimizer with 2 or more processes) */
static int o_sharded(lua_State *L) {
    size_t lo, hi;
    lua_pushboolean(L, adept_adamw_sharded(check_opt(L, 1), &lo, &hi));
    return 1;
}

/* opt:gather_state() / opt:scatter_state(): a sharded optimizer's moments whole on every rank (collective: every
   rank calls it) for a checkpoint, and back to this rank's block afterwards. No-ops when not sharded. */
static int o_gather_state(lua_State *L) {
    ADEPT_LUA_TRY(L, "gather_state", adept_adamw_gather(check_opt(L, 1), adept_comm_world()));
    return 0;
}
static int o_scatter_state(lua_State *L) {
    ADEPT_LUA_TRY(L, "scatter_state", adept_adamw_scatter(check_opt(L, 1)));
    return 0;
}

/* opt:step([lr_factor]) */
static int o_step(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    double factor = adept_lua_opt_f32(L, 2, "lr_factor", 1.0);
    opt_model(L, 1); /* raises when the model was freed */
    if (adept_adamw_step(o, factor) != ADEPT_OK) return adept_lua_raise(L, "step");
    return 0;
}

/* opt:grad_norm() -> norm [, message naming the non-finite tensor]. Never raises on NaN: the trainer decides. */
static int o_grad_norm(lua_State *L) {
    check_opt(L, 1);
    adept_model *m = opt_model(L, 1);
    double norm;
    adept_status s = adept_grad_norm(m, &norm);
    lua_pushnumber(L, norm);
    if (s == ADEPT_ENONFINITE) { lua_pushstring(L, adept_last_error()); return 2; }
    if (s != ADEPT_OK) return adept_lua_raise(L, "grad_norm");
    return 1;
}

/* opt:clip_grad_norm(max) -> norm before clipping [, message when it is not finite (gradients unchanged)]. */
static int o_clip_grad_norm(lua_State *L) {
    check_opt(L, 1);
    double max = adept_lua_check_f32(L, 2, "max norm");
    if (!(max > 0)) return luaL_argerror(L, 2, "max norm must be > 0");
    adept_model *m = opt_model(L, 1);
    double norm;
    adept_status s = adept_clip_grad_norm(m, max, &norm);
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
        } else if (!(adept_lua_f32_value(L, -2, lua_pushfstring(L, "scale of '%s'", name)) >= 0)) {
            return luaL_error(L, "set_lr_scales: %s: scale must be a finite number >= 0, got %f", name, lua_tonumber(L, -2));
        } else {
            lua_pop(L, 1); /* the name pushed for the message */
        }
        lua_pop(L, 1);
    }
    adept_adamw_clear_scales(o);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        const char *name = lua_tostring(L, -2);
        size_t row = (size_t)(adept_model_find(m, name) - adept_model_param(m, 0));
        adept_tensor *t = adept_lua_to_tensor(L, -1);
        adept_status s;
        if (t) { /* row multipliers computed on a device (importance of device gradients) come to the host */
            adept_tensor *h = adept_lua_host_tensor(L, t, "set_lr_scales");
            s = adept_adamw_set_row_scales(o, row, adept_tensor_f32(h), (int64_t)adept_tensor_numel(h));
            lua_pop(L, 1);
        } else if (lua_istable(L, -1)) {
            lua_Integer n = luaL_len(L, -1);
            float *rows = lua_newuserdatauv(L, (size_t)n * sizeof *rows, 0);
            for (lua_Integer r = 0; r < n; r++) {
                lua_geti(L, -2, r + 1);
                rows[r] = (float)adept_lua_f32_value(L, -2, lua_pushfstring(L, "%s: row %I multiplier", name, r + 1));
                lua_pop(L, 2);
            }
            s = adept_adamw_set_row_scales(o, row, rows, (int64_t)n);
            lua_pop(L, 1);
        } else {
            s = adept_adamw_set_scale(o, row, lua_tonumber(L, -1));
        }
        if (s != ADEPT_OK) return adept_lua_raise(L, "set_lr_scales");
        lua_pop(L, 1);
    }
    return 0;
}

/* opt:lr_scales() -> name -> number (or a fresh tensor of row multipliers), for the rows that have one */
static int o_lr_scales(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    adept_model *m = opt_model(L, 1);
    lua_newtable(L);
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        double scale;
        const float *rows;
        int64_t n_rows;
        if (!adept_adamw_get_scale(o, i, &scale, &rows, &n_rows)) continue;
        if (rows) {
            adept_tensor *t;
            int64_t shape[1] = {n_rows};
            ADEPT_LUA_TRY(L, "lr_scales", adept_tensor_new(ADEPT_F32, 1, shape, &t));
            memcpy(adept_tensor_f32(t), rows, (size_t)n_rows * sizeof(float));
            adept_lua_push_tensor(L, t);
        } else {
            lua_pushnumber(L, scale);
        }
        lua_setfield(L, -2, adept_model_param(m, i)->name);
    }
    return 1;
}

/* opt:lr([new]) -> the base learning rate */
static int o_lr(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        adept_adamw_config c = *adept_adamw_get_config(o);
        c.lr = adept_lua_check_f32(L, 2, "lr");
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
    adept_model *m = opt_model(L, 1);
    lua_newtable(L);
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        int64_t step;
        float *em, *ev;
        ADEPT_LUA_TRY(L, "state", adept_adamw_row_state(o, i, &step, &em, &ev));
        if (!em) continue;
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, step);
        lua_setfield(L, -2, "step");
        lua_pushinteger(L, (lua_Integer)adept_model_param(m, i)->numel);
        lua_setfield(L, -2, "numel");
        lua_setfield(L, -2, adept_model_param(m, i)->name);
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

/* ---- checkpoint state (engine/train/checkpoint.c owns the format) ---- */

/* opt:save_state(path [, metadata table of strings]) */
static int o_save_state(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    opt_model(L, 1);
    const char *path = luaL_checkstring(L, 2);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_WRITE, "adept.Optimizer:save_state");
    size_t n = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_argerror(L, 3, "metadata must map strings to strings");
            n++;
            lua_pop(L, 1);
        }
    }
    const char **keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
    const char **vals = lua_newuserdatauv(L, (n ? n : 1) * sizeof *vals, 0);
    size_t i = 0;
    if (n) {
        lua_pushnil(L);
        while (lua_next(L, 3)) { /* strings stay alive in the table */
            keys[i] = lua_tostring(L, -2);
            vals[i++] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
    }
    ADEPT_LUA_TRY(L, "save_state", adept_trainer_state_save(path, o, keys, vals, n));
    return 0;
}

/* opt:load_state(path) -> metadata table (every string pair of the file, "optimizer" included). Restores
   the trainable set, moments, step counts and LR scales; a file that does not match the model (names,
   shapes, dtypes) is an error naming the tensor and changes nothing. */
static int o_load_state(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    opt_model(L, 1);
    const char *path = luaL_checkstring(L, 2);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept.Optimizer:load_state");
    char *json = NULL;
    ADEPT_LUA_TRY(L, "load_state", adept_trainer_state_load(path, o, &json));
    cJSON *meta = cJSON_Parse(json);
    free(json);
    if (!meta) return luaL_error(L, "load_state: out of memory");
    lua_newtable(L);
    for (const cJSON *e = meta->child; e; e = e->next) {
        lua_pushstring(L, e->valuestring);
        lua_setfield(L, -2, e->string);
    }
    cJSON_Delete(meta);
    return 1;
}

/* opt:reset_state([name]): forgets the moments (and step counts) of one tensor or of all (a deliberate
   restart; surgery no longer needs it: moments follow their tensors). */
static int o_reset_state(lua_State *L) {
    adept_adamw *o = check_opt(L, 1);
    adept_model *m = opt_model(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        const char *name = luaL_checkstring(L, 2);
        adept_param *p = adept_model_find(m, name);
        if (!p) return luaL_error(L, "reset_state: no parameter named '%s'", name);
        adept_adamw_reset_row(o, (size_t)(p - adept_model_param(m, 0)));
        return 0;
    }
    adept_adamw_reset(o);
    return 0;
}

/* "adept.Optimizer(AdamW, lr=0.0001, 3 steps)" */
static int o_tostring(lua_State *L) {
    optim_box *b = luaL_checkudata(L, 1, OPTIM_MT);
    if (!b->opt) { lua_pushstring(L, "adept.Optimizer(freed)"); return 1; }
    char lr[32];
    snprintf(lr, sizeof lr, "%.6g", adept_adamw_get_config(b->opt)->lr);
    lua_pushfstring(L, "adept.Optimizer(AdamW, lr=%s, %I steps)", lr, (lua_Integer)adept_adamw_steps(b->opt));
    return 1;
}

/* The optimizer of a handle (raises when freed, or when its model was freed). */
adept_adamw *adept_lua_check_optimizer(lua_State *L, int arg) {
    adept_adamw *o = check_opt(L, arg);
    opt_model(L, arg);
    return o;
}

/* The bytes the optimizer holds (for adept.memory in bind_train.c). */
size_t adept_lua_optimizer_bytes(lua_State *L, int arg) { return adept_adamw_state_bytes(check_opt(L, arg)); }

void adept_open_optim(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"step", o_step}, {"grad_norm", o_grad_norm}, {"clip_grad_norm", o_clip_grad_norm},
        {"set_lr_scales", o_set_lr_scales}, {"lr_scales", o_lr_scales}, {"lr", o_lr}, {"state", o_state},
        {"save_state", o_save_state}, {"load_state", o_load_state}, {"reset_state", o_reset_state},
        {"sharded", o_sharded}, {"gather_state", o_gather_state}, {"scatter_state", o_scatter_state}, {NULL, NULL}};
    static const adept_lua_class cls = {OPTIM_MT, methods, NULL, optim_gc, o_tostring, NULL};
    adept_lua_new_class(L, &cls);
    static const luaL_Reg fns[] = {{"adamw", l_adamw}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
