/* Primitives the training loop (lua/adept/train.lua) is built from: forward/backward with an explicit
   gradient scale (exact gradient accumulation), token counting, memory accounting, f32 weight files. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adept/model.h"
#include "adept/perf.h"
#include "adept/checkpoint.h"
#include "adept/optim.h"
#include "adept/safetensors.h"
#include "adept/train.h"
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
    double scale = own_scale ? 0.0 : adept_lua_check_f32(L, 3, "grad_scale"); /* before check_batch pushes its buffers */
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

/* adept.load_weights(m, path_or_paths): every parameter of the model from one safetensors file or an array
   of files (shards), each with exactly the row's shape and a float dtype (engine/train/checkpoint.c). */
#define MAX_WEIGHT_FILES 256
static int l_load_weights(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    int nfiles = lua_istable(L, 2) ? (int)luaL_len(L, 2) : 1;
    if (!lua_istable(L, 2)) luaL_checkstring(L, 2);
    adept_lua_check_paths(L, 2, ADEPT_SANDBOX_READ, "adept.load_weights");
    if (nfiles < 1 || nfiles > MAX_WEIGHT_FILES) return luaL_argerror(L, 2, "1 to 256 file paths expected");
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
    }
    ADEPT_LUA_TRY(L, "adept.load_weights", adept_model_load_weights(m, paths, (size_t)nfiles));
    return 0;
}

/* adept.train_step(m, opt, micro_batches, {lr_factor=, clip=, bucket_mb=}) -> {loss=, tokens=, grad_norm=,
   nonfinite=, reason=, comm_seconds=, comm_wait_seconds=, comm_calls=, comm_bytes=}: one optimizer step in the engine (adept/train.h): forward/backward over the micro-batches, the
   gradient all-reduce, clipping and AdamW. A non-finite loss or gradient is reported, not raised: gradients
   are zeroed and nothing is updated, and the caller decides (adept.train stops or skips). */
static int l_train_step(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_adamw *opt = adept_lua_check_optimizer(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    adept_step_options o = {1.0, 0.0, 0};
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        o.lr_factor = adept_lua_opt_num_field(L, 4, "lr_factor", 1.0);
        o.clip = adept_lua_opt_num_field(L, 4, "clip", 0.0);
        double mb = adept_lua_opt_num_field(L, 4, "bucket_mb", 0.0);
        if (!(mb >= 0 && mb <= 1 << 20)) return luaL_argerror(L, 4, "bucket_mb must be a number in [0, 1048576]");
        o.bucket_bytes = (size_t)(mb * (1 << 20));
    }
    lua_Integer n = luaL_len(L, 3);
    if (n < 1 || n > 1 << 20) return luaL_argerror(L, 3, "an array of 1 or more micro-batches expected");
    adept_batch *mbs = lua_newuserdatauv(L, (size_t)n * sizeof *mbs, 0);
    for (lua_Integer k = 0; k < n; k++) {
        lua_geti(L, 3, k + 1);
        adept_lua_read_batch(L, lua_gettop(L), &mbs[k], "adept.train_step"); /* its buffers stay on the stack */
    }
    adept_step_result r;
    ADEPT_LUA_TRY(L, "adept.train_step", adept_train_step(m, opt, NULL, mbs, (size_t)n, &o, &r));
    lua_createtable(L, 0, 7);
    lua_pushnumber(L, r.loss);
    lua_setfield(L, -2, "loss");
    lua_pushinteger(L, (lua_Integer)r.n_tokens);
    lua_setfield(L, -2, "tokens");
    lua_pushnumber(L, r.grad_norm);
    lua_setfield(L, -2, "grad_norm");
    lua_pushboolean(L, r.nonfinite);
    lua_setfield(L, -2, "nonfinite");
    lua_pushnumber(L, r.comm_seconds);
    lua_setfield(L, -2, "comm_seconds");
    lua_pushinteger(L, (lua_Integer)r.comm_bytes);
    lua_setfield(L, -2, "comm_bytes");
    lua_pushnumber(L, r.comm_wait_seconds);
    lua_setfield(L, -2, "comm_wait_seconds");
    lua_pushinteger(L, r.comm_calls);
    lua_setfield(L, -2, "comm_calls");
    if (r.nonfinite) {
        lua_pushstring(L, r.reason);
        lua_setfield(L, -2, "reason");
    }
    return 1;
}

/* adept.sgemm_peak([n [, seconds]]) -> FLOP/s of n x n sgemm with the current threads (default 512, 0.2 s) */
static int l_sgemm_peak(lua_State *L) {
    lua_Integer n = adept_lua_opt_int_range(L, 1, "matrix size", 512, 16, 8192);
    double secs = adept_lua_opt_finite(L, 2, "seconds", 0.2);
    lua_pushnumber(L, adept_sgemm_peak_flops((int)n, secs));
    return 1;
}

void adept_open_train(lua_State *L) {
    static const luaL_Reg fns[] = {{"count_targets", l_count_targets}, {"forward_backward", l_forward_backward},
                                   {"nll", l_nll}, {"memory", l_memory}, {"save_weights", l_save_weights},
                                   {"load_weights", l_load_weights}, {"train_step", l_train_step}, {"sgemm_peak", l_sgemm_peak}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
