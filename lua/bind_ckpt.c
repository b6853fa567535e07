/* Checkpoint-directory calls added to adept.fs: the run lock (adept.fs.lock -> adept.RunLock), sealing and
   verifying a checkpoint, removing dead writers' temporaries. The logic is in engine/io/runlock.c and
   engine/train/ckpt_dir.c; lua/adept/checkpoint.lua orders the calls. */
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

void adept_open_ckpt(lua_State *L) {
    static const luaL_Reg methods[] = {{"release", runlock_gc}, {NULL, NULL}};
    static const adept_lua_class cls = {RUNLOCK_MT, methods, NULL, runlock_gc, runlock_tostring, NULL};
    adept_lua_new_class(L, &cls);
    static const luaL_Reg fns[] = {{"lock", l_lock}, {"checkpoint_seal", l_seal}, {"checkpoint_verify", l_verify},
                                   {"checkpoint_clean", l_clean}, {NULL, NULL}};
    lua_getfield(L, -1, "fs"); /* adept_open_fs made it */
    adept_lua_setfuncs(L, fns, "adept.fs.");
    lua_pop(L, 1);
}
