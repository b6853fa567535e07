/* Counter-based RNG: a SplitMix64-style finaliser over (seed, stream, counter). Every draw is a pure
   function of its coordinates, so parallel fills and resumed runs reproduce exactly. */
#include "adept/rng.h"

#include <math.h>

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t adept_rng_bits(uint64_t seed, uint64_t stream, uint64_t counter) {
    /* Two rounds keyed by seed and stream decorrelate neighbouring seeds and streams. */
    uint64_t key = mix64(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) ^ mix64(stream + 0xd1b54a32d192ed03ull);
    return mix64(mix64(counter + key) + 0x9e3779b97f4a7c15ull);
}

double adept_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
    return (double)(adept_rng_bits(seed, stream, counter) >> 11) * (1.0 / 9007199254740992.0);
}

double adept_rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
    double u1 = adept_rng_uniform(seed, stream, 2 * index);
    double u2 = adept_rng_uniform(seed, stream, 2 * index + 1);
    double r = sqrt(-2.0 * log(1.0 - u1)); /* 1 - u1 is in (0, 1] */
    return r * cos(6.283185307179586 * u2);
}

void adept_rng_fill_normal(float *out, size_t n, uint64_t seed, uint64_t stream, float mean, float std) {
    #pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) out[i] = (float)(mean + std * adept_rng_normal(seed, stream, i));
}

uint64_t adept_rng_next(adept_rng *r) { return adept_rng_bits(r->seed, 0x5eed, r->counter++); }

double adept_rng_next_uniform(adept_rng *r) { return (double)(adept_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t adept_rng_next_below(adept_rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the partial top bucket */
    uint64_t x;
    do x = adept_rng_next(r);
    while (x >= limit);
    return x % n;
}
