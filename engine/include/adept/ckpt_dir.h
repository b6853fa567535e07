/* A training checkpoint directory on disk (<dir>/step_%08d/): its manifest (every file's size and SHA-256 and the
   step, written last), its verification before a resume, and the removal of temporaries left by dead writers.
   The Lua loop (lua/adept/checkpoint.lua) only orders these calls. */
#ifndef ADEPT_CKPT_DIR_H
#define ADEPT_CKPT_DIR_H

#include <stdint.h>

#include "adept/error.h"

#define ADEPT_CKPT_MANIFEST "manifest.json"
#define ADEPT_CKPT_ROWS "rows.safetensors" /* a checkpoint of some rows (adept/checkpoint.h) instead of the model */

/* Seals the checkpoint written in `dir` (still under its temporary name): checks that every float tensor of its
   .safetensors files is finite (a checkpoint with NaN weights is never written as good; ADEPT_ENONFINITE names
   the file, tensor and element), then writes manifest.json = {"format": 1, "step": step, "files": [{"name",
   "bytes", "sha256"}...]} for every regular file but hidden ones, atomically (a temporary file, fsynced,
   renamed). A subdirectory or special file in `dir` is an error. */
adept_status adept_ckpt_seal(const char *dir, int64_t step);

/* Verifies the checkpoint `dir`, named for step `step`, before a resume; max_step >= 0 is the run's total
   (a checkpoint past it is implausible), < 0 sets no limit. With a manifest (*sealed = 1): the manifest is
   strict JSON of format 1, records `step`, lists trainer_state.safetensors and the weights (model*.safetensors
   or rows.safetensors), and every listed
   file is present with its size and SHA-256; no .json or .safetensors file is unlisted. Without one (written
   by adeptlua before manifests; *sealed = 0) what can be checked is: trainer_state.safetensors and weights
   present and well-formed. Both: the trainer metadata's step equals `step` (strict JSON), step <= max_step,
   every float tensor finite. The message is the first failure, without the directory's name (the caller
   names it): "model.safetensors is 1000 bytes, the manifest records 1312 (truncated?)". */
adept_status adept_ckpt_verify(const char *dir, int64_t step, int64_t max_step, int *sealed);

/* Every float tensor of a safetensors file is finite; ADEPT_ENONFINITE names the tensor and element. */
adept_status adept_safetensors_check_finite(const char *path, const char *label);

/* Removes <dir>/.tmp-step_<n>-<pid> directories whose writer is dead (adept_pid_alive), never this process's
   or a live one's. *removed (may be NULL) counts them. */
adept_status adept_ckpt_remove_stale(const char *dir, int *removed);

#endif
