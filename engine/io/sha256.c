/* SHA-256 through OpenSSL's EVP interface, streamed in 1 MiB blocks so that large corpora hash in constant memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "adept/sha256.h"

static void to_hex(const unsigned char *md, char hex[ADEPT_SHA256_HEX]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) hex[2 * i] = digits[md[i] >> 4], hex[2 * i + 1] = digits[md[i] & 15];
    hex[64] = '\0';
}

adept_status adept_sha256_buffer(const void *data, size_t n, char hex[ADEPT_SHA256_HEX]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) || len != 32)
        return adept_fail(ADEPT_EUNSUPPORTED, "sha256: OpenSSL's EVP digest failed");
    to_hex(md, hex);
    return ADEPT_OK;
}

adept_status adept_sha256_file(const char *path, char hex[ADEPT_SHA256_HEX], uint64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return adept_fail(ADEPT_EIO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 20);
    adept_status s = ADEPT_OK;
    uint64_t total = 0;
    if (!ctx || !buf || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        s = adept_fail(ADEPT_ENOMEM, "sha256: %s: cannot set up the digest", path);
        goto done;
    }
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0) {
        if (!EVP_DigestUpdate(ctx, buf, n)) { s = adept_fail(ADEPT_EUNSUPPORTED, "sha256: %s: digest failed", path); goto done; }
        total += n;
    }
    if (ferror(f)) { s = adept_fail(ADEPT_EIO, "%s: read error", path); goto done; }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_DigestFinal_ex(ctx, md, &len) || len != 32) {
        s = adept_fail(ADEPT_EUNSUPPORTED, "sha256: %s: digest failed", path);
        goto done;
    }
    to_hex(md, hex);
    if (size) *size = total;
done:
    free(buf);
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return s;
}
