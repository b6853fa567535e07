/* Module-level utilities: version, threads, seed, logging and the progress line for Lua loops. */
#include <stdio.h>
#include <stdlib.h>

#include "adept/build_info.h"
#include "adept/log.h"
#include "adept/suggest.h"
#include "adept/threads.h"
#include "binding.h"

static int l_version(lua_State *L) {
    lua_pushstring(L, adept_version());
    return 1;
}

/* adept.build_info() -> {version=, commit=, blas_core=, cpu=, isa=, lua=}: what a provenance record names. */
static int l_build_info(lua_State *L) {
    char cpu[256];
    lua_createtable(L, 0, 6);
    lua_pushstring(L, adept_version());
    lua_setfield(L, -2, "version");
    lua_pushstring(L, adept_git_commit());
    lua_setfield(L, -2, "commit");
    lua_pushstring(L, adept_blas_core());
    lua_setfield(L, -2, "blas_core");
    lua_pushstring(L, adept_build_isa());
    lua_setfield(L, -2, "isa");
    lua_pushstring(L, adept_cpu_name(cpu, sizeof cpu));
    lua_setfield(L, -2, "cpu");
    lua_pushstring(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua");
    return 1;
}

/* adept.suggest(word, {candidates}) -> the likely intended candidate, or nil (adept/suggest.h) */
static int l_suggest(lua_State *L) {
    const char *word = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    if (n <= 0) return 0;
    const char **c = lua_newuserdatauv(L, (size_t)n * sizeof *c, 0); /* freed by the GC even if a check raises */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        if (lua_type(L, -1) != LUA_TSTRING) return luaL_argerror(L, 2, "array of strings expected");
        c[i - 1] = lua_tostring(L, -1); /* stays alive in the argument table */
        lua_pop(L, 1);
    }
    const char *best = adept_suggest(word, c, (size_t)n);
    if (!best) return 0;
    lua_pushstring(L, best);
    return 1;
}

static int l_threads(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) {
        adept_set_threads((int)adept_lua_check_int_range(L, 1, "thread count (0 = all cores)", 0, 4096));
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

typedef struct progress_box {
    adept_progress *p; /* &state while live, NULL after :free() */
    adept_progress state;
} progress_box;

static int l_progress(lua_State *L) {
    const char *label = luaL_checkstring(L, 1);
    lua_Integer total = adept_lua_opt_int_range(L, 2, "total", 0, 0, LUA_MAXINTEGER);
    progress_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    luaL_setmetatable(L, PROGRESS_MT);
    b->p = &b->state;
    adept_progress_start(b->p, label, total);
    return 1;
}

static adept_progress *check_progress(lua_State *L) {
    progress_box *b = luaL_checkudata(L, 1, PROGRESS_MT);
    if (!b->p) luaL_error(L, "progress line was freed");
    return b->p;
}

/* A progress line holds no engine memory: freeing it only marks the handle dead. */
static int progress_gc(lua_State *L) {
    progress_box *b = luaL_checkudata(L, 1, PROGRESS_MT);
    b->p = NULL;
    return 0;
}

/* "adept.Progress(label)" */
static int progress_tostring(lua_State *L) {
    progress_box *b = luaL_checkudata(L, 1, PROGRESS_MT);
    if (!b->p) { lua_pushstring(L, "adept.Progress(freed)"); return 1; }
    lua_pushfstring(L, "adept.Progress(%s)", b->state.label);
    return 1;
}

static int l_progress_update(lua_State *L) {
    adept_progress *p = check_progress(L);
    adept_progress_update(p, adept_lua_check_int_range(L, 2, "done", 0, LUA_MAXINTEGER), luaL_optstring(L, 3, NULL));
    return 0;
}

static int l_progress_finish(lua_State *L) {
    adept_progress *p = check_progress(L);
    adept_progress_finish(p, luaL_optstring(L, 2, NULL));
    return 0;
}

void adept_open_util(lua_State *L) {
    static const luaL_Reg progress_methods[] = {{"update", l_progress_update}, {"finish", l_progress_finish}, {NULL, NULL}};
    static const adept_lua_class cls = {PROGRESS_MT, progress_methods, NULL, progress_gc, progress_tostring, NULL};
    adept_lua_new_class(L, &cls);
    static const luaL_Reg fns[] = {{"version", l_version}, {"threads", l_threads}, {"now", l_now}, {"log", l_log},
                                   {"log_level", l_log_level}, {"progress", l_progress},
                                   {"build_info", l_build_info}, {"suggest", l_suggest}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
    if (lua_getfield(L, -1, "seed") == LUA_TNIL) {
        lua_pushinteger(L, 0);
        lua_setfield(L, -3, "seed");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, -2, "args");
}
