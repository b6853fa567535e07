/* Helpers of the CUDA kernel tests (tests/unit/test_cuda_*.c): the backend or a skip (exit 77, "no CUDA
   device"), device buffers from host arrays and back, random inputs, and the comparison against the CPU
   backend that prints one "cuda-check" line per array (tests/device/run tabulates them).
   The bound: the relative error 1e-5 for the fp32 path, measured normwise, ||gpu - cpu||_2 / ||cpu||_2.
   Both sides compute each output in fp32 with a different summation order (cuBLAS tiles, block trees and
   row chunks against OpenBLAS panels and OpenMP slices); for sums of K terms of random sign the rounding error
   of each side grows like sqrt(K) u ||terms|| with u = 2^-24 = 6e-8, so for the K <= 256 used here a
   normwise difference of about 16 u = 1e-6: the bound leaves a factor of 10. Elementwise kernels (RoPE, SwiGLU,
   scale, embedding) differ by a few ulp at most (expf against the CPU's inline exp, both within 2 ulp). */
#ifndef ADEPT_TEST_CUDA_COMPARE_H
#define ADEPT_TEST_CUDA_COMPARE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/backend.h"
#include "adept/cuda.h"
#include "check.h"

#define CUDA_TOL 1e-5

static const adept_backend *cuda_be, *cpu_be;

static inline void cuda_or_skip(void) {
    cpu_be = adept_backend_cpu();
    /* a dry run of the tests themselves on a machine without a GPU: the CPU table stands in for the device
       (every comparison then holds trivially; it checks the harness, not the backend) */
    if (getenv("ADEPT_CUDA_TESTS_ON_CPU")) adept_backend_register(ADEPT_CUDA, cpu_be);
    cuda_be = adept_backend_for(ADEPT_CUDA);
    if (!cuda_be) {
        printf("skipped: %s\n", adept_last_error()); /* "cuda: no CUDA device (...)" */
        exit(77);
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
/* uniform in [-1, 1): splitmix64 */
static inline float frand(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static inline float *host_rand(size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = frand() * scale;
    return x;
}

/* a device copy of n bytes from the host */
static inline void *dev_from(const void *host, size_t nbytes) {
    void *d = cuda_be->alloc(nbytes);
    if (!d) {
        fprintf(stderr, "alloc: %s\n", adept_last_error());
        exit(1);
    }
    if (host) CHECK_OK(cuda_be->to_device(d, host, nbytes));
    return d;
}

/* the device buffer brought back into a new host array (waits for the queued kernels) */
static inline void *dev_back(const void *dev, size_t nbytes) {
    void *h = malloc(nbytes ? nbytes : 1);
    CHECK_OK(cuda_be->to_host(h, dev, nbytes));
    return h;
}

/* normwise relative error ||got - ref|| / ||ref|| over the non-NaN entries; *nan_mismatch counts entries NaN on
   one side only, *maxabs is the largest absolute difference */
static inline double relerr_f32(const float *got, const float *ref, size_t n, double *maxabs, int *nan_mismatch) {
    double num = 0, den = 0;
    *maxabs = 0, *nan_mismatch = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) != isnan(ref[i])) { ++*nan_mismatch; continue; }
        if (isnan(ref[i])) continue;
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
        if (fabs(d) > *maxabs) *maxabs = fabs(d);
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* normwise relative error with the NaN pattern checked; prints the line tests/device/run collects */
static inline void compare_f32(const char *what, const float *got, const float *ref, size_t n, double tol) {
    double maxabs;
    int nan_mismatch;
    double rel = relerr_f32(got, ref, n, &maxabs, &nan_mismatch);
    int ok = !nan_mismatch && rel <= tol;
    printf("cuda-check %-36s n=%-8zu relerr=%.2e maxabs=%.2e bound=%.0e %s\n", what, n, rel, maxabs, tol,
           ok ? "ok" : "FAIL");
    CHECK(ok);
}

static inline void compare_f64(const char *what, const double *got, const double *ref, size_t n, double tol) {
    double num = 0, den = 0, maxabs = 0;
    int nan_mismatch = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) != isnan(ref[i])) { nan_mismatch++; continue; }
        if (isnan(ref[i])) continue;
        double d = got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
        if (fabs(d) > maxabs) maxabs = fabs(d);
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    int ok = !nan_mismatch && rel <= tol;
    printf("cuda-check %-36s n=%-8zu relerr=%.2e maxabs=%.2e bound=%.0e %s\n", what, n, rel, maxabs, tol,
           ok ? "ok" : "FAIL");
    CHECK(ok);
}

static inline void compare_bitwise(const char *what, const void *a, const void *b, size_t nbytes) {
    int ok = memcmp(a, b, nbytes) == 0;
    printf("cuda-check %-36s bytes=%-6zu %s\n", what, nbytes, ok ? "bitwise ok" : "FAIL (not bitwise equal)");
    CHECK(ok);
}

#endif
