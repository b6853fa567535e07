/* Memory of a run before it starts (adept_plan_estimate, adept.plan in Lua): the bytes each class of a model of
   a config needs for a batch shape and a trainable set, from the same formulas the engine allocates with
   (parameter shapes as model.c builds them, slab rows rounded to 64 bytes, the activation plan of plan.c), so
   the estimate and the plan printed at the first step agree. No weights are read or allocated. */
#include "adept/model.h"
#include "model/model_internal.h"

/* Bytes of the rows, as params.c lays them: fp32 rows rounded up to 16 floats, 16-bit rows up to 32 values (both
   64 bytes). `w16` is the dtype of the 2-D rows (F32, or BF16 / F16 for a frozen matrix kept as loaded); norms and
   biases are always fp32. */
static size_t row_bytes(size_t n, adept_dtype dt) {
    return dt == ADEPT_F32 ? (n + 15) / 16 * 16 * 4 : (n + 31) / 32 * 32 * 2;
}

static size_t layer_bytes(const adept_config *c, adept_dtype w16) {
    size_t C = c->hidden_size, F = c->intermediate_size, D = c->head_dim;
    size_t QD = (size_t)c->num_heads * D, KD = (size_t)c->num_kv_heads * D;
    size_t n = 2 * row_bytes(C, ADEPT_F32) + row_bytes(QD * C, w16) + 2 * row_bytes(KD * C, w16) +
               row_bytes(C * QD, w16) + 3 * row_bytes(C * F, w16);
    if (c->attention_bias) n += row_bytes(QD, ADEPT_F32) + 2 * row_bytes(KD, ADEPT_F32);
    if (c->qk_norm) n += 2 * row_bytes(D, ADEPT_F32);
    return n;
}

static size_t outer_bytes(const adept_config *c, adept_dtype w16) {
    size_t V = c->vocab_size, C = c->hidden_size;
    return row_bytes(V * C, w16) + row_bytes(C, ADEPT_F32) + (c->tie_word_embeddings ? 0 : row_bytes(V * C, w16));
}

/* elements of one layer, and of the rows outside the layers */
static size_t layer_elems(const adept_config *c) {
    size_t C = c->hidden_size, F = c->intermediate_size, D = c->head_dim;
    size_t QD = (size_t)c->num_heads * D, KD = (size_t)c->num_kv_heads * D;
    size_t n = 2 * C + QD * C + 2 * KD * C + C * QD + 3 * C * F;
    if (c->attention_bias) n += QD + 2 * KD;
    if (c->qk_norm) n += 2 * D;
    return n;
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
    adept_dtype w16 = r->dtype == ADEPT_BF16 || r->dtype == ADEPT_F16 ? r->dtype : ADEPT_F32;
    if (r->dtype != ADEPT_F32 && w16 == ADEPT_F32)
        return adept_fail(ADEPT_EINVAL, "plan: dtype must be f32, bf16 or f16, got %s", adept_dtype_name(r->dtype));
    size_t params = layer_elems(&c) * (size_t)c.num_layers + (size_t)c.vocab_size * c.hidden_size *
                    (c.tie_word_embeddings ? 1 : 2) + (size_t)c.hidden_size;
    /* bytes of a layer / of the outer rows with fp32 matrices, and with matrices of the loaded dtype */
    size_t layer32 = layer_bytes(&c, ADEPT_F32), outer32 = outer_bytes(&c, ADEPT_F32);
    size_t layer16 = layer_bytes(&c, w16), outer16 = outer_bytes(&c, w16);
    size_t trainable = 0;
    int first_kept = c.num_layers, trained_layers = 0, outer_trains = 0;
    switch (r->trainable) {
    case ADEPT_PLAN_ALL: trainable = params, first_kept = 0, trained_layers = c.num_layers, outer_trains = 1; break;
    case ADEPT_PLAN_NONE: break;
    case ADEPT_PLAN_COPIES: /* the copies of ADEPT's uniform placement: after every L/k-th original layer */
        trained_layers = r->copies;
        if (r->copies > 0) first_kept = cfg->num_layers / r->copies; /* the first copy's index after expansion */
        break;
    case ADEPT_PLAN_LAYERS:
        for (int i = 0; i < r->n_layers; i++) {
            if (r->layers[i] < 0 || r->layers[i] >= c.num_layers)
                return adept_fail(ADEPT_EINVAL, "plan: trainable layer %d is not a layer of the %d-layer model",
                                  r->layers[i], c.num_layers);
            trained_layers++;
            if (r->layers[i] < first_kept) first_kept = r->layers[i];
        }
        break;
    default: return adept_fail(ADEPT_EINVAL, "plan: unknown trainable set %d", (int)r->trainable);
    }
    if (r->trainable != ADEPT_PLAN_ALL) trainable = (size_t)trained_layers * layer_elems(&c);
    adept_plan_split split;
    ADEPT_TRY(adept_model_plan_split(&c, r->batch_size, r->seq_len, 0, first_kept, r->recompute, &split));
    /* weights: every frozen row as stored (16-bit matrices at 2 bytes, fp32 norms and biases); masters: the fp32
       rows of what trains. With fp32 matrices a trainable row is its own master: weights holds it, masters 0. */
    size_t frozen = (size_t)(c.num_layers - trained_layers) * layer16 + (outer_trains ? 0 : outer16);
    size_t trained = (size_t)trained_layers * layer32 + (outer_trains ? outer32 : 0);
    out->weights = w16 == ADEPT_F32 ? frozen + trained : frozen;
    out->masters = w16 == ADEPT_F32 ? 0 : trained;
    out->grads = trained; /* the gradient slab: fp32 rows of what trains */
    out->optimizer = 2 * trained / (size_t)(r->shards > 1 ? r->shards : 1);
    out->activations = split.kept;
    out->workspace = split.head + split.scratch + split.batch;
    out->total = out->weights + out->masters + out->grads + out->optimizer + out->activations + out->workspace;
    out->params = params, out->trainable_params = trainable, out->first_kept = first_kept;
    out->layers = c.num_layers;
    return ADEPT_OK;
}
