/* adept.dist: the process group a recipe runs in (one process unless started by mpirun, mpiexec or srun; see
   adept/dist.h). A recipe written for one process runs unchanged on N: these let it ask where it is. */
#include <string.h>

#include "adept/backend.h"
#include "adept/dist.h"
#include "binding.h"

/* adept.dist.rank() -> 0-based rank of this process */
static int l_rank(lua_State *L) {
    lua_pushinteger(L, adept_comm_rank(adept_comm_world()));
    return 1;
}

/* adept.dist.world_size() -> number of processes */
static int l_world_size(lua_State *L) {
    lua_pushinteger(L, adept_comm_size(adept_comm_world()));
    return 1;
}

/* adept.dist.is_main() -> whether this is rank 0 (the one that writes files) */
static int l_is_main(lua_State *L) {
    lua_pushboolean(L, adept_comm_rank(adept_comm_world()) == 0);
    return 1;
}

/* adept.dist.barrier(): waits for every process */
static int l_barrier(lua_State *L) {
    adept_comm *w = adept_comm_world();
    ADEPT_LUA_TRY(L, "adept.dist.barrier", w->ops->barrier(w));
    return 0;
}

/* adept.dist.all_reduce(t) -> t: the sum over processes of an f32 tensor, in place (the same bits on every rank) */
static int l_all_reduce(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    if (t->dtype != ADEPT_F32)
        return luaL_argerror(L, 1, lua_pushfstring(L, "an f32 tensor is needed, got %s", adept_dtype_name(t->dtype)));
    const adept_backend *be = adept_backend_for(t->storage->device);
    if (!be) return adept_lua_raise(L, "adept.dist.all_reduce");
    adept_comm *w = adept_comm_world();
    ADEPT_LUA_TRY(L, "adept.dist.all_reduce",
                  w->ops->all_reduce_f32(w, be, (float *)adept_tensor_data(t), adept_tensor_numel(t)));
    lua_settop(L, 1);
    return 1;
}

/* adept.dist.sum({x1, x2, ...}) -> {sum over processes of x1, ...}: numbers reduced in double, in rank order
   (the same bits on every rank) — for losses, token counts and importance sums */
static int l_sum(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    double *x = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof(double), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, 1, i) != LUA_TNUMBER)
            return luaL_argerror(L, 1, lua_pushfstring(L, "entry %d is a %s, not a number", (int)i, luaL_typename(L, -1)));
        x[i - 1] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    adept_comm *w = adept_comm_world();
    ADEPT_LUA_TRY(L, "adept.dist.sum", w->ops->all_reduce_f64(w, x, (size_t)n));
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_pushnumber(L, x[i - 1]);
        lua_seti(L, -2, i);
    }
    return 1;
}

/* adept.dist.broadcast(s [, root=0]) -> the string s of rank root, on every rank (tables: encode them with
   adept.json.encode first). Ranks other than root may pass nil. */
static int l_broadcast(lua_State *L) {
    adept_comm *w = adept_comm_world();
    lua_Integer root = luaL_optinteger(L, 2, 0);
    if (root < 0 || root >= adept_comm_size(w))
        return luaL_argerror(L, 2, lua_pushfstring(L, "root %d is not a rank (%d processes)", (int)root,
                                                   adept_comm_size(w)));
    int me = adept_comm_rank(w) == root;
    size_t len = 0;
    const char *s = me ? luaL_checklstring(L, 1, &len) : NULL;
    double n = (double)len; /* the length first, so the others can size their buffer */
    ADEPT_LUA_TRY(L, "adept.dist.broadcast", w->ops->broadcast(w, &n, sizeof n, (int)root));
    len = (size_t)n;
    luaL_Buffer b;
    char *buf = luaL_buffinitsize(L, &b, len);
    if (me) memcpy(buf, s, len);
    ADEPT_LUA_TRY(L, "adept.dist.broadcast", w->ops->broadcast(w, buf, len, (int)root));
    luaL_pushresultsize(&b, len);
    return 1;
}

/* adept.dist.backend() -> "single" | "mpi" | "nccl" */
static int l_backend(lua_State *L) {
    lua_pushstring(L, adept_comm_world()->ops->name);
    return 1;
}

/* adept.dist.mpi_built() -> whether this build carries the MPI communicator */
static int l_mpi_built(lua_State *L) {
    lua_pushboolean(L, adept_dist_mpi_built());
    return 1;
}

void adept_open_dist(lua_State *L) {
    static const luaL_Reg fns[] = {{"rank", l_rank}, {"world_size", l_world_size}, {"is_main", l_is_main},
                                   {"barrier", l_barrier}, {"all_reduce", l_all_reduce}, {"broadcast", l_broadcast},
                                   {"backend", l_backend}, {"mpi_built", l_mpi_built}, {"sum", l_sum}, {NULL, NULL}};
    adept_lua_newlib(L, fns, "adept.dist.");
    lua_setfield(L, -2, "dist");
}
