/* The compute backend of a device, one table per device: memory (allocation, host<->device copies), every kernel
   the model, the optimizer and the trainer run, and the tensor ops of the Lua API. engine/model/ and engine/train/ call only this table, so a new device
   (CUDA) is a new table, with no change above it (DESIGN.md §2.8). The CPU table (engine/ops/cpu/) is the
   reference; a test table (tests/unit) wraps it with protected "device" memory to prove the model never
   touches device memory from the host.
   Conventions shared by every backend:
   - Pointers to float/int32 data are DEVICE pointers of this backend unless named host_*.
   - Rows are tokens (N = B*T); weights are HF [out, in]; every d<input>/d<weight> argument ACCUMULATES (+=)
     and may be NULL when not needed; outputs are overwritten (exceptions are named).
   - Kernels are deterministic: the same inputs and thread count give bitwise the same outputs.
   - A kernel that can fail (allocation, a launch) returns adept_status with a message naming the op. */
#ifndef ADEPT_BACKEND_H
#define ADEPT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"
#include "adept/ops.h"
#include "adept/tensor.h"

/* One contiguous range of the AdamW update: value, gradient and the two moments, with its own scalars
   (the per-row LR scale and bias corrections folded in by the optimizer). Pointers are device pointers. */
typedef struct adept_adamw_segment {
    float *p;
    const float *g;
    float *m, *v;
    size_t n;
    float shrink;   /* 1 - lr_u * weight_decay (1 when the row has no decay) */
    float neg_step; /* -lr_u / (1 - beta1^t) */
    float bc2_sqrt; /* sqrt(1 - beta2^t) */
} adept_adamw_segment;

typedef enum adept_transpose { ADEPT_NO_TRANS = 0, ADEPT_TRANS = 1 } adept_transpose;

typedef struct adept_backend {
    const char *name;     /* "cpu", "cuda", "test-device" */
    adept_device device;

    /* ---- memory ---- */
    /* Zeroed, 64-byte aligned device memory; NULL (with a message) on failure. nbytes 0 gives a valid pointer. */
    void *(*alloc)(size_t nbytes);
    void (*free)(void *p); /* NULL is fine */
    adept_status (*to_device)(void *dst, const void *host_src, size_t nbytes);
    adept_status (*to_host)(void *host_dst, const void *src, size_t nbytes);
    adept_status (*copy)(void *dst, const void *src, size_t nbytes); /* device to device; ranges may not overlap */
    adept_status (*fill_zero)(void *p, size_t nbytes);
    adept_status (*synchronize)(void); /* waits for queued work (a no-op on the CPU) */

    /* ---- entry and exit of a model pass (the CPU backend runs BLAS single-threaded inside OpenMP regions) ---- */
    int (*enter)(void);
    void (*exit)(int token);

    /* ---- GEMM: C = alpha op(A) op(B) + beta C, row-major, with leading dimensions ---- */
    void (*gemm)(adept_transpose ta, adept_transpose tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                 size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

    /* ---- layer kernels (fp32), the llm.c order: outputs, cache, inputs, weights, dimensions ---- */
    /* out = inp @ w^T (+ bias); w [OC, IC]. beta_one: out += instead of = (fused residual) */
    void (*matmul_forward)(float *out, const float *inp, const float *w, const float *bias, size_t N, size_t IC,
                           size_t OC, int beta_one);
    /* dinp (+)= dout @ w (overwritten when dinp_accumulate is 0); dw += dout^T @ inp; dbias += sum_rows dout */
    void (*matmul_backward)(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                            size_t N, size_t IC, size_t OC, int dinp_accumulate);
    /* out = x * rsqrt(mean(x^2) + eps) * w per row of C; rstd [N] cached; out may be inp (in place) */
    void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *w, size_t N, size_t C,
                            double eps);
    void (*rmsnorm_backward)(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                             const float *rstd, size_t N, size_t C);
    /* rotate_half RoPE in place on x [B, T, H, D]; cos/sin [>= pos0 + T, D/2]; backward rotates back */
    void (*rope_forward)(float *x, const float *cos_t, const float *sin_t, size_t B, size_t T, size_t H, size_t D,
                         size_t pos0);
    void (*rope_backward)(float *dx, const float *cos_t, const float *sin_t, size_t B, size_t T, size_t H, size_t D,
                          size_t pos0);
    /* Causal GQA attention, flash style (no T x T storage): y [B,T,H*D]; lse [B,H,T] (fp32) the log-sum-exp of
       each query row's scaled scores, kept for backward instead of the probabilities; q [B,T,H*D], k/v
       [B,T,KH*D]; scale 1/sqrt(D). Backward recomputes the probabilities block by block from q, k and lse, with
       D_i = rowsum(dy * y) and dS = P (dP - D_i) scale; dq, dk, dv accumulate (each may be NULL). Any scratch is
       the backend's own and O(block^2) (no argument); fixed blocks and summation orders, no atomics.
       window: a sliding window W (query row i sees keys (i - W, i], Mistral's sliding_window as HF applies it),
       0 for plain causal attention; a backend without windows records an error for 0 < W < T. */
    void (*attention_forward)(float *y, float *lse, const float *q, const float *k, const float *v, size_t B,
                              size_t T, size_t H, size_t KH, size_t D, size_t window);
    void (*attention_backward)(float *dq, float *dk, float *dv, const float *dy, const float *y, const float *lse,
                               const float *q, const float *k, const float *v, size_t B, size_t T, size_t H,
                               size_t KH, size_t D, size_t window);
    /* One query token against a KV cache (generation): y [H*D] = softmax(q k^T / sqrt(D)) v over the n cached
       positions; q [H*D]; k_cache/v_cache rows of ld floats (head g of the kv group at column g*D); att is
       scratch [H, n]. The CPU version keeps libm's expf and the serial order of the first engine. */
    void (*attention_decode)(float *y, float *att, const float *q, const float *k_cache, const float *v_cache,
                             size_t n, size_t ld, size_t H, size_t KH, size_t D);
    /* h = silu(gate) * up; backward OVERWRITES dgate and dup */
    void (*swiglu_forward)(float *h, const float *gate, const float *up, size_t n);
    void (*swiglu_backward)(float *dgate, float *dup, const float *dh, const float *gate, const float *up, size_t n);
    /* out[n] = emb[ids[n]]; backward demb[ids[n]] += dout[n] (ids are device int32) */
    void (*embedding_forward)(float *out, const int32_t *ids, const float *emb, size_t N, size_t C);
    void (*embedding_backward)(float *demb, const int32_t *ids, const float *dout, size_t N, size_t C);
    /* Cross-entropy per row over V logits: nll[n] (device double) for targets >= 0, else 0. With want_grad the
       logits are replaced by grad_scale * (softmax - onehot) (0 for ignored rows). */
    void (*xent)(float *logits, double *nll, const int32_t *targets, size_t N, size_t V, double grad_scale,
                 int want_grad);
    /* *host_sum = sum of nll[n] over targets[n] >= 0, in index order (the loss the caller reports) */
    adept_status (*nll_sum)(const double *nll, const int32_t *targets, size_t N, double *host_sum);

    /* ---- optimizer and trainer over slabs ---- */
    /* One AdamW update over a list of segments (host array; the backend copies what it needs). The betas come
       in double so the kernel forms its float constants as torch does: (float)beta and (float)(1 - beta). */
    adept_status (*adamw)(const adept_adamw_segment *host_segs, size_t n_segs, double beta1, double beta2,
                          double eps);
    /* *host_out = sum of x[i]^2 accumulated in double over fixed 32768-element chunks added in index order
       (independent of the thread count); NaN/inf propagate. */
    adept_status (*sum_squares)(const float *x, size_t n, double *host_out);
    void (*scale)(float *x, size_t n, float f); /* x *= f */

    /* ---- importance ---- */
    /* host_cos[n] = cosine of rows n of x and y [N, C], accumulated in double (1 when both rows are zero, 0 when
       one is): block influence is 1 - cos between a layer's input and output. */
    adept_status (*row_cosine)(const float *x, const float *y, size_t N, size_t C, double *host_cos);

    /* ---- tensor ops of the Lua API (t:abs(), t + u, t:sum(), t:topk(k), ...) ----
       engine/ops/dispatch.c validates devices, dtypes and shapes and allocates outputs before calling these, so
       an entry sees contiguous tensors of this device. The entries above are required; these are OPTIONAL: a
       device without one is answered "<op>: not implemented on the <device> device" by the dispatcher. */
    adept_status (*unary)(adept_unary_op op, const adept_tensor *a, adept_tensor *out);
    adept_status (*binary)(adept_binary_op op, const adept_tensor *a, const adept_tensor *b, adept_tensor *out);
    adept_status (*scalar)(adept_binary_op op, const adept_tensor *a, double s, adept_tensor *out);
    adept_status (*reduce)(adept_reduce_op op, const adept_tensor *a, double *out);
    /* SUM or MEAN over dimension `dim` (0-based); out has the shape of a without that dimension, dtype f32. */
    adept_status (*reduce_dim)(adept_reduce_op op, const adept_tensor *a, int dim, adept_tensor *out);
    /* One pass over two f32 tensors of equal numel: sum a*b, sum a*a, sum b*b. */
    adept_status (*dot3)(const adept_tensor *a, const adept_tensor *b, double out[3]);
    /* values: [k] of a's dtype; indices: k caller-owned entries (0-based flat indices). */
    adept_status (*topk)(const adept_tensor *a, size_t k, adept_tensor *values, int64_t *indices);
    adept_status (*tensor_copy)(const adept_tensor *src, adept_tensor *dst); /* same dtype and numel */
    /* out[r, ...] = a[r, ...] * w[r]: f32, w is [rows of a] (a's first dimension), out has a's shape. */
    adept_status (*scale_rows)(const adept_tensor *a, const adept_tensor *w, adept_tensor *out);

    /* ---- frozen 16-bit weights (DESIGN.md §2.9) ----
       OPTIONAL: a backend without them loads every row in fp32 (adept_model_load_dtype logs the fallback). w is a
       [OC, IC] (emb [V, C]) matrix of dtype wdt, ADEPT_BF16 or ADEPT_F16, never trainable (so no dW). The products
       accumulate in fp32; a backend may round the activations to bf16 first (bf16 x bf16 -> f32, as PyTorch's
       autocast does: the CPU does with oneDNN). Same argument order and accumulation rules as the fp32 entries. */
    void (*matmul_forward_w16)(float *out, const float *inp, const void *w, adept_dtype wdt, const float *bias,
                               size_t N, size_t IC, size_t OC, int beta_one);
    /* dinp (+)= dout @ w (overwritten when dinp_accumulate is 0) */
    void (*matmul_backward_w16)(float *dinp, const float *dout, const void *w, adept_dtype wdt, size_t N, size_t IC,
                                size_t OC, int dinp_accumulate);
    /* out[n] = widen(emb[ids[n]]) (exact) */
    void (*embedding_forward_w16)(float *out, const int32_t *ids, const void *emb, adept_dtype wdt, size_t N,
                                  size_t C);

    /* ---- bf16 products of fp32 weights (precision = "bf16"; docs/model.md "Precision") ----
       OPTIONAL: a model on a backend without them refuses precision "bf16" (adept_model_set_precision names the
       device). Mixed precision as PyTorch's autocast does it: the fp32 weight stays the master (and the optimizer's
       value); each product rounds its operands to bf16 (nearest even) and multiplies them with fp32 accumulation
       into fp32 outputs. Every bf16 x bf16 product is exact in fp32, so these differ from the fp32 entries only
       by the rounding of the operands and the order of the fp32 sums. Same arguments and accumulation rules as
       matmul_forward / matmul_backward. */
    /* out (+)= bf16(inp) @ bf16(w)^T (+ bias, fp32) */
    void (*matmul_forward_bf16)(float *out, const float *inp, const float *w, const float *bias, size_t N, size_t IC,
                                size_t OC, int beta_one);
    /* dinp (+)= bf16(dout) @ bf16(w); dw += bf16(dout)^T @ bf16(inp) (fp32, into the fp32 gradient); dbias +=
       sum_rows dout in fp32 (a sum, not a product: rounding dout there would lose accuracy and save nothing) */
    void (*matmul_backward_bf16)(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                                 const float *w, size_t N, size_t IC, size_t OC, int dinp_accumulate);

    /* ---- attention with bf16 products (OPTIONAL; CUDA: tensor cores) ----
       attention_forward / attention_backward with Q, K, V, dY and the probabilities and score gradients rounded to
       bf16 as the operands of their products (fp32 accumulation; softmax statistics, lse and outputs fp32), as
       PyTorch's SDPA does in bf16. A model in precision "bf16" uses them where present, else the fp32 entries. */
    void (*attention_forward_bf16)(float *y, float *lse, const float *q, const float *k, const float *v, size_t B,
                                   size_t T, size_t H, size_t KH, size_t D, size_t window);
    void (*attention_backward_bf16)(float *dq, float *dk, float *dv, const float *dy, const float *y,
                                    const float *lse, const float *q, const float *k, const float *v, size_t B,
                                    size_t T, size_t H, size_t KH, size_t D, size_t window);

    /* ---- a side queue for the gradient all-reduce (OPTIONAL; CUDA) ----
       Every entry above runs in order on the backend's one main queue. A communicator that reduces device memory
       without the host waiting (NCCL) runs its reductions on this side queue, so that the all-reduce of the upper
       layers' gradients overlaps the backward pass below them (engine/train/grad_sync.c); the two waits below
       order the queues without blocking the host. A backend without them gets its slab reduced after backward. */
    /* The side queue's handle (a cudaStream_t on CUDA, made at the first call); NULL with a message on failure. */
    void *(*comm_queue)(void);
    /* Work queued on the side queue from now on runs after everything queued on the main queue so far. */
    adept_status (*comm_queue_wait_main)(void);
    /* Work queued on the main queue from now on runs after everything queued on the side queue so far. */
    adept_status (*main_wait_comm_queue)(void);

    /* ---- the device's memory (OPTIONAL; devices with memory of their own) ----
       Free and total bytes now (CUDA: cudaMemGetInfo), for the out-of-memory advice (engine/model/oom.c). The
       CPU has none: its limit is the host's, and what the kernel would kill for is not known in advance. */
    adept_status (*memory_info)(size_t *free_bytes, size_t *total_bytes);
} adept_backend;

/* How the CPU backend multiplies by frozen weights of dtype dt (ADEPT_BF16 / ADEPT_F16): "onednn" (bf16 x bf16 ->
   f32 on oneDNN's native kernels, activations rounded to bf16) or "sgemm" (weights widened to fp32 block by block,
   activations in fp32): engine/ops/cpu/gemm16.c. */
const char *adept_cpu_w16_path(adept_dtype dt);
/* "; the device has F of T MiB free" for a backend that reports its memory (memory_info), "" for one that does
   not: the out-of-memory messages of device allocations append it (engine/ops/device.c). */
void adept_backend_memory_note(const adept_backend *be, char *buf, size_t cap);
/* The built-in CPU backend (engine/ops/cpu/). */
const adept_backend *adept_backend_cpu(void);
/* Installs the backend of a device (a later call replaces it; tests install a fake device this way). */
void adept_backend_register(adept_device device, const adept_backend *backend);
/* The backend of a device, or NULL with a message naming the device when none is available in this build. */
const adept_backend *adept_backend_for(adept_device device);

#endif
