/* The protected-memory fake device (fake_device.h). Memory: one reserved mapping carved into page-rounded
   blocks (first fit over a sorted free list, neighbours merged, a bump pointer past them); a freed block's
   pages are dropped with MADV_DONTNEED, so every block starts zeroed as the seam requires. Protection: the
   used part of the arena is PROT_NONE except inside an entry, which unprotects it, runs the CPU kernel and
   protects it again. Every pointer an entry receives must lie in the arena. */
#include "fake_device.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RESERVE ((size_t)64 << 30) /* address space only (MAP_NORESERVE) */

typedef struct block {
    size_t off, len;
} block;

static unsigned char *arena;
static size_t page, high; /* high: end of the used part (page multiple) */
static int open_depth;
static block *live, *spare; /* live blocks (unordered); free ranges sorted by offset */
static size_t n_live, cap_live, n_spare, cap_spare;
static adept_fake_device_stats stats;
static const adept_backend *cpu;
/* the device's memory, as a GPU has a fixed amount: adept_fake_device_set_capacity or ADEPT_FAKE_DEVICE_MIB
   (the fake hosts); unlimited (the arena's reserve) otherwise */
static size_t capacity = RESERVE;

static size_t free_bytes(void) { return stats.live_bytes < capacity ? capacity - stats.live_bytes : 0; }

int adept_fake_device_owns(const void *p) {
    return arena && (const unsigned char *)p >= arena && (const unsigned char *)p <= arena + high;
}

/* Counts (and reports the first few) pointers an entry received that are not device memory. */
static void dev(const void *p, const char *entry) {
    if (!p || adept_fake_device_owns(p)) return;
    if (stats.foreign_ptrs++ < 5)
        fprintf(stderr, "test-device: %s received host pointer %p where a device pointer belongs\n", entry, p);
}

static void protect(size_t from, size_t to, int prot) {
    if (to > from && mprotect(arena + from, to - from, prot) != 0) {
        perror("test-device: mprotect");
        abort();
    }
}
static void open_dev(void) {
    if (open_depth++ == 0) protect(0, high, PROT_READ | PROT_WRITE);
}
static void close_dev(void) {
    if (--open_depth == 0) protect(0, high, PROT_NONE);
}

static void on_segv(int sig, siginfo_t *info, void *uc) {
    (void)sig, (void)uc;
    static const char in[] = "test-device: the host touched device memory outside a backend entry (a host "
                             "dereference of a device pointer)\n";
    static const char out[] = "test-device: segmentation fault outside the device arena\n";
    const char *msg = adept_fake_device_owns(info->si_addr) ? in : out;
    if (write(2, msg, strlen(msg)) < 0) {}
    _exit(3);
}

static int grow(block **a, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    size_t c = *cap ? 2 * *cap : 256;
    while (c < need) c *= 2;
    block *g = realloc(*a, c * sizeof *g);
    if (!g) return 0;
    *a = g;
    *cap = c;
    return 1;
}

/* ---- memory ---- */
static void *t_alloc(size_t nbytes) {
    size_t len = (nbytes + page - 1) / page * page;
    if (len == 0) len = page;
    if (len < nbytes || !grow(&live, &cap_live, n_live + 1)) {
        adept_fail(ADEPT_ENOMEM, "test-device: cannot allocate %zu bytes", nbytes);
        return NULL;
    }
    if (len > free_bytes()) {
        adept_fail(ADEPT_ENOMEM, "test-device: out of memory: %zu bytes asked, %zu of %zu in use", nbytes,
                   stats.live_bytes, capacity);
        return NULL;
    }
    size_t off = SIZE_MAX;
    for (size_t i = 0; i < n_spare; i++)
        if (spare[i].len >= len) { /* first fit; the rest of the range stays free */
            off = spare[i].off;
            spare[i].off += len;
            spare[i].len -= len;
            if (spare[i].len == 0) memmove(spare + i, spare + i + 1, (--n_spare - i) * sizeof *spare);
            break;
        }
    if (off == SIZE_MAX) {
        if (len > RESERVE - high) {
            adept_fail(ADEPT_ENOMEM, "test-device: arena full (%zu of %zu bytes used, %zu asked)", high, RESERVE,
                       nbytes);
            return NULL;
        }
        off = high;
        high += len;
        if (open_depth) protect(off, high, PROT_READ | PROT_WRITE); /* allocated inside an entry */
    }
    live[n_live++] = (block){off, len};
    stats.live_blocks++;
    stats.live_bytes += len;
    if (high > stats.high_water) stats.high_water = high;
    return arena + off;
}

static adept_status t_memory_info(size_t *free_out, size_t *total_out) {
    *total_out = capacity;
    *free_out = free_bytes();
    return ADEPT_OK;
}

static void t_free(void *p) {
    if (!p) return;
    size_t off = (size_t)((unsigned char *)p - arena), i = n_live;
    while (i > 0 && live[i - 1].off != off) i--;
    if (!adept_fake_device_owns(p) || i == 0) {
        fprintf(stderr, "test-device: free of %p, which is not a live device block\n", p);
        stats.foreign_ptrs++;
        return;
    }
    block b = live[i - 1];
    live[i - 1] = live[--n_live];
    stats.frees++;
    stats.live_blocks--;
    stats.live_bytes -= b.len;
    madvise(arena + b.off, b.len, MADV_DONTNEED); /* zero pages when reused */
    /* insert into the sorted free list, merging with its neighbours */
    size_t k = 0;
    while (k < n_spare && spare[k].off < b.off) k++;
    if (k > 0 && spare[k - 1].off + spare[k - 1].len == b.off) {
        spare[k - 1].len += b.len;
        if (k < n_spare && b.off + b.len == spare[k].off) {
            spare[k - 1].len += spare[k].len;
            memmove(spare + k, spare + k + 1, (--n_spare - k) * sizeof *spare);
        }
        return;
    }
    if (k < n_spare && b.off + b.len == spare[k].off) {
        spare[k].off = b.off;
        spare[k].len += b.len;
        return;
    }
    if (!grow(&spare, &cap_spare, n_spare + 1)) return; /* the range is lost to reuse, not to correctness */
    memmove(spare + k + 1, spare + k, (n_spare - k) * sizeof *spare);
    spare[k] = b;
    n_spare++;
}

static adept_status t_to_device(void *dst, const void *host_src, size_t nbytes) {
    dev(dst, "to_device");
    open_dev();
    if (nbytes) memcpy(dst, host_src, nbytes);
    close_dev();
    return ADEPT_OK;
}
static adept_status t_to_host(void *host_dst, const void *src, size_t nbytes) {
    dev(src, "to_host");
    open_dev();
    if (nbytes) memcpy(host_dst, src, nbytes);
    close_dev();
    return ADEPT_OK;
}
static adept_status t_copy(void *dst, const void *src, size_t nbytes) {
    dev(dst, "copy"), dev(src, "copy");
    open_dev();
    adept_status st = cpu->copy(dst, src, nbytes);
    close_dev();
    return st;
}
static adept_status t_fill_zero(void *p, size_t nbytes) {
    dev(p, "fill_zero");
    open_dev();
    adept_status st = cpu->fill_zero(p, nbytes);
    close_dev();
    return st;
}
static adept_status t_synchronize(void) { return ADEPT_OK; }
static int t_enter(void) { return cpu->enter(); }
static void t_exit(int token) { cpu->exit(token); }

/* Kernel wrappers: check every pointer, unprotect, run the CPU kernel, protect. */
#define RUN(call) (stats.kernel_calls++, open_dev(), (call), close_dev())

static void t_gemm(adept_transpose ta, adept_transpose tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                   size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    dev(A, "gemm"), dev(B, "gemm"), dev(C, "gemm");
    RUN(cpu->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
}
static void t_matmul_forward(float *out, const float *inp, const float *w, const float *bias, size_t N, size_t IC,
                             size_t OC, int beta_one) {
    dev(out, "matmul_forward"), dev(inp, "matmul_forward"), dev(w, "matmul_forward"), dev(bias, "matmul_forward");
    RUN(cpu->matmul_forward(out, inp, w, bias, N, IC, OC, beta_one));
}
static void t_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                              const float *w, size_t N, size_t IC, size_t OC, int acc) {
    const char *e = "matmul_backward";
    dev(dinp, e), dev(dw, e), dev(dbias, e), dev(dout, e), dev(inp, e), dev(w, e);
    RUN(cpu->matmul_backward(dinp, dw, dbias, dout, inp, w, N, IC, OC, acc));
}
static void t_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t N, size_t C,
                              double eps) {
    dev(out, "rmsnorm_forward"), dev(rstd, "rmsnorm_forward"), dev(inp, "rmsnorm_forward"), dev(w, "rmsnorm_forward");
    RUN(cpu->rmsnorm_forward(out, rstd, inp, w, N, C, eps));
}
static void t_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                               const float *rstd, size_t N, size_t C) {
    const char *e = "rmsnorm_backward";
    dev(dinp, e), dev(dw, e), dev(dout, e), dev(inp, e), dev(w, e), dev(rstd, e);
    RUN(cpu->rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C));
}
static void t_rope_forward(float *x, const float *c, const float *s, size_t B, size_t T, size_t H, size_t D,
                           size_t pos0) {
    dev(x, "rope_forward"), dev(c, "rope_forward"), dev(s, "rope_forward");
    RUN(cpu->rope_forward(x, c, s, B, T, H, D, pos0));
}
static void t_rope_backward(float *x, const float *c, const float *s, size_t B, size_t T, size_t H, size_t D,
                            size_t pos0) {
    dev(x, "rope_backward"), dev(c, "rope_backward"), dev(s, "rope_backward");
    RUN(cpu->rope_backward(x, c, s, B, T, H, D, pos0));
}
static void t_attention_forward(float *y, float *lse, const float *q, const float *k, const float *v, size_t B,
                                size_t T, size_t H, size_t KH, size_t D, size_t W) {
    const char *e = "attention_forward";
    dev(y, e), dev(lse, e), dev(q, e), dev(k, e), dev(v, e);
    RUN(cpu->attention_forward(y, lse, q, k, v, B, T, H, KH, D, W));
}
static void t_attention_backward(float *dq, float *dk, float *dv, const float *dy, const float *y, const float *lse,
                                 const float *q, const float *k, const float *v, size_t B, size_t T, size_t H,
                                 size_t KH, size_t D, size_t W) {
    const char *e = "attention_backward";
    dev(dq, e), dev(dk, e), dev(dv, e), dev(dy, e), dev(y, e), dev(lse, e), dev(q, e), dev(k, e), dev(v, e);
    RUN(cpu->attention_backward(dq, dk, dv, dy, y, lse, q, k, v, B, T, H, KH, D, W));
}
static void t_attention_decode(float *y, float *att, const float *q, const float *kc, const float *vc, size_t n,
                               size_t ld, size_t H, size_t KH, size_t D) {
    const char *e = "attention_decode";
    dev(y, e), dev(att, e), dev(q, e), dev(kc, e), dev(vc, e);
    RUN(cpu->attention_decode(y, att, q, kc, vc, n, ld, H, KH, D));
}
static void t_swiglu_forward(float *h, const float *g, const float *u, size_t n) {
    dev(h, "swiglu_forward"), dev(g, "swiglu_forward"), dev(u, "swiglu_forward");
    RUN(cpu->swiglu_forward(h, g, u, n));
}
static void t_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
    const char *e = "swiglu_backward";
    dev(dg, e), dev(du, e), dev(dh, e), dev(g, e), dev(u, e);
    RUN(cpu->swiglu_backward(dg, du, dh, g, u, n));
}
static void t_embedding_forward(float *out, const int32_t *ids, const float *emb, size_t N, size_t C) {
    dev(out, "embedding_forward"), dev(ids, "embedding_forward"), dev(emb, "embedding_forward");
    RUN(cpu->embedding_forward(out, ids, emb, N, C));
}
static void t_embedding_backward(float *demb, const int32_t *ids, const float *dout, size_t N, size_t C) {
    dev(demb, "embedding_backward"), dev(ids, "embedding_backward"), dev(dout, "embedding_backward");
    RUN(cpu->embedding_backward(demb, ids, dout, N, C));
}
static void t_xent(float *logits, double *nll, const int32_t *targets, size_t N, size_t V, double grad_scale,
                   int want_grad) {
    dev(logits, "xent"), dev(nll, "xent"), dev(targets, "xent");
    RUN(cpu->xent(logits, nll, targets, N, V, grad_scale, want_grad));
}
static adept_status t_nll_sum(const double *nll, const int32_t *targets, size_t N, double *host_sum) {
    dev(nll, "nll_sum"), dev(targets, "nll_sum");
    adept_status st;
    RUN(st = cpu->nll_sum(nll, targets, N, host_sum));
    return st;
}
static adept_status t_adamw(const adept_adamw_segment *segs, size_t n, double b1, double b2, double eps) {
    for (size_t i = 0; i < n; i++)
        dev(segs[i].p, "adamw"), dev(segs[i].g, "adamw"), dev(segs[i].m, "adamw"), dev(segs[i].v, "adamw");
    adept_status st;
    RUN(st = cpu->adamw(segs, n, b1, b2, eps));
    return st;
}
static adept_status t_sum_squares(const float *x, size_t n, double *host_out) {
    dev(x, "sum_squares");
    adept_status st;
    RUN(st = cpu->sum_squares(x, n, host_out));
    return st;
}
static void t_scale(float *x, size_t n, float f) {
    dev(x, "scale");
    RUN(cpu->scale(x, n, f));
}
static adept_status t_row_cosine(const float *x, const float *y, size_t N, size_t C, double *host_cos) {
    dev(x, "row_cosine"), dev(y, "row_cosine");
    adept_status st;
    RUN(st = cpu->row_cosine(x, y, N, C, host_cos));
    return st;
}
/* frozen 16-bit weights: the CPU's products (oneDNN or widened sgemm) over device memory */
static void t_matmul_forward_w16(float *out, const float *inp, const void *w, adept_dtype wdt, const float *bias,
                                 size_t N, size_t IC, size_t OC, int beta_one) {
    const char *e = "matmul_forward_w16";
    dev(out, e), dev(inp, e), dev(w, e), dev(bias, e);
    RUN(cpu->matmul_forward_w16(out, inp, w, wdt, bias, N, IC, OC, beta_one));
}
static void t_matmul_backward_w16(float *dinp, const float *dout, const void *w, adept_dtype wdt, size_t N,
                                  size_t IC, size_t OC, int acc) {
    const char *e = "matmul_backward_w16";
    dev(dinp, e), dev(dout, e), dev(w, e);
    RUN(cpu->matmul_backward_w16(dinp, dout, w, wdt, N, IC, OC, acc));
}
static void t_embedding_forward_w16(float *out, const int32_t *ids, const void *emb, adept_dtype wdt, size_t N,
                                    size_t C) {
    const char *e = "embedding_forward_w16";
    dev(out, e), dev(ids, e), dev(emb, e);
    RUN(cpu->embedding_forward_w16(out, ids, emb, wdt, N, C));
}
static void t_matmul_forward_bf16(float *out, const float *inp, const float *w, const float *bias, size_t N,
                                  size_t IC, size_t OC, int beta_one) {
    const char *e = "matmul_forward_bf16";
    dev(out, e), dev(inp, e), dev(w, e), dev(bias, e);
    RUN(cpu->matmul_forward_bf16(out, inp, w, bias, N, IC, OC, beta_one));
}
static void t_matmul_backward_bf16(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                                   const float *w, size_t N, size_t IC, size_t OC, int acc) {
    const char *e = "matmul_backward_bf16";
    dev(dinp, e), dev(dw, e), dev(dbias, e), dev(dout, e), dev(inp, e), dev(w, e);
    RUN(cpu->matmul_backward_bf16(dinp, dw, dbias, dout, inp, w, N, IC, OC, acc));
}

/* The side queue of the overlapped gradient all-reduce: every entry here runs when called, so the queues are
   ordered already and the waits have nothing to do; they exist so that a device slab takes the overlapped path
   (engine/train/grad_sync.c) on this device as on CUDA. */
static int side_queue;
static void *t_comm_queue(void) { return &side_queue; }
static adept_status t_comm_queue_wait_main(void) { return ADEPT_OK; }
static adept_status t_main_wait_comm_queue(void) { return ADEPT_OK; }

static const adept_backend fake = {
    .name = "test-device", .device = ADEPT_CUDA,
    .alloc = t_alloc, .free = t_free, .to_device = t_to_device, .to_host = t_to_host, .copy = t_copy,
    .fill_zero = t_fill_zero, .synchronize = t_synchronize, .enter = t_enter, .exit = t_exit, .gemm = t_gemm,
    .matmul_forward = t_matmul_forward, .matmul_backward = t_matmul_backward,
    .rmsnorm_forward = t_rmsnorm_forward, .rmsnorm_backward = t_rmsnorm_backward,
    .rope_forward = t_rope_forward, .rope_backward = t_rope_backward,
    .attention_forward = t_attention_forward, .attention_backward = t_attention_backward,
    .attention_decode = t_attention_decode, .swiglu_forward = t_swiglu_forward,
    .swiglu_backward = t_swiglu_backward, .embedding_forward = t_embedding_forward,
    .embedding_backward = t_embedding_backward, .xent = t_xent, .nll_sum = t_nll_sum, .adamw = t_adamw,
    .sum_squares = t_sum_squares, .scale = t_scale, .row_cosine = t_row_cosine,
    .matmul_forward_w16 = t_matmul_forward_w16, .matmul_backward_w16 = t_matmul_backward_w16,
    .embedding_forward_w16 = t_embedding_forward_w16,
    .matmul_forward_bf16 = t_matmul_forward_bf16, .matmul_backward_bf16 = t_matmul_backward_bf16,
    .comm_queue = t_comm_queue, .comm_queue_wait_main = t_comm_queue_wait_main,
    .main_wait_comm_queue = t_main_wait_comm_queue, .memory_info = t_memory_info,
};

void adept_fake_device_set_capacity(size_t bytes) { capacity = bytes ? bytes : RESERVE; }

const adept_backend *adept_fake_device(void) {
    if (arena) return &fake;
    page = (size_t)sysconf(_SC_PAGESIZE);
    void *a = mmap(NULL, RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (a == MAP_FAILED) {
        perror("test-device: mmap of the arena");
        return NULL;
    }
    arena = a;
    cpu = adept_backend_cpu();
    const char *mib = getenv("ADEPT_FAKE_DEVICE_MIB");
    if (mib && *mib) adept_fake_device_set_capacity((size_t)strtoull(mib, NULL, 10) << 20);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    return &fake;
}

void adept_fake_device_install(void) {
    const adept_backend *be = adept_fake_device();
    if (be) adept_backend_register(ADEPT_CUDA, be);
}

adept_fake_device_stats adept_fake_device_stats_now(void) { return stats; }
