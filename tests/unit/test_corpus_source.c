/* Corpus sources: each source kind (text, JSON Lines, token shards), each container (files, globs, directories,
   tar, tar.gz/zst/xz, zip, bare .gz/.zst/.xz), errors naming file/member/line, skip counting, limits. */
#include <string.h>

#include "adept/log.h"
#include "check.h"
#include "data/corpus_internal.h"
#include "corpus_fixtures.h"

static fx_docs D;
static adept_read_counts C;

static adept_read_opts opts(void) {
    adept_read_opts o = {ADEPT_FORMAT_AUTO, "text", ADEPT_DOC_BLANK_LINE, 0, -1, 0, 0, 0};
    return o;
}

static adept_status read1(const char *name, const adept_read_opts *o) {
    fx_docs_free(&D);
    memset(&C, 0, sizeof C);
    return adept_corpus_read_file(fx_path(name), o, fx_collect, &D, &C);
}

static const char *TEXT = "first doc\nline two\r\n\n\n  second doc\n \t \nthird\n";
static const char *JSONL = "{\"text\": \"alpha\", \"id\": 1}\n\n{\"text\": \"caf\\u00e9 \\ud83d\\ude00\"}\n{\"body\": \"x\", \"text\": \"gamma\"}\n";

static void check_text_docs(const char *where_prefix) {
    CHECK(D.n == 3);
    if (D.n != 3) return;
    CHECK(!strcmp(D.text[0], "first doc\nline two"));
    CHECK(!strcmp(D.text[1], "  second doc"));
    CHECK(!strcmp(D.text[2], "third"));
    CHECK(D.line[0] == 1 && D.line[1] == 5 && D.line[2] == 7);
    CHECK(!strncmp(D.where[0], where_prefix, strlen(where_prefix)));
}

static void check_jsonl_docs(void) {
    CHECK(D.n == 3);
    if (D.n != 3) return;
    CHECK(!strcmp(D.text[0], "alpha"));
    CHECK(!strcmp(D.text[1], "caf\xc3\xa9 \xf0\x9f\x98\x80")); /* \u escapes and a surrogate pair become UTF-8 */
    CHECK(!strcmp(D.text[2], "gamma"));
    CHECK(D.line[0] == 1 && D.line[1] == 3 && D.line[2] == 4);
}

static void test_plain_sources(void) {
    adept_read_opts o = opts();
    fx_write_str("a.txt", TEXT);
    CHECK_OK(read1("a.txt", &o));
    check_text_docs("a.txt");
    CHECK(C.documents == 3 && C.skipped == 0);

    o.doc_split = ADEPT_DOC_LINE;
    CHECK_OK(read1("a.txt", &o));
    CHECK(D.n == 4 && D.line[1] == 2 && D.line[3] == 7);
    if (D.n == 4) CHECK(!strcmp(D.text[1], "line two") && !strcmp(D.text[2], "  second doc"));

    o.doc_split = ADEPT_DOC_FILE;
    CHECK_OK(read1("a.txt", &o));
    CHECK(D.n == 1 && D.len[0] == strlen(TEXT) - 1); /* the trailing newline is stripped */

    o = opts();
    fx_write_str("b.jsonl", JSONL);
    CHECK_OK(read1("b.jsonl", &o));
    check_jsonl_docs();

    o.field = "body";
    fx_write_str("c.jsonl", "{\"body\": \"one\"}\n{\"body\": \"two\"}\n");
    CHECK_OK(read1("c.jsonl", &o));
    CHECK(D.n == 2 && !strcmp(D.text[1], "two"));

    /* token shards: documents end at the separator id, which is dropped */
    o = opts();
    o.sep_token = 0;
    uint16_t u16[] = {5, 6, 7, 0, 8, 0, 0, 9, 10};
    fx_write("d.u16", u16, sizeof u16);
    CHECK_OK(read1("d.u16", &o));
    CHECK(D.n == 3 && D.ntoks[0] == 3 && D.ntoks[1] == 1 && D.ntoks[2] == 2);
    if (D.n == 3) CHECK(D.toks[0][2] == 7 && D.toks[2][1] == 10);
    uint32_t u32[] = {70000, 1, 0, 2};
    fx_write("e.u32", u32, sizeof u32);
    CHECK_OK(read1("e.u32", &o));
    CHECK(D.n == 2 && D.ntoks[0] == 2 && D.toks[0][0] == 70000);
    o.sep_token = -1; /* one document per shard */
    CHECK_OK(read1("d.u16", &o));
    CHECK(D.n == 1 && D.ntoks[0] == 9);
    /* a cut-off id */
    fx_write("f.u16", u16, 5);
    CHECK_FAILS(read1("f.u16", &o), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "f.u16") && strstr(adept_last_error(), "multiple of 2"));
    /* declared format overrides the extension */
    o.format = ADEPT_FORMAT_TOKENS, o.token_bits = 32;
    fx_write("g.dat", u32, sizeof u32);
    CHECK_OK(read1("g.dat", &o));
    CHECK(D.n == 1 && D.ntoks[0] == 4 && D.toks[0][0] == 70000);
}

static void test_paths(void) {
    fx_write_str("dir/b.txt", "bee\n");
    fx_write_str("dir/a.txt", "ay\n");
    fx_write_str("dir/.hidden.txt", "hidden\n");
    fx_write_str("dir/sub/c.txt", "sea\n");
    fx_write_str("dir/z.md", "zed\n");
    const char *paths[2] = {fx_path("dir"), NULL};
    char **files;
    size_t n;
    CHECK_OK(adept_corpus_list(paths, 1, &files, &n));
    CHECK(n == 4); /* a.txt b.txt sub/c.txt z.md, sorted, hidden skipped */
    if (n == 4) CHECK(strstr(files[0], "/a.txt") && strstr(files[1], "/b.txt") && strstr(files[2], "/sub/c.txt"));
    adept_corpus_list_free(files, n);

    paths[0] = fx_path("dir/*.txt");
    CHECK_OK(adept_corpus_list(paths, 1, &files, &n));
    CHECK(n == 2);
    adept_corpus_list_free(files, n);

    paths[0] = fx_path("dir/*.nothing");
    CHECK_FAILS(adept_corpus_list(paths, 1, &files, &n), ADEPT_ENOTFOUND);
    CHECK(strstr(adept_last_error(), "*.nothing") != NULL);
    paths[0] = fx_path("missing.txt");
    CHECK_FAILS(adept_corpus_list(paths, 1, &files, &n), ADEPT_ENOTFOUND);
    CHECK(strstr(adept_last_error(), "missing.txt") != NULL);
    paths[0] = fx_path("dir/a.txt"), paths[1] = fx_path("dir/sub");
    CHECK_OK(adept_corpus_list(paths, 2, &files, &n));
    CHECK(n == 2 && strstr(files[1], "c.txt"));
    adept_corpus_list_free(files, n);
}

static void test_archives(void) {
    adept_read_opts o = opts();
    o.sep_token = 0;
    uint16_t u16[] = {5, 6, 0, 7};
    fx_member m[] = {{"docs/a.txt", TEXT, strlen(TEXT)},
                     {"docs/._a.txt", "resource fork", 13},
                     {"docs/b.jsonl", JSONL, strlen(JSONL)},
                     {"docs/c.u16", u16, sizeof u16}};
    const char *names[] = {"x.tar", "x.tar.gz", "x.tgz", "x.tar.zst", "x.tar.xz", "x.zip"};
    const char *fmts[] = {"tar", "tar", "tar", "tar", "tar", "zip"};
    const char *filters[] = {NULL, "gzip", "gzip", "zstd", "xz", NULL};
    for (int k = 0; k < 6; k++) {
        CHECK(fx_archive(names[k], fmts[k], filters[k], m, 4));
        CHECK_OK(read1(names[k], &o));
        CHECK(D.n == 3 + 3 + 2);
        if (D.n != 8) { fprintf(stderr, "  in %s\n", names[k]); continue; }
        CHECK(!strcmp(D.text[0], "first doc\nline two") && D.line[1] == 5);
        char want[64];
        snprintf(want, sizeof want, "%s:docs/a.txt", names[k]);
        CHECK(!strcmp(D.where[0], want));
        CHECK(!strcmp(D.text[4], "caf\xc3\xa9 \xf0\x9f\x98\x80"));
        CHECK(D.toks[6] && D.ntoks[6] == 2 && D.toks[7][0] == 7);
    }
    /* bare compressed streams: the format comes from the name without the compression extension */
    const char *raw[] = {"y.txt.gz", "y.txt.zst", "y.txt.xz"};
    const char *rf[] = {"gzip", "zstd", "xz"};
    fx_member one = {"data", TEXT, strlen(TEXT)};
    for (int k = 0; k < 3; k++) {
        CHECK(fx_archive(raw[k], "raw", rf[k], &one, 1));
        CHECK_OK(read1(raw[k], &o));
        check_text_docs(raw[k]);
    }
    fx_member jl = {"data", JSONL, strlen(JSONL)};
    CHECK(fx_archive("y.jsonl.gz", "raw", "gzip", &jl, 1));
    CHECK_OK(read1("y.jsonl.gz", &o));
    check_jsonl_docs();
    /* a gzip stream whose name does not say so is recognised by its magic number */
    CHECK(fx_archive("noext", "raw", "gzip", &one, 1));
    CHECK_OK(read1("noext", &o));
    CHECK(D.n == 3);
}

static void test_errors_and_skip(void) {
    adept_read_opts o = opts();
    const char *bad = "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n{\"title\": \"no text\"}\n{\"text\": 42}\n[1, 2]\n{\"text\": \"b\"} x\n{\"text\": \"last\"}\n";
    fx_write_str("bad.jsonl", bad);
    CHECK_FAILS(read1("bad.jsonl", &o), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "bad.jsonl: line 2: invalid JSON") != NULL);
    printf("  error: %s\n", adept_last_error());

    o.skip_errors = 1;
    CHECK_OK(read1("bad.jsonl", &o));
    CHECK(D.n == 2 && C.skipped == 5);
    if (D.n == 2) CHECK(!strcmp(D.text[1], "last") && D.line[1] == 7);
    CHECK(strstr(C.first_skip, "line 2") != NULL);

    /* the same inside an archive names the member */
    o.skip_errors = 0;
    fx_member m[] = {{"good.txt", "fine\n", 5}, {"part/bad.jsonl", bad, strlen(bad)}};
    CHECK(fx_archive("bad.tar.gz", "tar", "gzip", m, 2));
    CHECK_FAILS(read1("bad.tar.gz", &o), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "bad.tar.gz: part/bad.jsonl: line 2") != NULL);
    printf("  error: %s\n", adept_last_error());
    fx_write_str("missing.jsonl", "{\"text\": \"a\"}\n{\"title\": \"b\"}\n");
    CHECK_FAILS(read1("missing.jsonl", &o), ADEPT_ENOTFOUND);
    CHECK(strstr(adept_last_error(), "missing.jsonl: line 2: no field 'text'") != NULL);

    /* corrupt archives: a truncated tar.gz, a tar.gz with garbage in the middle, a zip with a broken member */
    static char big[200000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)("abc def\n\n"[i % 9] ^ (i % 7 == 0 ? 0 : 0));
    fx_member mm[] = {{"a.txt", big, sizeof big}, {"b.txt", "tail doc\n", 9}};
    CHECK(fx_archive("c.tar.gz", "tar", "gzip", mm, 2));
    FILE *f = fopen(fx_path("c.tar.gz"), "rb");
    static unsigned char raw[400000];
    size_t n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    fx_write("trunc.tar.gz", raw, n / 2);
    CHECK_FAILS(read1("trunc.tar.gz", &o), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "trunc.tar.gz") != NULL);
    printf("  error: %s\n", adept_last_error());
    for (size_t i = n / 3; i < n / 3 + 64 && i < n; i++) raw[i] ^= 0x5a;
    fx_write("flip.tar.gz", raw, n);
    CHECK_FAILS(read1("flip.tar.gz", &o), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "flip.tar.gz") != NULL);
    printf("  error: %s\n", adept_last_error());
    o.skip_errors = 1;
    CHECK_OK(read1("flip.tar.gz", &o));
    CHECK(C.skipped >= 1);
    CHECK_OK(read1("trunc.tar.gz", &o));
    CHECK(C.skipped >= 1);
    /* not an archive at all, under an archive name */
    o.skip_errors = 0;
    fx_write_str("fake.zip", "this is not a zip file\n");
    CHECK_FAILS(read1("fake.zip", &o), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "fake.zip") != NULL);
}

static void test_limits_and_buffer(void) {
    adept_read_opts o = opts();
    o.max_documents = 2;
    fx_write_str("a.txt", TEXT);
    CHECK_OK(read1("a.txt", &o));
    CHECK(D.n == 2 && C.limit_reached);
    o.max_documents = 0, o.max_bytes = 5;
    CHECK_OK(read1("a.txt", &o));
    CHECK(D.n == 1);
    o = opts();
    fx_docs_free(&D);
    memset(&C, 0, sizeof C);
    CHECK_OK(adept_corpus_read_buffer("mem.jsonl", JSONL, strlen(JSONL), &o, fx_collect, &D, &C));
    check_jsonl_docs();
    /* invalid UTF-8 passes through untouched */
    fx_docs_free(&D);
    CHECK_OK(adept_corpus_read_buffer("mem.txt", "ok \xff\xfe\xc3 end\n", 11, &o, fx_collect, &D, &C));
    CHECK(D.n == 1 && D.len[0] == 10 && (unsigned char)D.text[0][3] == 0xff);
}

static void test_hash(void) {
    char buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (char)(i * 7);
    uint64_t whole = adept_hash_bytes(buf, sizeof buf, 1);
    adept_hash h;
    adept_hash_init(&h, 1);
    for (size_t i = 0; i < sizeof buf; i += 13) adept_hash_update(&h, buf + i, sizeof buf - i < 13 ? sizeof buf - i : 13);
    CHECK(adept_hash_final(&h) == whole); /* chunking does not matter */
    buf[500] ^= 1;
    CHECK(adept_hash_bytes(buf, sizeof buf, 1) != whole);
    CHECK(adept_hash_bytes(buf, sizeof buf, 2) != adept_hash_bytes(buf, sizeof buf, 1));
    CHECK(adept_hash_bytes(buf, 999, 1) != adept_hash_bytes(buf, 1000, 1));
}

int main(void) {
    fx_tmpdir();
    test_plain_sources();
    test_paths();
    test_archives();
    test_errors_and_skip();
    test_limits_and_buffer();
    test_hash();
    fx_docs_free(&D);
    fx_rm_rf(fx_dir);
    return check_summary();
}
