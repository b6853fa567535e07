/* engine/adapt layer probes: mask-out by resumed forward passes equals full passes with the layer skipped (bitwise),
   counts the layer evaluations, keeps caller skips; block influence from the residual stream, padding excluded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adept/adapt.h"
#include "check.h"

enum { B = 2, T = 9, L = 5 };

static adept_model *tiny(int qk_norm) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 31; c.hidden_size = 16; c.intermediate_size = 24; c.num_layers = L;
    c.num_heads = 4; c.num_kv_heads = 2; c.rms_norm_eps = 1e-5; c.qk_norm = qk_norm;
    adept_model *m = NULL;
    CHECK_OK(adept_model_create(&c, 17, 0.4f, &m));
    return m;
}

static void batch(int32_t *in, int32_t *tg) {
    for (int i = 0; i < B * T; i++) { in[i] = (i * 7 + 3) % 31; tg[i] = (i * 5 + 1) % 31; }
    tg[T - 1] = tg[T - 2] = -1; /* padding at the end of row 0 */
}

static void test_mask_out(int qk_norm) {
    adept_model *m = tiny(qk_norm);
    int32_t in[B * T], tg[B * T];
    batch(in, tg);
    adept_batch b = {B, T, in, tg};
    double base, skip[L], want_base;
    int64_t n, evals, naive, n2;
    CHECK_OK(adept_model_forward(m, &b, &want_base, &n2, NULL));
    CHECK_OK(adept_model_mask_out(m, &b, &base, skip, &n, &evals, &naive));
    CHECK(base == want_base && n == n2 && n == B * T - 2);
    CHECK(evals == L + L * (L - 1) / 2 && naive == L * L);
    for (int l = 0; l < L; l++) {
        double s;
        CHECK_OK(adept_model_set_skip(m, l, 1));
        CHECK_OK(adept_model_forward(m, &b, &s, NULL, NULL));
        CHECK_OK(adept_model_set_skip(m, l, 0));
        CHECK(s == skip[l]);
        CHECK(s != base);
        CHECK(!adept_model_is_skipped(m, l));
    }
    /* a layer the caller skipped stays skipped in every pass */
    CHECK_OK(adept_model_set_skip(m, 1, 1));
    double base1, skip1[L], s;
    CHECK_OK(adept_model_mask_out(m, &b, &base1, skip1, &n, &evals, &naive));
    CHECK(skip1[1] == base1 && adept_model_is_skipped(m, 1));
    CHECK_OK(adept_model_set_skip(m, 3, 1));
    CHECK_OK(adept_model_forward(m, &b, &s, NULL, NULL));
    CHECK(s == skip1[3]);
    CHECK_OK(adept_model_set_skip(m, 3, 0));
    CHECK_OK(adept_model_set_skip(m, 1, 0));
    adept_batch nt = {B, T, in, NULL};
    CHECK_FAILS(adept_model_mask_out(m, &nt, &base, skip, &n, &evals, &naive), ADEPT_EINVAL);
    in[3] = 999;
    CHECK_FAILS(adept_model_mask_out(m, &b, &base, skip, &n, &evals, &naive), ADEPT_EINVAL);
    adept_model_free(m);
}

static void test_block_influence(void) {
    adept_model *m = tiny(0);
    int32_t in[B * T], tg[B * T];
    batch(in, tg);
    adept_batch b = {B, T, in, tg};
    double bi[L];
    int64_t n;
    CHECK_OK(adept_model_block_influence(m, &b, bi, &n));
    CHECK(n == B * T - 2);
    size_t C = 16, N = B * T;
    float *hs = malloc((L + 1) * N * C * sizeof(float));
    CHECK_OK(adept_model_hidden_states(m, &b, hs));
    for (int l = 0; l < L; l++) {
        double want = 0;
        for (size_t i = 0; i < N; i++) {
            if (tg[i] < 0) continue;
            double xy = 0, xx = 0, yy = 0;
            for (size_t c = 0; c < C; c++) {
                double x = hs[(l * N + i) * C + c], y = hs[((l + 1) * N + i) * C + c];
                xy += x * y; xx += x * x; yy += y * y;
            }
            want += 1 - xy / sqrt(xx * yy);
        }
        /* the same f32 hidden states (same batch); only the double sums over C and N differ in order */
        CHECK(fabs(want - bi[l]) < 1e-9 && bi[l] > 0);
    }
    /* an identity copy changes nothing: influence 0 */
    int layers[1] = {2}, idx[1];
    CHECK_OK(adept_model_expand(m, layers, 1, idx));
    double bi2[L + 1];
    CHECK_OK(adept_model_block_influence(m, &b, bi2, &n));
    CHECK(idx[0] == 3 && bi2[3] == 0 && fabs(bi2[4] - bi[3]) < 1e-12);
    free(hs);
    adept_model_free(m);
}

int main(void) {
    test_mask_out(0);
    test_mask_out(1);
    test_block_influence();
    return check_summary();
}
