/* Reading token ids and batches from Lua values (tensors or arrays), shared by the model, training and
   ADEPT bindings. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "adept/model.h"
#include "binding.h"

/* Token ids from a tensor (any integer-valued dtype) or a Lua array / array of arrays, into a userdata
   left on the stack; *rows = 0 for 1-D input. */
int32_t *adept_lua_read_ids(lua_State *L, int arg, int *rows, int *cols, const char *fname) {
    arg = lua_absindex(L, arg);
    adept_tensor *t = adept_lua_to_tensor(L, arg);
    if (t) {
        if (t->ndim != 1 && t->ndim != 2)
            luaL_error(L, "%s: token ids must be a 1-D or 2-D tensor, got %d dimensions", fname, t->ndim);
        *rows = t->ndim == 2 ? (int)t->shape[0] : 0;
        *cols = (int)t->shape[t->ndim - 1];
        size_t n = adept_tensor_numel(t);
        int32_t *ids = lua_newuserdatauv(L, n * sizeof(int32_t) + 1, 0);
        /* ids on a device are copied to the host first; the copy sits above the result until it is read */
        t = adept_lua_host_tensor(L, t, fname);
        if (t->dtype == ADEPT_I32) {
            memcpy(ids, adept_tensor_data(t), n * sizeof(int32_t));
            lua_pop(L, 1);
            return ids;
        }
        for (size_t i = 0; i < n; i++) {
            double v = adept_tensor_get_flat(t, i);
            if (v != floor(v) || v < -2147483648.0 || v > 2147483647.0)
                luaL_error(L, "%s: token id %f at flat index %d is not an integer", fname, v, (int)i);
            ids[i] = (int32_t)v;
        }
        lua_pop(L, 1);
        return ids;
    }
    if (!lua_istable(L, arg))
        luaL_argerror(L, arg, lua_pushfstring(L, "batch expected (token ids [B, T+1] or {inputs=, targets=}), got %s",
                                              luaL_typename(L, arg)));
    int n1 = (int)luaL_len(L, arg);
    lua_geti(L, arg, 1);
    int two_d = lua_istable(L, -1);
    int n2 = two_d ? (int)luaL_len(L, -1) : n1;
    lua_pop(L, 1);
    *rows = two_d ? n1 : 0;
    *cols = n2;
    int nr = two_d ? n1 : 1;
    int32_t *ids = lua_newuserdatauv(L, (size_t)nr * (size_t)n2 * sizeof(int32_t) + 1, 0);
    for (int r = 0; r < nr; r++) {
        if (two_d) {
            lua_geti(L, arg, r + 1);
            if (!lua_istable(L, -1) || (int)luaL_len(L, -1) != n2)
                luaL_error(L, "%s: row %d of the token ids is not an array of %d ids", fname, r + 1, n2);
        } else lua_pushvalue(L, arg);
        for (int c = 0; c < n2; c++) {
            lua_geti(L, -1, c + 1);
            int isint;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint || v < INT32_MIN || v > INT32_MAX)
                luaL_error(L, "%s: token id at row %d, column %d is not a 32-bit integer", fname, r + 1, c + 1);
            ids[(size_t)r * n2 + c] = (int32_t)v;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return ids;
}

/* A batch: ids [B, T+1] (inputs = [:, :T], targets = [:, 1:]) or {inputs = [B, T], targets = [B, T]}
   (target -1 = ignored). Leaves its buffers on the stack. */
void adept_lua_read_batch(lua_State *L, int arg, adept_batch *b, const char *fname) {
    arg = lua_absindex(L, arg);
    int rows, cols;
    if (lua_istable(L, arg) && lua_getfield(L, arg, "inputs") != LUA_TNIL) {
        int32_t *inputs = adept_lua_read_ids(L, -1, &rows, &cols, fname);
        int B = rows ? rows : 1, T = cols;
        if (lua_getfield(L, arg, "targets") == LUA_TNIL) luaL_error(L, "%s: batch table has inputs but no targets", fname);
        int r2, c2;
        int32_t *targets = adept_lua_read_ids(L, -1, &r2, &c2, fname);
        if ((r2 ? r2 : 1) != B || c2 != T || T < 1)
            luaL_error(L, "%s: inputs are %d x %d but targets are %d x %d", fname, B, T, r2 ? r2 : 1, c2);
        b->B = B; b->T = T; b->inputs = inputs; b->targets = targets;
        return;
    }
    if (lua_istable(L, arg)) lua_pop(L, 1); /* the nil of getfield */
    int32_t *ids = adept_lua_read_ids(L, arg, &rows, &cols, fname);
    int B = rows ? rows : 1;
    if (cols < 2) luaL_error(L, "%s: a batch of token ids needs at least 2 columns (T+1), got %d", fname, cols);
    int T = cols - 1;
    int32_t *buf = lua_newuserdatauv(L, (size_t)B * T * 2 * sizeof(int32_t), 0);
    for (int r = 0; r < B; r++) {
        memcpy(buf + (size_t)r * T, ids + (size_t)r * cols, (size_t)T * sizeof(int32_t));
        memcpy(buf + (size_t)B * T + (size_t)r * T, ids + (size_t)r * cols + 1, (size_t)T * sizeof(int32_t));
    }
    b->B = B; b->T = T; b->inputs = buf; b->targets = buf + (size_t)B * T;
}

