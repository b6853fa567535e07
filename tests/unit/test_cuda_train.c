/* The CUDA backend's memory entries, cross-entropy and the loss sum, AdamW over segments, sum_squares and scale
   against the CPU backend; errors of void kernels reported by the next status call, naming the op; and two runs
   of the reductions and backward kernels bitwise equal (no atomics). Skips (77) without a device. */
#include <stdint.h>

#include "cuda_compare.h"

static void test_memory(void) {
    /* alloc gives zeroed memory; round trips; copy; fill_zero; size 0 is a valid pointer */
    const size_t n = 4099;
    float *d = cuda_be->alloc(n * 4), *e = cuda_be->alloc(n * 4);
    CHECK(d && e);
    float *z = dev_back(d, n * 4);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) nonzero += z[i] != 0;
    CHECK(nonzero == 0);
    float *x = host_rand(n, 1);
    CHECK_OK(cuda_be->to_device(d, x, n * 4));
    CHECK_OK(cuda_be->copy(e, d, n * 4));
    float *y = dev_back(e, n * 4);
    compare_bitwise("memory round trip and copy", y, x, n * 4);
    CHECK_OK(cuda_be->fill_zero(e + 10, 100 * 4));
    free(y);
    y = dev_back(e, n * 4);
    CHECK(y[9] == x[9] && y[10] == 0 && y[109] == 0 && y[110] == x[110]);
    void *empty = cuda_be->alloc(0);
    CHECK(empty != NULL);
    CHECK_OK(cuda_be->synchronize());
    CHECK(cuda_be->enter != NULL);
    cuda_be->exit(cuda_be->enter());
    cuda_be->free(empty), cuda_be->free(d), cuda_be->free(e), cuda_be->free(NULL);
    free(z), free(x), free(y);
}

static void test_xent(size_t N, size_t V, int want_grad) {
    int32_t *tg = malloc(N * sizeof *tg);
    for (size_t n = 0; n < N; n++) tg[n] = (int32_t)(((frand() + 1) * 0.5) * V) % (int32_t)V;
    tg[N / 2] = -1; /* an ignored row */
    tg[0] = (int32_t)V - 1;
    float *logits = host_rand(N * V, 6);
    double *nll = malloc(N * sizeof *nll);
    float *d_logits = dev_from(logits, N * V * 4);
    int32_t *d_tg = dev_from(tg, N * sizeof *tg);
    double *d_nll = dev_from(NULL, N * sizeof *nll);
    double scale = 1.0 / (double)(N - 1);
    cpu_be->xent(logits, nll, tg, N, V, scale, want_grad);
    cuda_be->xent(d_logits, d_nll, d_tg, N, V, scale, want_grad);
    double *g_nll = dev_back(d_nll, N * sizeof *nll);
    char name[64];
    snprintf(name, sizeof name, "xent nll V=%zu grad=%d", V, want_grad);
    compare_f64(name, g_nll, nll, N, CUDA_TOL);
    CHECK(g_nll[N / 2] == 0);
    if (want_grad) {
        float *g = dev_back(d_logits, N * V * 4);
        snprintf(name, sizeof name, "xent grad V=%zu", V);
        compare_f32(name, g, logits, N * V, CUDA_TOL);
        free(g);
    }
    /* the loss: the same values summed in the same order give the same double */
    double s_cpu = 0, s_gpu = 0, s_gpu_of_cpu = 0;
    CHECK_OK(cpu_be->nll_sum(nll, tg, N, &s_cpu));
    CHECK_OK(cuda_be->nll_sum(d_nll, d_tg, N, &s_gpu));
    CHECK_OK(cuda_be->to_device(d_nll, nll, N * sizeof *nll));
    CHECK_OK(cuda_be->nll_sum(d_nll, d_tg, N, &s_gpu_of_cpu));
    compare_f64("nll_sum", &s_gpu, &s_cpu, 1, CUDA_TOL);
    compare_bitwise("nll_sum of the same values", &s_gpu_of_cpu, &s_cpu, sizeof s_cpu);
    free(tg), free(logits), free(nll), free(g_nll);
    cuda_be->free(d_logits), cuda_be->free(d_tg), cuda_be->free(d_nll);
}

static void test_adamw(void) {
    /* three segments: tiny, across an 8192-element block edge, across several; one without decay */
    const size_t sizes[3] = {10, 20000, 70001};
    adept_adamw_segment hs[3], ds[3];
    float *host[3][4], *dev[3][4];
    for (int s = 0; s < 3; s++) {
        size_t n = sizes[s];
        host[s][0] = host_rand(n, 1);                                     /* p */
        host[s][1] = host_rand(n, 0.1f);                                  /* g */
        host[s][2] = host_rand(n, 0.01f);                                 /* m */
        host[s][3] = host_rand(n, 0.001f);                                /* v >= 0 */
        for (size_t i = 0; i < n; i++) host[s][3][i] = fabsf(host[s][3][i]);
        for (int j = 0; j < 4; j++) dev[s][j] = dev_from(host[s][j], n * 4);
        float lr = 1e-3f * (float)(s + 1), wd = s == 1 ? 0.0f : 0.1f;
        int t = 3;
        adept_adamw_segment seg = {.n = n, .shrink = 1 - lr * wd, .neg_step = -lr / (1 - powf(0.9f, t)),
                                   .bc2_sqrt = sqrtf(1 - powf(0.999f, t))};
        hs[s] = seg, ds[s] = seg;
        hs[s].p = host[s][0], hs[s].g = host[s][1], hs[s].m = host[s][2], hs[s].v = host[s][3];
        ds[s].p = dev[s][0], ds[s].g = dev[s][1], ds[s].m = dev[s][2], ds[s].v = dev[s][3];
    }
    for (int step = 0; step < 2; step++) {
        CHECK_OK(cpu_be->adamw(hs, 3, 0.9f, 0.999f, 1e-8f));
        CHECK_OK(cuda_be->adamw(ds, 3, 0.9f, 0.999f, 1e-8f));
    }
    static const char *what[4] = {"p", "g", "m", "v"};
    for (int s = 0; s < 3; s++)
        for (int j = 0; j < 4; j++) {
            if (j == 1) continue;
            float *got = dev_back(dev[s][j], sizes[s] * 4);
            char name[64];
            snprintf(name, sizeof name, "adamw seg %d %s", s, what[j]);
            compare_f32(name, got, host[s][j], sizes[s], CUDA_TOL);
            free(got);
        }
    for (int s = 0; s < 3; s++)
        for (int j = 0; j < 4; j++) free(host[s][j]), cuda_be->free(dev[s][j]);
    CHECK_OK(cuda_be->adamw(NULL, 0, 0.9f, 0.999f, 1e-8f)); /* nothing to do */
}

static void test_sum_squares_scale(void) {
    const size_t n = 100003; /* four chunks of 32768, the last partial */
    float *x = host_rand(n, 3);
    float *d = dev_from(x, n * 4);
    double s_cpu = 0, s_gpu = 0;
    CHECK_OK(cpu_be->sum_squares(x, n, &s_cpu));
    CHECK_OK(cuda_be->sum_squares(d, n, &s_gpu));
    /* double sums of 1e5 float squares: the orders differ inside a chunk, 1e5 * 2^-53 = 1e-11 at most */
    compare_f64("sum_squares", &s_gpu, &s_cpu, 1, 1e-11);
    double zero = -1;
    CHECK_OK(cuda_be->sum_squares(d, 0, &zero));
    CHECK(zero == 0);
    cpu_be->scale(x, n, 0.37f);
    cuda_be->scale(d, n, 0.37f);
    float *got = dev_back(d, n * 4);
    compare_bitwise("scale", got, x, n * 4); /* one rounding per element on both sides */
    free(x), free(got);
    cuda_be->free(d);
}

/* a void kernel that fails records the error; the next status call reports it, naming the op, then clears it */
static void test_error_reporting(void) {
    float *d = cuda_be->alloc(64);
    cuda_be->gemm(ADEPT_NO_TRANS, ADEPT_NO_TRANS, (size_t)1 << 32, 1, 1, 1.0f, d, 1, d, 1, 0.0f, d, 1);
    adept_status st = cuda_be->synchronize();
    printf("pending error reported as: %s\n", adept_last_error());
    CHECK(st == ADEPT_EUNSUPPORTED);
    CHECK(strstr(adept_last_error(), "cuda: gemm:") != NULL);
    CHECK_OK(cuda_be->synchronize()); /* reported once */
    size_t huge = (size_t)1 << 60;
    CHECK(cuda_be->alloc(huge) == NULL);
    printf("huge allocation: %s\n", adept_last_error());
    CHECK(strstr(adept_last_error(), "cannot allocate") != NULL);
    CHECK_OK(cuda_be->synchronize()); /* an out-of-memory is not sticky */
    cuda_be->free(d);
}

/* two runs of the reductions give the same bits */
static void test_determinism(void) {
    const size_t B = 2, T = 130, H = 4, KH = 2, D = 32, N = 1000, C = 256;
    size_t nq = B * T * H * D, nk = B * T * KH * D, nl = B * H * T;
    float *q = host_rand(nq, 1), *k = host_rand(nk, 1), *v = host_rand(nk, 1), *dy = host_rand(nq, 1);
    float *x = host_rand(N * C, 1), *w = host_rand(C, 1), *dout = host_rand(N * C, 1);
    float *d_q = dev_from(q, nq * 4), *d_k = dev_from(k, nk * 4), *d_v = dev_from(v, nk * 4);
    float *d_dy = dev_from(dy, nq * 4), *d_x = dev_from(x, N * C * 4), *d_w = dev_from(w, C * 4);
    float *d_dout = dev_from(dout, N * C * 4);
    void *first[4] = {0};
    for (int run = 0; run < 2; run++) {
        float *d_y = dev_from(NULL, nq * 4), *d_lse = dev_from(NULL, nl * 4);
        float *d_dq = dev_from(NULL, nq * 4), *d_dk = dev_from(NULL, nk * 4), *d_dv = dev_from(NULL, nk * 4);
        float *d_rstd = dev_from(NULL, N * 4), *d_o = dev_from(NULL, N * C * 4), *d_dw = dev_from(NULL, C * 4);
        cuda_be->attention_forward(d_y, d_lse, d_q, d_k, d_v, B, T, H, KH, D, 0);
        cuda_be->attention_backward(d_dq, d_dk, d_dv, d_dy, d_y, d_lse, d_q, d_k, d_v, B, T, H, KH, D, 0);
        cuda_be->rmsnorm_forward(d_o, d_rstd, d_x, d_w, N, C, 1e-6);
        cuda_be->rmsnorm_backward(NULL, d_dw, d_dout, d_x, d_w, d_rstd, N, C);
        void *now[4] = {dev_back(d_dq, nq * 4), dev_back(d_dk, nk * 4), dev_back(d_dv, nk * 4), dev_back(d_dw, C * 4)};
        if (run == 0) memcpy(first, now, sizeof now);
        else {
            compare_bitwise("determinism attention dq", now[0], first[0], nq * 4);
            compare_bitwise("determinism attention dk", now[1], first[1], nk * 4);
            compare_bitwise("determinism attention dv", now[2], first[2], nk * 4);
            compare_bitwise("determinism rmsnorm dw", now[3], first[3], C * 4);
            for (int i = 0; i < 4; i++) free(now[i]), free(first[i]);
        }
        cuda_be->free(d_y), cuda_be->free(d_lse), cuda_be->free(d_dq), cuda_be->free(d_dk);
        cuda_be->free(d_dv), cuda_be->free(d_rstd), cuda_be->free(d_o), cuda_be->free(d_dw);
    }
    free(q), free(k), free(v), free(dy), free(x), free(w), free(dout);
    cuda_be->free(d_q), cuda_be->free(d_k), cuda_be->free(d_v), cuda_be->free(d_dy), cuda_be->free(d_x);
    cuda_be->free(d_w), cuda_be->free(d_dout);
}

int main(void) {
    cuda_or_skip();
    test_memory();
    test_xent(9, 1000, 1);
    test_xent(9, 1000, 0);
    test_xent(4, 32000, 1);
    test_adamw();
    test_sum_squares_scale();
    test_error_reporting();
    test_determinism();
    CHECK_OK(cuda_be->synchronize());
    return check_summary();
}
