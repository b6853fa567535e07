/* AdamW with torch.optim.AdamW semantics over the model's parameter table, one "group" per tensor,
   per-unit (and per-row) learning-rate multipliers, and global-norm gradient clipping.
   Semantics (torch 1.13 `_single_tensor_adamw`, fp32 tensors, scalars computed in double):
     step_t += 1 (per tensor: a tensor unfrozen later starts its own bias correction at 1, as in torch)
     lr_u  = lr * lr_factor * scale[row] (* row_scale[r])  -- the schedule factor never compounds
     θ    *= 1 - lr_u * wd            (only when param->decay; default: 2-D tensors, not norms or biases)
     m     = β1 m + (1-β1) g ;  v = β2 v + (1-β2) g²
     θ    -= lr_u / (1-β1^t) * m / (sqrt(v) / sqrt(1-β2^t) + eps)
   An optimizer is attached to one model. Its moments live in two slabs laid out like the model's gradient
   slab (allocated at the first step); state and LR scales are keyed by the rows' stable uids, so surgery
   (which renames rows but keeps their uids) carries moments, step counts and scales with their tensors,
   and the copies it makes start fresh. When the trainable set changes, the next step re-lays the moments:
   rows that stay trainable keep theirs, frozen rows lose theirs (no optimizer memory for frozen tensors). */
#ifndef ADEPT_OPTIM_H
#define ADEPT_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"
#include "adept/model.h"

typedef struct adept_adamw_config {
    double lr;           /* base learning rate (> 0) */
    double beta1, beta2; /* in [0, 1) */
    double eps;          /* > 0 */
    double weight_decay; /* >= 0; decoupled: θ *= 1 - lr_u * wd */
} adept_adamw_config;

/* The defaults of DESIGN.md §4: lr 1e-4, betas (0.9, 0.95), eps 1e-8, weight_decay 0.1. */
adept_adamw_config adept_adamw_defaults(void);

typedef struct adept_adamw adept_adamw;

/* An optimizer for model m (which must outlive it). */
adept_status adept_adamw_new(adept_model *m, const adept_adamw_config *cfg, adept_adamw **out);
void adept_adamw_free(adept_adamw *opt); /* NULL is fine */
adept_model *adept_adamw_model(const adept_adamw *opt);
const adept_adamw_config *adept_adamw_get_config(const adept_adamw *opt);
adept_status adept_adamw_set_config(adept_adamw *opt, const adept_adamw_config *cfg);

/* One update from the gradients of the trainable rows. lr_factor is the schedule's factor for this step
   (1 for a constant LR). Everything is checked before anything changes. */
adept_status adept_adamw_step(adept_adamw *opt, double lr_factor);
int64_t adept_adamw_steps(const adept_adamw *opt);           /* calls to step that updated something */
void adept_adamw_set_steps(adept_adamw *opt, int64_t steps); /* for resume */

/* ZeRO stage 1: this optimizer holds the moments of, and updates, only the block of the gradient slab that `rank`
   of `world` owns (adept_comm_block): optimizer memory / world. Call before the first step; the trainable set is
   then fixed. adept_train_step reduce-scatters the gradients, updates the block and all-gathers the weights.
   adept_adamw_sharded returns 1 and the block when sharded. */
adept_status adept_adamw_set_shard(adept_adamw *opt, int rank, int world);
int adept_adamw_sharded(const adept_adamw *opt, size_t *lo, size_t *hi);
/* Checkpoints of a sharded optimizer: gather brings every rank's moments to every rank (collective: every rank
   calls it), so the per-row state functions work; scatter goes back to this rank's block. No-ops unsharded. */
typedef struct adept_comm adept_comm;
adept_status adept_adamw_gather(adept_adamw *opt, adept_comm *comm);
adept_status adept_adamw_scatter(adept_adamw *opt);

/* LR multipliers of a row (by table index). A row without one has scale 1. set_scale replaces any previous
   scale or row vector of that row; set_row_scales gives one multiplier per row (dimension 0) of the tensor.
   Scales must be finite, >= 0 and representable in f32. */
adept_status adept_adamw_set_scale(adept_adamw *opt, size_t row, double scale);
adept_status adept_adamw_set_row_scales(adept_adamw *opt, size_t row, const float *scales, int64_t n);
void adept_adamw_clear_scales(adept_adamw *opt);
/* The multiplier of a row: returns 0 when none is set (scale 1), else 1 with *scale set, and *rows and *n_rows
   the row vector (NULL, 0 for a scalar multiplier). */
int adept_adamw_get_scale(const adept_adamw *opt, size_t row, double *scale, const float **rows, int64_t *n_rows);

/* Optimizer state of a row (by table index): its step count and, once the moments exist, device pointers
   to its exp_avg and exp_avg_sq (numel floats each; NULL before the first step or when the row is frozen). */
adept_status adept_adamw_row_state(adept_adamw *opt, size_t row, int64_t *step, float **exp_avg, float **exp_avg_sq);
/* Installs the state of a trainable row from host arrays of numel floats (checkpoint import). */
adept_status adept_adamw_load_row(adept_adamw *opt, size_t row, int64_t step, const float *host_m, const float *host_v);
void adept_adamw_reset_row(adept_adamw *opt, size_t row); /* forgets moments and step count of a row */
void adept_adamw_reset(adept_adamw *opt);                 /* of every row */
size_t adept_adamw_state_bytes(const adept_adamw *opt);   /* bytes of moments held */

/* The global L2 norm of the gradient slab (accumulated in double, thread-count independent). When it is not
   finite, returns ADEPT_ENONFINITE with a message naming the first tensor whose gradient holds a NaN or an
   infinity; *norm still receives the value. */
adept_status adept_grad_norm(adept_model *m, double *norm);
/* torch.nn.utils.clip_grad_norm_ over a norm already computed: scales every gradient by
   max_norm / (norm + 1e-6) when that is below 1. */
adept_status adept_clip_grad_scale(adept_model *m, double max_norm, double norm);
/* Norm then clip; fails like adept_grad_norm on a non-finite norm (gradients kept). */
adept_status adept_clip_grad_norm(adept_model *m, double max_norm, double *norm);

#endif
