/* Corpora as training data: sources (text, JSON Lines, token shards; files, globs, directories, archives)
   tokenized once into a content-keyed cache, packed into fixed seq_len windows, split by document, shuffled. */
#ifndef ADEPT_DATASET_H
#define ADEPT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"
#include "adept/tensor.h"
#include "adept/tokenizer.h"

typedef enum adept_corpus_format {
    ADEPT_FORMAT_AUTO = 0, /* by extension: .jsonl/.ndjson/.json -> jsonl; .bin/.u16/.u32 -> tokens; else text */
    ADEPT_FORMAT_TEXT,
    ADEPT_FORMAT_JSONL,
    ADEPT_FORMAT_TOKENS
} adept_corpus_format;

typedef enum adept_doc_split {
    ADEPT_DOC_BLANK_LINE = 0, /* text: documents are separated by blank lines */
    ADEPT_DOC_FILE,           /* text: each file (or archive member) is one document */
    ADEPT_DOC_LINE            /* text: each non-blank line is one document (Hugging Face "text" default) */
} adept_doc_split;

typedef enum adept_split { ADEPT_SPLIT_ALL = 0, ADEPT_SPLIT_TRAIN, ADEPT_SPLIT_HOLDOUT } adept_split;

typedef struct adept_dataset_options {
    const char *const *paths; /* files, globs (glob(3)) or directories (walked recursively, sorted) */
    int npaths;
    const adept_tokenizer *tokenizer; /* may be NULL for format TOKENS */
    int64_t seq_len;                  /* T: windows hold T+1 tokens */
    adept_corpus_format format;
    const char *field;      /* JSON Lines text field; default "text" */
    int token_bits;         /* TOKENS: 16 or 32; 0 = by extension (.u32 -> 32, else 16) */
    adept_doc_split doc_split;
    uint64_t seed;          /* shuffling and the holdout split */
    double holdout;         /* fraction of documents held out, in [0, 1) */
    int skip_errors;        /* 1: skip bad records and count them; 0: fail naming file, member and line */
    int cache;              /* 1: reuse/write the token cache */
    const char *cache_dir;  /* NULL: $ADEPT_CACHE, else .cache/adept under the working directory */
    int64_t max_documents;  /* 0 = no limit: read at most this many documents (quick tests, recipes) */
    int64_t max_bytes;      /* 0 = no limit: stop after this many bytes of document text */
    int shuffle;            /* 1: windows of ALL and TRAIN are shuffled each epoch (HOLDOUT never is) */
    int32_t eos_id;         /* separator between documents; -1: the tokenizer's EOS (none if it has none) */
    int32_t sep_token;      /* TOKENS: split shards into documents at this id; -1: the EOS id; -2: never */
    int threads;            /* tokenization threads; 0 = adept_get_threads() */
    int progress;           /* 1: a progress line while tokenizing large corpora (> 8 MB on disk) */
} adept_dataset_options;

/* Defaults: field "text", seq_len 256, holdout 0.05, cache 1, shuffle 1, eos_id -1, sep_token -1, progress 1. */
void adept_dataset_options_init(adept_dataset_options *o);

/* A dataset is a view (ALL, TRAIN or HOLDOUT documents) on a shared, immutable tokenized corpus, with its
   own cursor. Views are independent objects; free each one. */
typedef struct adept_dataset adept_dataset;

typedef struct adept_dataset_stats {
    int64_t skipped;             /* records skipped with skip_errors */
    int64_t tokenized_documents; /* documents tokenized by this open (0 when the cache was reused) */
    int cache_hit;
    char cache_path[512];        /* "" without a cache */
} adept_dataset_stats;

/* Exact position of a view: the window order of `epoch` is a pure function of (seed, epoch), and
   `position` counts the windows of that epoch already handed out. */
typedef struct adept_dataset_cursor {
    int64_t epoch;
    int64_t position;
} adept_dataset_cursor;

adept_status adept_dataset_open(const adept_dataset_options *o, adept_dataset **out);
/* A new view of the same corpus with a fresh cursor. */
adept_status adept_dataset_split(const adept_dataset *ds, adept_split which, adept_dataset **out);
void adept_dataset_free(adept_dataset *ds);

adept_split adept_dataset_kind(const adept_dataset *ds);
int64_t adept_dataset_num_documents(const adept_dataset *ds);
/* Tokens of the packed stream: document tokens plus one separator after each document (if any). */
int64_t adept_dataset_num_tokens(const adept_dataset *ds);
int64_t adept_dataset_num_windows(const adept_dataset *ds);
int64_t adept_dataset_seq_len(const adept_dataset *ds);
int32_t adept_dataset_eos_id(const adept_dataset *ds);
void adept_dataset_get_stats(const adept_dataset *ds, adept_dataset_stats *out);
/* The tokens of document i of this view (a pointer into the corpus, valid while the view lives). */
adept_status adept_dataset_document(const adept_dataset *ds, int64_t i, const int32_t **tokens, int64_t *n);
/* The global index (in reading order over all sources) of document i of this view. */
int64_t adept_dataset_document_id(const adept_dataset *ds, int64_t i);
/* The tokens of window w in stream order (before shuffling): *n = T+1, fewer for the last window. */
adept_status adept_dataset_window(const adept_dataset *ds, int64_t w, int32_t *tokens /* T+1 */, int64_t *n);

adept_dataset_cursor adept_dataset_get_cursor(const adept_dataset *ds);
adept_status adept_dataset_set_cursor(adept_dataset *ds, adept_dataset_cursor c);

/* The next batch at the cursor: inputs and targets are new int32 tensors [rows, T]; targets are -1 where
   the window ran past the end of the stream. wrap = 1: always `batch_size` rows, crossing into the next
   epoch. wrap = 0: stops at the end of the epoch — the last batch may have fewer rows, and a call at the
   end returns *inputs = *targets = NULL and moves the cursor to the start of the next epoch. */
adept_status adept_dataset_next_batch(adept_dataset *ds, int64_t batch_size, int wrap, adept_tensor **inputs,
                                      adept_tensor **targets);
/* Data parallelism: this rank's share of the next GLOBAL batch of world * batch_size windows (wrapping like
   next_batch with wrap = 1): rows rank*batch_size .. +batch_size of it. Every rank's cursor moves past the whole
   global batch, so N ranks with batch b read the windows one process reads with batch N*b, in the same order,
   and the cursor is global (a job resumes from it with any world size). world = 1 is next_batch. */
adept_status adept_dataset_next_shard(adept_dataset *ds, int64_t batch_size, int rank, int world,
                                      adept_tensor **inputs, adept_tensor **targets);
/* The same with a caller-owned cursor, which it advances; the view's own cursor is untouched (evaluation
   passes, several readers of one view). */
adept_status adept_dataset_read_batch(const adept_dataset *ds, adept_dataset_cursor *cursor, int64_t batch_size,
                                      int wrap, adept_tensor **inputs, adept_tensor **targets);
/* Batch k (0-based) of the first epochs read from cursor (0, 0), wrapping; the view's cursor is untouched.
   For probe sets: ds:take(n) is batches 0..n-1. */
adept_status adept_dataset_peek_batch(const adept_dataset *ds, int64_t k, int64_t batch_size,
                                      adept_tensor **inputs, adept_tensor **targets);

#endif
