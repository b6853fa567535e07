/* safetensors: round trips of every common dtype (0-d and empty included), metadata, views outliving the
   handle, misaligned data, and robustness: every prefix of a valid file and every lying header fail cleanly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adept/safetensors.h"
#include "check.h"

static char tmpdir[64];
static volatile unsigned touched; /* bytes read through views, so the reads are not optimised away */

static const char *tmp_path(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    *size = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

/* A tensor filled with distinct values (element i = i * 0.5 - 3, converted to the dtype). */
static adept_tensor *filled(adept_dtype dtype, int ndim, const int64_t *shape) {
    adept_tensor *t = NULL;
    CHECK_OK(adept_tensor_new(dtype, ndim, shape, &t));
    for (size_t i = 0; i < adept_tensor_numel(t); i++)
        adept_tensor_set_flat(t, i, adept_dtype_is_float(dtype) ? (double)i * 0.5 - 3 : (double)(i * 7 % 251));
    return t;
}

static int same_tensor(const adept_tensor *a, const adept_tensor *b) {
    return a->dtype == b->dtype && adept_tensor_same_shape(a, b) &&
           memcmp(adept_tensor_data(a), adept_tensor_data(b), adept_tensor_nbytes(a)) == 0;
}

#define N_RT 8
static void test_round_trip(void) {
    /* u8 of odd length first, so the tensors after it start at odd offsets: views must copy, not misalign */
    static const char *names[N_RT] = {"bytes", "weight", "half", "brain", "ids", "scalar", "empty", "empty_bf16"};
    adept_dtype dtypes[N_RT] = {ADEPT_U8, ADEPT_F32, ADEPT_F16, ADEPT_BF16, ADEPT_I32, ADEPT_F32, ADEPT_F32, ADEPT_BF16};
    int ndims[N_RT] = {1, 2, 2, 3, 1, 0, 2, 1};
    int64_t shapes[N_RT][3] = {{7}, {3, 5}, {2, 3}, {2, 1, 3}, {4}, {0}, {0, 4}, {0}};
    adept_tensor *ts[N_RT];
    adept_st_item items[N_RT];
    for (int i = 0; i < N_RT; i++) {
        ts[i] = filled(dtypes[i], ndims[i], shapes[i]);
        items[i] = (adept_st_item){names[i], ts[i]};
    }
    const char *keys[2] = {"format", "note"}, *vals[2] = {"pt", "quote \" and \xc3\xa9"};
    const char *path = tmp_path("rt.safetensors");
    CHECK_OK(adept_safetensors_write(path, items, N_RT, keys, vals, 2));

    size_t size;
    unsigned char *raw = read_file(path, &size);
    CHECK(raw != NULL && size >= 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | raw[i];
    CHECK(hlen % 8 == 0);                    /* padded so that data starts 8-byte aligned */
    CHECK(raw[8] == '{' && raw[8 + hlen - 1] != '\0');
    /* tensors appear in the given order in the header */
    char *hdr = strndup((char *)raw + 8, hlen);
    CHECK(strstr(hdr, "\"bytes\"") < strstr(hdr, "\"weight\"") && strstr(hdr, "\"weight\"") < strstr(hdr, "\"ids\""));
    free(hdr);

    adept_safetensors *st = NULL;
    CHECK_OK(adept_safetensors_open(path, &st));
    if (!st) return;
    CHECK(st->n_entries == N_RT);
    CHECK(st->data_offset == 8 + hlen);
    adept_tensor *views[N_RT] = {0};
    for (int i = 0; i < N_RT; i++) {
        CHECK(!strcmp(st->entries[i].name, names[i]));
        const adept_st_entry *e = adept_safetensors_find(st, names[i]);
        CHECK(e == &st->entries[i]);
        CHECK_OK(adept_safetensors_view(st, e, &views[i]));
        CHECK(views[i] && ((uintptr_t)adept_tensor_data(views[i]) % adept_dtype_size(dtypes[i])) == 0);
    }
    CHECK(adept_safetensors_find(st, "missing") == NULL);
    CHECK(!strcmp(adept_safetensors_meta(st, "format"), "pt"));
    CHECK(!strcmp(adept_safetensors_meta(st, "note"), vals[1]));
    CHECK(adept_safetensors_meta(st, "absent") == NULL);
    CHECK(views[0]->storage == st->file); /* u8 at data offset 0: zero-copy */
    CHECK(views[1]->storage != st->file); /* f32 at data offset 7: misaligned, so copied */
    adept_safetensors_close(st); /* views stay valid after the handle goes */
    for (int i = 0; i < N_RT; i++) {
        CHECK(views[i] && same_tensor(views[i], ts[i]));
        adept_tensor_free(views[i]);
        adept_tensor_free(ts[i]);
    }
    free(raw);
}

static void test_views_share_file(void) {
    int64_t s4[1] = {4}, s2[1] = {2};
    adept_tensor *a = filled(ADEPT_F32, 1, s4), *b = filled(ADEPT_BF16, 1, s2);
    adept_st_item items[2] = {{"a", a}, {"b", b}};
    const char *path = tmp_path("share.safetensors");
    CHECK_OK(adept_safetensors_write(path, items, 2, NULL, NULL, 0));
    adept_safetensors *st = NULL;
    CHECK_OK(adept_safetensors_open(path, &st));
    adept_tensor *va = NULL, *vb = NULL;
    CHECK_OK(adept_safetensors_view(st, &st->entries[0], &va));
    CHECK_OK(adept_safetensors_view(st, &st->entries[1], &vb));
    CHECK(va->storage == st->file && vb->storage == st->file); /* aligned: zero-copy */
    adept_safetensors_close(st);
    /* writes through a view are private (copy-on-write): the file is unchanged */
    adept_tensor_f32(va)[0] = 123.0f;
    CHECK(adept_tensor_f32(va)[0] == 123.0f);
    CHECK_OK(adept_safetensors_open(path, &st));
    adept_tensor *again = NULL;
    CHECK_OK(adept_safetensors_view(st, &st->entries[0], &again));
    CHECK(again && adept_tensor_f32(again)[0] == -3.0f);
    adept_safetensors_close(st);
    adept_tensor_free(again);
    adept_tensor_free(va);
    adept_tensor_free(vb);
    adept_tensor_free(a);
    adept_tensor_free(b);
}

/* A file image: 8-byte length, the header as given (no padding), then `data_size` bytes of data. */
static unsigned char *image(const char *header, size_t data_size, size_t *size) {
    size_t h = strlen(header);
    *size = 8 + h + data_size;
    unsigned char *buf = calloc(1, *size + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(((uint64_t)h >> (8 * i)) & 0xff);
    memcpy(buf + 8, header, h);
    for (size_t i = 0; i < data_size; i++) buf[8 + h + i] = (unsigned char)(i * 37 + 1);
    return buf;
}

/* Expects the parse to fail with `status` and a message containing every needle. */
static void expect_fail(const char *header, size_t data_size, adept_status status, const char *n1, const char *n2) {
    size_t size;
    unsigned char *buf = image(header, data_size, &size);
    adept_safetensors *st = (adept_safetensors *)1;
    adept_status s = adept_safetensors_parse(buf, size, "bad.safetensors", &st);
    CHECK(s == status);
    CHECK(st == NULL);
    const char *msg = adept_last_error();
    int ok = strstr(msg, "bad.safetensors") && strstr(msg, n1) && (!n2 || strstr(msg, n2));
    if (!ok || s != status) fprintf(stderr, "  header %s\n  gave %s: %s\n", header, adept_status_name(s), msg);
    CHECK(ok);
    free(buf);
}

static void test_lying_headers(void) {
    const adept_status F = ADEPT_EFORMAT;
    expect_fail("not json at all", 0, F, "not valid JSON", NULL);
    expect_fail("{\"a\": {\"dtype\": \"F32\"", 0, F, "not valid JSON", NULL);
    expect_fail("[1, 2, 3]", 0, F, "must be a JSON object", "array");
    expect_fail("{\"a\": 3}", 0, F, "tensor 'a'", "must be an object");
    expect_fail("{\"a\": {\"dtype\": \"X99\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, F, "tensor 'a'",
                "unknown dtype 'X99'");
    expect_fail("{\"a\": {\"dtype\": \"BOOL\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1, ADEPT_EUNSUPPORTED,
                "BOOL", "not supported");
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, F,
                "dimension 1 must be a non-negative integer", "-1");
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 4]}}", 4, F,
                "non-negative integer", "2.5");
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": \"[1]\", \"data_offsets\": [0, 4]}}", 4, F,
                "\"shape\" must be an array", NULL);
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4,
                ADEPT_EUNSUPPORTED, "9 dimensions", NULL);
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, F, "missing \"data_offsets\"", NULL);
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, F, "two integers", NULL);
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, \"4\"]}}", 4, F,
                "non-negative integers", "\"4\"");
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8, F, "[8, 4]",
                "begin after end");
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 3, F,
                "outside the data section of 3 bytes", "[0, 4]");
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}", 24, F,
                "needs 24 bytes", "hold 20");
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [4503599627370496, 4503599627370496], "
                "\"data_offsets\": [0, 0]}}", 0, F, "overflows", NULL);
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12, F, "overlap", "'b'");
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, F, "tensor 'a'",
                "appears twice");
    expect_fail("{\"a\": {\"dtype\": \"F32\", \"dtype\": \"F16\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, F,
                "\"dtype\" appears twice", NULL);
    expect_fail("{\"__metadata__\": {\"k\": 3}}", 0, F, "__metadata__ value of \"k\"", "must be a string");
    expect_fail("{\"__metadata__\": [\"k\"]}", 0, F, "__metadata__ must be an object", NULL);
    expect_fail("{\"__metadata__\": {\"k\": \"1\", \"k\": \"2\"}}", 0, F, "key \"k\" appears twice", NULL);
    expect_fail("{} trailing", 0, F, "unexpected bytes after the header", NULL);
    expect_fail("{\"\xff\": 1}", 0, F, "UTF-8", NULL);
    expect_fail("{", 0, F, "too short", NULL);

    /* the length field itself lying */
    unsigned char small[4] = {1, 0, 0, 0};
    adept_safetensors *st = NULL;
    CHECK_FAILS(adept_safetensors_parse(small, sizeof small, "bad.safetensors", &st), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "4 bytes is too short") != NULL);
    size_t size;
    unsigned char *buf = image("{}", 0, &size);
    buf[0] = 200; /* 200 > the 2 bytes that follow */
    CHECK_FAILS(adept_safetensors_parse(buf, size, "bad.safetensors", &st), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "header length 200 is larger than the 2 bytes") != NULL);
    memset(buf, 0xff, 8); /* 2^64 - 1 */
    CHECK_FAILS(adept_safetensors_parse(buf, size, "bad.safetensors", &st), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "exceeds the 100000000-byte limit") != NULL);
    free(buf);

    /* gaps and trailing bytes are accepted; empty tensors may sit anywhere, even at the end */
    buf = image("{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [4, 6]}, "
                "\"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [10, 10]}, \"x\": {\"y\": 1, "
                "\"dtype\": \"U8\", \"shape\": [], \"data_offsets\": [0, 1]}}", 10, &size);
    CHECK_OK(adept_safetensors_parse(buf, size, "ok.safetensors", &st));
    CHECK(st && st->n_entries == 3 && st->entries[1].begin == 10);
    adept_safetensors_close(st);
    free(buf);
    /* a file whose header leaves f32 data misaligned (length 3 mod 4) is read by copying */
    buf = image("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}} ", 8, &size);
    CHECK(((size - 8) % 4) != 0);
    float want[2] = {1.5f, -2.25f};
    memcpy(buf + size - 8, want, 8);
    CHECK_OK(adept_safetensors_parse(buf, size, "odd.safetensors", &st));
    adept_tensor *t = NULL;
    if (st) CHECK_OK(adept_safetensors_view(st, &st->entries[0], &t));
    CHECK(t && (uintptr_t)adept_tensor_data(t) % 4 == 0 && adept_tensor_f32(t)[0] == 1.5f &&
          adept_tensor_f32(t)[1] == -2.25f);
    adept_tensor_free(t);
    adept_safetensors_close(st);
    free(buf);
}

/* Every prefix of a valid file must fail with a message (never crash, never read past the end), and
   every single-byte corruption of the header must either parse or fail cleanly. */
static void test_truncation_and_corruption(void) {
    int64_t s3[2] = {2, 3}, s1[1] = {5};
    adept_tensor *a = filled(ADEPT_F32, 2, s3), *b = filled(ADEPT_BF16, 1, s1);
    adept_st_item items[2] = {{"model.a", a}, {"model.b", b}};
    const char *keys[1] = {"format"}, *vals[1] = {"pt"};
    const char *path = tmp_path("trunc.safetensors");
    CHECK_OK(adept_safetensors_write(path, items, 2, keys, vals, 1));
    size_t size;
    unsigned char *raw = read_file(path, &size);
    int prefix_failures = 0, silent = 0;
    for (size_t n = 0; n < size; n++) {
        adept_safetensors *st = NULL;
        adept_clear_error();
        if (adept_safetensors_parse(raw, n, "trunc.safetensors", &st) != ADEPT_OK) {
            prefix_failures++;
            if (!strstr(adept_last_error(), "trunc.safetensors")) silent++;
        }
        adept_safetensors_close(st);
    }
    CHECK(prefix_failures == (int)size); /* the data is contiguous, so every prefix is short of something */
    CHECK(silent == 0);
    /* the same through the file path (mmap), for a few prefixes */
    for (size_t n = 0; n < size; n += 13) {
        FILE *f = fopen(tmp_path("prefix.safetensors"), "wb");
        fwrite(raw, 1, n, f);
        fclose(f);
        adept_safetensors *st = NULL;
        CHECK(adept_safetensors_open(tmp_path("prefix.safetensors"), &st) != ADEPT_OK && st == NULL);
    }
    adept_safetensors *st = NULL;
    CHECK_OK(adept_safetensors_parse(raw, size, "full", &st));
    adept_safetensors_close(st);

    size_t hend = 8 + ((size_t)raw[0] | (size_t)raw[1] << 8);
    unsigned char *copy = malloc(size);
    static const unsigned char values[] = {0, '"', '}', ']', '9', '-', ',', 0xff, ' '};
    int parsed = 0, failed = 0;
    for (size_t i = 0; i < hend; i++) {
        for (size_t v = 0; v < sizeof values; v++) {
            memcpy(copy, raw, size);
            copy[i] = values[v];
            st = NULL;
            if (adept_safetensors_parse(copy, size, "flip", &st) == ADEPT_OK) {
                parsed++;
                for (size_t k = 0; k < st->n_entries; k++) { /* every view a valid file gives must be readable */
                    adept_tensor *t = NULL;
                    if (adept_safetensors_view(st, &st->entries[k], &t) == ADEPT_OK) {
                        for (size_t j = 0; j < adept_tensor_nbytes(t); j++)
                            touched += ((unsigned char *)adept_tensor_data(t))[j];
                        adept_tensor_free(t);
                    }
                }
                adept_safetensors_close(st);
            } else {
                failed++;
            }
        }
    }
    CHECK(failed > 0 && parsed > 0);
    free(copy);
    free(raw);
    adept_tensor_free(a);
    adept_tensor_free(b);
}

static void test_write_errors(void) {
    int64_t s1[1] = {2};
    adept_tensor *a = filled(ADEPT_F32, 1, s1);
    adept_st_item items[2] = {{"a", a}, {"a", a}};
    CHECK_FAILS(adept_safetensors_write("/nonexistent-dir/x.safetensors", items, 1, NULL, NULL, 0), ADEPT_ENOTFOUND);
    CHECK(strstr(adept_last_error(), "/nonexistent-dir/x.safetensors") &&
          strstr(adept_last_error(), "No such file or directory"));
    CHECK_FAILS(adept_safetensors_write(tmp_path("dup.safetensors"), items, 2, NULL, NULL, 0), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "'a' given twice") != NULL);
    const char *mk[2] = {"k", "k"}, *mv[2] = {"1", "2"};
    CHECK_FAILS(adept_safetensors_write(tmp_path("dupmeta.safetensors"), items, 1, mk, mv, 2), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "metadata key \"k\" given twice") != NULL);
    items[0].name = "__metadata__";
    CHECK_FAILS(adept_safetensors_write(tmp_path("meta.safetensors"), items, 1, NULL, NULL, 0), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "__metadata__") != NULL);
    if (access("/dev/full", W_OK) == 0) {
        items[0].name = "a";
        CHECK_FAILS(adept_safetensors_write("/dev/full", items, 1, NULL, NULL, 0), ADEPT_EIO);
        CHECK(strstr(adept_last_error(), "/dev/full") && strstr(adept_last_error(), "No space left"));
    }
    adept_safetensors *st = NULL;
    CHECK_FAILS(adept_safetensors_open(tmp_path("does-not-exist"), &st), ADEPT_ENOTFOUND);
    CHECK(strstr(adept_last_error(), "does-not-exist") != NULL);
    CHECK_FAILS(adept_safetensors_open(tmpdir, &st), ADEPT_EIO);
    /* an empty file list still makes a valid file */
    CHECK_OK(adept_safetensors_write(tmp_path("none.safetensors"), NULL, 0, NULL, NULL, 0));
    CHECK_OK(adept_safetensors_open(tmp_path("none.safetensors"), &st));
    CHECK(st && st->n_entries == 0 && st->n_meta == 0);
    adept_safetensors_close(st);
    adept_safetensors_close(NULL);
    adept_tensor_free(a);
}

/* Overwriting a file whose tensors are still mapped must not pull the pages from under them, and the
   replacement leaves no temporary files behind; a symlink stays a symlink. */
static void test_overwrite_while_mapped(void) {
    int64_t s1[1] = {1000};
    adept_tensor *a = filled(ADEPT_F32, 1, s1);
    adept_st_item items[1] = {{"a", a}};
    const char *p = tmp_path("over.safetensors");
    char path[256];
    snprintf(path, sizeof path, "%s", p);
    CHECK_OK(adept_safetensors_write(path, items, 1, NULL, NULL, 0));
    adept_safetensors *st = NULL;
    adept_tensor *v = NULL;
    CHECK_OK(adept_safetensors_open(path, &st));
    if (st) CHECK_OK(adept_safetensors_view(st, &st->entries[0], &v));
    adept_safetensors_close(st);
    CHECK(v && v->storage != a->storage);
    adept_tensor *small = NULL;
    int64_t s0[1] = {1};
    CHECK_OK(adept_tensor_new(ADEPT_U8, 1, s0, &small));
    adept_st_item other[1] = {{"tiny", small}};
    CHECK_OK(adept_safetensors_write(path, other, 1, NULL, NULL, 0)); /* far shorter than the mapped file */
    CHECK(v && same_tensor(v, a));                                      /* the old pages are still there */
    CHECK_OK(adept_safetensors_open(path, &st));
    CHECK(st && st->n_entries == 1 && !strcmp(st->entries[0].name, "tiny"));
    adept_safetensors_close(st);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -q tmp-", tmpdir);
    CHECK(system(cmd) != 0); /* no temporary left */
    char link[256];
    snprintf(link, sizeof link, "%s/link.safetensors", tmpdir);
    CHECK(symlink(path, link) == 0);
    CHECK_OK(adept_safetensors_write(link, items, 1, NULL, NULL, 0));
    char target[256] = {0};
    CHECK(readlink(link, target, sizeof target - 1) > 0 && !strcmp(target, path));
    CHECK_OK(adept_safetensors_open(path, &st)); /* the file behind the link was replaced */
    CHECK(st && st->n_entries == 1 && !strcmp(st->entries[0].name, "a"));
    adept_safetensors_close(st);
    /* a failed write (invalid name) leaves the old file and no temporary */
    adept_st_item bad[1] = {{"bad\xff", a}};
    CHECK_FAILS(adept_safetensors_write(path, bad, 1, NULL, NULL, 0), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "not valid UTF-8") != NULL);
    const char *mk[1] = {"k"}, *mv[1] = {"\xc3("};
    CHECK_FAILS(adept_safetensors_write(path, items, 1, mk, mv, 1), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), "metadata entry \"k\" is not valid UTF-8") != NULL);
    CHECK_OK(adept_safetensors_open(path, &st));
    CHECK(st && st->n_entries == 1);
    adept_safetensors_close(st);
    CHECK(system(cmd) != 0);
    adept_tensor_free(v);
    adept_tensor_free(small);
    adept_tensor_free(a);
}

/* Checkpoints hold thousands of tensors: names stay in order and lookups work at that size. */
static void test_many_tensors(void) {
    enum { N = 5000 };
    int64_t s1[1] = {3};
    adept_tensor *a = filled(ADEPT_I32, 1, s1);
    adept_st_item *items = calloc(N, sizeof *items);
    char (*names)[32] = calloc(N, sizeof *names);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "model.layers.%d.w", N - i); /* not sorted: order must be kept */
        items[i] = (adept_st_item){names[i], a};
    }
    CHECK_OK(adept_safetensors_write(tmp_path("many.safetensors"), items, N, NULL, NULL, 0));
    adept_safetensors *st = NULL;
    CHECK_OK(adept_safetensors_open(tmp_path("many.safetensors"), &st));
    int order_ok = st && st->n_entries == N, found_ok = 1;
    for (int i = 0; order_ok && i < N; i++) {
        if (strcmp(st->entries[i].name, names[i]) || st->entries[i].begin != (size_t)i * 12) order_ok = 0;
        if (adept_safetensors_find(st, names[i]) != &st->entries[i]) found_ok = 0;
    }
    CHECK(order_ok);
    CHECK(found_ok);
    adept_safetensors_close(st);
    items[N - 1].name = names[17];
    CHECK_FAILS(adept_safetensors_write(tmp_path("many2.safetensors"), items, N, NULL, NULL, 0), ADEPT_EINVAL);
    CHECK(strstr(adept_last_error(), names[17]) && strstr(adept_last_error(), "given twice"));
    free(items);
    free(names);
    adept_tensor_free(a);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/adept_st_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_views_share_file();
    test_lying_headers();
    test_truncation_and_corruption();
    test_write_errors();
    test_overwrite_while_mapped();
    test_many_tensors();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
