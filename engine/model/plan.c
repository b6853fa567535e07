/* The activation plan: one allocation per (B, T) holding every buffer the forward pass keeps for the
   backward pass plus the backward scratch, carved into named regions; logged once with the memory split. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adept/log.h"
#include "model/model_internal.h"

void adept_model_acts_free(adept_acts *a) {
    adept_free(a->block);
    memset(a, 0, sizeof *a);
}

adept_status adept_model_plan(adept_model *m, int B, int T) {
    adept_acts *a = &m->acts;
    if (a->block && a->B == B && a->T == T) return ADEPT_OK;
    const adept_config *c = &m->cfg;
    if (B <= 0 || T <= 0) return adept_fail(ADEPT_EINVAL, "model: batch %d x %d must be positive", B, T);
    if (c->max_position_embeddings > 0 && T > c->max_position_embeddings)
        return adept_fail(ADEPT_EINVAL, "model: sequence length %d exceeds max_position_embeddings %d", T,
                          c->max_position_embeddings);
    adept_model_acts_free(a);
    size_t L = (size_t)c->num_layers, N = (size_t)B * T, C = (size_t)c->hidden_size, F = (size_t)c->intermediate_size;
    size_t H = (size_t)c->num_heads, KH = (size_t)c->num_kv_heads, D = (size_t)c->head_dim;
    size_t QD = H * D, KD = KH * D, V = (size_t)c->vocab_size, TT = (size_t)T * T;
    int qk = c->qk_norm;
    struct { float **ptr; size_t n; } r[] = {
        {&a->resid, (L + 1) * N * C}, {&a->resid_mid, L * N * C}, {&a->ln1, L * N * C}, {&a->ln1_rstd, L * N},
        {&a->q, L * N * QD}, {&a->k, L * N * KD}, {&a->v, L * N * KD},
        {&a->qpre, qk ? L * N * QD : 0}, {&a->kpre, qk ? L * N * KD : 0},
        {&a->q_rstd, qk ? L * N * H : 0}, {&a->k_rstd, qk ? L * N * KH : 0},
        {&a->att, L * B * H * TT}, {&a->atty, L * N * QD}, {&a->ln2, L * N * C}, {&a->ln2_rstd, L * N},
        {&a->gate, L * N * F}, {&a->up, L * N * F}, {&a->hmlp, L * N * F}, {&a->lnf, N * C}, {&a->lnf_rstd, N},
        {&a->logits, N * V}, {&a->dresid, N * C}, {&a->dln, N * C}, {&a->dq, N * QD}, {&a->dk, N * KD},
        {&a->dv, N * KD}, {&a->datty, N * QD}, {&a->dgate, N * F}, {&a->dup, N * F}, {&a->dhmlp, N * F},
        {&a->datt, B * H * TT}, {&a->dqpre, qk ? N * QD : 0}, {&a->dkpre, qk ? N * KD : 0},
        {(float **)&a->nll, 2 * N}, {&a->rope_cos, (size_t)T * D / 2}, {&a->rope_sin, (size_t)T * D / 2}};
    size_t total = 0;
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) total += (r[i].n + 15) / 16 * 16; /* 64-byte aligned */
    if (total > SIZE_MAX / 8) return adept_fail(ADEPT_EINVAL, "model: activation plan for %d x %d overflows", B, T);
    float *block = adept_alloc(total * sizeof(float));
    if (!block)
        return adept_fail(ADEPT_ENOMEM, "model: cannot allocate %.1f MiB of activations for batch %d x %d; "
                          "use a smaller batch or sequence length", total * 4.0 / 1048576, B, T);
    size_t off = 0;
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        *r[i].ptr = r[i].n ? block + off : NULL;
        off += (r[i].n + 15) / 16 * 16;
    }
    a->block = block;
    a->B = B;
    a->T = T;
    a->bytes = total * sizeof(float);
    /* rotary tables in double for accuracy: inv_freq = theta^(-2i/D), HF rotate_half convention */
    for (int t = 0; t < T; t++)
        for (size_t i = 0; i < D / 2; i++) {
            double ang = t * pow(c->rope_theta, -2.0 * (double)i / (double)D);
            a->rope_cos[t * (D / 2) + i] = (float)cos(ang);
            a->rope_sin[t * (D / 2) + i] = (float)sin(ang);
        }
    /* once per process at info level (a sweep loads many models of one shape); every plan at debug level */
    static int any_plan_logged;
    if (!m->plan_logged || adept_log_get_level() <= ADEPT_LOG_DEBUG) {
        adept_memory mem = adept_model_memory(m);
        adept_log(any_plan_logged ? ADEPT_LOG_DEBUG : ADEPT_LOG_INFO, "model memory plan (batch %d x %d): params %.1f MiB, grads %.1f MiB, "
                  "activations %.1f MiB (%.1f MiB per sequence)", B, T, mem.params / 1048576.0,
                  mem.grads / 1048576.0, a->bytes / 1048576.0, a->bytes / 1048576.0 / B);
        m->plan_logged = 1;
        any_plan_logged = 1;
    }
    return ADEPT_OK;
}
