/* Tensors of libadept: dtypes, reference-counted 64-byte-aligned storage, and contiguous views on it.
   A tensor is a small heap object (dtype, shape, byte offset) that holds one reference to its storage,
   so a Lua handle or a model parameter view stays valid when the owner reallocates. */
#ifndef ADEPT_TENSOR_H
#define ADEPT_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"

#define ADEPT_MAX_DIMS 8
#define ADEPT_ALIGN 64

typedef enum adept_dtype {
    ADEPT_F32 = 0,
    ADEPT_F64,
    ADEPT_BF16,
    ADEPT_F16,
    ADEPT_I32,
    ADEPT_I64,
    ADEPT_U8,
    ADEPT_I8,
    ADEPT_U16,
    ADEPT_U32,
    ADEPT_DTYPE_COUNT
} adept_dtype;

typedef enum adept_device { ADEPT_CPU = 0, ADEPT_CUDA = 1 } adept_device;

size_t adept_dtype_size(adept_dtype dtype);
const char *adept_dtype_name(adept_dtype dtype);             /* "f32", "bf16", ... */
const char *adept_dtype_safetensors_name(adept_dtype dtype); /* "F32", "BF16", ... */
/* Accepts our names ("f32"), safetensors names ("F32") and torch-style names ("float32", "bfloat16"). */
adept_status adept_dtype_parse(const char *name, adept_dtype *out);
int adept_dtype_is_float(adept_dtype dtype);

/* Scalar conversions; f32 -> bf16/f16 round to nearest even, NaN stays NaN, overflow gives infinity. */
uint16_t adept_f32_to_bf16(float x);
float adept_bf16_to_f32(uint16_t h);
uint16_t adept_f32_to_f16(float x);
float adept_f16_to_f32(uint16_t h);
/* Bulk conversion between any two dtypes via double (integers truncate toward zero, saturating). */
adept_status adept_convert(void *dst, adept_dtype dst_dtype, const void *src, adept_dtype src_dtype, size_t n);

/* 64-byte aligned allocation; adept_alloc returns NULL on failure (size 0 gives a valid pointer). */
void *adept_alloc(size_t nbytes);
void *adept_alloc_zeroed(size_t nbytes);
void adept_free(void *p);

typedef struct adept_storage adept_storage;
typedef void (*adept_storage_release_fn)(void *data, size_t nbytes, void *ctx);

struct adept_storage {
    void *data;
    size_t nbytes;
    adept_device device;
    int refcount;                     /* atomic; use retain/release */
    adept_storage_release_fn release; /* NULL: adept_free(data) */
    void *release_ctx;
};

/* New zeroed storage of nbytes (refcount 1). */
adept_status adept_storage_new(size_t nbytes, adept_device device, adept_storage **out);
/* Wraps foreign memory (an mmap, say); `release` runs when the last reference goes. */
adept_status adept_storage_wrap(void *data, size_t nbytes, adept_device device,
                                adept_storage_release_fn release, void *ctx, adept_storage **out);
void adept_storage_retain(adept_storage *s);
void adept_storage_release(adept_storage *s);

typedef struct adept_tensor {
    adept_storage *storage;
    size_t offset; /* in bytes, from storage->data */
    adept_dtype dtype;
    int ndim;
    int64_t shape[ADEPT_MAX_DIMS];
} adept_tensor;

/* A new zeroed contiguous tensor. ndim 0 is a scalar (numel 1). Shapes must be >= 0. */
adept_status adept_tensor_new(adept_dtype dtype, int ndim, const int64_t *shape, adept_tensor **out);
/* A view on existing storage (retained); checks that the byte range fits inside the storage. */
adept_status adept_tensor_view(adept_storage *storage, size_t offset, adept_dtype dtype, int ndim,
                               const int64_t *shape, adept_tensor **out);
/* A deep copy into fresh storage (same dtype). */
adept_status adept_tensor_clone(const adept_tensor *t, adept_tensor **out);
/* A deep copy converted to another dtype. */
adept_status adept_tensor_to_dtype(const adept_tensor *t, adept_dtype dtype, adept_tensor **out);
/* Copy the elements of src into dst (same numel and dtype; shapes may differ, as for a reshape). */
adept_status adept_tensor_copy_into(adept_tensor *dst, const adept_tensor *src);
/* Another tensor object on the same storage with a new shape of the same numel. */
adept_status adept_tensor_reshape(const adept_tensor *t, int ndim, const int64_t *shape, adept_tensor **out);
void adept_tensor_free(adept_tensor *t); /* NULL is fine */

size_t adept_shape_numel(int ndim, const int64_t *shape);
size_t adept_tensor_numel(const adept_tensor *t);
size_t adept_tensor_nbytes(const adept_tensor *t);
static inline void *adept_tensor_data(const adept_tensor *t) { return (char *)t->storage->data + t->offset; }
static inline float *adept_tensor_f32(const adept_tensor *t) { return (float *)adept_tensor_data(t); }
static inline int32_t *adept_tensor_i32(const adept_tensor *t) { return (int32_t *)adept_tensor_data(t); }
int adept_tensor_same_shape(const adept_tensor *a, const adept_tensor *b);
/* Writes "[2, 3]" into buf (always NUL-terminated) and returns buf, for error messages. */
char *adept_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

/* Element access by flat index, as double (any dtype). */
double adept_tensor_get_flat(const adept_tensor *t, size_t i);
void adept_tensor_set_flat(adept_tensor *t, size_t i, double v);
/* Exact element access for integer dtypes (i64 holds all of [-2^63, 2^63)): get reads any dtype (float ones
   truncated toward zero, saturating; meant for integer dtypes); the checked setters store v only when the
   dtype represents it — a value in range for integer dtypes (fractions truncate toward zero), one that
   does not overflow to infinity for float dtypes (NaN and infinities are stored as given) — and otherwise fail naming v and the
   dtype, leaving the element unchanged. */
int64_t adept_tensor_get_flat_int(const adept_tensor *t, size_t i);
adept_status adept_tensor_set_flat_checked(adept_tensor *t, size_t i, double v);
adept_status adept_tensor_set_flat_int(adept_tensor *t, size_t i, int64_t v);

#endif
