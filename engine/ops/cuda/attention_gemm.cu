/* Causal GQA attention through cuBLAS GEMMs, a chunk of query rows at a time: the products run on tensor cores
   (bf16 operands, fp32 accumulation) where the flash kernels of attention.cu use the CUDA cores in fp32.
   Same semantics as adept_backend.attention_forward / attention_backward (lse kept instead of P, dq/dk/dv
   accumulate, sliding window), so the two are interchangeable.

   The chunk: R query rows [i0, i0 + R) of one batch row, for every head. The heads of one kv group share its keys,
   so their rows are packed into one matrix Qc_g [grp*R, D] and each product is ONE GEMM per kv group, batched
   over the groups (strided: group g's keys start D floats after group g-1's). The keys a chunk needs are
   [klo, i0 + R): 0, or the window's first key; scores outside the causal window are masked in the softmax.
     forward   S = scale Qc K^T            [grp*R, nk] fp32     (GEMM)
               P = softmax_masked(S), lse  (kernel; P normalised, stored in the GEMM dtype)
               Y = P V                     [grp*R, D]           (GEMM), scattered to y
     backward  S, then P = exp(S - lse) masked (recomputed, as the flash kernels do)
               dP = dYc V^T                (GEMM)
               dS = P (dP - rowsum(dY Y)) scale                 (kernel)
               dV += P^T dYc,  dK += dS^T Qc,  dQc = dS K       (GEMMs; dk/dv accumulate across chunks in order)
   Memory is O(R T) per chunk (R chosen so one [H*R, T] fp32 buffer stays near 64 MiB), not O(T^2).
   Precision: in bf16 mode Q, K, V, dY (rounded once per call), P and dS are bf16 operands with fp32 accumulation,
   as FlashAttention-2 and PyTorch's SDPA do in bf16; S, dP, the softmax statistics and every output stay fp32.
   In fp32 mode the same GEMMs run in fp32 (the _PEDANTIC compute type keeps TF32 off: compute_type_for): this mode exists to check
   the chunking against the CPU at the fp32 bound (test_cuda_kernels), and ADEPT_CUDA_ATTENTION=gemm selects it for
   precision "f32". Deterministic: cuBLAS on one stream and chunks in a fixed order. */
#include <cuda_bf16.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

namespace adept_cuda {

constexpr size_t kChunkBudget = (size_t)64 << 20; /* bytes of one [H*R, T] fp32 buffer */

template <typename In> __device__ inline In to_in(float x);
template <> __device__ inline float to_in<float>(float x) { return x; }
template <> __device__ inline __nv_bfloat16 to_in<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

__device__ inline bool sees_key(size_t i, size_t j, size_t window) { return j <= i && (!window || i - j < window); }

/* packed [H][R][D] (row r of head h at (h*R + r)*D) from rows [row0, row0 + nr) of a [*, QD] tensor; zeros past nr */
template <typename In>
__global__ void pack_kernel(In *dst, const float *src, size_t row0, size_t nr, size_t R, size_t H, size_t D) {
    size_t QD = H * D, total = H * R * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t d = i % D, r = (i / D) % R, h = i / (D * R);
        dst[i] = to_in<In>(r < nr ? src[(row0 + r) * QD + h * D + d] : 0.0f);
    }
}

/* rows [row0, row0 + nr) of a [*, QD] tensor (+)= packed [H][R][D] */
__global__ void scatter_kernel(float *dst, const float *src, size_t row0, size_t nr, size_t R, size_t H, size_t D,
                               int accumulate) {
    size_t QD = H * D, total = H * nr * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t d = i % D, r = (i / D) % nr, h = i / (D * nr);
        float v = src[(h * R + r) * D + d];
        float *o = dst + (row0 + r) * QD + h * D + d;
        *o = accumulate ? *o + v : v;
    }
}

/* One block per packed row (h, r), row i = i0 + r: the masked softmax of S's row (already scaled) into P (the GEMM
   dtype), and lse[h, i] = max + log(sum). Rows past nr get P = 0. */
template <typename In>
__global__ void softmax_kernel(In *P, float *lse, const float *S, size_t nk, size_t klo, size_t i0, size_t nr,
                               size_t R, size_t T, size_t window) {
    __shared__ float shm_max[32], shm_sum[32];
    size_t row = blockIdx.x, h = row / R, r = row % R, i = i0 + r;
    const float *s = S + row * nk;
    In *p = P + row * nk;
    if (r >= nr) {
        for (size_t c = threadIdx.x; c < nk; c += blockDim.x) p[c] = to_in<In>(0.0f);
        return;
    }
    float mx = -INFINITY;
    for (size_t c = threadIdx.x; c < nk; c += blockDim.x)
        if (sees_key(i, klo + c, window)) mx = fmaxf(mx, s[c]);
    mx = block_max(mx, shm_max); /* finite: row i always sees key i, inside [klo, i0 + nr) */
    float sum = 0.0f;
    for (size_t c = threadIdx.x; c < nk; c += blockDim.x)
        if (sees_key(i, klo + c, window)) sum += expf(s[c] - mx);
    sum = block_sum(sum, shm_sum);
    float inv = 1.0f / sum;
    for (size_t c = threadIdx.x; c < nk; c += blockDim.x)
        p[c] = to_in<In>(sees_key(i, klo + c, window) ? expf(s[c] - mx) * inv : 0.0f);
    if (threadIdx.x == 0) lse[h * T + i] = mx + logf(sum);
}

/* Backward, one block per packed row: P = exp(S - lse) where visible, kept in S (fp32) and written to Pin (the GEMM
   dtype; Pin may be S itself in fp32 mode). */
template <typename In>
__global__ void probs_kernel(float *S, In *Pin, const float *lse, size_t nk, size_t klo, size_t i0, size_t nr,
                             size_t R, size_t T, size_t window) {
    size_t row = blockIdx.x, h = row / R, r = row % R, i = i0 + r;
    float l = r < nr ? lse[h * T + i] : 0.0f;
    for (size_t c = threadIdx.x; c < nk; c += blockDim.x) {
        float p = r < nr && sees_key(i, klo + c, window) ? expf(S[row * nk + c] - l) : 0.0f;
        S[row * nk + c] = p;
        Pin[row * nk + c] = to_in<In>(p);
    }
}

/* dS = P (dP - Dvec[row]) scale, into dSin (the GEMM dtype; may be dP itself in fp32 mode) */
template <typename In>
__global__ void dscores_kernel(In *dSin, const float *P, const float *dP, const float *Dvec, size_t rows, size_t nk,
                               float scale) {
    size_t total = rows * nk;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x)
        dSin[e] = to_in<In>(P[e] * (dP[e] - Dvec[e / nk]) * scale);
}

/* Dvec[h*R + r] = dY_r . Y_r over D for head h (0 past nr): one warp per packed row, lanes over d */
__global__ void rowdot_kernel(float *Dvec, const float *dy, const float *y, size_t row0, size_t nr, size_t R, size_t H,
                              size_t D) {
    size_t QD = H * D, warps = (size_t)gridDim.x * (blockDim.x >> 5);
    int lane = threadIdx.x & 31;
    for (size_t row = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5); row < H * R; row += warps) {
        size_t h = row / R, r = row % R;
        float s = 0.0f;
        if (r < nr)
            for (size_t d = lane; d < D; d += 32) s += dy[(row0 + r) * QD + h * D + d] * y[(row0 + r) * QD + h * D + d];
        s = warp_sum(s);
        if (lane == 0) Dvec[row] = s;
    }
}

/* Row-major C [M, N] = alpha op(A) op(B) + beta C, `batch` times with element strides sA, sB, sC (gemm.cu's
   operand swap for column-major cuBLAS); A, B of type t, C fp32, fp32 accumulation. */
static void bgemm(const char *op, bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const void *A,
                  size_t lda, long long sA, const void *B, size_t ldb, long long sB, float beta, float *C, size_t ldc,
                  long long sC, size_t batch, cudaDataType t) {
    if (!M || !N || !batch) return;
    if (!cublas_dims_fit(op, M, N, K, lda, ldb, ldc) || batch > INT32_MAX) return;
    record_blas(op, blas.gemm_sb_ex(g.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N,
                                    (int)M, (int)K, &alpha, B, t, (int)ldb, sB, A, t, (int)lda, sA, &beta, C,
                                    CUDA_R_32F, (int)ldc, sC, (int)batch, compute_type_for(t), CUBLAS_GEMM_DEFAULT));
    mark(op, t == CUDA_R_16BF ? "gemm bf16" : "gemm f32", 2.0 * (double)M * (double)N * (double)K * (double)batch);
}

/* Query rows per chunk: one [H*R, T] fp32 buffer near kChunkBudget, a multiple of 16 in [16, 1024], not past T. */
static size_t chunk_rows(size_t H, size_t T) {
    size_t R = kChunkBudget / (H * T * sizeof(float));
    R = R < 16 ? 16 : R > 1024 ? 1024 : R;
    R -= R % 16;
    size_t Tup = (T + 15) / 16 * 16;
    return R < Tup ? R : Tup;
}

/* Carves scratch into aligned pieces */
struct Carve {
    char *base;
    size_t at;
    template <typename X> X *take(size_t n) {
        X *p = base ? (X *)(base + at) : nullptr;
        at += (n * sizeof(X) + 255) / 256 * 256;
        return p;
    }
};

template <typename In> struct Dims {
    size_t B, T, H, KH, D, grp, QD, KD, R, window;
    float scale;
    cudaDataType t;
};

template <typename In> static Dims<In> dims(size_t B, size_t T, size_t H, size_t KH, size_t D, size_t window) {
    Dims<In> d;
    d.B = B, d.T = T, d.H = H, d.KH = KH, d.D = D, d.grp = H / KH, d.QD = H * D, d.KD = KH * D;
    d.R = chunk_rows(H, T), d.window = window >= T ? 0 : window;
    d.scale = (float)(1.0 / sqrt((double)D));
    d.t = sizeof(In) == 2 ? CUDA_R_16BF : CUDA_R_32F;
    return d;
}

/* K and V as GEMM operands: the tensors themselves in fp32; bf16 copies (rounded once per call) in bf16 mode */
template <typename In>
static void operands_kv(const char *op, const float *k, const float *v, const In **kin, const In **vin, In *kb,
                        In *vb, size_t n) {
    if (sizeof(In) == 4) {
        *kin = (const In *)k, *vin = (const In *)v;
        return;
    }
    round_to_bf16(op, (__nv_bfloat16 *)kb, k, n);
    round_to_bf16(op, (__nv_bfloat16 *)vb, v, n);
    *kin = kb, *vin = vb;
}

/* S = scale Qc K[klo:]^T for every kv group of batch row b */
template <typename In>
static void scores(const char *op, const Dims<In> &d, float *S, const In *Qc, const In *kin, size_t b, size_t klo,
                   size_t nk) {
    size_t GR = d.grp * d.R;
    bgemm(op, false, true, GR, nk, d.D, d.scale, Qc, d.D, (long long)(GR * d.D), kin + (b * d.T + klo) * d.KD, d.KD,
          (long long)d.D, 0.0f, S, nk, (long long)(GR * nk), d.KH, d.t);
}

template <typename In>
static void forward_gemm(float *y, float *lse, const float *q, const float *k, const float *v, const Dims<In> &d) {
    const char *op = "attention_forward (gemm)";
    size_t HR = d.H * d.R, GR = d.grp * d.R, nkv = d.B * d.T * d.KD, twoB = sizeof(In) == 2;
    Carve c = {nullptr, 0};
    c.take<In>(HR * d.D), c.take<float>(HR * d.T), c.take<In>(twoB ? HR * d.T : 0), c.take<float>(HR * d.D);
    c.take<In>(twoB ? nkv : 0), c.take<In>(twoB ? nkv : 0);
    c.base = (char *)scratch(op, c.at);
    if (!c.base) return;
    c.at = 0;
    In *Qc = c.take<In>(HR * d.D);
    float *S = c.take<float>(HR * d.T);
    In *Pb = c.take<In>(twoB ? HR * d.T : 0);
    float *Yc = c.take<float>(HR * d.D);
    In *kb = c.take<In>(twoB ? nkv : 0), *vb = c.take<In>(twoB ? nkv : 0);
    const In *kin, *vin;
    operands_kv(op, k, v, &kin, &vin, kb, vb, nkv);
    for (size_t b = 0; b < d.B; b++)
        for (size_t i0 = 0; i0 < d.T; i0 += d.R) {
            size_t nr = d.T - i0 < d.R ? d.T - i0 : d.R;
            size_t klo = d.window && i0 + 1 > d.window ? i0 + 1 - d.window : 0, nk = i0 + nr - klo;
            In *P = twoB ? Pb : (In *)S; /* fp32: the probabilities overwrite the scores */
            pack_kernel<In><<<grid_for(HR * d.D), kThreads>>>(Qc, q, b * d.T + i0, nr, d.R, d.H, d.D);
            launched(op, "pack");
            scores(op, d, S, Qc, kin, b, klo, nk);
            softmax_kernel<In><<<(unsigned)HR, kThreads>>>(P, lse + b * d.H * d.T, S, nk, klo, i0, nr, d.R, d.T,
                                                           d.window);
            launched(op, "softmax");
            bgemm(op, false, false, GR, d.D, nk, 1.0f, P, nk, (long long)(GR * nk), vin + (b * d.T + klo) * d.KD, d.KD,
                  (long long)d.D, 0.0f, Yc, d.D, (long long)(GR * d.D), d.KH, d.t);
            scatter_kernel<<<grid_for(d.H * nr * d.D), kThreads>>>(y, Yc, b * d.T + i0, nr, d.R, d.H, d.D, 0);
            launched(op, "scatter");
        }
}

template <typename In>
static void backward_gemm(float *dq, float *dk, float *dv, const float *dy, const float *y, const float *lse,
                          const float *q, const float *k, const float *v, const Dims<In> &d) {
    const char *op = "attention_backward (gemm)";
    size_t HR = d.H * d.R, GR = d.grp * d.R, nkv = d.B * d.T * d.KD, twoB = sizeof(In) == 2;
    Carve c = {nullptr, 0};
    c.take<In>(HR * d.D), c.take<In>(HR * d.D), c.take<float>(HR * d.T), c.take<In>(twoB ? HR * d.T : 0);
    c.take<float>(HR * d.T), c.take<In>(twoB ? HR * d.T : 0), c.take<float>(HR * d.D), c.take<float>(HR);
    c.take<In>(twoB ? nkv : 0), c.take<In>(twoB ? nkv : 0);
    c.base = (char *)scratch(op, c.at);
    if (!c.base) return;
    c.at = 0;
    In *Qc = c.take<In>(HR * d.D), *dYc = c.take<In>(HR * d.D);
    float *S = c.take<float>(HR * d.T);
    In *Pb = c.take<In>(twoB ? HR * d.T : 0);
    float *dP = c.take<float>(HR * d.T);
    In *dSb = c.take<In>(twoB ? HR * d.T : 0);
    float *dQc = c.take<float>(HR * d.D), *Dvec = c.take<float>(HR);
    In *kb = c.take<In>(twoB ? nkv : 0), *vb = c.take<In>(twoB ? nkv : 0);
    const In *kin, *vin;
    operands_kv(op, k, v, &kin, &vin, kb, vb, nkv);
    for (size_t b = 0; b < d.B; b++)
        for (size_t i0 = 0; i0 < d.T; i0 += d.R) {
            size_t nr = d.T - i0 < d.R ? d.T - i0 : d.R, row0 = b * d.T + i0;
            size_t klo = d.window && i0 + 1 > d.window ? i0 + 1 - d.window : 0, nk = i0 + nr - klo;
            In *P = twoB ? Pb : (In *)S, *dS = twoB ? dSb : (In *)dP;
            const In *kc = kin + (b * d.T + klo) * d.KD, *vc = vin + (b * d.T + klo) * d.KD;
            pack_kernel<In><<<grid_for(HR * d.D), kThreads>>>(Qc, q, row0, nr, d.R, d.H, d.D);
            pack_kernel<In><<<grid_for(HR * d.D), kThreads>>>(dYc, dy, row0, nr, d.R, d.H, d.D);
            rowdot_kernel<<<grid_for(HR * 32), kThreads>>>(Dvec, dy, y, row0, nr, d.R, d.H, d.D);
            launched(op, "pack, rowdot");
            scores(op, d, S, Qc, kin, b, klo, nk);
            probs_kernel<In><<<(unsigned)HR, kThreads>>>(S, P, lse + b * d.H * d.T, nk, klo, i0, nr, d.R, d.T,
                                                         d.window);
            launched(op, "probs");
            /* dP = dYc V^T */
            bgemm(op, false, true, GR, nk, d.D, 1.0f, dYc, d.D, (long long)(GR * d.D), vc, d.KD, (long long)d.D, 0.0f,
                  dP, nk, (long long)(GR * nk), d.KH, d.t);
            dscores_kernel<In><<<grid_for(HR * nk), kThreads>>>(dS, S, dP, Dvec, HR, nk, d.scale);
            launched(op, "dscores");
            /* dV[klo:] += P^T dYc and dK[klo:] += dS^T Qc, per kv group into its columns */
            if (dv)
                bgemm(op, true, false, nk, d.D, GR, 1.0f, P, nk, (long long)(GR * nk), dYc, d.D, (long long)(GR * d.D),
                      1.0f, dv + (b * d.T + klo) * d.KD, d.KD, (long long)d.D, d.KH, d.t);
            if (dk)
                bgemm(op, true, false, nk, d.D, GR, 1.0f, dS, nk, (long long)(GR * nk), Qc, d.D, (long long)(GR * d.D),
                      1.0f, dk + (b * d.T + klo) * d.KD, d.KD, (long long)d.D, d.KH, d.t);
            if (dq) { /* dQc = dS K[klo:], added to dq */
                bgemm(op, false, false, GR, d.D, nk, 1.0f, dS, nk, (long long)(GR * nk), kc, d.KD, (long long)d.D,
                      0.0f, dQc, d.D, (long long)(GR * d.D), d.KH, d.t);
                scatter_kernel<<<grid_for(d.H * nr * d.D), kThreads>>>(dq, dQc, row0, nr, d.R, d.H, d.D, 1);
                launched(op, "scatter");
            }
        }
}

void attention_forward_gemm(float *y, float *lse, const float *q, const float *k, const float *v, size_t B, size_t T,
                            size_t H, size_t KH, size_t D, size_t window, int bf16) {
    if (!B || !T || !H || !D || !attention_shape_ok("attention_forward (gemm)", H, KH)) return;
    if (bf16) forward_gemm(y, lse, q, k, v, dims<__nv_bfloat16>(B, T, H, KH, D, window));
    else forward_gemm(y, lse, q, k, v, dims<float>(B, T, H, KH, D, window));
}

void attention_backward_gemm(float *dq, float *dk, float *dv, const float *dy, const float *y, const float *lse,
                             const float *q, const float *k, const float *v, size_t B, size_t T, size_t H, size_t KH,
                             size_t D, size_t window, int bf16) {
    if (!B || !T || !H || !D || !(dq || dk || dv) || !attention_shape_ok("attention_backward (gemm)", H, KH)) return;
    if (bf16) backward_gemm(dq, dk, dv, dy, y, lse, q, k, v, dims<__nv_bfloat16>(B, T, H, KH, D, window));
    else backward_gemm(dq, dk, dv, dy, y, lse, q, k, v, dims<float>(B, T, H, KH, D, window));
}

void attention_forward_bf16(float *y, float *lse, const float *q, const float *k, const float *v, size_t B, size_t T,
                            size_t H, size_t KH, size_t D, size_t window) {
    attention_forward_gemm(y, lse, q, k, v, B, T, H, KH, D, window, 1);
}

void attention_backward_bf16(float *dq, float *dk, float *dv, const float *dy, const float *y, const float *lse,
                             const float *q, const float *k, const float *v, size_t B, size_t T, size_t H, size_t KH,
                             size_t D, size_t window) {
    attention_backward_gemm(dq, dk, dv, dy, y, lse, q, k, v, B, T, H, KH, D, window, 1);
}

} // namespace adept_cuda
