/* Bucketed gradient all-reduce overlapping the backward pass (see grad_sync.h). The backward pass announces
   groups in decreasing slab order (the rows after the layers, the layers from the top down, the embeddings),
   so a bucket grows downwards from its first group and is submitted once it spans bucket_bytes. Every slab
   element is reduced exactly once: end() reduces the parts no announcement covered.
   Two ways to submit. A host slab goes to a communication thread, which calls the blocking all_reduce_f32 while
   this thread goes on with backward. A device slab is started on the communicator's side queue
   (all_reduce_f32_start): the call only queues the reduction behind the kernels queued so far, so no thread is
   needed, and the device runs it beside the backward kernels queued next. */
#include "train/grad_sync.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/log.h"

enum { MAX_PENDING = 64 }; /* ranges queued at once; the backward waits if the thread is this far behind */

typedef struct range { size_t lo, hi; } range;

struct adept_grad_sync {
    adept_model *m;
    adept_comm *comm;
    const adept_backend *be;
    float *slab;
    size_t n, bucket;       /* slab floats, bucket floats */
    unsigned char *done;    /* [L + 2] group announced (index group + 1) */
    size_t *glo, *ghi;      /* [L + 2] each group's slab range (adept_model_grad_group_range) */
    int L;
    size_t open_lo, open_hi; /* the bucket being gathered ([lo, hi), empty when lo == hi) */
    size_t reduced_lo;       /* everything in [reduced_lo, n) has been queued */
    int async;               /* device slab: all_reduce_f32_start from this thread, no communication thread */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    range queue[MAX_PENDING];
    int head, count, closing;
    adept_status error;
    char message[512];
    double comm_seconds;
    int calls;
};

static void record_error(adept_grad_sync *s, adept_status st) {
    if (st == ADEPT_OK || s->error != ADEPT_OK) return;
    s->error = st;
    snprintf(s->message, sizeof s->message, "%s", adept_last_error()); /* the message is thread-local */
}

static void *comm_main(void *arg) {
    adept_grad_sync *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->count == 0 && !s->closing) pthread_cond_wait(&s->cv, &s->mu);
        if (s->count == 0 && s->closing) break;
        range r = s->queue[s->head];
        pthread_mutex_unlock(&s->mu);
        adept_status st = ADEPT_OK;
        double t0 = adept_now();
        if (s->error == ADEPT_OK) st = s->comm->ops->all_reduce_f32(s->comm, s->be, s->slab + r.lo, r.hi - r.lo);
        double dt = adept_now() - t0;
        pthread_mutex_lock(&s->mu);
        s->comm_seconds += dt;
        s->calls++;
        record_error(s, st);
        s->head = (s->head + 1) % MAX_PENDING;
        s->count--;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void submit(adept_grad_sync *s, size_t lo, size_t hi) {
    if (hi <= lo) return;
    if (s->async) { /* queued on the device's side queue: the call returns without waiting for the reduction */
        if (s->error != ADEPT_OK) return;
        double t0 = adept_now();
        record_error(s, s->comm->ops->all_reduce_f32_start(s->comm, s->be, s->slab + lo, hi - lo));
        s->comm_seconds += adept_now() - t0;
        s->calls++;
        return;
    }
    pthread_mutex_lock(&s->mu);
    while (s->count == MAX_PENDING) pthread_cond_wait(&s->cv, &s->mu);
    s->queue[(s->head + s->count) % MAX_PENDING] = (range){lo, hi};
    s->count++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Submits the open bucket, extended up to what is already queued so that no gap (padding between
   rows, groups without rows) is left unreduced. */
static void flush(adept_grad_sync *s) {
    if (s->open_hi <= s->open_lo) return;
    submit(s, s->open_lo, s->reduced_lo);
    s->reduced_lo = s->open_lo;
    s->open_hi = s->open_lo;
}

static void on_ready(void *ctx, int group) {
    adept_grad_sync *s = ctx;
    if (group < -1 || group > s->L || s->done[group + 1]) return;
    s->done[group + 1] = 1;
    size_t lo = s->glo[group + 1], hi = s->ghi[group + 1];
    if (hi <= lo || hi > s->reduced_lo) return; /* no rows; or (never expected) out of order: left to end() */
    if (s->open_hi <= s->open_lo) s->open_hi = hi;
    s->open_lo = lo;
    if (s->reduced_lo - s->open_lo >= s->bucket) flush(s);
}

static void sync_free(adept_grad_sync *s) {
    if (!s) return;
    free(s->done), free(s->glo), free(s->ghi), free(s);
}

int adept_grad_sync_possible(adept_model *m, const adept_comm *comm) {
    if (adept_comm_size(comm) <= 1) return 0;
    if (adept_model_device(m) == ADEPT_CPU) return comm->concurrent;
    const adept_backend *be = adept_model_backend(m);
    return comm->ops->all_reduce_f32_start && comm->ops->all_reduce_f32_finish && be->comm_queue &&
           be->comm_queue_wait_main && be->main_wait_comm_queue;
}

adept_status adept_grad_sync_begin(adept_model *m, adept_comm *comm, size_t bucket_bytes, adept_grad_sync **out) {
    *out = NULL;
    int L = adept_model_num_layers(m);
    adept_grad_sync *s = calloc(1, sizeof *s);
    if (s) {
        s->done = calloc((size_t)L + 2, 1);
        s->glo = calloc((size_t)L + 2, sizeof *s->glo);
        s->ghi = calloc((size_t)L + 2, sizeof *s->ghi);
    }
    if (!s || !s->done || !s->glo || !s->ghi) {
        sync_free(s);
        return adept_fail(ADEPT_ENOMEM, "train_step: out of memory for the overlapped all-reduce");
    }
    /* the groups must lie in the slab in group order, each range below the next group's: then the backward
       pass announces them from the top of the slab down and a bucket only ever grows downwards. Any other
       layout (none the engine makes) gets no overlap: *out stays NULL and the caller reduces after backward. */
    size_t floor_hi = 0;
    for (int g = -1; g <= L; g++) {
        adept_model_grad_group_range(m, g, &s->glo[g + 1], &s->ghi[g + 1]);
        if (s->ghi[g + 1] <= s->glo[g + 1]) continue;
        if (s->glo[g + 1] < floor_hi) {
            sync_free(s);
            return ADEPT_OK;
        }
        floor_hi = s->ghi[g + 1];
    }
    s->m = m, s->comm = comm, s->be = adept_model_backend(m), s->L = L;
    s->slab = adept_model_grad_slab(m, &s->n);
    s->bucket = bucket_bytes / sizeof(float) ? bucket_bytes / sizeof(float) : 1;
    s->reduced_lo = s->n;
    s->async = adept_model_device(m) != ADEPT_CPU;
    if (!s->async) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        if (pthread_create(&s->thread, NULL, comm_main, s) != 0) {
            pthread_mutex_destroy(&s->mu), pthread_cond_destroy(&s->cv);
            sync_free(s);
            return adept_fail(ADEPT_EIO, "train_step: cannot start the all-reduce thread");
        }
    }
    adept_model_set_grad_hook(m, on_ready, s);
    *out = s;
    return ADEPT_OK;
}

adept_status adept_grad_sync_end(adept_grad_sync *s, double *comm_seconds, double *wait_seconds, int *calls) {
    adept_model_set_grad_hook(s->m, NULL, NULL);
    double t0 = adept_now();
    if (s->open_hi > s->open_lo) flush(s);
    submit(s, 0, s->reduced_lo); /* what no announcement covered: the slab below the last bucket */
    if (s->async) {
        /* the optimizer's kernels, queued next on the main queue, run after the sums */
        record_error(s, s->comm->ops->all_reduce_f32_finish(s->comm, s->be));
    } else {
        pthread_mutex_lock(&s->mu);
        s->closing = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    if (wait_seconds) *wait_seconds = adept_now() - t0;
    if (comm_seconds) *comm_seconds = s->comm_seconds;
    if (calls) *calls = s->calls;
    adept_status st = s->error;
    if (st != ADEPT_OK) adept_fail(st, "%s", s->message);
    if (!s->async) pthread_mutex_destroy(&s->mu), pthread_cond_destroy(&s->cv);
    sync_free(s);
    return st;
}
