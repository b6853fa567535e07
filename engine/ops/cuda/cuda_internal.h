/* Between the C side of the CUDA backend (register.c, compiled in every build) and its CUDA sources (*.cu, only
   in builds with ADEPT_HAVE_CUDA). Plain C declarations with C linkage. */
#ifndef ADEPT_OPS_CUDA_INTERNAL_H
#define ADEPT_OPS_CUDA_INTERNAL_H

#include <stdio.h>

#include "adept/cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cudaGetDeviceCount; on 0 devices or failure writes the reason into why */
int adept_cuda_rt_device_count(char *why, size_t why_len);
adept_status adept_cuda_rt_device_info(int index, adept_cuda_device *out);
/* Initialises device 0 (handles, math mode) once and returns the table, or NULL with a message. */
const adept_backend *adept_cuda_rt_backend(void);
/* the device-time profile (profile.cu) */
adept_status adept_cuda_rt_profile_begin(void);
adept_status adept_cuda_rt_profile_end(FILE *out, double per, const char *unit, int top);

#ifdef __cplusplus
}
#endif

#endif
