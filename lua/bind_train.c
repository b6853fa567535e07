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

/* Token ids from a tensor (any integer-valued dtype) or a Lua array / array of arrays, into a userdata
   left on the stack; *rows = 0 for 1-D input. The same forms m:loss_and_grad accepts (bind_model_run.c). */
static int32_t *read_ids(lua_State *L, int arg, int *rows, int *cols, const char *fname) {
    arg = lua_absindex(L, arg);
    adept_tensor *t = adept_lua_to_tensor(L, arg);
    if (t) {
        if (t->ndim != 1 && t->ndim != 2)
            luaL_error(L, "%s: token ids must be a 1-D or 2-D tensor, got %d dimensions", fname, t->ndim);
        *rows = t->ndim == 2 ? (int)t->shape[0] : 0;
        *cols = (int)t->shape[t->ndim - 1];
        size_t n = adept_tensor_numel(t);
        int32_t *ids = lua_newuserdatauv(L, n * sizeof(int32_t) + 1, 0);
        if (t->dtype == ADEPT_I32) {
            memcpy(ids, adept_tensor_data(t), n * sizeof(int32_t));
            return ids;
        }
        for (size_t i = 0; i < n; i++) {
            double v = adept_tensor_get_flat(t, i);
            if (v != floor(v) || v < -2147483648.0 || v > 2147483647.0)
                luaL_error(L, "%s: token id %f at flat index %d is not an integer", fname, v, (int)i);
            ids[i] = (int32_t)v;
        }
        return ids;
    }
    if (!lua_istable(L, arg))
        luaL_argerror(L, arg, lua_pushfstring(L, "batch expected (token ids [B, T+1] or {inputs=, targets=}), got %s",
                                              luaL_typename(L, arg)));
    int n1 = (int)luaL_len(L, arg);
    lua_geti(L, arg, 1);
    int two_d = lua_istable(L, -1);
    int n2 = two_d ? (int)luaL_len(L, -1) : n1;
    lua_pop(L, 1);
    *rows = two_d ? n1 : 0;
    *cols = n2;
    int nr = two_d ? n1 : 1;
    int32_t *ids = lua_newuserdatauv(L, (size_t)nr * (size_t)n2 * sizeof(int32_t) + 1, 0);
    for (int r = 0; r < nr; r++) {
        if (two_d) {
            lua_geti(L, arg, r + 1);
            if (!lua_istable(L, -1) || (int)luaL_len(L, -1) != n2)
                luaL_error(L, "%s: row %d of the token ids is not an array of %d ids", fname, r + 1, n2);
        } else lua_pushvalue(L, arg);
        for (int c = 0; c < n2; c++) {
            lua_geti(L, -1, c + 1);
            int isint;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint || v < INT32_MIN || v > INT32_MAX)
                luaL_error(L, "%s: token id at row %d, column %d is not a 32-bit integer", fname, r + 1, c + 1);
            ids[(size_t)r * n2 + c] = (int32_t)v;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return ids;
}

/* A batch: ids [B, T+1] (inputs = [:, :T], targets = [:, 1:]) or {inputs = [B, T], targets = [B, T]}
   (target -1 = ignored). Leaves its buffers on the stack. */
static void check_batch(lua_State *L, int arg, adept_batch *b, const char *fname) {
    arg = lua_absindex(L, arg);
    int rows, cols;
    if (lua_istable(L, arg) && lua_getfield(L, arg, "inputs") != LUA_TNIL) {
        int32_t *inputs = read_ids(L, -1, &rows, &cols, fname);
        int B = rows ? rows : 1, T = cols;
        if (lua_getfield(L, arg, "targets") == LUA_TNIL) luaL_error(L, "%s: batch table has inputs but no targets", fname);
        int r2, c2;
        int32_t *targets = read_ids(L, -1, &r2, &c2, fname);
        if ((r2 ? r2 : 1) != B || c2 != T || T < 1)
            luaL_error(L, "%s: inputs are %d x %d but targets are %d x %d", fname, B, T, r2 ? r2 : 1, c2);
        b->B = B; b->T = T; b->inputs = inputs; b->targets = targets;
        return;
    }
    if (lua_istable(L, arg)) lua_pop(L, 1); /* the nil of getfield */
    int32_t *ids = read_ids(L, arg, &rows, &cols, fname);
    int B = rows ? rows : 1;
    if (cols < 2) luaL_error(L, "%s: a batch of token ids needs at least 2 columns (T+1), got %d", fname, cols);
    int T = cols - 1;
    int32_t *buf = lua_newuserdatauv(L, (size_t)B * T * 2 * sizeof(int32_t), 0);
    for (int r = 0; r < B; r++) {
        memcpy(buf + (size_t)r * T, ids + (size_t)r * cols, (size_t)T * sizeof(int32_t));
        memcpy(buf + (size_t)B * T + (size_t)r * T, ids + (size_t)r * cols + 1, (size_t)T * sizeof(int32_t));
    }
    b->B = B; b->T = T; b->inputs = buf; b->targets = buf + (size_t)B * T;
}

static int64_t count_targets(const adept_batch *b) {
    int64_t n = 0;
    size_t total = (size_t)b->B * (size_t)b->T;
    for (size_t i = 0; i < total; i++) n += b->targets[i] >= 0;
    return n;
}

/* adept.count_targets(batch) -> number of counted target tokens (targets other than -1) */
static int l_count_targets(lua_State *L) {
    adept_batch b;
    check_batch(L, 1, &b, "adept.count_targets");
    lua_pushinteger(L, (lua_Integer)count_targets(&b));
    return 1;
}

/* adept.forward_backward(m, batch [, grad_scale]) -> nll_sum, n_tokens. Accumulates grad_scale * d(sum NLL)
   into the gradients of trainable tensors; grad_scale defaults to 1/n_tokens of this batch (mean loss). */
static int l_forward_backward(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    int own_scale = lua_isnoneornil(L, 3);
    double scale = own_scale ? 0.0 : luaL_checknumber(L, 3); /* before check_batch pushes its buffers */
    adept_batch b;
    check_batch(L, 2, &b, "adept.forward_backward");
    if (own_scale) {
        int64_t n = count_targets(&b);
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
    check_batch(L, 2, &b, "adept.nll");
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
