/* The gradient all-reduce overlapped with the backward pass (engine/train/grad_sync.c): as the model announces
   that a group of rows has its final gradient (adept_model_set_grad_hook), contiguous ranges of the gradient
   slab are gathered into buckets of about bucket_bytes and reduced by a communication thread while the
   backward pass goes on below them. The communicator's sum has a fixed order per element whatever the range
   (every element is the rank-ordered sum of its copies), so the result is bitwise that of one all-reduce of
   the whole slab after backward. A host slab is reduced by a communication thread, where the communicator
   allows one (adept_comm.concurrent); a device slab by reductions queued on the device's side queue
   (adept_comm_ops.all_reduce_f32_start, adept_backend.comm_queue), with no thread. */
#ifndef ADEPT_TRAIN_GRAD_SYNC_H
#define ADEPT_TRAIN_GRAD_SYNC_H

#include <stddef.h>

#include "adept/dist.h"
#include "adept/model.h"

typedef struct adept_grad_sync adept_grad_sync;

/* Whether the all-reduce of m's slab over comm can overlap backward: more than one rank, and a host slab with a
   communicator that allows a helper thread, or a device slab with a communicator and backend that queue
   reductions on a side queue. */
int adept_grad_sync_possible(adept_model *m, const adept_comm *comm);

/* Starts the thread and sets the model's hook; the caller then runs the step's last forward/backward. *out stays
   NULL (and ADEPT_OK) when the slab's layout does not put the groups in order: the caller reduces after backward. */
adept_status adept_grad_sync_begin(adept_model *m, adept_comm *comm, size_t bucket_bytes, adept_grad_sync **out);
/* Reduces whatever was not announced, waits for the thread, removes the hook and frees s. comm_seconds: time the
   thread spent in the all-reduce; wait_seconds: time this thread waited for it after backward (the exposed
   part); calls: the all-reduce calls made (the buckets). For a device slab both times are the host's (queueing
   the reductions, and the final ordering call): the device's own time in them is not measured. Returns the first error of the thread (its message copied here). */
adept_status adept_grad_sync_end(adept_grad_sync *s, double *comm_seconds, double *wait_seconds, int *calls);

#endif
