/* Model compute bindings: batches from int32 tensors or Lua arrays, m:loss, m:loss_and_grad, m:logits,
   m:generate. Buffers are Lua userdata so an error raised half-way leaks nothing. */
#include <math.h>
#include <string.h>

#include "adept/model.h"
#include "binding.h"

/* Reads a 1-D or 2-D array of token ids (tensor of any integer-valued dtype, or Lua array / array of arrays).
   Pushes a userdata holding the ids and returns it; *rows = 0 for 1-D input. */
static int32_t *read_ids(lua_State *L, int arg, int *rows, int *cols, const char *fname) {
    arg = lua_absindex(L, arg);
    adept_tensor *t = adept_lua_to_tensor(L, arg);
    if (t) {
        if (t->ndim != 1 && t->ndim != 2)
            luaL_error(L, "%s: token ids must be a 1-D or 2-D tensor, got %d dimensions", fname, t->ndim);
        *rows = t->ndim == 2 ? (int)t->shape[0] : 0;
        *cols = (int)t->shape[t->ndim - 1];
        size_t n = adept_tensor_numel(t);
        int32_t *ids = lua_newuserdatauv(L, n * sizeof(int32_t) + 1, 0);
        for (size_t i = 0; i < n; i++) {
            double v = adept_tensor_get_flat(t, i);
            if (v != floor(v) || v < -2147483648.0 || v > 2147483647.0)
                luaL_error(L, "%s: token id %f at flat index %d is not an integer", fname, v, (int)i);
            ids[i] = (int32_t)v;
        }
        return ids;
    }
    if (!lua_istable(L, arg))
        luaL_argerror(L, arg, lua_pushfstring(L, "token ids (tensor or table) expected, got %s", luaL_typename(L, arg)));
    int n1 = (int)luaL_len(L, arg);
    lua_geti(L, arg, 1);
    int two_d = lua_istable(L, -1);
    int n2 = two_d ? (int)luaL_len(L, -1) : n1;
    lua_pop(L, 1);
    *rows = two_d ? n1 : 0;
    *cols = n2;
    size_t n = (size_t)(two_d ? n1 : 1) * n2;
    int32_t *ids = lua_newuserdatauv(L, n * sizeof(int32_t) + 1, 0);
    for (int r = 0; r < (two_d ? n1 : 1); r++) {
        if (two_d) {
            lua_geti(L, arg, r + 1);
            if (!lua_istable(L, -1) || (int)luaL_len(L, -1) != n2)
                luaL_error(L, "%s: row %d of the token ids is not an array of %d ids", fname, r + 1, n2);
        } else lua_pushvalue(L, arg);
        for (int c = 0; c < n2; c++) {
            lua_geti(L, -1, c + 1);
            int isint;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint) luaL_error(L, "%s: token id at row %d, column %d is not an integer", fname, r + 1, c + 1);
            ids[(size_t)r * n2 + c] = (int32_t)v;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return ids;
}

/* A batch: [B, T+1] ids (inputs = [:, :T], targets = [:, 1:]) or {inputs=[B,T], targets=[B,T]}.
   Leaves its buffers on the stack. */
static void read_batch(lua_State *L, int arg, adept_batch *b, const char *fname) {
    int rows, cols;
    if (lua_istable(L, arg) && lua_getfield(L, arg, "inputs") != LUA_TNIL) {
        int in = lua_gettop(L);
        int32_t *inputs = read_ids(L, in, &rows, &cols, fname);
        int B = rows ? rows : 1, T = cols;
        if (lua_getfield(L, arg, "targets") == LUA_TNIL) luaL_error(L, "%s: batch table has inputs but no targets", fname);
        int r2, c2;
        int32_t *targets = read_ids(L, -1, &r2, &c2, fname);
        if ((r2 ? r2 : 1) != B || c2 != T)
            luaL_error(L, "%s: inputs are %d x %d but targets are %d x %d", fname, B, T, r2 ? r2 : 1, c2);
        b->B = B; b->T = T; b->inputs = inputs; b->targets = targets;
        return;
    }
    if (lua_istable(L, arg)) lua_pop(L, 1); /* the nil of getfield */
    int32_t *ids = read_ids(L, arg, &rows, &cols, fname);
    int B = rows ? rows : 1;
    if (cols < 2) luaL_error(L, "%s: a batch of token ids needs at least 2 columns (T+1), got %d", fname, cols);
    int T = cols - 1;
    int32_t *buf = lua_newuserdatauv(L, (size_t)B * T * 2 * sizeof(int32_t), 0);
    for (int r = 0; r < B; r++)
        for (int t = 0; t < T; t++) {
            buf[(size_t)r * T + t] = ids[(size_t)r * cols + t];
            buf[(size_t)B * T + (size_t)r * T + t] = ids[(size_t)r * cols + t + 1];
        }
    b->B = B; b->T = T; b->inputs = buf; b->targets = buf + (size_t)B * T;
}

static int64_t count_targets(const adept_batch *b) {
    int64_t n = 0;
    for (size_t i = 0; i < (size_t)b->B * b->T; i++) n += b->targets[i] >= 0;
    return n;
}

int adept_lua_model_loss(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_batch b;
    read_batch(L, 2, &b, "loss");
    double nll;
    int64_t n;
    ADEPT_LUA_TRY(L, "loss", adept_model_forward(m, &b, &nll, &n, NULL));
    lua_pushnumber(L, n ? nll / (double)n : NAN);
    lua_pushinteger(L, n);
    return 2;
}

int adept_lua_model_loss_and_grad(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_batch b;
    read_batch(L, 2, &b, "loss_and_grad");
    int64_t want = count_targets(&b);
    double nll;
    int64_t n;
    ADEPT_LUA_TRY(L, "loss_and_grad",
                  adept_model_forward_backward(m, &b, want ? (float)(1.0 / (double)want) : 0.0f, &nll, &n));
    lua_pushnumber(L, n ? nll / (double)n : NAN);
    lua_pushinteger(L, n);
    return 2;
}

int adept_lua_model_logits(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    int rows, cols;
    int32_t *ids = read_ids(L, 2, &rows, &cols, "logits");
    adept_batch b = {rows ? rows : 1, cols, ids, NULL};
    int64_t V = adept_model_config(m)->vocab_size;
    int64_t shape[3] = {rows, cols, V};
    adept_tensor *t;
    ADEPT_LUA_TRY(L, "logits", rows ? adept_tensor_new(ADEPT_F32, 3, shape, &t)
                                    : adept_tensor_new(ADEPT_F32, 2, shape + 1, &t));
    adept_lua_push_tensor(L, t); /* owned by Lua before anything can raise */
    ADEPT_LUA_TRY(L, "logits", adept_model_forward(m, &b, NULL, NULL, adept_tensor_f32(t)));
    return 1;
}

/* m:hidden_states(ids): a Lua array of num_layers+1 tensors [B, T, hidden] (or [T, hidden] for 1-D ids);
   entry l+1 is the input of layer l, the last one the output of the last layer (before the final norm). */
int adept_lua_model_hidden_states(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    int rows, cols;
    int32_t *ids;
    if (lua_istable(L, 2) && lua_getfield(L, 2, "inputs") != LUA_TNIL) ids = read_ids(L, -1, &rows, &cols, "hidden_states");
    else {
        if (lua_istable(L, 2)) lua_pop(L, 1);
        ids = read_ids(L, 2, &rows, &cols, "hidden_states");
    }
    adept_batch b = {rows ? rows : 1, cols, ids, NULL};
    const adept_config *c = adept_model_config(m);
    size_t per = (size_t)b.B * b.T * c->hidden_size;
    float *buf = lua_newuserdatauv(L, per * (size_t)(c->num_layers + 1) * sizeof(float) + 1, 0);
    ADEPT_LUA_TRY(L, "hidden_states", adept_model_hidden_states(m, &b, buf));
    lua_createtable(L, c->num_layers + 1, 0);
    for (int l = 0; l <= c->num_layers; l++) {
        int64_t shape[3] = {rows, cols, c->hidden_size};
        adept_tensor *t;
        ADEPT_LUA_TRY(L, "hidden_states", rows ? adept_tensor_new(ADEPT_F32, 3, shape, &t)
                                                 : adept_tensor_new(ADEPT_F32, 2, shape + 1, &t));
        memcpy(adept_tensor_data(t), buf + per * (size_t)l, per * sizeof(float));
        adept_lua_push_tensor(L, t);
        lua_seti(L, -2, l + 1);
    }
    return 1;
}

int adept_lua_model_generate(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    int rows, cols;
    int32_t *ids = read_ids(L, 2, &rows, &cols, "generate");
    if (rows > 1) return luaL_argerror(L, 2, "one prompt expected (a 1-D array of ids)");
    int max_tokens = 32, top_k = 0, stop = adept_model_config(m)->eos_token_id;
    double temperature = 0;
    lua_Integer seed = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        max_tokens = (int)adept_lua_opt_int_field(L, 3, "max_tokens", 32);
        top_k = (int)adept_lua_opt_int_field(L, 3, "top_k", 0);
        temperature = adept_lua_opt_num_field(L, 3, "temperature", 0);
        seed = adept_lua_opt_int_field(L, 3, "seed", 0);
        lua_getfield(L, 3, "stop");
        if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) stop = -1;
        else if (!lua_isnil(L, -1)) stop = (int)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        if (max_tokens < 0) return luaL_argerror(L, 3, "max_tokens must be >= 0");
        if (top_k < 0) return luaL_argerror(L, 3, "top_k must be >= 0");
    }
    int32_t *out = lua_newuserdatauv(L, (size_t)max_tokens * sizeof(int32_t) + 1, 0);
    int n;
    ADEPT_LUA_TRY(L, "generate", adept_model_generate(m, ids, cols, max_tokens, (float)temperature, top_k,
                                                      (uint64_t)seed, stop, out, &n));
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, out[i]);
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

/* read_batch for other binding files (bind_adapt.c) */
void adept_lua_read_batch(lua_State *L, int arg, adept_batch *b, const char *fname) { read_batch(L, arg, b, fname); }
