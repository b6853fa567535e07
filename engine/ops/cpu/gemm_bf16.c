/* bf16 products of fp32 weights on the CPU (adept_backend.matmul_forward_bf16 / matmul_backward_bf16; the
   model's precision "bf16", docs/model.md "Precision"). The operands are rounded to bf16 (nearest even, what
   PyTorch's autocast does) and kept as fp32 values, then multiplied by the fp32 layer kernels (OpenBLAS sgemm).
   A product of two bf16 values is exact in fp32, so this is the bf16 x bf16 -> fp32 GEMM with fp32
   accumulation, reproducible for a fixed thread count like the fp32 path; the CPU is the reference the fake
   device and the CUDA tests compare against.
   Why not oneDNN (gemm16.c): its cached primitives take a bf16 weight as stored, so a trainable weight would
   be rounded into a second 16-bit copy per product anyway, and dW = dout^T @ inp needs a transposed source it
   does not take; the rounding here costs O(size of the operands) against the GEMM's O(N * IC * OC). */
#include <omp.h>
#include <stdlib.h>

#include "adept/backend.h"
#include "ops/cpu/cpu.h"
#include "ops/cpu/layers.h"

/* dst [n] = src rounded to bf16 and widened back (exact) */
static void round_into(float *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > ADEPT_CPU_PAR_MIN && !omp_in_parallel())
    for (size_t i = 0; i < n; i++) dst[i] = adept_cpu_round_bf16(src[i]);
}

/* Without memory for the rounded copies: C [M, Nc] (+)= sum_k bf16(A(m, k)) bf16(B(k, n)) element by element,
   A(m, k) = A[m * am + k * ak], B(k, n) = B[k * bk + n * bn], fp32 sums in k order (slow, never wrong). */
static void product_naive(float *C, const float *A, size_t am, size_t ak, const float *B, size_t bk, size_t bn,
                          size_t M, size_t Nc, size_t K, int accumulate) {
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < Nc; n++) {
            float s = 0;
            for (size_t k = 0; k < K; k++)
                s += adept_cpu_round_bf16(A[m * am + k * ak]) * adept_cpu_round_bf16(B[k * bk + n * bn]);
            C[m * Nc + n] = accumulate ? C[m * Nc + n] + s : s;
        }
}

void adept_cpu_matmul_forward_bf16(float *out, const float *inp, const float *w, const float *bias, size_t N,
                                   size_t IC, size_t OC, int beta_one) {
    if (N == 0 || OC == 0 || IC == 0) { /* no product: the bias and the zero fill as the fp32 kernel does them */
        adept_matmul_forward(out, inp, w, bias, N, IC, OC, beta_one);
        return;
    }
    float *x = malloc((N * IC + OC * IC) * sizeof(float));
    if (!x) {
        product_naive(out, inp, IC, 1, w, 1, IC, N, OC, IC, beta_one);
        if (bias)
            for (size_t n = 0; n < N; n++)
                for (size_t j = 0; j < OC; j++) out[n * OC + j] += bias[j];
        return;
    }
    float *wr = x + N * IC;
    round_into(x, inp, N * IC);
    round_into(wr, w, OC * IC);
    adept_matmul_forward(out, x, wr, bias, N, IC, OC, beta_one);
    free(x);
}

void adept_cpu_matmul_backward_bf16(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                                    const float *w, size_t N, size_t IC, size_t OC, int dinp_accumulate) {
    if (N == 0 || IC == 0 || OC == 0 || (!dinp && !dw)) { /* no product to round */
        adept_matmul_backward_beta(dinp, dw, dbias, dout, inp, w, N, IC, OC, dinp_accumulate);
        return;
    }
    size_t nd = N * OC, nw = dinp ? OC * IC : 0, nx = dw ? N * IC : 0;
    float *d = malloc((nd + nw + nx) * sizeof(float));
    if (d) {
        float *wr = d + nd, *x = wr + nw;
        round_into(d, dout, nd);
        if (dinp) round_into(wr, w, nw);
        if (dw) round_into(x, inp, nx);
        adept_matmul_backward_beta(dinp, dw, NULL, d, dw ? x : NULL, dinp ? wr : NULL, N, IC, OC, dinp_accumulate);
        free(d);
    } else {
        if (dinp) product_naive(dinp, dout, OC, 1, w, IC, 1, N, IC, OC, dinp_accumulate);
        if (dw) product_naive(dw, dout, 1, OC, inp, IC, 1, OC, IC, N, 1);
    }
    /* the bias gradient is a sum of the fp32 output gradient, not a product (adept/backend.h) */
    if (dbias) adept_matmul_backward_beta(NULL, NULL, dbias, dout, NULL, NULL, N, IC, OC, 1);
}
