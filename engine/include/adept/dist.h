/* The communicator: what data parallelism needs from a process group — rank, world size, an in-place sum
   all-reduce of a gradient slab and of host scalars, broadcast and barrier. The trainer (engine/train/)
   calls only this interface; a single process uses the built-in implementation (every collective is the
   identity), and MPI (CPU) or NCCL (CUDA) implementations plug in behind the same table. */
#ifndef ADEPT_DIST_H
#define ADEPT_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "adept/backend.h"
#include "adept/error.h"

typedef struct adept_comm adept_comm;

typedef struct adept_comm_ops {
    const char *name; /* "single", "mpi", "nccl" */
    int (*rank)(const adept_comm *c);
    int (*world_size)(const adept_comm *c);
    /* Sum over ranks, in place, of n floats in the memory of backend `be` (a gradient slab). Deterministic:
       the same inputs give the same bits on every rank and every run. */
    adept_status (*all_reduce_f32)(adept_comm *c, const adept_backend *be, float *data, size_t n);
    /* Sum over ranks, in place, of n host doubles (losses, token counts). */
    adept_status (*all_reduce_f64)(adept_comm *c, double *host, size_t n);
    /* Copies nbytes of host memory from rank `root` to every rank. */
    adept_status (*broadcast)(adept_comm *c, void *host, size_t nbytes, int root);
    adept_status (*barrier)(adept_comm *c);
    /* ZeRO-1's halves of an all-reduce over the blocks of adept_comm_block: reduce_scatter leaves in this rank's
       block of data the sum over ranks (in rank order; the rest of data is left undefined); all_gather fills
       every block of data from its owner. */
    adept_status (*reduce_scatter_f32)(adept_comm *c, const adept_backend *be, float *data, size_t n);
    adept_status (*all_gather_f32)(adept_comm *c, const adept_backend *be, float *data, size_t n);
    /* Ends every process of the job now (an error on this rank must not leave the others waiting in a
       collective); the single communicator exits this process. Does not return. */
    void (*abort)(adept_comm *c, int code);
    void (*destroy)(adept_comm *c);
    /* OPTIONAL (NULL: a device slab is reduced whole after backward, by all_reduce_f32). The sum of all_reduce_f32
       over n floats of device memory, queued behind the work backend `be` has queued so far and NOT waited for:
       it returns at once and the backend's next kernels may run beside it (on be->comm_queue). Every rank starts
       the same ranges in the same order. all_reduce_f32_finish then orders the backend's later work after every
       reduction started (the optimizer reads the sums) and reports what failed. */
    adept_status (*all_reduce_f32_start)(adept_comm *c, const adept_backend *be, float *data, size_t n);
    adept_status (*all_reduce_f32_finish)(adept_comm *c, const adept_backend *be);
} adept_comm_ops;

struct adept_comm {
    const adept_comm_ops *ops;
    void *impl;
    /* all_reduce_f32 may run on a helper thread while the calling thread makes no other call (MPI initialised
       with MPI_THREAD_SERIALIZED): the trainer then overlaps the gradient all-reduce with backward */
    int concurrent;
};

/* The single-process communicator (a static object; destroy is a no-op). */
adept_comm *adept_comm_single(void);
/* The process's communicator: the single one unless another was installed (an MPI launch installs its own). */
adept_comm *adept_comm_world(void);
void adept_comm_set_world(adept_comm *c);

/* Joins the process group a launcher started: when the environment comes from mpirun/mpiexec (Open MPI's
   OMPI_COMM_WORLD_SIZE, PMI's PMI_SIZE) or from srun (SLURM_STEP_ID with SLURM_NTASKS), it initialises MPI and
   installs its communicator as the world; otherwise the world stays the single process. Fails with a message
   when the environment asks for a process group and this build has no MPI. Call once, before anything else. */
adept_status adept_dist_init(int *argc, char ***argv);
/* Leaves the process group (MPI_Finalize) and restores the single communicator. */
void adept_dist_finalize(void);
/* Whether this build carries the MPI communicator. */
int adept_dist_mpi_built(void);
/* A communicator that reduces CUDA-resident slabs with NCCL (bootstrapped over `host`, which must outlive it)
   and sends every other operation to `host`; ADEPT_EUNSUPPORTED in builds without NCCL. adept_dist_init installs
   one over MPI for multi-process runs; tests wrap the single communicator to run NCCL with one rank. */
adept_status adept_dist_nccl_wrap(adept_comm *host, adept_comm **out);

/* The block [*lo, *hi) of n elements that `rank` of `world` owns in reduce_scatter / all_gather and in a sharded
   optimizer: blocks of ceil(n / world), the last ones shorter or empty. */
static inline void adept_comm_block(size_t n, int rank, int world, size_t *lo, size_t *hi) {
    size_t b = world > 0 ? (n + (size_t)world - 1) / (size_t)world : n;
    *lo = (size_t)rank * b < n ? (size_t)rank * b : n;
    *hi = *lo + b < n ? *lo + b : n;
}

static inline int adept_comm_rank(const adept_comm *c) { return c->ops->rank(c); }
static inline int adept_comm_size(const adept_comm *c) { return c->ops->world_size(c); }

#endif
