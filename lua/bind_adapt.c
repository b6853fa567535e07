/* Model methods for ADEPT stage-1 probes (engine/adapt): m:mask_out(batch) and m:block_influence(batch).
   Registered into the model's method table, so adept_open_model must run first (module.c order). */
#include <stdlib.h>

#include "adept/adapt.h"
#include "binding.h"


/* m:mask_out(batch) -> {base_nll=, skip_nll={[l]=...} (0-based), tokens=, layer_evals=, naive_evals=}:
   summed NLLs (divide by tokens for the mean loss). */
static int m_mask_out(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_batch b;
    adept_lua_read_batch(L, 2, &b, "mask_out");
    int nl = adept_model_num_layers(m);
    double *skip = lua_newuserdatauv(L, (size_t)nl * sizeof(double) + 1, 0);
    double base;
    int64_t n, evals, naive;
    ADEPT_LUA_TRY(L, "mask_out", adept_model_mask_out(m, &b, &base, skip, &n, &evals, &naive));
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, base);
    lua_setfield(L, -2, "base_nll");
    lua_createtable(L, nl, 1);
    for (int l = 0; l < nl; l++) {
        lua_pushnumber(L, skip[l]);
        lua_seti(L, -2, l);
    }
    lua_setfield(L, -2, "skip_nll");
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "tokens");
    lua_pushinteger(L, evals);
    lua_setfield(L, -2, "layer_evals");
    lua_pushinteger(L, naive);
    lua_setfield(L, -2, "naive_evals");
    return 1;
}

/* m:block_influence(batch) -> {[l] = mean over counted tokens of 1 - cos(in_l, out_l)} (0-based), tokens.
   batch: as m:loss, or token ids alone (every token counts). */
static int m_block_influence(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_batch b;
    adept_lua_read_batch(L, 2, &b, "block_influence");
    int nl = adept_model_num_layers(m);
    double *bi = lua_newuserdatauv(L, (size_t)nl * sizeof(double) + 1, 0);
    int64_t n;
    ADEPT_LUA_TRY(L, "block_influence", adept_model_block_influence(m, &b, bi, &n));
    lua_createtable(L, nl, 1);
    for (int l = 0; l < nl; l++) {
        lua_pushnumber(L, n ? bi[l] / (double)n : 0.0);
        lua_seti(L, -2, l);
    }
    lua_pushinteger(L, n);
    return 2;
}

void adept_open_adapt(lua_State *L) {
    static const luaL_Reg methods[] = {{"mask_out", m_mask_out}, {"block_influence", m_block_influence}, {NULL, NULL}};
    adept_lua_add_methods(L, ADEPT_MODEL_MT, methods);
}
