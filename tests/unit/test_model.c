/* Model API: config checks, the parameter table, trainable flags and gradient memory, skip as identity,
   expansion bookkeeping and bitwise logits, KV-cache generation against the full forward, determinism. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adept/model.h"
#include "check.h"
#include "model/model_internal.h"

static adept_config tiny(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 29; c.hidden_size = 16; c.intermediate_size = 24; c.num_layers = 3;
    c.num_heads = 4; c.num_kv_heads = 2; c.rms_norm_eps = 1e-5;
    return c;
}

static void test_config(void) {
    adept_config c = tiny();
    c.num_kv_heads = 3;
    adept_model *m;
    CHECK_FAILS(adept_model_create(&c, 1, 0.02f, &m), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "num_key_value_heads") != NULL);
    c = tiny();
    c.hidden_size = -3;
    CHECK_FAILS(adept_model_create(&c, 1, 0.02f, &m), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "hidden_size must be a positive integer, got -3") != NULL);
    c = tiny();
    CHECK_OK(adept_model_config_check(&c));
    CHECK(c.head_dim == 4);
}

static void test_table(void) {
    adept_config c = tiny();
    c.attention_bias = 1;
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 1, 0.02f, &m));
    /* embed + 3 x (2 norms + 4 attn + 3 biases + 3 mlp) + norm + lm_head */
    CHECK(adept_model_num_params(m) == 1 + 3 * 12 + 2);
    adept_param *p = adept_model_find(m, "model.layers.2.self_attn.k_proj.weight");
    CHECK(p && p->layer == 2 && p->kind == ADEPT_UNIT_K && p->shape[0] == 8 && p->shape[1] == 16 && p->decay);
    p = adept_model_find(m, "model.layers.0.self_attn.v_proj.bias");
    CHECK(p && p->ndim == 1 && !p->decay);
    CHECK(adept_model_find(m, "model.layers.3.mlp.up_proj.weight") == NULL);
    CHECK(!strcmp(adept_unit_kind_name(ADEPT_UNIT_DOWN), "down_proj"));
    CHECK(adept_unit_kind_is_norm(ADEPT_UNIT_Q_NORM) && !adept_unit_kind_is_norm(ADEPT_UNIT_Q));
    /* no gradient memory until something needs it (a backward pass, an optimizer, m:grad) */
    CHECK(adept_model_memory(m).grads == 0 && adept_model_param(m, 0)->grad == NULL);
    CHECK_OK(adept_model_grads_materialize(m));
    adept_memory before = adept_model_memory(m);
    CHECK(before.grads == before.params);
    CHECK_OK(adept_model_set_trainable(m, 0, 0));
    CHECK(adept_model_param(m, 0)->grad == NULL);
    adept_memory after = adept_model_memory(m);
    CHECK(after.grads == before.grads - adept_tensor_nbytes(adept_model_param(m, 0)->value));
    CHECK_FAILS(adept_model_set_trainable(m, 999, 0), ADEPT_EINVAL);
    adept_model_free(m);
}

static void fill_batch(int32_t *in, int32_t *tg, int n, int V) {
    for (int i = 0; i < n; i++) { in[i] = (i * 7 + 3) % V; tg[i] = (i * 5 + 1) % V; }
}

static void test_determinism_and_skip(void) {
    adept_config c = tiny();
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 7, 0.3f, &m));
    int32_t in[16], tg[16];
    fill_batch(in, tg, 16, c.vocab_size);
    adept_batch b = {2, 8, in, tg};
    double s1, s2;
    int64_t n;
    CHECK_OK(adept_model_forward_backward(m, &b, 1.0f / 16, &s1, &n));
    CHECK(n == 16);
    size_t nb = adept_tensor_nbytes(adept_model_param(m, 3)->grad);
    float *g1 = malloc(nb);
    memcpy(g1, adept_tensor_data(adept_model_param(m, 3)->grad), nb);
    adept_model_zero_grad(m);
    CHECK_OK(adept_model_forward_backward(m, &b, 1.0f / 16, &s2, &n));
    CHECK(s1 == s2);
    CHECK(memcmp(g1, adept_tensor_data(adept_model_param(m, 3)->grad), nb) == 0);
    free(g1);
    /* skipping layer 1 = zeroing its o_proj and down_proj (the layer then adds nothing) */
    size_t V = c.vocab_size;
    float *a = malloc(16 * V * 4), *z = malloc(16 * V * 4);
    CHECK_OK(adept_model_set_skip(m, 1, 1));
    CHECK_OK(adept_model_forward(m, &b, NULL, NULL, a));
    CHECK_OK(adept_model_set_skip(m, 1, 0));
    adept_param *o = adept_model_find(m, "model.layers.1.self_attn.o_proj.weight");
    adept_param *d = adept_model_find(m, "model.layers.1.mlp.down_proj.weight");
    memset(adept_tensor_data(o->value), 0, adept_tensor_nbytes(o->value));
    memset(adept_tensor_data(d->value), 0, adept_tensor_nbytes(d->value));
    CHECK_OK(adept_model_forward(m, &b, NULL, NULL, z));
    CHECK(memcmp(a, z, 16 * V * 4) == 0);
    CHECK_FAILS(adept_model_set_skip(m, 3, 1), ADEPT_EINVAL);
    /* hidden states: block 0 is the embedding rows; a skipped layer passes its input through unchanged */
    size_t per = 16 * (size_t)c.hidden_size;
    float *hs = malloc(4 * per * 4);
    CHECK_OK(adept_model_set_skip(m, 2, 1));
    CHECK_OK(adept_model_hidden_states(m, &b, hs));
    CHECK_OK(adept_model_set_skip(m, 2, 0));
    const float *emb = adept_tensor_f32(adept_model_find(m, "model.embed_tokens.weight")->value);
    CHECK(memcmp(hs, emb + (size_t)in[0] * c.hidden_size, c.hidden_size * 4) == 0);
    CHECK(memcmp(hs + 2 * per, hs + 3 * per, per * 4) == 0);
    CHECK(memcmp(hs, hs + 1 * per, per * 4) != 0); /* layer 0 is active (layer 1 was zeroed above) */
    free(hs);
    /* bad ids are errors, not crashes */
    in[3] = (int32_t)V;
    CHECK_FAILS(adept_model_forward(m, &b, NULL, NULL, a), ADEPT_EINVAL);
    free(a);
    free(z);
    adept_model_free(m);
}

static void test_expand(void) {
    adept_config c = tiny();
    c.tie_word_embeddings = 1;
    c.qk_norm = 1;
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 3, 0.3f, &m));
    int32_t in[10], tg[10];
    fill_batch(in, tg, 10, c.vocab_size);
    adept_batch b = {1, 10, in, tg};
    size_t V = c.vocab_size;
    float *a = malloc(10 * V * 4), *e = malloc(10 * V * 4);
    CHECK_OK(adept_model_forward(m, &b, NULL, NULL, a));
    size_t rows = adept_model_num_params(m);
    int layers[2] = {2, 0}, idx[2];
    CHECK_OK(adept_model_expand(m, layers, 2, idx));
    CHECK(idx[0] == 4 && idx[1] == 1);
    CHECK(adept_model_num_layers(m) == 5);
    CHECK(adept_model_num_params(m) == rows + 2 * 11);
    CHECK(adept_model_is_expanded(m, 1) && adept_model_is_expanded(m, 4) && !adept_model_is_expanded(m, 2));
    CHECK(adept_model_find(m, "model.layers.4.mlp.down_proj.weight") != NULL);
    CHECK_OK(adept_model_forward(m, &b, NULL, NULL, e));
    CHECK(memcmp(a, e, 10 * V * 4) == 0);
    int bad[2] = {1, 1};
    CHECK_FAILS(adept_model_expand(m, bad, 2, idx), ADEPT_EINVAL);
    bad[0] = 9;
    CHECK_FAILS(adept_model_expand(m, bad, 1, idx), ADEPT_EINVAL);
    free(a);
    free(e);
    adept_model_free(m);
}

/* greedy generation with the KV cache picks the argmax of the full forward's last row, step by step */
static void test_generate(void) {
    adept_config c = tiny();
    c.attention_bias = 1;
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 5, 0.5f, &m));
    int32_t seq[16] = {1, 2};
    int32_t out[12];
    int n;
    CHECK_OK(adept_model_generate(m, seq, 2, 12, 0, 0, 0, -1, out, &n));
    CHECK(n == 12);
    size_t V = c.vocab_size;
    float *lg = malloc(16 * V * 4);
    int agree = 0;
    for (int i = 0; i < 12; i++) {
        int T = 2 + i;
        memcpy(seq + 2, out, (size_t)i * 4);
        adept_batch b = {1, T, seq, NULL};
        CHECK_OK(adept_model_forward(m, &b, NULL, NULL, lg));
        const float *last = lg + (size_t)(T - 1) * V;
        int best = 0;
        for (size_t j = 1; j < V; j++) if (last[j] > last[best]) best = (int)j;
        agree += best == out[i];
    }
    CHECK(agree == 12);
    int32_t s1[8], s2[8];
    int n1, n2;
    CHECK_OK(adept_model_generate(m, seq, 2, 8, 0.9f, 5, 42, -1, s1, &n1));
    CHECK_OK(adept_model_generate(m, seq, 2, 8, 0.9f, 5, 42, -1, s2, &n2));
    CHECK(n1 == 8 && n2 == 8 && memcmp(s1, s2, sizeof s1) == 0);
    CHECK_OK(adept_model_generate(m, seq, 2, 8, 0, 0, 0, out[0], s1, &n1)); /* stops after the stop id */
    CHECK(n1 == 1);
    CHECK_FAILS(adept_model_generate(m, seq, 0, 8, 0, 0, 0, -1, s1, &n1), ADEPT_EINVAL);
    free(lg);
    adept_model_free(m);
}

/* bitwise determinism also on the threaded path (GEMMs split over threads, parallel attention) */
static void test_determinism_threaded(void) {
    adept_config c = tiny();
    c.vocab_size = 300; c.hidden_size = 64; c.intermediate_size = 160; c.num_layers = 2;
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 11, 0.1f, &m));
    int32_t in[3 * 70], tg[3 * 70];
    fill_batch(in, tg, 3 * 70, c.vocab_size);
    adept_batch b = {3, 70, in, tg};
    double s1, s2;
    int64_t n;
    adept_param *p = adept_model_find(m, "model.layers.0.self_attn.q_proj.weight");
    CHECK_OK(adept_model_forward_backward(m, &b, 1.0f / 210, &s1, &n)); /* lays the gradient slab */
    size_t nb = adept_tensor_nbytes(p->grad);
    float *g1 = malloc(nb);
    memcpy(g1, adept_tensor_data(p->grad), nb);
    adept_model_zero_grad(m);
    CHECK_OK(adept_model_forward_backward(m, &b, 1.0f / 210, &s2, &n));
    CHECK(s1 == s2);
    CHECK(memcmp(g1, adept_tensor_data(p->grad), nb) == 0);
    free(g1);
    adept_model_free(m);
}

/* The classifier in chunks (model_internal.h: head_rows_override) against one chunk of all rows: loss, logits
   and every gradient. Only the head's GEMMs see other row blockings (each logit a sum of C = 64 products either
   way, within 64 u of the sum of their magnitudes on each side) and the head's weight gradient adds its
   N = 210 rows in chunk order; the difference carried down the 2-layer chain (at most 2 x (9 + 1) products,
   each summing at most max(N, C, F) = 210 terms) is within 20 * 2 * 210 u = 5e-4 of each tensor's largest
   entry: the bound checked. A missing chunk, a row offset or an overwritten gradient is off by O(1). */
static double max_rel(const float *a, const float *b, size_t n) {
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        d = e > d || e != e ? e : d;
        m = fabs(b[i]) > m ? fabs(b[i]) : m;
    }
    return d / m;
}

static void test_head_chunks(void) {
    adept_config c = tiny();
    c.vocab_size = 300; c.hidden_size = 64; c.intermediate_size = 160; c.num_layers = 2;
    const double tol = 20.0 * 2 * 210 * 0x1p-24;
    adept_model *m[2];
    int32_t in[3 * 70], tg[3 * 70];
    fill_batch(in, tg, 3 * 70, c.vocab_size);
    tg[5] = -1; /* an ignored row inside a chunk */
    adept_batch b = {3, 70, in, tg};
    size_t N = 210, V = c.vocab_size;
    double s[2], f[2];
    float *lg[2];
    for (int r = 0; r < 2; r++) {
        CHECK_OK(adept_model_create(&c, 11, 0.1f, &m[r]));
        m[r]->head_rows_override = r == 0 ? 0 : 16; /* 14 chunks, the last of 2 rows */
        lg[r] = malloc(N * V * 4);
        int64_t n;
        CHECK_OK(adept_model_forward(m[r], &b, &f[r], &n, lg[r]));
        CHECK_OK(adept_model_forward_backward(m[r], &b, 1.0f / 209, &s[r], &n));
        CHECK(n == 209);
    }
    printf("head in chunks of 16 rows: loss %.9g against %.9g in one chunk\n", s[1], s[0]);
    CHECK(fabs(s[1] - s[0]) <= tol * fabs(s[0]));
    CHECK(f[0] == s[0] && f[1] == s[1]); /* forward and forward_backward compute the same loss */
    CHECK(max_rel(lg[1], lg[0], N * V) <= tol);
    double worst = 0;
    for (size_t i = 0; i < adept_model_num_params(m[0]); i++) {
        adept_param *p0 = adept_model_param(m[0], i), *p1 = adept_model_param(m[1], i);
        size_t n = adept_tensor_numel(p0->grad);
        double e = max_rel(adept_tensor_f32(p1->grad), adept_tensor_f32(p0->grad), n);
        worst = e > worst || e != e ? e : worst;
    }
    printf("head in chunks of 16 rows: worst gradient difference %.2e (bound %.1e)\n", worst, tol);
    CHECK(worst <= tol);
    for (int r = 0; r < 2; r++) free(lg[r]), adept_model_free(m[r]);
}

/* The plan holds nothing quadratic in T and nothing of size N x V: for a Qwen3-1.7B shape (no allocation:
   adept_model_plan_split) every class but the head is exactly linear in T (up to each region's 64-byte
   rounding), and the head is one chunk of 32 rows x V (8 MiB of logits is under 32 rows at V = 151,936). */
static void test_plan_linear(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.arch = ADEPT_ARCH_QWEN3, c.qk_norm = 1, c.tie_word_embeddings = 1;
    c.vocab_size = 151936, c.hidden_size = 2048, c.intermediate_size = 6144, c.num_layers = 28;
    c.num_heads = 16, c.num_kv_heads = 8, c.head_dim = 128, c.max_position_embeddings = 40960;
    CHECK_OK(adept_model_config_check(&c));
    adept_plan_split p1, p2, p4;
    CHECK_OK(adept_model_plan_split(&c, 1, 2048, 0, 0, 0, &p1));
    CHECK_OK(adept_model_plan_split(&c, 1, 4096, 0, 0, 0, &p2));
    CHECK_OK(adept_model_plan_split(&c, 2, 4096, 0, 0, 0, &p4));
    printf("plan of a Qwen3-1.7B shape at 1 x 2048: %.1f MiB (kept %.1f, head %.1f in %zu rows, scratch %.1f, "
           "batch %.1f)\n", p1.total / 1048576.0, p1.kept / 1048576.0, p1.head / 1048576.0, p1.head_rows,
           p1.scratch / 1048576.0, p1.batch / 1048576.0);
    CHECK(p1.head_rows == 32 && p2.head_rows == 32 && p1.head == (size_t)32 * 151936 * 4);
    /* doubling T doubles kept and scratch to within the 64-byte rounding of each of the 37 regions */
    CHECK(p2.kept >= 2 * p1.kept - 37 * 64 && p2.kept <= 2 * p1.kept + 37 * 64);
    CHECK(p2.scratch >= 2 * p1.scratch - 37 * 64 && p2.scratch <= 2 * p1.scratch + 37 * 64);
    CHECK(p4.kept >= 2 * p2.kept - 37 * 64 && p4.kept <= 2 * p2.kept + 37 * 64); /* and in B */
    CHECK(p1.total == p1.kept + p1.head + p1.scratch + p1.batch);
    CHECK_FAILS(adept_model_plan_split(&c, 0, 2048, 0, 0, 0, &p1), ADEPT_EINVAL);
    /* trainable-aware: with the lowest trainable layer at k, layers below k share one slot, so the kept class
       loses k - 1 of the 28 per-layer slots (the residual stream, (L + 1) x N x C, stays whole: mask-out resumes
       from it) */
    adept_plan_split pk, pn;
    CHECK_OK(adept_model_plan_split(&c, 1, 2048, 0, 7, 0, &pk));  /* ADEPT's lowest copy near L/4 */
    CHECK_OK(adept_model_plan_split(&c, 1, 2048, 0, 28, 0, &pn)); /* nothing trains: forward-only */
    /* the kept class = resid (L + 1) x N x C + the final norm's input and rstd (N x C + N) + 28 per-layer slots */
    size_t resid = (size_t)29 * 2048 * 2048 * 4, lnf = ((size_t)2048 * 2048 + 2048) * 4;
    size_t per_layer = (p1.kept - resid - lnf) / 28;
    printf("kept for backward at 1 x 2048: every layer %.1f MiB, from layer 7 %.1f MiB, forward-only %.1f MiB\n",
           p1.kept / 1048576.0, pk.kept / 1048576.0, pn.kept / 1048576.0);
    CHECK(pk.kept + 6 * per_layer >= p1.kept - 64 * 37 && pk.kept + 6 * per_layer <= p1.kept + 64 * 37);
    CHECK(pn.kept + 27 * per_layer >= p1.kept - 64 * 37 && pn.kept + 27 * per_layer <= p1.kept + 64 * 37);
}

/* Recompute: backward reruns each layer's forward from its kept input; the gradients and loss are bitwise those of
   the kept plan (the same kernels on the same inputs), for a Llama with biases and a Qwen3 with qk-norm, training
   everything or only layer 2 (the pass then stops there), and the plan keeps one layer's buffers instead of L. */
static void test_recompute(void) {
    for (int variant = 0; variant < 4; variant++) {
        adept_config c = tiny();
        c.num_layers = 4;
        if (variant & 1) c.attention_bias = 1;
        else c.arch = ADEPT_ARCH_QWEN3, c.qk_norm = 1;
        adept_model *m[2];
        int32_t in[2 * 37], tg[2 * 37];
        fill_batch(in, tg, 2 * 37, c.vocab_size);
        tg[3] = -1;
        adept_batch b = {2, 37, in, tg};
        double s[2];
        for (int r = 0; r < 2; r++) {
            CHECK_OK(adept_model_create(&c, 5, 0.3f, &m[r]));
            if (variant >= 2) /* only layer 2 trains */
                for (size_t i = 0; i < adept_model_num_params(m[r]); i++)
                    CHECK_OK(adept_model_set_trainable(m[r], i, adept_model_param(m[r], i)->layer == 2));
            adept_model_set_recompute(m[r], r == 1);
            int64_t n;
            CHECK_OK(adept_model_forward_backward(m[r], &b, 1.0f / 73, &s[r], &n));
            CHECK_OK(adept_model_forward_backward(m[r], &b, 1.0f / 73, &s[r], &n)); /* accumulate onto nonzero */
        }
        CHECK(m[1]->acts.slots == 1 && m[0]->acts.slots == (variant >= 2 ? 3 : 4));
        CHECK(m[1]->acts.kept_bytes < m[0]->acts.kept_bytes);
        CHECK(s[0] == s[1]);
        int same = 1;
        for (size_t i = 0; i < adept_model_num_params(m[0]); i++) {
            adept_param *p0 = adept_model_param(m[0], i), *p1 = adept_model_param(m[1], i);
            if (!p0->grad) { same &= p1->grad == NULL; continue; }
            same &= memcmp(adept_tensor_f32(p0->grad), adept_tensor_f32(p1->grad), p0->numel * sizeof(float)) == 0;
        }
        printf("recompute (%s, %s): gradients %s, kept %zu against %zu bytes\n", variant & 1 ? "llama+bias" : "qwen3",
               variant >= 2 ? "layer 2 trains" : "all train", same ? "bitwise equal" : "DIFFER",
               m[1]->acts.kept_bytes, m[0]->acts.kept_bytes);
        CHECK(same);
        for (int r = 0; r < 2; r++) adept_model_free(m[r]);
    }
}

/* A sliding window shorter than the context (Mistral's sliding_window): up to the window every key is visible, so
   the logits are bitwise those of the same weights without a window; past it they differ from them, and
   generation (the KV cache read from position pos + 1 - W) picks what the windowed forward pass picks. The
   kernels' values are checked against float64 in tests/parity (test_attention_xent, test_model_parity). */
static void test_sliding_window(void) {
    adept_config c = tiny();
    c.max_position_embeddings = 64;
    adept_model *full, *win;
    CHECK_OK(adept_model_create(&c, 3, 0.5f, &full));
    c.sliding_window = 4;
    CHECK_OK(adept_model_create(&c, 3, 0.5f, &win));
    size_t V = c.vocab_size;
    int32_t seq[16] = {1, 2, 3}, tg[16];
    fill_batch(seq, tg, 16, c.vocab_size);
    float *a = malloc(16 * V * 4), *b = malloc(16 * V * 4);
    adept_batch in4 = {1, 4, seq, NULL}, in12 = {1, 12, seq, NULL};
    CHECK_OK(adept_model_forward(full, &in4, NULL, NULL, a));
    CHECK_OK(adept_model_forward(win, &in4, NULL, NULL, b));
    CHECK(memcmp(a, b, 4 * V * 4) == 0);
    CHECK_OK(adept_model_forward(full, &in12, NULL, NULL, a));
    CHECK_OK(adept_model_forward(win, &in12, NULL, NULL, b));
    CHECK(memcmp(a, b, 4 * V * 4) == 0); /* the first 4 positions see the same keys */
    double diff = 0;
    for (size_t i = 4 * V; i < 12 * V; i++) diff = fmax(diff, fabs((double)a[i] - b[i]));
    CHECK(diff > 1e-3);
    int32_t out[10];
    int n;
    CHECK_OK(adept_model_generate(win, seq, 2, 10, 0, 0, 0, -1, out, &n));
    CHECK(n == 10);
    int agree = 0;
    for (int i = 0; i < 10; i++) {
        int T = 2 + i;
        memcpy(seq + 2, out, (size_t)i * 4);
        adept_batch bt = {1, T, seq, NULL};
        CHECK_OK(adept_model_forward(win, &bt, NULL, NULL, b));
        const float *last = b + (size_t)(T - 1) * V;
        int best = 0;
        for (size_t j = 1; j < V; j++) if (last[j] > last[best]) best = (int)j;
        agree += best == out[i];
    }
    CHECK(agree == 10);
    free(a);
    free(b);
    adept_model_free(full);
    adept_model_free(win);
}

int main(void) {
    test_determinism_threaded();
    test_config();
    test_table();
    test_determinism_and_skip();
    test_expand();
    test_generate();
    test_head_chunks();
    test_plan_linear();
    test_recompute();
    test_sliding_window();
    return check_summary();
}
