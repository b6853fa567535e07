/* The forward pass over a batch: embedding, N decoder layers (RMSNorm, attention with RoPE and GQA, SwiGLU
   MLP, residuals), final norm, LM head and the token-weighted cross-entropy; keeps activations for backward. */
#include <string.h>

#include "model/layers.h"
#include "model/model_internal.h"

adept_status adept_model_backward(adept_model *m, const adept_batch *b); /* backward.c */

static adept_status check_batch(const adept_model *m, const adept_batch *b, const char *op) {
    if (!b || b->B <= 0 || b->T <= 0 || !b->inputs)
        return adept_fail(ADEPT_EINVAL, "%s: empty batch", op);
    size_t N = (size_t)b->B * b->T;
    int V = m->cfg.vocab_size;
    for (size_t i = 0; i < N; i++) {
        if (b->inputs[i] < 0 || b->inputs[i] >= V)
            return adept_fail(ADEPT_EINVAL, "%s: input id %d at row %zu, position %zu is outside the vocabulary [0, %d)",
                              op, b->inputs[i], i / b->T, i % b->T, V);
        if (b->targets && (b->targets[i] < -1 || b->targets[i] >= V))
            return adept_fail(ADEPT_EINVAL, "%s: target id %d at row %zu, position %zu is outside [-1, %d)", op,
                              b->targets[i], i / b->T, i % b->T, V);
    }
    return ADEPT_OK;
}

float *adept_model_head_weight(adept_model *m, float **grad) {
    adept_param *p = &m->params[m->lm_head_idx >= 0 ? m->lm_head_idx : m->embed_idx];
    if (grad) *grad = p->grad ? adept_tensor_f32(p->grad) : NULL;
    return adept_tensor_f32(p->value);
}

/* Runs layers l0.. from the residual input already in acts.resid[l0] (l0 = 0: from the embedding), then the
   head; mask-out importance (engine/adapt) resumes here after a skipped layer. */
void adept_model_forward_from(adept_model *m, const int32_t *inputs, int l0) {
    const adept_config *c = &m->cfg;
    adept_acts *a = &m->acts;
    size_t B = a->B, T = a->T, N = B * T, C = c->hidden_size, F = c->intermediate_size;
    size_t H = c->num_heads, KH = c->num_kv_heads, D = c->head_dim, QD = H * D, KD = KH * D;
    if (l0 == 0) adept_embedding_forward(a->resid, inputs, adept_tensor_f32(m->params[m->embed_idx].value), N, C);
    for (int l = l0; l < c->num_layers; l++) {
        float *x = a->resid + l * N * C, *xout = a->resid + (l + 1) * N * C;
        if (m->skip[l]) { memcpy(xout, x, N * C * sizeof(float)); continue; }
        float *ln1 = a->ln1 + l * N * C, *q = a->q + l * N * QD, *k = a->k + l * N * KD, *v = a->v + l * N * KD;
        float *mid = a->resid_mid + l * N * C, *ln2 = a->ln2 + l * N * C, *y = a->atty + l * N * QD;
        float *gate = a->gate + l * N * F, *up = a->up + l * N * F, *h = a->hmlp + l * N * F;
        adept_rmsnorm_forward(ln1, a->ln1_rstd + l * N, x, adept_model_w(m, l, ADEPT_UNIT_ATTN_NORM), N, C, c->rms_norm_eps);
        if (c->qk_norm) {
            float *qp = a->qpre + l * N * QD, *kp = a->kpre + l * N * KD;
            adept_matmul_forward(qp, ln1, adept_model_w(m, l, ADEPT_UNIT_Q), adept_model_w(m, l, ADEPT_UNIT_Q_BIAS), N, C, QD, 0);
            adept_matmul_forward(kp, ln1, adept_model_w(m, l, ADEPT_UNIT_K), adept_model_w(m, l, ADEPT_UNIT_K_BIAS), N, C, KD, 0);
            adept_rmsnorm_forward(q, a->q_rstd + l * N * H, qp, adept_model_w(m, l, ADEPT_UNIT_Q_NORM), N * H, D, c->rms_norm_eps);
            adept_rmsnorm_forward(k, a->k_rstd + l * N * KH, kp, adept_model_w(m, l, ADEPT_UNIT_K_NORM), N * KH, D, c->rms_norm_eps);
        } else {
            adept_matmul_forward(q, ln1, adept_model_w(m, l, ADEPT_UNIT_Q), adept_model_w(m, l, ADEPT_UNIT_Q_BIAS), N, C, QD, 0);
            adept_matmul_forward(k, ln1, adept_model_w(m, l, ADEPT_UNIT_K), adept_model_w(m, l, ADEPT_UNIT_K_BIAS), N, C, KD, 0);
        }
        adept_matmul_forward(v, ln1, adept_model_w(m, l, ADEPT_UNIT_V), adept_model_w(m, l, ADEPT_UNIT_V_BIAS), N, C, KD, 0);
        adept_rope_forward(q, a->rope_cos, a->rope_sin, B, T, H, D, 0);
        adept_rope_forward(k, a->rope_cos, a->rope_sin, B, T, KH, D, 0);
        adept_attention_forward(y, a->att + l * B * H * T * T, q, k, v, B, T, H, KH, D);
        memcpy(mid, x, N * C * sizeof(float)); /* residual fused into the o_proj product (beta = 1) */
        adept_matmul_forward(mid, y, adept_model_w(m, l, ADEPT_UNIT_O), NULL, N, QD, C, 1);
        adept_rmsnorm_forward(ln2, a->ln2_rstd + l * N, mid, adept_model_w(m, l, ADEPT_UNIT_MLP_NORM), N, C, c->rms_norm_eps);
        adept_matmul_forward(gate, ln2, adept_model_w(m, l, ADEPT_UNIT_GATE), NULL, N, C, F, 0);
        adept_matmul_forward(up, ln2, adept_model_w(m, l, ADEPT_UNIT_UP), NULL, N, C, F, 0);
        adept_swiglu_forward(h, gate, up, N * F);
        memcpy(xout, mid, N * C * sizeof(float));
        adept_matmul_forward(xout, h, adept_model_w(m, l, ADEPT_UNIT_DOWN), NULL, N, F, C, 1);
    }
    float *xl = a->resid + (size_t)c->num_layers * N * C;
    adept_rmsnorm_forward(a->lnf, a->lnf_rstd, xl, adept_tensor_f32(m->params[m->final_norm_idx].value), N, C,
                          c->rms_norm_eps);
    adept_matmul_forward(a->logits, a->lnf, adept_model_head_weight(m, NULL), NULL, N, C, c->vocab_size, 0);
}

static void forward_layers(adept_model *m, const int32_t *inputs) { adept_model_forward_from(m, inputs, 0); }

static void sum_nll(const adept_acts *a, const int32_t *targets, size_t N, double *nll_sum) {
    double s = 0;
    for (size_t i = 0; i < N; i++) if (targets[i] >= 0) s += a->nll[i]; /* fixed order: deterministic */
    *nll_sum = s;
}

adept_status adept_model_forward(adept_model *m, const adept_batch *b, double *nll_sum, int64_t *n_tokens,
                                 float *logits_out) {
    ADEPT_TRY(check_batch(m, b, "forward"));
    ADEPT_TRY(adept_model_plan(m, b->B, b->T));
    int blas = adept_model_blas_enter();
    forward_layers(m, b->inputs);
    adept_model_blas_exit(blas);
    size_t N = (size_t)b->B * b->T, V = m->cfg.vocab_size;
    if (logits_out) memcpy(logits_out, m->acts.logits, N * V * sizeof(float));
    double s = 0;
    int64_t n = 0;
    if (b->targets) {
        n = adept_xent_forward_backward(m->acts.logits, m->acts.nll, b->targets, N, V, 0, 0);
        sum_nll(&m->acts, b->targets, N, &s);
    }
    if (nll_sum) *nll_sum = s;
    if (n_tokens) *n_tokens = n;
    return ADEPT_OK;
}

adept_status adept_model_forward_backward(adept_model *m, const adept_batch *b, float grad_scale, double *nll_sum,
                                          int64_t *n_tokens) {
    ADEPT_TRY(check_batch(m, b, "forward_backward"));
    if (!b->targets) return adept_fail(ADEPT_EINVAL, "forward_backward: the batch has no targets");
    ADEPT_TRY(adept_model_plan(m, b->B, b->T));
    int blas = adept_model_blas_enter();
    forward_layers(m, b->inputs);
    size_t N = (size_t)b->B * b->T, V = m->cfg.vocab_size;
    int64_t n = adept_xent_forward_backward(m->acts.logits, m->acts.nll, b->targets, N, V, grad_scale, 1);
    sum_nll(&m->acts, b->targets, N, nll_sum ? nll_sum : &(double){0});
    if (n_tokens) *n_tokens = n;
    adept_status st = adept_model_backward(m, b);
    adept_model_blas_exit(blas);
    return st;
}

adept_status adept_model_hidden_states(adept_model *m, const adept_batch *b, float *out) {
    ADEPT_TRY(check_batch(m, b, "hidden_states"));
    ADEPT_TRY(adept_model_plan(m, b->B, b->T));
    int blas = adept_model_blas_enter();
    forward_layers(m, b->inputs);
    adept_model_blas_exit(blas);
    memcpy(out, m->acts.resid, (size_t)(m->cfg.num_layers + 1) * b->B * b->T * m->cfg.hidden_size * sizeof(float));
    return ADEPT_OK;
}
