/* The activation plan: one device allocation per (B, T) holding every buffer the forward pass keeps for the
   backward pass plus the backward scratch and the batch ids, carved into named regions; the rotary tables are
   computed on the host and copied in. Logged once with the memory split. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adept/log.h"
#include "model/model_internal.h"

void adept_model_acts_free(adept_acts *a) {
    if (a->block) a->be->free(a->block);
    memset(a, 0, sizeof *a);
}

/* The rotary frequency of pair i: theta^(-2i/D), rescaled as the config's rope_scaling says (transformers'
   _compute_linear_scaling / _compute_llama3_parameters; neither changes the attention scale). */
static double rope_inv_freq(const adept_config *c, size_t i, size_t D) {
    double inv = pow(c->rope_theta, -2.0 * (double)i / (double)D);
    if (c->rope_scaling == ADEPT_ROPE_LINEAR) return inv / c->rope_factor;
    if (c->rope_scaling != ADEPT_ROPE_LLAMA3) return inv;
    double old_len = c->rope_original_max_position, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
    double wavelen = 2.0 * M_PI / inv;
    if (wavelen < old_len / hi) return inv;                 /* high frequencies: unchanged */
    if (wavelen > old_len / lo) return inv / c->rope_factor; /* low frequencies: scaled */
    double smooth = (old_len / wavelen - lo) / (hi - lo);    /* between: a blend */
    return (1.0 - smooth) * inv / c->rope_factor + smooth * inv;
}

/* rotary tables in double for accuracy, HF rotate_half convention; [T, D/2] each */
adept_status adept_model_rope_tables(const adept_backend *be, const adept_config *c, int T, float *cos_t,
                                     float *sin_t) {
    size_t D = (size_t)c->head_dim, n = (size_t)T * (D / 2);
    float *host = malloc(2 * n * sizeof *host + 1);
    if (!host) return adept_fail(ADEPT_ENOMEM, "model: out of memory for the rotary tables (%d positions)", T);
    for (int t = 0; t < T; t++)
        for (size_t i = 0; i < D / 2; i++) {
            double ang = t * rope_inv_freq(c, i, D);
            host[t * (D / 2) + i] = (float)cos(ang);
            host[n + t * (D / 2) + i] = (float)sin(ang);
        }
    adept_status st = be->to_device(cos_t, host, n * sizeof *host);
    if (st == ADEPT_OK) st = be->to_device(sin_t, host + n, n * sizeof *host);
    free(host);
    return st;
}

adept_status adept_model_plan(adept_model *m, int B, int T) {
    adept_acts *a = &m->acts;
    if (a->block && a->B == B && a->T == T && a->be == m->be) return ADEPT_OK;
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
        {(float **)&a->nll, 2 * N}, {&a->rope_cos, (size_t)T * D / 2}, {&a->rope_sin, (size_t)T * D / 2},
        {(float **)&a->ids, N}, {(float **)&a->tgt, N}};
    size_t total = 0;
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) total += (r[i].n + 15) / 16 * 16; /* 64-byte aligned */
    if (total > SIZE_MAX / 8) return adept_fail(ADEPT_EINVAL, "model: activation plan for %d x %d overflows", B, T);
    const adept_backend *be = m->be;
    float *block = be->alloc(total * sizeof(float));
    if (!block)
        return adept_fail(ADEPT_ENOMEM, "model: cannot allocate %.1f MiB of activations for batch %d x %d on %s; "
                          "use a smaller batch or sequence length", total * 4.0 / 1048576, B, T, be->name);
    size_t off = 0;
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        *r[i].ptr = r[i].n ? block + off : NULL;
        off += (r[i].n + 15) / 16 * 16;
    }
    a->block = block;
    a->be = be;
    a->B = B;
    a->T = T;
    a->bytes = total * sizeof(float);
    adept_status st = adept_model_rope_tables(be, c, T, a->rope_cos, a->rope_sin);
    if (st != ADEPT_OK) {
        adept_model_acts_free(a);
        return st;
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
