/* Forward pass (placeholder until the compute lands). */
#include "model/model_internal.h"
adept_status adept_model_forward(adept_model *m, const adept_batch *b, double *nll, int64_t *n, float *logits) {
    return adept_fail(ADEPT_EUNSUPPORTED, "forward: not implemented yet");
}
adept_status adept_model_forward_backward(adept_model *m, const adept_batch *b, float s, double *nll, int64_t *n) {
    return adept_fail(ADEPT_EUNSUPPORTED, "forward_backward: not implemented yet");
}
adept_status adept_model_generate(adept_model *m, const int32_t *prompt, int n_prompt, int max_tokens,
                                  float temperature, int top_k, uint64_t seed, int stop_id, int32_t *out, int *n_out) {
    return adept_fail(ADEPT_EUNSUPPORTED, "generate: not implemented yet");
}
