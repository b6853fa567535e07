/* Tensors on devices (adept/device.h): allocation through the device's backend and host<->device copies.
   Device storage is released through the backend that allocated it, kept as the storage's release context. */
#include "adept/device.h"

#include <stdio.h>
#include <string.h>

#include "adept/backend.h"

void adept_backend_memory_note(const adept_backend *be, char *buf, size_t cap) {
    size_t free_b = 0, total_b = 0;
    if (!cap) return;
    buf[0] = 0;
    if (be && be->memory_info && be->memory_info(&free_b, &total_b) == ADEPT_OK)
        snprintf(buf, cap, "; the device has %.1f of %.1f MiB free", free_b / 1048576.0, total_b / 1048576.0);
}

const char *adept_device_name(adept_device device) {
    switch (device) {
    case ADEPT_CPU: return "cpu";
    case ADEPT_CUDA: return "cuda";
    }
    return "?";
}

adept_status adept_device_parse(const char *name, adept_device *out) {
    if (name && !strcmp(name, "cpu")) { *out = ADEPT_CPU; return ADEPT_OK; }
    if (name && !strcmp(name, "cuda")) { *out = ADEPT_CUDA; return ADEPT_OK; }
    return adept_fail(ADEPT_EINVAL, "unknown device '%s' (devices: cpu, cuda)", name ? name : "(null)");
}

static void release_on(void *data, size_t nbytes, void *ctx) {
    (void)nbytes;
    ((const adept_backend *)ctx)->free(data);
}

adept_status adept_tensor_new_on(adept_device device, adept_dtype dtype, int ndim, const int64_t *shape,
                                 adept_tensor **out) {
    *out = NULL;
    if (device == ADEPT_CPU) return adept_tensor_new(dtype, ndim, shape, out);
    if (ndim < 0 || ndim > ADEPT_MAX_DIMS)
        return adept_fail(ADEPT_EINVAL, "tensor: %d dimensions (at most %d supported)", ndim, ADEPT_MAX_DIMS);
    if ((unsigned)dtype >= ADEPT_DTYPE_COUNT) return adept_fail(ADEPT_EINVAL, "tensor: invalid dtype %d", (int)dtype);
    size_t nbytes = adept_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return adept_fail(ADEPT_EINVAL, "tensor: dimension %d is negative (%lld)", i + 1, (long long)shape[i]);
        if (shape[i] > 0 && nbytes > SIZE_MAX / 2 / (size_t)shape[i])
            return adept_fail(ADEPT_EINVAL, "tensor: shape overflows the address space");
        nbytes *= (size_t)shape[i];
    }
    const adept_backend *be = adept_backend_for(device);
    if (!be) return adept_fail_context(ADEPT_EUNSUPPORTED, "tensor on %s", adept_device_name(device));
    void *p = be->alloc(nbytes);
    if (!p) return adept_fail_context(ADEPT_ENOMEM, "tensor of %zu bytes on %s", nbytes, adept_device_name(device));
    adept_storage *s;
    adept_status st = adept_storage_wrap(p, nbytes, device, release_on, (void *)be, &s);
    if (st != ADEPT_OK) {
        be->free(p);
        return st;
    }
    st = adept_tensor_view(s, 0, dtype, ndim, shape, out);
    adept_storage_release(s); /* the view holds the only reference */
    return st;
}

static adept_status check_range(const adept_tensor *t, size_t offset, size_t nbytes, const char *op) {
    size_t have = adept_tensor_nbytes(t);
    if (offset > have || nbytes > have - offset)
        return adept_fail(ADEPT_EINVAL, "%s: bytes [%zu, %zu) outside a tensor of %zu bytes", op, offset,
                          offset + nbytes, have);
    return ADEPT_OK;
}

adept_status adept_tensor_read(const adept_tensor *t, size_t offset, void *host, size_t nbytes) {
    ADEPT_TRY(check_range(t, offset, nbytes, "tensor read"));
    const char *src = (const char *)adept_tensor_data(t) + offset;
    if (t->storage->device == ADEPT_CPU) {
        if (nbytes) memcpy(host, src, nbytes);
        return ADEPT_OK;
    }
    const adept_backend *be = adept_backend_for(t->storage->device);
    if (!be) return adept_fail_context(ADEPT_EUNSUPPORTED, "tensor read");
    return be->to_host(host, src, nbytes);
}

adept_status adept_tensor_write(adept_tensor *t, size_t offset, const void *host, size_t nbytes) {
    ADEPT_TRY(check_range(t, offset, nbytes, "tensor write"));
    char *dst = (char *)adept_tensor_data(t) + offset;
    if (t->storage->device == ADEPT_CPU) {
        if (nbytes) memmove(dst, host, nbytes);
        return ADEPT_OK;
    }
    const adept_backend *be = adept_backend_for(t->storage->device);
    if (!be) return adept_fail_context(ADEPT_EUNSUPPORTED, "tensor write");
    return be->to_device(dst, host, nbytes);
}

adept_status adept_tensor_host(const adept_tensor *t, adept_tensor **out) {
    if (t->storage->device == ADEPT_CPU) return adept_tensor_view(t->storage, t->offset, t->dtype, t->ndim, t->shape, out);
    return adept_tensor_copy_to(t, ADEPT_CPU, out);
}

adept_status adept_tensor_copy_to(const adept_tensor *t, adept_device device, adept_tensor **out) {
    ADEPT_TRY(adept_tensor_new_on(device, t->dtype, t->ndim, t->shape, out));
    size_t nbytes = adept_tensor_nbytes(t);
    adept_device from = t->storage->device;
    adept_status st;
    if (from == ADEPT_CPU) {
        st = adept_tensor_write(*out, 0, adept_tensor_data(t), nbytes);
    } else if (device == ADEPT_CPU) {
        st = adept_tensor_read(t, 0, adept_tensor_data(*out), nbytes);
    } else if (from == device) {
        const adept_backend *be = adept_backend_for(device);
        st = be ? be->copy(adept_tensor_data(*out), adept_tensor_data(t), nbytes)
                : adept_fail_context(ADEPT_EUNSUPPORTED, "tensor copy");
    } else { /* two different devices: through the host (one device kind exists today, so this is not reached) */
        adept_tensor *h = NULL;
        st = adept_tensor_copy_to(t, ADEPT_CPU, &h);
        if (st == ADEPT_OK) st = adept_tensor_write(*out, 0, adept_tensor_data(h), nbytes);
        adept_tensor_free(h);
    }
    if (st != ADEPT_OK) {
        adept_tensor_free(*out);
        *out = NULL;
    }
    return st;
}
