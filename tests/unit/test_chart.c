/* Charts: every kind writes a valid PNG of the requested size and an SVG document; the PNG read back is not
   blank and shows the series colours where the data is; bad input fails with a named error and no file. */
#include <cairo.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adept/chart.h"
#include "check.h"
#include "report/chart_internal.h"

static char dir[64];

static const char *out(const char *name) {
    static char buf[8][256];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* PNG signature and IHDR width/height. */
static int png_size(const char *path, uint32_t *w, uint32_t *h) {
    unsigned char b[24];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 24 || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4)) return 0;
    *w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    *h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    return 1;
}

static char svg_buf[1 << 21];

static int svg_ok(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(svg_buf, 1, sizeof svg_buf - 1, f);
    fclose(f);
    svg_buf[n] = 0;
    return strncmp(svg_buf, "<?xml", 5) == 0 && strstr(svg_buf, "<svg") && strstr(svg_buf, "</svg>");
}

/* The SVG document states the requested size in pixels, like the PNG. */
static int svg_size_is(const char *path, int w, int h) {
    if (!svg_ok(path)) return 0;
    char want[64];
    snprintf(want, sizeof want, "width=\"%dpx\" height=\"%dpx\"", w, h);
    return strstr(svg_buf, want) != NULL;
}

typedef struct image_stats {
    int distinct;      /* distinct colours, capped at 4096 */
    double nonwhite;   /* share of pixels that are not white */
} image_stats;

static uint32_t pixel(cairo_surface_t *s, int x, int y) {
    const unsigned char *d = cairo_image_surface_get_data(s);
    return *(const uint32_t *)(d + (size_t)y * cairo_image_surface_get_stride(s) + (size_t)x * 4) & 0xFFFFFF;
}

static int close_to(uint32_t a, uint32_t b, int tol) {
    for (int sh = 0; sh <= 16; sh += 8)
        if (abs((int)((a >> sh) & 0xFF) - (int)((b >> sh) & 0xFF)) > tol) return 0;
    return 1;
}

static image_stats stats(cairo_surface_t *s) {
    image_stats st = {0, 0};
    static uint32_t seen[4096];
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    size_t nonwhite = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t p = pixel(s, x, y);
            nonwhite += p != 0xFFFFFF;
            int found = 0;
            for (int i = 0; i < st.distinct && !found; i++) found = seen[i] == p;
            if (!found && st.distinct < 4096) seen[st.distinct++] = p;
        }
    st.nonwhite = (double)nonwhite / ((double)w * h);
    return st;
}

/* Pixels of colour `rgb` (within tol per channel) in the box [fx0, fx1] x [fy0, fy1] of the image (fractions). */
static int count_color(cairo_surface_t *s, uint32_t rgb, int tol, double fx0, double fy0, double fx1, double fy1) {
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s), n = 0;
    for (int y = (int)(fy0 * h); y < (int)(fy1 * h); y++)
        for (int x = (int)(fx0 * w); x < (int)(fx1 * w); x++) n += close_to(pixel(s, x, y), rgb, tol);
    return n;
}

/* Checks both files of a chart written without an extension; returns the PNG read back (caller destroys). */
static cairo_surface_t *check_files(const char *base, int w, int h) {
    char png[300], svg[300];
    snprintf(png, sizeof png, "%s.png", base);
    snprintf(svg, sizeof svg, "%s.svg", base);
    uint32_t pw = 0, ph = 0;
    CHECK(png_size(png, &pw, &ph));
    CHECK(pw == (uint32_t)w && ph == (uint32_t)h);
    CHECK(svg_size_is(svg, w, h));
    cairo_surface_t *s = cairo_image_surface_create_from_png(png);
    CHECK(cairo_surface_status(s) == CAIRO_STATUS_SUCCESS);
    CHECK(cairo_image_surface_get_width(s) == w && cairo_image_surface_get_height(s) == h);
    image_stats st = stats(s);
    CHECK(st.distinct > 20);   /* anti-aliased text and lines, several series colours */
    CHECK(st.nonwhite > 0.03); /* not a blank page */
    CHECK(st.nonwhite < 0.9);  /* nor a filled one */
    CHECK(pixel(s, 1, 1) == 0xFFFFFF); /* white background */
    return s;
}

static void test_line(void) {
    enum { N = 200 };
    double x[N], a[N], b[N];
    for (int i = 0; i < N; i++) {
        x[i] = i * 5;
        a[i] = 2 + 4 * exp(-i / 30.0);
        b[i] = 2.5 + 3 * exp(-i / 50.0);
    }
    adept_chart_series s[2] = {{.name = "adept", .x = x, .y = a, .nx = N, .ny = N},
                               {.name = "full CPT", .x = x, .y = b, .nx = N, .ny = N}};
    adept_chart_options o = {.title = "Training loss", .xlabel = "step", .ylabel = "loss", .width = 640, .height = 400};
    CHECK_OK(adept_chart_line(out("line"), &o, s, 2));
    cairo_surface_t *img = check_files(out("line"), 640, 400);
    /* both curves run through the middle of the plot; the legend sits at the right edge */
    CHECK(count_color(img, adept_chart_color(0), 40, 0.3, 0.1, 0.6, 0.9) > 20);
    CHECK(count_color(img, adept_chart_color(1), 40, 0.3, 0.1, 0.6, 0.9) > 20);
    cairo_surface_destroy(img);

    o.logy = 1;
    CHECK_OK(adept_chart_line(out("line_log.png"), &o, s, 2));
    uint32_t w, h;
    CHECK(png_size(out("line_log.png"), &w, &h) && w == 640 && h == 400);
    CHECK(!exists(out("line_log.svg"))); /* an extension asks for that format only */
    CHECK_OK(adept_chart_line(out("line_only.svg"), &o, s, 2));
    CHECK(svg_ok(out("line_only.svg")) && !exists(out("line_only.png")));
}

static void test_scatter(void) {
    double ag[3] = {2.95, 3.02, 3.2}, ad[3] = {2.4, 2.21, 2.1}, cg[3] = {3.1, 3.4, 3.9}, cd[3] = {2.35, 2.15, 2.02};
    const char *labels[3] = {"lr 3e-5", "lr 1e-4", NULL};
    adept_chart_series s[2] = {{.name = "ADEPT", .x = ag, .y = ad, .nx = 3, .ny = 3, .labels = labels, .connect = 1},
                               {.name = "CPT", .x = cg, .y = cd, .nx = 3, .ny = 3, .labels = labels, .connect = 1}};
    adept_chart_options o = {.title = "General vs domain", .xlabel = "general", .ylabel = "domain", .width = 700,
                             .height = 500};
    CHECK_OK(adept_chart_scatter(out("scatter"), &o, s, 2));
    cairo_surface_t *img = check_files(out("scatter"), 700, 500);
    /* markers are filled: solid series colour somewhere in the plot area */
    CHECK(count_color(img, adept_chart_color(0), 8, 0.05, 0.05, 0.75, 0.95) > 30);
    CHECK(count_color(img, adept_chart_color(1), 8, 0.05, 0.05, 0.75, 0.95) > 30);
    cairo_surface_destroy(img);
}

static void test_bars(void) {
    const char *cats[6] = {"0", "1", "2", "3", "4", "5"};
    double m1[6] = {1, 0.2, 0.5, 0.9, 0.3, 0.7}, m2[6] = {0.1, 1, 0.4, NAN, 0.8, 0.6};
    adept_chart_series s[2] = {{.name = "mask_out", .y = m1, .ny = 6}, {.name = "grad_weight", .y = m2, .ny = 6}};
    adept_chart_options o = {.title = "Layer importance", .xlabel = "layer", .ylabel = "score", .width = 600,
                             .height = 400};
    CHECK_OK(adept_chart_bars(out("bars"), &o, cats, 6, s, 2));
    cairo_surface_t *img = check_files(out("bars"), 600, 400);
    CHECK(count_color(img, adept_chart_color(0), 0, 0.1, 0.1, 0.75, 0.9) > 500);
    CHECK(count_color(img, adept_chart_color(1), 0, 0.1, 0.1, 0.75, 0.9) > 500);
    cairo_surface_destroy(img);
    o.horizontal = 1;
    CHECK_OK(adept_chart_bars(out("hbars"), &o, cats, 6, s, 2));
    img = check_files(out("hbars"), 600, 400);
    CHECK(count_color(img, adept_chart_color(0), 0, 0.1, 0.1, 0.75, 0.9) > 500);
    cairo_surface_destroy(img);
}

static void test_heatmap(void) {
    const char *rows[3] = {"2.mlp.down_proj", "2.self_attn.q_proj", "10.mlp.up_proj"}, *cols[4] = {"0", "50", "100", "150"};
    double v[12] = {0.5, 0.75, 1, 1.25, 2, 1.75, NAN, 1.25, 1, 1, 1, 1};
    adept_chart_options o = {.title = "LR scale", .xlabel = "step", .ylabel = "unit", .zlabel = "scale",
                             .width = 640, .height = 400};
    CHECK_OK(adept_chart_heatmap(out("heat"), &o, rows, 3, cols, 4, v));
    cairo_surface_t *img = check_files(out("heat"), 640, 400);
    CHECK(count_color(img, adept_chart_colormap(0), 0, 0.2, 0.1, 0.85, 0.9) > 500); /* the 0.5 cell */
    CHECK(count_color(img, adept_chart_colormap(1), 0, 0.2, 0.1, 0.85, 0.9) > 500); /* the 2.0 cell */
    CHECK(count_color(img, 0xDEDEDE, 2, 0.2, 0.1, 0.85, 0.9) > 500);                /* the missing cell */
    cairo_surface_destroy(img);
    double same[2] = {3, 3};
    CHECK_OK(adept_chart_heatmap(out("heat_same.png"), &o, rows, 1, cols, 2, same));
}

static void test_errors(void) {
    double x[3] = {1, 2, 3}, y[3] = {1, 2, 3}, z[3] = {1, 0, -1}, nan3[3] = {NAN, NAN, NAN};
    adept_chart_options o = {.width = 400, .height = 300};
    adept_chart_series ok = {.name = "s", .x = x, .y = y, .nx = 3, .ny = 3};
    adept_chart_series mism = {.name = "bad", .x = x, .y = y, .nx = 3, .ny = 2};
    adept_chart_series empty = {.name = "none", .x = x, .y = y, .nx = 0, .ny = 0};
    CHECK_FAILS(adept_chart_line(out("e1.png"), &o, &mism, 1), ADEPT_ESHAPE);
    CHECK(strstr(adept_last_error(), "x has 3 values but y has 2") != NULL);
    CHECK_FAILS(adept_chart_scatter(out("e2.png"), &o, &empty, 1), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "'none') is empty") != NULL);
    CHECK_FAILS(adept_chart_line(out("e3.png"), &o, &ok, 0), ADEPT_EINVAL);
    adept_chart_options tiny = {.width = 100, .height = 300};
    CHECK_FAILS(adept_chart_line(out("e4.png"), &tiny, &ok, 1), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "100x300") != NULL);
    adept_chart_options huge = {.width = 400, .height = 100000};
    CHECK_FAILS(adept_chart_line(out("e5.png"), &huge, &ok, 1), ADEPT_EINVAL);
    CHECK_FAILS(adept_chart_line("/nonexistent-dir/x.png", &o, &ok, 1), ADEPT_EIO);
    CHECK(strstr(adept_last_error(), "/nonexistent-dir/x.png") != NULL);
    CHECK_FAILS(adept_chart_line(out("e6.jpg"), &o, &ok, 1), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "'.jpg'") != NULL);
    CHECK(!exists(out("e6.jpg")));
    CHECK_FAILS(adept_chart_line("", &o, &ok, 1), ADEPT_EINVAL);
    adept_chart_series neg = {.name = "neg", .x = x, .y = z, .nx = 3, .ny = 3};
    adept_chart_options lo = o;
    lo.logy = 1;
    CHECK_FAILS(adept_chart_line(out("e7.png"), &lo, &neg, 1), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "y[2] = 0") != NULL);
    adept_chart_series allnan = {.name = "nan", .x = x, .y = nan3, .nx = 3, .ny = 3};
    CHECK_FAILS(adept_chart_line(out("e8.png"), &o, &allnan, 1), ADEPT_EINVAL);
    CHECK(!exists(out("e8.png")));
    const char *cats[2] = {"a", "b"};
    CHECK_FAILS(adept_chart_bars(out("e9.png"), &o, cats, 2, &ok, 1), ADEPT_ESHAPE);
    CHECK(strstr(adept_last_error(), "3 values for 2 categories") != NULL);
    CHECK_FAILS(adept_chart_bars(out("e10.png"), &o, cats, 0, &ok, 1), ADEPT_EINVAL);
    CHECK_FAILS(adept_chart_heatmap(out("e11.png"), &o, cats, 1, cats, 2, nan3), ADEPT_EINVAL);
    CHECK_FAILS(adept_chart_heatmap(out("e12.png"), &o, cats, 0, cats, 2, y), ADEPT_EINVAL);
    CHECK_FAILS(adept_chart_line(out("e13.png"), NULL, &ok, 1), ADEPT_EINVAL);
}

static void test_text_and_gaps(void) {
    /* invalid UTF-8 and control bytes in labels must not put cairo in an error state (a blank chart) */
    double x[5] = {0, 1, 2, 3, 4}, y[5] = {1, NAN, 3, INFINITY, 2};
    adept_chart_series s = {.name = "bad \xff\xfe name\n", .x = x, .y = y, .nx = 5, .ny = 5};
    adept_chart_options o = {.title = "title \xc3\x28 broken", .xlabel = "x\tlabel", .width = 400, .height = 300};
    CHECK_OK(adept_chart_line(out("utf8"), &o, &s, 1));
    cairo_surface_t *img = check_files(out("utf8"), 400, 300);
    cairo_surface_destroy(img);
    /* a single point still gets a usable axis */
    adept_chart_series one = {.name = "one", .x = x, .y = y, .nx = 1, .ny = 1};
    CHECK_OK(adept_chart_scatter(out("one.png"), &o, &one, 1));
}

static void test_axes(void) {
    chart_axis a;
    chart_axis_linear(&a, 0.13, 9.7, 6, 0);
    CHECK(a.nticks >= 3 && a.nticks <= 12);
    CHECK(a.lo <= 0.13 && a.hi >= 9.7);
    double m = a.step / pow(10, floor(log10(a.step)));
    CHECK(fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9);
    for (int i = 0; i < a.nticks; i++) CHECK(fabs(a.ticks[i] / a.step - round(a.ticks[i] / a.step)) < 1e-6);
    char buf[64];
    chart_axis_linear(&a, 2.1, 2.9, 6, 0);
    chart_axis_label(&a, a.ticks[1], buf, sizeof buf);
    CHECK(strcmp(buf, "2.2") == 0 || strcmp(buf, "2.1") == 0 || strcmp(buf, "2.25") == 0);
    chart_axis_linear(&a, 0, 3e6, 5, 0);
    chart_axis_label(&a, 2e6, buf, sizeof buf);
    CHECK(strcmp(buf, "2M") == 0);
    chart_axis_log(&a, 2, 10, 6);
    int has2 = 0, has10 = 0;
    for (int i = 0; i < a.nticks; i++) {
        has2 |= fabs(a.ticks[i] - log10(2)) < 1e-9;
        has10 |= fabs(a.ticks[i] - 1) < 1e-9;
    }
    CHECK(has2 && has10);
    chart_axis_log(&a, 1e-6, 1e2, 6);
    CHECK(a.nticks >= 2 && a.nticks <= 9);
    chart_axis_label(&a, -5, buf, sizeof buf);
    CHECK(strcmp(buf, "1e-5") == 0);
    CHECK(adept_chart_colormap(0) == 0x440154 && adept_chart_colormap(1) == 0xFDE725);
    CHECK(adept_chart_color(0) != adept_chart_color(1) && adept_chart_color(8) == adept_chart_color(0));
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/adept_chart_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_axes();
    test_line();
    test_scatter();
    test_bars();
    test_heatmap();
    test_errors();
    test_text_and_gaps();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!getenv("ADEPT_KEEP_CHARTS") && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    else if (getenv("ADEPT_KEEP_CHARTS")) printf("charts kept in %s\n", dir);
    return check_summary();
}
