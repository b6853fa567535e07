/* The device-time table of the CUDA profile (profile.cu; docs/cuda.md "Profile"): time, FLOPs and calls summed by
   (op, part), printed sorted by time. Plain C with no CUDA in it, so the CPU tests check the sums and the
   printout without a GPU. The strings are the backend's literals: kept as pointers, never copied. */
#ifndef ADEPT_OPS_CUDA_PROFILE_TABLE_H
#define ADEPT_OPS_CUDA_PROFILE_TABLE_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct adept_prof_row {
    const char *op;   /* the backend entry, as its errors name it: "matmul_forward_bf16" */
    const char *part; /* what of it: "gemm bf16", "kernel", "round bf16", "copy" */
    double ms;        /* device time */
    double flops;     /* GEMM FLOPs (2 M N K per product); 0 for the rest */
    long calls;
} adept_prof_row;

/* distinct (op, part) pairs kept; more are summed into one "other" row (the backend has about 60) */
#define ADEPT_PROF_ROWS 256

typedef struct adept_prof_table {
    adept_prof_row rows[ADEPT_PROF_ROWS];
    int n;
    adept_prof_row other;
    double total_ms;
    long marks;
} adept_prof_table;

void adept_prof_table_reset(adept_prof_table *t);
/* adds one timed piece of work; NULL op or part count as "?" */
void adept_prof_table_add(adept_prof_table *t, const char *op, const char *part, double ms, double flops);
/* The table, every line starting "cuda-profile:" (so a log can be grepped for it): a summary line, then rows by
   time, largest first, with their share of the total, time and calls divided by per units (e.g. 5 "step"s;
   per <= 0 counts as 1, a NULL or empty unit as "run"), and TFLOP/s where FLOPs were counted. top > 0 prints
   that many rows and one line summing the rest; 0 prints all. */
void adept_prof_table_print(const adept_prof_table *t, FILE *out, double per, const char *unit, int top);

#ifdef __cplusplus
}
#endif

#endif
