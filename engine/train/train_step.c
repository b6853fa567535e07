/* adept_train_step (see adept/train.h): the C training step. The gradient scale 1/N uses the GLOBAL token
   count N of the step, so k micro-batches on r ranks give the gradient of one batch k*r times the size. */
#include "adept/train.h"

#include "adept/log.h"
#include "adept/optim.h"
#include "train/grad_sync.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Copies the weights of the slab elements [lo, hi) between the value rows and `packed` (gradient-slab order):
   to_packed 1 packs them, 0 unpacks every row from packed. */
static adept_status pack_values(adept_model *m, float *packed, size_t lo, size_t hi, int to_packed) {
    const adept_backend *be = adept_model_backend(m);
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        if (!p->trainable) continue;
        size_t a = p->grad_offset > lo ? p->grad_offset : lo;
        size_t b = p->grad_offset + p->numel < hi ? p->grad_offset + p->numel : hi;
        if (a >= b) continue;
        float *v = adept_tensor_f32(p->value) + (a - p->grad_offset);
        ADEPT_TRY(to_packed ? be->copy(packed + a, v, (b - a) * sizeof(float))
                            : be->copy(v, packed + a, (b - a) * sizeof(float)));
    }
    return ADEPT_OK;
}

/* ZeRO-1 (adept_adamw_set_shard): the gradients are reduce-scattered, so this rank holds the sums of its block
   [lo, hi) only; the global norm is the reduced sum of the blocks' squares; clipping and AdamW run on the block;
   the updated weights are all-gathered through the gradient slab (free once the update has read it, and zeroed
   afterwards). Every rank ends with the same weights as an unsharded step, within the rounding of the norm. */
static adept_status sharded_update(adept_model *m, adept_adamw *opt, adept_comm *comm, const adept_step_options *o,
                                   adept_step_result *r, size_t lo, size_t hi) {
    const adept_backend *be = adept_model_backend(m);
    size_t n;
    float *g = adept_model_grad_slab(m, &n);
    double t0 = adept_now();
    ADEPT_TRY(comm->ops->reduce_scatter_f32(comm, be, g, n));
    r->comm_seconds = adept_now() - t0;
    r->comm_bytes = (int64_t)(n * sizeof(float));
    r->comm_calls = 1;
    double ss = 0;
    if (hi > lo) ADEPT_TRY(be->sum_squares(g + lo, hi - lo, &ss));
    ADEPT_TRY(comm->ops->all_reduce_f64(comm, &ss, 1));
    r->grad_norm = sqrt(ss);
    if (!isfinite(r->loss) || !isfinite(r->grad_norm)) {
        r->nonfinite = 1;
        snprintf(r->reason, sizeof r->reason, !isfinite(r->loss) ? "loss is not finite" :
                 "gradient norm is %g (a gradient holds a NaN or an infinity)", r->grad_norm);
        adept_model_zero_grad(m);
        return ADEPT_OK;
    }
    if (o && o->clip > 0 && hi > lo) {
        double coef = o->clip / (r->grad_norm + 1e-6); /* torch.nn.utils.clip_grad_norm_ */
        if (coef < 1.0) be->scale(g + lo, hi - lo, (float)coef);
    }
    ADEPT_TRY(adept_adamw_step(opt, o ? o->lr_factor : 1.0));
    t0 = adept_now();
    ADEPT_TRY(pack_values(m, g, lo, hi, 1));
    ADEPT_TRY(comm->ops->all_gather_f32(comm, be, g, n));
    ADEPT_TRY(pack_values(m, g, 0, n, 0));
    r->comm_seconds += adept_now() - t0;
    r->comm_wait_seconds = r->comm_seconds;
    adept_model_zero_grad(m);
    return ADEPT_OK;
}

adept_status adept_train_step(adept_model *m, adept_adamw *opt, adept_comm *comm, const adept_batch *mbs,
                              size_t n_mb, const adept_step_options *o, adept_step_result *r) {
    memset(r, 0, sizeof *r);
    if (!m || !opt) return adept_fail(ADEPT_EINVAL, "train_step: model and optimizer are required");
    if (adept_adamw_model(opt) != m)
        return adept_fail(ADEPT_EINVAL, "train_step: the optimizer was built for another model (make it with "
                          "adept.adamw(model) for the model being trained)");
    if (!comm) comm = adept_comm_world();
    if (n_mb == 0) return adept_fail(ADEPT_EINVAL, "train_step: no micro-batches");
    /* the global token count first: it fixes the gradient scale */
    double tokens = 0, nll_sum = 0;
    for (size_t k = 0; k < n_mb; k++) {
        if (!mbs[k].targets) return adept_fail(ADEPT_EINVAL, "train_step: micro-batch %zu has no targets", k + 1);
        tokens += (double)adept_batch_count_targets(&mbs[k]);
    }
    ADEPT_TRY(comm->ops->all_reduce_f64(comm, &tokens, 1));
    if (tokens <= 0)
        return adept_fail(ADEPT_EINVAL, "train_step: no target tokens in this step's %zu micro-batch(es) (every "
                          "target is -1)", n_mb);
    adept_model_zero_grad(m);
    float scale = (float)(1.0 / tokens);
    size_t lo, hi, n;
    int sharded = adept_adamw_sharded(opt, &lo, &hi);
    float *g = adept_model_grad_slab(m, &n);
    /* the all-reduce overlapped with the last micro-batch's backward, in buckets (grad_sync.h) */
    size_t bucket = o ? o->bucket_bytes : 0;
    adept_grad_sync *sync = NULL;
    int overlap = !sharded && bucket > 0 && n * sizeof(float) > bucket && adept_grad_sync_possible(m, comm);
    for (size_t k = 0; k < n_mb; k++) {
        double nll = 0;
        if (overlap && k + 1 == n_mb) ADEPT_TRY(adept_grad_sync_begin(m, comm, bucket, &sync));
        adept_status st = adept_model_forward_backward(m, &mbs[k], scale, &nll, NULL);
        if (st != ADEPT_OK) {
            if (!sync) return st;
            char msg[512]; /* the thread's error, if any, must not replace the pass's own */
            snprintf(msg, sizeof msg, "%s", adept_last_error());
            (void)adept_grad_sync_end(sync, NULL, NULL, NULL);
            return adept_fail(st, "%s", msg);
        }
        nll_sum += nll;
    }
    if (sync) {
        ADEPT_TRY(adept_grad_sync_end(sync, &r->comm_seconds, &r->comm_wait_seconds, &r->comm_calls));
        r->comm_bytes = (int64_t)(n * sizeof(float));
    }
    ADEPT_TRY(comm->ops->all_reduce_f64(comm, &nll_sum, 1));
    r->n_tokens = (int64_t)tokens;
    r->loss = nll_sum / tokens;
    if (sharded) return sharded_update(m, opt, comm, o, r, lo, hi);
    if (!sync && n && adept_comm_size(comm) > 1) {
        double t0 = adept_now();
        ADEPT_TRY(comm->ops->all_reduce_f32(comm, adept_model_backend(m), g, n));
        r->comm_seconds = r->comm_wait_seconds = adept_now() - t0;
        r->comm_calls = 1;
        r->comm_bytes = (int64_t)(n * sizeof(float));
    }
    if (!isfinite(r->loss)) {
        r->nonfinite = 1;
        snprintf(r->reason, sizeof r->reason, "loss is %s", isnan(r->loss) ? "nan" : r->loss > 0 ? "inf" : "-inf");
        adept_model_zero_grad(m);
        return ADEPT_OK;
    }
    adept_status st = adept_grad_norm(m, &r->grad_norm);
    if (st == ADEPT_ENONFINITE) {
        r->nonfinite = 1;
        snprintf(r->reason, sizeof r->reason, "%s", adept_last_error());
        adept_model_zero_grad(m);
        return ADEPT_OK;
    }
    ADEPT_TRY(st);
    if (o && o->clip > 0) ADEPT_TRY(adept_clip_grad_scale(m, o->clip, r->grad_norm));
    return adept_adamw_step(opt, o ? o->lr_factor : 1.0);
}
