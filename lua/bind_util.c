/* Module-level utilities: version, threads, seed, logging and the progress line for Lua loops. */
#include <stdio.h>

#include "adept/log.h"
#include "adept/threads.h"
#include "binding.h"

static int l_version(lua_State *L) {
    lua_pushstring(L, adept_version());
    return 1;
}

static int l_threads(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer n = luaL_checkinteger(L, 1);
        if (n < 0) return luaL_argerror(L, 1, "thread count must be >= 0 (0 means all cores)");
        adept_set_threads((int)n);
    }
    lua_pushinteger(L, adept_get_threads());
    return 1;
}

static int l_now(lua_State *L) {
    lua_pushnumber(L, adept_now());
    return 1;
}

static int l_log(lua_State *L) {
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    int level = luaL_checkoption(L, 1, NULL, levels);
    const char *msg = luaL_checkstring(L, 2);
    adept_log((adept_log_level)level, "%s", msg);
    return 0;
}

static int l_log_level(lua_State *L) {
    static const char *const levels[] = {"debug", "info", "warn", "error", "quiet", NULL};
    if (!lua_isnoneornil(L, 1)) adept_log_set_level((adept_log_level)luaL_checkoption(L, 1, NULL, levels));
    lua_pushstring(L, levels[adept_log_get_level()]);
    return 1;
}

/* Progress line: adept.progress(label, total) returns an object with :update(done, extra) and :finish(extra). */
#define PROGRESS_MT "adept.Progress"

static int l_progress(lua_State *L) {
    const char *label = luaL_checkstring(L, 1);
    lua_Integer total = luaL_optinteger(L, 2, 0);
    adept_progress *p = lua_newuserdatauv(L, sizeof *p, 0);
    adept_progress_start(p, label, total);
    luaL_setmetatable(L, PROGRESS_MT);
    return 1;
}

static int l_progress_update(lua_State *L) {
    adept_progress *p = luaL_checkudata(L, 1, PROGRESS_MT);
    adept_progress_update(p, luaL_checkinteger(L, 2), luaL_optstring(L, 3, NULL));
    return 0;
}

static int l_progress_finish(lua_State *L) {
    adept_progress *p = luaL_checkudata(L, 1, PROGRESS_MT);
    adept_progress_finish(p, luaL_optstring(L, 2, NULL));
    return 0;
}

void adept_open_util(lua_State *L) {
    static const luaL_Reg progress_methods[] = {{"update", l_progress_update}, {"finish", l_progress_finish}, {NULL, NULL}};
    if (luaL_newmetatable(L, PROGRESS_MT)) {
        luaL_newlib(L, progress_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"version", l_version}, {"threads", l_threads}, {"now", l_now}, {"log", l_log},
                                   {"log_level", l_log_level}, {"progress", l_progress}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
    if (lua_getfield(L, -1, "seed") == LUA_TNIL) {
        lua_pushinteger(L, 0);
        lua_setfield(L, -3, "seed");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, -2, "args");
}
