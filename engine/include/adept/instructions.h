/* Instruction-format data: JSON Lines items ({instruction, input, output} in the Alpaca layout, or
   {prompt, completion}) rendered with the plain template into a prompt and a response, tokenized into one row
   per item whose targets count only the response (prompt and padding targets are -1). Rules in docs/dataset.md. */
#ifndef ADEPT_INSTRUCTIONS_H
#define ADEPT_INSTRUCTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "adept/chat_template.h"
#include "adept/error.h"
#include "adept/tensor.h"
#include "adept/tokenizer.h"

/* One item, rendered: the model reads `prompt` then learns `response` (plain template), or, for a chat item
   ({"messages": [...]}), prompt = response = NULL and `chat` holds the rendered turns (its learnable segments
   are the assistant turns). */
typedef struct adept_instruction_item {
    char *prompt;
    char *response;
    adept_chat_render chat;
    size_t line; /* 1-based line in its file */
} adept_instruction_item;

typedef struct adept_instruction_set {
    adept_instruction_item *items;
    size_t n;
} adept_instruction_set;

/* Parses JSON Lines text (len bytes; `name` appears in messages); blank lines are skipped; at most `limit`
   items when limit > 0. The plain template renders {instruction, input, output} as
   "### Instruction:\n<instruction>\n\n### Input:\n<input>\n\n### Response:\n" + output (the Input block only
   when input is a non-empty string) and {prompt, completion} verbatim. Malformed input fails with
   "<name>:<line>: <what>" and *out empty. */
adept_status adept_instruction_items_parse(const char *name, const char *text, size_t len, size_t limit,
                                           adept_instruction_set *out);
adept_status adept_instruction_items_read(const char *path, size_t limit, adept_instruction_set *out);
/* The same, accepting chat items {"messages": [{"role", "content"}, ...]} rendered with `chat` (NULL: chat items
   are refused, saying a chat template is needed). A chat item needs at least one assistant turn. */
adept_status adept_instruction_items_parse_chat(const char *name, const char *text, size_t len, size_t limit,
                                                const adept_chat_template *chat, adept_instruction_set *out);
adept_status adept_instruction_items_read_chat(const char *path, size_t limit, const adept_chat_template *chat,
                                               adept_instruction_set *out);
void adept_instruction_set_free(adept_instruction_set *set);

/* Tokenized rows: row i is item kept[i]'s prompt (with the tokenizer's default BOS) ++ response ++ EOS, cut to
   seq_len + 1 tokens (a chat item: its rendered segments, each encoded without BOS or EOS, the template holding
   its own special tokens; targets on the assistant segments); inputs [n, T] are its first T tokens (padded with the EOS id, 0 without one), targets
   [n, T] the next tokens where they belong to the response or its EOS, else -1. An item whose prompt leaves no
   room for one response token (more than T prompt tokens) is dropped and counted; a longer one keeps
   its prompt and loses the end of its response (counted as truncated). Items never share a row. */
typedef struct adept_instruction_rows {
    int32_t *inputs;  /* n * T */
    int32_t *targets; /* n * T */
    int64_t n, seq_len;
    int64_t dropped, truncated;
    int64_t response_tokens; /* counted targets over all rows */
} adept_instruction_rows;

adept_status adept_instruction_rows_build(const adept_tokenizer *tok, const adept_instruction_set *set,
                                          int64_t seq_len, int32_t eos_id, adept_instruction_rows *out);
void adept_instruction_rows_free(adept_instruction_rows *r);

/* batch_size rows in item order starting at row `first`, wrapping around the rows (training loops). */
adept_status adept_instruction_batch_at(const adept_instruction_rows *r, int64_t first, int64_t batch_size,
                                        adept_tensor **inputs, adept_tensor **targets);
/* Batch k (0-based) of batch_size rows in item order, wrapping around the rows (probe sets: take(n)). */
adept_status adept_instruction_batch(const adept_instruction_rows *r, int64_t k, int64_t batch_size,
                                     adept_tensor **inputs, adept_tensor **targets);

#endif
