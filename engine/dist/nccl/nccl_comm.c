/* The NCCL communicator for GPU ranks: it wraps a host communicator (MPI across processes, or the single one)
   and reduces gradient slabs that live in CUDA memory with ncclAllReduce, on the device, instead of staging
   them through the host. Everything else (host scalars, host broadcasts, barriers, abort) goes to the host
   communicator, which also bootstraps NCCL: rank 0's ncclUniqueId is broadcast over it.
   NCCL is opened with dlopen at the first device reduction, as cuBLAS is (engine/ops/cuda/runtime.cu says why):
   linking it would load 200 MB into every process. Where it is looked for: $ADEPT_NCCL_LIBRARY (a path), the
   toolkit's directory found at build time, then the loader's search path.
   Determinism: NCCL's ring and tree all-reduce give every rank the same result, and the same bits from run to
   run for the same ranks, sizes and topology (NCCL_ALGO may be pinned for runs compared across machines).
   One GPU per rank: the CUDA backend picks the device from the local rank (adept/cuda.h). */
#include <dlfcn.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/dist.h"
#include "dist/nccl/nccl_comm.h"

typedef struct nccl_api {
    void *lib;
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*comm_init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, int, ncclComm_t, cudaStream_t);
    ncclResult_t (*bcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    ncclResult_t (*comm_destroy)(ncclComm_t);
    const char *(*error_string)(ncclResult_t);
    ncclResult_t (*get_version)(int *);
} nccl_api;

static nccl_api api;

static adept_status load_nccl(void) {
    if (api.lib) return ADEPT_OK;
    char built[1024];
    snprintf(built, sizeof built, "%s/libnccl.so.2", ADEPT_NCCL_DIR);
    const char *candidates[3] = {getenv("ADEPT_NCCL_LIBRARY"), built, "libnccl.so.2"};
    char errs[1024] = "";
    for (int i = 0; i < 3 && !api.lib; i++) {
        if (!candidates[i] || !candidates[i][0]) continue;
        api.lib = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (!api.lib) {
            const char *e = dlerror();
            size_t used = strlen(errs);
            snprintf(errs + used, sizeof errs - used, "%s%.300s", used ? "; " : "", e ? e : candidates[i]);
        }
    }
    if (!api.lib)
        return adept_fail(ADEPT_EUNSUPPORTED, "dist (nccl): cannot open NCCL (set ADEPT_NCCL_LIBRARY to libnccl.so.2): %s",
                          errs);
    /* each symbol through a void pointer, as POSIX allows for dlsym */
#define SYM(field, name)                                                                                     \
    do {                                                                                                     \
        void *s = dlsym(api.lib, name);                                                                      \
        if (!s) {                                                                                            \
            dlclose(api.lib), memset(&api, 0, sizeof api);                                                   \
            return adept_fail(ADEPT_EUNSUPPORTED, "dist (nccl): the NCCL library has no %s", name);          \
        }                                                                                                    \
        memcpy(&api.field, &s, sizeof s);                                                                    \
    } while (0)
    SYM(get_unique_id, "ncclGetUniqueId");
    SYM(comm_init_rank, "ncclCommInitRank");
    SYM(all_reduce, "ncclAllReduce");
    SYM(reduce, "ncclReduce");
    SYM(bcast, "ncclBroadcast");
    SYM(group_start, "ncclGroupStart");
    SYM(group_end, "ncclGroupEnd");
    SYM(comm_destroy, "ncclCommDestroy");
    SYM(error_string, "ncclGetErrorString");
    SYM(get_version, "ncclGetVersion");
#undef SYM
    return ADEPT_OK;
}

static adept_status nccl_check(ncclResult_t r, const char *op) {
    if (r == ncclSuccess) return ADEPT_OK;
    return adept_fail(ADEPT_EIO, "dist (nccl): %s failed: %s", op, api.error_string ? api.error_string(r) : "error");
}

typedef struct nccl_impl {
    adept_comm *host; /* rank, size and every host collective */
    ncclComm_t comm;  /* created at the first device reduction */
    int ready;
} nccl_impl;

static int n_rank(const adept_comm *c) { return adept_comm_rank(((const nccl_impl *)c->impl)->host); }
static int n_size(const adept_comm *c) { return adept_comm_size(((const nccl_impl *)c->impl)->host); }

/* NCCL's communicator over the host one's ranks: rank 0's unique id reaches every rank by the host broadcast */
static adept_status ensure_comm(nccl_impl *p) {
    if (p->ready) return ADEPT_OK;
    ADEPT_TRY(load_nccl());
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    int rank = adept_comm_rank(p->host), size = adept_comm_size(p->host);
    if (rank == 0) ADEPT_TRY(nccl_check(api.get_unique_id(&id), "ncclGetUniqueId"));
    ADEPT_TRY(p->host->ops->broadcast(p->host, &id, sizeof id, 0));
    ADEPT_TRY(nccl_check(api.comm_init_rank(&p->comm, size, id, rank), "ncclCommInitRank"));
    p->ready = 1;
    return ADEPT_OK;
}

static adept_status n_reduce_f32(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    nccl_impl *p = c->impl;
    if (be->device != ADEPT_CUDA) return p->host->ops->all_reduce_f32(p->host, be, data, n);
    if (n == 0) return ADEPT_OK;
    ADEPT_TRY(be->synchronize()); /* the gradients are complete, and earlier kernel errors are reported first */
    ADEPT_TRY(ensure_comm(p));
    /* the legacy default stream, which every kernel of the CUDA backend uses: the reduction is ordered after
       the backward pass and before the optimizer without a host wait */
    ADEPT_TRY(nccl_check(api.all_reduce(data, data, n, ncclFloat32, ncclSum, p->comm, (cudaStream_t)0), "ncclAllReduce"));
    return be->synchronize();
}

/* The overlapped form (adept_comm_ops.all_reduce_f32_start): the same ncclAllReduce, queued on the backend's side
   queue after an event that marks the backward kernels queued so far, so it runs beside the ones queued next. */
static adept_status n_reduce_start(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    nccl_impl *p = c->impl;
    if (be->device != ADEPT_CUDA || !be->comm_queue) return n_reduce_f32(c, be, data, n);
    if (n == 0) return ADEPT_OK;
    ADEPT_TRY(ensure_comm(p));
    void *q = be->comm_queue();
    if (!q) return adept_fail(ADEPT_EIO, "dist (nccl): no side queue for the overlapped all-reduce: %s", adept_last_error());
    ADEPT_TRY(be->comm_queue_wait_main());
    return nccl_check(api.all_reduce(data, data, n, ncclFloat32, ncclSum, p->comm, (cudaStream_t)q), "ncclAllReduce");
}

static adept_status n_reduce_finish(adept_comm *c, const adept_backend *be) {
    (void)c;
    if (be->device != ADEPT_CUDA || !be->main_wait_comm_queue) return ADEPT_OK;
    return be->main_wait_comm_queue();
}

static adept_status n_reduce_f64(adept_comm *c, double *host, size_t n) {
    nccl_impl *p = c->impl;
    return p->host->ops->all_reduce_f64(p->host, host, n);
}
static adept_status n_broadcast(adept_comm *c, void *host, size_t nbytes, int root) {
    nccl_impl *p = c->impl;
    return p->host->ops->broadcast(p->host, host, nbytes, root);
}
static adept_status n_barrier(adept_comm *c) {
    nccl_impl *p = c->impl;
    return p->host->ops->barrier(p->host);
}
/* ZeRO-1's halves on device slabs: one ncclReduce to each block's owner (reduce-scatter) or one ncclBroadcast from
   it (all-gather) per block of adept_comm_block, fused into one launch by an NCCL group. ncclReduceScatter and
   ncclAllGather would need n padded to a multiple of the world size, which the slab is not. Host slabs go to
   the host communicator. */
static adept_status n_blocks(adept_comm *c, const adept_backend *be, float *data, size_t n, int gather) {
    nccl_impl *p = c->impl;
    const char *op = gather ? "ncclBroadcast" : "ncclReduce";
    int size = adept_comm_size(p->host);
    if (be->device != ADEPT_CUDA)
        return gather ? p->host->ops->all_gather_f32(p->host, be, data, n)
                      : p->host->ops->reduce_scatter_f32(p->host, be, data, n);
    if (size == 1 || n == 0) return ADEPT_OK;
    ADEPT_TRY(be->synchronize());
    ADEPT_TRY(ensure_comm(p));
    ADEPT_TRY(nccl_check(api.group_start(), "ncclGroupStart"));
    adept_status st = ADEPT_OK;
    for (int r = 0; r < size && st == ADEPT_OK; r++) {
        size_t lo, hi;
        adept_comm_block(n, r, size, &lo, &hi);
        if (hi <= lo) continue; /* every rank skips the same empty blocks */
        st = nccl_check(gather ? api.bcast(data + lo, data + lo, hi - lo, ncclFloat32, r, p->comm, (cudaStream_t)0)
                               : api.reduce(data + lo, data + lo, hi - lo, ncclFloat32, ncclSum, r, p->comm,
                                            (cudaStream_t)0),
                        op);
    }
    adept_status end = nccl_check(api.group_end(), "ncclGroupEnd"); /* a group once opened is always closed */
    ADEPT_TRY(st);
    ADEPT_TRY(end);
    return be->synchronize();
}
static adept_status n_reduce_scatter(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    return n_blocks(c, be, data, n, 0);
}
static adept_status n_all_gather(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    return n_blocks(c, be, data, n, 1);
}
static void n_abort(adept_comm *c, int code) {
    nccl_impl *p = c->impl;
    p->host->ops->abort(p->host, code);
}
static void n_destroy(adept_comm *c) {
    nccl_impl *p = c->impl;
    if (p->ready) api.comm_destroy(p->comm);
    free(p);
    free(c);
}

static const adept_comm_ops nccl_ops = {"mpi+nccl",       n_rank,       n_size,          n_reduce_f32,
                                        n_reduce_f64,     n_broadcast,  n_barrier,       n_reduce_scatter,
                                        n_all_gather,     n_abort,      n_destroy,       n_reduce_start,
                                        n_reduce_finish};

adept_status adept_comm_nccl_wrap(adept_comm *host, adept_comm **out) {
    adept_comm *c = calloc(1, sizeof *c);
    nccl_impl *p = calloc(1, sizeof *p);
    if (!c || !p) {
        free(c), free(p);
        return adept_fail(ADEPT_ENOMEM, "dist (nccl): out of memory");
    }
    p->host = host;
    c->ops = &nccl_ops, c->impl = p;
    /* host slabs go to the host communicator, and to its helper thread where it allows one; device slabs are
       overlapped through all_reduce_f32_start instead */
    c->concurrent = host->concurrent;
    *out = c;
    return ADEPT_OK;
}

adept_status adept_nccl_version(int *version) {
    ADEPT_TRY(load_nccl());
    return nccl_check(api.get_version(version), "ncclGetVersion");
}
