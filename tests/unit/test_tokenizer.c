/* Unit tests of the tokenizers on small hand-made files (no shared artefacts needed): BPE merge order, byte
   fallback and unk fusing, added tokens with rstrip, templates, decoders, llama2.c tokenizer.bin, path lookup,
   errors that name unsupported components, and invalid UTF-8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adept/tokenizer.h"
#include "check.h"

static const char *BYTELEVEL =
    "{\"added_tokens\":[{\"id\":9,\"content\":\"<|end|>\",\"rstrip\":true,\"normalized\":false,\"special\":true}],"
    "\"normalizer\":{\"type\":\"NFC\"},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
    "\"\\\\p{L}+|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":"
    "false,\"use_regex\":false}]},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<|end|>\"}},"
    "{\"Sequence\":{\"id\":\"A\"}}]},"
    "\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"H\":0,\"e\":1,\"l\":2,\"o\":3,\"He\":4,\"ll\":5,\"Hell\":6,"
    "\"\\u0120\":7,\"\\u0120w\":8,\"w\":10,\"ell\":11,\"el\":12},"
    "\"merges\":[\"H e\",\"l l\",\"He ll\",[\"\\u0120\",\"w\"],\"e l\",\"el l\"]}}";

static const char *METASPACE =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},{\"id\":1,\"content\":\"<s>\","
    "\"special\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
    "\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},"
    "{\"Sequence\":{\"id\":\"A\"}}]},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},"
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
    "\"start\":1,\"stop\":0}]},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"<0xC3>\":2,\"<0xB6>\":3,\"\\u2581\":4,\"a\":5,\"b\":6,\"\\u2581a\":7,"
    "\"\\u2581ab\":8,\"ab\":9},\"merges\":[\"a b\",\"\\u2581 a\",\"\\u2581a b\"]}}";

static adept_tokenizer *load_str(const char *json) {
    adept_tokenizer *t = NULL;
    CHECK_OK(adept_tokenizer_load_memory("test.json", json, strlen(json), &t));
    return t;
}

static int ids_equal(const adept_ids *v, const int32_t *want, size_t n) {
    if (v->n != n) {
        fprintf(stderr, "  got %zu ids:", v->n);
        for (size_t i = 0; i < v->n; i++) fprintf(stderr, " %d", v->ids[i]);
        fprintf(stderr, "\n");
        return 0;
    }
    return !memcmp(v->ids, want, n * sizeof *want);
}

static void test_bytelevel(void) {
    adept_tokenizer *t = load_str(BYTELEVEL);
    if (!t) return;
    adept_ids v = {0};
    const char *text = "Hello Hello wow<|end|>  w";
    CHECK_OK(adept_tokenizer_encode(t, text, strlen(text), -1, -1, &v));
    /* "H e" ranks before "e l": He + ll -> Hell, not H + ell; rstrip eats the spaces after <|end|> */
    const int32_t want[] = {9, 6, 3, 7, 6, 3, 7, 10, 3, 10, 9, 10};
    CHECK(ids_equal(&v, want, sizeof want / sizeof *want));
    char *s;
    size_t sl;
    CHECK_OK(adept_tokenizer_decode(t, v.ids + 1, v.n - 1, 0, &s, &sl));
    CHECK(s && !strcmp(s, "Hello Hello wow<|end|>w"));
    free(s);
    CHECK_OK(adept_tokenizer_decode(t, v.ids, v.n, 1, &s, &sl));
    CHECK(s && !strcmp(s, "Hello Hello wow" "w"));
    free(s);
    v.n = 0;
    CHECK_OK(adept_tokenizer_encode(t, "Hello", 5, 0, 0, &v));
    CHECK(v.n == 2 && v.ids[0] == 6);
    CHECK(adept_tokenizer_bos_id(t) == 9);
    CHECK(adept_tokenizer_token_to_id(t, "Hell", 4) == 6);
    CHECK(adept_tokenizer_token_to_id(t, "<|end|>", 7) == 9);
    CHECK(adept_tokenizer_token_to_id(t, "zz", 2) == -1);
    size_t l;
    CHECK(adept_tokenizer_id_to_token(t, 6, &l) && l == 4);
    CHECK(adept_tokenizer_id_to_token(t, 99, &l) == NULL);
    CHECK(adept_tokenizer_vocab_size(t) == 13);
    CHECK_FAILS(adept_tokenizer_decode(t, (int32_t[]){99}, 1, 0, &s, &sl), ADEPT_EINVAL);
    /* invalid UTF-8 never crashes: it becomes U+FFFD first */
    v.n = 0;
    CHECK_OK(adept_tokenizer_encode(t, "H\xff\xfe\xc3", 4, 0, 0, &v));
    CHECK(v.n == 1 && v.ids[0] == 0);
    adept_ids_free(&v);
    adept_tokenizer_free(t);
}

static void test_metaspace(void) {
    adept_tokenizer *t = load_str(METASPACE);
    if (!t) return;
    adept_ids v = {0};
    const char *text = "ab a\xC3\xB6zz";
    CHECK_OK(adept_tokenizer_encode(t, text, strlen(text), -1, -1, &v));
    /* "a b" has the best rank, so ▁ a b -> ▁ ab (no "▁ ab" merge); then ▁a, <0xC3><0xB6> (byte fallback),
       one <unk> for "zz" (fuse_unk) */
    const int32_t want[] = {1, 4, 9, 7, 2, 3, 0};
    CHECK(ids_equal(&v, want, sizeof want / sizeof *want));
    char *s;
    size_t sl;
    CHECK_OK(adept_tokenizer_decode(t, v.ids, v.n, 1, &s, &sl));
    CHECK(s && !strcmp(s, "ab a\xC3\xB6"));
    free(s);
    CHECK(adept_tokenizer_bos_id(t) == 1);
    v.n = 0;
    CHECK_OK(adept_tokenizer_encode(t, "ab", 2, 0, 1, &v));
    CHECK(v.n == 2 && v.ids[0] == 4 && v.ids[1] == 9); /* eos asked, but the tokenizer has none */
    adept_ids_free(&v);
    adept_tokenizer_free(t);
}

static void test_errors(void) {
    adept_tokenizer *t = NULL;
    const char *uni = "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}";
    CHECK_FAILS(adept_tokenizer_load_memory("x/tokenizer.json", uni, strlen(uni), &t), ADEPT_EUNSUPPORTED);
    CHECK(strstr(adept_last_error(), "Unigram") && strstr(adept_last_error(), "x/tokenizer.json"));
    const char *pre = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
                      "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}";
    CHECK_FAILS(adept_tokenizer_load_memory("y.json", pre, strlen(pre), &t), ADEPT_EUNSUPPORTED);
    CHECK(strstr(adept_last_error(), "BertPreTokenizer") != NULL);
    const char *merge = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}";
    CHECK_FAILS(adept_tokenizer_load_memory("z.json", merge, strlen(merge), &t), ADEPT_EFORMAT);
    CHECK_FAILS(adept_tokenizer_load_memory("w.json", "{\"model\":", 9, &t), ADEPT_EFORMAT);
    CHECK_FAILS(adept_tokenizer_load("/nonexistent/tokenizer.json", &t), ADEPT_ENOTFOUND);
    CHECK(t == NULL);
}

/* A tiny llama2.c tokenizer.bin: <unk> <s> </s>, 256 bytes, then " ", "a", "b", " a", "ab", " ab" with scores
   that make "ab" beat " a" (so " ab" forms from " " + "ab"). */
static void write_llama2c(const char *path) {
    FILE *f = fopen(path, "wb");
    int32_t maxlen = 6;
    fwrite(&maxlen, 4, 1, f);
    char buf[16];
    for (int i = 0; i < 259; i++) {
        float sc = 0;
        if (i == 0) strcpy(buf, "<unk>");
        else if (i == 1) strcpy(buf, "\n<s>\n");
        else if (i == 2) strcpy(buf, "\n</s>\n");
        else snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
        int32_t len = (int32_t)strlen(buf);
        fwrite(&sc, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(buf, 1, (size_t)len, f);
    }
    const char *toks[] = {" ", "a", "b", " a", "ab", " ab"};
    const float scores[] = {-1, -2, -3, -5, -4, -6};
    for (int i = 0; i < 6; i++) {
        int32_t len = (int32_t)strlen(toks[i]);
        fwrite(&scores[i], 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(toks[i], 1, (size_t)len, f);
    }
    fclose(f);
}

static void test_llama2c(void) {
    char dir[] = "/tmp/adept_tok_XXXXXX";
    if (!mkdtemp(dir)) return;
    char path[256], model[256];
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    write_llama2c(path);
    adept_tokenizer *t = NULL;
    CHECK_OK(adept_tokenizer_load(dir, &t)); /* a directory: tokenizer.bin inside */
    if (t) {
        CHECK(adept_tokenizer_vocab_size(t) == 265);
        adept_ids v = {0};
        CHECK_OK(adept_tokenizer_encode(t, "ab\xC3", 3, -1, 1, &v));
        /* BOS, then " " "a" "b" -> "ab" (score -4) first, then " " + "ab" -> " ab"; 0xC3 -> byte id 0xC3+3 */
        const int32_t want[] = {1, 264, 0xC3 + 3, 2};
        CHECK(ids_equal(&v, want, 4));
        char *s;
        size_t sl;
        CHECK_OK(adept_tokenizer_decode(t, v.ids, v.n, 1, &s, &sl));
        CHECK(sl == 3 && !memcmp(s, "ab\xC3", 3));
        free(s);
        adept_ids_free(&v);
        adept_tokenizer_free(t);
    }
    /* a llama2.c model file: the tokenizer beside it is found */
    snprintf(model, sizeof model, "%s/model.bin", dir);
    FILE *f = fopen(model, "wb");
    int32_t hdr[7] = {8, 16, 1, 2, 2, 265, 32};
    fwrite(hdr, 4, 7, f);
    float w[64] = {0};
    fwrite(w, 4, 64, f);
    fclose(f);
    t = NULL;
    CHECK_OK(adept_tokenizer_load(model, &t));
    CHECK(t && adept_tokenizer_vocab_size(t) == 265);
    adept_tokenizer_free(t);
    unlink(model);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_bytelevel();
    test_metaspace();
    test_errors();
    test_llama2c();
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}
