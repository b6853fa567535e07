/* Embedding lookup and its deterministic backward. Backward: ids repeat, so a scatter-add would need float
   atomics (order-dependent). Instead the (id, position) pairs are sorted by id with CUB's radix sort, which is
   stable, so each id's positions stay in ascending order; one block per distinct id then adds its rows in that
   order, exactly the CPU kernel's order (demb[id] += dout[n] for n ascending): the result is bitwise the CPU's. */
#include <limits.h>

#include <cub/device/device_radix_sort.cuh>

#include "common.cuh"

namespace adept_cuda {

__global__ void embedding_forward_kernel(float *out, const int32_t *ids, const float *emb, size_t N, size_t C) {
    size_t total = N * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C, c = i % C;
        out[i] = emb[(size_t)ids[n] * C + c];
    }
}

__global__ void iota_kernel(int32_t *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = (int32_t)i;
}

/* block per sorted index s; only the first index of each id's run works */
__global__ void embedding_backward_kernel(float *demb, const int32_t *keys, const int32_t *pos, const float *dout,
                                          size_t N, size_t C) {
    for (size_t s = blockIdx.x; s < N; s += gridDim.x) {
        int32_t id = keys[s];
        if (s > 0 && keys[s - 1] == id) continue;
        float *d = demb + (size_t)id * C;
        for (size_t c = threadIdx.x; c < C; c += blockDim.x) {
            float acc = d[c];
            for (size_t t = s; t < N && keys[t] == id; t++) acc += dout[(size_t)pos[t] * C + c];
            d[c] = acc;
        }
    }
}

void embedding_forward(float *out, const int32_t *ids, const float *emb, size_t N, size_t C) {
    if (!N || !C) return;
    embedding_forward_kernel<<<grid_for(N * C), kThreads>>>(out, ids, emb, N, C);
    launched("embedding_forward");
}

static size_t align256(size_t n) { return (n + 255) / 256 * 256; }

void embedding_backward(float *demb, const int32_t *ids, const float *dout, size_t N, size_t C) {
    const char *op = "embedding_backward";
    if (!N || !C) return;
    if (N > INT_MAX) {
        record_msg(op, ADEPT_EUNSUPPORTED, "more than 2^31 - 1 tokens in one call");
        return;
    }
    size_t temp_bytes = 0;
    cudaError_t e = cub::DeviceRadixSort::SortPairs(NULL, temp_bytes, ids, (int32_t *)NULL, (const int32_t *)NULL,
                                                    (int32_t *)NULL, (int)N, 0, 32, (cudaStream_t)0);
    if (e != cudaSuccess) { record(op, e); return; }
    size_t arr = align256(N * sizeof(int32_t));
    char *base = (char *)scratch(op, 3 * arr + temp_bytes);
    if (!base) return;
    int32_t *keys = (int32_t *)base, *pos_in = (int32_t *)(base + arr), *pos = (int32_t *)(base + 2 * arr);
    void *temp = base + 3 * arr;
    iota_kernel<<<grid_for(N), kThreads>>>(pos_in, N);
    launched(op);
    /* all 32 bits: CUB orders signed keys correctly; the vocabulary size is not known here */
    e = cub::DeviceRadixSort::SortPairs(temp, temp_bytes, ids, keys, pos_in, pos, (int)N, 0, 32, (cudaStream_t)0);
    if (e != cudaSuccess) { record(op, e); return; }
    launched(op);
    embedding_backward_kernel<<<grid_rows(N), kThreads>>>(demb, keys, pos, dout, N, C);
    launched(op);
}

} // namespace adept_cuda
