/* Rows checkpoints (adept/checkpoint.h, issue 11 point 7): a row's digest is the SHA-256 of its f32 values; a
   rows file restores exactly its rows bitwise and leaves every other row with the model's values; a file that
   does not fit the model, or is not a rows file, is refused naming why, and changes nothing. The fuzz seeds in
   tests/fuzz/corpus/ckpt_rows/ are written for tiny_model()'s table; the last test checks they load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adept/checkpoint.h"
#include "adept/hash.h"
#include "adept/safetensors.h"
#include "check.h"

static int has(const char *needle) {
    if (strstr(adept_last_error(), needle)) return 1;
    fprintf(stderr, "  message was: %s\n  expected it to contain: %s\n", adept_last_error(), needle);
    return 0;
}

static adept_model *tiny_model(int hidden) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 8;
    c.hidden_size = hidden;
    c.intermediate_size = 8;
    c.num_layers = 1;
    c.num_heads = 2;
    adept_model *m;
    if (adept_model_create(&c, 1, 0.1f, &m) != ADEPT_OK) exit(2);
    return m;
}

static size_t row(adept_model *m, const char *name) {
    adept_param *p = adept_model_find(m, name);
    if (!p) exit(2);
    return (size_t)(p - adept_model_param(m, 0));
}

/* Every value of m, in table order (CPU: values are host memory); malloc'd. */
static float *values(adept_model *m, size_t *n) {
    *n = 0;
    for (size_t i = 0; i < adept_model_num_params(m); i++) *n += adept_model_param(m, i)->numel;
    float *v = malloc(*n * sizeof *v), *at = v;
    if (!v) exit(2);
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        const adept_param *p = adept_model_param(m, i);
        memcpy(at, adept_tensor_f32(p->value), p->numel * sizeof *at);
        at += p->numel;
    }
    return v;
}

static void test_row_digest(adept_model *m) {
    const adept_param *p = adept_model_param(m, row(m, "model.layers.0.mlp.down_proj.weight"));
    char got[ADEPT_SHA256_HEX], want[ADEPT_SHA256_HEX];
    CHECK_OK(adept_model_row_sha256(m, row(m, "model.layers.0.mlp.down_proj.weight"), got));
    CHECK_OK(adept_sha256_buffer(adept_tensor_f32(p->value), p->numel * sizeof(float), want));
    CHECK(!strcmp(got, want));
    CHECK_FAILS(adept_model_row_sha256(m, adept_model_num_params(m), got), ADEPT_EINVAL);
}

static void test_round_trip(adept_model *m, const char *path) {
    size_t P = adept_model_num_params(m), n;
    unsigned char *held = calloc(P, 1);
    held[row(m, "model.norm.weight")] = held[row(m, "model.layers.0.self_attn.q_proj.weight")] = 1;
    float *saved = values(m, &n);
    CHECK_OK(adept_ckpt_rows_save(m, held, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 10, path));
    /* change every value, then restore from the file: the held rows come back bitwise, the others keep the
       changed values */
    for (size_t i = 0; i < P; i++) {
        adept_param *p = adept_model_param(m, i);
        float *v = adept_tensor_f32(p->value);
        for (size_t k = 0; k < p->numel; k++) v[k] += 1.0f;
    }
    float *changed = values(m, &n);
    char *meta = NULL;
    CHECK_OK(adept_ckpt_rows_read(path, m, 1, &meta));
    CHECK(meta && strstr(meta, "\"base\":\"0123456789abcdef") && strstr(meta, "\"base_rows\":10") &&
          strstr(meta, "\"rows\":[\"model.layers.0.self_attn.q_proj.weight\",\"model.norm.weight\"]"));
    free(meta);
    float *after = values(m, &n);
    size_t at = 0;
    int exact = 1;
    for (size_t i = 0; i < P; i++) {
        size_t k = adept_model_param(m, i)->numel;
        const float *want = held[i] ? saved + at : changed + at;
        exact &= !memcmp(after + at, want, k * sizeof(float));
        at += k;
    }
    CHECK(exact);
    free(saved);
    free(changed);
    free(after);
    /* a bad base identity is refused before anything is written */
    CHECK_FAILS(adept_ckpt_rows_save(m, held, "ABC", 1, path), ADEPT_EINVAL);
    CHECK(has("64 lowercase hex digits"));
    free(held);
}

static void test_refusals(adept_model *m, const char *path) {
    /* rows of another shape: refused naming the row, and the other model is unchanged */
    adept_model *wide = tiny_model(8);
    size_t n;
    float *before = values(wide, &n);
    CHECK_FAILS(adept_ckpt_rows_read(path, wide, 1, NULL), ADEPT_ESHAPE);
    CHECK(has("row model.layers.0.self_attn.q_proj.weight is [4, 4], the model's is [8, 8]"));
    float *after = values(wide, &n);
    CHECK(!memcmp(before, after, n * sizeof(float)));
    free(before);
    free(after);
    adept_model_free(wide);
    /* without a model only the file itself is checked */
    CHECK_OK(adept_ckpt_rows_read(path, NULL, 0, NULL));
    CHECK_FAILS(adept_ckpt_rows_read(path, NULL, 1, NULL), ADEPT_EINVAL);
    /* a safetensors file without the metadata is not a rows checkpoint */
    int64_t shape[1] = {4};
    adept_tensor *t;
    CHECK_OK(adept_tensor_new(ADEPT_F32, 1, shape, &t));
    memset(adept_tensor_data(t), 0, 4 * sizeof(float));
    adept_st_item item = {"model.norm.weight", t};
    CHECK_OK(adept_safetensors_write(path, &item, 1, NULL, NULL, 0));
    CHECK_FAILS(adept_ckpt_rows_read(path, m, 1, NULL), ADEPT_EFORMAT);
    CHECK(has("no \"checkpoint\" metadata (not a rows checkpoint?)"));
    /* a tensor the metadata does not list */
    const char *k[1] = {"checkpoint"};
    const char *v[1] = {"{\"format\":1,\"base\":\"0000000000000000000000000000000000000000000000000000000000000000\","
                        "\"base_rows\":1,\"rows\":[]}"};
    CHECK_OK(adept_safetensors_write(path, &item, 1, k, v, 1));
    CHECK_FAILS(adept_ckpt_rows_read(path, m, 1, NULL), ADEPT_EFORMAT);
    CHECK(has("tensor model.norm.weight is not listed in the \"checkpoint\" metadata"));
    /* a row listed twice */
    v[0] = "{\"format\":1,\"base\":\"0000000000000000000000000000000000000000000000000000000000000000\","
           "\"base_rows\":1,\"rows\":[\"model.norm.weight\",\"model.norm.weight\"]}";
    CHECK_OK(adept_safetensors_write(path, &item, 1, k, v, 1));
    CHECK_FAILS(adept_ckpt_rows_read(path, m, 1, NULL), ADEPT_EFORMAT);
    CHECK(has("row model.norm.weight is listed twice"));
    /* another format */
    v[0] = "{\"format\":2,\"base\":\"0000000000000000000000000000000000000000000000000000000000000000\","
           "\"base_rows\":1,\"rows\":[\"model.norm.weight\"]}";
    CHECK_OK(adept_safetensors_write(path, &item, 1, k, v, 1));
    CHECK_FAILS(adept_ckpt_rows_read(path, m, 1, NULL), ADEPT_EFORMAT);
    CHECK(has("is not of format 1"));
    adept_tensor_free(t);
}

/* The fuzz seeds fit tiny_model(4) and load (so the fuzzer starts from inputs that reach the apply path). */
static void test_fuzz_seeds(adept_model *m) {
    static const char *seeds[] = {"two_rows", "every_row", "no_rows"};
    /* the source tree from this file's path (CMake compiles it by its absolute path) */
    char root[1024];
    snprintf(root, sizeof root, "%s", __FILE__);
    char *cut = strstr(root, "tests/unit/test_ckpt_rows.c");
    if (!cut) {
        fprintf(stderr, "  skipping the fuzz seeds: %s is not an absolute source path\n", __FILE__);
        return;
    }
    *cut = '\0';
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%stests/fuzz/corpus/ckpt_rows/%s", root, seeds[i]);
        CHECK_OK(adept_ckpt_rows_read(path, m, 1, NULL));
    }
}

int main(void) {
    char path[] = "/tmp/adept_ckpt_rows_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) { perror("mkstemp"); return 1; }
    close(fd);
    adept_model *m = tiny_model(4);
    test_row_digest(m);
    test_round_trip(m, path);
    test_refusals(m, path);
    test_fuzz_seeds(m);
    adept_model_free(m);
    unlink(path);
    return check_summary();
}
