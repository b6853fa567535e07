/* One optimizer step of the trainer, in C: forward and backward over a group of micro-batches with the exact
   token-weighted gradient scale, the gradient all-reduce through the communicator, the global loss and
   token count, the global gradient norm, clipping and the AdamW update. lua/adept/train.lua calls it once
   per step; data parallelism and devices change what runs under it, not the loop above it. */
#ifndef ADEPT_TRAIN_H
#define ADEPT_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "adept/dist.h"
#include "adept/model.h"
#include "adept/optim.h"

typedef struct adept_step_options {
    double lr_factor; /* the schedule's factor for this step */
    double clip;      /* max gradient norm; <= 0: no clipping (the norm is still measured) */
    /* Under several processes: the gradient all-reduce runs in buckets of this many bytes while the last
       micro-batch's backward goes on (engine/train/grad_sync.c: a helper thread for a host slab, the device's
       side queue for a device slab), when the communicator allows it and the slab spans more than one bucket;
       0: one all-reduce after backward. The result is bitwise the same either way with 2 ranks (and always
       over MPI, which adds in rank order). */
    size_t bucket_bytes;
} adept_step_options;

typedef struct adept_step_result {
    double loss;        /* global token-weighted mean NLL of the step */
    int64_t n_tokens;   /* global counted targets */
    double grad_norm;   /* global norm before clipping */
    int nonfinite;      /* the loss or the gradient norm was not finite: gradients zeroed, no update */
    double comm_seconds; /* wall time in the gradient all-reduce (0 in one process) */
    double comm_wait_seconds; /* of which the step waited for after backward (= comm_seconds without overlap) */
    int comm_calls;      /* gradient all-reduce calls: 1, or the buckets of an overlapped all-reduce */
    int64_t comm_bytes;  /* bytes of the gradient slab all-reduced (0 in one process): ADEPT's is the copies' */
    char reason[256];   /* why, naming the tensor when one gradient is the cause */
} adept_step_result;

/* opt must have been built for m. comm NULL means adept_comm_world(). Micro-batches without any counted
   target are allowed as long as the step (over every rank) has one; a step with none is an error
   ("no target tokens"). */
adept_status adept_train_step(adept_model *m, adept_adamw *opt, adept_comm *comm, const adept_batch *mbs,
                              size_t n_mb, const adept_step_options *o, adept_step_result *r);

#endif
