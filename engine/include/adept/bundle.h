/* Experiment bundles (.adept): a tar archive compressed with zstd holding a recipe, the Lua modules it requires, a
   manifest, and optionally results and inputs. The reader trusts nothing in the archive: member names must be
   plain relative paths (no absolute paths, no `..`, `.` or empty components, no control characters), members
   must be regular files (no links, devices or folders), every name appears once and is not also a folder of
   another member, and sizes, member counts and the compression ratio stay under limits. */
#ifndef ADEPT_BUNDLE_H
#define ADEPT_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"

typedef struct adept_bundle_limits {
    uint64_t max_member_bytes; /* largest member, uncompressed */
    uint64_t max_total_bytes;  /* all members together, uncompressed */
    size_t max_members;
    double max_ratio;          /* uncompressed / compressed bytes, enforced once past 1 MiB uncompressed */
} adept_bundle_limits;

/* 1 GiB per member, 4 GiB in all, 4096 members, ratio 1000 (zstd on text stays far below 100; a ratio of
   thousands is a zip bomb, not an experiment). */
void adept_bundle_limits_default(adept_bundle_limits *l);

/* Checks one member name against the rules above; the message names it. */
adept_status adept_bundle_check_name(const char *name);

/* Called for each member in archive order: begin (validated name, declared size), data chunks, end. Any callback
   may be NULL; a failing one stops the read with its status. */
typedef struct adept_bundle_visitor {
    adept_status (*begin)(void *ctx, const char *name, uint64_t size);
    adept_status (*data)(void *ctx, const void *buf, size_t n);
    adept_status (*end)(void *ctx);
    void *ctx;
} adept_bundle_visitor;

adept_status adept_bundle_read_file(const char *path, const adept_bundle_limits *l, const adept_bundle_visitor *v);
adept_status adept_bundle_read_memory(const void *data, size_t n, const adept_bundle_limits *l,
                                      const adept_bundle_visitor *v);

/* Validates the whole archive, then writes its members below `dir` (created if missing; it must be empty),
   never following a link. Nothing is written when validation fails. */
adept_status adept_bundle_extract(const char *path, const char *dir, const adept_bundle_limits *l);
/* One member's bytes (NUL-terminated, *n without the NUL; free with free()); ADEPT_ENOTFOUND when absent. */
adept_status adept_bundle_member(const char *path, const char *name, const adept_bundle_limits *l, char **data,
                                 size_t *n);

/* Writing: members in the order added, each a regular file of mode 0644 with time 0 and owner 0, so the same
   members give the same bytes. Written to "<path>.tmp-<pid>" and renamed into place by close. */
typedef struct adept_bundle_writer adept_bundle_writer;
adept_status adept_bundle_writer_open(const char *path, adept_bundle_writer **w);
adept_status adept_bundle_add_bytes(adept_bundle_writer *w, const char *name, const void *data, size_t n);
adept_status adept_bundle_add_file(adept_bundle_writer *w, const char *name, const char *src);
adept_status adept_bundle_writer_close(adept_bundle_writer *w); /* finishes, renames; frees w in every case */
void adept_bundle_writer_abort(adept_bundle_writer *w);        /* removes the temporary file, frees w */

#endif
