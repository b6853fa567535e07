/* Tensor bindings: adept.tensor/zeros/randn and the methods and operators of adept.Tensor. Arguments are
   checked here and every computation is a call into engine/include/adept/ops.h. Conventions (docs/tensors.md):
   element indices and dims are 1-based like torch7 (negative dims count from the end), topk returns 1-based
   flat indices, and adept.tensor builds a tensor from data, a nested table of numbers (zeros takes a shape).
   A tensor on a device (a model's parameter there, t:to("cuda")) is read and written through copies: get, set,
   table and tostring move the elements they touch; ops run through the device's ops table. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "adept/device.h"
#include "adept/ops.h"
#include "adept/rng.h"
#include "binding.h"

/* Raises the engine's message, which already names the op and the shapes ("add: shapes [2] and [3] differ"). */
static int raise_op(lua_State *L) { return luaL_error(L, "%s", adept_last_error()); }
#define OP_TRY(L, expr)                           \
    do {                                          \
        if ((expr) != ADEPT_OK) return raise_op(L); \
    } while (0)

/* Pushes a new handle; large tensors also advance the collector as if Lua had allocated their bytes, so
   loops that make big temporaries do not outrun the GC (Lua cannot see engine memory otherwise). */
static void push_new(lua_State *L, adept_tensor *t) {
    adept_lua_push_tensor(L, t);
    size_t kb = adept_tensor_nbytes(t) >> 10;
    if (kb >= 1024) lua_gc(L, LUA_GCSTEP, kb > 1 << 30 ? 1 << 30 : (int)kb);
}

/* The type name the standard errors use: the metatable's __name for userdata ("adept.Tensor"). */
static const char *type_name(lua_State *L, int arg) {
    if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING) return lua_tostring(L, -1);
    if (lua_type(L, arg) == LUA_TLIGHTUSERDATA) return "light userdata";
    return luaL_typename(L, arg);
}

/* Rejects arguments beyond the first `max`: "bad argument #2 to 'abs' (no value expected, got number)". */
static void check_nargs(lua_State *L, int max) {
    if (lua_gettop(L) > max)
        luaL_argerror(L, max + 1, lua_pushfstring(L, "no value expected, got %s", type_name(L, max + 1)));
}

static adept_dtype opt_dtype(lua_State *L, int arg, adept_dtype def) {
    if (lua_isnoneornil(L, arg)) return def;
    if (lua_type(L, arg) != LUA_TSTRING)
        luaL_argerror(L, arg, lua_pushfstring(L, "dtype name expected, got %s", luaL_typename(L, arg)));
    adept_dtype d;
    if (adept_dtype_parse(lua_tostring(L, arg), &d) != ADEPT_OK) luaL_argerror(L, arg, adept_last_error());
    return d;
}

static const char *shape_str(const adept_tensor *t, char *buf, size_t cap) {
    return adept_shape_str(t->ndim, t->shape, buf, cap);
}

/* ---- constructors ---- */

/* Shape of a nested table from its first elements; the fill below checks every other element against it. */
static int infer_shape(lua_State *L, int arg, int64_t *shape) {
    int nd = 0;
    lua_pushvalue(L, arg);
    while (lua_istable(L, -1)) {
        if (nd == ADEPT_MAX_DIMS)
            luaL_argerror(L, arg, lua_pushfstring(L, "nested deeper than %d dimensions", ADEPT_MAX_DIMS));
        lua_Integer n = luaL_len(L, -1);
        shape[nd++] = n;
        if (n == 0) break;
        lua_geti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    return nd;
}

/* Stores the number at `idx` into element i: integers exactly (through lua_Integer, so i64 keeps all 64
   bits), floats checked against the dtype (a finite value that would overflow, or a fraction for an integer
   dtype, is refused). */
static adept_status store(lua_State *L, int idx, adept_tensor *t, size_t i) {
    if (lua_isinteger(L, idx)) return adept_tensor_set_flat_int(t, i, lua_tointeger(L, idx));
    return adept_tensor_set_flat_checked(t, i, lua_tonumber(L, idx));
}

/* Copies the table at the top of the stack (level `d`) into t from flat index *pos; `path` names the element. */
static void fill_from(lua_State *L, int arg, adept_tensor *t, int d, size_t *pos, char *path, size_t plen) {
    luaL_checkstack(L, 4, "nested table too deep");
    lua_Integer n = luaL_len(L, -1);
    if (n != t->shape[d])
        luaL_argerror(L, arg, lua_pushfstring(L, "ragged nested table: element %s has %I entries, expected %I",
                                              plen ? path : "[]", (lua_Integer)n, (lua_Integer)t->shape[d]));
    for (lua_Integer i = 1; i <= n; i++) {
        int len = snprintf(path + plen, 200 - plen, "[%lld]", (long long)i);
        size_t nlen = plen + (len > 0 && (size_t)len < 200 - plen ? (size_t)len : 0);
        lua_geti(L, -1, i);
        if (d + 1 < t->ndim) {
            if (!lua_istable(L, -1))
                luaL_argerror(L, arg, lua_pushfstring(L, "element %s is a %s, expected a table of %I entries", path,
                                                      luaL_typename(L, -1), (lua_Integer)t->shape[d + 1]));
            fill_from(L, arg, t, d + 1, pos, path, nlen);
        } else {
            if (lua_type(L, -1) != LUA_TNUMBER)
                luaL_argerror(L, arg, lua_pushfstring(L, "element %s is a %s, expected a number", path,
                                                      luaL_typename(L, -1)));
            if (store(L, -1, t, (*pos)++) != ADEPT_OK)
                luaL_argerror(L, arg, lua_pushfstring(L, "element %s: %s", path, adept_last_error()));
        }
        lua_pop(L, 1);
        path[plen] = '\0';
    }
}

/* adept.tensor(data [, dtype]): a nested table of numbers, or one number for a 0-dimensional tensor. */
static int l_tensor(lua_State *L) {
    check_nargs(L, 2);
    adept_dtype dt = opt_dtype(L, 2, ADEPT_F32);
    int64_t shape[ADEPT_MAX_DIMS];
    int nd;
    if (lua_type(L, 1) == LUA_TNUMBER) nd = 0;
    else if (lua_istable(L, 1)) nd = infer_shape(L, 1, shape);
    else return luaL_argerror(L, 1, lua_pushfstring(L, "table of numbers expected, got %s", luaL_typename(L, 1)));
    adept_tensor *t;
    ADEPT_LUA_TRY(L, "tensor", adept_tensor_new(dt, nd, shape, &t));
    push_new(L, t); /* owned by Lua from here, so an error while filling frees it */
    if (nd == 0) {
        if (store(L, 1, t, 0) != ADEPT_OK) return luaL_argerror(L, 1, adept_last_error());
    } else {
        char path[200] = "";
        size_t pos = 0;
        lua_pushvalue(L, 1);
        fill_from(L, 1, t, 0, &pos, path, 0);
        lua_pop(L, 1);
    }
    return 1;
}

static int l_zeros(lua_State *L) {
    check_nargs(L, 2);
    int64_t shape[ADEPT_MAX_DIMS];
    int nd = adept_lua_check_shape(L, 1, shape, "zeros");
    adept_dtype dt = opt_dtype(L, 2, ADEPT_F32);
    adept_tensor *t;
    ADEPT_LUA_TRY(L, "zeros", adept_tensor_new(dt, nd, shape, &t));
    push_new(L, t);
    return 1;
}

/* adept.randn(shape [, seed]): standard normal f32, element i a pure function of (seed, i). */
static int l_randn(lua_State *L) {
    check_nargs(L, 2);
    int64_t shape[ADEPT_MAX_DIMS];
    int nd = adept_lua_check_shape(L, 1, shape, "randn");
    lua_Integer seed = luaL_optinteger(L, 2, 0);
    adept_tensor *t;
    ADEPT_LUA_TRY(L, "randn", adept_tensor_new(ADEPT_F32, nd, shape, &t));
    adept_rng_fill_normal(adept_tensor_f32(t), adept_tensor_numel(t), (uint64_t)seed, 0, 0.0f, 1.0f);
    push_new(L, t);
    return 1;
}

/* ---- inspection ---- */

static int l_shape(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    check_nargs(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

static int l_numel(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    check_nargs(L, 1);
    lua_pushinteger(L, (lua_Integer)adept_tensor_numel(t));
    return 1;
}

static int l_dtype(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    check_nargs(L, 1);
    lua_pushstring(L, adept_dtype_name(t->dtype));
    return 1;
}

static void push_element(lua_State *L, const adept_tensor *t, size_t i) {
    if (adept_dtype_is_float(t->dtype)) lua_pushnumber(L, adept_tensor_get_flat(t, i));
    else lua_pushinteger(L, (lua_Integer)adept_tensor_get_flat_int(t, i));
}

/* One element of a tensor anywhere as a 0-dimensional host tensor over `buf` (no allocation): a device tensor's
   element is copied in; a host tensor's too, which costs the same. */
typedef struct element {
    adept_storage storage;
    adept_tensor t;
    uint64_t buf;
} element;

static adept_tensor *element_of(element *e, adept_dtype dtype) {
    memset(e, 0, sizeof *e);
    e->storage.data = &e->buf;
    e->storage.nbytes = sizeof e->buf;
    e->storage.device = ADEPT_CPU;
    e->storage.refcount = 1;
    e->t.storage = &e->storage;
    e->t.dtype = dtype;
    return &e->t;
}

static void push_element_any(lua_State *L, const adept_tensor *t, size_t i) {
    if (adept_tensor_device(t) == ADEPT_CPU) {
        push_element(L, t, i);
        return;
    }
    element e;
    adept_tensor *h = element_of(&e, t->dtype);
    size_t es = adept_dtype_size(t->dtype);
    if (adept_tensor_read(t, i * es, &e.buf, es) != ADEPT_OK) adept_lua_raise(L, "get");
    push_element(L, h, 0);
}

/* Flat offset of the 1-based indices at stack positions first.. (exactly ndim of them). */
static size_t flat_index(lua_State *L, const adept_tensor *t, int first) {
    int given = lua_gettop(L) - first + 1;
    char sb[128];
    if (given > t->ndim)
        luaL_argerror(L, first + t->ndim, lua_pushfstring(L, "no value expected: a %s tensor takes %d indices, got %d",
                                                          shape_str(t, sb, sizeof sb), t->ndim, given));
    size_t flat = 0;
    for (int d = 0; d < t->ndim; d++) {
        int arg = first + d;
        if (lua_isnone(L, arg))
            luaL_argerror(L, arg, lua_pushfstring(L, "index expected for dimension %d of a %s tensor, got no value",
                                                  d + 1, shape_str(t, sb, sizeof sb)));
        lua_Integer i = luaL_checkinteger(L, arg);
        if (i < 1 || i > t->shape[d])
            luaL_argerror(L, arg, lua_pushfstring(L, "index %I out of range for dimension %d of size %I; indices are 1-based",
                                                  i, d + 1, (lua_Integer)t->shape[d]));
        flat = flat * (size_t)t->shape[d] + (size_t)(i - 1);
    }
    return flat;
}

static int l_get(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    push_element_any(L, t, flat_index(L, t, 2));
    return 1;
}

/* t:set(v, i, ...) returns t, so calls chain. On a device the element is stored on the host, then copied over. */
static int l_set(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    luaL_checknumber(L, 2);
    size_t i = flat_index(L, t, 3);
    if (adept_tensor_device(t) == ADEPT_CPU) {
        if (store(L, 2, t, i) != ADEPT_OK) return luaL_argerror(L, 2, adept_last_error());
    } else {
        element e;
        adept_tensor *h = element_of(&e, t->dtype);
        size_t es = adept_dtype_size(t->dtype);
        if (store(L, 2, h, 0) != ADEPT_OK) return luaL_argerror(L, 2, adept_last_error());
        ADEPT_LUA_TRY(L, "set", adept_tensor_write(t, i * es, &e.buf, es));
    }
    lua_settop(L, 1);
    return 1;
}

/* t:device() -> "cpu" | "cuda" */
static int l_device(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    check_nargs(L, 1);
    lua_pushstring(L, adept_device_name(adept_tensor_device(t)));
    return 1;
}

static void push_table(lua_State *L, const adept_tensor *t, int d, size_t *pos) {
    luaL_checkstack(L, 3, "tensor too deep");
    lua_createtable(L, t->shape[d] < INT32_MAX ? (int)t->shape[d] : 0, 0);
    for (int64_t i = 0; i < t->shape[d]; i++) {
        if (d + 1 < t->ndim) push_table(L, t, d + 1, pos);
        else push_element(L, t, (*pos)++);
        lua_seti(L, -2, i + 1);
    }
}

/* t:table(): nested Lua tables (a number for a 0-dimensional tensor). */
static int l_table(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    check_nargs(L, 1);
    t = adept_lua_host_tensor(L, t, "table"); /* one copy of a device tensor, left below the result */
    size_t pos = 0;
    if (t->ndim == 0) push_element(L, t, 0);
    else push_table(L, t, 0, &pos);
    return 1;
}

/* "adept.Tensor(f32, [2, 3], values=[1, 2, 3, 4, 5, 6])"; six values at most (first three, last three). */
static int l_tostring(lua_State *L) {
    adept_tensor_box *box = adept_lua_check_tensor_box(L, 1);
    if (!box->t) {
        lua_pushstring(L, "adept.Tensor(freed)");
        return 1;
    }
    const adept_tensor *t = box->t;
    const char *where = adept_tensor_device(t) == ADEPT_CPU ? NULL : adept_device_name(adept_tensor_device(t));
    if (where) t = adept_lua_host_tensor(L, t, "tostring"); /* the values shown are copied from the device */
    char sb[128], num[64];
    size_t n = adept_tensor_numel(t);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "adept.Tensor(");
    luaL_addstring(&b, adept_dtype_name(t->dtype));
    luaL_addstring(&b, ", ");
    luaL_addstring(&b, shape_str(t, sb, sizeof sb));
    luaL_addstring(&b, ", values=[");
    for (size_t i = 0; i < n; i++) {
        if (n > 6 && i == 3) {
            luaL_addstring(&b, ", ...");
            i = n - 3;
        }
        if (adept_dtype_is_float(t->dtype)) snprintf(num, sizeof num, "%s%.6g", i ? ", " : "", adept_tensor_get_flat(t, i));
        else snprintf(num, sizeof num, "%s%lld", i ? ", " : "", (long long)adept_tensor_get_flat_int(t, i));
        luaL_addstring(&b, num);
    }
    luaL_addstring(&b, "]");
    if (where) {
        luaL_addstring(&b, ", device=");
        luaL_addstring(&b, where);
    }
    luaL_addstring(&b, ")");
    luaL_pushresult(&b);
    return 1;
}

static int l_len(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    if (t->ndim == 0) return luaL_error(L, "len: a 0-dimensional tensor has no length");
    lua_pushinteger(L, t->shape[0]);
    return 1;
}

/* ---- element-wise ---- */

static int unary(lua_State *L, adept_status (*fn)(const adept_tensor *, adept_tensor **)) {
    adept_tensor *t = adept_lua_check_tensor(L, 1), *out;
    check_nargs(L, 1);
    OP_TRY(L, fn(t, &out));
    push_new(L, out);
    return 1;
}

static int l_abs(lua_State *L) { return unary(L, adept_ops_abs); }
static int l_square(lua_State *L) { return unary(L, adept_ops_square); }
static int l_sqrt(lua_State *L) { return unary(L, adept_ops_sqrt); }
static int l_clone(lua_State *L) { return unary(L, adept_ops_clone); }
static int l_unm(lua_State *L) { /* __unm receives its operand twice */
    adept_tensor *t = adept_lua_check_tensor(L, 1), *out;
    OP_TRY(L, adept_ops_neg(t, &out));
    push_new(L, out);
    return 1;
}

static adept_status binary_tensor(adept_binary_op op, const adept_tensor *a, const adept_tensor *b, adept_tensor **out) {
    switch (op) {
    case ADEPT_OP_ADD: return adept_ops_add(a, b, out);
    case ADEPT_OP_SUB: return adept_ops_sub(a, b, out);
    case ADEPT_OP_MUL: return adept_ops_mul(a, b, out);
    default: return adept_ops_div(a, b, out);
    }
}

/* t:add(u_or_number) and friends. */
static int method_binary(lua_State *L, adept_binary_op op) {
    adept_tensor *a = adept_lua_check_tensor(L, 1), *out;
    check_nargs(L, 2);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        OP_TRY(L, adept_ops_scalar_new(op, a, lua_tonumber(L, 2), &out));
    } else {
        adept_tensor *b = adept_lua_to_tensor(L, 2);
        if (!b) return luaL_argerror(L, 2, lua_pushfstring(L, "tensor or number expected, got %s", type_name(L, 2)));
        OP_TRY(L, binary_tensor(op, a, b, &out));
    }
    push_new(L, out);
    return 1;
}

static int l_add(lua_State *L) { return method_binary(L, ADEPT_OP_ADD); }
static int l_sub(lua_State *L) { return method_binary(L, ADEPT_OP_SUB); }
static int l_mul(lua_State *L) { return method_binary(L, ADEPT_OP_MUL); }
static int l_div(lua_State *L) { return method_binary(L, ADEPT_OP_DIV); }

/* t:scale_rows(w): row r of t times w[r] (adept_ops_scale_rows). */
static int l_scale_rows(lua_State *L) {
    adept_tensor *a = adept_lua_check_tensor(L, 1), *out;
    check_nargs(L, 2);
    adept_tensor *w = adept_lua_to_tensor(L, 2);
    if (!w) return luaL_argerror(L, 2, lua_pushfstring(L, "tensor of row weights expected, got %s", type_name(L, 2)));
    OP_TRY(L, adept_ops_scale_rows_new(a, w, &out));
    push_new(L, out);
    return 1;
}

/* Operators: either side may be a number (2 - t is rsub, 2 / t is rdiv). */
static int meta_binary(lua_State *L, adept_binary_op op, adept_binary_op reversed) {
    if (lua_type(L, 1) == LUA_TNUMBER) {
        adept_tensor *b = adept_lua_check_tensor(L, 2), *out;
        OP_TRY(L, adept_ops_scalar_new(reversed, b, lua_tonumber(L, 1), &out));
        push_new(L, out);
        return 1;
    }
    if (!adept_lua_to_tensor(L, 1))
        return luaL_argerror(L, 1, lua_pushfstring(L, "tensor or number expected, got %s", type_name(L, 1)));
    return method_binary(L, op);
}

static int l_meta_add(lua_State *L) { return meta_binary(L, ADEPT_OP_ADD, ADEPT_OP_ADD); }
static int l_meta_sub(lua_State *L) { return meta_binary(L, ADEPT_OP_SUB, ADEPT_OP_RSUB); }
static int l_meta_mul(lua_State *L) { return meta_binary(L, ADEPT_OP_MUL, ADEPT_OP_MUL); }
static int l_meta_div(lua_State *L) { return meta_binary(L, ADEPT_OP_DIV, ADEPT_OP_RDIV); }

/* ---- reductions ---- */

/* A 1-based (or negative, from the end) dimension argument, as a 0-based dimension. */
static int check_dim(lua_State *L, int arg, const adept_tensor *t) {
    lua_Integer d = luaL_checkinteger(L, arg);
    char sb[128];
    if (d == 0 || d > t->ndim || d < -t->ndim)
        luaL_argerror(L, arg, lua_pushfstring(L, "dimension %I out of range for a %s tensor (dims are 1-based, "
                                                 "negative counts from the end)", d, shape_str(t, sb, sizeof sb)));
    return (int)(d > 0 ? d - 1 : t->ndim + d);
}

static int reduce(lua_State *L, adept_reduce_op op, int takes_dim) {
    adept_tensor *t = adept_lua_check_tensor(L, 1);
    check_nargs(L, takes_dim ? 2 : 1);
    if (takes_dim && !lua_isnoneornil(L, 2)) {
        int dim = check_dim(L, 2, t);
        adept_tensor *out;
        OP_TRY(L, op == ADEPT_REDUCE_SUM ? adept_ops_sum_dim(t, dim, &out) : adept_ops_mean_dim(t, dim, &out));
        push_new(L, out);
        return 1;
    }
    double r;
    OP_TRY(L, adept_ops_reduce(op, t, &r));
    lua_pushnumber(L, r);
    return 1;
}

static int l_sum(lua_State *L) { return reduce(L, ADEPT_REDUCE_SUM, 1); }
static int l_mean(lua_State *L) { return reduce(L, ADEPT_REDUCE_MEAN, 1); }
static int l_max(lua_State *L) { return reduce(L, ADEPT_REDUCE_MAX, 0); }
static int l_min(lua_State *L) { return reduce(L, ADEPT_REDUCE_MIN, 0); }
static int l_norm(lua_State *L) { return reduce(L, ADEPT_REDUCE_NORM, 0); }

static int pair(lua_State *L, adept_status (*fn)(const adept_tensor *, const adept_tensor *, double *)) {
    adept_tensor *a = adept_lua_check_tensor(L, 1), *b = adept_lua_check_tensor(L, 2);
    check_nargs(L, 2);
    double r;
    OP_TRY(L, fn(a, b, &r));
    lua_pushnumber(L, r);
    return 1;
}

static int l_dot(lua_State *L) { return pair(L, adept_ops_dot); }
static int l_cosine(lua_State *L) { return pair(L, adept_ops_cosine); }

/* t:topk(k) -> values tensor [k], Lua array of 1-based flat indices. */
static int l_topk(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1), *values;
    check_nargs(L, 2);
    lua_Integer k = luaL_checkinteger(L, 2);
    size_t n = adept_tensor_numel(t);
    char sb[128];
    if (k < 0 || (lua_Unsigned)k > n)
        return luaL_argerror(L, 2, lua_pushfstring(L, "k must be between 0 and %I for a %s tensor, got %I",
                                                   (lua_Integer)n, shape_str(t, sb, sizeof sb), k));
    int64_t *idx = lua_newuserdatauv(L, (size_t)k * sizeof *idx + 1, 0); /* collected even if we raise */
    OP_TRY(L, adept_ops_topk(t, (size_t)k, &values, idx));
    push_new(L, values);
    lua_createtable(L, k < INT32_MAX ? (int)k : 0, 0);
    for (lua_Integer j = 0; j < k; j++) {
        lua_pushinteger(L, idx[j] + 1);
        lua_seti(L, -2, j + 1);
    }
    return 2;
}

/* t:to(dtype) converts; t:to("cpu" | "cuda") copies to a device (a new tensor, also when t lives there). A
   conversion of a device tensor runs on the host and the result goes back to t's device. */
static int l_to(lua_State *L) {
    adept_tensor *t = adept_lua_check_tensor(L, 1), *out;
    check_nargs(L, 2);
    if (lua_isnoneornil(L, 2)) return luaL_argerror(L, 2, "dtype name expected, got no value");
    adept_device dev;
    if (lua_type(L, 2) == LUA_TSTRING && adept_device_parse(lua_tostring(L, 2), &dev) == ADEPT_OK) {
        ADEPT_LUA_TRY(L, "to", adept_tensor_copy_to(t, dev, &out));
        push_new(L, out);
        return 1;
    }
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_argerror(L, 2, lua_pushfstring(L, "dtype name expected, got %s", luaL_typename(L, 2)));
    adept_dtype dt;
    if (adept_dtype_parse(lua_tostring(L, 2), &dt) != ADEPT_OK)
        return luaL_argerror(L, 2, lua_pushfstring(L, "%s; or a device: cpu, cuda", adept_last_error()));
    if (adept_tensor_device(t) == ADEPT_CPU) {
        ADEPT_LUA_TRY(L, "to", adept_tensor_to_dtype(t, dt, &out));
        push_new(L, out);
        return 1;
    }
    adept_tensor *h = adept_lua_host_tensor(L, t, "to"), *conv;
    ADEPT_LUA_TRY(L, "to", adept_tensor_to_dtype(h, dt, &conv));
    adept_lua_push_tensor(L, conv); /* owned by Lua before the next call can fail */
    ADEPT_LUA_TRY(L, "to", adept_tensor_copy_to(conv, adept_tensor_device(t), &out));
    push_new(L, out);
    return 1;
}

static int tensor_gc(lua_State *L) {
    adept_tensor_box *box = luaL_checkudata(L, 1, ADEPT_TENSOR_MT);
    adept_tensor_free(box->t); /* idempotent: NULL after the first call */
    box->t = NULL;
    return 0;
}

void adept_lua_tensor_metatable(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"shape", l_shape}, {"numel", l_numel},   {"dtype", l_dtype},   {"get", l_get},     {"set", l_set},
        {"clone", l_clone}, {"table", l_table},   {"abs", l_abs},       {"square", l_square}, {"sqrt", l_sqrt},
        {"add", l_add},     {"sub", l_sub},       {"mul", l_mul},       {"div", l_div},     {"sum", l_sum},
        {"mean", l_mean},   {"max", l_max},       {"min", l_min},       {"norm", l_norm},   {"dot", l_dot},
        {"cosine", l_cosine}, {"topk", l_topk},   {"to", l_to},         {"device", l_device},
        {"scale_rows", l_scale_rows}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__len", l_len},   {"__add", l_meta_add}, {"__sub", l_meta_sub}, {"__mul", l_meta_mul},
        {"__div", l_meta_div}, {"__unm", l_unm},  {NULL, NULL}};
    static const adept_lua_class cls = {ADEPT_TENSOR_MT, methods, meta, tensor_gc, l_tostring, NULL};
    adept_lua_new_class(L, &cls);
}

void adept_open_tensor(lua_State *L) {
    adept_lua_tensor_metatable(L);
    static const luaL_Reg fns[] = {{"tensor", l_tensor}, {"zeros", l_zeros}, {"randn", l_randn}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
