/* GEMM through cuBLAS and the matmul layer built on it. cuBLAS is column-major: a row-major C [M, N] is the
   column-major C^T [N, M], and C^T = op(B)^T op(A)^T, so a row-major call maps to cuBLAS with the operands
   swapped (B first), M and N swapped, and the same transpose flags and leading dimensions. */
#include <limits.h>
#include <stdio.h>

#include "common.cuh"

namespace adept_cuda {

/* C = beta * C over an M x N row-major block with leading dimension ldc (K = 0: no product to add) */
__global__ void scale_block_kernel(float *C, size_t M, size_t N, size_t ldc, float beta) {
    size_t total = M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / N, c = i % N;
        float *p = C + r * ldc + c;
        *p = beta == 0.0f ? 0.0f : beta * *p; /* beta 0 overwrites, as BLAS does (NaN in C does not survive) */
    }
}

int cublas_dims_fit(const char *op, size_t M, size_t N, size_t K, size_t lda, size_t ldb, size_t ldc) {
    if (M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX) return 1;
    char msg[160];
    snprintf(msg, sizeof msg, "dimensions %zu x %zu x %zu exceed cuBLAS's 32-bit int", M, N, K);
    record_msg(op, ADEPT_EUNSUPPORTED, msg);
    return 0;
}

static void gemm_named(const char *op, adept_transpose ta, adept_transpose tb, size_t M, size_t N, size_t K,
                       float alpha, const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                       size_t ldc) {
    if (M == 0 || N == 0) return;
    if (!cublas_dims_fit(op, M, N, K, lda, ldb, ldc)) return;
    if (K == 0) {
        if (beta != 1.0f) {
            scale_block_kernel<<<grid_for(M * N), kThreads>>>(C, M, N, ldc, beta);
            launched(op);
        }
        return;
    }
    cublasOperation_t opa = ta == ADEPT_TRANS ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = tb == ADEPT_TRANS ? CUBLAS_OP_T : CUBLAS_OP_N;
    /* fp32 arithmetic by name (compute_type_for: no TF32, no emulation, whatever the environment) */
    record_blas(op, blas.gemm_ex(g.blas, opb, opa, (int)N, (int)M, (int)K, &alpha, B, CUDA_R_32F, (int)ldb, A,
                                 CUDA_R_32F, (int)lda, &beta, C, CUDA_R_32F, (int)ldc, compute_type_for(CUDA_R_32F),
                                 CUBLAS_GEMM_DEFAULT));
    mark(op, "gemm f32", 2.0 * (double)M * (double)N * (double)K);
}

void gemm(adept_transpose ta, adept_transpose tb, size_t M, size_t N, size_t K, float alpha, const float *A,
          size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    gemm_named("gemm", ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* out[n, :] = bias (+ out[n, :] when beta_one) */
__global__ void bias_rows_kernel(float *out, const float *bias, size_t N, size_t OC, int beta_one) {
    size_t total = N * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float b = bias[i % OC];
        out[i] = beta_one ? out[i] + b : b;
    }
}

/* dbias[j] += sum over rows of dout[:, j], each column by one thread in row order (deterministic) */
__global__ void bias_grad_kernel(float *dbias, const float *dout, size_t N, size_t OC) {
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < OC; j += (size_t)gridDim.x * blockDim.x) {
        float s = 0;
        for (size_t n = 0; n < N; n++) s += dout[n * OC + j];
        dbias[j] += s;
    }
}

void add_bias_rows(const char *op, float *out, const float *bias, size_t N, size_t OC) {
    if (N == 0 || OC == 0) return;
    bias_rows_kernel<<<grid_for(N * OC), kThreads>>>(out, bias, N, OC, 1);
    launched(op);
}

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, size_t N, size_t IC, size_t OC,
                    int beta_one) {
    float beta = beta_one ? 1.0f : 0.0f;
    if (bias && N && OC) {
        bias_rows_kernel<<<grid_for(N * OC), kThreads>>>(out, bias, N, OC, beta_one);
        launched("matmul_forward (bias)");
        beta = 1.0f;
    }
    if (N == 0 || OC == 0) return;
    if (IC == 0) {
        if (!bias && !beta_one) record("matmul_forward", cudaMemsetAsync(out, 0, N * OC * sizeof(float), 0));
        return;
    }
    /* out [N, OC] = inp [N, IC] @ w[OC, IC]^T */
    gemm_named("matmul_forward", ADEPT_NO_TRANS, ADEPT_TRANS, N, OC, IC, 1.0f, inp, IC, w, IC, beta, out, OC);
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                     size_t N, size_t IC, size_t OC, int dinp_accumulate) {
    if (N == 0 || IC == 0) return;
    if (OC == 0) {
        if (dinp && !dinp_accumulate)
            record("matmul_backward", cudaMemsetAsync(dinp, 0, N * IC * sizeof(float), 0));
        return;
    }
    if (dinp) /* dinp [N, IC] (+)= dout [N, OC] @ w [OC, IC] */
        gemm_named("matmul_backward (dinp)", ADEPT_NO_TRANS, ADEPT_NO_TRANS, N, IC, OC, 1.0f, dout, OC, w, IC,
                   dinp_accumulate ? 1.0f : 0.0f, dinp, IC);
    if (dw) /* dw [OC, IC] += dout^T @ inp */
        gemm_named("matmul_backward (dw)", ADEPT_TRANS, ADEPT_NO_TRANS, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw,
                   IC);
    if (dbias) {
        bias_grad_kernel<<<grid_for(OC), kThreads>>>(dbias, dout, N, OC);
        launched("matmul_backward (dbias)");
    }
}

} // namespace adept_cuda
