/* The LLaMA-family decoder: configuration, the parameter table, forward/backward, surgery hooks.
   One row of the parameter table per tensor (DESIGN.md §2.2): freezing, per-unit learning rates,
   importance reports, checkpoints and surgery are loops over it. Frozen tensors own no gradient memory. */
#ifndef ADEPT_MODEL_H
#define ADEPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"
#include "adept/tensor.h"

typedef enum adept_arch { ADEPT_ARCH_LLAMA = 0, ADEPT_ARCH_MISTRAL, ADEPT_ARCH_QWEN2, ADEPT_ARCH_QWEN3 } adept_arch;

typedef enum adept_rope_scaling { ADEPT_ROPE_DEFAULT = 0, ADEPT_ROPE_LINEAR, ADEPT_ROPE_LLAMA3 } adept_rope_scaling;

typedef struct adept_config {
    adept_arch arch;
    char architecture[64];   /* "LlamaForCausalLM", ... as written in config.json */
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_layers;          /* num_hidden_layers */
    int num_heads;
    int num_kv_heads;
    int head_dim;            /* hidden_size / num_heads unless config.json says otherwise */
    int max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    /* rope_scaling (HF config.json): none, "linear" (positions / factor) or "llama3" (Llama 3.1/3.2: long
       wavelengths / factor, short ones kept, a smooth blend between; transformers' _compute_llama3_parameters) */
    adept_rope_scaling rope_scaling;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_position;
    int tie_word_embeddings;
    int attention_bias;      /* q/k/v biases (Qwen2 always; Llama when attention_bias) */
    int qk_norm;             /* Qwen3 per-head RMSNorm on q and k before RoPE */
    int bos_token_id, eos_token_id; /* -1 when absent */
    /* Sliding-window attention (Mistral's sliding_window, Qwen2/3 with use_sliding_window): 0 when none or when
       the window spans the whole context. Sequences up to the window are exact (no key is ever out of it); a
       longer one is refused when planned (attention beyond the window is not implemented). */
    int sliding_window;
    adept_dtype dtype;       /* dtype the weights were loaded with; saving writes it unless told otherwise */
    char *config_json;       /* the original config.json text (NULL for llama2.c imports): unknown fields
                                are preserved on save */
} adept_config;

typedef enum adept_unit_kind {
    ADEPT_UNIT_EMBED = 0, ADEPT_UNIT_LM_HEAD, ADEPT_UNIT_FINAL_NORM,
    ADEPT_UNIT_ATTN_NORM, ADEPT_UNIT_Q, ADEPT_UNIT_K, ADEPT_UNIT_V, ADEPT_UNIT_O,
    ADEPT_UNIT_Q_BIAS, ADEPT_UNIT_K_BIAS, ADEPT_UNIT_V_BIAS, ADEPT_UNIT_Q_NORM, ADEPT_UNIT_K_NORM,
    ADEPT_UNIT_MLP_NORM, ADEPT_UNIT_GATE, ADEPT_UNIT_UP, ADEPT_UNIT_DOWN,
    ADEPT_UNIT_LORA_A, ADEPT_UNIT_LORA_B, /* low-rank adapters (adept_model_add_lora); lora_target says whose */
    ADEPT_UNIT_KIND_COUNT
} adept_unit_kind;

const char *adept_unit_kind_name(adept_unit_kind kind); /* "q_proj", "input_layernorm", ... */
int adept_unit_kind_is_norm(adept_unit_kind kind);

typedef struct adept_param {
    char name[128];          /* HF name: model.layers.3.mlp.down_proj.weight */
    uint64_t uid;            /* stable identity of the tensor: kept when surgery renames the row (optimizer
                                state and LR scales follow it); copies made by surgery get new ones */
    int layer;               /* 0-based decoder layer, -1 for embeddings, final norm, lm_head */
    adept_unit_kind kind;
    int ndim;
    int64_t shape[2];
    size_t numel;
    adept_tensor *value;     /* [shape] of dtype `storage`: a view into the model's f32 value slab, or into its
                                16-bit slab for a frozen matrix kept in the checkpoint's bf16/f16 (DESIGN.md §2.9) */
    adept_tensor *grad;      /* f32 [shape] view into the gradient slab when trainable, else NULL */
    size_t value_offset;     /* element offset of the row in the value slab */
    size_t grad_offset;      /* element offset in the gradient slab (meaningful when trainable) */
    int trainable;
    int decay;               /* weight decay applies (default: 2-D tensors only, not norms or biases) */
    adept_unit_kind lora_target; /* LORA_A / LORA_B rows: the projection adapted (q_proj ... down_proj) */
    adept_dtype storage;     /* F32, or BF16 / F16: the row is kept as loaded until it first needs an fp32 master
                                (the gradient slab is laid while it is trainable: it is widened then, exactly, and
                                stays F32). Only 2-D rows of a model loaded with dtype "auto" start 16-bit. */
} adept_param;

typedef struct adept_model adept_model;

/* A batch: B rows of T inputs and T targets (target -1 = ignored: padding, prompt). */
typedef struct adept_batch {
    int B, T;
    const int32_t *inputs;   /* [B*T] */
    const int32_t *targets;  /* [B*T] */
} adept_batch;

/* Config helpers (model.c): defaults (Llama, eps 1e-6, theta 10000, head_dim 0 = derive, bos/eos -1, f32),
   and a check that every field is in range, deriving head_dim = hidden/heads when 0 and
   num_kv_heads = num_heads when 0. Messages name the field ("config: num_heads must divide ..."). */
void adept_model_config_default(adept_config *cfg);
adept_status adept_model_config_check(adept_config *cfg);

/* Number of counted targets (not -1) in a batch. */
int64_t adept_batch_count_targets(const adept_batch *b);

/* path: a Hugging Face directory (config.json + safetensors, sharded or not) or a llama2.c .bin. */
adept_status adept_model_load(const char *path, adept_model **out);
/* The same with the model's slabs on a device: each tensor is read and widened on the host, then uploaded
   (a device model is never reached through a host pointer). Every row is fp32 (dtype "f32" below). */
adept_status adept_model_load_on(const char *path, adept_device device, adept_model **out);
/* How a loaded model stores its weights (docs/model.md "Precision"): F32 widens every tensor (the parity path);
   AUTO keeps the 2-D matrices (embedding, projections, lm_head) of a checkpoint whose weights are all bf16 (or
   all f16) in that dtype until they need an fp32 master (adept_param.storage); norms and biases are fp32.
   AUTO falls back to fp32 for llama2.c checkpoints, f32/mixed files and backends without 16-bit GEMMs (logged).
   BF16 keeps the matrices in bf16 whatever the checkpoint holds: f32 and f16 matrices are rounded to bf16 (nearest
   even) as they load, so an fp32 checkpoint's frozen rows take half the memory (issue 12: "frozen rows stored in
   bf16"); rows that train get fp32 masters widened from those bf16 values. A llama2.c checkpoint refuses it. */
typedef enum adept_load_dtype { ADEPT_LOAD_F32 = 0, ADEPT_LOAD_AUTO = 1, ADEPT_LOAD_BF16 = 2 } adept_load_dtype;
adept_status adept_model_load_dtype(const char *path, adept_device device, adept_load_dtype dtype, adept_model **out);
/* Row p's values as fp32 on the host (out: p->numel floats), whatever its storage and device. */
adept_status adept_model_row_f32(const adept_model *m, const adept_param *p, float *out);
/* Widens the 16-bit rows i with widen[i] != 0 to fp32 (exact; fp32 rows are left as they are), in one re-lay:
   for writers of values no 16-bit dtype holds (checkpoint loads, LoRA merges). Row views taken before are no
   longer the model's. On failure the model is unchanged. */
adept_status adept_model_widen_rows(adept_model *m, const unsigned char *widen);
/* Fails (ADEPT_ENONFINITE) naming the first tensor that holds a NaN or infinity, with how many it holds;
   adept.load runs it after loading unless allow_nonfinite is set (engine/io/hf_model.c). */
adept_status adept_model_check_finite(adept_model *m);
/* A model with random init (normal(0, std) for matrices, ones for norms, zeros for biases) from a config;
   for tests and pretraining from scratch. The config is checked and copied (config_json is duplicated).
   init_std <= 0 leaves matrices zero and skips the random pass (loaders that overwrite every tensor).
   Every tensor starts trainable. */
adept_status adept_model_create(const adept_config *cfg, uint64_t seed, float init_std, adept_model **out);
/* Writes an HF directory (config.json, model.safetensors or shards past max_shard_bytes (0 = never),
   adept.json). dtype: the dtype to write, or -1 for the dtype loaded. */
adept_status adept_model_save(const adept_model *m, const char *dir, int dtype, size_t max_shard_bytes);
void adept_model_free(adept_model *m);

const adept_config *adept_model_config(const adept_model *m);
size_t adept_model_num_params(const adept_model *m);           /* rows of the parameter table */
/* Rows are valid until the next surgery (adept_model_expand); value/grad tensors are refcounted views,
   so a retained copy of them (adept_tensor_view on ->storage) stays valid after surgery or free. */
adept_param *adept_model_param(adept_model *m, size_t i);
adept_param *adept_model_find(adept_model *m, const char *name); /* NULL if absent */

/* The parameter table over slabs (DESIGN.md §2.2): values live in one allocation (per device and dtype
   class), gradients in one allocation holding only the trainable rows (table order, each row 64-byte
   aligned, padding zero). Changing the trainable set re-lays the gradient slab once (rows that stay
   trainable keep their gradient; values never move) and bumps adept_model_grad_layout, which optimizers
   compare to re-lay their moments. Row views (value/grad) taken before a re-lay keep the old memory alive
   but no longer alias the model. */
adept_status adept_model_set_trainable(adept_model *m, size_t i, int trainable); /* one row */
/* Every row at once: trainable[i] != 0 makes row i trainable; one re-lay, O(rows). */
adept_status adept_model_set_trainable_mask(adept_model *m, const unsigned char *trainable);
void adept_model_zero_grad(adept_model *m); /* one fill of the gradient slab */
/* A new or loaded model has no gradient slab until something needs one (a backward pass, an optimizer, a Lua
   m:grad), as PyTorch allocates .grad at the first backward: loading a model for evaluation, or freezing most of
   it before training, never holds gradients for the frozen rows. This lays it now (idempotent); trainable flags
   set before are honoured. */
adept_status adept_model_grads_materialize(adept_model *m);
/* The gradient slab (device memory of the model's backend): *n floats, NULL/0 when nothing trains. The
   all-reduce of data parallelism and the gradient norm run over it in one call. */
float *adept_model_grad_slab(adept_model *m, size_t *n);
uint64_t adept_model_grad_layout(const adept_model *m);
/* The model's device and compute backend. */
adept_device adept_model_device(const adept_model *m);
struct adept_backend;
const struct adept_backend *adept_model_backend(const adept_model *m);
/* The same as adept_model_create, with the slabs on a device (its backend must be registered). */
adept_status adept_model_create_on(const adept_config *cfg, adept_device device, uint64_t seed, float init_std,
                                   adept_model **out);
/* Row index by uid, or -1. */
int64_t adept_model_find_uid(const adept_model *m, uint64_t uid);

/* Forward and backward over one batch. Returns the sum of token NLL over counted targets and their count;
   accumulates grad_scale * d(sum NLL)/dθ into the gradients of trainable tensors (grad_scale = 1/n_tokens
   gives the mean loss; the trainer passes 1/total over micro-batches). Backward stops at the lowest layer
   with a trainable tensor. */
adept_status adept_model_forward_backward(adept_model *m, const adept_batch *batch, float grad_scale,
                                          double *nll_sum, int64_t *n_tokens);
/* Forward only. logits_out, if not NULL, receives [B*T, vocab] (caller-allocated). */
adept_status adept_model_forward(adept_model *m, const adept_batch *batch, double *nll_sum, int64_t *n_tokens,
                                 float *logits_out);

/* Forward only, keeping the residual stream: out receives (num_layers + 1) x [B*T, hidden] floats (caller-
   allocated): block l is the input of layer l, the last block the output of the last layer (before the final
   norm; HF's output_hidden_states applies the norm to its last entry). For block-influence metrics. */
adept_status adept_model_hidden_states(adept_model *m, const adept_batch *batch, float *out);

/* Gradient readiness, for an all-reduce that overlaps the backward pass (engine/train/grad_sync.c): while a hook
   is set, adept_model_forward_backward calls it as each group of rows has its final gradient for the batch —
   group L (the final norm and an untied head) first, then the layers from the top down to the lowest one
   backward reaches, then group -1 (the embeddings, which a tied head shares) last. Groups no backward reaches
   are never announced. NULL removes the hook. */
typedef void (*adept_grad_ready_fn)(void *ctx, int group);
void adept_model_set_grad_hook(adept_model *m, adept_grad_ready_fn fn, void *ctx);
/* The [lo, hi) element range of the gradient slab spanned by the trainable rows of a group (a layer 0..L-1,
   L for the rows after the layers, -1 for those before); lo == hi when it has none. */
void adept_model_grad_group_range(const adept_model *m, int group, size_t *lo, size_t *hi);

/* Recompute: backward reruns each layer's forward from its kept input instead of keeping the layer's buffers
   (memory: every layer's input plus one layer's buffers), with bitwise the same gradients. Takes effect at the
   next pass (the plan is re-laid). */
void adept_model_set_recompute(adept_model *m, int on);
int adept_model_recompute(const adept_model *m);

/* Precision of the products of fp32 weights (docs/model.md "Precision"). F32: exact fp32 GEMMs (TF32 off), the
   default of every C constructor and loader. BF16: mixed precision as PyTorch's autocast does it: each product of
   an fp32 weight rounds the weight and the activations (backward: the output gradient and the saved input) to
   bf16, multiplies with fp32 accumulation into fp32 outputs; the fp32 rows stay the masters the optimizer
   updates, weight gradients are fp32; norms, softmax, cross-entropy and LoRA adapters stay fp32 (attention's
   products take bf16 operands on a backend with bf16 attention entries, CUDA; the CPU keeps attention fp32);
   frozen 16-bit rows multiply as before. It applies to frozen fp32 rows too, as autocast rounds every linear
   layer. Takes effect at the next pass. Setting BF16 fails on a backend without the bf16 products, naming the
   device. (The Lua default is "bf16" on cuda, "f32" on the cpu: lua/bind_model.c.) */
typedef enum adept_precision { ADEPT_PRECISION_F32 = 0, ADEPT_PRECISION_BF16 = 1 } adept_precision;
adept_status adept_model_set_precision(adept_model *m, adept_precision precision);
adept_precision adept_model_precision(const adept_model *m);
const char *adept_precision_name(adept_precision precision); /* "f32", "bf16" */
/* "f32" or "bf16"; anything else fails naming the valid values (a typo never becomes a default). */
adept_status adept_precision_parse(const char *name, adept_precision *out);

/* Layers skipped in forward passes (residual identity), for mask-out importance; 0/1 per layer. */
adept_status adept_model_set_skip(adept_model *m, int layer, int skip);
int adept_model_is_skipped(const adept_model *m, int layer);

/* Autoregressive generation with a KV cache: appends up to max_tokens ids after the prompt into out
   (capacity max_tokens), stopping after stop_id (>= 0) is produced. temperature <= 0: greedy (argmax,
   lowest id on ties); else softmax(logits / temperature) restricted to the top_k (0 = all) ids, sampled with
   the counter-based RNG from seed. *n_out receives the number of ids written. */
adept_status adept_model_generate(adept_model *m, const int32_t *prompt, int n_prompt, int max_tokens,
                                  float temperature, int top_k, uint64_t seed, int stop_id, int32_t *out,
                                  int *n_out);

/* Batched greedy generation (engine/model/generate_batch.c): B prompts, concatenated in `prompts` with lengths
   n_prompt[B], advance together with a KV cache per row, each row at its own positions (no padding reaches any
   computation). Row r's generated ids go to out + r * max_tokens (capacity max_tokens) and n_out[r] receives
   their number. A row stops after producing stop_id (>= 0; it is written), after max_tokens ids, or, with stop
   strings, once adept_tokenizer_decode(tok, its ids so far, skip_special = 1) contains one of them (the ids
   that completed it are written). Greedy is argmax with the lowest id on ties, as adept_model_generate, whose
   token sequence each row reproduces up to where it stops. */
struct adept_tokenizer;
typedef struct adept_generate_batch_opts {
    int max_tokens;
    int stop_id;                        /* -1: none */
    const struct adept_tokenizer *tok;  /* needed when n_stop > 0 */
    const char *const *stop;            /* n_stop non-empty strings */
    int n_stop;
} adept_generate_batch_opts;
adept_status adept_model_generate_batch(adept_model *m, const int32_t *prompts, const int *n_prompt, int B,
                                        const adept_generate_batch_opts *o, int32_t *out, int *n_out);

/* Layer surgery: inserts an identity copy after each listed layer (o_proj, down_proj and their biases
   zeroed), shifting later layers, and records the copies as expanded. new_indices receives the copies'
   new 0-based indices (n entries). */
adept_status adept_model_expand(adept_model *m, const int *layers, int n, int *new_indices);

/* LoRA (docs/lora.md): low-rank adapters W x + (alpha/rank) B (A x) on the projections of the chosen layers.
   targets: a mask over adept_unit_kind (only Q, K, V, O, GATE, UP, DOWN may be set); layers: a mask of
   num_layers entries (NULL: every layer). A [rank, in] ~ uniform(-1/sqrt(in), 1/sqrt(in)) from (seed, row uid),
   B [out, rank] zero, so outputs are unchanged; afterwards only the adapter rows are trainable. Adapters are
   rows of the table (kinds LORA_A / LORA_B, named model.layers.L.self_attn.q_proj.lora_A.weight). Refused
   when adapters exist already (one rank and alpha per model). */
adept_status adept_model_add_lora(adept_model *m, int rank, double alpha, const unsigned char *targets,
                                  const unsigned char *layers, uint64_t seed);
/* rank (0 when the model has no adapters) and alpha */
int adept_model_lora_rank(const adept_model *m, double *alpha);
/* Folds W += (alpha/rank) B A into each adapted weight (in double, rounded once) and removes the adapter rows. */
adept_status adept_model_merge_lora(adept_model *m);
/* The merged value of base row i ([numel] floats on the host): its value plus (alpha/rank) B A when adapted,
   so a save can write merged weights without changing the model. */
adept_status adept_model_merged_value(adept_model *m, size_t i, float *out);
int adept_model_is_expanded(const adept_model *m, int layer);
/* Sets the expanded flag (loaders restoring adept.json). */
adept_status adept_model_set_expanded(adept_model *m, int layer, int expanded);
int adept_model_num_layers(const adept_model *m);

/* Bytes held: parameters, gradients, activations (the planned buffers). */
/* A run's memory before it starts (engine/model/estimate.c): weights of a config, plus `copies` identity copies
   (ADEPT's uniform placement), trained as said, for batch_size x seq_len, the optimizer sharded over `shards`
   processes (ZeRO-1; 1 otherwise). Bytes by class, as the engine allocates them: weights = frozen rows as stored,
   masters = fp32 rows of the trainable layers when the matrices are 16-bit (0 with fp32 matrices, whose trainable
   rows are counted in weights), so weights + masters is adept_model_memory's params. */
typedef enum adept_plan_trainable {
    ADEPT_PLAN_ALL = 0, ADEPT_PLAN_NONE, ADEPT_PLAN_COPIES, ADEPT_PLAN_LAYERS
} adept_plan_trainable;
typedef struct adept_plan_request {
    int batch_size, seq_len;
    int copies;                       /* layers added by expansion before training */
    adept_plan_trainable trainable;   /* everything, nothing, only the copies, or the listed layers */
    const int *layers;                /* ADEPT_PLAN_LAYERS: 0-based indices in the expanded model */
    int n_layers;
    int shards;
    int recompute;                    /* adept_model_set_recompute: one layer's buffers, recomputed in backward */
    adept_dtype dtype;                /* F32 (0): every row fp32; BF16 / F16: the matrices of frozen rows kept in
                                         that dtype (adept_model_load_dtype AUTO), trainable rows' fp32 masters */
} adept_plan_request;
typedef struct adept_plan_bytes {
    size_t weights, masters, grads, optimizer, activations, workspace, total;
    size_t params, trainable_params;
    int first_kept, layers;           /* lowest layer whose activations are kept; layers after expansion */
} adept_plan_bytes;
adept_status adept_plan_estimate(const adept_config *cfg, const adept_plan_request *r, adept_plan_bytes *out);

typedef struct adept_memory {
    size_t params, grads, activations;   /* params = params_f32 + params_16 */
    size_t params_f32, params_16;        /* bytes of the fp32 value slab and of the 16-bit (frozen bf16/f16) one */
} adept_memory;
adept_memory adept_model_memory(const adept_model *m);

#endif
