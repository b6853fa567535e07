/* CPU element-wise kernels: unary math, tensor-tensor and tensor-scalar arithmetic, copy. Plain contiguous
   loops the compiler vectorises, split across threads with a static schedule above ADEPT_CPU_PAR_MIN. */
#include <math.h>
#include <string.h>

#include "ops/cpu/cpu.h"

/* One parallel loop over i in [0, n); `body` assigns y[i]. i32 arithmetic goes through uint32_t so that
   overflow wraps (as in PyTorch) instead of being undefined behaviour. */
#define EACH(body)                                                               \
    do {                                                                         \
        _Pragma("omp parallel for schedule(static) if (n > ADEPT_CPU_PAR_MIN)") \
        for (size_t i = 0; i < n; i++) { body; }                                 \
    } while (0)

#define WRAP(expr) ((int32_t)(uint32_t)(expr))

adept_status adept_cpu_unary(adept_unary_op op, const adept_tensor *a, adept_tensor *out) {
    size_t n = adept_tensor_numel(a);
    if (a->dtype == ADEPT_F32) {
        const float *x = adept_tensor_f32(a);
        float *y = adept_tensor_f32(out);
        switch (op) {
        case ADEPT_OP_ABS: EACH(y[i] = fabsf(x[i])); break;
        case ADEPT_OP_SQUARE: EACH(y[i] = x[i] * x[i]); break;
        case ADEPT_OP_SQRT: EACH(y[i] = sqrtf(x[i])); break;
        case ADEPT_OP_NEG: EACH(y[i] = -x[i]); break;
        default: return adept_fail(ADEPT_EINVAL, "unary: invalid op %d", (int)op);
        }
        return ADEPT_OK;
    }
    const int32_t *x = adept_tensor_i32(a);
    int32_t *y = adept_tensor_i32(out);
    switch (op) {
    case ADEPT_OP_ABS: EACH(y[i] = x[i] < 0 ? WRAP(0u - (uint32_t)x[i]) : x[i]); break;
    case ADEPT_OP_SQUARE: EACH(y[i] = WRAP((uint32_t)x[i] * (uint32_t)x[i])); break;
    case ADEPT_OP_NEG: EACH(y[i] = WRAP(0u - (uint32_t)x[i])); break;
    default: return adept_fail(ADEPT_EUNSUPPORTED, "%s: dtype i32 is not supported", adept_unary_op_name(op));
    }
    return ADEPT_OK;
}

adept_status adept_cpu_binary(adept_binary_op op, const adept_tensor *a, const adept_tensor *b, adept_tensor *out) {
    size_t n = adept_tensor_numel(a);
    if (a->dtype == ADEPT_F32) {
        const float *x = adept_tensor_f32(a), *z = adept_tensor_f32(b);
        float *y = adept_tensor_f32(out);
        switch (op) {
        case ADEPT_OP_ADD: EACH(y[i] = x[i] + z[i]); break;
        case ADEPT_OP_SUB: EACH(y[i] = x[i] - z[i]); break;
        case ADEPT_OP_MUL: EACH(y[i] = x[i] * z[i]); break;
        case ADEPT_OP_DIV: EACH(y[i] = x[i] / z[i]); break;
        default: return adept_fail(ADEPT_EINVAL, "binary: invalid op %d", (int)op);
        }
        return ADEPT_OK;
    }
    const int32_t *x = adept_tensor_i32(a), *z = adept_tensor_i32(b);
    int32_t *y = adept_tensor_i32(out);
    switch (op) {
    case ADEPT_OP_ADD: EACH(y[i] = WRAP((uint32_t)x[i] + (uint32_t)z[i])); break;
    case ADEPT_OP_SUB: EACH(y[i] = WRAP((uint32_t)x[i] - (uint32_t)z[i])); break;
    case ADEPT_OP_MUL: EACH(y[i] = WRAP((uint32_t)x[i] * (uint32_t)z[i])); break;
    default: return adept_fail(ADEPT_EUNSUPPORTED, "%s: dtype i32 is not supported", adept_binary_op_name(op));
    }
    return ADEPT_OK;
}

adept_status adept_cpu_scalar(adept_binary_op op, const adept_tensor *a, double s, adept_tensor *out) {
    size_t n = adept_tensor_numel(a);
    if (a->dtype == ADEPT_F32) {
        const float *x = adept_tensor_f32(a);
        float *y = adept_tensor_f32(out);
        float c = (float)s; /* PyTorch also rounds a Python scalar to the tensor's dtype */
        switch (op) {
        case ADEPT_OP_ADD: EACH(y[i] = x[i] + c); break;
        case ADEPT_OP_SUB: EACH(y[i] = x[i] - c); break;
        case ADEPT_OP_MUL: EACH(y[i] = x[i] * c); break;
        case ADEPT_OP_DIV: EACH(y[i] = x[i] / c); break;
        case ADEPT_OP_RSUB: EACH(y[i] = c - x[i]); break;
        case ADEPT_OP_RDIV: EACH(y[i] = c / x[i]); break;
        default: return adept_fail(ADEPT_EINVAL, "scalar: invalid op %d", (int)op);
        }
        return ADEPT_OK;
    }
    const int32_t *x = adept_tensor_i32(a);
    int32_t *y = adept_tensor_i32(out);
    uint32_t c = (uint32_t)(int32_t)s; /* dispatch checked that s is an integer in range */
    switch (op) {
    case ADEPT_OP_ADD: EACH(y[i] = WRAP((uint32_t)x[i] + c)); break;
    case ADEPT_OP_SUB: EACH(y[i] = WRAP((uint32_t)x[i] - c)); break;
    case ADEPT_OP_MUL: EACH(y[i] = WRAP((uint32_t)x[i] * c)); break;
    case ADEPT_OP_RSUB: EACH(y[i] = WRAP(c - (uint32_t)x[i])); break;
    default: return adept_fail(ADEPT_EUNSUPPORTED, "%s: dtype i32 is not supported", adept_binary_op_name(op));
    }
    return ADEPT_OK;
}

/* out[r, c] = a[r, c] * w[r] over rows of `cols` elements (dispatch.c checked the shapes). */
adept_status adept_cpu_scale_rows(const adept_tensor *a, const adept_tensor *w, adept_tensor *out) {
    size_t n = adept_tensor_numel(a), rows = (size_t)a->shape[0];
    size_t cols = rows ? n / rows : 0;
    const float *x = adept_tensor_f32(a), *s = adept_tensor_f32(w);
    float *y = adept_tensor_f32(out);
    if (!cols) return ADEPT_OK;
    EACH(y[i] = x[i] * s[i / cols]);
    return ADEPT_OK;
}

adept_status adept_cpu_copy(const adept_tensor *src, adept_tensor *dst) {
    size_t nbytes = adept_tensor_nbytes(src);
    if (nbytes != adept_tensor_nbytes(dst) || src->dtype != dst->dtype)
        return adept_fail(ADEPT_ESHAPE, "copy: %zu-byte %s source into a %zu-byte %s destination", nbytes,
                          adept_dtype_name(src->dtype), adept_tensor_nbytes(dst), adept_dtype_name(dst->dtype));
    const char *from = adept_tensor_data(src);
    char *to = adept_tensor_data(dst);
    if (!nbytes || from == to) return ADEPT_OK;
    if (from < to + nbytes && to < from + nbytes) { /* overlapping views of one storage */
        memmove(to, from, nbytes);
        return ADEPT_OK;
    }
    /* 1 MiB blocks in parallel: a fresh destination takes its page faults on every thread, not one */
    const size_t block = (size_t)1 << 20;
    size_t nblocks = (nbytes + block - 1) / block;
    #pragma omp parallel for schedule(static) if (nblocks > 1)
    for (size_t b = 0; b < nblocks; b++) {
        size_t off = b * block;
        memcpy(to + off, from + off, nbytes - off < block ? nbytes - off : block);
    }
    return ADEPT_OK;
}
