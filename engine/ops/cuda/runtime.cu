/* The CUDA backend's runtime side: device discovery, initialisation of device 0 (cuBLAS handle with fp32 math
   and products that name their compute type), the error bookkeeping every kernel shares, device memory and copies, and the backend table. */
#include <dlfcn.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "common.cuh"
#include "cuda_internal.h"

namespace adept_cuda {

State g;
BlasApi blas;

/* The toolkit's cuBLAS: first where the build found it (ADEPT_CUBLAS_DIR), then by soname through the loader's
   search path (LD_LIBRARY_PATH, ld.so.conf). libcublas finds its libcublasLt through its RUNPATH ($ORIGIN). */
static adept_status load_cublas(void) {
    if (blas.lib) return ADEPT_OK;
    char path[1024], errs[1024] = "";
    const char *candidates[2] = {path, ADEPT_CUBLAS_SONAME};
    snprintf(path, sizeof path, "%s/%s", ADEPT_CUBLAS_DIR, ADEPT_CUBLAS_SONAME);
    void *lib = NULL;
    for (int i = 0; i < 2 && !lib; i++) {
        lib = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            const char *e = dlerror();
            size_t used = strlen(errs);
            snprintf(errs + used, sizeof errs - used, "%s%s", used ? "; " : "", e ? e : candidates[i]);
        }
    }
    if (!lib)
        return adept_fail(ADEPT_EUNSUPPORTED, "cuda: cannot load cuBLAS (%s): %s; add the CUDA toolkit's lib64 to "
                          "LD_LIBRARY_PATH", ADEPT_CUBLAS_SONAME, errs);
    BlasApi b = {};
    b.lib = lib;
#define SYM(field, name)                                                                                     \
    if (!(*(void **)&b.field = dlsym(lib, name))) {                                                          \
        dlclose(lib);                                                                                        \
        return adept_fail(ADEPT_EUNSUPPORTED, "cuda: %s has no symbol %s (another cuBLAS version?)",        \
                          ADEPT_CUBLAS_SONAME, name);                                                        \
    }
    SYM(create, "cublasCreate_v2")
    SYM(destroy, "cublasDestroy_v2")
    SYM(set_math_mode, "cublasSetMathMode")
    SYM(set_pointer_mode, "cublasSetPointerMode_v2")
    SYM(set_stream, "cublasSetStream_v2")
    SYM(gemm_ex, "cublasGemmEx")
    SYM(gemm_sb_ex, "cublasGemmStridedBatchedEx")
#undef SYM
    blas = b;
    return ADEPT_OK;
}

static adept_status status_of(cudaError_t e) {
    return e == cudaErrorMemoryAllocation ? ADEPT_ENOMEM : ADEPT_EIO;
}

void record_msg(const char *op, adept_status st, const char *msg) {
    if (g.pending != ADEPT_OK) return;
    g.pending = st;
    snprintf(g.pending_msg, sizeof g.pending_msg, "cuda: %s: %s", op, msg);
}

void record(const char *op, cudaError_t e) {
    if (e == cudaSuccess) return;
    char msg[300];
    snprintf(msg, sizeof msg, "%s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    record_msg(op, status_of(e), msg);
}

const char *blas_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS not initialised";
    case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS could not allocate";
    case CUBLAS_STATUS_INVALID_VALUE: return "cuBLAS: invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "cuBLAS: not supported on this GPU";
    case CUBLAS_STATUS_MAPPING_ERROR: return "cuBLAS: memory mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "cuBLAS: kernel execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "cuBLAS: internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "cuBLAS: not supported";
    default: return "cuBLAS: unknown status";
    }
}

void record_blas(const char *op, cublasStatus_t s) {
    if (s == CUBLAS_STATUS_SUCCESS) return;
    char msg[128];
    snprintf(msg, sizeof msg, "%s (status %d)", blas_status_name(s), (int)s);
    record_msg(op, s == CUBLAS_STATUS_ALLOC_FAILED ? ADEPT_ENOMEM : ADEPT_EIO, msg);
}

adept_status take_pending(void) {
    if (g.pending == ADEPT_OK) return ADEPT_OK;
    adept_status st = g.pending;
    g.pending = ADEPT_OK;
    return adept_fail(st, "%s", g.pending_msg);
}

adept_status check(const char *op, cudaError_t e) {
    if (e == cudaSuccess) return ADEPT_OK;
    return adept_fail(status_of(e), "cuda: %s: %s (%s)", op, cudaGetErrorString(e), cudaGetErrorName(e));
}

void *scratch(const char *op, size_t nbytes) {
    if (nbytes <= g.scratch_bytes) return g.scratch;
    size_t want = nbytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : nbytes + nbytes / 4; /* grow by a quarter */
    if (g.scratch) record(op, cudaFree(g.scratch)); /* cudaFree waits for the work that used it */
    g.scratch = NULL;
    g.scratch_bytes = 0;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        char msg[200];
        snprintf(msg, sizeof msg, "cannot allocate %.1f MiB of scratch (%s)", want / 1048576.0, cudaGetErrorString(e));
        record_msg(op, ADEPT_ENOMEM, msg);
        return NULL;
    }
    g.scratch = p;
    g.scratch_bytes = want;
    return p;
}

/* ---- memory ---- */

static void *dev_alloc(size_t nbytes) {
    adept_status st = take_pending();
    if (st != ADEPT_OK) return NULL;
    /* 256 bytes at least: a valid, distinct pointer for nbytes 0; cudaMalloc aligns to 256 (>= the 64 asked) */
    size_t n = nbytes < 256 ? 256 : nbytes;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        adept_fail(ADEPT_ENOMEM, "cuda: cannot allocate %.1f MiB on the device (%.1f of %.1f MiB free): %s",
                   nbytes / 1048576.0, free_b / 1048576.0, total_b / 1048576.0, cudaGetErrorString(e));
        return NULL;
    }
    if (check("alloc (zero fill)", cudaMemset(p, 0, n)) != ADEPT_OK) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void dev_free(void *p) {
    if (p) record("free", cudaFree(p));
}

static adept_status dev_to_device(void *dst, const void *host_src, size_t nbytes) {
    ADEPT_TRY(take_pending());
    if (!nbytes) return ADEPT_OK;
    adept_status st = check("to_device", cudaMemcpy(dst, host_src, nbytes, cudaMemcpyHostToDevice));
    mark("to_device", "copy");
    return st;
}

static adept_status dev_to_host(void *host_dst, const void *src, size_t nbytes) {
    ADEPT_TRY(take_pending());
    if (!nbytes) return ADEPT_OK;
    adept_status st = check("to_host", cudaMemcpy(host_dst, src, nbytes, cudaMemcpyDeviceToHost));
    mark("to_host", "copy");
    /* a kernel that failed while the copy waited is reported here, naming the kernel */
    return st == ADEPT_OK ? take_pending() : st;
}

static adept_status dev_copy(void *dst, const void *src, size_t nbytes) {
    ADEPT_TRY(take_pending());
    if (!nbytes) return ADEPT_OK;
    adept_status st = check("copy", cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToDevice));
    mark("copy", "copy");
    return st;
}

static adept_status dev_fill_zero(void *p, size_t nbytes) {
    ADEPT_TRY(take_pending());
    if (!nbytes) return ADEPT_OK;
    adept_status st = check("fill_zero", cudaMemsetAsync(p, 0, nbytes, 0));
    mark("fill_zero", "memset");
    return st;
}

static adept_status dev_synchronize(void) {
    adept_status st = check("synchronize", cudaDeviceSynchronize());
    adept_status pend = take_pending(); /* the first failure wins: it names the op that caused the rest */
    if (pend != ADEPT_OK) return pend;
    return st;
}

static adept_status dev_memory_info(size_t *free_bytes, size_t *total_bytes) {
    return check("memory_info (cudaMemGetInfo)", cudaMemGetInfo(free_bytes, total_bytes));
}

/* BLAS threads are a CPU notion: nothing to enter or leave */
static int dev_enter(void) { return 0; }
static void dev_exit(int token) { (void)token; }

/* designated initialisers (C++20): an entry added to adept_backend elsewhere stays NULL, never shifted */
static const adept_backend table = {
    .name = "cuda",
    .device = ADEPT_CUDA,
    .alloc = dev_alloc,
    .free = dev_free,
    .to_device = dev_to_device,
    .to_host = dev_to_host,
    .copy = dev_copy,
    .fill_zero = dev_fill_zero,
    .synchronize = dev_synchronize,
    .enter = dev_enter,
    .exit = dev_exit,
    .gemm = gemm,
    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .rmsnorm_forward = rmsnorm_forward,
    .rmsnorm_backward = rmsnorm_backward,
    .rope_forward = rope_forward,
    .rope_backward = rope_backward,
    .attention_forward = attention_forward,
    .attention_backward = attention_backward,
    .attention_decode = attention_decode,
    .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward,
    .embedding_forward = embedding_forward,
    .embedding_backward = embedding_backward,
    .xent = xent,
    .nll_sum = nll_sum,
    .adamw = adamw,
    .sum_squares = sum_squares,
    .scale = scale,
    .row_cosine = row_cosine,
    .matmul_forward_w16 = matmul_forward_w16,
    .matmul_backward_w16 = matmul_backward_w16,
    .embedding_forward_w16 = embedding_forward_w16,
    .matmul_forward_bf16 = matmul_forward_bf16,
    .matmul_backward_bf16 = matmul_backward_bf16,
    .attention_forward_bf16 = attention_forward_bf16,
    .attention_backward_bf16 = attention_backward_bf16,
    .comm_queue = comm_queue,
    .comm_queue_wait_main = comm_queue_wait_main,
    .main_wait_comm_queue = main_wait_comm_queue,
    .memory_info = dev_memory_info,
};

} // namespace adept_cuda

using namespace adept_cuda;

extern "C" int adept_cuda_rt_device_count(char *why, size_t why_len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        const char *what = e == cudaErrorInsufficientDriver ? "no NVIDIA driver is loaded, or it is older than this CUDA runtime"
                           : e == cudaErrorNoDevice             ? "the driver reports no GPU"
                                                                : "the CUDA runtime cannot start";
        snprintf(why, why_len, "%s; cudaGetDeviceCount: %s", what, cudaGetErrorString(e));
        return 0;
    }
    if (n <= 0) snprintf(why, why_len, "the driver reports no GPU");
    else if (why_len) why[0] = '\0';
    return n;
}

extern "C" adept_status adept_cuda_rt_device_info(int index, adept_cuda_device *out) {
    char why[256];
    int n = adept_cuda_rt_device_count(why, sizeof why);
    if (n <= 0) return adept_fail(ADEPT_EUNSUPPORTED, "cuda: no CUDA device (%s)", why);
    if (index < 0 || index >= n)
        return adept_fail(ADEPT_EINVAL, "cuda: device %d does not exist (%d device%s)", index, n, n == 1 ? "" : "s");
    cudaDeviceProp p;
    ADEPT_TRY(check("device_info", cudaGetDeviceProperties(&p, index)));
    memset(out, 0, sizeof *out);
    out->index = index;
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->total_bytes = p.totalGlobalMem;
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->multiprocessors = p.multiProcessorCount;
    int prev = 0;
    ADEPT_TRY(check("device_info", cudaGetDevice(&prev)));
    ADEPT_TRY(check("device_info", cudaSetDevice(index)));
    size_t free_b = 0, total_b = 0;
    adept_status st = check("device_info (cudaMemGetInfo)", cudaMemGetInfo(&free_b, &total_b));
    cudaSetDevice(prev);
    out->free_bytes = free_b;
    return st;
}

/* One GPU per process: ADEPT_CUDA_DEVICE when set, else the launcher's local rank (Open MPI, Slurm, MPICH) modulo
   the devices of this node, else device 0. */
static int chosen_device(int count) {
    const char *vars[] = {"ADEPT_CUDA_DEVICE", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"};
    for (const char *v : vars) {
        const char *s = getenv(v);
        if (s && *s) {
            int i = atoi(s);
            return count > 0 && i >= 0 ? i % count : 0;
        }
    }
    return 0;
}

extern "C" const adept_backend *adept_cuda_rt_backend(void) {
    if (g.ready) return &table;
    int count = 0;
    if (check("init (cudaGetDeviceCount)", cudaGetDeviceCount(&count)) != ADEPT_OK) return NULL;
    int dev = chosen_device(count);
    char what[64];
    snprintf(what, sizeof what, "init (cudaSetDevice %d)", dev);
    if (check(what, cudaSetDevice(dev)) != ADEPT_OK) return NULL;
    if (load_cublas() != ADEPT_OK) return NULL;
    cublasStatus_t s = blas.create(&g.blas);
    if (s != CUBLAS_STATUS_SUCCESS) {
        adept_fail(ADEPT_EIO, "cuda: init: cublasCreate: %s", blas_status_name(s));
        return NULL;
    }
    /* Default math, as PyTorch sets it with TF32 off: every product names its compute type (compute_type_for),
       so fp32 products ask for CUBLAS_COMPUTE_32F_PEDANTIC (no TF32 or emulation, for parity with the CPU engine)
       and bf16 ones for CUBLAS_COMPUTE_32F (tensor cores). The handle's CUBLAS_PEDANTIC_MATH, set here until
       2026-12-06, also turned cublasSgemm pedantic but left that choice implicit (cublas_api.h: it applies to
       cublas<T> routines and to cudaDataType compute types). One stream, so results are reproducible. */
    if ((s = blas.set_math_mode(g.blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS ||
        (s = blas.set_pointer_mode(g.blas, CUBLAS_POINTER_MODE_HOST)) != CUBLAS_STATUS_SUCCESS ||
        (s = blas.set_stream(g.blas, 0)) != CUBLAS_STATUS_SUCCESS) {
        adept_fail(ADEPT_EIO, "cuda: init: cuBLAS settings: %s", blas_status_name(s));
        blas.destroy(g.blas);
        return NULL;
    }
    g.device = dev;
    g.pending = ADEPT_OK;
    g.ready = 1;
    return &table;
}
