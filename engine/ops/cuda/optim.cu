/* The trainer's kernels over slabs: AdamW over a segment table in one launch, the sum of squares for the
   gradient norm in fixed chunks, and scaling. */
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

namespace adept_cuda {

/* Elements per block of the AdamW launch. The update is elementwise, so the split does not change results. */
constexpr size_t kAdamChunk = 8192;
/* The chunk of sum_squares: the CPU's 32768, so both add the same partial sums in the same order */
constexpr size_t kSqChunk = 32768;

struct AdamChunk {
    uint32_t seg;
    uint32_t pad;
    size_t off;
};

__global__ void adamw_kernel(const adept_adamw_segment *segs, const AdamChunk *chunks, size_t n_chunks, float b1,
                             float b2, float one_b1, float one_b2, float eps) {
    for (size_t c = blockIdx.x; c < n_chunks; c += gridDim.x) {
        const adept_adamw_segment s = segs[chunks[c].seg];
        size_t off = chunks[c].off, n = s.n - off < kAdamChunk ? s.n - off : kAdamChunk;
        for (size_t i = off + threadIdx.x; i < off + n; i += blockDim.x) {
            float p = s.p[i];
            if (s.shrink != 1.0f) p *= s.shrink;
            float gi = s.g[i];
            float mi = s.m[i] * b1 + one_b1 * gi;
            float vi = s.v[i] * b2 + one_b2 * (gi * gi);
            s.m[i] = mi;
            s.v[i] = vi;
            s.p[i] = p + s.neg_step * (mi / (sqrtf(vi) / s.bc2_sqrt + eps));
        }
    }
}

adept_status adamw(const adept_adamw_segment *host_segs, size_t n_segs, double beta1, double beta2, double eps) {
    ADEPT_TRY(take_pending());
    size_t n_chunks = 0;
    for (size_t s = 0; s < n_segs; s++) n_chunks += (host_segs[s].n + kAdamChunk - 1) / kAdamChunk;
    if (!n_chunks) return ADEPT_OK;
    if (n_segs > UINT32_MAX) return adept_fail(ADEPT_EINVAL, "cuda: adamw: %zu segments (4294967295 at most)", n_segs);
    /* the segment table and the chunk list, packed in one host buffer and one copy */
    size_t seg_bytes = (n_segs * sizeof(adept_adamw_segment) + 255) / 256 * 256;
    size_t bytes = seg_bytes + n_chunks * sizeof(AdamChunk);
    char *h = (char *)malloc(bytes);
    if (!h) return adept_fail(ADEPT_ENOMEM, "cuda: adamw: out of host memory for the chunk list");
    memcpy(h, host_segs, n_segs * sizeof(adept_adamw_segment));
    AdamChunk *ch = (AdamChunk *)(h + seg_bytes);
    size_t k = 0;
    for (size_t s = 0; s < n_segs; s++)
        for (size_t off = 0; off < host_segs[s].n; off += kAdamChunk) ch[k++] = AdamChunk{(uint32_t)s, 0, off};
    char *d = (char *)scratch("adamw", bytes);
    adept_status st = d ? check("adamw (segment table)", cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice)) : take_pending();
    mark("adamw", "copy to device");
    free(h);
    ADEPT_TRY(st);
    adamw_kernel<<<grid_rows(n_chunks), kThreads>>>((const adept_adamw_segment *)d, (const AdamChunk *)(d + seg_bytes),
                                                    n_chunks, (float)beta1, (float)beta2, (float)(1.0 - beta1),
                                                    (float)(1.0 - beta2), (float)eps); /* torch's constants, as the CPU */
    adept_status st_launch = check("adamw", cudaGetLastError());
    mark("adamw", "kernel");
    return st_launch;
}

__global__ void sum_squares_kernel(double *part, const float *x, size_t n) {
    __shared__ double shm[32];
    size_t lo = blockIdx.x * kSqChunk, hi = lo + kSqChunk < n ? lo + kSqChunk : n;
    double s = 0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += (double)x[i] * x[i];
    s = block_sum(s, shm);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

adept_status sum_squares(const float *x, size_t n, double *host_out) {
    ADEPT_TRY(take_pending());
    *host_out = 0;
    size_t n_chunks = (n + kSqChunk - 1) / kSqChunk;
    if (!n_chunks) return ADEPT_OK;
    if (n_chunks > 0x7fffffffu) return adept_fail(ADEPT_EINVAL, "cuda: sum_squares: %zu elements is too many", n);
    double *part = (double *)scratch("sum_squares", n_chunks * sizeof(double));
    if (!part) return take_pending();
    sum_squares_kernel<<<(unsigned)n_chunks, kThreads>>>(part, x, n);
    ADEPT_TRY(check("sum_squares", cudaGetLastError()));
    double *h = (double *)malloc(n_chunks * sizeof(double));
    if (!h) return adept_fail(ADEPT_ENOMEM, "cuda: sum_squares: out of host memory");
    adept_status st = check("sum_squares", cudaMemcpy(h, part, n_chunks * sizeof(double), cudaMemcpyDeviceToHost));
    mark("sum_squares", "kernel, copy to host");
    if (st == ADEPT_OK) st = take_pending();
    double sum = 0;
    for (size_t j = 0; j < n_chunks; j++) sum += h[j]; /* chunk order, as the CPU */
    free(h);
    if (st == ADEPT_OK) *host_out = sum;
    return st;
}

/* one block per row, each sum in double over a fixed reduction tree (the CPU sums serially, so the two agree
   to double rounding, far below what a float comparison sees) */
__global__ void row_cosine_kernel(double *cos, const float *x, const float *y, size_t N, size_t C) {
    __shared__ double shm[32];
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *a = x + n * C, *b = y + n * C;
        double ab = 0, aa = 0, bb = 0;
        for (size_t c = threadIdx.x; c < C; c += blockDim.x) {
            double u = a[c], v = b[c];
            ab += u * v, aa += u * u, bb += v * v;
        }
        ab = block_sum(ab, shm);
        aa = block_sum(aa, shm);
        bb = block_sum(bb, shm);
        if (threadIdx.x == 0) cos[n] = (aa == 0 && bb == 0) ? 1.0 : (aa == 0 || bb == 0) ? 0.0 : ab / sqrt(aa * bb);
    }
}

adept_status row_cosine(const float *x, const float *y, size_t N, size_t C, double *host_cos) {
    ADEPT_TRY(take_pending());
    if (!N) return ADEPT_OK;
    double *d = (double *)scratch("row_cosine", N * sizeof(double));
    if (!d) return take_pending();
    row_cosine_kernel<<<grid_rows(N), kThreads>>>(d, x, y, N, C);
    ADEPT_TRY(check("row_cosine", cudaGetLastError()));
    ADEPT_TRY(check("row_cosine", cudaMemcpy(host_cos, d, N * sizeof(double), cudaMemcpyDeviceToHost)));
    mark("row_cosine", "kernel, copy to host");
    return take_pending();
}

__global__ void scale_kernel(float *x, size_t n, float f) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] *= f;
}

void scale(float *x, size_t n, float f) {
    if (!n) return;
    scale_kernel<<<grid_for(n), kThreads>>>(x, n, f);
    launched("scale");
}

} // namespace adept_cuda
