/* adept.json.decode / adept.json.encode: JSON <-> Lua values on cJSON, for run logs (metrics.jsonl), summaries
   and importance files. JSON null decodes to adept.json.null (a light userdata), as lua-cjson does. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "adept/input.h"
#include "adept/json.h"
#include "binding.h"

/* Choices (documented for users):
   - numbers: integral values within +-2^53 decode to Lua integers, others to floats;
   - a table encodes as an array when its keys are exactly 1..n (n >= 1), otherwise as an object whose keys are
     sorted (so logs diff cleanly); an empty table encodes as {} (adept.json.empty_array encodes as []);
   - NaN and infinities encode as null (JSON has no spelling for them); nil and adept.json.null encode as null;
   - numeric object keys are written as strings; functions, userdata and threads are errors. */

#define JSON_BOX_MT "adept.JsonTree"
#define JSON_MAX_DEPTH 200

typedef struct json_box {
    cJSON *tree;
} json_box;

static int box_gc(lua_State *L) {
    json_box *b = luaL_checkudata(L, 1, JSON_BOX_MT);
    cJSON_Delete(b->tree); /* NULL-safe; the box may already be emptied */
    b->tree = NULL;
    return 0;
}

/* A box on the stack owns the tree, so a Lua error half-way (out of memory) cannot leak it. */
static json_box *push_box(lua_State *L) {
    json_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->tree = NULL;
    luaL_setmetatable(L, JSON_BOX_MT);
    return b;
}

static void push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }

/* adept.json.empty_array: encodes as [] (an empty Lua table encodes as {}); its address is the marker. */
static const char empty_array_marker;

static void push_json(lua_State *L, const cJSON *j, int depth) {
    luaL_checkstack(L, 4, "nesting too deep");
    if (cJSON_IsNull(j)) push_null(L);
    else if (cJSON_IsFalse(j)) lua_pushboolean(L, 0);
    else if (cJSON_IsTrue(j)) lua_pushboolean(L, 1);
    else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == floor(v) && fabs(v) <= 9007199254740992.0) lua_pushinteger(L, (lua_Integer)v);
        else lua_pushnumber(L, v);
    } else if (cJSON_IsString(j)) lua_pushstring(L, j->valuestring);
    else if (cJSON_IsArray(j)) {
        lua_createtable(L, cJSON_GetArraySize(j), 0);
        lua_Integer i = 1;
        for (const cJSON *c = j->child; c; c = c->next) {
            push_json(L, c, depth + 1);
            lua_seti(L, -2, i++);
        }
    } else if (cJSON_IsObject(j)) {
        lua_createtable(L, 0, cJSON_GetArraySize(j));
        for (const cJSON *c = j->child; c; c = c->next) {
            push_json(L, c, depth + 1);
            lua_setfield(L, -2, c->string ? c->string : "");
        }
    } else push_null(L);
}

static int l_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    json_box *b = push_box(L);
    const char *end = NULL;
    b->tree = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (b->tree) { /* only whitespace may follow the value */
        while (end && end < s + len && strchr(" \t\r\n", *end)) end++;
        if (end && end < s + len) {
            cJSON_Delete(b->tree);
            b->tree = NULL;
        }
    }
    if (!b->tree) {
        size_t off = end && end >= s && end <= s + len ? (size_t)(end - s) : 0;
        return luaL_error(L, "invalid JSON at byte %d of %d", (int)off + 1, (int)len);
    }
    /* a repeated key is refused, as in every engine reader (the box frees the tree on the error) */
    if (adept_json_check_unique(b->tree, "adept.json.decode") != ADEPT_OK) return luaL_error(L, "%s", adept_last_error());
    push_json(L, b->tree, 0);
    cJSON_Delete(b->tree);
    b->tree = NULL;
    return 1;
}

static void add_json(lua_State *L, int idx, int depth, cJSON *parent, const char *key);

static int key_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static void attach(cJSON *parent, const char *key, cJSON *item) {
    if (key) cJSON_AddItemToObject(parent, key, item);
    else cJSON_AddItemToArray(parent, item);
}

/* Table at idx (absolute) -> array when its keys are 1..n, object otherwise. Every item is linked into its
   parent before its children are built, so the boxed root owns everything when a Lua error interrupts. */
static void add_table(lua_State *L, int idx, int depth, cJSON *parent, const char *key) {
    if (depth > JSON_MAX_DEPTH) luaL_error(L, "nesting deeper than %d (a cycle?)", JSON_MAX_DEPTH);
    luaL_checkstack(L, 6, "nesting too deep");
    lua_Integer n = 0, max = 0;
    int only_int = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
        } else only_int = 0;
    }
    if (n > 0 && only_int && max == n) {
        cJSON *arr = cJSON_CreateArray();
        attach(parent, key, arr);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, idx, i);
            add_json(L, lua_gettop(L), depth + 1, arr, NULL);
            lua_pop(L, 1);
        }
        return;
    }
    /* keys as strings, sorted; a scratch table keeps the converted strings alive */
    lua_createtable(L, (int)n, 0);
    int keys = lua_gettop(L);
    lua_Integer k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int t = lua_type(L, -1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_error(L, "object keys must be strings or numbers, got %s", luaL_typename(L, -1));
        lua_pushvalue(L, -1);
        lua_tostring(L, -1); /* converts the copy, never the key next() walks */
        lua_seti(L, keys, ++k);
    }
    const char **names = lua_newuserdatauv(L, (size_t)(k ? k : 1) * sizeof *names, 0);
    for (lua_Integer i = 1; i <= k; i++) {
        lua_geti(L, keys, i);
        names[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    qsort(names, (size_t)k, sizeof *names, key_cmp);
    cJSON *obj = cJSON_CreateObject();
    attach(parent, key, obj);
    for (lua_Integer i = 0; i < k; i++) {
        lua_getfield(L, idx, names[i]);
        if (lua_isnil(L, -1) && lua_stringtonumber(L, names[i])) { /* a numeric key: look it up by number */
            lua_gettable(L, idx);
            lua_remove(L, -2);
        }
        add_json(L, lua_gettop(L), depth + 1, obj, names[i]);
        lua_pop(L, 1);
    }
    lua_pop(L, 2); /* names, keys */
}

static void add_json(lua_State *L, int idx, int depth, cJSON *parent, const char *key) {
    switch (lua_type(L, idx)) {
    case LUA_TNIL: attach(parent, key, cJSON_CreateNull()); return;
    case LUA_TBOOLEAN: attach(parent, key, cJSON_CreateBool(lua_toboolean(L, idx))); return;
    case LUA_TNUMBER: {
        /* written by us, not by cJSON: its printer keeps %.15g whenever that reads back within an epsilon, so a
           double could change by an ulp or two through a file (a loss read back from summary.json). Integers
           exactly; floats in the shortest of 15, 16 or 17 digits that reads back as the same double. */
        char text[40];
        if (lua_isinteger(L, idx)) {
            snprintf(text, sizeof text, "%lld", (long long)lua_tointeger(L, idx));
        } else {
            double v = lua_tonumber(L, idx);
            if (!isfinite(v)) { attach(parent, key, cJSON_CreateNull()); return; }
            for (int digits = 15; digits <= 17; digits++) {
                snprintf(text, sizeof text, "%.*g", digits, v);
                if (strtod(text, NULL) == v) break;
            }
        }
        attach(parent, key, cJSON_CreateRaw(text));
        return;
    }
    case LUA_TSTRING: attach(parent, key, cJSON_CreateString(lua_tostring(L, idx))); return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { attach(parent, key, cJSON_CreateNull()); return; }
        if (lua_touserdata(L, idx) == &empty_array_marker) { attach(parent, key, cJSON_CreateArray()); return; }
        break;
    case LUA_TTABLE: add_table(L, idx, depth, parent, key); return;
    }
    luaL_error(L, "cannot encode a %s", luaL_typename(L, idx));
}

int adept_lua_json_encode(lua_State *L);

static int l_encode(lua_State *L) {
    luaL_checkany(L, 1);
    int pretty = lua_istable(L, 2) ? adept_lua_opt_bool_field(L, 2, "pretty", 0) : 0;
    lua_settop(L, 1);
    json_box *b = push_box(L);
    b->tree = cJSON_CreateArray(); /* a root that owns the value while it is built */
    if (!b->tree) return luaL_error(L, "out of memory");
    add_json(L, 1, 0, b->tree, NULL);
    char *s = b->tree->child ? (pretty ? cJSON_Print(b->tree->child) : cJSON_PrintUnformatted(b->tree->child)) : NULL;
    if (!s) return luaL_error(L, "out of memory");
    lua_pushstring(L, s);
    cJSON_free(s);
    return 1;
}

/* adept.json.encode as a C function for other bindings (adept.model writes its config table as JSON). */
int adept_lua_json_encode(lua_State *L) { return l_encode(L); }

/* adept.json.read(path) -> value; raises naming the file when it is missing, unreadable, a special file (a FIFO
   or device is refused, never waited on) or not JSON (a caller reading run directories that other runs may
   still be writing uses pcall). */
static int l_read(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept.json.read");
    FILE *f;
    if (adept_input_fopen(path, NULL, &f) != ADEPT_OK) return luaL_error(L, "%s", adept_last_error());
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) luaL_addlstring(&buf, chunk, n);
    int failed = ferror(f);
    fclose(f);
    if (failed) return luaL_error(L, "%s: read error", path);
    luaL_pushresult(&buf);
    lua_pushcfunction(L, l_decode);
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        return luaL_error(L, "%s: %s", path, msg ? msg : "invalid JSON");
    }
    return 1;
}

/* adept.json.write(path, value [, {pretty=}]): encodes, writes to a temporary name beside the file, fsyncs
   and renames it into place, so a reader never sees half a file. Raises on failure. */
static int l_write(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_WRITE, "adept.json.write");
    luaL_checkany(L, 2);
    lua_settop(L, 3);
    lua_pushcfunction(L, l_encode);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 1);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    const char *tmp = lua_pushfstring(L, "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return luaL_error(L, "%s: %s", tmp, strerror(errno));
    int ok = fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) { ok = 0; err = errno; }
    if (!ok || rename(tmp, path) != 0) {
        if (ok) err = errno;
        remove(tmp);
        return luaL_error(L, "%s: %s", path, strerror(err));
    }
    return 0;
}

void adept_open_json(lua_State *L) {
    if (luaL_newmetatable(L, JSON_BOX_MT)) { /* private scratch that never reaches Lua code: __gc only */
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"decode", l_decode}, {"encode", l_encode}, {"read", l_read}, {"write", l_write},
                                   {NULL, NULL}};
    adept_lua_newlib(L, fns, "adept.json.");
    push_null(L);
    lua_setfield(L, -2, "null");
    lua_pushlightuserdata(L, (void *)&empty_array_marker);
    lua_setfield(L, -2, "empty_array");
    lua_setfield(L, -2, "json");
}
