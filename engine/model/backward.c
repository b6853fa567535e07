/* The backward pass: from d lnf (left in acts.dln by the classifier's chunks, adept_model_head, which also
   accumulated the head's weight gradient) down the residual stream; frozen weights get no gradient and the pass stops at the lowest trainable layer.
   Kernels and buffer fills go through the model's backend (m->be). */
#include "model/model_internal.h"

static int layer_trainable(const adept_model *m, int l) {
    for (int k = 0; k < ADEPT_UNIT_KIND_COUNT; k++) {
        int i = m->layer_idx[l][k];
        if (i >= 0 && m->params[i].trainable) return 1;
    }
    return adept_model_lora_trainable(m, l, -1);
}

static int attn_trainable(const adept_model *m, int l) {
    static const adept_unit_kind kinds[] = {ADEPT_UNIT_ATTN_NORM, ADEPT_UNIT_Q, ADEPT_UNIT_K, ADEPT_UNIT_V, ADEPT_UNIT_O,
                                            ADEPT_UNIT_Q_BIAS, ADEPT_UNIT_K_BIAS, ADEPT_UNIT_V_BIAS, ADEPT_UNIT_Q_NORM,
                                            ADEPT_UNIT_K_NORM};
    for (size_t j = 0; j < sizeof kinds / sizeof kinds[0]; j++) {
        int i = m->layer_idx[l][kinds[j]];
        if (i >= 0 && m->params[i].trainable) return 1;
    }
    return adept_model_lora_trainable(m, l, ADEPT_UNIT_Q) || adept_model_lora_trainable(m, l, ADEPT_UNIT_K) ||
           adept_model_lora_trainable(m, l, ADEPT_UNIT_V) || adept_model_lora_trainable(m, l, ADEPT_UNIT_O);
}

/* lowest layer whose input gradient is needed: below it nothing is trainable (L: none) */
int adept_model_stop_layer(const adept_model *m) {
    if (m->params[m->embed_idx].grad) return 0;
    for (int l = 0; l < m->cfg.num_layers; l++)
        if (layer_trainable(m, l)) return l;
    return m->cfg.num_layers;
}

int adept_model_needs_dln(const adept_model *m) {
    return adept_model_stop_layer(m) < m->cfg.num_layers || m->params[m->final_norm_idx].grad != NULL;
}

#define W(kind) adept_model_w(m, l, kind)
#define G(kind) adept_model_g(m, l, kind)
/* the adapter of a projection: its A / B gradients and (when din) its share of the input gradient */
#define LORA_B(kind, din, dout, in, IN, OUT) adept_model_lora_backward(m, l, kind, s, din, dout, in, IN, OUT)
#define LT(kind) adept_model_lora_trainable(m, l, kind)

adept_status adept_model_backward(adept_model *m, const adept_batch *b) {
    const adept_config *c = &m->cfg;
    const adept_backend *be = m->be;
    adept_acts *a = &m->acts;
    size_t B = a->B, T = a->T, N = B * T, C = c->hidden_size, F = c->intermediate_size;
    size_t H = c->num_heads, KH = c->num_kv_heads, D = c->head_dim, QD = H * D, KD = KH * D;
    int L = c->num_layers;
    int embed_train = m->params[m->embed_idx].grad != NULL;
    int stop = adept_model_stop_layer(m);
    float *fnorm_g = m->params[m->final_norm_idx].grad ? adept_tensor_f32(m->params[m->final_norm_idx].grad) : NULL;
    int need_resid = stop < L; /* gradient needed below the final norm */
    if (!need_resid && !fnorm_g) { /* the head's gradient is all there is (adept_model_head) */
        adept_model_grad_ready(m, L);
        if (embed_train) adept_model_grad_ready(m, -1); /* a tied head: the embedding row */
        return ADEPT_OK;
    }
    be->fill_zero(a->dresid, N * C * sizeof(float));
    be->rmsnorm_backward(need_resid ? a->dresid : NULL, fnorm_g, a->dln, a->resid + (size_t)L * N * C,
                           adept_tensor_f32(m->params[m->final_norm_idx].value), a->lnf_rstd, N, C);
    adept_model_grad_ready(m, L);
    for (int l = L - 1; l >= stop; l--) {
        if (m->skip[l]) { adept_model_grad_ready(m, l); continue; } /* identity: the residual gradient passes unchanged */
        if (a->recompute) adept_model_layer_forward(m, l); /* the layer's buffers again, into the one slot */
        int below = l > stop || embed_train; /* propagate to this layer's input */
        size_t s = adept_acts_slot(a, l); /* the layer's kept buffers (the plan keeps them from `stop` up) */
        float *x = a->resid + l * N * C, *ln1 = a->ln1 + s * N * C, *q = a->q + s * N * QD, *k = a->k + s * N * KD;
        float *v = a->v + s * N * KD, *mid = a->resid_mid + s * N * C, *ln2 = a->ln2 + s * N * C;
        float *y = a->atty + s * N * QD, *gate = a->gate + s * N * F, *up = a->up + s * N * F, *h = a->hmlp + s * N * F;
        /* MLP: resid_out = mid + down(h); dresid holds d resid_out = d mid (residual part). In the lowest
           trainable layer, the parts that only feed frozen tensors below are skipped. */
        int need_attn = below || attn_trainable(m, l);
        float *dln2 = need_attn || G(ADEPT_UNIT_MLP_NORM) ? a->dln : NULL;
        int need_h = dln2 || G(ADEPT_UNIT_GATE) || G(ADEPT_UNIT_UP) || LT(ADEPT_UNIT_GATE) || LT(ADEPT_UNIT_UP);
        adept_model_mm_backward(m, m->layer_idx[l][ADEPT_UNIT_DOWN], need_h ? a->dhmlp : NULL, G(ADEPT_UNIT_DOWN), NULL,
                                a->dresid, h, N, F, C, 0);
        LORA_B(ADEPT_UNIT_DOWN, need_h ? a->dhmlp : NULL, a->dresid, h, F, C);
        if (need_h) {
            be->swiglu_backward(a->dgate, a->dup, a->dhmlp, gate, up, N * F);
            adept_model_mm_backward(m, m->layer_idx[l][ADEPT_UNIT_GATE], dln2, G(ADEPT_UNIT_GATE), NULL, a->dgate, ln2, N, C, F, 0);
            LORA_B(ADEPT_UNIT_GATE, dln2, a->dgate, ln2, C, F);
            adept_model_mm_backward(m, m->layer_idx[l][ADEPT_UNIT_UP], dln2, G(ADEPT_UNIT_UP), NULL, a->dup, ln2, N, C, F, 1);
            LORA_B(ADEPT_UNIT_UP, dln2, a->dup, ln2, C, F);
        }
        if (dln2)
            be->rmsnorm_backward(need_attn ? a->dresid : NULL, G(ADEPT_UNIT_MLP_NORM), dln2, mid,
                                   W(ADEPT_UNIT_MLP_NORM), a->ln2_rstd + s * N, N, C);
        if (!need_attn) { adept_model_grad_ready(m, l); break; }
        /* attention: mid = x + o(y) */
        adept_model_mm_backward(m, m->layer_idx[l][ADEPT_UNIT_O], a->datty, G(ADEPT_UNIT_O), NULL, a->dresid, y, N, QD, C, 0);
        LORA_B(ADEPT_UNIT_O, a->datty, a->dresid, y, QD, C);
        be->fill_zero(a->dq, N * QD * sizeof(float));
        be->fill_zero(a->dk, N * KD * sizeof(float));
        be->fill_zero(a->dv, N * KD * sizeof(float));
        adept_model_attention_backward(m, a->dq, a->dk, a->dv, a->datty, y, a->lse + s * B * H * T, q, k, v, B, T, H,
                                       KH, D);
        be->rope_backward(a->dq, a->rope_cos, a->rope_sin, B, T, H, D, 0);
        be->rope_backward(a->dk, a->rope_cos, a->rope_sin, B, T, KH, D, 0);
        float *dqp = a->dq, *dkp = a->dk, *qin = q, *kin = k;
        if (c->qk_norm) {
            qin = a->qpre + s * N * QD;
            kin = a->kpre + s * N * KD;
            be->fill_zero(a->dqpre, N * QD * sizeof(float));
            be->fill_zero(a->dkpre, N * KD * sizeof(float));
            be->rmsnorm_backward(a->dqpre, G(ADEPT_UNIT_Q_NORM), a->dq, qin, W(ADEPT_UNIT_Q_NORM), a->q_rstd + s * N * H,
                                   N * H, D);
            be->rmsnorm_backward(a->dkpre, G(ADEPT_UNIT_K_NORM), a->dk, kin, W(ADEPT_UNIT_K_NORM),
                                   a->k_rstd + s * N * KH, N * KH, D);
            dqp = a->dqpre;
            dkp = a->dkpre;
        }
        (void)qin; (void)kin;
        float *dln = below || G(ADEPT_UNIT_ATTN_NORM) ? a->dln : NULL;
        adept_model_mm_backward(m, m->layer_idx[l][ADEPT_UNIT_Q], dln, G(ADEPT_UNIT_Q), G(ADEPT_UNIT_Q_BIAS), dqp, ln1, N, C, QD, 0);
        LORA_B(ADEPT_UNIT_Q, dln, dqp, ln1, C, QD);
        adept_model_mm_backward(m, m->layer_idx[l][ADEPT_UNIT_K], dln, G(ADEPT_UNIT_K), G(ADEPT_UNIT_K_BIAS), dkp, ln1, N, C, KD, 1);
        LORA_B(ADEPT_UNIT_K, dln, dkp, ln1, C, KD);
        adept_model_mm_backward(m, m->layer_idx[l][ADEPT_UNIT_V], dln, G(ADEPT_UNIT_V), G(ADEPT_UNIT_V_BIAS), a->dv, ln1, N, C, KD, 1);
        LORA_B(ADEPT_UNIT_V, dln, a->dv, ln1, C, KD);
        if (dln)
            be->rmsnorm_backward(below ? a->dresid : NULL, G(ADEPT_UNIT_ATTN_NORM), dln, x, W(ADEPT_UNIT_ATTN_NORM),
                                   a->ln1_rstd + s * N, N, C);
        adept_model_grad_ready(m, l);
    }
    if (embed_train) {
        be->embedding_backward(adept_tensor_f32(m->params[m->embed_idx].grad), a->ids, a->dresid, N, C);
        adept_model_grad_ready(m, -1);
    }
    return ADEPT_OK;
}
