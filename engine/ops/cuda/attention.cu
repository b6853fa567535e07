/* Causal grouped-query attention on the device, with the interface of adept/backend.h: the probabilities
   att [B, H, T, T] are kept for backward (O(T^2) memory, like the CPU kernel today). Issue 11 changes the
   interface to flash-style attention (online softmax, one log-sum-exp per row, backward by recompute); these
   kernels are the exact first version that the flash kernels will be checked against.
   Layouts: q [B, T, H*D], k/v [B, T, KH*D]; head h reads kv group h / (H / KH). One block per query row (or
   per key row in the dk/dv kernel); every sum runs in a fixed order, with no atomics, so runs are bitwise equal. */
#include <math.h>

#include "common.cuh"

namespace adept_cuda {

constexpr unsigned kAttThreads = 128; /* 4 warps */

/* scores, softmax and zeros above the diagonal for row (b, h, i); one warp per key j, lanes over D, so the
   key rows are read contiguously */
__global__ void att_softmax_kernel(float *att, const float *q, const float *k, size_t B, size_t T, size_t H,
                                   size_t KH, size_t D, float scale) {
    __shared__ float shm[32];
    size_t QD = H * D, KD = KH * D, grp = H / KH;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (size_t row = blockIdx.x; row < B * H * T; row += gridDim.x) {
        size_t i = row % T, bh = row / T, h = bh % H, b = bh / H;
        const float *qi = q + (b * T + i) * QD + h * D;
        const float *kb = k + b * T * KD + (h / grp) * D;
        float *a = att + row * T;
        for (size_t j = warp; j <= i; j += nw) {
            const float *kj = kb + j * KD;
            float s = 0;
            for (size_t d = lane; d < D; d += 32) s += qi[d] * kj[d];
            s = warp_sum(s);
            if (lane == 0) a[j] = s * scale;
        }
        __syncthreads();
        float mx = -INFINITY;
        for (size_t j = threadIdx.x; j <= i; j += blockDim.x) mx = fmaxf(mx, a[j]);
        mx = block_max(mx, shm);
        float sum = 0;
        for (size_t j = threadIdx.x; j <= i; j += blockDim.x) {
            float e = expf(a[j] - mx);
            a[j] = e;
            sum += e;
        }
        sum = block_sum(sum, shm);
        float inv = 1.0f / sum;
        for (size_t j = threadIdx.x; j < T; j += blockDim.x) a[j] = j <= i ? a[j] * inv : 0.0f;
        __syncthreads(); /* the next row of this block reuses shm */
    }
}

/* y[b, i, h] = sum_{j <= i} P[i, j] v[b, j, g]: threads over D, keys in order */
__global__ void att_values_kernel(float *y, const float *att, const float *v, size_t B, size_t T, size_t H,
                                  size_t KH, size_t D) {
    size_t QD = H * D, KD = KH * D, grp = H / KH;
    for (size_t row = blockIdx.x; row < B * H * T; row += gridDim.x) {
        size_t i = row % T, bh = row / T, h = bh % H, b = bh / H;
        const float *p = att + row * T, *vb = v + b * T * KD + (h / grp) * D;
        float *yi = y + (b * T + i) * QD + h * D;
        for (size_t d = threadIdx.x; d < D; d += blockDim.x) {
            float s = 0;
            for (size_t j = 0; j <= i; j++) s += p[j] * vb[j * KD + d];
            yi[d] = s;
        }
    }
}

/* datt[i, j] = P[i, j] (dP[i, j] - sum_j' P[i, j'] dP[i, j']) scale with dP = dY V^T; zeros above the diagonal */
__global__ void att_dscores_kernel(float *datt, const float *att, const float *dy, const float *v, size_t B,
                                   size_t T, size_t H, size_t KH, size_t D, float scale) {
    __shared__ float shm[32];
    size_t QD = H * D, KD = KH * D, grp = H / KH;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (size_t row = blockIdx.x; row < B * H * T; row += gridDim.x) {
        size_t i = row % T, bh = row / T, h = bh % H, b = bh / H;
        const float *dyi = dy + (b * T + i) * QD + h * D;
        const float *vb = v + b * T * KD + (h / grp) * D;
        const float *p = att + row * T;
        float *d = datt + row * T;
        for (size_t j = warp; j <= i; j += nw) {
            const float *vj = vb + j * KD;
            float s = 0;
            for (size_t e = lane; e < D; e += 32) s += dyi[e] * vj[e];
            s = warp_sum(s);
            if (lane == 0) d[j] = s;
        }
        __syncthreads();
        float dot = 0;
        for (size_t j = threadIdx.x; j <= i; j += blockDim.x) dot += p[j] * d[j];
        dot = block_sum(dot, shm);
        for (size_t j = threadIdx.x; j < T; j += blockDim.x) d[j] = j <= i ? p[j] * (d[j] - dot) * scale : 0.0f;
        __syncthreads();
    }
}

/* dq[b, i, h] += sum_{j <= i} dS[i, j] k[b, j, g] */
__global__ void att_dq_kernel(float *dq, const float *datt, const float *k, size_t B, size_t T, size_t H, size_t KH,
                              size_t D) {
    size_t QD = H * D, KD = KH * D, grp = H / KH;
    for (size_t row = blockIdx.x; row < B * H * T; row += gridDim.x) {
        size_t i = row % T, bh = row / T, h = bh % H, b = bh / H;
        const float *ds = datt + row * T, *kb = k + b * T * KD + (h / grp) * D;
        float *dqi = dq + (b * T + i) * QD + h * D;
        for (size_t d = threadIdx.x; d < D; d += blockDim.x) {
            float s = 0;
            for (size_t j = 0; j <= i; j++) s += ds[j] * kb[j * KD + d];
            dqi[d] += s;
        }
    }
}

/* key row j of group g: dk += sum_{h in g} sum_{i >= j} dS_h[i, j] q[b, i, h];
   dv += sum_{h in g} sum_{i >= j} P_h[i, j] dy[b, i, h]. Heads and queries in order. */
__global__ void att_dkv_kernel(float *dk, float *dv, const float *datt, const float *att, const float *q,
                               const float *dy, size_t B, size_t T, size_t H, size_t KH, size_t D) {
    size_t QD = H * D, KD = KH * D, grp = H / KH;
    for (size_t row = blockIdx.x; row < B * KH * T; row += gridDim.x) {
        size_t j = row % T, bg = row / T, gi = bg % KH, b = bg / KH;
        for (size_t d = threadIdx.x; d < D; d += blockDim.x) {
            float sk = 0, sv = 0;
            for (size_t h = gi * grp; h < (gi + 1) * grp; h++) {
                const float *dsh = datt + (b * H + h) * T * T, *ph = att + (b * H + h) * T * T;
                for (size_t i = j; i < T; i++) {
                    size_t qi = (b * T + i) * QD + h * D + d;
                    if (dk) sk += dsh[i * T + j] * q[qi];
                    if (dv) sv += ph[i * T + j] * dy[qi];
                }
            }
            if (dk) dk[(b * T + j) * KD + gi * D + d] += sk;
            if (dv) dv[(b * T + j) * KD + gi * D + d] += sv;
        }
    }
}

static bool shape_ok(const char *op, size_t H, size_t KH) {
    if (KH == 0 || H % KH != 0) {
        record_msg(op, ADEPT_EINVAL, "the number of heads is not a multiple of the number of kv heads");
        return false;
    }
    return true;
}

void attention_forward(float *y, float *att, const float *q, const float *k, const float *v, size_t B, size_t T,
                       size_t H, size_t KH, size_t D) {
    size_t rows = B * H * T;
    if (!rows || !shape_ok("attention_forward", H, KH)) return;
    float scale = (float)(1.0 / sqrt((double)D));
    att_softmax_kernel<<<grid_rows(rows), kAttThreads>>>(att, q, k, B, T, H, KH, D, scale);
    launched("attention_forward (softmax)");
    att_values_kernel<<<grid_rows(rows), kAttThreads>>>(y, att, v, B, T, H, KH, D);
    launched("attention_forward (values)");
}

void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dy, const float *att,
                        const float *q, const float *k, const float *v, size_t B, size_t T, size_t H, size_t KH,
                        size_t D) {
    size_t rows = B * H * T;
    if (!rows || !shape_ok("attention_backward", H, KH)) return;
    float scale = (float)(1.0 / sqrt((double)D));
    att_dscores_kernel<<<grid_rows(rows), kAttThreads>>>(datt, att, dy, v, B, T, H, KH, D, scale);
    launched("attention_backward (scores)");
    if (dq) {
        att_dq_kernel<<<grid_rows(rows), kAttThreads>>>(dq, datt, k, B, T, H, KH, D);
        launched("attention_backward (dq)");
    }
    if (dk || dv) {
        att_dkv_kernel<<<grid_rows(B * KH * T), kAttThreads>>>(dk, dv, datt, att, q, dy, B, T, H, KH, D);
        launched("attention_backward (dk, dv)");
    }
}

/* One query token against the KV cache (generation): one block per head; a warp per cached position for the
   scores, block reductions for the max and the sum, then threads over D adding the positions in order. */
__global__ void att_decode_kernel(float *y, float *att, const float *q, const float *kc, const float *vc, size_t n,
                                  size_t ld, size_t H, size_t KH, size_t D, float scale) {
    __shared__ float shm[32];
    size_t grp = H / KH;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (size_t h = blockIdx.x; h < H; h += gridDim.x) {
        const float *qh = q + h * D;
        float *a = att + h * n;
        size_t g = h / grp;
        for (size_t t = warp; t < n; t += nw) {
            const float *kt = kc + t * ld + g * D;
            float s = 0;
            for (size_t d = lane; d < D; d += 32) s += qh[d] * kt[d];
            s = warp_sum(s);
            if (lane == 0) a[t] = s * scale;
        }
        __syncthreads();
        float mx = -INFINITY;
        for (size_t t = threadIdx.x; t < n; t += blockDim.x) mx = fmaxf(mx, a[t]);
        mx = block_max(mx, shm);
        float sum = 0;
        for (size_t t = threadIdx.x; t < n; t += blockDim.x) {
            float e = expf(a[t] - mx);
            a[t] = e;
            sum += e;
        }
        sum = block_sum(sum, shm);
        __syncthreads();
        float *yh = y + h * D;
        for (size_t d = threadIdx.x; d < D; d += blockDim.x) {
            float acc = 0;
            for (size_t t = 0; t < n; t++) acc += (a[t] / sum) * vc[t * ld + g * D + d];
            yh[d] = acc;
        }
        __syncthreads(); /* the next head of this block reuses shm */
    }
}

void attention_decode(float *y, float *att, const float *q, const float *k_cache, const float *v_cache, size_t n,
                      size_t ld, size_t H, size_t KH, size_t D) {
    if (!H || !shape_ok("attention_decode", H, KH)) return;
    if (!n) { /* nothing cached: the output is zero, as the CPU kernel's */
        record("attention_decode", cudaMemsetAsync(y, 0, H * D * sizeof(float), 0));
        return;
    }
    float scale = (float)(1.0 / sqrt((double)D));
    att_decode_kernel<<<grid_rows(H), kAttThreads>>>(y, att, q, k_cache, v_cache, n, ld, H, KH, D, scale);
    launched("attention_decode");
}

} // namespace adept_cuda
