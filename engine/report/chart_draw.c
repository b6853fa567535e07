/* Chart drawing machinery shared by every chart kind: nice-number axes, text that never overflows its box,
   legend, markers, and rendering one drawing function to PNG (image surface) and SVG (SVG surface). */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cairo-svg.h>
#include <utf8proc.h>

#include "chart_internal.h"

/* ---- palette ------------------------------------------------------------------------------------------ */

/* Okabe & Ito's colour-blind safe set, yellow last because it reads poorly on white. */
static const uint32_t palette[8] = {0x0072B2, 0xE69F00, 0x009E73, 0xD55E00,
                                    0xCC79A7, 0x56B4E9, 0x000000, 0xF0E442};

uint32_t adept_chart_color(size_t i) { return palette[i % 8]; }

/* viridis sampled at 0, 0.1, ..., 1; linear interpolation in between is visually indistinguishable. */
static const uint32_t viridis[11] = {0x440154, 0x482475, 0x414487, 0x355F8D, 0x2A788E, 0x21918C,
                                     0x22A884, 0x44BF70, 0x7AD151, 0xBDDF26, 0xFDE725};

uint32_t adept_chart_colormap(double t) {
    if (!(t > 0)) t = 0; /* NaN too */
    if (t > 1) t = 1;
    double p = t * 10;
    int i = (int)p;
    if (i >= 10) return viridis[10];
    double u = p - i;
    uint32_t a = viridis[i], b = viridis[i + 1], out = 0;
    for (int sh = 16; sh >= 0; sh -= 8) {
        double ca = (a >> sh) & 0xFF, cb = (b >> sh) & 0xFF;
        out |= (uint32_t)lround(ca + (cb - ca) * u) << sh;
    }
    return out;
}

void chart_set_color(cairo_t *cr, uint32_t rgb, double alpha) {
    cairo_set_source_rgba(cr, ((rgb >> 16) & 0xFF) / 255.0, ((rgb >> 8) & 0xFF) / 255.0, (rgb & 0xFF) / 255.0,
                          alpha);
}

/* ---- axes --------------------------------------------------------------------------------------------- */

/* Heckbert's nice numbers: 1, 2 or 5 times a power of ten. */
static double nice_num(double x, int round_it) {
    double e = floor(log10(x)), f = x / pow(10, e), nf;
    if (round_it) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * pow(10, e);
}

int chart_ticks_for(double pixels, double spacing) {
    int n = (int)(pixels / spacing) + 1;
    return n < 3 ? 3 : n > 12 ? 12 : n;
}

void chart_axis_linear(chart_axis *a, double lo, double hi, int target, double pad) {
    memset(a, 0, sizeof *a);
    if (!(hi > lo)) { /* one value: give it room */
        double d = lo != 0 ? fabs(lo) * 0.1 : 1;
        lo -= d;
        hi += d;
    }
    double span = hi - lo;
    lo -= span * pad;
    hi += span * pad;
    double step = nice_num((hi - lo) / (target > 1 ? target - 1 : 1), 1);
    a->lo = floor(lo / step + 1e-9) * step;
    a->hi = ceil(hi / step - 1e-9) * step;
    a->step = step;
    for (double t = a->lo; t <= a->hi + step * 1e-6 && a->nticks < CHART_MAX_TICKS; t += step)
        a->ticks[a->nticks++] = fabs(t) < step * 1e-9 ? 0 : t;
}

/* Log-axis ticks at multiples m[] of every `every`-th decade inside [lo, hi]; returns the count. */
static int log_ticks(chart_axis *a, const int *m, int every) {
    a->nticks = 0;
    for (int d = (int)floor(a->lo); d <= (int)ceil(a->hi); d++) {
        if (d % every) continue;
        for (int k = 0; m[k] && a->nticks < CHART_MAX_TICKS; k++) {
            double t = d + log10((double)m[k]);
            if (t >= a->lo - 1e-9 && t <= a->hi + 1e-9) a->ticks[a->nticks++] = t;
        }
    }
    return a->nticks;
}

void chart_axis_log(chart_axis *a, double lo, double hi, int target) {
    memset(a, 0, sizeof *a);
    a->log = 1;
    double l = log10(lo), h = log10(hi);
    if (!(h > l)) { l -= 0.5; h += 0.5; }
    double span = h - l;
    a->lo = l - span * 0.04;
    a->hi = h + span * 0.04;
    /* 1-2-5 per decade; 1..9 when that gives too few; thinned powers of ten when it gives too many */
    static const int m125[] = {1, 2, 5, 0}, m19[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0}, m1[] = {1, 0};
    int n = log_ticks(a, m125, 1);
    if (n < 3) log_ticks(a, m19, 1);
    else if (n > target + 2)
        for (int every = 1; log_ticks(a, m1, every) > target && every < 1000; every++) {}
}

double chart_axis_frac(const chart_axis *a, double v) {
    if (a->log) v = log10(v);
    return (v - a->lo) / (a->hi - a->lo);
}

/* Tick label with as many decimals as the step needs; k/M suffixes for large counts (tokens, steps). */
void chart_axis_label(const chart_axis *a, double t, char *buf, size_t cap) {
    if (a->log) {
        double v = pow(10, t);
        if (v >= 1e-3 && v < 1e5) {
            snprintf(buf, cap, "%.4g", v);
        } else { /* "2e-5" rather than "2e-05" */
            int e = (int)floor(t + 1e-9);
            double m = pow(10, t - e);
            snprintf(buf, cap, fabs(m - round(m)) < 1e-6 ? "%.0fe%d" : "%.1fe%d", m, e);
        }
        return;
    }
    double mag = fmax(fabs(a->lo), fabs(a->hi)), step = a->step, v = t;
    const char *suffix = "";
    if (mag >= 1e9 && step >= 1e8) { v /= 1e9; step /= 1e9; suffix = "G"; }
    else if (mag >= 1e6 && step >= 1e5) { v /= 1e6; step /= 1e6; suffix = "M"; }
    else if (mag >= 1e4 && step >= 1e3) { v /= 1e3; step /= 1e3; suffix = "k"; }
    if (step < 1e-4 || mag >= 1e12) {
        snprintf(buf, cap, "%.3g", v);
        return;
    }
    int dec = (int)ceil(-log10(step) - 1e-9);
    if (dec < 0) dec = 0;
    snprintf(buf, cap, "%.*f%s", dec, v, suffix);
}

/* ---- text --------------------------------------------------------------------------------------------- */

void chart_font(chart_frame *f, double size, int bold) {
    cairo_select_font_face(f->cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(f->cr, size);
}

/* Copies s into out as valid UTF-8 (bad bytes become '?'): cairo puts its context in an error state on invalid
   strings, which would silently blank the rest of the chart. */
static void sanitize(const char *s, char *out, size_t cap) {
    size_t o = 0, n = s ? strlen(s) : 0;
    for (size_t i = 0; i < n && o + 5 < cap;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t len = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (len <= 0 || cp < 0x20) {
            out[o++] = len > 0 && (cp == '\t' || cp == '\n') ? ' ' : '?';
            i += len > 0 ? (size_t)len : 1;
        } else {
            memcpy(out + o, s + i, (size_t)len);
            o += (size_t)len;
            i += (size_t)len;
        }
    }
    out[o] = '\0';
}

double chart_text_width(chart_frame *f, const char *s) {
    char buf[512];
    sanitize(s, buf, sizeof buf);
    cairo_text_extents_t te;
    cairo_text_extents(f->cr, buf, &te);
    return te.x_advance;
}

void chart_fit_text(chart_frame *f, const char *s, double max_w, char *out, size_t cap) {
    sanitize(s, out, cap);
    if (max_w <= 0) return;
    cairo_text_extents_t te;
    cairo_text_extents(f->cr, out, &te);
    if (te.x_advance <= max_w) return;
    size_t n = strlen(out);
    while (n > 0) {
        do n--; while (n > 0 && ((unsigned char)out[n] & 0xC0) == 0x80); /* back up one code point */
        if (n + 4 > cap) continue;
        memcpy(out + n, "\xE2\x80\xA6", 4); /* U+2026 HORIZONTAL ELLIPSIS */
        cairo_text_extents(f->cr, out, &te);
        if (te.x_advance <= max_w) return;
    }
    out[0] = '\0';
}

void chart_text(chart_frame *f, const char *s, double x, double y, double ax, double ay, double max_w) {
    char buf[512];
    chart_fit_text(f, s, max_w, buf, sizeof buf);
    if (!buf[0]) return;
    cairo_text_extents_t te;
    cairo_font_extents_t fe;
    cairo_text_extents(f->cr, buf, &te);
    cairo_font_extents(f->cr, &fe);
    /* vertical placement from the font's ascent so that labels of one row share a baseline */
    double asc = fe.ascent * 0.78;
    cairo_move_to(f->cr, x - te.x_advance * ax, y + asc * (1 - ay));
    cairo_show_text(f->cr, buf);
    cairo_new_path(f->cr);
}

void chart_text_rotated(chart_frame *f, const char *s, double x, double y, double max_w) {
    cairo_save(f->cr);
    cairo_translate(f->cr, x, y);
    cairo_rotate(f->cr, -M_PI / 2);
    chart_text(f, s, 0, 0, 0.5, 0.5, max_w);
    cairo_restore(f->cr);
}

/* ---- markers ------------------------------------------------------------------------------------------ */

void chart_marker(cairo_t *cr, int kind, double x, double y, double r) {
    switch (kind % 8) {
    case 0: cairo_arc(cr, x, y, r, 0, 2 * M_PI); break;
    case 1: cairo_rectangle(cr, x - r * 0.88, y - r * 0.88, r * 1.76, r * 1.76); break;
    case 2: /* triangle up */
        cairo_move_to(cr, x, y - r * 1.15);
        cairo_line_to(cr, x + r * 1.05, y + r * 0.7);
        cairo_line_to(cr, x - r * 1.05, y + r * 0.7);
        cairo_close_path(cr);
        break;
    case 3: /* diamond */
        cairo_move_to(cr, x, y - r * 1.2);
        cairo_line_to(cr, x + r * 1.2, y);
        cairo_line_to(cr, x, y + r * 1.2);
        cairo_line_to(cr, x - r * 1.2, y);
        cairo_close_path(cr);
        break;
    case 4: /* triangle down */
        cairo_move_to(cr, x, y + r * 1.15);
        cairo_line_to(cr, x + r * 1.05, y - r * 0.7);
        cairo_line_to(cr, x - r * 1.05, y - r * 0.7);
        cairo_close_path(cr);
        break;
    case 5: /* pentagon */
        for (int k = 0; k < 5; k++) {
            double a = -M_PI / 2 + k * 2 * M_PI / 5;
            if (k == 0) cairo_move_to(cr, x + r * 1.1 * cos(a), y + r * 1.1 * sin(a));
            else cairo_line_to(cr, x + r * 1.1 * cos(a), y + r * 1.1 * sin(a));
        }
        cairo_close_path(cr);
        break;
    case 6: /* hexagon */
        for (int k = 0; k < 6; k++) {
            double a = k * M_PI / 3;
            if (k == 0) cairo_move_to(cr, x + r * 1.05 * cos(a), y + r * 1.05 * sin(a));
            else cairo_line_to(cr, x + r * 1.05 * cos(a), y + r * 1.05 * sin(a));
        }
        cairo_close_path(cr);
        break;
    default: /* star */
        for (int k = 0; k < 10; k++) {
            double a = -M_PI / 2 + k * M_PI / 5, rr = k % 2 ? r * 0.6 : r * 1.3;
            if (k == 0) cairo_move_to(cr, x + rr * cos(a), y + rr * sin(a));
            else cairo_line_to(cr, x + rr * cos(a), y + rr * sin(a));
        }
        cairo_close_path(cr);
        break;
    }
}

void chart_dash(cairo_t *cr, size_t i, double lw) {
    static const double dashes[4][4] = {{0}, {6, 3.5}, {1, 3}, {7, 3, 1, 3}};
    static const int counts[4] = {0, 2, 2, 4};
    int k = (int)((i / 8) % 4);
    double d[4];
    for (int j = 0; j < counts[k]; j++) d[j] = dashes[k][j] * lw;
    cairo_set_dash(cr, d, counts[k], 0);
}

int chart_series_marker(size_t i) { return (int)((i + i / 8) % 8); }

/* ---- frame pieces ------------------------------------------------------------------------------------- */

void chart_background(chart_frame *f) {
    cairo_set_source_rgb(f->cr, 1, 1, 1);
    cairo_paint(f->cr);
    cairo_set_antialias(f->cr, CAIRO_ANTIALIAS_DEFAULT);
    cairo_set_line_join(f->cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(f->cr, CAIRO_LINE_CAP_ROUND);
}

double chart_title_height(chart_frame *f, const char *title) {
    return title && title[0] ? f->fs * 2.4 : f->fs * 0.8;
}

void chart_title(chart_frame *f, const char *title) {
    if (!title || !title[0]) return;
    chart_font(f, f->fs * 1.3, 1);
    cairo_set_source_rgb(f->cr, 0.1, 0.1, 0.1);
    chart_text(f, title, f->w / 2, f->fs * 1.2, 0.5, 0.5, f->w - 2 * f->fs);
}

#define LEGEND_SAMPLE 2.2 /* sample width in font sizes */

double chart_legend_width(chart_frame *f, const chart_legend_entry *e, size_t n) {
    chart_font(f, f->fs, 0);
    double w = 0;
    for (size_t i = 0; i < n; i++)
        if (e[i].name && e[i].name[0]) w = fmax(w, chart_text_width(f, e[i].name));
    if (w == 0) return 0;
    w += f->fs * (LEGEND_SAMPLE + 1.8);
    return fmin(w, f->w * 0.3); /* long run names are shortened rather than squeezing the plot */
}

void chart_legend(chart_frame *f, const chart_legend_entry *e, size_t n, double x, double y, double max_h) {
    cairo_t *cr = f->cr;
    double row = f->fs * 1.5, fs = f->fs, maxw = chart_legend_width(f, e, n);
    if (maxw == 0) return;
    chart_font(f, fs, 0);
    size_t shown = 0, named = 0;
    for (size_t i = 0; i < n; i++) named += e[i].name && e[i].name[0];
    double yy = y + fs * 0.4;
    for (size_t i = 0; i < n; i++) {
        if (!e[i].name || !e[i].name[0]) continue;
        if (yy + row * 2 > y + max_h && shown + 1 < named) { /* no room: say how many are left out */
            char more[64];
            snprintf(more, sizeof more, "(+%zu more)", named - shown);
            cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
            chart_text(f, more, x + fs * 0.5, yy + row / 2, 0, 0.5, maxw);
            return;
        }
        double cy = yy + row / 2, sx = x + fs * 0.5, sw = fs * LEGEND_SAMPLE;
        chart_set_color(cr, e[i].color, 1);
        if (e[i].box) {
            cairo_rectangle(cr, sx + sw * 0.2, cy - fs * 0.45, sw * 0.6, fs * 0.9);
            cairo_fill(cr);
        }
        if (e[i].line) {
            double lw = fmax(1.5, fs * 0.17);
            cairo_set_line_width(cr, lw);
            chart_dash(cr, (size_t)e[i].dash, lw);
            cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
            cairo_move_to(cr, sx, cy);
            cairo_line_to(cr, sx + sw, cy);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
        }
        if (e[i].marker >= 0) {
            chart_marker(cr, e[i].marker, sx + sw / 2, cy, fs * 0.36);
            cairo_fill(cr);
        }
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        chart_text(f, e[i].name, sx + sw + fs * 0.5, cy, 0, 0.5, maxw - sw - fs * 1.3);
        yy += row;
        shown++;
    }
}

double chart_yaxis_width(chart_frame *f, const chart_axis *a, const char *ylabel) {
    chart_font(f, f->fs * 0.9, 0);
    double w = 0;
    char buf[64];
    for (int i = 0; a && i < a->nticks; i++) {
        chart_axis_label(a, a->ticks[i], buf, sizeof buf);
        w = fmax(w, chart_text_width(f, buf));
    }
    return w + f->fs * 1.0 + (ylabel && ylabel[0] ? f->fs * 1.8 : 0);
}

double chart_xaxis_height(chart_frame *f, const char *xlabel) {
    return f->fs * 2.0 + (xlabel && xlabel[0] ? f->fs * 1.7 : 0);
}

void chart_draw_axes(chart_frame *f, const chart_axis *ax, const chart_axis *ay, const char *xlabel,
                     const char *ylabel) {
    cairo_t *cr = f->cr;
    double pw = f->x1 - f->x0, ph = f->y1 - f->y0;
    char buf[64];
    cairo_set_line_width(cr, 1);
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    for (int i = 0; ax && i < ax->nticks; i++) {
        double x = round(f->x0 + pw * (ax->ticks[i] - ax->lo) / (ax->hi - ax->lo)) + 0.5;
        cairo_move_to(cr, x, f->y0);
        cairo_line_to(cr, x, f->y1);
    }
    for (int i = 0; ay && i < ay->nticks; i++) {
        double y = round(f->y1 - ph * (ay->ticks[i] - ay->lo) / (ay->hi - ay->lo)) + 0.5;
        cairo_move_to(cr, f->x0, y);
        cairo_line_to(cr, f->x1, y);
    }
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    cairo_rectangle(cr, round(f->x0) + 0.5, round(f->y0) + 0.5, round(pw), round(ph));
    cairo_stroke(cr);

    chart_font(f, f->fs * 0.9, 0);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    double last_right = -1e300;
    for (int i = 0; ax && i < ax->nticks; i++) {
        double x = f->x0 + pw * (ax->ticks[i] - ax->lo) / (ax->hi - ax->lo);
        chart_axis_label(ax, ax->ticks[i], buf, sizeof buf);
        double tw = chart_text_width(f, buf);
        if (x - tw / 2 < last_right + f->fs * 0.5) continue; /* never overlap neighbouring labels */
        chart_text(f, buf, x, f->y1 + f->fs * 0.45, 0.5, 0, 0);
        last_right = x + tw / 2;
    }
    for (int i = 0; ay && i < ay->nticks; i++) {
        double y = f->y1 - ph * (ay->ticks[i] - ay->lo) / (ay->hi - ay->lo);
        chart_axis_label(ay, ay->ticks[i], buf, sizeof buf);
        chart_text(f, buf, f->x0 - f->fs * 0.5, y, 1, 0.5, 0);
    }
    chart_font(f, f->fs, 0);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    if (xlabel && xlabel[0]) chart_text(f, xlabel, (f->x0 + f->x1) / 2, f->y1 + f->fs * 2.2, 0.5, 0, pw);
    if (ylabel && ylabel[0]) chart_text_rotated(f, ylabel, f->fs * 1.0, (f->y0 + f->y1) / 2, ph);
}

/* ---- output ------------------------------------------------------------------------------------------- */

adept_status chart_check_options(const char *what, const adept_chart_options *opt) {
    if (!opt) return adept_fail(ADEPT_EINVAL, "%s: options are missing", what);
    if (opt->width < ADEPT_CHART_MIN_SIZE || opt->width > ADEPT_CHART_MAX_SIZE || opt->height < ADEPT_CHART_MIN_SIZE ||
        opt->height > ADEPT_CHART_MAX_SIZE)
        return adept_fail(ADEPT_EINVAL, "%s: size %dx%d is out of range (width and height must be %d..%d)", what,
                          opt->width, opt->height, ADEPT_CHART_MIN_SIZE, ADEPT_CHART_MAX_SIZE);
    return ADEPT_OK;
}

static cairo_status_t write_stream(void *closure, const unsigned char *data, unsigned int len) {
    return fwrite(data, 1, len, (FILE *)closure) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static adept_status render_file(const char *file, int svg, const char *what, const adept_chart_options *opt,
                                chart_draw_fn draw, const void *spec) {
    FILE *fp = fopen(file, "wb");
    if (!fp) return adept_fail(ADEPT_EIO, "%s: %s: cannot open for writing: %s", what, file, strerror(errno));
    cairo_surface_t *s = svg ? cairo_svg_surface_create_for_stream(write_stream, fp, opt->width, opt->height)
                             : cairo_image_surface_create(CAIRO_FORMAT_RGB24, opt->width, opt->height);
    if (svg) cairo_svg_surface_set_document_unit(s, CAIRO_SVG_UNIT_PX); /* same size as the PNG, not points */
    cairo_t *cr = cairo_create(s);
    /* base font size follows the chart size so that small thumbnails and large figures both read well */
    double fs = fmin(opt->width / 55.0, opt->height / 34.0);
    chart_frame f = {.cr = cr, .w = opt->width, .h = opt->height, .fs = fs < 9 ? 9 : fs > 18 ? 18 : fs};
    chart_background(&f);
    adept_status st = draw(&f, spec);
    cairo_status_t cs = cairo_status(cr);
    cairo_destroy(cr);
    if (st == ADEPT_OK && cs == CAIRO_STATUS_SUCCESS && !svg) cs = cairo_surface_write_to_png_stream(s, write_stream, fp);
    cairo_surface_finish(s); /* flushes the SVG document */
    if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(s);
    cairo_surface_destroy(s);
    int close_err = fclose(fp) != 0 ? errno : 0;
    if (st == ADEPT_OK && cs != CAIRO_STATUS_SUCCESS)
        st = adept_fail(cs == CAIRO_STATUS_WRITE_ERROR ? ADEPT_EIO : ADEPT_EINVAL, "%s: %s: cairo: %s", what, file,
                        cairo_status_to_string(cs));
    if (st == ADEPT_OK && close_err)
        st = adept_fail(ADEPT_EIO, "%s: %s: write failed: %s", what, file, strerror(close_err));
    if (st != ADEPT_OK) remove(file); /* never leave a half-written image behind */
    return st;
}

adept_status chart_render(const char *path, const char *what, const adept_chart_options *opt, chart_draw_fn draw,
                          const void *spec) {
    if (!path || !path[0]) return adept_fail(ADEPT_EINVAL, "%s: output path is empty", what);
    ADEPT_TRY(chart_check_options(what, opt));
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot && slash && dot < slash) dot = NULL;
    if (dot == path || (slash && dot == slash + 1)) dot = NULL; /* a hidden file name, not an extension */
    if (dot && strcmp(dot, ".png") && strcmp(dot, ".svg") && strcmp(dot, ".PNG") && strcmp(dot, ".SVG"))
        return adept_fail(ADEPT_EINVAL, "%s: %s: unsupported extension '%s' (use .png, .svg, or none for both)",
                          what, path, dot);
    if (dot) return render_file(path, dot[1] == 's' || dot[1] == 'S', what, opt, draw, spec);
    size_t n = strlen(path);
    char file[4096];
    if (n + 5 > sizeof file) return adept_fail(ADEPT_EINVAL, "%s: path is too long (%zu bytes)", what, n);
    snprintf(file, sizeof file, "%s.png", path);
    ADEPT_TRY(render_file(file, 0, what, opt, draw, spec));
    snprintf(file, sizeof file, "%s.svg", path);
    return render_file(file, 1, what, opt, draw, spec);
}
