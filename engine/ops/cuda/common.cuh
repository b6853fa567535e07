/* Shared by the CUDA sources of the backend: the backend state (device, cuBLAS handle, the first pending
   error, a grow-only scratch buffer), status checks that turn CUDA and cuBLAS codes into adept_fail messages
   naming the op, launch shapes, and block reductions in a fixed order (deterministic: no atomics).
   Everything runs on the legacy default stream, so work is ordered with cudaMemcpy and scratch reuse is safe;
   the one exception is NCCL's gradient all-reduce on the side queue of comm_queue.cu, which touches only the
   gradient slab's ranges whose backward is done. */
#ifndef ADEPT_OPS_CUDA_COMMON_CUH
#define ADEPT_OPS_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "adept/backend.h"
#include "adept/cuda.h"
}

namespace adept_cuda {

/* cuBLAS, opened with dlopen when the backend starts: linking it would load ~600 MB of libraries with 400k
   relocations into every process, CPU-only runs included (measured: an empty adeptlua run went from 0.08 s and
   11 MB to 1 s and 228 MB). The CUDA runtime is linked statically and loads the driver only when first called. */
struct BlasApi {
    void *lib;
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetMathMode) set_math_mode;
    decltype(&cublasSetPointerMode_v2) set_pointer_mode;
    decltype(&cublasSetStream_v2) set_stream;
    /* spelled out: cublas_api.h overloads cublasGemmEx in C++, so decltype cannot name it */
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                              const void *, cudaDataType, int, const void *, cudaDataType, int, const void *, void *,
                              cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
    cublasStatus_t (*gemm_sb_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                                 const void *, cudaDataType, int, long long, const void *, cudaDataType, int, long long,
                                 const void *, void *, cudaDataType, int, long long, int, cublasComputeType_t,
                                 cublasGemmAlgo_t);
};
extern BlasApi blas;

struct State {
    int ready;
    int device;
    cublasHandle_t blas;
    /* the first error of a kernel that returns void, reported by the next call that returns a status */
    adept_status pending;
    char pending_msg[512];
    void *scratch;
    size_t scratch_bytes;
    int profiling; /* adept_cuda_profile_begin is on: mark() records events (profile.cu) */
};
extern State g;

/* Kernels that return void record the first failure here; later ones are dropped (they usually follow from it). */
void record(const char *op, cudaError_t e);
void record_blas(const char *op, cublasStatus_t s);
void record_msg(const char *op, adept_status st, const char *msg);
/* The pending error as a failing status (and clears it), or ADEPT_OK. Status-returning entries call it first. */
adept_status take_pending(void);
/* An immediate check: ADEPT_OK, or adept_fail naming the op and the CUDA error. */
adept_status check(const char *op, cudaError_t e);
/* The profile's event after a piece of queued work, named by its op and part (a literal), with its GEMM FLOPs
   (profile.cu); one branch while no profile runs */
void prof_mark(const char *op, const char *part, double flops);
inline void mark(const char *op, const char *part, double flops = 0.0) {
    if (g.profiling) prof_mark(op, part, flops);
}
/* after a kernel launch: its launch error recorded for op, and its profile mark */
inline void launched(const char *op, const char *part = "kernel") {
    record(op, cudaGetLastError());
    mark(op, part);
}
/* Device scratch of at least nbytes, valid until the next call of scratch (grow-only; NULL after recording). */
void *scratch(const char *op, size_t nbytes);
const char *blas_status_name(cublasStatus_t s);

/* The cuBLAS compute type of a product whose operands have type t: fp32 operands multiply in fp32 arithmetic by
   name (_PEDANTIC: no TF32 or BF16x9 emulation, whatever the handle or environment: the parity path); bf16
   operands on tensor cores with fp32 accumulation */
inline cublasComputeType_t compute_type_for(cudaDataType t) {
    return t == CUDA_R_32F ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
}

/* Grid sizes: grid-stride loops cover any n with a bounded grid. */
constexpr unsigned kThreads = 256;
inline unsigned grid_for(size_t n, unsigned threads = kThreads) {
    size_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    return b > 65535u * 8u ? 65535u * 8u : (unsigned)b;
}
inline unsigned grid_rows(size_t rows) { return rows > 65535u * 8u ? 65535u * 8u : (unsigned)(rows ? rows : 1); }

/* Sum over the block in a fixed order: a shuffle tree inside each warp, then the warps' sums by warp 0.
   Every thread gets the result. shm must hold 32 values; blockDim.x a multiple of 32. */
template <typename T> __device__ inline T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}
template <typename T> __device__ inline T block_sum(T v, T *shm) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads(); /* shm may still be read by a previous reduction */
    if (lane == 0) shm[warp] = v;
    __syncthreads();
    T r = 0;
    if (warp == 0) {
        r = lane < nw ? shm[lane] : T(0);
        r = warp_sum(r);
        if (lane == 0) shm[0] = r;
    }
    __syncthreads();
    return shm[0];
}
__device__ inline float block_max(float v, float *shm) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0) shm[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float r = lane < nw ? shm[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) r = fmaxf(r, __shfl_down_sync(0xffffffffu, r, o));
        if (lane == 0) shm[0] = r;
    }
    __syncthreads();
    return shm[0];
}

/* The table's entries, one source file per concern (gemm.cu, gemm16.cu (bf16/f16 products), layers.cu,
   attention.cu, embedding.cu, xent.cu, optim.cu); runtime.cu holds memory and builds the table. Semantics:
   adept/backend.h. */
void gemm(adept_transpose ta, adept_transpose tb, size_t M, size_t N, size_t K, float alpha, const float *A,
          size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);
void matmul_forward(float *out, const float *inp, const float *w, const float *bias, size_t N, size_t IC, size_t OC,
                    int beta_one);
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                     size_t N, size_t IC, size_t OC, int dinp_accumulate);
/* cuBLAS takes int dimensions: 1, or 0 with the failure recorded for op (gemm.cu) */
int cublas_dims_fit(const char *op, size_t M, size_t N, size_t K, size_t lda, size_t ldb, size_t ldc);
/* out[n, :] += bias over N rows of OC (gemm.cu; the w16 products add their bias after the product) */
void add_bias_rows(const char *op, float *out, const float *bias, size_t N, size_t OC);
void matmul_forward_w16(float *out, const float *inp, const void *w, adept_dtype wdt, const float *bias, size_t N,
                        size_t IC, size_t OC, int beta_one);
void matmul_backward_w16(float *dinp, const float *dout, const void *w, adept_dtype wdt, size_t N, size_t IC,
                         size_t OC, int dinp_accumulate);
void embedding_forward_w16(float *out, const int32_t *ids, const void *emb, adept_dtype wdt, size_t N, size_t C);
void matmul_forward_bf16(float *out, const float *inp, const float *w, const float *bias, size_t N, size_t IC,
                         size_t OC, int beta_one);
void matmul_backward_bf16(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                          size_t N, size_t IC, size_t OC, int dinp_accumulate);
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t N, size_t C, double eps);
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, size_t N, size_t C);
void rope_forward(float *x, const float *cos_t, const float *sin_t, size_t B, size_t T, size_t H, size_t D,
                  size_t pos0);
void rope_backward(float *dx, const float *cos_t, const float *sin_t, size_t B, size_t T, size_t H, size_t D,
                   size_t pos0);
void swiglu_forward(float *h, const float *gate, const float *up, size_t n);
void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up, size_t n);
void attention_forward(float *y, float *lse, const float *q, const float *k, const float *v, size_t B, size_t T,
                       size_t H, size_t KH, size_t D, size_t window);
void attention_backward(float *dq, float *dk, float *dv, const float *dy, const float *y, const float *lse,
                        const float *q, const float *k, const float *v, size_t B, size_t T, size_t H, size_t KH,
                        size_t D, size_t window);
void attention_decode(float *y, float *att, const float *q, const float *k_cache, const float *v_cache, size_t n,
                      size_t ld, size_t H, size_t KH, size_t D);
/* false (recorded for op) unless the heads split evenly into kv groups (attention.cu) */
bool attention_shape_ok(const char *op, size_t H, size_t KH);
/* src [n] rounded to bf16 (nearest even) into dst, queued (gemm16.cu) */
void round_to_bf16(const char *op, __nv_bfloat16 *dst, const float *src, size_t n);
/* attention through chunked cuBLAS GEMMs (attention_gemm.cu): fp32 or bf16 operands (tensor cores) */
void attention_forward_gemm(float *y, float *lse, const float *q, const float *k, const float *v, size_t B, size_t T,
                            size_t H, size_t KH, size_t D, size_t window, int bf16);
void attention_backward_gemm(float *dq, float *dk, float *dv, const float *dy, const float *y, const float *lse,
                             const float *q, const float *k, const float *v, size_t B, size_t T, size_t H, size_t KH,
                             size_t D, size_t window, int bf16);
void attention_forward_bf16(float *y, float *lse, const float *q, const float *k, const float *v, size_t B, size_t T,
                            size_t H, size_t KH, size_t D, size_t window);
void attention_backward_bf16(float *dq, float *dk, float *dv, const float *dy, const float *y, const float *lse,
                             const float *q, const float *k, const float *v, size_t B, size_t T, size_t H, size_t KH,
                             size_t D, size_t window);
/* the side queue of the overlapped gradient all-reduce (comm_queue.cu) */
void *comm_queue(void);
adept_status comm_queue_wait_main(void);
adept_status main_wait_comm_queue(void);
void embedding_forward(float *out, const int32_t *ids, const float *emb, size_t N, size_t C);
void embedding_backward(float *demb, const int32_t *ids, const float *dout, size_t N, size_t C);
void xent(float *logits, double *nll, const int32_t *targets, size_t N, size_t V, double grad_scale, int want_grad);
adept_status nll_sum(const double *nll, const int32_t *targets, size_t N, double *host_sum);
adept_status adamw(const adept_adamw_segment *host_segs, size_t n_segs, double beta1, double beta2, double eps);
adept_status row_cosine(const float *x, const float *y, size_t N, size_t C, double *host_cos);
adept_status sum_squares(const float *x, size_t n, double *host_out);
void scale(float *x, size_t n, float f);

} // namespace adept_cuda

#endif
