/* luaopen_adept: the module table. C bindings register their functions here; the embedded Lua library
   (the files under lua/adept/) is reachable by require and loaded lazily as adept.<name> on first use. */
#include <dlfcn.h>
#include <string.h>

#include "binding.h"
#include "embedded_lua.h"

/* One entry per binding file. Add new binding files here. */
static const adept_binding_open bindings[] = {
    adept_open_eval,
    adept_open_util,
    adept_open_tensor,
    adept_open_model,
    adept_open_fs,
    adept_open_ckpt, /* adds to adept.fs: after adept_open_fs */
    adept_open_optim,
    adept_open_train,
    adept_open_io,
    adept_open_json,
    adept_open_chart,
    adept_open_model_io,
    adept_open_dataset,
    adept_open_instructions,
    adept_open_tokenizer,
    adept_open_adapt,
    adept_open_cuda,
    adept_open_sandbox,
    adept_open_bundle,
    adept_open_dist,
};

static const adept_embedded_lua *find_embedded(const char *module) {
    for (const adept_embedded_lua *e = adept_embedded_lua_files; e->module; e++)
        if (!strcmp(e->module, module)) return e;
    return NULL;
}

/* package.searchers entry: finds "adept.x.y" among the embedded sources. */
static int embedded_searcher(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    const adept_embedded_lua *e = find_embedded(name);
    if (!e) {
        lua_pushfstring(L, "no embedded module '%s'", name);
        return 1;
    }
    if (luaL_loadbuffer(L, e->source, e->size, e->chunkname) != LUA_OK) return lua_error(L);
    lua_pushstring(L, e->chunkname + 1);
    return 2;
}

/* adept.<key> -> require("adept.<key>") for embedded submodules, cached in the table. */
static int module_index(lua_State *L) {
    const char *key = lua_tostring(L, 2);
    if (!key) return 0;
    char name[128];
    if (snprintf(name, sizeof name, "adept.%s", key) >= (int)sizeof name || !find_embedded(name)) return 0;
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, key); /* rawset is fine: the table has no __newindex */
    return 1;
}

static void install_searcher(lua_State *L) {
    lua_getglobal(L, "package");
    if (!lua_istable(L, -1)) { lua_pop(L, 1); return; }
    lua_getfield(L, -1, "searchers");
    if (lua_istable(L, -1)) {
        /* insert at position 2, right after the preload searcher, so the embedded copy wins */
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = n; i >= 2; i--) {
            lua_geti(L, -1, i);
            lua_seti(L, -2, i + 1);
        }
        lua_pushcfunction(L, embedded_searcher);
        lua_seti(L, -2, 2);
    }
    lua_pop(L, 2);
}

/* When adept.so is loaded by a plain lua5.4 (busted), lua_close dlcloses it and with it libgomp and OpenBLAS,
   whose worker threads are still parked: the process then crashes at exit. Marking the module RTLD_NODELETE
   keeps it and its dependencies mapped until exit. A no-op inside the adeptlua host, which links it in. */
static void pin_module(void) {
    Dl_info info;
    if (dladdr((void *)&luaopen_adept, &info) && info.dli_fname) {
        void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
        (void)h; /* the extra reference is intentionally never released */
    }
}

int luaopen_adept(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "adept");
    if (lua_istable(L, -1)) return 1; /* already open */
    lua_pop(L, 2);

    pin_module();
    install_searcher(L);
    adept_lua_tensor_metatable(L);
    lua_newtable(L);
    for (size_t i = 0; i < sizeof bindings / sizeof bindings[0]; i++) bindings[i](L);
    lua_newtable(L);
    lua_pushcfunction(L, module_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    /* register before submodules load, so their `require "adept"` gets this table */
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "adept.module");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "adept");
    lua_pop(L, 1);
    return 1;
}
