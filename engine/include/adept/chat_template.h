/* Chat templates without a Jinja engine: the template families adeptlua supports are recognised from the
   template text of tokenizer_config.json and rendered here, turn by turn, into segments that say which text is
   an assistant turn's learnable part (docs/dataset.md; parity with the real Jinja templates:
   tests/parity/test_chat_template.py). */
#ifndef ADEPT_CHAT_TEMPLATE_H
#define ADEPT_CHAT_TEMPLATE_H

#include <stddef.h>

#include "adept/error.h"

typedef enum adept_chat_family {
    ADEPT_CHAT_QWEN3 = 1, /* ChatML with Qwen3's <think> handling of assistant turns after the last user query */
    ADEPT_CHAT_LLAMA3     /* Llama 3 header format: <|start_header_id|>role<|end_header_id|>\n\n content <|eot_id|> */
} adept_chat_family;

typedef struct adept_chat_template {
    adept_chat_family family;
    char bos_token[64]; /* tokenizer_config.json's bos_token text ("" when absent) */
} adept_chat_template;

/* Recognises a template text; anything else fails naming `name` (the config file) and how to choose the plain
   template. */
adept_status adept_chat_template_detect(const char *name, const char *template_text, const char *bos_token,
                                        adept_chat_template *out);
/* Reads tokenizer_config.json (chat_template, bos_token) and detects its family; a config without a
   chat_template fails saying so. */
adept_status adept_chat_template_load(const char *config_path, adept_chat_template *out);

typedef struct adept_chat_segment {
    char *text;
    int target; /* 1: an assistant turn's content and end-of-turn token (the loss counts it) */
} adept_chat_segment;

typedef struct adept_chat_render {
    adept_chat_segment *seg;
    size_t n;
} adept_chat_render;

/* Renders n messages (roles "system", "user", "assistant"; anything else is an error) exactly as the family's
   template does (Llama 3 always ends with the assistant header, as its template does; Qwen3 without
   add_generation_prompt). The concatenated segments are the template's output. */
adept_status adept_chat_render_messages(const adept_chat_template *t, const char *const *roles,
                                        const char *const *contents, size_t n, adept_chat_render *out);
void adept_chat_render_free(adept_chat_render *r);
/* The concatenation of the segments (malloc'ed). */
char *adept_chat_render_join(const adept_chat_render *r);

#endif
