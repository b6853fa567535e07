/* The Lua standard library (the files under lua/adept/) compiled into the binary by cmake/embed_lua.cmake. */
#ifndef ADEPT_EMBEDDED_LUA_H
#define ADEPT_EMBEDDED_LUA_H
#include <stddef.h>

typedef struct adept_embedded_lua {
    const char *module;    /* "adept.schedule" */
    const char *chunkname; /* "@lua/adept/schedule.lua", so tracebacks name the file */
    const char *source;
    size_t size;
} adept_embedded_lua;

extern const adept_embedded_lua adept_embedded_lua_files[]; /* ends with a NULL module */
#endif
