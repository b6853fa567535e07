/* AdamW with torch.optim.AdamW semantics over the model's parameter table, one "group" per tensor keyed
   by name, per-unit (and per-row) learning-rate multipliers, and global-norm gradient clipping.
   Semantics (torch 1.13 `_single_tensor_adamw`, fp32 tensors, scalars computed in double):
     step_t += 1 (per tensor: a tensor unfrozen later starts its own bias correction at 1, as in torch)
     lr_u  = lr * lr_factor * scale[name] (* row_scale[row])  -- the schedule factor never compounds
     θ    *= 1 - lr_u * wd            (only when param->decay; default: 2-D tensors, not norms or biases)
     m     = β1 m + (1-β1) g ;  v = β2 v + (1-β2) g²
     θ    -= lr_u / (1-β1^t) * m / (sqrt(v) / sqrt(1-β2^t) + eps)
   Moments exist only for trainable tensors: allocated at their first step, freed when a step finds the
   tensor frozen (no gradient). Keys are names, so freezing, unfreezing and surgery never misalign state. */
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

/* Per-tensor optimizer state, exported for checkpoints. m and v are [numel] f32 owned by the optimizer. */
typedef struct adept_adamw_slot {
    char name[128];
    size_t numel;
    int64_t step;      /* updates applied to this tensor */
    float *m, *v;      /* exp_avg, exp_avg_sq */
    int seen;          /* internal: visited by the current step */
} adept_adamw_slot;

adept_status adept_adamw_new(const adept_adamw_config *cfg, adept_adamw **out);
void adept_adamw_free(adept_adamw *opt); /* NULL is fine */
const adept_adamw_config *adept_adamw_get_config(const adept_adamw *opt);
adept_status adept_adamw_set_config(adept_adamw *opt, const adept_adamw_config *cfg);

/* One update from the gradients of the trainable tensors in params[0..n) (the whole parameter table).
   lr_factor is the schedule's factor for this step (1 for a constant LR). Frozen tensors are skipped and
   lose their state, as do names absent from params. */
adept_status adept_adamw_step(adept_adamw *opt, adept_param *const *params, size_t n, double lr_factor);
int64_t adept_adamw_steps(const adept_adamw *opt);           /* calls to step that updated something */
void adept_adamw_set_steps(adept_adamw *opt, int64_t steps); /* for resume */

/* LR multipliers. A name absent from the table has scale 1. set_scale replaces any previous scale or row
   vector of that name; set_row_scales gives one multiplier per row (dimension 0) of the named tensor. */
adept_status adept_adamw_set_scale(adept_adamw *opt, const char *name, double scale);
adept_status adept_adamw_set_row_scales(adept_adamw *opt, const char *name, const float *scales, int64_t rows);
void adept_adamw_clear_scales(adept_adamw *opt);
size_t adept_adamw_num_scales(const adept_adamw *opt);
/* Entry i of the scale table: name, scalar scale, and the row vector (NULL, 0 when scalar). */
void adept_adamw_scale_at(const adept_adamw *opt, size_t i, const char **name, double *scale, const float **rows,
                          int64_t *n_rows);
/* The scalar multiplier of a name (1 when absent; NaN-free). */
double adept_adamw_get_scale(const adept_adamw *opt, const char *name);

/* Optimizer state, by name. */
size_t adept_adamw_num_slots(const adept_adamw *opt);
const adept_adamw_slot *adept_adamw_slot_at(const adept_adamw *opt, size_t i);
const adept_adamw_slot *adept_adamw_find_slot(const adept_adamw *opt, const char *name);
/* Installs (replacing) the state of one tensor: copies m and v. For checkpoint import. */
adept_status adept_adamw_load_slot(adept_adamw *opt, const char *name, size_t numel, int64_t step, const float *m,
                                   const float *v);
void adept_adamw_drop_slot(adept_adamw *opt, const char *name); /* no-op when absent */
size_t adept_adamw_state_bytes(const adept_adamw *opt);          /* bytes of m and v held */

/* The global L2 norm of the gradients of trainable tensors (accumulated in double). When it is not finite,
   returns ADEPT_ENONFINITE with a message naming the first tensor whose gradient holds a NaN or infinity;
   *norm still receives the value. */
adept_status adept_grad_norm(adept_param *const *params, size_t n, double *norm);
/* torch.nn.utils.clip_grad_norm_: scales every gradient by max_norm / (norm + 1e-6) when that is below 1.
   Returns the norm before clipping in *norm; fails like adept_grad_norm on a non-finite norm (grads kept). */
adept_status adept_clip_grad_norm(adept_param *const *params, size_t n, double max_norm, double *norm);

#endif
