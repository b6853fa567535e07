/* Where the device time goes (adept_cuda_profile_begin / _end, docs/cuda.md "Profile"). While on, every piece
   of work the backend queues (a kernel, a GEMM, a copy) is followed by a CUDA event on the default stream, named
   by the op and the part of it; the time between two consecutive events is the device time of the work queued
   between them, since everything runs in order on that one stream. Events are recorded into a pool and read
   back when it is full or at the end: one synchronisation per pool, not per op. Off (the default), a mark
   costs one branch. The table itself is plain C (profile_table.c). */
#include <stdio.h>

#include "common.cuh"
#include "cuda_internal.h"
#include "profile_table.h"

namespace adept_cuda {

constexpr int kMarks = 4096;

static struct {
    int created;
    cudaEvent_t ev[kMarks];
    const char *op[kMarks], *part[kMarks];
    double flops[kMarks];
    int n; /* events recorded; ev[0] is the base the next mark is timed from */
    adept_prof_table table;
} P;

/* Reads the recorded events back into the table (waiting for the last one) and keeps the last as the new base */
static void flush(void) {
    if (P.n < 2) return;
    cudaError_t e = cudaEventSynchronize(P.ev[P.n - 1]);
    for (int i = 1; i < P.n && e == cudaSuccess; i++) {
        float ms = 0.0f;
        e = cudaEventElapsedTime(&ms, P.ev[i - 1], P.ev[i]);
        if (e == cudaSuccess) adept_prof_table_add(&P.table, P.op[i], P.part[i], ms, P.flops[i]);
    }
    if (e != cudaSuccess) { /* the profile stops; the error is reported by the next status-returning call */
        record("profile (reading events)", e);
        g.profiling = 0;
    }
    cudaEvent_t last = P.ev[P.n - 1];
    P.ev[P.n - 1] = P.ev[0];
    P.ev[0] = last;
    P.n = 1;
}

void prof_mark(const char *op, const char *part, double flops) {
    if (P.n == kMarks) flush();
    if (!g.profiling) return;
    cudaError_t e = cudaEventRecord(P.ev[P.n], 0);
    if (e != cudaSuccess) {
        record("profile (event)", e);
        g.profiling = 0;
        return;
    }
    P.op[P.n] = op, P.part[P.n] = part, P.flops[P.n] = flops;
    P.n++;
}

static adept_status profile_begin(void) {
    if (!g.ready) return adept_fail(ADEPT_EINVAL, "cuda: profile_begin: the CUDA backend has not started");
    ADEPT_TRY(take_pending());
    for (; P.created < kMarks; P.created++)
        ADEPT_TRY(check("profile_begin (cudaEventCreate)", cudaEventCreate(&P.ev[P.created])));
    adept_prof_table_reset(&P.table);
    ADEPT_TRY(check("profile_begin (cudaEventRecord)", cudaEventRecord(P.ev[0], 0)));
    P.n = 1;
    g.profiling = 1;
    return ADEPT_OK;
}

static adept_status profile_end(FILE *out, double per, const char *unit, int top) {
    if (!g.profiling) {
        ADEPT_TRY(take_pending()); /* a profile stopped by an error reports that error */
        return adept_fail(ADEPT_EINVAL, "cuda: profile_end: no profile is running (adept_cuda_profile_begin)");
    }
    flush();
    g.profiling = 0;
    P.n = 0;
    ADEPT_TRY(take_pending());
    if (out) adept_prof_table_print(&P.table, out, per, unit, top); /* NULL: stopped without a table */
    return ADEPT_OK;
}

} // namespace adept_cuda

extern "C" adept_status adept_cuda_rt_profile_begin(void) { return adept_cuda::profile_begin(); }
extern "C" adept_status adept_cuda_rt_profile_end(FILE *out, double per, const char *unit, int top) {
    return adept_cuda::profile_end(out, per, unit, top);
}
