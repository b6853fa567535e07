/* Status codes and the thread-local error message of libadept.
   The C core never exits or longjmps on bad input: it returns a status and leaves a message here. */
#ifndef ADEPT_ERROR_H
#define ADEPT_ERROR_H

#include <stddef.h>

typedef enum adept_status {
    ADEPT_OK = 0,
    ADEPT_EINVAL,       /* an argument is out of its domain (bad index, negative size, ...) */
    ADEPT_ESHAPE,       /* shapes or dtypes do not agree */
    ADEPT_ENOMEM,       /* an allocation failed */
    ADEPT_EIO,          /* the operating system refused a file operation */
    ADEPT_EFORMAT,      /* a file or string is malformed */
    ADEPT_EUNSUPPORTED, /* valid input that this engine does not implement */
    ADEPT_ENOTFOUND,    /* a named thing (tensor, file, field) does not exist */
    ADEPT_ESTATE,       /* the object is in the wrong state for this call (freed, frozen, ...) */
    ADEPT_ENONFINITE,   /* a NaN or infinity appeared where it must not */
    ADEPT_EINTERRUPTED  /* stopped on request (signal, callback) */
} adept_status;

/* Sets the message of the calling thread (printf format) and returns `status`,
   so that failures read `return adept_fail(ADEPT_EFORMAT, "%s: ...", path);`. */
adept_status adept_fail(adept_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to the current message, keeping the status. For layering messages
   ("adept.load: model.safetensors: header ..."). */
adept_status adept_fail_context(adept_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *adept_last_error(void);   /* never NULL; "" when no error was set */
void adept_clear_error(void);
const char *adept_status_name(adept_status status);

/* Propagate a failing status to the caller. */
#define ADEPT_TRY(expr)                           \
    do {                                          \
        adept_status adept_try_s_ = (expr);       \
        if (adept_try_s_ != ADEPT_OK) return adept_try_s_; \
    } while (0)

#endif
