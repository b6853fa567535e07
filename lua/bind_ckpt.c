/* Checkpoint-directory calls added to adept.fs: the run lock (adept.fs.lock -> adept.RunLock), sealing and
   verifying a checkpoint, removing dead writers' temporaries. The logic is in engine/io/runlock.c and
   engine/train/ckpt_dir.c; lua/adept/checkpoint.lua orders the calls. Also the rows checkpoint calls on adept
   (adept.row_sha256, adept.save_rows, adept.read_rows; engine/train/checkpoint.c). */
#include <stdlib.h>
#include <string.h>

#include "adept/checkpoint.h"
#include "adept/ckpt_dir.h"
#include "adept/runlock.h"
#include "binding.h"

#define RUNLOCK_MT "adept.RunLock"

typedef struct runlock_box {
    adept_runlock *lock; /* NULL once released */
} runlock_box;

/* adept.fs.lock(path) -> adept.RunLock; raises naming the holder's PID when another open file holds it */
static int l_lock(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    runlock_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->lock = NULL;
    luaL_setmetatable(L, RUNLOCK_MT);
    ADEPT_LUA_TRY(L, "adept.fs.lock", adept_runlock_acquire(path, &b->lock));
    return 1;
}

/* :release(), :free(), __close and __gc: releasing twice does nothing */
static int runlock_gc(lua_State *L) {
    runlock_box *b = luaL_checkudata(L, 1, RUNLOCK_MT);
    adept_runlock_release(b->lock);
    b->lock = NULL;
    return 0;
}

static int runlock_tostring(lua_State *L) {
    runlock_box *b = luaL_checkudata(L, 1, RUNLOCK_MT);
    if (!b->lock) lua_pushstring(L, "adept.RunLock(freed)");
    else lua_pushfstring(L, "adept.RunLock(%s)", adept_runlock_path(b->lock));
    return 1;
}

static lua_Integer check_step(lua_State *L, int arg, const char *what) {
    return adept_lua_check_int_range(L, arg, what, 0, (lua_Integer)1 << 53);
}

/* adept.fs.checkpoint_seal(dir, step) */
static int l_seal(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    ADEPT_LUA_TRY(L, "adept.fs.checkpoint_seal", adept_ckpt_seal(dir, check_step(L, 2, "step")));
    return 0;
}

/* adept.fs.checkpoint_verify(dir, step [, max_step]) -> sealed (false: no manifest, an older checkpoint) */
static int l_verify(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    lua_Integer step = check_step(L, 2, "step");
    lua_Integer max = lua_isnoneornil(L, 3) ? -1 : check_step(L, 3, "max_step");
    int sealed = 0;
    ADEPT_LUA_TRY(L, "adept.fs.checkpoint_verify", adept_ckpt_verify(dir, step, max, &sealed));
    lua_pushboolean(L, sealed);
    return 1;
}

/* adept.fs.checkpoint_clean(dir) -> number of dead writers' temporaries removed */
static int l_clean(lua_State *L) {
    int removed = 0;
    ADEPT_LUA_TRY(L, "adept.fs.checkpoint_clean", adept_ckpt_remove_stale(luaL_checkstring(L, 1), &removed));
    lua_pushinteger(L, removed);
    return 1;
}

/* The row index of `name` in m; raises naming it when the model has no such row. */
static size_t check_row(lua_State *L, adept_model *m, const char *name, const char *what) {
    adept_param *p = adept_model_find(m, name);
    if (!p) luaL_error(L, "%s: %s is not a parameter of the model", what, name);
    return (size_t)(p - adept_model_param(m, 0));
}

/* adept.row_sha256(m, name) -> hex: SHA-256 of the row's values as f32 (adept/checkpoint.h) */
static int l_row_sha256(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    size_t i = check_row(L, m, luaL_checkstring(L, 2), "adept.row_sha256");
    char hex[ADEPT_SHA256_HEX];
    ADEPT_LUA_TRY(L, "adept.row_sha256", adept_model_row_sha256(m, i, hex));
    lua_pushstring(L, hex);
    return 1;
}

/* adept.save_rows(m, path, names, base_hex, base_rows): the named rows as f32 with the base identity */
static int l_save_rows(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    const char *path = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    const char *base = luaL_checkstring(L, 4);
    lua_Integer base_rows = adept_lua_check_int_range(L, 5, "base_rows", 0, (lua_Integer)1 << 53);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_WRITE, "adept.save_rows");
    size_t n = adept_model_num_params(m);
    unsigned char *held = lua_newuserdatauv(L, n ? n : 1, 0); /* owned by the stack: an error leaks nothing */
    memset(held, 0, n ? n : 1);
    lua_Integer len = luaL_len(L, 3);
    for (lua_Integer k = 1; k <= len; k++) {
        lua_geti(L, 3, k);
        const char *name = lua_tostring(L, -1);
        if (!name) return luaL_argerror(L, 3, "array of row names expected");
        held[check_row(L, m, name, "adept.save_rows")] = 1;
        lua_pop(L, 1);
    }
    ADEPT_LUA_TRY(L, "adept.save_rows", adept_ckpt_rows_save(m, held, base, (int64_t)base_rows, path));
    return 0;
}

/* adept.read_rows(path [, m [, apply]]) -> the "checkpoint" metadata (JSON text): checks the file (against m
   when given) and copies its rows into m when apply is true */
static int l_read_rows(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    adept_model *m = lua_isnoneornil(L, 2) ? NULL : adept_lua_check_model(L, 2);
    int apply = lua_toboolean(L, 3);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept.read_rows");
    char *meta = NULL;
    ADEPT_LUA_TRY(L, "adept.read_rows", adept_ckpt_rows_read(path, m, apply, &meta));
    lua_pushstring(L, meta);
    free(meta);
    return 1;
}

void adept_open_ckpt(lua_State *L) {
    static const luaL_Reg methods[] = {{"release", runlock_gc}, {NULL, NULL}};
    static const adept_lua_class cls = {RUNLOCK_MT, methods, NULL, runlock_gc, runlock_tostring, NULL};
    adept_lua_new_class(L, &cls);
    static const luaL_Reg fns[] = {{"lock", l_lock}, {"checkpoint_seal", l_seal}, {"checkpoint_verify", l_verify},
                                   {"checkpoint_clean", l_clean}, {NULL, NULL}};
    static const luaL_Reg rows[] = {{"row_sha256", l_row_sha256}, {"save_rows", l_save_rows}, {"read_rows", l_read_rows},
                                    {NULL, NULL}};
    adept_lua_setfuncs(L, rows, "adept.");
    lua_getfield(L, -1, "fs"); /* adept_open_fs made it */
    adept_lua_setfuncs(L, fns, "adept.fs.");
    lua_pop(L, 1);
}
