/* Shared binding helpers: the dispatcher that names every binding in its errors, the userdata class layout,
   error translation, and the conversion of Lua values into C types (integers range-checked, floats checked
   finite and within float32 range where they meet float32 arithmetic). The convention is in docs/bindings.md. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/device.h"
#include "adept/model.h"
#include "adept/suggest.h"
#include "binding.h"

int adept_lua_raise(lua_State *L, const char *fname) {
    const char *msg = adept_last_error();
    return luaL_error(L, "%s: %s", fname, msg[0] ? msg : "failed");
}

/* ---- the dispatcher ---------------------------------------------------------------------------------
   Every exposed function is a closure (real function, public name). It calls the real function under
   lua_pcall and re-raises a string error as "<public name>: <message>", so argument errors raised by the
   lauxlib checks, the engine's messages and errors of Lua code called from C (string.find in m:freeze) all
   name the function the user called. */

static const char passthrough_key = 0; /* registry slot: an error value to re-raise unchanged */

int adept_lua_rethrow(lua_State *L) {
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &passthrough_key);
    return lua_error(L);
}

/* Length of a leading "<token>: " that already names this function (the short name, "adept.<short>" or
   "<Type>:<short>"), so "expand: ..." or "adept.load: ..." is not named twice; 0 when there is none. */
static size_t own_prefix(const char *msg, const char *full, const char *shortname) {
    size_t n = strspn(msg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:");
    while (n > 0 && msg[n - 1] == ':') n--; /* the token ends before the ": " separator */
    if (n == 0 || msg[n] != ':' || msg[n + 1] != ' ') return 0;
    size_t fl = strlen(full), sl = strlen(shortname);
    if (n == fl && !strncmp(msg, full, n)) return n + 2;
    if (n == sl && !strncmp(msg, shortname, n)) return n + 2;
    if (n > sl && !strncmp(msg + n - sl, shortname, sl) && (msg[n - sl - 1] == '.' || msg[n - sl - 1] == ':'))
        return n + 2;
    return 0;
}

/* Raises the error value at the top of the stack, named after the function at upvalue 2. */
static int raise_named(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &passthrough_key);
    int passthrough = !lua_isnil(L, -1) && lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (passthrough) {
        lua_pushnil(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &passthrough_key);
        return lua_error(L);
    }
    if (lua_type(L, -1) != LUA_TSTRING) return lua_error(L); /* tables and other error objects pass through */
    const char *full = lua_tostring(L, lua_upvalueindex(2));
    const char *shortname = full + strcspn(full, ":");
    if (*shortname) shortname++;
    else shortname = strrchr(full, '.') ? strrchr(full, '.') + 1 : full;
    while (shortname[0] == '_' && shortname[1] == '_') shortname++, shortname++; /* __add -> add */
    const char *msg = lua_tostring(L, -1);
    /* repeatedly: adept_lua_raise's "adept.train_step: " may precede the engine's own "train_step: " */
    for (size_t k; (k = own_prefix(msg, full, shortname)) > 0;) msg += k;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, full);
    luaL_addstring(&b, ": ");
    /* lauxlib cannot know the name of a function called through lua_pcall and writes "bad argument #2 to
       '?' (...)"; drop the " to '?'" since the message starts with the name anyway */
    if (!strncmp(msg, "bad argument #", 14)) {
        char *end;
        long n = strtol(msg + 14, &end, 10);
        const char *to = strstr(end, " to '"), *close = to ? strstr(to + 5, "' (") : NULL;
        if (to == end && close) {
            /* methods count arguments after self, as Lua's own methods do: t:get("x") is argument #1 */
            int method = strchr(full, ':') && shortname[-1] == ':'; /* not for __add and friends */
            if (method) n--;
            if (n == 0) luaL_addstring(&b, "bad self");
            else lua_pushfstring(L, "bad argument #%d", (int)n), luaL_addvalue(&b);
            msg = close + 1;
        }
    }
    luaL_addstring(&b, msg);
    luaL_pushresult(&b);
    return lua_error(L);
}

static int dispatch(lua_State *L) {
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    if (lua_pcall(L, n, LUA_MULTRET, 0) != LUA_OK) return raise_named(L);
    return lua_gettop(L);
}

void adept_lua_push_named(lua_State *L, const char *name) {
    lua_pushstring(L, name);
    lua_pushcclosure(L, dispatch, 2);
}

void adept_lua_setfuncs(lua_State *L, const luaL_Reg *fns, const char *prefix) {
    for (; fns->name; fns++) {
        lua_pushcfunction(L, fns->func);
        lua_pushfstring(L, "%s%s", prefix, fns->name);
        lua_pushcclosure(L, dispatch, 2);
        lua_setfield(L, -2, fns->name);
    }
}

void adept_lua_newlib(lua_State *L, const luaL_Reg *fns, const char *prefix) {
    lua_newtable(L);
    adept_lua_setfuncs(L, fns, prefix);
}

/* ---- userdata classes -------------------------------------------------------------------------------- */

void adept_lua_add_methods(lua_State *L, const char *class_name, const luaL_Reg *methods) {
    luaL_getmetatable(L, class_name);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "methods");
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s:", class_name);
        if (lua_istable(L, -1)) adept_lua_setfuncs(L, methods, prefix);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void push_dispatched(lua_State *L, lua_CFunction f, const char *class_name, const char *method) {
    lua_pushcfunction(L, f);
    lua_pushfstring(L, "%s:%s", class_name, method);
    lua_pushcclosure(L, dispatch, 2);
}

void adept_lua_new_class(lua_State *L, const adept_lua_class *c) {
    if (!luaL_newmetatable(L, c->name)) { /* registered once */
        lua_pop(L, 1);
        return;
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s:", c->name);
    lua_pushcfunction(L, c->gc); /* the collector's call is not dispatched: it never raises */
    lua_setfield(L, -2, "__gc");
    push_dispatched(L, c->gc, c->name, "__close");
    lua_setfield(L, -2, "__close");
    push_dispatched(L, c->tostring, c->name, "__tostring");
    lua_setfield(L, -2, "__tostring");
    if (c->meta) adept_lua_setfuncs(L, c->meta, prefix);
    lua_newtable(L);
    if (c->methods) adept_lua_setfuncs(L, c->methods, prefix);
    push_dispatched(L, c->gc, c->name, "free");
    lua_setfield(L, -2, "free");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "methods");
    if (c->index) {
        lua_pop(L, 1);
        push_dispatched(L, c->index, c->name, "__index");
    }
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

/* ---- tensors ------------------------------------------------------------------------------------------ */

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

adept_tensor *adept_lua_host_tensor(lua_State *L, const adept_tensor *t, const char *fname) {
    adept_tensor *h;
    if (adept_tensor_host(t, &h) != ADEPT_OK) adept_lua_raise(L, fname);
    adept_lua_push_tensor(L, h);
    return h;
}

/* adept.default_device and adept.default_precision live in the module table, which every binding closure does not
   hold: they are read from package.loaded.adept (the host and require both put the module there). NULL when unset. */
static const char *module_default(lua_State *L, const char *field, const char *expected) {
    const char *name = NULL;
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, "adept") == LUA_TTABLE) {
        lua_getfield(L, -1, field);
        if (lua_type(L, -1) == LUA_TSTRING) name = lua_tostring(L, -1); /* kept alive by the module table */
        else if (!lua_isnil(L, -1))
            luaL_error(L, "adept.%s must be %s, got a %s", field, expected, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return name;
}

int adept_lua_opt_device(lua_State *L, int arg, const char *fname) {
    const char *name = adept_lua_opt_str_field(L, arg, "device", NULL);
    const char *from = "option 'device'";
    if (!name) {
        name = module_default(L, "default_device", "\"cpu\" or \"cuda\"");
        from = "adept.default_device";
    }
    if (!name) return ADEPT_CPU;
    adept_device d;
    if (adept_device_parse(name, &d) != ADEPT_OK)
        luaL_error(L, "%s: %s: %s", fname, from, adept_last_error());
    return (int)d;
}

int adept_lua_opt_precision(lua_State *L, int arg, int device, const char *fname) {
    const char *name = adept_lua_opt_str_field(L, arg, "precision", NULL);
    const char *from = "option 'precision'";
    if (!name) {
        name = module_default(L, "default_precision", "\"f32\" or \"bf16\"");
        from = "adept.default_precision";
    }
    if (!name) return device == ADEPT_CUDA ? ADEPT_PRECISION_BF16 : ADEPT_PRECISION_F32;
    adept_precision p;
    if (adept_precision_parse(name, &p) != ADEPT_OK)
        luaL_error(L, "%s: %s: %s", fname, from, adept_last_error());
    return (int)p;
}

int adept_lua_check_shape(lua_State *L, int arg, int64_t *shape, const char *fname) {
    if (!lua_istable(L, arg)) {
        const char *msg = lua_pushfstring(L, "table of dimensions expected, got %s", luaL_typename(L, arg));
        return luaL_argerror(L, arg, msg);
    }
    lua_Integer n = luaL_len(L, arg);
    if (n > ADEPT_MAX_DIMS) return luaL_argerror(L, arg, lua_pushfstring(L, "at most %d dimensions, got %I", ADEPT_MAX_DIMS, n));
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, arg, i);
        int isint;
        lua_Integer d = lua_tointegerx(L, -1, &isint);
        if (!isint || d < 0)
            return luaL_argerror(L, arg, lua_pushfstring(L, "dimension %I must be a non-negative integer, got %s",
                                                         i, isint ? lua_tostring(L, -1) : luaL_typename(L, -1)));
        shape[i - 1] = d;
        lua_pop(L, 1);
    }
    (void)fname;
    return (int)n;
}

/* ---- conversion of Lua values ------------------------------------------------------------------------- */

/* "got 4294967297", "got 1.5", "got string": the offending value as the user wrote it. */
static const char *describe(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TNUMBER) {
        if (lua_isinteger(L, idx)) return lua_pushfstring(L, "%I", lua_tointeger(L, idx));
        char buf[64];
        double v = lua_tonumber(L, idx);
        snprintf(buf, sizeof buf, "%.15g", v); /* 1e+300 rather than 1.0000000000000001e+300 when it round-trips */
        if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
        return lua_pushstring(L, buf);
    }
    return lua_pushstring(L, luaL_typename(L, idx));
}

static int int_in_range(lua_State *L, int idx, lua_Integer lo, lua_Integer hi, lua_Integer *out) {
    int isint; /* numeric strings convert, as with luaL_checkinteger (command-line arguments arrive as text) */
    lua_Integer v = lua_tointegerx(L, idx, &isint);
    if (!isint || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static const char *int_range_msg(lua_State *L, int idx, const char *what, lua_Integer lo, lua_Integer hi) {
    const char *got = describe(L, idx);
    if (lo == LUA_MININTEGER && hi == LUA_MAXINTEGER) return lua_pushfstring(L, "%s must be an integer, got %s", what, got);
    if (hi == LUA_MAXINTEGER) return lua_pushfstring(L, "%s must be an integer >= %I, got %s", what, lo, got);
    return lua_pushfstring(L, "%s must be an integer in [%I, %I], got %s", what, lo, hi, got);
}

lua_Integer adept_lua_check_int_range(lua_State *L, int arg, const char *what, lua_Integer lo, lua_Integer hi) {
    lua_Integer v = 0;
    if (!int_in_range(L, arg, lo, hi, &v)) luaL_argerror(L, arg, int_range_msg(L, arg, what, lo, hi));
    return v;
}

lua_Integer adept_lua_opt_int_range(lua_State *L, int arg, const char *what, lua_Integer def, lua_Integer lo,
                                    lua_Integer hi) {
    return lua_isnoneornil(L, arg) ? def : adept_lua_check_int_range(L, arg, what, lo, hi);
}

lua_Integer adept_lua_int_value(lua_State *L, int idx, const char *what, lua_Integer lo, lua_Integer hi) {
    lua_Integer v = 0;
    if (!int_in_range(L, idx, lo, hi, &v)) luaL_error(L, "%s", int_range_msg(L, idx, what, lo, hi));
    return v;
}

/* A number that becomes (or meets) float32: finite and no larger in magnitude than FLT_MAX. */
static int f32_ok(lua_State *L, int idx, lua_Number *out) {
    int isnum;
    lua_Number v = lua_tonumberx(L, idx, &isnum);
    if (!isnum || !isfinite(v) || fabs(v) > FLT_MAX) return 0;
    *out = v;
    return 1;
}

static const char *f32_msg(lua_State *L, int idx, const char *what) {
    return lua_pushfstring(L, "%s must be a finite number within the float32 range (|x| <= 3.4e38), got %s", what,
                           describe(L, idx));
}

lua_Number adept_lua_check_f32(lua_State *L, int arg, const char *what) {
    lua_Number v = 0;
    if (!f32_ok(L, arg, &v)) luaL_argerror(L, arg, f32_msg(L, arg, what));
    return v;
}

lua_Number adept_lua_opt_f32(lua_State *L, int arg, const char *what, lua_Number def) {
    return lua_isnoneornil(L, arg) ? def : adept_lua_check_f32(L, arg, what);
}

lua_Number adept_lua_f32_value(lua_State *L, int idx, const char *what) {
    lua_Number v = 0;
    if (!f32_ok(L, idx, &v)) luaL_error(L, "%s", f32_msg(L, idx, what));
    return v;
}

lua_Number adept_lua_check_finite(lua_State *L, int arg, const char *what) {
    int isnum;
    lua_Number v = lua_tonumberx(L, arg, &isnum);
    if (!isnum || !isfinite(v))
        luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a finite number, got %s", what, describe(L, arg)));
    return v;
}

lua_Number adept_lua_opt_finite(lua_State *L, int arg, const char *what, lua_Number def) {
    return lua_isnoneornil(L, arg) ? def : adept_lua_check_finite(L, arg, what);
}

/* Table fields: the value is pushed, checked and popped; errors name the field and the argument. */
static int push_field(lua_State *L, int arg, const char *field) {
    if (lua_isnoneornil(L, arg)) return 0;
    lua_getfield(L, arg, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

static void field_type_error(lua_State *L, int arg, const char *field, const char *expected) {
    luaL_argerror(L, arg, lua_pushfstring(L, "field '%s' must be %s, got %s", field, expected, luaL_typename(L, -1)));
}

lua_Integer adept_lua_opt_int_field_range(lua_State *L, int arg, const char *field, lua_Integer def, lua_Integer lo,
                                          lua_Integer hi) {
    if (!push_field(L, arg, field)) return def;
    int idx = lua_gettop(L);
    lua_Integer v = 0;
    if (!int_in_range(L, idx, lo, hi, &v))
        luaL_argerror(L, arg, int_range_msg(L, idx, lua_pushfstring(L, "field '%s'", field), lo, hi));
    lua_pop(L, 1);
    return v;
}

lua_Integer adept_lua_opt_int_field(lua_State *L, int arg, const char *field, lua_Integer def) {
    return adept_lua_opt_int_field_range(L, arg, field, def, LUA_MININTEGER, LUA_MAXINTEGER);
}

lua_Number adept_lua_opt_num_field(lua_State *L, int arg, const char *field, lua_Number def) {
    if (!push_field(L, arg, field)) return def;
    int isnum;
    lua_Number v = lua_tonumberx(L, -1, &isnum);
    if (!isnum || !isfinite(v))
        luaL_argerror(L, arg, lua_pushfstring(L, "field '%s' must be a finite number, got %s", field, describe(L, -1)));
    lua_pop(L, 1);
    return v;
}

lua_Number adept_lua_opt_f32_field(lua_State *L, int arg, const char *field, lua_Number def) {
    if (!push_field(L, arg, field)) return def;
    int idx = lua_gettop(L);
    lua_Number v = 0;
    if (!f32_ok(L, idx, &v)) luaL_argerror(L, arg, f32_msg(L, idx, lua_pushfstring(L, "field '%s'", field)));
    lua_pop(L, 1);
    return v;
}

const char *adept_lua_opt_str_field(lua_State *L, int arg, const char *field, const char *def) {
    if (!push_field(L, arg, field)) return def;
    if (lua_type(L, -1) != LUA_TSTRING) field_type_error(L, arg, field, "a string");
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays reachable through the table */
    return s;
}

int adept_lua_opt_bool_field(lua_State *L, int arg, const char *field, int def) {
    if (!push_field(L, arg, field)) return def;
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

