/* Tensor file bindings: adept.save_tensors(path, {name = t, ...} [, metadata]) and adept.load_tensors(path),
   the Lua face of engine/io/safetensors.c. Names are written sorted, so the same map gives the same file. */
#include <stdlib.h>
#include <string.h>

#include "adept/safetensors.h"
#include "binding.h"

static int cmp_item(const void *a, const void *b) {
    return strcmp(((const adept_st_item *)a)->name, ((const adept_st_item *)b)->name);
}

/* Counts the pairs of the table at `arg`, checking that keys are strings and values tensors (or strings). */
static size_t count_pairs(lua_State *L, int arg, int tensors) {
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s must be strings, got %s key",
                                                  tensors ? "tensor names" : "metadata keys", luaL_typename(L, -2)));
        size_t len;
        const char *key = lua_tolstring(L, -2, &len);
        if (strlen(key) != len)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s must not contain NUL bytes", tensors ? "tensor names" : "metadata keys"));
        if (!tensors && lua_type(L, -1) == LUA_TSTRING && strlen(lua_tolstring(L, -1, &len)) != len)
            luaL_argerror(L, arg, lua_pushfstring(L, "metadata value of '%s' must not contain NUL bytes", key));
        if (tensors) {
            if (!luaL_testudata(L, -1, ADEPT_TENSOR_MT))
                luaL_argerror(L, arg, lua_pushfstring(L, "value of '%s' must be a tensor, got %s", lua_tostring(L, -2),
                                                      luaL_typename(L, -1)));
            adept_lua_check_tensor(L, -1); /* "tensor was freed" */
        } else if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_argerror(L, arg, lua_pushfstring(L, "metadata value of '%s' must be a string, got %s",
                                                  lua_tostring(L, -2), luaL_typename(L, -1)));
        }
        n++;
        lua_pop(L, 1);
    }
    return n;
}

static int l_save_tensors(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_WRITE, "adept.save_tensors");
    if (!lua_istable(L, 2))
        return luaL_argerror(L, 2, lua_pushfstring(L, "table of name = tensor expected, got %s", luaL_typename(L, 2)));
    int has_meta = !lua_isnoneornil(L, 3);
    if (has_meta && !lua_istable(L, 3))
        return luaL_argerror(L, 3, lua_pushfstring(L, "table of string metadata expected, got %s", luaL_typename(L, 3)));
    lua_settop(L, 3);

    size_t n = count_pairs(L, 2, 1), n_meta = has_meta ? count_pairs(L, 3, 0) : 0;
    /* scratch arrays as userdata: freed by the GC even when a later call raises */
    adept_st_item *items = lua_newuserdatauv(L, (n ? n : 1) * sizeof *items, 0);
    const char **keys = lua_newuserdatauv(L, (n_meta ? n_meta : 1) * sizeof *keys, 0);
    const char **values = lua_newuserdatauv(L, (n_meta ? n_meta : 1) * sizeof *values, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) { /* the strings stay alive as keys of argument 2 */
        items[i].name = lua_tostring(L, -2);
        items[i].tensor = adept_lua_check_tensor(L, -1);
        i++;
        lua_pop(L, 1);
    }
    qsort(items, n, sizeof *items, cmp_item);
    i = 0;
    if (has_meta) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            keys[i] = lua_tostring(L, -2);
            values[i] = lua_tostring(L, -1);
            i++;
            lua_pop(L, 1);
        }
    }
    ADEPT_LUA_TRY(L, "adept.save_tensors", adept_safetensors_write(path, items, n, keys, values, n_meta));
    return 0;
}

/* Returns a table name -> tensor (views on the mapped file; bf16 stays bf16) and the metadata table. */
static int l_load_tensors(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept.load_tensors");
    adept_safetensors *st;
    ADEPT_LUA_TRY(L, "adept.load_tensors", adept_safetensors_open(path, &st));
    lua_createtable(L, 0, (int)st->n_entries);
    for (size_t i = 0; i < st->n_entries; i++) {
        adept_tensor *t;
        if (adept_safetensors_view(st, &st->entries[i], &t) != ADEPT_OK) {
            adept_safetensors_close(st);
            return adept_lua_raise(L, "adept.load_tensors");
        }
        adept_lua_push_tensor(L, t);
        lua_setfield(L, -2, st->entries[i].name);
    }
    lua_createtable(L, 0, (int)st->n_meta);
    for (size_t i = 0; i < st->n_meta; i++) {
        lua_pushstring(L, st->meta_values[i]);
        lua_setfield(L, -2, st->meta_keys[i]);
    }
    adept_safetensors_close(st); /* the tensors keep the mapping alive */
    return 2;
}

void adept_open_io(lua_State *L) {
    static const luaL_Reg fns[] = {{"save_tensors", l_save_tensors}, {"load_tensors", l_load_tensors}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
