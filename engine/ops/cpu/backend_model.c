/* The CPU compute backend (adept/backend.h): host memory, OpenBLAS GEMMs and the OpenMP layer kernels, the
   AdamW update over slab segments, and the chunked reductions the trainer needs. */
#include "adept/backend.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "adept/cuda.h"
#include "ops/cpu/cpu.h"
#include "ops/cpu/layers.h"

static void *cpu_alloc(size_t nbytes) {
    void *p = adept_alloc_zeroed(nbytes);
    if (!p) adept_fail(ADEPT_ENOMEM, "cpu: cannot allocate %.1f MiB", nbytes / 1048576.0);
    return p;
}

static void cpu_free(void *p) { adept_free(p); }

static adept_status cpu_memcpy(void *dst, const void *src, size_t nbytes) {
    if (nbytes) memcpy(dst, src, nbytes);
    return ADEPT_OK;
}

static adept_status cpu_fill_zero(void *p, size_t nbytes) {
    if (nbytes) memset(p, 0, nbytes);
    return ADEPT_OK;
}

static adept_status cpu_synchronize(void) { return ADEPT_OK; }

static void cpu_gemm(adept_transpose ta, adept_transpose tb, size_t M, size_t N, size_t K, float alpha,
                     const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    cblas_sgemm(CblasRowMajor, ta == ADEPT_TRANS ? CblasTrans : CblasNoTrans, tb == ADEPT_TRANS ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

static void cpu_xent(float *logits, double *nll, const int32_t *targets, size_t N, size_t V, double grad_scale,
                     int want_grad) {
    adept_xent_forward_backward(logits, nll, targets, N, V, grad_scale, want_grad);
}

static adept_status cpu_nll_sum(const double *nll, const int32_t *targets, size_t N, double *host_sum) {
    double s = 0;
    for (size_t i = 0; i < N; i++)
        if (targets[i] >= 0) s += nll[i]; /* fixed order: deterministic */
    *host_sum = s;
    return ADEPT_OK;
}

/* ---- AdamW over segments: every segment cut into chunks of at most CHUNK elements and updated in ONE
   parallel loop (a parallel region per tensor costs a fork/join each); elementwise work and fixed chunk
   boundaries keep the result independent of the thread count. */
enum { CHUNK = 1 << 15 };

static void adamw_range(const adept_adamw_segment *s, size_t off, size_t n, double beta1, double beta2, double epsd) {
    const float b1 = (float)beta1, b2 = (float)beta2, eps = (float)epsd;
    const float one_b1 = (float)(1.0 - beta1), one_b2 = (float)(1.0 - beta2);
    const float shrink = s->shrink, neg_step = s->neg_step, bc2_sqrt = s->bc2_sqrt;
    float *restrict p = s->p + off, *restrict m = s->m + off, *restrict v = s->v + off;
    const float *restrict g = s->g + off;
    if (shrink != 1.0f)
        for (size_t i = 0; i < n; i++) p[i] *= shrink;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] * b1 + one_b1 * gi;
        float vi = v[i] * b2 + one_b2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] + neg_step * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

static adept_status cpu_adamw(const adept_adamw_segment *segs, size_t n_segs, double beta1, double beta2, double eps) {
    /* the chunk list: (segment, offset) pairs; counted first, so it is one allocation */
    size_t n_chunks = 0, total = 0;
    for (size_t s = 0; s < n_segs; s++) {
        n_chunks += (segs[s].n + CHUNK - 1) / CHUNK;
        total += segs[s].n;
    }
    if (!n_chunks) return ADEPT_OK;
    size_t *seg_of = adept_alloc(n_chunks * 2 * sizeof *seg_of);
    if (!seg_of) return adept_fail(ADEPT_ENOMEM, "adamw: out of memory for the chunk list");
    size_t *off_of = seg_of + n_chunks, k = 0;
    for (size_t s = 0; s < n_segs; s++)
        for (size_t off = 0; off < segs[s].n; off += CHUNK) seg_of[k] = s, off_of[k] = off, k++;
#pragma omp parallel for schedule(static) if (total > 2 * CHUNK)
    for (size_t j = 0; j < n_chunks; j++) {
        const adept_adamw_segment *s = &segs[seg_of[j]];
        size_t off = off_of[j], n = s->n - off < CHUNK ? s->n - off : CHUNK;
        adamw_range(s, off, n, beta1, beta2, eps);
    }
    adept_free(seg_of);
    return ADEPT_OK;
}

static adept_status cpu_sum_squares(const float *x, size_t n, double *host_out) {
    size_t n_chunks = (n + CHUNK - 1) / CHUNK;
    if (!n_chunks) { *host_out = 0; return ADEPT_OK; }
    double *part = adept_alloc(n_chunks * sizeof *part);
    if (!part) return adept_fail(ADEPT_ENOMEM, "sum_squares: out of memory");
#pragma omp parallel for schedule(static) if (n > 2 * CHUNK)
    for (size_t j = 0; j < n_chunks; j++) {
        size_t lo = j * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
        part[j] = s;
    }
    double sum = 0;
    for (size_t j = 0; j < n_chunks; j++) sum += part[j];
    adept_free(part);
    *host_out = sum;
    return ADEPT_OK;
}

/* One row per iteration, each in double in index order: the same result for any thread count. */
static adept_status cpu_row_cosine(const float *x, const float *y, size_t N, size_t C, double *host_cos) {
#pragma omp parallel for schedule(static) if (N * C > 2 * CHUNK)
    for (size_t n = 0; n < N; n++) {
        const float *a = x + n * C, *b = y + n * C;
        double ab = 0, aa = 0, bb = 0;
        for (size_t c = 0; c < C; c++) {
            double u = a[c], v = b[c];
            ab += u * v, aa += u * u, bb += v * v;
        }
        host_cos[n] = (aa == 0 && bb == 0) ? 1.0 : (aa == 0 || bb == 0) ? 0.0 : ab / sqrt(aa * bb);
    }
    return ADEPT_OK;
}

static void cpu_scale(float *x, size_t n, float f) {
#pragma omp parallel for schedule(static) if (n > 2 * CHUNK)
    for (size_t i = 0; i < n; i++) x[i] *= f;
}

static const adept_backend cpu_backend = {
    .name = "cpu",
    .device = ADEPT_CPU,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_device = cpu_memcpy,
    .to_host = cpu_memcpy,
    .copy = cpu_memcpy,
    .fill_zero = cpu_fill_zero,
    .synchronize = cpu_synchronize,
    .enter = adept_model_blas_enter,
    .exit = adept_model_blas_exit,
    .gemm = cpu_gemm,
    .matmul_forward = adept_matmul_forward,
    .matmul_backward = adept_matmul_backward_beta,
    .rmsnorm_forward = adept_rmsnorm_forward,
    .rmsnorm_backward = adept_rmsnorm_backward,
    .rope_forward = adept_rope_forward,
    .rope_backward = adept_rope_backward,
    .attention_forward = adept_attention_forward,
    .attention_backward = adept_attention_backward,
    .attention_decode = adept_attention_decode,
    .swiglu_forward = adept_swiglu_forward,
    .swiglu_backward = adept_swiglu_backward,
    .embedding_forward = adept_embedding_forward,
    .embedding_backward = adept_embedding_backward,
    .matmul_forward_w16 = adept_cpu_matmul_forward_w16,
    .matmul_backward_w16 = adept_cpu_matmul_backward_w16,
    .embedding_forward_w16 = adept_cpu_embedding_forward_w16,
    .matmul_forward_bf16 = adept_cpu_matmul_forward_bf16,
    .matmul_backward_bf16 = adept_cpu_matmul_backward_bf16,
    .xent = cpu_xent,
    .nll_sum = cpu_nll_sum,
    .adamw = cpu_adamw,
    .sum_squares = cpu_sum_squares,
    .scale = cpu_scale,
    .row_cosine = cpu_row_cosine,
    .unary = adept_cpu_unary,
    .binary = adept_cpu_binary,
    .scalar = adept_cpu_scalar,
    .reduce = adept_cpu_reduce,
    .reduce_dim = adept_cpu_reduce_dim,
    .dot3 = adept_cpu_dot3,
    .topk = adept_cpu_topk,
    .tensor_copy = adept_cpu_copy,
    .scale_rows = adept_cpu_scale_rows,
};

static const adept_backend *registered[2];

const adept_backend *adept_backend_cpu(void) { return &cpu_backend; }

void adept_backend_register(adept_device device, const adept_backend *backend) {
    if ((unsigned)device < sizeof registered / sizeof registered[0]) registered[device] = backend;
}

const adept_backend *adept_backend_for(adept_device device) {
    if (device == ADEPT_CPU) return registered[ADEPT_CPU] ? registered[ADEPT_CPU] : &cpu_backend;
    if ((unsigned)device < sizeof registered / sizeof registered[0] && registered[device]) return registered[device];
    /* the CUDA backend registers itself on first request, and only when a device is present (adept/cuda.h) */
    if (device == ADEPT_CUDA) return registered[ADEPT_CUDA] = adept_backend_cuda();
    adept_fail(ADEPT_EUNSUPPORTED, "device %s is not available in this build",
               device == ADEPT_CUDA ? "cuda" : "unknown");
    return NULL;
}
