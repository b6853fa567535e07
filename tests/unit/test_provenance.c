/* Provenance helpers: SHA-256 against FIPS 180-2 vectors (buffer and streamed file, across the 64 KiB read
   boundary), edit-distance suggestions, and the non-finite weight check naming the tensor. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "adept/hash.h"
#include "adept/model.h"
#include "adept/suggest.h"
#include "adept/tensor.h"
#include "check.h"

static void test_sha256(void) {
    char hex[ADEPT_SHA256_HEX];
    CHECK_OK(adept_sha256_buffer("abc", 3, hex));
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CHECK_OK(adept_sha256_buffer("", 0, hex));
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    /* one million 'a': 15 full 64 KiB reads and a partial one */
    char path[] = "/tmp/adept_sha_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    for (int i = 0; i < 1000000; i++) fputc('a', f);
    fclose(f);
    uint64_t size = 0;
    CHECK_OK(adept_sha256_file(path, hex, &size));
    CHECK(size == 1000000);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    unlink(path);
    CHECK_FAILS(adept_sha256_file(path, hex, &size), ADEPT_ENOTFOUND);
    CHECK_FAILS(adept_sha256_file("/tmp", hex, &size), ADEPT_EINVAL);
}

static void test_suggest(void) {
    CHECK(adept_edit_distance("setps", "steps") == 1); /* one adjacent swap */
    CHECK(adept_edit_distance("", "abc") == 3);
    CHECK(adept_edit_distance("kitten", "sitting") == 3);
    const char *names[] = {"seed", "steps", "lr"};
    CHECK(adept_suggest("setps", names, 3) == names[1]);
    CHECK(adept_suggest("zzzzzz", names, 3) == NULL);
    CHECK(adept_suggest("lr", names, 3) == names[2]);
}

static void test_nonfinite(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 29; c.hidden_size = 16; c.intermediate_size = 24; c.num_layers = 2;
    c.num_heads = 4; c.num_kv_heads = 2; c.rms_norm_eps = 1e-5;
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 1, 0.02f, &m));
    CHECK_OK(adept_model_check_finite(m));
    adept_param *p = adept_model_find(m, "model.layers.1.self_attn.k_proj.weight");
    CHECK(p != NULL);
    adept_tensor_f32(p->value)[5] = NAN;
    adept_tensor_f32(p->value)[9] = INFINITY;
    CHECK_FAILS(adept_model_check_finite(m), ADEPT_ENONFINITE);
    CHECK(strstr(adept_last_error(), "model.layers.1.self_attn.k_proj.weight holds 2 non-finite values") != NULL);
    CHECK(strstr(adept_last_error(), "flat index 5") != NULL);
    adept_model_free(m);
}

int main(void) {
    test_sha256();
    test_suggest();
    test_nonfinite();
    return check_summary();
}
