/* Checkpoint integrity (issue 16): the manifest of a checkpoint directory and its verification
   (adept/ckpt_dir.h), the one-writer lock and the dead-writer test (adept/runlock.h), and the strict
   trainer-state metadata (a repeated JSON key refused by name). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adept/checkpoint.h"
#include "adept/ckpt_dir.h"
#include "adept/fsutil.h"
#include "adept/runlock.h"
#include "adept/safetensors.h"
#include "check.h"

static char root[256];

static const char *sub(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", root, name);
    return b;
}

static int has(const char *needle) {
    if (strstr(adept_last_error(), needle)) return 1;
    fprintf(stderr, "  message was: %s\n  expected it to contain: %s\n", adept_last_error(), needle);
    return 0;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) { perror(path); exit(2); }
    fclose(f);
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n + 1);
    if (!b || fread(b, 1, *n, f) != *n) { perror(path); exit(2); }
    b[*n] = 0;
    fclose(f);
    return b;
}

/* A one-tensor safetensors file of `dtype` holding n values given as f32 (converted). */
static void write_tensor_file(const char *path, const char *name, adept_dtype dtype, const float *v, int64_t n) {
    adept_tensor *t;
    if (adept_tensor_new(ADEPT_F32, 1, &n, &t) != ADEPT_OK) exit(2);
    memcpy(adept_tensor_data(t), v, (size_t)n * sizeof *v);
    adept_tensor *w = t;
    if (dtype != ADEPT_F32) {
        if (adept_tensor_new(dtype, 1, &n, &w) != ADEPT_OK ||
            adept_convert(adept_tensor_data(w), dtype, v, ADEPT_F32, (size_t)n) != ADEPT_OK) exit(2);
    }
    adept_st_item item = {name, w};
    if (adept_safetensors_write(path, &item, 1, NULL, NULL, 0) != ADEPT_OK) { fprintf(stderr, "%s\n", adept_last_error()); exit(2); }
    if (w != t) adept_tensor_free(w);
    adept_tensor_free(t);
}

static adept_model *tiny_model(void) {
    adept_config c;
    adept_model_config_default(&c);
    c.vocab_size = 8;
    c.hidden_size = 4;
    c.intermediate_size = 8;
    c.num_layers = 1;
    c.num_heads = 2;
    adept_model *m;
    if (adept_model_create(&c, 1, 0.1f, &m) != ADEPT_OK) exit(2);
    return m;
}

/* <dir> = a checkpoint of step `step` as adept.train writes it (weights, config, trainer state). */
static void make_checkpoint(const char *dir, adept_adamw *opt, int step) {
    CHECK_OK(adept_fs_mkdir_p(dir));
    char p[600], meta[64];
    float w[6] = {1, -2, 3, 0.5f, 0, 7};
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_tensor_file(p, "model.norm.weight", ADEPT_F32, w, 6);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_file(p, "{\"vocab_size\": 8}", 17);
    snprintf(p, sizeof p, "%s/trainer_state.safetensors", dir);
    snprintf(meta, sizeof meta, "{\"step\": %d, \"tokens_seen\": 0}", step);
    const char *k[1] = {"trainer"}, *v[1] = {meta};
    CHECK_OK(adept_trainer_state_save(p, opt, k, v, 1));
}

static void test_manifest(adept_adamw *opt) {
    const char *c = sub("step_00000005");
    char p[600], man[600];
    make_checkpoint(c, opt, 5);
    CHECK_OK(adept_ckpt_seal(c, 5));
    snprintf(man, sizeof man, "%s/manifest.json", c);
    CHECK(adept_fs_exists(man) == 1);
    int sealed = -1;
    CHECK_OK(adept_ckpt_verify(c, 5, 10, &sealed));
    CHECK(sealed == 1);
    CHECK_OK(adept_ckpt_verify(c, 5, -1, &sealed));

    /* implausible steps: past the run's total, or not the directory's */
    CHECK_FAILS(adept_ckpt_verify(c, 5, 4, &sealed), ADEPT_EFORMAT);
    CHECK(has("step 5 is beyond this run's total of 4 steps"));
    CHECK_FAILS(adept_ckpt_verify(c, 6, -1, &sealed), ADEPT_EFORMAT);
    CHECK(has("manifest.json records step 5, the directory is step 6"));

    /* one changed byte in the data of a tensor, then the same file cut short */
    size_t n;
    snprintf(p, sizeof p, "%s/model.safetensors", c);
    char *orig = read_file(p, &n);
    orig[n - 3] ^= 0x01;
    write_file(p, orig, n);
    CHECK_FAILS(adept_ckpt_verify(c, 5, -1, &sealed), ADEPT_EFORMAT);
    CHECK(has("model.safetensors does not match its SHA-256 in the manifest"));
    orig[n - 3] ^= 0x01;
    write_file(p, orig, n - 8);
    CHECK_FAILS(adept_ckpt_verify(c, 5, -1, &sealed), ADEPT_EFORMAT);
    char want[128];
    snprintf(want, sizeof want, "model.safetensors is %zu bytes, the manifest records %zu (truncated?)", n - 8, n);
    CHECK(has(want));
    write_file(p, orig, n);
    CHECK_OK(adept_ckpt_verify(c, 5, -1, &sealed));

    /* a file the loader would read that the manifest does not list; a listed one gone */
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", c);
    write_file(p, orig, n);
    CHECK_FAILS(adept_ckpt_verify(c, 5, -1, &sealed), ADEPT_EFORMAT);
    CHECK(has("model-00002-of-00002.safetensors is not in manifest.json"));
    unlink(p);
    free(orig);
    snprintf(p, sizeof p, "%s/config.json", c);
    unlink(p);
    CHECK_FAILS(adept_ckpt_verify(c, 5, -1, &sealed), ADEPT_ENOTFOUND);
    CHECK(has("config.json is missing"));
    write_file(p, "{\"vocab_size\": 8}", 17);
    CHECK_OK(adept_ckpt_verify(c, 5, -1, &sealed));

    /* the manifest itself is strict */
    char *text = read_file(man, &n);
    char *edited = malloc(n + 32);
    snprintf(edited, n + 32, "{\"step\": 5, %s", strchr(text, '{') + 1);
    write_file(man, edited, strlen(edited));
    CHECK_FAILS(adept_ckpt_verify(c, 5, -1, &sealed), ADEPT_EFORMAT);
    CHECK(has("manifest.json: duplicate key \"step\""));
    const char *escape = "{\"format\": 1, \"step\": 5, \"files\": [{\"name\": \"../x\", \"bytes\": 1, \"sha256\": "
                         "\"0000000000000000000000000000000000000000000000000000000000000000\"}]}";
    write_file(man, escape, strlen(escape));
    CHECK_FAILS(adept_ckpt_verify(c, 5, -1, &sealed), ADEPT_EFORMAT);
    CHECK(has("a file entry lacks a plain name"));
    free(edited);
    write_file(man, text, n);
    free(text);
    CHECK_OK(adept_ckpt_verify(c, 5, -1, &sealed));

    /* without a manifest (an older checkpoint): what can be checked still is */
    unlink(man);
    CHECK_OK(adept_ckpt_verify(c, 5, 10, &sealed));
    CHECK(sealed == 0);
    CHECK_FAILS(adept_ckpt_verify(c, 5, 4, &sealed), ADEPT_EFORMAT);
    CHECK(has("step 5 is beyond this run's total of 4 steps"));
    CHECK_FAILS(adept_ckpt_verify(c, 7, -1, &sealed), ADEPT_EFORMAT);
    CHECK(has("trainer_state.safetensors records step 5, the directory is step 7"));
    snprintf(p, sizeof p, "%s/trainer_state.safetensors", c);
    unlink(p);
    CHECK_FAILS(adept_ckpt_verify(c, 5, -1, &sealed), ADEPT_ENOTFOUND);
    CHECK(has("trainer_state.safetensors is missing"));

    /* non-finite weights: never sealed, and refused on resume even when a manifest agrees with them */
    const char *d = sub("step_00000003");
    make_checkpoint(d, opt, 3);
    float bad[3] = {1, NAN, 2};
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    write_tensor_file(p, "model.norm.weight", ADEPT_F32, bad, 3);
    CHECK_FAILS(adept_ckpt_seal(d, 3), ADEPT_ENONFINITE);
    CHECK(has("model.safetensors: tensor model.norm.weight holds NaN at element 1"));
    snprintf(man, sizeof man, "%s/manifest.json", d);
    CHECK(adept_fs_exists(man) == 0);
    CHECK_FAILS(adept_ckpt_verify(d, 3, -1, &sealed), ADEPT_ENONFINITE);
    CHECK(has("model.safetensors: tensor model.norm.weight holds NaN at element 1"));
    /* every float format: an infinity in bf16 and f16, a NaN in f64 */
    float inf[2] = {0, INFINITY};
    write_tensor_file(sub("bf16.safetensors"), "w", ADEPT_BF16, inf, 2);
    CHECK_FAILS(adept_safetensors_check_finite(sub("bf16.safetensors"), "bf16"), ADEPT_ENONFINITE);
    CHECK(has("bf16: tensor w holds an infinity at element 1"));
    write_tensor_file(sub("f16.safetensors"), "w", ADEPT_F16, inf, 2);
    CHECK_FAILS(adept_safetensors_check_finite(sub("f16.safetensors"), "f16"), ADEPT_ENONFINITE);
    write_tensor_file(sub("f64.safetensors"), "w", ADEPT_F64, bad, 3);
    CHECK_FAILS(adept_safetensors_check_finite(sub("f64.safetensors"), "f64"), ADEPT_ENONFINITE);
    CHECK(has("f64: tensor w holds NaN at element 1"));
    float big[2] = {65504.0f, -3e38f}; /* finite, the largest f16 and nearly the largest f32 */
    write_tensor_file(sub("fine.safetensors"), "w", ADEPT_F32, big, 2);
    CHECK_OK(adept_safetensors_check_finite(sub("fine.safetensors"), "fine"));

    /* a checkpoint holds only files */
    const char *e = sub("step_00000004");
    make_checkpoint(e, opt, 4);
    snprintf(p, sizeof p, "%s/nested", e);
    CHECK_OK(adept_fs_mkdir_p(p));
    CHECK_FAILS(adept_ckpt_seal(e, 4), ADEPT_EFORMAT);
    CHECK(has("a checkpoint holds only files"));
}

/* A child that takes the lock at `path`, reports through `ready`, then waits to be killed. */
static pid_t holder(const char *path) {
    int fds[2];
    if (pipe(fds) != 0) exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        adept_runlock *l;
        char c = adept_runlock_acquire(path, &l) == ADEPT_OK ? 'y' : 'n';
        if (write(fds[1], &c, 1) != 1) _exit(2);
        for (;;) pause();
    }
    close(fds[1]);
    char c = 0;
    if (read(fds[0], &c, 1) != 1 || c != 'y') exit(2);
    close(fds[0]);
    return pid;
}

static void test_lock(void) {
    const char *path = sub("run/.adept.lock");
    CHECK_OK(adept_fs_mkdir_p(sub("run")));
    adept_runlock *a = NULL, *b = NULL;
    CHECK_OK(adept_runlock_acquire(path, &a));
    char want[160];
    /* a second open in this process (a nested run on the same directory) is refused too */
    CHECK_FAILS(adept_runlock_acquire(path, &b), ADEPT_ESTATE);
    snprintf(want, sizeof want, "run/.adept.lock: this process (PID %ld) is writing here", (long)getpid());
    CHECK(has(want));
    CHECK(b == NULL);
    adept_runlock_release(a);

    pid_t pid = holder(path);
    CHECK_FAILS(adept_runlock_acquire(path, &b), ADEPT_ESTATE);
    snprintf(want, sizeof want, "another adeptlua run (PID %ld) is writing here; wait for it to end or use another "
             "directory", (long)pid);
    CHECK(has(want));
    CHECK(adept_pid_alive(pid));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    /* the kernel released the dead holder's lock */
    CHECK(!adept_pid_alive(pid));
    CHECK_OK(adept_runlock_acquire(path, &b));
    adept_runlock_release(b);
    adept_runlock_release(NULL);
    CHECK(adept_pid_alive(getpid()));
    CHECK(!adept_pid_alive(0) && !adept_pid_alive(-1));
}

static void test_stale_temporaries(void) {
    const char *dir = sub("stale");
    pid_t live = holder(sub("stale-holder.lock")), dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char p[4][600];
    snprintf(p[0], 600, "%s/.tmp-step_00000002-%ld", dir, (long)dead);
    snprintf(p[1], 600, "%s/.tmp-step_00000002-%ld", dir, (long)live);
    snprintf(p[2], 600, "%s/.tmp-step_00000002-%ld", dir, (long)getpid());
    snprintf(p[3], 600, "%s/.tmp-step_x-%ld", dir, (long)dead); /* not a checkpoint temporary */
    for (int i = 0; i < 4; i++) CHECK_OK(adept_fs_mkdir_p(p[i]));
    int removed = -1;
    CHECK_OK(adept_ckpt_remove_stale(dir, &removed));
    CHECK(removed == 1);
    CHECK(adept_fs_exists(p[0]) == 0);
    for (int i = 1; i < 4; i++) CHECK(adept_fs_exists(p[i]) == 2);
    kill(live, SIGKILL);
    waitpid(live, NULL, 0);
    CHECK_OK(adept_ckpt_remove_stale(dir, &removed));
    CHECK(removed == 1 && adept_fs_exists(p[1]) == 0);
}

/* The "optimizer" metadata of a trainer state with a key given twice: cJSON read the first, a Python reader the
   last; it is refused naming the key (issue 16). */
static void test_trainer_state_duplicate_key(adept_adamw *opt) {
    const char *path = sub("dup.safetensors");
    CHECK_OK(adept_trainer_state_save(path, opt, NULL, NULL, 0));
    adept_safetensors *sf;
    CHECK_OK(adept_safetensors_open(path, &sf));
    const char *meta = adept_safetensors_meta(sf, "optimizer");
    char dup[4096];
    snprintf(dup, sizeof dup, "{\"steps\": 7, %s", meta + 1);
    adept_safetensors_close(sf);
    const char *k[1] = {"optimizer"}, *v[1] = {dup};
    CHECK_OK(adept_safetensors_write(path, NULL, 0, k, v, 1));
    CHECK_FAILS(adept_trainer_state_load(path, opt, NULL), ADEPT_EFORMAT);
    CHECK(has("the \"optimizer\" metadata: duplicate key \"steps\" in the top-level object"));
    CHECK(adept_adamw_steps(opt) == 0);
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/adept_ckpt_dir_XXXXXX");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    adept_model *m = tiny_model();
    adept_adamw *opt;
    if (adept_adamw_new(m, NULL, &opt) != ADEPT_OK) return 2;
    test_manifest(opt);
    test_lock();
    test_stale_temporaries();
    test_trainer_state_duplicate_key(opt);
    adept_adamw_free(opt);
    adept_model_free(m);
    CHECK_OK(adept_fs_remove_tree(root));
    return check_summary();
}
