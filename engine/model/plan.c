/* The activation plan: one device allocation per (B, T) holding every buffer the forward pass keeps for the
   backward pass plus the backward scratch and the batch ids, carved into named regions; the rotary tables are
   computed on the host and copied in. Logged once with the memory split. */
#include <math.h>
#include <stdio.h>
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

size_t adept_model_head_rows(size_t N, size_t V, int override) {
    size_t rows = override > 0 ? (size_t)override : ADEPT_HEAD_CHUNK_BYTES / (sizeof(float) * (V ? V : 1));
    if (override <= 0 && rows < ADEPT_HEAD_MIN_ROWS) rows = ADEPT_HEAD_MIN_ROWS;
    return rows < N ? rows : N;
}

/* The plan's regions: where each pointer goes, its element count and its class. One table for the allocation
   and for adept_model_plan_split, so the printed plan is the allocated one. */
enum { KEPT, HEAD, SCRATCH, BATCH, N_CLASSES };
typedef struct region { float **ptr; size_t n; int cls; } region;

/* Per-layer slots for a plan whose lowest kept layer is first_kept (adept_acts_slot). */
static size_t plan_slots(int L, int first_kept, int recompute) {
    if (recompute) return 1;
    if (first_kept <= 0) return (size_t)L;
    if (first_kept > L) first_kept = L;
    return (size_t)(L - first_kept) + 1;
}

static size_t plan_regions(adept_acts *a, const adept_config *c, size_t B, size_t T, size_t head_rows,
                           int first_kept, int recompute, size_t lora_rank, region *r) {
    size_t Lr = (size_t)c->num_layers, L = plan_slots(c->num_layers, first_kept, recompute);
    size_t N = B * T, C = (size_t)c->hidden_size, F = (size_t)c->intermediate_size;
    size_t H = (size_t)c->num_heads, KH = (size_t)c->num_kv_heads, D = (size_t)c->head_dim;
    size_t QD = H * D, KD = KH * D, V = (size_t)c->vocab_size;
    int qk = c->qk_norm;
    region t[] = {
        {&a->resid, (Lr + 1) * N * C, KEPT}, {&a->resid_mid, L * N * C, KEPT}, {&a->ln1, L * N * C, KEPT},
        {&a->ln1_rstd, L * N, KEPT}, {&a->q, L * N * QD, KEPT}, {&a->k, L * N * KD, KEPT}, {&a->v, L * N * KD, KEPT},
        {&a->qpre, qk ? L * N * QD : 0, KEPT}, {&a->kpre, qk ? L * N * KD : 0, KEPT},
        {&a->q_rstd, qk ? L * N * H : 0, KEPT}, {&a->k_rstd, qk ? L * N * KH : 0, KEPT},
        {&a->lse, L * B * H * T, KEPT}, {&a->atty, L * N * QD, KEPT}, {&a->ln2, L * N * C, KEPT},
        {&a->ln2_rstd, L * N, KEPT}, {&a->gate, L * N * F, KEPT}, {&a->up, L * N * F, KEPT},
        {&a->hmlp, L * N * F, KEPT}, {&a->lnf, N * C, KEPT}, {&a->lnf_rstd, N, KEPT},
        {&a->logits, head_rows * V, HEAD},
        {&a->dresid, N * C, SCRATCH}, {&a->dln, N * C, SCRATCH}, {&a->dq, N * QD, SCRATCH}, {&a->dk, N * KD, SCRATCH},
        {&a->dv, N * KD, SCRATCH}, {&a->datty, N * QD, SCRATCH}, {&a->dgate, N * F, SCRATCH},
        {&a->dup, N * F, SCRATCH}, {&a->dhmlp, N * F, SCRATCH}, {&a->dqpre, qk ? N * QD : 0, SCRATCH},
        {&a->dkpre, qk ? N * KD : 0, SCRATCH},
        {&a->lora_u, L * 7 * N * lora_rank, KEPT}, {&a->dlora, N * lora_rank, SCRATCH},
        {(float **)&a->nll, 2 * N, BATCH}, {&a->rope_cos, T * D / 2, BATCH}, {&a->rope_sin, T * D / 2, BATCH},
        {(float **)&a->ids, N, BATCH}, {(float **)&a->tgt, N, BATCH}};
    memcpy(r, t, sizeof t);
    return sizeof t / sizeof t[0];
}
enum { MAX_REGIONS = 48 };

/* elements of each class and in all, each region rounded up to 16 floats (64-byte aligned); 0 on overflow */
static size_t plan_sizes(const region *r, size_t n, size_t cls_elems[N_CLASSES]) {
    size_t total = 0;
    for (int k = 0; k < N_CLASSES; k++) cls_elems[k] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t e = (r[i].n + 15) / 16 * 16;
        if (e < r[i].n || total + e < total) return 0;
        cls_elems[r[i].cls] += e;
        total += e;
    }
    return total > SIZE_MAX / 8 ? 0 : total;
}

adept_status adept_model_plan_split(const adept_config *c, int B, int T, int head_rows_override, int first_kept,
                                    int recompute, adept_plan_split *out) {
    if (B <= 0 || T <= 0) return adept_fail(ADEPT_EINVAL, "model: batch %d x %d must be positive", B, T);
    adept_acts scratch_acts = {0};
    region r[MAX_REGIONS];
    size_t rows = adept_model_head_rows((size_t)B * T, (size_t)c->vocab_size, head_rows_override);
    size_t n = plan_regions(&scratch_acts, c, (size_t)B, (size_t)T, rows, first_kept, recompute, 0, r) /* LoRA's (L, 7, N, rank) intermediates are not estimated */, e[N_CLASSES];
    size_t total = plan_sizes(r, n, e);
    if (!total) return adept_fail(ADEPT_EINVAL, "model: activation plan for %d x %d overflows", B, T);
    out->kept = e[KEPT] * sizeof(float), out->head = e[HEAD] * sizeof(float);
    out->scratch = e[SCRATCH] * sizeof(float), out->batch = e[BATCH] * sizeof(float);
    out->total = total * sizeof(float), out->head_rows = rows;
    return ADEPT_OK;
}

adept_status adept_model_plan(adept_model *m, int B, int T, int backward) {
    adept_acts *a = &m->acts;
    size_t rows = adept_model_head_rows((size_t)B * T, (size_t)m->cfg.vocab_size, m->head_rows_override);
    /* a pass without backward keeps nothing for it: every layer streams through one slot. It runs in any plan of
       its shape, so one laid for training is reused (evaluation between steps re-lays nothing) */
    int first_kept = backward ? adept_model_stop_layer(m) : m->cfg.num_layers;
    if (a->block && a->B == B && a->T == T && a->be == m->be && a->head_rows == rows &&
        (a->first_kept == first_kept || !backward) && a->recompute == m->recompute)
        return ADEPT_OK;
    const adept_config *c = &m->cfg;
    if (B <= 0 || T <= 0) return adept_fail(ADEPT_EINVAL, "model: batch %d x %d must be positive", B, T);
    if (c->max_position_embeddings > 0 && T > c->max_position_embeddings)
        return adept_fail(ADEPT_EINVAL, "model: sequence length %d exceeds max_position_embeddings %d", T,
                          c->max_position_embeddings);
    adept_model_acts_free(a);
    region r[MAX_REGIONS];
    size_t n = plan_regions(a, c, (size_t)B, (size_t)T, rows, first_kept, m->recompute, (size_t)m->lora_rank, r), e[N_CLASSES];
    size_t total = plan_sizes(r, n, e);
    if (!total) return adept_fail(ADEPT_EINVAL, "model: activation plan for %d x %d overflows", B, T);
    const adept_backend *be = m->be;
    float *block = be->alloc(total * sizeof(float));
    if (!block) return adept_model_fail_oom_acts(m, total * sizeof(float), B, T, first_kept);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        *r[i].ptr = r[i].n ? block + off : NULL;
        off += (r[i].n + 15) / 16 * 16;
    }
    a->block = block;
    a->be = be;
    a->B = B;
    a->T = T;
    a->head_rows = rows;
    a->first_kept = first_kept;
    a->recompute = m->recompute;
    a->slots = (int)plan_slots(c->num_layers, first_kept, m->recompute);
    a->bytes = total * sizeof(float);
    a->kept_bytes = e[KEPT] * sizeof(float), a->head_bytes = e[HEAD] * sizeof(float);
    a->scratch_bytes = e[SCRATCH] * sizeof(float), a->batch_bytes = e[BATCH] * sizeof(float);
    adept_status st = adept_model_rope_tables(be, c, T, a->rope_cos, a->rope_sin);
    if (st != ADEPT_OK) {
        adept_model_acts_free(a);
        return st;
    }
    /* once per process at info level (a sweep loads many models of one shape); every plan at debug level */
    static int any_plan_logged;
    if (!m->plan_logged || adept_log_get_level() <= ADEPT_LOG_DEBUG) {
        adept_memory mem = adept_model_memory(m);
        const double MiB = 1048576.0;
        char split16[96] = ""; /* frozen 16-bit matrices and fp32 rows: adept.plan's weights + masters */
        if (mem.params_16)
            snprintf(split16, sizeof split16, " (fp32 %.1f, 16-bit frozen %.1f)", mem.params_f32 / MiB, mem.params_16 / MiB);
        adept_log(any_plan_logged ? ADEPT_LOG_DEBUG : ADEPT_LOG_INFO, "model memory plan (batch %d x %d): params %.1f MiB%s, grads %.1f MiB, "
                  "activations %.1f MiB (%.1f MiB per sequence; by class: kept for backward %.1f for layers %d.. (%d per-layer "
                  "slots%s), classifier chunk of %zu rows %.1f, backward scratch %.1f, batch %.1f)", B, T, mem.params / MiB, split16,
                  mem.grads / MiB, a->bytes / MiB, a->bytes / MiB / B, a->kept_bytes / MiB, first_kept, a->slots,
                  a->recompute ? ", layers recomputed in backward" : "", rows,
                  a->head_bytes / MiB, a->scratch_bytes / MiB, a->batch_bytes / MiB);
        m->plan_logged = 1;
        any_plan_logged = 1;
    }
    return ADEPT_OK;
}
