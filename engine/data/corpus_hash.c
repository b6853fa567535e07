/* A fast 64-bit streaming content hash for corpus cache keys: four independent multiply-rotate lanes over
   8-byte words (so the loop runs at memory speed), folded and avalanched at the end. Not cryptographic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/input.h"
#include "data/corpus_internal.h"

#define K1 0x9E3779B185EBCA87ull
#define K2 0xC2B2AE3D27D4EB4Full
#define K3 0x165667B19E3779F9ull

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t rd64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* host order: keys are per machine anyway (the cache file is host-endian too) */
}
static inline uint64_t lane(uint64_t acc, uint64_t w) { return rotl(acc + w * K2, 31) * K1; }

void adept_hash_init(adept_hash *h, uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->v[0] = seed + K1 + K2;
    h->v[1] = seed + K2;
    h->v[2] = seed;
    h->v[3] = seed - K1;
}

static void blocks(adept_hash *h, const unsigned char *p, size_t nblocks) {
    uint64_t a = h->v[0], b = h->v[1], c = h->v[2], d = h->v[3];
    for (size_t i = 0; i < nblocks; i++, p += 32) {
        a = lane(a, rd64(p));
        b = lane(b, rd64(p + 8));
        c = lane(c, rd64(p + 16));
        d = lane(d, rd64(p + 24));
    }
    h->v[0] = a, h->v[1] = b, h->v[2] = c, h->v[3] = d;
}

void adept_hash_update(adept_hash *h, const void *data, size_t n) {
    const unsigned char *p = data;
    h->total += n;
    if (h->ntail) {
        size_t take = 32 - h->ntail < n ? 32 - h->ntail : n;
        memcpy(h->tail + h->ntail, p, take);
        h->ntail += take, p += take, n -= take;
        if (h->ntail < 32) return;
        blocks(h, h->tail, 1);
        h->ntail = 0;
    }
    blocks(h, p, n / 32);
    p += n / 32 * 32, n %= 32;
    memcpy(h->tail, p, n);
    h->ntail = n;
}

uint64_t adept_hash_final(const adept_hash *h) {
    uint64_t x = rotl(h->v[0], 1) + rotl(h->v[1], 7) + rotl(h->v[2], 12) + rotl(h->v[3], 18);
    for (int i = 0; i < 4; i++) x = (x ^ lane(0, h->v[i])) * K1 + K3;
    x += h->total;
    size_t i = 0;
    for (; i + 8 <= h->ntail; i += 8) x = rotl(x ^ lane(0, rd64(h->tail + i)), 27) * K1 + K3;
    for (; i < h->ntail; i++) x = rotl(x ^ (h->tail[i] * K3), 11) * K1;
    x ^= x >> 33, x *= K2, x ^= x >> 29, x *= K3, x ^= x >> 32;
    return x;
}

uint64_t adept_hash_bytes(const void *data, size_t n, uint64_t seed) {
    adept_hash h;
    adept_hash_init(&h, seed);
    adept_hash_update(&h, data, n);
    return adept_hash_final(&h);
}

adept_status adept_hash_file(adept_hash *h, const char *path) {
    FILE *fp;
    ADEPT_TRY(adept_input_fopen(path, "dataset", &fp)); /* a FIFO or device would never end */
    size_t cap = 1 << 20, n;
    unsigned char *buf = malloc(cap);
    if (!buf) { fclose(fp); return adept_fail(ADEPT_ENOMEM, "%s: out of memory hashing", path); }
    while ((n = fread(buf, 1, cap, fp)) > 0) adept_hash_update(h, buf, n);
    int err = ferror(fp);
    free(buf);
    fclose(fp);
    if (err) return adept_fail(ADEPT_EIO, "%s: read error while hashing", path);
    return ADEPT_OK;
}
