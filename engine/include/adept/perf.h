/* Throughput reference for MFU: the measured single-precision GEMM peak of this machine with the current
   thread count (OpenBLAS), so MFU is reported against what the hardware actually delivers here. */
#ifndef ADEPT_PERF_H
#define ADEPT_PERF_H

/* FLOP/s of repeated n x n x n sgemm calls for about `seconds` (after one warm-up call); 0 on failure. */
double adept_sgemm_peak_flops(int n, double seconds);

#endif
