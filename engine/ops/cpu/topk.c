/* CPU topk over the flattened tensor: a bounded heap of the k best (value, index) pairs in one pass, then a
   sort. Order: NaN above every number (as PyTorch), larger values first, ties by the lower index. */
#include <math.h>
#include <stdlib.h>

#include "ops/cpu/cpu.h"

typedef struct {
    double v;
    int64_t i;
} entry;

/* Nonzero when x ranks before y. A total order, so the result is unique. */
static int ranks_before(entry x, entry y) {
    int xn = isnan(x.v), yn = isnan(y.v);
    if (xn != yn) return xn;
    if (!xn && x.v != y.v) return x.v > y.v;
    return x.i < y.i;
}

static int cmp_entry(const void *p, const void *q) {
    entry x = *(const entry *)p, y = *(const entry *)q;
    return ranks_before(x, y) ? -1 : ranks_before(y, x) ? 1 : 0;
}

/* The heap keeps the worst-ranked of the k kept entries at the root. */
static void sift_down(entry *h, size_t k, size_t p) {
    for (;;) {
        size_t l = 2 * p + 1, r = l + 1, w = p;
        if (l < k && ranks_before(h[w], h[l])) w = l;
        if (r < k && ranks_before(h[w], h[r])) w = r;
        if (w == p) return;
        entry t = h[p]; h[p] = h[w]; h[w] = t;
        p = w;
    }
}

static void sift_up(entry *h, size_t c) {
    while (c > 0) {
        size_t p = (c - 1) / 2;
        if (!ranks_before(h[p], h[c])) return;
        entry t = h[p]; h[p] = h[c]; h[c] = t;
        c = p;
    }
}

static inline void offer(entry *h, size_t k, size_t *size, entry e) {
    if (*size < k) {
        h[*size] = e;
        sift_up(h, (*size)++);
    } else if (ranks_before(e, h[0])) {
        h[0] = e;
        sift_down(h, k, 0);
    }
}

adept_status adept_cpu_topk(const adept_tensor *a, size_t k, adept_tensor *values, int64_t *indices) {
    size_t n = adept_tensor_numel(a), size = 0;
    entry *h = malloc(k * sizeof *h);
    if (!h) return adept_fail(ADEPT_ENOMEM, "topk: cannot allocate a heap of %zu entries", k);
    if (a->dtype == ADEPT_F32) {
        const float *x = adept_tensor_f32(a);
        size_t i = 0;
        for (; i < n && size < k; i++) offer(h, k, &size, (entry){x[i], (int64_t)i});
        /* Fast rejection: a later element that is not above the worst kept value cannot enter (ties go to
           the lower index); NaN fails the comparison and takes the full path. */
        float worst = k ? (float)h[0].v : 0; /* exact: every kept value came from a float */
        for (; i < n; i++)
            if (!(x[i] <= worst)) {
                offer(h, k, &size, (entry){x[i], (int64_t)i});
                worst = (float)h[0].v;
            }
    } else {
        const int32_t *x = adept_tensor_i32(a);
        for (size_t i = 0; i < n; i++) offer(h, k, &size, (entry){x[i], (int64_t)i});
    }
    qsort(h, k, sizeof *h, cmp_entry);
    for (size_t j = 0; j < k; j++) {
        indices[j] = h[j].i;
        if (a->dtype == ADEPT_F32) adept_tensor_f32(values)[j] = (float)h[j].v;
        else adept_tensor_i32(values)[j] = (int32_t)h[j].v;
    }
    free(h);
    return ADEPT_OK;
}
