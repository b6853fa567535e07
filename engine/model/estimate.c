/* Memory of a run before it starts (adept_plan_estimate, adept.plan in Lua): the bytes each class of a model of
   a config needs for a batch shape and a trainable set, from the same formulas the engine allocates with
   (parameter shapes as model.c builds them, slab rows rounded to 64 bytes, the activation plan of plan.c), so
   the estimate and the plan printed at the first step agree. No weights are read or allocated. */
#include "adept/model.h"
#include "model/model_internal.h"

/* floats of one decoder layer's rows, and of the rows outside the layers, each row rounded up to 16 floats */
static size_t row16(size_t n) { return (n + 15) / 16 * 16; }

static size_t layer_floats(const adept_config *c) {
    size_t C = c->hidden_size, F = c->intermediate_size, D = c->head_dim;
    size_t QD = (size_t)c->num_heads * D, KD = (size_t)c->num_kv_heads * D;
    size_t n = 2 * row16(C) + row16(QD * C) + 2 * row16(KD * C) + row16(C * QD) + 3 * row16(C * F);
    if (c->attention_bias) n += row16(QD) + 2 * row16(KD);
    if (c->qk_norm) n += 2 * row16(D);
    return n;
}

static size_t outer_floats(const adept_config *c) {
    size_t V = c->vocab_size, C = c->hidden_size;
    return row16(V * C) + row16(C) + (c->tie_word_embeddings ? 0 : row16(V * C));
}

adept_status adept_plan_estimate(const adept_config *cfg, const adept_plan_request *r, adept_plan_bytes *out) {
    if (r->batch_size < 1 || r->seq_len < 1)
        return adept_fail(ADEPT_EINVAL, "plan: batch_size and seq_len must be positive, got %d and %d", r->batch_size,
                          r->seq_len);
    if (r->copies < 0 || r->copies > cfg->num_layers)
        return adept_fail(ADEPT_EINVAL, "plan: %d copies of a %d-layer model", r->copies, cfg->num_layers);
    adept_config c = *cfg;
    c.num_layers += r->copies;
    ADEPT_TRY(adept_model_config_check(&c));
    size_t per_layer = layer_floats(&c), outer = outer_floats(&c);
    size_t params = outer + (size_t)c.num_layers * per_layer;
    size_t trainable = 0;
    int first_kept = c.num_layers;
    switch (r->trainable) {
    case ADEPT_PLAN_ALL: trainable = params, first_kept = 0; break;
    case ADEPT_PLAN_NONE: break;
    case ADEPT_PLAN_COPIES: /* the copies of ADEPT's uniform placement: after every L/k-th original layer */
        trainable = (size_t)r->copies * per_layer;
        if (r->copies > 0) first_kept = cfg->num_layers / r->copies; /* the first copy's index after expansion */
        break;
    case ADEPT_PLAN_LAYERS:
        for (int i = 0; i < r->n_layers; i++) {
            if (r->layers[i] < 0 || r->layers[i] >= c.num_layers)
                return adept_fail(ADEPT_EINVAL, "plan: trainable layer %d is not a layer of the %d-layer model",
                                  r->layers[i], c.num_layers);
            trainable += per_layer;
            if (r->layers[i] < first_kept) first_kept = r->layers[i];
        }
        break;
    default: return adept_fail(ADEPT_EINVAL, "plan: unknown trainable set %d", (int)r->trainable);
    }
    adept_plan_split split;
    ADEPT_TRY(adept_model_plan_split(&c, r->batch_size, r->seq_len, 0, first_kept, r->recompute, &split));
    out->weights = params * sizeof(float);
    out->masters = 0; /* trainable rows are f32 weights already: no separate master copy */
    out->grads = trainable * sizeof(float);
    out->optimizer = 2 * trainable * sizeof(float) / (size_t)(r->shards > 1 ? r->shards : 1);
    out->activations = split.kept;
    out->workspace = split.head + split.scratch + split.batch;
    out->total = out->weights + out->masters + out->grads + out->optimizer + out->activations + out->workspace;
    out->params = params, out->trainable_params = trainable, out->first_kept = first_kept;
    out->layers = c.num_layers;
    return ADEPT_OK;
}
