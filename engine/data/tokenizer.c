/* The tokenizer API: finding and loading a tokenizer file (tokenizer.json or llama2.c tokenizer.bin, also a
   directory or a llama2.c model file with one beside it), and dispatching encode/decode to the format. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "adept/input.h"
#include "tok_internal.h"

adept_status adept_ids_push(adept_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 64;
        int32_t *np = realloc(v->ids, nc * sizeof *np);
        if (!np) return adept_fail(ADEPT_ENOMEM, "tokenizer: out of memory for %zu ids", nc);
        v->ids = np;
        v->cap = nc;
    }
    v->ids[v->n++] = id;
    return ADEPT_OK;
}

void adept_ids_free(adept_ids *v) {
    free(v->ids);
    memset(v, 0, sizeof *v);
}

#define MAX_TOKENIZER_BYTES ((size_t)1 << 30)

static adept_status read_file(const char *path, char **data, size_t *n) {
    return adept_input_read(path, "tokenizer", MAX_TOKENIZER_BYTES, data, n);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}
static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A llama2.c model checkpoint's vocabulary size (legacy header: 7 int32; v1: magic "ak42", version, 7 int32),
   or 0 when the file does not look like one. */
static int llama2c_model_vocab(const char *data, size_t n) {
    int32_t h[9];
    if (n < sizeof h) return 0;
    memcpy(h, data, sizeof h);
    if ((uint32_t)h[0] == 0x616b3432u) return h[2 + 5] > 0 && h[2 + 5] < (1 << 24) ? h[2 + 5] : 0;
    int64_t v = h[5] < 0 ? -(int64_t)h[5] : h[5]; /* widened first: -INT32_MIN does not fit an int32 */
    return h[0] > 0 && v > 0 && v < (1 << 24) ? (int)v : 0;
}

static adept_status resolve(const char *path, const char *data, size_t n, char *out, size_t cap) {
    /* a directory, or a model file: look beside it */
    char dir[4096];
    if (strlen(path) >= sizeof dir - 64) return adept_fail(ADEPT_EINVAL, "%.200s...: path too long", path);
    if (is_dir(path)) snprintf(dir, sizeof dir, "%s", path);
    else {
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    static const char *const names[] = {"tokenizer.json", "tokenizer.bin"};
    for (int i = 0; i < 2; i++) {
        if (snprintf(out, cap, "%s/%s", dir, names[i]) < (int)cap && is_file(out)) return ADEPT_OK;
    }
    int v = data ? llama2c_model_vocab(data, n) : 0;
    if (v) {
        if (snprintf(out, cap, "%s/tok%d.bin", dir, v) < (int)cap && is_file(out)) return ADEPT_OK;
    }
    /* a llama2.c model directory (as adept.load accepts): its one tok*.bin, as llama2.c names them */
    int found = 0;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (strncmp(e->d_name, "tok", 3) || len < 8 || strcmp(e->d_name + len - 4, ".bin")) continue;
            if (found++ == 0 && snprintf(out, cap, "%s/%s", dir, e->d_name) >= (int)cap) found = 2;
        }
        closedir(d);
    }
    if (found == 1 && is_file(out)) return ADEPT_OK;
    return adept_fail(ADEPT_ENOTFOUND,
                      "%s: no tokenizer found (looked for tokenizer.json, tokenizer.bin%s and a single tok*.bin in %s)",
                      path, v ? ", tok<vocab_size>.bin" : "", dir);
}

static atomic_ullong next_serial = 1;

static adept_status load_file(const char *path, const char *data, size_t n, adept_tokenizer **out,
                              int *not_tokenizer, int from_memory) {
    adept_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return adept_fail(ADEPT_ENOMEM, "%s: out of memory", path);
    tok->serial = atomic_fetch_add(&next_serial, 1);
    tok->digest = tok_hash_bytes(data, n);
    tok->bos = tok->eos = -1;
    tok->llama_space_id = -1;
    tok->path = strdup(path);
    tok->from_memory = from_memory;
    if (!tok->path) {
        free(tok);
        return adept_fail(ADEPT_ENOMEM, "%s: out of memory", path);
    }
    size_t i = 0;
    while (i < n && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
    adept_status st;
    const char *ext = strrchr(path, '.');
    *not_tokenizer = 0;
    if ((i < n && data[i] == '{') || (ext && !strcmp(ext, ".json"))) {
        tok->kind = TOK_KIND_HF;
        st = tok_json_load(path, data, n, tok);
    } else {
        tok->kind = TOK_KIND_LLAMA2C;
        st = tok_llama2c_load(path, (const unsigned char *)data, n, tok);
        if (st == ADEPT_EFORMAT) *not_tokenizer = 1;
    }
    if (st != ADEPT_OK) {
        adept_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return ADEPT_OK;
}

adept_status adept_tokenizer_load(const char *path, adept_tokenizer **out) {
    *out = NULL;
    if (!path || !*path) return adept_fail(ADEPT_EINVAL, "adept_tokenizer_load: empty path");
    char found[4096];
    if (is_dir(path)) {
        ADEPT_TRY(resolve(path, NULL, 0, found, sizeof found));
        path = found;
    }
    char *data;
    size_t n;
    ADEPT_TRY(read_file(path, &data, &n));
    int not_tok = 0;
    adept_status st = load_file(path, data, n, out, &not_tok, 0);
    if (st == ADEPT_EFORMAT && not_tok && llama2c_model_vocab(data, n)) {
        /* a llama2.c model checkpoint: its tokenizer lies beside it */
        char first[1024];
        snprintf(first, sizeof first, "%s", adept_last_error());
        if (resolve(path, data, n, found, sizeof found) == ADEPT_OK && strcmp(found, path) != 0) {
            free(data);
            path = found;
            ADEPT_TRY(read_file(path, &data, &n));
            st = load_file(path, data, n, out, &not_tok, 0);
        } else {
            st = adept_fail(ADEPT_EFORMAT, "%s (and no tokenizer.json, tokenizer.bin or tok<vocab>.bin beside it)",
                            first);
        }
    }
    free(data);
    return st;
}

adept_status adept_tokenizer_load_memory(const char *name, const void *data, size_t n, adept_tokenizer **out) {
    *out = NULL;
    if (!data && n) return adept_fail(ADEPT_EINVAL, "adept_tokenizer_load_memory: NULL data of %zu bytes", n);
    /* cJSON wants a terminated buffer for its error pointer; copy once */
    char *copy = malloc(n + 1);
    if (!copy) return adept_fail(ADEPT_ENOMEM, "%s: out of memory for %zu bytes", name, n);
    if (n) memcpy(copy, data, n);
    copy[n] = 0;
    int not_tok;
    adept_status st = load_file(name ? name : "<memory>", copy, n, out, &not_tok, 1);
    free(copy);
    return st;
}

void adept_tokenizer_free(adept_tokenizer *tok) {
    if (!tok) return;
    if (tok->tok)
        for (int32_t i = 0; i < tok->nids; i++) free(tok->tok[i]);
    free(tok->tok);
    free(tok->tok_len);
    free(tok->is_special);
    free(tok->scores);
    tok_smap_free(&tok->vocab);
    tok_smap_free(&tok->added_map);
    if (tok->hf) tok_hf_free(tok->hf);
    free(tok->path);
    free(tok);
}

adept_status adept_tokenizer_encode(const adept_tokenizer *tok, const char *text, size_t len, int add_bos,
                                    int add_eos, adept_ids *out) {
    if (!tok) return adept_fail(ADEPT_EINVAL, "adept_tokenizer_encode: NULL tokenizer");
    if (!text && len) return adept_fail(ADEPT_EINVAL, "adept_tokenizer_encode: NULL text of %zu bytes", len);
    if (tok->kind == TOK_KIND_HF) return tok_hf_encode(tok, text ? text : "", len, add_bos, add_eos, out);
    /* llama2.c's own default (run.c and its pretokenizer): BOS before the text, no EOS */
    if (add_bos != 0 && tok->bos >= 0) ADEPT_TRY(adept_ids_push(out, tok->bos));
    ADEPT_TRY(tok_llama2c_encode(tok, text ? text : "", len, out));
    if (add_eos == 1 && tok->eos >= 0) ADEPT_TRY(adept_ids_push(out, tok->eos));
    return ADEPT_OK;
}

adept_status adept_tokenizer_decode(const adept_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                                    char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!tok) return adept_fail(ADEPT_EINVAL, "adept_tokenizer_decode: NULL tokenizer");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok->nids || !tok->tok[ids[i]])
            return adept_fail(ADEPT_EINVAL, "adept_tokenizer_decode: id %d at position %zu is not in the vocabulary "
                              "(0..%d)", ids[i], i, tok->nids - 1);
    tok_buf b = {0};
    adept_status st = tok->kind == TOK_KIND_HF ? tok_hf_decode(tok, ids, n, skip_special, &b)
                                               : tok_llama2c_decode(tok, ids, n, skip_special, &b);
    if (st == ADEPT_OK && !b.p) st = tok_buf_put(&b, "", 0);
    if (st != ADEPT_OK) {
        tok_buf_free(&b);
        return st;
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return ADEPT_OK;
}

int32_t adept_tokenizer_vocab_size(const adept_tokenizer *tok) { return tok->nids; }
int32_t adept_tokenizer_bos_id(const adept_tokenizer *tok) { return tok->bos; }
int32_t adept_tokenizer_eos_id(const adept_tokenizer *tok) { return tok->eos; }
uint64_t adept_tokenizer_digest(const adept_tokenizer *tok) { return tok->digest; }

int32_t adept_tokenizer_token_to_id(const adept_tokenizer *tok, const char *token, size_t len) {
    int32_t id = tok_smap_get(&tok->added_map, token, len);
    return id >= 0 ? id : tok_smap_get(&tok->vocab, token, len);
}

const char *adept_tokenizer_id_to_token(const adept_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->nids || !tok->tok[id]) return NULL;
    if (len) *len = tok->tok_len[id];
    return tok->tok[id];
}

int adept_tokenizer_is_special(const adept_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->nids && tok->is_special && tok->is_special[id];
}
