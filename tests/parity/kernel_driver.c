/* The engine's side of tests/parity/test_attention_xent.py (built as parity_kernel_driver, not a test itself):
   runs the CPU backend's flash-style attention through the backend table (adept/backend.h) on inputs drawn
   here, and writes inputs and results for PyTorch's float64 reference to recompute.
   usage: parity_kernel_driver attention B T H KH D seed out.bin [window]   (window: sliding window, 0 = none)
   out.bin: q, k, v, dy, y, lse, dq, dk, dv as little-endian float32 arrays, in that order (q, dy, y, dq
   [B, T, H*D]; k, v, dk, dv [B, T, KH*D]; lse [B, H, T]); dq, dk, dv accumulated from zero. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/backend.h"

static uint64_t state;
static float urand(void) { /* splitmix64, uniform in [-1, 1) */
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static size_t arg(const char *s, const char *what) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 0) {
        fprintf(stderr, "parity_kernel_driver: %s must be a non-negative integer, got '%s'\n", what, s);
        exit(2);
    }
    return (size_t)v;
}

int main(int argc, char **argv) {
    if ((argc != 9 && argc != 10) || strcmp(argv[1], "attention") != 0) {
        fprintf(stderr, "usage: %s attention B T H KH D seed out.bin [window]\n", argv[0]);
        return 2;
    }
    size_t B = arg(argv[2], "B"), T = arg(argv[3], "T"), H = arg(argv[4], "H"), KH = arg(argv[5], "KH");
    size_t D = arg(argv[6], "D");
    state = arg(argv[7], "seed");
    size_t W = argc == 10 ? arg(argv[9], "window") : 0;
    if (!B || !T || !H || !KH || !D || H % KH) {
        fprintf(stderr, "parity_kernel_driver: B, T, H, KH, D must be positive and H a multiple of KH\n");
        return 2;
    }
    size_t nq = B * T * H * D, nk = B * T * KH * D, nl = B * H * T;
    size_t sizes[9] = {nq, nk, nk, nq, nq, nl, nq, nk, nk};
    float *buf[9];
    for (int i = 0; i < 9; i++) {
        buf[i] = calloc(sizes[i], sizeof(float));
        if (!buf[i]) {
            fprintf(stderr, "parity_kernel_driver: out of memory\n");
            return 1;
        }
    }
    for (int i = 0; i < 4; i++)
        for (size_t j = 0; j < sizes[i]; j++) buf[i][j] = urand();
    const adept_backend *be = adept_backend_cpu();
    int blas = be->enter();
    be->attention_forward(buf[4], buf[5], buf[0], buf[1], buf[2], B, T, H, KH, D, W);
    be->attention_backward(buf[6], buf[7], buf[8], buf[3], buf[4], buf[5], buf[0], buf[1], buf[2], B, T, H, KH, D, W);
    be->exit(blas);
    FILE *f = fopen(argv[8], "wb");
    if (!f) {
        perror(argv[8]);
        return 1;
    }
    for (int i = 0; i < 9; i++)
        if (fwrite(buf[i], sizeof(float), sizes[i], f) != sizes[i]) {
            perror(argv[8]);
            return 1;
        }
    if (fclose(f) != 0) {
        perror(argv[8]);
        return 1;
    }
    for (int i = 0; i < 9; i++) free(buf[i]);
    return 0;
}
