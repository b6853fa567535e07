/* LoRA as rows of the parameter table: adapters A [rank, in] and B [out, rank] per adapted projection, added
   to the table (so optimizers, checkpoints, freezing and gradient norms see them as any row), their forward
   and backward through the backend's matmuls, and the merge W += (alpha/rank) B A. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/rng.h"
#include "model/model_internal.h"

const adept_unit_kind adept_lora_targets[7] = {ADEPT_UNIT_Q, ADEPT_UNIT_K, ADEPT_UNIT_V, ADEPT_UNIT_O,
                                               ADEPT_UNIT_GATE, ADEPT_UNIT_UP, ADEPT_UNIT_DOWN};

int adept_lora_target_index(adept_unit_kind kind) {
    for (int t = 0; t < 7; t++)
        if (adept_lora_targets[t] == kind) return t;
    return -1;
}

static int is_lora(const adept_param *p) { return p->kind == ADEPT_UNIT_LORA_A || p->kind == ADEPT_UNIT_LORA_B; }

adept_status adept_model_lora_reindex(adept_model *m) {
    int L = m->cfg.num_layers;
    free(m->lora_idx);
    m->lora_idx = NULL;
    if (!m->lora_rank) return ADEPT_OK;
    m->lora_idx = malloc(sizeof *m->lora_idx * (size_t)(L > 0 ? L : 1));
    if (!m->lora_idx) return adept_fail(ADEPT_ENOMEM, "model: out of memory");
    for (int l = 0; l < L; l++)
        for (int t = 0; t < 7; t++) m->lora_idx[l][t][0] = m->lora_idx[l][t][1] = -1;
    for (size_t i = 0; i < m->nparams; i++) {
        const adept_param *p = &m->params[i];
        if (!is_lora(p)) continue;
        int t = adept_lora_target_index(p->lora_target);
        if (p->layer < 0 || p->layer >= L || t < 0)
            return adept_fail(ADEPT_ESTATE, "model: adapter row %s has layer %d / target %d", p->name, p->layer, t);
        m->lora_idx[p->layer][t][p->kind == ADEPT_UNIT_LORA_B] = (int)i;
    }
    return ADEPT_OK;
}

int adept_model_lora_rank(const adept_model *m, double *alpha) {
    if (alpha) *alpha = m->lora_alpha;
    return m->lora_rank;
}

int adept_model_lora_trainable(const adept_model *m, int l, int kind) {
    if (!m->lora_idx) return 0;
    for (int t = 0; t < 7; t++) {
        if (kind >= 0 && adept_lora_targets[t] != (adept_unit_kind)kind) continue;
        for (int ab = 0; ab < 2; ab++) {
            int i = m->lora_idx[l][t][ab];
            if (i >= 0 && m->params[i].trainable) return 1;
        }
    }
    return 0;
}

/* "model.layers.L.self_attn.q_proj.lora_A.weight": the HF name of the target with ".weight" replaced */
static void lora_name(int layer, adept_unit_kind target, int b, char *buf, size_t cap) {
    char base[128];
    adept_model_layer_name(layer, target, base, sizeof base);
    size_t n = strlen(base);
    if (n > 7 && !strcmp(base + n - 7, ".weight")) base[n - 7] = 0;
    snprintf(buf, cap, "%s.lora_%c.weight", base, b ? 'B' : 'A');
}

adept_status adept_model_add_lora(adept_model *m, int rank, double alpha, const unsigned char *targets,
                                  const unsigned char *layers, uint64_t seed) {
    int L = m->cfg.num_layers;
    if (m->lora_rank) return adept_fail(ADEPT_ESTATE, "add_lora: the model has adapters already (rank %d); merge_lora first", m->lora_rank);
    if (rank <= 0) return adept_fail(ADEPT_EINVAL, "add_lora: rank must be a positive integer, got %d", rank);
    if (!(alpha > 0) || !isfinite(alpha)) return adept_fail(ADEPT_EINVAL, "add_lora: alpha must be a positive number, got %g", alpha);
    int any = 0;
    for (int k = 0; k < ADEPT_UNIT_KIND_COUNT; k++) {
        if (!targets[k]) continue;
        if (adept_lora_target_index((adept_unit_kind)k) < 0)
            return adept_fail(ADEPT_EINVAL, "add_lora: %s is not a projection LoRA can adapt (q_proj, k_proj, v_proj, "
                              "o_proj, gate_proj, up_proj, down_proj)", adept_unit_kind_name((adept_unit_kind)k));
        any = 1;
    }
    if (!any) return adept_fail(ADEPT_EINVAL, "add_lora: no target projections");
    size_t added = 0;
    for (int l = 0; l < L; l++)
        if (!layers || layers[l])
            for (int k = 0; k < ADEPT_UNIT_KIND_COUNT; k++) added += targets[k] && m->layer_idx[l][k] >= 0 ? 2 : 0;
    if (!added) return adept_fail(ADEPT_EINVAL, "add_lora: no layers chosen");
    for (int l = 0; l < L; l++)
        for (int k = 0; k < ADEPT_UNIT_KIND_COUNT && (!layers || layers[l]); k++) {
            int i = targets[k] ? m->layer_idx[l][k] : -1;
            if (i >= 0 && rank > m->params[i].shape[0] && rank > m->params[i].shape[1])
                return adept_fail(ADEPT_EINVAL, "add_lora: rank %d exceeds both dimensions of %s", rank, m->params[i].name);
        }
    adept_param *rows = calloc(m->nparams + added, sizeof *rows);
    unsigned char *mask = calloc(m->nparams + added, 1);
    if (!rows || !mask) { free(rows); free(mask); return adept_fail(ADEPT_ENOMEM, "add_lora: out of memory"); }
    /* adapter rows follow the rows of their layer, target order within it */
    size_t nr = 0;
    uint64_t first_uid = m->next_uid;
    for (size_t i = 0; i < m->nparams; i++) {
        rows[nr++] = m->params[i];
        int l = m->params[i].layer;
        int last_of_layer = l >= 0 && (i + 1 == m->nparams || m->params[i + 1].layer != l);
        if (!last_of_layer || (layers && !layers[l])) continue;
        for (int t = 0; t < 7; t++) {
            adept_unit_kind k = adept_lora_targets[t];
            int w = targets[k] ? m->layer_idx[l][k] : -1;
            if (w < 0) continue;
            int64_t out = m->params[w].shape[0], in = m->params[w].shape[1];
            char name[128];
            lora_name(l, k, 0, name, sizeof name);
            adept_model_row_init(m, &rows[nr], name, l, ADEPT_UNIT_LORA_A, 2, rank, in);
            rows[nr].lora_target = k;
            mask[nr++] = 1;
            lora_name(l, k, 1, name, sizeof name);
            adept_model_row_init(m, &rows[nr], name, l, ADEPT_UNIT_LORA_B, 2, out, rank);
            rows[nr].lora_target = k;
            mask[nr++] = 1;
        }
    }
    adept_param *old = m->params;
    size_t old_n = m->nparams;
    m->params = rows;
    m->nparams = nr;
    m->lora_rank = rank;
    m->lora_alpha = alpha;
    m->lora_scale = (float)(alpha / rank);
    adept_status st = adept_model_reindex(m);
    if (st == ADEPT_OK) st = adept_model_relay_values(m);
    if (st != ADEPT_OK) {
        m->params = old;
        m->nparams = old_n;
        m->lora_rank = 0;
        m->next_uid = first_uid;
        adept_model_reindex(m);
        free(rows);
        free(mask);
        return adept_fail_context(st, "add_lora");
    }
    free(old);
    adept_model_acts_free(&m->acts); /* the next plan holds the adapters' [N, rank] intermediates */
    /* A as PEFT's kaiming_uniform(a = sqrt(5)): bound sqrt(6 / ((1 + a^2) in)) = 1 / sqrt(in); drawn on the
       host from (seed, row uid) so a row's values do not depend on which others exist */
    for (size_t i = 0; i < m->nparams && st == ADEPT_OK; i++) {
        adept_param *p = &m->params[i];
        if (p->kind != ADEPT_UNIT_LORA_A) continue;
        float *h = malloc(p->numel * sizeof *h);
        if (!h) { st = adept_fail(ADEPT_ENOMEM, "add_lora: out of memory"); break; }
        double bound = 1.0 / sqrt((double)p->shape[1]);
        for (size_t j = 0; j < p->numel; j++) h[j] = (float)((2.0 * adept_rng_uniform(seed, p->uid, j) - 1.0) * bound);
        st = m->be->to_device(adept_tensor_data(p->value), h, p->numel * sizeof *h);
        free(h);
    }
    if (st == ADEPT_OK) st = adept_model_set_trainable_mask(m, mask);
    free(mask);
    return st;
}

void adept_model_lora_forward(adept_model *m, int l, adept_unit_kind kind, size_t s, float *out, const float *x,
                              size_t in, size_t outd) {
    int t = adept_lora_target_index(kind);
    if (!m->lora_idx || t < 0 || m->lora_idx[l][t][0] < 0) return;
    adept_acts *a = &m->acts;
    size_t N = (size_t)a->B * a->T, r = (size_t)m->lora_rank;
    float *u = a->lora_u + (s * 7 + (size_t)t) * N * r;
    float *A = adept_tensor_f32(m->params[m->lora_idx[l][t][0]].value);
    float *Bw = adept_tensor_f32(m->params[m->lora_idx[l][t][1]].value);
    m->be->matmul_forward(u, x, A, NULL, N, in, r, 0);
    m->be->scale(u, N * r, m->lora_scale); /* u = (alpha/rank) A x, kept for B's gradient */
    m->be->matmul_forward(out, u, Bw, NULL, N, r, outd, 1);
}

void adept_model_lora_backward(adept_model *m, int l, adept_unit_kind kind, size_t s, float *d_in, const float *d_out,
                               const float *x, size_t in, size_t outd) {
    int t = adept_lora_target_index(kind);
    if (!m->lora_idx || t < 0 || m->lora_idx[l][t][0] < 0) return;
    adept_acts *a = &m->acts;
    size_t N = (size_t)a->B * a->T, r = (size_t)m->lora_rank;
    const float *u = a->lora_u + (s * 7 + (size_t)t) * N * r;
    adept_param *pa = &m->params[m->lora_idx[l][t][0]], *pb = &m->params[m->lora_idx[l][t][1]];
    float *gA = pa->grad ? adept_tensor_f32(pa->grad) : NULL, *gB = pb->grad ? adept_tensor_f32(pb->grad) : NULL;
    if (!gA && !gB && !d_in) return;
    /* out += u B^T: dB += d_out^T u, du = d_out B; u = s A x: dA += (s du)^T x, d_in += (s du) A */
    m->be->matmul_backward(a->dlora, gB, NULL, d_out, u, adept_tensor_f32(pb->value), N, r, outd, 0);
    if (!gA && !d_in) return;
    m->be->scale(a->dlora, N * r, m->lora_scale);
    m->be->matmul_backward(d_in, gA, NULL, a->dlora, x, adept_tensor_f32(pa->value), N, in, r, 1);
}

/* W (+)= scale * B A in double over the host copies: w [out, in], A [r, in], B [out, r] */
static void add_product(float *w, const float *A, const float *Bw, size_t out, size_t in, size_t r, double scale) {
    for (size_t o = 0; o < out; o++)
        for (size_t j = 0; j < in; j++) {
            double acc = 0;
            for (size_t k = 0; k < r; k++) acc += (double)Bw[o * r + k] * (double)A[k * in + j];
            w[o * in + j] = (float)((double)w[o * in + j] + scale * acc);
        }
}

static adept_status download(adept_model *m, const adept_param *p, float **out) {
    *out = malloc(p->numel * sizeof **out);
    if (!*out) return adept_fail(ADEPT_ENOMEM, "lora: out of memory for %s", p->name);
    adept_status st = m->be->to_host(*out, adept_tensor_data(p->value), p->numel * sizeof **out);
    if (st != ADEPT_OK) { free(*out); *out = NULL; }
    return st;
}

adept_status adept_model_merged_value(adept_model *m, size_t i, float *out) {
    if (i >= m->nparams) return adept_fail(ADEPT_EINVAL, "lora: row %zu out of range", i);
    adept_param *p = &m->params[i];
    ADEPT_TRY(adept_model_row_f32(m, p, out));
    int t = adept_lora_target_index(p->kind);
    if (!m->lora_idx || p->layer < 0 || t < 0 || m->lora_idx[p->layer][t][0] < 0) return ADEPT_OK;
    float *A = NULL, *Bw = NULL;
    adept_status st = download(m, &m->params[m->lora_idx[p->layer][t][0]], &A);
    if (st == ADEPT_OK) st = download(m, &m->params[m->lora_idx[p->layer][t][1]], &Bw);
    if (st == ADEPT_OK)
        add_product(out, A, Bw, (size_t)p->shape[0], (size_t)p->shape[1], (size_t)m->lora_rank,
                    m->lora_alpha / m->lora_rank);
    free(A);
    free(Bw);
    return st;
}

adept_status adept_model_merge_lora(adept_model *m) {
    if (!m->lora_rank) return adept_fail(ADEPT_ESTATE, "merge_lora: the model has no adapters");
    /* every merged value first (nothing changes on failure), then the uploads and the table edit */
    size_t n = m->nparams;
    float **merged = calloc(n, sizeof *merged);
    if (!merged) return adept_fail(ADEPT_ENOMEM, "merge_lora: out of memory");
    adept_status st = ADEPT_OK;
    for (size_t i = 0; i < n && st == ADEPT_OK; i++) {
        adept_param *p = &m->params[i];
        int t = adept_lora_target_index(p->kind);
        if (p->layer < 0 || t < 0 || m->lora_idx[p->layer][t][0] < 0) continue;
        merged[i] = malloc(p->numel * sizeof(float));
        if (!merged[i]) st = adept_fail(ADEPT_ENOMEM, "merge_lora: out of memory");
        else st = adept_model_merged_value(m, i, merged[i]);
    }
    /* a merged row holds values no 16-bit dtype represents: a row kept in bf16/f16 is widened to fp32 first */
    unsigned char *widen = st == ADEPT_OK ? calloc(n, 1) : NULL;
    if (st == ADEPT_OK && !widen) st = adept_fail(ADEPT_ENOMEM, "merge_lora: out of memory");
    for (size_t i = 0; i < n && widen; i++) widen[i] = merged[i] != NULL;
    if (st == ADEPT_OK) st = adept_model_widen_rows(m, widen);
    free(widen);
    for (size_t i = 0; i < n && st == ADEPT_OK; i++)
        if (merged[i]) st = m->be->to_device(adept_tensor_data(m->params[i].value), merged[i], m->params[i].numel * sizeof(float));
    for (size_t i = 0; i < n; i++) free(merged[i]);
    free(merged);
    if (st != ADEPT_OK) return adept_fail_context(st, "merge_lora");
    /* drop the adapter rows (their views are released by the re-lay); the rest keep uid, value and trainability */
    adept_param *rows = calloc(n, sizeof *rows);
    if (!rows) return adept_fail(ADEPT_ENOMEM, "merge_lora: out of memory");
    size_t nr = 0;
    adept_tensor **dropped_v = calloc(n, sizeof *dropped_v), **dropped_g = calloc(n, sizeof *dropped_g);
    size_t nd = 0;
    if (!dropped_v || !dropped_g) { free(rows); free(dropped_v); free(dropped_g); return adept_fail(ADEPT_ENOMEM, "merge_lora: out of memory"); }
    for (size_t i = 0; i < n; i++) {
        if (is_lora(&m->params[i])) { dropped_v[nd] = m->params[i].value; dropped_g[nd++] = m->params[i].grad; continue; }
        rows[nr++] = m->params[i];
    }
    adept_param *old = m->params;
    m->params = rows;
    m->nparams = nr;
    int rank = m->lora_rank;
    m->lora_rank = 0;
    st = adept_model_reindex(m);
    if (st == ADEPT_OK) st = adept_model_relay_values(m);
    if (st != ADEPT_OK) {
        m->params = old;
        m->nparams = n;
        m->lora_rank = rank;
        adept_model_reindex(m);
        free(rows);
        free(dropped_v);
        free(dropped_g);
        return adept_fail_context(st, "merge_lora");
    }
    for (size_t i = 0; i < nd; i++) {
        adept_tensor_free(dropped_v[i]);
        adept_tensor_free(dropped_g[i]);
    }
    free(dropped_v);
    free(dropped_g);
    free(old);
    adept_model_acts_free(&m->acts); /* the plan held the adapters' intermediates */
    return ADEPT_OK;
}
