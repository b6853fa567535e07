/* The CUDA device as the rest of the engine and the bindings see it: whether this build carries the backend,
   which devices the machine has, and the backend table (adept/backend.h) once a device is present.
   Every function here works in a build without CUDA and on a machine without a GPU (it then reports none). */
#ifndef ADEPT_CUDA_H
#define ADEPT_CUDA_H

#include <stddef.h>
#include <stdio.h>

#include "adept/backend.h"

typedef struct adept_cuda_device {
    int index;
    char name[256];
    size_t total_bytes; /* device memory */
    size_t free_bytes;  /* free when asked (creates the device's context) */
    int cc_major, cc_minor; /* compute capability, e.g. 9.0 for H100/H200 */
    int multiprocessors;
} adept_cuda_device;

/* 1 when this build carries the CUDA backend (configured with ADEPT_CUDA=AUTO found nvcc, or ON). */
int adept_cuda_built(void);
/* Number of usable devices: 0 when the build has no backend, the driver is missing or no GPU is present.
   *why (may be NULL) then points to a static sentence saying which; "" when devices were found. */
int adept_cuda_device_count(const char **why);
adept_status adept_cuda_device_info(int index, adept_cuda_device *out);
/* The CUDA backend on device 0 (created on first use: cuBLAS handle, fp32 math without TF32), or NULL with
   the message "cuda: no CUDA device (...)" or "cuda: this build has no CUDA backend (...)". */
const adept_backend *adept_backend_cuda(void);

/* Device-time profile of the backend's work (docs/cuda.md "Profile"). After begin (which starts the GPU's
   backend if nothing has yet, or fails with its reason), every kernel, GEMM and copy the backend queues is timed by CUDA events, by op and part; end prints
   the table to out (NULL: none), times and calls divided by per units named unit (e.g. 5, "step"), the top rows
   (0: all), and stops. Without a CUDA backend or device both fail with the reason. */
adept_status adept_cuda_profile_begin(void);
adept_status adept_cuda_profile_end(FILE *out, double per, const char *unit, int top);

#endif
