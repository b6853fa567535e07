/* Instruction items: each layout renders to the documented plain template, only the response is marked
   trained, and malformed items fail naming the file, the line and the field. */
#include <string.h>

#include "adept/instruct.h"
#include "check.h"

static adept_status parse(const char *json, adept_instr_item *it) {
    return adept_instr_item_parse("items.jsonl", 7, json, strlen(json), it);
}

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
    fails_with("{\"messages\":[{\"role\":\"user\"}]}", "messages[1] needs string");
}

int main(void) {
    test_alpaca();
    test_prompt_completion();
    test_messages();
    test_malformed();
    return check_summary();
}
