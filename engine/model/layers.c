/* Instantiates the layer kernels (layers_impl.inc) in fp32 for the model and fp64 for gradient checks. */
#include "model/layers.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

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
