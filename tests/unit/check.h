/* A minimal test harness for the C unit tests: CHECK macros that count and report, and a summary line
   "N passed, N failed" that ctest logs show. Exit status 1 when anything failed. */
#ifndef ADEPT_CHECK_H
#define ADEPT_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "adept/error.h"

static int check_passed, check_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) check_passed++;                                                    \
        else {                                                                       \
            check_failed++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_OK(expr)                                                                                     \
    do {                                                                                                   \
        adept_status check_s_ = (expr);                                                                    \
        if (check_s_ == ADEPT_OK) check_passed++;                                                          \
        else {                                                                                             \
            check_failed++;                                                                                \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, adept_last_error());      \
        }                                                                                                  \
    } while (0)

/* Expects a failure with the given status; prints the message so the log shows what users would see. */
#define CHECK_FAILS(expr, status)                                                                          \
    do {                                                                                                   \
        adept_status check_s_ = (expr);                                                                    \
        if (check_s_ == (status)) check_passed++;                                                          \
        else {                                                                                             \
            check_failed++;                                                                                \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__, __LINE__, #expr,              \
                    adept_status_name(check_s_), adept_status_name(status));                               \
        }                                                                                                  \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                              \
    do {                                                                                                   \
        double check_a_ = (a), check_b_ = (b);                                                             \
        if (fabs(check_a_ - check_b_) <= (tol)) check_passed++;                                            \
        else {                                                                                             \
            check_failed++;                                                                                \
            fprintf(stderr, "%s:%d: %s = %.9g, %s = %.9g, differ by more than %g\n", __FILE__, __LINE__, #a,  \
                    check_a_, #b, check_b_, (double)(tol));                                                 \
        }                                                                                                  \
    } while (0)

/* max(worst, d) that keeps a NaN: fmax(worst, NaN) is worst, which would let a NaN pass `worst < tol`. */
static inline double check_max(double worst, double d) { return (isnan(worst) || isnan(d)) ? NAN : fmax(worst, d); }

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
