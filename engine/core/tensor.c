/* Storage reference counting and contiguous tensor views. */
#include "adept/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *adept_alloc(size_t nbytes) {
    size_t rounded = (nbytes + ADEPT_ALIGN - 1) / ADEPT_ALIGN * ADEPT_ALIGN;
    if (rounded < nbytes) return NULL; /* overflow */
    if (rounded == 0) rounded = ADEPT_ALIGN;
    return aligned_alloc(ADEPT_ALIGN, rounded);
}

void *adept_alloc_zeroed(size_t nbytes) {
    void *p = adept_alloc(nbytes);
    if (p) memset(p, 0, nbytes);
    return p;
}

void adept_free(void *p) { free(p); }

adept_status adept_storage_new(size_t nbytes, adept_device device, adept_storage **out) {
    if (device != ADEPT_CPU)
        return adept_fail(ADEPT_EUNSUPPORTED, "storage: device %d is not available in this build", (int)device);
    adept_storage *s = calloc(1, sizeof *s);
    void *data = adept_alloc_zeroed(nbytes);
    if (!s || !data) {
        free(s);
        adept_free(data);
        return adept_fail(ADEPT_ENOMEM, "storage: cannot allocate %zu bytes", nbytes);
    }
    s->data = data;
    s->nbytes = nbytes;
    s->device = device;
    s->refcount = 1;
    *out = s;
    return ADEPT_OK;
}

adept_status adept_storage_wrap(void *data, size_t nbytes, adept_device device, adept_storage_release_fn release,
                                void *ctx, adept_storage **out) {
    adept_storage *s = calloc(1, sizeof *s);
    if (!s) return adept_fail(ADEPT_ENOMEM, "storage: out of memory");
    s->data = data;
    s->nbytes = nbytes;
    s->device = device;
    s->refcount = 1;
    s->release = release;
    s->release_ctx = ctx;
    *out = s;
    return ADEPT_OK;
}

void adept_storage_retain(adept_storage *s) { __atomic_add_fetch(&s->refcount, 1, __ATOMIC_RELAXED); }

void adept_storage_release(adept_storage *s) {
    if (!s) return;
    if (__atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (s->release) s->release(s->data, s->nbytes, s->release_ctx);
    else adept_free(s->data);
    free(s);
}

size_t adept_shape_numel(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

static adept_status check_shape(int ndim, const int64_t *shape, adept_dtype dtype, size_t *nbytes) {
    if (ndim < 0 || ndim > ADEPT_MAX_DIMS)
        return adept_fail(ADEPT_EINVAL, "tensor: %d dimensions (at most %d supported)", ndim, ADEPT_MAX_DIMS);
    if ((unsigned)dtype >= ADEPT_DTYPE_COUNT) return adept_fail(ADEPT_EINVAL, "tensor: invalid dtype %d", (int)dtype);
    size_t n = adept_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return adept_fail(ADEPT_EINVAL, "tensor: dimension %d is negative (%lld)", i + 1, (long long)shape[i]);
        if (shape[i] > 0 && n > SIZE_MAX / 2 / (size_t)shape[i])
            return adept_fail(ADEPT_EINVAL, "tensor: shape overflows the address space");
        n *= (size_t)shape[i];
    }
    *nbytes = n;
    return ADEPT_OK;
}

adept_status adept_tensor_view(adept_storage *storage, size_t offset, adept_dtype dtype, int ndim, const int64_t *shape,
                               adept_tensor **out) {
    size_t nbytes;
    ADEPT_TRY(check_shape(ndim, shape, dtype, &nbytes));
    if (offset > storage->nbytes || nbytes > storage->nbytes - offset)
        return adept_fail(ADEPT_EINVAL, "tensor view: bytes [%zu, %zu) outside storage of %zu bytes", offset,
                          offset + nbytes, storage->nbytes);
    adept_tensor *t = calloc(1, sizeof *t);
    if (!t) return adept_fail(ADEPT_ENOMEM, "tensor: out of memory");
    adept_storage_retain(storage);
    t->storage = storage;
    t->offset = offset;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    *out = t;
    return ADEPT_OK;
}

adept_status adept_tensor_new(adept_dtype dtype, int ndim, const int64_t *shape, adept_tensor **out) {
    size_t nbytes;
    ADEPT_TRY(check_shape(ndim, shape, dtype, &nbytes));
    adept_storage *s;
    ADEPT_TRY(adept_storage_new(nbytes, ADEPT_CPU, &s));
    adept_status st = adept_tensor_view(s, 0, dtype, ndim, shape, out);
    adept_storage_release(s); /* the view holds the only reference now */
    return st;
}

adept_status adept_tensor_clone(const adept_tensor *t, adept_tensor **out) {
    ADEPT_TRY(adept_tensor_new(t->dtype, t->ndim, t->shape, out));
    memcpy(adept_tensor_data(*out), adept_tensor_data(t), adept_tensor_nbytes(t));
    return ADEPT_OK;
}

adept_status adept_tensor_to_dtype(const adept_tensor *t, adept_dtype dtype, adept_tensor **out) {
    ADEPT_TRY(adept_tensor_new(dtype, t->ndim, t->shape, out));
    return adept_convert(adept_tensor_data(*out), dtype, adept_tensor_data(t), t->dtype, adept_tensor_numel(t));
}

adept_status adept_tensor_copy_into(adept_tensor *dst, const adept_tensor *src) {
    if (adept_tensor_numel(dst) != adept_tensor_numel(src) || dst->dtype != src->dtype) {
        char a[96], b[96];
        return adept_fail(ADEPT_ESHAPE, "copy: destination %s %s and source %s %s differ",
                          adept_shape_str(dst->ndim, dst->shape, a, sizeof a), adept_dtype_name(dst->dtype),
                          adept_shape_str(src->ndim, src->shape, b, sizeof b), adept_dtype_name(src->dtype));
    }
    memmove(adept_tensor_data(dst), adept_tensor_data(src), adept_tensor_nbytes(src));
    return ADEPT_OK;
}

adept_status adept_tensor_reshape(const adept_tensor *t, int ndim, const int64_t *shape, adept_tensor **out) {
    size_t nbytes;
    ADEPT_TRY(check_shape(ndim, shape, t->dtype, &nbytes));
    if (adept_shape_numel(ndim, shape) != adept_tensor_numel(t)) {
        char a[96], b[96];
        return adept_fail(ADEPT_ESHAPE, "reshape: %s has %zu elements, %s has %zu",
                          adept_shape_str(t->ndim, t->shape, a, sizeof a), adept_tensor_numel(t),
                          adept_shape_str(ndim, shape, b, sizeof b), adept_shape_numel(ndim, shape));
    }
    return adept_tensor_view(t->storage, t->offset, t->dtype, ndim, shape, out);
}

void adept_tensor_free(adept_tensor *t) {
    if (!t) return;
    adept_storage_release(t->storage);
    free(t);
}

size_t adept_tensor_numel(const adept_tensor *t) { return adept_shape_numel(t->ndim, t->shape); }
size_t adept_tensor_nbytes(const adept_tensor *t) { return adept_tensor_numel(t) * adept_dtype_size(t->dtype); }

int adept_tensor_same_shape(const adept_tensor *a, const adept_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

char *adept_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t used = 0;
    if (cap == 0) return buf;
    buf[0] = '\0';
    used += (size_t)snprintf(buf + used, cap - used, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}
