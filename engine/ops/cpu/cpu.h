/* Private to the CPU backend: the kernel entry points its dispatch table (backend.c) points at.
   Arguments arrive validated by engine/ops/dispatch.c; tensors are contiguous CPU tensors. */
#ifndef ADEPT_OPS_CPU_H
#define ADEPT_OPS_CPU_H

#include <stdint.h>
#include <string.h>

#include "adept/ops.h"

/* Below this many elements a loop runs on the calling thread: spawning a team costs more than it saves. */
#define ADEPT_CPU_PAR_MIN 32768
/* Reductions sum fixed chunks of this many elements, then combine the chunk results in index order, so the
   result is the same for any thread count. */
#define ADEPT_CPU_CHUNK 4096

adept_status adept_cpu_unary(adept_unary_op op, const adept_tensor *a, adept_tensor *out);
adept_status adept_cpu_binary(adept_binary_op op, const adept_tensor *a, const adept_tensor *b, adept_tensor *out);
adept_status adept_cpu_scalar(adept_binary_op op, const adept_tensor *a, double s, adept_tensor *out);
adept_status adept_cpu_copy(const adept_tensor *src, adept_tensor *dst);
adept_status adept_cpu_scale_rows(const adept_tensor *a, const adept_tensor *w, adept_tensor *out);
adept_status adept_cpu_reduce(adept_reduce_op op, const adept_tensor *a, double *out);
adept_status adept_cpu_reduce_dim(adept_reduce_op op, const adept_tensor *a, int dim, adept_tensor *out);
adept_status adept_cpu_dot3(const adept_tensor *a, const adept_tensor *b, double out[3]);
adept_status adept_cpu_topk(const adept_tensor *a, size_t k, adept_tensor *values, int64_t *indices);

/* adept_f32_to_bf16 (nearest even, NaN kept quiet), inlined for the loops that round whole operands (gemm16.c,
   gemm_bf16.c): a call per element was 5% of a bf16 forward */
static inline uint16_t adept_cpu_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
/* x rounded to bf16 and widened back (exact): an operand as a bf16 GEMM multiplies it */
static inline float adept_cpu_round_bf16(float x) {
    uint32_t u = (uint32_t)adept_cpu_to_bf16(x) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Frozen 16-bit weights (gemm16.c; adept_backend.*_w16) */
void adept_cpu_matmul_forward_w16(float *out, const float *inp, const void *w, adept_dtype wdt, const float *bias,
                                  size_t N, size_t IC, size_t OC, int beta_one);
void adept_cpu_matmul_backward_w16(float *dinp, const float *dout, const void *w, adept_dtype wdt, size_t N,
                                   size_t IC, size_t OC, int dinp_accumulate);
void adept_cpu_embedding_forward_w16(float *out, const int32_t *ids, const void *emb, adept_dtype wdt, size_t N,
                                     size_t C);
/* bf16 products of fp32 weights (gemm_bf16.c; adept_backend.*_bf16, the model's precision "bf16") */
void adept_cpu_matmul_forward_bf16(float *out, const float *inp, const float *w, const float *bias, size_t N,
                                   size_t IC, size_t OC, int beta_one);
void adept_cpu_matmul_backward_bf16(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                                    const float *w, size_t N, size_t IC, size_t OC, int dinp_accumulate);
/* 1 when products with weights of dtype dt run on oneDNN's native bf16 kernels here (0: widened for sgemm) */
int adept_cpu_w16_native(adept_dtype dt);

#endif
