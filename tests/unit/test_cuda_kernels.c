/* The CUDA layer kernels against the CPU backend on random inputs: GEMM (all transposes, leading dimensions,
   alpha/beta), matmul forward/backward (bias, fused residual, accumulate or overwrite) in fp32 and as bf16
   products of fp32 weights (precision "bf16"), RMSNorm, RoPE, SwiGLU, products with frozen bf16/f16 weights,
   embedding (backward bitwise: same order as the CPU) and flash-style causal GQA attention at T = 1, 17, 70, 100
   (head_dim 128), 512 and 4096 (the CPU kernel works in blocks of 64 rows, the device in tiles of 32, so 70
   crosses both), with sliding windows of 1, 5, 33, 100 and 1000, each by the flash kernels, by the chunked GEMMs
   in fp32 and in bf16 (bounds at test_attention_mode). Bound and its derivation: cuda_compare.h.
   Skips (77) without a device. */
#include "cuda_compare.h"

static void test_gemm(void) {
    const size_t M = 37, N = 65, K = 129;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            /* leading dimensions wider than the matrix, so a wrong ld shows */
            size_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7;
            size_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb, nc = M * ldc;
            float *A = host_rand(na, 1), *B = host_rand(nb, 1), *C = host_rand(nc, 1);
            float *dA = dev_from(A, na * 4), *dB = dev_from(B, nb * 4), *dC = dev_from(C, nc * 4);
            cpu_be->gemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, 0.5f, C, ldc);
            cuda_be->gemm(ta, tb, M, N, K, 0.75f, dA, lda, dB, ldb, 0.5f, dC, ldc);
            float *got = dev_back(dC, nc * 4);
            char name[64];
            snprintf(name, sizeof name, "gemm %c%c", ta ? 'T' : 'N', tb ? 'T' : 'N');
            compare_f32(name, got, C, nc, CUDA_TOL);
            free(A), free(B), free(C), free(got);
            cuda_be->free(dA), cuda_be->free(dB), cuda_be->free(dC);
        }
    /* K = 0: C = beta C */
    float C0[6] = {1, 2, 3, 4, 5, 6}, ref[6];
    for (int i = 0; i < 6; i++) ref[i] = 0.5f * C0[i];
    float *dC = dev_from(C0, sizeof C0), *dA = dev_from(NULL, 64);
    cuda_be->gemm(ADEPT_NO_TRANS, ADEPT_NO_TRANS, 2, 3, 0, 1.0f, dA, 1, dA, 3, 0.5f, dC, 3);
    float *got = dev_back(dC, sizeof C0);
    compare_f32("gemm K=0", got, ref, 6, 0);
    free(got);
    cuda_be->free(dC), cuda_be->free(dA);
}

/* matmul forward/backward, fp32 (bf16 = 0) or the bf16 products of fp32 weights (bf16 = 1, precision "bf16":
   gemm16.cu's matmul_*_bf16 against gemm_bf16.c). Both sides of the bf16 entries round the same fp32 operands to
   bf16 the same way (nearest even), so they multiply the same exact products and differ only in the order of the
   fp32 sums: CUDA_TOL on raw random inputs, as for fp32. Forward with and without bias and residual; backward
   with every gradient accumulating onto random contents (dinp overwritten when !acc), then dinp alone (a frozen
   weight). That the device's bf16 entry really rounds: its forward is farther than 10 CUDA_TOL from the CPU's
   fp32 one (rounding moves a product by ~1e-3 normwise). */
typedef void (*matmul_fwd_fn)(float *, const float *, const float *, const float *, size_t, size_t, size_t, int);
typedef void (*matmul_bwd_fn)(float *, float *, float *, const float *, const float *, const float *, size_t, size_t,
                              size_t, int);

static void test_matmul(int bf16, size_t N, size_t IC, size_t OC) {
    matmul_fwd_fn cpu_fwd = bf16 ? cpu_be->matmul_forward_bf16 : cpu_be->matmul_forward;
    matmul_fwd_fn dev_fwd = bf16 ? cuda_be->matmul_forward_bf16 : cuda_be->matmul_forward;
    matmul_bwd_fn cpu_bwd = bf16 ? cpu_be->matmul_backward_bf16 : cpu_be->matmul_backward;
    matmul_bwd_fn dev_bwd = bf16 ? cuda_be->matmul_backward_bf16 : cuda_be->matmul_backward;
    const char *fname = bf16 ? "matmul_forward_bf16" : "matmul_forward";
    const char *bname = bf16 ? "matmul_backward_bf16" : "matmul_backward";
    float *inp = host_rand(N * IC, 1), *w = host_rand(OC * IC, 0.1f), *bias = host_rand(OC, 1);
    float *d_inp = dev_from(inp, N * IC * 4), *d_w = dev_from(w, OC * IC * 4), *d_b = dev_from(bias, OC * 4);
    char name[96];
    for (int variant = 0; variant < 4; variant++) {
        int with_bias = variant & 1, beta_one = (variant >> 1) & 1;
        float *out = host_rand(N * OC, 1), *d_out = dev_from(out, N * OC * 4);
        cpu_fwd(out, inp, w, with_bias ? bias : NULL, N, IC, OC, beta_one);
        dev_fwd(d_out, d_inp, d_w, with_bias ? d_b : NULL, N, IC, OC, beta_one);
        float *got = dev_back(d_out, N * OC * 4);
        snprintf(name, sizeof name, "%s %zux%zux%zu bias=%d beta_one=%d", fname, N, IC, OC, with_bias, beta_one);
        compare_f32(name, got, out, N * OC, CUDA_TOL);
        if (bf16 && variant == 0) {
            float *f32 = malloc(N * OC * 4);
            cpu_be->matmul_forward(f32, inp, w, NULL, N, IC, OC, 0);
            double maxabs;
            int nan_mismatch;
            double rel = relerr_f32(got, f32, N * OC, &maxabs, &nan_mismatch);
            int ok = !nan_mismatch && rel > 10 * CUDA_TOL;
            printf("cuda-check %-36s relerr=%.2e from the fp32 product, must exceed %.0e %s\n",
                   "matmul_forward_bf16 rounds", rel, 10 * CUDA_TOL, ok ? "ok" : "FAIL");
            CHECK(ok);
            free(f32);
        }
        free(got), free(out), cuda_be->free(d_out);

        /* backward: every gradient accumulates onto random contents (dinp overwritten when !accumulate) */
        int acc = variant & 1;
        float *dout = host_rand(N * OC, 1), *dinp = host_rand(N * IC, 1), *dw = host_rand(OC * IC, 1);
        float *dbias = host_rand(OC, 1);
        float *d_dout = dev_from(dout, N * OC * 4), *d_dinp = dev_from(dinp, N * IC * 4);
        float *d_dw = dev_from(dw, OC * IC * 4), *d_db = dev_from(dbias, OC * 4);
        cpu_bwd(dinp, dw, dbias, dout, inp, w, N, IC, OC, acc);
        dev_bwd(d_dinp, d_dw, d_db, d_dout, d_inp, d_w, N, IC, OC, acc);
        float *g_dinp = dev_back(d_dinp, N * IC * 4), *g_dw = dev_back(d_dw, OC * IC * 4);
        float *g_db = dev_back(d_db, OC * 4);
        snprintf(name, sizeof name, "%s dinp %zux%zux%zu acc=%d", bname, N, IC, OC, acc);
        compare_f32(name, g_dinp, dinp, N * IC, CUDA_TOL);
        snprintf(name, sizeof name, "%s dw", bname);
        compare_f32(name, g_dw, dw, OC * IC, CUDA_TOL);
        snprintf(name, sizeof name, "%s dbias", bname);
        compare_f32(name, g_db, dbias, OC, CUDA_TOL);
        /* dinp alone (a frozen weight), accumulated */
        cpu_bwd(dinp, NULL, NULL, dout, inp, w, N, IC, OC, 1);
        dev_bwd(d_dinp, NULL, NULL, d_dout, d_inp, d_w, N, IC, OC, 1);
        free(g_dinp);
        g_dinp = dev_back(d_dinp, N * IC * 4);
        snprintf(name, sizeof name, "%s dinp only", bname);
        compare_f32(name, g_dinp, dinp, N * IC, CUDA_TOL);
        free(g_dinp), free(g_dw), free(g_db), free(dout), free(dinp), free(dw), free(dbias);
        cuda_be->free(d_dout), cuda_be->free(d_dinp), cuda_be->free(d_dw), cuda_be->free(d_db);
    }
    free(inp), free(w), free(bias);
    cuda_be->free(d_inp), cuda_be->free(d_w), cuda_be->free(d_b);
}

/* Products with frozen 16-bit weights (gemm16.cu against gemm16.c). The device rounds bf16 products' activations
   (and output gradients) to bf16; the CPU does too on its oneDNN path, but multiplies them unrounded on its sgemm
   path (no AVX-512 BF16, or a shape oneDNN declines). So two kinds of input:
   - prerounded: the host activations already hold bf16 values, so rounding changes nothing on either side and
     both compute the same exact products with fp32 sums in different orders: CUDA_TOL, whichever CPU path ran;
   - raw fp32 activations: the device's rounding (at most 2^-9 relative per activation, of random sign) may be
     absent on the CPU, moving the products by about 2^-9 / sqrt(3) = 1.1e-3 normwise: bound 4e-3.
   f16 weights are widened exactly on both sides with fp32 activations (CUDA_TOL). OC = 4100 crosses the device's
   4096-row f16 widening blocks. */
static void bf16_values(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = adept_bf16_to_f32(adept_f32_to_bf16(x[i]));
}

static void test_matmul_w16(adept_dtype wdt, size_t N, size_t IC, size_t OC, int prerounded) {
    double tol = wdt == ADEPT_BF16 && !prerounded ? 4e-3 : CUDA_TOL;
    const char *dt = wdt == ADEPT_F16 ? "f16" : prerounded ? "bf16 pre" : "bf16";
    float *wf = host_rand(OC * IC, 0.1f);
    uint16_t *w = malloc(OC * IC * sizeof *w);
    for (size_t i = 0; i < OC * IC; i++) w[i] = wdt == ADEPT_BF16 ? adept_f32_to_bf16(wf[i]) : adept_f32_to_f16(wf[i]);
    uint16_t *d_w = dev_from(w, OC * IC * sizeof *w);
    float *inp = host_rand(N * IC, 1), *bias = host_rand(OC, 1);
    if (prerounded) bf16_values(inp, N * IC);
    float *d_inp = dev_from(inp, N * IC * 4), *d_b = dev_from(bias, OC * 4);
    char name[80];
    for (int variant = 0; variant < 4; variant++) {
        int with_bias = variant & 1, beta_one = (variant >> 1) & 1;
        float *out = host_rand(N * OC, 1), *d_out = dev_from(out, N * OC * 4);
        cpu_be->matmul_forward_w16(out, inp, w, wdt, with_bias ? bias : NULL, N, IC, OC, beta_one);
        cuda_be->matmul_forward_w16(d_out, d_inp, d_w, wdt, with_bias ? d_b : NULL, N, IC, OC, beta_one);
        float *got = dev_back(d_out, N * OC * 4);
        snprintf(name, sizeof name, "matmul_fwd_w16 %s %zux%zux%zu b=%d acc=%d", dt, N, IC, OC, with_bias, beta_one);
        compare_f32(name, got, out, N * OC, tol);
        free(got), free(out), cuda_be->free(d_out);

        if (variant > 1) continue; /* backward: overwritten, then accumulated onto random contents */
        int acc = variant & 1;
        float *dout = host_rand(N * OC, 1), *dinp = host_rand(N * IC, 1);
        if (prerounded) bf16_values(dout, N * OC);
        float *d_dout = dev_from(dout, N * OC * 4), *d_dinp = dev_from(dinp, N * IC * 4);
        cpu_be->matmul_backward_w16(dinp, dout, w, wdt, N, IC, OC, acc);
        cuda_be->matmul_backward_w16(d_dinp, d_dout, d_w, wdt, N, IC, OC, acc);
        float *g = dev_back(d_dinp, N * IC * 4);
        snprintf(name, sizeof name, "matmul_bwd_w16 %s %zux%zux%zu acc=%d", dt, N, IC, OC, acc);
        compare_f32(name, g, dinp, N * IC, tol);
        free(g), free(dout), free(dinp), cuda_be->free(d_dout), cuda_be->free(d_dinp);
    }
    /* the embedding lookup widens exactly: bitwise */
    const size_t rows = 40;
    int32_t ids[40];
    for (size_t n = 0; n < rows; n++) ids[n] = (int32_t)((n * 37 + 5) % OC);
    int32_t *d_ids = dev_from(ids, sizeof ids);
    float *e_out = malloc(rows * IC * 4), *d_e = dev_from(NULL, rows * IC * 4);
    cpu_be->embedding_forward_w16(e_out, ids, w, wdt, rows, IC);
    cuda_be->embedding_forward_w16(d_e, d_ids, d_w, wdt, rows, IC);
    float *g_e = dev_back(d_e, rows * IC * 4);
    snprintf(name, sizeof name, "embedding_forward_w16 %s", dt);
    compare_bitwise(name, g_e, e_out, rows * IC * 4);
    free(g_e), free(e_out), free(wf), free(w), free(inp), free(bias);
    cuda_be->free(d_e), cuda_be->free(d_ids), cuda_be->free(d_w), cuda_be->free(d_inp), cuda_be->free(d_b);
}

static void test_rmsnorm(void) {
    const size_t N = 197, C = 288; /* 197 rows: three full row chunks of 64 and a partial one */
    float *x = host_rand(N * C, 2), *w = host_rand(C, 1), *out = malloc(N * C * 4), *rstd = malloc(N * 4);
    float *d_x = dev_from(x, N * C * 4), *d_w = dev_from(w, C * 4), *d_out = dev_from(NULL, N * C * 4);
    float *d_rstd = dev_from(NULL, N * 4);
    cpu_be->rmsnorm_forward(out, rstd, x, w, N, C, 1e-5);
    cuda_be->rmsnorm_forward(d_out, d_rstd, d_x, d_w, N, C, 1e-5);
    float *g_out = dev_back(d_out, N * C * 4), *g_rstd = dev_back(d_rstd, N * 4);
    compare_f32("rmsnorm_forward out", g_out, out, N * C, CUDA_TOL);
    compare_f32("rmsnorm_forward rstd", g_rstd, rstd, N, CUDA_TOL);
    float *dout = host_rand(N * C, 1), *dinp = host_rand(N * C, 1), *dw = host_rand(C, 1);
    float *d_dout = dev_from(dout, N * C * 4), *d_dinp = dev_from(dinp, N * C * 4), *d_dw = dev_from(dw, C * 4);
    /* the same rstd on both sides, so backward is compared on its own */
    CHECK_OK(cuda_be->to_device(d_rstd, rstd, N * 4));
    cpu_be->rmsnorm_backward(dinp, dw, dout, x, w, rstd, N, C);
    cuda_be->rmsnorm_backward(d_dinp, d_dw, d_dout, d_x, d_w, d_rstd, N, C);
    float *g_dinp = dev_back(d_dinp, N * C * 4), *g_dw = dev_back(d_dw, C * 4);
    compare_f32("rmsnorm_backward dinp", g_dinp, dinp, N * C, CUDA_TOL);
    compare_f32("rmsnorm_backward dw", g_dw, dw, C, CUDA_TOL);
    free(x), free(w), free(out), free(rstd), free(g_out), free(g_rstd), free(dout), free(dinp), free(dw);
    free(g_dinp), free(g_dw);
    cuda_be->free(d_x), cuda_be->free(d_w), cuda_be->free(d_out), cuda_be->free(d_rstd);
    cuda_be->free(d_dout), cuda_be->free(d_dinp), cuda_be->free(d_dw);
}

static void test_rope(void) {
    const size_t B = 2, T = 9, H = 3, D = 16, pos0 = 5, half = D / 2, P = pos0 + T;
    float *cs = malloc(P * half * 4), *sn = malloc(P * half * 4);
    for (size_t p = 0; p < P; p++)
        for (size_t i = 0; i < half; i++) {
            double a = p * pow(10000.0, -2.0 * i / D);
            cs[p * half + i] = (float)cos(a), sn[p * half + i] = (float)sin(a);
        }
    size_t n = B * T * H * D;
    float *x = host_rand(n, 1), *dx = host_rand(n, 1);
    float *d_x = dev_from(x, n * 4), *d_dx = dev_from(dx, n * 4), *d_c = dev_from(cs, P * half * 4);
    float *d_s = dev_from(sn, P * half * 4);
    cpu_be->rope_forward(x, cs, sn, B, T, H, D, pos0);
    cuda_be->rope_forward(d_x, d_c, d_s, B, T, H, D, pos0);
    cpu_be->rope_backward(dx, cs, sn, B, T, H, D, pos0);
    cuda_be->rope_backward(d_dx, d_c, d_s, B, T, H, D, pos0);
    float *g_x = dev_back(d_x, n * 4), *g_dx = dev_back(d_dx, n * 4);
    compare_f32("rope_forward", g_x, x, n, CUDA_TOL);
    compare_f32("rope_backward", g_dx, dx, n, CUDA_TOL);
    free(cs), free(sn), free(x), free(dx), free(g_x), free(g_dx);
    cuda_be->free(d_x), cuda_be->free(d_dx), cuda_be->free(d_c), cuda_be->free(d_s);
}

static void test_swiglu(void) {
    const size_t n = 10007;
    float *gate = host_rand(n, 8), *up = host_rand(n, 2), *dh = host_rand(n, 1);
    float *h = malloc(n * 4), *dg = malloc(n * 4), *du = malloc(n * 4);
    float *d_gate = dev_from(gate, n * 4), *d_up = dev_from(up, n * 4), *d_dh = dev_from(dh, n * 4);
    float *d_h = dev_from(NULL, n * 4), *d_dg = dev_from(NULL, n * 4), *d_du = dev_from(NULL, n * 4);
    cpu_be->swiglu_forward(h, gate, up, n);
    cuda_be->swiglu_forward(d_h, d_gate, d_up, n);
    cpu_be->swiglu_backward(dg, du, dh, gate, up, n);
    cuda_be->swiglu_backward(d_dg, d_du, d_dh, d_gate, d_up, n);
    float *g_h = dev_back(d_h, n * 4), *g_dg = dev_back(d_dg, n * 4), *g_du = dev_back(d_du, n * 4);
    compare_f32("swiglu_forward", g_h, h, n, CUDA_TOL);
    compare_f32("swiglu_backward dgate", g_dg, dg, n, CUDA_TOL);
    compare_f32("swiglu_backward dup", g_du, du, n, CUDA_TOL);
    free(gate), free(up), free(dh), free(h), free(dg), free(du), free(g_h), free(g_dg), free(g_du);
    cuda_be->free(d_gate), cuda_be->free(d_up), cuda_be->free(d_dh), cuda_be->free(d_h), cuda_be->free(d_dg);
    cuda_be->free(d_du);
}

static void test_embedding(void) {
    const size_t V = 50, N = 300, C = 33; /* N >> V: every row repeats */
    int32_t *ids = malloc(N * sizeof *ids);
    for (size_t n = 0; n < N; n++) ids[n] = (int32_t)((frand() + 1) * 0.5 * V) % (int32_t)V;
    ids[7] = (int32_t)V - 1, ids[8] = 0;
    float *emb = host_rand(V * C, 1), *out = malloc(N * C * 4), *dout = host_rand(N * C, 1);
    float *demb = host_rand(V * C, 1);
    int32_t *d_ids = dev_from(ids, N * sizeof *ids);
    float *d_emb = dev_from(emb, V * C * 4), *d_out = dev_from(NULL, N * C * 4), *d_dout = dev_from(dout, N * C * 4);
    float *d_demb = dev_from(demb, V * C * 4);
    cpu_be->embedding_forward(out, ids, emb, N, C);
    cuda_be->embedding_forward(d_out, d_ids, d_emb, N, C);
    float *g_out = dev_back(d_out, N * C * 4);
    compare_bitwise("embedding_forward", g_out, out, N * C * 4);
    cpu_be->embedding_backward(demb, ids, dout, N, C);
    cuda_be->embedding_backward(d_demb, d_ids, d_dout, N, C);
    float *g_demb = dev_back(d_demb, V * C * 4);
    /* the same additions in the same order (positions ascending per row): bitwise the CPU's */
    compare_bitwise("embedding_backward", g_demb, demb, V * C * 4);
    free(ids), free(emb), free(out), free(dout), free(demb), free(g_out), free(g_demb);
    cuda_be->free(d_ids), cuda_be->free(d_emb), cuda_be->free(d_out), cuda_be->free(d_dout), cuda_be->free(d_demb);
}

/* Flash-style attention on both backends: forward y and lse, then backward from the CPU's y and lse on both
   sides (so the backward is compared on equal inputs), onto random dq/dk/dv contents (they accumulate), and
   once with dq alone and dk/dv alone (NULL gradients skipped, the others untouched). Both sides sum over at most
   T keys and D dimensions in fp32, in different orders (CPU: 64 x 64 BLAS tiles, device: 32 x 32 tiles and warp
   trees): by cuda_compare.h's argument the normwise difference grows like sqrt(T) u; at T = 4096 that is
   64 u = 4e-6, inside CUDA_TOL = 1e-5. */
/* one attention comparison, named by the array, the mode and the shape */
static void compare_att(const char *what, const char *mode, size_t T, size_t W, const float *got, const float *want,
                        size_t n, double tol) {
    char name[120];
    snprintf(name, sizeof name, "%s %s T=%zu W=%zu", what, mode, T, W);
    compare_f32(name, got, want, n, tol);
}

/* The device's attention against the CPU's fp32 kernels. mode: "flash" (the flash kernels of attention.cu), "gemm"
   (the chunked GEMMs of attention_gemm.cu in fp32, selected by ADEPT_CUDA_ATTENTION) or "bf16" (the same GEMMs with
   bf16 operands: adept_backend.attention_forward_bf16). Bounds: CUDA_TOL in fp32; in bf16 the operands Q, K, V, P
   (and dY, dS backward) carry a relative rounding of u = 2^-9 each, a product of two rounded operands 2u, and the
   output chains about three such products, so 6u = 1.2e-2 elementwise at worst and less normwise: 1e-2 forward;
   backward chains two more (dP, then dS into dQ/dK): 2e-2. */
static void test_attention_mode(const char *mode, size_t B, size_t T, size_t H, size_t KH, size_t D, size_t W) {
    int bf16 = strcmp(mode, "bf16") == 0;
    if (bf16 && !cuda_be->attention_forward_bf16) {
        printf("cuda-check attention bf16 T=%zu W=%zu: skipped (this backend has no bf16 attention)\n", T, W);
        return;
    }
    if (strcmp(mode, "gemm") == 0) setenv("ADEPT_CUDA_ATTENTION", "gemm", 1);
    double tolf = bf16 ? 1e-2 : CUDA_TOL, tolb = bf16 ? 2e-2 : CUDA_TOL;
    void (*fwd)(float *, float *, const float *, const float *, const float *, size_t, size_t, size_t, size_t, size_t,
                size_t) = bf16 ? cuda_be->attention_forward_bf16 : cuda_be->attention_forward;
    void (*bwd)(float *, float *, float *, const float *, const float *, const float *, const float *, const float *,
                const float *, size_t, size_t, size_t, size_t, size_t, size_t) =
        bf16 ? cuda_be->attention_backward_bf16 : cuda_be->attention_backward;
    size_t QD = H * D, KD = KH * D, nq = B * T * QD, nk = B * T * KD, nl = B * H * T;
    float *q = host_rand(nq, 1), *k = host_rand(nk, 1), *v = host_rand(nk, 1), *dy = host_rand(nq, 1);
    float *y = malloc(nq * 4), *lse = malloc(nl * 4);
    float *dq = host_rand(nq, 1), *dk = host_rand(nk, 1), *dv = host_rand(nk, 1);
    float *d_q = dev_from(q, nq * 4), *d_k = dev_from(k, nk * 4), *d_v = dev_from(v, nk * 4);
    float *d_dy = dev_from(dy, nq * 4), *d_y = dev_from(NULL, nq * 4), *d_lse = dev_from(NULL, nl * 4);
    float *d_dq = dev_from(dq, nq * 4), *d_dk = dev_from(dk, nk * 4), *d_dv = dev_from(dv, nk * 4);
    cpu_be->attention_forward(y, lse, q, k, v, B, T, H, KH, D, W);
    fwd(d_y, d_lse, d_q, d_k, d_v, B, T, H, KH, D, W);
    float *g_y = dev_back(d_y, nq * 4), *g_lse = dev_back(d_lse, nl * 4);
    char name[80];
    compare_att("attention_forward y", mode, T, W, g_y, y, nq, tolf);
    compare_att("attention_forward lse", mode, T, W, g_lse, lse, nl, tolf);
    /* backward from the CPU's forward results on both sides */
    CHECK_OK(cuda_be->to_device(d_y, y, nq * 4));
    CHECK_OK(cuda_be->to_device(d_lse, lse, nl * 4));
    cpu_be->attention_backward(dq, dk, dv, dy, y, lse, q, k, v, B, T, H, KH, D, W);
    bwd(d_dq, d_dk, d_dv, d_dy, d_y, d_lse, d_q, d_k, d_v, B, T, H, KH, D, W);
    float *g_dq = dev_back(d_dq, nq * 4), *g_dk = dev_back(d_dk, nk * 4), *g_dv = dev_back(d_dv, nk * 4);
    compare_att("attention_backward dq", mode, T, W, g_dq, dq, nq, tolb);
    compare_att("attention_backward dk", mode, T, W, g_dk, dk, nk, tolb);
    compare_att("attention_backward dv", mode, T, W, g_dv, dv, nk, tolb);
    /* one pass with dq alone and one with dk, dv alone: each adds the same again, the others stay */
    bwd(d_dq, NULL, NULL, d_dy, d_y, d_lse, d_q, d_k, d_v, B, T, H, KH, D, W);
    float *g_dk1 = dev_back(d_dk, nk * 4), *g_dv1 = dev_back(d_dv, nk * 4);
    snprintf(name, sizeof name, "attention_backward dk untouched by a dq-only pass %s T=%zu W=%zu", mode, T, W);
    compare_bitwise(name, g_dk1, g_dk, nk * 4);
    snprintf(name, sizeof name, "attention_backward dv untouched by a dq-only pass %s T=%zu W=%zu", mode, T, W);
    compare_bitwise(name, g_dv1, g_dv, nk * 4);
    bwd(NULL, d_dk, d_dv, d_dy, d_y, d_lse, d_q, d_k, d_v, B, T, H, KH, D, W);
    cpu_be->attention_backward(dq, dk, dv, dy, y, lse, q, k, v, B, T, H, KH, D, W);
    float *g_dq2 = dev_back(d_dq, nq * 4), *g_dk2 = dev_back(d_dk, nk * 4), *g_dv2 = dev_back(d_dv, nk * 4);
    compare_att("attention_backward dq twice", mode, T, W, g_dq2, dq, nq, tolb);
    compare_att("attention_backward dk twice", mode, T, W, g_dk2, dk, nk, tolb);
    compare_att("attention_backward dv twice", mode, T, W, g_dv2, dv, nk, tolb);
    free(q), free(k), free(v), free(dy), free(y), free(lse), free(dq), free(dk), free(dv);
    free(g_y), free(g_lse), free(g_dq), free(g_dk), free(g_dv), free(g_dk1), free(g_dv1);
    free(g_dq2), free(g_dk2), free(g_dv2);
    cuda_be->free(d_q), cuda_be->free(d_k), cuda_be->free(d_v), cuda_be->free(d_dy), cuda_be->free(d_y);
    cuda_be->free(d_lse), cuda_be->free(d_dq), cuda_be->free(d_dk), cuda_be->free(d_dv);
    unsetenv("ADEPT_CUDA_ATTENTION");
}

static void test_attention(size_t B, size_t T, size_t H, size_t KH, size_t D, size_t W) {
    test_attention_mode("flash", B, T, H, KH, D, W);
    test_attention_mode("gemm", B, T, H, KH, D, W);
    test_attention_mode("bf16", B, T, H, KH, D, W);
}

/* generation's one-token attention against a KV cache with a row stride wider than the kv heads (as the model's
   cache), and the block-influence cosine (sums in double on both sides: far inside the fp32 bound) */
static void test_decode_and_cosine(size_t n, size_t H, size_t KH, size_t D) {
    size_t ld = KH * D + 8, nq = H * D, nc = n * ld;
    float *q = host_rand(nq, 1), *kc = host_rand(nc, 1), *vc = host_rand(nc, 1);
    float *y = malloc(nq * 4), *att = malloc((H * n > 0 ? H * n : 1) * 4);
    float *d_q = dev_from(q, nq * 4), *d_k = dev_from(kc, nc * 4), *d_v = dev_from(vc, nc * 4);
    float *d_y = dev_from(NULL, nq * 4), *d_att = dev_from(NULL, (H * n > 0 ? H * n : 1) * 4);
    cpu_be->attention_decode(y, att, q, kc, vc, n, ld, H, KH, D);
    cuda_be->attention_decode(d_y, d_att, d_q, d_k, d_v, n, ld, H, KH, D);
    float *g_y = dev_back(d_y, nq * 4);
    char name[64];
    snprintf(name, sizeof name, "attention_decode y n=%zu", n);
    compare_f32(name, g_y, y, nq, CUDA_TOL);
    /* row_cosine over rows of C = ld with one zero row pair and one half-zero pair (the 1 and 0 conventions) */
    size_t N = n + 2, C = ld;
    float *x = host_rand(N * C, 1), *z = host_rand(N * C, 1);
    memset(x, 0, C * 4), memset(z, 0, C * 4), memset(z + C, 0, C * 4);
    double *cc = malloc(N * sizeof(double)), *gc = malloc(N * sizeof(double));
    float *d_x = dev_from(x, N * C * 4), *d_z = dev_from(z, N * C * 4);
    CHECK_OK(cpu_be->row_cosine(x, z, N, C, cc));
    CHECK_OK(cuda_be->row_cosine(d_x, d_z, N, C, gc));
    CHECK(gc[0] == 1.0 && gc[1] == 0.0);
    snprintf(name, sizeof name, "row_cosine N=%zu", N);
    compare_f64(name, gc, cc, N, 1e-12);
    free(q), free(kc), free(vc), free(y), free(att), free(g_y), free(x), free(z), free(cc), free(gc);
    cuda_be->free(d_q), cuda_be->free(d_k), cuda_be->free(d_v), cuda_be->free(d_y), cuda_be->free(d_att);
    cuda_be->free(d_x), cuda_be->free(d_z);
}

int main(void) {
    cuda_or_skip();
    test_gemm();
    test_matmul(0, 53, 96, 80);
    test_matmul(1, 53, 96, 80);
    test_matmul(1, 3, 8, 4100); /* more weight than activations to round: the scratch parts' sizes differ */
    test_matmul_w16(ADEPT_BF16, 53, 96, 80, 1);
    test_matmul_w16(ADEPT_BF16, 53, 96, 80, 0);
    test_matmul_w16(ADEPT_F16, 53, 96, 80, 0);
    test_matmul_w16(ADEPT_BF16, 3, 8, 4100, 1);
    test_matmul_w16(ADEPT_F16, 3, 8, 4100, 0);
    test_rmsnorm();
    test_rope();
    test_swiglu();
    test_embedding();
    test_attention(2, 1, 4, 2, 16, 0);
    test_attention(2, 17, 4, 2, 16, 0);
    test_attention(1, 70, 6, 2, 32, 0);   /* crosses the CPU's 64-row and the device's 32-row tiles */
    test_attention(1, 512, 4, 1, 64, 0);
    test_attention(1, 100, 2, 1, 128, 0); /* head_dim 128 (Llama, Qwen3): over 48 KiB of shared memory per block */
    test_attention(1, 4096, 2, 1, 64, 0); /* one kv group at long context */
    /* sliding windows (Mistral): each row sees keys (i - W, i]; W = 1 only the diagonal, W = 5 inside one tile,
       W = 33 and 100 across tiles (rows whose window starts past a tile's first keys), W = 1000 at long context */
    test_attention(2, 17, 4, 2, 16, 5);
    test_attention(1, 70, 6, 2, 32, 1);
    test_attention(1, 70, 6, 2, 32, 33);
    test_attention(1, 512, 4, 1, 64, 100);
    test_attention(1, 4096, 2, 1, 64, 1000);
    test_decode_and_cosine(1, 4, 2, 16);
    test_decode_and_cosine(37, 4, 2, 16);
    test_decode_and_cosine(300, 8, 2, 64);
    CHECK_OK(cuda_be->synchronize());
    return check_summary();
}
