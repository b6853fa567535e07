/* Internal structures shared by the tokenizer files (engine/data/tok_*.c): the tokenizer object, string and
   pair hash maps, the pipeline component descriptions loaded from tokenizer.json, and a piece list. */
#ifndef ADEPT_TOK_INTERNAL_H
#define ADEPT_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "adept/tokenizer.h"

/* ---- hash maps ------------------------------------------------------------------------------------- */
/* String -> int32 map; keys are copied into an arena owned by the map. Open addressing, load <= 1/2. */
typedef struct tok_smap_slot {
    uint32_t hash, klen;
    uint64_t koff; /* offset into keys; klen == UINT32_MAX marks an empty slot */
    int32_t val;
} tok_smap_slot;
typedef struct tok_smap {
    tok_smap_slot *slots;
    size_t cap, n; /* cap is a power of two */
    char *keys;
    size_t klen, kcap;
} tok_smap;
uint64_t tok_hash_bytes(const void *p, size_t n);
adept_status tok_smap_init(tok_smap *m, size_t expect);
void tok_smap_free(tok_smap *m);
/* Inserts or overwrites. */
adept_status tok_smap_put(tok_smap *m, const char *k, size_t klen, int32_t val);
int32_t tok_smap_get(const tok_smap *m, const char *k, size_t klen); /* -1 when absent */

/* (left id, right id) -> (rank, merged id) for BPE merges. */
typedef struct tok_pmap_slot {
    uint64_t key; /* UINT64_MAX: empty */
    int32_t rank, id;
} tok_pmap_slot;
typedef struct tok_pmap {
    tok_pmap_slot *slots;
    size_t cap, n;
} tok_pmap;
adept_status tok_pmap_init(tok_pmap *m, size_t expect);
void tok_pmap_free(tok_pmap *m);
adept_status tok_pmap_put(tok_pmap *m, int32_t a, int32_t b, int32_t rank, int32_t id); /* keeps the first */
static inline const tok_pmap_slot *tok_pmap_get(const tok_pmap *m, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t mask = m->cap - 1, i = (size_t)(h >> 32) & mask;
    for (;;) {
        const tok_pmap_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        i = (i + 1) & mask;
    }
}

/* ---- UTF-8 ----------------------------------------------------------------------------------------- */
/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not valid (WHATWG maximal subpart rule:
   *bad gets the number of bytes that form one replacement unit). */
int tok_utf8_valid_len(const unsigned char *s, size_t n, int *bad);
/* Copies src into a malloc'ed buffer with every invalid sequence replaced by U+FFFD (as TextDecoder does).
   Returns the input pointer itself (no copy, *owned = 0) when it is already valid. */
adept_status tok_utf8_sanitize(const char *src, size_t n, const char **out, size_t *out_len, char **owned);
int tok_utf8_encode(uint32_t cp, char *out); /* 1..4 bytes */

/* ---- a list of pieces (pre-tokenizer splits) over one byte buffer ---------------------------------- */
typedef struct tok_span {
    size_t off, len;
} tok_span;
typedef struct tok_pieces {
    char *buf;
    size_t blen, bcap;
    tok_span *sp;
    size_t n, cap;
} tok_pieces;
adept_status tok_pieces_add(tok_pieces *p, const char *s, size_t len); /* copies s; empty pieces dropped */
adept_status tok_pieces_append_to_last(tok_pieces *p, const char *s, size_t len);
void tok_pieces_clear(tok_pieces *p);
void tok_pieces_free(tok_pieces *p);

/* A growable byte string. */
typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;
adept_status tok_buf_put(tok_buf *b, const char *s, size_t n);
void tok_buf_free(tok_buf *b);

/* ---- pipeline components from tokenizer.json ------------------------------------------------------- */
typedef enum { TOK_PAT_STRING, TOK_PAT_REGEX } tok_pat_kind;
typedef struct tok_pattern {
    tok_pat_kind kind;
    char *str; /* the literal string (TOK_PAT_STRING) */
    size_t len;
    pcre2_code *re; /* compiled, JIT when available (TOK_PAT_REGEX) */
} tok_pattern;

typedef enum {
    TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD, TOK_NORM_PREPEND, TOK_NORM_REPLACE,
    TOK_NORM_LOWERCASE, TOK_NORM_STRIP, TOK_NORM_SEQUENCE
} tok_norm_kind;
typedef struct tok_norm {
    tok_norm_kind kind;
    char *str; /* Prepend: prefix; Replace: content */
    size_t len;
    tok_pattern pat; /* Replace */
    int left, right; /* Strip */
    struct tok_norm *items;
    int nitems;
} tok_norm;

typedef enum {
    TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_MERGED_PREV, TOK_SPLIT_MERGED_NEXT, TOK_SPLIT_CONTIGUOUS
} tok_split_behavior;
typedef enum { TOK_PRE_BYTELEVEL, TOK_PRE_SPLIT, TOK_PRE_METASPACE, TOK_PRE_SEQUENCE, TOK_PRE_DIGITS } tok_pre_kind;
typedef struct tok_pretok {
    tok_pre_kind kind;
    int add_prefix_space, use_regex; /* ByteLevel */
    tok_pattern pat;                 /* Split (ByteLevel's regex when use_regex) */
    tok_split_behavior behavior;
    int invert;
    char repl[8]; /* Metaspace replacement (UTF-8) */
    int repl_len;
    int prepend; /* Metaspace: 0 never, 1 first, 2 always */
    int split;   /* Metaspace split; Digits individual_digits */
    struct tok_pretok *items;
    int nitems;
} tok_pretok;

typedef enum {
    TOK_DEC_BYTELEVEL, TOK_DEC_METASPACE, TOK_DEC_BYTEFALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP, TOK_DEC_REPLACE,
    TOK_DEC_SEQUENCE
} tok_dec_kind;
typedef struct tok_dec {
    tok_dec_kind kind;
    char repl[8]; /* Metaspace */
    int repl_len, prepend;
    char *str; /* Strip: content char; Replace: content */
    size_t len;
    tok_pattern pat;
    int start, stop;
    struct tok_dec *items;
    int nitems;
} tok_dec;

typedef struct tok_added {
    char *content;
    size_t len;
    int32_t id;
    int special, lstrip, rstrip, normalized, single_word;
    char *ncontent; /* the normalized content (normalized tokens when there is a normalizer), else NULL */
    size_t nlen;
} tok_added;

typedef struct tok_hf {
    /* model */
    tok_pmap merges;
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;
    int32_t byte_ids[256]; /* <0xXX> tokens, -1 when absent */
    /* pipeline (NULL when absent) */
    tok_norm *norm;
    tok_pretok *pre;
    tok_dec *dec;
    int32_t *tpl_pre, *tpl_post; /* post-processor: ids before and after the sequence */
    int n_tpl_pre, n_tpl_post;
    tok_added *added;
    int nadded;
    int byte_level; /* the pre-tokenizer maps bytes to GPT-2 unicode characters */
    uint8_t first_raw[256], first_norm[256]; /* first bytes of raw / normalized added-token contents */
    int n_norm_added;
    /* No pre-tokenizer, but no vocabulary token has "\u2581" after another character: then no merge can cross
       the point before a "\u2581" that follows another character, and BPE may run (and cache) word by word. */
    int metaspace_words;
    /* Fast path for the usual byte-level pipelines (ByteLevel with its regex, or Split + ByteLevel without one):
       regex matches are mapped and merged directly, without piece lists. NULL when the pipeline is other. */
    const tok_pattern *fast_pat;
    int fast_keep_gaps; /* Split Isolated keeps the text between matches; ByteLevel's regex covers all text */
} tok_hf;

enum { TOK_KIND_LLAMA2C = 1, TOK_KIND_HF = 2 };

struct adept_tokenizer {
    int kind;
    uint64_t serial; /* unique per loaded tokenizer: keys the per-thread word cache */
    uint64_t digest;
    int32_t nids;    /* ids are 0..nids-1 */
    char **tok;      /* id -> token bytes (NULL for a hole) */
    uint32_t *tok_len;
    uint8_t *is_special; /* id -> 1 for special added tokens */
    tok_smap vocab;  /* model vocabulary: string -> id */
    tok_smap added_map; /* added tokens: content -> id */
    int32_t bos, eos;
    float *scores; /* llama2.c */
    int32_t llama_space_id;
    tok_hf *hf;
    char *path;
    int from_memory; /* loaded from bytes: no side files (tokenizer_config.json) */
};

adept_status tok_llama2c_load(const char *path, const unsigned char *data, size_t n, adept_tokenizer *tok);
adept_status tok_llama2c_encode(const adept_tokenizer *tok, const char *text, size_t len, adept_ids *out);
adept_status tok_llama2c_decode(const adept_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                                tok_buf *out);

adept_status tok_json_load(const char *path, const char *data, size_t n, adept_tokenizer *tok);
void tok_hf_free(tok_hf *hf);
adept_status tok_hf_prepare(adept_tokenizer *tok, const char *path);
adept_status tok_hf_encode(const adept_tokenizer *tok, const char *text, size_t len, int add_bos, int add_eos,
                           adept_ids *out);
adept_status tok_hf_decode(const adept_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                           tok_buf *out);

/* Components: build from JSON (tok_json.c) and run (one file each). */
adept_status tok_pattern_compile_regex(tok_pattern *p, const char *regex, const char *where);
void tok_pattern_free(tok_pattern *p);
/* Finds the next match of p in s[from..n): *ms, *me. Returns 1 found, 0 none, or -1 with an error set. */
int tok_pattern_find(const tok_pattern *p, const char *s, size_t n, size_t from, size_t *ms, size_t *me,
                     pcre2_match_data *md);
pcre2_match_data *tok_match_data(void); /* per-thread, created on first use; NULL on allocation failure */

adept_status tok_normalize(const tok_norm *nz, tok_buf *s, tok_buf *tmp);
void tok_norm_free(tok_norm *nz);
adept_status tok_pretokenize(const tok_pretok *pt, tok_pieces *io, tok_pieces *tmp, int first_piece);
void tok_pretok_free(tok_pretok *pt);
extern const char *const tok_gpt2_regex;
/* GPT-2's byte-to-unicode table: byte b maps to the UTF-8 of tok_byte_char[b] (len tok_byte_char_len[b]). */
extern char tok_byte_char[256][3];
extern uint8_t tok_byte_char_len[256];
void tok_bytelevel_init(void);
int tok_bytelevel_char_to_byte(uint32_t cp); /* -1 when cp is not one of the 256 */

/* Decoding: token strings -> text, through the decoder chain. */
adept_status tok_decode_run(const tok_dec *d, tok_pieces *toks, tok_pieces *tmp);
void tok_dec_free(tok_dec *d);

/* The fused byte-level path (hf->fast_pat): regex scan, byte map and BPE of a section; texts of at least
   tok_parallel_min_bytes are split over the threads and stitched exactly (tok_scan.c). m: a scratch buffer. */
adept_status tok_scan_bytelevel(const adept_tokenizer *tok, const char *s, size_t n, tok_buf *m, adept_ids *out);
/* Pre-tokenizer-less SentencePiece-style text when hf->metaspace_words: BPE word by word (parallel when long). */
adept_status tok_scan_metaspace(const adept_tokenizer *tok, const char *s, size_t n, adept_ids *out);
extern size_t tok_parallel_min_bytes;

/* BPE of one pre-tokenized word (bytes already mapped for byte-level models). Appends ids. */
adept_status tok_bpe_word(const adept_tokenizer *tok, const char *w, size_t n, adept_ids *out);

#endif
