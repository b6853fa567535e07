/* CPU reductions: whole-tensor sum/mean/max/min/norm, sum/mean along a dimension, and the dot/norm triple
   behind dot and cosine. Deterministic by construction: fixed chunks, each reduced by one thread with eight
   double accumulators, and chunk results combined in index order, so no result depends on the thread count. */
#include <math.h>
#include <stdlib.h>

#include "ops/cpu/cpu.h"

#ifdef __clang__ /* clang may decline an omp simd loop; that costs speed only, so it need not warn */
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#define LANES 8

typedef enum { COMBINE_SUM, COMBINE_MAX, COMBINE_MIN } combine_kind;

/* Reduces elements [i0, i1) of a (and b) into `out` (up to 3 values). */
typedef void (*chunk_fn)(const void *a, const void *b, size_t i0, size_t i1, double *out);

/* noinline: inlined into row_sum, GCC 12 warns spuriously (-Waggressive-loop-optimizations) */
__attribute__((noinline)) static void sum_f32(const void *pa, const void *pb, size_t i0, size_t i1, double *out) {
    const float *x = (const float *)pa + i0;
    size_t n = i1 - i0, i = 0;
    double acc[LANES] = {0};
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += x[i + j];
    double s = 0;
    for (int j = 0; j < LANES; j++) s += acc[j];
    for (; i < n; i++) s += x[i];
    *out = s;
}

static void sum_i32(const void *pa, const void *pb, size_t i0, size_t i1, double *out) {
    const int32_t *x = pa;
    int64_t s = 0; /* exact: a chunk of 4096 int32 cannot overflow 64 bits */
    for (size_t i = i0; i < i1; i++) s += x[i];
    *out = (double)s;
}

static void sumsq_f32(const void *pa, const void *pb, size_t i0, size_t i1, double *out) {
    const float *x = pa;
    double acc[LANES] = {0};
    size_t i = i0;
    for (; i + LANES <= i1; i += LANES)
        for (int j = 0; j < LANES; j++) {
            double v = x[i + j];
            acc[j] += v * v;
        }
    double s = 0;
    for (int j = 0; j < LANES; j++) s += acc[j];
    for (; i < i1; i++) s += (double)x[i] * x[i];
    *out = s;
}

static int any_nan(const float *x, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad |= x[i] != x[i];
    return bad;
}

/* max/min of a chunk; any NaN makes the result NaN, as in PyTorch. The simd reduction lets the compiler
   reorder the comparisons, which cannot change a max or min of numbers (the NaN case is checked apart). */
static void max_f32(const void *pa, const void *pb, size_t i0, size_t i1, double *out) {
    const float *x = (const float *)pa + i0;
    size_t n = i1 - i0;
    float m = x[0];
    #pragma omp simd reduction(max : m)
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    *out = any_nan(x, n) ? NAN : m;
}

static void min_f32(const void *pa, const void *pb, size_t i0, size_t i1, double *out) {
    const float *x = (const float *)pa + i0;
    size_t n = i1 - i0;
    float m = x[0];
    #pragma omp simd reduction(min : m)
    for (size_t i = 0; i < n; i++) m = x[i] < m ? x[i] : m;
    *out = any_nan(x, n) ? NAN : m;
}

static void max_i32(const void *pa, const void *pb, size_t i0, size_t i1, double *out) {
    const int32_t *x = pa;
    int32_t m = x[i0];
    for (size_t i = i0; i < i1; i++) m = x[i] > m ? x[i] : m;
    *out = m;
}

static void min_i32(const void *pa, const void *pb, size_t i0, size_t i1, double *out) {
    const int32_t *x = pa;
    int32_t m = x[i0];
    for (size_t i = i0; i < i1; i++) m = x[i] < m ? x[i] : m;
    *out = m;
}

static void dot3_f32(const void *pa, const void *pb, size_t i0, size_t i1, double *out) {
    const float *x = pa, *z = pb;
    double ab[LANES] = {0}, aa[LANES] = {0}, bb[LANES] = {0};
    size_t i = i0;
    for (; i + LANES <= i1; i += LANES)
        for (int j = 0; j < LANES; j++) {
            double u = x[i + j], v = z[i + j];
            ab[j] += u * v;
            aa[j] += u * u;
            bb[j] += v * v;
        }
    double s0 = 0, s1 = 0, s2 = 0;
    for (int j = 0; j < LANES; j++) { s0 += ab[j]; s1 += aa[j]; s2 += bb[j]; }
    for (; i < i1; i++) {
        double u = x[i], v = z[i];
        s0 += u * v;
        s1 += u * u;
        s2 += v * v;
    }
    out[0] = s0; out[1] = s1; out[2] = s2;
}

static double combine2(combine_kind kind, double acc, double v) {
    if (kind == COMBINE_SUM) return acc + v;
    if (isnan(acc) || isnan(v)) return NAN;
    return kind == COMBINE_MAX ? (v > acc ? v : acc) : (v < acc ? v : acc);
}

/* Runs fn over the fixed chunks of [0, n) in parallel and combines the chunk results in chunk order. n > 0. */
static adept_status reduce_chunks(size_t n, chunk_fn fn, const void *a, const void *b, int nout, combine_kind kind,
                                  double *out) {
    size_t nchunks = (n + ADEPT_CPU_CHUNK - 1) / ADEPT_CPU_CHUNK;
    if (nchunks == 1) {
        fn(a, b, 0, n, out);
        return ADEPT_OK;
    }
    double *part = malloc(nchunks * (size_t)nout * sizeof *part);
    if (!part) return adept_fail(ADEPT_ENOMEM, "reduce: cannot allocate %zu partial results", nchunks);
    #pragma omp parallel for schedule(static) if (n > ADEPT_CPU_PAR_MIN)
    for (size_t c = 0; c < nchunks; c++) {
        size_t i0 = c * ADEPT_CPU_CHUNK, i1 = i0 + ADEPT_CPU_CHUNK < n ? i0 + ADEPT_CPU_CHUNK : n;
        fn(a, b, i0, i1, part + c * (size_t)nout);
    }
    for (int k = 0; k < nout; k++) {
        double acc = part[k];
        for (size_t c = 1; c < nchunks; c++) acc = combine2(kind, acc, part[c * (size_t)nout + k]);
        out[k] = acc;
    }
    free(part);
    return ADEPT_OK;
}

adept_status adept_cpu_reduce(adept_reduce_op op, const adept_tensor *a, double *out) {
    size_t n = adept_tensor_numel(a);
    const void *x = adept_tensor_data(a);
    int f = a->dtype == ADEPT_F32;
    double r;
    switch (op) {
    case ADEPT_REDUCE_SUM:
    case ADEPT_REDUCE_MEAN:
        ADEPT_TRY(reduce_chunks(n, f ? sum_f32 : sum_i32, x, NULL, 1, COMBINE_SUM, &r));
        *out = op == ADEPT_REDUCE_MEAN ? r / (double)n : r;
        return ADEPT_OK;
    case ADEPT_REDUCE_MAX: return reduce_chunks(n, f ? max_f32 : max_i32, x, NULL, 1, COMBINE_MAX, out);
    case ADEPT_REDUCE_MIN: return reduce_chunks(n, f ? min_f32 : min_i32, x, NULL, 1, COMBINE_MIN, out);
    case ADEPT_REDUCE_NORM:
        ADEPT_TRY(reduce_chunks(n, sumsq_f32, x, NULL, 1, COMBINE_SUM, &r));
        *out = sqrt(r);
        return ADEPT_OK;
    default: return adept_fail(ADEPT_EINVAL, "reduce: invalid op %d", (int)op);
    }
}

adept_status adept_cpu_dot3(const adept_tensor *a, const adept_tensor *b, double out[3]) {
    return reduce_chunks(adept_tensor_numel(a), dot3_f32, adept_tensor_data(a), adept_tensor_data(b), 3, COMBINE_SUM,
                         out);
}

/* Sum of one contiguous row with the same chunking as reduce_chunks, on the calling thread. */
static double row_sum(const float *x, size_t n) {
    double s = 0, c;
    if (n <= ADEPT_CPU_CHUNK) {
        sum_f32(x, NULL, 0, n, &s);
        return s;
    }
    sum_f32(x, NULL, 0, ADEPT_CPU_CHUNK, &s);
    for (size_t i0 = ADEPT_CPU_CHUNK; i0 < n; i0 += ADEPT_CPU_CHUNK) {
        sum_f32(x, NULL, i0, i0 + ADEPT_CPU_CHUNK < n ? i0 + ADEPT_CPU_CHUNK : n, &c);
        s += c;
    }
    return s;
}

#define COL_BLOCK 256

/* The sum or the mean of d summed values; a mean over nothing is NaN, as in PyTorch. */
static float finish(adept_reduce_op op, double s, size_t d) {
    if (op != ADEPT_REDUCE_MEAN) return (float)s;
    return d ? (float)(s / (double)d) : NAN;
}

/* Sum or mean over dimension `dim`: the tensor is [outer, d, inner]; each output element is summed by one
   thread in index order of the reduced dimension. */
adept_status adept_cpu_reduce_dim(adept_reduce_op op, const adept_tensor *a, int dim, adept_tensor *out) {
    size_t outer = 1, inner = 1, d = (size_t)a->shape[dim];
    for (int i = 0; i < dim; i++) outer *= (size_t)a->shape[i];
    for (int i = dim + 1; i < a->ndim; i++) inner *= (size_t)a->shape[i];
    const float *x = adept_tensor_f32(a);
    float *y = adept_tensor_f32(out);
    size_t total = outer * d * inner;
    if (outer * inner == 0) return ADEPT_OK;
    if (inner == 1) {
        if (outer == 1) { /* one row: chunks in parallel, same chunking as row_sum, so the same result */
            double s = 0;
            if (d) ADEPT_TRY(reduce_chunks(d, sum_f32, x, NULL, 1, COMBINE_SUM, &s));
            y[0] = finish(op, s, d);
            return ADEPT_OK;
        }
        #pragma omp parallel for schedule(static) if (total > ADEPT_CPU_PAR_MIN)
        for (size_t o = 0; o < outer; o++) {
            double s = d ? row_sum(x + o * d, d) : 0;
            y[o] = finish(op, s, d);
        }
        return ADEPT_OK;
    }
    size_t nblocks = (inner + COL_BLOCK - 1) / COL_BLOCK;
    #pragma omp parallel for schedule(static) if (total > ADEPT_CPU_PAR_MIN)
    for (size_t task = 0; task < outer * nblocks; task++) {
        size_t o = task / nblocks, c0 = task % nblocks * COL_BLOCK;
        size_t w = inner - c0 < COL_BLOCK ? inner - c0 : COL_BLOCK;
        double acc[COL_BLOCK];
        for (size_t c = 0; c < w; c++) acc[c] = 0;
        for (size_t j = 0; j < d; j++) {
            const float *row = x + (o * d + j) * inner + c0;
            for (size_t c = 0; c < w; c++) acc[c] += row[c];
        }
        for (size_t c = 0; c < w; c++)
            y[o * inner + c0 + c] = finish(op, acc[c], d);
    }
    return ADEPT_OK;
}
