/* Stage-1 layer probes that drive the model's per-layer forward directly: mask-out losses by resuming the
   forward pass after each skipped layer (about half the layer evaluations of L+1 full passes), block influence. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adept/adapt.h"
#include "model/layers.h"
#include "model/model_internal.h"

void adept_model_forward_from(adept_model *m, const int32_t *inputs, int l0); /* forward.c */

static int64_t evaluated_layers(const adept_model *m, int l0) {
    int64_t n = 0;
    for (int l = l0; l < m->cfg.num_layers; l++) n += !m->skip[l];
    return n;
}

/* The same fixed-order sum as forward.c, so the results match adept_model_forward bit for bit. */
static double head_nll(adept_model *m, const adept_batch *b, int64_t *count) {
    size_t N = (size_t)b->B * b->T;
    *count = adept_xent_forward_backward(m->acts.logits, m->acts.nll, b->targets, N, m->cfg.vocab_size, 0, 0);
    double s = 0;
    for (size_t i = 0; i < N; i++) if (b->targets[i] >= 0) s += m->acts.nll[i];
    return s;
}

adept_status adept_model_mask_out(adept_model *m, const adept_batch *b, double *base_nll, double *skip_nll,
                                  int64_t *n_tokens, int64_t *layer_evals, int64_t *naive_evals) {
    if (!b || !b->targets) return adept_fail(ADEPT_EINVAL, "mask_out: the batch has no targets");
    /* the full pass validates the batch, plans the buffers and leaves every layer's input in acts.resid */
    double base;
    int64_t n;
    ADEPT_TRY(adept_model_forward(m, b, &base, &n, NULL));
    int L = m->cfg.num_layers;
    size_t NC = (size_t)b->B * b->T * m->cfg.hidden_size;
    float *inputs = malloc((size_t)L * NC * sizeof(float) + 1);
    if (!inputs)
        return adept_fail(ADEPT_ENOMEM, "mask_out: cannot keep the inputs of %d layers (%zu floats each)", L, NC);
    memcpy(inputs, m->acts.resid, (size_t)L * NC * sizeof(float));
    int64_t evals = evaluated_layers(m, 0), naive = evals;
    int blas = adept_model_blas_enter();
    for (int l = 0; l < L; l++) {
        naive += evaluated_layers(m, 0) - !m->skip[l];
        if (m->skip[l]) { skip_nll[l] = base; continue; }
        /* acts.resid[l] may hold the previous pass's skipped-path values: restore the true input */
        memcpy(m->acts.resid + (size_t)l * NC, inputs + (size_t)l * NC, NC * sizeof(float));
        m->skip[l] = 1;
        adept_model_forward_from(m, b->inputs, l);
        m->skip[l] = 0;
        evals += evaluated_layers(m, l + 1);
        int64_t cnt;
        skip_nll[l] = head_nll(m, b, &cnt);
    }
    adept_model_blas_exit(blas);
    free(inputs);
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
    for (int l = 0; l < L; l++) {
        const float *x = m->acts.resid + (size_t)l * N * C, *y = x + N * C;
        double s = 0;
        for (size_t i = 0; i < N; i++) {
            if (b->targets && b->targets[i] < 0) continue;
            double xy = 0, xx = 0, yy = 0;
            for (size_t c = 0; c < C; c++) {
                double a = x[i * C + c], d = y[i * C + c];
                xy += a * d; xx += a * a; yy += d * d;
            }
            double cosv = (xx == 0 && yy == 0) ? 1.0 : (xx == 0 || yy == 0) ? 0.0 : xy / sqrt(xx * yy);
            s += 1.0 - cosv;
        }
        bi_sum[l] = s;
    }
    if (n_tokens) *n_tokens = count;
    return ADEPT_OK;
}
