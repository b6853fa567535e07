/* adept_train_step (see adept/train.h): the C training step. The gradient scale 1/N uses the GLOBAL token
   count N of the step, so k micro-batches on r ranks give the gradient of one batch k*r times the size. */
#include "adept/train.h"

#include "adept/log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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
    for (size_t k = 0; k < n_mb; k++) {
        double nll = 0;
        ADEPT_TRY(adept_model_forward_backward(m, &mbs[k], scale, &nll, NULL));
        nll_sum += nll;
    }
    ADEPT_TRY(comm->ops->all_reduce_f64(comm, &nll_sum, 1));
    size_t n;
    float *g = adept_model_grad_slab(m, &n);
    if (n && adept_comm_size(comm) > 1) {
        double t0 = adept_now();
        ADEPT_TRY(comm->ops->all_reduce_f32(comm, adept_model_backend(m), g, n));
        r->comm_seconds = adept_now() - t0;
        r->comm_bytes = (int64_t)(n * sizeof(float));
    }
    r->n_tokens = (int64_t)tokens;
    r->loss = nll_sum / tokens;
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
