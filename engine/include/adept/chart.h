/* Charts for run reports, drawn with cairo: line charts, labelled scatter plots, grouped bars and heatmaps,
   written as PNG and/or SVG. Every chart has a title, axis labels, nice-number ticks and a legend outside the data. */
#ifndef ADEPT_CHART_H
#define ADEPT_CHART_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"

/* Output path: "x.png" writes PNG, "x.svg" writes SVG, a path without an extension writes both "x.png" and
   "x.svg". Any other extension is an error. Sizes are pixels for PNG and points for SVG. */
#define ADEPT_CHART_MIN_SIZE 160
#define ADEPT_CHART_MAX_SIZE 8192

typedef struct adept_chart_series {
    const char *name;          /* legend entry; NULL or "" leaves the series out of the legend */
    const double *x;           /* nx values (line, scatter); unused by bars */
    const double *y;           /* ny values; bars: one value per category */
    size_t nx, ny;             /* line, scatter: must be equal; bars: ny must equal the number of categories */
    const char *const *labels; /* scatter: optional per-point labels (array of ny, entries may be NULL) */
    int connect;               /* scatter: join the points with a line in the order given */
} adept_chart_series;

typedef struct adept_chart_options {
    const char *title, *xlabel, *ylabel; /* each may be NULL */
    int width, height;
    int logy;                  /* line, scatter: log10 y axis; every finite y must then be > 0 */
    int horizontal;            /* bars: bars grow to the right, categories run down the y axis */
    const char *zlabel;        /* heatmap: the colour bar's label */
} adept_chart_options;

/* Non-finite values (NaN, inf) are gaps: the point is skipped and a line breaks there. A series with ny == 0 is an
   error; a chart with no finite point at all is an error. */
adept_status adept_chart_line(const char *path, const adept_chart_options *opt, const adept_chart_series *series,
                              size_t nseries);
adept_status adept_chart_scatter(const char *path, const adept_chart_options *opt,
                                 const adept_chart_series *series, size_t nseries);
/* Grouped bars: ncat categories, one bar per series in each group (series[i].y has ny == ncat values). */
adept_status adept_chart_bars(const char *path, const adept_chart_options *opt, const char *const *categories,
                              size_t ncat, const adept_chart_series *series, size_t nseries);
/* values: nrows * ncols, row-major; rows label the y axis (top to bottom), cols the x axis. NaN cells are drawn
   as missing (light grey). The colour scale (viridis) spans the finite values. */
adept_status adept_chart_heatmap(const char *path, const adept_chart_options *opt, const char *const *rows,
                                 size_t nrows, const char *const *cols, size_t ncols, const double *values);

/* The series palette (Okabe-Ito, colour-blind safe) as 0xRRGGBB; cycles after 8 entries. */
uint32_t adept_chart_color(size_t i);
/* The heatmap colour map (viridis) at t in [0, 1] as 0xRRGGBB. */
uint32_t adept_chart_colormap(double t);

#endif
