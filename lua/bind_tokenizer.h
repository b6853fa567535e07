/* The adept.Tokenizer userdata, for other binding files that take a tokenizer argument (adept.dataset). */
#ifndef ADEPT_BIND_TOKENIZER_H
#define ADEPT_BIND_TOKENIZER_H

#include <lauxlib.h>

#include "adept/tokenizer.h"

#define ADEPT_TOKENIZER_MT "adept.Tokenizer"
/* The live tokenizer at `arg`; raises a standard argument error otherwise (or "tokenizer was freed"). */
adept_tokenizer *adept_lua_check_tokenizer(lua_State *L, int arg);

#endif
