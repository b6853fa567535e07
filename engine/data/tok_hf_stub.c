#include <stdlib.h>
#include "tok_internal.h"
adept_status tok_json_load(const char *path, const char *data, size_t n, adept_tokenizer *tok) { return adept_fail(ADEPT_EUNSUPPORTED, "%s: tokenizer.json not yet", path); }
void tok_hf_free(tok_hf *hf) { tok_pmap_free(&hf->merges); free(hf); }
adept_status tok_hf_encode(const adept_tokenizer *tok, const char *text, size_t len, int add_bos, int add_eos, adept_ids *out) { return ADEPT_EUNSUPPORTED; }
adept_status tok_hf_decode(const adept_tokenizer *tok, const int32_t *ids, size_t n, int skip_special, tok_buf *out) { return ADEPT_EUNSUPPORTED; }
