/* The MPI communicator: data parallelism across processes on the CPU (one rank per process, started by mpirun,
   mpiexec or srun). Collectives are MPI's; the SUM reductions are ours in a fixed order, because MPI leaves the
   order of a reduction to the implementation (it may differ between ranks, message sizes and runs):
   - all_reduce_f32 is a reduce-scatter followed by an all-gather (the bandwidth-optimal shape of a ring
     all-reduce): the slab is cut into one block per rank, MPI_Alltoall sends each block to its owner, the owner
     adds the ranks' copies in rank order 0, 1, ..., N-1, and MPI_Allgather hands the sums back. Every rank gets
     the same bits, every run. Each rank sends and receives 2 (N-1)/N of the slab, as a ring does.
   - all_reduce_f64 (a few host scalars) gathers every rank's values and adds them in rank order.
   Device memory (a slab on a GPU) is staged through host memory; NCCL, for GPU ranks, reduces on the device.
   Every MPI call returns its error (MPI_ERRORS_RETURN) and becomes a message naming the collective. */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "adept/tensor.h"
#include "dist/mpi/mpi_comm.h"

typedef struct mpi_impl {
    MPI_Comm comm;
    int rank, size;
    float *stage;    /* host staging: the padded send blocks, then the gathered sums */
    float *recv;     /* the received copies of this rank's block */
    size_t stage_cap; /* floats in each of stage and recv */
} mpi_impl;

/* Floats per collective call: bounds the staging memory (2 x 4 bytes x this) and keeps counts within int. */
enum { CHUNK_FLOATS = 1 << 24 };

static adept_status mpi_check(int rc, const char *op) {
    if (rc == MPI_SUCCESS) return ADEPT_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    return adept_fail(ADEPT_EIO, "dist (mpi): %s failed: %s", op, len ? msg : "unknown MPI error");
}

static int mpi_rank(const adept_comm *c) { return ((const mpi_impl *)c->impl)->rank; }
static int mpi_size(const adept_comm *c) { return ((const mpi_impl *)c->impl)->size; }

static adept_status ensure_stage(mpi_impl *p, size_t floats) {
    if (floats <= p->stage_cap) return ADEPT_OK;
    float *s = adept_alloc(floats * sizeof(float)), *r = adept_alloc(floats * sizeof(float));
    if (!s || !r) {
        adept_free(s), adept_free(r);
        return adept_fail(ADEPT_ENOMEM, "dist (mpi): out of memory for %zu MiB of all-reduce staging",
                          2 * floats * sizeof(float) >> 20);
    }
    adept_free(p->stage), adept_free(p->recv);
    p->stage = s, p->recv = r, p->stage_cap = floats;
    return ADEPT_OK;
}

/* The fixed-order sum of n host floats over the ranks, in place (n <= CHUNK_FLOATS). */
static adept_status reduce_chunk(mpi_impl *p, float *x, size_t n) {
    size_t N = (size_t)p->size, B = (n + N - 1) / N; /* block per rank; the last ones padded with zeros */
    ADEPT_TRY(ensure_stage(p, N * B));
    memcpy(p->stage, x, n * sizeof(float));
    memset(p->stage + n, 0, (N * B - n) * sizeof(float));
    ADEPT_TRY(mpi_check(MPI_Alltoall(p->stage, (int)B, MPI_FLOAT, p->recv, (int)B, MPI_FLOAT, p->comm),
                        "all_reduce (MPI_Alltoall)"));
    /* recv holds rank j's copy of this rank's block at j*B; the sum, in rank order, goes to recv[0..B) */
    for (size_t i = 0; i < B; i++) {
        float s = p->recv[i];
        for (size_t j = 1; j < N; j++) s += p->recv[j * B + i];
        p->recv[i] = s;
    }
    ADEPT_TRY(mpi_check(MPI_Allgather(p->recv, (int)B, MPI_FLOAT, p->stage, (int)B, MPI_FLOAT, p->comm),
                        "all_reduce (MPI_Allgather)"));
    memcpy(x, p->stage, n * sizeof(float));
    return ADEPT_OK;
}

/* A device slab staged through host memory for the duration of fn; a host slab as it is. */
static adept_status with_host(mpi_impl *p, const adept_backend *be, float *data, size_t n,
                              adept_status (*fn)(mpi_impl *, float *, size_t)) {
    if (be->device == ADEPT_CPU) return fn(p, data, n);
    float *host = adept_alloc(n * sizeof(float));
    if (!host) return adept_fail(ADEPT_ENOMEM, "dist (mpi): out of host memory to stage %zu MiB", n * sizeof(float) >> 20);
    adept_status st = be->to_host(host, data, n * sizeof(float));
    if (st == ADEPT_OK) st = fn(p, host, n);
    if (st == ADEPT_OK) st = be->to_device(data, host, n * sizeof(float));
    adept_free(host);
    return st;
}

/* the whole slab in chunks of at most CHUNK_FLOATS (bounded staging, int counts) */
static adept_status reduce_all(mpi_impl *p, float *x, size_t n) {
    adept_status st = ADEPT_OK;
    for (size_t off = 0; st == ADEPT_OK && off < n; off += CHUNK_FLOATS)
        st = reduce_chunk(p, x + off, n - off < CHUNK_FLOATS ? n - off : CHUNK_FLOATS);
    return st;
}

static adept_status mpi_reduce_f32(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    mpi_impl *p = c->impl;
    if (p->size == 1 || n == 0) return ADEPT_OK;
    return with_host(p, be, data, n, reduce_all);
}

/* ZeRO-1's reduce-scatter over the blocks of adept_comm_block, in rounds of at most CHUNK_FLOATS / N floats per
   block: round k moves offsets [k*C, k*C + C) of every block to its owner, which adds the N copies in rank order. */
static adept_status scatter_sum(mpi_impl *p, float *x, size_t n) {
    size_t N = (size_t)p->size, B = (n + N - 1) / N, C = CHUNK_FLOATS / N ? CHUNK_FLOATS / N : 1;
    size_t mylo, myhi;
    adept_comm_block(n, p->rank, p->size, &mylo, &myhi);
    ADEPT_TRY(ensure_stage(p, N * C));
    for (size_t k = 0; k < B; k += C) {
        size_t L = B - k < C ? B - k : C;
        for (size_t j = 0; j < N; j++) { /* the piece of block j, zero-padded past n */
            size_t lo = j * B + k;
            size_t have = lo >= n ? 0 : (n - lo < L ? n - lo : L);
            if (have) memcpy(p->stage + j * L, x + lo, have * sizeof(float));
            memset(p->stage + j * L + have, 0, (L - have) * sizeof(float));
        }
        ADEPT_TRY(mpi_check(MPI_Alltoall(p->stage, (int)L, MPI_FLOAT, p->recv, (int)L, MPI_FLOAT, p->comm),
                            "reduce_scatter (MPI_Alltoall)"));
        size_t at = mylo + k;
        for (size_t i = 0; i < L && at + i < myhi; i++) {
            float s = p->recv[i];
            for (size_t j = 1; j < N; j++) s += p->recv[j * L + i];
            x[at + i] = s;
        }
    }
    return ADEPT_OK;
}

/* ZeRO-1's all-gather: every block from its owner, in the same rounds. */
static adept_status gather_blocks(mpi_impl *p, float *x, size_t n) {
    size_t N = (size_t)p->size, B = (n + N - 1) / N, C = CHUNK_FLOATS / N ? CHUNK_FLOATS / N : 1;
    ADEPT_TRY(ensure_stage(p, N * C));
    for (size_t k = 0; k < B; k += C) {
        size_t L = B - k < C ? B - k : C;
        size_t lo = (size_t)p->rank * B + k, have = lo >= n ? 0 : (n - lo < L ? n - lo : L);
        if (have) memcpy(p->recv, x + lo, have * sizeof(float));
        memset(p->recv + have, 0, (L - have) * sizeof(float));
        ADEPT_TRY(mpi_check(MPI_Allgather(p->recv, (int)L, MPI_FLOAT, p->stage, (int)L, MPI_FLOAT, p->comm),
                            "all_gather (MPI_Allgather)"));
        for (size_t j = 0; j < N; j++) {
            size_t to = j * B + k, got = to >= n ? 0 : (n - to < L ? n - to : L);
            if (got) memcpy(x + to, p->stage + j * L, got * sizeof(float));
        }
    }
    return ADEPT_OK;
}

static adept_status mpi_reduce_scatter(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    mpi_impl *p = c->impl;
    if (p->size == 1 || n == 0) return ADEPT_OK;
    return with_host(p, be, data, n, scatter_sum);
}

static adept_status mpi_all_gather(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    mpi_impl *p = c->impl;
    if (p->size == 1 || n == 0) return ADEPT_OK;
    return with_host(p, be, data, n, gather_blocks);
}

static adept_status mpi_reduce_f64(adept_comm *c, double *host, size_t n) {
    mpi_impl *p = c->impl;
    if (p->size == 1 || n == 0) return ADEPT_OK;
    if (n > INT_MAX / (size_t)p->size) return adept_fail(ADEPT_EINVAL, "dist (mpi): %zu doubles is too many to reduce", n);
    double *all = adept_alloc(n * (size_t)p->size * sizeof(double));
    if (!all) return adept_fail(ADEPT_ENOMEM, "dist (mpi): out of memory");
    adept_status st = mpi_check(MPI_Allgather(host, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, p->comm),
                                "all_reduce (MPI_Allgather)");
    if (st == ADEPT_OK)
        for (size_t i = 0; i < n; i++) {
            double s = all[i];
            for (int j = 1; j < p->size; j++) s += all[(size_t)j * n + i];
            host[i] = s;
        }
    adept_free(all);
    return st;
}

static adept_status mpi_broadcast(adept_comm *c, void *host, size_t nbytes, int root) {
    mpi_impl *p = c->impl;
    if (root < 0 || root >= p->size)
        return adept_fail(ADEPT_EINVAL, "broadcast: root %d out of range (%d processes)", root, p->size);
    for (size_t off = 0; off < nbytes; off += INT_MAX / 2) {
        size_t k = nbytes - off < (size_t)INT_MAX / 2 ? nbytes - off : (size_t)INT_MAX / 2;
        ADEPT_TRY(mpi_check(MPI_Bcast((char *)host + off, (int)k, MPI_BYTE, root, p->comm), "broadcast (MPI_Bcast)"));
    }
    return ADEPT_OK;
}

static adept_status mpi_barrier(adept_comm *c) {
    return mpi_check(MPI_Barrier(((mpi_impl *)c->impl)->comm), "barrier (MPI_Barrier)");
}

static void mpi_abort(adept_comm *c, int code) {
    MPI_Abort(((mpi_impl *)c->impl)->comm, code);
    exit(code); /* not reached: MPI_Abort ends the job */
}

static void mpi_destroy(adept_comm *c) {
    mpi_impl *p = c->impl;
    adept_free(p->stage), adept_free(p->recv);
    free(p);
    free(c);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

static const adept_comm_ops mpi_ops = {"mpi", mpi_rank, mpi_size, mpi_reduce_f32, mpi_reduce_f64,
                                       mpi_broadcast, mpi_barrier, mpi_reduce_scatter, mpi_all_gather,
                                       mpi_abort, mpi_destroy, NULL, NULL}; /* no overlap for staged device slabs */

adept_status adept_comm_mpi_create(int *argc, char ***argv, adept_comm **out) {
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    /* serialized: the trainer's all-reduce thread (engine/train/grad_sync.c) calls MPI while the main thread
       does not; with less, every call stays on the main thread */
    if (!inited) ADEPT_TRY(mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread"));
    else MPI_Query_thread(&provided);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    adept_comm *c = calloc(1, sizeof *c);
    mpi_impl *p = calloc(1, sizeof *p);
    if (!c || !p) {
        free(c), free(p);
        return adept_fail(ADEPT_ENOMEM, "dist (mpi): out of memory");
    }
    p->comm = MPI_COMM_WORLD;
    adept_status st = mpi_check(MPI_Comm_rank(p->comm, &p->rank), "MPI_Comm_rank");
    if (st == ADEPT_OK) st = mpi_check(MPI_Comm_size(p->comm, &p->size), "MPI_Comm_size");
    if (st != ADEPT_OK) {
        free(c), free(p);
        return st;
    }
    c->ops = &mpi_ops, c->impl = p;
    c->concurrent = provided >= MPI_THREAD_SERIALIZED;
    *out = c;
    return ADEPT_OK;
}
