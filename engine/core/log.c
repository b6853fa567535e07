/* stderr logging and the progress line. */
#include "adept/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static adept_log_level current_level = ADEPT_LOG_INFO;

void adept_log_set_level(adept_log_level level) { current_level = level; }
adept_log_level adept_log_get_level(void) { return current_level; }

void adept_log(adept_log_level level, const char *fmt, ...) {
    if (level < current_level) return;
    static const char *tags[] = {"debug: ", "", "warning: ", "error: "};
    va_list ap;
    va_start(ap, fmt);
    fputs(tags[level < ADEPT_LOG_QUIET ? level : ADEPT_LOG_ERROR], stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double adept_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void adept_format_duration(double s, char *buf, int cap) {
    if (s < 0) s = 0;
    if (s < 60) snprintf(buf, (size_t)cap, "%.1fs", s);
    else if (s < 3600) snprintf(buf, (size_t)cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, (size_t)cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

void adept_progress_start(adept_progress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->start_time = adept_now();
    p->is_tty = isatty(STDERR_FILENO);
    p->min_interval = p->is_tty ? 0.1 : 5.0;
}

static void draw(adept_progress *p, const char *extra, int final) {
    double elapsed = adept_now() - p->start_time;
    char eta[32] = "", el[32];
    adept_format_duration(elapsed, el, sizeof el);
    if (p->total > 0 && p->done > 0 && !final) {
        char d[24];
        adept_format_duration(elapsed * (double)(p->total - p->done) / (double)p->done, d, sizeof d);
        snprintf(eta, sizeof eta, " | ETA %s", d);
    }
    char count[64];
    if (p->total > 0)
        snprintf(count, sizeof count, "%lld/%lld (%.0f%%)", (long long)p->done, (long long)p->total,
                 100.0 * (double)p->done / (double)p->total);
    else snprintf(count, sizeof count, "%lld", (long long)p->done);
    fprintf(stderr, "%s%s %s%s%s | %s%s%s", p->is_tty ? "\r\033[K" : "", p->label, count, extra ? " | " : "",
            extra ? extra : "", el, eta, (p->is_tty && !final) ? "" : "\n");
    fflush(stderr);
    p->drawn = p->is_tty && !final;
}

void adept_progress_update(adept_progress *p, int64_t done, const char *extra) {
    p->done = done;
    if (current_level > ADEPT_LOG_INFO) return;
    double now = adept_now();
    if (now - p->last_draw < p->min_interval && !(p->total > 0 && done >= p->total)) return;
    p->last_draw = now;
    draw(p, extra, 0);
}

void adept_progress_finish(adept_progress *p, const char *extra) {
    if (current_level > ADEPT_LOG_INFO) return;
    draw(p, extra, 1);
}
