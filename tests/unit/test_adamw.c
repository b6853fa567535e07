/* AdamW, LR multipliers and gradient clipping against hand-computed values and an independent double
   reference, on rows of a tiny model's parameter table (the optimizer works over the model's slabs), plus
   the slab behaviours: freezing re-lays state, surgery carries moments with their tensors. */
#include <math.h>
#include <string.h>

#include "adept/optim.h"
#include "adept/threads.h"
#include "check.h"

/* A model of 1 or 2 layers, hidden 2, heads 1 (every projection [2, 2]), all rows frozen but `names`. */
static adept_model *tiny(int layers, int hidden, const char *const *names, int n) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 4;
    c.hidden_size = hidden;
    c.intermediate_size = hidden;
    c.num_layers = layers;
    c.num_heads = 1;
    c.head_dim = hidden;
    adept_model *m = NULL;
    CHECK_OK(adept_model_create(&c, 1, 0.1f, &m));
    CHECK_OK(adept_model_grads_materialize(m)); /* the tests write gradients by hand */
    unsigned char mask[256] = {0};
    for (int k = 0; k < n; k++) {
        adept_param *p = adept_model_find(m, names[k]);
        CHECK(p != NULL);
        if (p) mask[p - adept_model_param(m, 0)] = 1;
    }
    CHECK_OK(adept_model_set_trainable_mask(m, mask));
    return m;
}

static size_t row(adept_model *m, const char *name) { return (size_t)(adept_model_find(m, name) - adept_model_param(m, 0)); }
static float *val(adept_model *m, const char *name) { return adept_tensor_f32(adept_model_find(m, name)->value); }
static void fill(float *x, size_t n, const float *v) { memcpy(x, v, n * sizeof *x); }
static void set_grad(adept_model *m, const char *name, const float *g) {
    adept_param *p = adept_model_find(m, name);
    fill(adept_tensor_f32(p->grad), p->numel, g);
}

#define Q0 "model.layers.0.self_attn.q_proj.weight"
#define K0 "model.layers.0.self_attn.k_proj.weight"
#define N0 "model.layers.0.input_layernorm.weight"

/* Double-precision AdamW for one element, written from the formula (not from adamw.c). */
typedef struct ref_state { double p, m, v; int t; } ref_state;
static void ref_step(ref_state *s, double g, double lr, double b1, double b2, double eps, double wd) {
    s->t++;
    s->p -= lr * wd * s->p;
    s->m = b1 * s->m + (1 - b1) * g;
    s->v = b2 * s->v + (1 - b2) * g * g;
    double mhat = s->m / (1 - pow(b1, s->t)), vhat = s->v / (1 - pow(b2, s->t));
    s->p -= lr * mhat / (sqrt(vhat) + eps);
}

static void test_hand_values(void) {
    const char *names[] = {Q0, N0};
    adept_model *m = tiny(1, 2, names, 2);
    adept_adamw_config c = {0.1, 0.9, 0.999, 1e-8, 0.1};
    adept_adamw *o;
    CHECK_OK(adept_adamw_new(m, &c, &o));
    float one[4] = {1, 1, 1, 1}, g1[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    fill(val(m, Q0), 4, one);
    fill(val(m, N0), 2, one);
    set_grad(m, Q0, g1);
    set_grad(m, N0, g1);
    CHECK_OK(adept_adamw_step(o, 1.0));
    /* by hand: θ = 1·(1 − 0.1·0.1) = 0.99; m̂ = 0.5, v̂ = 0.25 → θ −= 0.1·0.5/(0.5+1e-8) → 0.89 */
    CHECK_NEAR(val(m, Q0)[0], 0.89, 1e-6);
    CHECK_NEAR(val(m, N0)[0], 0.9, 1e-6); /* no decay on the norm */
    CHECK(adept_adamw_steps(o) == 1);
    CHECK(adept_adamw_state_bytes(o) == 2 * 2 * 16 * sizeof(float)); /* two rows, each 64-byte aligned */
    int64_t step;
    float *em, *ev;
    CHECK_OK(adept_adamw_row_state(o, row(m, Q0), &step, &em, &ev));
    CHECK(step == 1 && em && ev);
    if (em) { CHECK_NEAR(em[0], 0.05, 1e-7); CHECK_NEAR(ev[0], 0.00025, 1e-9); }
    adept_adamw_free(o);
    adept_model_free(m);
}

/* Many steps with a schedule factor and a unit scale against the double reference. */
static void test_against_reference(void) {
    const char *names[] = {Q0};
    adept_model *m = tiny(1, 2, names, 1);
    adept_adamw_config c = {3e-2, 0.9, 0.95, 1e-8, 0.1};
    adept_adamw *o;
    CHECK_OK(adept_adamw_new(m, &c, &o));
    enum { N = 4 };
    float init[N] = {0.3f, -0.7f, 1.2f, -2.0f};
    fill(val(m, Q0), N, init);
    ref_state ref[N];
    for (int i = 0; i < N; i++) ref[i] = (ref_state){init[i], 0, 0, 0};
    CHECK_OK(adept_adamw_set_scale(o, row(m, Q0), 0.5));
    for (int t = 0; t < 20; t++) {
        float g[N];
        for (int i = 0; i < N; i++) g[i] = (float)sin(0.7 * t + i) * (i + 1) * 0.1f;
        set_grad(m, Q0, g);
        double factor = 0.5 + 0.5 * cos(t * 0.2); /* a schedule: the scale must multiply it, not compound */
        CHECK_OK(adept_adamw_step(o, factor));
        for (int i = 0; i < N; i++) ref_step(&ref[i], g[i], 3e-2 * factor * 0.5, 0.9, 0.95, 1e-8, 0.1);
    }
    /* fp32 update of |θ| <= 2 over 20 steps of at most lr: each step rounds θ (2^-24 relative) and the
       bounded step term (~1e-7 absolute), so the drift stays below 20 · 2 · 1.2e-7 ≈ 5e-6 */
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double d = fabs(val(m, Q0)[i] - ref[i].p);
        if (!(d <= worst)) worst = d; /* NaN-aware */
    }
    CHECK(worst < 5e-6);
    adept_adamw_free(o);
    adept_model_free(m);
}

static void test_freeze_and_rows(void) {
    const char *names[] = {Q0, K0};
    adept_model *m = tiny(1, 2, names, 2);
    adept_adamw_config c = {0.1, 0.9, 0.999, 1e-8, 0.0};
    adept_adamw *o;
    CHECK_OK(adept_adamw_new(m, &c, &o));
    float ones[4] = {1, 1, 1, 1};
    fill(val(m, Q0), 4, ones);
    fill(val(m, K0), 4, ones);
    set_grad(m, Q0, ones);
    set_grad(m, K0, ones);
    float rows[2] = {0.0f, 2.0f};
    CHECK_OK(adept_adamw_set_row_scales(o, row(m, Q0), rows, 2));
    CHECK_OK(adept_adamw_set_scale(o, row(m, K0), 0.5));
    CHECK_OK(adept_adamw_step(o, 1.0));
    float *av = val(m, Q0), *fv = val(m, K0);
    CHECK(av[0] == 1.0f && av[1] == 1.0f); /* row scale 0: untouched */
    CHECK_NEAR(av[2], 1.0 - 0.2, 1e-6);    /* row scale 2: lr 0.2, m̂/sqrt(v̂) = 1 */
    CHECK_NEAR(fv[0], 1.0 - 0.05, 1e-6);   /* tensor scale 0.5 */
    double s;
    const float *rv;
    int64_t nr;
    CHECK(adept_adamw_get_scale(o, row(m, K0), &s, &rv, &nr) && s == 0.5 && !rv);
    CHECK(!adept_adamw_get_scale(o, row(m, N0), &s, &rv, &nr) && s == 1.0);
    /* freeze K0: its state goes at the next step, its value stays */
    CHECK_OK(adept_model_set_trainable(m, row(m, K0), 0));
    fv = val(m, K0);
    float before = fv[0];
    set_grad(m, Q0, ones);
    CHECK_OK(adept_adamw_step(o, 1.0));
    CHECK(val(m, K0)[0] == before);
    int64_t step;
    float *em, *ev;
    CHECK_OK(adept_adamw_row_state(o, row(m, K0), &step, &em, &ev));
    CHECK(step == 0 && em == NULL);
    CHECK(adept_adamw_state_bytes(o) == 2 * 16 * sizeof(float));
    /* unfreeze: fresh state whose bias correction starts at step 1 again, as torch's lazy state does */
    CHECK_OK(adept_model_set_trainable(m, row(m, K0), 1));
    set_grad(m, Q0, ones);
    set_grad(m, K0, ones);
    CHECK_OK(adept_adamw_step(o, 1.0));
    CHECK_OK(adept_adamw_row_state(o, row(m, K0), &step, &em, &ev));
    CHECK(step == 1);
    CHECK_OK(adept_adamw_row_state(o, row(m, Q0), &step, &em, &ev));
    CHECK(step == 3);
    /* bad multipliers are refused when set */
    float three[3] = {1, 1, 1};
    CHECK_FAILS(adept_adamw_set_row_scales(o, row(m, K0), three, 3), ADEPT_ESHAPE);
    CHECK_FAILS(adept_adamw_set_scale(o, row(m, K0), -1), ADEPT_EINVAL);
    CHECK_FAILS(adept_adamw_set_scale(o, row(m, K0), NAN), ADEPT_EINVAL);
    CHECK_FAILS(adept_adamw_set_scale(o, row(m, K0), 1e300), ADEPT_EINVAL); /* beyond float32 */
    adept_adamw_clear_scales(o);
    CHECK(!adept_adamw_get_scale(o, row(m, K0), &s, &rv, &nr));
    adept_adamw_free(o);
    adept_model_free(m);
}

static void test_state_roundtrip(void) {
    const char *names[] = {Q0};
    adept_model *m1 = tiny(1, 2, names, 1), *m2 = tiny(1, 2, names, 1);
    adept_adamw_config c = {1e-2, 0.9, 0.95, 1e-8, 0.1};
    adept_adamw *o1, *o2;
    CHECK_OK(adept_adamw_new(m1, &c, &o1));
    CHECK_OK(adept_adamw_new(m2, &c, &o2));
    for (int t = 0; t < 5; t++) {
        float g[4];
        for (int i = 0; i < 4; i++) g[i] = (float)cos(t + 0.3 * i);
        set_grad(m1, Q0, g);
        set_grad(m2, Q0, g);
        CHECK_OK(adept_adamw_step(o1, 1.0));
        if (t == 2) { /* o2 resumes from o1's state after three steps */
            memcpy(val(m2, Q0), val(m1, Q0), 4 * sizeof(float));
            int64_t step;
            float *em, *ev;
            CHECK_OK(adept_adamw_row_state(o1, row(m1, Q0), &step, &em, &ev));
            CHECK_OK(adept_adamw_load_row(o2, row(m2, Q0), step, em, ev));
            adept_adamw_set_steps(o2, adept_adamw_steps(o1));
        } else if (t > 2) {
            CHECK_OK(adept_adamw_step(o2, 1.0));
        }
    }
    CHECK(!memcmp(val(m1, Q0), val(m2, Q0), 4 * sizeof(float))); /* bitwise */
    CHECK(adept_adamw_steps(o2) == 5);
    adept_adamw_free(o1);
    adept_adamw_free(o2);
    adept_model_free(m1);
    adept_model_free(m2);
}

/* Surgery renames layer 1 to layer 2; its moments, step count and LR scale follow it, and the copy starts
   fresh. Checked against the state read before the expansion (moved by name by hand). */
static void test_expand_carries_state(void) {
    const char *names[] = {"model.layers.1.mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight"};
    adept_model *m = tiny(2, 2, names, 2);
    adept_adamw *o;
    CHECK_OK(adept_adamw_new(m, NULL, &o));
    float g[4] = {0.1f, -0.2f, 0.3f, 0.4f};
    set_grad(m, names[0], g);
    set_grad(m, names[1], g);
    CHECK_OK(adept_adamw_set_scale(o, row(m, names[0]), 0.25));
    CHECK_OK(adept_adamw_step(o, 1.0));
    CHECK_OK(adept_adamw_step(o, 1.0));
    int64_t step;
    float *em, *ev, m_before[4], v_before[4];
    CHECK_OK(adept_adamw_row_state(o, row(m, names[0]), &step, &em, &ev));
    memcpy(m_before, em, sizeof m_before);
    memcpy(v_before, ev, sizeof v_before);
    int layers[1] = {0}, copies[1];
    CHECK_OK(adept_model_expand(m, layers, 1, copies));
    CHECK(copies[0] == 1);
    const char *moved = "model.layers.2.mlp.up_proj.weight", *copy = "model.layers.1.mlp.up_proj.weight";
    CHECK_OK(adept_adamw_row_state(o, row(m, moved), &step, &em, &ev));
    CHECK(step == 2 && em && !memcmp(em, m_before, sizeof m_before) && !memcmp(ev, v_before, sizeof v_before));
    double s;
    const float *rv;
    int64_t nr;
    CHECK(adept_adamw_get_scale(o, row(m, moved), &s, &rv, &nr) && s == 0.25);
    CHECK(!adept_adamw_get_scale(o, row(m, copy), &s, &rv, &nr));
    CHECK_OK(adept_adamw_row_state(o, row(m, copy), &step, &em, &ev));
    CHECK(step == 0);
    if (em) { float z[4] = {0}; CHECK(!memcmp(em, z, sizeof z)); }
    CHECK_OK(adept_adamw_step(o, 1.0));
    CHECK_OK(adept_adamw_row_state(o, row(m, moved), &step, &em, &ev));
    CHECK(step == 3);
    adept_adamw_free(o);
    adept_model_free(m);
}

static void test_clip(void) {
    const char *names[] = {Q0, N0};
    adept_model *m = tiny(1, 2, names, 2);
    float ga[4] = {3, 0, 0, 0}, gb[2] = {4, 0};
    set_grad(m, Q0, ga);
    set_grad(m, N0, gb);
    double norm;
    CHECK_OK(adept_grad_norm(m, &norm));
    CHECK_NEAR(norm, 5.0, 1e-12);
    CHECK_OK(adept_clip_grad_norm(m, 10.0, &norm)); /* below the limit: unchanged */
    CHECK(adept_tensor_f32(adept_model_find(m, Q0)->grad)[0] == 3.0f);
    CHECK_OK(adept_clip_grad_norm(m, 1.0, &norm));
    CHECK_NEAR(norm, 5.0, 1e-12);
    CHECK_NEAR(adept_tensor_f32(adept_model_find(m, Q0)->grad)[0], 3.0 / (5.0 + 1e-6), 1e-7);
    CHECK_NEAR(adept_tensor_f32(adept_model_find(m, N0)->grad)[0], 4.0 / (5.0 + 1e-6), 1e-7);
    /* a frozen tensor's gradient does not exist, so it cannot count */
    CHECK_OK(adept_model_set_trainable(m, row(m, N0), 0));
    CHECK_OK(adept_grad_norm(m, &norm));
    CHECK_NEAR(norm, 3.0 / (5.0 + 1e-6), 1e-7);
    CHECK_OK(adept_model_set_trainable(m, row(m, N0), 1));
    adept_tensor_f32(adept_model_find(m, N0)->grad)[0] = NAN;
    CHECK_FAILS(adept_clip_grad_norm(m, 1.0, &norm), ADEPT_ENONFINITE);
    CHECK(strstr(adept_last_error(), N0) != NULL);
    CHECK(adept_tensor_f32(adept_model_find(m, Q0)->grad)[0] > 0.5f); /* not scaled on failure */
    CHECK_FAILS(adept_clip_grad_norm(m, 0.0, &norm), ADEPT_EINVAL);
    adept_model_free(m);
}

static void test_config(void) {
    adept_model *m = tiny(1, 2, NULL, 0);
    adept_adamw *o;
    adept_adamw_config c = adept_adamw_defaults();
    CHECK(c.beta2 == 0.95 && c.weight_decay == 0.1 && c.eps == 1e-8);
    c.beta1 = 1.0;
    CHECK_FAILS(adept_adamw_new(m, &c, &o), ADEPT_EINVAL);
    c = adept_adamw_defaults();
    c.eps = 0;
    CHECK_FAILS(adept_adamw_new(m, &c, &o), ADEPT_EINVAL);
    c = adept_adamw_defaults();
    c.lr = NAN;
    CHECK_FAILS(adept_adamw_new(m, &c, &o), ADEPT_EINVAL);
    c.lr = 1e39; /* finite in double, infinite in float32 */
    CHECK_FAILS(adept_adamw_new(m, &c, &o), ADEPT_EINVAL);
    CHECK_OK(adept_adamw_new(m, NULL, &o));
    CHECK_FAILS(adept_adamw_step(o, -1.0), ADEPT_EINVAL);
    CHECK_OK(adept_adamw_step(o, 1.0)); /* nothing trains */
    CHECK(adept_adamw_steps(o) == 0);   /* nothing updated, no step counted */
    adept_adamw_free(o);
    adept_model_free(m);
}

/* Chunked parallel loops: the same bits for any thread count (an embedding large enough to be split). */
static void test_thread_independence(void) {
    enum { V = 300, C = 1000 };
    static float out[2][V * C];
    double norms[2];
    const char *names[] = {"model.embed_tokens.weight"};
    for (int run = 0; run < 2; run++) {
        adept_set_threads(run == 0 ? 1 : 3);
        adept_config c;
        adept_model_config_default(&c);
        c.vocab_size = V;
        c.hidden_size = C;
        c.intermediate_size = 4;
        c.num_layers = 0;
        c.num_heads = 1;
        c.head_dim = 2;
        adept_model *m;
        CHECK_OK(adept_model_create(&c, 3, 0.1f, &m));
        CHECK_OK(adept_model_grads_materialize(m));
        unsigned char mask[8] = {1, 0, 0, 0};
        CHECK_OK(adept_model_set_trainable_mask(m, mask));
        adept_adamw *o;
        CHECK_OK(adept_adamw_new(m, NULL, &o));
        float *rows = malloc(V * sizeof *rows), *g = adept_tensor_f32(adept_model_find(m, names[0])->grad);
        for (int r = 0; r < V; r++) rows[r] = 0.5f + (float)r / V;
        CHECK_OK(adept_adamw_set_row_scales(o, 0, rows, V));
        for (int t = 0; t < 3; t++) {
            for (int i = 0; i < V * C; i++) g[i] = (float)cos(i * 0.11) * (i % 17 == 0 ? 10.0f : 0.01f);
            CHECK_OK(adept_clip_grad_norm(m, 1.0, &norms[run]));
            CHECK_OK(adept_adamw_step(o, 1.0));
        }
        memcpy(out[run], val(m, names[0]), sizeof out[run]);
        free(rows);
        adept_adamw_free(o);
        adept_model_free(m);
    }
    CHECK(!memcmp(out[0], out[1], sizeof out[0]));
    CHECK(norms[0] == norms[1]);
    adept_set_threads(0);
}

int main(void) {
    test_hand_values();
    test_against_reference();
    test_freeze_and_rows();
    test_state_roundtrip();
    test_expand_carries_state();
    test_clip();
    test_config();
    test_thread_independence();
    return check_summary();
}
