/* The CPU backend's layer kernels as forward/backward pairs of free functions (llm.c order: outputs, cache,
   inputs, weights, dimensions), in fp32 for the model and in fp64 for the finite-difference tests (same source).
   The model reaches the fp32 ones only through the backend table (adept_backend_cpu(), backend_model.c); the
   tests (tests/unit/test_model_fd.c) include this header for the fp64 build. */
#ifndef ADEPT_OPS_CPU_LAYERS_H
#define ADEPT_OPS_CPU_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* Conventions: rows are tokens (N = B*T); weights are HF [out, in]; every d<input> and d<weight> argument
   ACCUMULATES (+=) and may be NULL when not needed (frozen weight, lowest layer); outputs are overwritten. */
#define ADEPT_LAYER_DECLS(R, S)                                                                                 \
    /* out = inp @ w^T (+ bias); w [OC, IC]. beta_one: out += instead of = */                                   \
    void adept_matmul_forward##S(R *out, const R *inp, const R *w, const R *bias, size_t N, size_t IC,            \
                                 size_t OC, int beta_one);                                                        \
    void adept_matmul_backward##S(R *dinp, R *dw, R *dbias, const R *dout, const R *inp, const R *w, size_t N,    \
                                  size_t IC, size_t OC);                                                          \
    /* the same with dinp overwritten (dinp_accumulate = 0) to save a memset pass */                             \
    void adept_matmul_backward_beta##S(R *dinp, R *dw, R *dbias, const R *dout, const R *inp, const R *w,         \
                                       size_t N, size_t IC, size_t OC, int dinp_accumulate);                      \
    /* out = x * rsqrt(mean(x^2) + eps) * w per row of C; rstd [N] cached */                                     \
    void adept_rmsnorm_forward##S(R *out, R *rstd, const R *inp, const R *w, size_t N, size_t C, double eps);    \
    void adept_rmsnorm_backward##S(R *dinp, R *dw, const R *dout, const R *inp, const R *w, const R *rstd,       \
                                   size_t N, size_t C);                                                           \
    /* HF rotate_half RoPE in place on x [B, T, H, D]; cos/sin [>= pos0+T, D/2]; backward rotates back */        \
    void adept_rope_forward##S(R *x, const R *cos_t, const R *sin_t, size_t B, size_t T, size_t H, size_t D,     \
                               size_t pos0);                                                                      \
    void adept_rope_backward##S(R *dx, const R *cos_t, const R *sin_t, size_t B, size_t T, size_t H, size_t D,   \
                                size_t pos0);                                                                     \
    /* causal softmax attention with GQA, flash style: y [B,T,H*D]; lse [B,H,T] log-sum-exp per query row and \
       head; q [B,T,H*D], k/v [B,T,KH*D]; scale 1/sqrt(D). Blocks of ADEPT_ATT_BLOCK rows and keys.           \
       Backward recomputes the probabilities from lse; dq, dk, dv accumulate (each may be NULL). W: sliding      \
       window (row i sees keys (i - W, i]), 0 for none. */                                                       \
    void adept_attention_forward##S(R *y, R *lse, const R *q, const R *k, const R *v, size_t B, size_t T,        \
                                    size_t H, size_t KH, size_t D, size_t W);                                     \
    void adept_attention_backward##S(R *dq, R *dk, R *dv, const R *dy, const R *y, const R *lse, const R *q,     \
                                     const R *k, const R *v, size_t B, size_t T, size_t H, size_t KH, size_t D,  \
                                     size_t W);                                                                   \
    /* h = silu(gate) * up; backward OVERWRITES dgate and dup (they are never shared) */                                                                                    \
    void adept_swiglu_forward##S(R *h, const R *gate, const R *up, size_t n);                                    \
    void adept_swiglu_backward##S(R *dgate, R *dup, const R *dh, const R *gate, const R *up, size_t n);          \
    /* out[n] = emb[ids[n]]; backward: demb[ids[n]] += dout[n] */                                                \
    void adept_embedding_forward##S(R *out, const int32_t *ids, const R *emb, size_t N, size_t C);               \
    void adept_embedding_backward##S(R *demb, const int32_t *ids, const R *dout, size_t N, size_t C);            \
    /* cross-entropy per row over V logits; nll[n] (double) for targets >= 0 else 0. With grad_scale != 0 the     \
       logits are replaced by grad_scale * (softmax - onehot) (0 for ignored rows). Returns counted rows. */      \
    int64_t adept_xent_forward_backward##S(R *logits, double *nll, const int32_t *targets, size_t N, size_t V,   \
                                           double grad_scale, int want_grad);

/* The model's kernels parallelise with OpenMP and call BLAS single-threaded (two thread pools on the same cores
   spin against each other: measured 1.6x slower on 2 cores). enter returns the previous BLAS thread count. */
int adept_model_blas_enter(void);
/* Query rows and keys per block of the CPU attention kernels: a 64 x 64 score tile (16 KiB in fp32) stays in
   L1/L2 next to the 64-row slices of q, k, v it is computed from. */
#define ADEPT_ATT_BLOCK 64
void adept_model_blas_exit(int saved);

ADEPT_LAYER_DECLS(float, )
/* One query token against a KV cache (decode.c; fp32 only): see adept_backend.attention_decode. */
void adept_attention_decode(float *y, float *att, const float *q, const float *k_cache, const float *v_cache,
                            size_t n, size_t ld, size_t H, size_t KH, size_t D);
ADEPT_LAYER_DECLS(double, _f64)

#endif
