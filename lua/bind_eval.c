/* adept._eval: the C kernels behind lua/adept/eval.lua (target log-likelihoods, token shift) and the
   multiple-choice item reader. Private to adept.eval; arguments are checked here, the work is in engine/. */
#include <math.h>
#include <string.h>

#include "adept/eval.h"
#include "binding.h"

#define CHOICE_SET_MT "adept.ChoiceSet"

/* f32 logits with the vocabulary as the last dimension; returns rows and sets *vocab. */
static size_t check_logits(lua_State *L, int arg, int64_t *vocab, const adept_tensor **out) {
    const adept_tensor *t = adept_lua_check_tensor(L, arg);
    if (t->dtype != ADEPT_F32 || t->ndim < 1)
        luaL_argerror(L, arg, "f32 logits tensor [..., vocab] expected");
    *vocab = t->shape[t->ndim - 1];
    if (*vocab <= 0) luaL_argerror(L, arg, "logits have an empty vocabulary dimension");
    *out = adept_lua_host_tensor(L, t, "logits"); /* logits on a device: a host copy, left on the stack */
    return adept_tensor_numel(t) / (size_t)*vocab;
}

/* Targets: an integer-valued tensor or a flat Lua array of exactly `n` ids, copied into a userdata on the stack. */
static int32_t *check_targets(lua_State *L, int arg, size_t n) {
    int32_t *ids = lua_newuserdatauv(L, n * sizeof(int32_t) + 1, 0);
    const adept_tensor *t = adept_lua_to_tensor(L, arg);
    if (t) {
        if (adept_tensor_numel(t) != n)
            luaL_argerror(L, arg, lua_pushfstring(L, "%d targets expected, got %d", (int)n, (int)adept_tensor_numel(t)));
        t = adept_lua_host_tensor(L, t, "targets"); /* a device tensor's copy, popped once read */
        for (size_t i = 0; i < n; i++) {
            double v = adept_tensor_get_flat(t, i);
            if (v != floor(v) || fabs(v) > 2147483647.0) luaL_argerror(L, arg, "targets must be integers");
            ids[i] = (int32_t)v;
        }
        lua_pop(L, 1);
        return ids;
    }
    luaL_checktype(L, arg, LUA_TTABLE);
    if ((size_t)luaL_len(L, arg) != n)
        luaL_argerror(L, arg, lua_pushfstring(L, "%d targets expected, got %d", (int)n, (int)luaL_len(L, arg)));
    for (size_t i = 0; i < n; i++) {
        lua_geti(L, arg, (lua_Integer)i + 1);
        int isint;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < -2147483647 || v > 2147483647) luaL_argerror(L, arg, "targets must be integers");
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    return ids;
}

/* target_logprobs(logits, targets) -> array of log p(target) per position (0 where target < 0),
   array of booleans (target is the argmax). */
static int l_target_logprobs(lua_State *L) {
    int64_t V;
    const adept_tensor *t;
    size_t n = check_logits(L, 1, &V, &t);
    int32_t *targets = check_targets(L, 2, n);
    double *logp = lua_newuserdatauv(L, n * sizeof(double) + 1, 0);
    uint8_t *greedy = lua_newuserdatauv(L, n + 1, 0);
    ADEPT_LUA_TRY(L, "target_logprobs", adept_eval_target_logprobs(adept_tensor_f32(t), n, V, targets, logp, greedy));
    lua_createtable(L, (int)n, 0);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushnumber(L, logp[i]);
        lua_seti(L, -3, (lua_Integer)i + 1);
        lua_pushboolean(L, greedy[i]);
        lua_seti(L, -2, (lua_Integer)i + 1);
    }
    return 2;
}

/* token_shift(base_logits, tuned_logits [, targets]) -> {positions, changed, marginal, shifted, kl_sum} */
static int l_token_shift(lua_State *L) {
    int64_t Va, Vb;
    const adept_tensor *a, *b;
    size_t n = check_logits(L, 1, &Va, &a);
    check_logits(L, 2, &Vb, &b);
    if (!adept_tensor_same_shape(a, b)) return luaL_argerror(L, 2, "base and tuned logits must have the same shape");
    const int32_t *mask = lua_isnoneornil(L, 3) ? NULL : check_targets(L, 3, n);
    adept_token_shift acc = {0};
    ADEPT_LUA_TRY(L, "token_shift",
                  adept_eval_token_shift(adept_tensor_f32(a), adept_tensor_f32(b), n, Va, mask, &acc));
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, acc.positions), lua_setfield(L, -2, "positions");
    lua_pushinteger(L, acc.changed), lua_setfield(L, -2, "changed");
    lua_pushinteger(L, acc.marginal), lua_setfield(L, -2, "marginal");
    lua_pushinteger(L, acc.shifted), lua_setfield(L, -2, "shifted");
    lua_pushnumber(L, acc.kl_sum), lua_setfield(L, -2, "kl_sum");
    return 1;
}

static int choice_set_gc(lua_State *L) {
    adept_choice_set_free(luaL_checkudata(L, 1, CHOICE_SET_MT));
    return 0;
}

/* read_choices(path [, limit]) -> array of {question=, choices={...}, answer=0-based, line=} */
static int l_read_choices(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept.eval.choices");
    lua_Integer limit = adept_lua_opt_int_range(L, 2, "limit", 0, 0, LUA_MAXINTEGER);
    adept_choice_set *set = lua_newuserdatauv(L, sizeof *set, 0); /* freed by __gc even if a push raises */
    memset(set, 0, sizeof *set);
    if (luaL_newmetatable(L, CHOICE_SET_MT)) { /* private scratch that never reaches Lua code: __gc only */
        lua_pushcfunction(L, choice_set_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    ADEPT_LUA_TRY(L, "choices", adept_choice_items_read(path, (size_t)limit, set));
    lua_createtable(L, (int)set->n, 0);
    for (size_t i = 0; i < set->n; i++) {
        const adept_choice_item *it = &set->items[i];
        lua_createtable(L, 0, 4);
        lua_pushstring(L, it->question), lua_setfield(L, -2, "question");
        lua_createtable(L, it->n_choices, 0);
        for (int k = 0; k < it->n_choices; k++) lua_pushstring(L, it->choices[k]), lua_seti(L, -2, k + 1);
        lua_setfield(L, -2, "choices");
        lua_pushinteger(L, it->answer), lua_setfield(L, -2, "answer");
        lua_pushinteger(L, (lua_Integer)it->line), lua_setfield(L, -2, "line");
        lua_seti(L, -2, (lua_Integer)i + 1);
    }
    adept_choice_set_free(set);
    return 1;
}

void adept_open_eval(lua_State *L) {
    static const luaL_Reg fns[] = {{"target_logprobs", l_target_logprobs}, {"token_shift", l_token_shift},
                                   {NULL, NULL}};
    adept_lua_newlib(L, fns, "adept._eval.");
    /* only adept.eval.choices reads items: its errors carry the public name */
    lua_pushcfunction(L, l_read_choices);
    adept_lua_push_named(L, "adept.eval.choices");
    lua_setfield(L, -2, "read_choices");
    lua_setfield(L, -2, "_eval");
}
