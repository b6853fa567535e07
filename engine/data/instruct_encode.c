/* A rendered instruction item as one training row: tokens of every segment with their trained mark, then the
   shifted targets with -1 on prompt/template tokens and padding (policy in adept/instruct.h and
   docs/dataset.md). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adept/instruct.h"
#include "adept/tokenizer.h"

adept_status adept_instr_encode(const adept_tokenizer *tok, const adept_instr_item *item, int add_bos,
                                int add_eos, size_t seq_len, int32_t pad_id, int32_t *inputs, int32_t *targets,
                                int *truncated, size_t *trained) {
    if (seq_len == 0) return adept_fail(ADEPT_EINVAL, "instruction item: seq_len must be positive");
    if (add_eos && adept_tokenizer_eos_id(tok) < 0)
        return adept_fail(ADEPT_EINVAL, "instruction item: add_eos asked but the tokenizer has no EOS token");
    adept_ids ids = {0};
    uint8_t *mark = NULL;
    size_t mark_cap = 0;
    adept_status s = ADEPT_OK;
    for (int k = 0; k < item->n + (add_eos ? 1 : 0) && s == ADEPT_OK; k++) {
        size_t before = ids.n;
        int is_trained;
        if (k < item->n) {
            const adept_instr_segment *g = &item->segs[k];
            s = adept_tokenizer_encode(tok, g->text, strlen(g->text), k == 0 ? add_bos : 0, 0, &ids);
            is_trained = g->trained;
        } else {
            s = adept_ids_push(&ids, adept_tokenizer_eos_id(tok));
            is_trained = 1;
        }
        if (s != ADEPT_OK) break;
        if (ids.n > mark_cap) {
            size_t cap = ids.n * 2;
            uint8_t *m = realloc(mark, cap);
            if (!m) {
                s = adept_fail(ADEPT_ENOMEM, "instruction item: out of memory");
                break;
            }
            mark = m, mark_cap = cap;
        }
        memset(mark + before, is_trained, ids.n - before);
    }
    if (s == ADEPT_OK) {
        size_t n = ids.n, count = 0;
        *truncated = n > seq_len + 1;
        for (size_t i = 0; i < seq_len; i++) {
            inputs[i] = i < n ? ids.ids[i] : pad_id;
            targets[i] = (i + 1 < n && mark[i + 1]) ? ids.ids[i + 1] : -1;
            count += targets[i] != -1;
        }
        *trained = count;
    }
    adept_ids_free(&ids);
    free(mark);
    return s;
}
