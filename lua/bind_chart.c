/* adept.chart.line / .scatter / .bars / .heatmap: Lua tables -> engine/report charts (PNG and/or SVG).
   Each returns the array of files written: path as given for .png/.svg, path..".png" and path..".svg" without one. */
#include <math.h>
#include <string.h>

#include "adept/chart.h"
#include "binding.h"

/* Scratch memory as userdata on the stack: collected with the call even when an argument error is raised. */
static void *scratch(lua_State *L, size_t bytes) { return lua_newuserdatauv(L, bytes ? bytes : 1, 0); }

/* Field `field` of the table at idx as a table (pushed), or nil pushed and 0 returned when absent. */
static int get_table_field(lua_State *L, int idx, const char *field, const char *ctx, int required) {
    int t = lua_getfield(L, idx, field);
    if (t == LUA_TTABLE) return 1;
    if (t == LUA_TNIL && !required) return 0;
    return luaL_error(L, "%s: field '%s' must be a table, got %s", ctx, field, luaL_typename(L, -1));
}

/* Reads the array at the top of the stack into doubles; false and non-finite numbers are gaps (NaN). */
static double *read_numbers(lua_State *L, size_t *n, const char *ctx, const char *what) {
    int t = lua_gettop(L);
    *n = (size_t)luaL_len(L, t);
    double *v = scratch(L, *n * sizeof *v);
    lua_insert(L, t); /* scratch below the source table, which the caller pops */
    for (size_t i = 0; i < *n; i++) {
        lua_geti(L, t + 1, (lua_Integer)i + 1);
        int isnum;
        v[i] = lua_tonumberx(L, -1, &isnum);
        if (!isnum) {
            if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) v[i] = NAN;
            else return luaL_error(L, "%s: %s[%d] must be a number, got %s", ctx, what, (int)i + 1,
                                   luaL_typename(L, -1)), NULL;
        }
        lua_pop(L, 1);
    }
    return v;
}

/* Reads an array of labels (strings or numbers) at the top of the stack; converted strings stay alive in
   the array itself (numbers are replaced by their string form in a copy table left on the stack). */
static const char **read_strings(lua_State *L, size_t *n, const char *ctx, const char *what) {
    int t = lua_gettop(L);
    *n = (size_t)luaL_len(L, t);
    const char **v = scratch(L, *n * sizeof *v);
    lua_createtable(L, (int)*n, 0); /* keeps the strings alive */
    int keep = lua_gettop(L);
    for (size_t i = 0; i < *n; i++) {
        lua_geti(L, t, (lua_Integer)i + 1);
        int type = lua_type(L, -1);
        if (type == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
            v[i] = NULL;
            lua_pop(L, 1);
            continue;
        }
        if (type != LUA_TSTRING && type != LUA_TNUMBER)
            return luaL_error(L, "%s: %s[%d] must be a string, got %s", ctx, what, (int)i + 1, luaL_typename(L, -1)),
                   NULL;
        v[i] = lua_tostring(L, -1);
        lua_seti(L, keep, (lua_Integer)i + 1);
    }
    return v; /* stack: source, scratch, keep */
}

static void read_options(lua_State *L, adept_chart_options *o) {
    o->title = adept_lua_opt_str_field(L, 1, "title", NULL);
    o->xlabel = adept_lua_opt_str_field(L, 1, "xlabel", NULL);
    o->ylabel = adept_lua_opt_str_field(L, 1, "ylabel", NULL);
    o->zlabel = adept_lua_opt_str_field(L, 1, "zlabel", NULL);
    lua_Integer w = adept_lua_opt_int_field_range(L, 1, "width", 800, ADEPT_CHART_MIN_SIZE, ADEPT_CHART_MAX_SIZE);
    lua_Integer h = adept_lua_opt_int_field_range(L, 1, "height", 500, ADEPT_CHART_MIN_SIZE, ADEPT_CHART_MAX_SIZE);
    o->width = (int)w;
    o->height = (int)h;
    o->logy = adept_lua_opt_bool_field(L, 1, "logy", 0);
    o->horizontal = adept_lua_opt_bool_field(L, 1, "horizontal", 0);
}

static const char *check_path(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *path = adept_lua_opt_str_field(L, 1, "path", NULL);
    if (!path || !path[0]) luaL_argerror(L, 1, "field 'path' (a .png or .svg file, or a name for both) is required");
    adept_lua_check_path(L, path, ADEPT_SANDBOX_WRITE, "adept.chart");
    return path;
}

/* The files written for `path`, mirroring the engine's rule. */
static int push_written(lua_State *L, const char *path) {
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    int has_ext = dot && (!slash || dot > slash + 1) && dot != path;
    lua_newtable(L);
    if (has_ext) {
        lua_pushstring(L, path);
        lua_seti(L, -2, 1);
    } else {
        lua_pushlstring(L, path, n);
        lua_pushliteral(L, ".png");
        lua_concat(L, 2);
        lua_seti(L, -2, 1);
        lua_pushlstring(L, path, n);
        lua_pushliteral(L, ".svg");
        lua_concat(L, 2);
        lua_seti(L, -2, 2);
    }
    return 1;
}

/* series = {{name=, x=, y=, labels=, connect=}, ...}; x defaults to 1..#y. Leaves three values on the stack
   (the series table, the array of structs and a table anchoring every scratch buffer and string). */
static adept_chart_series *read_series(lua_State *L, const char *fname, size_t *ns, int bars) {
    get_table_field(L, 1, "series", fname, 1);
    int st = lua_gettop(L);
    *ns = (size_t)luaL_len(L, st);
    if (*ns == 0) luaL_argerror(L, 1, "field 'series' must hold at least one series");
    adept_chart_series *s = scratch(L, *ns * sizeof *s);
    memset(s, 0, *ns * sizeof *s);
    lua_newtable(L);
    int keep = lua_gettop(L);
    lua_Integer nk = 0;
    int connect_all = adept_lua_opt_bool_field(L, 1, "connect", 0);
    char ctx[96];
    for (size_t i = 0; i < *ns; i++) {
        snprintf(ctx, sizeof ctx, "%s: series[%d]", fname, (int)i + 1);
        if (lua_geti(L, st, (lua_Integer)i + 1) != LUA_TTABLE)
            luaL_error(L, "%s must be a table, got %s", ctx, luaL_typename(L, -1));
        int si = lua_gettop(L);
        lua_getfield(L, si, "name");
        if (lua_isnil(L, -1)) lua_pop(L, 1);
        else if (lua_isstring(L, -1)) {
            s[i].name = lua_tostring(L, -1); /* a number is converted on the stack, not in the user's table */
            lua_seti(L, keep, ++nk);
        } else luaL_error(L, "%s: field 'name' must be a string, got %s", ctx, luaL_typename(L, -1));
        s[i].connect = adept_lua_opt_bool_field(L, si, "connect", connect_all);
        get_table_field(L, si, bars ? "values" : "y", ctx, 1);
        s[i].y = read_numbers(L, &s[i].ny, ctx, bars ? "values" : "y");
        lua_pop(L, 1);
        lua_seti(L, keep, ++nk);
        if (!bars) {
            if (get_table_field(L, si, "x", ctx, 0)) {
                s[i].x = read_numbers(L, &s[i].nx, ctx, "x");
                lua_pop(L, 1);
            } else {
                lua_pop(L, 1);
                double *x = scratch(L, s[i].ny * sizeof *x);
                for (size_t k = 0; k < s[i].ny; k++) x[k] = (double)(k + 1);
                s[i].x = x;
                s[i].nx = s[i].ny;
            }
            lua_seti(L, keep, ++nk);
            if (get_table_field(L, si, "labels", ctx, 0)) {
                size_t nl;
                s[i].labels = read_strings(L, &nl, ctx, "labels");
                if (nl != s[i].ny) luaL_error(L, "%s: %d labels for %d points", ctx, (int)nl, (int)s[i].ny);
                lua_seti(L, keep, ++nk); /* the strings */
                lua_seti(L, keep, ++nk); /* the pointer array */
            }
            lua_pop(L, 1); /* the labels table, or nil */
        }
        lua_pop(L, 1); /* the series table */
    }
    return s;
}

static int chart_xy(lua_State *L, int scatter) {
    const char *fname = scatter ? "adept.chart.scatter" : "adept.chart.line";
    const char *path = check_path(L);
    adept_chart_options o = {0};
    read_options(L, &o);
    size_t ns;
    adept_chart_series *s = read_series(L, fname, &ns, 0);
    ADEPT_LUA_TRY(L, fname, scatter ? adept_chart_scatter(path, &o, s, ns) : adept_chart_line(path, &o, s, ns));
    return push_written(L, path);
}

static int l_line(lua_State *L) { return chart_xy(L, 0); }
static int l_scatter(lua_State *L) { return chart_xy(L, 1); }

static int l_bars(lua_State *L) {
    const char *fname = "adept.chart.bars";
    const char *path = check_path(L);
    adept_chart_options o = {0};
    read_options(L, &o);
    get_table_field(L, 1, "categories", fname, 1);
    size_t ncat;
    const char **cats = read_strings(L, &ncat, fname, "categories");
    size_t ns;
    adept_chart_series *s = read_series(L, fname, &ns, 1);
    ADEPT_LUA_TRY(L, fname, adept_chart_bars(path, &o, cats, ncat, s, ns));
    return push_written(L, path);
}

static int l_heatmap(lua_State *L) {
    const char *fname = "adept.chart.heatmap";
    const char *path = check_path(L);
    adept_chart_options o = {0};
    read_options(L, &o);
    size_t nr, nc;
    get_table_field(L, 1, "rows", fname, 1);
    const char **rows = read_strings(L, &nr, fname, "rows");
    get_table_field(L, 1, "cols", fname, 1);
    const char **cols = read_strings(L, &nc, fname, "cols");
    get_table_field(L, 1, "values", fname, 1);
    int vt = lua_gettop(L);
    if ((size_t)luaL_len(L, vt) != nr)
        return luaL_error(L, "%s: values has %d rows but rows names %d", fname, (int)luaL_len(L, vt), (int)nr);
    double *v = scratch(L, nr * nc * sizeof *v);
    char ctx[64];
    for (size_t r = 0; r < nr; r++) {
        snprintf(ctx, sizeof ctx, "%s: values[%d]", fname, (int)r + 1);
        if (lua_geti(L, vt, (lua_Integer)r + 1) != LUA_TTABLE)
            return luaL_error(L, "%s must be a table, got %s", ctx, luaL_typename(L, -1));
        int row = lua_gettop(L);
        lua_Integer len = luaL_len(L, row);
        if ((size_t)len > nc) return luaL_error(L, "%s has %d values but cols names %d", ctx, (int)len, (int)nc);
        for (size_t c = 0; c < nc; c++) { /* short rows and false are missing cells */
            lua_geti(L, row, (lua_Integer)c + 1);
            int isnum;
            double x = lua_tonumberx(L, -1, &isnum);
            if (!isnum && !lua_isnil(L, -1) && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1)))
                return luaL_error(L, "%s[%d] must be a number, got %s", ctx, (int)c + 1, luaL_typename(L, -1));
            v[r * nc + c] = isnum ? x : NAN;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    ADEPT_LUA_TRY(L, fname, adept_chart_heatmap(path, &o, rows, nr, cols, nc, v));
    return push_written(L, path);
}

void adept_open_chart(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"line", l_line}, {"scatter", l_scatter}, {"bars", l_bars}, {"heatmap", l_heatmap}, {NULL, NULL}};
    adept_lua_newlib(L, fns, "adept.chart.");
    lua_pushinteger(L, ADEPT_CHART_MIN_SIZE);
    lua_setfield(L, -2, "min_size");
    lua_pushinteger(L, ADEPT_CHART_MAX_SIZE);
    lua_setfield(L, -2, "max_size");
    lua_setfield(L, -2, "chart");
}
