/* The adeptlua side of the GPU benchmark (tests/device/run prints it beside tests/device/bench.py): training
   steps of a Llama-shaped model through adept_train_step on one device, full training or ADEPT (4 layer copies
   trainable, the rest frozen, as bench.py's "adept" mode), reporting tokens/s and ms per step after warm-up.
   Precision: --precision f32 (the default: cuBLAS SGEMM with TF32 off, fp32 attention; the fair PyTorch
   reference is bench.py --dtype f32) or bf16 (the model's precision "bf16": fp32 masters, every product of a
   weight on bf16 operands with fp32 accumulation, attention still fp32; against bench.py's bf16).

     bench_cuda_step [--device cuda|cpu] [--model 124m|1b|tiny] [--mode full|adept] [--precision f32|bf16]
                     [--seq T] [--batch B] [--steps N] [--warmup N] [--profile N] [--weights f32|bf16]
                     [--cache DIR] [--cache-only 1]

   --profile N (cuda): after the timed steps, N more under adept_cuda_profile_begin, and the device-time table by
   op (lines "cuda-profile: ...", docs/cuda.md "Profile"); apart from the timed steps, whose figures the event
   marks would disturb.
   --weights bf16: the model starts as a bf16 checkpoint loads with adept.load's default dtype "auto": the random
   model is written once as a bf16 HF directory (--cache DIR, default $TMPDIR/adept-bench-<model>-T<seq>-bf16, reused
   when present) and loaded from it, so frozen matrices stay bf16 (the w16 products, half the memory) and the rows
   that train get fp32 masters: ADEPT's frozen layers as a researcher's run has them, and bench.py's bf16 model.
   f32 (the default): every row fp32, frozen ones rounded to bf16 per product under --precision bf16.
   --cache-only 1 writes that directory (when absent) and exits: the random init and the save of a 1B model take
   most of a minute on one core, which tests/device/run spends once, outside the timed runs' time limits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "adept/backend.h"
#include "adept/cuda.h"
#include "adept/dist.h"
#include "adept/model.h"
#include "adept/optim.h"
#include "adept/train.h"
#include "model/model_internal.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(const char *what) {
    fprintf(stderr, "bench_cuda_step: %s: %s\n", what, adept_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *device = "cuda", *model = "124m", *mode = "full", *precision = "f32", *weights = "f32", *cache = NULL;
    int T = 1024, B = 1, steps = 10, warmup = 3, profile = 0, cache_only = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--device")) device = v;
        else if (!strcmp(k, "--model")) model = v;
        else if (!strcmp(k, "--mode")) mode = v;
        else if (!strcmp(k, "--precision")) precision = v;
        else if (!strcmp(k, "--seq")) T = atoi(v);
        else if (!strcmp(k, "--batch")) B = atoi(v);
        else if (!strcmp(k, "--steps")) steps = atoi(v);
        else if (!strcmp(k, "--warmup")) warmup = atoi(v);
        else if (!strcmp(k, "--profile")) profile = atoi(v);
        else if (!strcmp(k, "--weights")) weights = v;
        else if (!strcmp(k, "--cache")) cache = v;
        else if (!strcmp(k, "--cache-only")) cache_only = atoi(v);
        else { fprintf(stderr, "bench_cuda_step: unknown option %s\n", k); return 2; }
    }
    if (T < 2 || B < 1 || steps < 1 || warmup < 0 || profile < 0) { fprintf(stderr, "bench_cuda_step: bad sizes\n"); return 2; }
    adept_config cfg;
    adept_model_config_default(&cfg);
    /* the shapes of bench.py's CONFIGS */
    if (!strcmp(model, "124m")) {
        cfg.hidden_size = 768, cfg.num_layers = 12, cfg.num_heads = 12, cfg.num_kv_heads = 12;
        cfg.intermediate_size = 2048, cfg.vocab_size = 32000;
    } else if (!strcmp(model, "1b")) {
        cfg.hidden_size = 2048, cfg.num_layers = 16, cfg.num_heads = 32, cfg.num_kv_heads = 8;
        cfg.intermediate_size = 5632, cfg.vocab_size = 32000;
    } else if (!strcmp(model, "tiny")) {
        cfg.hidden_size = 64, cfg.num_layers = 2, cfg.num_heads = 4, cfg.num_kv_heads = 2;
        cfg.intermediate_size = 128, cfg.vocab_size = 256;
    } else { fprintf(stderr, "bench_cuda_step: unknown model %s\n", model); return 2; }
    cfg.max_position_embeddings = T;
    adept_device dev = !strcmp(device, "cuda") ? ADEPT_CUDA : ADEPT_CPU;
    adept_model *m = NULL;
    if (adept_model_config_check(&cfg) != ADEPT_OK) return fail("config");
    /* device memory: the driver's free memory before the model and after the timed steps (adeptlua never gives
       its scratch back, so the difference is the most it held, with cuBLAS's workspace; the context excluded) */
    adept_cuda_device before = {0}, after = {0};
    if (dev == ADEPT_CUDA && adept_cuda_device_info(0, &before) != ADEPT_OK) return fail("device_info");
    adept_precision prec;
    if (adept_precision_parse(precision, &prec) != ADEPT_OK) return fail("--precision");
    if (!strcmp(weights, "bf16")) {
        char dir[1024], probe[1100];
        const char *tmp = getenv("TMPDIR");
        if (cache) snprintf(dir, sizeof dir, "%s", cache);
        else snprintf(dir, sizeof dir, "%s/adept-bench-%s-T%d-bf16", tmp && *tmp ? tmp : "/tmp", model, T);
        snprintf(probe, sizeof probe, "%s/config.json", dir);
        struct stat st;
        if (stat(probe, &st) != 0) { /* made on the host, so the device's free memory below is the run's own */
            adept_model *h = NULL;
            if (adept_model_create(&cfg, 0, 0.02f, &h) != ADEPT_OK) return fail("model");
            if (adept_model_save(h, dir, ADEPT_BF16, 0) != ADEPT_OK) return fail("save (bf16 cache)");
            adept_model_free(h);
        }
        if (cache_only) {
            printf("bench_cuda_step: bf16 checkpoint %s ready\n", dir);
            return 0;
        }
        if (adept_model_load_dtype(dir, dev, ADEPT_LOAD_AUTO, &m) != ADEPT_OK) return fail("load (bf16 cache)");
    } else if (cache_only) {
        fprintf(stderr, "bench_cuda_step: --cache-only needs --weights bf16\n");
        return 2;
    } else if (!strcmp(weights, "f32")) {
        if (adept_model_create_on(&cfg, dev, 0, 0.02f, &m) != ADEPT_OK) return fail("model");
    } else {
        fprintf(stderr, "bench_cuda_step: --weights takes f32 or bf16, got %s\n", weights);
        return 2;
    }
    if (adept_model_set_precision(m, prec) != ADEPT_OK) return fail("precision");
    int adept = !strcmp(mode, "adept");
    if (adept) { /* 4 identity copies stacked on top, as bench.py adds its 4 layers; only they train (ADEPT places
                    them after every L/4-th layer: the same work forward, a deeper backward) */
        int L = cfg.num_layers, idx[4];
        for (int j = 0; j < 4; j++) {
            int top = L - 1 + j;
            if (adept_model_expand(m, &top, 1, &idx[j]) != ADEPT_OK) return fail("expand");
        }
        for (size_t i = 0; i < adept_model_num_params(m); i++) {
            adept_param *p = adept_model_param(m, i);
            if (adept_model_set_trainable(m, i, p->layer >= L) != ADEPT_OK) return fail("freeze");
        }
    }
    size_t n_all = 0, n_train = 0, n_16 = 0;
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        n_all += p->numel;
        if (p->trainable) n_train += p->numel;
    }
    adept_adamw_config oc = adept_adamw_defaults();
    adept_adamw *opt = NULL;
    if (adept_adamw_new(m, &oc, &opt) != ADEPT_OK) return fail("optimizer");
    size_t N = (size_t)B * T;
    int32_t *in = malloc(N * 4), *tg = malloc(N * 4);
    uint64_t s = 1;
    for (size_t i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        in[i] = (int32_t)((s >> 33) % (uint64_t)cfg.vocab_size);
        tg[i] = (int32_t)((s >> 13) % (uint64_t)cfg.vocab_size);
    }
    adept_batch b = {.B = B, .T = T, .inputs = in, .targets = tg};
    adept_step_options so = {.lr_factor = 1.0, .clip = 1.0};
    adept_step_result r;
    for (int i = 0; i < warmup; i++)
        if (adept_train_step(m, opt, adept_comm_world(), &b, 1, &so, &r) != ADEPT_OK) return fail("step");
    if (m->be->synchronize() != ADEPT_OK) return fail("synchronize");
    double t0 = now();
    for (int i = 0; i < steps; i++)
        if (adept_train_step(m, opt, adept_comm_world(), &b, 1, &so, &r) != ADEPT_OK) return fail("step");
    if (m->be->synchronize() != ADEPT_OK) return fail("synchronize");
    double dt = (now() - t0) / steps;
    if (dev == ADEPT_CUDA && adept_cuda_device_info(0, &after) != ADEPT_OK) return fail("device_info");
    for (size_t i = 0; i < adept_model_num_params(m); i++) /* after the optimizer widened what trains */
        if (adept_model_param(m, i)->storage != ADEPT_F32) n_16 += adept_model_param(m, i)->numel;
    double mem_gib = dev == ADEPT_CUDA ? ((double)before.free_bytes - (double)after.free_bytes) / 1073741824.0 : 0.0;
    printf("{\"engine\": \"adeptlua-%s-%s\", \"model\": \"%s\", \"mode\": \"%s\", \"seq\": %d, \"batch\": %d, "
           "\"step_s\": %.6f, \"tokens_per_s\": %.1f, \"params\": %zu, \"trainable\": %zu, \"loss\": %.6f, "
           "\"device_mem_gib\": %.3f, \"weights\": \"%s\", \"params_16bit\": %zu}\n",
           device, precision, model, mode, T, B, dt, N / dt, n_all, n_train, r.loss, mem_gib, weights, n_16);
    fflush(stdout);
    if (profile > 0 && dev == ADEPT_CUDA) {
        if (adept_cuda_profile_begin() != ADEPT_OK) return fail("profile");
        for (int i = 0; i < profile; i++)
            if (adept_train_step(m, opt, adept_comm_world(), &b, 1, &so, &r) != ADEPT_OK) return fail("step");
        if (m->be->synchronize() != ADEPT_OK) return fail("synchronize");
        printf("cuda-profile: == %s %s %s, %d x %d tokens (wall %.3f ms per timed step)\n", model, mode, precision, B,
               T, dt * 1e3);
        if (adept_cuda_profile_end(stdout, profile, "step", 12) != ADEPT_OK) return fail("profile");
    }
    adept_adamw_free(opt);
    adept_model_free(m);
    free(in), free(tg);
    return 0;
}
