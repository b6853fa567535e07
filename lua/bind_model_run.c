/* Model compute bindings: batches from int32 tensors or Lua arrays, m:loss, m:loss_and_grad, m:logits,
   m:generate. Buffers are Lua userdata so an error raised half-way leaks nothing. */
#include <math.h>
#include <string.h>

#include "adept/model.h"
#include "binding.h"

/* A mean over no tokens is NaN: say why instead of computing it. (m:loss keeps returning NaN, 0 for such a
   batch: adept.eval.perplexity sums over batches and skips the empty ones.) */
static void require_targets(lua_State *L, const adept_batch *b, const char *fname) {
    if (b->targets && adept_batch_count_targets(b) == 0)
        luaL_error(L, "%s: no target tokens (every target of the batch is -1): the mean loss is undefined", fname);
}

int adept_lua_model_loss(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_batch b;
    adept_lua_read_batch(L, 2, &b, "loss");
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
    adept_lua_read_batch(L, 2, &b, "loss_and_grad");
    require_targets(L, &b, "loss_and_grad");
    int64_t want = adept_batch_count_targets(&b);
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
    int32_t *ids = adept_lua_read_ids(L, 2, &rows, &cols, "logits");
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
    if (lua_istable(L, 2) && lua_getfield(L, 2, "inputs") != LUA_TNIL) ids = adept_lua_read_ids(L, -1, &rows, &cols, "hidden_states");
    else {
        if (lua_istable(L, 2)) lua_pop(L, 1);
        ids = adept_lua_read_ids(L, 2, &rows, &cols, "hidden_states");
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
    int32_t *ids = adept_lua_read_ids(L, 2, &rows, &cols, "generate");
    if (rows > 1) return luaL_argerror(L, 2, "one prompt expected (a 1-D array of ids)");
    int max_tokens = 32, top_k = 0, stop = adept_model_config(m)->eos_token_id;
    double temperature = 0;
    lua_Integer seed = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        max_tokens = (int)adept_lua_opt_int_field_range(L, 3, "max_tokens", 32, ADEPT_NONNEG_INT32);
        top_k = (int)adept_lua_opt_int_field_range(L, 3, "top_k", 0, ADEPT_NONNEG_INT32);
        temperature = adept_lua_opt_f32_field(L, 3, "temperature", 0);
        seed = adept_lua_opt_int_field(L, 3, "seed", 0);
        lua_getfield(L, 3, "stop");
        if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) stop = -1;
        else if (!lua_isnil(L, -1)) stop = (int)adept_lua_int_value(L, -1, "field 'stop' (a token id, or false)", ADEPT_INT32_RANGE);
        lua_pop(L, 1);
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
