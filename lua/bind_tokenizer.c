/* Tokenizer bindings: adept.tokenizer(path) and the methods of adept.Tokenizer (encode, decode, batches,
   vocabulary look-ups). The handle owns the engine tokenizer; __gc/:free()/<close> release it once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/threads.h"
#include "bind_tokenizer.h"
#include "binding.h"

typedef struct tok_box {
    adept_tokenizer *t;
} tok_box;

adept_tokenizer *adept_lua_check_tokenizer(lua_State *L, int arg) {
    tok_box *b = luaL_checkudata(L, arg, ADEPT_TOKENIZER_MT);
    if (!b->t) luaL_error(L, "tokenizer was freed");
    return b->t;
}

static int l_tokenizer(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept.tokenizer");
    tok_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->t = NULL;
    luaL_setmetatable(L, ADEPT_TOKENIZER_MT);
    ADEPT_LUA_TRY(L, "adept.tokenizer", adept_tokenizer_load(path, &b->t));
    return 1;
}

static int tok_gc(lua_State *L) {
    tok_box *b = luaL_checkudata(L, 1, ADEPT_TOKENIZER_MT);
    adept_tokenizer_free(b->t);
    b->t = NULL;
    return 0;
}

/* {bos=, eos=} booleans -> -1 (tokenizer default), 0 or 1 */
static int flag(lua_State *L, int arg, const char *name) {
    if (lua_isnoneornil(L, arg)) return -1;
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_getfield(L, arg, name);
    int v = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
        lua_pop(L, 1);
        return luaL_argerror(L, arg, lua_pushfstring(L, "field '%s' must be a boolean", name));
    }
    lua_pop(L, 1);
    return v;
}

static void push_ids(lua_State *L, const adept_ids *ids, int as_tensor) {
    if (as_tensor) {
        int64_t shape[1] = {(int64_t)ids->n};
        adept_tensor *t;
        if (adept_tensor_new(ADEPT_I32, 1, shape, &t) != ADEPT_OK) {
            adept_lua_raise(L, "encode");
            return;
        }
        if (ids->n) memcpy(adept_tensor_i32(t), ids->ids, ids->n * sizeof(int32_t));
        adept_lua_push_tensor(L, t);
        return;
    }
    lua_createtable(L, (int)ids->n, 0);
    for (size_t i = 0; i < ids->n; i++) {
        lua_pushinteger(L, ids->ids[i]);
        lua_seti(L, -2, (lua_Integer)i + 1);
    }
}

static int l_encode(lua_State *L) {
    adept_tokenizer *t = adept_lua_check_tokenizer(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    int bos = flag(L, 3, "bos"), eos = flag(L, 3, "eos");
    int as_tensor = adept_lua_opt_bool_field(L, 3, "tensor", 0);
    adept_ids ids = {0};
    if (adept_tokenizer_encode(t, text, len, bos, eos, &ids) != ADEPT_OK) {
        adept_ids_free(&ids);
        return adept_lua_raise(L, "encode");
    }
    push_ids(L, &ids, as_tensor);
    adept_ids_free(&ids);
    return 1;
}

static int l_encode_batch(lua_State *L) {
    adept_tokenizer *t = adept_lua_check_tokenizer(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int bos = flag(L, 3, "bos"), eos = flag(L, 3, "eos");
    int as_tensor = adept_lua_opt_bool_field(L, 3, "tensor", 0);
    lua_Integer n = luaL_len(L, 2);
    const char **texts = calloc((size_t)n + 1, sizeof *texts);
    size_t *lens = calloc((size_t)n + 1, sizeof *lens);
    adept_ids *out = calloc((size_t)n + 1, sizeof *out);
    adept_status *st = calloc((size_t)n + 1, sizeof *st);
    if (!texts || !lens || !out || !st) {
        free(texts); free(lens); free(out); free(st);
        return luaL_error(L, "encode_batch: out of memory for %d texts", (int)n);
    }
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 2, i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            free(texts); free(lens); free(out); free(st);
            return luaL_argerror(L, 2, lua_pushfstring(L, "element %d is a %s, not a string", (int)i + 1,
                                                       luaL_typename(L, -1)));
        }
        texts[i] = lua_tolstring(L, -1, &lens[i]); /* stays valid: the table keeps the string alive */
        lua_pop(L, 1);
    }
    char err[512] = "";
#pragma omp parallel for schedule(dynamic, 1) num_threads(adept_get_threads())
    for (lua_Integer i = 0; i < n; i++) {
        st[i] = adept_tokenizer_encode(t, texts[i], lens[i], bos, eos, &out[i]);
        if (st[i] != ADEPT_OK) {
#pragma omp critical
            if (!err[0]) snprintf(err, sizeof err, "text %d: %s", (int)i + 1, adept_last_error());
        }
    }
    if (err[0]) {
        for (lua_Integer i = 0; i < n; i++) adept_ids_free(&out[i]);
        free(texts); free(lens); free(out); free(st);
        return luaL_error(L, "encode_batch: %s", err);
    }
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        push_ids(L, &out[i], as_tensor);
        lua_seti(L, -2, i + 1);
        adept_ids_free(&out[i]);
    }
    free(texts); free(lens); free(out); free(st);
    return 1;
}

static int l_decode(lua_State *L) {
    adept_tokenizer *t = adept_lua_check_tokenizer(L, 1);
    int skip = adept_lua_opt_bool_field(L, 3, "skip_special", 0);
    int32_t *ids = NULL;
    size_t n = 0;
    adept_tensor *tt = adept_lua_to_tensor(L, 2);
    int owned = 0;
    if (tt) {
        if (tt->dtype != ADEPT_I32) return luaL_argerror(L, 2, "int32 tensor or table of ids expected");
        tt = adept_lua_host_tensor(L, tt, "decode"); /* ids on a device: a host copy, on the stack */
        ids = adept_tensor_i32(tt);
        n = adept_tensor_numel(tt);
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        n = (size_t)luaL_len(L, 2);
        ids = malloc((n + 1) * sizeof *ids);
        if (!ids) return luaL_error(L, "decode: out of memory for %d ids", (int)n);
        owned = 1;
        for (size_t i = 0; i < n; i++) {
            lua_geti(L, 2, (lua_Integer)i + 1);
            int isint;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            lua_pop(L, 1);
            if (!isint || v < INT32_MIN || v > INT32_MAX) {
                free(ids);
                return luaL_argerror(L, 2, lua_pushfstring(L, "element %d is not an integer id", (int)i + 1));
            }
            ids[i] = (int32_t)v;
        }
    }
    char *s;
    size_t len;
    adept_status st = adept_tokenizer_decode(t, ids, n, skip, &s, &len);
    if (owned) free(ids);
    if (st != ADEPT_OK) return adept_lua_raise(L, "decode");
    lua_pushlstring(L, s, len);
    free(s);
    return 1;
}

static int push_id_or_nil(lua_State *L, int32_t id) {
    if (id < 0) lua_pushnil(L);
    else lua_pushinteger(L, id);
    return 1;
}

static int l_vocab_size(lua_State *L) {
    lua_pushinteger(L, adept_tokenizer_vocab_size(adept_lua_check_tokenizer(L, 1)));
    return 1;
}
static int l_bos_id(lua_State *L) { return push_id_or_nil(L, adept_tokenizer_bos_id(adept_lua_check_tokenizer(L, 1))); }
static int l_eos_id(lua_State *L) { return push_id_or_nil(L, adept_tokenizer_eos_id(adept_lua_check_tokenizer(L, 1))); }

static int l_token_to_id(lua_State *L) {
    adept_tokenizer *t = adept_lua_check_tokenizer(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    return push_id_or_nil(L, adept_tokenizer_token_to_id(t, s, len));
}

static int l_id_to_token(lua_State *L) {
    adept_tokenizer *t = adept_lua_check_tokenizer(L, 1);
    lua_Integer id = luaL_checkinteger(L, 2);
    size_t len;
    const char *s = id >= INT32_MIN && id <= INT32_MAX ? adept_tokenizer_id_to_token(t, (int32_t)id, &len) : NULL;
    if (!s) lua_pushnil(L);
    else lua_pushlstring(L, s, len);
    return 1;
}

static int l_digest(lua_State *L) {
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)adept_tokenizer_digest(adept_lua_check_tokenizer(L, 1)));
    lua_pushstring(L, hex);
    return 1;
}

static int l_tostring(lua_State *L) {
    tok_box *b = luaL_checkudata(L, 1, ADEPT_TOKENIZER_MT);
    if (!b->t) lua_pushstring(L, "adept.Tokenizer(freed)");
    else lua_pushfstring(L, "adept.Tokenizer(vocab %d)", (int)adept_tokenizer_vocab_size(b->t));
    return 1;
}

void adept_open_tokenizer(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"encode", l_encode}, {"encode_batch", l_encode_batch}, {"decode", l_decode},
        {"vocab_size", l_vocab_size}, {"bos_id", l_bos_id}, {"eos_id", l_eos_id},
        {"token_to_id", l_token_to_id}, {"id_to_token", l_id_to_token}, {"digest", l_digest},
        {NULL, NULL}};
    static const adept_lua_class cls = {ADEPT_TOKENIZER_MT, methods, NULL, tok_gc, l_tostring, NULL};
    adept_lua_new_class(L, &cls);
    static const luaL_Reg fns[] = {{"tokenizer", l_tokenizer}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
