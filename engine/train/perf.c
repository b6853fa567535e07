/* The sgemm peak that MFU is measured against: square products timed for a fixed wall-clock budget. */
#include "adept/perf.h"

#include <cblas.h>

#include "adept/log.h"
#include "adept/tensor.h"

double adept_sgemm_peak_flops(int n, double seconds) {
    if (n < 16) n = 16;
    size_t nn = (size_t)n * (size_t)n;
    float *a = adept_alloc(nn * sizeof(float)), *b = adept_alloc(nn * sizeof(float)), *c = adept_alloc(nn * sizeof(float));
    if (!a || !b || !c) {
        adept_free(a), adept_free(b), adept_free(c);
        return 0;
    }
    for (size_t i = 0; i < nn; i++) a[i] = b[i] = (float)((i % 7) - 3) * 0.01f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
    double t0 = adept_now(), t;
    long reps = 0;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        reps++;
        t = adept_now() - t0;
    } while (t < seconds);
    adept_free(a), adept_free(b), adept_free(c);
    return t > 0 ? 2.0 * (double)n * n * n * (double)reps / t : 0;
}
