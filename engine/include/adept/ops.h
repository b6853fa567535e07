/* Tensor operations of libadept: element-wise math, reductions, dot/cosine, topk and clone, validated here and
   run by the tensors' device backend (its tensor-op entries, adept/backend.h).
   Semantics, shared by every backend:
   - f32 is the compute dtype. i32 works for abs, square, neg, add, sub, mul (wrapping on overflow, like C
     unsigned arithmetic) and for the whole-tensor sum, mean, max and min; clone works for every dtype. Any other
     combination fails with ADEPT_EUNSUPPORTED and a message naming the op and the dtype.
   - Tensor-tensor ops need identical shapes and dtypes (no broadcasting); a mismatch names both shapes.
   - Reductions accumulate in double over fixed 4096-element chunks combined in a fixed order, so the result
     does not depend on the thread count. Empty tensors: sum, norm and dot are 0, mean is NaN (as in PyTorch),
     max, min and topk with k > 0 fail with ADEPT_EINVAL; cosine of a zero vector is 0 (dot / max(|a||b|, 1e-8)).
   - max/min propagate NaN; topk orders NaN above every number and breaks ties by the lower flat index.
   - sqrt of a negative number is NaN, division by zero follows IEEE 754. */
#ifndef ADEPT_OPS_H
#define ADEPT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"
#include "adept/tensor.h"

typedef enum adept_unary_op { ADEPT_OP_ABS = 0, ADEPT_OP_SQUARE, ADEPT_OP_SQRT, ADEPT_OP_NEG, ADEPT_UNARY_COUNT } adept_unary_op;

/* Tensor-tensor uses ADD..DIV; tensor-scalar also RSUB (s - x) and RDIV (s / x). */
typedef enum adept_binary_op {
    ADEPT_OP_ADD = 0,
    ADEPT_OP_SUB,
    ADEPT_OP_MUL,
    ADEPT_OP_DIV,
    ADEPT_OP_RSUB,
    ADEPT_OP_RDIV,
    ADEPT_BINARY_COUNT
} adept_binary_op;

typedef enum adept_reduce_op {
    ADEPT_REDUCE_SUM = 0,
    ADEPT_REDUCE_MEAN,
    ADEPT_REDUCE_MAX,
    ADEPT_REDUCE_MIN,
    ADEPT_REDUCE_NORM, /* L2: sqrt of the sum of squares */
    ADEPT_REDUCE_COUNT
} adept_reduce_op;

const char *adept_unary_op_name(adept_unary_op op);   /* "abs", ... */
const char *adept_binary_op_name(adept_binary_op op); /* "add", ..., "rsub", "rdiv" */
const char *adept_reduce_op_name(adept_reduce_op op); /* "sum", ... */

/* ---- validated entry points writing into caller-allocated outputs (out: same shape and dtype as a) ---- */
adept_status adept_ops_unary(adept_unary_op op, const adept_tensor *a, adept_tensor *out);
adept_status adept_ops_binary(adept_binary_op op, const adept_tensor *a, const adept_tensor *b, adept_tensor *out);
adept_status adept_ops_scalar(adept_binary_op op, const adept_tensor *a, double s, adept_tensor *out);
adept_status adept_ops_reduce(adept_reduce_op op, const adept_tensor *a, double *out);
/* out: the shape of a with dimension `dim` (0-based) removed, dtype f32. */
adept_status adept_ops_reduce_dim(adept_reduce_op op, const adept_tensor *a, int dim, adept_tensor *out);
adept_status adept_ops_topk_into(const adept_tensor *a, size_t k, adept_tensor *values, int64_t *indices);

/* ---- allocating conveniences: *out is a new tensor the caller frees ---- */
adept_status adept_ops_abs(const adept_tensor *a, adept_tensor **out);
adept_status adept_ops_square(const adept_tensor *a, adept_tensor **out);
adept_status adept_ops_sqrt(const adept_tensor *a, adept_tensor **out);
adept_status adept_ops_neg(const adept_tensor *a, adept_tensor **out);
adept_status adept_ops_add(const adept_tensor *a, const adept_tensor *b, adept_tensor **out);
adept_status adept_ops_sub(const adept_tensor *a, const adept_tensor *b, adept_tensor **out);
adept_status adept_ops_mul(const adept_tensor *a, const adept_tensor *b, adept_tensor **out);
adept_status adept_ops_div(const adept_tensor *a, const adept_tensor *b, adept_tensor **out);
/* op(a, s) for any adept_binary_op, e.g. ADEPT_OP_MUL: a * s, ADEPT_OP_RDIV: s / a. */
adept_status adept_ops_scalar_new(adept_binary_op op, const adept_tensor *a, double s, adept_tensor **out);

adept_status adept_ops_sum(const adept_tensor *a, double *out);
adept_status adept_ops_mean(const adept_tensor *a, double *out);
adept_status adept_ops_max(const adept_tensor *a, double *out);
adept_status adept_ops_min(const adept_tensor *a, double *out);
adept_status adept_ops_norm(const adept_tensor *a, double *out);
/* Reduce over dimension `dim` (0-based; -1 is the last), dropping it: [2, 3] summed over 0 gives [3]. */
adept_status adept_ops_sum_dim(const adept_tensor *a, int dim, adept_tensor **out);
adept_status adept_ops_mean_dim(const adept_tensor *a, int dim, adept_tensor **out);
/* Flattened dot product and cosine similarity of two f32 tensors of identical shape. */
adept_status adept_ops_dot(const adept_tensor *a, const adept_tensor *b, double *out);
adept_status adept_ops_cosine(const adept_tensor *a, const adept_tensor *b, double *out);
/* The k largest elements of the flattened tensor, largest first: *values is a new [k] tensor of a's dtype,
   indices (k caller-owned entries) receives their 0-based flat indices. 0 <= k <= numel. */
adept_status adept_ops_topk(const adept_tensor *a, size_t k, adept_tensor **values, int64_t *indices);
adept_status adept_ops_clone(const adept_tensor *a, adept_tensor **out);

/* Row scaling, the one broadcast the ops have: out[r, ...] = a[r, ...] * w[r] for an f32 tensor a of at least
   one dimension and an f32 vector w with one entry per row (a's first dimension; a 1-D tensor's rows are its
   elements). Each element is one float multiplication, so the result is exactly a * w[r] rounded to f32.
   Used to blend weights row by row with per-row coefficients (adept.tasl). */
adept_status adept_ops_scale_rows(const adept_tensor *a, const adept_tensor *w, adept_tensor *out);
adept_status adept_ops_scale_rows_new(const adept_tensor *a, const adept_tensor *w, adept_tensor **out);

#endif
