/* Ops: every kernel against a plain double-precision reference on random and odd shapes (empty included),
   outputs written into views followed by canary bytes to catch overruns, thread-count independence of every
   reduction (bitwise), dtype and shape errors, and the accuracy of a sum over 10^7 elements. */
#include <omp.h>
#include <string.h>

#include "adept/backend.h"
#include "adept/ops.h"
#include "adept/rng.h"
#include "adept/tensor.h"
#include "check.h"

#define CANARY_BYTES 64
#define CANARY 0xA5

typedef struct {
    int ndim;
    int64_t shape[4];
} shape_t;

static const shape_t shapes[] = {
    {0, {0}},        {1, {0}},        {1, {1}},          {1, {7}},       {1, {1023}},       {1, {4097}},
    {2, {3, 5}},     {3, {7, 0, 3}},  {2, {2, 1023}},    {3, {17, 33, 5}}, {2, {1, 40000}}, {1, {70001}},
    {2, {300, 257}}, {4, {2, 3, 1, 9}},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

/* A tensor viewing the front of a larger storage whose tail holds canary bytes. */
static adept_tensor *guarded(adept_dtype dt, int ndim, const int64_t *shape) {
    size_t nbytes = adept_shape_numel(ndim, shape) * adept_dtype_size(dt);
    adept_storage *s = NULL;
    adept_tensor *t = NULL;
    if (adept_storage_new(nbytes + CANARY_BYTES, ADEPT_CPU, &s) != ADEPT_OK) return NULL;
    memset((char *)s->data + nbytes, CANARY, CANARY_BYTES);
    adept_tensor_view(s, 0, dt, ndim, shape, &t);
    adept_storage_release(s);
    return t;
}

static int canary_intact(const adept_tensor *t) {
    const unsigned char *p = (const unsigned char *)adept_tensor_data(t) + adept_tensor_nbytes(t);
    for (int i = 0; i < CANARY_BYTES; i++)
        if (p[i] != CANARY) return 0;
    return 1;
}

/* Random normal values; `seed` varies per tensor. With `ints`, small integers (for ties). */
static adept_tensor *random_f32(const shape_t *sh, uint64_t seed, int ints) {
    adept_tensor *t = guarded(ADEPT_F32, sh->ndim, sh->shape);
    float *x = adept_tensor_f32(t);
    size_t n = adept_tensor_numel(t);
    for (size_t i = 0; i < n; i++) {
        double v = adept_rng_normal(seed, 1, i);
        x[i] = ints ? (float)(int)(v * 3) : (float)v;
    }
    return t;
}

static int close_rel(double got, double want, double rel) {
    if (isnan(want)) return isnan(got);
    return fabs(got - want) <= rel * fabs(want) + 1e-30;
}

static void test_unary(void) {
    for (int s = 0; s < NSHAPES; s++) {
        adept_tensor *a = random_f32(&shapes[s], 10 + s, 0);
        size_t n = adept_tensor_numel(a);
        for (int op = 0; op < ADEPT_UNARY_COUNT; op++) {
            adept_tensor *out = guarded(ADEPT_F32, a->ndim, a->shape);
            CHECK_OK(adept_ops_unary((adept_unary_op)op, a, out));
            int bad = 0;
            for (size_t i = 0; i < n; i++) {
                double x = adept_tensor_f32(a)[i], ref;
                switch (op) {
                case ADEPT_OP_ABS: ref = fabs(x); break;
                case ADEPT_OP_SQUARE: ref = x * x; break;
                case ADEPT_OP_SQRT: ref = x < 0 ? NAN : sqrt(x); break;
                default: ref = -x; break;
                }
                if (!close_rel(adept_tensor_f32(out)[i], (float)ref, 0)) bad++;
            }
            CHECK(bad == 0);
            CHECK(canary_intact(out));
            adept_tensor_free(out);
        }
        adept_tensor_free(a);
    }
}

static double ref_binary(adept_binary_op op, double x, double y) {
    switch (op) {
    case ADEPT_OP_ADD: return x + y;
    case ADEPT_OP_SUB: return x - y;
    case ADEPT_OP_MUL: return x * y;
    case ADEPT_OP_DIV: return x / y;
    case ADEPT_OP_RSUB: return y - x;
    default: return y / x;
    }
}

static void test_binary_and_scalar(void) {
    for (int s = 0; s < NSHAPES; s++) {
        adept_tensor *a = random_f32(&shapes[s], 100 + s, 0), *b = random_f32(&shapes[s], 200 + s, 0);
        size_t n = adept_tensor_numel(a);
        for (int op = 0; op < ADEPT_BINARY_COUNT; op++) {
            adept_tensor *out = guarded(ADEPT_F32, a->ndim, a->shape);
            if (op <= ADEPT_OP_DIV) CHECK_OK(adept_ops_binary((adept_binary_op)op, a, b, out));
            else CHECK_FAILS(adept_ops_binary((adept_binary_op)op, a, b, out), ADEPT_EINVAL);
            int bad = 0;
            for (size_t i = 0; op <= ADEPT_OP_DIV && i < n; i++)
                if (!close_rel(adept_tensor_f32(out)[i],
                               ref_binary((adept_binary_op)op, adept_tensor_f32(a)[i], adept_tensor_f32(b)[i]), 1e-6))
                    bad++;
            CHECK(bad == 0);
            CHECK_OK(adept_ops_scalar((adept_binary_op)op, a, -1.75, out));
            bad = 0;
            for (size_t i = 0; i < n; i++)
                if (!close_rel(adept_tensor_f32(out)[i], ref_binary((adept_binary_op)op, adept_tensor_f32(a)[i], -1.75),
                               1e-6))
                    bad++;
            CHECK(bad == 0);
            CHECK(canary_intact(out));
            adept_tensor_free(out);
        }
        adept_tensor_free(a);
        adept_tensor_free(b);
    }
}

static void test_int32(void) {
    int64_t shape[1] = {5};
    adept_tensor *a = NULL, *b = NULL, *out = NULL;
    CHECK_OK(adept_tensor_new(ADEPT_I32, 1, shape, &a));
    CHECK_OK(adept_tensor_new(ADEPT_I32, 1, shape, &b));
    int32_t xa[5] = {-3, 0, 7, INT32_MAX, INT32_MIN}, xb[5] = {2, -5, 7, 1, -1};
    memcpy(adept_tensor_data(a), xa, sizeof xa);
    memcpy(adept_tensor_data(b), xb, sizeof xb);
    CHECK_OK(adept_ops_add(a, b, &out));
    CHECK(adept_tensor_i32(out)[0] == -1 && adept_tensor_i32(out)[2] == 14);
    CHECK(adept_tensor_i32(out)[3] == INT32_MIN); /* wraps like two's complement */
    adept_tensor_free(out);
    CHECK_OK(adept_ops_mul(a, b, &out));
    CHECK(adept_tensor_i32(out)[0] == -6 && adept_tensor_i32(out)[1] == 0 && adept_tensor_i32(out)[2] == 49);
    adept_tensor_free(out);
    CHECK_OK(adept_ops_abs(a, &out));
    CHECK(adept_tensor_i32(out)[0] == 3 && adept_tensor_i32(out)[3] == INT32_MAX);
    adept_tensor_free(out);
    CHECK_OK(adept_ops_scalar_new(ADEPT_OP_MUL, a, 3, &out));
    CHECK(adept_tensor_i32(out)[0] == -9 && adept_tensor_i32(out)[2] == 21);
    adept_tensor_free(out);
    out = NULL;
    CHECK_FAILS(adept_ops_scalar_new(ADEPT_OP_MUL, a, 0.5, &out), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "integer scalar") != NULL);
    CHECK_FAILS(adept_ops_sqrt(a, &out), ADEPT_EUNSUPPORTED);
    CHECK(strstr(adept_last_error(), "sqrt") && strstr(adept_last_error(), "i32"));
    CHECK_FAILS(adept_ops_div(a, b, &out), ADEPT_EUNSUPPORTED);
    double r;
    CHECK_OK(adept_ops_sum(a, &r));
    CHECK(r == (double)-3 + 0 + 7 + INT32_MAX + (double)INT32_MIN);
    CHECK_OK(adept_ops_max(a, &r));
    CHECK(r == INT32_MAX);
    CHECK_OK(adept_ops_min(a, &r));
    CHECK(r == INT32_MIN);
    int64_t idx[2];
    CHECK_OK(adept_ops_topk(a, 2, &out, idx));
    CHECK(idx[0] == 3 && idx[1] == 2 && adept_tensor_i32(out)[0] == INT32_MAX);
    adept_tensor_free(out);
    CHECK_FAILS(adept_ops_norm(a, &r), ADEPT_EUNSUPPORTED);
    adept_tensor_free(a);
    adept_tensor_free(b);
}

static void test_errors(void) {
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2};
    adept_tensor *a = NULL, *b = NULL, *h = NULL, *i = NULL, *out = NULL;
    CHECK_OK(adept_tensor_new(ADEPT_F32, 2, s23, &a));
    CHECK_OK(adept_tensor_new(ADEPT_F32, 2, s32, &b));
    CHECK_OK(adept_tensor_new(ADEPT_BF16, 2, s23, &h));
    CHECK_OK(adept_tensor_new(ADEPT_I32, 2, s23, &i));
    CHECK_FAILS(adept_ops_add(a, b, &out), ADEPT_ESHAPE);
    CHECK(strstr(adept_last_error(), "add") && strstr(adept_last_error(), "[2, 3]") && strstr(adept_last_error(), "[3, 2]"));
    CHECK(out == NULL);
    double r;
    CHECK_FAILS(adept_ops_dot(a, b, &r), ADEPT_ESHAPE);
    CHECK(strstr(adept_last_error(), "[2, 3]") && strstr(adept_last_error(), "[3, 2]"));
    CHECK_FAILS(adept_ops_add(a, i, &out), ADEPT_ESHAPE);
    CHECK(strstr(adept_last_error(), "f32") && strstr(adept_last_error(), "i32"));
    /* bf16 (a frozen row of a bf16 model) is read through an exact f32 copy: f32 results */
    adept_tensor_set_flat(h, 4, -2.5);
    CHECK_OK(adept_ops_abs(h, &out));
    CHECK(out && out->dtype == ADEPT_F32 && adept_tensor_f32(out)[4] == 2.5f && adept_tensor_f32(out)[0] == 0.0f);
    adept_tensor_free(out);
    out = NULL;
    CHECK_OK(adept_ops_sum(h, &r));
    CHECK(r == -2.5);
    adept_tensor *f64 = NULL;
    CHECK_OK(adept_tensor_new(ADEPT_F64, 2, s23, &f64));
    CHECK_FAILS(adept_ops_sum(f64, &r), ADEPT_EUNSUPPORTED); /* other dtypes are still named */
    CHECK(strstr(adept_last_error(), "f64") != NULL);
    adept_tensor_free(f64);
    CHECK_FAILS(adept_ops_sum_dim(a, 2, &out), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "dimension 2") != NULL);
    CHECK_FAILS(adept_ops_sum_dim(a, -3, &out), ADEPT_EINVAL);
    CHECK_FAILS(adept_ops_unary(ADEPT_OP_ABS, a, b), ADEPT_ESHAPE); /* wrong output shape */
    CHECK_FAILS(adept_ops_unary(ADEPT_OP_ABS, a, NULL), ADEPT_EINVAL);
    CHECK_FAILS(adept_ops_add(NULL, b, &out), ADEPT_EINVAL);
    CHECK_FAILS(adept_ops_dot(a, NULL, &r), ADEPT_EINVAL);
    int64_t idx[8];
    CHECK_FAILS(adept_ops_topk(a, 7, &out, idx), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "k = 7") != NULL);
    adept_tensor *c = NULL;
    CHECK_OK(adept_ops_clone(h, &c)); /* clone works for every dtype */
    CHECK(c && c->dtype == ADEPT_BF16 && c->storage != h->storage);
    adept_tensor_free(c);
    adept_tensor_free(a);
    adept_tensor_free(b);
    adept_tensor_free(h);
    adept_tensor_free(i);
}

static void test_reductions(void) {
    for (int s = 0; s < NSHAPES; s++) {
        adept_tensor *a = random_f32(&shapes[s], 300 + s, 0), *b = random_f32(&shapes[s], 400 + s, 0);
        size_t n = adept_tensor_numel(a);
        const float *x = adept_tensor_f32(a), *z = adept_tensor_f32(b);
        double sum = 0, sabs = 0, sq = 0, mx = -INFINITY, mn = INFINITY, ab = 0, bb = 0;
        for (size_t i = 0; i < n; i++) {
            sum += x[i];
            sabs += fabs(x[i]);
            sq += (double)x[i] * x[i];
            ab += (double)x[i] * z[i];
            bb += (double)z[i] * z[i];
            mx = x[i] > mx ? x[i] : mx;
            mn = x[i] < mn ? x[i] : mn;
        }
        double r, tol = 1e-13 * (double)(n + 1);
        CHECK_OK(adept_ops_sum(a, &r));
        CHECK(fabs(r - sum) <= tol * (sabs + 1));
        CHECK_OK(adept_ops_mean(a, &r));
        CHECK(n ? fabs(r - sum / n) <= tol * (sabs / n + 1) : isnan(r));
        CHECK_OK(adept_ops_norm(a, &r));
        CHECK(close_rel(r, sqrt(sq), tol) || (n == 0 && r == 0));
        CHECK_OK(adept_ops_dot(a, b, &r));
        CHECK(fabs(r - ab) <= tol * (sqrt(sq * bb) + 1));
        CHECK_OK(adept_ops_cosine(a, b, &r));
        CHECK(n ? fabs(r - ab / sqrt(sq * bb)) <= 1e-9 : r == 0);
        if (n) {
            CHECK_OK(adept_ops_max(a, &r));
            CHECK(r == mx);
            CHECK_OK(adept_ops_min(a, &r));
            CHECK(r == mn);
        } else {
            CHECK_FAILS(adept_ops_max(a, &r), ADEPT_EINVAL);
            CHECK(strstr(adept_last_error(), "empty") != NULL);
            CHECK_FAILS(adept_ops_min(a, &r), ADEPT_EINVAL);
        }
        adept_tensor_free(a);
        adept_tensor_free(b);
    }
    /* NaN propagates through max and min; a zero vector has cosine 0 */
    int64_t s5[1] = {5000};
    adept_tensor *a = NULL, *z = NULL;
    CHECK_OK(adept_tensor_new(ADEPT_F32, 1, s5, &a));
    CHECK_OK(adept_tensor_new(ADEPT_F32, 1, s5, &z));
    adept_tensor_f32(a)[4321] = NAN;
    double r;
    CHECK_OK(adept_ops_max(a, &r));
    CHECK(isnan(r));
    CHECK_OK(adept_ops_min(a, &r));
    CHECK(isnan(r));
    CHECK_OK(adept_ops_cosine(z, z, &r));
    CHECK(r == 0);
    adept_tensor_free(a);
    adept_tensor_free(z);
}

static void test_reduce_dim(void) {
    for (int s = 0; s < NSHAPES; s++) {
        if (shapes[s].ndim == 0) continue;
        adept_tensor *a = random_f32(&shapes[s], 500 + s, 0);
        const float *x = adept_tensor_f32(a);
        for (int dim = -1; dim < a->ndim; dim++) {
            int d0 = dim < 0 ? a->ndim - 1 : dim;
            size_t outer = 1, inner = 1, d = (size_t)a->shape[d0];
            for (int i = 0; i < d0; i++) outer *= (size_t)a->shape[i];
            for (int i = d0 + 1; i < a->ndim; i++) inner *= (size_t)a->shape[i];
            int64_t oshape[4];
            for (int i = 0, j = 0; i < a->ndim; i++)
                if (i != d0) oshape[j++] = a->shape[i];
            for (int mean = 0; mean < 2; mean++) {
                adept_tensor *out = guarded(ADEPT_F32, a->ndim - 1, oshape);
                CHECK_OK(adept_ops_reduce_dim(mean ? ADEPT_REDUCE_MEAN : ADEPT_REDUCE_SUM, a, d0, out));
                int bad = 0;
                for (size_t o = 0; o < outer; o++)
                    for (size_t c = 0; c < inner; c++) {
                        double ref = 0;
                        for (size_t j = 0; j < d; j++) ref += x[(o * d + j) * inner + c];
                        if (mean) ref = d ? ref / d : NAN;
                        if (!close_rel(adept_tensor_f32(out)[o * inner + c], (float)ref, 1e-6) &&
                            !(fabs(adept_tensor_f32(out)[o * inner + c] - ref) <= 1e-5))
                            bad++;
                    }
                CHECK(bad == 0);
                CHECK(canary_intact(out));
                adept_tensor_free(out);
                adept_tensor *viaapi = NULL;
                CHECK_OK(mean ? adept_ops_mean_dim(a, dim, &viaapi) : adept_ops_sum_dim(a, dim, &viaapi));
                CHECK(viaapi && viaapi->ndim == a->ndim - 1);
                adept_tensor_free(viaapi);
            }
        }
        adept_tensor_free(a);
    }
}

/* scale_rows: every element is the single f32 product a[r, c] * w[r] (a product of two floats is exact in
   double, so rounding it to float is the reference, bitwise); shape and dtype errors name what was wrong. */
static void test_scale_rows(void) {
    for (int s = 0; s < NSHAPES; s++) {
        if (shapes[s].ndim == 0) continue;
        adept_tensor *a = random_f32(&shapes[s], 700 + s, 0);
        shape_t wsh = {1, {shapes[s].shape[0]}};
        adept_tensor *w = random_f32(&wsh, 800 + s, 0);
        size_t n = adept_tensor_numel(a), rows = (size_t)a->shape[0], cols = rows ? n / rows : 0;
        adept_tensor *out = guarded(ADEPT_F32, a->ndim, a->shape);
        CHECK_OK(adept_ops_scale_rows(a, w, out));
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            float ref = (float)((double)adept_tensor_f32(a)[i] * (double)adept_tensor_f32(w)[i / cols]);
            if (memcmp(&adept_tensor_f32(out)[i], &ref, sizeof ref)) bad++;
        }
        CHECK(bad == 0);
        CHECK(canary_intact(out));
        adept_tensor *fresh = NULL;
        CHECK_OK(adept_ops_scale_rows_new(a, w, &fresh));
        CHECK(fresh && !memcmp(adept_tensor_data(fresh), adept_tensor_data(out), n * sizeof(float)));
        adept_tensor_free(fresh);
        adept_tensor_free(out);
        adept_tensor_free(a);
        adept_tensor_free(w);
    }
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2};
    adept_tensor *a = NULL, *w3 = NULL, *w2 = NULL, *wi = NULL, *scalar = NULL, *out = NULL;
    CHECK_OK(adept_tensor_new(ADEPT_F32, 2, s23, &a));
    CHECK_OK(adept_tensor_new(ADEPT_F32, 1, s3, &w3));
    CHECK_OK(adept_tensor_new(ADEPT_F32, 1, s2, &w2));
    CHECK_OK(adept_tensor_new(ADEPT_I32, 1, s2, &wi));
    CHECK_OK(adept_tensor_new(ADEPT_F32, 0, s2, &scalar));
    CHECK_FAILS(adept_ops_scale_rows_new(a, w3, &out), ADEPT_ESHAPE);
    CHECK(strstr(adept_last_error(), "scale_rows: the row weights [3] must be [2], one per row of the tensor [2, 3]"));
    CHECK_FAILS(adept_ops_scale_rows_new(a, a, &out), ADEPT_ESHAPE);
    CHECK_FAILS(adept_ops_scale_rows_new(a, wi, &out), ADEPT_EUNSUPPORTED);
    CHECK(strstr(adept_last_error(), "scale_rows: dtype i32"));
    CHECK_FAILS(adept_ops_scale_rows_new(scalar, w2, &out), ADEPT_ESHAPE);
    CHECK(strstr(adept_last_error(), "has no rows"));
    CHECK(out == NULL);
    CHECK_FAILS(adept_ops_scale_rows(a, w2, w3), ADEPT_ESHAPE); /* output of another shape */
    adept_tensor_free(a), adept_tensor_free(w3), adept_tensor_free(w2), adept_tensor_free(wi);
    adept_tensor_free(scalar);
}

static const float *ref_data;

/* NaN first, then larger values, ties by the lower index. */
static int ref_cmp(const void *p, const void *q) {
    int64_t i = *(const int64_t *)p, j = *(const int64_t *)q;
    int in = isnan(ref_data[i]), jn = isnan(ref_data[j]);
    if (in != jn) return in ? -1 : 1;
    if (!in && ref_data[i] != ref_data[j]) return ref_data[i] > ref_data[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

static void test_topk(void) {
    for (int s = 0; s < NSHAPES; s++) {
        adept_tensor *a = random_f32(&shapes[s], 600 + s, 1); /* small integers: many ties */
        size_t n = adept_tensor_numel(a);
        if (n > 2) adept_tensor_f32(a)[n / 2] = NAN;
        const float *x = adept_tensor_f32(a);
        /* reference: a full sort of the indices by the documented order */
        int64_t *order = malloc((n + 1) * sizeof *order);
        for (size_t i = 0; i < n; i++) order[i] = (int64_t)i;
        ref_data = x;
        qsort(order, n, sizeof *order, ref_cmp);
        size_t ks[4] = {0, 1, n / 3, n};
        for (int ki = 0; ki < 4; ki++) {
            size_t k = ks[ki];
            if (k > n) continue;
            int64_t kshape[1] = {(int64_t)k};
            adept_tensor *vals = guarded(ADEPT_F32, 1, kshape);
            int64_t *idx = malloc((k + 1) * sizeof *idx);
            idx[k] = -77; /* canary after the index array */
            CHECK_OK(adept_ops_topk_into(a, k, vals, idx));
            int bad = 0;
            for (size_t j = 0; j < k; j++) {
                if (idx[j] != order[j]) bad++;
                float v = adept_tensor_f32(vals)[j];
                if (!(v == x[order[j]] || (isnan(v) && isnan(x[order[j]])))) bad++;
            }
            CHECK(bad == 0);
            CHECK(idx[k] == -77);
            CHECK(canary_intact(vals));
            free(idx);
            adept_tensor_free(vals);
        }
        free(order);
        adept_tensor_free(a);
    }
}

static void test_clone(void) {
    shape_t sh = {2, {7, 1023}};
    adept_tensor *a = random_f32(&sh, 700, 0), *c = NULL;
    CHECK_OK(adept_ops_clone(a, &c));
    CHECK(c->storage != a->storage && adept_tensor_same_shape(a, c));
    CHECK(memcmp(adept_tensor_data(a), adept_tensor_data(c), adept_tensor_nbytes(a)) == 0);
    adept_tensor_f32(c)[0] += 1;
    CHECK(adept_tensor_f32(a)[0] != adept_tensor_f32(c)[0]);
    adept_tensor_free(a);
    adept_tensor_free(c);
}

/* Every reduction gives bitwise-identical results with 1, 2 and 3 threads. */
static void test_thread_independence(void) {
    shape_t big = {2, {1001, 1003}};
    adept_tensor *a = random_f32(&big, 800, 0), *b = random_f32(&big, 801, 0);
    double r[3][8];
    adept_tensor *sd[3][2];
    int threads[3] = {1, 2, 3};
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(threads[t]);
        CHECK_OK(adept_ops_sum(a, &r[t][0]));
        CHECK_OK(adept_ops_mean(a, &r[t][1]));
        CHECK_OK(adept_ops_norm(a, &r[t][2]));
        CHECK_OK(adept_ops_max(a, &r[t][3]));
        CHECK_OK(adept_ops_min(a, &r[t][4]));
        CHECK_OK(adept_ops_dot(a, b, &r[t][5]));
        CHECK_OK(adept_ops_cosine(a, b, &r[t][6]));
        r[t][7] = 0;
        CHECK_OK(adept_ops_sum_dim(a, 0, &sd[t][0]));
        CHECK_OK(adept_ops_mean_dim(a, 1, &sd[t][1]));
    }
    for (int t = 1; t < 3; t++) {
        CHECK(memcmp(r[0], r[t], sizeof r[0]) == 0);
        for (int k = 0; k < 2; k++)
            CHECK(memcmp(adept_tensor_data(sd[0][k]), adept_tensor_data(sd[t][k]), adept_tensor_nbytes(sd[0][k])) == 0);
    }
    for (int t = 0; t < 3; t++) {
        adept_tensor_free(sd[t][0]);
        adept_tensor_free(sd[t][1]);
    }
    omp_set_num_threads(2);
    adept_tensor_free(a);
    adept_tensor_free(b);
}

/* A sum over 10^7 elements within 1e-6 relative of the exact value (single precision accumulation misses it
   by orders of magnitude: 0.1f added 10^7 times in float gives about 1087937). */
static void test_large_sum_accuracy(void) {
    int64_t shape[1] = {10000000};
    adept_tensor *a = NULL;
    CHECK_OK(adept_tensor_new(ADEPT_F32, 1, shape, &a));
    float *x = adept_tensor_f32(a);
    for (size_t i = 0; i < 10000000; i++) x[i] = 0.1f;
    double r, exact = 1e7 * (double)0.1f; /* exact in double: 24-bit mantissa times a 24-bit integer */
    CHECK_OK(adept_ops_sum(a, &r));
    CHECK(fabs(r - exact) <= 1e-9 * exact);
    printf("sum of 10^7 x 0.1f: %.10f (exact %.10f, relative error %.2e)\n", r, exact, fabs(r - exact) / exact);
    /* random values: the exact sum by compensated summation in long double */
    long double s = 0, c = 0;
    for (size_t i = 0; i < 10000000; i++) {
        x[i] = (float)(adept_rng_uniform(900, 0, i) * 2.0 - 0.25);
        long double t = s + x[i];
        c += fabsl(s) >= fabsl((long double)x[i]) ? (s - t) + x[i] : ((long double)x[i] - t) + s;
        s = t;
    }
    double exact2 = (double)(s + c);
    CHECK_OK(adept_ops_sum(a, &r));
    CHECK(fabs(r - exact2) <= 1e-9 * fabs(exact2));
    printf("random sum of 10^7: %.6f (exact %.6f, relative error %.2e)\n", r, exact2, fabs(r - exact2) / fabs(exact2));
    CHECK_OK(adept_ops_mean(a, &r));
    CHECK(fabs(r - exact2 / 1e7) <= 1e-9 * fabs(exact2 / 1e7));
    adept_tensor_free(a);
}

/* The dispatch table: a tensor's device picks the backend; a fake "CUDA" backend (host memory wrapped as device
   storage) receives the call once registered, and mixing devices is refused. */
static int fake_calls;
static adept_status fake_unary(adept_unary_op op, const adept_tensor *a, adept_tensor *out) {
    fake_calls++;
    return ADEPT_OK;
}

static void keep_static(void *data, size_t nbytes, void *ctx) {} /* the test's arrays are static */

static void test_dispatch(void) {
    static float host_a[4], host_b[4];
    adept_storage *sa = NULL, *sb = NULL;
    adept_tensor *a = NULL, *b = NULL, *cpu = NULL;
    int64_t shape[1] = {4};
    CHECK_OK(adept_storage_wrap(host_a, sizeof host_a, ADEPT_CUDA, keep_static, NULL, &sa));
    CHECK_OK(adept_storage_wrap(host_b, sizeof host_b, ADEPT_CUDA, keep_static, NULL, &sb));
    CHECK_OK(adept_tensor_view(sa, 0, ADEPT_F32, 1, shape, &a));
    CHECK_OK(adept_tensor_view(sb, 0, ADEPT_F32, 1, shape, &b));
    CHECK_OK(adept_tensor_new(ADEPT_F32, 1, shape, &cpu));
    /* a fake device table with abs only: the other tensor ops are refused by name */
    adept_backend fake = {.name = "fake", .device = ADEPT_CUDA, .unary = fake_unary};
    adept_backend_register(ADEPT_CUDA, &fake);
    CHECK(adept_backend_for(ADEPT_CUDA) == &fake);
    CHECK(strcmp(adept_backend_for(ADEPT_CPU)->name, "cpu") == 0);
    double sum = 0;
    CHECK_FAILS(adept_ops_reduce(ADEPT_REDUCE_SUM, a, &sum), ADEPT_EUNSUPPORTED);
    CHECK(strstr(adept_last_error(), "sum: not implemented on the fake device") != NULL);
    CHECK_OK(adept_ops_unary(ADEPT_OP_ABS, a, b));
    CHECK(fake_calls == 1);
    CHECK_FAILS(adept_ops_unary(ADEPT_OP_ABS, a, cpu), ADEPT_ESHAPE);
    CHECK(strstr(adept_last_error(), "different devices") != NULL);
    CHECK(fake_calls == 1);
    adept_backend_register(ADEPT_CUDA, NULL);
    adept_storage_release(sa);
    adept_storage_release(sb);
    adept_tensor_free(a);
    adept_tensor_free(b);
    adept_tensor_free(cpu);
}

int main(void) {
    test_unary();
    test_binary_and_scalar();
    test_int32();
    test_errors();
    test_reductions();
    test_reduce_dim();
    test_scale_rows();
    test_topk();
    test_clone();
    test_dispatch();
    test_thread_independence();
    test_large_sum_accuracy();
    return check_summary();
}
