/* Finite-difference checks in double precision of every layer's backward (matmul, RMSNorm, RoPE, attention
   with GQA, SwiGLU, cross-entropy, embedding): the fp64 build of the same kernel source the model runs in fp32.
   The blocked (flash-style) attention is also checked against the whole-row softmax formula. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adept/threads.h"
#include "check.h"
#include "ops/cpu/layers.h"

/* One generic harness: L = sum(out * proj) for a random projection; the analytic gradient comes from the
   backward with dout = proj; central differences with h = 1e-6 in double must agree to 1e-6 relative
   (truncation O(h^2) ~ 1e-12, rounding ~ 1e-16 / h ~ 1e-10: 1e-6 leaves margin yet catches any wrong term). */
typedef void (*fwd_fn)(void *ctx, double *out);
typedef struct { const char *name; double *x; size_t n; const double *grad; } fd_var;

static uint64_t rng_state = 88172645463325252ull;
static double urand(void) { /* xorshift, uniform in (-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2 - 1;
}
/* Every buffer of the tests, freed together at the end of main (the tests share them through contexts). */
static void *owned[256];
static size_t n_owned;
static void *own(void *p) {
    if (!p || n_owned == sizeof owned / sizeof owned[0]) {
        fprintf(stderr, "test_model_fd: out of memory or of buffer slots\n");
        exit(1);
    }
    return owned[n_owned++] = p;
}
static void free_owned(void) {
    while (n_owned) free(owned[--n_owned]);
}

static double *rnd(size_t n, double scale, double offset) {
    double *p = own(malloc(n * sizeof *p));
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * urand();
    return p;
}
static double *zeros(size_t n) { return own(calloc(n ? n : 1, sizeof(double))); }

static double objective(fwd_fn f, void *ctx, double *out, const double *proj, size_t nout) {
    f(ctx, out);
    double s = 0;
    for (size_t i = 0; i < nout; i++) s += out[i] * proj[i];
    return s;
}

static void fd_check(const char *op, fwd_fn f, void *ctx, size_t nout, const double *proj, fd_var *vars, int nv) {
    double *out = zeros(nout), h = 1e-6;
    for (int v = 0; v < nv; v++) {
        double worst = 0, scale = 1e-12;
        for (size_t i = 0; i < vars[v].n; i++) scale = check_max(scale, fabs(vars[v].grad[i]));
        for (size_t i = 0; i < vars[v].n; i++) {
            double x0 = vars[v].x[i];
            vars[v].x[i] = x0 + h;
            double lp = objective(f, ctx, out, proj, nout);
            vars[v].x[i] = x0 - h;
            double lm = objective(f, ctx, out, proj, nout);
            vars[v].x[i] = x0;
            double num = (lp - lm) / (2 * h);
            worst = check_max(worst, fabs(num - vars[v].grad[i]) / scale);
        }
        printf("%-10s d%-6s max relative error %.2e over %zu elements\n", op, vars[v].name, worst, vars[v].n);
        CHECK(worst < 1e-6);
        CHECK(scale > 1e-6); /* the gradient is not trivially zero */
    }
}

/* ---- matmul ---- */
typedef struct { double *x, *w, *b; size_t N, IC, OC; } mm_ctx;
static void mm_fwd(void *c, double *out) {
    mm_ctx *k = c;
    adept_matmul_forward_f64(out, k->x, k->w, k->b, k->N, k->IC, k->OC, 0);
}
static void test_matmul(void) {
    mm_ctx k = {rnd(5 * 7, 1, 0), rnd(6 * 7, 1, 0), rnd(6, 1, 0), 5, 7, 6};
    double *proj = rnd(5 * 6, 1, 0), *dx = zeros(35), *dw = zeros(42), *db = zeros(6);
    adept_matmul_backward_f64(dx, dw, db, proj, k.x, k.w, 5, 7, 6);
    fd_var v[] = {{"inp", k.x, 35, dx}, {"w", k.w, 42, dw}, {"bias", k.b, 6, db}};
    fd_check("matmul", mm_fwd, &k, 30, proj, v, 3);
}

/* ---- RMSNorm ---- */
typedef struct { double *x, *w, *rstd; size_t N, C; } rn_ctx;
static void rn_fwd(void *c, double *out) {
    rn_ctx *k = c;
    adept_rmsnorm_forward_f64(out, k->rstd, k->x, k->w, k->N, k->C, 1e-5);
}
static void test_rmsnorm(void) {
    size_t N = 4, C = 9;
    rn_ctx k = {rnd(N * C, 1, 0.2), rnd(C, 0.3, 1), zeros(N), N, C};
    double *proj = rnd(N * C, 1, 0), *out = zeros(N * C), *dx = zeros(N * C), *dw = zeros(C);
    rn_fwd(&k, out);
    adept_rmsnorm_backward_f64(dx, dw, proj, k.x, k.w, k.rstd, N, C);
    fd_var v[] = {{"inp", k.x, N * C, dx}, {"w", k.w, C, dw}};
    fd_check("rmsnorm", rn_fwd, &k, N * C, proj, v, 2);
}

/* ---- RoPE ---- */
typedef struct { double *x, *cs, *sn; size_t B, T, H, D; } rp_ctx;
static void rp_fwd(void *c, double *out) {
    rp_ctx *k = c;
    memcpy(out, k->x, k->B * k->T * k->H * k->D * sizeof(double));
    adept_rope_forward_f64(out, k->cs, k->sn, k->B, k->T, k->H, k->D, 1);
}
static void test_rope(void) {
    size_t B = 2, T = 3, H = 2, D = 8, n = B * T * H * D;
    rp_ctx k = {rnd(n, 1, 0), zeros((T + 1) * D / 2), zeros((T + 1) * D / 2), B, T, H, D};
    for (size_t t = 0; t <= T; t++)
        for (size_t i = 0; i < D / 2; i++) {
            double a = t * pow(10000.0, -2.0 * i / D);
            k.cs[t * D / 2 + i] = cos(a);
            k.sn[t * D / 2 + i] = sin(a);
        }
    double *proj = rnd(n, 1, 0), *dx = own(malloc(n * sizeof *dx));
    memcpy(dx, proj, n * sizeof *dx);
    adept_rope_backward_f64(dx, k.cs, k.sn, B, T, H, D, 1);
    fd_var v[] = {{"inp", k.x, n, dx}};
    fd_check("rope", rp_fwd, &k, n, proj, v, 1);
}

/* ---- attention (GQA: 4 query heads on 2 kv heads), flash style: lse per row kept, backward recomputes ---- */
typedef struct { double *q, *k, *v, *lse; size_t B, T, H, KH, D; } at_ctx;
static void at_fwd(void *c, double *out) {
    at_ctx *k = c;
    adept_attention_forward_f64(out, k->lse, k->q, k->k, k->v, k->B, k->T, k->H, k->KH, k->D, 0);
}
/* The textbook formula, one row at a time with the whole score row (what the blocked kernel must equal):
   y_i = sum_{j<=i} softmax_j(scale q_i . k_j) v_j and lse_i = log sum_{j<=i} exp(scale q_i . k_j). */
static void attention_naive(double *y, double *lse, const double *q, const double *k, const double *v, size_t B,
                            size_t T, size_t H, size_t KH, size_t D) {
    size_t QD = H * D, KD = KH * D, grp = H / KH;
    double *s = malloc(T * sizeof *s), scale = 1 / sqrt((double)D);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t i = 0; i < T; i++) {
                const double *qi = q + (b * T + i) * QD + h * D;
                double mx = -INFINITY, l = 0;
                for (size_t j = 0; j <= i; j++) {
                    const double *kj = k + (b * T + j) * KD + (h / grp) * D;
                    double dot = 0;
                    for (size_t d = 0; d < D; d++) dot += qi[d] * kj[d];
                    s[j] = dot * scale;
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (size_t j = 0; j <= i; j++) l += exp(s[j] - mx);
                double *yi = y + (b * T + i) * QD + h * D;
                for (size_t d = 0; d < D; d++) yi[d] = 0;
                for (size_t j = 0; j <= i; j++) {
                    const double *vj = v + (b * T + j) * KD + (h / grp) * D;
                    for (size_t d = 0; d < D; d++) yi[d] += exp(s[j] - mx) / l * vj[d];
                }
                lse[(b * H + h) * T + i] = mx + log(l);
            }
    free(s);
}
static void test_attention(size_t B, size_t T, size_t H, size_t KH, size_t D) {
    size_t nq = B * T * H * D, nk = B * T * KH * D, nl = B * H * T;
    at_ctx k = {rnd(nq, 1, 0), rnd(nk, 1, 0), rnd(nk, 1, 0), zeros(nl), B, T, H, KH, D};
    double *proj = rnd(nq, 1, 0), *out = zeros(nq), *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
    at_fwd(&k, out);
    /* the blocked online softmax against the whole-row formula: both in double, so they differ by rounding
       only (a few ulp of sums of <= T terms of size ~1: far below 1e-12) */
    double *yref = zeros(nq), *lref = zeros(nl), worst = 0;
    attention_naive(yref, lref, k.q, k.k, k.v, B, T, H, KH, D);
    for (size_t i = 0; i < nq; i++) worst = check_max(worst, fabs(out[i] - yref[i]));
    for (size_t i = 0; i < nl; i++) worst = check_max(worst, fabs(k.lse[i] - lref[i]));
    printf("attention  T=%zu: blocked against whole-row formula, max |difference| %.2e\n", T, worst);
    CHECK(worst < 1e-12);
    /* backward from the forward's output and lse (causality: the FD also checks that the output at position 0
       does not depend on later keys) */
    adept_attention_backward_f64(dq, dk, dv, proj, out, k.lse, k.q, k.k, k.v, B, T, H, KH, D, 0);
    fd_var v[] = {{"q", k.q, nq, dq}, {"k", k.k, nk, dk}, {"v", k.v, nk, dv}};
    if (T > 1) fd_check("attention", at_fwd, &k, nq, proj, v, 3);
    else { /* one key: the softmax is 1 whatever q and k, so their gradients are exactly zero */
        fd_check("attention", at_fwd, &k, nq, proj, v + 2, 1);
        for (size_t i = 0; i < nq; i++) CHECK(dq[i] == 0);
        for (size_t i = 0; i < nk; i++) CHECK(dk[i] == 0);
    }
    /* NULL gradients are skipped and the others unchanged: dv alone, accumulated onto its previous value */
    double *dv2 = zeros(nk);
    at_fwd(&k, out); /* the FD's last evaluation left a perturbed lse */
    for (size_t i = 0; i < nk; i++) dv2[i] = 1;
    adept_attention_backward_f64(NULL, NULL, dv2, proj, out, k.lse, k.q, k.k, k.v, B, T, H, KH, D, 0);
    worst = 0;
    for (size_t i = 0; i < nk; i++) worst = check_max(worst, fabs(dv2[i] - 1 - dv[i]));
    CHECK(worst < 1e-12);
}

/* ---- SwiGLU ---- */
typedef struct { double *g, *u; size_t n; } sw_ctx;
static void sw_fwd(void *c, double *out) {
    sw_ctx *k = c;
    adept_swiglu_forward_f64(out, k->g, k->u, k->n);
}
static void test_swiglu(void) {
    size_t n = 23;
    sw_ctx k = {rnd(n, 3, 0), rnd(n, 1, 0), n};
    double *proj = rnd(n, 1, 0), *dg = rnd(n, 1, 0), *du = rnd(n, 1, 0); /* overwritten */
    adept_swiglu_backward_f64(dg, du, proj, k.g, k.u, n);
    fd_var v[] = {{"gate", k.g, n, dg}, {"up", k.u, n, du}};
    fd_check("swiglu", sw_fwd, &k, n, proj, v, 2);
}

/* ---- cross-entropy: out = nll per row; targets with an ignored row ---- */
typedef struct { double *logits, *tmp; double *nll; int32_t *tg; size_t N, V; } xe_ctx;
static void xe_fwd(void *c, double *out) {
    xe_ctx *k = c;
    memcpy(k->tmp, k->logits, k->N * k->V * sizeof(double));
    adept_xent_forward_backward_f64(k->tmp, out, k->tg, k->N, k->V, 0, 0);
}
static void test_xent(void) {
    size_t N = 4, V = 11;
    int32_t tg[4] = {3, -1, 10, 0};
    xe_ctx k = {rnd(N * V, 3, 0), zeros(N * V), zeros(N), tg, N, V};
    double ones[4] = {1, 1, 1, 1}, nll[4];
    double *g = own(malloc(N * V * sizeof *g));
    memcpy(g, k.logits, N * V * sizeof *g);
    int64_t cnt = adept_xent_forward_backward_f64(g, nll, tg, N, V, 1.0, 1);
    CHECK(cnt == 3);
    CHECK(nll[1] == 0);
    fd_var v[] = {{"logits", k.logits, N * V, g}};
    fd_check("xent", xe_fwd, &k, N, ones, v, 1);
}

/* ---- embedding (repeated ids accumulate) ---- */
typedef struct { double *emb; int32_t *ids; size_t N, C; } em_ctx;
static void em_fwd(void *c, double *out) {
    em_ctx *k = c;
    adept_embedding_forward_f64(out, k->ids, k->emb, k->N, k->C);
}
static void test_embedding(void) {
    size_t N = 6, C = 5, V = 4;
    int32_t ids[6] = {1, 3, 1, 0, 1, 2};
    em_ctx k = {rnd(V * C, 1, 0), ids, N, C};
    double *proj = rnd(N * C, 1, 0), *de = zeros(V * C);
    adept_embedding_backward_f64(de, ids, proj, N, C);
    fd_var v[] = {{"emb", k.emb, V * C, de}};
    fd_check("embedding", em_fwd, &k, N * C, proj, v, 1);
}

/* fp32 and fp64 builds agree on the same inputs (the model runs the fp32 one) */
static void test_f32_matches_f64(void) {
    size_t B = 1, T = 6, H = 2, KH = 1, D = 8, nq = B * T * H * D, nk = B * T * KH * D;
    double *q = rnd(nq, 1, 0), *k = rnd(nk, 1, 0), *v = rnd(nk, 1, 0), *y = zeros(nq), *lse = zeros(H * T);
    float *qf = own(malloc(nq * 4)), *kf = own(malloc(nk * 4)), *vf = own(malloc(nk * 4)), *yf = own(malloc(nq * 4)),
          *lf = own(malloc(H * T * 4));
    for (size_t i = 0; i < nq; i++) qf[i] = (float)q[i];
    for (size_t i = 0; i < nk; i++) { kf[i] = (float)k[i]; vf[i] = (float)v[i]; }
    adept_attention_forward_f64(y, lse, q, k, v, B, T, H, KH, D, 0);
    adept_attention_forward(yf, lf, qf, kf, vf, B, T, H, KH, D, 0);
    double worst = 0;
    for (size_t i = 0; i < nq; i++) worst = check_max(worst, fabs(y[i] - yf[i]));
    for (size_t i = 0; i < H * T; i++) worst = check_max(worst, fabs(lse[i] - lf[i]));
    CHECK(worst < 1e-5);
}

/* The fp32 kernels the model runs give the same bits for 1 and 3 threads: every output element has one owner
   that sums in a fixed order (items are (batch, head, block); the schedule only picks the thread). T = 150
   spans three blocks; the gradients accumulate onto nonzero contents. With B * KH = 4 items, 1 thread takes the
   one-sweep backward and 3 threads the two-pass one (engine/ops/cpu/layers_impl.inc): they must agree bitwise,
   also under a sliding window W (0: none). */
static void test_attention_threads(size_t W) {
    size_t B = 2, T = 150, H = 4, KH = 2, D = 16, nq = B * T * H * D, nk = B * T * KH * D, nl = B * H * T;
    float *in = own(malloc((2 * nq + 2 * nk) * 4));
    for (size_t i = 0; i < 2 * nq + 2 * nk; i++) in[i] = (float)urand();
    float *q = in, *dy = in + nq, *k = in + 2 * nq, *v = k + nk;
    float *out[2];
    int threads[2] = {1, 3};
    size_t n_out = 2 * nq + nl + 2 * nk;
    for (int r = 0; r < 2; r++) {
        adept_set_threads(threads[r]);
        float *o = out[r] = own(malloc(n_out * 4));
        float *y = o, *lse = y + nq, *dq = lse + nl, *dk = dq + nq, *dv = dk + nk;
        for (size_t i = nq + nl; i < n_out; i++) o[i] = 0.5f;
        int blas = adept_model_blas_enter();
        adept_attention_forward(y, lse, q, k, v, B, T, H, KH, D, W);
        adept_attention_backward(dq, dk, dv, dy, y, lse, q, k, v, B, T, H, KH, D, W);
        adept_model_blas_exit(blas);
    }
    adept_set_threads(0);
    CHECK(memcmp(out[0], out[1], n_out * 4) == 0);
}

int main(void) {
    test_matmul();
    test_rmsnorm();
    test_rope();
    test_attention(2, 5, 4, 2, 4);
    test_attention(1, 67, 2, 1, 2);  /* past one 64-row query block */
    test_attention(1, 130, 2, 1, 2); /* three blocks, the last partial */
    test_attention(1, 1, 2, 2, 3);   /* one row */
    test_swiglu();
    test_xent();
    test_embedding();
    test_f32_matches_f64();
    test_attention_threads(0);
    test_attention_threads(70); /* a sliding window: the two backward paths skip the same key blocks */
    test_attention_threads(1);
    free_owned();
    return check_summary();
}
