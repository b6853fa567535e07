/* Causal grouped-query attention on the device, flash style (adept/backend.h): no T x T buffer. The forward
   kernel keeps the output and one log-sum-exp per (row, head); the backward kernels recompute the probabilities
   tile by tile from q, k and lse (FlashAttention-2's backward: D_i = rowsum(dO O), dS = P (dP - D_i) scale).
   Layouts: q [B, T, H*D], k/v [B, T, KH*D]; head h reads kv group h / (H / KH); lse [B, H, T].
   Tiles of kTile = 32 query rows by 32 keys: the 32 keys of a tile are the 32 lanes of a warp, each of the 4 warps
   of a block owns 8 query rows (or 8 keys for dk/dv), so row reductions are warp shuffles in a fixed tree.
   Blocks: forward and dq, one per (batch, head, query tile) walking the key tiles up to its diagonal; dk/dv,
   one per (batch, kv group, key tile) walking the group's heads and the query tiles from its diagonal down, so
   every output element has a single owner that adds in a fixed order: no atomics, bitwise-repeatable runs.
   fp32 throughout (no tensor cores); expf and division stay IEEE (no fast math). K and V tiles sit in shared
   memory with rows padded to D + 1 floats, so lanes reading 32 different keys at one column hit 32 banks.
   Sliding window W (0: none): row i sees keys (i - W, i]; the walks skip the tiles wholly outside it, and inside
   a tile the mask is per (row, key), as the causal one is. A row may then see no key of a whole tile (a tile
   straddling the window's lower edge), so the online softmax guards its -inf maximum. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

namespace adept_cuda {

constexpr unsigned kAttThreads = 128; /* 4 warps (the decode kernel uses the same block) */
constexpr int kTile = 32;             /* query rows and keys per tile: one key per lane */
constexpr int kWarps = kAttThreads / 32;
constexpr int kRowsPerWarp = kTile / kWarps; /* 8 */

/* the warp's sum (shuffle tree into lane 0) given to every lane, so all lanes hold the same bits */
__device__ inline float warp_sum_all(float v) { return __shfl_sync(0xffffffffu, warp_sum(v), 0); }
__device__ inline float warp_max_all(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    return __shfl_sync(0xffffffffu, v, 0);
}

/* whether query row i sees key j: causal, and inside the window when there is one */
__device__ inline bool sees(size_t i, size_t j, size_t window) { return j <= i && (!window || i - j < window); }

/* the first key tile a query tile starting at row i0 needs: 0, or the tile holding key i0 - W + 1 */
__device__ inline size_t first_key_tile(size_t i0, size_t window) {
    if (!window || i0 + 1 <= window) return 0;
    return (i0 + 1 - window) / kTile * kTile;
}

/* tile rows [r0, r0 + n) of a [T, ld] head slice into shared rows of `stride` floats, zeros past n (columns D) */
__device__ inline void load_tile(float *dst, size_t stride, const float *src, size_t ld, size_t n, size_t D) {
    for (size_t e = threadIdx.x; e < (size_t)kTile * D; e += blockDim.x) {
        size_t r = e / D, d = e % D;
        dst[r * stride + d] = r < n ? src[r * ld + d] : 0.0f;
    }
}

/* forward: shared Q [kTile][D], O [kTile][D] (unnormalised accumulator), K [kTile][D+1], V [kTile][D],
   P [kTile][kTile] */
__global__ void flash_fwd_kernel(float *y, float *lse, const float *q, const float *k, const float *v, size_t B,
                                 size_t T, size_t H, size_t KH, size_t D, size_t window, float scale) {
    extern __shared__ float smem[];
    size_t Dp = D + 1, QD = H * D, KD = KH * D, grp = H / KH, nqt = (T + kTile - 1) / kTile;
    float *Qs = smem, *Os = Qs + kTile * D, *Ks = Os + kTile * D, *Vs = Ks + kTile * Dp, *Ps = Vs + kTile * D;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (size_t item = blockIdx.x; item < B * H * nqt; item += gridDim.x) {
        size_t qt = nqt - 1 - item % nqt, bh = item / nqt, h = bh % H, b = bh / H; /* longest tiles first */
        size_t i0 = qt * kTile, nr = T - i0 < (size_t)kTile ? T - i0 : kTile;
        const float *kh = k + b * T * KD + (h / grp) * D, *vh = v + b * T * KD + (h / grp) * D;
        __syncthreads(); /* the previous item's readers are done with the tiles */
        load_tile(Qs, D, q + (b * T + i0) * QD + h * D, QD, nr, D);
        for (size_t e = threadIdx.x; e < (size_t)kTile * D; e += blockDim.x) Os[e] = 0.0f;
        float m[kRowsPerWarp], l[kRowsPerWarp];
        for (int rr = 0; rr < kRowsPerWarp; rr++) m[rr] = -INFINITY, l[rr] = 0.0f;
        for (size_t j0 = first_key_tile(i0, window); j0 < i0 + nr; j0 += kTile) {
            size_t nc = T - j0 < (size_t)kTile ? T - j0 : kTile;
            __syncthreads(); /* K/V of the previous key tile no longer read */
            load_tile(Ks, Dp, kh + j0 * KD, KD, nc, D);
            load_tile(Vs, D, vh + j0 * KD, KD, nc, D);
            __syncthreads();
            for (int rr = 0; rr < kRowsPerWarp; rr++) {
                size_t r = (size_t)warp * kRowsPerWarp + rr;
                if (r >= nr) break; /* warp-uniform */
                size_t i = i0 + r, j = j0 + lane;
                bool vis = (size_t)lane < nc && sees(i, j, window);
                float s = -INFINITY;
                if (vis) {
                    float acc = 0.0f;
                    for (size_t d = 0; d < D; d++) acc += Qs[r * D + d] * Ks[lane * Dp + d];
                    s = acc * scale;
                }
                float m_new = fmaxf(m[rr], warp_max_all(s));
                float p = vis ? expf(s - m_new) : 0.0f;
                /* 0 on the row's first tile with a visible key (m = -inf); 1 while it has seen none (m_new = -inf:
                   only a window hides every key of a tile, and expf(-inf - -inf) would be NaN) */
                float alpha = m_new == -INFINITY ? 1.0f : expf(m[rr] - m_new);
                l[rr] = l[rr] * alpha + warp_sum_all(p);
                m[rr] = m_new;
                Ps[r * kTile + lane] = p;
                __syncwarp();
                for (size_t d = lane; d < D; d += 32) {
                    float acc = Os[r * D + d] * alpha;
                    for (size_t c = 0; c < nc; c++) acc += Ps[r * kTile + c] * Vs[c * D + d];
                    Os[r * D + d] = acc;
                }
                __syncwarp();
            }
        }
        for (int rr = 0; rr < kRowsPerWarp; rr++) {
            size_t r = (size_t)warp * kRowsPerWarp + rr;
            if (r >= nr) break;
            float inv = 1.0f / l[rr];
            float *yi = y + (b * T + i0 + r) * QD + h * D;
            for (size_t d = lane; d < D; d += 32) yi[d] = Os[r * D + d] * inv;
            if (lane == 0) lse[(b * H + h) * T + i0 + r] = m[rr] + logf(l[rr]);
        }
    }
}

/* The probability and score gradient of (row r, key lane) of a tile, shared by both backward kernels:
   p = exp(scale q_r . k_c - lse_r) where visible, ds = p (do_r . v_c - D_r) scale. Q/dO rows of D floats,
   K/V rows of Dp. */
__device__ inline void flash_pds(float *p_out, float *ds_out, const float *Qr, const float *dOr, const float *Kc,
                                 const float *Vc, size_t D, bool vis, float lse_r, float Dr, float scale) {
    float p = 0.0f, ds = 0.0f;
    if (vis) {
        float s = 0.0f, dp = 0.0f;
        for (size_t d = 0; d < D; d++) {
            s += Qr[d] * Kc[d];
            dp += dOr[d] * Vc[d];
        }
        p = expf(s * scale - lse_r);
        ds = p * (dp - Dr) * scale;
    }
    *p_out = p;
    *ds_out = ds;
}

/* D_r = dO_r . O_r over D for the warp's rows of a query tile (lanes over d, warp tree), into Dsh[r] */
__device__ inline void flash_rowdot(float *Dsh, const float *dOs, const float *y, size_t row0, size_t QD, size_t D,
                                    size_t nr) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int rr = 0; rr < kRowsPerWarp; rr++) {
        size_t r = (size_t)warp * kRowsPerWarp + rr;
        float s = 0.0f;
        if (r < nr)
            for (size_t d = lane; d < D; d += 32) s += dOs[r * D + d] * y[(row0 + r) * QD + d];
        s = warp_sum_all(s);
        if (lane == 0) Dsh[r] = s;
    }
}

/* dq: one block per (batch, head, query tile). Shared Q, dO, dQ [kTile][D], K, V [kTile][D+1], dS [kTile][kTile],
   lse and D per row. */
__global__ void flash_dq_kernel(float *dq, const float *dy, const float *y, const float *lse, const float *q,
                                const float *k, const float *v, size_t B, size_t T, size_t H, size_t KH, size_t D,
                                size_t window, float scale) {
    extern __shared__ float smem[];
    size_t Dp = D + 1, QD = H * D, KD = KH * D, grp = H / KH, nqt = (T + kTile - 1) / kTile;
    float *Qs = smem, *dOs = Qs + kTile * D, *dQs = dOs + kTile * D, *Ks = dQs + kTile * D, *Vs = Ks + kTile * Dp;
    float *dSs = Vs + kTile * Dp, *Ls = dSs + kTile * kTile, *Dsh = Ls + kTile;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (size_t item = blockIdx.x; item < B * H * nqt; item += gridDim.x) {
        size_t qt = nqt - 1 - item % nqt, bh = item / nqt, h = bh % H, b = bh / H;
        size_t i0 = qt * kTile, nr = T - i0 < (size_t)kTile ? T - i0 : kTile;
        const float *kh = k + b * T * KD + (h / grp) * D, *vh = v + b * T * KD + (h / grp) * D;
        __syncthreads();
        load_tile(Qs, D, q + (b * T + i0) * QD + h * D, QD, nr, D);
        load_tile(dOs, D, dy + (b * T + i0) * QD + h * D, QD, nr, D);
        for (size_t e = threadIdx.x; e < (size_t)kTile * D; e += blockDim.x) dQs[e] = 0.0f;
        if (threadIdx.x < (unsigned)kTile)
            Ls[threadIdx.x] = threadIdx.x < nr ? lse[(b * H + h) * T + i0 + threadIdx.x] : 0.0f;
        __syncthreads();
        flash_rowdot(Dsh, dOs, y + b * T * QD + h * D, i0, QD, D, nr);
        for (size_t j0 = first_key_tile(i0, window); j0 < i0 + nr; j0 += kTile) {
            size_t nc = T - j0 < (size_t)kTile ? T - j0 : kTile;
            __syncthreads();
            load_tile(Ks, Dp, kh + j0 * KD, KD, nc, D);
            load_tile(Vs, Dp, vh + j0 * KD, KD, nc, D);
            __syncthreads();
            for (int rr = 0; rr < kRowsPerWarp; rr++) {
                size_t r = (size_t)warp * kRowsPerWarp + rr;
                if (r >= nr) break;
                bool vis = (size_t)lane < nc && sees(i0 + r, j0 + lane, window);
                float p, ds;
                flash_pds(&p, &ds, Qs + r * D, dOs + r * D, Ks + lane * Dp, Vs + lane * Dp, D, vis, Ls[r], Dsh[r],
                          scale);
                dSs[r * kTile + lane] = ds;
                __syncwarp();
                for (size_t d = lane; d < D; d += 32) { /* dQ_r += sum_c dS[r, c] K_c, keys in order */
                    float acc = dQs[r * D + d];
                    for (size_t c = 0; c < nc; c++) acc += dSs[r * kTile + c] * Ks[c * Dp + d];
                    dQs[r * D + d] = acc;
                }
                __syncwarp();
            }
        }
        for (int rr = 0; rr < kRowsPerWarp; rr++) {
            size_t r = (size_t)warp * kRowsPerWarp + rr;
            if (r >= nr) break;
            float *dqi = dq + (b * T + i0 + r) * QD + h * D;
            for (size_t d = lane; d < D; d += 32) dqi[d] += dQs[r * D + d];
        }
    }
}

/* dk, dv: one block per (batch, kv group, key tile). Shared K, V [kTile][D+1], Q, dO [kTile][D], P and dS
   [kTile][kTile], lse and D per row. For each head of the group and each query tile from the diagonal down:
   P and dS of the tile (warps over rows, lanes over keys), then warps over keys, lanes over d:
   dV_c += sum_r P[r, c] dO_r and dK_c += sum_r dS[r, c] Q_r, rows in order, added to dv/dk per query tile. */
__global__ void flash_dkv_kernel(float *dk, float *dv, const float *dy, const float *y, const float *lse,
                                 const float *q, const float *k, const float *v, size_t B, size_t T, size_t H,
                                 size_t KH, size_t D, size_t window, float scale) {
    extern __shared__ float smem[];
    size_t Dp = D + 1, QD = H * D, KD = KH * D, grp = H / KH, nt = (T + kTile - 1) / kTile;
    float *Ks = smem, *Vs = Ks + kTile * Dp, *Qs = Vs + kTile * Dp, *dOs = Qs + kTile * D, *Ps = dOs + kTile * D;
    float *dSs = Ps + kTile * kTile, *Ls = dSs + kTile * kTile, *Dsh = Ls + kTile;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (size_t item = blockIdx.x; item < B * KH * nt; item += gridDim.x) {
        size_t kt = item % nt, bg = item / nt, g = bg % KH, b = bg / KH;
        size_t j0 = kt * kTile, nc = T - j0 < (size_t)kTile ? T - j0 : kTile;
        __syncthreads();
        load_tile(Ks, Dp, k + (b * T + j0) * KD + g * D, KD, nc, D);
        load_tile(Vs, Dp, v + (b * T + j0) * KD + g * D, KD, nc, D);
        for (size_t h = g * grp; h < (g + 1) * grp; h++)
            /* the query tiles from the diagonal down to the last row that sees the tile's last key */
            for (size_t i0 = j0; i0 < T && (!window || i0 < j0 + nc - 1 + window); i0 += kTile) {
                size_t nr = T - i0 < (size_t)kTile ? T - i0 : kTile;
                __syncthreads(); /* the previous query tile's readers are done */
                load_tile(Qs, D, q + (b * T + i0) * QD + h * D, QD, nr, D);
                load_tile(dOs, D, dy + (b * T + i0) * QD + h * D, QD, nr, D);
                if (threadIdx.x < (unsigned)kTile)
                    Ls[threadIdx.x] = threadIdx.x < nr ? lse[(b * H + h) * T + i0 + threadIdx.x] : 0.0f;
                __syncthreads();
                flash_rowdot(Dsh, dOs, y + b * T * QD + h * D, i0, QD, D, nr);
                __syncwarp();
                for (int rr = 0; rr < kRowsPerWarp; rr++) {
                    size_t r = (size_t)warp * kRowsPerWarp + rr;
                    bool vis = r < nr && (size_t)lane < nc && sees(i0 + r, j0 + lane, window);
                    float p, ds;
                    flash_pds(&p, &ds, Qs + r * D, dOs + r * D, Ks + lane * Dp, Vs + lane * Dp, D, vis, Ls[r],
                              Dsh[r], scale);
                    Ps[r * kTile + lane] = p;
                    dSs[r * kTile + lane] = ds;
                }
                __syncthreads(); /* every row's P and dS written */
                for (int cc = 0; cc < kRowsPerWarp; cc++) {
                    size_t c = (size_t)warp * kRowsPerWarp + cc;
                    if (c >= nc) break;
                    float *dkc = dk ? dk + (b * T + j0 + c) * KD + g * D : NULL;
                    float *dvc = dv ? dv + (b * T + j0 + c) * KD + g * D : NULL;
                    for (size_t d = lane; d < D; d += 32) {
                        float sk = 0.0f, sv = 0.0f;
                        for (size_t r = 0; r < nr; r++) {
                            sv += Ps[r * kTile + c] * dOs[r * D + d];
                            sk += dSs[r * kTile + c] * Qs[r * D + d];
                        }
                        if (dvc) dvc[d] += sv;
                        if (dkc) dkc[d] += sk;
                    }
                }
            }
    }
}

bool attention_shape_ok(const char *op, size_t H, size_t KH) {
    if (KH == 0 || H % KH != 0) {
        record_msg(op, ADEPT_EINVAL, "the number of heads is not a multiple of the number of kv heads");
        return false;
    }
    return true;
}

/* Opts the kernel into `bytes` of dynamic shared memory (above the default 48 KiB); false, recorded, when the
   device cannot give that much (head_dim too large for this GPU's shared memory). */
template <typename K> static bool smem_ok(const char *op, K kernel, size_t bytes, size_t D) {
    int dev = 0, max_optin = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) {
        record(op, e);
        return false;
    }
    if (bytes > (size_t)max_optin) {
        char msg[160];
        snprintf(msg, sizeof msg, "head_dim %zu needs %zu bytes of shared memory per block, the device allows %d", D,
                 bytes, max_optin);
        record_msg(op, ADEPT_EUNSUPPORTED, msg);
        return false;
    }
    if (bytes > 48 * 1024) {
        e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
        if (e != cudaSuccess) {
            record(op, e);
            return false;
        }
    }
    return true;
}

/* ADEPT_CUDA_ATTENTION=gemm runs fp32 attention through the chunked GEMMs of attention_gemm.cu instead of these
   kernels (read at every call, so a test can compare both in one process) */
static bool by_gemm(void) {
    const char *e = getenv("ADEPT_CUDA_ATTENTION");
    return e && strcmp(e, "gemm") == 0;
}

void attention_forward(float *y, float *lse, const float *q, const float *k, const float *v, size_t B, size_t T,
                       size_t H, size_t KH, size_t D, size_t window) {
    if (by_gemm()) return attention_forward_gemm(y, lse, q, k, v, B, T, H, KH, D, window, 0);
    size_t items = B * H * ((T + kTile - 1) / kTile);
    if (!items || !D || !attention_shape_ok("attention_forward", H, KH)) return;
    if (window >= T) window = 0; /* a window spanning the sequence hides nothing */
    size_t bytes = sizeof(float) * ((size_t)kTile * (3 * D + D + 1) + (size_t)kTile * kTile);
    if (!smem_ok("attention_forward", flash_fwd_kernel, bytes, D)) return;
    float scale = (float)(1.0 / sqrt((double)D));
    flash_fwd_kernel<<<grid_rows(items), kAttThreads, bytes>>>(y, lse, q, k, v, B, T, H, KH, D, window, scale);
    launched("attention_forward");
}

void attention_backward(float *dq, float *dk, float *dv, const float *dy, const float *y, const float *lse,
                        const float *q, const float *k, const float *v, size_t B, size_t T, size_t H, size_t KH,
                        size_t D, size_t window) {
    if (by_gemm()) return attention_backward_gemm(dq, dk, dv, dy, y, lse, q, k, v, B, T, H, KH, D, window, 0);
    size_t nt = (T + kTile - 1) / kTile;
    if (!B || !nt || !D || !attention_shape_ok("attention_backward", H, KH)) return;
    if (window >= T) window = 0;
    float scale = (float)(1.0 / sqrt((double)D));
    if (dk || dv) {
        size_t bytes = sizeof(float) * ((size_t)kTile * (2 * (D + 1) + 2 * D) + 2 * (size_t)kTile * kTile + 2 * kTile);
        if (!smem_ok("attention_backward (dk, dv)", flash_dkv_kernel, bytes, D)) return;
        flash_dkv_kernel<<<grid_rows(B * KH * nt), kAttThreads, bytes>>>(dk, dv, dy, y, lse, q, k, v, B, T, H, KH, D,
                                                                          window, scale);
        launched("attention_backward (dk, dv)");
    }
    if (dq) {
        size_t bytes = sizeof(float) * ((size_t)kTile * (3 * D + 2 * (D + 1)) + (size_t)kTile * kTile + 2 * kTile);
        if (!smem_ok("attention_backward (dq)", flash_dq_kernel, bytes, D)) return;
        flash_dq_kernel<<<grid_rows(B * H * nt), kAttThreads, bytes>>>(dq, dy, y, lse, q, k, v, B, T, H, KH, D,
                                                                        window, scale);
        launched("attention_backward (dq)");
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
    if (!H || !attention_shape_ok("attention_decode", H, KH)) return;
    if (!n) { /* nothing cached: the output is zero, as the CPU kernel's */
        record("attention_decode", cudaMemsetAsync(y, 0, H * D * sizeof(float), 0));
        return;
    }
    float scale = (float)(1.0 / sqrt((double)D));
    att_decode_kernel<<<grid_rows(H), kAttThreads>>>(y, att, q, k_cache, v_cache, n, ld, H, KH, D, scale);
    launched("attention_decode");
}

} // namespace adept_cuda
