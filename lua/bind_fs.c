/* adept.fs.* (crash-safe file operations for checkpoints), the interrupt flag for training loops
   (adept.catch_signals, adept.interrupted), adept.sleep, and adept.json_encode/json_decode through cJSON. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "adept/fsutil.h"
#include "binding.h"

static int l_mkdir_p(lua_State *L) {
    ADEPT_LUA_TRY(L, "adept.fs.mkdir_p", adept_fs_mkdir_p(luaL_checkstring(L, 1)));
    return 0;
}

static int l_exists(lua_State *L) {
    int e = adept_fs_exists(luaL_checkstring(L, 1));
    if (e == 0) lua_pushboolean(L, 0);
    else lua_pushstring(L, e == 2 ? "directory" : "file");
    return 1;
}

static int l_fsync(lua_State *L) {
    ADEPT_LUA_TRY(L, "adept.fs.fsync", adept_fs_fsync(luaL_checkstring(L, 1)));
    return 0;
}

static int l_fsync_tree(lua_State *L) {
    ADEPT_LUA_TRY(L, "adept.fs.fsync_tree", adept_fs_fsync_tree(luaL_checkstring(L, 1)));
    return 0;
}

static int l_rename(lua_State *L) {
    ADEPT_LUA_TRY(L, "adept.fs.rename", adept_fs_rename(luaL_checkstring(L, 1), luaL_checkstring(L, 2)));
    return 0;
}

static int l_remove_tree(lua_State *L) {
    ADEPT_LUA_TRY(L, "adept.fs.remove_tree", adept_fs_remove_tree(luaL_checkstring(L, 1)));
    return 0;
}

/* adept.fs.list(dir) -> sorted array of names, or nil, message when the directory cannot be read. */
static int l_list(lua_State *L) {
    char **names;
    size_t n;
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

/* ---- JSON ---- */

static int is_array(lua_State *L, int idx, lua_Integer *len) {
    lua_Integer n = 0, count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) { lua_pop(L, 1); return 0; }
        if (lua_tointeger(L, -1) > n) n = lua_tointeger(L, -1);
    }
    *len = n;
    return count > 0 && n == count;
}

static int cmp_keys(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static cJSON *to_json(lua_State *L, int idx, int depth) {
    idx = lua_absindex(L, idx);
    if (depth > 64) luaL_error(L, "adept.json_encode: nesting deeper than 64 (a cycle?)");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return cJSON_CreateNull();
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        double v = lua_tonumber(L, idx);
        if (!isfinite(v)) return cJSON_CreateNull(); /* JSON has no NaN/inf */
        return cJSON_CreateNumber(v);
    }
    case LUA_TSTRING: return cJSON_CreateString(lua_tostring(L, idx));
    case LUA_TTABLE: {
        lua_Integer n;
        if (is_array(L, idx, &n)) {
            cJSON *arr = cJSON_CreateArray();
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, idx, i);
                cJSON_AddItemToArray(arr, to_json(L, -1, depth + 1));
                lua_pop(L, 1);
            }
            return arr;
        }
        /* objects with sorted keys, so metrics lines read the same every time; `byname` maps each key's
           string form to its value, which also keeps the key strings alive while they are sorted */
        lua_newtable(L);
        int byname = lua_gettop(L);
        size_t count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            int kt = lua_type(L, -2);
            if (kt != LUA_TSTRING && kt != LUA_TNUMBER)
                luaL_error(L, "adept.json_encode: table keys must be strings or numbers, got %s", lua_typename(L, kt));
            lua_pushvalue(L, -2);
            lua_pushstring(L, lua_tostring(L, -1)); /* a copy: tostring on the iteration key would confuse lua_next */
            lua_remove(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, byname);
            count++;
        }
        const char **keys = malloc((count ? count : 1) * sizeof *keys);
        if (!keys) luaL_error(L, "adept.json_encode: out of memory");
        size_t k = 0;
        lua_pushnil(L);
        while (lua_next(L, byname)) {
            lua_pop(L, 1);
            keys[k++] = lua_tostring(L, -1);
        }
        qsort(keys, count, sizeof *keys, cmp_keys);
        cJSON *obj = cJSON_CreateObject();
        for (size_t i = 0; i < count; i++) {
            lua_getfield(L, byname, keys[i]);
            cJSON_AddItemToObject(obj, keys[i], to_json(L, -1, depth + 1));
            lua_pop(L, 1);
        }
        free(keys);
        lua_pop(L, 1);
        return obj;
    }
    default:
        return luaL_error(L, "adept.json_encode: cannot encode a %s", luaL_typename(L, idx)), NULL;
    }
}

static int l_json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    cJSON *j = to_json(L, 1, 0);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return luaL_error(L, "adept.json_encode: out of memory");
    lua_pushstring(L, s);
    cJSON_free(s);
    return 1;
}

static void push_json(lua_State *L, const cJSON *j) {
    luaL_checkstack(L, 4, "adept.json_decode: nesting too deep");
    if (cJSON_IsNull(j)) lua_pushnil(L);
    else if (cJSON_IsBool(j)) lua_pushboolean(L, cJSON_IsTrue(j));
    else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == floor(v) && fabs(v) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)v);
        else lua_pushnumber(L, v);
    } else if (cJSON_IsString(j)) lua_pushstring(L, j->valuestring);
    else if (cJSON_IsArray(j)) {
        lua_newtable(L);
        lua_Integer i = 1;
        for (const cJSON *c = j->child; c; c = c->next) { push_json(L, c); lua_seti(L, -2, i++); }
    } else {
        lua_newtable(L);
        for (const cJSON *c = j->child; c; c = c->next) { push_json(L, c); lua_setfield(L, -2, c->string); }
    }
}

/* adept.json_decode(text) -> value, or nil, message on malformed text. */
static int l_json_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (!j) {
        lua_pushnil(L);
        lua_pushfstring(L, "malformed JSON near byte %d", (int)(end ? end - s : 0));
        return 2;
    }
    push_json(L, j);
    cJSON_Delete(j);
    return 1;
}

void adept_open_fs(lua_State *L) {
    static const luaL_Reg fs[] = {{"mkdir_p", l_mkdir_p}, {"exists", l_exists}, {"fsync", l_fsync},
                                  {"fsync_tree", l_fsync_tree}, {"rename", l_rename}, {"remove_tree", l_remove_tree},
                                  {"list", l_list}, {NULL, NULL}};
    luaL_newlib(L, fs);
    lua_setfield(L, -2, "fs");
    static const luaL_Reg fns[] = {{"catch_signals", l_catch_signals}, {"interrupted", l_interrupted},
                                   {"sleep", l_sleep}, {"getpid", l_getpid}, {"json_encode", l_json_encode},
                                   {"json_decode", l_json_decode}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
