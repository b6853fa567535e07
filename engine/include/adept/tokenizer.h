/* Tokenizers: Hugging Face tokenizer.json (BPE: byte-level and SentencePiece-style with byte fallback)
   and llama2.c tokenizer.bin. A loaded tokenizer is immutable, so encode/decode are safe from many threads. */
#ifndef ADEPT_TOKENIZER_H
#define ADEPT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"

typedef struct adept_tokenizer adept_tokenizer;

/* A growable id buffer; initialise to {0} and release with adept_ids_free. */
typedef struct adept_ids {
    int32_t *ids;
    size_t n, cap;
} adept_ids;
adept_status adept_ids_push(adept_ids *v, int32_t id);
void adept_ids_free(adept_ids *v);

/* path: a tokenizer.json, a tokenizer.bin, or a directory holding one (tokenizer.json preferred), or a llama2.c
   model checkpoint with tokenizer.json / tokenizer.bin / tok<vocab_size>.bin beside it (docs/tokenizers.md). */
adept_status adept_tokenizer_load(const char *path, adept_tokenizer **out);
/* The same from bytes in memory (a tokenizer.json or a tokenizer.bin; `name` appears in messages). No side
   files are read, so bos/eos come from the post-processor or the conventional token names. */
adept_status adept_tokenizer_load_memory(const char *name, const void *data, size_t n, adept_tokenizer **out);
void adept_tokenizer_free(adept_tokenizer *tok);

/* Appends the ids of `text` (len bytes, any bytes: invalid UTF-8 never crashes) to `out`.
   add_bos / add_eos: -1 = the tokenizer's own post-processor default, 0 = no, 1 = yes. */
adept_status adept_tokenizer_encode(const adept_tokenizer *tok, const char *text, size_t len, int add_bos,
                                    int add_eos, adept_ids *out);
/* Decodes ids into a malloc'ed NUL-terminated string (*out_len bytes, not counting the NUL). */
adept_status adept_tokenizer_decode(const adept_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                                    char **out, size_t *out_len);

int32_t adept_tokenizer_vocab_size(const adept_tokenizer *tok);
int32_t adept_tokenizer_bos_id(const adept_tokenizer *tok); /* -1 if none */
int32_t adept_tokenizer_eos_id(const adept_tokenizer *tok); /* -1 if none */
int adept_tokenizer_is_special(const adept_tokenizer *tok, int32_t id); /* a special added token (BOS, ...) */
int32_t adept_tokenizer_token_to_id(const adept_tokenizer *tok, const char *token, size_t len); /* -1 if none */
const char *adept_tokenizer_id_to_token(const adept_tokenizer *tok, int32_t id, size_t *len); /* NULL if none */
/* A 64-bit digest of the tokenizer's content, for corpus cache keys. */
uint64_t adept_tokenizer_digest(const adept_tokenizer *tok);

#endif
