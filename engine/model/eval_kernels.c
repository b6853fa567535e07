/* Evaluation kernels over logits: log-likelihood of target ids (multiple-choice scoring) and the token-shift
   diagnostic between a base and a tuned model (top-1 changes, URIAL rank classes, KL divergence). */
#include <math.h>
#include <stdlib.h>

#include "adept/eval.h"

/* Argmax (lowest id on ties) and log-sum-exp of one row in double; returns 0 if the row is not finite. */
static int row_stats(const float *x, int64_t V, int64_t *argmax, double *lse) {
    float best = x[0];
    int64_t arg = 0;
    for (int64_t j = 0; j < V; j++) {
        if (!isfinite(x[j])) return 0;
        if (x[j] > best) best = x[j], arg = j;
    }
    double s = 0;
    for (int64_t j = 0; j < V; j++) s += exp((double)x[j] - (double)best);
    *argmax = arg;
    *lse = (double)best + log(s);
    return 1;
}

adept_status adept_eval_target_logprobs(const float *logits, size_t rows, int64_t vocab, const int32_t *targets,
                                        double *logp, uint8_t *greedy) {
    if (rows == 0) return ADEPT_OK;
    if (!logits || !targets || !logp || vocab <= 0)
        return adept_fail(ADEPT_EINVAL, "target_logprobs: NULL buffer or vocab %lld <= 0", (long long)vocab);
    for (size_t i = 0; i < rows; i++)
        if (targets[i] >= vocab)
            return adept_fail(ADEPT_EINVAL, "target_logprobs: target id %d at position %zu is outside the vocabulary "
                              "of %lld", (int)targets[i], i, (long long)vocab);
    long long bad = -1;
#pragma omp parallel for schedule(static) if (rows * (size_t)vocab > 65536)
    for (long long i = 0; i < (long long)rows; i++) {
        if (targets[i] < 0) {
            logp[i] = 0;
            if (greedy) greedy[i] = 1;
            continue;
        }
        const float *x = logits + (size_t)i * (size_t)vocab;
        int64_t arg;
        double lse;
        if (!row_stats(x, vocab, &arg, &lse)) {
#pragma omp critical(adept_eval_bad)
            if (bad < 0 || i < bad) bad = i;
            continue;
        }
        logp[i] = (double)x[targets[i]] - lse;
        if (greedy) greedy[i] = arg == targets[i];
    }
    if (bad >= 0)
        return adept_fail(ADEPT_ENONFINITE, "target_logprobs: row %lld of the logits holds NaN or an infinity", bad);
    return ADEPT_OK;
}

/* Max (lowest id on ties) of a row; returns 0 when the row is not finite. */
static int row_max(const float *x, int64_t V, int64_t *argmax) {
    int64_t arg = 0;
    for (int64_t j = 0; j < V; j++) {
        if (!isfinite(x[j])) return 0;
        if (x[j] > x[arg]) arg = j;
    }
    *argmax = arg;
    return 1;
}

/* One row of the token-shift diagnostic; `e` is scratch for V doubles (exp of the base row, reused for p so that
   each element costs two exp calls). Returns 0 when a row is not finite. */
static int shift_row(const float *a, const float *b, int64_t V, double *e, double *kl, int *changed,
                     int *rank_class) {
    int64_t arg_a, arg_b;
    if (!row_max(a, V, &arg_a) || !row_max(b, V, &arg_b)) return 0;
    double ma = a[arg_a], mb = b[arg_b], sa = 0, sb = 0;
    for (int64_t j = 0; j < V; j++) sa += e[j] = exp((double)a[j] - ma);
    for (int64_t j = 0; j < V; j++) sb += exp((double)b[j] - mb);
    double lse_a = ma + log(sa), lse_b = mb + log(sb);
    /* KL(p || q) = sum_j p_j (log p_j - log q_j); terms with p_j = 0 contribute 0. */
    double s = 0;
    for (int64_t j = 0; j < V; j++)
        if (e[j] > 0) s += e[j] * (((double)a[j] - lse_a) - ((double)b[j] - lse_b));
    s /= sa;
    *kl = s > 0 ? s : 0; /* rounding can leave -1e-17 for identical rows */
    *changed = arg_a != arg_b;
    *rank_class = 0;
    if (*changed) {
        /* rank of the tuned model's top-1 under the base model: ids scoring higher, or equal with a lower id */
        float v = a[arg_b];
        int64_t above = 0;
        for (int64_t j = 0; j < V && above < 3; j++) above += a[j] > v || (a[j] == v && j < arg_b);
        *rank_class = above < 3 ? 1 : 2; /* rank 2-3: marginal, else shifted */
    }
    return 1;
}

adept_status adept_eval_token_shift(const float *base, const float *tuned, size_t rows, int64_t vocab,
                                    const int32_t *mask, adept_token_shift *acc) {
    if (!acc) return adept_fail(ADEPT_EINVAL, "token_shift: NULL accumulator");
    if (rows == 0) return ADEPT_OK;
    if (!base || !tuned || vocab <= 0)
        return adept_fail(ADEPT_EINVAL, "token_shift: NULL logits or vocab %lld <= 0", (long long)vocab);
    double *kl = malloc(rows * sizeof *kl);
    signed char *cls = malloc(rows);
    if (!kl || !cls) {
        free(kl), free(cls);
        return adept_fail(ADEPT_ENOMEM, "token_shift: out of memory for %zu rows", rows);
    }
    long long bad = -1;
    int no_mem = 0;
#pragma omp parallel if (rows * (size_t)vocab > 65536)
    {
        double *e = malloc((size_t)vocab * sizeof *e);
        if (!e) {
#pragma omp atomic write
            no_mem = 1;
        }
#pragma omp for schedule(static)
        for (long long i = 0; i < (long long)rows; i++) {
            cls[i] = -1; /* not counted */
            if (!e || (mask && mask[i] < 0)) continue;
            size_t off = (size_t)i * (size_t)vocab;
            int changed, rc;
            if (!shift_row(base + off, tuned + off, vocab, e, &kl[i], &changed, &rc)) {
#pragma omp critical(adept_eval_bad)
                if (bad < 0 || i < bad) bad = i;
                continue;
            }
            cls[i] = (signed char)(changed ? 1 + rc : 0); /* 0 same, 2 marginal, 3 shifted */
        }
        free(e);
    }
    if (no_mem) {
        free(kl), free(cls);
        return adept_fail(ADEPT_ENOMEM, "token_shift: out of memory for a row of %lld logits", (long long)vocab);
    }
    if (bad >= 0) {
        free(kl), free(cls);
        return adept_fail(ADEPT_ENONFINITE, "token_shift: row %lld of the logits holds NaN or an infinity", bad);
    }
    for (size_t i = 0; i < rows; i++) {
        if (cls[i] < 0) continue;
        acc->positions++;
        acc->kl_sum += kl[i];
        acc->changed += cls[i] > 0;
        acc->marginal += cls[i] == 2;
        acc->shifted += cls[i] == 3;
    }
    free(kl), free(cls);
    return ADEPT_OK;
}
