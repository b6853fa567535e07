/* Stage-1 layer probes that drive the model's per-layer forward directly: mask-out losses by resuming the
   forward pass after each skipped layer, top layer first (about half the layer evaluations of L+1 full passes),
   and block influence. */
#include <stdlib.h>

#include "adept/adapt.h"
#include "model/model_internal.h"

static int64_t evaluated_layers(const adept_model *m, int l0) {
    int64_t n = 0;
    for (int l = l0; l < m->cfg.num_layers; l++) n += !m->skip[l];
    return n;
}

adept_status adept_model_mask_out(adept_model *m, const adept_batch *b, double *base_nll, double *skip_nll,
                                  int64_t *n_tokens, int64_t *layer_evals, int64_t *naive_evals) {
    if (!b || !b->targets) return adept_fail(ADEPT_EINVAL, "mask_out: the batch has no targets");
    /* the full pass validates the batch, plans the buffers, copies the ids to the device and leaves every
       layer's input in acts.resid */
    double base;
    int64_t n;
    ADEPT_TRY(adept_model_forward(m, b, &base, &n, NULL));
    const adept_backend *be = m->be;
    int L = m->cfg.num_layers;
    /* Layers are skipped from the top down: the pass that skips layer l reads acts.resid[l] and rewrites only
       resid[l + 1 ..], the inputs of layers already done, so every later pass still finds its true input and no
       copy of the L layer inputs is needed (at Llama-3-8B's shape and a 4 x 1024 probe that copy was 2 GiB). */
    adept_status st = ADEPT_OK;
    int64_t evals = evaluated_layers(m, 0), naive = evals;
    int blas = be->enter();
    for (int l = L - 1; l >= 0 && st == ADEPT_OK; l--) {
        naive += evaluated_layers(m, 0) - !m->skip[l];
        if (m->skip[l]) { skip_nll[l] = base; continue; }
        m->skip[l] = 1;
        adept_model_forward_from(m, l);
        m->skip[l] = 0;
        evals += evaluated_layers(m, l + 1);
        /* the same loss computation as adept_model_forward, so the results match it bit for bit */
        st = adept_model_head_loss(m, 0, 0, &skip_nll[l]);
    }
    be->exit(blas);
    if (st != ADEPT_OK) return adept_fail_context(st, "mask_out");
    if (base_nll) *base_nll = base;
    if (n_tokens) *n_tokens = n;
    if (layer_evals) *layer_evals = evals;
    if (naive_evals) *naive_evals = naive;
    return ADEPT_OK;
}

adept_status adept_model_block_influence(adept_model *m, const adept_batch *b, double *bi_sum, int64_t *n_tokens) {
    ADEPT_TRY(adept_model_forward(m, b, NULL, NULL, NULL));
    int L = m->cfg.num_layers;
    size_t N = (size_t)b->B * b->T, C = m->cfg.hidden_size;
    int64_t count = 0;
    for (size_t i = 0; i < N; i++) count += !b->targets || b->targets[i] >= 0;
    double *cosv = malloc(N * sizeof *cosv + 1);
    if (!cosv) return adept_fail(ADEPT_ENOMEM, "block_influence: out of memory for %zu rows", N);
    for (int l = 0; l < L; l++) {
        /* cosine per token between the layer's input and output, on the device; summed here in token order */
        const float *x = m->acts.resid + (size_t)l * N * C;
        adept_status st = m->be->row_cosine(x, x + N * C, N, C, cosv);
        if (st != ADEPT_OK) {
            free(cosv);
            return adept_fail_context(st, "block_influence");
        }
        double s = 0;
        for (size_t i = 0; i < N; i++)
            if (!b->targets || b->targets[i] >= 0) s += 1.0 - cosv[i];
        bi_sum[l] = s;
    }
    free(cosv);
    if (n_tokens) *n_tokens = count;
    return ADEPT_OK;
}
