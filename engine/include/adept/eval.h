/* Evaluation kernels over model logits (multiple-choice scoring, the token-shift forgetting diagnostic) and the
   reader of multiple-choice items in JSON Lines. Everything here is a pure function of its inputs. */
#ifndef ADEPT_EVAL_H
#define ADEPT_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"

/* For each of `rows` rows of logits [rows, vocab]: logp[i] = log softmax(row i)[targets[i]] (in double), and
   greedy[i] = 1 when targets[i] is the row's argmax (lowest id on ties). Rows with targets[i] < 0 get
   logp 0 and greedy 1 (ignored positions). greedy may be NULL. Fails on a target >= vocab or a row holding
   NaN or an infinity, naming the row. */
adept_status adept_eval_target_logprobs(const float *logits, size_t rows, int64_t vocab, const int32_t *targets,
                                        double *logp, uint8_t *greedy);

/* Accumulated token-shift statistics between a base and a tuned model on the same positions. */
typedef struct adept_token_shift {
    int64_t positions; /* positions counted */
    int64_t changed;   /* top-1 of the tuned model differs from top-1 of the base model */
    int64_t marginal;  /* ... and the tuned top-1 ranks 2nd or 3rd under the base model (URIAL's "marginal") */
    int64_t shifted;   /* ... and it ranks below 3rd under the base model (URIAL's "shifted") */
    double kl_sum;     /* sum over positions of KL(p_base || p_tuned) in nats */
} adept_token_shift;

/* Adds the rows of base/tuned logits [rows, vocab] to *acc (initialise it to {0}). mask: NULL counts every row,
   else only rows with mask[i] >= 0 (pass the batch targets, so padding is ignored). Top-1 ties go to the lowest
   id. Per-row results are summed in row order, so the totals do not depend on the thread count. */
adept_status adept_eval_token_shift(const float *base, const float *tuned, size_t rows, int64_t vocab,
                                    const int32_t *mask, adept_token_shift *acc);

/* One multiple-choice item, normalised from any supported layout (see engine/data/choice_items.c). */
typedef struct adept_choice_item {
    char *question;   /* the question text (an ARC stem) */
    char **choices;   /* n_choices NUL-terminated strings */
    int n_choices;
    int answer;       /* 0-based index of the correct choice */
    size_t line;      /* 1-based line of the item in its file */
} adept_choice_item;

typedef struct adept_choice_set {
    adept_choice_item *items;
    size_t n;
} adept_choice_set;

/* Parses JSON Lines text (len bytes; `name` is used in messages) into items; blank lines are skipped; at most
   `limit` items are read when limit > 0. Malformed input fails with "<name>:<line>: <what>" and *out empty. */
adept_status adept_choice_items_parse(const char *name, const char *text, size_t len, size_t limit,
                                      adept_choice_set *out);
/* Reads a file and parses it as above, naming the path in messages. */
adept_status adept_choice_items_read(const char *path, size_t limit, adept_choice_set *out);
void adept_choice_set_free(adept_choice_set *set);

#endif
