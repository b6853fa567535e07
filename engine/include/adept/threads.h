/* One thread count for OpenMP loops and OpenBLAS together. */
#ifndef ADEPT_THREADS_H
#define ADEPT_THREADS_H

void adept_set_threads(int n); /* n <= 0: the number of available cores */
int adept_get_threads(void);
const char *adept_version(void);

#endif
