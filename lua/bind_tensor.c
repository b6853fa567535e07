/* Tensor bindings: constructors and methods of adept.Tensor. */
#include "adept/rng.h"
#include "binding.h"

static int l_zeros(lua_State *L) {
    int64_t shape[ADEPT_MAX_DIMS];
    int nd = adept_lua_check_shape(L, 1, shape, "zeros");
    adept_tensor *t;
    ADEPT_LUA_TRY(L, "zeros", adept_tensor_new(ADEPT_F32, nd, shape, &t));
    adept_lua_push_tensor(L, t);
    return 1;
}

static int l_randn(lua_State *L) {
    int64_t shape[ADEPT_MAX_DIMS];
    int nd = adept_lua_check_shape(L, 1, shape, "randn");
    lua_Integer seed = luaL_optinteger(L, 2, 0);
    adept_tensor *t;
    ADEPT_LUA_TRY(L, "randn", adept_tensor_new(ADEPT_F32, nd, shape, &t));
    adept_rng_fill_normal(adept_tensor_f32(t), adept_tensor_numel(t), (uint64_t)seed, 0, 0.0f, 1.0f);
    adept_lua_push_tensor(L, t);
    return 1;
}

static int l_shape(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

static int l_numel(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)adept_tensor_numel(adept_lua_check_tensor(L, 1)));
    return 1;
}

void adept_open_tensor(lua_State *L) {
    static const luaL_Reg methods[] = {{"shape", l_shape}, {"numel", l_numel}, {NULL, NULL}};
    luaL_getmetatable(L, ADEPT_TENSOR_MT);
    luaL_setfuncs(L, methods, 0);
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"zeros", l_zeros}, {"randn", l_randn}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
