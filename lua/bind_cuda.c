/* adept.cuda: is a CUDA device usable, and which ones are there. Works in builds without the CUDA backend and on
   machines without a GPU (available() is then false with the reason, devices() is {}). Also sets
   adept.default_device ("cpu" unless the host's --device option set it) for adept.load / adept.model. */
#include <stdio.h>

#include "adept/cuda.h"
#include "binding.h"

/* adept.cuda.available() -> true | false, reason: whether models and tensors can live on "cuda" (a backend is
   registered for it: the GPU's, or a test host's fake device) */
static int l_available(lua_State *L) {
    if (adept_backend_for(ADEPT_CUDA)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    const char *why;
    lua_pushboolean(L, 0);
    if (adept_cuda_device_count(&why) <= 0) lua_pushstring(L, why);
    else lua_pushstring(L, adept_last_error());
    return 2;
}

/* adept.cuda.backend() -> the name of the backend behind "cuda" ("cuda" on a GPU, "test-device" in the test host)
   | nil, reason. Tests compare bitwise against the CPU on the test device and within tolerances on a GPU. */
static int l_backend(lua_State *L) {
    const adept_backend *be = adept_backend_for(ADEPT_CUDA);
    if (be) {
        lua_pushstring(L, be->name);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, adept_last_error());
    return 2;
}

/* adept.cuda.devices() -> {{index=0, name=, memory=, free_memory=, compute_capability="9.0", major=, minor=,
   multiprocessors=}, ...}; indices are CUDA's, from 0 */
static int l_devices(lua_State *L) {
    int n = adept_cuda_device_count(NULL);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        adept_cuda_device d;
        ADEPT_LUA_TRY(L, "adept.cuda.devices", adept_cuda_device_info(i, &d));
        lua_createtable(L, 0, 8);
        lua_pushinteger(L, d.index);
        lua_setfield(L, -2, "index");
        lua_pushstring(L, d.name);
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, (lua_Integer)d.total_bytes);
        lua_setfield(L, -2, "memory");
        lua_pushinteger(L, (lua_Integer)d.free_bytes);
        lua_setfield(L, -2, "free_memory");
        lua_pushfstring(L, "%d.%d", d.cc_major, d.cc_minor);
        lua_setfield(L, -2, "compute_capability");
        lua_pushinteger(L, d.cc_major);
        lua_setfield(L, -2, "major");
        lua_pushinteger(L, d.cc_minor);
        lua_setfield(L, -2, "minor");
        lua_pushinteger(L, d.multiprocessors);
        lua_setfield(L, -2, "multiprocessors");
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

/* adept.cuda.profile(fn [, {per = 1, unit = "run", top = 12}]) -> what fn returns. fn runs with the device-time
   profile on (adept_cuda_profile_begin / _end; docs/cuda.md "Profile") and the table is printed to stdout: device
   time by op [part], its share, time and calls per unit (per: how many units fn ran, e.g. 5 "step"s), TFLOP/s of the
   GEMMs. An error in fn stops the profile without a table and is raised again. Needs the GPU's backend: raises
   with the reason without one. */
static int l_profile(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const known[] = {"per", "top", "unit", NULL};
    adept_lua_check_keys(L, 2, known, "adept.cuda.profile");
    lua_Number per = adept_lua_opt_num_field(L, 2, "per", 1);
    if (per <= 0) return luaL_argerror(L, 2, "per must be positive");
    int top = (int)adept_lua_opt_int_field_range(L, 2, "top", 12, 0, 1 << 20);
    char unit[32];
    snprintf(unit, sizeof unit, "%s", adept_lua_opt_str_field(L, 2, "unit", "run"));
    ADEPT_LUA_TRY(L, "adept.cuda.profile", adept_cuda_profile_begin());
    lua_settop(L, 1);
    if (lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
        (void)adept_cuda_profile_end(NULL, per, unit, top); /* fn's error is the one to report */
        return lua_error(L);
    }
    fflush(stdout); /* fn's own prints first */
    ADEPT_LUA_TRY(L, "adept.cuda.profile", adept_cuda_profile_end(stdout, per, unit, top));
    fflush(stdout);
    return lua_gettop(L);
}

/* adept.cuda.built() -> whether this build carries the CUDA backend at all */
static int l_built(lua_State *L) {
    lua_pushboolean(L, adept_cuda_built());
    return 1;
}

void adept_open_cuda(lua_State *L) {
    static const luaL_Reg fns[] = {{"available", l_available}, {"devices", l_devices}, {"built", l_built},
                                   {"backend", l_backend}, {"profile", l_profile}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "cuda");
    if (lua_getfield(L, -1, "default_device") == LUA_TNIL) {
        lua_pushliteral(L, "cpu");
        lua_setfield(L, -3, "default_device");
    }
    lua_pop(L, 1);
}
