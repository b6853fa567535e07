/* The sandbox for recipes from others: one path policy (adept_lua_check_path), called by every binding that
   takes a path, and replacements for the Lua standard functions that could escape it. Its configuration lives
   in the registry under a private key, so no Lua code (metatables, package.loaded, load with env) reaches it. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "binding.h"

static const char sandbox_key = 0; /* registry[&sandbox_key]: the policy; absent when not sandboxed */

typedef struct sandbox {
    char *out;     /* canonical output folder: readable and writable */
    char *modules; /* canonical folder `require` loads Lua modules from */
    char **read;   /* canonical declared inputs (files or folders), the recipe and the modules it loaded: readable */
    size_t n_read, cap_read;
} sandbox;

static int sandbox_gc(lua_State *L) {
    sandbox *s = lua_touserdata(L, 1);
    free(s->out), free(s->modules);
    for (size_t i = 0; i < s->n_read; i++) free(s->read[i]);
    free(s->read);
    memset(s, 0, sizeof *s);
    return 0;
}

static sandbox *get_sandbox(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &sandbox_key);
    sandbox *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s; /* the registry keeps it alive */
}

int adept_lua_sandboxed(lua_State *L) { return get_sandbox(L) != NULL; }

static int deny(lua_State *L, const char *what) {
    return luaL_error(L, "sandbox: %s is not allowed in a sandboxed recipe (run with --trust to allow)", what);
}

/* Resolves `path` as the kernel would when opening it: the longest existing prefix through realpath (so `..`
   and symbolic links are followed), then the components that do not exist yet. Those may not hold `..`
   (a folder created later could be a different place than the lexical guess) and the first of them may not
   exist under another guise (a dangling symbolic link would create its target elsewhere). Returns 0, or -1
   with *why set. */
static int resolve(const char *path, char *out, const char **why) {
    char abs[PATH_MAX];
    if (!path[0]) { *why = "an empty path"; return -1; }
    if (path[0] == '/') {
        if (strlen(path) >= sizeof abs) { *why = "a path that is too long"; return -1; }
        strcpy(abs, path);
    } else {
        if (!getcwd(abs, sizeof abs)) { *why = "a path relative to an unreadable working folder"; return -1; }
        size_t n = strlen(abs);
        if (n + 1 + strlen(path) >= sizeof abs) { *why = "a path that is too long"; return -1; }
        abs[n] = '/';
        strcpy(abs + n + 1, path);
    }
    if (realpath(abs, out)) return 0;
    if (errno != ENOENT) { *why = strerror(errno); return -1; }
    /* cut components off the end until the rest exists */
    char prefix[PATH_MAX];
    strcpy(prefix, abs);
    size_t len = strlen(prefix);
    const char *tail = NULL;
    for (;;) {
        while (len > 1 && prefix[len - 1] == '/') prefix[--len] = '\0';
        char *slash = strrchr(prefix, '/');
        if (!slash) { *why = "an unresolvable path"; return -1; }
        tail = abs + (slash - prefix) + 1;
        if (slash == prefix) slash[1] = '\0';
        else *slash = '\0';
        len = strlen(prefix);
        if (realpath(prefix, out)) break;
        if (errno != ENOENT) { *why = strerror(errno); return -1; }
    }
    size_t n = strlen(out);
    int first = 1;
    while (*tail) {
        const char *end = strchr(tail, '/');
        size_t clen = end ? (size_t)(end - tail) : strlen(tail);
        if (clen == 2 && tail[0] == '.' && tail[1] == '.') { *why = "'..' below a folder that does not exist"; return -1; }
        if (clen && !(clen == 1 && tail[0] == '.')) {
            if (n + 1 + clen >= PATH_MAX) { *why = "a path that is too long"; return -1; }
            if (n > 1) out[n++] = '/';
            else n = 1; /* out is "/" */
            memcpy(out + n, tail, clen);
            n += clen;
            out[n] = '\0';
            struct stat st;
            if (first && lstat(out, &st) == 0) { *why = "a dangling symbolic link"; return -1; }
            first = 0;
        }
        tail += clen;
        while (*tail == '/') tail++;
    }
    return 0;
}

static int under(const char *root, const char *p) {
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return 1;
    return strncmp(root, p, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

/* Whether the canonical path `real` may be opened in `mode`. */
static int allowed(const sandbox *s, const char *real, int mode) {
    if (under(s->out, real)) return 1;
    for (size_t i = 0; mode != ADEPT_SANDBOX_WRITE && i < s->n_read; i++)
        if (under(s->read[i], real)) return 1;
    return 0;
}

/* Declares one more canonical path readable (a module the searcher loaded: a bundle member). 0 or -1 (memory). */
static int add_read(sandbox *s, const char *real) {
    for (size_t i = 0; i < s->n_read; i++)
        if (!strcmp(s->read[i], real)) return 0;
    if (s->n_read == s->cap_read) {
        size_t cap = s->cap_read ? 2 * s->cap_read : 8;
        char **r = realloc(s->read, cap * sizeof *r);
        if (!r) return -1;
        s->read = r, s->cap_read = cap;
    }
    char *c = strdup(real);
    if (!c) return -1;
    s->read[s->n_read++] = c;
    return 0;
}

void adept_lua_check_path(lua_State *L, const char *path, int mode, const char *what) {
    sandbox *s = get_sandbox(L);
    if (!s) return;
    char real[PATH_MAX];
    const char *why = NULL;
    const char *verb = mode == ADEPT_SANDBOX_WRITE ? "writing" : "reading";
    if (resolve(path, real, &why) != 0) {
        lua_pushfstring(L, "%s '%s' (%s: %s)", verb, path, what, why);
        deny(L, lua_tostring(L, -1));
    }
    if (allowed(s, real, mode)) return;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "%s '%s'", verb, path);
    luaL_addvalue(&b);
    if (strcmp(real, path)) {
        lua_pushfstring(L, " (resolved to %s)", real);
        luaL_addvalue(&b);
    }
    lua_pushfstring(L, " by %s", what);
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    lua_pushfstring(L, "sandbox: %s is not allowed in a sandboxed recipe (run with --trust to allow); it %s %s",
                    lua_tostring(L, -1),
                    mode == ADEPT_SANDBOX_WRITE ? "writes only under its output folder"
                                                : "reads only its declared inputs, its bundle and its output folder",
                    s->out);
    lua_error(L);
}

void adept_lua_check_paths(lua_State *L, int arg, int mode, const char *what) {
    if (!get_sandbox(L)) return;
    if (lua_type(L, arg) == LUA_TSTRING) adept_lua_check_path(L, lua_tostring(L, arg), mode, what);
    if (!lua_istable(L, arg)) return;
    for (lua_Integer i = 1; lua_geti(L, arg, i) == LUA_TSTRING; i++) {
        adept_lua_check_path(L, lua_tostring(L, -1), mode, what);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* ---- replacements for the standard library --------------------------------------------------------------- */

static int w_deny(lua_State *L) { return deny(L, lua_tostring(L, lua_upvalueindex(1))); }

/* Calls upvalue 1 (the original function) with the current arguments. */
static int call_original(lua_State *L) {
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static int w_io_open(lua_State *L) {
    const char *path = luaL_checkstring(L, 1), *mode = luaL_optstring(L, 2, "r");
    adept_lua_check_path(L, path, strpbrk(mode, "wa+") ? ADEPT_SANDBOX_WRITE : ADEPT_SANDBOX_READ, "io.open");
    return call_original(L);
}

static int w_io_lines(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_READ, "io.lines");
    return call_original(L);
}

static int w_io_input(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) adept_lua_check_path(L, lua_tostring(L, 1), ADEPT_SANDBOX_READ, "io.input");
    return call_original(L);
}

static int w_io_output(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) adept_lua_check_path(L, lua_tostring(L, 1), ADEPT_SANDBOX_WRITE, "io.output");
    return call_original(L);
}

static int w_os_remove(lua_State *L) {
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_WRITE, "os.remove");
    return call_original(L);
}

static int w_os_rename(lua_State *L) {
    adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_WRITE, "os.rename");
    adept_lua_check_path(L, luaL_checkstring(L, 2), ADEPT_SANDBOX_WRITE, "os.rename");
    return call_original(L);
}

static void check_text_mode(lua_State *L, int arg) {
    const char *mode = luaL_optstring(L, arg, "t");
    if (!strchr(mode, 't')) deny(L, "loading a binary chunk");
}

/* load(chunk [, name [, mode [, env]]]): text chunks only, whatever mode says. */
static int w_load(lua_State *L) {
    int n = lua_gettop(L);
    if (lua_type(L, 1) == LUA_TSTRING && lua_tostring(L, 1)[0] == LUA_SIGNATURE[0]) deny(L, "loading a binary chunk");
    check_text_mode(L, 3);
    lua_settop(L, n < 4 ? 3 : 4); /* the mode slot exists, so "t" replaces it rather than vanishing */
    lua_pushstring(L, "t");
    lua_replace(L, 3);
    return call_original(L);
}

/* loadfile([path [, mode [, env]]]) */
static int w_loadfile(lua_State *L) {
    int n = lua_gettop(L);
    if (!lua_isnoneornil(L, 1)) adept_lua_check_path(L, luaL_checkstring(L, 1), ADEPT_SANDBOX_READ, "loadfile");
    check_text_mode(L, 2);
    lua_settop(L, n < 3 ? 2 : 3);
    lua_pushstring(L, "t");
    lua_replace(L, 2);
    return call_original(L);
}

static int w_dofile(lua_State *L) {
    const char *path = luaL_optstring(L, 1, NULL);
    if (path) adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "dofile");
    lua_settop(L, 1);
    if (luaL_loadfilex(L, path, "t") != LUA_OK) return lua_error(L);
    lua_call(L, 0, LUA_MULTRET);
    return lua_gettop(L) - 1;
}

/* package.searchers entry for Lua modules: only text files below the recipe's folder (a bundle's members),
   whatever package.path says. */
static int w_searcher(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    sandbox *s = get_sandbox(L);
    if (!s) return 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const char *p = name; *p; p++) luaL_addchar(&b, *p == '.' ? '/' : *p);
    luaL_pushresult(&b);
    const char *rel = lua_tostring(L, -1);
    static const char *const templates[] = {"%s/%s.lua", "%s/%s/init.lua"};
    for (int i = 0; i < 2; i++) {
        const char *file = lua_pushfstring(L, templates[i], s->modules, rel);
        char real[PATH_MAX];
        const char *why;
        struct stat st;
        if (strstr(rel, "..") == NULL && resolve(file, real, &why) == 0 && under(s->modules, real) &&
            stat(real, &st) == 0 && S_ISREG(st.st_mode)) {
            if (luaL_loadfilex(L, real, "t") != LUA_OK)
                return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file, lua_tostring(L, -1));
            if (add_read(s, real) != 0) return luaL_error(L, "sandbox: out of memory");
            lua_pushstring(L, file);
            return 2;
        }
        lua_pop(L, 1);
    }
    lua_pushfstring(L, "no module '%s' beside the sandboxed recipe in %s (Lua files only)", name, s->modules);
    return 1;
}

/* package.searchpath(name, path [, sep [, rep]]): a file is found only when the sandbox lets it be read (the
   modules it loaded, its inputs, its output folder); a probe elsewhere answers "not found", as for a missing file. */
static int w_searchpath(lua_State *L) {
    int top = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    for (int i = 1; i <= top; i++) lua_pushvalue(L, i);
    lua_call(L, top, 2); /* the arguments stay below the two results */
    sandbox *s = get_sandbox(L);
    if (!s || lua_type(L, -2) != LUA_TSTRING) return 2;
    char real[PATH_MAX];
    const char *why;
    if (resolve(lua_tostring(L, -2), real, &why) == 0 && allowed(s, real, ADEPT_SANDBOX_READ)) return 2;
    luaL_pushfail(L);
    lua_pushfstring(L, "no file readable in the sandbox for '%s'", luaL_optstring(L, 1, "?"));
    return 2;
}

static void wrap(lua_State *L, const char *lib, const char *name, lua_CFunction f) {
    lua_getglobal(L, lib);
    lua_getfield(L, -1, name);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static void wrap_global(lua_State *L, const char *name, lua_CFunction f) {
    lua_getglobal(L, name);
    lua_pushcclosure(L, f, 1);
    lua_setglobal(L, name);
}

static void forbid(lua_State *L, const char *lib, const char *name) {
    if (lib) lua_getglobal(L, lib);
    else lua_pushglobaltable(L);
    lua_pushfstring(L, "%s%s%s", lib ? lib : "", lib ? "." : "", name);
    lua_pushcclosure(L, w_deny, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static char *canonical_copy(lua_State *L, const char *path, const char *role) {
    char real[PATH_MAX];
    if (!realpath(path, real)) luaL_error(L, "sandbox: %s '%s': %s", role, path, strerror(errno));
    char *c = strdup(real);
    if (!c) luaL_error(L, "sandbox: out of memory");
    return c;
}

static int install(lua_State *L) {
    const adept_sandbox_config *c = lua_touserdata(L, 1);
    sandbox *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, sandbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    s->out = canonical_copy(L, c->out_dir, "output folder");
    s->modules = canonical_copy(L, c->module_dir, "recipe folder");
    s->read = calloc(c->n_read ? c->n_read : 1, sizeof *s->read);
    if (!s->read) return luaL_error(L, "sandbox: out of memory");
    s->cap_read = c->n_read ? c->n_read : 1;
    for (size_t i = 0; i < c->n_read; i++) {
        s->read[i] = canonical_copy(L, c->read[i], "declared input");
        s->n_read = i + 1;
    }

    /* processes, native code and bytecode */
    forbid(L, "os", "execute");
    forbid(L, "os", "tmpname");
    forbid(L, "io", "popen");
    forbid(L, "io", "tmpfile"); /* a file outside the output folder, if an anonymous one */
    forbid(L, "package", "loadlib");
    forbid(L, "string", "dump");
    /* the debug library can read and replace any upvalue, the registry and metatables: gone entirely */
    lua_pushnil(L);
    lua_setglobal(L, "debug");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setfield(L, -2, "debug");
    lua_pop(L, 1);
    /* files */
    wrap(L, "io", "open", w_io_open);
    wrap(L, "io", "lines", w_io_lines);
    wrap(L, "io", "input", w_io_input);
    wrap(L, "io", "output", w_io_output);
    wrap(L, "os", "remove", w_os_remove);
    wrap(L, "os", "rename", w_os_rename);
    wrap(L, "package", "searchpath", w_searchpath);
    wrap_global(L, "load", w_load);
    wrap_global(L, "loadfile", w_loadfile);
    lua_pushcfunction(L, w_dofile);
    lua_setglobal(L, "dofile");
    /* require: the preload searcher and Lua files beside the recipe; no C modules */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_createtable(L, 2, 0);
    lua_geti(L, -2, 1);
    lua_seti(L, -2, 1);
    lua_pushcfunction(L, w_searcher);
    lua_seti(L, -2, 2);
    lua_setfield(L, -3, "searchers");
    lua_pop(L, 1);
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", s->modules, s->modules);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);

    lua_rawsetp(L, LUA_REGISTRYINDEX, &sandbox_key);
    return 0;
}

int adept_lua_sandbox_install(lua_State *L, const adept_sandbox_config *c) {
    lua_pushcfunction(L, install);
    lua_pushlightuserdata(L, (void *)c);
    return lua_pcall(L, 1, 0, 0);
}

/* adept.sandboxed() -> false, or true and the output folder */
static int l_sandboxed(lua_State *L) {
    sandbox *s = get_sandbox(L);
    lua_pushboolean(L, s != NULL);
    if (!s) return 1;
    lua_pushstring(L, s->out);
    return 2;
}

void adept_open_sandbox(lua_State *L) {
    static const luaL_Reg fns[] = {{"sandboxed", l_sandboxed}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
