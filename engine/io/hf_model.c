/* adept_model_load / adept_model_save for Hugging Face directories (config.json + model.safetensors, or
   shards with model.safetensors.index.json, + adept.json); a llama2.c .bin path is handed to llama2c.c.

   Choices:
   - Every tensor the config implies must be present with its exact shape, in F32, BF16 or F16 (converted
     to f32). "The dtype loaded", which save writes back, is the weights' dtype, or f32 when a checkpoint mixes
     dtypes (say f32 norms beside bf16 matrices), so that load -> save -> load stays bitwise exact.
   - Tolerated extras: *.rotary_emb.inv_freq buffers (recomputed from rope_theta), and lm_head.weight when
     tie_word_embeddings is true only if it is bitwise equal to the embedding (some exporters write both);
     a different lm_head under tied embeddings, or any other tensor, is an error naming it.
   - A config whose tensors would need far more memory than the files hold is rejected before allocating.
   - save writes into "<dir>.tmp-<pid>-<n>", fsyncs every file and the directory, then renames it to <dir>.
     When <dir> already exists it is moved aside, the new one renamed in, files that are not ours (tokenizer,
     trainer state, ...) moved over, and the old copy of our files removed: a crash never leaves a
     half-written model in place of a good one. Shards are "model-00001-of-0000N.safetensors" with HF's index;
     every safetensors file carries {"format": "pt"} metadata, which transformers requires. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adept/backend.h"
#include "adept/device.h"
#include "adept/hf_config.h"
#include "adept/input.h"
#include "adept/json.h"
#include "adept/llama2c.h"
#include "adept/log.h"
#include "adept/model.h"
#include "adept/safetensors.h"
#include "model/model_internal.h"

#ifndef ADEPT_VERSION
#define ADEPT_VERSION "0.0.0"
#endif
#define MAX_SHARDS 4096

/* ---- small file helpers ---------------------------------------------------------------------------- */

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static adept_status read_text(const char *path, const char *what, size_t cap, char **out, size_t *len) {
    return adept_input_read(path, what, cap, out, len);
}

/* ---- loading --------------------------------------------------------------------------------------- */

typedef struct shards {
    int n;
    adept_safetensors *st[MAX_SHARDS];
    char *file[MAX_SHARDS];   /* file names within the directory */
    cJSON *index;             /* parsed index (NULL for a single file) */
    const cJSON *weight_map;
} shards;

static void shards_close(shards *s) {
    for (int i = 0; i < s->n; i++) { adept_safetensors_close(s->st[i]); free(s->file[i]); }
    cJSON_Delete(s->index);
    s->n = 0;
}

static int shard_of(const shards *s, const char *file) {
    for (int i = 0; i < s->n; i++) if (!strcmp(s->file[i], file)) return i;
    return -1;
}

static adept_status open_shard(shards *s, const char *dir, const char *file) {
    if (s->n >= MAX_SHARDS) return adept_fail(ADEPT_EFORMAT, "%s: more than %d shards", dir, MAX_SHARDS);
    char *path = path_join(dir, file);
    if (!path) return adept_fail(ADEPT_ENOMEM, "out of memory");
    adept_status st = adept_safetensors_open(path, &s->st[s->n]);
    free(path);
    if (st != ADEPT_OK) return st;
    if (!(s->file[s->n] = strdup(file))) { adept_safetensors_close(s->st[s->n]); return adept_fail(ADEPT_ENOMEM, "out of memory"); }
    s->n++;
    return ADEPT_OK;
}

/* Which weights a directory holds follows transformers (modeling_utils: SAFE_WEIGHTS_NAME is tried before
   SAFE_WEIGHTS_INDEX_NAME): model.safetensors when it exists, else the shards of model.safetensors.index.json.
   A directory holding both is ambiguous (a stale file from an earlier save?): it loads the single file, as
   transformers would, and says so in a warning naming both. */
static adept_status open_shards(const char *dir, shards *s) {
    memset(s, 0, sizeof *s);
    char *ipath = path_join(dir, "model.safetensors.index.json"), *single = path_join(dir, "model.safetensors");
    if (!ipath || !single) { free(ipath); free(single); return adept_fail(ADEPT_ENOMEM, "out of memory"); }
    struct stat sb;
    /* stat follows links, as os.path.isfile does; a special file found here is refused when it is opened */
    int has_single = stat(single, &sb) == 0, has_index = stat(ipath, &sb) == 0;
    free(single);
    if (has_single) {
        if (has_index)
            adept_log(ADEPT_LOG_WARN, "%s holds both model.safetensors and model.safetensors.index.json: loading "
                      "model.safetensors, as transformers does (remove the one that is stale)", dir);
        free(ipath);
        return open_shard(s, dir, "model.safetensors");
    }
    if (!has_index) {
        free(ipath);
        return adept_fail(ADEPT_ENOTFOUND, "%s: neither model.safetensors nor model.safetensors.index.json is there",
                          dir);
    }
    char *text = NULL;
    size_t len = 0;
    adept_status st = read_text(ipath, "model.safetensors.index.json", 64u << 20, &text, &len);
    free(ipath);
    if (st != ADEPT_OK) return st;
    s->index = cJSON_ParseWithLength(text, len);
    free(text);
    if (!s->index) return adept_fail(ADEPT_EFORMAT, "model.safetensors.index.json: not valid JSON");
    ADEPT_TRY(adept_json_check_unique(s->index, "model.safetensors.index.json"));
    s->weight_map = cJSON_GetObjectItemCaseSensitive(s->index, "weight_map");
    if (!cJSON_IsObject(s->weight_map))
        return adept_fail(ADEPT_EFORMAT, "model.safetensors.index.json: weight_map must be an object");
    const cJSON *e;
    cJSON_ArrayForEach(e, s->weight_map) {
        if (!cJSON_IsString(e))
            return adept_fail(ADEPT_EFORMAT, "model.safetensors.index.json: weight_map[\"%.100s\"] must be a file name",
                              e->string);
        const char *f = e->valuestring;
        if (!*f || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, ".."))
            return adept_fail(ADEPT_EFORMAT, "model.safetensors.index.json: weight_map[\"%.100s\"] = \"%.100s\" is "
                              "not a file name in the directory", e->string, f);
        if (shard_of(s, f) < 0) ADEPT_TRY(open_shard(s, dir, f));
    }
    if (s->n == 0) return adept_fail(ADEPT_EFORMAT, "model.safetensors.index.json: weight_map is empty");
    return ADEPT_OK;
}

/* Where a tensor lives: NULL entry (and OK) when absent. */
static adept_status locate(const shards *s, const char *name, int *shard, const adept_st_entry **entry) {
    *entry = NULL;
    *shard = 0;
    if (!s->index) {
        *entry = adept_safetensors_find(s->st[0], name);
        return ADEPT_OK;
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(s->weight_map, name);
    if (!f) return ADEPT_OK;
    *shard = shard_of(s, f->valuestring);
    *entry = adept_safetensors_find(s->st[*shard], name);
    if (!*entry)
        return adept_fail(ADEPT_EFORMAT, "model.safetensors.index.json: %s is listed in %s, which has no such tensor",
                          name, f->valuestring);
    return ADEPT_OK;
}

static const char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* Widening to f32 is exact for every source dtype; split across threads for large checkpoints. */
static void to_f32(float *dst, const unsigned char *src, adept_dtype dtype, size_t n) {
    if (dtype == ADEPT_F32) { memcpy(dst, src, n * 4); return; }
    long long nn = (long long)n;
#pragma omp parallel for schedule(static) if (nn > (1 << 18))
    for (long long i = 0; i < nn; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        if (dtype == ADEPT_BF16) {
            uint32_t u = (uint32_t)h << 16;
            memcpy(&dst[i], &u, 4);
        } else {
            dst[i] = adept_f16_to_f32(h);
        }
    }
}

/* f32 or f16 values rounded to bf16 (nearest even, as adept_f32_to_bf16): dtype "bf16" on matrices stored wider.
   Not adept_convert: that reads through typed pointers, and a tensor's bytes in the mapped file need not be
   aligned (memcpy per value, as to_f32). */
static void to_bf16(uint16_t *dst, const unsigned char *src, adept_dtype dtype, size_t n) {
    long long nn = (long long)n;
#pragma omp parallel for schedule(static) if (nn > (1 << 18))
    for (long long i = 0; i < nn; i++) {
        float f;
        if (dtype == ADEPT_F32) {
            memcpy(&f, src + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            f = adept_f16_to_f32(h);
        }
        dst[i] = adept_f32_to_bf16(f);
    }
}

static const unsigned char *entry_bytes(const adept_safetensors *st, const adept_st_entry *e) {
    return (const unsigned char *)st->file->data + st->data_offset + e->begin;
}

static int is_float_weight(adept_dtype d) { return d == ADEPT_F32 || d == ADEPT_BF16 || d == ADEPT_F16; }

/* Copies one file tensor into a parameter after checking dtype and shape. On a device the tensor is widened into
   `scratch` (host, at least the row's numel floats) and uploaded; NULL scratch: the row is host memory. */
static adept_status load_param(const shards *s, adept_param *p, const adept_config *c, float *scratch) {
    int sh;
    const adept_st_entry *e;
    ADEPT_TRY(locate(s, p->name, &sh, &e));
    const char *file = base_name(s->st[sh]->path);
    char want[64], got[64];
    if (!e)
        return adept_fail(ADEPT_ENOTFOUND, "%s: tensor %s is missing (expected %s for this %s config)",
                          s->index ? "model.safetensors.index.json" : file, p->name,
                          adept_shape_str(p->ndim, p->shape, want, sizeof want), c->architecture);
    if (!is_float_weight(e->dtype))
        return adept_fail(ADEPT_EUNSUPPORTED, "%s: tensor %s has dtype %s (expected F32, BF16 or F16)", file, p->name,
                          adept_dtype_safetensors_name(e->dtype));
    int same = e->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
    if (!same) {
        adept_shape_str(p->ndim, p->shape, want, sizeof want);
        adept_shape_str(e->ndim, e->shape, got, sizeof got);
        if (!strcmp(p->name, "model.embed_tokens.weight") || !strcmp(p->name, "lm_head.weight"))
            return adept_fail(ADEPT_ESHAPE, "%s: tensor %s has shape %s but config.json says vocab_size %d, hidden_size "
                              "%d (expected %s)", file, p->name, got, c->vocab_size, c->hidden_size, want);
        return adept_fail(ADEPT_ESHAPE, "%s: tensor %s has shape %s, expected %s for this config", file, p->name, got,
                          want);
    }
    adept_status st = ADEPT_OK;
    if (p->value->dtype == e->dtype && e->dtype != ADEPT_F32) { /* a 16-bit row keeps the file's bytes */
        st = adept_tensor_write(p->value, 0, entry_bytes(s->st[sh], e), p->numel * 2);
    } else if (p->value->dtype == ADEPT_BF16) { /* dtype "bf16" on a wider (or f16) matrix: rounded */
        uint16_t *dst = scratch ? (uint16_t *)scratch : (uint16_t *)adept_tensor_data(p->value);
        to_bf16(dst, entry_bytes(s->st[sh], e), e->dtype, p->numel);
        if (scratch) st = adept_tensor_write(p->value, 0, scratch, p->numel * 2);
    } else if (p->value->dtype != ADEPT_F32) {
        return adept_fail(ADEPT_EFORMAT, "%s: tensor %s has dtype %s but the model keeps it as %s", file, p->name,
                          adept_dtype_safetensors_name(e->dtype), adept_dtype_name(p->value->dtype));
    } else if (!scratch) {
        to_f32(adept_tensor_f32(p->value), entry_bytes(s->st[sh], e), e->dtype, p->numel);
    } else {
        to_f32(scratch, entry_bytes(s->st[sh], e), e->dtype, p->numel);
        st = adept_tensor_write(p->value, 0, scratch, p->numel * sizeof(float));
    }
    /* copied: the file's pages leave the resident set, so a load peaks at the model plus one tensor */
    adept_safetensors_evict(s->st[sh], e);
    return st;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Every tensor in the files must belong to the model (or be a tolerated extra, see the top). */
static adept_status check_extras(const shards *s, adept_model *m, const adept_config *c) {
    if (s->index) {
        /* the index must not promise tensors its files lack */
        const cJSON *e;
        cJSON_ArrayForEach(e, s->weight_map) {
            int sh;
            const adept_st_entry *entry;
            ADEPT_TRY(locate(s, e->string, &sh, &entry));
        }
    }
    for (int i = 0; i < s->n; i++) {
        const adept_safetensors *st = s->st[i];
        for (size_t k = 0; k < st->n_entries; k++) {
            const adept_st_entry *e = &st->entries[k];
            const char *file = base_name(st->path);
            if (s->index) {
                const cJSON *f = cJSON_GetObjectItemCaseSensitive(s->weight_map, e->name);
                if (!f || strcmp(f->valuestring, s->file[i]) != 0)
                    return adept_fail(ADEPT_EFORMAT, "%s: tensor %s is not listed for this file in "
                                      "model.safetensors.index.json", file, e->name);
            }
            if (adept_model_find(m, e->name) || ends_with(e->name, ".rotary_emb.inv_freq")) continue;
            if (!strcmp(e->name, "lm_head.weight") && c->tie_word_embeddings) {
                adept_param *emb = adept_model_find(m, "model.embed_tokens.weight");
                int equal = emb && is_float_weight(e->dtype) && e->ndim == 2 && e->shape[0] == emb->shape[0] &&
                            e->shape[1] == emb->shape[1];
                float *tmp = equal ? malloc(2 * emb->numel * sizeof(float) + 1) : NULL;
                if (tmp) {
                    /* the embedding is read back from wherever it lives (the model may be on a device) */
                    to_f32(tmp, entry_bytes(st, e), e->dtype, emb->numel);
                    adept_status rs = adept_model_row_f32(m, emb, tmp + emb->numel);
                    equal = rs == ADEPT_OK && !memcmp(tmp, tmp + emb->numel, emb->numel * sizeof(float));
                    free(tmp);
                    if (rs != ADEPT_OK) return rs;
                } else if (equal) {
                    return adept_fail(ADEPT_ENOMEM, "%s: out of memory comparing lm_head.weight", file);
                }
                if (equal) continue;
                return adept_fail(ADEPT_EFORMAT, "%s: lm_head.weight differs from model.embed_tokens.weight while "
                                  "config.json has tie_word_embeddings=true", file);
            }
            return adept_fail(ADEPT_EFORMAT, "%s: unexpected tensor %s (not part of a %s with this config)", file,
                              e->name, c->architecture);
        }
    }
    return ADEPT_OK;
}

/* adept.json's expanded_layers (absent file: none). */
static adept_status read_adept_json(const char *dir, int n_layers, int **layers, int *n) {
    *layers = NULL;
    *n = 0;
    char *path = path_join(dir, "adept.json"), *text = NULL;
    size_t len = 0;
    if (!path) return adept_fail(ADEPT_ENOMEM, "out of memory");
    adept_status st = read_text(path, "adept.json", 16u << 20, &text, &len);
    free(path);
    if (st == ADEPT_ENOTFOUND) return ADEPT_OK;
    if (st != ADEPT_OK) return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) { cJSON_Delete(root); return adept_fail(ADEPT_EFORMAT, "adept.json: not a JSON object"); }
    if ((st = adept_json_check_unique(root, "adept.json")) != ADEPT_OK) { cJSON_Delete(root); return st; }
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "expanded_layers");
    st = ADEPT_OK;
    if (ex && !cJSON_IsArray(ex)) st = adept_fail(ADEPT_EFORMAT, "adept.json: expanded_layers must be a list");
    int cnt = ex ? cJSON_GetArraySize(ex) : 0;
    if (st == ADEPT_OK && cnt > 0 && !(*layers = malloc(sizeof(int) * (size_t)cnt)))
        st = adept_fail(ADEPT_ENOMEM, "out of memory");
    const cJSON *v;
    int64_t layer;
    if (st == ADEPT_OK && ex) cJSON_ArrayForEach(v, ex) {
        if (!adept_json_int(v, 0, n_layers - 1, &layer)) {
            st = adept_fail(ADEPT_EFORMAT, "adept.json: expanded_layers entries must be layer indices in [0, %d)",
                            n_layers);
            break;
        }
        (*layers)[(*n)++] = (int)layer;
    }
    cJSON_Delete(root);
    if (st != ADEPT_OK) { free(*layers); *layers = NULL; *n = 0; }
    return st;
}

static size_t config_numel(const adept_config *c) {
    size_t C = (size_t)c->hidden_size, F = (size_t)c->intermediate_size, D = (size_t)c->head_dim;
    size_t QD = (size_t)c->num_heads * D, KD = (size_t)c->num_kv_heads * D;
    size_t layer = 2 * C + QD * C + 2 * KD * C + C * QD + 3 * F * C;
    if (c->attention_bias) layer += QD + 2 * KD;
    if (c->qk_norm) layer += 2 * D;
    return (size_t)c->vocab_size * C * (c->tie_word_embeddings ? 1 : 2) + C + (size_t)c->num_layers * layer;
}

static adept_status load_hf_dir(const char *dir, adept_device device, adept_load_dtype mode, adept_model **out) {
    adept_config cfg;
    char *cpath = path_join(dir, "config.json");
    if (!cpath) return adept_fail(ADEPT_ENOMEM, "out of memory");
    adept_status st = adept_hf_config_read(cpath, &cfg);
    free(cpath);
    if (st != ADEPT_OK) return st;
    shards s;
    adept_model *m = NULL;
    int *expanded = NULL, n_expanded = 0;
    int seen2 = -1; /* the one dtype of the 2-D tensors (the matrices), F32 when they mix */
    st = open_shards(dir, &s);
    if (st == ADEPT_OK) st = read_adept_json(dir, cfg.num_layers, &expanded, &n_expanded);
    if (st == ADEPT_OK) st = adept_hf_config_strip_layers(&cfg, expanded, n_expanded, cfg.num_layers);
    if (st == ADEPT_OK) {
        /* the dtype loaded: the one dtype of the weights, or f32 when they mix (exact on save); and bound the
           allocation by what the files hold */
        int seen = -1;
        size_t held = 0;
        for (int i = 0; i < s.n; i++)
            for (size_t k = 0; k < s.st[i]->n_entries; k++) {
                const adept_st_entry *e = &s.st[i]->entries[k];
                held += adept_shape_numel(e->ndim, e->shape);
                if (!is_float_weight(e->dtype)) continue;
                seen = seen < 0 || seen == (int)e->dtype ? (int)e->dtype : (int)ADEPT_F32;
                if (e->ndim == 2) seen2 = seen2 < 0 || seen2 == (int)e->dtype ? (int)e->dtype : (int)ADEPT_F32;
            }
        cfg.dtype = seen < 0 ? ADEPT_F32 : (adept_dtype)seen;
        size_t need = config_numel(&cfg);
        if (st == ADEPT_OK && need > 2 * held + (1u << 20))
            st = adept_fail(ADEPT_EFORMAT, "config.json describes %zu weights but the safetensors files hold %zu: "
                            "config.json does not match the weights", need, held);
    }
    /* dtype auto: the matrices stay bf16 (or f16) when every matrix of the checkpoint is (DESIGN.md §2.9; norms may
       be kept in f32 by some writers); dtype bf16: they are bf16 whatever the checkpoint holds (rounded) */
    adept_dtype matrices = ADEPT_F32, m16 = seen2 < 0 ? ADEPT_F32 : (adept_dtype)seen2;
    adept_dtype want = mode == ADEPT_LOAD_BF16 ? ADEPT_BF16
                       : mode == ADEPT_LOAD_AUTO && (m16 == ADEPT_BF16 || m16 == ADEPT_F16) ? m16 : ADEPT_F32;
    if (st == ADEPT_OK && want != ADEPT_F32) {
        const adept_backend *be = adept_backend_for(device);
        if (be && be->matmul_forward_w16 && be->matmul_backward_w16 && be->embedding_forward_w16)
            matrices = want;
        else if (be)
            adept_log(ADEPT_LOG_WARN, "load: the %s backend has no %s products; weights are widened to f32 (dtype \"f32\")",
                           be->name, adept_dtype_name(want));
    }
    if (st == ADEPT_OK) st = adept_model_create_stored(&cfg, device, matrices, &m);
    /* on a device: one host buffer of the largest row, each tensor widened there and uploaded */
    float *scratch = NULL;
    if (st == ADEPT_OK && device != ADEPT_CPU) {
        size_t most = 0;
        for (size_t i = 0; i < adept_model_num_params(m); i++)
            if (adept_model_param(m, i)->numel > most) most = adept_model_param(m, i)->numel;
        if (!(scratch = malloc(most * sizeof(float) + 1))) st = adept_fail(ADEPT_ENOMEM, "load: out of memory");
    }
    for (size_t i = 0; st == ADEPT_OK && i < adept_model_num_params(m); i++)
        st = load_param(&s, adept_model_param(m, i), &cfg, scratch);
    free(scratch);
    if (st == ADEPT_OK) st = check_extras(&s, m, &cfg);
    for (int i = 0; st == ADEPT_OK && i < n_expanded; i++) st = adept_model_set_expanded(m, expanded[i], 1);
    shards_close(&s);
    free(expanded);
    adept_hf_config_clear(&cfg);
    if (st != ADEPT_OK) { adept_model_free(m); return st; }
    *out = m;
    return ADEPT_OK;
}

/* A directory without config.json holding exactly one llama2.c checkpoint (like shared/models/stories260K,
   checkpoint beside its tokenizer.bin) loads that checkpoint; *bin stays NULL otherwise. */
static adept_status lone_llama2c(const char *dir, char **bin) {
    *bin = NULL;
    char *cfg = path_join(dir, "config.json");
    if (!cfg) return adept_fail(ADEPT_ENOMEM, "out of memory");
    int has_config = access(cfg, F_OK) == 0;
    free(cfg);
    if (has_config) return ADEPT_OK;
    DIR *d = opendir(dir);
    if (!d) return ADEPT_OK;
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d))) {
        if (!ends_with(de->d_name, ".bin")) continue;
        char *p = path_join(dir, de->d_name);
        if (p && adept_llama2c_sniff(p) && adept_llama2c_is_checkpoint(p)) {
            found++;
            free(*bin);
            *bin = p;
        } else {
            free(p);
        }
    }
    closedir(d);
    if (found > 1) {
        free(*bin);
        *bin = NULL;
        return adept_fail(ADEPT_EINVAL, "%s: no config.json and %d llama2.c checkpoints: pass the .bin file itself",
                          dir, found);
    }
    return ADEPT_OK;
}

adept_status adept_model_check_finite(adept_model *m) {
    int on_host = adept_model_device(m) == ADEPT_CPU;
    float *buf = NULL;
    for (size_t i = 0; i < adept_model_num_params(m); i++) {
        const adept_param *p = adept_model_param(m, i);
        const float *v = adept_tensor_f32(p->value);
        if (p->value->dtype != ADEPT_F32) { /* a 16-bit row: NaN and infinity have every exponent bit set */
            const uint16_t *h = adept_tensor_data(p->value);
            uint16_t mask = p->value->dtype == ADEPT_BF16 ? 0x7f80 : 0x7c00, *hb = NULL;
            if (!on_host) { /* read back to the host (rare: only backends with 16-bit products keep such rows) */
                if (!(hb = malloc(p->numel * 2 + 1))) { free(buf); return adept_fail(ADEPT_ENOMEM, "out of memory"); }
                adept_status rs = adept_tensor_read(p->value, 0, hb, p->numel * 2);
                if (rs != ADEPT_OK) { free(hb); free(buf); return rs; }
                h = hb;
            }
            size_t bad = 0, first = 0;
            for (size_t k = 0; k < p->numel; k++)
                if ((h[k] & mask) == mask) { if (!bad++) first = k; }
            double first_value = bad ? (p->value->dtype == ADEPT_BF16 ? adept_bf16_to_f32(h[first])
                                                                       : adept_f16_to_f32(h[first])) : 0;
            free(hb);
            if (bad) free(buf);
            if (bad)
                return adept_fail(ADEPT_ENONFINITE, "tensor %s holds %zu non-finite value%s (the first at flat index %zu "
                                  "is %g): the checkpoint is corrupt or diverged (allow_nonfinite=true loads it "
                                  "anyway)", p->name, bad, bad == 1 ? "" : "s", first, first_value);
            continue;
        }
        if (!on_host) {
            /* a device model: the row's sum of squares runs on the device, in double, where finite floats cannot
               overflow it (each square is below 1.2e77): it is finite exactly when the row holds no NaN or
               infinity. Only a failing row is read back, to count and name its values. */
            double ss = 0;
            adept_status sst = adept_model_backend(m)->sum_squares(v, p->numel, &ss);
            if (sst != ADEPT_OK) { free(buf); return sst; }
            if (isfinite(ss)) continue;
            free(buf);
            if (!(buf = malloc(p->numel * sizeof(float) + 1))) return adept_fail(ADEPT_ENOMEM, "out of memory");
            adept_status st = adept_tensor_read(p->value, 0, buf, p->numel * sizeof(float));
            if (st != ADEPT_OK) { free(buf); return st; }
            v = buf;
        }
        size_t bad = 0, first = 0;
        for (size_t k = 0; k < p->numel; k++)
            if (!isfinite(v[k])) { if (!bad++) first = k; }
        double first_value = bad ? (double)v[first] : 0;
        if (bad) free(buf);
        if (bad)
            return adept_fail(ADEPT_ENONFINITE, "tensor %s holds %zu non-finite value%s (the first at flat index %zu is "
                              "%g): the checkpoint is corrupt or diverged (allow_nonfinite=true loads it anyway)",
                              p->name, bad, bad == 1 ? "" : "s", first, first_value);
    }
    free(buf);
    return ADEPT_OK;
}

adept_status adept_model_load(const char *path, adept_model **out) { return adept_model_load_on(path, ADEPT_CPU, out); }

adept_status adept_model_load_on(const char *path, adept_device device, adept_model **out) {
    return adept_model_load_dtype(path, device, ADEPT_LOAD_F32, out);
}

/* dtype "bf16" is for HF directories: the llama2.c loader keeps fp32 (its files are fp32 and small) */
static adept_status llama2c_no_bf16(const char *path) {
    return adept_fail(ADEPT_EUNSUPPORTED, "%s: a llama2.c checkpoint loads with dtype \"auto\" or \"f32\" (fp32), not "
                      "\"bf16\" (for Hugging Face directories)", path);
}

adept_status adept_model_load_dtype(const char *path, adept_device device, adept_load_dtype dtype, adept_model **out) {
    *out = NULL;
    if (!path || !*path) return adept_fail(ADEPT_EINVAL, "load: empty path");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return adept_fail(errno == ENOENT ? ADEPT_ENOTFOUND : ADEPT_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
        return adept_fail(ADEPT_EINVAL, "model: %s is %s, not a model directory or a llama2.c checkpoint", path,
                          adept_input_kind(sb.st_mode));
    if (S_ISDIR(sb.st_mode)) {
        char *bin = NULL;
        adept_status st = lone_llama2c(path, &bin);
        if (st != ADEPT_OK) return st;
        if (bin) {
            st = dtype == ADEPT_LOAD_BF16 ? llama2c_no_bf16(bin) : adept_llama2c_load_on(bin, device, out);
            free(bin);
            return st;
        }
        return load_hf_dir(path, device, dtype, out);
    }
    if (adept_llama2c_sniff(path))
        return dtype == ADEPT_LOAD_BF16 ? llama2c_no_bf16(path) : adept_llama2c_load_on(path, device, out);
    if (ends_with(path, ".safetensors") || ends_with(path, "config.json"))
        return adept_fail(ADEPT_EINVAL, "%s: pass the model directory, not one of its files", path);
    return adept_fail(ADEPT_EFORMAT, "%s: neither a Hugging Face model directory nor a llama2.c checkpoint (.bin)", path);
}
