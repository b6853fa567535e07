/* SHA-256 through OpenSSL's EVP interface: provenance records name every input by its content. */
#include "adept/hash.h"
#include "adept/input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

static void to_hex(const unsigned char *md, unsigned n, char *hex) {
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * n] = '\0';
}

adept_status adept_sha256_buffer(const void *data, size_t len, char hex[ADEPT_SHA256_HEX]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32)
        return adept_fail(ADEPT_EUNSUPPORTED, "sha256: OpenSSL's EVP_Digest failed");
    to_hex(md, n, hex);
    return ADEPT_OK;
}

adept_status adept_sha256_file(const char *path, char hex[ADEPT_SHA256_HEX], uint64_t *size) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return adept_fail(errno == ENOENT ? ADEPT_ENOTFOUND : ADEPT_EIO, "sha256: %s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return adept_fail(ADEPT_EINVAL, "sha256: %s: not a regular file", path);
    FILE *f; /* checked again on the opened descriptor: a FIFO swapped in after the stat() would block */
    ADEPT_TRY(adept_input_fopen(path, "sha256", &f));
    adept_sha256_ctx *ctx;
    adept_status st = adept_sha256_begin(&ctx);
    if (st == ADEPT_OK) {
        static _Thread_local unsigned char buf[1 << 16];
        uint64_t total = 0;
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
            adept_sha256_update(ctx, buf, got);
            total += got;
        }
        if (ferror(f)) {
            adept_sha256_free(ctx);
            st = adept_fail(ADEPT_EIO, "sha256: %s: read error", path);
        } else {
            st = adept_sha256_end(ctx, hex);
            if (st == ADEPT_OK && size) *size = total;
        }
    }
    fclose(f);
    return st;
}

/* The streamed form: the context is OpenSSL's, behind an opaque name so callers need not include OpenSSL. */
struct adept_sha256_ctx {
    EVP_MD_CTX *md;
};

adept_status adept_sha256_begin(adept_sha256_ctx **out) {
    *out = NULL;
    adept_sha256_ctx *c = malloc(sizeof *c);
    if (!c) return adept_fail(ADEPT_ENOMEM, "sha256: out of memory");
    c->md = EVP_MD_CTX_new();
    if (!c->md || !EVP_DigestInit_ex(c->md, EVP_sha256(), NULL)) {
        adept_sha256_free(c);
        return adept_fail(ADEPT_ENOMEM, "sha256: cannot create an OpenSSL digest context");
    }
    *out = c;
    return ADEPT_OK;
}

void adept_sha256_update(adept_sha256_ctx *c, const void *data, size_t len) {
    if (len) EVP_DigestUpdate(c->md, data, len);
}

adept_status adept_sha256_end(adept_sha256_ctx *c, char hex[ADEPT_SHA256_HEX]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    int ok = EVP_DigestFinal_ex(c->md, md, &n) && n == 32;
    adept_sha256_free(c);
    if (!ok) return adept_fail(ADEPT_EUNSUPPORTED, "sha256: OpenSSL's EVP_DigestFinal_ex failed");
    to_hex(md, n, hex);
    return ADEPT_OK;
}

void adept_sha256_free(adept_sha256_ctx *c) {
    if (!c) return;
    EVP_MD_CTX_free(c->md);
    free(c);
}
