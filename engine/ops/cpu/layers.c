/* Instantiates the CPU layer kernels (layers_impl.inc) in fp32 for the backend table and fp64 for gradient
   checks, with the BLAS enter/exit of a model pass and the inline exp of the fp32 kernels. */
#include "ops/cpu/layers.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* openblas.h is not included to keep cblas.h the only BLAS header; these are libopenblas' entry points */
extern int openblas_get_num_threads(void);
extern void openblas_set_num_threads(int);

int adept_model_blas_enter(void) {
    int n = openblas_get_num_threads();
    if (n != 1) openblas_set_num_threads(1);
    return n;
}

void adept_model_blas_exit(int saved) {
    if (saved != 1) openblas_set_num_threads(saved);
}

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/* exp for the fp32 kernels (softmax, cross-entropy, SwiGLU). libm's expf is an opaque call that keeps those
   loops scalar (about a third of a config-b training step went there); this inline version is plain arithmetic,
   so -O3 vectorises the loops that call it. Range reduction x = n ln2 + r (ln2 split in a short high part, exact
   in n * hi, and a correction), then a degree-6 polynomial for e^r on [-ln2/2, ln2/2] (the classic Cephes
   expf coefficients), scaled by 2^n through the exponent bits: within 2 ulp of expf over the range the model
   uses. Inputs below -87.3 give 0 (expf would give a subnormal), above 88.7 +inf, NaN stays NaN. */
static inline float adept_expf(float x) {
    float xc = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    float t = xc * 1.44269504088896341f + 12582912.0f; /* adding 1.5 * 2^23 rounds to the nearest integer */
    float n = t - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float z = r * r;
    float y = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
               1.6666665459e-1f) * r + 5.0000001201e-1f;
    y = y * z + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23; /* n in [-126, 127]: a normal power of two */
    float p2;
    memcpy(&p2, &bits, sizeof p2);
    y *= p2;
    y = x < -87.3f ? 0.0f : y;
    return x > 88.7f ? INFINITY : y;
}

#define R float
#define FN(n) n
#define GEMM cblas_sgemm
#define EXP adept_expf
#include "ops/cpu/layers_impl.inc"
#undef R
#undef FN
#undef GEMM
#undef EXP

#define R double
#define FN(n) CAT(n, _f64)
#define GEMM cblas_dgemm
#define EXP exp
#include "ops/cpu/layers_impl.inc"
