/* llama2.c checkpoints (.bin): the legacy 7-int32 header and the v1 "ak42" header, imported into the
   Hugging Face parameter layout (q/k rows permuted from interleaved to half-rotation RoPE). */
#ifndef ADEPT_LLAMA2C_H
#define ADEPT_LLAMA2C_H

#include <stddef.h>

#include "adept/error.h"
#include "adept/model.h"

#define ADEPT_LLAMA2C_MAGIC 0x616b3432u /* "ak42" read as a little-endian uint32 */

typedef struct adept_llama2c_header {
    int version;            /* 0: legacy (28-byte header), 1: v1 (256-byte header) */
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; /* vocab_size > 0 */
    int shared_classifier;  /* legacy: vocab_size > 0 in the file; v1: the flag byte */
    size_t header_bytes;    /* 28 or 256 */
    size_t data_bytes;      /* fp32 weights the header implies */
} adept_llama2c_header;

/* Validates the header of a file of `size` bytes starting at `data`: known magic/version, dimensions in
   range and consistent (heads divide dim, kv heads divide heads, even head size), and the file size equal
   to header + implied weights (truncated or trailing bytes are errors). `label` names the file. */
adept_status adept_llama2c_parse_header(const void *data, size_t size, const char *label, adept_llama2c_header *out);
/* The adept_config of a parsed header: LlamaForCausalLM, eps 1e-5, rope theta 10000, BOS 1, EOS 2, f32. */
void adept_llama2c_config(const adept_llama2c_header *h, adept_config *cfg);
/* Imports a whole checkpoint held in memory (the fuzz target's entry point). */
adept_status adept_llama2c_load_buffer(const void *data, size_t size, const char *label, adept_model **out);
/* The same into a model on a device (rows permuted on the host, then uploaded one by one). */
adept_status adept_llama2c_load_buffer_on(const void *data, size_t size, const char *label, adept_device device,
                                          adept_model **out);
/* Memory-maps `path` and imports it. */
adept_status adept_llama2c_load(const char *path, adept_model **out);
adept_status adept_llama2c_load_on(const char *path, adept_device device, adept_model **out);
/* 1 when the file starts with the v1 magic or has a plausible legacy header and a .bin-like size; used by
   adept_model_load to tell a checkpoint file from a directory. */
int adept_llama2c_sniff(const char *path);
/* 1 when the file's header is valid and its size matches it exactly (a checkpoint, not a tokenizer.bin). */
int adept_llama2c_is_checkpoint(const char *path);

#endif
