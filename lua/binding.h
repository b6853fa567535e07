/* Helpers shared by the binding files: raising engine errors as Lua errors, tensor userdata, argument
   parsing. Bindings check arguments and translate errors; algorithms live in engine/ or lua/adept/. */
#ifndef ADEPT_BINDING_H
#define ADEPT_BINDING_H

#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "adept/error.h"
#include "adept/tensor.h"

#define ADEPT_TENSOR_MT "adept.Tensor"

/* The binding convention (docs/bindings.md): every exposed function is registered through a dispatcher that
   raises its errors as "<public name>: <message>" ("adept.load: ...", "adept.Model:expand: ..."), whatever
   raised them (an engine status, a lauxlib argument check, Lua code called from C). Failures raise; no binding
   returns nil, message. */

/* Raises "<fname>: <engine message>"; the dispatcher drops fname when it is the function's own name.
   Never returns. */
int adept_lua_raise(lua_State *L, const char *fname);
/* Evaluates an adept_status expression and raises on failure. `fname` is the Lua-visible name. */
#define ADEPT_LUA_TRY(L, fname, expr)                                   \
    do {                                                                \
        if ((expr) != ADEPT_OK) return adept_lua_raise((L), (fname));   \
    } while (0)
/* Re-raises the error value at the top of the stack unchanged (an error of a user callback). */
int adept_lua_rethrow(lua_State *L);

/* Sets fns into the table at the top of the stack as dispatched closures named prefix..name
   ("adept." for the module, "adept.fs." for a submodule). */
void adept_lua_setfuncs(lua_State *L, const luaL_Reg *fns, const char *prefix);
/* Pushes a new table of dispatched functions. */
void adept_lua_newlib(lua_State *L, const luaL_Reg *fns, const char *prefix);
/* Pushes the function at the top of the stack (a C function or closure, popped) as a dispatched closure. */
void adept_lua_push_named(lua_State *L, const char *name);

/* One layout for every userdata type: a named metatable registered once, __name = name, __index = the
   methods table (also at metatable.methods; `index` replaces it with a function, for Model's fields),
   __gc (idempotent), __close and :free() all the same function, __tostring "adept.Type(facts)". */
typedef struct adept_lua_class {
    const char *name;        /* "adept.Model": metatable name, __name, prefix of method names in errors */
    const luaL_Reg *methods; /* methods table; NULL-terminated */
    const luaL_Reg *meta;    /* operators (__add, __len, ...), or NULL */
    lua_CFunction gc;        /* releases the handle's resource and NULLs it: safe to call twice */
    lua_CFunction tostring;
    lua_CFunction index;     /* NULL: __index is the methods table */
} adept_lua_class;
void adept_lua_new_class(lua_State *L, const adept_lua_class *c);
/* Adds methods to a class registered before (methods defined in another binding file). */
void adept_lua_add_methods(lua_State *L, const char *class_name, const luaL_Reg *methods);

/* Conversion of Lua values into C types. `what` names the parameter in the message ("field 'max_tokens'",
   "layer index"). Integers: range-checked into [lo, hi] (an integral float is accepted; 2^32 + 1 never
   wraps). Numbers: finite; "f32" ones also within the float32 range, since they become float32 or scale
   float32 arithmetic (returned unrounded). check/opt take argument `arg` (errors are argument errors);
   *_value take the value at stack index `idx` (a table element; errors name only `what`). */
lua_Integer adept_lua_check_int_range(lua_State *L, int arg, const char *what, lua_Integer lo, lua_Integer hi);
lua_Integer adept_lua_opt_int_range(lua_State *L, int arg, const char *what, lua_Integer def, lua_Integer lo,
                                    lua_Integer hi);
lua_Integer adept_lua_int_value(lua_State *L, int idx, const char *what, lua_Integer lo, lua_Integer hi);
lua_Number adept_lua_check_f32(lua_State *L, int arg, const char *what);
lua_Number adept_lua_opt_f32(lua_State *L, int arg, const char *what, lua_Number def);
lua_Number adept_lua_f32_value(lua_State *L, int idx, const char *what);
lua_Number adept_lua_check_finite(lua_State *L, int arg, const char *what);
lua_Number adept_lua_opt_finite(lua_State *L, int arg, const char *what, lua_Number def);
#define ADEPT_INT32_RANGE INT32_MIN, INT32_MAX
#define ADEPT_NONNEG_INT32 0, INT32_MAX

/* Tensor userdata: a box holding one adept_tensor*, NULL after :free(). */
typedef struct adept_tensor_box {
    adept_tensor *t;
} adept_tensor_box;

/* Pushes a new tensor handle that owns `t` (t is freed with the handle). */
void adept_lua_push_tensor(lua_State *L, adept_tensor *t);
/* Checks that argument `arg` is a live tensor; raises "bad argument" or "tensor was freed". */
adept_tensor *adept_lua_check_tensor(lua_State *L, int arg);
/* The tensor at `arg` or NULL when it is not a tensor (freed tensors still raise). */
adept_tensor *adept_lua_to_tensor(lua_State *L, int arg);
adept_tensor_box *adept_lua_check_tensor_box(lua_State *L, int arg);
/* Registers the adept.Tensor class (bind_tensor.c); module.c calls it before any binding opens. */
void adept_lua_tensor_metatable(lua_State *L);

/* A tensor the host may read, for a binding that reads values: t itself (a new view) when it lives on the
   host, else a host copy of a device tensor (docs/cuda.md: values cross to the host only when read). The handle
   is left on the stack, so a raised error frees it. */
adept_tensor *adept_lua_host_tensor(lua_State *L, const adept_tensor *t, const char *fname);
/* The device a function creates its result on: the string field `device` of the options table at `arg` (may
   be none or nil), else adept.default_device (set by `adeptlua --device`), else the CPU. An unknown name raises
   naming the option. */
int adept_lua_opt_device(lua_State *L, int arg, const char *fname);
/* The precision a new model on `device` gets (adept_model_set_precision): the string field `precision` of the
   options table at `arg` ("f32" | "bf16"), else the device's default: "bf16" on cuda (mixed precision, how
   models are trained on GPUs), "f32" on the cpu (the exact reference path). Anything else raises naming the
   option and the valid values. Read before the model exists, so a typo leaks nothing. */
int adept_lua_opt_precision(lua_State *L, int arg, int device, const char *fname);

/* Reads a shape: a table of non-negative integers {2, 3}. Returns ndim; raises a standard
   "bad argument #arg to 'fname' (table of dimensions expected, got X)" on misuse. */
int adept_lua_check_shape(lua_State *L, int arg, int64_t *shape, const char *fname);
/* Optional fields of a table argument, with a default when absent (nil); present but of the wrong type or
   out of range raises naming the field. Numbers must be finite. */
lua_Integer adept_lua_opt_int_field(lua_State *L, int arg, const char *field, lua_Integer def);
lua_Integer adept_lua_opt_int_field_range(lua_State *L, int arg, const char *field, lua_Integer def, lua_Integer lo,
                                          lua_Integer hi);
lua_Number adept_lua_opt_num_field(lua_State *L, int arg, const char *field, lua_Number def);
lua_Number adept_lua_opt_f32_field(lua_State *L, int arg, const char *field, lua_Number def);
const char *adept_lua_opt_str_field(lua_State *L, int arg, const char *field, const char *def);
int adept_lua_opt_bool_field(lua_State *L, int arg, const char *field, int def);
/* Raises "<fname>: unknown option 'setps' — did you mean 'steps'? (options: ...)" when the table at `arg` has a
   key outside `known` (a NULL-terminated list). Nothing happens when `arg` is not a table. */
void adept_lua_check_keys(lua_State *L, int arg, const char *const *known, const char *fname);

/* Token ids from a tensor (any integer-valued dtype) or a Lua array / array of arrays, into a userdata left
   on the stack; *rows = 0 for 1-D input (bind_batch.c). */
int32_t *adept_lua_read_ids(lua_State *L, int arg, int *rows, int *cols, const char *fname);
/* A batch: ids [B, T+1] (inputs = [:, :T], targets = [:, 1:]) or {inputs = [B, T], targets = [B, T]}
   (target -1 = ignored). Leaves its buffers on the stack. */
struct adept_batch;
void adept_lua_read_batch(lua_State *L, int arg, struct adept_batch *b, const char *fname);

/* Each binding file registers its functions into the module table at the top of the stack. */
typedef void (*adept_binding_open)(lua_State *L);
void adept_open_eval(lua_State *L);
void adept_open_tensor(lua_State *L);
void adept_open_util(lua_State *L);
void adept_open_fs(lua_State *L);
void adept_open_ckpt(lua_State *L);
void adept_open_optim(lua_State *L);
void adept_open_train(lua_State *L);
void adept_open_model(lua_State *L);
void adept_open_io(lua_State *L);
void adept_open_json(lua_State *L);
int adept_lua_json_encode(lua_State *L); /* adept.json.encode(value) as a lua_CFunction */
void adept_open_chart(lua_State *L);

/* Model userdata (bind_model.c): a named metatable; the handle owns the model (freed by __gc or :free()).
   Other binding files (e.g. bind_model_io.c) push loaded models and check model arguments with these. */
#define ADEPT_MODEL_MT "adept.Model"
typedef struct adept_model adept_model;
void adept_lua_push_model(lua_State *L, adept_model *m);
adept_model *adept_lua_check_model(lua_State *L, int arg);
/* Optimizer userdata (bind_optim.c): raises when it or its model was freed. */
typedef struct adept_adamw adept_adamw;
adept_adamw *adept_lua_check_optimizer(lua_State *L, int arg);
void adept_open_model_io(lua_State *L);
void adept_open_dataset(lua_State *L);
void adept_open_instructions(lua_State *L);
/* adept.dataset{format = "instructions", ...} (bind_instructions.c), dispatched from adept.dataset. */
int adept_lua_instruction_dataset(lua_State *L);
void adept_open_tokenizer(lua_State *L);
void adept_open_adapt(lua_State *L);
void adept_open_cuda(lua_State *L);
void adept_open_dist(lua_State *L);

/* The sandbox (bind_sandbox.c). Every binding that takes a path calls adept_lua_check_path before using it:
   a no-op unless the host installed a sandbox, otherwise it raises "sandbox: reading '<path>' by <what> is not
   allowed ..." when the path, after `..` and symbolic links, is outside the declared inputs and the output folder
   (reads) or outside the output folder (writes). */
#define ADEPT_SANDBOX_READ 'r'
#define ADEPT_SANDBOX_WRITE 'w'
void adept_lua_check_path(lua_State *L, const char *path, int mode, const char *what);
/* The same for argument `arg` when it is a string or an array of strings (other values are left to the caller). */
void adept_lua_check_paths(lua_State *L, int arg, int mode, const char *what);
int adept_lua_sandboxed(lua_State *L);
typedef struct adept_sandbox_config {
    const char *out_dir;    /* existing folder: the only place written to */
    const char *module_dir; /* existing folder `require` loads Lua modules from (the recipe's) */
    const char *const *read; /* existing files or folders that may be read */
    size_t n_read;
} adept_sandbox_config;
/* Called by the host after luaL_openlibs and before the adept module loads; returns a lua_pcall status and
   leaves the message on the stack on failure. */
int adept_lua_sandbox_install(lua_State *L, const adept_sandbox_config *c);
void adept_open_sandbox(lua_State *L);
void adept_open_bundle(lua_State *L);

int luaopen_adept(lua_State *L);

#endif
