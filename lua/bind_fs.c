/* adept.fs.* (crash-safe file operations for checkpoints), the interrupt flag for training loops
   (adept.catch_signals, adept.interrupted), adept.sleep and adept.getpid. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adept/fsutil.h"
#include "binding.h"

static int l_mkdir_p(lua_State *L) {
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_WRITE, "adept.fs.mkdir_p");
    ADEPT_LUA_TRY(L, "adept.fs.mkdir_p", adept_fs_mkdir_p(luaL_checkstring(L, 1)));
    return 0;
}

static int l_exists(lua_State *L) {
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_READ, "adept.fs.exists");
    int e = adept_fs_exists(luaL_checkstring(L, 1));
    if (e == 0) lua_pushboolean(L, 0);
    else lua_pushstring(L, e == 2 ? "directory" : "file");
    return 1;
}

static int l_fsync(lua_State *L) {
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_READ, "adept.fs.fsync");
    ADEPT_LUA_TRY(L, "adept.fs.fsync", adept_fs_fsync(luaL_checkstring(L, 1)));
    return 0;
}

static int l_fsync_tree(lua_State *L) {
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_READ, "adept.fs.fsync_tree");
    ADEPT_LUA_TRY(L, "adept.fs.fsync_tree", adept_fs_fsync_tree(luaL_checkstring(L, 1)));
    return 0;
}

static int l_rename(lua_State *L) {
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_WRITE, "adept.fs.rename");
    adept_lua_check_path(L, luaL_checkstring(L, 2), ADEPT_SANDBOX_WRITE, "adept.fs.rename");
    ADEPT_LUA_TRY(L, "adept.fs.rename", adept_fs_rename(luaL_checkstring(L, 1), luaL_checkstring(L, 2)));
    return 0;
}

static int l_remove_tree(lua_State *L) {
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_WRITE, "adept.fs.remove_tree");
    ADEPT_LUA_TRY(L, "adept.fs.remove_tree", adept_fs_remove_tree(luaL_checkstring(L, 1)));
    return 0;
}

/* adept.fs.list(dir) -> sorted array of names, or nil, message when the directory cannot be read. */
static int l_list(lua_State *L) {
    char **names;
    size_t n;
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_READ, "adept.fs.list");
    if (adept_fs_list(luaL_checkstring(L, 1), &names, &n) != ADEPT_OK) {
        lua_pushnil(L);
        lua_pushstring(L, adept_last_error());
        return 2;
    }
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_seti(L, -2, (lua_Integer)i + 1);
    }
    adept_fs_list_free(names, n);
    return 1;
}

static int l_catch_signals(lua_State *L) {
    if (lua_isnoneornil(L, 1) || lua_toboolean(L, 1)) adept_interrupt_install();
    else adept_interrupt_uninstall();
    return 0;
}

/* adept.interrupted() -> "SIGINT" | "SIGTERM" | "signal N" | nil; clear=true forgets it. */
static int l_interrupted(lua_State *L) {
    int sig = adept_interrupted();
    if (lua_toboolean(L, 1)) adept_interrupt_clear();
    if (!sig) { lua_pushnil(L); return 1; }
    if (sig == 2) lua_pushstring(L, "SIGINT");
    else if (sig == 15) lua_pushstring(L, "SIGTERM");
    else lua_pushfstring(L, "signal %d", sig);
    lua_pushinteger(L, sig);
    return 2;
}

static int l_sleep(lua_State *L) {
    double s = luaL_checknumber(L, 1);
    if (!(s >= 0)) return luaL_argerror(L, 1, "seconds must be >= 0");
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !adept_interrupted()) {}
    return 0;
}

static int l_getpid(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

void adept_open_fs(lua_State *L) {
    static const luaL_Reg fs[] = {{"mkdir_p", l_mkdir_p}, {"exists", l_exists}, {"fsync", l_fsync},
                                  {"fsync_tree", l_fsync_tree}, {"rename", l_rename}, {"remove_tree", l_remove_tree},
                                  {"list", l_list}, {NULL, NULL}};
    luaL_newlib(L, fs);
    lua_setfield(L, -2, "fs");
    static const luaL_Reg fns[] = {{"catch_signals", l_catch_signals}, {"interrupted", l_interrupted},
                                   {"sleep", l_sleep}, {"getpid", l_getpid}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
