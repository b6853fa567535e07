/* Batched greedy generation (adept_model_generate_batch) against the single-sequence path: every row of a batch
   of prompts with different lengths produces exactly the tokens adept_model_generate produces for that prompt
   alone, up to where it stops (max_tokens, the stop id, a stop string); the request is checked. Configurations
   cover GQA, attention biases, q/k norm and a skipped layer. */
#include <stdlib.h>
#include <string.h>

#include "adept/model.h"
#include "adept/tokenizer.h"
#include "check.h"

enum { V = 29, B = 5, MAXP = 9, MAXN = 14 };

static adept_config tiny(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = V; c.hidden_size = 16; c.intermediate_size = 24; c.num_layers = 3;
    c.num_heads = 4; c.num_kv_heads = 2; c.rms_norm_eps = 1e-5;
    return c;
}

/* prompts of lengths 1..MAXP, concatenated; deterministic ids */
static int make_prompts(int32_t *ids, int *len) {
    static const int lens[B] = {3, 1, 9, 5, 2};
    int off = 0;
    for (int r = 0; r < B; r++) {
        len[r] = lens[r];
        for (int i = 0; i < lens[r]; i++) ids[off++] = (int32_t)((r * 7 + i * 5 + 1) % V);
    }
    return off;
}

/* single-sequence greedy tokens of every row */
static void singles(adept_model *m, const int32_t *ids, const int *len, int max_tokens, int stop_id,
                    int32_t want[B][MAXN], int *nwant) {
    int off = 0;
    for (int r = 0; r < B; r++) {
        CHECK_OK(adept_model_generate(m, ids + off, len[r], max_tokens, 0, 0, 0, stop_id, want[r], &nwant[r]));
        off += len[r];
    }
}

static void check_config(adept_config c, const char *what, int skip) {
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 11, 0.5f, &m));
    if (skip >= 0) CHECK_OK(adept_model_set_skip(m, skip, 1));
    int32_t ids[B * MAXP], want[B][MAXN], got[B * MAXN];
    int len[B], nwant[B], ngot[B];
    make_prompts(ids, len);
    singles(m, ids, len, MAXN, -1, want, nwant);
    adept_generate_batch_opts o = {.max_tokens = MAXN, .stop_id = -1};
    CHECK_OK(adept_model_generate_batch(m, ids, len, B, &o, got, ngot));
    int same = 1;
    for (int r = 0; r < B; r++)
        same &= ngot[r] == MAXN && nwant[r] == MAXN && !memcmp(got + r * MAXN, want[r], MAXN * sizeof(int32_t));
    if (!same) fprintf(stderr, "  %s: batched tokens differ from the single-sequence path\n", what);
    CHECK(same);
    /* the tokens differ between rows (the test would be weak if every row produced the same sequence) */
    CHECK(memcmp(want[0], want[2], MAXN * sizeof(int32_t)) != 0);

    /* stop id: the 4th token of row 2; every row stops after its first occurrence (written), or runs on */
    int stop = want[2][3];
    singles(m, ids, len, MAXN, stop, want, nwant);
    o.stop_id = stop;
    CHECK_OK(adept_model_generate_batch(m, ids, len, B, &o, got, ngot));
    same = 1;
    for (int r = 0; r < B; r++)
        same &= ngot[r] == nwant[r] && !memcmp(got + r * MAXN, want[r], (size_t)nwant[r] * sizeof(int32_t));
    CHECK(same);
    CHECK(ngot[2] <= 4 && got[2 * MAXN + ngot[2] - 1] == stop);

    /* a batch of one and rows in another order give the same tokens */
    o.stop_id = -1;
    int32_t one[MAXN];
    int none;
    CHECK_OK(adept_model_generate_batch(m, ids + 3 + 1, len + 2, 1, &o, one, &none));
    singles(m, ids, len, MAXN, -1, want, nwant);
    CHECK(none == MAXN && !memcmp(one, want[2], sizeof one));
    adept_model_free(m);
}

/* a one-character-per-id tokenizer over the model's vocabulary (no decoder: ids decode to their strings) */
static adept_tokenizer *char_tokenizer(void) {
    char json[1024], vocab[700] = "";
    const char *chars = "abcdefghijklmnopqrstuvwxyz.,;";
    for (int i = 0; i < V; i++) {
        char e[32];
        snprintf(e, sizeof e, "%s\"%c\": %d", i ? ", " : "", chars[i], i);
        strcat(vocab, e);
    }
    snprintf(json, sizeof json, "{\"model\": {\"type\": \"BPE\", \"vocab\": {%s}, \"merges\": []}}", vocab);
    adept_tokenizer *t = NULL;
    CHECK_OK(adept_tokenizer_load_memory("chars.json", json, strlen(json), &t));
    return t;
}

static void test_stop_strings(void) {
    adept_config c = tiny();
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 12, 0.5f, &m));
    adept_tokenizer *t = char_tokenizer();
    if (!t) { adept_model_free(m); return; }
    int32_t ids[B * MAXP], want[B][MAXN], got[B * MAXN];
    int len[B], nwant[B], ngot[B];
    make_prompts(ids, len);
    singles(m, ids, len, MAXN, -1, want, nwant);
    /* stop strings: the text of row 0's tokens 3..4, and of row 3's tokens 6..8 */
    char *s1 = NULL, *s2 = NULL, *text;
    size_t n;
    CHECK_OK(adept_tokenizer_decode(t, want[0] + 3, 2, 1, &s1, &n));
    CHECK_OK(adept_tokenizer_decode(t, want[3] + 6, 3, 1, &s2, &n));
    if (!s1 || !s2) { free(s1), free(s2), adept_tokenizer_free(t), adept_model_free(m); return; }
    const char *stops[2] = {s1, s2};
    adept_generate_batch_opts o = {.max_tokens = MAXN, .stop_id = -1, .tok = t, .stop = stops, .n_stop = 2};
    CHECK_OK(adept_model_generate_batch(m, ids, len, B, &o, got, ngot));
    int stopped = 0;
    for (int r = 0; r < B; r++) {
        /* the expected length: the shortest prefix of the single-sequence tokens whose text holds a stop string */
        int k = MAXN;
        for (int j = 1; j <= MAXN; j++) {
            CHECK_OK(adept_tokenizer_decode(t, want[r], (size_t)j, 1, &text, &n));
            int hit = strstr(text, s1) || strstr(text, s2);
            free(text);
            if (hit) { k = j; break; }
        }
        CHECK(ngot[r] == k && !memcmp(got + r * MAXN, want[r], (size_t)k * sizeof(int32_t)));
        stopped += k < MAXN;
    }
    CHECK(ngot[0] <= 5 && ngot[3] <= 9 && stopped >= 2);
    /* stop strings without a tokenizer, or empty, are refused */
    o.tok = NULL;
    CHECK_FAILS(adept_model_generate_batch(m, ids, len, B, &o, got, ngot), ADEPT_EINVAL);
    const char *empty[1] = {""};
    o.tok = t, o.stop = empty, o.n_stop = 1;
    CHECK_FAILS(adept_model_generate_batch(m, ids, len, B, &o, got, ngot), ADEPT_EINVAL);
    free(s1), free(s2);
    adept_tokenizer_free(t);
    adept_model_free(m);
}

static void test_bad_requests(void) {
    adept_config c = tiny();
    c.max_position_embeddings = 12;
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 13, 0.5f, &m));
    int32_t ids[4] = {1, 2, 3, 4}, out[16];
    int len[2] = {2, 2}, n[2];
    adept_generate_batch_opts o = {.max_tokens = 4, .stop_id = -1};
    int zero[2] = {2, 0};
    CHECK_FAILS(adept_model_generate_batch(m, ids, zero, 2, &o, out, n), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "prompt 2 is empty"));
    ids[3] = V;
    CHECK_FAILS(adept_model_generate_batch(m, ids, len, 2, &o, out, n), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "prompt 2: id 29 at 1"));
    ids[3] = 4;
    o.max_tokens = 11;
    CHECK_FAILS(adept_model_generate_batch(m, ids, len, 2, &o, out, n), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "max_position_embeddings 12"));
    o.max_tokens = 0;
    n[0] = n[1] = 7;
    CHECK_OK(adept_model_generate_batch(m, ids, len, 2, &o, out, n));
    CHECK(n[0] == 0 && n[1] == 0);
    CHECK_OK(adept_model_generate_batch(m, ids, len, 0, &o, out, n));
    adept_model_free(m);
}

int main(void) {
    adept_config c = tiny();
    check_config(c, "gqa", -1);
    check_config(c, "gqa, layer 1 skipped", 1);
    c.attention_bias = 1;
    check_config(c, "attention bias", -1);
    c = tiny();
    c.qk_norm = 1;
    c.num_kv_heads = 4;
    check_config(c, "qk norm, mha", -1);
    test_stop_strings();
    test_bad_requests();
    return check_summary();
}
