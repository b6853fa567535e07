/* Internal interfaces of the corpus pipeline (engine/data): source enumeration and document reading,
   the content hash, and the token cache. Not a public contract; dataset.h is. */
#ifndef ADEPT_CORPUS_INTERNAL_H
#define ADEPT_CORPUS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "adept/dataset.h"

/* ---- reading documents (corpus_source.c) ---- */

/* One document as the reader hands it out; pointers are valid only during the callback. */
typedef struct adept_doc {
    const char *text;       /* text formats */
    size_t len;
    const uint32_t *tokens; /* token shards (NULL for text) */
    size_t ntokens;
    const char *file;
    const char *member; /* archive member, NULL outside archives */
    int64_t line;       /* 1-based line where the document starts (0 for token shards) */
} adept_doc;

typedef adept_status (*adept_doc_fn)(void *ctx, const adept_doc *doc);

typedef struct adept_read_opts {
    adept_corpus_format format;
    const char *field;
    adept_doc_split doc_split;
    int token_bits;
    int32_t sep_token; /* token shards: documents end at this id (dropped); < 0: one document per file */
    int skip_errors;
    int64_t max_documents, max_bytes;
} adept_read_opts;

typedef struct adept_read_counts {
    int64_t documents;      /* handed to the callback */
    int64_t skipped;        /* bad records skipped */
    int64_t text_bytes;     /* bytes of document text (or token bytes) handed out */
    int64_t disk_done;      /* on-disk bytes consumed of finished files (for progress) */
    int64_t disk_current;   /* on-disk bytes consumed of the current file */
    int limit_reached;      /* max_documents / max_bytes stopped reading */
    char first_skip[1024];   /* the first skipped record's message */
} adept_read_counts;

/* Expands paths into the list of files to read: a glob pattern's matches, a directory's files
   (recursive, hidden names skipped), or the file itself. A path that matches nothing is an error. */
adept_status adept_corpus_list(const char *const *paths, int npaths, char ***files, size_t *nfiles);
void adept_corpus_list_free(char **files, size_t nfiles);

/* Reads every document of one file (plain, compressed stream or archive) and calls fn for each. */
adept_status adept_corpus_read_file(const char *file, const adept_read_opts *o, adept_doc_fn fn, void *ctx,
                                    adept_read_counts *counts);
/* Reads documents from a buffer holding a plain (uncompressed, non-archive) source named `name`;
   the format comes from o->format or name's extension. For tests and fuzzing. */
adept_status adept_corpus_read_buffer(const char *name, const void *buf, size_t len, const adept_read_opts *o,
                                      adept_doc_fn fn, void *ctx, adept_read_counts *counts);

/* ---- content hash (corpus_hash.c) ---- */

/* A 64-bit streaming hash (four multiply-rotate lanes); not cryptographic, fast enough to hash a corpus
   on every open. */
typedef struct adept_hash {
    uint64_t v[4];
    uint64_t total;
    unsigned char tail[32];
    size_t ntail;
} adept_hash;
void adept_hash_init(adept_hash *h, uint64_t seed);
void adept_hash_update(adept_hash *h, const void *data, size_t n);
uint64_t adept_hash_final(const adept_hash *h);
uint64_t adept_hash_bytes(const void *data, size_t n, uint64_t seed);
/* Hashes a file's on-disk bytes into h. */
adept_status adept_hash_file(adept_hash *h, const char *path);

/* ---- tokenizing on all threads (corpus_tokenize.c) ---- */

/* Receives the ids of one document, in reading order. */
typedef adept_status (*adept_ids_sink)(void *ctx, const int32_t *ids, size_t n);

typedef struct adept_tokenize_job {
    char **files;
    size_t nfiles;
    adept_read_opts ro;
    const adept_tokenizer *tok; /* NULL: only token shards are accepted */
    int32_t vocab;              /* token shard ids must be below it (0: unchecked) */
    int threads;
    int progress;               /* draw a progress line over disk_total bytes */
    int64_t disk_total;
    adept_ids_sink sink;
    void *sink_ctx;
    adept_read_counts counts;   /* out */
    int64_t tokenized;          /* out: text documents encoded */
} adept_tokenize_job;

adept_status adept_corpus_tokenize(adept_tokenize_job *job);

/* ---- the tokenized corpus (corpus_cache.c) ---- */

/* An immutable tokenized corpus shared by dataset views (refcounted). Tokens live in an mmap of the cache
   file or in malloc'ed memory. */
typedef struct adept_corpus {
    int refcount;
    int64_t n_docs;
    int64_t n_tokens;
    const uint64_t *offsets; /* n_docs + 1 */
    const int32_t *tokens;
    void *map;               /* mmap base, or NULL */
    size_t map_len;
    uint64_t *own_offsets;   /* malloc'ed (no cache) */
    int32_t *own_tokens;
    adept_dataset_stats stats;
} adept_corpus;

/* Builds the corpus (or maps it from the cache when the key matches). */
adept_status adept_corpus_build(const adept_dataset_options *o, adept_corpus **out);
void adept_corpus_retain(adept_corpus *c);
void adept_corpus_release(adept_corpus *c);

#endif
