/* NCCL for GPU ranks, with the one GPU a test machine has: a one-rank NCCL communicator (adept_dist_nccl_wrap over
   the single communicator, NCCL opened with dlopen) reduces a device slab (a sum over one rank: the same bits),
   and three training steps of a device model through it equal the same steps through the single communicator
   bitwise; the overlapped form (a reduction queued on the backend's side stream) runs and orders. Skips (77) without a device, or when NCCL cannot be opened (ADEPT_NCCL_LIBRARY names the library). */
#include "adept/dist.h"
#include "adept/optim.h"
#include "adept/train.h"
#include "cuda_compare.h"
#include "model/model_internal.h"

static float *weights_back(adept_model *m, size_t *n_out) {
    size_t n = 0;
    for (size_t i = 0; i < adept_model_num_params(m); i++) n += adept_model_param(m, i)->numel;
    float *h = malloc(n * 4), *at = h;
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        CHECK_OK(m->be->to_host(at, adept_tensor_data(p->value), p->numel * 4));
        at += p->numel;
    }
    *n_out = n;
    return h;
}

static float *train3(adept_comm *comm, double losses[3], size_t *n) {
    adept_config cfg;
    adept_model_config_default(&cfg);
    cfg.vocab_size = 97, cfg.hidden_size = 64, cfg.intermediate_size = 96, cfg.num_layers = 2;
    cfg.num_heads = 4, cfg.num_kv_heads = 2, cfg.max_position_embeddings = 64;
    adept_model *m = NULL;
    CHECK_OK(adept_model_create_on(&cfg, ADEPT_CUDA, 3, 0.3f, &m));
    adept_adamw_config oc = adept_adamw_defaults();
    adept_adamw *o = NULL;
    CHECK_OK(adept_adamw_new(m, &oc, &o));
    enum { N = 2 * 24 };
    int32_t in[N], tg[N];
    adept_batch b = {.B = 2, .T = 24, .inputs = in, .targets = tg};
    adept_step_options so = {.lr_factor = 1.0, .clip = 1.0};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < N; i++) in[i] = (i * 5 + s) % 97, tg[i] = (i * 7 + 2 * s) % 97;
        adept_step_result r;
        CHECK_OK(adept_train_step(m, o, comm, &b, 1, &so, &r));
        losses[s] = r.loss;
    }
    float *w = weights_back(m, n);
    adept_adamw_free(o);
    adept_model_free(m);
    return w;
}

int main(void) {
    cuda_or_skip();
    adept_comm *nccl = NULL;
    if (adept_dist_nccl_wrap(adept_comm_single(), &nccl) != ADEPT_OK) {
        printf("skipped: %s\n", adept_last_error());
        return 77;
    }
    /* one device reduction first: it opens NCCL and creates the communicator */
    const size_t n = 100003;
    float *x = host_rand(n, 1), *d = dev_from(x, n * 4);
    if (nccl->ops->all_reduce_f32(nccl, cuda_be, d, n) != ADEPT_OK) {
        printf("skipped: %s\n", adept_last_error());
        return 77;
    }
    float *y = dev_back(d, n * 4);
    compare_bitwise("nccl all_reduce, 1 rank", y, x, n * 4);
    CHECK(strcmp(nccl->ops->name, "mpi+nccl") == 0 && adept_comm_size(nccl) == 1 && adept_comm_rank(nccl) == 0);
    /* the overlapped form (grad_sync.c on device slabs): the slab doubled by a kernel on the main stream, its two
       halves reduced on the side stream (each after the kernels queued before it), then the main stream made to
       wait for them; with one rank the sums are the doubled values. The ordering across ranks needs 2 GPUs. */
    CHECK(nccl->ops->all_reduce_f32_start && nccl->ops->all_reduce_f32_finish);
    CHECK(cuda_be->device != ADEPT_CUDA || cuda_be->comm_queue); /* the harness's dry run on the CPU has none */
    cuda_be->scale(d, n, 2.0f);
    CHECK_OK(nccl->ops->all_reduce_f32_start(nccl, cuda_be, d + n / 2, n - n / 2));
    CHECK_OK(nccl->ops->all_reduce_f32_start(nccl, cuda_be, d, n / 2));
    CHECK_OK(nccl->ops->all_reduce_f32_finish(nccl, cuda_be));
    cuda_be->scale(d, n, 0.5f);
    CHECK_OK(cuda_be->synchronize());
    float *z = dev_back(d, n * 4);
    compare_bitwise("nccl all_reduce_f32_start/finish on a side stream, 1 rank", z, x, n * 4);
    free(z);
    double ls[3], ln[3];
    size_t ns = 0, nn = 0;
    float *ws = train3(adept_comm_single(), ls, &ns), *wn = train3(nccl, ln, &nn);
    CHECK(ns == nn);
    compare_bitwise("nccl train_step losses, 3 steps", ln, ls, sizeof ls);
    compare_bitwise("nccl train_step weights, 3 steps", wn, ws, ns * 4);
    free(x), free(y), free(ws), free(wn);
    cuda_be->free(d);
    nccl->ops->destroy(nccl);
    return check_summary();
}
