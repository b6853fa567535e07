/* The model's precision for the products of its fp32 weights (adept_model_set_precision; adept/model.h and
   docs/model.md "Precision"). The choice is one field read by adept_model_mm_forward / adept_model_mm_backward
   (model_internal.h), so every projection and the classifier follow it without a branch of their own. */
#include <string.h>

#include "adept/device.h"
#include "model/model_internal.h"

const char *adept_precision_name(adept_precision precision) {
    return precision == ADEPT_PRECISION_BF16 ? "bf16" : "f32";
}

adept_status adept_precision_parse(const char *name, adept_precision *out) {
    if (name && strcmp(name, "f32") == 0) *out = ADEPT_PRECISION_F32;
    else if (name && strcmp(name, "bf16") == 0) *out = ADEPT_PRECISION_BF16;
    else
        return adept_fail(ADEPT_EINVAL, "unknown precision '%s' (expected \"f32\" or \"bf16\")",
                          name ? name : "(null)");
    return ADEPT_OK;
}

adept_status adept_model_set_precision(adept_model *m, adept_precision precision) {
    if (precision != ADEPT_PRECISION_F32 && precision != ADEPT_PRECISION_BF16)
        return adept_fail(ADEPT_EINVAL, "set_precision: unknown precision %d", (int)precision);
    if (precision == ADEPT_PRECISION_BF16 && (!m->be->matmul_forward_bf16 || !m->be->matmul_backward_bf16))
        return adept_fail(ADEPT_EUNSUPPORTED,
                          "set_precision: precision \"bf16\" is not available on the %s device (its backend '%s' "
                          "has no bf16 products); use \"f32\"",
                          adept_device_name(m->be->device), m->be->name);
    m->precision = precision;
    return ADEPT_OK;
}

adept_precision adept_model_precision(const adept_model *m) { return m->precision; }
