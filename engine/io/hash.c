/* SHA-256 through OpenSSL's EVP interface: provenance records name every input by its content. */
#include "adept/hash.h"
#include "adept/input.h"

#include <errno.h>
#include <stdio.h>
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
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    adept_status st = ADEPT_OK;
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        st = adept_fail(ADEPT_ENOMEM, "sha256: cannot create an OpenSSL digest context");
    } else {
        static _Thread_local unsigned char buf[1 << 16];
        uint64_t total = 0;
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
            EVP_DigestUpdate(ctx, buf, got);
            total += got;
        }
        if (ferror(f)) {
            st = adept_fail(ADEPT_EIO, "sha256: %s: read error", path);
        } else {
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned n = 0;
            EVP_DigestFinal_ex(ctx, md, &n);
            to_hex(md, n, hex);
            if (size) *size = total;
        }
    }
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return st;
}
