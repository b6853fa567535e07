/* The ops dispatch layer: validates arguments once (devices, dtypes, shapes, dims, k), allocates outputs and
   calls the tensor-op entry of the tensors' device backend (adept/backend.h), so kernels stay simple and
   backends stay swappable. */
#include "adept/ops.h"

#include "adept/backend.h"
#include "adept/device.h"
#include "ops/staged.h"

#include <math.h>
#include <stdlib.h>

const char *adept_unary_op_name(adept_unary_op op) {
    static const char *names[] = {"abs", "square", "sqrt", "neg"};
    return (unsigned)op < ADEPT_UNARY_COUNT ? names[op] : "?";
}

const char *adept_binary_op_name(adept_binary_op op) {
    static const char *names[] = {"add", "sub", "mul", "div", "rsub", "rdiv"};
    return (unsigned)op < ADEPT_BINARY_COUNT ? names[op] : "?";
}

const char *adept_reduce_op_name(adept_reduce_op op) {
    static const char *names[] = {"sum", "mean", "max", "min", "norm"};
    return (unsigned)op < ADEPT_REDUCE_COUNT ? names[op] : "?";
}

/* ---- validation helpers ---- */

static adept_status backend_of(const char *op, const adept_tensor *a, const adept_tensor *b,
                               const adept_backend **out) {
    if (!a) return adept_fail(ADEPT_EINVAL, "%s: the input tensor is NULL", op);
    adept_device d = a->storage->device;
    if (b && b->storage->device != d)
        return adept_fail(ADEPT_ESHAPE, "%s: tensors live on different devices (%s and %s; copy one with :to(\"%s\"))",
                          op, adept_device_name(d), adept_device_name(b->storage->device), adept_device_name(d));
    *out = adept_backend_for(d);
    return *out ? ADEPT_OK : adept_fail_context(ADEPT_EUNSUPPORTED, "%s", op);
}

/* A device table without a tensor-op entry runs the op staged through the host (engine/ops/staged.c) when it can
   copy to and from the host, as every real device does (today's CUDA backend has no tensor-op kernels). */
static int staged(const adept_backend *be, int present) { return !present && be->to_host && be->to_device; }

/* The tensor-op entries are optional per device: a missing one that cannot be staged is refused, naming the op and
   the device. */
static adept_status entry_present(const char *op, const adept_backend *be, int present) {
    if (present) return ADEPT_OK;
    return adept_fail(ADEPT_EUNSUPPORTED, "%s: not implemented on the %s device (copy the tensor to the CPU with "
                      ":to(\"cpu\") first)", op, be->name);
}

static adept_status dtype_unsupported(const char *op, adept_dtype dt, const char *supported) {
    return adept_fail(ADEPT_EUNSUPPORTED, "%s: dtype %s is not supported (%s; convert with :to(\"f32\"))", op,
                      adept_dtype_name(dt), supported);
}

static adept_status check_dtype(const char *op, adept_dtype dt, int allow_i32) {
    if (dt == ADEPT_F32 || (allow_i32 && dt == ADEPT_I32)) return ADEPT_OK;
    return dtype_unsupported(op, dt, allow_i32 ? "f32 and i32 are" : "only f32 is");
}

static adept_status check_same(const char *op, const adept_tensor *a, const adept_tensor *b, const char *what_b) {
    if (!adept_tensor_same_shape(a, b)) {
        char sa[128], sb[128];
        return adept_fail(ADEPT_ESHAPE, "%s: shapes %s and %s differ%s%s", op,
                          adept_shape_str(a->ndim, a->shape, sa, sizeof sa),
                          adept_shape_str(b->ndim, b->shape, sb, sizeof sb), what_b ? " " : "", what_b ? what_b : "");
    }
    if (a->dtype != b->dtype)
        return adept_fail(ADEPT_ESHAPE, "%s: dtypes %s and %s differ%s%s", op, adept_dtype_name(a->dtype),
                          adept_dtype_name(b->dtype), what_b ? " " : "", what_b ? what_b : "");
    return ADEPT_OK;
}

/* A new tensor on a's device for a kernel to fill completely. On the CPU the memory is not zeroed first:
   for large outputs zeroing cost more than the kernel itself, and every kernel writes every element. */
static adept_status new_on(const adept_tensor *like, adept_dtype dtype, int ndim, const int64_t *shape,
                           adept_tensor **out) {
    size_t nbytes = adept_shape_numel(ndim, shape) * adept_dtype_size(dtype);
    adept_storage *s;
    if (like->storage->device == ADEPT_CPU) {
        void *data = adept_alloc(nbytes);
        if (!data) return adept_fail(ADEPT_ENOMEM, "cannot allocate %zu bytes for a result", nbytes);
        adept_status st = adept_storage_wrap(data, nbytes, ADEPT_CPU, NULL, NULL, &s); /* NULL: adept_free */
        if (st != ADEPT_OK) { adept_free(data); return st; }
    } else {
        return adept_tensor_new_on(like->storage->device, dtype, ndim, shape, out);
    }
    adept_status st = adept_tensor_view(s, 0, dtype, ndim, shape, out);
    adept_storage_release(s);
    return st;
}

/* ---- 16-bit inputs ----
   A bf16/f16 CPU tensor (a frozen row of a model loaded with dtype "auto": m:param) is read through a temporary f32
   copy (the widening is exact), so every op below takes it like an f32 tensor and gives f32 results. */
static int is16(const adept_tensor *t) {
    return t && (t->dtype == ADEPT_BF16 || t->dtype == ADEPT_F16) && t->storage->device == ADEPT_CPU;
}

static adept_status widen16(const adept_tensor **t, adept_tensor **tmp) {
    *tmp = NULL;
    if (!is16(*t)) return ADEPT_OK;
    ADEPT_TRY(adept_tensor_to_dtype(*t, ADEPT_F32, tmp));
    *t = *tmp;
    return ADEPT_OK;
}

/* ---- validated entry points ---- */

adept_status adept_ops_unary(adept_unary_op op, const adept_tensor *a, adept_tensor *out) {
    if (!out || !a) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    if ((unsigned)op >= ADEPT_UNARY_COUNT) return adept_fail(ADEPT_EINVAL, "unary op: invalid op %d", (int)op);
    const char *name = adept_unary_op_name(op);
    const adept_backend *be;
    ADEPT_TRY(backend_of(name, a, out, &be));
    ADEPT_TRY(check_dtype(name, a->dtype, op != ADEPT_OP_SQRT));
    ADEPT_TRY(check_same(name, a, out, "(input and output)"));
    if (staged(be, be->unary != NULL)) return adept_staged_unary(op, a, out);
    ADEPT_TRY(entry_present(name, be, be->unary != NULL));
    return be->unary(op, a, out);
}

adept_status adept_ops_binary(adept_binary_op op, const adept_tensor *a, const adept_tensor *b, adept_tensor *out) {
    if (!out || !a || !b) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    if ((unsigned)op > ADEPT_OP_DIV) return adept_fail(ADEPT_EINVAL, "binary op: invalid tensor-tensor op %d", (int)op);
    const char *name = adept_binary_op_name(op);
    const adept_backend *be;
    ADEPT_TRY(backend_of(name, a, b, &be));
    ADEPT_TRY(backend_of(name, a, out, &be));
    ADEPT_TRY(check_same(name, a, b, NULL));
    ADEPT_TRY(check_dtype(name, a->dtype, op != ADEPT_OP_DIV));
    ADEPT_TRY(check_same(name, a, out, "(input and output)"));
    if (staged(be, be->binary != NULL)) return adept_staged_binary(op, a, b, out);
    ADEPT_TRY(entry_present(name, be, be->binary != NULL));
    return be->binary(op, a, b, out);
}

adept_status adept_ops_scalar(adept_binary_op op, const adept_tensor *a, double s, adept_tensor *out) {
    if (!out || !a) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    if ((unsigned)op >= ADEPT_BINARY_COUNT) return adept_fail(ADEPT_EINVAL, "scalar op: invalid op %d", (int)op);
    const char *name = adept_binary_op_name(op);
    const adept_backend *be;
    ADEPT_TRY(backend_of(name, a, out, &be));
    int int_ok = op != ADEPT_OP_DIV && op != ADEPT_OP_RDIV;
    ADEPT_TRY(check_dtype(name, a->dtype, int_ok));
    if (a->dtype == ADEPT_I32 && !(s == trunc(s) && s >= -2147483648.0 && s <= 2147483647.0))
        return adept_fail(ADEPT_EINVAL, "%s: an i32 tensor needs an integer scalar in the i32 range, got %g", name, s);
    ADEPT_TRY(check_same(name, a, out, "(input and output)"));
    if (staged(be, be->scalar != NULL)) return adept_staged_scalar(op, a, s, out);
    ADEPT_TRY(entry_present(name, be, be->scalar != NULL));
    return be->scalar(op, a, s, out);
}

static adept_status reduce_f(adept_reduce_op op, const adept_tensor *a, double *out) {
    if (!out || !a) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    if ((unsigned)op >= ADEPT_REDUCE_COUNT) return adept_fail(ADEPT_EINVAL, "reduce: invalid op %d", (int)op);
    const char *name = adept_reduce_op_name(op);
    const adept_backend *be;
    ADEPT_TRY(backend_of(name, a, NULL, &be));
    ADEPT_TRY(check_dtype(name, a->dtype, op != ADEPT_REDUCE_NORM));
    size_t n = adept_tensor_numel(a);
    if (n == 0) {
        char sa[128];
        switch (op) {
        case ADEPT_REDUCE_SUM: case ADEPT_REDUCE_NORM: *out = 0; return ADEPT_OK;
        case ADEPT_REDUCE_MEAN: *out = NAN; return ADEPT_OK;
        default:
            return adept_fail(ADEPT_EINVAL, "%s: the tensor %s is empty and has no %s", name,
                              adept_shape_str(a->ndim, a->shape, sa, sizeof sa),
                              op == ADEPT_REDUCE_MAX ? "maximum" : "minimum");
        }
    }
    if (staged(be, be->reduce != NULL)) return adept_staged_reduce(op, a, out);
    ADEPT_TRY(entry_present(name, be, be->reduce != NULL));
    return be->reduce(op, a, out);
}

adept_status adept_ops_reduce(adept_reduce_op op, const adept_tensor *a, double *out) {
    adept_tensor *w;
    ADEPT_TRY(widen16(&a, &w));
    adept_status st = reduce_f(op, a, out);
    adept_tensor_free(w);
    return st;
}

static adept_status check_dim(const char *name, const adept_tensor *a, int *dim) {
    int d = *dim < 0 ? *dim + a->ndim : *dim;
    if (d < 0 || d >= a->ndim) {
        char sa[128];
        return adept_fail(ADEPT_EINVAL, "%s: dimension %d is out of range for a tensor of shape %s", name, *dim,
                          adept_shape_str(a->ndim, a->shape, sa, sizeof sa));
    }
    *dim = d;
    return ADEPT_OK;
}

static void drop_dim(const adept_tensor *a, int dim, int64_t *shape) {
    for (int i = 0, j = 0; i < a->ndim; i++)
        if (i != dim) shape[j++] = a->shape[i];
}

adept_status adept_ops_reduce_dim(adept_reduce_op op, const adept_tensor *a, int dim, adept_tensor *out) {
    if (!out || !a) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    if (op != ADEPT_REDUCE_SUM && op != ADEPT_REDUCE_MEAN)
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: reducing along a dimension supports sum and mean only",
                          adept_reduce_op_name(op));
    const char *name = adept_reduce_op_name(op);
    const adept_backend *be;
    ADEPT_TRY(backend_of(name, a, out, &be));
    ADEPT_TRY(check_dtype(name, a->dtype, 0));
    ADEPT_TRY(check_dim(name, a, &dim));
    int64_t shape[ADEPT_MAX_DIMS];
    drop_dim(a, dim, shape);
    adept_tensor expect = {.dtype = ADEPT_F32, .ndim = a->ndim - 1};
    for (int i = 0; i < expect.ndim; i++) expect.shape[i] = shape[i];
    ADEPT_TRY(check_same(name, &expect, out, "(expected and given output)"));
    if (staged(be, be->reduce_dim != NULL)) return adept_staged_reduce_dim(op, a, dim, out);
    ADEPT_TRY(entry_present(name, be, be->reduce_dim != NULL));
    return be->reduce_dim(op, a, dim, out);
}

adept_status adept_ops_topk_into(const adept_tensor *a, size_t k, adept_tensor *values, int64_t *indices) {
    const adept_backend *be;
    ADEPT_TRY(backend_of("topk", a, NULL, &be));
    ADEPT_TRY(check_dtype("topk", a->dtype, 1));
    size_t n = adept_tensor_numel(a);
    if (k > n) {
        char sa[128];
        return adept_fail(ADEPT_EINVAL, "topk: k = %zu is larger than the %zu elements of a tensor of shape %s", k, n,
                          adept_shape_str(a->ndim, a->shape, sa, sizeof sa));
    }
    if (!values || (k && !indices)) return adept_fail(ADEPT_EINVAL, "topk: NULL values or indices argument");
    if (values->storage->device != a->storage->device)
        return adept_fail(ADEPT_ESHAPE, "topk: the values output lives on another device");
    if (values->dtype != a->dtype || values->ndim != 1 || values->shape[0] != (int64_t)k)
        return adept_fail(ADEPT_ESHAPE, "topk: the values output must be a [%zu] %s tensor", k, adept_dtype_name(a->dtype));
    if (k == 0) return ADEPT_OK;
    if (staged(be, be->topk != NULL)) return adept_staged_topk(a, k, values, indices);
    ADEPT_TRY(entry_present("topk", be, be->topk != NULL));
    return be->topk(a, k, values, indices);
}

/* ---- allocating conveniences ---- */

static adept_status unary_new_f(adept_unary_op op, const adept_tensor *a, adept_tensor **out) {
    if (!a || !out) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    ADEPT_TRY(check_dtype(adept_unary_op_name(op), a->dtype, op != ADEPT_OP_SQRT));
    ADEPT_TRY(new_on(a, a->dtype, a->ndim, a->shape, out));
    adept_status st = adept_ops_unary(op, a, *out);
    if (st != ADEPT_OK) { adept_tensor_free(*out); *out = NULL; }
    return st;
}

static adept_status unary_new(adept_unary_op op, const adept_tensor *a, adept_tensor **out) {
    adept_tensor *w;
    ADEPT_TRY(widen16(&a, &w));
    adept_status st = unary_new_f(op, a, out);
    adept_tensor_free(w);
    return st;
}

adept_status adept_ops_abs(const adept_tensor *a, adept_tensor **out) { return unary_new(ADEPT_OP_ABS, a, out); }
adept_status adept_ops_square(const adept_tensor *a, adept_tensor **out) { return unary_new(ADEPT_OP_SQUARE, a, out); }
adept_status adept_ops_sqrt(const adept_tensor *a, adept_tensor **out) { return unary_new(ADEPT_OP_SQRT, a, out); }
adept_status adept_ops_neg(const adept_tensor *a, adept_tensor **out) { return unary_new(ADEPT_OP_NEG, a, out); }

static adept_status binary_new_f(adept_binary_op op, const adept_tensor *a, const adept_tensor *b, adept_tensor **out) {
    if (!a || !b || !out) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    const char *name = adept_binary_op_name(op);
    ADEPT_TRY(check_same(name, a, b, NULL)); /* before allocating: the message names both shapes */
    ADEPT_TRY(check_dtype(name, a->dtype, op != ADEPT_OP_DIV));
    ADEPT_TRY(new_on(a, a->dtype, a->ndim, a->shape, out));
    adept_status st = adept_ops_binary(op, a, b, *out);
    if (st != ADEPT_OK) { adept_tensor_free(*out); *out = NULL; }
    return st;
}

static adept_status binary_new(adept_binary_op op, const adept_tensor *a, const adept_tensor *b, adept_tensor **out) {
    adept_tensor *wa, *wb;
    ADEPT_TRY(widen16(&a, &wa));
    adept_status st = widen16(&b, &wb);
    if (st == ADEPT_OK) st = binary_new_f(op, a, b, out);
    adept_tensor_free(wb);
    adept_tensor_free(wa);
    return st;
}

adept_status adept_ops_add(const adept_tensor *a, const adept_tensor *b, adept_tensor **out) { return binary_new(ADEPT_OP_ADD, a, b, out); }
adept_status adept_ops_sub(const adept_tensor *a, const adept_tensor *b, adept_tensor **out) { return binary_new(ADEPT_OP_SUB, a, b, out); }
adept_status adept_ops_mul(const adept_tensor *a, const adept_tensor *b, adept_tensor **out) { return binary_new(ADEPT_OP_MUL, a, b, out); }
adept_status adept_ops_div(const adept_tensor *a, const adept_tensor *b, adept_tensor **out) { return binary_new(ADEPT_OP_DIV, a, b, out); }

static adept_status scalar_new_f(adept_binary_op op, const adept_tensor *a, double s, adept_tensor **out) {
    if (!a || !out) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    if ((unsigned)op >= ADEPT_BINARY_COUNT) return adept_fail(ADEPT_EINVAL, "scalar op: invalid op %d", (int)op);
    ADEPT_TRY(check_dtype(adept_binary_op_name(op), a->dtype, op != ADEPT_OP_DIV && op != ADEPT_OP_RDIV));
    ADEPT_TRY(new_on(a, a->dtype, a->ndim, a->shape, out));
    adept_status st = adept_ops_scalar(op, a, s, *out);
    if (st != ADEPT_OK) { adept_tensor_free(*out); *out = NULL; }
    return st;
}

adept_status adept_ops_scalar_new(adept_binary_op op, const adept_tensor *a, double s, adept_tensor **out) {
    adept_tensor *w;
    ADEPT_TRY(widen16(&a, &w));
    adept_status st = scalar_new_f(op, a, s, out);
    adept_tensor_free(w);
    return st;
}

adept_status adept_ops_sum(const adept_tensor *a, double *out) { return adept_ops_reduce(ADEPT_REDUCE_SUM, a, out); }
adept_status adept_ops_mean(const adept_tensor *a, double *out) { return adept_ops_reduce(ADEPT_REDUCE_MEAN, a, out); }
adept_status adept_ops_max(const adept_tensor *a, double *out) { return adept_ops_reduce(ADEPT_REDUCE_MAX, a, out); }
adept_status adept_ops_min(const adept_tensor *a, double *out) { return adept_ops_reduce(ADEPT_REDUCE_MIN, a, out); }
adept_status adept_ops_norm(const adept_tensor *a, double *out) { return adept_ops_reduce(ADEPT_REDUCE_NORM, a, out); }

static adept_status reduce_dim_new_f(adept_reduce_op op, const adept_tensor *a, int dim, adept_tensor **out) {
    if (!a || !out) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    const char *name = adept_reduce_op_name(op);
    ADEPT_TRY(check_dtype(name, a->dtype, 0));
    ADEPT_TRY(check_dim(name, a, &dim));
    int64_t shape[ADEPT_MAX_DIMS];
    drop_dim(a, dim, shape);
    ADEPT_TRY(new_on(a, ADEPT_F32, a->ndim - 1, shape, out));
    adept_status st = adept_ops_reduce_dim(op, a, dim, *out);
    if (st != ADEPT_OK) { adept_tensor_free(*out); *out = NULL; }
    return st;
}

static adept_status reduce_dim_new(adept_reduce_op op, const adept_tensor *a, int dim, adept_tensor **out) {
    adept_tensor *w;
    ADEPT_TRY(widen16(&a, &w));
    adept_status st = reduce_dim_new_f(op, a, dim, out);
    adept_tensor_free(w);
    return st;
}

adept_status adept_ops_sum_dim(const adept_tensor *a, int dim, adept_tensor **out) { return reduce_dim_new(ADEPT_REDUCE_SUM, a, dim, out); }
adept_status adept_ops_mean_dim(const adept_tensor *a, int dim, adept_tensor **out) { return reduce_dim_new(ADEPT_REDUCE_MEAN, a, dim, out); }

static adept_status dot3_f(const char *name, const adept_tensor *a, const adept_tensor *b, double r[3]) {
    if (!a || !b) return adept_fail(ADEPT_EINVAL, "%s: NULL tensor argument", name);
    const adept_backend *be;
    ADEPT_TRY(backend_of(name, a, b, &be));
    ADEPT_TRY(check_same(name, a, b, NULL));
    ADEPT_TRY(check_dtype(name, a->dtype, 0));
    if (adept_tensor_numel(a) == 0) { r[0] = r[1] = r[2] = 0; return ADEPT_OK; }
    if (staged(be, be->dot3 != NULL)) return adept_staged_dot3(a, b, r);
    ADEPT_TRY(entry_present(name, be, be->dot3 != NULL));
    return be->dot3(a, b, r);
}

static adept_status dot3(const char *name, const adept_tensor *a, const adept_tensor *b, double r[3]) {
    adept_tensor *wa, *wb;
    ADEPT_TRY(widen16(&a, &wa));
    adept_status st = widen16(&b, &wb);
    if (st == ADEPT_OK) st = dot3_f(name, a, b, r);
    adept_tensor_free(wb);
    adept_tensor_free(wa);
    return st;
}

adept_status adept_ops_dot(const adept_tensor *a, const adept_tensor *b, double *out) {
    double r[3];
    ADEPT_TRY(dot3("dot", a, b, r));
    *out = r[0];
    return ADEPT_OK;
}

adept_status adept_ops_cosine(const adept_tensor *a, const adept_tensor *b, double *out) {
    double r[3];
    ADEPT_TRY(dot3("cosine", a, b, r));
    double denom = sqrt(r[1]) * sqrt(r[2]);
    *out = r[0] / (denom > 1e-8 ? denom : 1e-8); /* PyTorch's eps: a zero vector gives 0, not NaN */
    return ADEPT_OK;
}

static adept_status topk_f(const adept_tensor *a, size_t k, adept_tensor **values, int64_t *indices) {
    if (!a || !values) return adept_fail(ADEPT_EINVAL, "topk: NULL tensor or output argument");
    ADEPT_TRY(check_dtype("topk", a->dtype, 1));
    size_t n = adept_tensor_numel(a);
    if (k > n) return adept_ops_topk_into(a, k, NULL, indices); /* reports the error */
    int64_t shape[1] = {(int64_t)k};
    ADEPT_TRY(new_on(a, a->dtype, 1, shape, values));
    adept_status st = adept_ops_topk_into(a, k, *values, indices);
    if (st != ADEPT_OK) { adept_tensor_free(*values); *values = NULL; }
    return st;
}

adept_status adept_ops_topk(const adept_tensor *a, size_t k, adept_tensor **values, int64_t *indices) {
    adept_tensor *w;
    ADEPT_TRY(widen16(&a, &w));
    adept_status st = topk_f(a, k, values, indices);
    adept_tensor_free(w);
    return st;
}

adept_status adept_ops_clone(const adept_tensor *a, adept_tensor **out) {
    if (!a || !out) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    const adept_backend *be;
    ADEPT_TRY(backend_of("clone", a, NULL, &be));
    int via_host = staged(be, be->tensor_copy != NULL);
    if (!via_host) ADEPT_TRY(entry_present("clone", be, be->tensor_copy != NULL));
    ADEPT_TRY(new_on(a, a->dtype, a->ndim, a->shape, out));
    adept_status st = via_host ? adept_staged_copy(a, *out) : be->tensor_copy(a, *out);
    if (st != ADEPT_OK) { adept_tensor_free(*out); *out = NULL; }
    return st;
}

/* ---- row scaling ---- */

static adept_status check_row_weights(const adept_tensor *a, const adept_tensor *w) {
    char sa[128], sw[128];
    if (a->ndim < 1)
        return adept_fail(ADEPT_ESHAPE, "scale_rows: the tensor %s has no rows (it needs at least one dimension)",
                          adept_shape_str(a->ndim, a->shape, sa, sizeof sa));
    ADEPT_TRY(check_dtype("scale_rows", a->dtype, 0));
    ADEPT_TRY(check_dtype("scale_rows", w->dtype, 0));
    if (w->ndim != 1 || w->shape[0] != a->shape[0])
        return adept_fail(ADEPT_ESHAPE, "scale_rows: the row weights %s must be [%lld], one per row of the tensor %s",
                          adept_shape_str(w->ndim, w->shape, sw, sizeof sw), (long long)a->shape[0],
                          adept_shape_str(a->ndim, a->shape, sa, sizeof sa));
    return ADEPT_OK;
}

adept_status adept_ops_scale_rows(const adept_tensor *a, const adept_tensor *w, adept_tensor *out) {
    if (!out || !a || !w) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    const adept_backend *be;
    ADEPT_TRY(backend_of("scale_rows", a, w, &be));
    ADEPT_TRY(backend_of("scale_rows", a, out, &be));
    ADEPT_TRY(check_row_weights(a, w));
    ADEPT_TRY(check_same("scale_rows", a, out, "(input and output)"));
    if (staged(be, be->scale_rows != NULL)) return adept_staged_scale_rows(a, w, out);
    ADEPT_TRY(entry_present("scale_rows", be, be->scale_rows != NULL));
    return be->scale_rows(a, w, out);
}

static adept_status scale_rows_new_f(const adept_tensor *a, const adept_tensor *w, adept_tensor **out) {
    if (!a || !w || !out) return adept_fail(ADEPT_EINVAL, "ops: NULL tensor or output argument");
    ADEPT_TRY(check_row_weights(a, w)); /* before allocating: the message names both shapes */
    ADEPT_TRY(new_on(a, a->dtype, a->ndim, a->shape, out));
    adept_status st = adept_ops_scale_rows(a, w, *out);
    if (st != ADEPT_OK) { adept_tensor_free(*out); *out = NULL; }
    return st;
}

adept_status adept_ops_scale_rows_new(const adept_tensor *a, const adept_tensor *w, adept_tensor **out) {
    adept_tensor *wa, *ww;
    ADEPT_TRY(widen16(&a, &wa));
    adept_status st = widen16(&w, &ww);
    if (st == ADEPT_OK) st = scale_rows_new_f(a, w, out);
    adept_tensor_free(ww);
    adept_tensor_free(wa);
    return st;
}
