/* The model's lifecycle and parameter table: config defaults and checks, creation with random init,
   lookup by HF name, trainable flags (frozen rows own no gradient), skip/expanded flags, memory report. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/log.h"
#include "adept/rng.h"

#include "model/model_internal.h"

static const char *const kind_names[ADEPT_UNIT_KIND_COUNT] = {
    "embed_tokens", "lm_head", "norm", "input_layernorm", "q_proj", "k_proj", "v_proj", "o_proj",
    "q_proj_bias", "k_proj_bias", "v_proj_bias", "q_norm", "k_norm", "post_attention_layernorm",
    "gate_proj", "up_proj", "down_proj", "lora_A", "lora_B"};

/* HF name suffix of each per-layer kind, after "model.layers.N." */
static const char *const layer_suffix[ADEPT_UNIT_KIND_COUNT] = {
    [ADEPT_UNIT_ATTN_NORM] = "input_layernorm.weight", [ADEPT_UNIT_Q] = "self_attn.q_proj.weight",
    [ADEPT_UNIT_K] = "self_attn.k_proj.weight",        [ADEPT_UNIT_V] = "self_attn.v_proj.weight",
    [ADEPT_UNIT_O] = "self_attn.o_proj.weight",        [ADEPT_UNIT_Q_BIAS] = "self_attn.q_proj.bias",
    [ADEPT_UNIT_K_BIAS] = "self_attn.k_proj.bias",     [ADEPT_UNIT_V_BIAS] = "self_attn.v_proj.bias",
    [ADEPT_UNIT_Q_NORM] = "self_attn.q_norm.weight",   [ADEPT_UNIT_K_NORM] = "self_attn.k_norm.weight",
    [ADEPT_UNIT_MLP_NORM] = "post_attention_layernorm.weight", [ADEPT_UNIT_GATE] = "mlp.gate_proj.weight",
    [ADEPT_UNIT_UP] = "mlp.up_proj.weight",            [ADEPT_UNIT_DOWN] = "mlp.down_proj.weight"};

const char *adept_unit_kind_name(adept_unit_kind kind) {
    return (unsigned)kind < ADEPT_UNIT_KIND_COUNT ? kind_names[kind] : "unknown";
}

int adept_unit_kind_is_norm(adept_unit_kind kind) {
    return kind == ADEPT_UNIT_FINAL_NORM || kind == ADEPT_UNIT_ATTN_NORM || kind == ADEPT_UNIT_MLP_NORM ||
           kind == ADEPT_UNIT_Q_NORM || kind == ADEPT_UNIT_K_NORM;
}

void adept_model_config_default(adept_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->arch = ADEPT_ARCH_LLAMA;
    strcpy(cfg->architecture, "LlamaForCausalLM");
    cfg->rms_norm_eps = 1e-6;
    cfg->rope_theta = 10000.0;
    cfg->bos_token_id = -1;
    cfg->eos_token_id = -1;
    cfg->dtype = ADEPT_F32;
}

#define POSITIVE(field)                                                                                  \
    if (cfg->field <= 0)                                                                                 \
        return adept_fail(ADEPT_EINVAL, "config: " #field " must be a positive integer, got %d", cfg->field)

adept_status adept_model_config_check(adept_config *cfg) {
    POSITIVE(vocab_size);
    POSITIVE(hidden_size);
    POSITIVE(intermediate_size);
    POSITIVE(num_heads);
    if (cfg->num_layers < 0)
        return adept_fail(ADEPT_EINVAL, "config: num_hidden_layers must be >= 0, got %d", cfg->num_layers);
    if (cfg->num_kv_heads == 0) cfg->num_kv_heads = cfg->num_heads;
    POSITIVE(num_kv_heads);
    if (cfg->num_heads % cfg->num_kv_heads)
        return adept_fail(ADEPT_EINVAL, "config: num_key_value_heads (%d) must divide num_attention_heads (%d)",
                          cfg->num_kv_heads, cfg->num_heads);
    if (cfg->head_dim == 0) {
        if (cfg->hidden_size % cfg->num_heads)
            return adept_fail(ADEPT_EINVAL, "config: hidden_size (%d) is not a multiple of num_attention_heads (%d) "
                              "and head_dim is not given", cfg->hidden_size, cfg->num_heads);
        cfg->head_dim = cfg->hidden_size / cfg->num_heads;
    }
    POSITIVE(head_dim);
    if (cfg->head_dim % 2)
        return adept_fail(ADEPT_EINVAL, "config: head_dim must be even for rotary embeddings, got %d", cfg->head_dim);
    if (cfg->sliding_window < 0)
        return adept_fail(ADEPT_EINVAL, "config: sliding_window must be >= 0 (0: none), got %d", cfg->sliding_window);
    if (cfg->max_position_embeddings < 0)
        return adept_fail(ADEPT_EINVAL, "config: max_position_embeddings must be >= 0, got %d",
                          cfg->max_position_embeddings);
    if (!(cfg->rms_norm_eps > 0) || !isfinite(cfg->rms_norm_eps))
        return adept_fail(ADEPT_EINVAL, "config: rms_norm_eps must be a positive number, got %g", cfg->rms_norm_eps);
    if (!(cfg->rope_theta > 0) || !isfinite(cfg->rope_theta))
        return adept_fail(ADEPT_EINVAL, "config: rope_theta must be a positive number, got %g", cfg->rope_theta);
    if ((size_t)cfg->vocab_size * (size_t)cfg->hidden_size > ((size_t)1 << 40))
        return adept_fail(ADEPT_EINVAL, "config: vocab_size x hidden_size (%d x %d) is too large",
                          cfg->vocab_size, cfg->hidden_size);
    return ADEPT_OK;
}

void adept_model_row_init(adept_model *m, adept_param *p, const char *name, int layer, adept_unit_kind kind, int ndim,
                          int64_t d0, int64_t d1) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->uid = m->next_uid++;
    p->layer = layer;
    p->kind = kind;
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim == 2 ? d1 : 0;
    p->numel = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    p->trainable = 1;
    p->decay = ndim == 2 && !adept_unit_kind_is_norm(kind);
}

adept_status adept_model_reindex(adept_model *m) {
    int L = m->cfg.num_layers;
    free(m->layer_idx);
    m->layer_idx = malloc(sizeof *m->layer_idx * (size_t)(L > 0 ? L : 1));
    if (!m->layer_idx) return adept_fail(ADEPT_ENOMEM, "model: out of memory");
    for (int l = 0; l < L; l++)
        for (int k = 0; k < ADEPT_UNIT_KIND_COUNT; k++) m->layer_idx[l][k] = -1;
    m->embed_idx = m->final_norm_idx = m->lm_head_idx = -1;
    for (size_t i = 0; i < m->nparams; i++) {
        adept_param *p = &m->params[i];
        if (p->layer >= 0) {
            if (p->layer >= L) return adept_fail(ADEPT_ESTATE, "model: row %s has layer %d of %d", p->name, p->layer, L);
            if (p->kind == ADEPT_UNIT_LORA_A || p->kind == ADEPT_UNIT_LORA_B) continue; /* adept_model_lora_reindex */
            m->layer_idx[p->layer][p->kind] = (int)i;
        } else if (p->kind == ADEPT_UNIT_EMBED) m->embed_idx = (int)i;
        else if (p->kind == ADEPT_UNIT_FINAL_NORM) m->final_norm_idx = (int)i;
        else if (p->kind == ADEPT_UNIT_LM_HEAD) m->lm_head_idx = (int)i;
    }
    return adept_model_lora_reindex(m);
}

/* Appends the rows of decoder layer l (HF order) at rows[*n]. */
static void add_layer_rows(adept_model *m, const adept_config *c, int l, adept_param *rows, size_t *n) {
    int64_t C = c->hidden_size, QD = (int64_t)c->num_heads * c->head_dim, KD = (int64_t)c->num_kv_heads * c->head_dim;
    int64_t F = c->intermediate_size, D = c->head_dim;
    struct { adept_unit_kind kind; int ndim; int64_t d0, d1; int present; } spec[] = {
        {ADEPT_UNIT_ATTN_NORM, 1, C, 0, 1},
        {ADEPT_UNIT_Q, 2, QD, C, 1}, {ADEPT_UNIT_Q_BIAS, 1, QD, 0, c->attention_bias},
        {ADEPT_UNIT_K, 2, KD, C, 1}, {ADEPT_UNIT_K_BIAS, 1, KD, 0, c->attention_bias},
        {ADEPT_UNIT_V, 2, KD, C, 1}, {ADEPT_UNIT_V_BIAS, 1, KD, 0, c->attention_bias},
        {ADEPT_UNIT_O, 2, C, QD, 1},
        {ADEPT_UNIT_Q_NORM, 1, D, 0, c->qk_norm}, {ADEPT_UNIT_K_NORM, 1, D, 0, c->qk_norm},
        {ADEPT_UNIT_MLP_NORM, 1, C, 0, 1},
        {ADEPT_UNIT_GATE, 2, F, C, 1}, {ADEPT_UNIT_UP, 2, F, C, 1}, {ADEPT_UNIT_DOWN, 2, C, F, 1}};
    for (size_t s = 0; s < sizeof spec / sizeof spec[0]; s++) {
        if (!spec[s].present) continue;
        char name[128];
        snprintf(name, sizeof name, "model.layers.%d.%s", l, layer_suffix[spec[s].kind]);
        adept_model_row_init(m, &rows[*n], name, l, spec[s].kind, spec[s].ndim, spec[s].d0, spec[s].d1);
        (*n)++;
    }
}

size_t adept_model_layer_name(int layer, adept_unit_kind kind, char *buf, size_t cap) {
    return (size_t)snprintf(buf, cap, "model.layers.%d.%s", layer, layer_suffix[kind] ? layer_suffix[kind] : "?");
}

static adept_status create(const adept_config *cfg_in, adept_device device, uint64_t seed, float init_std,
                           adept_dtype matrices, adept_model **out) {
    *out = NULL;
    adept_config cfg = *cfg_in;
    cfg.config_json = NULL;
    ADEPT_TRY(adept_model_config_check(&cfg));
    const adept_backend *be = adept_backend_for(device);
    if (!be) return adept_fail_context(ADEPT_EUNSUPPORTED, "model create");
    adept_model *m = calloc(1, sizeof *m);
    if (!m) return adept_fail(ADEPT_ENOMEM, "model: out of memory");
    m->cfg = cfg;
    m->be = be;
    m->next_uid = 1;
    adept_status st = ADEPT_OK;
    if (cfg_in->config_json && !(m->cfg.config_json = strdup(cfg_in->config_json))) st = ADEPT_ENOMEM;
    int L = cfg.num_layers;
    size_t cap = 3 + (size_t)L * 14;
    m->params = calloc(cap, sizeof *m->params);
    m->skip = calloc((size_t)(L > 0 ? L : 1), 1);
    m->expanded = calloc((size_t)(L > 0 ? L : 1), 1);
    if (st != ADEPT_OK || !m->params || !m->skip || !m->expanded) {
        adept_model_free(m);
        return adept_fail(ADEPT_ENOMEM, "model: out of memory");
    }
    adept_model_row_init(m, &m->params[m->nparams++], "model.embed_tokens.weight", -1, ADEPT_UNIT_EMBED, 2,
                         cfg.vocab_size, cfg.hidden_size);
    for (int l = 0; l < L; l++) add_layer_rows(m, &cfg, l, m->params, &m->nparams);
    adept_model_row_init(m, &m->params[m->nparams++], "model.norm.weight", -1, ADEPT_UNIT_FINAL_NORM, 1,
                         cfg.hidden_size, 0);
    if (!cfg.tie_word_embeddings)
        adept_model_row_init(m, &m->params[m->nparams++], "lm_head.weight", -1, ADEPT_UNIT_LM_HEAD, 2, cfg.vocab_size,
                             cfg.hidden_size);
    m->grads_deferred = 1; /* the gradient slab waits for its first use (adept_model_grads_materialize) */
    for (size_t i = 0; i < m->nparams; i++)
        if (m->params[i].ndim == 2) m->params[i].storage = matrices;
    if ((st = adept_model_reindex(m)) != ADEPT_OK || (st = adept_model_relay_values(m)) != ADEPT_OK) goto fail;
    /* initial values are drawn on the host and uploaded row by row (norms one, matrices normal(0, std)) */
    for (size_t i = 0; i < m->nparams && st == ADEPT_OK; i++) {
        adept_param *p = &m->params[i];
        int norm = adept_unit_kind_is_norm(p->kind), rand = p->ndim == 2 && init_std > 0;
        if (!norm && !rand) continue;
        float *w = device == ADEPT_CPU ? adept_tensor_f32(p->value) : adept_alloc(p->numel * sizeof(float));
        if (!w) { st = adept_fail(ADEPT_ENOMEM, "model: out of memory"); break; }
        if (norm)
            for (size_t j = 0; j < p->numel; j++) w[j] = 1.0f;
        else
            adept_rng_fill_normal(w, p->numel, seed, 1000 + i, 0.0f, init_std);
        if (device != ADEPT_CPU) {
            st = be->to_device(adept_tensor_data(p->value), w, p->numel * sizeof(float));
            adept_free(w);
        }
    }
    if (st != ADEPT_OK) goto fail;
    *out = m;
    return ADEPT_OK;
fail:
    adept_model_free(m);
    return adept_fail_context(st, "model create");
}

adept_status adept_model_create_on(const adept_config *cfg, adept_device device, uint64_t seed, float init_std,
                                   adept_model **out) {
    return create(cfg, device, seed, init_std, ADEPT_F32, out);
}

adept_status adept_model_create_stored(const adept_config *cfg, adept_device device, adept_dtype matrices,
                                       adept_model **out) {
    if (matrices != ADEPT_F32 && matrices != ADEPT_BF16 && matrices != ADEPT_F16)
        return adept_fail(ADEPT_EINVAL, "model create: matrices can be stored as f32, bf16 or f16, not %s",
                          adept_dtype_name(matrices));
    return create(cfg, device, 0, 0.0f, matrices, out);
}

adept_status adept_model_create(const adept_config *cfg, uint64_t seed, float init_std, adept_model **out) {
    return adept_model_create_on(cfg, ADEPT_CPU, seed, init_std, out);
}

void adept_model_free(adept_model *m) {
    if (!m) return;
    adept_model_slabs_free(m);
    free(m->params);
    free(m->layer_idx);
    free(m->lora_idx);
    free(m->skip);
    free(m->expanded);
    free(m->cfg.config_json);
    adept_model_acts_free(&m->acts);
    free(m);
}

const adept_config *adept_model_config(const adept_model *m) { return &m->cfg; }
size_t adept_model_num_params(const adept_model *m) { return m->nparams; }
int adept_model_num_layers(const adept_model *m) { return m->cfg.num_layers; }

adept_param *adept_model_param(adept_model *m, size_t i) { return i < m->nparams ? &m->params[i] : NULL; }

adept_param *adept_model_find(adept_model *m, const char *name) {
    for (size_t i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

adept_status adept_model_set_skip(adept_model *m, int layer, int skip) {
    if (layer < 0 || layer >= m->cfg.num_layers)
        return adept_fail(ADEPT_EINVAL, "set_skip: layer %d out of range [0, %d)", layer, m->cfg.num_layers);
    m->skip[layer] = skip ? 1 : 0;
    return ADEPT_OK;
}

void adept_model_set_recompute(adept_model *m, int on) { m->recompute = on != 0; }
int adept_model_recompute(const adept_model *m) { return m->recompute; }

void adept_model_set_grad_hook(adept_model *m, adept_grad_ready_fn fn, void *ctx) {
    m->grad_hook = fn;
    m->grad_hook_ctx = fn ? ctx : NULL;
}

void adept_model_grad_group_range(const adept_model *m, int group, size_t *lo, size_t *hi) {
    int L = m->cfg.num_layers;
    size_t a = SIZE_MAX, b = 0;
    for (size_t i = 0; i < m->nparams; i++) {
        const adept_param *p = &m->params[i];
        if (!p->trainable) continue;
        int g = p->layer >= 0 ? p->layer : (p->kind == ADEPT_UNIT_EMBED ? -1 : L);
        if (g != group) continue;
        if (p->grad_offset < a) a = p->grad_offset;
        if (p->grad_offset + p->numel > b) b = p->grad_offset + p->numel;
    }
    *lo = a == SIZE_MAX ? 0 : a;
    *hi = a == SIZE_MAX ? 0 : b;
}

int adept_model_is_skipped(const adept_model *m, int layer) {
    return layer >= 0 && layer < m->cfg.num_layers && m->skip[layer];
}

int adept_model_is_expanded(const adept_model *m, int layer) {
    return layer >= 0 && layer < m->cfg.num_layers && m->expanded[layer];
}

adept_status adept_model_set_expanded(adept_model *m, int layer, int expanded) {
    if (layer < 0 || layer >= m->cfg.num_layers)
        return adept_fail(ADEPT_EINVAL, "set_expanded: layer %d out of range [0, %d)", layer, m->cfg.num_layers);
    m->expanded[layer] = expanded ? 1 : 0;
    return ADEPT_OK;
}

adept_memory adept_model_memory(const adept_model *m) {
    adept_memory r = {0, 0, 0, 0, 0};
    r.params_f32 = m->value_elems * sizeof(float);
    r.params_16 = m->value16_elems * 2;
    r.params = r.params_f32 + r.params_16;
    r.grads = m->grad_elems * sizeof(float);
    r.activations = m->acts.bytes;
    return r;
}

int64_t adept_batch_count_targets(const adept_batch *b) {
    int64_t n = 0;
    for (size_t i = 0; i < (size_t)b->B * b->T; i++) n += b->targets[i] >= 0;
    return n;
}
