/* adept._instruct: the instruction-item renderer (engine/data/instruct_items.c) for Lua: template recognition
   and one item rendered into {text, trained} segments. Argument conversion only. */
#include <string.h>

#include "adept/instruct.h"
#include "binding.h"

static adept_instr_template check_template(lua_State *L, int arg) {
    static const char *const names[] = {"plain", "qwen3", "llama3", NULL};
    static const adept_instr_template values[] = {ADEPT_INSTR_PLAIN, ADEPT_INSTR_QWEN3, ADEPT_INSTR_LLAMA3};
    return values[luaL_checkoption(L, arg, NULL, names)];
}

/* detect(source, chat_template_text) -> "qwen3" | "llama3"; raises naming source for any other family */
static int l_detect(lua_State *L) {
    const char *source = luaL_checkstring(L, 1);
    const char *tpl = luaL_checkstring(L, 2);
    adept_instr_template t;
    ADEPT_LUA_TRY(L, "detect", adept_instr_template_detect(source, tpl, &t));
    lua_pushstring(L, adept_instr_template_name(t));
    return 1;
}

static int item_gc(lua_State *L) {
    adept_instr_item_free(luaL_checkudata(L, 1, "adept.InstrItem"));
    return 0;
}

/* render(json_line, template_name [, bos [, source, line]]) -> array of {text =, trained = bool} */
static int l_render(lua_State *L) {
    size_t len;
    const char *json = luaL_checklstring(L, 1, &len);
    adept_instr_template t = check_template(L, 2);
    const char *bos = luaL_optstring(L, 3, NULL);
    const char *source = luaL_optstring(L, 4, "item");
    lua_Integer line = adept_lua_opt_int_range(L, 5, "line", 1, 1, LUA_MAXINTEGER);
    adept_instr_item *it = lua_newuserdatauv(L, sizeof *it, 0); /* freed by __gc even if a push raises */
    memset(it, 0, sizeof *it);
    if (luaL_newmetatable(L, "adept.InstrItem")) {
        lua_pushcfunction(L, item_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    ADEPT_LUA_TRY(L, "render", adept_instr_item_parse(source, (size_t)line, json, len, t, bos, it));
    lua_createtable(L, it->n, 0);
    for (int i = 0; i < it->n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, it->segs[i].text), lua_setfield(L, -2, "text");
        lua_pushboolean(L, it->segs[i].trained), lua_setfield(L, -2, "trained");
        lua_seti(L, -2, i + 1);
    }
    adept_instr_item_free(it);
    return 1;
}

void adept_open_instruct(lua_State *L) {
    static const luaL_Reg fns[] = {{"detect", l_detect}, {"render", l_render}, {NULL, NULL}};
    adept_lua_newlib(L, fns, "adept._instruct.");
    lua_setfield(L, -2, "_instruct");
}
