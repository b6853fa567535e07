/* Private layout of adept_model shared by the files of engine/model: the parameter table, per-layer
   indices into it, flags, and the activation plan (buffers sized once per (B, T) and reused). */
#ifndef ADEPT_MODEL_INTERNAL_H
#define ADEPT_MODEL_INTERNAL_H

#include "adept/backend.h"
#include "adept/model.h"

/* Activations kept by the forward pass for the backward pass, one plan per (B, T). Shapes in comments;
   N = B*T, C = hidden, QD = heads*head_dim, KD = kv_heads*head_dim, F = intermediate, L = layers, V = vocab.
   Nothing is O(T^2): attention keeps one log-sum-exp per (row, head) and the classifier works on a chunk of
   head_rows rows at a time. The plan's classes (plan.c, logged and documented in docs/model.md):
   kept (per-layer activations read by backward), head (the classifier chunk), scratch (backward buffers shared
   by the layers) and batch (ids, targets, per-token losses, rotary tables). */
typedef struct adept_acts {
    int B, T;
    size_t bytes;                 /* total bytes of the planned buffers */
    size_t kept_bytes, head_bytes, scratch_bytes, batch_bytes; /* the split of bytes by class */
    size_t head_rows;             /* rows of the classifier chunk (<= N) */
    float *resid;                 /* (L+1, N, C) input of each layer; [L] = input of the final norm */
    float *resid_mid;             /* (L, N, C) after the attention residual */
    float *ln1, *ln1_rstd;        /* (L, N, C), (L, N) */
    float *q, *k, *v;             /* (L, N, QD), (L, N, KD), (L, N, KD): post bias/norm/RoPE */
    float *qpre, *kpre;           /* (L, N, QD), (L, N, KD) before q/k norm (qk_norm only) */
    float *q_rstd, *k_rstd;       /* (L, N, heads), (L, N, kv_heads) (qk_norm only) */
    float *lse;                   /* (L, B, heads, T) attention log-sum-exp per query row and head */
    float *atty;                  /* (L, N, QD) attention output before o_proj */
    float *ln2, *ln2_rstd;        /* (L, N, C), (L, N) */
    float *gate, *up, *hmlp;      /* (L, N, F) each; hmlp = silu(gate) * up */
    float *lnf, *lnf_rstd;        /* (N, C), (N) */
    float *logits;                /* (head_rows, V) one chunk of logits; becomes its gradient in training */
    /* backward scratch, shared by layers */
    float *dresid;                /* (N, C) gradient flowing along the residual stream */
    float *dln;                   /* (N, C); the classifier leaves d lnf here */
    float *dq, *dk, *dv, *datty;  /* (N, QD), (N, KD), (N, KD), (N, QD) */
    float *dgate, *dup;           /* (N, F) each */
    float *dhmlp;                 /* (N, F) */
    float *dqpre, *dkpre;         /* (N, QD), (N, KD) qk_norm only */
    double *nll;                  /* (N) per-token loss */
    float *rope_cos, *rope_sin;   /* (T, head_dim/2) */
    int32_t *ids, *tgt;           /* (N) the batch's inputs and targets on the device */
    float *lora_u;                /* (L, 7, N, rank) (alpha/rank) A x per adapted projection (LoRA only) */
    float *dlora;                 /* (N, rank) backward scratch (LoRA only) */
    void *block;                  /* the single allocation all of the above point into */
    const adept_backend *be;      /* the backend that allocated block */
    /* The trainable-aware plan: backward needs the per-layer buffers (all of the above marked (L, ...) except
       resid) only from the lowest layer it reaches (first_kept) up; the layers below run forward-only through
       one shared slot. Slot of layer l: adept_acts_slot. resid keeps every layer (mask-out resumes from it). */
    int first_kept;               /* lowest layer whose buffers backward reads (L: none, nothing trains) */
    int slots;                    /* per-layer slots planned: L - first_kept, plus 1 streaming slot when > 0 */
    /* Recompute (adept_model_set_recompute): one slot for every layer; backward reruns layer l's forward from
       resid[l] into it before the layer's backward, with the same kernels, so the gradients are bitwise those
       of the kept plan. Memory: resid for every layer plus one layer's buffers. */
    int recompute;
} adept_acts;

/* Where layer l's per-layer buffers live: its own slot from first_kept up, the shared streaming slot 0 below
   (every layer in slot 0 under recompute). */
static inline size_t adept_acts_slot(const adept_acts *a, int l) {
    if (a->recompute) return 0;
    if (a->first_kept == 0) return (size_t)l;
    return l < a->first_kept ? 0 : (size_t)(l - a->first_kept + 1);
}

/* The classifier's chunk: rows x V logits of about this many bytes (8 MiB: a few MiB, as issue 11 asks, so no
   [N, V] buffer exists), but never fewer than ADEPT_HEAD_MIN_ROWS rows, so each chunk's GEMM still reads the
   [V, C] head weight once for at least 32 rows (fewer would make the head bandwidth-bound on large vocabularies:
   Qwen3's 151,936 x 2048 weight is 1.2 GB in fp32). */
#define ADEPT_HEAD_CHUNK_BYTES ((size_t)8 << 20)
#define ADEPT_HEAD_MIN_ROWS 32
/* Rows per classifier chunk for N rows of vocabulary V; override > 0 forces that many (tests). */
size_t adept_model_head_rows(size_t N, size_t V, int override);
/* The bytes of each class of the activation plan for (B, T) without allocating (plan.c); head_rows as above. */
typedef struct adept_plan_split {
    size_t kept, head, scratch, batch, total, head_rows;
} adept_plan_split;
/* Lowest layer whose input gradient backward needs (0 when the embedding trains; L when nothing in the layers
   does): the trainable-aware plan keeps per-layer buffers from there up. */
int adept_model_stop_layer(const adept_model *m);
/* The ENOMEM failure of the activation plan for (B, T) keeping layers first_kept.. (oom.c): the plan by class
   against the device's free memory, and the activations recompute, half the batch, half the sequence would need */
adept_status adept_model_fail_oom_acts(const adept_model *m, size_t asked, int B, int T, int first_kept);
/* first_kept: the lowest layer whose buffers are kept (0: every layer, the most a plan can need) */
adept_status adept_model_plan_split(const adept_config *c, int B, int T, int head_rows_override, int first_kept,
                                    int recompute, adept_plan_split *out);
/* The keys a token at position pos attends to in a KV cache under the config's sliding window: the first cached
   position and how many (all pos + 1 without a window). */
static inline size_t adept_model_window_start(const adept_config *c, size_t pos) {
    size_t W = c->sliding_window > 0 ? (size_t)c->sliding_window : 0;
    return W && pos + 1 > W ? pos + 1 - W : 0;
}
/* forward.c: one decoder layer's forward from acts.resid[l] into resid[l + 1] and the layer's slot (forward_from
   runs it for each layer; backward reruns it under recompute) */
void adept_model_layer_forward(adept_model *m, int l);

struct adept_model {
    adept_config cfg;
    const adept_backend *be;      /* compute backend of the model's device: every kernel and device buffer */
    adept_param *params;
    size_t nparams;
    adept_storage *value_slab;    /* f32 values of the fp32 rows (64-byte aligned rows, table order) */
    adept_storage *value16_slab;  /* bf16/f16 values of the 16-bit rows (adept_param.storage), NULL when none */
    size_t value16_elems;
    adept_storage *grad_slab;     /* f32 gradients of the trainable rows, NULL when none */
    size_t value_elems, grad_elems;
    uint64_t grad_layout;         /* bumped on every re-lay of the gradient slab */
    uint64_t next_uid;            /* the next row identity handed out */
    int (*layer_idx)[ADEPT_UNIT_KIND_COUNT]; /* [L][kind] -> row, -1 when absent */
    int embed_idx, final_norm_idx, lm_head_idx; /* lm_head_idx -1 when tied */
    unsigned char *skip, *expanded;          /* [L] */
    adept_acts acts;
    int plan_logged;
    int head_rows_override;       /* > 0: rows per classifier chunk (tests exercise small chunks); 0: automatic */
    int recompute;                /* adept_model_set_recompute: the next plan recomputes layers in backward */
    adept_precision precision;    /* adept_model_set_precision: fp32 weights' products in fp32 or bf16 */
    int grads_deferred;           /* no gradient slab yet: laid at the first need (adept_model_grads_materialize) */
    /* LoRA (lora.c): rank 0 when none; lora_idx[l][t][0/1] = rows of A / B for target t (adept_lora_target
       order), -1 when absent; scale = alpha / rank */
    int lora_rank;
    double lora_alpha;
    float lora_scale;
    int (*lora_idx)[7][2];
    adept_grad_ready_fn grad_hook; /* adept_model_set_grad_hook; NULL: none */
    void *grad_hook_ctx;
};

/* Announces that a group's gradients are final (adept_model_set_grad_hook). */
static inline void adept_model_grad_ready(adept_model *m, int group) {
    if (m->grad_hook) m->grad_hook(m->grad_hook_ctx, group);
}

/* A model whose rows are zero (norms one) with its 2-D rows stored as `matrices` (f32, bf16 or f16): loaders of
   16-bit checkpoints fill it (adept_model_load_dtype). */
adept_status adept_model_create_stored(const adept_config *cfg, adept_device device, adept_dtype matrices,
                                       adept_model **out);
/* Fills a table row's description (no memory: the slabs are laid afterwards); trainable, with a new uid. */
void adept_model_row_init(adept_model *m, adept_param *p, const char *name, int layer, adept_unit_kind kind, int ndim,
                          int64_t d0, int64_t d1);
/* Lays a fresh value slab for the rows of m->params: each row's current value view (if any; two rows may
   share one, for surgery's copies) is copied into its new place, rows without one start zero. Views are
   replaced. Then the gradient slab likewise (adept_model_relay_grads). On failure the model is unchanged. */
adept_status adept_model_relay_values(adept_model *m);
/* Lays a fresh gradient slab for the rows marked trainable: a row that had a gradient keeps it, others start
   zero; frozen rows lose theirs. Bumps grad_layout. On failure the model is unchanged. */
adept_status adept_model_relay_grads(adept_model *m);
/* Frees the slabs and the row views. */
void adept_model_slabs_free(adept_model *m);
/* "model.layers.N.<suffix>" for a per-layer kind. */
size_t adept_model_layer_name(int layer, adept_unit_kind kind, char *buf, size_t cap);
/* Recomputes layer_idx / embed_idx / ... from the names and kinds of the rows. */
adept_status adept_model_reindex(adept_model *m);
/* Plans (or reuses) the activation buffers for (B, T); logs the memory plan the first time. backward: the pass
   will run backward, so the plan keeps what it reads (from the lowest trainable layer up); a forward-only pass
   reuses any plan of its shape, or lays a streaming one (nothing kept for backward). */
adept_status adept_model_plan(adept_model *m, int B, int T, int backward);
void adept_model_acts_free(adept_acts *a);
/* forward.c: runs layers l0.. from acts.resid[l0] (0: from the embedding) and the final norm into acts.lnf */
void adept_model_forward_from(adept_model *m, int l0);
/* forward.c: the classifier and cross-entropy over acts.lnf in chunks of acts.head_rows rows: per-token losses
   against acts.tgt (when targets), optionally the logits copied to host_logits [N, V], and with want_grad the
   head's weight gradient and d lnf (into acts.dln, when backward needs it) accumulated chunk by chunk, scaled
   by grad_scale. *nll_sum (may be NULL) gets the loss summed in token order. */
adept_status adept_model_head(adept_model *m, int has_targets, float grad_scale, int want_grad, float *host_logits,
                              double *nll_sum);
/* The mask-out probe's entry: adept_model_head with targets and no logits. */
adept_status adept_model_head_loss(adept_model *m, float grad_scale, int want_grad, double *nll_sum);
/* backward.c: whether backward needs d lnf (something below the head is trainable) */
int adept_model_needs_dln(const adept_model *m);

/* lora.c: the adapted projections in a fixed order (target index t), and the index of a kind (-1: none) */
extern const adept_unit_kind adept_lora_targets[7];
int adept_lora_target_index(adept_unit_kind kind);
adept_status adept_model_lora_reindex(adept_model *m);
/* whether any adapter row of layer l (or, with kind >= 0, of that projection) is trainable */
int adept_model_lora_trainable(const adept_model *m, int l, int kind);
/* forward.c / backward.c: out (+)= adapter of projection `kind` in layer l on input x [N, in]; slot s */
void adept_model_lora_forward(adept_model *m, int l, adept_unit_kind kind, size_t s, float *out, const float *x,
                              size_t in, size_t outd);
/* d_in += adapter's input gradient (when d_in), and the A / B gradients; d_out [N, out] */
void adept_model_lora_backward(adept_model *m, int l, adept_unit_kind kind, size_t s, float *d_in, const float *d_out,
                               const float *x, size_t in, size_t outd);

static inline float *adept_model_w(adept_model *m, int layer, adept_unit_kind kind) {
    int i = m->layer_idx[layer][kind];
    return i < 0 ? NULL : adept_tensor_f32(m->params[i].value);
}
/* Products with row `row`'s weight [OC, IC] through the backend: for an fp32 row the fp32 kernel, or under the
   model's precision bf16 the bf16 one (operands rounded per product, fp32 accumulation and dW); the 16-bit one
   for a row kept in bf16/f16 (adept_param.storage). A 16-bit row is frozen (a trainable one is widened when the
   gradient slab is laid), so backward gives it no dW; a trainable bias beside it still gets its gradient. */
static inline void adept_model_mm_forward(adept_model *m, int row, float *out, const float *inp, const float *bias,
                                          size_t N, size_t IC, size_t OC, int beta_one) {
    const adept_tensor *v = m->params[row].value;
    if (v->dtype != ADEPT_F32)
        m->be->matmul_forward_w16(out, inp, adept_tensor_data(v), v->dtype, bias, N, IC, OC, beta_one);
    else if (m->precision == ADEPT_PRECISION_BF16)
        m->be->matmul_forward_bf16(out, inp, adept_tensor_f32(v), bias, N, IC, OC, beta_one);
    else m->be->matmul_forward(out, inp, adept_tensor_f32(v), bias, N, IC, OC, beta_one);
}
static inline void adept_model_mm_backward(adept_model *m, int row, float *dinp, float *dw, float *dbias,
                                           const float *dout, const float *inp, size_t N, size_t IC, size_t OC,
                                           int dinp_accumulate) {
    const adept_tensor *v = m->params[row].value;
    if (v->dtype == ADEPT_F32) {
        if (m->precision == ADEPT_PRECISION_BF16)
            m->be->matmul_backward_bf16(dinp, dw, dbias, dout, inp, adept_tensor_f32(v), N, IC, OC, dinp_accumulate);
        else m->be->matmul_backward(dinp, dw, dbias, dout, inp, adept_tensor_f32(v), N, IC, OC, dinp_accumulate);
        return;
    }
    if (dinp) m->be->matmul_backward_w16(dinp, dout, adept_tensor_data(v), v->dtype, N, IC, OC, dinp_accumulate);
    if (dbias) m->be->matmul_backward(NULL, NULL, dbias, dout, inp, NULL, N, IC, OC, 1);
}
/* Attention through the backend: under precision bf16 its bf16 entries where it has them (CUDA: tensor cores),
   else the fp32 ones (the CPU keeps attention in fp32 in both precisions). */
static inline void adept_model_attention_forward(adept_model *m, float *y, float *lse, const float *q, const float *k,
                                                 const float *v, size_t B, size_t T, size_t H, size_t KH, size_t D) {
    size_t W = (size_t)m->cfg.sliding_window;
    if (m->precision == ADEPT_PRECISION_BF16 && m->be->attention_forward_bf16)
        m->be->attention_forward_bf16(y, lse, q, k, v, B, T, H, KH, D, W);
    else m->be->attention_forward(y, lse, q, k, v, B, T, H, KH, D, W);
}
static inline void adept_model_attention_backward(adept_model *m, float *dq, float *dk, float *dv, const float *dy,
                                                  const float *y, const float *lse, const float *q, const float *k,
                                                  const float *v, size_t B, size_t T, size_t H, size_t KH, size_t D) {
    size_t W = (size_t)m->cfg.sliding_window;
    if (m->precision == ADEPT_PRECISION_BF16 && m->be->attention_backward_bf16)
        m->be->attention_backward_bf16(dq, dk, dv, dy, y, lse, q, k, v, B, T, H, KH, D, W);
    else m->be->attention_backward(dq, dk, dv, dy, y, lse, q, k, v, B, T, H, KH, D, W);
}
/* the embedding gather from the embedding row, whatever its storage */
static inline void adept_model_embed(adept_model *m, float *out, const int32_t *ids, size_t N, size_t C) {
    const adept_tensor *v = m->params[m->embed_idx].value;
    if (v->dtype == ADEPT_F32) m->be->embedding_forward(out, ids, adept_tensor_f32(v), N, C);
    else m->be->embedding_forward_w16(out, ids, adept_tensor_data(v), v->dtype, N, C);
}
/* the classifier's row: lm_head, or the embedding when tied */
static inline int adept_model_head_row(const adept_model *m) { return m->lm_head_idx >= 0 ? m->lm_head_idx : m->embed_idx; }

static inline float *adept_model_g(adept_model *m, int layer, adept_unit_kind kind) {
    int i = m->layer_idx[layer][kind];
    return (i < 0 || !m->params[i].grad) ? NULL : adept_tensor_f32(m->params[i].grad);
}

#endif
