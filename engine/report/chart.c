/* The chart kinds of run reports: line charts (loss curves), labelled scatter plots (the general-vs-domain
   trade-off), grouped bars (layer importance per metric) and heatmaps (LR scale per unit over time). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chart_internal.h"

#define MAX_LEGEND 64

static double pmax(double a, double b) { return a > b ? a : b; }

/* ---- line and scatter --------------------------------------------------------------------------------- */

typedef struct xy_spec {
    const adept_chart_options *opt;
    const adept_chart_series *s;
    size_t ns;
    int scatter;
    double xlo, xhi, ylo, yhi; /* finite data ranges */
} xy_spec;

static adept_status check_xy(const char *what, xy_spec *sp) {
    const adept_chart_options *opt = sp->opt;
    ADEPT_TRY(chart_check_options(what, opt));
    if (!sp->s || sp->ns == 0) return adept_fail(ADEPT_EINVAL, "%s: no series to draw", what);
    sp->xlo = sp->ylo = INFINITY;
    sp->xhi = sp->yhi = -INFINITY;
    for (size_t i = 0; i < sp->ns; i++) {
        const adept_chart_series *s = &sp->s[i];
        const char *name = s->name ? s->name : "";
        if (s->ny == 0) return adept_fail(ADEPT_EINVAL, "%s: series %zu ('%s') is empty", what, i + 1, name);
        if (s->nx != s->ny)
            return adept_fail(ADEPT_ESHAPE, "%s: series %zu ('%s'): x has %zu values but y has %zu", what, i + 1,
                              name, s->nx, s->ny);
        if (!s->x || !s->y) return adept_fail(ADEPT_EINVAL, "%s: series %zu ('%s') has no data", what, i + 1, name);
        for (size_t k = 0; k < s->ny; k++) {
            double x = s->x[k], y = s->y[k];
            if (!isfinite(x) || !isfinite(y)) continue;
            if (opt->logy && y <= 0)
                return adept_fail(ADEPT_EINVAL, "%s: series %zu ('%s'): y[%zu] = %g, but a log-scale axis needs y > 0",
                                  what, i + 1, name, k + 1, y);
            sp->xlo = fmin(sp->xlo, x);
            sp->xhi = fmax(sp->xhi, x);
            sp->ylo = fmin(sp->ylo, y);
            sp->yhi = fmax(sp->yhi, y);
        }
    }
    if (!(sp->xlo <= sp->xhi)) return adept_fail(ADEPT_EINVAL, "%s: no finite (x, y) point in any series", what);
    return ADEPT_OK;
}

typedef struct rect { double x0, y0, x1, y1, w; } rect; /* w: how much covering it costs */

static double overlap(rect a, rect b) {
    double w = fmin(a.x1, b.x1) - fmax(a.x0, b.x0), h = fmin(a.y1, b.y1) - fmax(a.y0, b.y0);
    return w > 0 && h > 0 ? w * h : 0;
}

/* Puts each point label at the candidate position (right, left, above, below, diagonals) that overlaps the
   markers and labels placed so far the least, inside the plot area. */
static void place_labels(chart_frame *f, const xy_spec *sp, const chart_axis *ax, const chart_axis *ay, rect *taken,
                         size_t ntaken, size_t cap) {
    double fs = f->fs * 0.8, r = f->fs * 0.45, pw = f->x1 - f->x0, ph = f->y1 - f->y0;
    chart_font(f, fs, 0);
    rect plot = {f->x0, f->y0, f->x1, f->y1, 0};
    /* two rings of candidates: beside the point first, then one label height further out */
    static const double cand[16][3] = {{1, 0, 0}, {-1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {1, -1, 0}, {-1, -1, 0},
                                       {1, 1, 0}, {-1, 1, 0}, {1, 0, 1}, {-1, 0, 1}, {0, -1, 1}, {0, 1, 1},
                                       {1, -1, 1}, {-1, -1, 1}, {1, 1, 1}, {-1, 1, 1}};
    for (size_t i = 0; i < sp->ns; i++) {
        const adept_chart_series *s = &sp->s[i];
        if (!s->labels) continue;
        for (size_t k = 0; k < s->ny; k++) {
            if (!s->labels[k] || !s->labels[k][0] || !isfinite(s->x[k]) || !isfinite(s->y[k])) continue;
            double px = f->x0 + pw * chart_axis_frac(ax, s->x[k]), py = f->y1 - ph * chart_axis_frac(ay, s->y[k]);
            double tw = fmin(chart_text_width(f, s->labels[k]), pw * 0.4), th = fs * 1.1;
            rect best = {0};
            double best_cost = INFINITY;
            for (int c = 0; c < 16; c++) {
                double dx = cand[c][0], dy = cand[c][1], far = cand[c][2] * th;
                double cx = px + dx * (r + fs * 0.3 + far + (dx ? tw / 2 : 0));
                double cy = py + dy * (r + fs * 0.2 + far + th / 2);
                rect q = {cx - tw / 2, cy - th / 2, cx + tw / 2, cy + th / 2, 0};
                double cost = c * 0.01 * tw * th + (c >= 8) * 0.15 * tw * th; /* near first, then in order */
                rect qm = {q.x0 - fs * 0.25, q.y0 - fs * 0.1, q.x1 + fs * 0.25, q.y1 + fs * 0.1, 0}; /* keep a gap */
                for (size_t t = 0; t < ntaken; t++) cost += overlap(qm, taken[t]) * taken[t].w;
                cost += (tw * th - overlap(q, plot)) * 4; /* leaving the plot is worse than touching a label */
                if (cost < best_cost) { best_cost = cost; best = q; }
            }
            cairo_set_source_rgb(f->cr, 0.15, 0.15, 0.15);
            chart_text(f, s->labels[k], best.x0, (best.y0 + best.y1) / 2, 0, 0.5, pw * 0.4);
            best.w = 4; /* text on text is the worst outcome */
            if (ntaken < cap) taken[ntaken++] = best;
        }
    }
}

static adept_status draw_xy(chart_frame *f, const void *p) {
    const xy_spec *sp = p;
    const adept_chart_options *opt = sp->opt;
    cairo_t *cr = f->cr;
    double fs = f->fs;
    size_t ne = sp->ns < MAX_LEGEND ? sp->ns : MAX_LEGEND;
    chart_legend_entry e[MAX_LEGEND];
    for (size_t i = 0; i < ne; i++) {
        size_t finite = 0;
        for (size_t k = 0; k < sp->s[i].ny; k++) finite += isfinite(sp->s[i].x[k]) && isfinite(sp->s[i].y[k]);
        e[i] = (chart_legend_entry){sp->s[i].name, adept_chart_color(i), -1, 1, 0, (int)i};
        if (sp->scatter) { e[i].marker = chart_series_marker(i); e[i].line = sp->s[i].connect; }
        else if (finite <= 40) e[i].marker = chart_series_marker(i);
    }
    double lw = chart_legend_width(f, e, ne);
    f->y0 = chart_title_height(f, opt->title);
    f->y1 = f->h - chart_xaxis_height(f, opt->xlabel);
    f->x1 = f->w - fs * 1.2 - (lw > 0 ? lw + fs * 0.4 : 0);
    if (f->y1 - f->y0 < fs * 3) return adept_fail(ADEPT_EINVAL, "chart: %gx%g is too small for its labels", f->w, f->h);
    double pad = sp->scatter ? 0.07 : 0.03;
    chart_axis ax, ay;
    int ty = chart_ticks_for(f->y1 - f->y0, fs * 3.6);
    if (opt->logy) chart_axis_log(&ay, sp->ylo, sp->yhi, ty);
    else chart_axis_linear(&ay, sp->ylo, sp->yhi, ty, pad);
    f->x0 = fs * 0.6 + chart_yaxis_width(f, &ay, opt->ylabel);
    if (f->x1 - f->x0 < fs * 4) return adept_fail(ADEPT_EINVAL, "chart: %gx%g is too small for its labels", f->w, f->h);
    chart_axis_linear(&ax, sp->xlo, sp->xhi, chart_ticks_for(f->x1 - f->x0, fs * 7), sp->scatter ? pad : 0);
    chart_title(f, opt->title);
    chart_draw_axes(f, &ax, &ay, opt->xlabel, opt->ylabel);

    double pw = f->x1 - f->x0, ph = f->y1 - f->y0, r = fs * 0.36;
    cairo_save(cr);
    cairo_rectangle(cr, f->x0 - r * 2, f->y0 - r * 2, pw + r * 4, ph + r * 4);
    cairo_clip(cr);
    size_t cap = 16384, ntaken = 0;
    rect *taken = malloc(cap * sizeof *taken);
    for (size_t i = 0; i < sp->ns; i++) {
        const adept_chart_series *s = &sp->s[i];
        int line = sp->scatter ? s->connect : 1, marker = sp->scatter || (i < ne && e[i].marker >= 0);
        chart_set_color(cr, adept_chart_color(i), 1);
        if (line) {
            int pen = 0;
            double lw = pmax(1.5, fs * 0.17);
            cairo_set_line_width(cr, lw);
            chart_dash(cr, i, lw);
            cairo_set_line_cap(cr, i >= 8 ? CAIRO_LINE_CAP_BUTT : CAIRO_LINE_CAP_ROUND);
            for (size_t k = 0; k < s->ny; k++) {
                if (!isfinite(s->x[k]) || !isfinite(s->y[k])) { pen = 0; continue; } /* a gap breaks the line */
                double x = f->x0 + pw * chart_axis_frac(&ax, s->x[k]), y = f->y1 - ph * chart_axis_frac(&ay, s->y[k]);
                if (pen) cairo_line_to(cr, x, y);
                else cairo_move_to(cr, x, y);
                pen = 1;
            }
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
        }
        if (!marker) continue;
        for (size_t k = 0; k < s->ny; k++) {
            if (!isfinite(s->x[k]) || !isfinite(s->y[k])) continue;
            double x = f->x0 + pw * chart_axis_frac(&ax, s->x[k]), y = f->y1 - ph * chart_axis_frac(&ay, s->y[k]);
            double mr = sp->scatter ? fs * 0.45 : r;
            chart_marker(cr, chart_series_marker(i), x, y, mr);
            cairo_fill_preserve(cr);
            if (sp->scatter) { /* a white rim keeps overlapping points apart */
                cairo_set_source_rgb(cr, 1, 1, 1);
                cairo_set_line_width(cr, 1);
                cairo_stroke(cr);
                chart_set_color(cr, adept_chart_color(i), 1);
            }
            cairo_new_path(cr);
            if (taken && ntaken < cap) taken[ntaken++] = (rect){x - mr, y - mr, x + mr, y + mr, 2};
        }
    }
    /* connecting lines count as taken space too, so labels sit beside them rather than on them */
    for (size_t i = 0; sp->scatter && taken && i < sp->ns; i++) {
        const adept_chart_series *s = &sp->s[i];
        double px = NAN, py = NAN;
        for (size_t k = 0; s->connect && k < s->ny; k++) {
            if (!isfinite(s->x[k]) || !isfinite(s->y[k])) { px = NAN; continue; }
            double x = f->x0 + pw * chart_axis_frac(&ax, s->x[k]), y = f->y1 - ph * chart_axis_frac(&ay, s->y[k]);
            if (isfinite(px)) {
                int steps = (int)fmin(200, hypot(x - px, y - py) / (fs * 0.5));
                for (int t = 1; t < steps && ntaken < cap; t++) {
                    double u = t / (double)steps, qx = px + (x - px) * u, qy = py + (y - py) * u;
                    taken[ntaken++] = (rect){qx - 2, qy - 2, qx + 2, qy + 2, 1};
                }
            }
            px = x;
            py = y;
        }
    }
    if (sp->scatter && taken) place_labels(f, sp, &ax, &ay, taken, ntaken, cap);
    free(taken);
    cairo_restore(cr);
    chart_legend(f, e, ne, f->x1 + fs * 0.4, f->y0, f->y1 - f->y0);
    return ADEPT_OK;
}

adept_status adept_chart_line(const char *path, const adept_chart_options *opt, const adept_chart_series *series,
                              size_t nseries) {
    xy_spec sp = {opt, series, nseries, 0, 0, 0, 0, 0};
    ADEPT_TRY(check_xy("line chart", &sp));
    return chart_render(path, "line chart", opt, draw_xy, &sp);
}

adept_status adept_chart_scatter(const char *path, const adept_chart_options *opt,
                                 const adept_chart_series *series, size_t nseries) {
    xy_spec sp = {opt, series, nseries, 1, 0, 0, 0, 0};
    ADEPT_TRY(check_xy("scatter chart", &sp));
    return chart_render(path, "scatter chart", opt, draw_xy, &sp);
}

/* ---- grouped bars ------------------------------------------------------------------------------------- */

typedef struct bar_spec {
    const adept_chart_options *opt;
    const char *const *cat;
    size_t ncat;
    const adept_chart_series *s;
    size_t ns;
    double lo, hi;
} bar_spec;

static adept_status draw_bars(chart_frame *f, const void *p) {
    const bar_spec *sp = p;
    const adept_chart_options *opt = sp->opt;
    cairo_t *cr = f->cr;
    double fs = f->fs;
    int hor = opt->horizontal;
    size_t ne = sp->ns < MAX_LEGEND ? sp->ns : MAX_LEGEND;
    chart_legend_entry e[MAX_LEGEND];
    for (size_t i = 0; i < ne; i++) e[i] = (chart_legend_entry){sp->s[i].name, adept_chart_color(i), -1, 0, 1, 0};
    double lw = chart_legend_width(f, e, ne);
    /* the value axis always includes zero, so bar lengths compare honestly */
    double lo = fmin(0, sp->lo), hi = fmax(0, sp->hi);
    chart_font(f, fs * 0.9, 0);
    double catw = 0;
    for (size_t c = 0; c < sp->ncat; c++) catw = pmax(catw, chart_text_width(f, sp->cat[c] ? sp->cat[c] : ""));
    f->y0 = chart_title_height(f, opt->title);
    f->y1 = f->h - chart_xaxis_height(f, opt->xlabel);
    f->x1 = f->w - fs * 1.2 - (lw > 0 ? lw + fs * 0.4 : 0);
    chart_axis av;
    if (hor) {
        catw = fmin(catw, f->w * 0.3);
        f->x0 = fs * 1.1 + catw + (opt->ylabel && opt->ylabel[0] ? fs * 1.8 : 0);
        chart_axis_linear(&av, lo, hi, chart_ticks_for(f->x1 - f->x0, fs * 7), 0);
    } else {
        chart_axis_linear(&av, lo, hi, chart_ticks_for(f->y1 - f->y0, fs * 3.6), 0);
        f->x0 = fs * 0.6 + chart_yaxis_width(f, &av, opt->ylabel);
    }
    if (f->x1 - f->x0 < fs * 4 || f->y1 - f->y0 < fs * 3)
        return adept_fail(ADEPT_EINVAL, "bar chart: %gx%g is too small for its labels", f->w, f->h);
    chart_title(f, opt->title);
    chart_draw_axes(f, hor ? &av : NULL, hor ? NULL : &av, opt->xlabel, opt->ylabel);

    double pw = f->x1 - f->x0, ph = f->y1 - f->y0;
    double band = (hor ? ph : pw) / (double)sp->ncat, group = band * 0.8, bw = group / (double)sp->ns;
    double zero = chart_axis_frac(&av, 0);
    for (size_t c = 0; c < sp->ncat; c++) {
        for (size_t i = 0; i < sp->ns; i++) {
            double v = sp->s[i].y[c];
            if (!isfinite(v)) continue;
            double a = zero, b = chart_axis_frac(&av, v), off = band * c + band * 0.1 + bw * i;
            chart_set_color(cr, adept_chart_color(i), 1);
            if (hor) cairo_rectangle(cr, f->x0 + pw * fmin(a, b), f->y0 + off, pw * fabs(b - a), bw * 0.92);
            else cairo_rectangle(cr, f->x0 + off, f->y1 - ph * fmax(a, b), bw * 0.92, ph * fabs(b - a));
            cairo_fill(cr);
        }
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3); /* the zero line */
    cairo_set_line_width(cr, 1);
    if (hor) { cairo_move_to(cr, f->x0 + pw * zero, f->y0); cairo_line_to(cr, f->x0 + pw * zero, f->y1); }
    else { cairo_move_to(cr, f->x0, f->y1 - ph * zero); cairo_line_to(cr, f->x1, f->y1 - ph * zero); }
    cairo_stroke(cr);

    /* category labels, thinned to every k-th when they would collide */
    chart_font(f, fs * 0.9, 0);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    size_t every = (size_t)ceil((hor ? fs * 1.15 : fmin(catw, pw * 0.5) + fs * 0.4) / band);
    if (every < 1) every = 1;
    for (size_t c = 0; c < sp->ncat; c += every) {
        const char *l = sp->cat[c] ? sp->cat[c] : "";
        double mid = band * (c + 0.5);
        if (hor) chart_text(f, l, f->x0 - fs * 0.5, f->y0 + mid, 1, 0.5, catw);
        else chart_text(f, l, f->x0 + mid, f->y1 + fs * 0.45, 0.5, 0, every * band - fs * 0.3);
    }
    chart_legend(f, e, ne, f->x1 + fs * 0.4, f->y0, f->y1 - f->y0);
    return ADEPT_OK;
}

adept_status adept_chart_bars(const char *path, const adept_chart_options *opt, const char *const *categories,
                              size_t ncat, const adept_chart_series *series, size_t nseries) {
    const char *what = "bar chart";
    ADEPT_TRY(chart_check_options(what, opt));
    if (ncat == 0 || !categories) return adept_fail(ADEPT_EINVAL, "%s: no categories", what);
    if (!series || nseries == 0) return adept_fail(ADEPT_EINVAL, "%s: no series to draw", what);
    bar_spec sp = {opt, categories, ncat, series, nseries, INFINITY, -INFINITY};
    for (size_t i = 0; i < nseries; i++) {
        const char *name = series[i].name ? series[i].name : "";
        if (series[i].ny == 0) return adept_fail(ADEPT_EINVAL, "%s: series %zu ('%s') is empty", what, i + 1, name);
        if (series[i].ny != ncat || !series[i].y)
            return adept_fail(ADEPT_ESHAPE, "%s: series %zu ('%s') has %zu values for %zu categories", what, i + 1,
                              name, series[i].ny, ncat);
        for (size_t c = 0; c < ncat; c++)
            if (isfinite(series[i].y[c])) { sp.lo = fmin(sp.lo, series[i].y[c]); sp.hi = fmax(sp.hi, series[i].y[c]); }
    }
    if (!(sp.lo <= sp.hi)) return adept_fail(ADEPT_EINVAL, "%s: no finite value in any series", what);
    return chart_render(path, what, opt, draw_bars, &sp);
}

/* ---- heatmap ------------------------------------------------------------------------------------------ */

typedef struct heat_spec {
    const adept_chart_options *opt;
    const char *const *rows, *const *cols;
    size_t nrows, ncols;
    const double *v;
    double lo, hi;
} heat_spec;

static adept_status draw_heatmap(chart_frame *f, const void *p) {
    const heat_spec *sp = p;
    const adept_chart_options *opt = sp->opt;
    cairo_t *cr = f->cr;
    double fs = f->fs;
    chart_axis az;
    chart_axis_linear(&az, sp->lo, sp->hi, chart_ticks_for(f->h * 0.6, fs * 3.6), 0);
    char buf[64];
    chart_font(f, fs * 0.9, 0);
    double roww = 0, zw = 0;
    for (size_t r = 0; r < sp->nrows; r++) roww = pmax(roww, chart_text_width(f, sp->rows[r] ? sp->rows[r] : ""));
    for (int t = 0; t < az.nticks; t++) {
        chart_axis_label(&az, az.ticks[t], buf, sizeof buf);
        zw = pmax(zw, chart_text_width(f, buf));
    }
    roww = fmin(roww, f->w * 0.3);
    double barw = fs * 1.2;
    f->y0 = chart_title_height(f, opt->title);
    f->y1 = f->h - chart_xaxis_height(f, opt->xlabel);
    f->x0 = fs * 1.1 + roww + (opt->ylabel && opt->ylabel[0] ? fs * 1.8 : 0);
    f->x1 = f->w - (fs * 1.0 + barw + fs * 0.5 + zw + (opt->zlabel && opt->zlabel[0] ? fs * 2.2 : fs * 0.6));
    if (f->x1 - f->x0 < fs * 3 || f->y1 - f->y0 < fs * 3)
        return adept_fail(ADEPT_EINVAL, "heatmap: %gx%g is too small for its labels", f->w, f->h);
    chart_title(f, opt->title);
    double pw = f->x1 - f->x0, ph = f->y1 - f->y0, cw = pw / sp->ncols, ch = ph / sp->nrows;
    double span = sp->hi - sp->lo;

    /* cells on whole pixels without anti-aliasing, so neighbouring cells leave no hairline seams */
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
    for (size_t r = 0; r < sp->nrows; r++)
        for (size_t c = 0; c < sp->ncols; c++) {
            double v = sp->v[r * sp->ncols + c];
            double x0 = round(f->x0 + c * cw), x1 = round(f->x0 + (c + 1) * cw);
            double y0 = round(f->y0 + r * ch), y1 = round(f->y0 + (r + 1) * ch);
            if (isfinite(v)) chart_set_color(cr, adept_chart_colormap((v - sp->lo) / span), 1);
            else cairo_set_source_rgb(cr, 0.87, 0.87, 0.87); /* missing */
            cairo_rectangle(cr, x0, y0, x1 - x0, y1 - y0);
            cairo_fill(cr);
        }
    if (cw >= 14 && ch >= 14) { /* white separators once cells are big enough to read one by one */
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_set_line_width(cr, 1);
        for (size_t c = 1; c < sp->ncols; c++) {
            cairo_move_to(cr, round(f->x0 + c * cw) + 0.5, f->y0);
            cairo_line_to(cr, round(f->x0 + c * cw) + 0.5, f->y1);
        }
        for (size_t r = 1; r < sp->nrows; r++) {
            cairo_move_to(cr, f->x0, round(f->y0 + r * ch) + 0.5);
            cairo_line_to(cr, f->x1, round(f->y0 + r * ch) + 0.5);
        }
        cairo_stroke(cr);
    }
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_DEFAULT);

    /* the values themselves, when they fit */
    chart_font(f, fs * 0.75, 0);
    if (ch >= fs * 1.1 && cw >= chart_text_width(f, "0.000") + 4)
        for (size_t r = 0; r < sp->nrows; r++)
            for (size_t c = 0; c < sp->ncols; c++) {
                double v = sp->v[r * sp->ncols + c];
                if (!isfinite(v)) continue;
                snprintf(buf, sizeof buf, "%.3g", v);
                double t = (v - sp->lo) / span;
                cairo_set_source_rgb(cr, t < 0.55 ? 1 : 0, t < 0.55 ? 1 : 0, t < 0.55 ? 1 : 0);
                chart_text(f, buf, f->x0 + (c + 0.5) * cw, f->y0 + (r + 0.5) * ch, 0.5, 0.5, cw - 2);
            }

    /* row and column labels, thinned when they would collide */
    chart_font(f, fs * 0.9, 0);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    size_t every = (size_t)ceil(fs * 1.15 / ch);
    for (size_t r = 0; r < sp->nrows; r += every ? every : 1)
        chart_text(f, sp->rows[r] ? sp->rows[r] : "", f->x0 - fs * 0.5, f->y0 + (r + 0.5) * ch, 1, 0.5, roww);
    double colw = 0;
    for (size_t c = 0; c < sp->ncols; c++) colw = pmax(colw, chart_text_width(f, sp->cols[c] ? sp->cols[c] : ""));
    every = (size_t)ceil((colw + fs * 0.6) / cw);
    for (size_t c = 0; c < sp->ncols; c += every ? every : 1)
        chart_text(f, sp->cols[c] ? sp->cols[c] : "", f->x0 + (c + 0.5) * cw, f->y1 + fs * 0.45, 0.5, 0,
                   (every ? every : 1) * cw);
    chart_font(f, fs, 0);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    if (opt->xlabel && opt->xlabel[0]) chart_text(f, opt->xlabel, (f->x0 + f->x1) / 2, f->y1 + fs * 2.2, 0.5, 0, pw);
    if (opt->ylabel && opt->ylabel[0]) chart_text_rotated(f, opt->ylabel, fs * 1.0, (f->y0 + f->y1) / 2, ph);

    /* colour bar: the same viridis stops as the cells, ticks inside the data range */
    double bx = f->x1 + fs * 1.0;
    cairo_pattern_t *g = cairo_pattern_create_linear(0, f->y1, 0, f->y0);
    for (int k = 0; k <= 10; k++) {
        uint32_t c = adept_chart_colormap(k / 10.0);
        cairo_pattern_add_color_stop_rgb(g, k / 10.0, ((c >> 16) & 0xFF) / 255.0, ((c >> 8) & 0xFF) / 255.0,
                                         (c & 0xFF) / 255.0);
    }
    cairo_rectangle(cr, bx, f->y0, barw, ph);
    cairo_set_source(cr, g);
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, round(bx) + 0.5, round(f->y0) + 0.5, round(barw), round(ph));
    cairo_stroke(cr);
    chart_font(f, fs * 0.9, 0);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    for (int t = 0; t < az.nticks; t++) {
        double v = az.ticks[t];
        if (v < sp->lo - span * 1e-9 || v > sp->hi + span * 1e-9) continue;
        double y = f->y1 - ph * (v - sp->lo) / span;
        cairo_move_to(cr, bx + barw, y);
        cairo_line_to(cr, bx + barw + fs * 0.3, y);
        cairo_stroke(cr);
        chart_axis_label(&az, v, buf, sizeof buf);
        chart_text(f, buf, bx + barw + fs * 0.45, y, 0, 0.5, 0);
    }
    if (opt->zlabel && opt->zlabel[0]) {
        chart_font(f, fs, 0);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        chart_text_rotated(f, opt->zlabel, bx + barw + fs * 0.9 + zw + fs * 0.6, (f->y0 + f->y1) / 2, ph);
    }
    return ADEPT_OK;
}

adept_status adept_chart_heatmap(const char *path, const adept_chart_options *opt, const char *const *rows,
                                 size_t nrows, const char *const *cols, size_t ncols, const double *values) {
    const char *what = "heatmap";
    ADEPT_TRY(chart_check_options(what, opt));
    if (nrows == 0 || ncols == 0 || !rows || !cols || !values)
        return adept_fail(ADEPT_EINVAL, "%s: needs at least one row and one column, got %zu x %zu", what, nrows, ncols);
    heat_spec sp = {opt, rows, cols, nrows, ncols, values, INFINITY, -INFINITY};
    for (size_t i = 0; i < nrows * ncols; i++)
        if (isfinite(values[i])) { sp.lo = fmin(sp.lo, values[i]); sp.hi = fmax(sp.hi, values[i]); }
    if (!(sp.lo <= sp.hi)) return adept_fail(ADEPT_EINVAL, "%s: no finite value among %zu cells", what, nrows * ncols);
    if (sp.hi == sp.lo) { /* one value everywhere: centre it on the scale */
        double d = sp.lo != 0 ? fabs(sp.lo) * 0.1 : 1;
        sp.lo -= d;
        sp.hi += d;
    }
    return chart_render(path, what, opt, draw_heatmap, &sp);
}
