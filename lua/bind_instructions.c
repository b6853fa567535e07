/* Instruction datasets: adept.dataset{format = "instructions", ...} and the adept.InstructionDataset userdata
   (one row per item, loss on the response only). Argument checking only; the rules live in
   engine/data/instruction_items.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/chat_template.h"
#include "adept/instructions.h"
#include "adept/tokenizer.h"
#include "bind_tokenizer.h"
#include "binding.h"

#define INSTRUCTIONS_MT "adept.InstructionDataset"

typedef struct instructions_box {
    adept_instruction_rows rows;
    int live;
    lua_Integer batch_size; /* default for take/next_batch */
    int64_t cursor;         /* next_batch: rows handed out so far (mod n) */
} instructions_box;

static instructions_box *check_box(lua_State *L, int arg) {
    instructions_box *b = luaL_checkudata(L, arg, INSTRUCTIONS_MT);
    if (!b->live) luaL_error(L, "instruction dataset was freed");
    return b;
}

static adept_tokenizer *opt_tokenizer(lua_State *L, int *owned) {
    *owned = 0;
    lua_getfield(L, 1, "tokenizer");
    adept_tokenizer *tok = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        adept_lua_check_path(L, lua_tostring(L, -1), ADEPT_SANDBOX_READ, "adept.dataset (tokenizer)");
        if (adept_tokenizer_load(lua_tostring(L, -1), &tok) != ADEPT_OK) adept_lua_raise(L, "adept.dataset");
        *owned = 1;
    } else if (luaL_testudata(L, -1, ADEPT_TOKENIZER_MT)) {
        tok = adept_lua_check_tokenizer(L, lua_gettop(L));
    } else {
        luaL_argerror(L, 1, lua_pushfstring(L, "field 'tokenizer' must be a tokenizer (adept.tokenizer) or a path "
                                               "for format \"instructions\", got %s", luaL_typename(L, -1)));
    }
    lua_pop(L, 1);
    return tok;
}

/* adept.dataset{format = "instructions", path = "items.jsonl", tokenizer = tok, seq_len = 256,
   template = "auto", chat_template = nil, max_documents = 0, eos = nil, batch_size = 8} (called by adept.dataset). */
int adept_lua_instruction_dataset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const known[] = {"path", "tokenizer", "seq_len", "format", "template", "chat_template",
                                        "max_documents", "eos", "batch_size", NULL};
    adept_lua_check_keys(L, 1, known, "adept.dataset (format \"instructions\")");
    lua_getfield(L, 1, "path");
    if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_argerror(L, 1, lua_pushfstring(L, "field 'path' must be the path of one JSON Lines file for "
                                                      "format \"instructions\", got %s", luaL_typename(L, -1)));
    const char *path = lua_tostring(L, -1); /* stays alive in the options table */
    lua_pop(L, 1);
    adept_lua_check_path(L, path, ADEPT_SANDBOX_READ, "adept.dataset");
    const char *tmpl = adept_lua_opt_str_field(L, 1, "template", "auto");
    if (strcmp(tmpl, "plain") && strcmp(tmpl, "auto"))
        return luaL_argerror(L, 1, lua_pushfstring(L, "field 'template' must be \"auto\" or \"plain\", got \"%s\"", tmpl));
    /* the chat template for {"messages"} items: chat_template = tokenizer_config.json, else the one beside a
       tokenizer given as a directory; template = "plain" uses none (chat items are then refused) */
    const char *config = adept_lua_opt_str_field(L, 1, "chat_template", NULL);
    char beside[4096];
    int explicit_config = config != NULL;
    if (!config) {
        lua_getfield(L, 1, "tokenizer");
        if (lua_type(L, -1) == LUA_TSTRING) {
            snprintf(beside, sizeof beside, "%s/tokenizer_config.json", lua_tostring(L, -1));
            FILE *f = fopen(beside, "rb");
            if (f) fclose(f), config = beside;
        }
        lua_pop(L, 1);
    }
    if (!strcmp(tmpl, "plain")) {
        if (explicit_config)
            return luaL_argerror(L, 1, "field 'chat_template' cannot be used with template = \"plain\"");
        config = NULL;
    }
    adept_chat_template chat;
    int have_chat = 0;
    if (config) {
        adept_lua_check_path(L, config, ADEPT_SANDBOX_READ, "adept.dataset (chat_template)");
        if (adept_chat_template_load(config, &chat) == ADEPT_OK) have_chat = 1;
        else if (explicit_config || !strstr(adept_last_error(), "no chat_template"))
            return adept_lua_raise(L, "adept.dataset");
        else adept_clear_error(); /* a tokenizer directory without a chat template: plain only */
    }
    int64_t seq_len = adept_lua_opt_int_field_range(L, 1, "seq_len", 256, 1, INT32_MAX);
    lua_Integer limit = adept_lua_opt_int_field_range(L, 1, "max_documents", 0, 0, LUA_MAXINTEGER);
    int32_t eos = (int32_t)adept_lua_opt_int_field_range(L, 1, "eos", -1, -1, INT32_MAX);
    lua_Integer bs = adept_lua_opt_int_field_range(L, 1, "batch_size", 8, 1, INT32_MAX);
    int owned;
    adept_tokenizer *tok = opt_tokenizer(L, &owned);
    instructions_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* __gc frees the rows even if a call below raises */
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, INSTRUCTIONS_MT);
    adept_instruction_set set;
    adept_status st = adept_instruction_items_read_chat(path, (size_t)limit, have_chat ? &chat : NULL, &set);
    if (st == ADEPT_OK) {
        st = adept_instruction_rows_build(tok, &set, seq_len, eos, &b->rows);
        adept_instruction_set_free(&set);
    }
    if (owned) adept_tokenizer_free(tok);
    if (st != ADEPT_OK) return adept_lua_raise(L, "adept.dataset");
    b->live = 1, b->batch_size = bs;
    return 1;
}

static lua_Integer opt_batch_size(lua_State *L, int arg, const instructions_box *b) {
    return lua_isnoneornil(L, arg) ? b->batch_size : adept_lua_check_int_range(L, arg, "batch size", 1, INT32_MAX);
}

static void push_batch(lua_State *L, adept_tensor *x, adept_tensor *y) {
    lua_createtable(L, 0, 2);
    adept_lua_push_tensor(L, x);
    lua_setfield(L, -2, "inputs");
    adept_lua_push_tensor(L, y);
    lua_setfield(L, -2, "targets");
}

/* ds:take(n [, B]): batches 0..n-1 of B rows in item order (wrapping around the items): a probe set. */
static int l_take(lua_State *L) {
    instructions_box *b = check_box(L, 1);
    lua_Integer n = adept_lua_check_int_range(L, 2, "number of batches", 0, LUA_MAXINTEGER);
    lua_Integer bs = opt_batch_size(L, 3, b);
    lua_createtable(L, (int)(n < 1024 ? n : 1024), 0);
    for (lua_Integer k = 0; k < n; k++) {
        adept_tensor *x, *y;
        ADEPT_LUA_TRY(L, "take", adept_instruction_batch(&b->rows, k, bs, &x, &y));
        push_batch(L, x, y);
        lua_rawseti(L, -2, k + 1);
    }
    return 1;
}

/* ds:next_batch([B]): the next B rows in item order, wrapping (training loops). */
static int l_next_batch(lua_State *L) {
    instructions_box *b = check_box(L, 1);
    lua_Integer bs = opt_batch_size(L, 2, b);
    adept_tensor *x, *y;
    ADEPT_LUA_TRY(L, "next_batch", adept_instruction_batch_at(&b->rows, b->cursor, bs, &x, &y));
    b->cursor = (b->cursor + bs) % b->rows.n;
    push_batch(L, x, y);
    return 1;
}

static int l_num_rows(lua_State *L) { lua_pushinteger(L, check_box(L, 1)->rows.n); return 1; }
static int l_seq_len(lua_State *L) { lua_pushinteger(L, check_box(L, 1)->rows.seq_len); return 1; }
static int l_dropped(lua_State *L) { lua_pushinteger(L, check_box(L, 1)->rows.dropped); return 1; }
static int l_truncated(lua_State *L) { lua_pushinteger(L, check_box(L, 1)->rows.truncated); return 1; }
static int l_response_tokens(lua_State *L) { lua_pushinteger(L, check_box(L, 1)->rows.response_tokens); return 1; }

static int l_gc(lua_State *L) {
    instructions_box *b = luaL_checkudata(L, 1, INSTRUCTIONS_MT);
    adept_instruction_rows_free(&b->rows);
    b->live = 0;
    return 0;
}

static int l_tostring(lua_State *L) {
    instructions_box *b = luaL_checkudata(L, 1, INSTRUCTIONS_MT);
    if (!b->live) { lua_pushstring(L, "adept.InstructionDataset(freed)"); return 1; }
    lua_pushfstring(L, "adept.InstructionDataset(%I rows of %I, %I response tokens, %I dropped, %I truncated)",
                    (lua_Integer)b->rows.n, (lua_Integer)b->rows.seq_len, (lua_Integer)b->rows.response_tokens,
                    (lua_Integer)b->rows.dropped, (lua_Integer)b->rows.truncated);
    return 1;
}

/* adept.chat_render(tokenizer_config_path, {{role =, content =}, ...}) -> text, {{text =, target =}, ...}:
   the chat template of the config rendered by adeptlua's own renderer (for the parity test and for inspection). */
static int l_chat_render(lua_State *L) {
    const char *config = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    adept_lua_check_path(L, config, ADEPT_SANDBOX_READ, "adept.chat_render");
    lua_Integer n = luaL_len(L, 2);
    if (n < 1 || n > 100000) return luaL_argerror(L, 2, "expected an array of 1 to 100000 messages");
    const char **roles = lua_newuserdatauv(L, 2 * (size_t)n * sizeof *roles, 0); /* freed by the GC */
    const char **contents = roles + n;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        if (!lua_istable(L, -1)) return luaL_argerror(L, 2, lua_pushfstring(L, "message %I must be a table", i));
        lua_getfield(L, -1, "role");
        lua_getfield(L, -2, "content");
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            return luaL_argerror(L, 2, lua_pushfstring(L, "message %I needs string 'role' and 'content'", i));
        roles[i - 1] = lua_tostring(L, -2), contents[i - 1] = lua_tostring(L, -1); /* alive in the messages table */
        lua_pop(L, 3);
    }
    adept_chat_template t;
    ADEPT_LUA_TRY(L, "adept.chat_render", adept_chat_template_load(config, &t));
    adept_chat_render r;
    ADEPT_LUA_TRY(L, "adept.chat_render", adept_chat_render_messages(&t, roles, contents, (size_t)n, &r));
    char *joined = adept_chat_render_join(&r);
    if (!joined) {
        adept_chat_render_free(&r);
        return luaL_error(L, "adept.chat_render: out of memory");
    }
    lua_pushstring(L, joined);
    free(joined);
    lua_createtable(L, (int)r.n, 0);
    for (size_t i = 0; i < r.n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, r.seg[i].text);
        lua_setfield(L, -2, "text");
        lua_pushboolean(L, r.seg[i].target);
        lua_setfield(L, -2, "target");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    adept_chat_render_free(&r);
    return 2;
}

void adept_open_instructions(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"take", l_take}, {"next_batch", l_next_batch}, {"num_rows", l_num_rows}, {"seq_len", l_seq_len},
        {"dropped", l_dropped}, {"truncated", l_truncated}, {"response_tokens", l_response_tokens}, {NULL, NULL}};
    static const adept_lua_class cls = {INSTRUCTIONS_MT, methods, NULL, l_gc, l_tostring, NULL};
    adept_lua_new_class(L, &cls);
    static const luaL_Reg fns[] = {{"chat_render", l_chat_render}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
