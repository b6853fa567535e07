/* The CPU backend's products with frozen 16-bit weights (engine/ops/cpu/gemm16.c) against float64 references:
   forward (with bias and with the fused residual), backward (dinp overwritten and accumulated) and the embedding
   gather, for bf16 (oneDNN where the CPU has native bf16 kernels, activations rounded to bf16 first) and f16 (widened
   blocks for sgemm, activations in fp32), on shapes that cut the 64-wide blocks unevenly. The sgemm path's blocks
   are fixed, so its results are bitwise the same for any thread count. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "adept/backend.h"
#include "check.h"

static double uniform(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 65536.0 * 2 - 1;
}

static uint16_t to16(float x, adept_dtype dt) { return dt == ADEPT_BF16 ? adept_f32_to_bf16(x) : adept_f32_to_f16(x); }
static double from16(uint16_t h, adept_dtype dt) { return dt == ADEPT_BF16 ? adept_bf16_to_f32(h) : adept_f16_to_f32(h); }

/* an operand as the backend multiplies it: rounded to bf16 on the oneDNN path, as is otherwise */
static double operand(float x, int rounds) { return rounds ? adept_bf16_to_f32(adept_f32_to_bf16(x)) : x; }

/* Every element within 2 K u (u = 2^-24) of the sum of its terms' magnitudes (fp32 accumulation of K exact
   products: bf16 x bf16 and f16-widened x fp32 products are exact in fp32 or within one rounding). */
static int close_to(double got, double ref, double mag, size_t K) { return fabs(got - ref) <= 2.0 * K * ldexp(1, -24) * mag + 1e-30; }

static void test_products(adept_dtype dt, size_t N, size_t IC, size_t OC) {
    const adept_backend *be = adept_backend_cpu();
    int rounds = dt == ADEPT_BF16 && !strcmp(adept_cpu_w16_path(dt), "onednn");
    unsigned s = (unsigned)(N * 131 + IC * 7 + OC);
    float *x = malloc(N * IC * sizeof *x), *bias = malloc(OC * sizeof *bias), *out = malloc(N * OC * sizeof *out);
    float *dout = malloc(N * OC * sizeof *dout), *dinp = malloc(N * IC * sizeof *dinp);
    uint16_t *w = malloc(OC * IC * sizeof *w);
    for (size_t i = 0; i < N * IC; i++) x[i] = (float)uniform(&s);
    for (size_t i = 0; i < OC * IC; i++) w[i] = to16((float)(0.3 * uniform(&s)), dt);
    for (size_t i = 0; i < OC; i++) bias[i] = (float)uniform(&s);
    for (size_t i = 0; i < N * OC; i++) dout[i] = (float)(1e-3 * uniform(&s));
    /* forward with bias, then the fused residual (beta_one) on top of it */
    int ok = 1, ok_acc = 1;
    be->matmul_forward_w16(out, x, w, dt, bias, N, IC, OC, 0);
    float *first = malloc((OC > IC ? OC : IC) * N * sizeof *first);
    memcpy(first, out, N * OC * sizeof *out);
    be->matmul_forward_w16(out, x, w, dt, NULL, N, IC, OC, 1);
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < OC; o++) {
            double ref = 0, mag = 0;
            for (size_t i = 0; i < IC; i++) {
                double t = operand(x[n * IC + i], rounds) * from16(w[o * IC + i], dt);
                ref += t, mag += fabs(t);
            }
            ok &= close_to(first[n * OC + o], ref + bias[o], mag + fabs(bias[o]), IC + 1);
            ok_acc &= close_to(out[n * OC + o], 2 * ref + bias[o], 2 * mag + fabs(bias[o]), 2 * IC + 2);
        }
    CHECK(ok);
    CHECK(ok_acc);
    /* backward: dinp = dout @ w, then accumulated once more */
    int okb = 1, okb_acc = 1;
    for (size_t i = 0; i < N * IC; i++) dinp[i] = 1e30f; /* overwritten */
    be->matmul_backward_w16(dinp, dout, w, dt, N, IC, OC, 0);
    memcpy(first, dinp, N * IC * sizeof *dinp);
    be->matmul_backward_w16(dinp, dout, w, dt, N, IC, OC, 1);
    for (size_t n = 0; n < N; n++)
        for (size_t i = 0; i < IC; i++) {
            double ref = 0, mag = 0;
            for (size_t o = 0; o < OC; o++) {
                double t = operand(dout[n * OC + o], rounds) * from16(w[o * IC + i], dt);
                ref += t, mag += fabs(t);
            }
            okb &= close_to(first[n * IC + i], ref, mag, OC);
            okb_acc &= close_to(dinp[n * IC + i], 2 * ref, 2 * mag, 2 * OC);
        }
    CHECK(okb);
    CHECK(okb_acc);
    be->matmul_backward_w16(NULL, dout, w, dt, N, IC, OC, 0); /* no dinp wanted: nothing to do, no crash */
    /* the sgemm path: the same bits at 1 and 2 threads */
    if (!rounds) {
        int nt = omp_get_max_threads();
        omp_set_num_threads(1);
        be->matmul_forward_w16(out, x, w, dt, bias, N, IC, OC, 0);
        be->matmul_backward_w16(dinp, dout, w, dt, N, IC, OC, 0);
        float *o1 = malloc(N * OC * sizeof *o1), *d1 = malloc(N * IC * sizeof *d1);
        memcpy(o1, out, N * OC * sizeof *out);
        memcpy(d1, dinp, N * IC * sizeof *dinp);
        omp_set_num_threads(2);
        be->matmul_forward_w16(out, x, w, dt, bias, N, IC, OC, 0);
        be->matmul_backward_w16(dinp, dout, w, dt, N, IC, OC, 0);
        CHECK(!memcmp(o1, out, N * OC * sizeof *out) && !memcmp(d1, dinp, N * IC * sizeof *dinp));
        omp_set_num_threads(nt);
        free(o1), free(d1);
    }
    printf("%s %zu x %zu x %zu (%s): forward %s, backward %s\n", adept_dtype_name(dt), N, IC, OC,
           rounds ? "oneDNN, activations rounded to bf16" : "widened for sgemm", ok && ok_acc ? "ok" : "WRONG",
           okb && okb_acc ? "ok" : "WRONG");
    free(x), free(bias), free(out), free(dout), free(dinp), free(w), free(first);
}

static void test_embedding(adept_dtype dt) {
    const adept_backend *be = adept_backend_cpu();
    size_t V = 11, C = 37, N = 6;
    uint16_t emb[11 * 37];
    unsigned s = 9;
    for (size_t i = 0; i < V * C; i++) emb[i] = to16((float)uniform(&s), dt);
    int32_t ids[6] = {3, 0, 10, 3, 7, 1};
    float out[6 * 37];
    be->embedding_forward_w16(out, ids, emb, dt, N, C);
    int ok = 1;
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++) ok &= out[n * C + c] == (float)from16(emb[ids[n] * C + c], dt); /* exact */
    CHECK(ok);
}

int main(void) {
    printf("bf16 products: %s\n", adept_cpu_w16_path(ADEPT_BF16));
    CHECK(!strcmp(adept_cpu_w16_path(ADEPT_F16), "sgemm"));
    adept_dtype dts[2] = {ADEPT_BF16, ADEPT_F16};
    for (int d = 0; d < 2; d++) {
        test_products(dts[d], 5, 70, 130);
        test_products(dts[d], 33, 128, 64);
        test_products(dts[d], 1, 200, 3);
        test_embedding(dts[d]);
    }
    return check_summary();
}
