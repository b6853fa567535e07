/* Content hashes for provenance: SHA-256 of files and buffers (OpenSSL's EVP, libcrypto), as lowercase hex. */
#ifndef ADEPT_HASH_H
#define ADEPT_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"

#define ADEPT_SHA256_HEX 65 /* 64 hex digits and the terminating NUL */

/* SHA-256 of `len` bytes into hex[ADEPT_SHA256_HEX]. */
adept_status adept_sha256_buffer(const void *data, size_t len, char hex[ADEPT_SHA256_HEX]);
/* SHA-256 of a regular file's contents, streamed; *size receives its length in bytes (may be NULL). */
adept_status adept_sha256_file(const char *path, char hex[ADEPT_SHA256_HEX], uint64_t *size);

/* Streamed SHA-256 of data that is not one buffer or file (a model row copied from the device in chunks):
   begin, update any number of times, then end (which writes the hex digest and frees the context) or free
   (abandons it). */
typedef struct adept_sha256_ctx adept_sha256_ctx;
adept_status adept_sha256_begin(adept_sha256_ctx **out);
void adept_sha256_update(adept_sha256_ctx *c, const void *data, size_t len);
adept_status adept_sha256_end(adept_sha256_ctx *c, char hex[ADEPT_SHA256_HEX]);
void adept_sha256_free(adept_sha256_ctx *c);

#endif
