/* The CPU backend's bf16 products of fp32 weights (engine/ops/cpu/gemm_bf16.c; adept_backend.matmul_forward_bf16
   / matmul_backward_bf16, the model's precision "bf16") against float64 references of the ROUNDED operands:
   forward with bias and with the fused residual, backward dinp (overwritten and accumulated), dW accumulated into
   an existing gradient, dbias from the fp32 output gradient, NULL outputs, K = 0, and the same bits when run
   again. Bound: every element within 2 K u (u = 2^-24) of the sum of its terms' magnitudes: the products of
   two bf16 values are exact in fp32, so only the K fp32 additions round (K u each, doubled for slack).
   The same outputs must MISS the float64 reference of the unrounded operands by far more than that bound (the
   operands really are rounded: bf16 keeps 8 significant bits, so the miss is ~2^-9 relative), so a kernel
   that forgot to round fails here too. Then the model: adept_model_set_precision and its refusal on a backend
   without the entries, naming the device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adept/backend.h"
#include "adept/model.h"
#include "check.h"

static double uniform(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 65536.0 * 2 - 1;
}

static double bf(float x) { return adept_bf16_to_f32(adept_f32_to_bf16(x)); }

static double bound(double mag, size_t K) { return 2.0 * K * ldexp(1, -24) * mag + 1e-30; }

/* Checks C [M, Nc] against sum_k A(m, k) B(k, n) (+ add[n]) with A(m, k) = A[m * am + k * ak], B(k, n) =
   B[k * bk + n * bn], in float64 over the rounded (rounds = 1) operands, scaled by `times` (accumulated twice).
   Returns 1 when every element is within the bound; *miss_unrounded gets the largest |C - ref(unrounded)| over
   its bound (>> 1 when the kernel rounded). */
static int check_product(const float *C, const float *A, size_t am, size_t ak, const float *B, size_t bk, size_t bn,
                         const float *add, size_t M, size_t Nc, size_t K, double times, double *miss_unrounded) {
    int ok = 1;
    double miss = 0;
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < Nc; n++) {
            double ref = 0, mag = 0, raw = 0, rawmag = 0;
            for (size_t k = 0; k < K; k++) {
                float a = A[m * am + k * ak], b = B[k * bk + n * bn];
                double t = bf(a) * bf(b), r = (double)a * b;
                ref += t, mag += fabs(t), raw += r, rawmag += fabs(r);
            }
            double extra = add ? add[n] : 0;
            double got = C[m * Nc + n];
            ok &= fabs(got - (times * ref + extra)) <= bound(times * mag + fabs(extra), (size_t)times * K + 1);
            double e = fabs(got - (times * raw + extra)) / bound(times * rawmag + fabs(extra), (size_t)times * K + 1);
            if (e > miss) miss = e;
        }
    if (miss_unrounded) *miss_unrounded = miss;
    return ok;
}

static void fill(float *x, size_t n, double scale, unsigned *s) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * uniform(s));
}

static void test_products(size_t N, size_t IC, size_t OC) {
    const adept_backend *be = adept_backend_cpu();
    unsigned s = (unsigned)(N * 131 + IC * 7 + OC);
    size_t big = (N > OC ? N : OC) * (IC > OC ? IC : OC);
    float *x = malloc(N * IC * sizeof *x), *w = malloc(OC * IC * sizeof *w), *bias = malloc(OC * sizeof *bias);
    float *out = malloc(N * OC * sizeof *out), *first = malloc(big * sizeof *first);
    float *dout = malloc(N * OC * sizeof *dout), *dinp = malloc(N * IC * sizeof *dinp);
    float *dw = malloc(OC * IC * sizeof *dw), *dw0 = malloc(OC * IC * sizeof *dw0), *dbias = malloc(OC * sizeof *dbias);
    fill(x, N * IC, 1, &s), fill(w, OC * IC, 0.3, &s), fill(bias, OC, 1, &s), fill(dout, N * OC, 1e-3, &s);
    fill(dw0, OC * IC, 1e-2, &s);
    double miss_f, miss_b, miss_w;

    /* forward with bias, then the fused residual (beta_one) on top */
    be->matmul_forward_bf16(out, x, w, bias, N, IC, OC, 0);
    memcpy(first, out, N * OC * sizeof *out);
    int okf = check_product(first, x, IC, 1, w, 1, IC, bias, N, OC, IC, 1, &miss_f);
    be->matmul_forward_bf16(out, x, w, NULL, N, IC, OC, 1);
    int okf_acc = check_product(out, x, IC, 1, w, 1, IC, bias, N, OC, IC, 2, NULL);
    CHECK(okf);
    CHECK(okf_acc);

    /* backward: dinp overwritten (garbage before), dw accumulated onto dw0, dbias accumulated onto 0 */
    for (size_t i = 0; i < N * IC; i++) dinp[i] = 1e30f;
    memcpy(dw, dw0, OC * IC * sizeof *dw);
    memset(dbias, 0, OC * sizeof *dbias);
    be->matmul_backward_bf16(dinp, dw, dbias, dout, x, w, N, IC, OC, 0);
    int okb = check_product(dinp, dout, OC, 1, w, IC, 1, NULL, N, IC, OC, 1, &miss_b);
    int okw = 1;
    {
        /* dw = dw0 + dout^T @ x: compare dw itself, with dw0 as a per-element addend */
        double worst = 0;
        for (size_t o = 0; o < OC; o++)
            for (size_t i = 0; i < IC; i++) {
                double ref = dw0[o * IC + i], mag = fabs(dw0[o * IC + i]), raw = ref, rawmag = mag;
                for (size_t n = 0; n < N; n++) {
                    float a = dout[n * OC + o], b = x[n * IC + i];
                    double t = bf(a) * bf(b), r = (double)a * b;
                    ref += t, mag += fabs(t), raw += r, rawmag += fabs(r);
                }
                okw &= fabs(dw[o * IC + i] - ref) <= bound(mag, N + 1);
                double e = fabs(dw[o * IC + i] - raw) / bound(rawmag, N + 1);
                if (e > worst) worst = e;
            }
        miss_w = worst;
    }
    int okbias = 1;
    for (size_t o = 0; o < OC; o++) { /* the fp32 dout summed, not rounded */
        double ref = 0, mag = 0;
        for (size_t n = 0; n < N; n++) ref += dout[n * OC + o], mag += fabs(dout[n * OC + o]);
        okbias &= fabs(dbias[o] - ref) <= bound(mag, N);
    }
    CHECK(okb);
    CHECK(okw);
    CHECK(okbias);
    /* accumulate dinp once more; NULL dw and dbias are skipped */
    memcpy(first, dinp, N * IC * sizeof *dinp);
    be->matmul_backward_bf16(dinp, NULL, NULL, dout, x, w, N, IC, OC, 1);
    CHECK(check_product(dinp, dout, OC, 1, w, IC, 1, NULL, N, IC, OC, 2, NULL));
    be->matmul_backward_bf16(NULL, NULL, NULL, dout, x, w, N, IC, OC, 0); /* nothing wanted: no crash */

    /* the operands were rounded: the unrounded reference is missed by far more than the bound (K >= 3 here,
       random operands: the relative miss is ~2^-9 against a bound of 2 K 2^-24) */
    CHECK(miss_f > 10 && miss_b > 10 && miss_w > 10);

    /* run again: the same bits (the fp32 kernels it reuses are reproducible for a fixed thread count) */
    float *o1 = malloc(N * OC * sizeof *o1), *d1 = malloc(N * IC * sizeof *d1), *w1 = malloc(OC * IC * sizeof *w1);
    be->matmul_forward_bf16(o1, x, w, bias, N, IC, OC, 0);
    memcpy(w1, dw0, OC * IC * sizeof *w1);
    be->matmul_backward_bf16(d1, w1, NULL, dout, x, w, N, IC, OC, 0);
    be->matmul_forward_bf16(out, x, w, bias, N, IC, OC, 0);
    memcpy(dw, dw0, OC * IC * sizeof *dw);
    be->matmul_backward_bf16(dinp, dw, NULL, dout, x, w, N, IC, OC, 0);
    CHECK(!memcmp(o1, out, N * OC * sizeof *out) && !memcmp(d1, dinp, N * IC * sizeof *dinp) &&
          !memcmp(w1, dw, OC * IC * sizeof *dw));
    printf("bf16 products %zu x %zu x %zu: forward %s, dinp %s, dw %s, dbias %s; unrounded reference missed by "
           "%.0f / %.0f / %.0f bounds\n",
           N, IC, OC, okf && okf_acc ? "ok" : "WRONG", okb ? "ok" : "WRONG", okw ? "ok" : "WRONG",
           okbias ? "ok" : "WRONG", miss_f, miss_b, miss_w);
    free(x), free(w), free(bias), free(out), free(first), free(dout), free(dinp), free(dw), free(dw0), free(dbias);
    free(o1), free(d1), free(w1);
}

/* K = 0 (IC = 0 forward: the bias alone; OC = 0 backward: dinp zeroed or kept) as the fp32 entries do it */
static void test_empty(void) {
    const adept_backend *be = adept_backend_cpu();
    float out[6] = {9, 9, 9, 9, 9, 9}, bias[3] = {1, 2, 3}, dinp[4] = {5, 5, 5, 5};
    be->matmul_forward_bf16(out, NULL, NULL, bias, 2, 0, 3, 0);
    CHECK(out[0] == 1 && out[4] == 2 && out[5] == 3);
    be->matmul_forward_bf16(out, NULL, NULL, NULL, 2, 0, 3, 0);
    CHECK(out[0] == 0 && out[5] == 0);
    be->matmul_backward_bf16(dinp, NULL, NULL, NULL, NULL, NULL, 2, 2, 0, 1);
    CHECK(dinp[0] == 5);
    be->matmul_backward_bf16(dinp, NULL, NULL, NULL, NULL, NULL, 2, 2, 0, 0);
    CHECK(dinp[0] == 0 && dinp[3] == 0);
}

/* The model-level switch: default f32, set and read back, unknown names refused naming the valid values, and a
   backend without the bf16 entries refuses "bf16" naming the device while "f32" still works. */
static void test_model_switch(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 11, c.hidden_size = 16, c.intermediate_size = 32, c.num_layers = 1, c.num_heads = 2;
    c.num_kv_heads = 2;
    adept_model *m;
    CHECK_OK(adept_model_create(&c, 1, 0.02f, &m));
    CHECK(adept_model_precision(m) == ADEPT_PRECISION_F32);
    CHECK_OK(adept_model_set_precision(m, ADEPT_PRECISION_BF16));
    CHECK(adept_model_precision(m) == ADEPT_PRECISION_BF16);
    CHECK(!strcmp(adept_precision_name(adept_model_precision(m)), "bf16"));
    adept_model_free(m);
    adept_precision p;
    CHECK_FAILS(adept_precision_parse("bfloat16", &p), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "'bfloat16'") && strstr(adept_last_error(), "\"f32\" or \"bf16\""));
    CHECK_OK(adept_precision_parse("f32", &p));
    CHECK(p == ADEPT_PRECISION_F32);

    adept_backend plain = *adept_backend_cpu();
    plain.name = "plain-cpu";
    plain.matmul_forward_bf16 = NULL;
    plain.matmul_backward_bf16 = NULL;
    adept_backend_register(ADEPT_CPU, &plain);
    CHECK_OK(adept_model_create(&c, 1, 0.02f, &m));
    CHECK_FAILS(adept_model_set_precision(m, ADEPT_PRECISION_BF16), ADEPT_EUNSUPPORTED);
    printf("refusal: %s\n", adept_last_error());
    CHECK(strstr(adept_last_error(), "cpu device") && strstr(adept_last_error(), "plain-cpu"));
    CHECK(adept_model_precision(m) == ADEPT_PRECISION_F32);
    CHECK_OK(adept_model_set_precision(m, ADEPT_PRECISION_F32));
    adept_model_free(m);
    adept_backend_register(ADEPT_CPU, NULL);
}

int main(void) {
    test_products(5, 70, 130);
    test_products(33, 128, 64);
    test_products(3, 200, 3);
    test_empty();
    test_model_switch();
    return check_summary();
}
