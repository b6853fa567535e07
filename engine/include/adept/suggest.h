/* "Did you mean" for misspelt names: option keys, metric names, subcommands. */
#ifndef ADEPT_SUGGEST_H
#define ADEPT_SUGGEST_H

#include <stddef.h>

/* Optimal-string-alignment distance (insertions, deletions, substitutions, adjacent swaps), ASCII case kept. */
size_t adept_edit_distance(const char *a, const char *b);
/* The candidate closest to `word` when it is close enough to be a likely typo (distance <= max(1, len/3)),
   else NULL. Ties go to the earlier candidate. */
const char *adept_suggest(const char *word, const char *const *candidates, size_t n);

#endif
