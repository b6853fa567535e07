/* adept_model_save: a Hugging Face directory (config.json, model.safetensors or HF-style shards with an index,
   adept.json), written to a temporary directory, fsynced and renamed into place (see hf_model.c's notes). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adept/device.h"
#include "adept/hf_config.h"
#include "adept/model.h"
#include "adept/safetensors.h"

/* paths are capped at 3800 bytes before formatting into 4096-byte buffers */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#ifndef ADEPT_VERSION
#define ADEPT_VERSION "0.0.0"
#endif

static adept_status write_text_sync(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return adept_fail(ADEPT_EIO, "%s: cannot create: %s", path, strerror(errno));
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { close(fd); return adept_fail(ADEPT_EIO, "%s: write failed: %s", path, strerror(errno)); }
        done += (size_t)w;
    }
    if (fsync(fd) != 0) { close(fd); return adept_fail(ADEPT_EIO, "%s: fsync failed: %s", path, strerror(errno)); }
    if (close(fd) != 0) return adept_fail(ADEPT_EIO, "%s: close failed: %s", path, strerror(errno));
    return ADEPT_OK;
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { fsync(fd); close(fd); }
}

static int is_ours(const char *name) {
    if (!strcmp(name, "config.json") || !strcmp(name, "adept.json") || !strcmp(name, "model.safetensors") ||
        !strcmp(name, "model.safetensors.index.json"))
        return 1;
    unsigned a, b;
    char tail[32];
    return sscanf(name, "model-%5u-of-%5u%31s", &a, &b, tail) == 3 && !strcmp(tail, ".safetensors");
}

/* Removes the files we write from dir (and dir itself when it ends up empty). */
static void remove_ours(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d))) {
        if (!is_ours(de->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Moves every entry of `from` that is not ours into `to` (tokenizer files, trainer state, notes). */
static adept_status move_foreign(const char *from, const char *to) {
    DIR *d = opendir(from);
    if (!d) return adept_fail(ADEPT_EIO, "%s: cannot list: %s", from, strerror(errno));
    struct dirent *de;
    char a[4096], b[4096];
    adept_status st = ADEPT_OK;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || is_ours(de->d_name)) continue;
        snprintf(a, sizeof a, "%s/%s", from, de->d_name);
        snprintf(b, sizeof b, "%s/%s", to, de->d_name);
        if (rename(a, b) != 0) {
            st = adept_fail(ADEPT_EIO, "save: cannot move %s to %s: %s", a, b, strerror(errno));
            break;
        }
    }
    closedir(d);
    return st;
}

/* mkdir -p of the directories above `path`. */
static adept_status make_parents(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return adept_fail(ADEPT_EIO, "save: cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    return ADEPT_OK;
}

static adept_status write_adept_json(const adept_model *m, const char *dir, adept_dtype dtype) {
    const adept_config *c = adept_model_config(m);
    cJSON *root = cJSON_CreateObject();
    cJSON *ex = cJSON_AddArrayToObject(root, "expanded_layers");
    for (int l = 0; l < c->num_layers; l++)
        if (adept_model_is_expanded(m, l)) cJSON_AddItemToArray(ex, cJSON_CreateNumber(l));
    cJSON_AddNumberToObject(root, "num_hidden_layers", c->num_layers);
    cJSON_AddStringToObject(root, "architecture", c->architecture);
    cJSON_AddStringToObject(root, "dtype", adept_dtype_name(dtype));
    cJSON_AddStringToObject(root, "engine", "adeptlua");
    cJSON_AddStringToObject(root, "engine_version", ADEPT_VERSION);
    char when[32];
    time_t now = time(NULL);
    struct tm tmv;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tmv));
    cJSON_AddStringToObject(root, "saved_at", when);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return adept_fail(ADEPT_ENOMEM, "adept.json: out of memory");
    char path[4096];
    snprintf(path, sizeof path, "%s/adept.json", dir);
    adept_status st = write_text_sync(path, text);
    free(text);
    return st;
}

static int is_adapter(const adept_param *p) { return p->kind == ADEPT_UNIT_LORA_A || p->kind == ADEPT_UNIT_LORA_B; }

/* The tensors to write, converted to `dtype` (views of the parameters for f32). LoRA adapter rows are not
   written: a base row they adapt is written merged (W + (alpha/rank) B A, adept_model_merged_value) without
   changing the model. *n_items gets the count written. */
static adept_status collect(adept_model *m, adept_dtype dtype, adept_st_item *items, adept_tensor **owned,
                            size_t *n_items) {
    size_t n = adept_model_num_params(m), k = 0;
    int lora = adept_model_lora_rank(m, NULL) > 0;
    *n_items = 0;
    for (size_t i = 0; i < n; i++) {
        adept_param *p = adept_model_param(m, i);
        if (is_adapter(p)) continue;
        items[k].name = p->name;
        adept_tensor *host = NULL; /* the row itself on the CPU, a host copy of a device row, or merged */
        if (lora && p->ndim == 2 && p->layer >= 0) {
            ADEPT_TRY(adept_tensor_new(ADEPT_F32, p->ndim, p->shape, &host));
            adept_status st = adept_model_merged_value(m, i, adept_tensor_f32(host));
            if (st != ADEPT_OK) { adept_tensor_free(host); return st; }
        } else if (p->value->dtype == dtype) { /* f32 rows saved as f32, 16-bit rows in their dtype: as they are */
            items[k++].tensor = p->value; /* the writer stages device rows */
            continue;
        } else {
            ADEPT_TRY(adept_tensor_host(p->value, &host));
        }
        if (host->dtype == dtype) {
            owned[k] = host;
        } else {
            adept_status st = adept_tensor_to_dtype(host, dtype, &owned[k]);
            adept_tensor_free(host);
            ADEPT_TRY(st);
        }
        items[k].tensor = owned[k];
        k++;
        *n_items = k;
    }
    *n_items = k;
    return ADEPT_OK;
}

static adept_status write_weights(adept_model *m, const char *dir, adept_dtype dtype, size_t max_shard) {
    size_t n = adept_model_num_params(m);
    adept_st_item *items = calloc(n ? n : 1, sizeof *items);
    adept_tensor **owned = calloc(n ? n : 1, sizeof *owned);
    size_t *shard_of = calloc(n ? n : 1, sizeof *shard_of);
    static const char *const mk[] = {"format"}, *const mv[] = {"pt"};
    adept_status st = (items && owned && shard_of) ? ADEPT_OK : adept_fail(ADEPT_ENOMEM, "save: out of memory");
    size_t n_all = n;
    if (st == ADEPT_OK) st = collect(m, dtype, items, owned, &n);
    /* greedy packing in table order; a tensor larger than the limit gets a shard of its own */
    size_t n_shards = 0, cur = 0, total = 0;
    for (size_t i = 0; st == ADEPT_OK && i < n; i++) {
        size_t b = adept_tensor_nbytes(items[i].tensor);
        total += b;
        if (n_shards == 0 || (max_shard > 0 && cur > 0 && cur + b > max_shard)) { n_shards++; cur = 0; }
        cur += b;
        shard_of[i] = n_shards - 1;
    }
    char path[4096];
    if (st == ADEPT_OK && n_shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        st = adept_safetensors_write(path, items, n, mk, mv, 1);
    } else if (st == ADEPT_OK) {
        if (n_shards > 99999) st = adept_fail(ADEPT_EINVAL, "save: %zu shards is too many (raise max_shard_bytes)", n_shards);
        cJSON *index = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(index, "metadata");
        cJSON_AddNumberToObject(meta, "total_size", (double)total);
        cJSON *wm = cJSON_AddObjectToObject(index, "weight_map");
        for (size_t s = 0, first = 0; st == ADEPT_OK && s < n_shards; s++) {
            size_t last = first;
            while (last < n && shard_of[last] == s) last++;
            char file[64];
            snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", s + 1, n_shards);
            snprintf(path, sizeof path, "%s/%s", dir, file);
            st = adept_safetensors_write(path, items + first, last - first, mk, mv, 1);
            for (size_t i = first; i < last; i++) cJSON_AddStringToObject(wm, items[i].name, file);
            first = last;
        }
        char *text = st == ADEPT_OK ? cJSON_Print(index) : NULL;
        cJSON_Delete(index);
        if (st == ADEPT_OK && !text) st = adept_fail(ADEPT_ENOMEM, "save: out of memory");
        if (st == ADEPT_OK) {
            snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
            st = write_text_sync(path, text);
        }
        free(text);
    }
    for (size_t i = 0; owned && i < n_all; i++) adept_tensor_free(owned[i]);
    free(items);
    free(owned);
    free(shard_of);
    return st;
}

adept_status adept_model_save(const adept_model *cm, const char *dir, int dtype_in, size_t max_shard_bytes) {
    adept_model *m = (adept_model *)cm; /* the table accessors are non-const; nothing is modified */
    const adept_config *c = adept_model_config(m);
    adept_dtype dtype = dtype_in < 0 ? c->dtype : (adept_dtype)dtype_in;
    if (!adept_hf_torch_dtype_name(dtype))
        return adept_fail(ADEPT_EINVAL, "save: dtype %s is not a weight dtype (f32, bf16 or f16)",
                          dtype_in >= 0 && dtype_in < ADEPT_DTYPE_COUNT ? adept_dtype_name(dtype) : "?");
    if (!dir || !*dir) return adept_fail(ADEPT_EINVAL, "save: empty directory name");
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    if (dl > 3800) return adept_fail(ADEPT_EINVAL, "save: directory name too long");
    char target[4096], tmp[4096], old[4096];
    snprintf(target, sizeof target, "%.*s", (int)dl, dir);
    static int counter;
    int k = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    snprintf(tmp, sizeof tmp, "%s.tmp-%d-%d", target, (int)getpid(), k);
    snprintf(old, sizeof old, "%s.old-%d-%d", target, (int)getpid(), k);
    struct stat sb;
    int exists = stat(target, &sb) == 0;
    if (exists && !S_ISDIR(sb.st_mode)) return adept_fail(ADEPT_EIO, "save: %s exists and is not a directory", target);
    ADEPT_TRY(make_parents(target)); /* like save_pretrained's os.makedirs */
    if (mkdir(tmp, 0755) != 0) return adept_fail(ADEPT_EIO, "save: cannot create %s: %s", tmp, strerror(errno));

    int L = c->num_layers;
    unsigned char *expanded = calloc((size_t)(L > 0 ? L : 1), 1);
    char *config_text = NULL;
    adept_status st = expanded ? ADEPT_OK : adept_fail(ADEPT_ENOMEM, "save: out of memory");
    for (int l = 0; st == ADEPT_OK && l < L; l++) expanded[l] = (unsigned char)adept_model_is_expanded(m, l);
    if (st == ADEPT_OK) st = adept_hf_config_to_json(c, L, expanded, dtype, &config_text);
    char path[4200];
    if (st == ADEPT_OK) {
        snprintf(path, sizeof path, "%s/config.json", tmp);
        st = write_text_sync(path, config_text);
    }
    if (st == ADEPT_OK) st = write_weights(m, tmp, dtype, max_shard_bytes);
    if (st == ADEPT_OK) st = write_adept_json(m, tmp, dtype);
    free(expanded);
    free(config_text);
    if (st == ADEPT_OK) fsync_dir(tmp);
    /* swap into place */
    if (st == ADEPT_OK && exists && rename(target, old) != 0)
        st = adept_fail(ADEPT_EIO, "save: cannot move the existing %s aside: %s", target, strerror(errno));
    if (st == ADEPT_OK && rename(tmp, target) != 0) {
        st = adept_fail(ADEPT_EIO, "save: cannot rename %s to %s: %s", tmp, target, strerror(errno));
        if (exists) rename(old, target);
    }
    if (st != ADEPT_OK) {
        remove_ours(tmp);
        return adept_fail_context(st, "save %s", target);
    }
    if (exists) {
        st = move_foreign(old, target);
        if (st != ADEPT_OK) return st; /* the old directory stays, with what could not be moved */
        remove_ours(old);
    }
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", target);
    char *slash = strrchr(parent, '/');
    if (slash == parent) parent[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(parent, sizeof parent, ".");
    fsync_dir(parent);
    return ADEPT_OK;
}
