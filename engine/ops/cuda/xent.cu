/* Cross-entropy over the logits rows, fused with the softmax gradient, and the loss sum. Softmax in fp32 with
   the exponentials summed in double and the nll in double, as on the CPU. One block per row, fixed trees. */
#include <math.h>
#include <stdlib.h>

#include "common.cuh"

namespace adept_cuda {

constexpr unsigned kXentThreads = 512;

__global__ void xent_kernel(float *logits, double *nll, const int32_t *targets, size_t N, size_t V,
                            double grad_scale, int want_grad) {
    __shared__ double dshm[32];
    __shared__ float fshm[32];
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        float *x = logits + n * V;
        int32_t tg = targets[n];
        if (tg < 0) {
            if (threadIdx.x == 0) nll[n] = 0;
            if (want_grad)
                for (size_t j = threadIdx.x; j < V; j += blockDim.x) x[j] = 0.0f;
            continue;
        }
        if ((size_t)tg >= V) { /* the caller validates targets; a bad one gives NaN, never a read out of bounds, */
            if (threadIdx.x == 0) nll[n] = NAN;
            if (want_grad) /* and a NaN gradient row rather than the logits left standing as one */
                for (size_t j = threadIdx.x; j < V; j += blockDim.x) x[j] = NAN;
            continue;
        }
        float xt = x[tg]; /* read before any thread overwrites the row (block_max synchronises) */
        float mx = -INFINITY;
        for (size_t j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, x[j]);
        mx = block_max(mx, fshm);
        double sum = 0;
        for (size_t j = threadIdx.x; j < V; j += blockDim.x) sum += (double)expf(x[j] - mx);
        sum = block_sum(sum, dshm);
        if (want_grad) {
            float f = (float)(grad_scale / sum);
            for (size_t j = threadIdx.x; j < V; j += blockDim.x) x[j] = expf(x[j] - mx) * f;
            __syncthreads();
            if (threadIdx.x == 0) x[tg] -= (float)grad_scale;
        }
        if (threadIdx.x == 0) nll[n] = (double)mx + log(sum) - (double)xt;
        __syncthreads();
    }
}

void xent(float *logits, double *nll, const int32_t *targets, size_t N, size_t V, double grad_scale, int want_grad) {
    if (!N) return;
    xent_kernel<<<grid_rows(N), kXentThreads>>>(logits, nll, targets, N, V, grad_scale, want_grad);
    launched("xent");
}

/* The loss the caller reports: the rows brought to the host and added in index order, as the CPU does, so
   the CPU and the device report the same sum for the same nll values. */
adept_status nll_sum(const double *nll, const int32_t *targets, size_t N, double *host_sum) {
    ADEPT_TRY(take_pending());
    *host_sum = 0;
    if (!N) return ADEPT_OK;
    double *h = (double *)malloc(N * (sizeof(double) + sizeof(int32_t)));
    if (!h) return adept_fail(ADEPT_ENOMEM, "cuda: nll_sum: out of host memory for %zu rows", N);
    int32_t *t = (int32_t *)(h + N);
    adept_status st = check("nll_sum", cudaMemcpy(h, nll, N * sizeof(double), cudaMemcpyDeviceToHost));
    if (st == ADEPT_OK) st = check("nll_sum", cudaMemcpy(t, targets, N * sizeof(int32_t), cudaMemcpyDeviceToHost));
    mark("nll_sum", "copy to host");
    if (st == ADEPT_OK) st = take_pending();
    if (st == ADEPT_OK) {
        double s = 0;
        for (size_t i = 0; i < N; i++)
            if (t[i] >= 0) s += h[i];
        *host_sum = s;
    }
    free(h);
    return st;
}

} // namespace adept_cuda
