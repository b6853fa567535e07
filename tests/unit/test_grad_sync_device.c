/* The gradient all-reduce of a DEVICE slab overlapped with backward (engine/train/grad_sync.c): the buckets are
   queued on the communicator's side queue (adept_comm_ops.all_reduce_f32_start) as the backward pass announces
   each group's final gradient, with no communication thread; the CUDA path uses it with NCCL. Without a GPU the
   model runs on the protected-memory fake device (tests/support/fake_device.c) and the communicator is a stand-in
   for two identical ranks: every sum doubles its data (a device kernel, so the data never leaves the device).
   Checked: training with 256-byte buckets gives bitwise the losses and weights of one all-reduce after backward;
   the buckets cover the slab exactly once, from the top down, the first started while backward still ran; the
   finishing call comes once per step after the last bucket. For a Llama with every row trainable and a Qwen3
   with a tied head and its bottom frozen (the head's gradient lands in the embedding row, announced last). */
#include <stdlib.h>
#include <string.h>

#include "adept/backend.h"
#include "adept/dist.h"
#include "adept/model.h"
#include "adept/optim.h"
#include "adept/train.h"
#include "check.h"
#include "fake_device.h"

enum { MAX_STARTS = 4096, STEPS = 3 };

/* What the stand-in communicator saw. */
static struct {
    const float *slab;
    size_t slab_n;
    size_t lo[MAX_STARTS], hi[MAX_STARTS];
    long kernels_at[MAX_STARTS]; /* the fake device's kernel count when each bucket was started */
    int starts, finishes, wholes, bad_pointers;
    long kernels_at_finish;
} seen;

static long kernels(void) { return adept_fake_device_stats_now().kernel_calls; }

static int t_rank(const adept_comm *c) { (void)c; return 0; }
static int t_size(const adept_comm *c) { (void)c; return 2; }
static adept_status t_sum_f32(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    (void)c;
    seen.wholes++;
    be->scale(data, n, 2.0f);
    return ADEPT_OK;
}
static adept_status t_sum_f64(adept_comm *c, double *host, size_t n) {
    (void)c;
    for (size_t i = 0; i < n; i++) host[i] *= 2;
    return ADEPT_OK;
}
static adept_status t_broadcast(adept_comm *c, void *host, size_t nbytes, int root) {
    (void)c, (void)host, (void)nbytes, (void)root;
    return ADEPT_OK;
}
static adept_status t_barrier(adept_comm *c) { (void)c; return ADEPT_OK; }
static adept_status t_halves(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    (void)c, (void)be, (void)data, (void)n;
    return adept_fail(ADEPT_EINVAL, "not used by this test");
}
static void t_abort(adept_comm *c, int code) { (void)c, exit(code); }
static void t_destroy(adept_comm *c) { (void)c; }
static adept_status t_start(adept_comm *c, const adept_backend *be, float *data, size_t n) {
    (void)c;
    if (!adept_fake_device_owns(data) || !adept_fake_device_owns(data + n - 1)) seen.bad_pointers++;
    if (seen.starts < MAX_STARTS) {
        seen.lo[seen.starts] = (size_t)(data - seen.slab);
        seen.hi[seen.starts] = (size_t)(data - seen.slab) + n;
        seen.kernels_at[seen.starts] = kernels();
    }
    seen.starts++;
    ADEPT_TRY(be->comm_queue_wait_main());
    be->scale(data, n, 2.0f);
    return ADEPT_OK;
}
static adept_status t_finish(adept_comm *c, const adept_backend *be) {
    (void)c;
    seen.finishes++;
    seen.kernels_at_finish = kernels();
    return be->main_wait_comm_queue();
}

static const adept_comm_ops two_ops = {"two identical ranks", t_rank, t_size, t_sum_f32, t_sum_f64,
                                       t_broadcast, t_barrier, t_halves, t_halves, t_abort, t_destroy,
                                       t_start, t_finish};
static adept_comm two = {&two_ops, NULL, 0};

/* Trains a fresh model for STEPS steps with the given bucket size; the losses, and the weights on the host. */
static float *train(const adept_config *cfg, int freeze_below, size_t bucket_bytes, double *losses, size_t *n_out) {
    adept_model *m = NULL;
    CHECK_OK(adept_model_create_on(cfg, ADEPT_CUDA, 5, 0.3f, &m));
    if (!m) exit(1);
    for (size_t i = 0; freeze_below > 0 && i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        if (p->kind == ADEPT_UNIT_EMBED || (p->layer >= 0 && p->layer < freeze_below))
            CHECK_OK(adept_model_set_trainable(m, i, 0));
    }
    adept_adamw *opt = NULL;
    adept_adamw_config oc = adept_adamw_defaults();
    oc.lr = 3e-3;
    CHECK_OK(adept_adamw_new(m, &oc, &opt));
    enum { B = 2, T = 11, N = B * T };
    int32_t inputs[N], targets[N];
    adept_step_options o = {.lr_factor = 1.0, .clip = 1.0, .bucket_bytes = bucket_bytes};
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < N; i++) {
            inputs[i] = (i * 7 + step * 3 + 1) % cfg->vocab_size;
            targets[i] = i % 6 == 5 ? -1 : (i * 5 + step + 2) % cfg->vocab_size;
        }
        adept_batch b = {.B = B, .T = T, .inputs = inputs, .targets = targets};
        size_t n;
        seen.slab = adept_model_grad_slab(m, &n);
        seen.slab_n = n;
        int before = seen.starts;
        adept_step_result r;
        CHECK_OK(adept_train_step(m, opt, &two, &b, 1, &o, &r));
        losses[step] = r.loss;
        CHECK(r.comm_calls == (bucket_bytes ? seen.starts - before : 1));
    }
    size_t total = 0;
    for (size_t i = 0; i < adept_model_num_params(m); i++) total += adept_model_param(m, i)->numel;
    float *w = malloc(total * sizeof(float)), *at = w;
    const adept_backend *be = adept_backend_for(ADEPT_CUDA);
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        CHECK_OK(be->to_host(at, adept_tensor_data(p->value), p->numel * sizeof(float)));
        at += p->numel;
    }
    *n_out = total;
    adept_adamw_free(opt);
    adept_model_free(m);
    return w;
}

/* The buckets of one step: disjoint, started from the top of the slab down, covering it exactly; the first
   started before the step's last kernel of backward. */
static void check_buckets(int from, int to, size_t slab_n) {
    CHECK(to - from >= 2); /* 256-byte buckets: several per step */
    size_t expect_hi = slab_n;
    for (int k = from; k < to && k < MAX_STARTS; k++) {
        CHECK(seen.hi[k] == expect_hi); /* each bucket ends where the one before it began: no gap, no overlap */
        CHECK(seen.lo[k] < seen.hi[k]);
        expect_hi = seen.lo[k];
    }
    CHECK(expect_hi == 0);
}

static void compare(const char *label, adept_config cfg, int freeze_below) {
    printf("-- %s\n", label);
    CHECK_OK(adept_model_config_check(&cfg));
    double whole[STEPS], bucketed[STEPS];
    size_t n1 = 0, n2 = 0;
    memset(&seen, 0, sizeof seen);
    float *w1 = train(&cfg, freeze_below, 0, whole, &n1);
    CHECK(seen.wholes == STEPS && seen.starts == 0 && seen.finishes == 0);

    memset(&seen, 0, sizeof seen);
    float *w2 = train(&cfg, freeze_below, 256, bucketed, &n2);
    CHECK(seen.wholes == 0 && seen.finishes == STEPS && seen.bad_pointers == 0);
    CHECK(seen.starts % STEPS == 0 && seen.starts <= MAX_STARTS);
    int per_step = seen.starts / STEPS;
    size_t slab_n = seen.slab_n;
    CHECK(slab_n > 0);
    for (int s = 0; s < STEPS; s++) check_buckets(s * per_step, (s + 1) * per_step, slab_n);
    /* overlap: after the first bucket of the last step was started, backward kernels still ran */
    CHECK(seen.kernels_at[(STEPS - 1) * per_step] < seen.kernels_at[seen.starts - 1]);
    CHECK(seen.kernels_at[seen.starts - 1] <= seen.kernels_at_finish);

    CHECK(memcmp(whole, bucketed, sizeof whole) == 0);
    CHECK(n1 == n2 && memcmp(w1, w2, n1 * sizeof(float)) == 0);
    printf("losses %.9g %.9g %.9g, bitwise equal; %d buckets per step over %zu floats\n", bucketed[0], bucketed[1],
           bucketed[2], per_step, slab_n);
    free(w1), free(w2);
}

int main(void) {
    const adept_backend *fake = adept_fake_device();
    if (!fake) return 1;
    adept_backend_register(ADEPT_CUDA, fake);
    adept_config cfg;
    adept_model_config_default(&cfg);
    cfg.vocab_size = 48, cfg.hidden_size = 32, cfg.intermediate_size = 40, cfg.num_layers = 3;
    cfg.num_heads = 4, cfg.num_kv_heads = 2, cfg.max_position_embeddings = 64;
    compare("llama, every row trainable", cfg, 0);
    adept_config q3 = cfg;
    q3.arch = ADEPT_ARCH_QWEN3, q3.qk_norm = 1, q3.tie_word_embeddings = 1, q3.head_dim = 16;
    compare("qwen3, tied head, embedding and layer 0 frozen", q3, 1);
    adept_backend_register(ADEPT_CUDA, NULL);
    return check_summary();
}
