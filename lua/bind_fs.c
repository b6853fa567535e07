/* adept.fs.* (crash-safe file operations for checkpoints), the interrupt flag for training loops
   (adept.catch_signals, adept.interrupted), adept.sleep and adept.getpid. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adept/fsutil.h"
#include "adept/hash.h"
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

/* adept.fs.list(dir) -> sorted array of names; raises when the directory cannot be read. */
static int l_list(lua_State *L) {
    char **names;
    size_t n;
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_READ, "adept.fs.list");
    ADEPT_LUA_TRY(L, "adept.fs.list", adept_fs_list(luaL_checkstring(L, 1), &names, &n));
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_seti(L, -2, (lua_Integer)i + 1);
    }
    adept_fs_list_free(names, n);
    return 1;
}

/* adept.catch_signals(true) pushes the interrupt handlers, (false) pops one level (adept/fsutil.h: a stack, so
   nested training loops keep the outer one's handling); returns the depth after the call. */
static int l_catch_signals(lua_State *L) {
    if (lua_isnoneornil(L, 1) || lua_toboolean(L, 1)) ADEPT_LUA_TRY(L, "adept.catch_signals", adept_interrupt_install());
    else adept_interrupt_uninstall();
    lua_pushinteger(L, adept_interrupt_depth());
    return 1;
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
    double s = adept_lua_check_finite(L, 1, "seconds");
    if (!(s >= 0) || s > 1e9) return luaL_argerror(L, 1, "seconds must be in [0, 1e9]");
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !adept_interrupted()) {}
    return 0;
}

static int l_getpid(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* adept.fs.stat(path) -> {type="file"|"directory"|"other", size=, mtime= (seconds, ns resolution)} or nil, msg */
static int l_stat(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept.fs.stat");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    lua_createtable(L, 0, 3);
    lua_pushstring(L, S_ISREG(sb.st_mode) ? "file" : S_ISDIR(sb.st_mode) ? "directory" : "other");
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)sb.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)sb.st_mtim.tv_sec + 1e-9 * (lua_Number)sb.st_mtim.tv_nsec);
    lua_setfield(L, -2, "mtime");
    return 1;
}

/* adept.fs.sha256(path) -> hex digest, size in bytes (streamed; raises when unreadable) */
static int l_sha256_file(lua_State *L) {
    char hex[ADEPT_SHA256_HEX];
    uint64_t size = 0;
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_READ, "adept.fs.sha256");
    ADEPT_LUA_TRY(L, "adept.fs.sha256", adept_sha256_file(luaL_checkstring(L, 1), hex, &size));
    lua_pushstring(L, hex);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

/* adept.sha256(string) -> hex digest */
static int l_sha256(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char hex[ADEPT_SHA256_HEX];
    ADEPT_LUA_TRY(L, "adept.sha256", adept_sha256_buffer(s, len, hex));
    lua_pushstring(L, hex);
    return 1;
}

void adept_open_fs(lua_State *L) {
    static const luaL_Reg fs[] = {{"mkdir_p", l_mkdir_p}, {"exists", l_exists}, {"fsync", l_fsync},
                                  {"fsync_tree", l_fsync_tree}, {"rename", l_rename}, {"remove_tree", l_remove_tree},
                                  {"list", l_list}, {"stat", l_stat}, {"sha256", l_sha256_file}, {NULL, NULL}};
    adept_lua_newlib(L, fs, "adept.fs.");
    lua_setfield(L, -2, "fs");
    static const luaL_Reg fns[] = {{"catch_signals", l_catch_signals}, {"interrupted", l_interrupted},
                                   {"sleep", l_sleep}, {"getpid", l_getpid}, {"sha256", l_sha256}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
