/* ADEPT stage-1 measurement primitives over the model's per-layer forward pass: mask-out losses computed by
   resuming the forward pass after each skipped layer, and ShortGPT block influence from the residual stream. */
#ifndef ADEPT_ADAPT_H
#define ADEPT_ADAPT_H

#include <stdint.h>

#include "adept/model.h"

/* Mask-out over one batch (targets required; target -1 never counts). One full forward pass keeps the input
   of every layer; for each layer l the pass then resumes at l with l skipped (residual identity), so layers
   below l are not recomputed. Outputs: *base_nll the summed NLL of the unmodified model, skip_nll[l]
   (num_layers entries, caller-allocated) the summed NLL with layer l skipped, *n_tokens the counted targets,
   *layer_evals the decoder-layer evaluations done and *naive_evals those L+1 full passes would do.
   Layers already skipped by the caller stay skipped in every pass (their entry equals the base). The results
   are bitwise those of adept_model_forward under adept_model_set_skip(l). */
adept_status adept_model_mask_out(adept_model *m, const adept_batch *batch, double *base_nll, double *skip_nll,
                                  int64_t *n_tokens, int64_t *layer_evals, int64_t *naive_evals);

/* ShortGPT block influence over one batch: bi_sum[l] (num_layers entries) receives the sum over counted tokens
   of 1 - cos(input of layer l, output of layer l); *n_tokens the count. A token counts when its target is
   >= 0 (padding and prompt positions are -1), or always when batch->targets is NULL. Zero vectors: cos = 1
   when both are zero, else 0. */
adept_status adept_model_block_influence(adept_model *m, const adept_batch *batch, double *bi_sum,
                                         int64_t *n_tokens);

#endif
