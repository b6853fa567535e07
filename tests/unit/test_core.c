/* Core: dtype conversions (round to nearest even), storage refcounting, views, RNG determinism. */
#include <string.h>

#include "adept/rng.h"
#include "adept/tensor.h"
#include "check.h"

static void test_bf16_rounding(void) {
    /* 1 + 2^-8 is exactly halfway between two bf16 values (1 and 1 + 2^-7): ties go to even (1). */
    CHECK(adept_f32_to_bf16(1.0f + 1.0f / 256) == 0x3f80);
    /* 1 + 3*2^-8 is halfway between 1+2^-7 (odd mantissa) and 1+2^-6: ties go to even (1 + 2^-6). */
    CHECK(adept_f32_to_bf16(1.0f + 3.0f / 256) == 0x3f82);
    CHECK(adept_f32_to_bf16(1.0f + 1.0f / 256 + 1.0f / 65536) == 0x3f81); /* above halfway rounds up */
    CHECK(adept_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(adept_bf16_to_f32(adept_f32_to_bf16(-2.5f)) == -2.5f);
    CHECK(isnan(adept_bf16_to_f32(adept_f32_to_bf16(NAN))));
    CHECK(isinf(adept_bf16_to_f32(adept_f32_to_bf16(INFINITY))));
}

static void test_f16_rounding(void) {
    CHECK(adept_f32_to_f16(1.0f) == 0x3c00);
    CHECK(adept_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);     /* halfway, ties to even */
    CHECK(adept_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);     /* halfway from odd, rounds up to even */
    CHECK(adept_f32_to_f16(65504.0f) == 0x7bff);               /* largest finite */
    CHECK(adept_f32_to_f16(65520.0f) == 0x7c00);               /* rounds to infinity */
    CHECK(adept_f32_to_f16(5.960464477539063e-08f) == 0x0001); /* smallest subnormal */
    CHECK(adept_f32_to_f16(2.9802322387695312e-08f) == 0x0000); /* half of it: ties to even, zero */
    CHECK(adept_f16_to_f32(0x0001) == 5.960464477539063e-08f);
    CHECK(adept_f16_to_f32(0xc000) == -2.0f);
    /* every f16 value survives f16 -> f32 -> f16 */
    int all_round_trip = 1;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaNs */
        if (adept_f32_to_f16(adept_f16_to_f32((uint16_t)h)) != h) all_round_trip = 0;
    }
    CHECK(all_round_trip);
}

static void test_storage_and_views(void) {
    int64_t shape[2] = {3, 4};
    adept_tensor *t = NULL, *v = NULL;
    CHECK_OK(adept_tensor_new(ADEPT_F32, 2, shape, &t));
    CHECK(((uintptr_t)adept_tensor_data(t) % ADEPT_ALIGN) == 0);
    CHECK(adept_tensor_numel(t) == 12);
    int64_t row[1] = {4};
    CHECK_OK(adept_tensor_view(t->storage, 4 * sizeof(float), ADEPT_F32, 1, row, &v));
    adept_tensor_f32(t)[5] = 7.0f;
    adept_tensor_free(t); /* the view keeps the storage alive */
    CHECK(adept_tensor_f32(v)[1] == 7.0f);
    int64_t too_long[1] = {100};
    adept_tensor *bad = NULL;
    CHECK_FAILS(adept_tensor_view(v->storage, 0, ADEPT_F32, 1, too_long, &bad), ADEPT_EINVAL);
    int64_t neg[1] = {-1};
    CHECK_FAILS(adept_tensor_new(ADEPT_F32, 1, neg, &bad), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "negative") != NULL);
    adept_tensor_free(v);
}

static void test_rng(void) {
    float a[1000], b[1000];
    adept_rng_fill_normal(a, 1000, 42, 0, 0, 1);
    adept_rng_fill_normal(b, 1000, 42, 0, 0, 1);
    CHECK(memcmp(a, b, sizeof a) == 0);
    adept_rng_fill_normal(b, 1000, 43, 0, 0, 1);
    CHECK(memcmp(a, b, sizeof a) != 0);
    double sum = 0, sq = 0;
    enum { N = 200000 };
    for (uint64_t i = 0; i < N; i++) {
        double x = adept_rng_normal(7, 0, i);
        sum += x;
        sq += x * x;
    }
    CHECK_NEAR(sum / N, 0.0, 0.01);
    CHECK_NEAR(sq / N, 1.0, 0.02);
    adept_rng r = adept_rng_make(5);
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++) counts[adept_rng_next_below(&r, 10)]++;
    for (int i = 0; i < 10; i++) CHECK(counts[i] > 9500 && counts[i] < 10500);
}

int main(void) {
    test_bf16_rounding();
    test_f16_rounding();
    test_storage_and_views();
    test_rng();
    return check_summary();
}
