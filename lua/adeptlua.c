/* adeptlua: runs a recipe with the adept module preloaded.
   adeptlua [options] [recipe.lua [key=value ...]] ; -e code ; -i ; --threads N ; --seed N ; --device cpu|cuda ;
   --precision f32|bf16 ;
   --sandbox/--trust/--out/--data/--read ; adeptlua pack|run|verify|inspect ...: bundles (lua/adept/bundle.lua). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "adept/build_info.h"
#include "adept/cuda.h"
#include "adept/dist.h"
#include "adept/fsutil.h"
#include "adept/log.h"
#include "adept/model.h"
#include "adept/suggest.h"
#include "adept/threads.h"
#include "binding.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: adeptlua [options] [recipe.lua [key=value ...]]\n"
    "Runs a Lua 5.4 recipe with the adept module preloaded (global `adept`, or require \"adept\").\n"
    "key=value overrides arrive in the recipe as adept.args (numbers, true/false and strings typed).\n"
    "\n"
    "options:\n"
    "  -e CODE        run CODE (after the recipe, if one is given)\n"
    "  -i             interactive prompt (after the recipe and -e)\n"
    "  --threads N    threads for OpenMP and OpenBLAS together (default: all cores)\n"
    "  --seed N       the run's seed, as adept.seed (default 0)\n"
    "  --device D     cpu or cuda: the default device of adept.load and adept.model, as adept.default_device\n"
    "  --precision P  f32 or bf16: the default precision of their products, as adept.default_precision\n"
    "                 (unset: bf16 on cuda, f32 on the cpu; f32 on cuda is the path for parity with the cpu)\n"
    "  -q, --quiet    only warnings and errors on stderr\n"
    "  --sandbox      run the recipe sandboxed (no processes, native code or bytecode; reads only declared\n"
    "                 inputs, writes only under the output folder; see docs/sharing.md)\n"
    "  --trust        lift the sandbox (the default for plain recipes; bundles need it to run unsandboxed)\n"
    "  --out DIR      the sandboxed run's output folder (default: out=, else ./runs); also sets adept.args.out\n"
    "  --data DIR     a folder of inputs (sandbox: readable; bundles: searched for inputs by hash)\n"
    "  --read PATH    declare one more input file or folder readable in the sandbox\n"
    "  --version      print the version and exit\n"
    "  -h, --help     print this help and exit (after the recipe: the recipe's options, see adept.options)\n"
    "\n"
    "bundles (docs/sharing.md; --threads, --seed, --device, --precision and -q go before the command):\n"
    "  adeptlua pack recipe.lua [key=value ...] -o exp.adept [--results DIR] [--inputs] [--max-bytes N]\n"
    "  adeptlua run exp.adept [--data DIR ...] [--out DIR] [--trust] [key=value ...]\n"
    "  adeptlua verify exp.adept [--data DIR ...] [--out DIR] [--tol T] [--trust] [key=value ...]\n"
    "  adeptlua inspect exp.adept [--json]\n"
    "\n"
    "example: adeptlua recipes/adept.lua k=4 metric=fisher steps=2000\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "adeptlua: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'adeptlua --help'.\n");
    return EXIT_USAGE;
}

/* "unknown option '--sanbox' — did you mean '--sandbox'?", as adept.options words it for recipe options. */
static int unknown_option(const char *a) {
    static const char *const known[] = {"-e", "-i", "--threads", "--seed", "--device", "--precision", "-q", "--quiet", "--sandbox",
                                        "--trust", "--out", "--data", "--read", "--version", "-h", "--help"};
    const char *hint = adept_suggest(a, known, sizeof known / sizeof known[0]);
    fprintf(stderr, "adeptlua: unknown option '%s'", a);
    if (hint) fprintf(stderr, " — did you mean '%s'?", hint);
    fprintf(stderr, "\nTry 'adeptlua --help'.\n");
    return EXIT_USAGE;
}

/* Error handler: message plus a traceback naming the recipe file and line. */
static int message_handler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int run_chunk(lua_State *L, int status) {
    if (status == LUA_OK) {
        int base = lua_gettop(L);
        lua_pushcfunction(L, message_handler);
        lua_insert(L, base);
        status = lua_pcall(L, 0, 0, base);
        lua_remove(L, base);
    }
    if (status != LUA_OK) {
        adept_comm *w = adept_comm_world();
        if (adept_comm_size(w) > 1) /* say which process failed: the job ends on its error */
            fprintf(stderr, "adeptlua (rank %d of %d): %s\n", adept_comm_rank(w), adept_comm_size(w), lua_tostring(L, -1));
        else
            fprintf(stderr, "adeptlua: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return status;
}

/* "3" -> integer, "1e-4" -> number, "true"/"false" -> boolean, anything else -> string. */
static void push_typed(lua_State *L, const char *v) {
    if (!strcmp(v, "true")) lua_pushboolean(L, 1);
    else if (!strcmp(v, "false")) lua_pushboolean(L, 0);
    else if (lua_stringtonumber(L, v) == 0) lua_pushstring(L, v);
}

static void interactive(lua_State *L) {
    char line[4096];
    for (;;) {
        fputs("> ", stdout);
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin)) break;
        /* try as an expression first, as lua.c does */
        lua_pushfstring(L, "return %s", line);
        int status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=stdin");
        lua_remove(L, -2);
        if (status != LUA_OK) {
            lua_pop(L, 1);
            status = luaL_loadbuffer(L, line, strlen(line), "=stdin");
        }
        if (status != LUA_OK) {
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
            lua_pop(L, 1);
            continue;
        }
        int base = lua_gettop(L);
        lua_pushcfunction(L, message_handler);
        lua_insert(L, base);
        status = lua_pcall(L, 0, LUA_MULTRET, base);
        lua_remove(L, base);
        if (status != LUA_OK) {
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
            lua_pop(L, 1);
            continue;
        }
        int n = lua_gettop(L) - base + 1;
        if (n > 0) {
            lua_getglobal(L, "print");
            lua_insert(L, base);
            if (lua_pcall(L, n, 0, 0) != LUA_OK) {
                fprintf(stderr, "%s\n", lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        }
    }
    fputs("\n", stdout);
}

extern char *openblas_get_corename(void);

/* OpenBLAS 0.3.21 (Debian 12) does not recognise some current Xeons and falls back to its generic Prescott
   kernels, about 10x slower than the AVX2/AVX-512 ones. When OPENBLAS_CORETYPE is unset and that fallback
   happened, pick the kernels the CPU supports and re-execute (OpenBLAS reads the variable when it loads).
   A value set by the user or the machine is always respected; ADEPT_BLAS_AUTO=0 turns this off. */
static void select_blas_kernels(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("ADEPT_BLAS_REEXEC")) return;
    const char *autoselect = getenv("ADEPT_BLAS_AUTO");
    if (autoselect && !strcmp(autoselect, "0")) return;
    if (strcasecmp(openblas_get_corename(), "Prescott") != 0) return;
    __builtin_cpu_init();
    const char *core = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        core = "Haswell";
    if (!core) return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("ADEPT_BLAS_REEXEC", core, 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on with the generic kernels */
}

static int is_bundle_command(const char *w) {
    return !strcmp(w, "pack") || !strcmp(w, "run") || !strcmp(w, "verify") || !strcmp(w, "inspect");
}

/* adeptlua pack|run|verify|inspect ...: adept.bundle.main(command, words, settings) in a trusted state; it runs
   recipes in child processes of this binary, sandboxed unless --trust. */
static int bundle_command(const char *exe, int argc, char **argv, int threads, long long seed, int seed_given, int quiet,
                          const char *device, const char *precision) {
    lua_State *L = luaL_newstate();
    if (!L) { fprintf(stderr, "adeptlua: cannot create the Lua state\n"); return 1; }
    luaL_openlibs(L);
    luaL_requiref(L, "adept", luaopen_adept, 1);
    lua_pop(L, 1);
    int base = lua_gettop(L);
    lua_pushcfunction(L, message_handler);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "adept.bundle");
    int status = lua_pcall(L, 1, 1, base + 1);
    if (status == LUA_OK) {
        lua_getfield(L, -1, "main");
        lua_remove(L, -2);
        char self[4096]; /* children run this very binary, wherever it was started from */
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len > 0) self[len] = '\0';
        lua_pushstring(L, len > 0 ? self : exe);
        lua_createtable(L, argc, 0);
        for (int j = 0; j < argc; j++) { lua_pushstring(L, argv[j]); lua_seti(L, -2, j + 1); }
        lua_createtable(L, 0, 4);
        if (threads) { lua_pushinteger(L, threads); lua_setfield(L, -2, "threads"); }
        if (seed_given) { lua_pushinteger(L, (lua_Integer)seed); lua_setfield(L, -2, "seed"); }
        lua_pushboolean(L, quiet);
        lua_setfield(L, -2, "quiet");
        if (device) { lua_pushstring(L, device); lua_setfield(L, -2, "device"); }
        if (precision) { lua_pushstring(L, precision); lua_setfield(L, -2, "precision"); }
        status = lua_pcall(L, 3, 1, base + 1);
    }
    int rc = 1;
    if (status != LUA_OK) fprintf(stderr, "adeptlua: %s\n", lua_tostring(L, -1));
    else rc = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    lua_close(L);
    return rc;
}

/* Lua modules beside the recipe are found by require, as in a sandboxed run (and as `pack` bundles them). */
static void add_recipe_folder_to_path(lua_State *L, const char *recipe) {
    const char *slash = strrchr(recipe, '/');
    int n = slash ? (slash == recipe ? 1 : (int)(slash - recipe)) : 1;
    const char *dir = slash ? recipe : ".";
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    char buf[8192];
    const char *old = lua_tostring(L, -1);
    snprintf(buf, sizeof buf, "%.*s/?.lua;%.*s/?/init.lua;%s", n, dir, n, dir, old ? old : "");
    lua_pushstring(L, buf);
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

/* The sandbox of a plain recipe run: writes under the output folder (--out, else out=, else ./runs); reads the
   declared inputs: --data folders, --read paths and every key=value value that names an existing path. */
static int install_sandbox(lua_State *L, const char *recipe, const char *out, const char **reads, int n_reads,
                           char **words, int n_words) {
    if (adept_fs_mkdir_p(out) != ADEPT_OK) {
        fprintf(stderr, "adeptlua: --sandbox: %s\n", adept_last_error());
        return 1;
    }
    const char **all = calloc((size_t)(n_reads + n_words) + 2, sizeof *all);
    if (!all) return 1;
    int n = 0;
    for (int k = 0; k < n_reads; k++) all[n++] = reads[k];
    struct stat st;
    for (int k = 0; k < n_words; k++) {
        const char *eq = strchr(words[k], '='); /* none: --help */
        if (eq && strncmp(words[k], "out=", 4) && stat(eq + 1, &st) == 0) all[n++] = eq + 1;
    }
    if (recipe) all[n++] = recipe; /* provenance copies and hashes it */
    char dir[4096] = ".";
    if (recipe) {
        const char *slash = strrchr(recipe, '/');
        if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - recipe) ? (int)(slash - recipe) : 1, recipe);
    }
    char cache[4200];
    snprintf(cache, sizeof cache, "%s/.adept/cache", out); /* the corpus cache follows the output folder */
    setenv("ADEPT_CACHE", cache, 1);
    snprintf(cache, sizeof cache, "%s/.adept/sha256.json", out); /* and so does provenance's hash cache */
    setenv("ADEPT_HASH_CACHE", cache, 1);
    adept_sandbox_config c = {.out_dir = out, .module_dir = dir, .read = all, .n_read = (size_t)n};
    int status = adept_lua_sandbox_install(L, &c);
    free(all);
    if (status != LUA_OK) {
        fprintf(stderr, "adeptlua: %s\n", lua_tostring(L, -1));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    select_blas_kernels(argv);
    const char *reads[256], *out_dir = NULL;
    int n_reads = 0, sandbox = 0, trust = 0, seed_given = 0;
    const char *exprs[64];
    int n_exprs = 0, want_interactive = 0, threads = 0, quiet = 0;
    const char *device = NULL, *precision = NULL;
    long long seed = 0;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !strcmp(a, "-")) break;
        if (!strcmp(a, "--")) { i++; break; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage_text, stdout); return 0; }
        if (!strcmp(a, "--version")) { printf("adeptlua %s (commit %s, %s; built for %s)\n", adept_version(), adept_git_commit(), LUA_RELEASE, adept_build_isa()); return 0; }
        if (!strcmp(a, "-i")) { want_interactive = 1; continue; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!strcmp(a, "--sandbox")) { sandbox = 1; continue; }
        if (!strcmp(a, "--trust")) { trust = 1; continue; }
        if (!strcmp(a, "--out") || !strcmp(a, "--data") || !strcmp(a, "--read")) {
            if (i + 1 >= argc) return usage_error("option '%s' needs an argument", a);
            if (!strcmp(a, "--out")) { out_dir = argv[++i]; continue; }
            if (n_reads == 256) return usage_error("too many --data/--read options (%s)", "256 at most");
            reads[n_reads++] = argv[++i];
            continue;
        }
        if (!strcmp(a, "-e") || !strcmp(a, "--threads") || !strcmp(a, "--seed") || !strcmp(a, "--device") ||
            !strcmp(a, "--precision")) {
            if (i + 1 >= argc) return usage_error("option '%s' needs an argument", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--device")) {
                if (strcmp(v, "cpu") && strcmp(v, "cuda")) return usage_error("--device takes cpu or cuda, got '%s'", v);
                device = v;
                continue;
            }
            if (!strcmp(a, "--precision")) {
                adept_precision parsed; /* the engine's parser owns the list of names */
                if (adept_precision_parse(v, &parsed) != ADEPT_OK)
                    return usage_error("--precision takes f32 or bf16, got '%s'", v);
                precision = v;
                continue;
            }
            if (!strcmp(a, "-e")) {
                if (n_exprs == 64) return usage_error("too many -e options (%s)", "64 at most");
                exprs[n_exprs++] = v;
                continue;
            }
            char *end;
            long long n = strtoll(v, &end, 10);
            if (*v == '\0' || *end != '\0' || n < 0) return usage_error("expected a non-negative integer, got '%s'", v);
            if (!strcmp(a, "--threads")) threads = (int)n;
            else seed = n, seed_given = 1;
            continue;
        }
        return unknown_option(a);
    }
    if (i < argc && is_bundle_command(argv[i])) {
        if (sandbox || trust || out_dir || n_reads || n_exprs || want_interactive)
            return usage_error("options of '%s' go after it (adeptlua --help)", argv[i]);
        adept_set_threads(threads);
        if (quiet) adept_log_set_level(ADEPT_LOG_WARN);
        return bundle_command(argv[0], argc - i, argv + i, threads, seed, seed_given, quiet, device, precision);
    }
    const char *recipe = i < argc ? argv[i++] : NULL;
    struct stat recipe_st;
    if (recipe && stat(recipe, &recipe_st) != 0) { /* `adeptlua pak x.lua`: a misspelt command, not a recipe */
        static const char *const commands[] = {"pack", "run", "verify", "inspect"};
        const char *hint = adept_suggest(recipe, commands, 4);
        if (hint) {
            fprintf(stderr, "adeptlua: no recipe '%s' and no command of that name — did you mean '%s'?\n"
                            "Try 'adeptlua --help'.\n", recipe, hint);
            return EXIT_USAGE;
        }
    }
    if (!recipe && !n_exprs && !want_interactive) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    /* the remaining words are key=value overrides; --help after the recipe prints the recipe's options */
    int recipe_help = 0;
    for (int j = i; j < argc; j++) {
        if (recipe && (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h"))) { recipe_help = 1; continue; }
        if (!strchr(argv[j], '=') || argv[j][0] == '=')
            return usage_error("expected key=value after the recipe, got '%s'", argv[j]);
    }

    if (device && !strcmp(device, "cuda")) { /* fail before the recipe runs, not at its first load */
        /* the backend lookup, not a device count: a test host registers its fake device as the CUDA one */
        if (!adept_backend_for(ADEPT_CUDA)) {
            const char *why;
            if (adept_cuda_device_count(&why) <= 0) fprintf(stderr, "adeptlua: --device cuda: no CUDA device (%s)\n", why);
            else fprintf(stderr, "adeptlua: --device cuda: %s\n", adept_last_error());
            return 1;
        }
    }
    /* under mpirun / srun: join the process group (MPI_Init) before anything else runs */
    if (adept_dist_init(&argc, &argv) != ADEPT_OK) {
        fprintf(stderr, "adeptlua: %s\n", adept_last_error());
        return 1;
    }
    adept_set_threads(threads);
    if (quiet) adept_log_set_level(ADEPT_LOG_WARN);

    lua_State *L = luaL_newstate();
    if (!L) { fprintf(stderr, "adeptlua: cannot create the Lua state\n"); return 1; }
    luaL_openlibs(L);
    int sandboxed = sandbox && !trust;
    const char *out = out_dir;
    for (int j = i; !out && j < argc; j++)
        if (!strncmp(argv[j], "out=", 4)) out = argv[j] + 4;
    if (sandboxed && install_sandbox(L, recipe, out ? out : "runs", reads, n_reads, argv + i, argc - i)) {
        lua_close(L);
        return 1;
    }
    if (!sandboxed && recipe) add_recipe_folder_to_path(L, recipe);
    luaL_requiref(L, "adept", luaopen_adept, 1); /* also sets the global `adept` */
    lua_pushinteger(L, (lua_Integer)seed);
    lua_setfield(L, -2, "seed");
    if (device) {
        lua_pushstring(L, device);
        lua_setfield(L, -2, "default_device");
    }
    if (precision) {
        lua_pushstring(L, precision);
        lua_setfield(L, -2, "default_precision");
    }
    lua_getfield(L, -1, "args");
    for (int j = i; j < argc; j++) {
        const char *eq = strchr(argv[j], '=');
        if (!eq) continue; /* --help */
        lua_pushlstring(L, argv[j], (size_t)(eq - argv[j]));
        push_typed(L, eq + 1);
        lua_settable(L, -3);
    }
    if (out_dir) { /* --out is also the recipe's out= unless one was given */
        if (lua_getfield(L, -1, "out") == LUA_TNIL) {
            lua_pushstring(L, out_dir);
            lua_setfield(L, -3, "out");
            /* not typed by the user: adept.options passes it over when the recipe declares no `out` */
            lua_createtable(L, 0, 1);
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "out");
            lua_setfield(L, -4, "_host_args");
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    /* arg, as lua.c sets it: arg[0] the recipe, arg[1..] the overrides */
    lua_createtable(L, argc, 1);
    if (recipe) { lua_pushstring(L, recipe); lua_seti(L, -2, 0); }
    for (int j = 0; recipe && j < i - 1; j++) { lua_pushstring(L, argv[j]); lua_seti(L, -2, j - (i - 1)); } /* host, options */
    for (int j = i; j < argc; j++) { lua_pushstring(L, argv[j]); lua_seti(L, -2, j - i + 1); }
    lua_setglobal(L, "arg");

    int status = LUA_OK;
    /* help mode: the recipe's adept.options call prints its options and exits 0 (lua/adept/options.lua) */
    if (recipe_help) status = run_chunk(L, luaL_loadstring(L, "require('adept.options').help_mode()"));
    if (recipe && status == LUA_OK) status = run_chunk(L, luaL_loadfilex(L, recipe, sandboxed ? "t" : NULL));
    if (recipe_help && status == LUA_OK) { /* it ended without declaring options (a declaration exits 0) */
        printf("%s declares no options with adept.options; it reads key=value words as adept.args.\n", recipe);
        lua_close(L);
        return 0;
    }
    for (int k = 0; status == LUA_OK && k < n_exprs; k++)
        status = run_chunk(L, luaL_loadbuffer(L, exprs[k], strlen(exprs[k]), "=(command line)"));
    if (status == LUA_OK && want_interactive) interactive(L);
    lua_close(L);
    /* an error on one rank ends every rank (the others may be waiting in a collective), within seconds */
    adept_comm *w = adept_comm_world();
    if (status != LUA_OK && adept_comm_size(w) > 1) w->ops->abort(w, 1);
    adept_dist_finalize();
    return status == LUA_OK ? 0 : 1;
}
