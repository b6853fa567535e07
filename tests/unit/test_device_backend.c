/* The model path on a fake device: a test backend wraps the CPU one with a separate "device" memory, an mmap'd
   arena kept PROT_NONE except while one of its entries runs (each entry unprotects, calls the CPU kernel and
   protects again). A host read or write of device memory anywhere in engine/model or engine/adapt faults, and
   every pointer a kernel receives must lie in the arena. A tiny model (weights, gradients, activations, KV cache
   all on the device) runs forward, forward_backward, hidden_states, generate, generate_batch, mask_out and block
   influence, and must agree BITWISE with the same model on the CPU backend: both run the same CPU kernels on the
   same inputs with the same thread count, so any difference means the model computed something outside the seam. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adept/adapt.h"
#include "adept/backend.h"
#include "adept/device.h"
#include "adept/ops.h"
#include "check.h"
#include "fake_device.h"
#include "model/model_internal.h"

/* The device: tests/support/fake_device.c (also the "cuda" backend of the Lua test host). */
static const adept_backend *cpu, *fake;

static long kernel_calls(void) { return adept_fake_device_stats_now().kernel_calls; }

/* Every required entry of both tables is filled: a NULL one would crash the model on the first device that lacks
   it, and an entry added to adept_backend without a wrapper in tests/support/fake_device.c fails this check. The
   fields from `alloc` up to the tensor ops (`unary` on) are required entries (function pointers); the fake
   device, like the CUDA one, has no tensor ops of its own: they run staged through the host. */
static void test_table_complete(void) {
    CHECK(fake->unary == NULL && fake->tensor_copy == NULL); /* so the staged path is what the tests exercise */
    const void *const *slot = (const void *const *)&fake->alloc;
    const void *const *end = (const void *const *)&fake->unary;
    const void *const *cslot = (const void *const *)&cpu->alloc;
    for (; slot < end; slot++, cslot++) {
        CHECK(*slot != NULL);
        CHECK(*cslot != NULL);
    }
}

/* A model created on a device (its slabs allocated by that device's backend), with the embedding and the
   layers below freeze_below frozen when freeze_below > 0 (the backward pass then stops early). */
static adept_model *model_on(adept_device device, const adept_config *cfg, uint64_t seed, int freeze_below) {
    adept_model *m = NULL;
    CHECK_OK(adept_model_create_on(cfg, device, seed, 0.3f, &m));
    if (!m) exit(1);
    for (size_t i = 0; freeze_below > 0 && i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        if (p->kind == ADEPT_UNIT_EMBED || (p->layer >= 0 && p->layer < freeze_below))
            CHECK_OK(adept_model_set_trainable(m, i, 0));
    }
    return m;
}

static adept_model *model_on_cpu(const adept_config *cfg, uint64_t seed, int freeze_below) {
    adept_model *m = model_on(ADEPT_CPU, cfg, seed, freeze_below);
    CHECK(m->be == adept_backend_cpu());
    return m;
}

static adept_model *model_on_device(const adept_config *cfg, uint64_t seed, int freeze_below) {
    adept_model *m = model_on(ADEPT_CUDA, cfg, seed, freeze_below);
    CHECK(m->be == fake);
    return m;
}

/* ---- the comparisons ---- */
static int same_bits(const void *a, const void *b, size_t nbytes) { return memcmp(a, b, nbytes) == 0; }

static void compare_grads(adept_model *cm, adept_model *dm) {
    size_t differ = 0, with_grad = 0;
    for (size_t i = 0; i < adept_model_num_params(cm); i++) {
        adept_param *pc = adept_model_param(cm, i), *pd = adept_model_param(dm, i);
        CHECK(!pc->grad == !pd->grad);
        if (!pc->grad || !pd->grad) continue;
        size_t nbytes = adept_tensor_nbytes(pc->grad);
        float *host = malloc(nbytes + 1);
        CHECK_OK(fake->to_host(host, adept_tensor_data(pd->grad), nbytes));
        with_grad++;
        if (!same_bits(host, adept_tensor_data(pc->grad), nbytes)) {
            differ++;
            fprintf(stderr, "gradient of %s differs between the cpu and the test device\n", pc->name);
        }
        free(host);
    }
    CHECK(with_grad > 0);
    CHECK(differ == 0);
}

static void compare_model(const char *label, adept_config cfg, int freeze_below, int head_rows) {
    printf("-- %s\n", label);
    CHECK_OK(adept_model_config_check(&cfg));
    adept_model *cm = model_on_cpu(&cfg, 7, freeze_below), *dm = model_on_device(&cfg, 7, freeze_below);
    cm->head_rows_override = dm->head_rows_override = head_rows; /* the classifier in chunks of that many rows */
    enum { B = 2, T = 9, N = B * T };
    int32_t inputs[N], targets[N];
    for (int i = 0; i < N; i++) {
        inputs[i] = (i * 7 + 3) % cfg.vocab_size;
        targets[i] = i % 5 == 4 ? -1 : (i * 11 + 1) % cfg.vocab_size; /* some ignored positions */
    }
    adept_batch b = {.B = B, .T = T, .inputs = inputs, .targets = targets};
    size_t V = (size_t)cfg.vocab_size, C = (size_t)cfg.hidden_size, L = (size_t)cfg.num_layers;

    /* forward: loss and logits */
    float *lc = malloc(N * V * sizeof(float)), *ld = malloc(N * V * sizeof(float));
    double nc = 0, nd = -1;
    int64_t tc = 0, td = -1;
    long calls0 = kernel_calls();
    CHECK_OK(adept_model_forward(cm, &b, &nc, &tc, lc));
    CHECK_OK(adept_model_forward(dm, &b, &nd, &td, ld));
    CHECK(kernel_calls() > calls0); /* the model ran on the test device */
    CHECK(adept_fake_device_owns(dm->acts.block) && dm->acts.be == fake);
    CHECK(tc == td && tc > 0);
    CHECK(nc == nd && nc > 0);
    CHECK(same_bits(lc, ld, N * V * sizeof(float)));
    printf("forward: nll %.9g over %lld tokens on both\n", nd, (long long)td);

    /* forward_backward twice (gradients accumulate), then every gradient */
    for (int rep = 0; rep < 2; rep++) {
        CHECK_OK(adept_model_forward_backward(cm, &b, 1.0f / (float)tc, &nc, &tc));
        CHECK_OK(adept_model_forward_backward(dm, &b, 1.0f / (float)tc, &nd, &td));
        CHECK(nc == nd && tc == td);
    }
    compare_grads(cm, dm);

    /* hidden states */
    size_t nh = (L + 1) * N * C;
    float *hc = malloc(nh * sizeof(float)), *hd = malloc(nh * sizeof(float));
    CHECK_OK(adept_model_hidden_states(cm, &b, hc));
    CHECK_OK(adept_model_hidden_states(dm, &b, hd));
    CHECK(same_bits(hc, hd, nh * sizeof(float)));

    /* mask-out (one layer skipped beforehand, so a skipped layer is covered) and block influence */
    double bc, bd, sc[8], sd[8], ic[8], id[8];
    int64_t ec, ed, vc, vd;
    CHECK_OK(adept_model_set_skip(cm, 1, 1));
    CHECK_OK(adept_model_set_skip(dm, 1, 1));
    CHECK_OK(adept_model_mask_out(cm, &b, &bc, sc, &tc, &ec, &vc));
    CHECK_OK(adept_model_mask_out(dm, &b, &bd, sd, &td, &ed, &vd));
    CHECK(bc == bd && ec == ed && vc == vd);
    CHECK(same_bits(sc, sd, L * sizeof(double)));
    CHECK_OK(adept_model_set_skip(cm, 1, 0));
    CHECK_OK(adept_model_set_skip(dm, 1, 0));
    CHECK_OK(adept_model_block_influence(cm, &b, ic, &tc));
    CHECK_OK(adept_model_block_influence(dm, &b, id, &td));
    CHECK(tc == td && same_bits(ic, id, L * sizeof(double)));
    CHECK(ic[0] > 0); /* a random layer changes its input */

    /* generation: greedy and seeded sampling */
    int32_t prompt[3] = {1, 5, 9}, gc[12], gd[12];
    int nc_out = -1, nd_out = -2;
    CHECK_OK(adept_model_generate(cm, prompt, 3, 12, 0.0f, 0, 0, -1, gc, &nc_out));
    CHECK_OK(adept_model_generate(dm, prompt, 3, 12, 0.0f, 0, 0, -1, gd, &nd_out));
    CHECK(nc_out == 12 && nd_out == 12 && same_bits(gc, gd, sizeof gc));
    CHECK_OK(adept_model_generate(cm, prompt, 3, 12, 0.9f, 5, 42, -1, gc, &nc_out));
    CHECK_OK(adept_model_generate(dm, prompt, 3, 12, 0.9f, 5, 42, -1, gd, &nd_out));
    CHECK(nc_out == nd_out && same_bits(gc, gd, (size_t)nd_out * sizeof(int32_t)));
    /* batched greedy generation: two prompts of different lengths, the same tokens on both devices */
    int32_t prompts[5] = {1, 5, 9, 2, 7}, bc_out[2 * 10], bd_out[2 * 10];
    int lens[2] = {3, 2}, nbc[2], nbd[2];
    adept_generate_batch_opts go = {.max_tokens = 10, .stop_id = -1};
    CHECK_OK(adept_model_generate_batch(cm, prompts, lens, 2, &go, bc_out, nbc));
    CHECK_OK(adept_model_generate_batch(dm, prompts, lens, 2, &go, bd_out, nbd));
    CHECK(nbc[0] == 10 && nbd[0] == 10 && nbc[1] == 10 && nbd[1] == 10 && same_bits(bc_out, bd_out, sizeof bc_out));
    CHECK_OK(adept_model_generate(cm, prompt, 3, 10, 0.0f, 0, 0, -1, gc, &nc_out));
    CHECK(same_bits(bc_out, gc, 10 * sizeof(int32_t)));

    free(lc), free(ld), free(hc), free(hd);
    adept_model_free(cm);
    adept_model_free(dm);
}

/* The guard works: a host read of device memory outside an entry kills the reader. */
static void test_guard_faults(void) {
    float *d = fake->alloc(16);
    float one = 1;
    CHECK(d != NULL);
    CHECK_OK(fake->to_device(d, &one, sizeof one));
    printf("guard check: a child process reads device memory from the host; its fault message below is expected\n");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        volatile float x = d[0];
        (void)x;
        _exit(0); /* not reached when the arena is protected */
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    float back = 0;
    CHECK_OK(fake->to_host(&back, d, sizeof back));
    CHECK(back == 1);
    fake->free(d);
}

/* The allocator reuses freed blocks (first fit, merged neighbours) and hands them out zeroed again. */
static void test_allocator(void) {
    adept_fake_device_stats s0 = adept_fake_device_stats_now();
    float *a = fake->alloc(10000), *b = fake->alloc(100), *c = fake->alloc(5000);
    CHECK(a && b && c && adept_fake_device_owns(a) && adept_fake_device_owns(c));
    float ones[2500];
    for (int i = 0; i < 2500; i++) ones[i] = 1;
    CHECK_OK(fake->to_device(a, ones, sizeof ones));
    fake->free(a);
    fake->free(b); /* merges with a's range */
    float *d = fake->alloc(12000); /* fits the merged range, which starts at the lower of the two */
    CHECK(d == (a < b ? a : b));
    float back[2500];
    CHECK_OK(fake->to_host(back, d, sizeof back));
    int zero = 1;
    for (int i = 0; i < 2500; i++) zero &= back[i] == 0;
    CHECK(zero);
    fake->free(c);
    fake->free(d);
    adept_fake_device_stats s1 = adept_fake_device_stats_now();
    CHECK(s1.live_blocks == s0.live_blocks && s1.live_bytes == s0.live_bytes);
    CHECK(s1.foreign_ptrs == s0.foreign_ptrs);
}

/* Tensors on the device (adept/device.h) and the staged ops table: copies both ways, ranged reads and writes,
   and ops on device tensors giving device tensors bitwise equal to the CPU's. */
static void test_device_tensors(void) {
    int64_t shape[2] = {3, 5};
    adept_tensor *h = NULL, *d = NULL, *back = NULL;
    CHECK_OK(adept_tensor_new(ADEPT_F32, 2, shape, &h));
    for (int i = 0; i < 15; i++) adept_tensor_f32(h)[i] = (float)(i - 7) * 0.37f;
    CHECK_OK(adept_tensor_copy_to(h, ADEPT_CUDA, &d));
    CHECK(d && adept_tensor_device(d) == ADEPT_CUDA && adept_fake_device_owns(adept_tensor_data(d)));
    CHECK_OK(adept_tensor_copy_to(d, ADEPT_CPU, &back));
    CHECK(back && !memcmp(adept_tensor_data(back), adept_tensor_data(h), 15 * sizeof(float)));
    float x = 42;
    CHECK_OK(adept_tensor_write(d, 4 * sizeof(float), &x, sizeof x));
    float y = 0;
    CHECK_OK(adept_tensor_read(d, 4 * sizeof(float), &y, sizeof y));
    CHECK(y == 42);
    CHECK_FAILS(adept_tensor_read(d, 15 * sizeof(float), &y, sizeof y), ADEPT_EINVAL); /* past the end */
    CHECK_OK(adept_tensor_write(d, 4 * sizeof(float), adept_tensor_f32(h) + 4, sizeof(float)));
    /* ops: a device result, bitwise the CPU's */
    adept_tensor *oc = NULL, *od = NULL, *odh = NULL;
    CHECK_OK(adept_ops_mul(h, h, &oc));
    CHECK_OK(adept_ops_mul(d, d, &od));
    CHECK(od && adept_tensor_device(od) == ADEPT_CUDA);
    CHECK_OK(adept_tensor_host(od, &odh));
    CHECK(odh && !memcmp(adept_tensor_data(odh), adept_tensor_data(oc), 15 * sizeof(float)));
    /* row scaling staged through the host: bitwise the CPU's */
    int64_t wshape[1] = {3};
    adept_tensor *w = NULL, *wd = NULL, *rc = NULL, *rd = NULL, *rdh = NULL;
    CHECK_OK(adept_tensor_new(ADEPT_F32, 1, wshape, &w));
    for (int i = 0; i < 3; i++) adept_tensor_f32(w)[i] = 0.25f * (float)(i + 1) - 0.1f;
    CHECK_OK(adept_tensor_copy_to(w, ADEPT_CUDA, &wd));
    CHECK_OK(adept_ops_scale_rows_new(h, w, &rc));
    CHECK_OK(adept_ops_scale_rows_new(d, wd, &rd));
    CHECK(rd && adept_tensor_device(rd) == ADEPT_CUDA);
    CHECK_OK(adept_tensor_host(rd, &rdh));
    CHECK(rdh && !memcmp(adept_tensor_data(rdh), adept_tensor_data(rc), 15 * sizeof(float)));
    adept_tensor *mixed = NULL;
    CHECK_FAILS(adept_ops_scale_rows_new(d, w, &mixed), ADEPT_ESHAPE); /* weights on the host, tensor on the device */
    CHECK(mixed == NULL);
    adept_tensor_free(w), adept_tensor_free(wd), adept_tensor_free(rc), adept_tensor_free(rd), adept_tensor_free(rdh);
    double sc = 0, sd = 1;
    CHECK_OK(adept_ops_norm(h, &sc));
    CHECK_OK(adept_ops_norm(d, &sd));
    CHECK(sc == sd);
    adept_tensor *mix = NULL;
    CHECK_FAILS(adept_ops_add(h, d, &mix), ADEPT_ESHAPE);
    CHECK(strstr(adept_last_error(), "different devices (cpu and cuda") != NULL);
    adept_device dv;
    CHECK_FAILS(adept_device_parse("gpu", &dv), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "unknown device 'gpu'") != NULL);
    adept_tensor_free(h), adept_tensor_free(d), adept_tensor_free(back);
    adept_tensor_free(oc), adept_tensor_free(od), adept_tensor_free(odh);
}

int main(void) {
    cpu = adept_backend_cpu();
    fake = adept_fake_device();
    if (!fake) return 1;
    adept_backend_register(ADEPT_CUDA, fake);
    test_table_complete();
    test_guard_faults();
    test_allocator();
    test_device_tensors();

    adept_config cfg;
    adept_model_config_default(&cfg);
    cfg.vocab_size = 48, cfg.hidden_size = 32, cfg.intermediate_size = 40, cfg.num_layers = 3;
    cfg.num_heads = 4, cfg.num_kv_heads = 2, cfg.max_position_embeddings = 64, cfg.attention_bias = 1;
    /* Llama with q/k/v biases and GQA, everything trainable (embedding backward included) */
    compare_model("llama, biases, all trainable", cfg, 0, 0);
    /* Qwen3-style q/k norms, tied head; embedding and layer 0 frozen: backward stops at layer 1 */
    adept_config q3 = cfg;
    q3.arch = ADEPT_ARCH_QWEN3, q3.qk_norm = 1, q3.attention_bias = 0, q3.tie_word_embeddings = 1;
    q3.head_dim = 16; /* head_dim * heads != hidden, as Qwen3 allows */
    compare_model("qwen3 qk-norm, tied head, bottom frozen, classifier in chunks of 5 rows", q3, 1, 5);

    adept_fake_device_stats st = adept_fake_device_stats_now();
    CHECK(st.foreign_ptrs == 0);
    CHECK(st.frees > 0);
    CHECK(st.live_blocks == 0); /* both models freed everything they allocated */
    printf("test device: %ld kernel calls, %.1f KiB of device memory at most, %ld host pointers passed as device "
           "ones\n", st.kernel_calls, st.high_water / 1024.0, st.foreign_ptrs);
    adept_backend_register(ADEPT_CUDA, NULL);
    return check_summary();
}
