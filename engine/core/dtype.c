/* Dtype names, sizes and the float16/bfloat16 conversions every loader and saver relies on. */
#include "adept/tensor.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name, *st_name, *torch_name;
    size_t size;
    int is_float;
} dtype_info[ADEPT_DTYPE_COUNT] = {
    [ADEPT_F32] = {"f32", "F32", "float32", 4, 1},  [ADEPT_F64] = {"f64", "F64", "float64", 8, 1},
    [ADEPT_BF16] = {"bf16", "BF16", "bfloat16", 2, 1}, [ADEPT_F16] = {"f16", "F16", "float16", 2, 1},
    [ADEPT_I32] = {"i32", "I32", "int32", 4, 0},    [ADEPT_I64] = {"i64", "I64", "int64", 8, 0},
    [ADEPT_U8] = {"u8", "U8", "uint8", 1, 0},       [ADEPT_I8] = {"i8", "I8", "int8", 1, 0},
    [ADEPT_U16] = {"u16", "U16", "uint16", 2, 0},   [ADEPT_U32] = {"u32", "U32", "uint32", 4, 0},
};

static int dtype_valid(adept_dtype d) { return (unsigned)d < ADEPT_DTYPE_COUNT; }

size_t adept_dtype_size(adept_dtype d) { return dtype_valid(d) ? dtype_info[d].size : 0; }
const char *adept_dtype_name(adept_dtype d) { return dtype_valid(d) ? dtype_info[d].name : "?"; }
const char *adept_dtype_safetensors_name(adept_dtype d) { return dtype_valid(d) ? dtype_info[d].st_name : "?"; }
int adept_dtype_is_float(adept_dtype d) { return dtype_valid(d) && dtype_info[d].is_float; }

adept_status adept_dtype_parse(const char *name, adept_dtype *out) {
    for (int d = 0; d < ADEPT_DTYPE_COUNT; d++) {
        if (!strcmp(name, dtype_info[d].name) || !strcmp(name, dtype_info[d].st_name) ||
            !strcmp(name, dtype_info[d].torch_name)) {
            *out = (adept_dtype)d;
            return ADEPT_OK;
        }
    }
    return adept_fail(ADEPT_EUNSUPPORTED,
                      "unknown dtype '%s' (expected f32, f64, bf16, f16, i32, i64, u8, i8, u16 or u32)", name);
}

static uint32_t float_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static float bits_float(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

uint16_t adept_f32_to_bf16(float x) {
    uint32_t u = float_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float adept_bf16_to_f32(uint16_t h) { return bits_float((uint32_t)h << 16); }

uint16_t adept_f32_to_f16(float x) {
    uint32_t u = float_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return sign | 0x7e00u;        /* NaN */
    if (absu >= 0x477ff000u) return sign | 0x7c00u;       /* overflows to inf after rounding */
    if (absu < 0x38800000u) {                             /* result is subnormal or zero */
        /* value = absu as float; subnormal unit is 2^-24 */
        float a = bits_float(absu);
        float scaled = a * 16777216.0f;                   /* exact: multiply by 2^24 */
        /* round to nearest even using the FPU's default rounding mode */
        uint32_t m = (uint32_t)nearbyintf(scaled);
        return sign | (uint16_t)m;
    }
    uint32_t exp = ((absu >> 23) - 127 + 15);
    uint32_t mant = absu & 0x7fffffu;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1; /* may carry into the exponent: correct */
    return sign | (uint16_t)h;
}

float adept_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) {
        float v = (float)mant * (1.0f / 16777216.0f); /* mant * 2^-24 */
        return sign ? -v : v;
    }
    if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));
    return bits_float(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

static double load_as_double(const void *src, adept_dtype d, size_t i) {
    switch (d) {
    case ADEPT_F32: return ((const float *)src)[i];
    case ADEPT_F64: return ((const double *)src)[i];
    case ADEPT_BF16: return adept_bf16_to_f32(((const uint16_t *)src)[i]);
    case ADEPT_F16: return adept_f16_to_f32(((const uint16_t *)src)[i]);
    case ADEPT_I32: return ((const int32_t *)src)[i];
    case ADEPT_I64: return (double)((const int64_t *)src)[i];
    case ADEPT_U8: return ((const uint8_t *)src)[i];
    case ADEPT_I8: return ((const int8_t *)src)[i];
    case ADEPT_U16: return ((const uint16_t *)src)[i];
    case ADEPT_U32: return ((const uint32_t *)src)[i];
    default: return 0;
    }
}

static double clamp_trunc(double v, double lo, double hi) {
    if (isnan(v)) return 0;
    v = trunc(v);
    return v < lo ? lo : v > hi ? hi : v;
}

static void store_from_double(void *dst, adept_dtype d, size_t i, double v) {
    switch (d) {
    case ADEPT_F32: ((float *)dst)[i] = (float)v; break;
    case ADEPT_F64: ((double *)dst)[i] = v; break;
    case ADEPT_BF16: ((uint16_t *)dst)[i] = adept_f32_to_bf16((float)v); break;
    case ADEPT_F16: ((uint16_t *)dst)[i] = adept_f32_to_f16((float)v); break;
    case ADEPT_I32: ((int32_t *)dst)[i] = (int32_t)clamp_trunc(v, INT32_MIN, INT32_MAX); break;
    case ADEPT_I64: ((int64_t *)dst)[i] = (int64_t)clamp_trunc(v, -9.2233720368547748e18, 9.2233720368547748e18 - 1024); break;
    case ADEPT_U8: ((uint8_t *)dst)[i] = (uint8_t)clamp_trunc(v, 0, UINT8_MAX); break;
    case ADEPT_I8: ((int8_t *)dst)[i] = (int8_t)clamp_trunc(v, INT8_MIN, INT8_MAX); break;
    case ADEPT_U16: ((uint16_t *)dst)[i] = (uint16_t)clamp_trunc(v, 0, UINT16_MAX); break;
    case ADEPT_U32: ((uint32_t *)dst)[i] = (uint32_t)clamp_trunc(v, 0, UINT32_MAX); break;
    default: break;
    }
}

adept_status adept_convert(void *dst, adept_dtype dst_dtype, const void *src, adept_dtype src_dtype, size_t n) {
    if (!dtype_valid(dst_dtype) || !dtype_valid(src_dtype))
        return adept_fail(ADEPT_EINVAL, "convert: invalid dtype");
    if (dst_dtype == src_dtype) {
        memmove(dst, src, n * dtype_info[dst_dtype].size);
        return ADEPT_OK;
    }
    if (src_dtype == ADEPT_BF16 && dst_dtype == ADEPT_F32) { /* the hot path of model loading */
        const uint16_t *s = src; float *o = dst;
        #pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) o[i] = adept_bf16_to_f32(s[i]);
        return ADEPT_OK;
    }
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) store_from_double(dst, dst_dtype, i, load_as_double(src, src_dtype, i));
    return ADEPT_OK;
}

double adept_tensor_get_flat(const adept_tensor *t, size_t i) { return load_as_double(adept_tensor_data(t), t->dtype, i); }
void adept_tensor_set_flat(adept_tensor *t, size_t i, double v) { store_from_double(adept_tensor_data(t), t->dtype, i, v); }

/* Integer range of an integer dtype. */
static void int_range(adept_dtype d, int64_t *lo, int64_t *hi) {
    switch (d) {
    case ADEPT_I32: *lo = INT32_MIN, *hi = INT32_MAX; return;
    case ADEPT_U8: *lo = 0, *hi = UINT8_MAX; return;
    case ADEPT_I8: *lo = INT8_MIN, *hi = INT8_MAX; return;
    case ADEPT_U16: *lo = 0, *hi = UINT16_MAX; return;
    case ADEPT_U32: *lo = 0, *hi = UINT32_MAX; return;
    default: *lo = INT64_MIN, *hi = INT64_MAX; return;
    }
}

int64_t adept_tensor_get_flat_int(const adept_tensor *t, size_t i) {
    const void *p = adept_tensor_data(t);
    switch (t->dtype) {
    case ADEPT_I64: return ((const int64_t *)p)[i];
    case ADEPT_I32: return ((const int32_t *)p)[i];
    case ADEPT_U8: return ((const uint8_t *)p)[i];
    case ADEPT_I8: return ((const int8_t *)p)[i];
    case ADEPT_U16: return ((const uint16_t *)p)[i];
    case ADEPT_U32: return ((const uint32_t *)p)[i];
    default: return (int64_t)clamp_trunc(load_as_double(p, t->dtype, i), -9.2233720368547748e18, 9.2233720368547748e18 - 1024);
    }
}

adept_status adept_tensor_set_flat_int(adept_tensor *t, size_t i, int64_t v) {
    if (adept_dtype_is_float(t->dtype)) return adept_tensor_set_flat_checked(t, i, (double)v);
    int64_t lo, hi;
    int_range(t->dtype, &lo, &hi);
    if (v < lo || v > hi)
        return adept_fail(ADEPT_EINVAL, "%lld does not fit %s (range [%lld, %lld])", (long long)v,
                          adept_dtype_name(t->dtype), (long long)lo, (long long)hi);
    void *p = adept_tensor_data(t);
    switch (t->dtype) {
    case ADEPT_I64: ((int64_t *)p)[i] = v; break;
    case ADEPT_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case ADEPT_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case ADEPT_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    case ADEPT_U16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case ADEPT_U32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    default: break;
    }
    return ADEPT_OK;
}

adept_status adept_tensor_set_flat_checked(adept_tensor *t, size_t i, double v) {
    if (!adept_dtype_is_float(t->dtype)) {
        /* fractions truncate toward zero (as adept_convert and torch do); what does not fit is refused rather
           than saturated. 2^63 is exactly a double, and every double below it in magnitude converts exactly. */
        double w = trunc(v);
        if (!(w >= -9223372036854775808.0 && w < 9223372036854775808.0))
            return adept_fail(ADEPT_EINVAL, "%.17g does not fit %s", v, adept_dtype_name(t->dtype));
        return adept_tensor_set_flat_int(t, i, (int64_t)w);
    }
    if (isfinite(v)) { /* a finite value must stay finite: convert one element and look */
        uint64_t scratch = 0;
        store_from_double(&scratch, t->dtype, 0, v);
        if (!isfinite(load_as_double(&scratch, t->dtype, 0)))
            return adept_fail(ADEPT_EINVAL, "%.17g overflows %s (it would become infinity)", v, adept_dtype_name(t->dtype));
    }
    store_from_double(adept_tensor_data(t), t->dtype, i, v);
    return ADEPT_OK;
}
