/* Hostile inputs refused by the engine (issue 16): JSON with repeated keys in every reader, duplicate token ids,
   numbers beyond the C integer they become, special files (FIFOs, devices) given as inputs, corpora that would
   never end or grow without bound, an ambiguous model directory, and the messages that must say what is wrong.
   Every probe that could block runs under alarm(): a hang fails the test instead of stalling it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adept/dataset.h"
#include "adept/eval.h"
#include "adept/hf_config.h"
#include "adept/input.h"
#include "adept/json.h"
#include "adept/llama2c.h"
#include "adept/model.h"
#include "adept/safetensors.h"
#include "adept/tokenizer.h"
#include "check.h"
#include "data/corpus_internal.h"

static char root[256];

static const char *sub(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", root, name);
    return b;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, strlen(text), f) != strlen(text)) { perror(path); exit(2); }
    fclose(f);
}

static int has(const char *needle) {
    if (strstr(adept_last_error(), needle)) return 1;
    fprintf(stderr, "  message was: %s\n  expected it to contain: %s\n", adept_last_error(), needle);
    return 0;
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_integrity: still running after 120 s: a probe blocked (a FIFO or device was read?)\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
    _exit(3);
}

static const char *CONFIG =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 37, \"hidden_size\": 16, \"intermediate_size\": 24,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2%s}";

static void test_json_helpers(void) {
    cJSON *j;
    const char *t1 = "{\"a\": 1, \"b\": {\"c\": 2, \"c\": 3}}", *t2 = "[{\"k\": 1}, {\"k\": 1, \"k\": 1}]";
    CHECK_FAILS(adept_json_parse(t1, strlen(t1), "x.json", &j), ADEPT_EFORMAT);
    CHECK(has("x.json: duplicate key \"c\" in b"));
    CHECK_FAILS(adept_json_parse(t2, strlen(t2), "y.json", &j), ADEPT_EFORMAT);
    CHECK(has("duplicate key \"k\" in [1]"));
    /* a large object takes the sorted path: the repeat is found among 100 keys */
    char big[4096];
    int n = snprintf(big, sizeof big, "{");
    for (int i = 0; i < 100; i++) n += snprintf(big + n, sizeof big - (size_t)n, "\"t%d\": %d, ", i, i);
    snprintf(big + n, sizeof big - (size_t)n, "\"t57\": 0}");
    CHECK_FAILS(adept_json_parse(big, strlen(big), "vocab", &j), ADEPT_EFORMAT);
    CHECK(has("duplicate key \"t57\" in the top-level object"));
    big[n - 2] = '}', big[n - 1] = 0; /* the same without the repeat */
    CHECK_OK(adept_json_parse(big, strlen(big), "vocab", &j));
    cJSON_Delete(j);
    CHECK_FAILS(adept_json_parse("{} x", 4, "z.json", &j), ADEPT_EFORMAT);
    CHECK(has("unexpected data after the JSON value at byte 4"));

    int64_t v = 7;
    CHECK(!adept_double_to_int(1.88889e17, 0, INT32_MAX, &v) && v == 7);
    CHECK(!adept_double_to_int(0.0 / 0.0, -10, 10, &v));
    CHECK(!adept_double_to_int(1.0 / 0.0, -10, 10, &v));
    CHECK(!adept_double_to_int(2.5, -10, 10, &v));
    CHECK(!adept_double_to_int(-11, -10, 10, &v));
    CHECK(adept_double_to_int(-10, -10, 10, &v) && v == -10);
    CHECK(adept_double_to_int(2147483647.0, 0, INT32_MAX, &v) && v == INT32_MAX);
    CHECK(!adept_double_to_int(2147483648.0, 0, INT32_MAX, &v));
}

static void test_config_json(void) {
    char text[1024];
    adept_config c;
    /* issue 16 item 9: Python's json keeps the last of two keys, cJSON the first: refused */
    snprintf(text, sizeof text, CONFIG, ", \"num_hidden_layers\": 3");
    CHECK_FAILS(adept_hf_config_parse(text, strlen(text), "config.json", &c), ADEPT_EFORMAT);
    CHECK(has("config.json: duplicate key \"num_hidden_layers\" in the top-level object"));
    snprintf(text, sizeof text, CONFIG, ", \"rope_scaling\": {\"rope_type\": \"default\", \"rope_type\": \"linear\"}");
    CHECK_FAILS(adept_hf_config_parse(text, strlen(text), "config.json", &c), ADEPT_EFORMAT);
    CHECK(has("duplicate key \"rope_type\" in rope_scaling"));
    /* the layer limit is stated */
    snprintf(text, sizeof text, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 37, \"hidden_size\": 16,"
             " \"intermediate_size\": 24, \"num_hidden_layers\": 1000000000, \"num_attention_heads\": 4}");
    CHECK_FAILS(adept_hf_config_parse(text, strlen(text), "config.json", &c), ADEPT_EFORMAT);
    CHECK(has("num_hidden_layers must be a positive integer of at most 4096"));
    snprintf(text, sizeof text, CONFIG, ", \"eos_token_id\": [1e300]");
    CHECK_FAILS(adept_hf_config_parse(text, strlen(text), "config.json", &c), ADEPT_EFORMAT);
    CHECK(has("eos_token_id"));
    snprintf(text, sizeof text, CONFIG, "");
    CHECK_OK(adept_hf_config_parse(text, strlen(text), "config.json", &c));
    adept_hf_config_clear(&c);
}

static const char *TOK_HEAD = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2%s}, "
                              "\"merges\": [\"a b\"]}, \"added_tokens\": [%s]%s}";

static adept_status tok_from(const char *vocab_extra, const char *added, const char *tail, adept_tokenizer **t) {
    char text[2048];
    snprintf(text, sizeof text, TOK_HEAD, vocab_extra, added, tail);
    return adept_tokenizer_load_memory("tok.json", text, strlen(text), t);
}

static void test_tokenizer_json(void) {
    adept_tokenizer *t = NULL;
    CHECK_OK(tok_from("", "{\"id\": 3, \"content\": \"<s>\", \"special\": true}", "", &t));
    adept_tokenizer_free(t);
    /* issue 16 item 10: two added tokens on one id */
    CHECK_FAILS(tok_from("", "{\"id\": 3, \"content\": \"<|endoftext|>\", \"special\": true}, "
                             "{\"id\": 3, \"content\": \"<|pad|>\", \"special\": true}", "", &t), ADEPT_EFORMAT);
    CHECK(has("added_tokens: \"<|endoftext|>\" and \"<|pad|>\" share the id 3"));
    CHECK_FAILS(tok_from("", "{\"id\": 3, \"content\": \"<s>\"}, {\"id\": 4, \"content\": \"<s>\"}", "", &t),
                ADEPT_EFORMAT);
    CHECK(has("\"<s>\" is given twice, with ids 3 and 4"));
    /* two vocabulary entries on one id */
    CHECK_FAILS(tok_from(", \"ba\": 2", "", "", &t), ADEPT_EFORMAT);
    CHECK(has("model.vocab: \"ab\" and \"ba\" share the id 2"));
    /* a repeated vocabulary key */
    CHECK_FAILS(tok_from(", \"a\": 3", "", "", &t), ADEPT_EFORMAT);
    CHECK(has("tok.json: duplicate key \"a\" in model.vocab"));
    /* an added token may repeat its vocabulary entry: Llama's <s> is in both */
    CHECK_OK(tok_from(", \"<s>\": 3", "{\"id\": 3, \"content\": \"<s>\", \"special\": true}", "", &t));
    adept_tokenizer_free(t);
    /* issue 16 item 14: ids beyond int32 in a RobertaProcessing are refused before any conversion (UBSan) */
    CHECK_FAILS(tok_from("", "", ", \"post_processor\": {\"type\": \"RobertaProcessing\", \"sep\": [\"b\", "
                         "188888888888888888], \"cls\": [\"a\", 0]}", &t), ADEPT_EFORMAT);
    CHECK(has("cls/sep ids must be integers in [0, 3)"));
    CHECK_FAILS(tok_from("", "", ", \"post_processor\": {\"type\": \"RobertaProcessing\", \"sep\": [\"b\", 1], "
                         "\"cls\": [\"a\", -1e300]}", &t), ADEPT_EFORMAT);
    CHECK_FAILS(tok_from("", "", ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
                         "[{\"SpecialToken\": {\"id\": \"a\"}}, {\"Sequence\": {}}], \"special_tokens\": {\"a\": "
                         "{\"ids\": [4294967296]}}}", &t), ADEPT_EFORMAT);
    CHECK(has("special token a: ids must be"));
    CHECK_FAILS(tok_from("", "", ", \"decoder\": {\"type\": \"Strip\", \"content\": \" \", \"start\": 1e200}", &t),
                ADEPT_EFORMAT);
    CHECK(has("Strip decoder \"start\""));
    CHECK_FAILS(tok_from("", "{\"id\": 1e10, \"content\": \"x\"}", "", &t), ADEPT_EFORMAT);
}

static void test_llama2c_tokenizer_truncated(void) {
    /* max_token_length 4, then (score, length, bytes) entries; the last one is cut */
    unsigned char buf[64];
    size_t n = 0;
    int32_t maxlen = 4;
    memcpy(buf, &maxlen, 4), n = 4;
    const char *toks[] = {"a", "bc", "def"};
    for (int i = 0; i < 3; i++) {
        float score = -(float)i;
        int32_t len = (int32_t)strlen(toks[i]);
        memcpy(buf + n, &score, 4), memcpy(buf + n + 4, &len, 4), memcpy(buf + n + 8, toks[i], (size_t)len);
        n += 8 + (size_t)len;
    }
    adept_tokenizer *t;
    CHECK_OK(adept_tokenizer_load_memory("tok.bin", buf, n, &t));
    adept_tokenizer_free(t);
    CHECK_FAILS(adept_tokenizer_load_memory("tok.bin", buf, n - 2, &t), ADEPT_EFORMAT);
    CHECK(has("tok.bin: truncated: token 2 at offset 23 declares 3 bytes at offset 31, but the file ends at 32"));
    CHECK_FAILS(adept_tokenizer_load_memory("tok.bin", buf, n - 6, &t), ADEPT_EFORMAT);
    CHECK(has("truncated: token 2 at offset 23 needs an 8-byte score and length"));
    /* not a tokenizer: probed as a llama2.c checkpoint header whose vocab_size is INT32_MIN (negating it in
       32 bits was undefined behaviour; UBSan in make test-asan) */
    int32_t h[9] = {1, 0, 0, 0, 0, INT32_MIN, -5, 0, 0};
    FILE *f = fopen(sub("m.bin"), "wb");
    fwrite(h, sizeof h, 1, f);
    fclose(f);
    CHECK(adept_tokenizer_load(sub("m.bin"), &t) == ADEPT_EFORMAT);
}

static void test_special_files(void) {
    const char *fifo = sub("fifo");
    CHECK(mkfifo(fifo, 0600) == 0);
    int fd;
    CHECK_FAILS(adept_input_open(fifo, "config.json", &fd, NULL), ADEPT_EIO);
    CHECK(has("config.json: ") && has("/fifo is a FIFO, not a regular file"));
    CHECK_FAILS(adept_input_open("/dev/null", "x", &fd, NULL), ADEPT_EIO);
    CHECK(has("/dev/null is a character device"));
    CHECK_FAILS(adept_input_open(root, "x", &fd, NULL), ADEPT_EIO);
    CHECK(has("is a directory"));
    CHECK_FAILS(adept_input_open(sub("missing"), "x", &fd, NULL), ADEPT_ENOTFOUND);

    /* issue 16 item 12: every reader refuses a FIFO at once (alarm() turns a block into a failure) */
    adept_config c;
    CHECK_FAILS(adept_hf_config_read(fifo, &c), ADEPT_EIO);
    adept_safetensors *st;
    CHECK_FAILS(adept_safetensors_open(fifo, &st), ADEPT_EIO);
    CHECK(has("is a FIFO"));
    adept_tokenizer *tok;
    CHECK_FAILS(adept_tokenizer_load(fifo, &tok), ADEPT_EIO);
    adept_model *m;
    CHECK_FAILS(adept_model_load(fifo, &m), ADEPT_EINVAL);
    CHECK(has("is a FIFO"));
    adept_choice_set items;
    CHECK_FAILS(adept_choice_items_read(fifo, 0, &items), ADEPT_EIO);
    CHECK_FAILS(adept_llama2c_load(fifo, &m), ADEPT_EIO);

    /* model directories whose files are FIFOs */
    const char *dir = sub("fifo_model");
    char path[600], text[1024];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK_FAILS(adept_model_load(dir, &m), ADEPT_EIO);
    CHECK(has("config.json: ") && has("is a FIFO"));
    unlink(path);
    snprintf(text, sizeof text, CONFIG, "");
    write_file(path, text);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK_FAILS(adept_model_load(dir, &m), ADEPT_EIO);
    CHECK(has("model.safetensors is a FIFO"));
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK_FAILS(adept_model_load(dir, &m), ADEPT_EIO);
    CHECK(has("model.safetensors.index.json is a FIFO"));
    unlink(path);
    write_file(path, "{\"weight_map\": {\"model.norm.weight\": \"shard.safetensors\"}}");
    snprintf(path, sizeof path, "%s/shard.safetensors", dir);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK_FAILS(adept_model_load(dir, &m), ADEPT_EIO);
    CHECK(has("shard.safetensors is a FIFO"));
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_file(path, "{\"weight_map\": {\"a\": \"s.safetensors\", \"a\": \"t.safetensors\"}}");
    CHECK_FAILS(adept_model_load(dir, &m), ADEPT_EFORMAT);
    CHECK(has("model.safetensors.index.json: duplicate key \"a\" in weight_map"));
    /* a FIFO named like a llama2.c checkpoint beside no config.json is not probed (the probe would block) */
    const char *l2 = sub("l2c");
    mkdir(l2, 0755);
    snprintf(path, sizeof path, "%s/model.bin", l2);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK(adept_model_load(l2, &m) != ADEPT_OK);
    /* tokenizer_config.json beside a tokenizer.json */
    const char *td = sub("tokdir");
    mkdir(td, 0755);
    snprintf(path, sizeof path, "%s/tokenizer.json", td);
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    snprintf(path, sizeof path, "%s/tokenizer_config.json", td);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK_FAILS(adept_tokenizer_load(td, &tok), ADEPT_EIO);
    CHECK(has("tokenizer_config.json is a FIFO"));
    unlink(path);
    write_file(path, "{\"eos_token\": \"a\", \"eos_token\": \"b\"}");
    CHECK_FAILS(adept_tokenizer_load(td, &tok), ADEPT_EFORMAT);
    CHECK(has("duplicate key \"eos_token\""));
}

static int64_t docs_seen;
static adept_status count_doc(void *ctx, const adept_doc *d) {
    (void)ctx, (void)d;
    docs_seen++;
    return ADEPT_OK;
}

static long max_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

static void test_corpora(void) {
    /* FIFOs and devices as corpus paths: refused by name, never read (issue 16 items 12, 13) */
    adept_dataset_options o;
    adept_dataset_options_init(&o);
    const char *fifo = sub("fifo");
    const char *paths[1] = {fifo};
    o.paths = paths, o.npaths = 1, o.format = ADEPT_FORMAT_TOKENS, o.cache_dir = sub("cache"), o.seq_len = 4;
    adept_dataset *ds;
    CHECK_FAILS(adept_dataset_open(&o, &ds), ADEPT_EINVAL);
    CHECK(has("is a FIFO, not a regular file or directory"));
    paths[0] = "/dev/zero";
    o.max_bytes = 1000000;
    CHECK_FAILS(adept_dataset_open(&o, &ds), ADEPT_EINVAL);
    CHECK(has("/dev/zero is a character device"));
    adept_read_opts ro = {ADEPT_FORMAT_TEXT, "text", ADEPT_DOC_LINE, 0, -1, 0, 0, 0};
    adept_read_counts counts;
    memset(&counts, 0, sizeof counts);
    CHECK_FAILS(adept_corpus_read_file(fifo, &ro, count_doc, NULL, &counts), ADEPT_EIO);
    CHECK(has("dataset: ") && has("is a FIFO"));

    /* JSON Lines: a repeated key is a bad record naming file and line (skippable like the others) */
    const char *jl = sub("dup.jsonl");
    write_file(jl, "{\"text\": \"one\"}\n{\"text\": \"two\", \"text\": \"three\"}\n");
    ro.format = ADEPT_FORMAT_JSONL;
    CHECK_FAILS(adept_corpus_read_file(jl, &ro, count_doc, NULL, &counts), ADEPT_EFORMAT);
    CHECK(has("dup.jsonl: line 2: duplicate key \"text\" in the top-level object"));
    ro.skip_errors = 1;
    docs_seen = 0;
    memset(&counts, 0, sizeof counts);
    CHECK_OK(adept_corpus_read_file(jl, &ro, count_doc, NULL, &counts));
    CHECK(docs_seen == 1 && counts.skipped == 1);

    /* The document cap holds while decompressing: 200 MB of zeros without a newline (a 200 KB gzip) stops at
       the 64 MiB cap. Bound: the line buffer stops at 64 MiB + 1, plus 1 MiB chunks and libarchive's window;
       300 MiB above the starting RSS leaves room for ASan's shadow (1/8) and allocator slack, and fails the
       old behaviour (the line grew to 200 MB, its buffer to 256 MiB and was handed on whole). */
    const char *gz = sub("zeros.txt.gz");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "head -c 200000000 /dev/zero | gzip -1 > '%s'", gz);
    if (system(cmd) == 0) {
        long before = max_rss_mb();
        ro.format = ADEPT_FORMAT_TEXT, ro.skip_errors = 0;
        memset(&counts, 0, sizeof counts);
        CHECK_FAILS(adept_corpus_read_file(gz, &ro, count_doc, NULL, &counts), ADEPT_EUNSUPPORTED);
        CHECK(has("a document or line longer than 67108864 bytes"));
        long grew = max_rss_mb() - before;
        CHECK(grew < 300);
        printf("gzip of zeros: max RSS grew by %ld MiB\n", grew);
    }

    /* The cache key of a limited read covers the documents read, no more: bytes past the limit can change
       without a rebuild, bytes within it cannot. Token shards (16-bit) need no tokenizer. */
    const char *shard = sub("a.bin");
    uint16_t ids[4000];
    for (int i = 0; i < 4000; i++) ids[i] = (uint16_t)(i % 7 == 6 ? 9 : 1 + i % 5); /* documents end at 9 */
    FILE *f = fopen(shard, "wb");
    fwrite(ids, 2, 4000, f);
    fclose(f);
    adept_dataset_options_init(&o);
    paths[0] = shard;
    o.paths = paths, o.npaths = 1, o.format = ADEPT_FORMAT_TOKENS, o.cache_dir = sub("cache"), o.seq_len = 4;
    o.sep_token = 9, o.max_bytes = 400, o.holdout = 0, o.progress = 0;
    adept_dataset_stats s;
    CHECK_OK(adept_dataset_open(&o, &ds));
    adept_dataset_get_stats(ds, &s);
    CHECK(!s.cache_hit);
    adept_dataset_free(ds);
    ids[3990] = 4; /* far past 400 bytes of documents */
    f = fopen(shard, "wb");
    fwrite(ids, 2, 4000, f);
    fclose(f);
    CHECK_OK(adept_dataset_open(&o, &ds));
    adept_dataset_get_stats(ds, &s);
    CHECK(s.cache_hit);
    adept_dataset_free(ds);
    ids[3] = 2; /* inside the first document */
    f = fopen(shard, "wb");
    fwrite(ids, 2, 4000, f);
    fclose(f);
    CHECK_OK(adept_dataset_open(&o, &ds));
    adept_dataset_get_stats(ds, &s);
    CHECK(!s.cache_hit);
    adept_dataset_free(ds);
}

/* issue 16 item 11: a directory with model.safetensors and a shard index loads the single file, as
   transformers does, and warns naming both. */
static void test_model_precedence(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 37, c.hidden_size = 16, c.intermediate_size = 24, c.num_layers = 2, c.num_heads = 4;
    c.num_kv_heads = 2, c.head_dim = 4, c.max_position_embeddings = 64;
    adept_model *a, *b, *m;
    CHECK_OK(adept_model_create(&c, 1, 0.02f, &a));
    CHECK_OK(adept_model_create(&c, 2, 0.02f, &b));
    const char *sharded = sub("sharded"), *single = sub("single");
    CHECK_OK(adept_model_save(a, sharded, -1, 4096));
    CHECK_OK(adept_model_save(b, single, -1, 0));
    char from[600], to[600];
    snprintf(from, sizeof from, "%s/model.safetensors", single);
    snprintf(to, sizeof to, "%s/model.safetensors", sharded);
    CHECK(link(from, to) == 0);
    /* capture stderr to see the warning */
    fflush(stderr);
    int saved = dup(2), log = open(sub("warn.log"), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(log, 2);
    adept_status st = adept_model_load(sharded, &m);
    fflush(stderr);
    dup2(saved, 2);
    close(saved), close(log);
    CHECK_OK(st);
    if (st == ADEPT_OK) {
        adept_param *p = adept_model_find(m, "model.layers.0.mlp.up_proj.weight");
        adept_param *q = adept_model_find(b, "model.layers.0.mlp.up_proj.weight");
        CHECK(!memcmp(adept_tensor_f32(p->value), adept_tensor_f32(q->value), p->numel * sizeof(float)));
        adept_model_free(m);
    }
    char text[1024] = "";
    FILE *f = fopen(sub("warn.log"), "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    CHECK(strstr(text, "holds both model.safetensors and model.safetensors.index.json: loading model.safetensors"));
    adept_model_free(a);
    adept_model_free(b);
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/adept_integrity_%d", (int)getpid());
    mkdir(root, 0755);
    signal(SIGALRM, on_alarm);
    alarm(120);
    test_json_helpers();
    test_config_json();
    test_tokenizer_json();
    test_llama2c_tokenizer_truncated();
    test_special_files();
    test_corpora();
    test_model_precedence();
    alarm(0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return check_summary();
}
