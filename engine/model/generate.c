/* Autoregressive generation with a KV cache: one token at a time through the decoder, keys and values of
   past positions kept per layer (on the model's device); greedy or seeded temperature / top-k sampling from the
   last logits, copied to the host once per token. */
#include <math.h>
#include <stdlib.h>

#include "adept/rng.h"
#include "model/model_internal.h"

adept_status adept_model_rope_tables(const adept_backend *be, const adept_config *c, int T, float *cos_t,
                                     float *sin_t); /* plan.c */

typedef struct gen_state {
    float *kc, *vc;          /* (L, maxT, KD) */
    float *x, *ln, *q, *k, *v, *y, *g, *u, *h, *att, *logits, *rstd, *cos_t, *sin_t;
    int32_t *id;             /* the current token's id */
    int maxT;
} gen_state;

/* Runs token `id` at position pos through the model; leaves the logits in s->logits (device). */
static adept_status step(adept_model *m, gen_state *s, int32_t id, int pos) {
    const adept_config *c = &m->cfg;
    const adept_backend *be = m->be;
    size_t C = c->hidden_size, F = c->intermediate_size, H = c->num_heads, KH = c->num_kv_heads, D = c->head_dim;
    size_t QD = H * D, KD = KH * D;
    double eps = c->rms_norm_eps;
    ADEPT_TRY(be->to_device(s->id, &id, sizeof id));
    adept_model_embed(m, s->x, s->id, 1, C);
    for (int l = 0; l < c->num_layers; l++) {
        if (m->skip[l]) continue;
        float *kc = s->kc + ((size_t)l * s->maxT) * KD, *vc = s->vc + ((size_t)l * s->maxT) * KD;
        be->rmsnorm_forward(s->ln, s->rstd, s->x, adept_model_w(m, l, ADEPT_UNIT_ATTN_NORM), 1, C, eps);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_Q], s->q, s->ln, adept_model_w(m, l, ADEPT_UNIT_Q_BIAS), 1, C, QD, 0);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_K], s->k, s->ln, adept_model_w(m, l, ADEPT_UNIT_K_BIAS), 1, C, KD, 0);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_V], s->v, s->ln, adept_model_w(m, l, ADEPT_UNIT_V_BIAS), 1, C, KD, 0);
        if (c->qk_norm) {
            be->rmsnorm_forward(s->q, s->rstd, s->q, adept_model_w(m, l, ADEPT_UNIT_Q_NORM), H, D, eps);
            be->rmsnorm_forward(s->k, s->rstd, s->k, adept_model_w(m, l, ADEPT_UNIT_K_NORM), KH, D, eps);
        }
        be->rope_forward(s->q, s->cos_t, s->sin_t, 1, 1, H, D, (size_t)pos);
        be->rope_forward(s->k, s->cos_t, s->sin_t, 1, 1, KH, D, (size_t)pos);
        ADEPT_TRY(be->copy(kc + (size_t)pos * KD, s->k, KD * sizeof(float)));
        ADEPT_TRY(be->copy(vc + (size_t)pos * KD, s->v, KD * sizeof(float)));
        size_t w0 = adept_model_window_start(c, (size_t)pos); /* a sliding window sees the last W positions */
        be->attention_decode(s->y, s->att, s->q, kc + w0 * KD, vc + w0 * KD, (size_t)pos + 1 - w0, KD, H, KH, D);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_O], s->x, s->y, NULL, 1, QD, C, 1);
        be->rmsnorm_forward(s->ln, s->rstd, s->x, adept_model_w(m, l, ADEPT_UNIT_MLP_NORM), 1, C, eps);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_GATE], s->g, s->ln, NULL, 1, C, F, 0);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_UP], s->u, s->ln, NULL, 1, C, F, 0);
        be->swiglu_forward(s->h, s->g, s->u, F);
        adept_model_mm_forward(m, m->layer_idx[l][ADEPT_UNIT_DOWN], s->x, s->h, NULL, 1, F, C, 1);
    }
    be->rmsnorm_forward(s->ln, s->rstd, s->x, adept_tensor_f32(m->params[m->final_norm_idx].value), 1, C, eps);
    adept_model_mm_forward(m, adept_model_head_row(m), s->logits, s->ln, NULL, 1, C, c->vocab_size, 0);
    return ADEPT_OK;
}

typedef struct cand { float logit; int id; } cand;
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

static int32_t pick(const float *logits, int V, float temperature, int top_k, adept_rng *rng, cand *buf) {
    if (temperature <= 0) {
        int best = 0;
        for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
    for (int i = 0; i < V; i++) { buf[i].logit = logits[i]; buf[i].id = i; }
    int n = V;
    if (top_k > 0 && top_k < V) {
        qsort(buf, (size_t)V, sizeof *buf, cand_cmp);
        n = top_k;
    }
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) if (buf[i].logit > mx) mx = buf[i].logit;
    for (int i = 0; i < n; i++) sum += exp((buf[i].logit - mx) / temperature);
    double u = adept_rng_next_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += exp((buf[i].logit - mx) / temperature);
        if (u < acc) return buf[i].id;
    }
    return buf[n - 1].id;
}

adept_status adept_model_generate(adept_model *m, const int32_t *prompt, int n_prompt, int max_tokens,
                                  float temperature, int top_k, uint64_t seed, int stop_id, int32_t *out, int *n_out) {
    const adept_config *c = &m->cfg;
    *n_out = 0;
    /* the cached decode path has no adapter terms: refuse rather than generate from the base weights */
    if (m->lora_rank)
        return adept_fail(ADEPT_EUNSUPPORTED, "generate: the model has LoRA adapters, which generation does not apply; "
                          "merge_lora first (or load the merged save)");
    if (n_prompt <= 0) return adept_fail(ADEPT_EINVAL, "generate: the prompt is empty (start from a BOS id)");
    if (max_tokens < 0) return adept_fail(ADEPT_EINVAL, "generate: max_tokens must be >= 0, got %d", max_tokens);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
            return adept_fail(ADEPT_EINVAL, "generate: prompt id %d at %d is outside [0, %d)", prompt[i], i, c->vocab_size);
    int maxT = n_prompt + max_tokens;
    if (c->max_position_embeddings > 0 && maxT > c->max_position_embeddings)
        return adept_fail(ADEPT_EINVAL, "generate: prompt (%d) + max_tokens (%d) exceeds max_position_embeddings %d",
                          n_prompt, max_tokens, c->max_position_embeddings);
    size_t C = c->hidden_size, F = c->intermediate_size, D = c->head_dim, H = (size_t)c->num_heads, QD = H * D;
    size_t KD = (size_t)c->num_kv_heads * D, V = c->vocab_size, L = c->num_layers;
    size_t qmax = QD > C ? QD : C;
    size_t total = 2 * L * maxT * KD + C + qmax + QD + KD + KD + QD + 3 * F + H * maxT + V + qmax +
                   (size_t)maxT * D + 1;
    const adept_backend *be = m->be;
    float *blk = be->alloc(total * sizeof(float));
    cand *buf = malloc(V * sizeof *buf);
    float *host_logits = malloc(V * sizeof *host_logits);
    if (!blk || !buf || !host_logits) {
        be->free(blk), free(buf), free(host_logits);
        return adept_fail(ADEPT_ENOMEM, "generate: out of memory for the KV cache of %d positions on %s", maxT,
                          be->name);
    }
    gen_state s;
    float *p = blk;
#define TAKE(f, n) (s.f = (void *)p, p += (n))
    TAKE(kc, L * maxT * KD); TAKE(vc, L * maxT * KD); TAKE(x, C); TAKE(ln, qmax); TAKE(q, QD); TAKE(k, KD);
    TAKE(v, KD); TAKE(y, QD); TAKE(g, F); TAKE(u, F); TAKE(h, F); TAKE(att, H * maxT); TAKE(logits, V);
    TAKE(rstd, qmax); TAKE(cos_t, (size_t)maxT * D / 2); TAKE(sin_t, (size_t)maxT * D / 2); TAKE(id, 1);
#undef TAKE
    s.maxT = maxT;
    adept_status st = adept_model_rope_tables(be, c, maxT, s.cos_t, s.sin_t);
    adept_rng rng = adept_rng_make(seed);
    int n = 0, pos = n_prompt;
    int blas = be->enter();
    for (int i = 0; i < n_prompt && st == ADEPT_OK; i++) st = step(m, &s, prompt[i], i);
    while (st == ADEPT_OK && n < max_tokens) {
        st = be->to_host(host_logits, s.logits, V * sizeof *host_logits);
        if (st != ADEPT_OK) break;
        int32_t id = pick(host_logits, (int)V, temperature, top_k, &rng, buf);
        out[n++] = id;
        if (id == stop_id || n == max_tokens) break;
        st = step(m, &s, id, pos++);
    }
    be->exit(blas);
    be->free(blk);
    free(buf);
    free(host_logits);
    if (st != ADEPT_OK) return adept_fail_context(st, "generate");
    *n_out = n;
    return ADEPT_OK;
}
