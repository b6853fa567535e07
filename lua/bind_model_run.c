/* Model compute bindings (placeholder). */
#include "binding.h"
int adept_lua_model_loss(lua_State *L) { return luaL_error(L, "loss: not implemented yet"); }
int adept_lua_model_loss_and_grad(lua_State *L) { return luaL_error(L, "loss_and_grad: not implemented yet"); }
int adept_lua_model_logits(lua_State *L) { return luaL_error(L, "logits: not implemented yet"); }
int adept_lua_model_generate(lua_State *L) { return luaL_error(L, "generate: not implemented yet"); }
