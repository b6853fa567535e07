/* Instruction items (issue 15 point 3): one JSON object in any of the supported layouts
   ({instruction, input, output}, {prompt, completion}, {messages: [{role, content}]}) rendered with a
   template into text segments, each marked whether its tokens carry loss (the response) or not (the prompt
   and the template text). Tokenising segments and setting prompt targets to -1 is the dataset's job.
   Templates: the documented plain template, or one of the chat-template families recognised from a
   tokenizer_config.json's `chat_template` text (docs/dataset.md "Instruction data"). */
#ifndef ADEPT_INSTRUCT_H
#define ADEPT_INSTRUCT_H

#include <stddef.h>
#include <stdint.h>

#include "adept/error.h"

typedef enum adept_instr_template {
    ADEPT_INSTR_PLAIN = 0, /* "### Instruction:\n...\n\n### Response:\n" */
    ADEPT_INSTR_QWEN3,     /* ChatML as Qwen3's template writes it (empty <think> block on the last turn) */
    ADEPT_INSTR_LLAMA3     /* Llama 3's header format (<|start_header_id|>role<|end_header_id|>) */
} adept_instr_template;

typedef struct adept_instr_segment {
    char *text;   /* NUL-terminated, owned */
    int trained;  /* 1: the response (loss counts), 0: prompt or template text (targets -1) */
} adept_instr_segment;

typedef struct adept_instr_item {
    adept_instr_segment *segs;
    int n;
} adept_instr_item;

/* Recognises the family of a Jinja chat template (`source` names the file for messages). A template of no
   supported family fails with ADEPT_EUNSUPPORTED naming `source` and the way to choose the plain template. */
adept_status adept_instr_template_detect(const char *source, const char *chat_template, adept_instr_template *out);
const char *adept_instr_template_name(adept_instr_template t);

/* Parses one JSON Lines record (`json`, `len` bytes) and renders it with template `t`; `bos` is the text of
   the tokenizer's BOS token where the template writes it (Llama 3), may be NULL otherwise.
   Errors name `name`:`line` and the field at fault. */
adept_status adept_instr_item_parse(const char *name, size_t line, const char *json, size_t len,
                                    adept_instr_template t, const char *bos, adept_instr_item *out);
void adept_instr_item_free(adept_instr_item *item);

struct adept_tokenizer;

/* One rendered item as a training row of `seq_len` positions (engine/data/instruct_encode.c).
   Each segment is encoded on its own (prompt tokens never merge with response tokens); the first segment gets
   the tokenizer's BOS when add_bos (-1: the tokenizer's default, 0: no, 1: yes); add_eos appends EOS to the
   item as response (trained) text. With tokens t_0..t_{n-1}: inputs[i] = t_i, targets[i] = t_{i+1} when
   t_{i+1} is response text, else -1; positions past the item hold inputs `pad_id` and targets -1.
   Over-length policy: an item longer than seq_len + 1 tokens is cut at the end (the response's tail is lost)
   and *truncated is set to 1; *trained counts the targets that are not -1 (0 when the prompt alone fills the
   row: the caller drops such an item and reports it). Nothing is packed across items. */
adept_status adept_instr_encode(const struct adept_tokenizer *tok, const adept_instr_item *item, int add_bos,
                                int add_eos, size_t seq_len, int32_t pad_id, int32_t *inputs, int32_t *targets,
                                int *truncated, size_t *trained);

#endif
