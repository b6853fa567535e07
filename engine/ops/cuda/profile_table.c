/* The device-time table of the CUDA profile (profile_table.h). */
#include "ops/cuda/profile_table.h"

#include <stdlib.h>
#include <string.h>

void adept_prof_table_reset(adept_prof_table *t) {
    memset(t, 0, sizeof *t);
    t->other.op = "(other ops)";
    t->other.part = "";
}

/* the same literal usually arrives by the same pointer: compared first, strcmp only when they differ */
static int same(const char *a, const char *b) { return a == b || strcmp(a, b) == 0; }

void adept_prof_table_add(adept_prof_table *t, const char *op, const char *part, double ms, double flops) {
    if (!op) op = "?";
    if (!part) part = "?";
    adept_prof_row *r = NULL;
    for (int i = 0; i < t->n && !r; i++)
        if (same(t->rows[i].op, op) && same(t->rows[i].part, part)) r = &t->rows[i];
    if (!r && t->n < ADEPT_PROF_ROWS) {
        r = &t->rows[t->n++];
        r->op = op, r->part = part;
    }
    if (!r) r = &t->other;
    r->ms += ms;
    r->flops += flops;
    r->calls++;
    t->total_ms += ms;
    t->marks++;
}

static int by_time_desc(const void *a, const void *b) {
    const adept_prof_row *x = *(const adept_prof_row *const *)a, *y = *(const adept_prof_row *const *)b;
    if (x->ms != y->ms) return x->ms < y->ms ? 1 : -1;
    int c = strcmp(x->op, y->op); /* ties in a fixed order */
    return c ? c : strcmp(x->part, y->part);
}

static void print_row(FILE *out, const adept_prof_row *r, double total, double per) {
    char tflops[32] = "-";
    if (r->flops > 0 && r->ms > 0) snprintf(tflops, sizeof tflops, "%.1f", r->flops / (r->ms * 1e-3) / 1e12);
    fprintf(out, "cuda-profile: %6.1f%% %10.3f %10.1f %8s  %s%s%s%s\n", total > 0 ? 100.0 * r->ms / total : 0.0,
            r->ms / per, r->calls / per, tflops, r->op, *r->part ? " [" : "", r->part, *r->part ? "]" : "");
}

void adept_prof_table_print(const adept_prof_table *t, FILE *out, double per, const char *unit, int top) {
    if (per <= 0) per = 1;
    if (!unit || !*unit) unit = "run";
    const adept_prof_row *sorted[ADEPT_PROF_ROWS + 1];
    int n = 0;
    for (int i = 0; i < t->n; i++) sorted[n++] = &t->rows[i];
    if (t->other.calls) sorted[n++] = &t->other;
    qsort(sorted, (size_t)n, sizeof sorted[0], by_time_desc);
    fprintf(out, "cuda-profile: %.3f ms of device time and %.1f marks per %s, over %g %s(s) (each mark's time runs from "
                 "the mark before it: host waits count in the op after them)\n",
            t->total_ms / per, t->marks / per, unit, per, unit);
    char ms_col[40], calls_col[40];
    snprintf(ms_col, sizeof ms_col, "ms/%s", unit);
    snprintf(calls_col, sizeof calls_col, "calls/%s", unit);
    fprintf(out, "cuda-profile: %7s %10s %10s %8s  %s\n", "share", ms_col, calls_col, "TFLOP/s", "op [part]");
    int shown = top > 0 && top < n ? top : n;
    for (int i = 0; i < shown; i++) print_row(out, sorted[i], t->total_ms, per);
    if (shown < n) {
        adept_prof_row rest = {.op = "", .part = ""};
        char name[48];
        snprintf(name, sizeof name, "(%d more rows)", n - shown);
        rest.op = name;
        for (int i = shown; i < n; i++) rest.ms += sorted[i]->ms, rest.calls += sorted[i]->calls; /* no FLOPs: mixed parts */
        print_row(out, &rest, t->total_ms, per);
    }
}
