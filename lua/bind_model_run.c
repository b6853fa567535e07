/* Model compute bindings: batches from int32 tensors or Lua arrays, m:loss, m:loss_and_grad, m:logits,
   m:generate, m:generate_batch. Buffers are Lua userdata so an error raised half-way leaks nothing. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "adept/model.h"
#include "bind_tokenizer.h"
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

/* m:generate_batch({ids, ids, ...} [, {max_tokens=, stop=, stop_strings=, tokenizer=}]) -> {{ids}, {ids}, ...}:
   greedy generation for prompts of any lengths at once (adept_model_generate_batch). */
int adept_lua_model_generate_batch(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int B = (int)luaL_len(L, 2);
    if (B < 0 || B > 1 << 20) return luaL_argerror(L, 2, "between 0 and 2^20 prompts expected");
    static const char *const known[] = {"max_tokens", "stop", "stop_strings", "tokenizer", NULL};
    adept_generate_batch_opts o = {.max_tokens = 32, .stop_id = adept_model_config(m)->eos_token_id};
    int n_stop = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        adept_lua_check_keys(L, 3, known, "generate_batch");
        o.max_tokens = (int)adept_lua_opt_int_field_range(L, 3, "max_tokens", 32, ADEPT_NONNEG_INT32);
        lua_getfield(L, 3, "stop");
        if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) o.stop_id = -1;
        else if (!lua_isnil(L, -1))
            o.stop_id = (int)adept_lua_int_value(L, -1, "field 'stop' (a token id, or false)", ADEPT_INT32_RANGE);
        lua_pop(L, 1);
        lua_getfield(L, 3, "stop_strings");
        if (!lua_isnil(L, -1)) {
            if (!lua_istable(L, -1)) return luaL_argerror(L, 3, "field 'stop_strings' must be an array of strings");
            n_stop = (int)luaL_len(L, -1);
            if (n_stop < 0 || n_stop > 1024) return luaL_argerror(L, 3, "field 'stop_strings' holds too many strings");
        }
        lua_pop(L, 1);
        lua_getfield(L, 3, "tokenizer");
        if (!lua_isnil(L, -1)) o.tok = adept_lua_check_tokenizer(L, lua_gettop(L));
        lua_pop(L, 1);
        if (n_stop > 0 && !o.tok) return luaL_argerror(L, 3, "field 'stop_strings' needs field 'tokenizer'");
    }
    const char **stops = lua_newuserdatauv(L, (size_t)n_stop * sizeof *stops + 1, 0);
    if (n_stop > 0) {
        lua_getfield(L, 3, "stop_strings");
        lua_newtable(L); /* keeps the strings alive while the engine reads them */
        for (int i = 0; i < n_stop; i++) {
            if (lua_geti(L, -2, i + 1) != LUA_TSTRING)
                return luaL_error(L, "generate_batch: stop_strings[%d] must be a string, got %s", i + 1,
                                  luaL_typename(L, -1));
            stops[i] = lua_tostring(L, -1);
            lua_seti(L, -2, i + 1);
        }
        o.stop = stops;
        o.n_stop = n_stop;
    }
    /* the prompts, concatenated */
    size_t total = 0;
    for (int r = 0; r < B; r++) {
        if (lua_geti(L, 2, r + 1) != LUA_TTABLE)
            return luaL_error(L, "generate_batch: prompt %d must be an array of token ids, got %s", r + 1,
                              luaL_typename(L, -1));
        total += (size_t)luaL_len(L, -1);
        lua_pop(L, 1);
    }
    int32_t *ids = lua_newuserdatauv(L, total * sizeof *ids + 1, 0);
    int *len = lua_newuserdatauv(L, (size_t)B * sizeof *len + 1, 0);
    size_t off = 0;
    for (int r = 0; r < B; r++) {
        lua_geti(L, 2, r + 1);
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            char what[64];
            snprintf(what, sizeof what, "prompt %d id %lld", r + 1, (long long)i);
            ids[off++] = (int32_t)adept_lua_int_value(L, -1, what, ADEPT_INT32_RANGE);
            lua_pop(L, 1);
        }
        len[r] = (int)n;
        lua_pop(L, 1);
    }
    int32_t *out = lua_newuserdatauv(L, (size_t)B * (size_t)o.max_tokens * sizeof *out + 1, 0);
    int *n_out = lua_newuserdatauv(L, (size_t)B * sizeof *n_out + 1, 0);
    ADEPT_LUA_TRY(L, "generate_batch", adept_model_generate_batch(m, ids, len, B, &o, out, n_out));
    lua_createtable(L, B, 0);
    for (int r = 0; r < B; r++) {
        lua_createtable(L, n_out[r], 0);
        for (int i = 0; i < n_out[r]; i++) {
            lua_pushinteger(L, out[(size_t)r * o.max_tokens + i]);
            lua_seti(L, -2, i + 1);
        }
        lua_seti(L, -2, r + 1);
    }
    return 1;
}
