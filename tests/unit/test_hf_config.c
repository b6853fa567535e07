/* config.json parsing: defaults per architecture, every rejection path (its status and the field named in the
   message), and the writer (layer count, dtype, layer_types extended for expanded layers, unknown fields kept). */
#include <cjson/cJSON.h>
#include <string.h>

#include "adept/hf_config.h"
#include "check.h"

/* A base Llama config; `set` is "key": value pairs that replace base keys of the same name (or are added);
   `omit` is a comma-separated list of base keys to leave out. */
static const char *base_pairs[][2] = {
    {"architectures", "[\"LlamaForCausalLM\"]"}, {"model_type", "\"llama\""}, {"vocab_size", "512"},
    {"hidden_size", "64"}, {"intermediate_size", "172"}, {"num_hidden_layers", "5"},
    {"num_attention_heads", "8"}, {"num_key_value_heads", "4"}, {"rms_norm_eps", "1e-05"},
    {"rope_theta", "10000.0"}, {"tie_word_embeddings", "true"}, {"max_position_embeddings", "512"},
    {"bos_token_id", "1"}, {"eos_token_id", "2"}, {"torch_dtype", "\"float32\""}, {"hidden_act", "\"silu\""},
};

static char json_buf[8192];

static const char *make(const char *omit, const char *k1, const char *v1, const char *k2, const char *v2) {
    char *p = json_buf;
    p += sprintf(p, "{");
    int first = 1;
    for (size_t i = 0; i < sizeof base_pairs / sizeof base_pairs[0]; i++) {
        const char *k = base_pairs[i][0];
        if (omit && strstr(omit, k)) continue;
        if ((k1 && !strcmp(k, k1)) || (k2 && !strcmp(k, k2))) continue;
        p += sprintf(p, "%s\"%s\": %s", first ? "" : ", ", k, base_pairs[i][1]);
        first = 0;
    }
    if (k1) { p += sprintf(p, "%s\"%s\": %s", first ? "" : ", ", k1, v1); first = 0; }
    if (k2) p += sprintf(p, "%s\"%s\": %s", first ? "" : ", ", k2, v2);
    sprintf(p, "}");
    return json_buf;
}

static adept_status parse(const char *json, adept_config *c) {
    return adept_hf_config_parse(json, strlen(json), "config.json", c);
}

/* Expects failure with `status` and a message containing `needle` (the field name). */
static void expect_error(const char *json, adept_status status, const char *needle) {
    adept_config c;
    adept_status s = parse(json, &c);
    CHECK(s == status);
    CHECK(strstr(adept_last_error(), needle) != NULL);
    if (s != status || !strstr(adept_last_error(), needle))
        fprintf(stderr, "  json: %s\n  got %s: %s (wanted '%s')\n", json, adept_status_name(s), adept_last_error(),
                needle);
    else
        printf("ok: %s\n", adept_last_error());
    adept_hf_config_clear(&c);
}

static void test_basic(void) {
    adept_config c;
    CHECK_OK(parse(make(NULL, NULL, NULL, NULL, NULL), &c));
    CHECK(c.arch == ADEPT_ARCH_LLAMA);
    CHECK(!strcmp(c.architecture, "LlamaForCausalLM"));
    CHECK(c.vocab_size == 512 && c.hidden_size == 64 && c.intermediate_size == 172 && c.num_layers == 5);
    CHECK(c.num_heads == 8 && c.num_kv_heads == 4 && c.head_dim == 8);
    CHECK(c.rms_norm_eps == 1e-5 && c.rope_theta == 10000.0 && c.tie_word_embeddings == 1);
    CHECK(c.attention_bias == 0 && c.qk_norm == 0 && c.bos_token_id == 1 && c.eos_token_id == 2);
    CHECK(c.dtype == ADEPT_F32 && c.max_position_embeddings == 512);
    CHECK(c.config_json && strstr(c.config_json, "\"hidden_size\": 64"));
    adept_hf_config_clear(&c);
    CHECK(c.config_json == NULL);

    /* defaults: kv heads = heads, eps 1e-6, theta 1e4, untied, no token ids, f32, max_pos 2048 */
    CHECK_OK(parse(make("num_key_value_heads,rms_norm_eps,rope_theta,tie_word_embeddings,bos_token_id,eos_token_id,"
                        "torch_dtype,max_position_embeddings", NULL, NULL, NULL, NULL), &c));
    CHECK(c.num_kv_heads == 8 && c.rms_norm_eps == 1e-6 && c.rope_theta == 10000.0 && !c.tie_word_embeddings);
    CHECK(c.bos_token_id == -1 && c.eos_token_id == -1 && c.dtype == ADEPT_F32 && c.max_position_embeddings == 2048);
    adept_hf_config_clear(&c);

    /* model_type alone is enough; eos as a list keeps the first; newer "dtype" key */
    CHECK_OK(parse(make("architectures,torch_dtype", "eos_token_id", "[7, 8, 9]", "dtype", "\"bfloat16\""), &c));
    CHECK(c.arch == ADEPT_ARCH_LLAMA && c.eos_token_id == 7 && c.dtype == ADEPT_BF16);
    adept_hf_config_clear(&c);
    CHECK_OK(parse(make(NULL, "torch_dtype", "\"float16\"", "rope_scaling", "null"), &c));
    CHECK(c.dtype == ADEPT_F16);
    adept_hf_config_clear(&c);
    CHECK_OK(parse(make(NULL, "rope_scaling", "{\"rope_type\": \"default\"}", "head_dim", "null"), &c));
    CHECK(c.head_dim == 8);
    adept_hf_config_clear(&c);
    CHECK_OK(parse(make(NULL, "rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": 500000.0}", NULL, NULL), &c));
    CHECK(c.rope_theta == 500000.0);
    adept_hf_config_clear(&c);
}

static void test_variants(void) {
    adept_config c;
    CHECK_OK(parse(make("model_type", "architectures", "[\"Qwen2ForCausalLM\"]", "use_sliding_window", "false"), &c));
    CHECK(c.arch == ADEPT_ARCH_QWEN2 && c.attention_bias == 1 && !c.qk_norm);
    adept_hf_config_clear(&c);
    /* Qwen3: q/k norm, head_dim explicit or HF's default 128 */
    CHECK_OK(parse(make("model_type", "architectures", "[\"Qwen3ForCausalLM\"]", "head_dim", "16"), &c));
    CHECK(c.arch == ADEPT_ARCH_QWEN3 && c.qk_norm && c.head_dim == 16 && !c.attention_bias);
    adept_hf_config_clear(&c);
    CHECK_OK(parse(make("model_type", "architectures", "[\"Qwen3ForCausalLM\"]", NULL, NULL), &c));
    CHECK(c.head_dim == 128);
    adept_hf_config_clear(&c);
    /* Mistral: a null window, or a window as long as the context, changes nothing */
    CHECK_OK(parse(make("model_type", "architectures", "[\"MistralForCausalLM\"]", "sliding_window", "null"), &c));
    CHECK(c.arch == ADEPT_ARCH_MISTRAL);
    adept_hf_config_clear(&c);
    CHECK_OK(parse(make("model_type", "architectures", "[\"MistralForCausalLM\"]", "sliding_window", "512"), &c));
    CHECK(c.sliding_window == 0); /* as long as the context: no effect */
    adept_hf_config_clear(&c);
    /* Qwen2 with a window that is not used */
    CHECK_OK(parse(make("model_type", "architectures", "[\"Qwen2ForCausalLM\"]", "sliding_window", "4"), &c));
    adept_hf_config_clear(&c);
    CHECK_OK(parse(make(NULL, "layer_types", "[\"full_attention\",\"full_attention\",\"full_attention\","
                        "\"full_attention\",\"full_attention\"]", NULL, NULL), &c));
    adept_hf_config_clear(&c);
}

static void test_errors(void) {
    adept_config c;
    expect_error("{\"hidden_size\": ", ADEPT_EFORMAT, "not valid JSON");
    expect_error("[1, 2]", ADEPT_EFORMAT, "top level");
    expect_error(make(NULL, "hidden_size", "-3", NULL, NULL), ADEPT_EFORMAT,
                 "hidden_size must be a positive integer, got -3");
    expect_error(make(NULL, "hidden_size", "64.5", NULL, NULL), ADEPT_EFORMAT, "hidden_size");
    expect_error(make(NULL, "hidden_size", "\"64\"", NULL, NULL), ADEPT_EFORMAT, "hidden_size");
    expect_error(make(NULL, "hidden_size", "1e300", NULL, NULL), ADEPT_EFORMAT, "hidden_size");
    expect_error(make("hidden_size", NULL, NULL, NULL, NULL), ADEPT_EFORMAT, "hidden_size is missing");
    expect_error(make("vocab_size", NULL, NULL, NULL, NULL), ADEPT_EFORMAT, "vocab_size is missing");
    expect_error(make(NULL, "vocab_size", "0", NULL, NULL), ADEPT_EFORMAT, "vocab_size");
    expect_error(make(NULL, "intermediate_size", "true", NULL, NULL), ADEPT_EFORMAT, "intermediate_size");
    expect_error(make(NULL, "num_hidden_layers", "0", NULL, NULL), ADEPT_EFORMAT, "num_hidden_layers");
    expect_error(make(NULL, "num_hidden_layers", "100000", NULL, NULL), ADEPT_EFORMAT, "num_hidden_layers");
    expect_error(make(NULL, "num_attention_heads", "[8]", NULL, NULL), ADEPT_EFORMAT, "num_attention_heads");
    expect_error(make(NULL, "num_key_value_heads", "3", NULL, NULL), ADEPT_EFORMAT, "num_key_value_heads 3 must divide");
    expect_error(make(NULL, "num_attention_heads", "7", "num_key_value_heads", "7"), ADEPT_EFORMAT,
                 "not a multiple of num_attention_heads");
    expect_error(make(NULL, "head_dim", "7", NULL, NULL), ADEPT_EFORMAT, "head_dim must be even");
    expect_error(make(NULL, "head_dim", "-8", NULL, NULL), ADEPT_EFORMAT, "head_dim");
    expect_error(make(NULL, "rms_norm_eps", "0", NULL, NULL), ADEPT_EFORMAT, "rms_norm_eps must be a positive number");
    expect_error(make(NULL, "rms_norm_eps", "\"1e-5\"", NULL, NULL), ADEPT_EFORMAT, "rms_norm_eps");
    expect_error(make(NULL, "rope_theta", "-1", NULL, NULL), ADEPT_EFORMAT, "rope_theta");
    expect_error(make(NULL, "tie_word_embeddings", "1", NULL, NULL), ADEPT_EFORMAT, "tie_word_embeddings must be true or false");
    expect_error(make(NULL, "max_position_embeddings", "0", NULL, NULL), ADEPT_EFORMAT, "max_position_embeddings");
    expect_error(make(NULL, "bos_token_id", "-5", NULL, NULL), ADEPT_EFORMAT, "bos_token_id");
    expect_error(make(NULL, "eos_token_id", "[2, \"x\"]", NULL, NULL), ADEPT_EFORMAT, "eos_token_id");
    expect_error(make(NULL, "torch_dtype", "\"int8\"", NULL, NULL), ADEPT_EFORMAT, "torch_dtype");
    expect_error(make(NULL, "torch_dtype", "\"float64\"", NULL, NULL), ADEPT_EFORMAT, "torch_dtype");
    /* the model family */
    expect_error(make(NULL, "architectures", "[\"GPT2LMHeadModel\"]", NULL, NULL), ADEPT_EUNSUPPORTED, "architectures");
    expect_error(make(NULL, "architectures", "\"LlamaForCausalLM\"", NULL, NULL), ADEPT_EFORMAT, "architectures must be a list");
    expect_error(make(NULL, "model_type", "\"gpt2\"", NULL, NULL), ADEPT_EUNSUPPORTED, "model_type");
    expect_error(make(NULL, "model_type", "\"qwen2\"", NULL, NULL), ADEPT_EFORMAT, "disagrees with model_type");
    expect_error(make("architectures,model_type", NULL, NULL, NULL, NULL), ADEPT_EFORMAT, "both missing");
    /* unsupported features name their field */
    /* linear and llama3 are implemented: their fields are required and checked */
    expect_error(make(NULL, "rope_scaling", "{\"type\": \"linear\"}", NULL, NULL), ADEPT_EFORMAT,
                 "rope_scaling.factor is missing");
    expect_error(make(NULL, "rope_scaling", "{\"type\": \"linear\", \"factor\": -2}", NULL, NULL), ADEPT_EFORMAT,
                 "rope_scaling.factor must be a positive number");
    expect_error(make(NULL, "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0}", NULL, NULL),
                 ADEPT_EFORMAT, "rope_scaling.low_freq_factor is missing");
    expect_error(make(NULL, "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4, "
                      "\"high_freq_factor\": 1, \"original_max_position_embeddings\": 8192}", NULL, NULL),
                 ADEPT_EFORMAT, "high_freq_factor (1) must be larger than low_freq_factor (4)");
    {
        adept_config c;
        const char *js = make(NULL, "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1, "
                              "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}", NULL, NULL);
        CHECK_OK(parse(js, &c));
        CHECK(c.rope_scaling == ADEPT_ROPE_LLAMA3 && c.rope_factor == 8.0 && c.rope_low_freq_factor == 1.0 &&
              c.rope_high_freq_factor == 4.0 && c.rope_original_max_position == 8192);
        adept_hf_config_clear(&c);
    }
    expect_error(make(NULL, "rope_scaling", "{\"type\": \"yarn\"}", NULL, NULL), ADEPT_EUNSUPPORTED, "yarn");
    expect_error(make(NULL, "rope_scaling", "{\"factor\": 2.0}", NULL, NULL), ADEPT_EFORMAT, "rope_scaling has no type");
    expect_error(make(NULL, "rope_scaling", "\"dynamic\"", NULL, NULL), ADEPT_EFORMAT, "rope_scaling must be an object");
    expect_error(make(NULL, "rope_parameters", "{\"rope_type\": \"dynamic\"}", NULL, NULL), ADEPT_EUNSUPPORTED,
                 "rope_parameters");
    /* a window shorter than the context is recorded, and the attention kernels apply it (test_model) */
    CHECK_OK(parse(make("model_type", "architectures", "[\"MistralForCausalLM\"]", "sliding_window", "128"), &c));
    CHECK(c.sliding_window == 128);
    adept_hf_config_clear(&c);
    CHECK_OK(parse(make("model_type", "architectures", "[\"MistralForCausalLM\"]", "max_position_embeddings", "32768"), &c));
    CHECK(c.sliding_window == 4096); /* MistralConfig's default window */
    adept_hf_config_clear(&c);
    {
        /* Qwen2 with use_sliding_window true and a short window: HF windows the layers from max_window_layers up
           (default 28, so none of these 5), or those layer_types marks sliding; the engine takes all or none */
        static const struct { const char *extra; int window; const char *refusal; } cases[] = {
            {"", 0, NULL},
            {", \"max_window_layers\": 0", 64, NULL},
            {", \"max_window_layers\": 5", 0, NULL},
            {", \"max_window_layers\": 3", -1, "on 2 of the 5 layers (max_window_layers)"},
            {", \"layer_types\": [\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
             "\"sliding_attention\",\"sliding_attention\"]", 64, NULL},
            {", \"layer_types\": [\"full_attention\",\"full_attention\",\"full_attention\",\"full_attention\","
             "\"sliding_attention\"]", -1, "on 1 of the 5 layers (layer_types)"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char buf[8192];
            snprintf(buf, sizeof buf, "%s", make("model_type", "architectures", "[\"Qwen2ForCausalLM\"]",
                                                 "use_sliding_window", "true"));
            buf[strlen(buf) - 1] = '\0';
            strcat(buf, ", \"sliding_window\": 64");
            strcat(buf, cases[i].extra);
            strcat(buf, "}");
            if (cases[i].refusal) {
                expect_error(buf, ADEPT_EUNSUPPORTED, cases[i].refusal);
                continue;
            }
            CHECK_OK(parse(buf, &c));
            CHECK(c.sliding_window == cases[i].window);
            adept_hf_config_clear(&c);
        }
    }
    expect_error(make("model_type", "architectures", "[\"MistralForCausalLM\"]", "sliding_window", "0"),
                 ADEPT_EFORMAT, "sliding_window");
    expect_error(make(NULL, "mlp_bias", "true", NULL, NULL), ADEPT_EUNSUPPORTED, "mlp_bias");
    expect_error(make(NULL, "mlp_bias", "\"no\"", NULL, NULL), ADEPT_EFORMAT, "mlp_bias must be true or false");
    expect_error(make(NULL, "attention_bias", "true", NULL, NULL), ADEPT_EUNSUPPORTED, "attention_bias");
    expect_error(make(NULL, "hidden_act", "\"gelu\"", NULL, NULL), ADEPT_EUNSUPPORTED, "hidden_act \"gelu\"");
    expect_error(make(NULL, "partial_rotary_factor", "0.5", NULL, NULL), ADEPT_EUNSUPPORTED, "partial_rotary_factor");
    expect_error(make(NULL, "attention_dropout", "0.1", NULL, NULL), ADEPT_EUNSUPPORTED, "attention_dropout");
    expect_error(make(NULL, "quantization_config", "{\"bits\": 4}", NULL, NULL), ADEPT_EUNSUPPORTED,
                 "quantization_config");
    expect_error(make(NULL, "layer_types", "[\"full_attention\"]", NULL, NULL), ADEPT_EFORMAT,
                 "layer_types has 1 entries");
    expect_error(make(NULL, "layer_types", "[\"full_attention\",\"full_attention\",\"full_attention\","
                      "\"full_attention\",\"chunked_attention\"]", NULL, NULL), ADEPT_EUNSUPPORTED, "layer_types entry");
    expect_error(make(NULL, "layer_types", "{}", NULL, NULL), ADEPT_EFORMAT, "layer_types must be a list");
}

static void test_write(void) {
    adept_config c;
    const char *lt = "[\"full_attention\",\"sliding_attention\",\"full_attention\",\"sliding_attention\","
                     "\"full_attention\"]";
    CHECK_OK(parse(make(NULL, "layer_types", lt, "custom_field", "{\"keep\": [1, 2]}"), &c));
    /* layers 2 and 5 of 7 are copies of 1 and 4 (their predecessors) */
    unsigned char exp[7] = {0, 0, 1, 0, 0, 1, 0};
    char *text = NULL;
    CHECK_OK(adept_hf_config_to_json(&c, 7, exp, ADEPT_BF16, &text));
    adept_config back;
    CHECK_OK(parse(text, &back)); /* what we write parses back */
    CHECK(back.num_layers == 7 && back.dtype == ADEPT_BF16);
    adept_hf_config_clear(&back);
    cJSON *root = cJSON_Parse(text);
    CHECK(root != NULL);
    if (root) {
        CHECK(cJSON_GetObjectItem(root, "num_hidden_layers")->valueint == 7);
        CHECK(!strcmp(cJSON_GetObjectItem(root, "torch_dtype")->valuestring, "bfloat16"));
        cJSON *types = cJSON_GetObjectItem(root, "layer_types");
        const char *want[7] = {"full_attention", "sliding_attention", "sliding_attention", "full_attention",
                               "sliding_attention", "sliding_attention", "full_attention"};
        CHECK(cJSON_GetArraySize(types) == 7);
        for (int i = 0; i < 7 && i < cJSON_GetArraySize(types); i++)
            CHECK(!strcmp(cJSON_GetArrayItem(types, i)->valuestring, want[i]));
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "custom_field"), "keep") != NULL);
        cJSON_Delete(root);
    }
    free(text);

    /* numbers survive bit for bit (cJSON alone prints 15 digits when they read back approximately) */
    CHECK_OK(parse(make(NULL, "rope_theta", "88888888888888888888888888888888888888888888888888888888.0",
                        "rms_norm_eps", "1.0000000000000002e-06"), &back));
    CHECK_OK(adept_hf_config_to_json(&back, 5, NULL, ADEPT_F32, &text));
    {
        adept_config again;
        CHECK_OK(parse(text, &again));
        CHECK(again.rope_theta == back.rope_theta && again.rms_norm_eps == back.rms_norm_eps);
        CHECK(again.rms_norm_eps != 1e-6);
        adept_hf_config_clear(&again);
    }
    free(text);
    adept_hf_config_clear(&back);

    /* a checkpoint saved expanded, read back: strip the copies, re-expand identically */
    adept_config c2;
    CHECK_OK(adept_hf_config_copy(&c2, &c));
    int copies[2] = {2, 5};
    CHECK_OK(adept_hf_config_to_json(&c, 7, exp, ADEPT_F32, &text));
    adept_config saved;
    memset(&saved, 0, sizeof saved);
    saved = c2;
    free(saved.config_json); /* the copy's text, replaced by the expanded one */
    saved.config_json = text;
    CHECK_OK(adept_hf_config_strip_layers(&saved, copies, 2, 7));
    char *text2 = NULL;
    CHECK_OK(adept_hf_config_to_json(&saved, 7, exp, ADEPT_F32, &text2));
    {
        char *again = NULL;
        CHECK_OK(adept_hf_config_to_json(&c, 7, exp, ADEPT_F32, &again));
        CHECK(again && text2 && !strcmp(again, text2));
        free(again);
    }
    free(text2);
    free(saved.config_json);
    c2.config_json = NULL;
    /* wrong expansion list for the stored layer_types */
    CHECK_FAILS(adept_hf_config_to_json(&c, 6, exp, ADEPT_F32, &text), ADEPT_ESTATE);
    CHECK_FAILS(adept_hf_config_to_json(&c, 5, NULL, ADEPT_I32, &text), ADEPT_EUNSUPPORTED);
    adept_hf_config_clear(&c);

    /* from fields (a llama2.c import): a complete config that parses back to the same numbers */
    adept_config f;
    memset(&f, 0, sizeof f);
    f.arch = ADEPT_ARCH_LLAMA;
    f.vocab_size = 512; f.hidden_size = 64; f.intermediate_size = 172; f.num_layers = 5; f.num_heads = 8;
    f.num_kv_heads = 4; f.head_dim = 8; f.max_position_embeddings = 512; f.rms_norm_eps = 1e-5;
    f.rope_theta = 10000; f.tie_word_embeddings = 1; f.bos_token_id = 1; f.eos_token_id = 2;
    CHECK_OK(adept_hf_config_to_json(&f, 5, NULL, ADEPT_F32, &text));
    CHECK_OK(parse(text, &c));
    CHECK(c.arch == ADEPT_ARCH_LLAMA && c.vocab_size == 512 && c.hidden_size == 64 && c.intermediate_size == 172 &&
          c.num_layers == 5 && c.num_heads == 8 && c.num_kv_heads == 4 && c.head_dim == 8 &&
          c.max_position_embeddings == 512 && c.rms_norm_eps == 1e-5 && c.rope_theta == 10000 &&
          c.tie_word_embeddings && c.bos_token_id == 1 && c.eos_token_id == 2 && c.dtype == ADEPT_F32);
    adept_hf_config_clear(&c);
    free(text);
    /* every family written from fields parses back as itself, with no window and HF's default context */
    for (int a = 0; a < 4; a++) {
        static const char *archs[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
        f.arch = (adept_arch)a;
        snprintf(f.architecture, sizeof f.architecture, "%s", archs[a]);
        f.max_position_embeddings = 0; /* unknown: omitted */
        f.attention_bias = a == ADEPT_ARCH_QWEN2;
        f.qk_norm = a == ADEPT_ARCH_QWEN3;
        CHECK_OK(adept_hf_config_to_json(&f, 5, NULL, ADEPT_BF16, &text));
        CHECK_OK(parse(text, &c));
        CHECK(c.arch == (adept_arch)a && c.head_dim == 8 && c.attention_bias == f.attention_bias &&
              c.qk_norm == f.qk_norm && c.dtype == ADEPT_BF16 && c.max_position_embeddings >= 2048);
        adept_hf_config_clear(&c);
        free(text);
    }
}

int main(void) {
    test_basic();
    test_variants();
    test_errors();
    test_write();
    return check_summary();
}
