/* Model files from Lua: adept.load(path) (Hugging Face directory or llama2.c .bin) and
   m:save(dir [, {dtype=, max_shard_bytes=}]), added to the model metatable that bind_model.c defines. */
#include <string.h>

#include "adept/backend.h"
#include "adept/model.h"
#include "binding.h"

/* adept.load(path [, {allow_nonfinite=false, device=, dtype="auto", precision=, recompute=false}]): weights
   holding NaN or infinity are refused, naming the tensor, unless allow_nonfinite is set (inspecting a diverged
   checkpoint). device ("cpu" | "cuda") defaults to adept.default_device (`adeptlua --device`). dtype "auto" keeps
   the matrices of a bf16/f16 checkpoint in that dtype while frozen, "f32" widens everything, "bf16" keeps every
   matrix in bf16, rounding an fp32 checkpoint's (adept_model_load_dtype). precision "f32" | "bf16" (default: bf16 on cuda, f32 on the cpu): m:set_precision.
   recompute: m:set_recompute(true). */
static int l_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept.load");
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const known[] = {"allow_nonfinite", "device", "dtype", "precision", "recompute", NULL};
    adept_lua_check_keys(L, 2, known, "adept.load");
    const char *dt = adept_lua_opt_str_field(L, 2, "dtype", "auto");
    adept_load_dtype mode = ADEPT_LOAD_AUTO;
    if (strcmp(dt, "f32") == 0) mode = ADEPT_LOAD_F32;
    else if (strcmp(dt, "bf16") == 0) mode = ADEPT_LOAD_BF16;
    else if (strcmp(dt, "auto") != 0)
        return luaL_argerror(L, 2, lua_pushfstring(L, "dtype must be \"auto\", \"f32\" or \"bf16\", got '%s'", dt));
    int allow_nonfinite = adept_lua_opt_bool_field(L, 2, "allow_nonfinite", 0);
    int recompute = adept_lua_opt_bool_field(L, 2, "recompute", 0);
    adept_device device = (adept_device)adept_lua_opt_device(L, 2, "adept.load");
    adept_precision precision = (adept_precision)adept_lua_opt_precision(L, 2, device, "adept.load");
    adept_model *m;
    ADEPT_LUA_TRY(L, "adept.load", adept_model_load_dtype(path, device, mode, &m));
    if (!allow_nonfinite && adept_model_check_finite(m) != ADEPT_OK) {
        adept_model_free(m);
        return luaL_error(L, "adept.load: %s: %s", path, adept_last_error());
    }
    if (adept_model_set_precision(m, precision) != ADEPT_OK) {
        adept_model_free(m);
        return adept_lua_raise(L, "adept.load");
    }
    adept_model_set_recompute(m, recompute);
    adept_lua_push_model(L, m);
    return 1;
}

static int m_save(lua_State *L) {
    adept_model *m = adept_lua_check_model(L, 1);
    const char *dir = luaL_checkstring(L, 2);
    adept_lua_check_path(L, dir, ADEPT_SANDBOX_WRITE, "adept.Model:save");
    int dtype = -1;
    lua_Integer max_shard = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        static const char *const known[] = {"dtype", "max_shard_bytes", NULL};
        adept_lua_check_keys(L, 3, known, "save");
        const char *name = adept_lua_opt_str_field(L, 3, "dtype", NULL);
        if (name) {
            adept_dtype d;
            if (adept_dtype_parse(name, &d) != ADEPT_OK || (d != ADEPT_F32 && d != ADEPT_BF16 && d != ADEPT_F16))
                return luaL_argerror(L, 3, lua_pushfstring(L, "dtype must be f32, bf16 or f16, got '%s'", name));
            dtype = (int)d;
        }
        max_shard = adept_lua_opt_int_field_range(L, 3, "max_shard_bytes", 0, 0, LUA_MAXINTEGER); /* 0 = one file */
    }
    ADEPT_LUA_TRY(L, "save", adept_model_save(m, dir, dtype, (size_t)max_shard));
    lua_settop(L, 1);
    return 1;
}

/* adept.w16_products([dtype="bf16"]) -> "onednn" | "sgemm": how the CPU multiplies by frozen 16-bit weights
   (adept_cpu_w16_path; docs/model.md "Precision") */
static int l_w16_products(lua_State *L) {
    const char *name = luaL_optstring(L, 1, "bf16");
    adept_dtype d;
    if (adept_dtype_parse(name, &d) != ADEPT_OK || (d != ADEPT_BF16 && d != ADEPT_F16))
        return luaL_argerror(L, 1, lua_pushfstring(L, "dtype must be bf16 or f16, got '%s'", name));
    lua_pushstring(L, adept_cpu_w16_path(d));
    return 1;
}

void adept_open_model_io(lua_State *L) {
    /* bind_model.c creates the class (it is opened before this file) */
    static const luaL_Reg methods[] = {{"save", m_save}, {NULL, NULL}};
    adept_lua_add_methods(L, ADEPT_MODEL_MT, methods);
    static const luaL_Reg fns[] = {{"load", l_load}, {"w16_products", l_w16_products}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
