/* The CUDA device's entry points in every build: in a build with the backend they ask the CUDA runtime
   (the .cu files of engine/ops/cuda); without it they report that the build has none, so bindings and the backend lookup
   need no #ifdef of their own. */
#include "adept/cuda.h"

#include <stdio.h>
#include <string.h>

#include "ops/cuda/cuda_internal.h"

#ifdef ADEPT_HAVE_CUDA

int adept_cuda_built(void) { return 1; }

int adept_cuda_device_count(const char **why) {
    static char reason[256];
    int n = adept_cuda_rt_device_count(reason, sizeof reason);
    if (why) *why = n > 0 ? "" : reason;
    return n;
}

adept_status adept_cuda_device_info(int index, adept_cuda_device *out) {
    return adept_cuda_rt_device_info(index, out);
}

const adept_backend *adept_backend_cuda(void) {
    const char *why;
    if (adept_cuda_device_count(&why) <= 0) {
        adept_fail(ADEPT_EUNSUPPORTED, "cuda: no CUDA device (%s)", why);
        return NULL;
    }
    return adept_cuda_rt_backend();
}

adept_status adept_cuda_profile_begin(void) {
    /* the GPU's backend, started here if nothing has yet; without a device, its reason ("cuda: no CUDA device ...")
       (a test host's fake device registered for "cuda" is not it: no CUDA events time it) */
    if (!adept_backend_cuda()) return ADEPT_EUNSUPPORTED;
    return adept_cuda_rt_profile_begin();
}

adept_status adept_cuda_profile_end(FILE *out, double per, const char *unit, int top) {
    return adept_cuda_rt_profile_end(out, per, unit, top);
}

#else

static const char no_backend[] = "this build has no CUDA backend (configure with -DADEPT_CUDA=ON and the CUDA toolkit)";

int adept_cuda_built(void) { return 0; }

int adept_cuda_device_count(const char **why) {
    if (why) *why = no_backend;
    return 0;
}

adept_status adept_cuda_device_info(int index, adept_cuda_device *out) {
    (void)out;
    return adept_fail(ADEPT_EUNSUPPORTED, "cuda: device %d: %s", index, no_backend);
}

const adept_backend *adept_backend_cuda(void) {
    adept_fail(ADEPT_EUNSUPPORTED, "cuda: %s", no_backend);
    return NULL;
}

adept_status adept_cuda_profile_begin(void) { return adept_fail(ADEPT_EUNSUPPORTED, "cuda: %s", no_backend); }

adept_status adept_cuda_profile_end(FILE *out, double per, const char *unit, int top) {
    (void)out, (void)per, (void)unit, (void)top;
    return adept_fail(ADEPT_EUNSUPPORTED, "cuda: %s", no_backend);
}

#endif
