/* Hugging Face config.json for the LLaMA family (Llama, Mistral, Qwen2, Qwen3): strict parsing into
   adept_config and writing back the original text with the layer count, layer_types and dtype updated.

   Choices (documented here because config.json is loosely specified):
   - Defaults are those of transformers' config classes: rms_norm_eps 1e-6, rope_theta 10000,
     tie_word_embeddings false, max_position_embeddings 2048 (Llama), 131072 (Mistral), 32768 (Qwen2/3),
     head_dim hidden/heads except Qwen3 (128, as Qwen3Config), Mistral sliding_window 4096.
   - A feature that would change results and that the engine does not implement is an error naming the
     field: rope_scaling other than none/"default"/"linear"/"llama3", sliding-window attention narrower than
     max_position_embeddings, mlp_bias, attention_bias on Llama/Mistral/Qwen3 (it also adds an o_proj bias,
     which the model has no unit for), hidden_act other than silu, partial_rotary_factor != 1, nonzero
     attention_dropout, quantization_config.
   - eos_token_id may be a list (Llama 3): the first entry is kept. "dtype" (newer transformers) is read
     when torch_dtype is absent. rope_parameters (transformers 5) is read like rope_scaling + rope_theta. */
#include "adept/hf_config.h"

#include <cjson/cJSON.h>
#include "adept/input.h"
#include "adept/json.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM (1 << 20)      /* hidden, intermediate, heads*head_dim: far above any released model */
#define MAX_LAYERS 4096
#define MAX_VOCAB (1 << 24)
#define MAX_CONFIG_BYTES (16u << 20)

const char *adept_hf_torch_dtype_name(adept_dtype dtype) {
    switch (dtype) {
    case ADEPT_F32: return "float32";
    case ADEPT_BF16: return "bfloat16";
    case ADEPT_F16: return "float16";
    default: return NULL;
    }
}

void adept_hf_config_clear(adept_config *cfg) {
    if (!cfg) return;
    free(cfg->config_json);
    memset(cfg, 0, sizeof *cfg);
}

adept_status adept_hf_config_copy(adept_config *dst, const adept_config *src) {
    *dst = *src;
    dst->config_json = NULL;
    if (src->config_json && !(dst->config_json = strdup(src->config_json)))
        return adept_fail(ADEPT_ENOMEM, "config.json: out of memory copying the text");
    return ADEPT_OK;
}

/* Printable form of a JSON value for messages ("-3", "\"relu\"", "an object"). */
static const char *describe(const cJSON *v, char *buf, size_t cap) {
    if (cJSON_IsNumber(v)) {
        snprintf(buf, cap, "%.15g", v->valuedouble); /* shortest form that reads back, as Python prints */
        if (strtod(buf, NULL) != v->valuedouble) snprintf(buf, cap, "%.17g", v->valuedouble);
    }
    else if (cJSON_IsString(v)) snprintf(buf, cap, "\"%.60s\"", v->valuestring);
    else if (cJSON_IsBool(v)) snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v)) snprintf(buf, cap, "null");
    else if (cJSON_IsArray(v)) snprintf(buf, cap, "an array");
    else snprintf(buf, cap, "an object");
    return buf;
}

typedef struct parser {
    const cJSON *root;
    const char *label;
} parser;

static const cJSON *field(const parser *p, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(p->root, name);
}

static int present(const cJSON *v) { return v && !cJSON_IsNull(v); }

/* Integer field in [lo, hi]; absent or null gives def (def < lo means required). The message states the
   limits, so a refused value says what would have been accepted. */
static adept_status get_int(const parser *p, const char *name, long lo, long hi, long def, const char *what,
                            int *out) {
    const cJSON *v = field(p, name);
    char buf[96];
    if (!present(v)) {
        if (def < lo) return adept_fail(ADEPT_EFORMAT, "%s: %s is missing (a required field)", p->label, name);
        *out = (int)def;
        return ADEPT_OK;
    }
    int64_t x;
    if (!adept_json_int(v, lo, hi, &x)) {
        if (cJSON_IsNumber(v) && v->valuedouble > (double)hi)
            return adept_fail(ADEPT_EFORMAT, "%s: %s must be %s of at most %ld (this engine's limit), got %s", p->label,
                              name, what, hi, describe(v, buf, sizeof buf));
        return adept_fail(ADEPT_EFORMAT, "%s: %s must be %s, got %s", p->label, name, what,
                          describe(v, buf, sizeof buf));
    }
    *out = (int)x;
    return ADEPT_OK;
}

/* Positive finite number; absent or null gives def. */
static adept_status get_pos_number(const parser *p, const char *name, double def, double *out) {
    const cJSON *v = field(p, name);
    char buf[96];
    if (!present(v)) { *out = def; return ADEPT_OK; }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !(v->valuedouble > 0))
        return adept_fail(ADEPT_EFORMAT, "%s: %s must be a positive number, got %s", p->label, name,
                          describe(v, buf, sizeof buf));
    *out = v->valuedouble;
    return ADEPT_OK;
}

static adept_status get_bool(const parser *p, const char *name, int def, int *out) {
    const cJSON *v = field(p, name);
    char buf[96];
    if (!present(v)) { *out = def; return ADEPT_OK; }
    if (!cJSON_IsBool(v))
        return adept_fail(ADEPT_EFORMAT, "%s: %s must be true or false, got %s", p->label, name,
                          describe(v, buf, sizeof buf));
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return ADEPT_OK;
}

/* Token id: integer >= 0, a non-empty list of them (the first is kept), or null/absent (-1). */
static adept_status get_token_id(const parser *p, const char *name, int *out) {
    const cJSON *v = field(p, name);
    char buf[96];
    *out = -1;
    if (!present(v)) return ADEPT_OK;
    const cJSON *first = v;
    if (cJSON_IsArray(v)) {
        if (cJSON_GetArraySize(v) == 0) return ADEPT_OK;
        const cJSON *e;
        int64_t x;
        cJSON_ArrayForEach(e, v) {
            if (!adept_json_int(e, 0, INT32_MAX, &x))
                return adept_fail(ADEPT_EFORMAT, "%s: %s entries must be non-negative integers, got %s", p->label,
                                  name, describe(e, buf, sizeof buf));
        }
        first = v->child;
    }
    int64_t id;
    if (!adept_json_int(first, 0, INT32_MAX, &id))
        return adept_fail(ADEPT_EFORMAT, "%s: %s must be a non-negative integer or a list of them, got %s",
                          p->label, name, describe(v, buf, sizeof buf));
    *out = (int)id;
    return ADEPT_OK;
}

static adept_status parse_arch(const parser *p, adept_config *c) {
    static const struct { const char *arch, *type; adept_arch id; } known[] = {
        {"LlamaForCausalLM", "llama", ADEPT_ARCH_LLAMA},
        {"MistralForCausalLM", "mistral", ADEPT_ARCH_MISTRAL},
        {"Qwen2ForCausalLM", "qwen2", ADEPT_ARCH_QWEN2},
        {"Qwen3ForCausalLM", "qwen3", ADEPT_ARCH_QWEN3},
    };
    const cJSON *archs = field(p, "architectures"), *type = field(p, "model_type");
    char buf[96];
    int by_arch = -1, by_type = -1;
    if (present(archs)) {
        if (!cJSON_IsArray(archs) || cJSON_GetArraySize(archs) != 1 || !cJSON_IsString(archs->child))
            return adept_fail(ADEPT_EFORMAT, "%s: architectures must be a list of one string, got %s", p->label,
                              describe(archs, buf, sizeof buf));
        for (int i = 0; i < 4; i++)
            if (!strcmp(archs->child->valuestring, known[i].arch)) by_arch = i;
        if (by_arch < 0)
            return adept_fail(ADEPT_EUNSUPPORTED,
                              "%s: architectures: \"%.60s\" is not supported (LlamaForCausalLM, MistralForCausalLM, "
                              "Qwen2ForCausalLM, Qwen3ForCausalLM)", p->label, archs->child->valuestring);
    }
    if (present(type)) {
        if (!cJSON_IsString(type))
            return adept_fail(ADEPT_EFORMAT, "%s: model_type must be a string, got %s", p->label,
                              describe(type, buf, sizeof buf));
        for (int i = 0; i < 4; i++)
            if (!strcmp(type->valuestring, known[i].type)) by_type = i;
        if (by_type < 0)
            return adept_fail(ADEPT_EUNSUPPORTED,
                              "%s: model_type \"%.60s\" is not supported (llama, mistral, qwen2, qwen3)", p->label,
                              type->valuestring);
    }
    if (by_arch < 0 && by_type < 0)
        return adept_fail(ADEPT_EFORMAT, "%s: architectures and model_type are both missing: cannot tell the model "
                          "family", p->label);
    if (by_arch >= 0 && by_type >= 0 && by_arch != by_type)
        return adept_fail(ADEPT_EFORMAT, "%s: architectures \"%s\" disagrees with model_type \"%s\"", p->label,
                          known[by_arch].arch, known[by_type].type);
    int i = by_arch >= 0 ? by_arch : by_type;
    c->arch = known[i].id;
    snprintf(c->architecture, sizeof c->architecture, "%s", known[i].arch);
    return ADEPT_OK;
}

/* A positive finite number field of a rope_scaling object (required). */
static adept_status rope_number(const parser *p, const cJSON *obj, const char *where, const char *key, double *out) {
    char buf[96];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!present(v))
        return adept_fail(ADEPT_EFORMAT, "%s: %s.%s is missing (required by its rope_type)", p->label, where, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !(v->valuedouble > 0))
        return adept_fail(ADEPT_EFORMAT, "%s: %s.%s must be a positive number, got %s", p->label, where, key,
                          describe(v, buf, sizeof buf));
    *out = v->valuedouble;
    return ADEPT_OK;
}

/* rope_scaling / rope_parameters (transformers 5): the default RoPE, "linear" and "llama3" are implemented;
   any other type (dynamic, yarn, longrope, ...) is refused by name. */
static adept_status check_rope(const parser *p, adept_config *c) {
    const char *names[] = {"rope_scaling", "rope_parameters"};
    char buf[96];
    for (int k = 0; k < 2; k++) {
        const cJSON *v = field(p, names[k]);
        if (!present(v)) continue;
        if (!cJSON_IsObject(v))
            return adept_fail(ADEPT_EFORMAT, "%s: %s must be an object or null, got %s", p->label, names[k],
                              describe(v, buf, sizeof buf));
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "rope_type");
        if (!present(t)) t = cJSON_GetObjectItemCaseSensitive(v, "type");
        if (present(t) && !cJSON_IsString(t))
            return adept_fail(ADEPT_EFORMAT, "%s: %s.rope_type must be a string, got %s", p->label, names[k],
                              describe(t, buf, sizeof buf));
        if (!present(t) && k == 0)
            return adept_fail(ADEPT_EFORMAT, "%s: rope_scaling has no type", p->label);
        if (present(t) && !strcmp(t->valuestring, "linear")) {
            c->rope_scaling = ADEPT_ROPE_LINEAR;
            ADEPT_TRY(rope_number(p, v, names[k], "factor", &c->rope_factor));
        } else if (present(t) && !strcmp(t->valuestring, "llama3")) {
            c->rope_scaling = ADEPT_ROPE_LLAMA3;
            double orig = 0;
            ADEPT_TRY(rope_number(p, v, names[k], "factor", &c->rope_factor));
            ADEPT_TRY(rope_number(p, v, names[k], "low_freq_factor", &c->rope_low_freq_factor));
            ADEPT_TRY(rope_number(p, v, names[k], "high_freq_factor", &c->rope_high_freq_factor));
            ADEPT_TRY(rope_number(p, v, names[k], "original_max_position_embeddings", &orig));
            if (orig != floor(orig) || orig > 0x7fffffff)
                return adept_fail(ADEPT_EFORMAT, "%s: %s.original_max_position_embeddings must be a positive integer, "
                                  "got %g", p->label, names[k], orig);
            if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
                return adept_fail(ADEPT_EFORMAT, "%s: %s.high_freq_factor (%g) must be larger than low_freq_factor (%g)",
                                  p->label, names[k], c->rope_high_freq_factor, c->rope_low_freq_factor);
            c->rope_original_max_position = (int)orig;
        } else if (present(t) && strcmp(t->valuestring, "default") != 0) {
            return adept_fail(ADEPT_EUNSUPPORTED, "%s: %s type \"%.40s\" is not supported (default, linear and llama3 "
                              "are implemented)", p->label, names[k], t->valuestring);
        }
        const cJSON *theta = cJSON_GetObjectItemCaseSensitive(v, "rope_theta");
        if (present(theta)) {
            if (!cJSON_IsNumber(theta) || !isfinite(theta->valuedouble) || !(theta->valuedouble > 0))
                return adept_fail(ADEPT_EFORMAT, "%s: %s.rope_theta must be a positive number, got %s", p->label,
                                  names[k], describe(theta, buf, sizeof buf));
            c->rope_theta = theta->valuedouble;
        }
        const cJSON *prf = cJSON_GetObjectItemCaseSensitive(v, "partial_rotary_factor");
        if (present(prf) && !(cJSON_IsNumber(prf) && prf->valuedouble == 1.0))
            return adept_fail(ADEPT_EUNSUPPORTED, "%s: %s.partial_rotary_factor %s is not supported (only 1)",
                              p->label, names[k], describe(prf, buf, sizeof buf));
    }
    return ADEPT_OK;
}

/* Sliding-window attention (Mistral's sliding_window; Qwen2/3's with use_sliding_window). It only changes results
   when the window is shorter than the context; then the attention kernels apply it (key j visible to query i when
   i - W < j <= i, as HF does). Which layers it applies to: all of them for Mistral (and a Llama config that names
   a window); for Qwen2/3 the layers layer_types marks "sliding_attention", or without layer_types those from
   max_window_layers up (HF's Qwen2Config). The engine windows all layers or none: a mix is refused, naming it. */
static adept_status check_sliding(const parser *p, adept_config *c) {
    int active = 0, window = 0, qwen = c->arch == ADEPT_ARCH_QWEN2 || c->arch == ADEPT_ARCH_QWEN3;
    const cJSON *sw = field(p, "sliding_window"), *lt = field(p, "layer_types");
    char buf[96];
    if (c->arch == ADEPT_ARCH_MISTRAL) {
        active = 1;
        if (!sw) window = 4096; /* MistralConfig's default */
        else if (cJSON_IsNull(sw)) active = 0;
    } else if (qwen) {
        ADEPT_TRY(get_bool(p, "use_sliding_window", 0, &active));
        if (active && !present(sw)) active = 0;
    } else if (present(sw)) {
        active = 1; /* a Llama config with a window: treat like the others rather than ignore it */
    }
    if (present(sw)) ADEPT_TRY(get_int(p, "sliding_window", 1, 0x7fffffffL, 0, "a positive integer or null", &window));
    /* the layers layer_types marks sliding; without it, Qwen's max_window_layers rule or every layer */
    int windowed = 0;
    if (present(lt)) {
        if (!cJSON_IsArray(lt))
            return adept_fail(ADEPT_EFORMAT, "%s: layer_types must be a list, got %s", p->label,
                              describe(lt, buf, sizeof buf));
        int n = cJSON_GetArraySize(lt);
        if (n != c->num_layers)
            return adept_fail(ADEPT_EFORMAT, "%s: layer_types has %d entries but num_hidden_layers is %d", p->label, n,
                              c->num_layers);
        const cJSON *e;
        cJSON_ArrayForEach(e, lt) {
            int sliding = cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention");
            if (!sliding && !(cJSON_IsString(e) && !strcmp(e->valuestring, "full_attention")))
                return adept_fail(ADEPT_EUNSUPPORTED, "%s: layer_types entry %s is not supported (full_attention or "
                                  "sliding_attention)", p->label, describe(e, buf, sizeof buf));
            windowed += sliding;
        }
        if (!qwen && windowed == 0) active = 0;
    } else if (qwen) {
        int mwl = 0;
        ADEPT_TRY(get_int(p, "max_window_layers", 0, 0x7fffffffL, 28, "a non-negative integer", &mwl));
        windowed = mwl < c->num_layers ? c->num_layers - mwl : 0;
    } else {
        windowed = c->num_layers;
    }
    if (!active || window >= c->max_position_embeddings || windowed == 0) {
        c->sliding_window = 0; /* no layer is windowed, or the window spans the whole context */
        return ADEPT_OK;
    }
    if (windowed != c->num_layers)
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: a sliding window of %d on %d of the %d layers (%s) is not supported: "
                          "the engine windows every layer or none", p->label, window, windowed, c->num_layers,
                          present(lt) ? "layer_types" : "max_window_layers");
    c->sliding_window = window;
    return ADEPT_OK;
}

/* Fields that select features the engine does not implement. */
static adept_status check_unsupported(const parser *p, const adept_config *c) {
    char buf[96];
    int b = 0;
    ADEPT_TRY(get_bool(p, "mlp_bias", 0, &b));
    if (b) return adept_fail(ADEPT_EUNSUPPORTED, "%s: mlp_bias=true is not supported (no MLP biases)", p->label);
    const char *acts[] = {"hidden_act", "hidden_activation"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = field(p, acts[k]);
        if (!present(v)) continue;
        if (!cJSON_IsString(v) || strcmp(v->valuestring, "silu") != 0)
            return adept_fail(ADEPT_EUNSUPPORTED, "%s: %s %s is not supported (only silu)", p->label, acts[k],
                              describe(v, buf, sizeof buf));
    }
    const cJSON *prf = field(p, "partial_rotary_factor");
    if (present(prf) && !(cJSON_IsNumber(prf) && prf->valuedouble == 1.0))
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: partial_rotary_factor %s is not supported (only 1)", p->label,
                          describe(prf, buf, sizeof buf));
    const cJSON *drop = field(p, "attention_dropout");
    if (present(drop) && !(cJSON_IsNumber(drop) && drop->valuedouble == 0.0))
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: attention_dropout %s is not supported (only 0)", p->label,
                          describe(drop, buf, sizeof buf));
    if (present(field(p, "quantization_config")))
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: quantization_config: quantized checkpoints are not supported",
                          p->label);
    (void)c;
    return ADEPT_OK;
}

static adept_status parse_fields(const parser *p, adept_config *c) {
    const char *pos = "a positive integer";
    ADEPT_TRY(parse_arch(p, c));
    ADEPT_TRY(get_int(p, "vocab_size", 1, MAX_VOCAB, 0, pos, &c->vocab_size));
    ADEPT_TRY(get_int(p, "hidden_size", 1, MAX_DIM, 0, pos, &c->hidden_size));
    ADEPT_TRY(get_int(p, "intermediate_size", 1, MAX_DIM, 0, pos, &c->intermediate_size));
    ADEPT_TRY(get_int(p, "num_hidden_layers", 1, MAX_LAYERS, 0, pos, &c->num_layers));
    ADEPT_TRY(get_int(p, "num_attention_heads", 1, MAX_DIM, 0, pos, &c->num_heads));
    ADEPT_TRY(get_int(p, "num_key_value_heads", 1, MAX_DIM, c->num_heads, pos, &c->num_kv_heads));
    if (c->num_heads % c->num_kv_heads)
        return adept_fail(ADEPT_EFORMAT, "%s: num_key_value_heads %d must divide num_attention_heads %d", p->label,
                          c->num_kv_heads, c->num_heads);
    long def_head = c->arch == ADEPT_ARCH_QWEN3 ? 128 : 0;
    if (!def_head) {
        if (!present(field(p, "head_dim")) && c->hidden_size % c->num_heads)
            return adept_fail(ADEPT_EFORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d (and "
                              "head_dim is not given)", p->label, c->hidden_size, c->num_heads);
        def_head = c->hidden_size / c->num_heads;
    }
    ADEPT_TRY(get_int(p, "head_dim", 1, MAX_DIM, def_head, pos, &c->head_dim));
    if (c->head_dim % 2)
        return adept_fail(ADEPT_EFORMAT, "%s: head_dim must be even for rotary embeddings, got %d", p->label,
                          c->head_dim);
    if ((long)c->num_heads * c->head_dim > MAX_DIM)
        return adept_fail(ADEPT_EFORMAT, "%s: num_attention_heads * head_dim = %ld is out of range", p->label,
                          (long)c->num_heads * c->head_dim);
    long def_pos = c->arch == ADEPT_ARCH_LLAMA ? 2048 : c->arch == ADEPT_ARCH_MISTRAL ? 131072 : 32768;
    ADEPT_TRY(get_int(p, "max_position_embeddings", 1, 0x7fffffffL, def_pos, pos, &c->max_position_embeddings));
    ADEPT_TRY(get_pos_number(p, "rms_norm_eps", 1e-6, &c->rms_norm_eps));
    ADEPT_TRY(get_pos_number(p, "rope_theta", 10000.0, &c->rope_theta));
    ADEPT_TRY(check_rope(p, c));
    ADEPT_TRY(get_bool(p, "tie_word_embeddings", 0, &c->tie_word_embeddings));
    int bias = 0;
    ADEPT_TRY(get_bool(p, "attention_bias", 0, &bias));
    if (c->arch == ADEPT_ARCH_QWEN2) {
        c->attention_bias = 1; /* Qwen2 always has q/k/v biases (and none on o_proj) */
    } else if (bias) {
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: attention_bias=true is not supported for %s (it adds an o_proj "
                          "bias, which this engine does not implement)", p->label, c->architecture);
    }
    c->qk_norm = c->arch == ADEPT_ARCH_QWEN3;
    ADEPT_TRY(get_token_id(p, "bos_token_id", &c->bos_token_id));
    ADEPT_TRY(get_token_id(p, "eos_token_id", &c->eos_token_id));
    c->dtype = ADEPT_F32;
    const cJSON *dt = field(p, "torch_dtype");
    if (!present(dt)) dt = field(p, "dtype");
    if (present(dt)) {
        char buf[96];
        adept_dtype d;
        if (!cJSON_IsString(dt) || adept_dtype_parse(dt->valuestring, &d) != ADEPT_OK ||
            !adept_hf_torch_dtype_name(d))
            return adept_fail(ADEPT_EFORMAT, "%s: torch_dtype must be \"float32\", \"bfloat16\" or \"float16\", got %s",
                              p->label, describe(dt, buf, sizeof buf));
        c->dtype = d;
    }
    ADEPT_TRY(check_sliding(p, c));
    ADEPT_TRY(check_unsupported(p, c));
    return ADEPT_OK;
}

adept_status adept_hf_config_parse(const char *json, size_t len, const char *label, adept_config *out) {
    memset(out, 0, sizeof *out);
    if (!label) label = "config.json";
    if (len > MAX_CONFIG_BYTES)
        return adept_fail(ADEPT_EFORMAT, "%s: %zu bytes is too large for a config", label, len);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return adept_fail(ADEPT_EFORMAT, "%s: not valid JSON", label);
    adept_status s = adept_json_check_unique(root, label);
    if (s == ADEPT_OK && !cJSON_IsObject(root)) s = adept_fail(ADEPT_EFORMAT, "%s: the top level must be a JSON object", label);
    parser p = {root, label};
    adept_config c;
    memset(&c, 0, sizeof c);
    if (s == ADEPT_OK) s = parse_fields(&p, &c);
    cJSON_Delete(root);
    if (s != ADEPT_OK) return s;
    if (!(c.config_json = malloc(len + 1))) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", label);
    memcpy(c.config_json, json, len);
    c.config_json[len] = '\0';
    *out = c;
    return ADEPT_OK;
}

adept_status adept_hf_config_read(const char *path, adept_config *out) {
    memset(out, 0, sizeof *out);
    char *buf;
    size_t n;
    ADEPT_TRY(adept_input_read(path, "config.json", MAX_CONFIG_BYTES, &buf, &n));
    const char *base = strrchr(path, '/');
    adept_status s = adept_hf_config_parse(buf, n, base ? base + 1 : path, out);
    free(buf);
    return s;
}

static char *print_exact(cJSON *root);

adept_status adept_hf_config_strip_layers(adept_config *cfg, const int *expanded, int n_expanded, int n_layers) {
    if (!cfg->config_json || n_expanded == 0) return ADEPT_OK;
    cJSON *root = cJSON_Parse(cfg->config_json);
    if (!root) return adept_fail(ADEPT_EFORMAT, "config.json: not valid JSON");
    cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    adept_status s = ADEPT_OK;
    if (cJSON_IsArray(lt)) {
        if (cJSON_GetArraySize(lt) != n_layers) {
            s = adept_fail(ADEPT_EFORMAT, "config.json: layer_types has %d entries, expected %d",
                           cJSON_GetArraySize(lt), n_layers);
        } else {
            /* delete from the highest index down so lower indices stay valid */
            for (int i = n_layers - 1; i >= 0; i--)
                for (int k = 0; k < n_expanded; k++)
                    if (expanded[k] == i) { cJSON_DeleteItemFromArray(lt, i); break; }
            char *text = print_exact(root);
            if (!text) s = adept_fail(ADEPT_ENOMEM, "config.json: out of memory");
            else { free(cfg->config_json); cfg->config_json = text; }
        }
    }
    cJSON_Delete(root);
    return s;
}

/* cJSON prints doubles with 15 digits when that reads back "close enough"; configs must survive a save
   exactly, so every number becomes a raw literal in its shortest form that reads back bit for bit. */
static int exact_numbers(cJSON *node) {
    for (cJSON *it = node ? node->child : NULL, *next; it; it = next) {
        next = it->next;
        if (cJSON_IsNumber(it)) {
            char buf[40];
            double d = it->valuedouble;
            if (!isfinite(d)) continue; /* cJSON writes null, as Python's json would refuse them anyway */
            for (int prec = 15; prec <= 17; prec++) {
                snprintf(buf, sizeof buf, "%.*g", prec, d);
                if (strtod(buf, NULL) == d) break;
            }
            cJSON *raw = cJSON_CreateRaw(buf);
            /* ReplaceItemViaPointer keeps the position but not the key (cJSON frees it with free()) */
            if (raw && it->string && !(raw->string = strdup(it->string))) { cJSON_Delete(raw); return 0; }
            if (!raw || !cJSON_ReplaceItemViaPointer(node, it, raw)) { cJSON_Delete(raw); return 0; }
        } else if ((cJSON_IsObject(it) || cJSON_IsArray(it)) && !exact_numbers(it)) {
            return 0;
        }
    }
    return 1;
}

static char *print_exact(cJSON *root) { return exact_numbers(root) ? cJSON_Print(root) : NULL; }

/* Replaces or adds root[key] = item (item is consumed). */
static int set_item(cJSON *root, const char *key, cJSON *item) {
    if (!item) return 0;
    if (cJSON_GetObjectItemCaseSensitive(root, key)) return cJSON_ReplaceItemInObjectCaseSensitive(root, key, item);
    return cJSON_AddItemToObject(root, key, item);
}

static cJSON *config_from_fields(const adept_config *c) {
    static const char *types[] = {"llama", "mistral", "qwen2", "qwen3"};
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON *archs = cJSON_AddArrayToObject(root, "architectures");
    if (archs) cJSON_AddItemToArray(archs, cJSON_CreateString(c->architecture[0] ? c->architecture : "LlamaForCausalLM"));
    cJSON_AddStringToObject(root, "model_type", types[c->arch]);
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(root, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(root, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(root, "num_key_value_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    if (c->max_position_embeddings > 0) /* 0: unknown (models built from fields); HF's default applies */
        cJSON_AddNumberToObject(root, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(root, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(root, "rope_theta", c->rope_theta);
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tie_word_embeddings);
    if (c->arch != ADEPT_ARCH_QWEN2) cJSON_AddBoolToObject(root, "attention_bias", 0);
    if (c->arch == ADEPT_ARCH_LLAMA) cJSON_AddBoolToObject(root, "mlp_bias", 0);
    /* absent, MistralConfig would default to a 4096-token window: say explicitly whether there is one */
    if (c->arch == ADEPT_ARCH_MISTRAL) {
        if (c->sliding_window > 0) cJSON_AddNumberToObject(root, "sliding_window", c->sliding_window);
        else cJSON_AddNullToObject(root, "sliding_window");
    }
    if (c->arch == ADEPT_ARCH_QWEN2 || c->arch == ADEPT_ARCH_QWEN3) {
        cJSON_AddBoolToObject(root, "use_sliding_window", c->sliding_window > 0);
        if (c->sliding_window > 0) cJSON_AddNumberToObject(root, "sliding_window", c->sliding_window);
    }
    if (c->arch == ADEPT_ARCH_LLAMA && c->sliding_window > 0)
        cJSON_AddNumberToObject(root, "sliding_window", c->sliding_window);
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(root, "bos_token_id", c->bos_token_id);
    if (c->eos_token_id >= 0) cJSON_AddNumberToObject(root, "eos_token_id", c->eos_token_id);
    if (c->rope_scaling == ADEPT_ROPE_DEFAULT) {
        cJSON_AddNullToObject(root, "rope_scaling");
    } else {
        cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", c->rope_scaling == ADEPT_ROPE_LINEAR ? "linear" : "llama3");
        cJSON_AddNumberToObject(rs, "factor", c->rope_factor);
        if (c->rope_scaling == ADEPT_ROPE_LLAMA3) {
            cJSON_AddNumberToObject(rs, "low_freq_factor", c->rope_low_freq_factor);
            cJSON_AddNumberToObject(rs, "high_freq_factor", c->rope_high_freq_factor);
            cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_original_max_position);
        }
    }
    cJSON_AddNumberToObject(root, "initializer_range", 0.02);
    cJSON_AddBoolToObject(root, "use_cache", 1);
    return root;
}

adept_status adept_hf_config_to_json(const adept_config *cfg, int n_layers, const unsigned char *expanded,
                                     adept_dtype dtype, char **out) {
    *out = NULL;
    const char *dname = adept_hf_torch_dtype_name(dtype);
    if (!dname)
        return adept_fail(ADEPT_EUNSUPPORTED, "config.json: cannot save weights as %s (f32, bf16 or f16)",
                          adept_dtype_name(dtype));
    cJSON *root = cfg->config_json ? cJSON_Parse(cfg->config_json) : config_from_fields(cfg);
    if (!root) return adept_fail(ADEPT_EFORMAT, "config.json: the stored text is not valid JSON");
    adept_status s = ADEPT_OK;
    int ok = set_item(root, "num_hidden_layers", cJSON_CreateNumber(n_layers)) &&
             set_item(root, "torch_dtype", cJSON_CreateString(dname));
    if (ok && cJSON_GetObjectItemCaseSensitive(root, "dtype")) ok = set_item(root, "dtype", cJSON_CreateString(dname));
    cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    if (ok && cJSON_IsArray(lt)) {
        int n_base = 0;
        for (int i = 0; i < n_layers; i++) n_base += !(expanded && expanded[i]);
        int have = cJSON_GetArraySize(lt);
        if (have != n_base) {
            s = adept_fail(ADEPT_ESTATE, "config.json: layer_types has %d entries for %d original layers", have,
                           n_base);
        } else {
            cJSON *nl = cJSON_CreateArray();
            const cJSON *src = lt->child;
            const char *prev = "full_attention";
            for (int i = 0; i < n_layers && nl; i++) {
                const char *t = prev;
                if (!(expanded && expanded[i]) && src) {
                    t = cJSON_IsString(src) ? src->valuestring : "full_attention";
                    src = src->next;
                }
                cJSON_AddItemToArray(nl, cJSON_CreateString(t));
                prev = t;
            }
            ok = set_item(root, "layer_types", nl);
        }
    }
    if (s == ADEPT_OK && !ok) s = adept_fail(ADEPT_ENOMEM, "config.json: out of memory");
    if (s == ADEPT_OK && !(*out = print_exact(root))) s = adept_fail(ADEPT_ENOMEM, "config.json: out of memory");
    cJSON_Delete(root);
    return s;
}
