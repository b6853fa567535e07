/* safetensors files: strict reader (memory-mapped, zero-copy views) and writer.
   Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]},
   "__metadata__": {str: str}}, then the data section. Offsets are relative to the data section. */
#ifndef ADEPT_SAFETENSORS_H
#define ADEPT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"
#include "adept/tensor.h"

typedef struct adept_st_entry {
    char *name;
    adept_dtype dtype;
    int ndim;
    int64_t shape[ADEPT_MAX_DIMS];
    size_t begin, end; /* byte range within the data section */
} adept_st_entry;

typedef struct adept_safetensors {
    adept_storage *file;   /* the whole file (mmap), retained by every view */
    size_t data_offset;    /* 8 + header length */
    size_t n_entries;
    adept_st_entry *entries; /* in file order of the header */
    size_t n_meta;
    char **meta_keys, **meta_values;
    char *path;            /* for messages */
    int mapped;            /* file is a mapping of the file on disk (adept_safetensors_open), not a buffer */
} adept_safetensors;

/* Opens and validates a file: header length within the file, JSON well-formed, every dtype known, shape
   product times dtype size equal to the byte range, ranges inside the data section, no overlaps, no
   duplicate names. Errors name the file, the tensor and the offending values. */
adept_status adept_safetensors_open(const char *path, adept_safetensors **out);
/* The same validation on a buffer in memory (used by the fuzz target); `label` names it in messages.
   The buffer is copied. */
adept_status adept_safetensors_parse(const void *data, size_t size, const char *label, adept_safetensors **out);
void adept_safetensors_close(adept_safetensors *st); /* NULL is fine; views stay valid */

const adept_st_entry *adept_safetensors_find(const adept_safetensors *st, const char *name);
/* Gives the resident pages of an entry's bytes back to the kernel once they have been copied out (a loader that
   walks a 16 GB checkpoint would otherwise hold the mapped file beside its copy: resident memory up to twice the
   weights). The bytes stay readable: a later read faults them in again from the file. A no-op for a parsed buffer
   and for pages shared with a neighbouring entry. */
void adept_safetensors_evict(const adept_safetensors *st, const adept_st_entry *e);
/* A zero-copy view of one tensor (shares the mapped file). */
adept_status adept_safetensors_view(const adept_safetensors *st, const adept_st_entry *e, adept_tensor **out);
const char *adept_safetensors_meta(const adept_safetensors *st, const char *key); /* NULL if absent */

typedef struct adept_st_item {
    const char *name;
    const adept_tensor *tensor;
} adept_st_item;

/* Writes a file with tensors in the given order (8-byte aligned header padding with spaces, as the
   reference writer does) and optional string metadata; fsyncs before returning. A regular file is written
   to a temporary name beside `path` and renamed over it (atomic; tensors still mapped from an old file at
   `path` stay valid); a non-regular target such as /dev/stdout is written directly. */
adept_status adept_safetensors_write(const char *path, const adept_st_item *items, size_t n_items,
                                     const char *const *meta_keys, const char *const *meta_values, size_t n_meta);

#endif
