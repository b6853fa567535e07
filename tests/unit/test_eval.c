/* Unit tests of the evaluation kernels (log-likelihood of targets, token shift) on hand-computed values, and of
   the multiple-choice JSON Lines reader: every layout, answer forms, and file:line messages for bad items. */
#include <math.h>
#include <string.h>

#include "adept/eval.h"
#include "check.h"

static void test_target_logprobs(void) {
    /* row 0: logits (0, ln 3) -> p = (1/4, 3/4); row 1 ignored; row 2 (5, 5) ties -> argmax id 0 */
    float logits[6] = {0.0f, (float)log(3.0), 9, 9, 5, 5};
    int32_t targets[3] = {1, -1, 1};
    double logp[3];
    uint8_t greedy[3];
    CHECK_OK(adept_eval_target_logprobs(logits, 3, 2, targets, logp, greedy));
    /* ln 3 stored in f32 is off by <= half an ulp in [1, 2), 2^-24 = 6e-8, which moves log p1 by (1 - p1) of it */
    CHECK(fabs(logp[0] - log(0.75)) < 1e-7);
    CHECK(greedy[0] == 1);
    CHECK(logp[1] == 0 && greedy[1] == 1);
    CHECK(fabs(logp[2] - log(0.5)) < 1e-12);
    CHECK(greedy[2] == 0);
    targets[2] = 2;
    CHECK_FAILS(adept_eval_target_logprobs(logits, 3, 2, targets, logp, greedy), ADEPT_EINVAL);
    targets[2] = 0;
    logits[5] = INFINITY;
    CHECK_FAILS(adept_eval_target_logprobs(logits, 3, 2, targets, logp, NULL), ADEPT_ENONFINITE);
    CHECK(strstr(adept_last_error(), "row 2") != NULL);
}

static void test_token_shift(void) {
    float base[8] = {(float)log(0.5), (float)log(0.25), (float)log(0.25), 0, 3, 2, 1, 0};
    float tuned[8] = {(float)log(0.25), (float)log(0.5), (float)log(0.25), 0, 0, 1, 2, 3};
    adept_token_shift acc = {0};
    CHECK_OK(adept_eval_token_shift(base, tuned, 2, 4, NULL, &acc));
    /* 4-wide rows: row 0's top-1 is id 3 (logit 0) in both models; row 1 base (3,2,1,0) vs tuned (0,1,2,3):
       the tuned top-1 (id 3) ranks 4th under base -> shifted */
    CHECK(acc.positions == 2 && acc.changed == 1 && acc.shifted == 1 && acc.marginal == 0);
    CHECK(acc.kl_sum > 0);
    /* 3-wide rows: p = (1/2, 1/4, 1/4), q = (1/4, 1/2, 1/4): KL(p||q) = ln2/2 - ln2/4 = ln2/4; q's top-1 ranks
       2nd under p -> marginal */
    adept_token_shift a3 = {0};
    float b3[6] = {(float)log(0.5), (float)log(0.25), (float)log(0.25), 3, 2, 1};
    float t3[6] = {(float)log(0.25), (float)log(0.5), (float)log(0.25), 3, 2, 1};
    CHECK_OK(adept_eval_token_shift(b3, t3, 2, 3, NULL, &a3));
    CHECK(a3.positions == 2 && a3.changed == 1 && a3.marginal == 1 && a3.shifted == 0);
    /* each f32 log below 2 in magnitude is off by <= 2^-24 and moves both rows' log-softmax by as much: the
       p-weighted differences log p - log q stay within 2 * 2 * 2^-24 */
    CHECK(fabs(a3.kl_sum - log(2.0) / 4) <= 4 * 0x1p-24);
    int32_t mask[2] = {-1, 5};
    adept_token_shift am = {0};
    CHECK_OK(adept_eval_token_shift(base, tuned, 2, 4, mask, &am));
    CHECK(am.positions == 1 && am.shifted == 1);
    /* identical rows: exactly zero */
    adept_token_shift z = {0};
    CHECK_OK(adept_eval_token_shift(base, base, 2, 4, NULL, &z));
    CHECK(z.kl_sum == 0 && z.changed == 0 && z.positions == 2);
    base[1] = NAN;
    CHECK_FAILS(adept_eval_token_shift(base, tuned, 2, 4, NULL, &acc), ADEPT_ENONFINITE);
}

static adept_status parse(const char *text, adept_choice_set *s) {
    return adept_choice_items_parse("t.jsonl", text, strlen(text), 0, s);
}

static void test_layouts(void) {
    const char *text =
        "{\"question\": \"q1\", \"choices\": [\"a\", \"b\", \"c\"], \"answer\": 2}\n"
        "\n"
        "{\"question\": \"q2\", \"A\": \"w\", \"B\": \"x\", \"C\": \"y\", \"answer\": \"B\"}\r\n"
        "{\"question\": \"q3\", \"options\": {\"A\": \"o1\", \"B\": \"o2\"}, \"answer_idx\": \"A\", \"answer\": \"o1\"}\n"
        "{\"question\": {\"stem\": \"q4\", \"choices\": [{\"text\": \"t1\", \"label\": \"1\"}, {\"text\": \"t2\", "
        "\"label\": \"2\"}]}, \"answerKey\": \"2\"}\n"
        "{\"question\": \"q5\", \"choices\": [\"yes\", \"no\"], \"answer\": \"no\"}";
    adept_choice_set s;
    CHECK_OK(parse(text, &s));
    CHECK(s.n == 5);
    if (s.n == 5) {
        CHECK(!strcmp(s.items[0].question, "q1") && s.items[0].n_choices == 3 && s.items[0].answer == 2);
        CHECK(s.items[1].line == 3 && s.items[1].n_choices == 3 && s.items[1].answer == 1);
        CHECK(!strcmp(s.items[1].choices[2], "y"));
        CHECK(s.items[2].answer == 0 && !strcmp(s.items[2].choices[1], "o2"));
        CHECK(!strcmp(s.items[3].question, "q4") && s.items[3].answer == 1 && !strcmp(s.items[3].choices[0], "t1"));
        CHECK(s.items[4].answer == 1 && s.items[4].line == 6);
    }
    adept_choice_set_free(&s);
    adept_choice_set lim;
    CHECK_OK(adept_choice_items_parse("t.jsonl", text, strlen(text), 2, &lim));
    CHECK(lim.n == 2);
    adept_choice_set_free(&lim);
}

static void expect_error(const char *text, const char *needle) {
    adept_choice_set s;
    CHECK_FAILS(parse(text, &s), ADEPT_EFORMAT);
    CHECK(s.n == 0 && s.items == NULL);
    if (!strstr(adept_last_error(), needle)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", adept_last_error(), needle);
        CHECK(0);
    }
}

static void test_errors(void) {
    expect_error("{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n{\"question\"", "t.jsonl:2: invalid JSON");
    expect_error("{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 1.5}", "t.jsonl:1: 'answer' 1.5 is not");
    expect_error("{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": -1}", "not a 0-based index");
    expect_error("{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": true}", "must be an integer index");
    expect_error("{\"question\": \"q\", \"options\": 3, \"answer\": 0}", "'options' must be an array or an object");
    expect_error("{\"question\": 7, \"choices\": [\"a\", \"b\"], \"answer\": 0}", "'question' must be a string");
    expect_error("{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\"]}, \"answer\": 0}",
                 "as long as");
    expect_error("\n\n\"just a string\"", "t.jsonl:3: an item must be a JSON object");
    adept_choice_set s;
    CHECK_FAILS(adept_choice_items_read("/nonexistent/x.jsonl", 0, &s), ADEPT_ENOTFOUND);
    CHECK(strstr(adept_last_error(), "/nonexistent/x.jsonl") != NULL);
    CHECK_OK(adept_choice_items_parse("t", "", 0, 0, &s));
    CHECK(s.n == 0);
}

int main(void) {
    test_target_logprobs();
    test_token_shift();
    test_layouts();
    test_errors();
    return check_summary();
}
