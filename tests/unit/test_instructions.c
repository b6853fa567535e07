/* Instruction items: parsing and the plain template, errors naming file and line, tokenized rows with targets
   only on the response (+ EOS), the drop/truncate policy, padding, wrapping batches. */
#include <stdlib.h>
#include <string.h>

#include "adept/instructions.h"
#include "adept/dataset.h"
#include "check.h"
#include "data/corpus_internal.h"
#include "corpus_fixtures.h"

static void test_parse(void) {
    const char *text =
        "{\"instruction\": \"Add.\", \"input\": \"2 3\", \"output\": \"5\"}\n"
        "\n"
        "{\"instruction\": \"Greet.\", \"input\": \"\", \"output\": \"Hi\"}\n"
        "{\"instruction\": \"Greet.\", \"output\": \"Hi\"}\n"
        "{\"prompt\": \"Q: x?\\nA:\", \"completion\": \" y\"}\n";
    adept_instruction_set s;
    CHECK_OK(adept_instruction_items_parse("t.jsonl", text, strlen(text), 0, &s));
    CHECK(s.n == 4);
    if (s.n != 4) return;
    CHECK(!strcmp(s.items[0].prompt, "### Instruction:\nAdd.\n\n### Input:\n2 3\n\n### Response:\n"));
    CHECK(!strcmp(s.items[0].response, "5") && s.items[0].line == 1);
    CHECK(!strcmp(s.items[1].prompt, "### Instruction:\nGreet.\n\n### Response:\n") && s.items[1].line == 3);
    CHECK(!strcmp(s.items[2].prompt, s.items[1].prompt) && !strcmp(s.items[2].response, "Hi"));
    CHECK(!strcmp(s.items[3].prompt, "Q: x?\nA:") && !strcmp(s.items[3].response, " y") && s.items[3].line == 5);
    adept_instruction_set_free(&s);
    CHECK_OK(adept_instruction_items_parse("t.jsonl", text, strlen(text), 2, &s));
    CHECK(s.n == 2);
    adept_instruction_set_free(&s);
}

/* Each malformed item fails naming the file, the line and what is wrong. */
static void test_errors(void) {
    static const struct { const char *text, *want; } cases[] = {
        {"{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\",", "bad.jsonl:2: invalid JSON"},
        {"{\"instruction\": \"a\"}", "bad.jsonl:1: missing 'output'"},
        {"{\"output\": \"a\"}", "bad.jsonl:1: missing 'instruction'"},
        {"{\"prompt\": \"a\"}", "bad.jsonl:1: missing 'completion'"},
        {"{\"instruction\": \"a\", \"output\": \"b\", \"prompt\": \"c\"}", "bad.jsonl:1: an item is either"},
        {"{\"instruction\": \"a\", \"output\": 5}", "bad.jsonl:1: 'output' must be a string"},
        {"{\"instruction\": \"a\", \"output\": \"\"}", "bad.jsonl:1: the response ('output') is empty"},
        {"{\"text\": \"a\"}", "bad.jsonl:1: not an instruction item"},
        {"[1, 2]", "bad.jsonl:1: an item must be a JSON object"},
        {"{\"messages\": []}", "bad.jsonl:1: chat 'messages' items need a chat template"},
        {"{\"prompt\": \"a\", \"completion\": \"b\"} x", "bad.jsonl:1: text after the JSON value"},
        {"{\"prompt\": \"a\", \"prompt\": \"b\", \"completion\": \"c\"}", "bad.jsonl:1"},
        {"\n  \n", "bad.jsonl: no instruction items"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        adept_instruction_set s = {(void *)1, 7};
        CHECK_FAILS(adept_instruction_items_parse("bad.jsonl", cases[i].text, strlen(cases[i].text), 0, &s),
                    ADEPT_EFORMAT);
        CHECK(s.items == NULL && s.n == 0);
        if (!strstr(adept_last_error(), cases[i].want))
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, adept_last_error(), cases[i].want);
        CHECK(strstr(adept_last_error(), cases[i].want) != NULL);
    }
}

/* The byte tokenizer maps byte c to id c + 3 and has BOS 1, EOS 2, so every expected id is written out here. */
static void test_rows(adept_tokenizer *tok) {
    adept_ids probe = {0};
    CHECK_OK(adept_tokenizer_encode(tok, "AB", 2, -1, 0, &probe));
    CHECK(probe.n == 3 && probe.ids[0] == 1 && probe.ids[1] == 'A' + 3 && probe.ids[2] == 'B' + 3);
    adept_ids_free(&probe);
    CHECK(adept_tokenizer_eos_id(tok) == 2);

    const char *text = "{\"prompt\": \"ab\", \"completion\": \"xyz\"}\n"   /* 3 + 3 + EOS = 7 tokens */
                       "{\"prompt\": \"abcdefgh\", \"completion\": \"q\"}\n" /* prompt 9 tokens > T = 8: dropped */
                       "{\"prompt\": \"abcde\", \"completion\": \"uvwxyz\"}\n"; /* 6 + 6 + 1 = 13 > T + 1: cut */
    adept_instruction_set s;
    CHECK_OK(adept_instruction_items_parse("r.jsonl", text, strlen(text), 0, &s));
    adept_instruction_rows r;
    CHECK_OK(adept_instruction_rows_build(tok, &s, 8, -1, &r));
    adept_instruction_set_free(&s);
    CHECK(r.n == 2 && r.dropped == 1 && r.truncated == 1 && r.seq_len == 8);
    if (r.n != 2) return;
#define B(c) ((c) + 3)
    /* row 0: [BOS a b x y z EOS], T = 8: inputs padded with EOS, targets only x y z EOS */
    const int32_t x0[8] = {1, B('a'), B('b'), B('x'), B('y'), B('z'), 2, 2};
    const int32_t y0[8] = {-1, -1, B('x'), B('y'), B('z'), 2, -1, -1};
    /* row 2: [BOS a b c d e u v w] kept (T + 1 = 9 tokens): targets u v w only, the rest of the response is cut */
    const int32_t x1[8] = {1, B('a'), B('b'), B('c'), B('d'), B('e'), B('u'), B('v')};
    const int32_t y1[8] = {-1, -1, -1, -1, -1, B('u'), B('v'), B('w')};
    CHECK(!memcmp(r.inputs, x0, sizeof x0) && !memcmp(r.targets, y0, sizeof y0));
    CHECK(!memcmp(r.inputs + 8, x1, sizeof x1) && !memcmp(r.targets + 8, y1, sizeof y1));
    CHECK(r.response_tokens == 4 + 3);

    /* batches wrap around the rows in item order */
    adept_tensor *x, *y;
    CHECK_OK(adept_instruction_batch(&r, 1, 3, &x, &y)); /* rows 3, 4, 5 -> 1, 0, 1 */
    if (x && y) {
        CHECK(adept_tensor_i32(x)[0] == x1[0] && !memcmp(adept_tensor_i32(y), y1, sizeof y1));
        CHECK(!memcmp(adept_tensor_i32(y) + 8, y0, sizeof y0) && !memcmp(adept_tensor_i32(x) + 16, x1, sizeof x1));
    }
    adept_tensor_free(x), adept_tensor_free(y);
    CHECK_FAILS(adept_instruction_batch(&r, -1, 3, &x, &y), ADEPT_EINVAL);
    adept_instruction_rows_free(&r);
#undef B

    /* every item dropped: an error saying why */
    const char *long_prompts = "{\"prompt\": \"abcdefghij\", \"completion\": \"q\"}\n";
    CHECK_OK(adept_instruction_items_parse("d.jsonl", long_prompts, strlen(long_prompts), 0, &s));
    CHECK_FAILS(adept_instruction_rows_build(tok, &s, 4, -1, &r), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "all 1 items were dropped") != NULL);
    adept_instruction_set_free(&s);
}

/* Chat items: rendered with the template, targets on the assistant turn only; detection refuses unknown templates. */
static void test_chat(adept_tokenizer *tok) {
    static const char LLAMA3[] =
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
        "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
        "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant"
        "<|end_header_id|>\n\n' }}";
    adept_chat_template t;
    CHECK_FAILS(adept_chat_template_detect("cfg.json", "{{ messages }}", NULL, &t), ADEPT_EUNSUPPORTED);
    CHECK(strstr(adept_last_error(), "cfg.json: chat template not recognised") && strstr(adept_last_error(), "\"plain\""));
    CHECK_OK(adept_chat_template_detect("cfg.json", LLAMA3, "", &t));
    CHECK(t.family == ADEPT_CHAT_LLAMA3);
    const char *text = "{\"messages\": [{\"role\": \"user\", \"content\": \" Hi \"}, "
                       "{\"role\": \"assistant\", \"content\": \"Yo\"}]}\n";
    adept_instruction_set s;
    CHECK_OK(adept_instruction_items_parse_chat("c.jsonl", text, strlen(text), 0, &t, &s));
    if (s.n != 1) return;
    const char *prompt = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant"
                         "<|end_header_id|>\n\n";
    const char *learn = "Yo<|eot_id|>";
    char *joined = adept_chat_render_join(&s.items[0].chat);
    CHECK(joined && !strncmp(joined, prompt, strlen(prompt)) && !strncmp(joined + strlen(prompt), learn, strlen(learn)));
    free(joined);
    adept_instruction_rows r;
    CHECK_OK(adept_instruction_rows_build(tok, &s, 128, -1, &r));
    adept_instruction_set_free(&s);
    if (r.n != 1) return;
    /* byte tokens, no BOS: the last prompt byte predicts 'Y'; the assistant turn's bytes are the only targets */
    int64_t P = (int64_t)strlen(prompt), L = (int64_t)strlen(learn);
    CHECK(r.response_tokens == L);
    int ok = 1;
    for (int64_t k = 0; k < 128; k++) {
        int32_t want = k >= P - 1 && k < P - 1 + L ? (int32_t)(unsigned char)learn[k - (P - 1)] + 3 : -1;
        ok &= r.targets[k] == want;
    }
    CHECK(ok);
    adept_instruction_rows_free(&r);

    static const struct { const char *text, *want; } bad[] = {
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}", "c.jsonl:1: no assistant message"},
        {"{\"messages\": [{\"role\": \"user\"}]}", "c.jsonl:1: message 1 must be"},
        {"{\"messages\": []}", "c.jsonl:1: 'messages' must be a non-empty array"},
        {"{\"messages\": [{\"role\": \"tool\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}",
         "c.jsonl:1: message 1: role \"tool\" is not supported"},
        {"{\"messages\": [{\"role\": \"assistant\", \"content\": \"b\"}], \"x\": 1}", "c.jsonl:1: a chat item holds only"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_FAILS(adept_instruction_items_parse_chat("c.jsonl", bad[i].text, strlen(bad[i].text), 0, &t, &s),
                    ADEPT_EFORMAT);
        if (!strstr(adept_last_error(), bad[i].want)) fprintf(stderr, "chat case %zu: %s\n", i, adept_last_error());
        CHECK(strstr(adept_last_error(), bad[i].want) != NULL);
    }
}

int main(void) {
    fx_tmpdir();
    test_parse();
    test_errors();
    adept_tokenizer *tok = NULL;
    CHECK_OK(adept_tokenizer_load(fx_byte_tokenizer(), &tok));
    if (tok) test_rows(tok), test_chat(tok);
    adept_tokenizer_free(tok);
    fx_rm_rf(fx_dir);
    return check_summary();
}
