/* The whole model on the CUDA backend against the same model on the CPU backend: forward (loss and logits),
   gradients, hidden states, mask-out, block influence, greedy generation with the KV cache, layer expansion and
   three AdamW training steps through adept_train_step, for Llama (with biases), Qwen3 (q/k norms, tied head,
   bottom frozen), Qwen2 and Mistral (a sliding window narrower than the sequence); then two identical device
   runs bitwise equal.
   Skips (77) without a device.
   Bounds: each kernel agrees with the CPU to about 1e-6 normwise (cuda_compare.h); a forward pass chains about
   8 kernels per layer over 3 layers plus the head, and each layer's residual stream carries the error on without
   amplifying it much at this scale (random weights of std 0.3 keep activations O(1)), so 30 kernels of 1e-6
   give at most ~3e-5 normwise: MODEL_TOL = 1e-4 leaves a factor of 3. Gradients chain the same kernels twice:
   2e-4. After AdamW, an update is m/sqrt(v), a normalised gradient whose relative error is that of the
   gradient except where |g| is near eps; the weight CHANGES are compared with 1e-3. */
#include "adept/adapt.h"
#include "adept/dist.h"
#include "adept/optim.h"
#include "adept/train.h"
#include "cuda_compare.h"
#include "model/model_internal.h"

#define MODEL_TOL 1e-4
#define GRAD_TOL 2e-4
#define STEP_TOL 1e-3

static adept_model *make(adept_device device, const adept_config *cfg, int freeze_below) {
    adept_model *m = NULL;
    CHECK_OK(adept_model_create_on(cfg, device, 7, 0.3f, &m));
    if (!m) exit(1);
    for (size_t i = 0; freeze_below > 0 && i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        if (p->kind == ADEPT_UNIT_EMBED || (p->layer >= 0 && p->layer < freeze_below))
            CHECK_OK(adept_model_set_trainable(m, i, 0));
    }
    return m;
}

/* every row of one kind (values or gradients) of the device model back on the host, in table order */
static float *rows_back(adept_model *m, int grads, size_t *n_out) {
    size_t n = 0;
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        adept_tensor *t = grads ? p->grad : p->value;
        if (t) n += adept_tensor_nbytes(t) / 4;
    }
    float *h = malloc((n ? n : 1) * 4), *at = h;
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        adept_param *p = adept_model_param(m, i);
        adept_tensor *t = grads ? p->grad : p->value;
        if (!t) continue;
        size_t nb = adept_tensor_nbytes(t);
        CHECK_OK(m->be->to_host(at, adept_tensor_data(t), nb));
        at += nb / 4;
    }
    *n_out = n;
    return h;
}

static void compare_rows(const char *what, adept_model *gm, adept_model *cm, int grads, double tol) {
    size_t ng = 0, nc = 0;
    float *g = rows_back(gm, grads, &ng), *c = rows_back(cm, grads, &nc);
    CHECK(ng == nc && ng > 0);
    compare_f32(what, g, c, ng < nc ? ng : nc, tol);
    free(g), free(c);
}

static void fill_batch(const adept_config *cfg, int32_t *inputs, int32_t *targets, int n, int salt) {
    for (int i = 0; i < n; i++) {
        inputs[i] = (i * 7 + 3 + salt) % cfg->vocab_size;
        targets[i] = i % 5 == 4 ? -1 : (i * 11 + 1 + salt) % cfg->vocab_size;
    }
}

static void compare_model(const char *label, adept_config cfg, int freeze_below) {
    printf("-- %s\n", label);
    CHECK_OK(adept_model_config_check(&cfg));
    adept_model *cm = make(ADEPT_CPU, &cfg, freeze_below), *gm = make(ADEPT_CUDA, &cfg, freeze_below);
    CHECK(gm->be == cuda_be);
    enum { B = 2, T = 33, N = B * T };
    int32_t inputs[N], targets[N];
    fill_batch(&cfg, inputs, targets, N, 0);
    adept_batch b = {.B = B, .T = T, .inputs = inputs, .targets = targets};
    size_t V = (size_t)cfg.vocab_size, C = (size_t)cfg.hidden_size, L = (size_t)cfg.num_layers;
    char name[96];

    float *lc = malloc(N * V * 4), *lg = malloc(N * V * 4);
    double nc = 0, ng = 0;
    int64_t tc = 0, tg = 0;
    CHECK_OK(adept_model_forward(cm, &b, &nc, &tc, lc));
    CHECK_OK(adept_model_forward(gm, &b, &ng, &tg, lg));
    CHECK(tc == tg && tc > 0);
    snprintf(name, sizeof name, "model %s: logits", label);
    compare_f32(name, lg, lc, N * V, MODEL_TOL);
    snprintf(name, sizeof name, "model %s: loss", label);
    compare_f64(name, &ng, &nc, 1, MODEL_TOL);

    CHECK_OK(adept_model_forward_backward(cm, &b, 1.0f / (float)tc, &nc, &tc));
    CHECK_OK(adept_model_forward_backward(gm, &b, 1.0f / (float)tg, &ng, &tg));
    snprintf(name, sizeof name, "model %s: gradients", label);
    compare_rows(name, gm, cm, 1, GRAD_TOL);

    size_t nh = (L + 1) * N * C;
    float *hc = malloc(nh * 4), *hg = malloc(nh * 4);
    CHECK_OK(adept_model_hidden_states(cm, &b, hc));
    CHECK_OK(adept_model_hidden_states(gm, &b, hg));
    snprintf(name, sizeof name, "model %s: hidden states", label);
    compare_f32(name, hg, hc, nh, MODEL_TOL);

    double bc, bg, sc[8], sg[8], ic[8], ig[8];
    int64_t ec, eg, vc, vg;
    CHECK_OK(adept_model_mask_out(cm, &b, &bc, sc, &tc, &ec, &vc));
    CHECK_OK(adept_model_mask_out(gm, &b, &bg, sg, &tg, &eg, &vg));
    CHECK(tc == tg && ec == eg && vc == vg);
    snprintf(name, sizeof name, "model %s: mask-out losses", label);
    compare_f64(name, sg, sc, L, MODEL_TOL);
    CHECK_OK(adept_model_block_influence(cm, &b, ic, &tc));
    CHECK_OK(adept_model_block_influence(gm, &b, ig, &tg));
    snprintf(name, sizeof name, "model %s: block influence", label);
    compare_f64(name, ig, ic, L, 1e-3); /* 1 - cos of two close vectors: cancellation multiplies the error */

    /* greedy generation: the same tokens while the CPU's top logit leads by more than the error bound; a random
       model's logits are well separated, so a different token would mean a wrong KV cache */
    int32_t prompt[3] = {1, 5, 9}, oc[16], og[16];
    int noc = 0, nog = 0;
    CHECK_OK(adept_model_generate(cm, prompt, 3, 16, 0.0f, 0, 0, -1, oc, &noc));
    CHECK_OK(adept_model_generate(gm, prompt, 3, 16, 0.0f, 0, 0, -1, og, &nog));
    int same = noc == nog;
    for (int i = 0; same && i < noc; i++) same = oc[i] == og[i];
    printf("cuda-check %-36s tokens=%-6d %s\n", "generate (greedy, KV cache)", noc, same ? "same tokens" : "FAIL (tokens differ)");
    CHECK(same);
    /* batched greedy generation on the GPU: each row the CPU's single-sequence tokens (row 0 is the prompt above) */
    int32_t prompts[6] = {1, 5, 9, 2, 7, 3}, bgen[3 * 16];
    int lens[3] = {3, 1, 2}, nbg[3];
    adept_generate_batch_opts go = {.max_tokens = 16, .stop_id = -1};
    CHECK_OK(adept_model_generate_batch(gm, prompts, lens, 3, &go, bgen, nbg));
    int bsame = 1, off = 0;
    for (int r = 0; r < 3; r++) {
        CHECK_OK(adept_model_generate(cm, prompts + off, lens[r], 16, 0.0f, 0, 0, -1, oc, &noc));
        bsame &= nbg[r] == noc && !memcmp(bgen + r * 16, oc, (size_t)noc * sizeof(int32_t));
        off += lens[r];
    }
    printf("cuda-check %-36s rows=%-8d %s\n", "generate_batch (greedy, KV caches)", 3,
           bsame ? "same tokens" : "FAIL (tokens differ)");
    CHECK(bsame);

    /* expansion (identity copies) on both, then three training steps of the copies */
    int layers[1] = {1}, idx_c[1], idx_g[1];
    CHECK_OK(adept_model_expand(cm, layers, 1, idx_c));
    CHECK_OK(adept_model_expand(gm, layers, 1, idx_g));
    CHECK(idx_c[0] == idx_g[0]);
    snprintf(name, sizeof name, "model %s: weights after expand", label);
    compare_rows(name, gm, cm, 0, 0.0);
    for (size_t i = 0; i < adept_model_num_params(cm); i++) {
        adept_param *pc = adept_model_param(cm, i);
        int train = pc->layer == idx_c[0];
        CHECK_OK(adept_model_set_trainable(cm, i, train));
        CHECK_OK(adept_model_set_trainable(gm, i, train));
    }
    size_t nw0 = 0;
    float *w0 = rows_back(cm, 0, &nw0);
    adept_adamw_config oc_cfg = adept_adamw_defaults();
    oc_cfg.lr = 1e-2;
    adept_adamw *oc_ = NULL, *og_ = NULL;
    CHECK_OK(adept_adamw_new(cm, &oc_cfg, &oc_));
    CHECK_OK(adept_adamw_new(gm, &oc_cfg, &og_));
    adept_step_options so = {.lr_factor = 1.0, .clip = 1.0};
    for (int step = 0; step < 3; step++) {
        fill_batch(&cfg, inputs, targets, N, step + 1);
        adept_step_result rc, rg;
        CHECK_OK(adept_train_step(cm, oc_, adept_comm_world(), &b, 1, &so, &rc));
        CHECK_OK(adept_train_step(gm, og_, adept_comm_world(), &b, 1, &so, &rg));
        CHECK(rc.n_tokens == rg.n_tokens && !rc.nonfinite && !rg.nonfinite);
        snprintf(name, sizeof name, "model %s: train loss step %d", label, step + 1);
        compare_f64(name, &rg.loss, &rc.loss, 1, MODEL_TOL);
    }
    size_t nwc = 0, nwg = 0;
    float *wc = rows_back(cm, 0, &nwc), *wg = rows_back(gm, 0, &nwg);
    CHECK(nwc == nw0 && nwg == nw0);
    for (size_t i = 0; i < nw0; i++) wc[i] -= w0[i], wg[i] -= w0[i];
    snprintf(name, sizeof name, "model %s: weight change, 3 steps", label);
    compare_f32(name, wg, wc, nw0, STEP_TOL);

    adept_adamw_free(oc_), adept_adamw_free(og_);
    free(lc), free(lg), free(hc), free(hg), free(w0), free(wc), free(wg);
    adept_model_free(cm), adept_model_free(gm);
}

/* Two identical device runs (forward, backward, one step) give bitwise the same weights: no atomics. */
static void test_device_determinism(adept_config cfg) {
    float *w[2];
    size_t n[2];
    for (int run = 0; run < 2; run++) {
        adept_model *gm = make(ADEPT_CUDA, &cfg, 0);
        adept_adamw *o = NULL;
        adept_adamw_config oc = adept_adamw_defaults();
        CHECK_OK(adept_adamw_new(gm, &oc, &o));
        enum { N = 2 * 33 };
        int32_t inputs[N], targets[N];
        fill_batch(&cfg, inputs, targets, N, 3);
        adept_batch b = {.B = 2, .T = 33, .inputs = inputs, .targets = targets};
        adept_step_options so = {.lr_factor = 1.0, .clip = 1.0};
        adept_step_result r;
        for (int s = 0; s < 2; s++) CHECK_OK(adept_train_step(gm, o, adept_comm_world(), &b, 1, &so, &r));
        w[run] = rows_back(gm, 0, &n[run]);
        adept_adamw_free(o);
        adept_model_free(gm);
    }
    CHECK(n[0] == n[1]);
    compare_bitwise("model: two device runs, 2 steps", w[0], w[1], n[0] * 4);
    free(w[0]), free(w[1]);
}

int main(void) {
    cuda_or_skip();
    adept_config cfg;
    adept_model_config_default(&cfg);
    cfg.vocab_size = 97, cfg.hidden_size = 64, cfg.intermediate_size = 96, cfg.num_layers = 3;
    cfg.num_heads = 4, cfg.num_kv_heads = 2, cfg.max_position_embeddings = 128, cfg.attention_bias = 1;
    compare_model("llama", cfg, 0);
    adept_config q3 = cfg;
    q3.arch = ADEPT_ARCH_QWEN3, q3.qk_norm = 1, q3.attention_bias = 0, q3.tie_word_embeddings = 1;
    q3.head_dim = 32;
    compare_model("qwen3", q3, 1);
    adept_config q2 = cfg; /* Qwen2: q/k/v biases, untied head */
    q2.arch = ADEPT_ARCH_QWEN2;
    compare_model("qwen2", q2, 0);
    adept_config mi = cfg; /* Mistral: a sliding window narrower than the 33-token batch and the 19-token generations */
    mi.arch = ADEPT_ARCH_MISTRAL, mi.attention_bias = 0, mi.sliding_window = 8;
    compare_model("mistral, window 8", mi, 0);
    /* attention through the chunked GEMMs of attention_gemm.cu (fp32) instead of the flash kernels */
    setenv("ADEPT_CUDA_ATTENTION", "gemm", 1);
    compare_model("llama, attention by GEMMs", cfg, 0);
    compare_model("mistral, window 8, attention by GEMMs", mi, 0);
    unsetenv("ADEPT_CUDA_ATTENTION");
    test_device_determinism(cfg);
    CHECK_OK(cuda_be->synchronize());
    return check_summary();
}
