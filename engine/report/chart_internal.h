/* Shared drawing machinery of the chart kinds (private to engine/report): axes with nice-number ticks, text,
   legend, markers, and the output step that renders one drawing function to PNG and/or SVG. */
#ifndef ADEPT_CHART_INTERNAL_H
#define ADEPT_CHART_INTERNAL_H

#include <cairo.h>

#include "adept/chart.h"

#define CHART_MAX_TICKS 40

/* A numeric axis. For a log axis lo/hi/ticks are log10 of the data values. */
typedef struct chart_axis {
    double lo, hi;
    int log;
    double step; /* linear: tick spacing, for label precision */
    double ticks[CHART_MAX_TICKS];
    int nticks;
} chart_axis;

/* One drawing context: the surface size, the base font size and the plot rectangle. */
typedef struct chart_frame {
    cairo_t *cr;
    double w, h;
    double fs;               /* base font size; titles and small labels scale from it */
    double x0, y0, x1, y1;   /* plot area: left, top, right, bottom */
} chart_frame;

typedef struct chart_legend_entry {
    const char *name;
    uint32_t color;
    int marker;  /* -1: none */
    int line;    /* draw a line sample */
    int box;     /* draw a filled swatch (bars) */
    int dash;    /* line style: chart_dash(cr, dash, width) */
} chart_legend_entry;

typedef adept_status (*chart_draw_fn)(chart_frame *f, const void *spec);

/* Writes `path` (.png, .svg, or both when it has no extension) by calling draw once per format. `what` names
   the chart kind in error messages. */
adept_status chart_render(const char *path, const char *what, const adept_chart_options *opt, chart_draw_fn draw,
                          const void *spec);

/* Checks the common options (sizes). */
adept_status chart_check_options(const char *what, const adept_chart_options *opt);

/* Axes. `target` is the wanted number of ticks; `pad` widens the data range by that fraction on each side. */
void chart_axis_linear(chart_axis *a, double lo, double hi, int target, double pad);
void chart_axis_log(chart_axis *a, double lo, double hi, int target);
double chart_axis_frac(const chart_axis *a, double v); /* 0 at lo, 1 at hi (data value, log applied) */
void chart_axis_label(const chart_axis *a, double tick, char *buf, size_t cap);
int chart_ticks_for(double pixels, double spacing);

/* Text. Strings are sanitised to valid UTF-8 and shortened with an ellipsis to fit max_w (<= 0: no limit). */
void chart_font(chart_frame *f, double size, int bold);
double chart_text_width(chart_frame *f, const char *s);
/* Draws s anchored at (x, y): ax 0 left, 0.5 centre, 1 right; ay 0 top, 0.5 middle, 1 baseline-ish bottom. */
void chart_text(chart_frame *f, const char *s, double x, double y, double ax, double ay, double max_w);
void chart_text_rotated(chart_frame *f, const char *s, double x, double y, double max_w); /* reads upwards, centred */
void chart_fit_text(chart_frame *f, const char *s, double max_w, char *out, size_t cap);

void chart_set_color(cairo_t *cr, uint32_t rgb, double alpha);
void chart_marker(cairo_t *cr, int kind, double x, double y, double r);
/* Series i: colours repeat every 8 series, so each further round of 8 gets its own dash pattern and markers. */
void chart_dash(cairo_t *cr, size_t i, double line_width);
int chart_series_marker(size_t i);

/* Frame pieces. */
void chart_background(chart_frame *f);
void chart_title(chart_frame *f, const char *title);
double chart_title_height(chart_frame *f, const char *title);
double chart_legend_width(chart_frame *f, const chart_legend_entry *e, size_t n);
void chart_legend(chart_frame *f, const chart_legend_entry *e, size_t n, double x, double y, double max_h);
/* Width needed left of the plot for y tick labels of `a` plus the rotated y label. */
double chart_yaxis_width(chart_frame *f, const chart_axis *a, const char *ylabel);
double chart_xaxis_height(chart_frame *f, const char *xlabel);
/* Grid, frame, tick labels and axis labels for numeric axes (either may be NULL for a category axis). */
void chart_draw_axes(chart_frame *f, const chart_axis *ax, const chart_axis *ay, const char *xlabel,
                     const char *ylabel);

#endif
