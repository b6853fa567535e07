/* Edit distance for "did you mean" hints: small strings, so the O(n*m) table on the stack or heap is fine. */
#include "adept/suggest.h"

#include <stdlib.h>
#include <string.h>

static size_t min3(size_t a, size_t b, size_t c) { return a < b ? (a < c ? a : c) : (b < c ? b : c); }

size_t adept_edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n == 0) return m;
    if (m == 0) return n;
    size_t *d = malloc((n + 1) * (m + 1) * sizeof *d);
    if (!d) return n > m ? n : m; /* no memory: a bound that suggests nothing */
#define D(i, j) d[(i) * (m + 1) + (j)]
    for (size_t i = 0; i <= n; i++) D(i, 0) = i;
    for (size_t j = 0; j <= m; j++) D(0, j) = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = min3(D(i - 1, j) + 1, D(i, j - 1) + 1, D(i - 1, j - 1) + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && D(i - 2, j - 2) + 1 < v)
                v = D(i - 2, j - 2) + 1; /* "setps" -> "steps" is one swap, not two substitutions */
            D(i, j) = v;
        }
    size_t r = D(n, m);
#undef D
    free(d);
    return r;
}

const char *adept_suggest(const char *word, const char *const *candidates, size_t n) {
    size_t len = strlen(word), limit = len / 3 > 1 ? len / 3 : 1;
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t d = adept_edit_distance(word, candidates[i]);
        if (d < best_d) best_d = d, best = candidates[i];
    }
    return best_d <= limit ? best : NULL;
}
