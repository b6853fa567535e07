/* Batched greedy generation with a KV cache (adept_model_generate_batch): B prompts of different lengths advance
   together, one token per row per step, each row at its own position. No padding enters any computation: a row
   still reading its prompt feeds its next prompt token, a row past it feeds the token it just produced, and a
   row that has stopped leaves the batch (the active rows are packed into the first slots each step, while the
   KV cache stays indexed by row). The matmuls run over the active rows at once; RoPE, the cache writes and the
   attention of one query against its row's cache run per row with the row's own position, through the same
   backend ops as adept_model_generate, so each row sees the arithmetic of the single-sequence path. */
#include <stdlib.h>
#include <string.h>

#include "adept/tokenizer.h"
#include "model/model_internal.h"

adept_status adept_model_rope_tables(const adept_backend *be, const adept_config *c, int T, float *cos_t,
                                     float *sin_t); /* plan.c */

typedef struct batch_state {
    float *kc, *vc;          /* (L, B, maxT, KD) */
    float *x, *ln, *q, *k, *v, *y, *g, *u, *h, *att, *logits, *rstd, *cos_t, *sin_t;
    int32_t *ids;            /* [B] the ids fed this step, by slot */
    int B, maxT;
} batch_state;

/* Feeds host_ids[j] at position pos[j] of row row[j] for slots j < n; leaves logits [n, V] in s->logits. */
static adept_status step(adept_model *m, batch_state *s, const int32_t *host_ids, const int *row, const int *pos,
                         int n) {
    const adept_config *c = &m->cfg;
    const adept_backend *be = m->be;
    size_t C = c->hidden_size, F = c->intermediate_size, H = c->num_heads, KH = c->num_kv_heads, D = c->head_dim;
    size_t QD = H * D, KD = KH * D, N = (size_t)n;
    double eps = c->rms_norm_eps;
    ADEPT_TRY(be->to_device(s->ids, host_ids, N * sizeof *host_ids));
    adept_model_embed(m, s->x, s->ids, N, C);
    for (int l = 0; l < c->num_layers; l++) {
        if (m->skip[l]) continue;
        be->rmsnorm_forward(s->ln, s->rstd, s->x, adept_model_w(m, l, ADEPT_UNIT_ATTN_NORM), N, C, eps);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_Q], s->q, s->ln, adept_model_w(m, l, ADEPT_UNIT_Q_BIAS), N, C, QD, 0);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_K], s->k, s->ln, adept_model_w(m, l, ADEPT_UNIT_K_BIAS), N, C, KD, 0);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_V], s->v, s->ln, adept_model_w(m, l, ADEPT_UNIT_V_BIAS), N, C, KD, 0);
        if (c->qk_norm) {
            be->rmsnorm_forward(s->q, s->rstd, s->q, adept_model_w(m, l, ADEPT_UNIT_Q_NORM), N * H, D, eps);
            be->rmsnorm_forward(s->k, s->rstd, s->k, adept_model_w(m, l, ADEPT_UNIT_K_NORM), N * KH, D, eps);
        }
        for (size_t j = 0; j < N; j++) {
            size_t p = (size_t)pos[j], r = (size_t)row[j];
            float *kc = s->kc + (((size_t)l * s->B + r) * s->maxT) * KD;
            float *vc = s->vc + (((size_t)l * s->B + r) * s->maxT) * KD;
            float *q = s->q + j * QD, *k = s->k + j * KD;
            be->rope_forward(q, s->cos_t, s->sin_t, 1, 1, H, D, p);
            be->rope_forward(k, s->cos_t, s->sin_t, 1, 1, KH, D, p);
            ADEPT_TRY(be->copy(kc + p * KD, k, KD * sizeof(float)));
            ADEPT_TRY(be->copy(vc + p * KD, s->v + j * KD, KD * sizeof(float)));
            size_t w0 = adept_model_window_start(c, p); /* a sliding window sees the last W positions */
            be->attention_decode(s->y + j * QD, s->att, q, kc + w0 * KD, vc + w0 * KD, p + 1 - w0, KD, H, KH, D);
        }
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_O], s->x, s->y, NULL, N, QD, C, 1);
        be->rmsnorm_forward(s->ln, s->rstd, s->x, adept_model_w(m, l, ADEPT_UNIT_MLP_NORM), N, C, eps);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_GATE], s->g, s->ln, NULL, N, C, F, 0);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_UP], s->u, s->ln, NULL, N, C, F, 0);
        be->swiglu_forward(s->h, s->g, s->u, N * F);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_DOWN], s->x, s->h, NULL, N, F, C, 1);
    }
    be->rmsnorm_forward(s->ln, s->rstd, s->x, adept_tensor_f32(m->params[m->final_norm_idx].value), N, C, eps);
    adept_model_mm_forward(m, adept_model_head_row(m), s->logits, s->ln, NULL, N, C, c->vocab_size, 0);
    return ADEPT_OK;
}

/* argmax with the lowest id on ties, as adept_model_generate's greedy pick */
static int32_t argmax(const float *logits, int V) {
    int best = 0;
    for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
}

/* 1 when the decoded generation of a row contains one of the stop strings. */
static adept_status hits_stop(const adept_generate_batch_opts *o, const int32_t *gen, int n, int *hit) {
    *hit = 0;
    char *text;
    size_t len;
    ADEPT_TRY(adept_tokenizer_decode(o->tok, gen, (size_t)n, 1, &text, &len));
    for (int i = 0; i < o->n_stop && !*hit; i++) *hit = strstr(text, o->stop[i]) != NULL;
    free(text);
    return ADEPT_OK;
}

static adept_status check_request(const adept_model *m, const int32_t *prompts, const int *n_prompt, int B,
                                  const adept_generate_batch_opts *o, int *max_prompt) {
    const adept_config *c = &m->cfg;
    if (B < 0) return adept_fail(ADEPT_EINVAL, "generate_batch: the batch size must be >= 0, got %d", B);
    if (o->max_tokens < 0)
        return adept_fail(ADEPT_EINVAL, "generate_batch: max_tokens must be >= 0, got %d", o->max_tokens);
    if (o->n_stop < 0 || (o->n_stop > 0 && (!o->tok || !o->stop)))
        return adept_fail(ADEPT_EINVAL, "generate_batch: stop strings need a tokenizer to decode the generations");
    for (int i = 0; i < o->n_stop; i++)
        if (!o->stop[i] || !o->stop[i][0])
            return adept_fail(ADEPT_EINVAL, "generate_batch: stop string %d is empty", i + 1);
    *max_prompt = 0;
    size_t off = 0;
    for (int r = 0; r < B; r++) {
        if (n_prompt[r] <= 0)
            return adept_fail(ADEPT_EINVAL, "generate_batch: prompt %d is empty (start from a BOS id)", r + 1);
        for (int i = 0; i < n_prompt[r]; i++)
            if (prompts[off + i] < 0 || prompts[off + i] >= c->vocab_size)
                return adept_fail(ADEPT_EINVAL, "generate_batch: prompt %d: id %d at %d is outside [0, %d)", r + 1,
                                  prompts[off + i], i, c->vocab_size);
        off += (size_t)n_prompt[r];
        if (n_prompt[r] > *max_prompt) *max_prompt = n_prompt[r];
        if (c->max_position_embeddings > 0 && n_prompt[r] + o->max_tokens > c->max_position_embeddings)
            return adept_fail(ADEPT_EINVAL, "generate_batch: prompt %d (%d tokens) + max_tokens (%d) exceeds "
                              "max_position_embeddings %d", r + 1, n_prompt[r], o->max_tokens,
                              c->max_position_embeddings);
    }
    return ADEPT_OK;
}

adept_status adept_model_generate_batch(adept_model *m, const int32_t *prompts, const int *n_prompt, int B,
                                        const adept_generate_batch_opts *o, int32_t *out, int *n_out) {
    const adept_config *c = &m->cfg;
    int max_prompt = 0;
    if (m->lora_rank) /* the cached decode path has no adapter terms */
        return adept_fail(ADEPT_EUNSUPPORTED, "generate_batch: the model has LoRA adapters, which generation does not "
                          "apply; merge_lora first (or load the merged save)");
    ADEPT_TRY(check_request(m, prompts, n_prompt, B, o, &max_prompt));
    for (int r = 0; r < B; r++) n_out[r] = 0;
    if (B == 0 || o->max_tokens == 0) return ADEPT_OK;
    int maxT = max_prompt + o->max_tokens;
    size_t C = c->hidden_size, F = c->intermediate_size, D = c->head_dim, H = (size_t)c->num_heads, QD = H * D;
    size_t KD = (size_t)c->num_kv_heads * D, V = c->vocab_size, L = c->num_layers, NB = (size_t)B;
    size_t qmax = QD > C ? QD : C;
    size_t total = 2 * L * NB * maxT * KD + NB * (C + qmax + QD + KD + KD + QD + 3 * F + V + qmax) + H * maxT +
                   (size_t)maxT * D + NB;
    const adept_backend *be = m->be;
    float *blk = be->alloc(total * sizeof(float));
    float *host_logits = malloc(NB * V * sizeof *host_logits);
    int32_t *feed = malloc(NB * sizeof *feed);
    int *row = malloc(NB * sizeof *row), *pos = malloc(NB * sizeof *pos);
    size_t *start = malloc(NB * sizeof *start);
    if (!blk || !host_logits || !feed || !row || !pos || !start) {
        be->free(blk), free(host_logits), free(feed), free(row), free(pos), free(start);
        return adept_fail(ADEPT_ENOMEM, "generate_batch: out of memory for the KV cache of %d rows x %d positions "
                          "on %s", B, maxT, be->name);
    }
    batch_state s;
    float *p = blk;
#define TAKE(f, n) (s.f = (void *)p, p += (n))
    TAKE(kc, L * NB * maxT * KD); TAKE(vc, L * NB * maxT * KD); TAKE(x, NB * C); TAKE(ln, NB * qmax);
    TAKE(q, NB * QD); TAKE(k, NB * KD); TAKE(v, NB * KD); TAKE(y, NB * QD); TAKE(g, NB * F); TAKE(u, NB * F);
    TAKE(h, NB * F); TAKE(att, H * maxT); TAKE(logits, NB * V); TAKE(rstd, NB * qmax);
    TAKE(cos_t, (size_t)maxT * D / 2); TAKE(sin_t, (size_t)maxT * D / 2); TAKE(ids, NB);
#undef TAKE
    s.B = B;
    s.maxT = maxT;
    size_t off = 0;
    int n = 0; /* active rows, packed into slots 0..n-1 */
    for (int r = 0; r < B; r++) {
        start[r] = off;
        off += (size_t)n_prompt[r];
        row[n] = r, pos[n] = 0, feed[n] = prompts[start[r]];
        n++;
    }
    adept_status st = adept_model_rope_tables(be, c, maxT, s.cos_t, s.sin_t);
    int blas = be->enter();
    while (st == ADEPT_OK && n > 0) {
        st = step(m, &s, feed, row, pos, n);
        if (st == ADEPT_OK) st = be->to_host(host_logits, s.logits, (size_t)n * V * sizeof *host_logits);
        int kept = 0;
        for (int j = 0; j < n && st == ADEPT_OK; j++) {
            int r = row[j], next = pos[j] + 1, done = 0;
            int32_t id;
            if (next < n_prompt[r]) {
                id = prompts[start[r] + (size_t)next]; /* still reading the prompt: the logits are not used */
            } else {
                int32_t *gen = out + (size_t)r * o->max_tokens;
                id = argmax(host_logits + (size_t)j * V, (int)V);
                gen[n_out[r]++] = id;
                done = id == o->stop_id || n_out[r] == o->max_tokens;
                if (!done && o->n_stop > 0) st = hits_stop(o, gen, n_out[r], &done);
            }
            if (!done) row[kept] = r, pos[kept] = next, feed[kept] = id, kept++;
        }
        n = kept;
    }
    be->exit(blas);
    be->free(blk);
    free(host_logits), free(feed), free(row), free(pos), free(start);
    if (st != ADEPT_OK) {
        for (int r = 0; r < B; r++) n_out[r] = 0;
        return adept_fail_context(st, "generate_batch");
    }
    return ADEPT_OK;
}
