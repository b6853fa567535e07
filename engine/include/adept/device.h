/* Tensors across devices: device names, tensors allocated on a device through its backend, and copies between
   the host and a device. Host code reads or writes device memory only through these (or a backend's
   to_host/to_device), never through a pointer: on a GPU that pointer is not host memory at all. */
#ifndef ADEPT_DEVICE_H
#define ADEPT_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"
#include "adept/tensor.h"

const char *adept_device_name(adept_device device); /* "cpu", "cuda" */
/* "cpu" or "cuda"; anything else fails naming the value and the choices. */
adept_status adept_device_parse(const char *name, adept_device *out);
static inline adept_device adept_tensor_device(const adept_tensor *t) { return t->storage->device; }

/* A new zeroed contiguous tensor on a device (memory from the device's backend; the CPU: adept_tensor_new). */
adept_status adept_tensor_new_on(adept_device device, adept_dtype dtype, int ndim, const int64_t *shape,
                                 adept_tensor **out);
/* A contiguous copy of t on `device` (same dtype and shape), also when t already lives there. */
adept_status adept_tensor_copy_to(const adept_tensor *t, adept_device device, adept_tensor **out);
/* A tensor whose data the host may read: a new view of t itself when t lives on the host, else a host copy.
   The caller frees *out either way. */
adept_status adept_tensor_host(const adept_tensor *t, adept_tensor **out);
/* Copies nbytes between host memory and t's data at byte `offset` (inside t, checked), on any device. */
adept_status adept_tensor_read(const adept_tensor *t, size_t offset, void *host, size_t nbytes);
adept_status adept_tensor_write(adept_tensor *t, size_t offset, const void *host, size_t nbytes);

#endif
