/* Opening input files without ever blocking: every reader of the engine (config.json, safetensors, tokenizers,
   corpora, llama2.c checkpoints, choice items) opens its path here. A FIFO, device or socket given as an input
   is refused by name at once ("config.json: /p is a FIFO, not a regular file") instead of blocking forever
   or reading without end. */
#ifndef ADEPT_INPUT_H
#define ADEPT_INPUT_H

#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include "adept/error.h"

/* Opens path read-only (O_NONBLOCK while opening, so a FIFO without a writer cannot block; cleared after),
   fstat()s the descriptor and refuses anything but a regular file. `what` names the input in messages (may be
   NULL). A missing file is ADEPT_ENOTFOUND ("path: No such file or directory"); a FIFO, device,
   socket or directory is ADEPT_EIO ("what: path is a FIFO, not a regular file"). *st (may be
   NULL) receives the fstat result. */
adept_status adept_input_open(const char *path, const char *what, int *fd, struct stat *st);

/* The same as a stdio stream ("rb"). */
adept_status adept_input_fopen(const char *path, const char *what, FILE **out);

/* Reads a whole regular file of at most `cap` bytes into a NUL-terminated buffer (free() it). A larger file
   is ADEPT_EFORMAT "what: path: N bytes is larger than the cap". */
adept_status adept_input_read(const char *path, const char *what, size_t cap, char **out, size_t *len);

/* "a FIFO", "a directory", "a character device", ... for messages. */
const char *adept_input_kind(mode_t mode);

#endif
