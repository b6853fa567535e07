/* Logging to stderr and a progress line for long work (redrawn in place on a terminal,
   one plain line per update otherwise, so logs stay readable). */
#ifndef ADEPT_LOG_H
#define ADEPT_LOG_H

#include <stdint.h>

typedef enum adept_log_level {
    ADEPT_LOG_DEBUG = 0,
    ADEPT_LOG_INFO,
    ADEPT_LOG_WARN,
    ADEPT_LOG_ERROR,
    ADEPT_LOG_QUIET
} adept_log_level;

void adept_log_set_level(adept_log_level level);
adept_log_level adept_log_get_level(void);
void adept_log(adept_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic seconds. */
double adept_now(void);

typedef struct adept_progress {
    char label[64];
    int64_t total;      /* 0 when unknown */
    int64_t done;
    double start_time;
    double last_draw;
    int is_tty;
    int drawn;          /* a partial line is on the terminal */
    double min_interval; /* seconds between plain-line updates */
} adept_progress;

void adept_progress_start(adept_progress *p, const char *label, int64_t total);
/* `extra` (may be NULL) is appended after the counters, e.g. "loss 2.31 | 1520 tok/s". */
void adept_progress_update(adept_progress *p, int64_t done, const char *extra);
void adept_progress_finish(adept_progress *p, const char *extra);
/* Formats a duration as "1h02m", "3m05s" or "12.3s". */
void adept_format_duration(double seconds, char *buf, int cap);

#endif
