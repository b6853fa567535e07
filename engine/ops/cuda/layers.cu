/* RMSNorm, RoPE and SwiGLU on the device. The arithmetic follows the CPU kernels (engine/model/layers_impl.inc)
   operation for operation where it matters (statistics in double, the same product order), so the fp32 paths
   agree to rounding; reductions use fixed trees and fixed row chunks, never atomics, so runs are bitwise equal. */
#include "common.cuh"

namespace adept_cuda {

/* ---- RMSNorm ---- */

/* one block per row: ss in double, a fixed reduction tree */
__global__ void rmsnorm_forward_kernel(float *out, float *rstd, const float *inp, const float *w, size_t N, size_t C,
                                       double eps) {
    __shared__ double shm[32];
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = inp + n * C;
        double ss = 0;
        for (size_t i = threadIdx.x; i < C; i += blockDim.x) ss += (double)x[i] * x[i];
        ss = block_sum(ss, shm);
        float r = (float)(1.0 / sqrt(ss / (double)C + eps));
        float *o = out + n * C;
        for (size_t i = threadIdx.x; i < C; i += blockDim.x) o[i] = x[i] * r * w[i];
        if (threadIdx.x == 0) rstd[n] = r;
    }
}

__global__ void rmsnorm_dinp_kernel(float *dinp, const float *dout, const float *inp, const float *w,
                                    const float *rstd, size_t N, size_t C) {
    __shared__ double shm[32];
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = inp + n * C, *dy = dout + n * C;
        float r = rstd[n];
        double dot = 0; /* sum_j dy_j w_j x_j */
        for (size_t i = threadIdx.x; i < C; i += blockDim.x) dot += (double)dy[i] * w[i] * x[i];
        dot = block_sum(dot, shm);
        float k = (float)(dot * (double)r * r * r / (double)C);
        float *dx = dinp + n * C;
        for (size_t i = threadIdx.x; i < C; i += blockDim.x) dx[i] += r * w[i] * dy[i] - x[i] * k;
    }
}

/* dw: rows in fixed chunks of kRowChunk; each thread sums one column of one chunk in row order into
   part[chunk, i]; a second kernel adds the chunks in order. The split depends only on N, not on the GPU. */
constexpr size_t kRowChunk = 64;

__global__ void rmsnorm_dw_partial_kernel(float *part, const float *dout, const float *inp, const float *rstd,
                                          size_t N, size_t C) {
    size_t chunk = blockIdx.y;
    size_t n0 = chunk * kRowChunk, n1 = n0 + kRowChunk < N ? n0 + kRowChunk : N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < C; i += (size_t)gridDim.x * blockDim.x) {
        float s = 0;
        for (size_t n = n0; n < n1; n++) s += dout[n * C + i] * inp[n * C + i] * rstd[n];
        part[chunk * C + i] = s;
    }
}

__global__ void rmsnorm_dw_sum_kernel(float *dw, const float *part, size_t n_chunks, size_t C) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < C; i += (size_t)gridDim.x * blockDim.x) {
        float s = 0;
        for (size_t c = 0; c < n_chunks; c++) s += part[c * C + i];
        dw[i] += s;
    }
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t N, size_t C, double eps) {
    if (!N) return;
    rmsnorm_forward_kernel<<<grid_rows(N), kThreads>>>(out, rstd, inp, w, N, C, eps);
    launched("rmsnorm_forward");
}

void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, size_t N, size_t C) {
    if (!N || !C) return;
    if (dinp) {
        rmsnorm_dinp_kernel<<<grid_rows(N), kThreads>>>(dinp, dout, inp, w, rstd, N, C);
        launched("rmsnorm_backward (dinp)");
    }
    if (dw) {
        size_t n_chunks = (N + kRowChunk - 1) / kRowChunk;
        if (n_chunks > 65535) { /* gridDim.y bound: N > 4M rows in one call */
            record_msg("rmsnorm_backward (dw)", ADEPT_EUNSUPPORTED, "more than 4194240 rows in one call");
            return;
        }
        float *part = (float *)scratch("rmsnorm_backward (dw)", n_chunks * C * sizeof(float));
        if (!part) return;
        dim3 grid((unsigned)((C + kThreads - 1) / kThreads), (unsigned)n_chunks);
        rmsnorm_dw_partial_kernel<<<grid, kThreads>>>(part, dout, inp, rstd, N, C);
        launched("rmsnorm_backward (dw partial)");
        rmsnorm_dw_sum_kernel<<<grid_for(C), kThreads>>>(dw, part, n_chunks, C);
        launched("rmsnorm_backward (dw)");
    }
}

/* ---- RoPE, rotate_half convention: pairs (i, i + D/2); one thread per pair ---- */

template <int Dir>
__global__ void rope_kernel(float *x, const float *cos_t, const float *sin_t, size_t B, size_t T, size_t H,
                            size_t D, size_t pos0) {
    size_t half = D / 2, total = B * T * H * half;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t i = idx % half, row = idx / half; /* row = (b * T + t) * H + h */
        size_t t = (row / H) % T;
        const float c = cos_t[(pos0 + t) * half + i], s = sin_t[(pos0 + t) * half + i];
        float *v = x + row * D;
        float a = v[i], bb = v[i + half];
        if (Dir > 0) {
            v[i] = a * c - bb * s;
            v[i + half] = bb * c + a * s;
        } else {
            v[i] = a * c + bb * s;
            v[i + half] = bb * c - a * s;
        }
    }
}

void rope_forward(float *x, const float *cos_t, const float *sin_t, size_t B, size_t T, size_t H, size_t D,
                  size_t pos0) {
    size_t total = B * T * H * (D / 2);
    if (!total) return;
    rope_kernel<1><<<grid_for(total), kThreads>>>(x, cos_t, sin_t, B, T, H, D, pos0);
    launched("rope_forward");
}

void rope_backward(float *dx, const float *cos_t, const float *sin_t, size_t B, size_t T, size_t H, size_t D,
                   size_t pos0) {
    size_t total = B * T * H * (D / 2);
    if (!total) return;
    rope_kernel<-1><<<grid_for(total), kThreads>>>(dx, cos_t, sin_t, B, T, H, D, pos0);
    launched("rope_backward");
}

/* ---- SwiGLU (IEEE expf: no fast math) ---- */

__global__ void swiglu_forward_kernel(float *h, const float *gate, const float *up, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        h[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

__global__ void swiglu_backward_kernel(float *dgate, float *dup, const float *dh, const float *gate, const float *up,
                                       size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i], s = 1.0f / (1.0f + expf(-g));
        float d = dh[i];
        dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] = d * g * s;
    }
}

void swiglu_forward(float *h, const float *gate, const float *up, size_t n) {
    if (!n) return;
    swiglu_forward_kernel<<<grid_for(n), kThreads>>>(h, gate, up, n);
    launched("swiglu_forward");
}

void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up, size_t n) {
    if (!n) return;
    swiglu_backward_kernel<<<grid_for(n), kThreads>>>(dgate, dup, dh, gate, up, n);
    launched("swiglu_backward");
}

} // namespace adept_cuda
