/* Dataset bindings: adept.dataset{...} and the adept.Dataset userdata (views, batch iterators, cursor).
   Argument checking and error translation only; the pipeline lives in engine/data/. */
#include <string.h>

#include "adept/dataset.h"
#include "adept/dist.h"
#include "adept/tokenizer.h"
#include "bind_tokenizer.h"
#include "binding.h"

#define DATASET_MT "adept.Dataset"

typedef struct dataset_box {
    adept_dataset *ds;
    lua_Integer batch_size; /* default for batches/take/next_batch */
} dataset_box;

static dataset_box *check_box(lua_State *L, int arg) {
    dataset_box *b = luaL_checkudata(L, arg, DATASET_MT);
    if (!b->ds) luaL_error(L, "dataset was freed");
    return b;
}

static void push_dataset(lua_State *L, adept_dataset *ds, lua_Integer batch_size) {
    dataset_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->ds = ds, b->batch_size = batch_size;
    luaL_setmetatable(L, DATASET_MT);
    lua_newtable(L); /* uservalue: cached train/holdout views */
    lua_setiuservalue(L, -2, 1);
}

static int field_error(lua_State *L, const char *field, const char *expected) {
    return luaL_argerror(L, 1, lua_pushfstring(L, "field '%s' must be %s, got %s", field, expected, luaL_typename(L, -1)));
}

/* The tokenizer option: a tokenizer handle (from adept.tokenizer) or a path to load here. */
static adept_tokenizer *opt_tokenizer(lua_State *L, int *owned) {
    *owned = 0;
    lua_getfield(L, 1, "tokenizer");
    adept_tokenizer *tok = NULL;
    if (lua_isnil(L, -1)) {
        /* fine for token shards */
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        adept_lua_check_path(L, lua_tostring(L, -1), ADEPT_SANDBOX_READ, "adept.dataset (tokenizer)");
        if (adept_tokenizer_load(lua_tostring(L, -1), &tok) != ADEPT_OK) adept_lua_raise(L, "adept.dataset");
        *owned = 1;
    } else if (luaL_testudata(L, -1, ADEPT_TOKENIZER_MT)) {
        tok = adept_lua_check_tokenizer(L, lua_gettop(L)); /* raises if it was freed */
    } else {
        field_error(L, "tokenizer", "a tokenizer (adept.tokenizer) or a path");
    }
    lua_pop(L, 1);
    return tok;
}

static int l_dataset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "format");
    int instructions = lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "instructions");
    lua_pop(L, 1);
    if (instructions) return adept_lua_instruction_dataset(L); /* one row per item: bind_instructions.c */
    static const char *const known[] = {"path", "tokenizer", "seq_len", "format", "field", "doc_split", "on_error",
        "seed", "holdout", "cache", "cache_dir", "shuffle", "progress", "max_documents", "max_bytes", "threads", "eos",
        "sep_token", "token_dtype", "batch_size", NULL};
    adept_lua_check_keys(L, 1, known, "adept.dataset");
    adept_dataset_options o;
    adept_dataset_options_init(&o);
    /* paths: a string or an array of strings; they stay alive in the options table during the call */
    const char *paths[256];
    int np = 0;
    lua_getfield(L, 1, "path");
    if (lua_type(L, -1) == LUA_TSTRING) paths[np++] = lua_tostring(L, -1);
    else if (lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        if (n < 1 || n > 256) return field_error(L, "path", "a string or an array of 1 to 256 strings");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            if (lua_type(L, -1) != LUA_TSTRING) return field_error(L, "path", "an array of strings");
            paths[np++] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
    } else return field_error(L, "path", "a string or an array of strings");
    lua_pop(L, 1);
    o.paths = paths, o.npaths = np;
    for (int i = 0; i < np; i++) adept_lua_check_path(L, paths[i], ADEPT_SANDBOX_READ, "adept.dataset");
    o.seq_len = adept_lua_opt_int_field_range(L, 1, "seq_len", 256, 1, INT32_MAX);
    static const char *const formats[] = {"auto", "text", "jsonl", "tokens", NULL};
    const char *fmt = adept_lua_opt_str_field(L, 1, "format", "auto");
    int fi = 0;
    while (formats[fi] && strcmp(formats[fi], fmt)) fi++;
    if (!formats[fi]) return luaL_argerror(L, 1, lua_pushfstring(L, "field 'format' must be \"text\", \"jsonl\", \"tokens\" or \"instructions\", got \"%s\"", fmt));
    o.format = (adept_corpus_format)fi;
    o.field = adept_lua_opt_str_field(L, 1, "field", "text");
    const char *split = adept_lua_opt_str_field(L, 1, "doc_split", "blank_line");
    if (!strcmp(split, "file")) o.doc_split = ADEPT_DOC_FILE;
    else if (!strcmp(split, "line")) o.doc_split = ADEPT_DOC_LINE;
    else if (strcmp(split, "blank_line"))
        return luaL_argerror(L, 1, lua_pushfstring(L, "field 'doc_split' must be \"blank_line\", \"line\" or \"file\", got \"%s\"", split));
    const char *on_error = adept_lua_opt_str_field(L, 1, "on_error", "raise");
    if (!strcmp(on_error, "skip")) o.skip_errors = 1;
    else if (strcmp(on_error, "raise")) return luaL_argerror(L, 1, lua_pushfstring(L, "field 'on_error' must be \"raise\" or \"skip\", got \"%s\"", on_error));
    o.seed = (uint64_t)adept_lua_opt_int_field(L, 1, "seed", 0);
    o.holdout = adept_lua_opt_num_field(L, 1, "holdout", 0.05);
    if (!(o.holdout >= 0 && o.holdout < 1)) return luaL_argerror(L, 1, lua_pushfstring(L, "field 'holdout' must be a fraction in [0, 1), got %f", o.holdout));
    o.cache = adept_lua_opt_bool_field(L, 1, "cache", 1);
    o.cache_dir = adept_lua_opt_str_field(L, 1, "cache_dir", NULL);
    if (o.cache_dir) adept_lua_check_path(L, o.cache_dir, ADEPT_SANDBOX_WRITE, "adept.dataset (cache_dir)");
    o.shuffle = adept_lua_opt_bool_field(L, 1, "shuffle", 1);
    o.progress = adept_lua_opt_bool_field(L, 1, "progress", 1);
    o.max_documents = adept_lua_opt_int_field_range(L, 1, "max_documents", 0, 0, LUA_MAXINTEGER);
    o.max_bytes = adept_lua_opt_int_field_range(L, 1, "max_bytes", 0, 0, LUA_MAXINTEGER);
    o.threads = (int)adept_lua_opt_int_field_range(L, 1, "threads", 0, 0, 4096);
    o.eos_id = (int32_t)adept_lua_opt_int_field_range(L, 1, "eos", -1, -1, INT32_MAX);
    o.sep_token = (int32_t)adept_lua_opt_int_field_range(L, 1, "sep_token", -1, -2, INT32_MAX);
    const char *dtype = adept_lua_opt_str_field(L, 1, "token_dtype", NULL);
    if (dtype) {
        if (!strcmp(dtype, "uint16") || !strcmp(dtype, "u16")) o.token_bits = 16;
        else if (!strcmp(dtype, "uint32") || !strcmp(dtype, "u32")) o.token_bits = 32;
        else return luaL_argerror(L, 1, lua_pushfstring(L, "field 'token_dtype' must be \"uint16\" or \"uint32\", got \"%s\"", dtype));
    }
    lua_Integer bs = adept_lua_opt_int_field_range(L, 1, "batch_size", 8, 1, INT32_MAX);
    int owned;
    o.tokenizer = opt_tokenizer(L, &owned);
    adept_dataset *ds;
    adept_status st = adept_dataset_open(&o, &ds);
    if (owned) adept_tokenizer_free((adept_tokenizer *)o.tokenizer);
    if (st != ADEPT_OK) return adept_lua_raise(L, "adept.dataset");
    push_dataset(L, ds, bs);
    return 1;
}

/* ds:train() / ds:holdout(): a view with its own cursor, the same object on every call. */
static int get_view(lua_State *L, adept_split which) {
    dataset_box *b = check_box(L, 1);
    if (adept_dataset_kind(b->ds) == which) { lua_settop(L, 1); return 1; }
    lua_getiuservalue(L, 1, 1);
    if (lua_rawgeti(L, -1, which) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    adept_dataset *v;
    ADEPT_LUA_TRY(L, which == ADEPT_SPLIT_TRAIN ? "train" : "holdout", adept_dataset_split(b->ds, which, &v));
    push_dataset(L, v, b->batch_size);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, which);
    return 1;
}
static int l_train(lua_State *L) { return get_view(L, ADEPT_SPLIT_TRAIN); }
static int l_holdout(lua_State *L) { return get_view(L, ADEPT_SPLIT_HOLDOUT); }

static lua_Integer opt_batch_size(lua_State *L, int arg, dataset_box *b) {
    return adept_lua_opt_int_range(L, arg, "batch size", b->batch_size, 1, INT32_MAX);
}

static void push_batch(lua_State *L, adept_tensor *x, adept_tensor *y) {
    lua_createtable(L, 0, 2);
    adept_lua_push_tensor(L, x);
    lua_setfield(L, -2, "inputs");
    adept_lua_push_tensor(L, y);
    lua_setfield(L, -2, "targets");
}

/* ds:next_batch([B]): the next full batch, crossing epochs (for training loops). Under several processes
   (adept.dist) it is this rank's B rows of the global batch of world_size * B (adept_dataset_next_shard). */
static int l_next_batch(lua_State *L) {
    dataset_box *b = check_box(L, 1);
    lua_Integer n = opt_batch_size(L, 2, b);
    adept_tensor *x, *y;
    adept_comm *w = adept_comm_world();
    ADEPT_LUA_TRY(L, "next_batch", adept_dataset_next_shard(b->ds, n, adept_comm_rank(w), adept_comm_size(w), &x, &y));
    push_batch(L, x, y);
    return 1;
}

/* upvalues: dataset, batch size, loop, and for a private pass the cursor (epoch, position, finished) */
static int batches_iter(lua_State *L) {
    dataset_box *b = check_box(L, lua_upvalueindex(1));
    lua_Integer n = lua_tointeger(L, lua_upvalueindex(2));
    int loop = lua_toboolean(L, lua_upvalueindex(3));
    adept_tensor *x, *y;
    if (lua_isnil(L, lua_upvalueindex(4))) {
        ADEPT_LUA_TRY(L, "batches", adept_dataset_next_batch(b->ds, n, loop, &x, &y));
    } else {
        if (lua_toboolean(L, lua_upvalueindex(6))) return 0;
        adept_dataset_cursor c = {lua_tointeger(L, lua_upvalueindex(4)), lua_tointeger(L, lua_upvalueindex(5))};
        ADEPT_LUA_TRY(L, "batches", adept_dataset_read_batch(b->ds, &c, n, loop, &x, &y));
        lua_pushinteger(L, c.epoch), lua_replace(L, lua_upvalueindex(4));
        lua_pushinteger(L, c.position), lua_replace(L, lua_upvalueindex(5));
        if (!x) lua_pushboolean(L, 1), lua_replace(L, lua_upvalueindex(6));
    }
    if (!x) return 0; /* end of the epoch: the cursor is now at the start of the next one */
    push_batch(L, x, y);
    return 1;
}

/* ds:batches([B] [, {loop=false, fresh=false}]): an iterator over the rest of the epoch at the view's cursor
   (forever with loop=true). fresh=true: one whole pass of epoch 0 on a private cursor, leaving the view's
   cursor alone — for evaluation, which must see the same windows every time. */
static int l_batches(lua_State *L) {
    dataset_box *b = check_box(L, 1);
    lua_Integer n = opt_batch_size(L, 2, b);
    int loop = 0, fresh = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        loop = adept_lua_opt_bool_field(L, 3, "loop", 0);
        fresh = adept_lua_opt_bool_field(L, 3, "fresh", 0);
    }
    lua_pushvalue(L, 1);
    lua_pushinteger(L, n);
    lua_pushboolean(L, loop);
    if (fresh) lua_pushinteger(L, 0), lua_pushinteger(L, 0);
    else lua_pushnil(L), lua_pushnil(L);
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, batches_iter, 6);
    adept_lua_push_named(L, "adept.Dataset:batches");
    return 1;
}

/* ds:take(n [, B]): the first n batches of the view (from cursor {0, 0}, wrapping), cursor untouched. */
static int l_take(lua_State *L) {
    dataset_box *b = check_box(L, 1);
    lua_Integer n = adept_lua_check_int_range(L, 2, "number of batches", 0, LUA_MAXINTEGER);
    lua_Integer bs = opt_batch_size(L, 3, b);
    lua_createtable(L, (int)(n < 1024 ? n : 1024), 0);
    for (lua_Integer k = 0; k < n; k++) {
        adept_tensor *x, *y;
        ADEPT_LUA_TRY(L, "take", adept_dataset_peek_batch(b->ds, k, bs, &x, &y));
        push_batch(L, x, y);
        lua_rawseti(L, -2, k + 1);
    }
    return 1;
}

static int l_num_tokens(lua_State *L) { lua_pushinteger(L, adept_dataset_num_tokens(check_box(L, 1)->ds)); return 1; }
static int l_num_documents(lua_State *L) { lua_pushinteger(L, adept_dataset_num_documents(check_box(L, 1)->ds)); return 1; }
static int l_num_windows(lua_State *L) { lua_pushinteger(L, adept_dataset_num_windows(check_box(L, 1)->ds)); return 1; }
static int l_seq_len(lua_State *L) { lua_pushinteger(L, adept_dataset_seq_len(check_box(L, 1)->ds)); return 1; }
static int l_eos_id(lua_State *L) {
    int32_t e = adept_dataset_eos_id(check_box(L, 1)->ds);
    if (e < 0) lua_pushnil(L); else lua_pushinteger(L, e);
    return 1;
}

static int l_num_batches(lua_State *L) {
    dataset_box *b = check_box(L, 1);
    lua_Integer bs = opt_batch_size(L, 2, b);
    lua_pushinteger(L, (adept_dataset_num_windows(b->ds) + bs - 1) / bs);
    return 1;
}

static int l_skipped(lua_State *L) {
    adept_dataset_stats s;
    adept_dataset_get_stats(check_box(L, 1)->ds, &s);
    lua_pushinteger(L, s.skipped);
    return 1;
}

static int l_stats(lua_State *L) {
    adept_dataset_stats s;
    adept_dataset_get_stats(check_box(L, 1)->ds, &s);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, s.skipped), lua_setfield(L, -2, "skipped");
    lua_pushinteger(L, s.tokenized_documents), lua_setfield(L, -2, "tokenized_documents");
    lua_pushboolean(L, s.cache_hit), lua_setfield(L, -2, "cache_hit");
    if (s.cache_path[0]) lua_pushstring(L, s.cache_path), lua_setfield(L, -2, "cache_path");
    return 1;
}

static int l_split_name(lua_State *L) {
    adept_split k = adept_dataset_kind(check_box(L, 1)->ds);
    lua_pushstring(L, k == ADEPT_SPLIT_TRAIN ? "train" : k == ADEPT_SPLIT_HOLDOUT ? "holdout" : "all");
    return 1;
}

static int l_cursor(lua_State *L) {
    adept_dataset_cursor c = adept_dataset_get_cursor(check_box(L, 1)->ds);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, c.epoch), lua_setfield(L, -2, "epoch");
    lua_pushinteger(L, c.position), lua_setfield(L, -2, "position");
    return 1;
}

static int l_set_cursor(lua_State *L) {
    dataset_box *b = check_box(L, 1);
    if (!lua_istable(L, 2)) return luaL_argerror(L, 2, lua_pushfstring(L, "cursor table expected, got %s", luaL_typename(L, 2)));
    adept_dataset_cursor c;
    c.epoch = adept_lua_opt_int_field_range(L, 2, "epoch", -1, -1, LUA_MAXINTEGER);
    c.position = adept_lua_opt_int_field_range(L, 2, "position", -1, -1, LUA_MAXINTEGER);
    ADEPT_LUA_TRY(L, "set_cursor", adept_dataset_set_cursor(b->ds, c));
    return 0;
}

/* ds:document(i): the token ids of document i (1-based) of this view, as a Lua array. */
static int l_document(lua_State *L) {
    dataset_box *b = check_box(L, 1);
    lua_Integer i = adept_lua_check_int_range(L, 2, "document index", 1, LUA_MAXINTEGER);
    const int32_t *t;
    int64_t n;
    ADEPT_LUA_TRY(L, "document", adept_dataset_document(b->ds, i - 1, &t, &n));
    lua_createtable(L, (int)n, 0);
    for (int64_t k = 0; k < n; k++) lua_pushinteger(L, t[k]), lua_rawseti(L, -2, k + 1);
    return 1;
}

static int l_gc(lua_State *L) {
    dataset_box *b = luaL_checkudata(L, 1, DATASET_MT);
    adept_dataset_free(b->ds); /* views share the corpus by reference count, so order does not matter */
    b->ds = NULL;
    return 0;
}

static int l_tostring(lua_State *L) {
    dataset_box *b = luaL_checkudata(L, 1, DATASET_MT);
    if (!b->ds) { lua_pushstring(L, "adept.Dataset(freed)"); return 1; }
    adept_split k = adept_dataset_kind(b->ds);
    lua_pushfstring(L, "adept.Dataset(%s, %I documents, %I tokens, %I windows of %I)",
                    k == ADEPT_SPLIT_TRAIN ? "train" : k == ADEPT_SPLIT_HOLDOUT ? "holdout" : "all",
                    (lua_Integer)adept_dataset_num_documents(b->ds), (lua_Integer)adept_dataset_num_tokens(b->ds),
                    (lua_Integer)adept_dataset_num_windows(b->ds), (lua_Integer)adept_dataset_seq_len(b->ds));
    return 1;
}

void adept_open_dataset(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"train", l_train}, {"holdout", l_holdout}, {"batches", l_batches}, {"next_batch", l_next_batch},
        {"take", l_take}, {"num_tokens", l_num_tokens}, {"num_documents", l_num_documents},
        {"num_windows", l_num_windows}, {"num_batches", l_num_batches}, {"seq_len", l_seq_len}, {"eos_id", l_eos_id},
        {"skipped", l_skipped}, {"stats", l_stats}, {"split", l_split_name}, {"cursor", l_cursor},
        {"set_cursor", l_set_cursor}, {"document", l_document}, {NULL, NULL}};
    static const adept_lua_class cls = {DATASET_MT, methods, NULL, l_gc, l_tostring, NULL};
    adept_lua_new_class(L, &cls);
    static const luaL_Reg fns[] = {{"dataset", l_dataset}, {NULL, NULL}};
    adept_lua_setfuncs(L, fns, "adept.");
}
