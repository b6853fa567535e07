/* Products with frozen 16-bit weights on the CPU (adept_backend.matmul_forward_w16 / matmul_backward_w16 /
   embedding_forward_w16; DESIGN.md §1 and §2.9). Two paths:
   - oneDNN (built with libdnnl-dev, bf16 weights, and only when oneDNN picks a native bf16 kernel): the fp32
     activations are rounded to bf16 (nearest even, as PyTorch's autocast does) and multiplied bf16 x bf16 with
     fp32 accumulation and output. One primitive per (shape, transpose, accumulate), created once and cached.
   - otherwise (no oneDNN, f16 weights, or a CPU without AVX-512 BF16 where oneDNN would run a reference
     kernel): the weight is widened to fp32 a block at a time (exact) and multiplied by OpenBLAS sgemm with the
     activations in fp32. Blocks are fixed (not per thread), so results do not depend on the thread count.
   Both keep the CPU backend's threading rule: one OpenMP pool, BLAS single-threaded inside it (layers.h). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "adept/backend.h"
#include "ops/cpu/cpu.h"

/* Output rows (forward) or input columns (backward) widened per block: 64 x K floats (at most 3.6 MiB for
   K = 14336) per thread. */
#define W16_BLOCK 64

static float widen(const uint16_t *w, size_t i, adept_dtype dt) {
    if (dt == ADEPT_F16) return adept_f16_to_f32(w[i]);
    uint32_t u = (uint32_t)w[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- the fp32 path: widened weight blocks and sgemm ---- */

/* out [N, OC] (+)= inp [N, IC] @ w[OC, IC]^T, a block of W16_BLOCK output columns per work item */
static int fwd_sgemm(float *out, const float *inp, const uint16_t *w, adept_dtype dt, size_t N, size_t IC, size_t OC,
                     int beta_one) {
    size_t nblocks = (OC + W16_BLOCK - 1) / W16_BLOCK;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if ((size_t)nt > nblocks) nt = (int)nblocks;
    float *buf = malloc((size_t)nt * W16_BLOCK * IC * sizeof(float) + 1);
    if (!buf) return 0;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (size_t b = 0; b < nblocks; b++) {
        float *wb = buf + (size_t)omp_get_thread_num() * W16_BLOCK * IC;
        size_t o0 = b * W16_BLOCK, ob = OC - o0 < W16_BLOCK ? OC - o0 : W16_BLOCK;
        for (size_t i = 0; i < ob * IC; i++) wb[i] = widen(w, o0 * IC + i, dt);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)ob, (int)IC, 1.0f, inp, (int)IC, wb,
                    (int)IC, beta_one ? 1.0f : 0.0f, out + o0, (int)OC);
    }
    free(buf);
    return 1;
}

/* dinp [N, IC] (+)= dout [N, OC] @ w [OC, IC], a block of W16_BLOCK input columns per work item */
static int bwd_sgemm(float *dinp, const float *dout, const uint16_t *w, adept_dtype dt, size_t N, size_t IC,
                     size_t OC, int accumulate) {
    size_t nblocks = (IC + W16_BLOCK - 1) / W16_BLOCK;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if ((size_t)nt > nblocks) nt = (int)nblocks;
    float *buf = malloc((size_t)nt * W16_BLOCK * OC * sizeof(float) + 1);
    if (!buf) return 0;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (size_t b = 0; b < nblocks; b++) {
        float *wb = buf + (size_t)omp_get_thread_num() * W16_BLOCK * OC;
        size_t i0 = b * W16_BLOCK, ib = IC - i0 < W16_BLOCK ? IC - i0 : W16_BLOCK;
        for (size_t o = 0; o < OC; o++)
            for (size_t i = 0; i < ib; i++) wb[o * ib + i] = widen(w, o * IC + i0 + i, dt);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)ib, (int)OC, 1.0f, dout, (int)OC, wb,
                    (int)ib, accumulate ? 1.0f : 0.0f, dinp + i0, (int)IC);
    }
    free(buf);
    return 1;
}

/* Without memory for a block: the same products element by element (slow, never wrong). */
static void fwd_naive(float *out, const float *inp, const uint16_t *w, adept_dtype dt, size_t N, size_t IC, size_t OC,
                      int beta_one) {
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < OC; o++) {
            float s = 0;
            for (size_t i = 0; i < IC; i++) s += inp[n * IC + i] * widen(w, o * IC + i, dt);
            out[n * OC + o] = beta_one ? out[n * OC + o] + s : s;
        }
}

static void bwd_naive(float *dinp, const float *dout, const uint16_t *w, adept_dtype dt, size_t N, size_t IC,
                      size_t OC, int accumulate) {
    for (size_t n = 0; n < N; n++)
        for (size_t i = 0; i < IC; i++) {
            float s = 0;
            for (size_t o = 0; o < OC; o++) s += dout[n * OC + o] * widen(w, o * IC + i, dt);
            dinp[n * IC + i] = accumulate ? dinp[n * IC + i] + s : s;
        }
}

/* ---- the oneDNN path ---- */
#ifdef ADEPT_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>

/* One cached primitive: dst [M, Nn] (+)= src [M, K] (bf16) x wei [K, Nn] (bf16), the weight either HF [Nn, K]
   read transposed (forward) or [K, Nn] as stored (backward). */
typedef struct prim_entry {
    size_t M, K, Nn;
    int trans, acc;
    dnnl_primitive_t prim; /* NULL: oneDNN has no native bf16 kernel for it here (the sgemm path runs) */
    dnnl_memory_t src, wei, dst;
} prim_entry;

#define PRIM_CACHE 64
static pthread_mutex_t dnnl_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t dnnl_eng;
static dnnl_stream_t dnnl_strm;
static int dnnl_state; /* 0 untried, 1 ready, -1 unavailable */
static prim_entry cache[PRIM_CACHE];
static size_t cache_n, cache_next;
static uint16_t *round_buf; /* the activations rounded to bf16 (round_bf16) */
static size_t round_cap;

static void entry_clear(prim_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->src) dnnl_memory_destroy(e->src);
    if (e->wei) dnnl_memory_destroy(e->wei);
    if (e->dst) dnnl_memory_destroy(e->dst);
    memset(e, 0, sizeof *e);
}

static void dnnl_teardown(void) {
    for (size_t i = 0; i < cache_n; i++) entry_clear(&cache[i]);
    cache_n = 0;
    free(round_buf);
    round_buf = NULL;
    round_cap = 0;
    if (dnnl_strm) dnnl_stream_destroy(dnnl_strm);
    if (dnnl_eng) dnnl_engine_destroy(dnnl_eng);
    dnnl_strm = NULL;
    dnnl_eng = NULL;
}

static int dnnl_ready(void) {
    if (dnnl_state) return dnnl_state > 0;
    dnnl_state = -1;
    if (dnnl_engine_create(&dnnl_eng, dnnl_cpu, 0) != dnnl_success) return 0;
    if (dnnl_stream_create(&dnnl_strm, dnnl_eng, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(dnnl_eng);
        dnnl_eng = NULL;
        return 0;
    }
    atexit(dnnl_teardown);
    dnnl_state = 1;
    return 1;
}

/* Builds the primitive of an entry; leaves e->prim NULL when oneDNN would only run a reference kernel. */
static void entry_build(prim_entry *e) {
    dnnl_memory_desc_t smd, wmd, dmd;
    dnnl_dims_t sd = {(dnnl_dim_t)e->M, (dnnl_dim_t)e->K}, wd = {(dnnl_dim_t)e->K, (dnnl_dim_t)e->Nn};
    dnnl_dims_t dd = {(dnnl_dim_t)e->M, (dnnl_dim_t)e->Nn};
    dnnl_dims_t ws = {e->trans ? 1 : (dnnl_dim_t)e->Nn, e->trans ? (dnnl_dim_t)e->K : 1};
    if (dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_bf16, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&wmd, 2, wd, dnnl_bf16, ws) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab) != dnnl_success)
        return;
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &smd, &wmd, NULL, &dmd) != dnnl_success) return;
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return;
    if (e->acc) {
        dnnl_post_ops_t po;
        if (dnnl_post_ops_create(&po) == dnnl_success) {
            dnnl_post_ops_append_sum(po, 1.0f);
            dnnl_primitive_attr_set_post_ops(attr, po);
            dnnl_post_ops_destroy(po);
        }
    }
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &md, attr, dnnl_eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return;
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    int native = impl && strncmp(impl, "ref", 3) != 0;
    if (native && dnnl_primitive_create(&e->prim, pd) != dnnl_success) e->prim = NULL;
    dnnl_primitive_desc_destroy(pd);
    if (!e->prim) return;
    if (dnnl_memory_create(&e->src, &smd, dnnl_eng, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&e->wei, &wmd, dnnl_eng, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&e->dst, &dmd, dnnl_eng, DNNL_MEMORY_NONE) != dnnl_success) {
        entry_clear(e);
        return;
    }
}

/* The cached entry of a shape (built on first use; the oldest goes when the cache is full). Under dnnl_lock. */
static prim_entry *entry_for(size_t M, size_t K, size_t Nn, int trans, int acc) {
    for (size_t i = 0; i < cache_n; i++) {
        prim_entry *e = &cache[i];
        if (e->M == M && e->K == K && e->Nn == Nn && e->trans == trans && e->acc == acc) return e;
    }
    prim_entry *e;
    if (cache_n < PRIM_CACHE) e = &cache[cache_n++];
    else {
        e = &cache[cache_next];
        cache_next = (cache_next + 1) % PRIM_CACHE;
        entry_clear(e);
    }
    e->M = M, e->K = K, e->Nn = Nn, e->trans = trans, e->acc = acc;
    entry_build(e);
    return e;
}

/* x [n] rounded to bf16 (nearest even) into the scratch buffer (grown as needed, kept; under dnnl_lock) */
static uint16_t *round_bf16(const float *x, size_t n) {
    if (n > round_cap) {
        uint16_t *nb = realloc(round_buf, n * sizeof *nb);
        if (!nb) return NULL;
        round_buf = nb;
        round_cap = n;
    }
    uint16_t *b = round_buf;
    long long nn = (long long)n;
#pragma omp parallel for schedule(static) if (nn > (1 << 16) && !omp_in_parallel())
    for (long long i = 0; i < nn; i++) b[i] = adept_cpu_to_bf16(x[i]);
    return b;
}

/* dst [M, Nn] (+)= bf16(src) [M, K] x w; 1 when oneDNN ran it */
static int onednn_product(float *dst, const float *src, const uint16_t *w, size_t M, size_t K, size_t Nn, int trans,
                     int acc) {
    pthread_mutex_lock(&dnnl_lock);
    int done = 0;
    if (dnnl_ready()) {
        prim_entry *e = entry_for(M, K, Nn, trans, acc);
        uint16_t *s16 = e->prim ? round_bf16(src, M * K) : NULL;
        if (s16 && dnnl_memory_set_data_handle(e->src, s16) == dnnl_success &&
            dnnl_memory_set_data_handle(e->wei, (void *)w) == dnnl_success &&
            dnnl_memory_set_data_handle(e->dst, dst) == dnnl_success) {
            dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, e->wei}, {DNNL_ARG_DST, e->dst}};
            done = dnnl_primitive_execute(e->prim, dnnl_strm, 3, args) == dnnl_success &&
                   dnnl_stream_wait(dnnl_strm) == dnnl_success;
        }
    }
    pthread_mutex_unlock(&dnnl_lock);
    return done;
}
#endif

int adept_cpu_w16_native(adept_dtype dt) {
#ifdef ADEPT_HAVE_DNNL
    if (dt != ADEPT_BF16) return 0;
    pthread_mutex_lock(&dnnl_lock);
    int ok = dnnl_ready() && entry_for(64, 64, 64, 1, 0)->prim != NULL;
    pthread_mutex_unlock(&dnnl_lock);
    return ok;
#else
    (void)dt;
    return 0;
#endif
}

const char *adept_cpu_w16_path(adept_dtype dt) { return adept_cpu_w16_native(dt) ? "onednn" : "sgemm"; }

void adept_cpu_matmul_forward_w16(float *out, const float *inp, const void *w, adept_dtype wdt, const float *bias,
                                  size_t N, size_t IC, size_t OC, int beta_one) {
    if (N == 0 || OC == 0) return;
    const uint16_t *w16 = w;
    int acc = beta_one;
    if (IC == 0) {
        if (!beta_one) memset(out, 0, N * OC * sizeof(float));
    } else {
        int done = 0;
#ifdef ADEPT_HAVE_DNNL
        if (wdt == ADEPT_BF16) done = onednn_product(out, inp, w16, N, IC, OC, 1, acc);
#endif
        if (!done && !fwd_sgemm(out, inp, w16, wdt, N, IC, OC, acc)) fwd_naive(out, inp, w16, wdt, N, IC, OC, acc);
    }
    if (bias) {
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
        for (size_t n = 0; n < N; n++)
            for (size_t j = 0; j < OC; j++) out[n * OC + j] += bias[j];
    }
}

void adept_cpu_matmul_backward_w16(float *dinp, const float *dout, const void *w, adept_dtype wdt, size_t N,
                                   size_t IC, size_t OC, int dinp_accumulate) {
    if (!dinp || N == 0 || IC == 0) return;
    if (OC == 0) {
        if (!dinp_accumulate) memset(dinp, 0, N * IC * sizeof(float));
        return;
    }
    const uint16_t *w16 = w;
    int done = 0;
#ifdef ADEPT_HAVE_DNNL
    if (wdt == ADEPT_BF16) done = onednn_product(dinp, dout, w16, N, OC, IC, 0, dinp_accumulate);
#endif
    if (!done && !bwd_sgemm(dinp, dout, w16, wdt, N, IC, OC, dinp_accumulate))
        bwd_naive(dinp, dout, w16, wdt, N, IC, OC, dinp_accumulate);
}

void adept_cpu_embedding_forward_w16(float *out, const int32_t *ids, const void *emb, adept_dtype wdt, size_t N,
                                     size_t C) {
    const uint16_t *e = emb;
#pragma omp parallel for schedule(static) if (N * C > 65536 && !omp_in_parallel())
    for (size_t n = 0; n < N; n++) {
        const uint16_t *row = e + (size_t)ids[n] * C;
        for (size_t c = 0; c < C; c++) out[n * C + c] = widen(row, c, wdt);
    }
}
