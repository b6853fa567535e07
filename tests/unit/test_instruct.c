/* Instruction items: each layout renders to the documented plain template, only the response is marked
   trained, and malformed items fail naming the file, the line and the field. */
#include <string.h>

#include <stdlib.h>

#include "adept/instruct.h"
#include "adept/tokenizer.h"
#include "check.h"

static adept_status parse_with(const char *json, adept_instr_template t, adept_instr_item *it) {
    return adept_instr_item_parse("items.jsonl", 7, json, strlen(json), t, "<|begin_of_text|>", it);
}
static adept_status parse(const char *json, adept_instr_item *it) { return parse_with(json, ADEPT_INSTR_PLAIN, it); }

/* Concatenates the segments with the given mark; -1 for all of them. */
static void joined(const adept_instr_item *it, int mark, char *buf, size_t cap) {
    buf[0] = 0;
    for (int i = 0; i < it->n; i++)
        if (mark < 0 || it->segs[i].trained == mark) strncat(buf, it->segs[i].text, cap - strlen(buf) - 1);
}

static void test_alpaca(void) {
    adept_instr_item it;
    char buf[512];
    CHECK_OK(parse("{\"instruction\":\"Add.\",\"input\":\"2 3\",\"output\":\"5\"}", &it));
    joined(&it, -1, buf, sizeof buf);
    CHECK(strcmp(buf, "### Instruction:\nAdd.\n\n### Input:\n2 3\n\n### Response:\n5") == 0);
    joined(&it, 1, buf, sizeof buf);
    CHECK(strcmp(buf, "5") == 0);
    CHECK(it.n == 2 && it.segs[0].trained == 0 && it.segs[1].trained == 1);
    adept_instr_item_free(&it);
    /* an empty or absent input leaves out the Input block */
    CHECK_OK(parse("{\"instruction\":\"Hi\",\"input\":\"\",\"output\":\"Hello\"}", &it));
    joined(&it, 0, buf, sizeof buf);
    CHECK(strcmp(buf, "### Instruction:\nHi\n\n### Response:\n") == 0);
    adept_instr_item_free(&it);
}

static void test_prompt_completion(void) {
    adept_instr_item it;
    char buf[256];
    CHECK_OK(parse("{\"prompt\":\"Q: 1+1?\\nA:\",\"completion\":\" 2\"}", &it));
    joined(&it, 0, buf, sizeof buf);
    CHECK(strcmp(buf, "Q: 1+1?\nA:") == 0);
    joined(&it, 1, buf, sizeof buf);
    CHECK(strcmp(buf, " 2") == 0);
    adept_instr_item_free(&it);
}

static void test_messages(void) {
    adept_instr_item it;
    char buf[512];
    CHECK_OK(parse("{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                   "{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
                   "{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"content\":\"d\"}]}", &it));
    joined(&it, -1, buf, sizeof buf);
    CHECK(strcmp(buf, "### System:\nBe brief.\n\n### Instruction:\na\n\n### Response:\nb\n\n### Instruction:\nc\n\n"
                      "### Response:\nd") == 0);
    joined(&it, 1, buf, sizeof buf);
    CHECK(strcmp(buf, "bd") == 0); /* both assistant turns train, nothing else */
    CHECK(it.n == 4);
    adept_instr_item_free(&it);
}

static void fails_with(const char *json, const char *needle) {
    adept_instr_item it;
    CHECK_FAILS(parse(json, &it), ADEPT_EFORMAT);
    const char *msg = adept_last_error();
    fprintf(stderr, "  (expected) %s\n", msg);
    CHECK(strncmp(msg, "items.jsonl:7: ", 15) == 0);
    CHECK(strstr(msg, needle) != NULL);
    CHECK(it.n == 0 && it.segs == NULL);
}

static void test_malformed(void) {
    fails_with("{\"instruction\":\"x\"", "not valid JSON");
    fails_with("[1,2]", "JSON object");
    fails_with("{\"text\":\"x\"}", "not an instruction item");
    fails_with("{\"instruction\":\"x\"}", "missing 'output'");
    fails_with("{\"instruction\":3,\"output\":\"y\"}", "'instruction' must be a string");
    fails_with("{\"instruction\":\"x\",\"output\":\"\"}", "'output' is empty");
    fails_with("{\"prompt\":\"x\"}", "missing 'completion'");
    fails_with("{\"messages\":{}}", "must be an array");
    fails_with("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}", "no non-empty assistant turn");
    fails_with("{\"messages\":[{\"role\":\"tool\",\"content\":\"a\"}]}", "messages[1]: role 'tool'");
    fails_with("{\"messages\":[{\"role\":\"user\"}]}", "messages[1] must be an object with string");
    fails_with("{\"messages\":[]}", "'messages' is empty");
}

/* The chat families (their parity with the real Jinja templates is tests/parity/test_chat_templates.py). */
static void test_chat_families(void) {
    adept_instr_item it;
    char buf[1024];
    const char *alpaca = "{\"instruction\":\"Add.\",\"input\":\"2 3\",\"output\":\"\\n5\"}";
    CHECK_OK(parse_with(alpaca, ADEPT_INSTR_QWEN3, &it));
    joined(&it, -1, buf, sizeof buf);
    CHECK(strcmp(buf, "<|im_start|>user\nAdd.\n\n2 3<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
                      "5<|im_end|>\n") == 0);
    joined(&it, 1, buf, sizeof buf);
    CHECK(strcmp(buf, "5<|im_end|>") == 0); /* the last turn's leading newlines are stripped, as the template does */
    adept_instr_item_free(&it);
    CHECK_OK(parse_with(alpaca, ADEPT_INSTR_LLAMA3, &it));
    joined(&it, -1, buf, sizeof buf);
    CHECK(strcmp(buf, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nAdd.\n\n2 3<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n5<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n") == 0);
    joined(&it, 1, buf, sizeof buf);
    CHECK(strcmp(buf, "5<|eot_id|>") == 0);
    adept_instr_item_free(&it);
    CHECK_FAILS(parse_with("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
                           "\"content\":\"<think>x</think>b\"}]}", ADEPT_INSTR_QWEN3, &it), ADEPT_EFORMAT);
    CHECK(strstr(adept_last_error(), "template = \"plain\"") != NULL);
}

static void test_detect(void) {
    adept_instr_template t = ADEPT_INSTR_PLAIN;
    CHECK_FAILS(adept_instr_template_detect("x/tokenizer_config.json", "{% for m in messages %}{{ m.content }}{% endfor %}",
                                            &t), ADEPT_EUNSUPPORTED);
    CHECK(strstr(adept_last_error(), "x/tokenizer_config.json") && strstr(adept_last_error(), "template = \"plain\""));
    CHECK_OK(adept_instr_template_detect("t", "{{ '<|start_header_id|>' + m['content'] | trim + '<|eot_id|>' }}"
                                              "<|end_header_id|>", &t));
    CHECK(t == ADEPT_INSTR_LLAMA3);
    CHECK_FAILS(adept_instr_template_detect("t", "<|start_header_id|><|end_header_id|><|eot_id|>| trim Cutting Knowledge",
                                            &t), ADEPT_EUNSUPPORTED);
}

/* Encoding into a row, on the real Qwen3 tokenizer (skipped without ../shared): targets are -1 exactly where
   the next token is prompt text or padding, the trained targets decode to the response and EOS, and an
   over-long item is cut at the end with the flag set. */
static void test_encode(void) {
    const char *shared = getenv("ADEPT_SHARED");
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizers/qwen3/tokenizer.json", shared ? shared : "../../shared");
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("skipping the encoding part: %s not found (set ADEPT_SHARED)\n", path);
        return;
    }
    fclose(f);
    adept_tokenizer *tok = NULL;
    CHECK_OK(adept_tokenizer_load(path, &tok));
    if (!tok) return;
    adept_instr_item it;
    CHECK_OK(parse("{\"instruction\":\"Add two and three.\",\"output\":\"The sum is five.\"}", &it));
    adept_ids prompt = {0}, resp = {0};
    CHECK_OK(adept_tokenizer_encode(tok, it.segs[0].text, strlen(it.segs[0].text), 0, 0, &prompt));
    CHECK_OK(adept_tokenizer_encode(tok, it.segs[1].text, strlen(it.segs[1].text), 0, 0, &resp));
    size_t np = prompt.n, nr = resp.n + 1; /* + EOS */
    enum { T = 64 };
    int32_t in[T], tg[T];
    int trunc = -1;
    size_t trained = 0;
    CHECK_OK(adept_instr_encode(tok, &it, 0, 1, T, 7, in, tg, &trunc, &trained));
    CHECK(trunc == 0 && trained == nr && np + nr <= T);
    int layout_ok = 1;
    for (size_t i = 0; i < T; i++) {
        int32_t want_in = i < np ? prompt.ids[i] : i < np + resp.n ? resp.ids[i - np]
                          : i == np + resp.n ? adept_tokenizer_eos_id(tok) : 7;
        int32_t want_tg = (i + 1 >= np && i + 1 < np + resp.n) ? resp.ids[i + 1 - np]
                          : i + 1 == np + resp.n ? adept_tokenizer_eos_id(tok) : -1;
        layout_ok &= in[i] == want_in && tg[i] == want_tg;
    }
    CHECK(layout_ok);
    /* cut: the row holds the prompt and part of the response */
    size_t short_len = np + 1;
    CHECK_OK(adept_instr_encode(tok, &it, 0, 1, short_len, 7, in, tg, &trunc, &trained));
    CHECK(trunc == 1 && trained == 2 && tg[np - 1] == resp.ids[0] && tg[np] == resp.ids[1]);
    /* the prompt alone fills the row: nothing to train on, reported through trained == 0 */
    CHECK_OK(adept_instr_encode(tok, &it, 0, 1, np - 2, 7, in, tg, &trunc, &trained));
    CHECK(trunc == 1 && trained == 0);
    adept_ids_free(&prompt);
    adept_ids_free(&resp);
    adept_instr_item_free(&it);
    adept_tokenizer_free(tok);
}

int main(void) {
    test_encode();
    test_chat_families();
    test_detect();
    test_alpaca();
    test_prompt_completion();
    test_messages();
    test_malformed();
    return check_summary();
}
