/* Attention of one query token against a KV cache, for generation (adept_backend.attention_decode). Serial over
   heads: one token's work is too small to pay an OpenMP fork per layer. libm's expf and this summation order
   are the first engine's, so greedy generation keeps its exact token sequence. */
#include <math.h>
#include <string.h>

#include "ops/cpu/layers.h"

void adept_attention_decode(float *y, float *att, const float *q, const float *k_cache, const float *v_cache,
                            size_t n, size_t ld, size_t H, size_t KH, size_t D) {
    size_t grp = H / KH;
    float scale = (float)(1.0 / sqrt((double)D));
    for (size_t hh = 0; hh < H; hh++) {
        const float *qh = q + hh * D;
        float *a = att + hh * n;
        size_t g = hh / grp;
        float mx = -INFINITY;
        for (size_t t = 0; t < n; t++) {
            const float *kt = k_cache + t * ld + g * D;
            float dot = 0;
            for (size_t i = 0; i < D; i++) dot += qh[i] * kt[i];
            a[t] = dot * scale;
            if (a[t] > mx) mx = a[t];
        }
        float sum = 0;
        for (size_t t = 0; t < n; t++) { a[t] = expf(a[t] - mx); sum += a[t]; }
        float *yh = y + hh * D;
        memset(yh, 0, D * sizeof(float));
        for (size_t t = 0; t < n; t++) {
            const float *vt = v_cache + t * ld + g * D;
            float p = a[t] / sum;
            for (size_t i = 0; i < D; i++) yh[i] += p * vt[i];
        }
    }
}
