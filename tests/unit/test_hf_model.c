/* Hugging Face directories: load -> save -> load bitwise round trips (f32, bf16, shards, every variant), the
   expanded-layer record, and strict validation (missing, unexpected, wrong-shape, wrong-dtype tensors,
   vocab mismatch, tied lm_head, lying index files, configs that do not match the weights). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adept/hf_config.h"
#include "adept/model.h"
#include "adept/safetensors.h"
#include "check.h"

static char root[256];

static void rm_rf(const char *path) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

static char *sub(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", root, name);
    return b;
}

static adept_config tiny(adept_arch arch, int tied) {
    adept_config c;
    adept_model_config_default(&c);
    static const char *names[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
    c.arch = arch;
    snprintf(c.architecture, sizeof c.architecture, "%s", names[arch]);
    c.vocab_size = 37; c.hidden_size = 16; c.intermediate_size = 24; c.num_layers = 3; c.num_heads = 4;
    c.num_kv_heads = 2; c.head_dim = arch == ADEPT_ARCH_QWEN3 ? 8 : 4; c.max_position_embeddings = 64;
    c.rms_norm_eps = 1e-6; c.rope_theta = 10000; c.tie_word_embeddings = tied;
    c.attention_bias = arch == ADEPT_ARCH_QWEN2; c.qk_norm = arch == ADEPT_ARCH_QWEN3;
    c.bos_token_id = 1; c.eos_token_id = 2;
    return c;
}

/* Random values in every tensor, norms included, so a mix-up between tensors shows. */
static adept_model *random_model(const adept_config *c, uint64_t seed) {
    adept_model *m = NULL;
    CHECK_OK(adept_model_create(c, seed, 0.5f, &m));
    if (!m) return NULL;
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        float *w = adept_tensor_f32(p->value);
        for (size_t j = 0; j < p->numel; j++) w[j] += 0.001f * (float)((j * 2654435761u + i * 97) % 1000) - 0.5f;
    }
    return m;
}

static int quiet;

static int same_params(adept_model *a, adept_model *b) {
    if (adept_model_num_params(a) != adept_model_num_params(b)) return 0;
    for (size_t i = 0; i < adept_model_num_params(a); i++) {
        adept_param *p = adept_model_param(a, i), *q = adept_model_find(b, p->name);
        if (!q || q->numel != p->numel ||
            memcmp(adept_tensor_data(p->value), adept_tensor_data(q->value), p->numel * 4) != 0) {
            if (!quiet) fprintf(stderr, "  differs: %s\n", p->name);
            return 0;
        }
    }
    return 1;
}

static int files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    while (eq) {
        int x = fgetc(fa), y = fgetc(fb);
        if (x != y) eq = 0;
        if (x == EOF || y == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}

static void test_round_trips(void) {
    for (int arch = 0; arch < 4; arch++) {
        for (int tied = 0; tied < 2; tied++) {
            adept_config c = tiny((adept_arch)arch, tied);
            adept_model *m = random_model(&c, 7 + arch), *a = NULL, *b = NULL, *d = NULL;
            /* f32 */
            CHECK_OK(adept_model_save(m, sub("f32"), -1, 0));
            CHECK_OK(adept_model_load(sub("f32"), &a));
            if (a) {
                CHECK(same_params(m, a));
                CHECK(adept_model_config(a)->arch == (adept_arch)arch && adept_model_config(a)->dtype == ADEPT_F32);
                CHECK(adept_model_config(a)->tie_word_embeddings == tied);
                CHECK((adept_model_find(a, "lm_head.weight") == NULL) == tied);
            }
            /* bf16: save -> load -> save (dtype loaded) -> load is bitwise stable, files identical */
            CHECK_OK(adept_model_save(m, sub("bf16"), ADEPT_BF16, 0));
            CHECK_OK(adept_model_load(sub("bf16"), &b));
            if (b) {
                CHECK(adept_model_config(b)->dtype == ADEPT_BF16);
                quiet = 1;
                CHECK(!same_params(m, b)); /* rounding happened: the check can fail */
                quiet = 0;
                CHECK_OK(adept_model_save(b, sub("bf16b"), -1, 0));
                CHECK(files_equal(sub("bf16/model.safetensors"), sub("bf16b/model.safetensors")));
                CHECK(files_equal(sub("bf16/config.json"), sub("bf16b/config.json")));
                CHECK_OK(adept_model_load(sub("bf16b"), &d));
                if (d) CHECK(same_params(b, d));
            }
            adept_model_free(m); adept_model_free(a); adept_model_free(b); adept_model_free(d);
            rm_rf(sub("f32")); rm_rf(sub("bf16")); rm_rf(sub("bf16b"));
        }
    }
}

static void test_shards_and_f16(void) {
    adept_config c = tiny(ADEPT_ARCH_QWEN2, 0);
    adept_model *m = random_model(&c, 3), *a = NULL, *b = NULL;
    CHECK_OK(adept_model_save(m, sub("sh"), -1, 2000));
    struct stat sb;
    CHECK(stat(sub("sh/model.safetensors.index.json"), &sb) == 0);
    CHECK(stat(sub("sh/model.safetensors"), &sb) != 0);
    {
        int shards = 0;
        DIR *dd = opendir(sub("sh"));
        struct dirent *de;
        while (dd && (de = readdir(dd))) shards += strncmp(de->d_name, "model-0", 7) == 0;
        if (dd) closedir(dd);
        CHECK(shards >= 3); /* 6.9 kB of weights in shards of at most 2 kB (a tensor alone may exceed it) */
        printf("ok: %d shards\n", shards);
    }
    CHECK_OK(adept_model_load(sub("sh"), &a));
    if (a) CHECK(same_params(m, a));
    CHECK_OK(adept_model_save(m, sub("h"), ADEPT_F16, 0));
    CHECK_OK(adept_model_load(sub("h"), &b));
    if (b) CHECK(adept_model_config(b)->dtype == ADEPT_F16);
    adept_model_free(a); adept_model_free(b);
    /* a lying index: a shard that does not exist, a path outside the directory */
    FILE *f = fopen(sub("sh/model.safetensors.index.json"), "w");
    fprintf(f, "{\"weight_map\": {\"model.norm.weight\": \"model-00009-of-00009.safetensors\"}}");
    fclose(f);
    CHECK_FAILS(adept_model_load(sub("sh"), &a), ADEPT_ENOTFOUND);
    printf("ok: %s\n", adept_last_error());
    {
        /* an index that promises a tensor its shard lacks */
        CHECK_OK(adept_model_save(m, sub("sh2"), -1, 0));
        rename(sub("sh2/model.safetensors"), sub("sh2/model-00001-of-00001.safetensors"));
        f = fopen(sub("sh2/model.safetensors.index.json"), "w");
        fprintf(f, "{\"weight_map\": {");
        for (size_t i = 0; i < adept_model_num_params(m); i++)
            fprintf(f, "\"%s\": \"model-00001-of-00001.safetensors\", ", adept_model_param(m, i)->name);
        fprintf(f, "\"model.layers.0.ghost.weight\": \"model-00001-of-00001.safetensors\"}}");
        fclose(f);
        CHECK_FAILS(adept_model_load(sub("sh2"), &a), ADEPT_EFORMAT);
        CHECK(strstr(adept_last_error(), "ghost") != NULL);
        printf("ok: %s\n", adept_last_error());
        rm_rf(sub("sh2"));
    }
    f = fopen(sub("sh/model.safetensors.index.json"), "w");
    fprintf(f, "{\"weight_map\": {\"model.norm.weight\": \"../h/model.safetensors\"}}");
    fclose(f);
    CHECK_FAILS(adept_model_load(sub("sh"), &a), ADEPT_EFORMAT);
    printf("ok: %s\n", adept_last_error());
    adept_model_free(m);
    rm_rf(sub("sh")); rm_rf(sub("h"));
}

/* Writes dir/model.safetensors from the model's tensors, with edits: drop `drop`, add `extra` (a copy of
   `extra_like`'s tensor), replace `reshape`'s tensor by one of shape [r0, r1], convert all to `dtype`. */
static void write_edited(adept_model *m, const char *dir, const char *drop, const char *extra, const char *extra_like,
                         const char *reshape, int64_t r0, int64_t r1, adept_dtype dtype) {
    size_t n = adept_model_num_params(m);
    adept_st_item items[64];
    adept_tensor *owned[64] = {0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        adept_param *p = adept_model_param(m, i);
        if (drop && !strcmp(p->name, drop)) continue;
        adept_tensor *t = p->value;
        if (reshape && !strcmp(p->name, reshape)) {
            int64_t shape[2] = {r0, r1};
            adept_tensor_new(ADEPT_F32, r1 ? 2 : 1, shape, &owned[k]);
            t = owned[k];
        }
        if (dtype != ADEPT_F32) {
            adept_tensor *c2;
            adept_tensor_to_dtype(t, dtype, &c2);
            adept_tensor_free(owned[k]);
            owned[k] = c2;
            t = c2;
        }
        items[k].name = p->name;
        items[k].tensor = t;
        k++;
    }
    if (extra) {
        adept_param *p = adept_model_find(m, extra_like);
        items[k].name = extra;
        items[k].tensor = p->value;
        k++;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(adept_safetensors_write(path, items, k, NULL, NULL, 0));
    for (size_t i = 0; i < 64; i++) adept_tensor_free(owned[i]);
}

static void expect_load_error(const char *dir, adept_status status, const char *needle) {
    adept_model *x = NULL;
    adept_status s = adept_model_load(dir, &x);
    CHECK(s == status && x == NULL);
    CHECK(strstr(adept_last_error(), needle) != NULL);
    if (s != status || !strstr(adept_last_error(), needle))
        fprintf(stderr, "  got %s: %s (wanted '%s')\n", adept_status_name(s), adept_last_error(), needle);
    else
        printf("ok: %s\n", adept_last_error());
    adept_model_free(x);
}

static void test_validation(void) {
    adept_config c = tiny(ADEPT_ARCH_LLAMA, 1);
    adept_model *m = random_model(&c, 11), *x = NULL;
    char d[512]; /* sub() rotates through 8 buffers: keep a copy */
    snprintf(d, sizeof d, "%s", sub("v"));
    CHECK_OK(adept_model_save(m, d, -1, 0));
    write_edited(m, d, "model.layers.1.mlp.up_proj.weight", NULL, NULL, NULL, 0, 0, ADEPT_F32);
    expect_load_error(d, ADEPT_ENOTFOUND, "model.layers.1.mlp.up_proj.weight is missing");
    write_edited(m, d, NULL, "model.layers.0.mlp.extra.weight", "model.norm.weight", NULL, 0, 0, ADEPT_F32);
    expect_load_error(d, ADEPT_EFORMAT, "unexpected tensor model.layers.0.mlp.extra.weight");
    write_edited(m, d, NULL, "model.layers.3.input_layernorm.weight", "model.norm.weight", NULL, 0, 0, ADEPT_F32);
    expect_load_error(d, ADEPT_EFORMAT, "unexpected tensor model.layers.3.input_layernorm.weight");
    write_edited(m, d, NULL, NULL, NULL, "model.layers.2.self_attn.k_proj.weight", 16, 16, ADEPT_F32);
    expect_load_error(d, ADEPT_ESHAPE, "k_proj.weight has shape [16, 16], expected [8, 16]");
    write_edited(m, d, NULL, NULL, NULL, "model.embed_tokens.weight", 36, 16, ADEPT_F32);
    expect_load_error(d, ADEPT_ESHAPE, "vocab_size 37");
    write_edited(m, d, NULL, NULL, NULL, NULL, 0, 0, ADEPT_I32);
    expect_load_error(d, ADEPT_EUNSUPPORTED, "dtype I32");
    {
        /* mixed dtypes (bf16 matrices, one f32 norm): loaded as f32 so that saving loses nothing */
        CHECK_OK(adept_model_save(m, d, ADEPT_BF16, 0));
        adept_model *bf = NULL, *mix = NULL, *mix2 = NULL;
        CHECK_OK(adept_model_load(d, &bf));
        if (bf) {
            size_t n = adept_model_num_params(bf), k = 0;
            adept_st_item items[64];
            adept_tensor *owned[64] = {0};
            for (size_t i = 0; i < n; i++) {
                adept_param *p = adept_model_param(bf, i);
                items[k].name = p->name;
                if (!strcmp(p->name, "model.norm.weight")) {
                    adept_param *q = adept_model_find(m, p->name); /* full f32 values */
                    items[k].tensor = q->value;
                } else {
                    adept_tensor_to_dtype(p->value, ADEPT_BF16, &owned[k]);
                    items[k].tensor = owned[k];
                }
                k++;
            }
            char path[600];
            snprintf(path, sizeof path, "%s/model.safetensors", d);
            CHECK_OK(adept_safetensors_write(path, items, k, NULL, NULL, 0));
            for (size_t i = 0; i < 64; i++) adept_tensor_free(owned[i]);
            CHECK_OK(adept_model_load(d, &mix));
            if (mix) {
                CHECK(adept_model_config(mix)->dtype == ADEPT_F32);
                CHECK_OK(adept_model_save(mix, sub("mix2"), -1, 0));
                CHECK_OK(adept_model_load(sub("mix2"), &mix2));
                if (mix2) CHECK(same_params(mix, mix2));
                adept_param *nm = adept_model_find(mix, "model.norm.weight");
                CHECK(nm && !memcmp(adept_tensor_data(nm->value), adept_tensor_data(adept_model_find(m, "model.norm.weight")->value), nm->numel * 4));
            }
        }
        adept_model_free(bf); adept_model_free(mix); adept_model_free(mix2);
        rm_rf(sub("mix2"));
    }
    /* tolerated: rotary buffers, and a tied lm_head equal to the embedding */
    write_edited(m, d, NULL, "model.layers.0.self_attn.rotary_emb.inv_freq", "model.norm.weight", NULL, 0, 0, ADEPT_F32);
    CHECK_OK(adept_model_load(d, &x));
    adept_model_free(x); x = NULL;
    write_edited(m, d, NULL, "lm_head.weight", "model.embed_tokens.weight", NULL, 0, 0, ADEPT_F32);
    CHECK_OK(adept_model_load(d, &x));
    if (x) CHECK(same_params(m, x) && adept_model_find(x, "lm_head.weight") == NULL);
    adept_model_free(x); x = NULL;
    write_edited(m, d, NULL, "lm_head.weight", "model.layers.0.mlp.up_proj.weight", NULL, 0, 0, ADEPT_F32);
    expect_load_error(d, ADEPT_EFORMAT, "lm_head.weight differs"); /* wrong shape: not the embedding */
    {
        /* same shape, different values */
        adept_config cu = tiny(ADEPT_ARCH_LLAMA, 0);
        adept_model *u = random_model(&cu, 12);
        write_edited(u, d, NULL, NULL, NULL, NULL, 0, 0, ADEPT_F32);
        expect_load_error(d, ADEPT_EFORMAT, "lm_head.weight differs from model.embed_tokens.weight");
        adept_model_free(u);
    }
    /* a config that asks for far more weights than the file has is refused before allocating */
    write_edited(m, d, NULL, NULL, NULL, NULL, 0, 0, ADEPT_F32);
    FILE *f = fopen(sub("v/config.json"), "w");
    fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 37, \"hidden_size\": 16, "
               "\"intermediate_size\": 1000000, \"num_hidden_layers\": 4000, \"num_attention_heads\": 4, "
               "\"num_key_value_heads\": 2, \"tie_word_embeddings\": true}");
    fclose(f);
    expect_load_error(d, ADEPT_EFORMAT, "does not match the weights");
    f = fopen(sub("v/config.json"), "w");
    fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 37, \"hidden_size\": -3}");
    fclose(f);
    expect_load_error(d, ADEPT_EFORMAT, "config.json: hidden_size must be a positive integer, got -3");
    remove(sub("v/config.json"));
    expect_load_error(d, ADEPT_ENOTFOUND, "config.json");
    expect_load_error(sub("nonexistent"), ADEPT_ENOTFOUND, "nonexistent");
    /* a directory with a config but no weights */
    CHECK_OK(adept_model_save(m, d, -1, 0));
    remove(sub("v/model.safetensors"));
    expect_load_error(d, ADEPT_ENOTFOUND, "neither model.safetensors nor");
    /* a truncated safetensors file */
    CHECK_OK(adept_model_save(m, d, -1, 0));
    CHECK(truncate(sub("v/model.safetensors"), 1000) == 0);
    adept_status s = adept_model_load(d, &x);
    CHECK(s != ADEPT_OK && x == NULL);
    printf("ok: %s\n", adept_last_error());
    /* a file that is neither */
    f = fopen(sub("junk.txt"), "w");
    fprintf(f, "hello");
    fclose(f);
    expect_load_error(sub("junk.txt"), ADEPT_EFORMAT, "neither a Hugging Face model directory");
    expect_load_error(sub("v/model.safetensors"), ADEPT_EINVAL, "pass the model directory");
    adept_model_free(m);
    rm_rf(d);
}

static void test_expanded_and_replace(void) {
    /* config_json with layer_types; layer 1 marked expanded survives save/load, layer_types stays right */
    const char *json = "{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\", \"vocab_size\": 37, "
                       "\"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 3, "
                       "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 8, "
                       "\"max_position_embeddings\": 64, \"tie_word_embeddings\": true, \"my_note\": \"kept\", "
                       "\"layer_types\": [\"full_attention\", \"sliding_attention\", \"full_attention\"]}";
    adept_config c;
    CHECK_OK(adept_hf_config_parse(json, strlen(json), "config.json", &c));
    adept_model *m = random_model(&c, 5), *a = NULL, *b = NULL;
    adept_hf_config_clear(&c);
    if (!m) return;
    int copy = -1, src = 1;
    CHECK_OK(adept_model_expand(m, &src, 1, &copy)); /* layer 2 becomes a copy of layer 1: 4 layers */
    CHECK(copy == 2 && adept_model_num_layers(m) == 4);
    /* an existing directory with a foreign file: the file is kept, our files replaced */
    mkdir(sub("e"), 0755);
    FILE *f = fopen(sub("e/tokenizer.json"), "w");
    fprintf(f, "{}");
    fclose(f);
    f = fopen(sub("e/model-00001-of-00002.safetensors"), "w");
    fprintf(f, "stale");
    fclose(f);
    CHECK_OK(adept_model_save(m, sub("e"), -1, 0));
    struct stat sb;
    CHECK(stat(sub("e/tokenizer.json"), &sb) == 0);
    CHECK(stat(sub("e/model-00001-of-00002.safetensors"), &sb) != 0);
    CHECK_OK(adept_model_load(sub("e"), &a));
    if (a) {
        CHECK(adept_model_is_expanded(a, 2) && !adept_model_is_expanded(a, 1) && !adept_model_is_expanded(a, 3));
        CHECK(adept_model_num_layers(a) == 4);
        CHECK(same_params(m, a));
        CHECK_OK(adept_model_save(a, sub("e2"), -1, 0));
        CHECK(files_equal(sub("e/config.json"), sub("e2/config.json")));
        CHECK_OK(adept_model_load(sub("e2"), &b));
        if (b) CHECK(adept_model_is_expanded(b, 2) && same_params(m, b));
    }
    char *text = NULL;
    size_t len = 0;
    f = fopen(sub("e2/config.json"), "r");
    if (f) {
        text = calloc(1, 8192);
        len = fread(text, 1, 8191, f);
        fclose(f);
    }
    CHECK(len > 0 && text && strstr(text, "\"my_note\":\t\"kept\"") != NULL);
    CHECK(text && strstr(text, "\"torch_dtype\":\t\"float32\"") != NULL);
    CHECK(text && strstr(text, "\"num_hidden_layers\":\t4") != NULL);
    CHECK(text && strstr(text, "[\"full_attention\", \"sliding_attention\", \"sliding_attention\", \"full_attention\"]"));
    free(text);
    /* the temporary and old directories are gone */
    DIR *dd = opendir(root);
    int leftovers = 0;
    struct dirent *de;
    while (dd && (de = readdir(dd)))
        if (strstr(de->d_name, ".tmp-") || strstr(de->d_name, ".old-")) leftovers++;
    if (dd) closedir(dd);
    CHECK(leftovers == 0);
    /* refusing to save over a regular file, or as an integer dtype */
    f = fopen(sub("afile"), "w");
    fclose(f);
    CHECK_FAILS(adept_model_save(m, sub("afile"), -1, 0), ADEPT_EIO);
    CHECK_FAILS(adept_model_save(m, sub("e3"), ADEPT_I32, 0), ADEPT_EINVAL);
    /* parents are created, as save_pretrained does */
    CHECK_OK(adept_model_save(m, sub("p1/p2/model"), -1, 0));
    CHECK(stat(sub("p1/p2/model/config.json"), &sb) == 0);
    rm_rf(sub("p1"));
    adept_model_free(m); adept_model_free(a); adept_model_free(b);
    rm_rf(sub("e")); rm_rf(sub("e2"));
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/adept_test_hf_model_XXXXXX");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    test_round_trips();
    test_shards_and_f16();
    test_validation();
    test_expanded_and_replace();
    rm_rf(root);
    return check_summary();
}
