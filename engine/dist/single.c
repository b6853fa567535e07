/* The single-process communicator: rank 0 of 1, where every collective leaves the data as it is. */
#include "adept/dist.h"

#include <stdlib.h>

static int single_rank(const adept_comm *c) { (void)c; return 0; }
static int single_size(const adept_comm *c) { (void)c; return 1; }

static adept_status single_reduce_f32(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    (void)c, (void)be, (void)data, (void)n;
    return ADEPT_OK;
}

static adept_status single_reduce_f64(adept_comm *c, double *host, size_t n) {
    (void)c, (void)host, (void)n;
    return ADEPT_OK;
}

static adept_status single_broadcast(adept_comm *c, void *host, size_t nbytes, int root) {
    (void)c, (void)host, (void)nbytes;
    if (root != 0) return adept_fail(ADEPT_EINVAL, "broadcast: root %d out of range (1 process)", root);
    return ADEPT_OK;
}

static adept_status single_barrier(adept_comm *c) { (void)c; return ADEPT_OK; }
static void single_abort(adept_comm *c, int code) { (void)c; exit(code); }
/* one rank owns the whole slab: both halves of the all-reduce leave it as it is */
static adept_status single_halves(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    (void)c, (void)be, (void)data, (void)n;
    return ADEPT_OK;
}
static void single_destroy(adept_comm *c) { (void)c; }

static const adept_comm_ops single_ops = {"single", single_rank, single_size, single_reduce_f32, single_reduce_f64,
                                          single_broadcast, single_barrier, single_halves, single_halves,
                                          single_abort, single_destroy, NULL, NULL};
static adept_comm single = {&single_ops, 0, 0};
static adept_comm *world = &single;

adept_comm *adept_comm_single(void) { return &single; }
adept_comm *adept_comm_world(void) { return world; }
void adept_comm_set_world(adept_comm *c) { world = c ? c : &single; }
