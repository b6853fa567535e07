/* Instantiates the layer kernels (layers_impl.inc) in fp32 for the model and fp64 for gradient checks. */
#include "model/layers.h"

#include <cblas.h>
#include <math.h>
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

#define R float
#define FN(n) n
#define GEMM cblas_sgemm
#define EXP expf
#include "model/layers_impl.inc"
#undef R
#undef FN
#undef GEMM
#undef EXP

#define R double
#define FN(n) CAT(n, _f64)
#define GEMM cblas_dgemm
#define EXP exp
#include "model/layers_impl.inc"
