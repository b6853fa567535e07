/* Shared binding helpers: error translation, the tensor handle, argument parsing. */
#include <string.h>

#include "adept/suggest.h"
#include "binding.h"

int adept_lua_raise(lua_State *L, const char *fname) {
    const char *msg = adept_last_error();
    return luaL_error(L, "%s: %s", fname, msg[0] ? msg : "failed");
}

static int tensor_gc(lua_State *L) {
    adept_tensor_box *box = luaL_checkudata(L, 1, ADEPT_TENSOR_MT);
    adept_tensor_free(box->t); /* idempotent: NULL after the first call */
    box->t = NULL;
    return 0;
}

void adept_lua_push_tensor(lua_State *L, adept_tensor *t) {
    adept_tensor_box *box = lua_newuserdatauv(L, sizeof *box, 1);
    box->t = t;
    luaL_setmetatable(L, ADEPT_TENSOR_MT);
}

adept_tensor_box *adept_lua_check_tensor_box(lua_State *L, int arg) {
    return luaL_checkudata(L, arg, ADEPT_TENSOR_MT);
}

adept_tensor *adept_lua_check_tensor(lua_State *L, int arg) {
    adept_tensor_box *box = luaL_checkudata(L, arg, ADEPT_TENSOR_MT);
    if (!box->t) luaL_error(L, "tensor was freed");
    return box->t;
}

adept_tensor *adept_lua_to_tensor(lua_State *L, int arg) {
    adept_tensor_box *box = luaL_testudata(L, arg, ADEPT_TENSOR_MT);
    if (!box) return NULL;
    if (!box->t) luaL_error(L, "tensor was freed");
    return box->t;
}

int adept_lua_check_shape(lua_State *L, int arg, int64_t *shape, const char *fname) {
    if (!lua_istable(L, arg)) {
        const char *msg = lua_pushfstring(L, "table of dimensions expected, got %s", luaL_typename(L, arg));
        return luaL_argerror(L, arg, msg);
    }
    lua_Integer n = luaL_len(L, arg);
    if (n > ADEPT_MAX_DIMS) return luaL_argerror(L, arg, lua_pushfstring(L, "at most %d dimensions, got %d", ADEPT_MAX_DIMS, (int)n));
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, arg, i);
        int isint;
        lua_Integer d = lua_tointegerx(L, -1, &isint);
        if (!isint || d < 0)
            return luaL_argerror(L, arg, lua_pushfstring(L, "dimension %d must be a non-negative integer, got %s",
                                                         (int)i, isint ? lua_tostring(L, -1) : luaL_typename(L, -1)));
        shape[i - 1] = d;
        lua_pop(L, 1);
    }
    (void)fname;
    return (int)n;
}

static void field_type_error(lua_State *L, int arg, const char *field, const char *expected) {
    luaL_argerror(L, arg, lua_pushfstring(L, "field '%s' must be %s, got %s", field, expected, luaL_typename(L, -1)));
}

lua_Integer adept_lua_opt_int_field(lua_State *L, int arg, const char *field, lua_Integer def) {
    if (lua_isnoneornil(L, arg)) return def;
    lua_getfield(L, arg, field);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint) field_type_error(L, arg, field, "an integer");
    lua_pop(L, 1);
    return v;
}

lua_Number adept_lua_opt_num_field(lua_State *L, int arg, const char *field, lua_Number def) {
    if (lua_isnoneornil(L, arg)) return def;
    lua_getfield(L, arg, field);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
    int isnum;
    lua_Number v = lua_tonumberx(L, -1, &isnum);
    if (!isnum) field_type_error(L, arg, field, "a number");
    lua_pop(L, 1);
    return v;
}

const char *adept_lua_opt_str_field(lua_State *L, int arg, const char *field, const char *def) {
    if (lua_isnoneornil(L, arg)) return def;
    lua_getfield(L, arg, field);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
    if (lua_type(L, -1) != LUA_TSTRING) field_type_error(L, arg, field, "a string");
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays reachable through the table */
    return s;
}

int adept_lua_opt_bool_field(lua_State *L, int arg, const char *field, int def) {
    if (lua_isnoneornil(L, arg)) return def;
    lua_getfield(L, arg, field);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
    if (!lua_isboolean(L, -1)) field_type_error(L, arg, field, "a boolean");
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

void adept_lua_check_keys(lua_State *L, int arg, const char *const *known, const char *fname) {
    if (lua_type(L, arg) != LUA_TTABLE) return;
    size_t n = 0;
    while (known[n]) n++;
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_error(L, "%s: option keys must be names, got a %s key", fname, luaL_typename(L, -1));
            return;
        }
        const char *key = lua_tostring(L, -1);
        size_t i = 0;
        while (i < n && strcmp(known[i], key)) i++;
        if (i < n) continue;
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t k = 0; k < n; k++) {
            if (k) luaL_addstring(&b, ", ");
            luaL_addstring(&b, known[k]);
        }
        luaL_pushresult(&b);
        const char *hint = adept_suggest(key, known, n);
        if (hint) luaL_error(L, "%s: unknown option '%s' \xe2\x80\x94 did you mean '%s'? (options: %s)", fname, key, hint,
                             lua_tostring(L, -1));
        else luaL_error(L, "%s: unknown option '%s' (options: %s)", fname, key, lua_tostring(L, -1));
        return;
    }
}

/* The tensor metatable's lifecycle entries; bind_tensor.c adds the methods. */
void adept_lua_tensor_metatable(lua_State *L) {
    if (luaL_newmetatable(L, ADEPT_TENSOR_MT)) {
        lua_pushcfunction(L, tensor_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, tensor_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, tensor_gc);
        lua_setfield(L, -2, "free");
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
