/* bf16/f16 products on the GPU. Frozen 16-bit weights (adept_backend.matmul_forward_w16 / matmul_backward_w16 /
   embedding_forward_w16; DESIGN.md §2.9), the device side of engine/ops/cpu/gemm16.c with the same arithmetic:
   - bf16 weights: the fp32 activations are rounded to bf16 (nearest even, as PyTorch's autocast and the CPU's
     oneDNN path do) into scratch and multiplied bf16 x bf16 by cublasGemmEx with fp32 accumulation and fp32
     output (CUBLAS_COMPUTE_32F: tensor cores; a bf16 x bf16 product is exact in fp32, so only the order of the
     fp32 sums differs from the CPU).
   - f16 weights: widened to fp32 a block of rows at a time (exact) and multiplied by the fp32 GEMM with the
     activations in fp32 (rounding activations to f16 could overflow its 65504 range); the CPU's sgemm path.
   And fp32 weights under the model's precision "bf16" (matmul_forward_bf16 / matmul_backward_bf16; the device
   side of engine/ops/cpu/gemm_bf16.c): the weight and the activations (backward: the output gradient and the
   saved input) rounded to bf16 into scratch, then the same cublasGemmEx; dW accumulates in fp32 (beta 1).
   Row-major to column-major mapping as in gemm.cu: operands swapped. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common.cuh"

namespace adept_cuda {

/* Weight rows widened per block for f16: bounded scratch (4096 x IC floats, 224 MiB at IC = 14336) */
constexpr size_t kW16BlockRows = 4096;

__global__ void round_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]); /* nearest even; NaN stays NaN */
}

__device__ inline float widen16(const uint16_t *w, size_t i, int is_f16) {
    return is_f16 ? __half2float(__ushort_as_half(w[i])) : __bfloat162float(__ushort_as_bfloat16(w[i]));
}

__global__ void widen_kernel(float *dst, const uint16_t *src, size_t n, int is_f16) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = widen16(src, i, is_f16);
}

__global__ void embedding_w16_kernel(float *out, const int32_t *ids, const uint16_t *emb, size_t N, size_t C,
                                     int is_f16) {
    size_t total = N * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C, c = i % C;
        out[i] = widen16(emb, (size_t)ids[n] * C + c, is_f16);
    }
}

void round_to_bf16(const char *op, __nv_bfloat16 *dst, const float *src, size_t n) {
    if (!n) return;
    round_bf16_kernel<<<grid_for(n), kThreads>>>(dst, src, n);
    launched(op, "round bf16");
}

/* bytes of a scratch part: 256-byte multiples keep every part aligned as cuBLAS's tensor-core kernels want */
static size_t part_bytes(size_t n) { return (n * sizeof(__nv_bfloat16) + 255) / 256 * 256; }

/* src[i] [n[i]] rounded to bf16 into dst[i], the parts of one scratch allocation (NULL where n[i] is 0);
   0 (recorded) on failure */
static int rounded_parts(const char *op, int k, const float *const *src, const size_t *n,
                         const __nv_bfloat16 **dst) {
    size_t total = 0;
    for (int i = 0; i < k; i++) total += part_bytes(n[i]);
    char *base = (char *)scratch(op, total);
    if (!base) return 0;
    for (int i = 0; i < k; i++) {
        dst[i] = NULL;
        if (!n[i]) continue;
        __nv_bfloat16 *b = (__nv_bfloat16 *)base;
        round_to_bf16(op, b, src[i], n[i]);
        dst[i] = b;
        base += part_bytes(n[i]);
    }
    return 1;
}

/* x [n] rounded to bf16 in scratch; NULL (recorded) on failure */
static const __nv_bfloat16 *rounded(const char *op, const float *x, size_t n) {
    const __nv_bfloat16 *b;
    return rounded_parts(op, 1, &x, &n, &b) ? b : NULL;
}

/* rows [o0, o0 + rows) of the f16 weight w [*, IC] widened to fp32 in scratch; NULL (recorded) on failure */
static const float *widened_rows(const char *op, const void *w, size_t o0, size_t rows, size_t IC) {
    float *blk = (float *)scratch(op, rows * IC * sizeof(float));
    if (!blk) return NULL;
    widen_kernel<<<grid_for(rows * IC), kThreads>>>(blk, (const uint16_t *)w + o0 * IC, rows * IC, 1);
    launched(op, "widen f16");
    return blk;
}

/* row-major C [M, Nc] = alpha op(A) op(B) + beta C with A, B bf16 and C fp32 */
static void gemm_bf16(const char *op, adept_transpose ta, adept_transpose tb, size_t M, size_t Nc, size_t K,
                      const __nv_bfloat16 *A, size_t lda, const __nv_bfloat16 *B, size_t ldb, float beta, float *C,
                      size_t ldc) {
    if (!cublas_dims_fit(op, M, Nc, K, lda, ldb, ldc)) return;
    float alpha = 1.0f;
    cublasOperation_t opa = ta == ADEPT_TRANS ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = tb == ADEPT_TRANS ? CUBLAS_OP_T : CUBLAS_OP_N;
    record_blas(op, blas.gemm_ex(g.blas, opb, opa, (int)Nc, (int)M, (int)K, &alpha, B, CUDA_R_16BF, (int)ldb, A,
                                 CUDA_R_16BF, (int)lda, &beta, C, CUDA_R_32F, (int)ldc, compute_type_for(CUDA_R_16BF),
                                 CUBLAS_GEMM_DEFAULT));
    mark(op, "gemm bf16", 2.0 * (double)M * (double)Nc * (double)K);
}

void matmul_forward_w16(float *out, const float *inp, const void *w, adept_dtype wdt, const float *bias, size_t N,
                        size_t IC, size_t OC, int beta_one) {
    const char *op = "matmul_forward_w16";
    if (N == 0 || OC == 0) return;
    float beta = beta_one ? 1.0f : 0.0f;
    if (IC == 0) {
        if (!beta_one) record(op, cudaMemsetAsync(out, 0, N * OC * sizeof(float), 0));
    } else if (wdt == ADEPT_BF16) {
        /* out [N, OC] (+)= bf16(inp) [N, IC] @ w [OC, IC]^T */
        const __nv_bfloat16 *x = rounded(op, inp, N * IC);
        if (x) gemm_bf16(op, ADEPT_NO_TRANS, ADEPT_TRANS, N, OC, IC, x, IC, (const __nv_bfloat16 *)w, IC, beta, out, OC);
    } else {
        /* f16: rows [o0, o0 + rows) of w widened, out[:, o0 : o0 + rows] (+)= inp @ block^T */
        for (size_t o0 = 0; o0 < OC; o0 += kW16BlockRows) {
            size_t rows = OC - o0 < kW16BlockRows ? OC - o0 : kW16BlockRows;
            const float *blk = widened_rows(op, w, o0, rows, IC);
            if (!blk) return;
            gemm(ADEPT_NO_TRANS, ADEPT_TRANS, N, rows, IC, 1.0f, inp, IC, blk, IC, beta, out + o0, OC);
        }
    }
    if (bias) add_bias_rows(op, out, bias, N, OC); /* after the product, as the CPU's w16 path adds it */
}

void matmul_backward_w16(float *dinp, const float *dout, const void *w, adept_dtype wdt, size_t N, size_t IC,
                         size_t OC, int dinp_accumulate) {
    const char *op = "matmul_backward_w16";
    if (!dinp || N == 0 || IC == 0) return;
    if (OC == 0) {
        if (!dinp_accumulate) record(op, cudaMemsetAsync(dinp, 0, N * IC * sizeof(float), 0));
        return;
    }
    if (wdt == ADEPT_BF16) {
        /* dinp [N, IC] (+)= bf16(dout) [N, OC] @ w [OC, IC] */
        const __nv_bfloat16 *d = rounded(op, dout, N * OC);
        if (d)
            gemm_bf16(op, ADEPT_NO_TRANS, ADEPT_NO_TRANS, N, IC, OC, d, OC, (const __nv_bfloat16 *)w, IC,
                      dinp_accumulate ? 1.0f : 0.0f, dinp, IC);
        return;
    }
    /* f16: the sum over OC in blocks of widened rows, each added to dinp after the first */
    for (size_t o0 = 0; o0 < OC; o0 += kW16BlockRows) {
        size_t rows = OC - o0 < kW16BlockRows ? OC - o0 : kW16BlockRows;
        const float *blk = widened_rows(op, w, o0, rows, IC);
        if (!blk) return;
        float beta = o0 > 0 || dinp_accumulate ? 1.0f : 0.0f;
        gemm(ADEPT_NO_TRANS, ADEPT_NO_TRANS, N, IC, rows, 1.0f, dout + o0, OC, blk, IC, beta, dinp, IC);
    }
}

/* ---- bf16 products of fp32 weights (the model's precision "bf16"): both operands rounded per product ---- */

void matmul_forward_bf16(float *out, const float *inp, const float *w, const float *bias, size_t N, size_t IC,
                         size_t OC, int beta_one) {
    const char *op = "matmul_forward_bf16";
    if (N == 0 || OC == 0 || IC == 0) { /* no product: the bias and the zero fill of the fp32 entry */
        matmul_forward(out, inp, w, bias, N, IC, OC, beta_one);
        return;
    }
    const float *src[2] = {inp, w};
    size_t n[2] = {N * IC, OC * IC};
    const __nv_bfloat16 *b[2];
    if (!rounded_parts(op, 2, src, n, b)) return;
    /* out [N, OC] (+)= bf16(inp) [N, IC] @ bf16(w) [OC, IC]^T */
    gemm_bf16(op, ADEPT_NO_TRANS, ADEPT_TRANS, N, OC, IC, b[0], IC, b[1], IC, beta_one ? 1.0f : 0.0f, out, OC);
    if (bias) add_bias_rows(op, out, bias, N, OC);
}

void matmul_backward_bf16(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                          size_t N, size_t IC, size_t OC, int dinp_accumulate) {
    const char *op = "matmul_backward_bf16";
    if (N == 0 || IC == 0 || OC == 0 || (!dinp && !dw)) { /* no product to round */
        matmul_backward(dinp, dw, dbias, dout, inp, w, N, IC, OC, dinp_accumulate);
        return;
    }
    /* dout once for both products; w only for dinp, inp only for dw */
    const float *src[3] = {dout, w, inp};
    size_t n[3] = {N * OC, dinp ? OC * IC : 0, dw ? N * IC : 0};
    const __nv_bfloat16 *b[3];
    if (!rounded_parts(op, 3, src, n, b)) return;
    if (dinp) /* dinp [N, IC] (+)= bf16(dout) [N, OC] @ bf16(w) [OC, IC] */
        gemm_bf16(op, ADEPT_NO_TRANS, ADEPT_NO_TRANS, N, IC, OC, b[0], OC, b[1], IC, dinp_accumulate ? 1.0f : 0.0f,
                  dinp, IC);
    if (dw) /* dw [OC, IC] += bf16(dout)^T @ bf16(inp), fp32 into the fp32 gradient */
        gemm_bf16(op, ADEPT_TRANS, ADEPT_NO_TRANS, OC, IC, N, b[0], OC, b[2], IC, 1.0f, dw, IC);
    /* the bias gradient sums the fp32 output gradient (adept/backend.h) */
    if (dbias) matmul_backward(NULL, NULL, dbias, dout, NULL, NULL, N, IC, OC, 1);
}

void embedding_forward_w16(float *out, const int32_t *ids, const void *emb, adept_dtype wdt, size_t N, size_t C) {
    if (N == 0 || C == 0) return;
    embedding_w16_kernel<<<grid_for(N * C), kThreads>>>(out, ids, (const uint16_t *)emb, N, C, wdt == ADEPT_F16);
    launched("embedding_forward_w16");
}

} // namespace adept_cuda
