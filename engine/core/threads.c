/* Keeps OpenMP and OpenBLAS on one thread count, so `--threads N` means N everywhere. */
#include "adept/threads.h"

#include <omp.h>

#ifndef ADEPT_VERSION
#define ADEPT_VERSION "0.1.0"
#endif

extern void openblas_set_num_threads(int); /* from libopenblas; declared here to avoid cblas.h in core */

static int thread_count;

void adept_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    thread_count = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int adept_get_threads(void) { return thread_count > 0 ? thread_count : omp_get_max_threads(); }

const char *adept_version(void) { return ADEPT_VERSION; }
