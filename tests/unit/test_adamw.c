/* AdamW, LR multipliers and gradient clipping against hand-computed values and an independent double
   reference, on synthetic parameter tables (no model needed). */
#include <math.h>
#include <string.h>

#include "adept/optim.h"
#include "adept/threads.h"
#include "check.h"

static adept_param make_param(const char *name, int64_t rows, int64_t cols, const float *init, int decay) {
    adept_param p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", name);
    p.ndim = cols > 0 ? 2 : 1;
    p.shape[0] = rows;
    p.shape[1] = cols;
    int64_t shape[2] = {rows, cols};
    p.numel = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    adept_tensor_new(ADEPT_F32, p.ndim, shape, &p.value);
    adept_tensor_new(ADEPT_F32, p.ndim, shape, &p.grad);
    if (init) memcpy(adept_tensor_f32(p.value), init, p.numel * sizeof(float));
    p.trainable = 1;
    p.decay = decay;
    return p;
}

static void free_param(adept_param *p) {
    adept_tensor_free(p->value);
    adept_tensor_free(p->grad);
}

static void set_grad(adept_param *p, const float *g) { memcpy(adept_tensor_f32(p->grad), g, p->numel * sizeof(float)); }

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
    adept_adamw_config c = {0.1, 0.9, 0.999, 1e-8, 0.1};
    adept_adamw *o;
    CHECK_OK(adept_adamw_new(&c, &o));
    float one[1] = {1.0f}, g1[1] = {0.5f};
    adept_param w = make_param("w", 1, 1, one, 1), b = make_param("b", 1, 0, one, 0);
    set_grad(&w, g1);
    set_grad(&b, g1);
    adept_param *ps[2] = {&w, &b};
    CHECK_OK(adept_adamw_step(o, ps, 2, 1.0));
    /* by hand: θ = 1·(1 − 0.1·0.1) = 0.99; m̂ = 0.5, v̂ = 0.25 → θ −= 0.1·0.5/(0.5+1e-8) → 0.89 */
    CHECK_NEAR(adept_tensor_f32(w.value)[0], 0.89, 1e-6);
    /* no decay on the 1-D tensor: 1 − 0.1 = 0.9 */
    CHECK_NEAR(adept_tensor_f32(b.value)[0], 0.9, 1e-6);
    CHECK(adept_adamw_steps(o) == 1);
    CHECK(adept_adamw_num_slots(o) == 2);
    CHECK(adept_adamw_state_bytes(o) == 4 * sizeof(float));
    const adept_adamw_slot *s = adept_adamw_find_slot(o, "w");
    CHECK(s && s->step == 1);
    if (s) { CHECK_NEAR(s->m[0], 0.05, 1e-7); CHECK_NEAR(s->v[0], 0.00025, 1e-9); }
    adept_adamw_free(o);
    free_param(&w);
    free_param(&b);
}

/* Many steps with a schedule factor and a unit scale against the double reference. */
static void test_against_reference(void) {
    adept_adamw_config c = {3e-2, 0.9, 0.95, 1e-8, 0.1};
    adept_adamw *o;
    CHECK_OK(adept_adamw_new(&c, &o));
    enum { N = 6 };
    float init[N] = {0.3f, -0.7f, 1.2f, 0.0f, -2.0f, 0.05f};
    adept_param w = make_param("model.layers.0.mlp.up_proj.weight", 2, 3, init, 1);
    adept_param *ps[1] = {&w};
    ref_state ref[N];
    for (int i = 0; i < N; i++) ref[i] = (ref_state){init[i], 0, 0, 0};
    CHECK_OK(adept_adamw_set_scale(o, w.name, 0.5));
    for (int t = 0; t < 20; t++) {
        float g[N];
        for (int i = 0; i < N; i++) g[i] = (float)sin(0.7 * t + i) * (i + 1) * 0.1f;
        set_grad(&w, g);
        double factor = 0.5 + 0.5 * cos(t * 0.2); /* a schedule: the scale must multiply it, not compound */
        CHECK_OK(adept_adamw_step(o, ps, 1, factor));
        for (int i = 0; i < N; i++) ref_step(&ref[i], g[i], 3e-2 * factor * 0.5, 0.9, 0.95, 1e-8, 0.1);
    }
    double worst = 0;
    for (int i = 0; i < N; i++) worst = check_max(worst, fabs(adept_tensor_f32(w.value)[i] - ref[i].p));
    /* each f32 step rounds the stored weight (|w| < 4: half an ulp, 2^-23) and computes the update lr m/sqrt(v)
       in a few f32 operations (4 u relative, lr <= 3e-2); over 20 steps the errors add at most linearly */
    const double tol = 20 * (0x1p-23 + 3e-2 * 4 * 0x1p-24);
    CHECK(worst <= tol); /* false for NaN */
    if (!(worst <= tol)) fprintf(stderr, "largest difference to the double reference: %g (bound %g)\n", worst, tol);
    adept_adamw_free(o);
    free_param(&w);
}

static void test_freeze_and_rows(void) {
    adept_adamw_config c = {0.1, 0.9, 0.999, 1e-8, 0.0};
    adept_adamw *o;
    CHECK_OK(adept_adamw_new(&c, &o));
    float init[4] = {1, 1, 1, 1}, g[4] = {1, 1, 1, 1};
    adept_param a = make_param("a", 2, 2, init, 1), f = make_param("f", 2, 2, init, 1);
    set_grad(&a, g);
    set_grad(&f, g);
    adept_param *ps[2] = {&a, &f};
    float rows[2] = {0.0f, 2.0f};
    CHECK_OK(adept_adamw_set_row_scales(o, "a", rows, 2));
    CHECK_OK(adept_adamw_set_scale(o, "f", 0.5));
    CHECK_OK(adept_adamw_step(o, ps, 2, 1.0));
    float *av = adept_tensor_f32(a.value), *fv = adept_tensor_f32(f.value);
    CHECK(av[0] == 1.0f && av[1] == 1.0f);               /* row scale 0: untouched */
    CHECK_NEAR(av[2], 1.0 - 0.2, 1e-6);                  /* row scale 2: lr 0.2, m̂/sqrt(v̂) = 1 */
    CHECK_NEAR(fv[0], 1.0 - 0.05, 1e-6);                 /* tensor scale 0.5 */
    CHECK(adept_adamw_get_scale(o, "f") == 0.5 && adept_adamw_get_scale(o, "nope") == 1.0);
    /* freeze f: its state goes, its value stays */
    f.trainable = 0;
    float before = fv[0];
    CHECK_OK(adept_adamw_step(o, ps, 2, 1.0));
    CHECK(fv[0] == before);
    CHECK(adept_adamw_find_slot(o, "f") == NULL);
    CHECK(adept_adamw_num_slots(o) == 1);
    /* unfreeze: a fresh slot whose bias correction starts at step 1 again, as torch's lazy state does */
    f.trainable = 1;
    CHECK_OK(adept_adamw_step(o, ps, 2, 1.0));
    const adept_adamw_slot *s = adept_adamw_find_slot(o, "f");
    CHECK(s && s->step == 1);
    CHECK(adept_adamw_find_slot(o, "a")->step == 3);
    /* a slot for a name the table no longer has (surgery, a foreign checkpoint) is dropped at the next step */
    float junk[2] = {0, 0};
    CHECK_OK(adept_adamw_load_slot(o, "gone", 2, 5, junk, junk));
    CHECK(adept_adamw_find_slot(o, "gone") != NULL);
    CHECK_OK(adept_adamw_step(o, ps, 2, 1.0));
    CHECK(adept_adamw_find_slot(o, "gone") == NULL);
    CHECK(adept_adamw_num_slots(o) == 2);
    /* a row vector of the wrong length is refused before anything changes */
    float three[3] = {1, 1, 1};
    CHECK_OK(adept_adamw_set_row_scales(o, "f", three, 3));
    float keep = av[2];
    CHECK_FAILS(adept_adamw_step(o, ps, 2, 1.0), ADEPT_ESHAPE);
    CHECK(av[2] == keep);
    CHECK_FAILS(adept_adamw_set_scale(o, "f", -1), ADEPT_EINVAL);
    CHECK_FAILS(adept_adamw_set_scale(o, "f", NAN), ADEPT_EINVAL);
    adept_adamw_clear_scales(o);
    CHECK(adept_adamw_num_scales(o) == 0);
    adept_adamw_free(o);
    free_param(&a);
    free_param(&f);
}

static void test_state_roundtrip(void) {
    adept_adamw_config c = {1e-2, 0.9, 0.95, 1e-8, 0.1};
    adept_adamw *o1, *o2;
    CHECK_OK(adept_adamw_new(&c, &o1));
    CHECK_OK(adept_adamw_new(&c, &o2));
    float init[6] = {0.1f, 0.2f, 0.3f, -0.4f, 0.5f, 0.6f};
    adept_param p1 = make_param("w", 2, 3, init, 1), p2 = make_param("w", 2, 3, init, 1);
    adept_param *a[1] = {&p1}, *b[1] = {&p2};
    for (int t = 0; t < 5; t++) {
        float g[6];
        for (int i = 0; i < 6; i++) g[i] = (float)cos(t + 0.3 * i);
        set_grad(&p1, g);
        set_grad(&p2, g);
        CHECK_OK(adept_adamw_step(o1, a, 1, 1.0));
        if (t == 2) { /* o2 resumes from o1's state after three steps */
            memcpy(adept_tensor_f32(p2.value), adept_tensor_f32(p1.value), sizeof init);
            const adept_adamw_slot *s = adept_adamw_find_slot(o1, "w");
            CHECK_OK(adept_adamw_load_slot(o2, "w", s->numel, s->step, s->m, s->v));
            adept_adamw_set_steps(o2, adept_adamw_steps(o1));
        } else if (t > 2) {
            CHECK_OK(adept_adamw_step(o2, b, 1, 1.0));
        }
    }
    CHECK(!memcmp(adept_tensor_f32(p1.value), adept_tensor_f32(p2.value), sizeof init)); /* bitwise */
    CHECK(adept_adamw_steps(o2) == 5);
    adept_adamw_free(o1);
    adept_adamw_free(o2);
    free_param(&p1);
    free_param(&p2);
}

static void test_clip(void) {
    float z[2] = {0, 0};
    adept_param a = make_param("a", 2, 0, z, 0), b = make_param("model.norm.weight", 1, 0, z, 0);
    float ga[2] = {3, 0}, gb[1] = {4};
    set_grad(&a, ga);
    set_grad(&b, gb);
    adept_param *ps[2] = {&a, &b};
    double norm;
    CHECK_OK(adept_grad_norm(ps, 2, &norm));
    CHECK_NEAR(norm, 5.0, 1e-12);
    CHECK_OK(adept_clip_grad_norm(ps, 2, 10.0, &norm)); /* below the limit: unchanged */
    CHECK(adept_tensor_f32(a.grad)[0] == 3.0f);
    CHECK_OK(adept_clip_grad_norm(ps, 2, 1.0, &norm));
    CHECK_NEAR(norm, 5.0, 1e-12);
    CHECK_NEAR(adept_tensor_f32(a.grad)[0], 3.0 / (5.0 + 1e-6), 1e-7);
    CHECK_NEAR(adept_tensor_f32(b.grad)[0], 4.0 / (5.0 + 1e-6), 1e-7);
    /* a frozen tensor's gradient does not count */
    b.trainable = 0;
    CHECK_OK(adept_grad_norm(ps, 2, &norm));
    CHECK_NEAR(norm, 3.0 / (5.0 + 1e-6), 1e-7);
    b.trainable = 1;
    adept_tensor_f32(b.grad)[0] = NAN;
    CHECK_FAILS(adept_clip_grad_norm(ps, 2, 1.0, &norm), ADEPT_ENONFINITE);
    CHECK(strstr(adept_last_error(), "model.norm.weight") != NULL);
    CHECK(adept_tensor_f32(a.grad)[0] > 0.5f); /* not scaled on failure */
    CHECK_FAILS(adept_clip_grad_norm(ps, 2, 0.0, &norm), ADEPT_EINVAL);
    free_param(&a);
    free_param(&b);
}

static void test_config(void) {
    adept_adamw *o;
    adept_adamw_config c = adept_adamw_defaults();
    CHECK(c.beta2 == 0.95 && c.weight_decay == 0.1 && c.eps == 1e-8);
    c.beta1 = 1.0;
    CHECK_FAILS(adept_adamw_new(&c, &o), ADEPT_EINVAL);
    c = adept_adamw_defaults();
    c.eps = 0;
    CHECK_FAILS(adept_adamw_new(&c, &o), ADEPT_EINVAL);
    c = adept_adamw_defaults();
    c.lr = NAN;
    CHECK_FAILS(adept_adamw_new(&c, &o), ADEPT_EINVAL);
    CHECK_OK(adept_adamw_new(NULL, &o));
    CHECK_FAILS(adept_adamw_step(o, NULL, 0, -1.0), ADEPT_EINVAL);
    CHECK_OK(adept_adamw_step(o, NULL, 0, 1.0));
    CHECK(adept_adamw_steps(o) == 0); /* nothing updated, no step counted */
    adept_adamw_free(o);
}

/* Chunked parallel loops: the same bits for any thread count (a tensor large enough to be split). */
static void test_thread_independence(void) {
    enum { R = 300, C = 1000 };
    static float init[R * C], g[R * C];
    for (int i = 0; i < R * C; i++) {
        init[i] = (float)sin(i * 0.37) * 0.1f;
        g[i] = (float)cos(i * 0.11) * (i % 17 == 0 ? 10.0f : 0.01f);
    }
    static float out[2][R * C];
    double norms[2];
    for (int run = 0; run < 2; run++) {
        adept_set_threads(run == 0 ? 1 : 3);
        adept_adamw *o;
        CHECK_OK(adept_adamw_new(NULL, &o));
        adept_param w = make_param("w", R, C, init, 1);
        adept_param *ps[1] = {&w};
        float rows[R];
        for (int r = 0; r < R; r++) rows[r] = 0.5f + (float)r / R;
        CHECK_OK(adept_adamw_set_row_scales(o, "w", rows, R));
        for (int t = 0; t < 3; t++) {
            set_grad(&w, g);
            CHECK_OK(adept_clip_grad_norm(ps, 1, 1.0, &norms[run]));
            CHECK_OK(adept_adamw_step(o, ps, 1, 1.0));
        }
        memcpy(out[run], adept_tensor_f32(w.value), sizeof out[run]);
        adept_adamw_free(o);
        free_param(&w);
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
    test_clip();
    test_config();
    test_thread_independence();
    return check_summary();
}
