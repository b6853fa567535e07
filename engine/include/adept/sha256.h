/* SHA-256 of files and buffers (OpenSSL's EVP), as lower-case hex: the identity of inputs in bundle manifests. */
#ifndef ADEPT_SHA256_H
#define ADEPT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"

#define ADEPT_SHA256_HEX 65 /* 64 hex digits and a NUL */

/* Hashes the file's bytes; *size gets its length (may be NULL). */
adept_status adept_sha256_file(const char *path, char hex[ADEPT_SHA256_HEX], uint64_t *size);
adept_status adept_sha256_buffer(const void *data, size_t n, char hex[ADEPT_SHA256_HEX]);

#endif
