/* Thread-local error messages: the one channel by which the core explains a failure. */
#include "adept/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ADEPT_ERROR_CAP 1024
static _Thread_local char error_message[ADEPT_ERROR_CAP];

adept_status adept_fail(adept_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return status;
}

adept_status adept_fail_context(adept_status status, const char *fmt, ...) {
    char prefix[ADEPT_ERROR_CAP], old[ADEPT_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    snprintf(error_message, sizeof error_message, "%s: %s", prefix, old);
    return status;
}

const char *adept_last_error(void) { return error_message; }

void adept_clear_error(void) { error_message[0] = '\0'; }

const char *adept_status_name(adept_status status) {
    switch (status) {
    case ADEPT_OK: return "ok";
    case ADEPT_EINVAL: return "invalid argument";
    case ADEPT_ESHAPE: return "shape mismatch";
    case ADEPT_ENOMEM: return "out of memory";
    case ADEPT_EIO: return "i/o error";
    case ADEPT_EFORMAT: return "malformed input";
    case ADEPT_EUNSUPPORTED: return "unsupported";
    case ADEPT_ENOTFOUND: return "not found";
    case ADEPT_ESTATE: return "invalid state";
    case ADEPT_ENONFINITE: return "non-finite value";
    case ADEPT_EINTERRUPTED: return "interrupted";
    }
    return "unknown status";
}
