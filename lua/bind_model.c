/* Model bindings: adept.model (random init from a table of HF config fields) and the methods of
   adept.Model (parameters and gradients as shared tensor views, loss, gradients, logits, generation, surgery). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/device.h"
#include "adept/hf_config.h"
#include "adept/model.h"
#include "binding.h"

typedef struct model_box {
    adept_model *m;
} model_box;

void adept_lua_push_model(lua_State *L, adept_model *m) {
    model_box *box = lua_newuserdatauv(L, sizeof *box, 1);
    box->m = m;
    luaL_setmetatable(L, ADEPT_MODEL_MT);
}

adept_model *adept_lua_check_model(lua_State *L, int arg) {
    model_box *box = luaL_checkudata(L, arg, ADEPT_MODEL_MT);
    if (!box->m) luaL_error(L, "model was freed");
    return box->m;
}

static int model_gc(lua_State *L) {
    model_box *box = luaL_checkudata(L, 1, ADEPT_MODEL_MT);
    adept_model_free(box->m); /* idempotent: NULL after the first call */
    box->m = NULL;
    return 0;
}

/* ---- config from a Lua table of HF fields ------------------------------------------------------ */

/* The table is written as JSON and read by adept_hf_config_parse, the config.json parser, so both accept and
   default exactly the same fields. Without architectures or model_type the family is Llama. */
static void config_from_table(lua_State *L, int arg, adept_config *c, const char *fname) {
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_getfield(L, arg, "architectures");
    lua_getfield(L, arg, "model_type");
    int family = !lua_isnil(L, -1) || !lua_isnil(L, -2);
    lua_pop(L, 2);
    lua_pushcfunction(L, adept_lua_json_encode);
    if (family) lua_pushvalue(L, arg);
    else { /* a shallow copy with model_type = "llama" */
        lua_newtable(L);
        for (lua_pushnil(L); lua_next(L, arg); ) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -4);
        }
        lua_pushstring(L, "llama");
        lua_setfield(L, -2, "model_type");
    }
    lua_call(L, 1, 1);
    size_t len;
    const char *json = lua_tolstring(L, -1, &len);
    if (adept_hf_config_parse(json, len, "config", c) != ADEPT_OK) adept_lua_raise(L, fname);
    lua_pop(L, 1);
    free(c->config_json); /* saved from the parsed fields, as before: the JSON text was only the carrier */
    c->config_json = NULL;
}

/* adept.plan(config_or_dir [, {batch_size=8, seq_len=256, copies=0, trainable="all"|"none"|"copies"|{layers...},
   shards=1, recompute=false, dtype="auto"|"f32"|"bf16"|"f16"}]) -> {weights=, masters=, grads=, optimizer=, activations=, workspace=, total=, params=,
   trainable_params=, first_kept=, layers=}: the bytes a run will take, without loading or allocating
   (adept_plan_estimate). config_or_dir: a table of HF config fields or a model directory (its config.json).
   dtype "auto" is what adept.load's default keeps: the matrices in config.json's torch_dtype when bfloat16/float16
   (frozen ones at 2 bytes, trainable ones as fp32 masters), else fp32; "f32" is adept.load{dtype="f32"}. */
static int l_plan(lua_State *L) {
    adept_config c;
    if (lua_type(L, 1) == LUA_TSTRING) {
        char path[4096];
        snprintf(path, sizeof path, "%s/config.json", lua_tostring(L, 1));
        ADEPT_LUA_TRY(L, "adept.plan", adept_hf_config_read(path, &c));
    } else {
        config_from_table(L, 1, &c, "adept.plan");
    }
    adept_plan_request r = {.batch_size = 8, .seq_len = 256, .trainable = ADEPT_PLAN_ALL, .shards = 1};
    int *layers = NULL, dtype_given = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        static const char *const keys[] = {"batch_size", "seq_len", "copies", "trainable", "shards", "recompute",
                                           "dtype", NULL};
        adept_lua_check_keys(L, 2, keys, "adept.plan");
        const char *dt = adept_lua_opt_str_field(L, 2, "dtype", "auto");
        if (strcmp(dt, "auto") == 0) { /* as adept.load's default: the checkpoint's dtype (config.json's torch_dtype) */
        } else if (strcmp(dt, "f32") == 0 || strcmp(dt, "bf16") == 0 || strcmp(dt, "f16") == 0) {
            adept_dtype_parse(dt, &r.dtype);
        } else {
            adept_hf_config_clear(&c);
            return luaL_error(L, "adept.plan: dtype must be \"auto\", \"f32\", \"bf16\" or \"f16\", got '%s'", dt);
        }
        dtype_given = strcmp(dt, "auto") != 0;
        r.batch_size = (int)adept_lua_opt_int_field_range(L, 2, "batch_size", 8, 1, 1 << 20);
        r.seq_len = (int)adept_lua_opt_int_field_range(L, 2, "seq_len", 256, 1, 1 << 24);
        r.copies = (int)adept_lua_opt_int_field_range(L, 2, "copies", 0, 0, 1 << 16);
        r.shards = (int)adept_lua_opt_int_field_range(L, 2, "shards", 1, 1, 1 << 20);
        r.recompute = adept_lua_opt_bool_field(L, 2, "recompute", 0);
        lua_getfield(L, 2, "trainable");
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_Integer n = luaL_len(L, -1);
            if (n < 0 || n > 1 << 16) return luaL_error(L, "adept.plan: trainable lists %d layers", (int)n);
            layers = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(int), 0);
            lua_insert(L, -2); /* keep the buffer below the list */
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, -1, i);
                if (!lua_isinteger(L, -1))
                    return luaL_error(L, "adept.plan: trainable[%d] must be a layer index (an integer)", (int)i);
                layers[i - 1] = (int)lua_tointeger(L, -1);
                lua_pop(L, 1);
            }
            r.trainable = ADEPT_PLAN_LAYERS, r.layers = layers, r.n_layers = (int)n;
        } else if (!lua_isnil(L, -1)) {
            const char *t = lua_tostring(L, -1);
            if (!t || !(strcmp(t, "all") == 0 || strcmp(t, "none") == 0 || strcmp(t, "copies") == 0))
                return luaL_error(L, "adept.plan: trainable must be \"all\", \"none\", \"copies\" or a list of layers, got %s",
                                  t ? t : luaL_typename(L, -1));
            r.trainable = !strcmp(t, "all") ? ADEPT_PLAN_ALL : !strcmp(t, "none") ? ADEPT_PLAN_NONE : ADEPT_PLAN_COPIES;
        }
        lua_pop(L, 1);
    }
    if (!dtype_given) r.dtype = c.dtype == ADEPT_BF16 || c.dtype == ADEPT_F16 ? c.dtype : ADEPT_F32;
    adept_plan_bytes b;
    adept_status st = adept_plan_estimate(&c, &r, &b);
    adept_hf_config_clear(&c);
    if (st != ADEPT_OK) return adept_lua_raise(L, "adept.plan");
    lua_createtable(L, 0, 11);
#define SET(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))
    SET("weights", b.weights), SET("masters", b.masters), SET("grads", b.grads), SET("optimizer", b.optimizer);
    SET("activations", b.activations), SET("workspace", b.workspace), SET("total", b.total);
    SET("params", b.params), SET("trainable_params", b.trainable_params), SET("first_kept", b.first_kept);
    SET("layers", b.layers);
#undef SET
    return 1;
}

/* adept.model(config [, {seed=, init_std=, device=, precision=}]): device defaults to adept.default_device,
   precision to the device's (adept_lua_opt_precision: bf16 on cuda, f32 on the cpu) */
static int l_model(lua_State *L) {
    adept_config c;
    config_from_table(L, 1, &c, "adept.model");
    lua_Integer seed = 0;
    lua_Number std = 0.02;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        seed = adept_lua_opt_int_field(L, 2, "seed", 0);
        std = adept_lua_opt_f32_field(L, 2, "init_std", 0.02);
    }
    adept_device device = (adept_device)adept_lua_opt_device(L, 2, "adept.model");
    adept_precision precision = (adept_precision)adept_lua_opt_precision(L, 2, device, "adept.model");
    adept_model *m;
    ADEPT_LUA_TRY(L, "adept.model", adept_model_create_on(&c, device, (uint64_t)seed, (float)std, &m));
    if (adept_model_set_precision(m, precision) != ADEPT_OK) {
        adept_model_free(m);
        return adept_lua_raise(L, "adept.model");
    }
    adept_lua_push_model(L, m);
    return 1;
}

/* ---- parameters ---------------------------------------------------------------------------------- */

static void push_view(lua_State *L, const adept_tensor *t, const char *fname) {
    adept_tensor *v;
    if (adept_tensor_view(t->storage, t->offset, t->dtype, t->ndim, t->shape, &v) != ADEPT_OK)
        adept_lua_raise(L, fname);
    adept_lua_push_tensor(L, v);
}

static adept_param *check_param(lua_State *L, adept_model *m, int arg, const char *fname) {
    const char *name = luaL_checkstring(L, arg);
    adept_param *p = adept_model_find(m, name);
    if (!p) luaL_error(L, "%s: no parameter named '%s'", fname, name);
    return p;
}

static int m_param(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    push_view(L, check_param(L, m, 2, "param")->value, "param");
    return 1;
}

static int m_grad(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_param *p = check_param(L, m, 2, "grad");
    if (p->trainable) ADEPT_LUA_TRY(L, "adept.Model:grad", adept_model_grads_materialize(m));
    if (!p->grad) { lua_pushnil(L); return 1; } /* frozen: no gradient memory */
    push_view(L, p->grad, "grad");
    return 1;
}

/* m:set_param(name, tensor): copies (and converts to f32) a tensor of the parameter's shape into it */
static int m_set_param(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    adept_param *p = check_param(L, m, 2, "set_param");
    adept_tensor *t = adept_lua_check_tensor(L, 3);
    if (t->ndim != p->ndim || t->shape[0] != p->shape[0] || (p->ndim == 2 && t->shape[1] != p->shape[1])) {
        char a[96], b[96];
        return luaL_error(L, "set_param: %s has shape %s, the tensor has %s", p->name,
                          adept_shape_str(p->ndim, p->shape, a, sizeof a), adept_shape_str(t->ndim, t->shape, b, sizeof b));
    }
    /* into the row's dtype: fp32, or a frozen row's bf16/f16 (rounded to nearest even, as torch's copy_ does) */
    adept_dtype dt = p->value->dtype;
    if (adept_tensor_device(p->value) == ADEPT_CPU && adept_tensor_device(t) == ADEPT_CPU) {
        ADEPT_LUA_TRY(L, "set_param", adept_convert(adept_tensor_data(p->value), dt, adept_tensor_data(t),
                                                    t->dtype, p->numel));
        return 0;
    }
    /* a device on either side: converted on the host, then one copy into the row */
    adept_tensor *h = adept_lua_host_tensor(L, t, "set_param");
    void *conv = lua_newuserdatauv(L, p->numel * adept_dtype_size(dt) + 1, 0);
    ADEPT_LUA_TRY(L, "set_param", adept_convert(conv, dt, adept_tensor_data(h), h->dtype, p->numel));
    ADEPT_LUA_TRY(L, "set_param", adept_tensor_write(p->value, 0, conv, p->numel * adept_dtype_size(dt)));
    return 0;
}

/* m:device() -> "cpu" | "cuda": where the model's weights, gradients and activations live */
static int m_device(lua_State *L) {
    lua_pushstring(L, adept_device_name(adept_model_device(adept_lua_check_model(L, 1))));
    return 1;
}

static int m_param_names(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    size_t n = adept_model_num_params(m);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, adept_model_param(m, i)->name);
        lua_seti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* m:set_recompute(bool): backward recomputes each layer instead of keeping its buffers (adept_model_set_recompute);
   m:recompute() -> bool */
static int m_set_recompute(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    adept_model_set_recompute(m, lua_toboolean(L, 2));
    return 0;
}

static int m_recompute(lua_State *L) {
    lua_pushboolean(L, adept_model_recompute(adept_lua_check_model(L, 1)));
    return 1;
}

/* m:set_precision("f32" | "bf16"): the precision of the fp32 weights' products from the next pass
   (adept_model_set_precision); m:precision() -> "f32" | "bf16" */
static int m_set_precision(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    const char *name = luaL_checkstring(L, 2);
    adept_precision p;
    if (adept_precision_parse(name, &p) != ADEPT_OK) return luaL_argerror(L, 2, adept_last_error());
    ADEPT_LUA_TRY(L, "set_precision", adept_model_set_precision(m, p));
    return 0;
}

static int m_precision(lua_State *L) {
    lua_pushstring(L, adept_precision_name(adept_model_precision(adept_lua_check_model(L, 1))));
    return 1;
}

static int m_num_layers(lua_State *L) {
    lua_pushinteger(L, adept_model_num_layers(adept_lua_check_model(L, 1)));
    return 1;
}

/* m:params() -> the parameter table as Lua rows {name=, layer=, kind=, norm=, shape=, numel=, dtype=, trainable=,
   decay=}; norm is true for the RMSNorm weights (the LR policies normalise them apart); layer is nil for the embeddings, the final norm and the head (DESIGN.md §4, issue 8 names). */
static int m_params(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    size_t n = adept_model_num_params(m);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const adept_param *p = adept_model_param(m, i);
        lua_createtable(L, 0, 9);
        lua_pushstring(L, p->name);
        lua_setfield(L, -2, "name");
        if (p->layer >= 0) {
            lua_pushinteger(L, p->layer);
            lua_setfield(L, -2, "layer");
        }
        lua_pushstring(L, adept_unit_kind_name(p->kind));
        lua_setfield(L, -2, "kind");
        if (p->kind == ADEPT_UNIT_LORA_A || p->kind == ADEPT_UNIT_LORA_B) {
            lua_pushstring(L, adept_unit_kind_name(p->lora_target));
            lua_setfield(L, -2, "target"); /* the projection an adapter row adapts */
        }
        lua_pushboolean(L, adept_unit_kind_is_norm(p->kind));
        lua_setfield(L, -2, "norm");
        lua_createtable(L, p->ndim, 0);
        for (int d = 0; d < p->ndim; d++) {
            lua_pushinteger(L, p->shape[d]);
            lua_seti(L, -2, d + 1);
        }
        lua_setfield(L, -2, "shape");
        lua_pushinteger(L, (lua_Integer)p->numel);
        lua_setfield(L, -2, "numel");
        lua_pushstring(L, adept_dtype_name(p->value->dtype));
        lua_setfield(L, -2, "dtype");
        lua_pushboolean(L, p->trainable);
        lua_setfield(L, -2, "trainable");
        lua_pushboolean(L, p->decay);
        lua_setfield(L, -2, "decay");
        lua_seti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* A scratch mask of the model's rows, owned by a userdata on the stack (a raised error leaks nothing),
   starting from the current trainable flags. */
static unsigned char *trainable_mask(lua_State *L, adept_model *m) {
    size_t n = adept_model_num_params(m);
    unsigned char *mask = lua_newuserdatauv(L, n ? n : 1, 0);
    for (size_t i = 0; i < n; i++) mask[i] = (unsigned char)adept_model_param(m, i)->trainable;
    return mask;
}

/* m:set_trainable(names): exactly the listed rows become trainable, every other row frozen; one re-lay of the
   gradient slab. An unknown name is an error and changes nothing. Returns the number of trainable rows. */
static int m_set_trainable(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    unsigned char *mask = trainable_mask(L, m);
    size_t n = adept_model_num_params(m);
    memset(mask, 0, n);
    /* names -> rows through a Lua table: O(rows + names) */
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)i);
        lua_setfield(L, -2, adept_model_param(m, i)->name);
    }
    int index = lua_gettop(L);
    lua_Integer k = luaL_len(L, 2), count = 0;
    for (lua_Integer j = 1; j <= k; j++) {
        if (lua_geti(L, 2, j) != LUA_TSTRING)
            return luaL_argerror(L, 2, lua_pushfstring(L, "entry %d must be a parameter name, got %s", (int)j,
                                                       luaL_typename(L, -1)));
        lua_pushvalue(L, -1);
        if (lua_gettable(L, index) != LUA_TNUMBER)
            return luaL_error(L, "set_trainable: no parameter named '%s'", lua_tostring(L, -2));
        size_t i = (size_t)lua_tointeger(L, -1);
        count += !mask[i];
        mask[i] = 1;
        lua_pop(L, 2);
    }
    ADEPT_LUA_TRY(L, "set_trainable", adept_model_set_trainable_mask(m, mask));
    lua_pushinteger(L, count);
    return 1;
}

/* freeze/unfreeze: a Lua pattern on names (string.find), or "all"; one re-lay of the gradient slab */
static int set_trainable_matching(lua_State *L, int trainable, const char *fname) {
    adept_model *m = adept_lua_check_model(L, 1);
    const char *pat = luaL_checkstring(L, 2);
    int all = !strcmp(pat, "all");
    unsigned char *mask = trainable_mask(L, m);
    int count = 0;
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "find");
    int find = lua_gettop(L);
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        int match = all;
        if (!all) {
            lua_pushvalue(L, find);
            lua_pushstring(L, adept_model_param(m, i)->name);
            lua_pushvalue(L, 2);
            if (lua_pcall(L, 2, 1, 0) != LUA_OK)
                return lua_error(L); /* the pattern's own message; the binding wrapper names the function */
            match = !lua_isnil(L, -1);
            lua_pop(L, 1);
        }
        if (match) {
            mask[i] = (unsigned char)trainable;
            count++;
        }
    }
    ADEPT_LUA_TRY(L, fname, adept_model_set_trainable_mask(m, mask));
    lua_pushinteger(L, count);
    return 1;
}
static int m_freeze(lua_State *L) { return set_trainable_matching(L, 0, "freeze"); }
static int m_unfreeze(lua_State *L) { return set_trainable_matching(L, 1, "unfreeze"); }

static int m_trainable_params(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    lua_Integer n = 0;
    for (size_t i = 0; i < adept_model_num_params(m); i++)
        if (adept_model_param(m, i)->trainable) n += (lua_Integer)adept_model_param(m, i)->numel;
    lua_pushinteger(L, n);
    return 1;
}

static int m_zero_grad(lua_State *L) {
    adept_model_zero_grad(adept_lua_check_model(L, 1));
    return 0;
}

static int m_memory(lua_State *L) {
    adept_memory mem = adept_model_memory(adept_lua_check_model(L, 1));
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)mem.params);
    lua_setfield(L, -2, "params");
    lua_pushinteger(L, (lua_Integer)mem.grads);
    lua_setfield(L, -2, "grads");
    lua_pushinteger(L, (lua_Integer)mem.activations);
    lua_setfield(L, -2, "activations");
    lua_pushinteger(L, (lua_Integer)mem.params_f32); /* the fp32 value slab (trainable rows' masters, norms) */
    lua_setfield(L, -2, "params_f32");
    lua_pushinteger(L, (lua_Integer)mem.params_16);  /* the 16-bit slab (frozen bf16/f16 matrices) */
    lua_setfield(L, -2, "params_16");
    return 1;
}

static void push_config(lua_State *L, const adept_config *c) {
    lua_createtable(L, 0, 20);
#define SETI(k, v) (lua_pushinteger(L, (v)), lua_setfield(L, -2, k))
#define SETB(k, v) (lua_pushboolean(L, (v)), lua_setfield(L, -2, k))
    lua_pushstring(L, c->architecture);
    lua_setfield(L, -2, "architecture");
    SETI("vocab_size", c->vocab_size);
    SETI("hidden_size", c->hidden_size);
    SETI("intermediate_size", c->intermediate_size);
    SETI("num_hidden_layers", c->num_layers);
    SETI("num_attention_heads", c->num_heads);
    SETI("num_key_value_heads", c->num_kv_heads);
    SETI("head_dim", c->head_dim);
    SETI("max_position_embeddings", c->max_position_embeddings);
    lua_pushnumber(L, c->rms_norm_eps);
    lua_setfield(L, -2, "rms_norm_eps");
    lua_pushnumber(L, c->rope_theta);
    lua_setfield(L, -2, "rope_theta");
    SETB("tie_word_embeddings", c->tie_word_embeddings);
    SETB("attention_bias", c->attention_bias);
    SETB("qk_norm", c->qk_norm);
    if (c->bos_token_id >= 0) SETI("bos_token_id", c->bos_token_id);
    if (c->eos_token_id >= 0) SETI("eos_token_id", c->eos_token_id);
    lua_pushstring(L, adept_dtype_name(c->dtype));
    lua_setfield(L, -2, "dtype");
#undef SETI
#undef SETB
}

/* ---- LoRA (docs/lora.md) ------------------------------------------------------------------------- */

/* m:add_lora{rank =, alpha =, dropout = 0, targets = {"q_proj", ...} (default all seven), layers = {0-based}
   (default all), seed = 0}: adapters as rows of the table; afterwards only they train. */
static int m_add_lora(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {"rank", "alpha", "dropout", "targets", "layers", "seed", NULL};
    adept_lua_check_keys(L, 2, keys, "add_lora");
    lua_getfield(L, 2, "rank");
    if (lua_isnil(L, -1)) return luaL_error(L, "add_lora: rank is required (a positive integer)");
    lua_pop(L, 1);
    int rank = (int)adept_lua_opt_int_field_range(L, 2, "rank", 0, 1, 1 << 16);
    lua_getfield(L, 2, "alpha");
    if (lua_isnil(L, -1)) return luaL_error(L, "add_lora: alpha is required (a positive number; the scale is alpha/rank)");
    lua_pop(L, 1);
    double alpha = adept_lua_opt_num_field(L, 2, "alpha", 0);
    double dropout = adept_lua_opt_num_field(L, 2, "dropout", 0);
    if (dropout != 0) {
        char num[32];
        snprintf(num, sizeof num, "%g", dropout);
        return luaL_error(L, "add_lora: dropout %s is not implemented (only 0: adapter dropout would need a "
                          "per-step mask kept for backward)", num);
    }
    lua_Integer seed = adept_lua_opt_int_field_range(L, 2, "seed", 0, 0, LUA_MAXINTEGER);
    unsigned char targets[ADEPT_UNIT_KIND_COUNT] = {0};
    static const char *const names[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    static const adept_unit_kind kinds[] = {ADEPT_UNIT_Q, ADEPT_UNIT_K, ADEPT_UNIT_V, ADEPT_UNIT_O, ADEPT_UNIT_GATE,
                                            ADEPT_UNIT_UP, ADEPT_UNIT_DOWN};
    lua_getfield(L, 2, "targets");
    if (lua_isnil(L, -1)) {
        for (int t = 0; t < 7; t++) targets[kinds[t]] = 1;
    } else {
        if (!lua_istable(L, -1)) return luaL_error(L, "add_lora: targets must be a list of projection names");
        lua_Integer n = luaL_len(L, -1);
        if (n == 0) return luaL_error(L, "add_lora: targets is empty");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            const char *nm = lua_tostring(L, -1);
            int t = 0;
            while (nm && t < 7 && strcmp(nm, names[t])) t++;
            if (!nm || t == 7)
                return luaL_error(L, "add_lora: targets[%d] = %s is not one of q_proj, k_proj, v_proj, o_proj, "
                                  "gate_proj, up_proj, down_proj", (int)i, nm ? nm : luaL_typename(L, -1));
            if (targets[kinds[t]]) return luaL_error(L, "add_lora: targets lists %s twice", nm);
            targets[kinds[t]] = 1;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    int nl = adept_model_config(m)->num_layers;
    unsigned char *layers = NULL;
    lua_getfield(L, 2, "layers");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1)) return luaL_error(L, "add_lora: layers must be a list of 0-based layer indices");
        layers = lua_newuserdatauv(L, (size_t)(nl > 0 ? nl : 1), 0);
        memset(layers, 0, (size_t)(nl > 0 ? nl : 1));
        lua_insert(L, -2);
        lua_Integer n = luaL_len(L, -1);
        if (n == 0) return luaL_error(L, "add_lora: layers is empty");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) >= nl)
                return luaL_error(L, "add_lora: layers[%d] must be a layer index in [0, %d)", (int)i, nl);
            lua_Integer l = lua_tointeger(L, -1);
            if (layers[l]) return luaL_error(L, "add_lora: layers lists %d twice", (int)l);
            layers[l] = 1;
            lua_pop(L, 1);
        }
    }
    ADEPT_LUA_TRY(L, "add_lora", adept_model_add_lora(m, rank, alpha, targets, layers, (uint64_t)seed));
    return 0;
}

static int m_merge_lora(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    ADEPT_LUA_TRY(L, "merge_lora", adept_model_merge_lora(m));
    return 0;
}

/* m:lora() -> {rank =, alpha =} or nil when the model has no adapters */
static int m_lora(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    double alpha;
    int rank = adept_model_lora_rank(m, &alpha);
    if (!rank) { lua_pushnil(L); return 1; }
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, rank);
    lua_setfield(L, -2, "rank");
    lua_pushnumber(L, alpha);
    lua_setfield(L, -2, "alpha");
    return 1;
}

/* ---- surgery ------------------------------------------------------------------------------------- */

static int m_expand(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    if (!lua_istable(L, 2))
        return luaL_argerror(L, 2, lua_pushfstring(L, "table of layer indices expected, got %s", luaL_typename(L, 2)));
    if (!lua_isnoneornil(L, 3)) {
        const char *init = adept_lua_opt_str_field(L, 3, "init", "identity");
        if (strcmp(init, "identity"))
            return luaL_argerror(L, 3, lua_pushfstring(L, "init must be \"identity\", got \"%s\"", init));
    }
    int n = (int)luaL_len(L, 2);
    int *layers = lua_newuserdatauv(L, sizeof(int) * (size_t)(2 * n + 1), 0); /* GC-owned scratch */
    for (int i = 0; i < n; i++) {
        lua_geti(L, 2, i + 1);
        layers[i] = (int)adept_lua_int_value(L, -2, lua_pushfstring(L, "layer index %d", i + 1), ADEPT_NONNEG_INT32);
        lua_pop(L, 2);
    }
    if (adept_model_expand(m, layers, n, layers + n) != ADEPT_OK)
        return luaL_error(L, "%s", adept_last_error()); /* the engine message already reads "expand: ..." */
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, layers[n + i]);
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

static int m_expanded_layers(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    lua_newtable(L);
    int k = 0;
    for (int l = 0; l < adept_model_num_layers(m); l++)
        if (adept_model_is_expanded(m, l)) {
            lua_pushinteger(L, l);
            lua_seti(L, -2, ++k);
        }
    return 1;
}

static int m_with_layers_skipped(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    int L_ = adept_model_num_layers(m), n = (int)luaL_len(L, 2);
    unsigned char *saved = lua_newuserdatauv(L, (size_t)L_ + 1, 0);
    for (int l = 0; l < L_; l++) saved[l] = (unsigned char)adept_model_is_skipped(m, l);
    for (int i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        int isint;
        lua_Integer l = lua_tointegerx(L, -1, &isint);
        lua_pop(L, 1);
        if (!isint || l < 0 || l >= L_)
            return luaL_argerror(L, 2, lua_pushfstring(L, "layer indices in [0, %d) expected", L_));
    }
    for (int i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        adept_model_set_skip(m, (int)lua_tointeger(L, -1), 1);
        lua_pop(L, 1);
    }
    lua_pushvalue(L, 3);
    int st = lua_pcall(L, 0, LUA_MULTRET, 0);
    /* the model may have been freed or expanded inside fn: restore only what still makes sense */
    model_box *box = lua_touserdata(L, 1);
    if (box->m && adept_model_num_layers(box->m) == L_)
        for (int l = 0; l < L_; l++) adept_model_set_skip(box->m, l, saved[l]);
    if (st != LUA_OK) return adept_lua_rethrow(L); /* fn's own error, not this binding's */
    return lua_gettop(L) - 4;
}

/* compute methods live in bind_model_run.c */
int adept_lua_model_loss(lua_State *L);
int adept_lua_model_loss_and_grad(lua_State *L);
int adept_lua_model_logits(lua_State *L);
int adept_lua_model_generate(lua_State *L);
int adept_lua_model_generate_batch(lua_State *L);
int adept_lua_model_hidden_states(lua_State *L);

static int model_index(lua_State *L) {
    luaL_checkudata(L, 1, ADEPT_MODEL_MT); /* methods check liveness themselves, so :free() stays idempotent */
    const char *key = lua_tostring(L, 2);
    if (key && !strcmp(key, "config")) {
        push_config(L, adept_model_config(adept_lua_check_model(L, 1)));
        return 1;
    }
    luaL_getmetatable(L, ADEPT_MODEL_MT);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

/* "1234", "1.2K", "1.2M", "1.20B": a parameter count at a glance. */
static void human_count(char *buf, size_t cap, double n) {
    if (n < 1e3) snprintf(buf, cap, "%.0f", n);
    else if (n < 1e6) snprintf(buf, cap, "%.1fK", n / 1e3);
    else if (n < 1e9) snprintf(buf, cap, "%.1fM", n / 1e6);
    else snprintf(buf, cap, "%.2fB", n / 1e9);
}

/* "adept.Model(LlamaForCausalLM, 4 layers, 1.2M params)" */
static int model_tostring(lua_State *L) {
    model_box *box = luaL_checkudata(L, 1, ADEPT_MODEL_MT);
    if (!box->m) { lua_pushstring(L, "adept.Model(freed)"); return 1; }
    const adept_config *c = adept_model_config(box->m);
    double n = 0;
    for (size_t i = 0; i < adept_model_num_params(box->m); i++) n += (double)adept_model_param(box->m, i)->numel;
    char count[32];
    human_count(count, sizeof count, n);
    lua_pushfstring(L, "adept.Model(%s, %d layers, %s params)", c->architecture[0] ? c->architecture : "?",
                    c->num_layers, count);
    return 1;
}

void adept_open_model(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"param", m_param}, {"set_param", m_set_param}, {"grad", m_grad}, {"param_names", m_param_names}, {"num_layers", m_num_layers},
        {"freeze", m_freeze}, {"unfreeze", m_unfreeze}, {"params", m_params}, {"set_trainable", m_set_trainable}, {"trainable_params", m_trainable_params},
        {"zero_grad", m_zero_grad}, {"memory", m_memory}, {"expand", m_expand},
        {"add_lora", m_add_lora}, {"merge_lora", m_merge_lora}, {"lora", m_lora},
        {"set_recompute", m_set_recompute}, {"recompute", m_recompute},
        {"set_precision", m_set_precision}, {"precision", m_precision},
        {"expanded_layers", m_expanded_layers}, {"with_layers_skipped", m_with_layers_skipped},
        {"loss", adept_lua_model_loss}, {"loss_and_grad", adept_lua_model_loss_and_grad},
        {"logits", adept_lua_model_logits}, {"generate", adept_lua_model_generate},
        {"generate_batch", adept_lua_model_generate_batch},
        {"hidden_states", adept_lua_model_hidden_states}, {"device", m_device}, {NULL, NULL}};
    static const adept_lua_class cls = {ADEPT_MODEL_MT, methods, NULL, model_gc, model_tostring, model_index};
    adept_lua_new_class(L, &cls);
    static const luaL_Reg fns[] = {{"model", l_model}, {"plan", l_plan}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
