/* Primitives the training loop (lua/adept/train.lua) is built from: forward/backward with an explicit
   gradient scale (exact gradient accumulation), token counting, memory accounting, f32 weight files. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adept/model.h"
#include "adept/perf.h"
#include "adept/safetensors.h"
#include "binding.h"

size_t adept_lua_optimizer_bytes(lua_State *L, int arg); /* bind_optim.c */


/* adept.count_targets(batch) -> number of counted target tokens (targets other than -1) */
static int l_count_targets(lua_State *L) {
    adept_batch b;
    adept_lua_read_batch(L, 1, &b, "adept.count_targets");
    lua_pushinteger(L, (lua_Integer)adept_batch_count_targets(&b));
    return 1;
}

/* adept.forward_backward(m, batch [, grad_scale]) -> nll_sum, n_tokens. Accumulates grad_scale * d(sum NLL)
   into the gradients of trainable tensors; grad_scale defaults to 1/n_tokens of this batch (mean loss). */
static int l_forward_backward(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    int own_scale = lua_isnoneornil(L, 3);
    double scale = own_scale ? 0.0 : luaL_checknumber(L, 3); /* before check_batch pushes its buffers */
    adept_batch b;
    adept_lua_read_batch(L, 2, &b, "adept.forward_backward");
    if (own_scale) {
        int64_t n = adept_batch_count_targets(&b);
        scale = n > 0 ? 1.0 / (double)n : 0.0;
    }
    double nll;
    int64_t n;
    ADEPT_LUA_TRY(L, "adept.forward_backward", adept_model_forward_backward(m, &b, (float)scale, &nll, &n));
    lua_pushnumber(L, nll);
    lua_pushinteger(L, (lua_Integer)n);
    return 2;
}

/* adept.nll(m, batch) -> nll_sum, n_tokens (forward only, no gradients) */
static int l_nll(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_batch b;
    adept_lua_read_batch(L, 2, &b, "adept.nll");
    double nll;
    int64_t n;
    ADEPT_LUA_TRY(L, "adept.nll", adept_model_forward(m, &b, &nll, &n, NULL));
    lua_pushnumber(L, nll);
    lua_pushinteger(L, (lua_Integer)n);
    return 2;
}

/* adept.memory(m [, opt]) -> {params, grads, optimizer, optimizer_allocated, activations, total,
   trainable_params, total_params}. `optimizer` is what AdamW holds once every trainable tensor has stepped
   (2 f32 moments per trainable element); `optimizer_allocated` what it holds now (state is lazy). */
static int l_memory(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_memory mem = adept_model_memory(m);
    size_t trainable = 0, total = 0;
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        const adept_param *p = adept_model_param(m, i);
        total += p->numel;
        if (p->trainable) trainable += p->numel;
    }
    size_t opt_now = lua_isnoneornil(L, 2) ? 0 : adept_lua_optimizer_bytes(L, 2);
    size_t opt_full = 2 * trainable * sizeof(float);
    lua_createtable(L, 0, 8);
#define SET(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))
    SET("params", mem.params);
    SET("grads", mem.grads);
    SET("optimizer", opt_full);
    SET("optimizer_allocated", opt_now);
    SET("activations", mem.activations);
    SET("total", mem.params + mem.grads + opt_full + mem.activations);
    SET("trainable_params", trainable);
    SET("total_params", total);
#undef SET
    return 1;
}

/* adept.save_weights(m, path): every parameter as f32 in one safetensors file (exact: checkpoints resume
   bitwise from it), HF names, table order. */
static int l_save_weights(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    const char *path = luaL_checkstring(L, 2);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_WRITE, "adept.save_weights");
    size_t n = adept_model_num_params(m);
    adept_st_item *items = lua_newuserdatauv(L, (n ? n : 1) * sizeof *items, 0);
    for (size_t i = 0; i < n; i++) {
        adept_param *p = adept_model_param(m, i);
        items[i].name = p->name;
        items[i].tensor = p->value;
    }
    const char *mk[1] = {"format"}, *mv[1] = {"pt"};
    ADEPT_LUA_TRY(L, "adept.save_weights", adept_safetensors_write(path, items, n, mk, mv, 1));
    return 0;
}

/* adept.load_weights(m, path_or_paths): copies every parameter of the model from one safetensors file or
   an array of files (shards), converting bf16/f16/f64 to f32. Every parameter must be present in one of
   them with its element count; extra tensors are ignored. Nothing is copied unless everything is found. */
#define MAX_WEIGHT_FILES 256
static int l_load_weights(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    int nfiles = lua_istable(L, 2) ? (int)luaL_len(L, 2) : 1;
    if (!lua_istable(L, 2)) luaL_checkstring(L, 2);
    adept_lua_check_paths(L, 2, ADEPT_SANDBOX_READ, "adept.load_weights");
    if (nfiles < 1 || nfiles > MAX_WEIGHT_FILES) return luaL_argerror(L, 2, "1 to 256 file paths expected");
    adept_safetensors *st[MAX_WEIGHT_FILES] = {0};
    const char *paths[MAX_WEIGHT_FILES];
    for (int f = 0; f < nfiles; f++) {
        if (lua_istable(L, 2)) {
            lua_geti(L, 2, f + 1);
            paths[f] = lua_tostring(L, -1); /* kept alive by the table */
            lua_pop(L, 1);
            if (!paths[f]) return luaL_argerror(L, 2, "array of file paths expected");
        } else {
            paths[f] = lua_tostring(L, 2);
        }
        if (adept_safetensors_open(paths[f], &st[f]) != ADEPT_OK) {
            for (int g = 0; g < f; g++) adept_safetensors_close(st[g]);
            return adept_lua_raise(L, "adept.load_weights");
        }
    }
    size_t n = adept_model_num_params(m);
    const char *missing = NULL;
    int bad = 0;
    for (size_t i = 0; i < n && !missing; i++) {
        adept_param *p = adept_model_param(m, i);
        const adept_st_entry *e = NULL;
        for (int f = 0; f < nfiles && !e; f++) e = adept_safetensors_find(st[f], p->name);
        if (!e || !adept_dtype_is_float(e->dtype) || adept_shape_numel(e->ndim, e->shape) != p->numel) {
            missing = p->name;
            bad = e != NULL;
        }
    }
    adept_status s = ADEPT_OK;
    if (missing) s = adept_fail(ADEPT_ENOTFOUND, "%s: %s is %s", paths[0], missing,
                                bad ? "of another shape or dtype than the model's" : "missing");
    for (size_t i = 0; i < n && s == ADEPT_OK; i++) {
        adept_param *p = adept_model_param(m, i);
        const adept_safetensors *owner = NULL;
        const adept_st_entry *e = NULL;
        for (int f = 0; f < nfiles && !e; f++) if ((e = adept_safetensors_find(st[f], p->name))) owner = st[f];
        adept_tensor *v;
        s = adept_safetensors_view(owner, e, &v);
        if (s != ADEPT_OK) break;
        if (v->dtype == ADEPT_F32) memcpy(adept_tensor_data(p->value), adept_tensor_data(v), p->numel * sizeof(float));
        else s = adept_convert(adept_tensor_data(p->value), ADEPT_F32, adept_tensor_data(v), v->dtype, p->numel);
        adept_tensor_free(v);
    }
    for (int f = 0; f < nfiles; f++) adept_safetensors_close(st[f]);
    if (s != ADEPT_OK) return adept_lua_raise(L, "adept.load_weights");
    return 0;
}

/* adept.sgemm_peak([n [, seconds]]) -> FLOP/s of n x n sgemm with the current threads (default 512, 0.2 s) */
static int l_sgemm_peak(lua_State *L) {
    lua_Integer n = luaL_optinteger(L, 1, 512);
    double secs = luaL_optnumber(L, 2, 0.2);
    if (n < 16 || n > 8192) return luaL_argerror(L, 1, "matrix size must be in [16, 8192]");
    lua_pushnumber(L, adept_sgemm_peak_flops((int)n, secs));
    return 1;
}

void adept_open_train(lua_State *L) {
    static const luaL_Reg fns[] = {{"count_targets", l_count_targets}, {"forward_backward", l_forward_backward},
                                   {"nll", l_nll}, {"memory", l_memory}, {"save_weights", l_save_weights},
                                   {"load_weights", l_load_weights}, {"sgemm_peak", l_sgemm_peak}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
