/* Hugging Face config.json <-> adept_config: a strict parser (wrong types, out-of-range values and unsupported
   features are errors naming the field) and the writer that saves the original text back with updates. */
#ifndef ADEPT_HF_CONFIG_H
#define ADEPT_HF_CONFIG_H

#include <stddef.h>

#include "adept/error.h"
#include "adept/model.h"

/* Parses config.json text (`len` bytes, need not be NUL-terminated). `label` prefixes messages
   ("config.json: hidden_size must be a positive integer, got -3"). On success out->config_json holds a
   malloc'd copy of the text (free it with adept_hf_config_clear). On failure *out is zeroed. */
adept_status adept_hf_config_parse(const char *json, size_t len, const char *label, adept_config *out);
/* Reads and parses a file; messages name the path's last component. */
adept_status adept_hf_config_read(const char *path, adept_config *out);
/* Frees config_json (NULL is fine) and zeroes the struct. */
void adept_hf_config_clear(adept_config *cfg);
/* A deep copy (config_json duplicated). */
adept_status adept_hf_config_copy(adept_config *dst, const adept_config *src);

/* Replaces cfg->config_json's "layer_types" (when present) by the list without the entries at the given
   0-based layer indices: the base list of an expanded model read back with its adept.json, so that saving
   regenerates the copies' entries from the current expansion. n_layers is the checkpoint's layer count. */
adept_status adept_hf_config_strip_layers(adept_config *cfg, const int *expanded, int n_expanded, int n_layers);

/* The config.json text to save (malloc'd, *out). With cfg->config_json, the original JSON is kept
   field for field, with num_hidden_layers = n_layers, torch_dtype (and "dtype" when present) = dtype, and
   "layer_types" rebuilt: a layer with expanded[i] != 0 is a copy of the layer before it and gets its type,
   the other layers take the original entries in order. Without config_json (llama2.c imports) a complete
   Llama config is written from the fields. expanded may be NULL (no expanded layers). */
adept_status adept_hf_config_to_json(const adept_config *cfg, int n_layers, const unsigned char *expanded,
                                     adept_dtype dtype, char **out);

/* "float32", "bfloat16", "float16" for the torch_dtype field; NULL for other dtypes. */
const char *adept_hf_torch_dtype_name(adept_dtype dtype);

#endif
