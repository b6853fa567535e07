/* Training state on disk, owned by the engine: the trainer-state file (AdamW moments per trainable row with
   the row's shape, per-row step counts, LR multipliers, the trainable set, and the caller's metadata) and
   strict loading of checkpoint weights. Readers check everything against the model before changing
   anything: a missing, misnamed, transposed or mistyped tensor is an error naming it. */
#ifndef ADEPT_CHECKPOINT_H
#define ADEPT_CHECKPOINT_H

#include <stddef.h>

#include "adept/hash.h"
#include "adept/model.h"
#include "adept/optim.h"

/* Writes <path> (safetensors, format 2): "exp_avg.<name>"/"exp_avg_sq.<name>" f32 with the row's shape for every
   trainable row whose moments exist, "lr_rows.<name>" [rows] f32 for per-row multipliers, and metadata
   "optimizer" = JSON {format: 2, steps, trainable: [names], rows: {name: step}, scales: {name: scale | -1}}
   plus the caller's string pairs (key "optimizer" is reserved). */
adept_status adept_trainer_state_save(const char *path, adept_adamw *opt, const char *const *meta_keys,
                                      const char *const *meta_values, size_t n_meta);
/* Reads <path> into opt and its model: the trainable set, moments, step counts and LR scales. The whole file is
   validated first (names exist in the model, shapes and dtypes match, counts are whole numbers in range), so a
   bad file leaves model and optimizer unchanged. *meta_json, if not NULL, receives a malloc'd JSON object of
   every string metadata pair of the file (free with free()). */
adept_status adept_trainer_state_load(const char *path, adept_adamw *opt, char **meta_json);
/* The same from a parsed file (label names it in messages); the fuzz target enters here. */
struct adept_safetensors;
adept_status adept_trainer_state_read(const struct adept_safetensors *sf, const char *label, adept_adamw *opt,
                                      char **meta_json);

/* Copies every parameter of m from safetensors files (a checkpoint's model.safetensors or shards): each must be
   present in one of them with exactly the row's shape and a float dtype (converted to f32). Nothing is copied
   unless everything checks. */
adept_status adept_model_load_weights(adept_model *m, const char *const *paths, size_t n_paths);

/* ---- rows checkpoints: only the rows training can change, bound to the base they apply to ----
   A rows file (rows.safetensors of a checkpoint directory) holds the values of some rows as f32 (exact
   resume) under their table names, and the metadata "checkpoint" = JSON {format: 1, base: "<64 hex>",
   base_rows: n, rows: [names in table order]}: `base` identifies the values of every other row (how it is
   computed is the caller's, docs/training.md), `rows` lists exactly the file's tensors. */

/* SHA-256 of row i's values as little-endian f32, row-major; a row stored in another float dtype is widened
   first, so a base and its exact f32 conversion hash the same. Copies through the host in chunks. */
adept_status adept_model_row_sha256(adept_model *m, size_t i, char hex[ADEPT_SHA256_HEX]);

/* Writes <path>: the rows i with held[i] != 0 as f32, with the metadata above (base_hex: 64 lowercase hex
   digits; base_rows: how many rows it covers, recorded for messages). */
adept_status adept_ckpt_rows_save(adept_model *m, const unsigned char *held, const char *base_hex, int64_t base_rows,
                                  const char *path);

/* Reads the rows file <path>. Always checks the file against itself (the metadata is strict JSON of format 1,
   `rows` names each tensor of the file once and nothing else, every tensor is f32). With m: also that every
   row is a parameter of m with the same shape, stored in f32 in m; with apply != 0 (needs m) copies the rows into m, after every
   check passed, so a bad file leaves m unchanged. *meta_json (may be NULL) receives the "checkpoint" metadata
   text, malloc'd (free with free()). */
adept_status adept_ckpt_rows_read(const char *path, adept_model *m, int apply, char **meta_json);
/* The same from a parsed file (path names it in messages); the fuzz target enters here. */
adept_status adept_ckpt_rows_read_parsed(const struct adept_safetensors *sf, const char *path, adept_model *m,
                                         int apply, char **meta_json);

#endif
