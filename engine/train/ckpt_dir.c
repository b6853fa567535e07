/* Checkpoint directories (adept/ckpt_dir.h): the manifest written last, the checks before a resume, and the
   cleanup of dead writers' temporaries. Why a manifest: the safetensors format checks structure, not content,
   so a changed byte inside an Adam moment loaded silently; a checksum per file catches it, and the recorded
   step ties the files to the directory that names them. */
#include "adept/ckpt_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "adept/fsutil.h"
#include "adept/hash.h"
#include "adept/input.h"
#include "adept/json.h"
#include "adept/runlock.h"
#include "adept/safetensors.h"

enum { MANIFEST_FORMAT = 1 };
#define MAX_STEP 9007199254740992LL /* 2^53: exact in the JSON number that records it */
#define MANIFEST_CAP (16u << 20)    /* a manifest lists a few files; anything larger is not one */
#define TRAINER_STATE "trainer_state.safetensors"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* The weight files the loader reads: model.safetensors or model-00001-of-00002.safetensors (the whole model), or
   rows.safetensors (the rows training changed, bound to their base: adept/checkpoint.h). */
static int is_weight_file(const char *name) {
    return !strcmp(name, "model.safetensors") || (!strncmp(name, "model-", 6) && ends_with(name, ".safetensors")) ||
           !strcmp(name, ADEPT_CKPT_ROWS);
}

static int join(char *out, size_t cap, const char *dir, const char *name) {
    return (size_t)snprintf(out, cap, "%s/%s", dir, name) < cap;
}

/* ---- finiteness ---- */

/* Index of the first non-finite element of n values of dtype at p, or -1. Bit tests (exponent all ones), so
   any alignment and every float format reads the same way. */
static int64_t first_nonfinite(const unsigned char *p, adept_dtype dtype, int64_t n, int *is_nan) {
    for (int64_t i = 0; i < n; i++) {
        int bad = 0, nan = 0;
        if (dtype == ADEPT_F32) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            bad = (u & 0x7f800000u) == 0x7f800000u, nan = (u & 0x007fffffu) != 0;
        } else if (dtype == ADEPT_F64) {
            uint64_t u;
            memcpy(&u, p + 8 * i, 8);
            bad = (u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull, nan = (u & 0x000fffffffffffffull) != 0;
        } else if (dtype == ADEPT_BF16 || dtype == ADEPT_F16) {
            uint16_t u;
            memcpy(&u, p + 2 * i, 2);
            uint16_t exp = dtype == ADEPT_BF16 ? 0x7f80 : 0x7c00;
            bad = (u & exp) == exp, nan = (u & (uint16_t)~(exp | 0x8000)) != 0;
        }
        if (bad) {
            *is_nan = nan;
            return i;
        }
    }
    return -1;
}

adept_status adept_safetensors_check_finite(const char *path, const char *label) {
    adept_safetensors *sf;
    ADEPT_TRY(adept_safetensors_open(path, &sf));
    adept_status st = ADEPT_OK;
    for (size_t k = 0; k < sf->n_entries && st == ADEPT_OK; k++) {
        const adept_st_entry *e = &sf->entries[k];
        if (!adept_dtype_is_float(e->dtype)) continue;
        adept_tensor *t;
        if ((st = adept_safetensors_view(sf, e, &t)) != ADEPT_OK) break;
        int nan = 0;
        int64_t bad = first_nonfinite(adept_tensor_data(t), e->dtype, adept_tensor_numel(t), &nan);
        adept_tensor_free(t);
        if (bad >= 0)
            st = adept_fail(ADEPT_ENONFINITE, "%s: tensor %s holds %s at element %lld", label, e->name,
                            nan ? "NaN" : "an infinity", (long long)bad);
    }
    adept_safetensors_close(sf);
    return st;
}

/* ---- sealing ---- */

static adept_status write_manifest(const char *dir, const char *text) {
    char tmp[4096], final[4096];
    if (!join(tmp, sizeof tmp, dir, ADEPT_CKPT_MANIFEST ".tmp") || !join(final, sizeof final, dir, ADEPT_CKPT_MANIFEST))
        return adept_fail(ADEPT_EINVAL, "checkpoint: path too long: %.60s...", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return adept_fail(ADEPT_EIO, "checkpoint: %s: %s", tmp, strerror(errno));
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    int ok = done == len && fsync(fd) == 0;
    int err = errno;
    close(fd);
    if (!ok) {
        unlink(tmp);
        return adept_fail(ADEPT_EIO, "checkpoint: %s: %s", tmp, strerror(err));
    }
    return adept_fs_rename(tmp, final);
}

adept_status adept_ckpt_seal(const char *dir, int64_t step) {
    if (step < 0 || step > MAX_STEP) return adept_fail(ADEPT_EINVAL, "checkpoint: step %lld out of range", (long long)step);
    char **names;
    size_t n;
    ADEPT_TRY(adept_fs_list(dir, &names, &n));
    cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateArray();
    adept_status st = root && files ? ADEPT_OK : adept_fail(ADEPT_ENOMEM, "checkpoint: out of memory");
    if (st == ADEPT_OK) {
        cJSON_AddNumberToObject(root, "format", MANIFEST_FORMAT);
        cJSON_AddNumberToObject(root, "step", (double)step);
        cJSON_AddItemToObject(root, "files", files);
    } else {
        cJSON_Delete(files);
    }
    for (size_t i = 0; i < n && st == ADEPT_OK; i++) {
        const char *name = names[i];
        if (name[0] == '.' || !strcmp(name, ADEPT_CKPT_MANIFEST) || !strcmp(name, ADEPT_CKPT_MANIFEST ".tmp")) continue;
        char path[4096];
        struct stat sb;
        if (!join(path, sizeof path, dir, name)) { st = adept_fail(ADEPT_EINVAL, "checkpoint: path too long under %s", dir); break; }
        if (lstat(path, &sb) != 0) { st = adept_fail(ADEPT_EIO, "checkpoint: %s: %s", path, strerror(errno)); break; }
        if (!S_ISREG(sb.st_mode)) {
            st = adept_fail(ADEPT_EFORMAT, "checkpoint: %s is %s; a checkpoint holds only files", path,
                            adept_input_kind(sb.st_mode));
            break;
        }
        if (ends_with(name, ".safetensors") && (st = adept_safetensors_check_finite(path, path)) != ADEPT_OK) break;
        char hex[ADEPT_SHA256_HEX];
        uint64_t bytes;
        if ((st = adept_sha256_file(path, hex, &bytes)) != ADEPT_OK) break;
        cJSON *f = cJSON_CreateObject();
        if (!f) { st = adept_fail(ADEPT_ENOMEM, "checkpoint: out of memory"); break; }
        cJSON_AddItemToArray(files, f);
        cJSON_AddStringToObject(f, "name", name);
        cJSON_AddNumberToObject(f, "bytes", (double)bytes);
        cJSON_AddStringToObject(f, "sha256", hex);
    }
    char *text = st == ADEPT_OK ? cJSON_Print(root) : NULL;
    if (st == ADEPT_OK && !text) st = adept_fail(ADEPT_ENOMEM, "checkpoint: out of memory");
    if (st == ADEPT_OK) st = write_manifest(dir, text);
    cJSON_free(text);
    cJSON_Delete(root);
    adept_fs_list_free(names, n);
    return st;
}

/* ---- verification ---- */

/* The "trainer" metadata of trainer_state.safetensors records `step` (strict JSON: a repeated key is refused). */
static adept_status check_trainer_step(const char *dir, int64_t step) {
    char path[4096];
    if (!join(path, sizeof path, dir, TRAINER_STATE)) return adept_fail(ADEPT_EINVAL, "path too long");
    if (!adept_fs_exists(path)) return adept_fail(ADEPT_ENOTFOUND, "%s is missing", TRAINER_STATE);
    adept_safetensors *sf;
    adept_status st = adept_safetensors_open(path, &sf);
    if (st != ADEPT_OK) return st;
    const char *text = adept_safetensors_meta(sf, "trainer");
    cJSON *tr = NULL;
    if (!text) st = adept_fail(ADEPT_EFORMAT, "%s has no \"trainer\" metadata", TRAINER_STATE);
    else st = adept_json_parse(text, strlen(text), TRAINER_STATE ": the \"trainer\" metadata", &tr);
    int64_t got;
    if (st == ADEPT_OK && !adept_json_int(cJSON_GetObjectItemCaseSensitive(tr, "step"), 0, MAX_STEP, &got))
        st = adept_fail(ADEPT_EFORMAT, "%s: the \"trainer\" metadata has no whole step >= 0", TRAINER_STATE);
    if (st == ADEPT_OK && got != step)
        st = adept_fail(ADEPT_EFORMAT, "%s records step %lld, the directory is step %lld", TRAINER_STATE,
                        (long long)got, (long long)step);
    cJSON_Delete(tr);
    adept_safetensors_close(sf);
    return st;
}

static int is_hex64(const char *s) {
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return i == 64;
}

/* A name the manifest may list: a plain file name of this directory. */
static int plain_name(const char *s) {
    return s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 256;
}

static const cJSON *listed(const cJSON *files, const char *name) {
    const cJSON *f;
    cJSON_ArrayForEach(f, files) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(f, "name");
        if (cJSON_IsString(nm) && !strcmp(nm->valuestring, name)) return f;
    }
    return NULL;
}

/* Every listed file present with its size and digest; nothing the loaders read left unlisted. */
static adept_status check_files(const char *dir, const cJSON *files, char **names, size_t n) {
    int weights = 0, state = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, files) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(f, "sha256");
        int64_t bytes;
        if (!cJSON_IsString(nm) || !plain_name(nm->valuestring) || !cJSON_IsString(sh) || !is_hex64(sh->valuestring) ||
            !adept_json_int(cJSON_GetObjectItemCaseSensitive(f, "bytes"), 0, MAX_STEP, &bytes))
            return adept_fail(ADEPT_EFORMAT, "%s: a file entry lacks a plain name, bytes or a sha256 of 64 hex digits",
                              ADEPT_CKPT_MANIFEST);
        if (listed(files, nm->valuestring) != f)
            return adept_fail(ADEPT_EFORMAT, "%s lists %s twice", ADEPT_CKPT_MANIFEST, nm->valuestring);
        weights += is_weight_file(nm->valuestring);
        state += !strcmp(nm->valuestring, TRAINER_STATE);
    }
    if (!state) return adept_fail(ADEPT_EFORMAT, "%s does not list %s", ADEPT_CKPT_MANIFEST, TRAINER_STATE);
    if (!weights)
        return adept_fail(ADEPT_EFORMAT, "%s lists no model weights (model*.safetensors or %s)", ADEPT_CKPT_MANIFEST,
                          ADEPT_CKPT_ROWS);
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i];
        if (name[0] == '.' || !strcmp(name, ADEPT_CKPT_MANIFEST)) continue;
        if ((ends_with(name, ".safetensors") || ends_with(name, ".json")) && !listed(files, name))
            return adept_fail(ADEPT_EFORMAT, "%s is not in %s (added after the checkpoint was written?)", name,
                              ADEPT_CKPT_MANIFEST);
    }
    cJSON_ArrayForEach(f, files) {
        const char *name = cJSON_GetObjectItemCaseSensitive(f, "name")->valuestring;
        const char *want = cJSON_GetObjectItemCaseSensitive(f, "sha256")->valuestring;
        double bytes = cJSON_GetObjectItemCaseSensitive(f, "bytes")->valuedouble;
        char path[4096];
        struct stat sb;
        if (!join(path, sizeof path, dir, name)) return adept_fail(ADEPT_EINVAL, "path too long");
        if (lstat(path, &sb) != 0) return adept_fail(ADEPT_ENOTFOUND, "%s is missing", name);
        if (!S_ISREG(sb.st_mode)) return adept_fail(ADEPT_EFORMAT, "%s is %s, not a regular file", name, adept_input_kind(sb.st_mode));
        if ((double)sb.st_size != bytes)
            return adept_fail(ADEPT_EFORMAT, "%s is %lld bytes, the manifest records %.0f (%s)", name,
                              (long long)sb.st_size, bytes, (double)sb.st_size < bytes ? "truncated?" : "changed");
        char hex[ADEPT_SHA256_HEX];
        ADEPT_TRY(adept_sha256_file(path, hex, NULL));
        if (strcmp(hex, want))
            return adept_fail(ADEPT_EFORMAT, "%s does not match its SHA-256 in the manifest (changed or corrupted "
                              "after it was written)", name);
    }
    return ADEPT_OK;
}

static adept_status verify_sealed(const char *dir, const char *manifest, int64_t step, int64_t max_step,
                                  char **names, size_t n) {
    char *text;
    size_t len;
    ADEPT_TRY(adept_input_read(manifest, ADEPT_CKPT_MANIFEST, MANIFEST_CAP, &text, &len));
    cJSON *root;
    adept_status st = adept_json_parse(text, len, ADEPT_CKPT_MANIFEST, &root);
    free(text);
    if (st != ADEPT_OK) return st;
    int64_t format, rec;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    if (!adept_json_int(cJSON_GetObjectItemCaseSensitive(root, "format"), 0, 1000, &format) || format != MANIFEST_FORMAT)
        st = adept_fail(ADEPT_EFORMAT, "%s: format is not %d (written by another version of adeptlua?)",
                        ADEPT_CKPT_MANIFEST, MANIFEST_FORMAT);
    else if (!adept_json_int(cJSON_GetObjectItemCaseSensitive(root, "step"), 0, MAX_STEP, &rec))
        st = adept_fail(ADEPT_EFORMAT, "%s: step is not a whole number in [0, 2^53]", ADEPT_CKPT_MANIFEST);
    else if (rec != step)
        st = adept_fail(ADEPT_EFORMAT, "%s records step %lld, the directory is step %lld", ADEPT_CKPT_MANIFEST,
                        (long long)rec, (long long)step);
    else if (max_step >= 0 && step > max_step)
        st = adept_fail(ADEPT_EFORMAT, "step %lld is beyond this run's total of %lld steps", (long long)step,
                        (long long)max_step);
    else if (!cJSON_IsArray(files))
        st = adept_fail(ADEPT_EFORMAT, "%s has no \"files\" array", ADEPT_CKPT_MANIFEST);
    else
        st = check_files(dir, files, names, n);
    cJSON_Delete(root);
    return st;
}

/* Without a manifest: the files the loader needs exist; the rest is checked below for both kinds. */
static adept_status verify_unsealed(const char *dir, int64_t step, int64_t max_step, char **names, size_t n) {
    int weights = 0;
    for (size_t i = 0; i < n; i++) weights += is_weight_file(names[i]);
    if (!weights) return adept_fail(ADEPT_ENOTFOUND, "no model weights (model*.safetensors or %s)", ADEPT_CKPT_ROWS);
    if (max_step >= 0 && step > max_step)
        return adept_fail(ADEPT_EFORMAT, "step %lld is beyond this run's total of %lld steps", (long long)step,
                          (long long)max_step);
    (void)dir;
    return ADEPT_OK;
}

adept_status adept_ckpt_verify(const char *dir, int64_t step, int64_t max_step, int *sealed) {
    *sealed = 0;
    if (step < 0 || step > MAX_STEP) return adept_fail(ADEPT_EINVAL, "step %lld out of range", (long long)step);
    char manifest[4096];
    if (!join(manifest, sizeof manifest, dir, ADEPT_CKPT_MANIFEST)) return adept_fail(ADEPT_EINVAL, "path too long");
    char **names;
    size_t n;
    ADEPT_TRY(adept_fs_list(dir, &names, &n));
    struct stat sb;
    adept_status st;
    if (lstat(manifest, &sb) == 0) {
        *sealed = 1;
        st = verify_sealed(dir, manifest, step, max_step, names, n);
    } else if (errno == ENOENT) {
        st = verify_unsealed(dir, step, max_step, names, n);
    } else {
        st = adept_fail(ADEPT_EIO, "%s: %s", ADEPT_CKPT_MANIFEST, strerror(errno));
    }
    if (st == ADEPT_OK) st = check_trainer_step(dir, step);
    for (size_t i = 0; i < n && st == ADEPT_OK; i++) {
        char path[4096];
        if (names[i][0] == '.' || !ends_with(names[i], ".safetensors")) continue;
        if (!join(path, sizeof path, dir, names[i])) st = adept_fail(ADEPT_EINVAL, "path too long");
        else st = adept_safetensors_check_finite(path, names[i]);
    }
    adept_fs_list_free(names, n);
    return st;
}

/* ---- temporaries of dead writers ---- */

adept_status adept_ckpt_remove_stale(const char *dir, int *removed) {
    if (removed) *removed = 0;
    char **names;
    size_t n;
    ADEPT_TRY(adept_fs_list(dir, &names, &n));
    adept_status st = ADEPT_OK;
    for (size_t i = 0; i < n && st == ADEPT_OK; i++) {
        /* .tmp-step_00000005-868: the writer's PID follows the last '-' */
        const char *name = names[i], *dash = strrchr(name, '-');
        if (strncmp(name, ".tmp-step_", 10) || !dash || dash == name + 10 || !dash[1]) continue;
        const char *c = name + 10;
        while (c < dash && *c >= '0' && *c <= '9') c++;
        if (c != dash) continue; /* not <digits>-<pid>: not a checkpoint temporary */
        char *end;
        errno = 0;
        long pid = strtol(dash + 1, &end, 10);
        if (*end || errno || pid <= 0 || pid == (long)getpid() || adept_pid_alive(pid)) continue;
        char path[4096];
        if (!join(path, sizeof path, dir, name)) { st = adept_fail(ADEPT_EINVAL, "path too long under %s", dir); break; }
        st = adept_fs_remove_tree(path);
        if (st == ADEPT_OK && removed) (*removed)++;
    }
    adept_fs_list_free(names, n);
    return st;
}
