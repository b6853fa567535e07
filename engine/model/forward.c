/* The forward pass over a batch: embedding, N decoder layers (RMSNorm, flash-style attention with RoPE and
   GQA, SwiGLU MLP, residuals), final norm, then the LM head and the token-weighted cross-entropy in chunks of
   rows (no [N, V] logits buffer); keeps activations for backward.
   Every kernel and device buffer goes through the model's backend (m->be); only the batch ids, the loss and
   requested outputs cross between host and device. */

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

/* Validates the batch, plans the buffers for its shape and copies its ids (and targets) to the device. */
static adept_status prepare(adept_model *m, const adept_batch *b, const char *op, int need_targets, int backward) {
    ADEPT_TRY(check_batch(m, b, op));
    if (need_targets && !b->targets) return adept_fail(ADEPT_EINVAL, "%s: the batch has no targets", op);
    ADEPT_TRY(adept_model_plan(m, b->B, b->T, backward));
    size_t nbytes = (size_t)b->B * b->T * sizeof(int32_t);
    ADEPT_TRY(m->be->to_device(m->acts.ids, b->inputs, nbytes));
    if (b->targets) ADEPT_TRY(m->be->to_device(m->acts.tgt, b->targets, nbytes));
    return ADEPT_OK;
}

/* a LoRA adapter's term added to a projection's output (nothing when the projection has none) */
#define LORA(kind, out, in, IN, OUT) adept_model_lora_forward(m, l, kind, s, out, in, IN, OUT)

/* One decoder layer: from its input acts.resid[l] into resid[l + 1], keeping what backward reads in the layer's
   slot (adept_acts_slot). A skipped layer is the identity. */
void adept_model_layer_forward(adept_model *m, int l) {
    const adept_config *c = &m->cfg;
    const adept_backend *be = m->be;
    adept_acts *a = &m->acts;
    size_t B = a->B, T = a->T, N = B * T, C = c->hidden_size, F = c->intermediate_size;
    size_t H = c->num_heads, KH = c->num_kv_heads, D = c->head_dim, QD = H * D, KD = KH * D;
    double eps = c->rms_norm_eps;
    float *x = a->resid + l * N * C, *xout = a->resid + (l + 1) * N * C;
    if (m->skip[l]) { be->copy(xout, x, N * C * sizeof(float)); return; }
    size_t s = adept_acts_slot(a, l); /* below the lowest layer backward reaches, one shared slot */
    float *ln1 = a->ln1 + s * N * C, *q = a->q + s * N * QD, *k = a->k + s * N * KD, *v = a->v + s * N * KD;
    float *mid = a->resid_mid + s * N * C, *ln2 = a->ln2 + s * N * C, *y = a->atty + s * N * QD;
    float *gate = a->gate + s * N * F, *up = a->up + s * N * F, *h = a->hmlp + s * N * F;
    be->rmsnorm_forward(ln1, a->ln1_rstd + s * N, x, adept_model_w(m, l, ADEPT_UNIT_ATTN_NORM), N, C, eps);
    if (c->qk_norm) {
        float *qp = a->qpre + s * N * QD, *kp = a->kpre + s * N * KD;
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_Q], qp, ln1, adept_model_w(m, l, ADEPT_UNIT_Q_BIAS), N, C, QD, 0);
        LORA(ADEPT_UNIT_Q, qp, ln1, C, QD);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_K], kp, ln1, adept_model_w(m, l, ADEPT_UNIT_K_BIAS), N, C, KD, 0);
        LORA(ADEPT_UNIT_K, kp, ln1, C, KD);
        be->rmsnorm_forward(q, a->q_rstd + s * N * H, qp, adept_model_w(m, l, ADEPT_UNIT_Q_NORM), N * H, D, eps);
        be->rmsnorm_forward(k, a->k_rstd + s * N * KH, kp, adept_model_w(m, l, ADEPT_UNIT_K_NORM), N * KH, D, eps);
    } else {
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_Q], q, ln1, adept_model_w(m, l, ADEPT_UNIT_Q_BIAS), N, C, QD, 0);
        LORA(ADEPT_UNIT_Q, q, ln1, C, QD);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_K], k, ln1, adept_model_w(m, l, ADEPT_UNIT_K_BIAS), N, C, KD, 0);
        LORA(ADEPT_UNIT_K, k, ln1, C, KD);
    }
    adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_V], v, ln1, adept_model_w(m, l, ADEPT_UNIT_V_BIAS), N, C, KD, 0);
    LORA(ADEPT_UNIT_V, v, ln1, C, KD);
    be->rope_forward(q, a->rope_cos, a->rope_sin, B, T, H, D, 0);
    be->rope_forward(k, a->rope_cos, a->rope_sin, B, T, KH, D, 0);
    adept_model_attention_forward(m, y, a->lse + s * B * H * T, q, k, v, B, T, H, KH, D);
    be->copy(mid, x, N * C * sizeof(float)); /* residual fused into the o_proj product (beta = 1) */
    adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_O], mid, y, NULL, N, QD, C, 1);
    LORA(ADEPT_UNIT_O, mid, y, QD, C);
    be->rmsnorm_forward(ln2, a->ln2_rstd + s * N, mid, adept_model_w(m, l, ADEPT_UNIT_MLP_NORM), N, C, eps);
    adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_GATE], gate, ln2, NULL, N, C, F, 0);
    LORA(ADEPT_UNIT_GATE, gate, ln2, C, F);
    adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_UP], up, ln2, NULL, N, C, F, 0);
    LORA(ADEPT_UNIT_UP, up, ln2, C, F);
    be->swiglu_forward(h, gate, up, N * F);
    be->copy(xout, mid, N * C * sizeof(float));
    adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_DOWN], xout, h, NULL, N, F, C, 1);
    LORA(ADEPT_UNIT_DOWN, xout, h, F, C);
}

/* Runs layers l0.. from the residual input already in acts.resid[l0] (l0 = 0: from the embedding of the ids
   in acts.ids), then the final norm; mask-out importance (engine/adapt) resumes here after a skipped layer.
   The classifier runs separately (adept_model_head), only when a loss or logits are asked for. */
void adept_model_forward_from(adept_model *m, int l0) {
    const adept_config *c = &m->cfg;
    const adept_backend *be = m->be;
    adept_acts *a = &m->acts;
    size_t N = a->B * a->T, C = c->hidden_size;
    if (l0 == 0) adept_model_embed(m, a->resid, a->ids, N, C);
    for (int l = l0; l < c->num_layers; l++) adept_model_layer_forward(m, l);
    float *xl = a->resid + (size_t)c->num_layers * N * C;
    be->rmsnorm_forward(a->lnf, a->lnf_rstd, xl, adept_tensor_f32(m->params[m->final_norm_idx].value), N, C,
                        c->rms_norm_eps);
}

/* Chunk by chunk over the rows: logits = lnf W^T (rows x V), copied out when asked; the per-token losses
   (xent in place: with want_grad the chunk becomes grad_scale (softmax - onehot)); then the head's gradient
   dW += dlogits^T lnf and d lnf = dlogits W for those rows. The rows of a chunk are independent, so the losses
   are those of the whole-batch computation up to the GEMM's blocking, and dW adds the chunks in row order. */
adept_status adept_model_head(adept_model *m, int has_targets, float grad_scale, int want_grad, float *host_logits,
                              double *nll_sum) {
    const adept_backend *be = m->be;
    adept_acts *a = &m->acts;
    size_t N = (size_t)a->B * a->T, C = m->cfg.hidden_size, V = m->cfg.vocab_size, R = a->head_rows;
    int head = adept_model_head_row(m);
    float *dhead = m->params[head].grad ? adept_tensor_f32(m->params[head].grad) : NULL;
    float *dln = want_grad && adept_model_needs_dln(m) ? a->dln : NULL;
    int grad = want_grad && has_targets && (dln || dhead);
    for (size_t r0 = 0; r0 < N; r0 += R) {
        size_t n = N - r0 < R ? N - r0 : R;
        adept_model_mm_forward(m, head, a->logits, a->lnf + r0 * C, NULL, n, C, V, 0);
        if (host_logits) ADEPT_TRY(be->to_host(host_logits + r0 * V, a->logits, n * V * sizeof(float)));
        if (!has_targets) continue;
        be->xent(a->logits, a->nll + r0, a->tgt + r0, n, V, grad_scale, grad);
        if (grad)
            adept_model_mm_backward(m, head, dln ? dln + r0 * C : NULL, dhead, NULL, a->logits, a->lnf + r0 * C, n, C, V, 0);
    }
    double s = 0;
    if (has_targets) ADEPT_TRY(be->nll_sum(a->nll, a->tgt, N, &s));
    if (nll_sum) *nll_sum = s;
    return ADEPT_OK;
}

adept_status adept_model_head_loss(adept_model *m, float grad_scale, int want_grad, double *nll_sum) {
    return adept_model_head(m, 1, grad_scale, want_grad, NULL, nll_sum);
}

adept_status adept_model_forward(adept_model *m, const adept_batch *b, double *nll_sum, int64_t *n_tokens,
                                 float *logits_out) {
    ADEPT_TRY(prepare(m, b, "forward", 0, 0));
    const adept_backend *be = m->be;
    int blas = be->enter();
    adept_model_forward_from(m, 0);
    double s = 0;
    int64_t n = 0;
    adept_status st = ADEPT_OK;
    if (logits_out || b->targets) st = adept_model_head(m, b->targets != NULL, 0, 0, logits_out, &s);
    be->exit(blas);
    ADEPT_TRY(st);
    if (b->targets) n = adept_batch_count_targets(b);
    if (nll_sum) *nll_sum = s;
    if (n_tokens) *n_tokens = n;
    return ADEPT_OK;
}

adept_status adept_model_forward_backward(adept_model *m, const adept_batch *b, float grad_scale, double *nll_sum,
                                          int64_t *n_tokens) {
    ADEPT_TRY(adept_model_grads_materialize(m));
    ADEPT_TRY(prepare(m, b, "forward_backward", 1, 1));
    const adept_backend *be = m->be;
    int blas = be->enter();
    adept_model_forward_from(m, 0);
    double s;
    adept_status st = adept_model_head(m, 1, grad_scale, 1, NULL, &s);
    if (st == ADEPT_OK) {
        if (nll_sum) *nll_sum = s;
        if (n_tokens) *n_tokens = adept_batch_count_targets(b);
        st = adept_model_backward(m, b);
    }
    be->exit(blas);
    return st;
}

adept_status adept_model_hidden_states(adept_model *m, const adept_batch *b, float *out) {
    ADEPT_TRY(prepare(m, b, "hidden_states", 0, 0));
    int blas = m->be->enter();
    adept_model_forward_from(m, 0);
    m->be->exit(blas);
    return m->be->to_host(out, m->acts.resid,
                          (size_t)(m->cfg.num_layers + 1) * b->B * b->T * m->cfg.hidden_size * sizeof(float));
}
