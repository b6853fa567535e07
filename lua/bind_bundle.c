/* Bundle bindings: adept._bundle.{write, extract, member, list, link}, the C side of lua/adept/bundle.lua
   (adeptlua pack/run/verify/inspect). Archive rules live in engine/io/bundle.c; hashes are adept.fs.sha256. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adept/bundle.h"
#include "binding.h"

/* Limits of the bundle reader: defaults (engine/io/bundle.c), each replaceable by a field of the table at `arg`. */
static void opt_limits(lua_State *L, int arg, adept_bundle_limits *l) {
    adept_bundle_limits_default(l);
    if (lua_isnoneornil(L, arg)) return;
    luaL_checktype(L, arg, LUA_TTABLE);
    static const char *const known[] = {"max_member_bytes", "max_total_bytes", "max_members", "max_ratio", NULL};
    adept_lua_check_keys(L, arg, known, "limits");
    l->max_member_bytes = (uint64_t)adept_lua_opt_int_field_range(L, arg, "max_member_bytes",
                                                                  (lua_Integer)l->max_member_bytes, 1, LUA_MAXINTEGER);
    l->max_total_bytes = (uint64_t)adept_lua_opt_int_field_range(L, arg, "max_total_bytes",
                                                                 (lua_Integer)l->max_total_bytes, 1, LUA_MAXINTEGER);
    l->max_members = (size_t)adept_lua_opt_int_field_range(L, arg, "max_members", (lua_Integer)l->max_members, 1,
                                                           INT32_MAX);
    l->max_ratio = adept_lua_opt_num_field(L, arg, "max_ratio", l->max_ratio);
    if (!(l->max_ratio > 0)) luaL_argerror(L, arg, "field 'max_ratio' must be a positive number");
}

/* Holds the writer so that a raised error in the middle of write() still removes the temporary file. */
typedef struct writer_box {
    adept_bundle_writer *w;
} writer_box;

static int writer_gc(lua_State *L) {
    writer_box *b = lua_touserdata(L, 1);
    adept_bundle_writer_abort(b->w);
    b->w = NULL;
    return 0;
}

/* _bundle.write(path, {{name=, file=} or {name=, data=}, ...}) */
static int l_write(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_WRITE, "adept._bundle.write");
    writer_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->w = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, writer_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    ADEPT_LUA_TRY(L, "adept._bundle.write", adept_bundle_writer_open(path, &b->w));
    lua_Integer n = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        if (!lua_istable(L, -1)) return luaL_argerror(L, 2, "array of {name=, file=|data=} expected");
        int m = lua_gettop(L);
        lua_getfield(L, m, "name");
        lua_getfield(L, m, "file");
        lua_getfield(L, m, "data");
        const char *name = lua_tostring(L, m + 1);
        if (!name) return luaL_argerror(L, 2, lua_pushfstring(L, "member %d has no name", (int)i));
        adept_status s;
        if (lua_type(L, m + 2) == LUA_TSTRING) {
            adept_lua_check_path(L, lua_tostring(L, m + 2), ADEPT_SANDBOX_READ, "adept._bundle.write");
            s = adept_bundle_add_file(b->w, name, lua_tostring(L, m + 2));
        } else if (lua_type(L, m + 3) == LUA_TSTRING) {
            size_t len;
            const char *data = lua_tolstring(L, m + 3, &len);
            s = adept_bundle_add_bytes(b->w, name, data, len);
        } else {
            return luaL_argerror(L, 2, lua_pushfstring(L, "member '%s' needs file= or data=", name));
        }
        if (s != ADEPT_OK) return adept_lua_raise(L, "adept._bundle.write");
        lua_settop(L, m - 1);
    }
    adept_bundle_writer *w = b->w;
    b->w = NULL;
    ADEPT_LUA_TRY(L, "adept._bundle.write", adept_bundle_writer_close(w));
    return 0;
}

/* _bundle.extract(path, dir [, limits]) */
static int l_extract(lua_State *L) {
    const char *path = luaL_checkstring(L, 1), *dir = luaL_checkstring(L, 2);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept._bundle.extract");
    adept_lua_check_path(L, dir, ADEPT_SANDBOX_WRITE, "adept._bundle.extract");
    adept_bundle_limits l;
    opt_limits(L, 3, &l);
    ADEPT_LUA_TRY(L, "adept._bundle.extract", adept_bundle_extract(path, dir, &l));
    return 0;
}

/* _bundle.member(path, name [, limits]) -> bytes, or nil when the bundle has no such member (absence is a value;
   a bundle that cannot be read raises) */
static int l_member(lua_State *L) {
    const char *path = luaL_checkstring(L, 1), *name = luaL_checkstring(L, 2);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept._bundle.member");
    adept_bundle_limits l;
    opt_limits(L, 3, &l);
    char *data;
    size_t n;
    adept_status s = adept_bundle_member(path, name, &l, &data, &n);
    if (s == ADEPT_ENOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (s != ADEPT_OK) return adept_lua_raise(L, "adept._bundle.member");
    lua_pushlstring(L, data, n);
    free(data);
    return 1;
}

typedef struct list_ctx {
    lua_State *L;
    lua_Integer i;
} list_ctx;

static adept_status list_begin(void *p, const char *name, uint64_t size) {
    list_ctx *c = p;
    lua_createtable(c->L, 0, 2);
    lua_pushstring(c->L, name);
    lua_setfield(c->L, -2, "name");
    lua_pushinteger(c->L, (lua_Integer)size);
    lua_setfield(c->L, -2, "size");
    lua_seti(c->L, -2, ++c->i);
    return ADEPT_OK;
}

/* _bundle.list(path [, limits]) -> {{name=, size=}, ...} in archive order, after checking every member */
static int l_list(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept._bundle.list");
    adept_bundle_limits l;
    opt_limits(L, 2, &l);
    lua_newtable(L);
    list_ctx c = {L, 0};
    adept_bundle_visitor v = {list_begin, NULL, NULL, &c};
    ADEPT_LUA_TRY(L, "adept._bundle.list", adept_bundle_read_file(path, &l, &v));
    return 1;
}

/* _bundle.link(target, path): the symbolic links `adeptlua run` stages found inputs with. Not for recipes: a
   sandboxed one has no reason to make links, so it gets none. */
static int l_link(lua_State *L) {
    const char *target = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
    if (adept_lua_sandboxed(L))
        return luaL_error(L, "sandbox: making a symbolic link is not allowed in a sandboxed recipe (run with --trust to allow)");
    if (symlink(target, path) != 0) return luaL_error(L, "adept._bundle.link: %s: %s", path, strerror(errno));
    return 0;
}

void adept_open_bundle(lua_State *L) {
    static const luaL_Reg fns[] = {{"write", l_write},     {"link", l_link}, {"extract", l_extract},
                                   {"member", l_member},   {"list", l_list}, {NULL, NULL}};
    adept_lua_newlib(L, fns, "adept._bundle.");
    lua_setfield(L, -2, "_bundle");
}
