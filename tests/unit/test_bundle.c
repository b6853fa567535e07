/* The bundle reader against hostile archives crafted here with libarchive (traversal, absolute paths, links,
   folders, duplicates, oversized and over-compressed members, truncation), extraction, the deterministic writer,
   and SHA-256 against the FIPS 180-2 test vector. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "adept/bundle.h"
#include "adept/hash.h"
#include "check.h"

enum { REG, SYMLINK, HARDLINK, DIR_ };

typedef struct member {
    const char *name;
    int type;
    const char *data; /* NULL: `size` zero bytes */
    size_t size;
} member;

static unsigned char arc[1 << 22];

/* An archive of `n` members in `arc`; returns its size. */
static size_t craft(const member *m, int n, int zstd) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (zstd) archive_write_add_filter_zstd(a);
    archive_write_set_bytes_in_last_block(a, 1);
    size_t used = 0;
    archive_write_open_memory(a, arc, sizeof arc, &used);
    for (int i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_perm(e, 0644);
        if (m[i].type == SYMLINK) archive_entry_set_filetype(e, AE_IFLNK), archive_entry_set_symlink(e, "/etc/passwd");
        else if (m[i].type == HARDLINK) archive_entry_set_filetype(e, AE_IFREG), archive_entry_set_hardlink(e, "a");
        else if (m[i].type == DIR_) archive_entry_set_filetype(e, AE_IFDIR);
        else archive_entry_set_filetype(e, AE_IFREG), archive_entry_set_size(e, (la_int64_t)m[i].size);
        archive_write_header(a, e);
        if (m[i].type == REG && m[i].size) {
            char *zeros = m[i].data ? NULL : calloc(1, m[i].size);
            archive_write_data(a, m[i].data ? m[i].data : zeros, m[i].size);
            free(zeros);
        }
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    return used;
}

static adept_status read_crafted(const member *m, int n, const adept_bundle_limits *l) {
    size_t size = craft(m, n, 1);
    adept_status s = adept_bundle_read_memory(arc, size, l, NULL);
    if (s != ADEPT_OK) printf("  refused as expected: %s\n", adept_last_error());
    return s;
}

static int message_has(const char *part) {
    int ok = strstr(adept_last_error(), part) != NULL;
    if (!ok) fprintf(stderr, "message '%s' lacks '%s'\n", adept_last_error(), part);
    return ok;
}

typedef struct seen {
    char names[8][64];
    size_t bytes;
    int n;
} seen;

static adept_status on_begin(void *p, const char *name, uint64_t size) {
    seen *s = p;
    if (s->n < 8) snprintf(s->names[s->n], 64, "%s", name);
    s->n++;
    return ADEPT_OK;
}

static adept_status on_data(void *p, const void *buf, size_t n) {
    ((seen *)p)->bytes += n;
    return ADEPT_OK;
}

int main(void) {
    adept_bundle_limits l;
    adept_bundle_limits_default(&l);

    /* a good archive: every member visited with its bytes */
    member good[] = {{"manifest.json", REG, "{}", 2}, {"recipe/r.lua", REG, "return 1\n", 9}};
    size_t size = craft(good, 2, 1);
    seen s = {0};
    adept_bundle_visitor v = {on_begin, on_data, NULL, &s};
    CHECK_OK(adept_bundle_read_memory(arc, size, &l, &v));
    CHECK(s.n == 2 && !strcmp(s.names[0], "manifest.json") && !strcmp(s.names[1], "recipe/r.lua") && s.bytes == 11);

    /* names */
    const char *bad_names[] = {"../evil", "a/../../evil", "/etc/passwd", "a/./b", "a//b", "a/", ".", "a\\b", "a\tb"};
    const char *why[] = {"traversal", "traversal", "absolute", "traversal", "empty path component", "member 'a/'",
                         "traversal", "backslash", "control character"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        member m[] = {{bad_names[i], REG, "x", 1}};
        CHECK_FAILS(read_crafted(m, 1, &l), ADEPT_EFORMAT);
        CHECK(message_has(why[i]));
        CHECK_FAILS(adept_bundle_check_name(bad_names[i]), ADEPT_EFORMAT);
    }
    CHECK_OK(adept_bundle_check_name("results/run 1/summary.json"));

    /* member types */
    member sym[] = {{"link", SYMLINK, NULL, 0}};
    CHECK_FAILS(read_crafted(sym, 1, &l), ADEPT_EFORMAT);
    CHECK(message_has("symbolic link"));
    member hard[] = {{"a", REG, "x", 1}, {"b", HARDLINK, NULL, 0}};
    CHECK_FAILS(read_crafted(hard, 2, &l), ADEPT_EFORMAT);
    CHECK(message_has("hard link"));
    member dir[] = {{"d", DIR_, NULL, 0}};
    CHECK_FAILS(read_crafted(dir, 1, &l), ADEPT_EFORMAT);
    CHECK(message_has("folder"));

    /* duplicates, and a name that is also another member's folder */
    member dup[] = {{"a", REG, "x", 1}, {"a", REG, "y", 1}};
    CHECK_FAILS(read_crafted(dup, 2, &l), ADEPT_EFORMAT);
    CHECK(message_has("appears twice"));
    member clash[] = {{"a/b", REG, "x", 1}, {"a", REG, "y", 1}};
    CHECK_FAILS(read_crafted(clash, 2, &l), ADEPT_EFORMAT);
    CHECK(message_has("both a file and a folder"));

    /* sizes and counts */
    adept_bundle_limits small = l;
    small.max_member_bytes = 10;
    member big[] = {{"big", REG, NULL, 11}};
    CHECK_FAILS(read_crafted(big, 1, &small), ADEPT_EFORMAT);
    CHECK(message_has("is 11 bytes (limit 10)"));
    small = l, small.max_total_bytes = 15;
    member two[] = {{"a", REG, NULL, 8}, {"b", REG, NULL, 8}};
    CHECK_FAILS(read_crafted(two, 2, &small), ADEPT_EFORMAT);
    CHECK(message_has("add up to more than 15"));
    small = l, small.max_members = 1;
    CHECK_FAILS(read_crafted(two, 2, &small), ADEPT_EFORMAT);
    CHECK(message_has("more than 1 members"));

    /* a compression bomb: 3 MiB of zeros compress about 10000-fold with zstd, over the default ratio of 1000 */
    member bomb[] = {{"zeros", REG, NULL, 3u << 20}};
    CHECK_FAILS(read_crafted(bomb, 1, &l), ADEPT_EFORMAT);
    CHECK(message_has("expands more than"));

    /* truncated and garbage input: an error, never a crash */
    size = craft(good, 2, 1);
    int truncated_refused = 0, cuts = 0;
    for (size_t cut = 1; cut < size; cut += 7, cuts++) truncated_refused += adept_bundle_read_memory(arc, cut, &l, NULL) != ADEPT_OK;
    CHECK(truncated_refused == cuts); /* every cut loses at least the end-of-archive marker or a member's bytes */
    CHECK(adept_bundle_read_memory("not an archive at all", 21, &l, NULL) != ADEPT_OK);
    size = craft(good, 2, 0); /* plain tar is read too */
    CHECK_OK(adept_bundle_read_memory(arc, size, &l, NULL));

    /* the writer: a round trip, byte-identical for the same members, extraction, one member */
    char root[] = "/tmp/adept_bundle_XXXXXX";
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    char p1[512], p2[512], dir1[512], file[600];
    snprintf(p1, sizeof p1, "%s/one.adept", root);
    snprintf(p2, sizeof p2, "%s/two.adept", root);
    for (int k = 0; k < 2; k++) {
        adept_bundle_writer *w;
        CHECK_OK(adept_bundle_writer_open(k ? p2 : p1, &w));
        CHECK_OK(adept_bundle_add_bytes(w, "manifest.json", "{\"a\": 1}\n", 9));
        CHECK_OK(adept_bundle_add_bytes(w, "recipe/lib/helper.lua", "return {}\n", 10));
        CHECK_FAILS(adept_bundle_add_bytes(w, "../escape", "x", 1), ADEPT_EFORMAT);
        CHECK_OK(adept_bundle_writer_close(w));
    }
    char h1[ADEPT_SHA256_HEX], h2[ADEPT_SHA256_HEX];
    uint64_t n1, n2;
    CHECK_OK(adept_sha256_file(p1, h1, &n1));
    CHECK_OK(adept_sha256_file(p2, h2, &n2));
    CHECK(n1 == n2 && !strcmp(h1, h2));
    snprintf(dir1, sizeof dir1, "%s/x", root);
    CHECK_OK(adept_bundle_extract(p1, dir1, &l));
    snprintf(file, sizeof file, "%s/recipe/lib/helper.lua", dir1);
    CHECK_OK(adept_sha256_file(file, h1, &n1));
    CHECK(n1 == 10);
    CHECK_FAILS(adept_bundle_extract(p1, dir1, &l), ADEPT_EINVAL); /* not empty any more */
    char *data;
    size_t n;
    CHECK_OK(adept_bundle_member(p1, "manifest.json", &l, &data, &n));
    CHECK(n == 9 && !strcmp(data, "{\"a\": 1}\n"));
    free(data);
    CHECK_FAILS(adept_bundle_member(p1, "nope", &l, &data, &n), ADEPT_ENOTFOUND);
    /* a hostile archive extracts nothing */
    member mixed[] = {{"fine.txt", REG, "x", 1}, {"../escape", REG, "y", 1}};
    size = craft(mixed, 2, 1);
    snprintf(file, sizeof file, "%s/hostile.adept", root);
    FILE *f = fopen(file, "wb");
    fwrite(arc, 1, size, f);
    fclose(f);
    snprintf(dir1, sizeof dir1, "%s/y", root);
    CHECK_FAILS(adept_bundle_extract(file, dir1, &l), ADEPT_EFORMAT);
    snprintf(file, sizeof file, "%s/y/fine.txt", root);
    struct stat st;
    CHECK(stat(file, &st) != 0);

    /* SHA-256("abc"), FIPS 180-2 appendix B.1 */
    CHECK_OK(adept_sha256_buffer("abc", 3, h1));
    CHECK(!strcmp(h1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return check_summary();
}
