/* safetensors reader: maps a file (or copies a buffer), validates its header strictly and hands out views
   that share the mapping through storage refcounting, so tensors outlive the adept_safetensors handle.

   Choices (where the format leaves room):
   - The mapping is PROT_READ|PROT_WRITE with MAP_PRIVATE on a read-only descriptor: writes through a view
     (t:set from Lua) are copy-on-write and never reach the file, and no write can fault.
   - A tensor whose bytes are not aligned to its element size in memory (possible when a writer does not pad
     the header to 8 bytes, or uses odd offsets) is copied into fresh aligned storage instead of viewed.
   - Gaps between tensors and trailing bytes after the last tensor are accepted (the reference implementation
     rejects them); overlapping ranges, ranges outside the data section and duplicate names are rejected.
   - The header must be valid UTF-8, at most 100,000,000 bytes (the reference cap), and a JSON object.
   - Limits of mapping: a file truncated by another program while mapped makes reads fault (SIGBUS); our own
     writer never truncates in place (see safetensors_write.c). A private writable mapping is charged in full
     against the commit limit when the kernel runs with strict overcommit (vm.overcommit_memory=2). */
#include "adept/safetensors.h"
#include "safetensors_internal.h"
#include "adept/input.h"
#include "adept/json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#define ST_MAX_HEADER 100000000ull
#define ST_MAX_INT 9007199254740992.0 /* 2^53: JSON numbers are doubles in cJSON; larger is not exact */

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void adept_safetensors_close(adept_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n_entries; i++) free(st->entries[i].name);
    free(st->entries);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->path);
    adept_storage_release(st->file);
    free(st);
}

/* safetensors dtype names the format defines but this engine does not hold: a clearer message than "unknown". */
static int known_unsupported_dtype(const char *s) {
    static const char *const names[] = {"BOOL", "I16", "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0",
                                        "F6_E2M3", "F6_E3M2", "F4", "C64"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i])) return 1;
    return 0;
}

static adept_status parse_dtype(const char *label, const char *name, const cJSON *item, adept_dtype *out) {
    if (!cJSON_IsString(item))
        return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': \"dtype\" must be a string", label, name);
    for (int d = 0; d < ADEPT_DTYPE_COUNT; d++) {
        if (!strcmp(item->valuestring, adept_dtype_safetensors_name((adept_dtype)d))) {
            *out = (adept_dtype)d;
            return ADEPT_OK;
        }
    }
    if (known_unsupported_dtype(item->valuestring))
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: tensor '%s': dtype %s is not supported (supported: F32, F64, "
                          "BF16, F16, I32, I64, U8, I8, U16, U32)", label, name, item->valuestring);
    return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': unknown dtype '%.40s'", label, name, item->valuestring);
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const cJSON *item, double *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double v = item->valuedouble;
    if (!(v >= 0 && v < ST_MAX_INT) || v != (double)(int64_t)v) return 0;
    *out = v;
    return 1;
}

static const char *json_text(const cJSON *item, char *buf, size_t cap) {
    if (cJSON_IsNumber(item)) snprintf(buf, cap, "%.17g", item->valuedouble);
    else if (cJSON_IsString(item)) snprintf(buf, cap, "\"%.40s\"", item->valuestring);
    else if (cJSON_IsArray(item)) snprintf(buf, cap, "an array");
    else if (cJSON_IsObject(item)) snprintf(buf, cap, "an object");
    else if (cJSON_IsBool(item)) snprintf(buf, cap, "a boolean");
    else if (cJSON_IsNull(item)) snprintf(buf, cap, "null");
    else snprintf(buf, cap, "nothing");
    return buf;
}

static adept_status parse_entry(const char *label, const cJSON *obj, size_t data_size, adept_st_entry *e) {
    const char *name = e->name;
    char buf[64];
    if (!cJSON_IsObject(obj))
        return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': entry must be an object, got %s", label, name,
                          json_text(obj, buf, sizeof buf));
    /* unknown fields are ignored (as serde does for the reference reader); a known field given twice is not */
    int seen[3] = {0, 0, 0};
    static const char *const known[3] = {"dtype", "shape", "data_offsets"};
    for (const cJSON *f = obj->child; f; f = f->next)
        for (int k = 0; k < 3; k++)
            if (!strcmp(f->string, known[k]) && seen[k]++)
                return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': field \"%s\" appears twice", label, name, known[k]);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(obj, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(obj, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(obj, "data_offsets");
    if (!dtype || !shape || !offs)
        return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': missing \"%s\"", label, name,
                          !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    ADEPT_TRY(parse_dtype(label, name, dtype, &e->dtype));

    if (!cJSON_IsArray(shape))
        return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': \"shape\" must be an array, got %s", label, name,
                          json_text(shape, buf, sizeof buf));
    int nd = cJSON_GetArraySize(shape);
    if (nd > ADEPT_MAX_DIMS)
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d supported)", label, name,
                          nd, ADEPT_MAX_DIMS);
    e->ndim = nd;
    /* bytes = dtype size x every dimension, with an overflow check at each step */
    size_t nbytes = adept_dtype_size(e->dtype), overflow = 0;
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        double v;
        if (!json_uint(d, &v))
            return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': dimension %d must be a non-negative integer, got %s",
                              label, name, i + 1, json_text(d, buf, sizeof buf));
        e->shape[i] = (int64_t)v;
        if (v > 0 && nbytes > SIZE_MAX / (size_t)v) overflow = 1;
        else nbytes *= (size_t)v;
    }

    char b0[32], b1[32];
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': \"data_offsets\" must be an array of two integers",
                          label, name);
    double begin, end;
    if (!json_uint(offs->child, &begin) || !json_uint(offs->child->next, &end))
        return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': data_offsets [%s, %s] must be non-negative integers",
                          label, name, json_text(offs->child, b0, sizeof b0),
                          json_text(offs->child->next, b1, sizeof b1));
    if (begin > end)
        return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': data_offsets [%.0f, %.0f] begin after end", label, name,
                          begin, end);
    if (end > (double)data_size)
        return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': data_offsets [%.0f, %.0f] outside the data section of "
                          "%zu bytes (truncated file?)", label, name, begin, end, data_size);
    e->begin = (size_t)begin;
    e->end = (size_t)end;
    if (overflow || nbytes != e->end - e->begin) {
        char sh[128];
        adept_shape_str(e->ndim, e->shape, sh, sizeof sh);
        if (overflow)
            return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': shape %s overflows the address space", label, name, sh);
        return adept_fail(ADEPT_EFORMAT, "%s: tensor '%s': %s %s needs %zu bytes but data_offsets [%zu, %zu] "
                          "hold %zu", label, name, adept_dtype_safetensors_name(e->dtype), sh, nbytes, e->begin,
                          e->end, e->end - e->begin);
    }
    return ADEPT_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static adept_status parse_metadata(adept_safetensors *st, const char *label, const cJSON *meta) {
    char buf[64];
    if (!cJSON_IsObject(meta))
        return adept_fail(ADEPT_EFORMAT, "%s: __metadata__ must be an object of strings, got %s", label,
                          json_text(meta, buf, sizeof buf));
    size_t n = (size_t)cJSON_GetArraySize(meta);
    st->meta_keys = calloc(n ? n : 1, sizeof(char *));
    st->meta_values = calloc(n ? n : 1, sizeof(char *));
    if (!st->meta_keys || !st->meta_values) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", label);
    for (const cJSON *m = meta->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return adept_fail(ADEPT_EFORMAT, "%s: __metadata__ value of \"%.40s\" must be a string, got %s", label,
                              m->string, json_text(m, buf, sizeof buf));
        st->meta_keys[st->n_meta] = dup_str(m->string);
        st->meta_values[st->n_meta] = dup_str(m->valuestring);
        st->n_meta++;
        if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1])
            return adept_fail(ADEPT_ENOMEM, "%s: out of memory", label);
    }
    /* duplicate keys (cJSON keeps them): sort a copy of the key pointers and compare neighbours */
    if (st->n_meta < 2) return ADEPT_OK;
    char **keys = malloc(st->n_meta * sizeof *keys);
    if (!keys) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", label);
    memcpy(keys, st->meta_keys, st->n_meta * sizeof *keys);
    qsort(keys, st->n_meta, sizeof *keys, cmp_str);
    adept_status s = ADEPT_OK;
    for (size_t i = 1; i < st->n_meta && s == ADEPT_OK; i++)
        if (!strcmp(keys[i - 1], keys[i]))
            s = adept_fail(ADEPT_EFORMAT, "%s: __metadata__ key \"%.40s\" appears twice", label, keys[i]);
    free(keys);
    return s;
}

static int cmp_begin(const void *a, const void *b) {
    const adept_st_entry *x = *(const adept_st_entry *const *)a, *y = *(const adept_st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const adept_st_entry *const *)a)->name, (*(const adept_st_entry *const *)b)->name);
}

/* Overlaps (empty tensors overlap nothing) and duplicate names, on a sorted index of the entries. */
static adept_status check_layout(const adept_safetensors *st, const char *label) {
    if (st->n_entries < 2) return ADEPT_OK;
    const adept_st_entry **idx = malloc(st->n_entries * sizeof *idx);
    if (!idx) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", label);
    for (size_t i = 0; i < st->n_entries; i++) idx[i] = &st->entries[i];
    adept_status s = ADEPT_OK;
    qsort(idx, st->n_entries, sizeof *idx, cmp_name);
    for (size_t i = 1; i < st->n_entries && s == ADEPT_OK; i++)
        if (!strcmp(idx[i - 1]->name, idx[i]->name))
            s = adept_fail(ADEPT_EFORMAT, "%s: tensor '%s' appears twice in the header", label, idx[i]->name);
    qsort(idx, st->n_entries, sizeof *idx, cmp_begin);
    const adept_st_entry *prev = NULL; /* the non-empty range ending last so far */
    for (size_t i = 0; i < st->n_entries && s == ADEPT_OK; i++) {
        const adept_st_entry *e = idx[i];
        if (e->begin == e->end) continue;
        if (prev && e->begin < prev->end)
            s = adept_fail(ADEPT_EFORMAT, "%s: tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) overlap", label,
                           prev->name, prev->begin, prev->end, e->name, e->begin, e->end);
        if (!prev || e->end > prev->end) prev = e;
    }
    free(idx);
    return s;
}

int adept_st_utf8_valid(const unsigned char *p, size_t n) {
    while (n > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, (utf8proc_ssize_t)(n < 8 ? n : 8), &cp);
        if (k <= 0) return 0;
        p += k;
        n -= (size_t)k;
    }
    return 1;
}

/* Validates the whole buffer held by `file` (taking over the reference) and fills a new handle. */
static adept_status st_validate(adept_storage *file, const char *label, adept_safetensors **out) {
    *out = NULL;
    adept_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        adept_storage_release(file);
        return adept_fail(ADEPT_ENOMEM, "%s: out of memory", label);
    }
    st->file = file;
    st->path = dup_str(label);
    cJSON *root = NULL;
    char *text = NULL;
    adept_status s = ADEPT_OK;
    const unsigned char *buf = file->data;
    size_t size = file->nbytes;
    char tmp[64];

    if (!st->path) { s = adept_fail(ADEPT_ENOMEM, "%s: out of memory", label); goto done; }
    if (size < 8) {
        s = adept_fail(ADEPT_EFORMAT, "%s: file of %zu bytes is too short for a safetensors header (8-byte length "
                       "expected)", label, size);
        goto done;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i]; /* little-endian on any host */
    if (hlen > ST_MAX_HEADER) {
        s = adept_fail(ADEPT_EFORMAT, "%s: header length %llu exceeds the %llu-byte limit (not a safetensors file?)",
                       label, (unsigned long long)hlen, ST_MAX_HEADER);
        goto done;
    }
    if (hlen > size - 8) {
        s = adept_fail(ADEPT_EFORMAT, "%s: header length %llu is larger than the %zu bytes after it (truncated "
                       "file?)", label, (unsigned long long)hlen, size - 8);
        goto done;
    }
    if (hlen < 2) {
        s = adept_fail(ADEPT_EFORMAT, "%s: header length %llu is too short for a JSON object", label,
                       (unsigned long long)hlen);
        goto done;
    }
    st->data_offset = 8 + (size_t)hlen;
    size_t data_size = size - st->data_offset;
    if (!adept_st_utf8_valid(buf + 8, (size_t)hlen)) {
        s = adept_fail(ADEPT_EFORMAT, "%s: header is not valid UTF-8", label);
        goto done;
    }
    /* cJSON reads a NUL-terminated copy: the mapping has no terminator of its own */
    text = malloc((size_t)hlen + 1);
    if (!text) { s = adept_fail(ADEPT_ENOMEM, "%s: cannot allocate the %llu-byte header", label, (unsigned long long)hlen); goto done; }
    memcpy(text, buf + 8, (size_t)hlen);
    text[hlen] = '\0';
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + hlen ? (size_t)(at - text) : 0;
        s = adept_fail(ADEPT_EFORMAT, "%s: header is not valid JSON (error near byte %zu of the header, file offset "
                       "%zu)", label, off, 8 + off);
        goto done;
    }
    for (const char *p = end; p && p < text + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            s = adept_fail(ADEPT_EFORMAT, "%s: unexpected bytes after the header JSON at file offset %zu", label,
                           (size_t)(8 + (p - text)));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        s = adept_fail(ADEPT_EFORMAT, "%s: header must be a JSON object, got %s", label, json_text(root, tmp, sizeof tmp));
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(root);
    st->entries = calloc(n ? n : 1, sizeof *st->entries);
    if (!st->entries) { s = adept_fail(ADEPT_ENOMEM, "%s: out of memory", label); goto done; }
    int seen_meta = 0;
    for (const cJSON *item = root->child; item; item = item->next) {
        if (!strcmp(item->string, "__metadata__")) {
            if (seen_meta++) { s = adept_fail(ADEPT_EFORMAT, "%s: __metadata__ appears twice", label); goto done; }
            if ((s = parse_metadata(st, label, item)) != ADEPT_OK) goto done;
            continue;
        }
        adept_st_entry *e = &st->entries[st->n_entries];
        e->name = dup_str(item->string);
        if (!e->name) { s = adept_fail(ADEPT_ENOMEM, "%s: out of memory", label); goto done; }
        st->n_entries++;
        if ((s = parse_entry(label, item, data_size, e)) != ADEPT_OK) goto done;
    }
    s = check_layout(st, label);
    /* the checks above name the duplicates that matter most (tensor names, entry fields); this one refuses
       the rest (keys repeated inside __metadata__ values or unknown entry fields) */
    if (s == ADEPT_OK) s = adept_json_check_unique(root, label);

done:
    cJSON_Delete(root);
    free(text);
    if (s != ADEPT_OK) adept_safetensors_close(st);
    else *out = st;
    return s;
}

static void unmap_release(void *data, size_t nbytes, void *ctx) { munmap(data, nbytes); }

adept_status adept_safetensors_open(const char *path, adept_safetensors **out) {
    *out = NULL;
    int fd;
    struct stat sb;
    ADEPT_TRY(adept_input_open(path, "safetensors", &fd, &sb));
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return adept_fail(ADEPT_EFORMAT, "%s: file of %zu bytes is too short for a safetensors header (8-byte "
                          "length expected)", path, size);
    }
    /* private and writable: writes through views are copy-on-write, never reach the file, never fault */
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return adept_fail(ADEPT_EIO, "%s: mmap of %zu bytes failed: %s", path, size, strerror(err));
    adept_storage *file;
    adept_status s = adept_storage_wrap(map, size, ADEPT_CPU, unmap_release, NULL, &file);
    if (s != ADEPT_OK) {
        munmap(map, size);
        return s;
    }
    s = st_validate(file, path, out);
    if (s == ADEPT_OK) (*out)->mapped = 1;
    return s;
}

void adept_safetensors_evict(const adept_safetensors *st, const adept_st_entry *e) {
    if (!st || !e || !st->mapped) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t base = (uintptr_t)st->file->data, lo = base + st->data_offset + e->begin;
    uintptr_t hi = base + st->data_offset + e->end;
    lo = (lo + page - 1) / page * page; /* whole pages inside the entry only */
    hi = hi / page * page;
    /* private, never written: the dropped pages read back from the file (advice only: a failure changes nothing) */
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

adept_status adept_safetensors_parse(const void *data, size_t size, const char *label, adept_safetensors **out) {
    *out = NULL;
    if (!label) label = "<buffer>";
    if (!data && size) return adept_fail(ADEPT_EINVAL, "%s: NULL buffer of %zu bytes", label, size);
    adept_storage *file;
    ADEPT_TRY(adept_storage_new(size, ADEPT_CPU, &file));
    if (size) memcpy(file->data, data, size);
    return st_validate(file, label, out);
}

const adept_st_entry *adept_safetensors_find(const adept_safetensors *st, const char *name) {
    if (!st || !name) return NULL;
    for (size_t i = 0; i < st->n_entries; i++)
        if (!strcmp(st->entries[i].name, name)) return &st->entries[i];
    return NULL;
}

const char *adept_safetensors_meta(const adept_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (size_t i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_values[i];
    return NULL;
}

adept_status adept_safetensors_view(const adept_safetensors *st, const adept_st_entry *e, adept_tensor **out) {
    *out = NULL;
    if (!st || !e || e < st->entries || e >= st->entries + st->n_entries)
        return adept_fail(ADEPT_EINVAL, "safetensors view: entry does not belong to this file");
    size_t offset = st->data_offset + e->begin;
    uintptr_t addr = (uintptr_t)st->file->data + offset;
    if (addr % adept_dtype_size(e->dtype) == 0)
        return adept_tensor_view(st->file, offset, e->dtype, e->ndim, e->shape, out);
    /* misaligned for its element type (unpadded header or odd offsets): an aligned copy instead */
    adept_tensor *t;
    adept_status s = adept_tensor_new(e->dtype, e->ndim, e->shape, &t);
    if (s != ADEPT_OK) return adept_fail_context(s, "%s: tensor '%s'", st->path, e->name);
    memcpy(adept_tensor_data(t), (const char *)st->file->data + offset, e->end - e->begin);
    *out = t;
    return ADEPT_OK;
}
