/* The CUDA device lookup: on a machine without a GPU (or a build without the backend) adept_backend_for(ADEPT_CUDA)
   fails with a message naming why and nothing else changes; with a GPU the table is complete and the device
   is described. Runs everywhere (it is the one CUDA test that CI without a GPU executes for real). */
#include <stddef.h>
#include <string.h>

#include "adept/backend.h"
#include "adept/cuda.h"
#include "check.h"

int main(void) {
    const char *why = NULL;
    int n = adept_cuda_device_count(&why);
    CHECK(n >= 0);
    CHECK(why != NULL);
    adept_clear_error();
    const adept_backend *be = adept_backend_for(ADEPT_CUDA);
    if (n == 0) {
        printf("no device: %s\n", why);
        CHECK(be == NULL);
        const char *msg = adept_last_error();
        printf("adept_backend_for(ADEPT_CUDA): %s\n", msg);
        if (adept_cuda_built()) CHECK(strstr(msg, "no CUDA device") != NULL);
        else CHECK(strstr(msg, "no CUDA backend") != NULL);
        CHECK(strlen(why) > 0);
        adept_cuda_device d;
        CHECK(adept_cuda_device_info(0, &d) != ADEPT_OK);
        /* the CPU backend is untouched */
        CHECK(adept_backend_for(ADEPT_CPU) == adept_backend_cpu());
        return check_summary();
    }
    CHECK(adept_cuda_built());
    CHECK(be != NULL);
    if (!be) return check_summary();
    CHECK(!strcmp(be->name, "cuda"));
    CHECK(be->device == ADEPT_CUDA);
    CHECK(adept_backend_for(ADEPT_CUDA) == be); /* registered once */
    /* every required entry is set: the model calls them without checking (the tensor ops, `unary` on, are
       optional: the dispatcher runs a missing one staged through the host) */
    void (*const *fn)(void) = (void (*const *)(void))&be->alloc;
    size_t n_fns = (offsetof(adept_backend, unary) - offsetof(adept_backend, alloc)) / sizeof *fn;
    for (size_t i = 0; i < n_fns; i++) CHECK(fn[i] != NULL);
    for (int i = 0; i < n; i++) {
        adept_cuda_device d;
        CHECK_OK(adept_cuda_device_info(i, &d));
        printf("device %d: %s, compute capability %d.%d, %d multiprocessors, %.1f GiB (%.1f GiB free)\n", d.index,
               d.name, d.cc_major, d.cc_minor, d.multiprocessors, d.total_bytes / 1073741824.0,
               d.free_bytes / 1073741824.0);
        CHECK(d.total_bytes > 0 && d.free_bytes <= d.total_bytes);
        CHECK(d.cc_major >= 7);
        CHECK(strlen(d.name) > 0);
    }
    adept_cuda_device d;
    CHECK(adept_cuda_device_info(n, &d) == ADEPT_EINVAL);
    return check_summary();
}
