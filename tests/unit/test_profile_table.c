/* The CUDA profile's table (engine/ops/cuda/profile_table.c), which needs no GPU: times, FLOPs and calls summed
   by (op, part) whether the strings arrive by the same pointer or by equal text; rows past the table's capacity
   summed into one; the printout sorted by time with shares, per-step figures and TFLOP/s as computed here.
   And the public entries failing with a reason where no CUDA backend has started (the GPU side of the profile,
   profile.cu, runs in tests/device/run's benchmark). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/cuda.h"
#include "check.h"
#include "ops/cuda/profile_table.h"

/* the printout of t as a string (caller frees) */
static char *printed(const adept_prof_table *t, double per, const char *unit, int top) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    adept_prof_table_print(t, f, per, unit, top);
    fclose(f);
    return buf;
}

/* the n-th line (0-based) of s into line, or "" */
static void nth_line(const char *s, int n, char *line, size_t cap) {
    for (int i = 0; i < n && s; i++) {
        s = strchr(s, '\n');
        if (s) s++;
    }
    line[0] = 0;
    if (!s) return;
    size_t k = strcspn(s, "\n");
    if (k >= cap) k = cap - 1;
    memcpy(line, s, k);
    line[k] = 0;
}

static void test_sums(void) {
    adept_prof_table *t = malloc(sizeof *t);
    adept_prof_table_reset(t);
    char op_copy[] = "matmul_forward_bf16"; /* equal text, another pointer: the same row */
    adept_prof_table_add(t, "matmul_forward_bf16", "gemm bf16", 2.0, 4e12);
    adept_prof_table_add(t, op_copy, "gemm bf16", 1.0, 2e12);
    adept_prof_table_add(t, "matmul_forward_bf16", "round bf16", 0.5, 0);
    adept_prof_table_add(t, "rmsnorm_forward", "kernel", 0.25, 0);
    adept_prof_table_add(t, NULL, NULL, 0.25, 0);
    CHECK(t->n == 4);
    CHECK(t->marks == 5);
    CHECK_NEAR(t->total_ms, 4.0, 1e-12);
    CHECK(strcmp(t->rows[0].op, "matmul_forward_bf16") == 0 && strcmp(t->rows[0].part, "gemm bf16") == 0);
    CHECK_NEAR(t->rows[0].ms, 3.0, 1e-12);
    CHECK_NEAR(t->rows[0].flops, 6e12, 1);
    CHECK(t->rows[0].calls == 2);
    CHECK(strcmp(t->rows[3].op, "?") == 0 && strcmp(t->rows[3].part, "?") == 0);

    /* per 2 steps: 3 ms -> 1.5 ms/step, 2 calls -> 1.0; 6e12 FLOPs in 3 ms -> 2000.0 TFLOP/s; share 75% */
    char *s = printed(t, 2, "step", 0);
    CHECK(s != NULL);
    if (s) {
        char line[256];
        nth_line(s, 0, line, sizeof line);
        CHECK(strstr(line, "2.000 ms of device time and 2.5 marks per step, over 2 step(s)") != NULL);
        nth_line(s, 1, line, sizeof line);
        CHECK(strstr(line, "ms/step") && strstr(line, "calls/step") && strstr(line, "TFLOP/s"));
        nth_line(s, 2, line, sizeof line);
        printf("%s\n", line);
        CHECK(strstr(line, "75.0%") && strstr(line, "1.500") && strstr(line, "1.0") && strstr(line, "2000.0") &&
              strstr(line, "matmul_forward_bf16 [gemm bf16]"));
        nth_line(s, 3, line, sizeof line); /* 0.5 ms next, no FLOPs: "-" */
        CHECK(strstr(line, "12.5%") && strstr(line, " - ") && strstr(line, "[round bf16]"));
        /* the ties (0.25 ms) in name order: "?" before "rmsnorm_forward" */
        nth_line(s, 4, line, sizeof line);
        CHECK(strstr(line, "? [?]") != NULL);
        nth_line(s, 5, line, sizeof line);
        CHECK(strstr(line, "rmsnorm_forward [kernel]") != NULL);
        nth_line(s, 6, line, sizeof line);
        CHECK(line[0] == 0);
        free(s);
    }
    /* top 2: two rows and the rest summed (0.5 ms, 2 calls, no FLOPs), named by how many rows it holds */
    s = printed(t, 1, NULL, 2);
    if (s) {
        char line[256];
        nth_line(s, 0, line, sizeof line);
        CHECK(strstr(line, "per run, over 1 run(s)") != NULL);
        nth_line(s, 4, line, sizeof line);
        printf("%s\n", line);
        CHECK(strstr(line, "12.5%") && strstr(line, "0.500") && strstr(line, "2.0") && strstr(line, "(2 more rows)"));
        nth_line(s, 5, line, sizeof line);
        CHECK(line[0] == 0);
        free(s);
    }
    free(t);
}

static void test_capacity(void) {
    adept_prof_table *t = malloc(sizeof *t);
    adept_prof_table_reset(t);
    static char names[ADEPT_PROF_ROWS + 10][16];
    for (int i = 0; i < ADEPT_PROF_ROWS + 10; i++) {
        snprintf(names[i], sizeof names[i], "op%d", i);
        adept_prof_table_add(t, names[i], "kernel", 1.0, 0);
    }
    CHECK(t->n == ADEPT_PROF_ROWS);
    CHECK(t->other.calls == 10);
    CHECK_NEAR(t->other.ms, 10.0, 1e-12);
    CHECK_NEAR(t->total_ms, ADEPT_PROF_ROWS + 10.0, 1e-9);
    adept_prof_table_add(t, names[3], "kernel", 1.0, 0); /* a known row still finds its own */
    CHECK_NEAR(t->rows[3].ms, 2.0, 1e-12);
    char *s = printed(t, 1, "step", 0);
    CHECK(s && strstr(s, "(other ops)") != NULL);
    /* sorted: the 10 ms "other" row first */
    if (s) {
        char line[256];
        nth_line(s, 2, line, sizeof line);
        CHECK(strstr(line, "(other ops)") != NULL);
    }
    free(s);
    free(t);
}

/* Without a GPU (or in a build without CUDA) the profile fails with the reason; with one it starts and stops */
static void test_no_backend(void) {
    if (adept_cuda_device_count(NULL) > 0) { /* a GPU here: begin starts its backend, end without a table */
        CHECK_OK(adept_cuda_profile_begin());
        CHECK_OK(adept_cuda_profile_end(NULL, 1, "step", 0));
    } else {
        CHECK(adept_cuda_profile_begin() != ADEPT_OK);
        printf("begin without a backend: %s\n", adept_last_error());
        CHECK(strncmp(adept_last_error(), "cuda: ", 6) == 0);
    }
    /* ending what is not running fails, naming it */
    CHECK(adept_cuda_profile_end(stdout, 1, "step", 0) != ADEPT_OK);
    CHECK(strstr(adept_last_error(), "cuda: ") != NULL);
}

int main(void) {
    test_sums();
    test_no_backend();
    test_capacity();
    return check_summary();
}
