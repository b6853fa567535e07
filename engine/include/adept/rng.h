/* Counter-based random numbers: each value is a pure function of (seed, stream, counter), so a fill is
   identical for any thread count, and a stream's position is one integer a checkpoint can save. */
#ifndef ADEPT_RNG_H
#define ADEPT_RNG_H

#include <stddef.h>
#include <stdint.h>

/* 64 random bits for (seed, stream, counter). */
uint64_t adept_rng_bits(uint64_t seed, uint64_t stream, uint64_t counter);
/* Uniform in [0, 1) with 53 bits. */
double adept_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);
/* Standard normal for element `index` (Box-Muller on two uniforms of the element's own counters). */
double adept_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);
/* out[i] = mean + std * normal(seed, stream, i), in parallel. */
void adept_rng_fill_normal(float *out, size_t n, uint64_t seed, uint64_t stream, float mean, float std);

/* A sequential stream for sampling and shuffling; the state is two integers. */
typedef struct adept_rng {
    uint64_t seed;
    uint64_t counter;
} adept_rng;

static inline adept_rng adept_rng_make(uint64_t seed) { adept_rng r = {seed, 0}; return r; }
uint64_t adept_rng_next(adept_rng *r);
double adept_rng_next_uniform(adept_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t adept_rng_next_below(adept_rng *r, uint64_t n);

#endif
