/* Private to engine/ops: the tensor ops of a device whose backend table has no entry for them, run through the
   host (engine/ops/staged.c). Arguments arrive validated by dispatch.c, outputs allocated on the device. */
#ifndef ADEPT_OPS_STAGED_H
#define ADEPT_OPS_STAGED_H

#include "adept/ops.h"

adept_status adept_staged_unary(adept_unary_op op, const adept_tensor *a, adept_tensor *out);
adept_status adept_staged_binary(adept_binary_op op, const adept_tensor *a, const adept_tensor *b, adept_tensor *out);
adept_status adept_staged_scalar(adept_binary_op op, const adept_tensor *a, double s, adept_tensor *out);
adept_status adept_staged_reduce(adept_reduce_op op, const adept_tensor *a, double *out);
adept_status adept_staged_reduce_dim(adept_reduce_op op, const adept_tensor *a, int dim, adept_tensor *out);
adept_status adept_staged_dot3(const adept_tensor *a, const adept_tensor *b, double out[3]);
adept_status adept_staged_topk(const adept_tensor *a, size_t k, adept_tensor *values, int64_t *indices);
adept_status adept_staged_scale_rows(const adept_tensor *a, const adept_tensor *w, adept_tensor *out);
adept_status adept_staged_copy(const adept_tensor *src, adept_tensor *dst);

#endif
