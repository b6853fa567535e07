/* llama2.c checkpoint import (legacy 7-int header and v1 "ak42"), strict about sizes, into the HF layout.
   llama2.c rotates interleaved pairs (x[2i], x[2i+1]) of each head; Hugging Face rotates halves (x[i],
   x[i+hs/2]). Reordering the rows of wq and wk within each head — row 2i+j of a head goes to row j*hs/2+i,
   the permutation HF's convert_llama_weights_to_hf applies to Meta's checkpoints — makes the HF-semantics
   model compute exactly llama2.c's function (the dot products q.k are over the same pairs, reordered).
   Fixed by llama2.c: RMSNorm eps 1e-5, RoPE theta 10000, BOS 1, EOS 2; the frequency tables in legacy
   files are skipped (they are recomputed from theta). */
#include "adept/llama2c.h"
#include "adept/device.h"
#include "adept/input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DIM 65536
#define MAX_HIDDEN (1 << 20)
#define MAX_LAYERS 4096
#define MAX_VOCAB (1 << 24)
#define MAX_SEQ (1 << 24)

static int32_t rd_i32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

static adept_status check_range(const char *label, const char *name, long v, long lo, long hi) {
    if (v < lo || v > hi)
        return adept_fail(ADEPT_EFORMAT, "%s: header %s = %ld is out of range [%ld, %ld] (not a llama2.c checkpoint, "
                          "or a corrupt one)", label, name, v, lo, hi);
    return ADEPT_OK;
}

adept_status adept_llama2c_parse_header(const void *data, size_t size, const char *label, adept_llama2c_header *h) {
    const unsigned char *p = data;
    memset(h, 0, sizeof *h);
    if (!label) label = "checkpoint";
    if (size < 28)
        return adept_fail(ADEPT_EFORMAT, "%s: %zu bytes is shorter than a llama2.c header (28 bytes)", label, size);
    const unsigned char *dims = p;
    if ((uint32_t)rd_i32(p) == ADEPT_LLAMA2C_MAGIC) {
        int version = rd_i32(p + 4);
        if (version != 1)
            return adept_fail(ADEPT_EUNSUPPORTED, "%s: llama2.c format version %d is not supported (legacy and "
                              "version 1 fp32; versions 2+ are quantized)", label, version);
        if (size < 256)
            return adept_fail(ADEPT_EFORMAT, "%s: %zu bytes is shorter than the v1 header (256 bytes)", label, size);
        h->version = 1;
        h->header_bytes = 256;
        dims = p + 8;
    } else {
        h->header_bytes = 28;
    }
    long dim = rd_i32(dims), hidden = rd_i32(dims + 4), L = rd_i32(dims + 8), H = rd_i32(dims + 12),
         KV = rd_i32(dims + 16), V = rd_i32(dims + 20), S = rd_i32(dims + 24);
    if (h->version == 1) {
        unsigned flag = dims[28];
        if (flag > 1)
            return adept_fail(ADEPT_EFORMAT, "%s: shared-classifier flag is %u (expected 0 or 1)", label, flag);
        h->shared_classifier = (int)flag;
        ADEPT_TRY(check_range(label, "vocab_size", V, 1, MAX_VOCAB));
    } else {
        /* legacy: a negative vocab_size marks an unshared classifier */
        ADEPT_TRY(check_range(label, "vocab_size", V < 0 ? -V : V, 1, MAX_VOCAB));
        h->shared_classifier = V > 0;
        if (V < 0) V = -V;
    }
    ADEPT_TRY(check_range(label, "dim", dim, 1, MAX_DIM));
    ADEPT_TRY(check_range(label, "hidden_dim", hidden, 1, MAX_HIDDEN));
    ADEPT_TRY(check_range(label, "n_layers", L, 1, MAX_LAYERS));
    ADEPT_TRY(check_range(label, "n_heads", H, 1, dim));
    ADEPT_TRY(check_range(label, "n_kv_heads", KV, 1, H));
    ADEPT_TRY(check_range(label, "seq_len", S, 1, MAX_SEQ));
    if (dim % H)
        return adept_fail(ADEPT_EFORMAT, "%s: header dim %ld is not a multiple of n_heads %ld", label, dim, H);
    if (H % KV)
        return adept_fail(ADEPT_EFORMAT, "%s: header n_kv_heads %ld does not divide n_heads %ld", label, KV, H);
    long hs = dim / H;
    if (hs % 2) return adept_fail(ADEPT_EFORMAT, "%s: head size %ld (dim / n_heads) must be even", label, hs);
    h->dim = (int)dim; h->hidden_dim = (int)hidden; h->n_layers = (int)L; h->n_heads = (int)H;
    h->n_kv_heads = (int)KV; h->vocab_size = (int)V; h->seq_len = (int)S;
    /* all factors are bounded above, so these products fit in 64 bits */
    uint64_t kvd = (uint64_t)KV * hs;
    uint64_t per_layer = 2 * (uint64_t)dim + (uint64_t)dim * dim * 2 + 2 * (uint64_t)dim * kvd +
                         3 * (uint64_t)dim * hidden;
    uint64_t floats = (uint64_t)V * dim + (uint64_t)L * per_layer + (uint64_t)dim;
    if (h->version == 0) floats += (uint64_t)S * hs; /* freq_cis_real and freq_cis_imag, (S, hs/2) each */
    if (!h->shared_classifier) floats += (uint64_t)V * dim;
    uint64_t bytes = floats * 4;
    h->data_bytes = (size_t)bytes;
    uint64_t have = size - h->header_bytes;
    if (have != bytes)
        return adept_fail(ADEPT_EFORMAT, "%s: the header (%s, dim %ld, hidden %ld, %ld layers, %ld heads, %ld kv heads, "
                          "vocab %ld, seq %ld, %s classifier) implies %llu bytes of weights after %zu header bytes, "
                          "but the file has %llu (%s)", label, h->version ? "v1" : "legacy", dim, hidden, L, H, KV, V, S,
                          h->shared_classifier ? "shared" : "separate", (unsigned long long)bytes, h->header_bytes,
                          (unsigned long long)have, have < bytes ? "truncated" : "trailing bytes");
    return ADEPT_OK;
}

void adept_llama2c_config(const adept_llama2c_header *h, adept_config *c) {
    adept_model_config_default(c);
    c->arch = ADEPT_ARCH_LLAMA;
    snprintf(c->architecture, sizeof c->architecture, "LlamaForCausalLM");
    c->vocab_size = h->vocab_size;
    c->hidden_size = h->dim;
    c->intermediate_size = h->hidden_dim;
    c->num_layers = h->n_layers;
    c->num_heads = h->n_heads;
    c->num_kv_heads = h->n_kv_heads;
    c->head_dim = h->dim / h->n_heads;
    c->max_position_embeddings = h->seq_len;
    c->rms_norm_eps = 1e-5;
    c->rope_theta = 10000.0;
    c->tie_word_embeddings = h->shared_classifier;
    c->attention_bias = 0;
    c->qk_norm = 0;
    c->bos_token_id = 1;
    c->eos_token_id = 2;
    c->dtype = ADEPT_F32;
    c->config_json = NULL;
}

/* Copies n_rows x cols little-endian f32 values into dst; with heads > 0, rows of each head are reordered
   from interleaved RoPE pairs to halves (see the top of the file). */
static void copy_rows(float *dst, const unsigned char *src, size_t n_rows, size_t cols, int heads) {
    size_t hs = heads > 0 ? n_rows / (size_t)heads : 0;
    for (size_t r = 0; r < n_rows; r++) {
        size_t d = r;
        if (heads > 0) {
            size_t h = r / hs, within = r % hs, i = within / 2, j = within % 2;
            d = h * hs + j * (hs / 2) + i;
        }
        memcpy(dst + d * cols, src + r * cols * 4, cols * 4); /* the host is little-endian (x86-64, aarch64) */
    }
}

typedef struct section {
    const char *suffix;  /* HF name: per-layer suffix, or the full name when per_layer is 0 */
    int per_layer;
    size_t rows, cols;   /* of one layer's tensor */
    int heads;           /* > 0: permute rows (q/k) */
    int skip;            /* bytes present in the file but not imported (freq tables) */
} section;

adept_status adept_llama2c_load_buffer(const void *data, size_t size, const char *label, adept_model **out) {
    return adept_llama2c_load_buffer_on(data, size, label, ADEPT_CPU, out);
}

adept_status adept_llama2c_load_buffer_on(const void *data, size_t size, const char *label, adept_device device,
                                          adept_model **out) {
    *out = NULL;
    if (!label) label = "checkpoint";
    adept_llama2c_header h;
    ADEPT_TRY(adept_llama2c_parse_header(data, size, label, &h));
    adept_config cfg;
    adept_llama2c_config(&h, &cfg);
    size_t C = (size_t)h.dim, F = (size_t)h.hidden_dim, V = (size_t)h.vocab_size, hs = C / (size_t)h.n_heads;
    size_t KD = (size_t)h.n_kv_heads * hs, S = (size_t)h.seq_len;
    const section emb = {"model.embed_tokens.weight", 0, V, C, 0, 0};
    const section att_norm = {"input_layernorm.weight", 1, 1, C, 0, 0};
    const section ffn_norm = {"post_attention_layernorm.weight", 1, 1, C, 0, 0};
    const section wq = {"self_attn.q_proj.weight", 1, C, C, h.n_heads, 0};
    const section wk = {"self_attn.k_proj.weight", 1, KD, C, h.n_kv_heads, 0};
    const section wv = {"self_attn.v_proj.weight", 1, KD, C, 0, 0};
    const section wo = {"self_attn.o_proj.weight", 1, C, C, 0, 0};
    const section w1 = {"mlp.gate_proj.weight", 1, F, C, 0, 0};
    const section w2 = {"mlp.down_proj.weight", 1, C, F, 0, 0};
    const section w3 = {"mlp.up_proj.weight", 1, F, C, 0, 0};
    const section norm = {"model.norm.weight", 0, 1, C, 0, 0};
    const section freqs = {"freq_cis", 0, S, hs, 0, 1}; /* real and imag halves: S x hs/2 each */
    const section cls = {"lm_head.weight", 0, V, C, 0, 0};
    section order[14];
    int n = 0;
    if (h.version == 0) {
        section o[] = {emb, att_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3, norm, freqs};
        memcpy(order, o, sizeof o);
        n = (int)(sizeof o / sizeof o[0]);
    } else {
        section o[] = {att_norm, ffn_norm, norm, emb, wq, wk, wv, wo, w1, w2, w3};
        memcpy(order, o, sizeof o);
        n = (int)(sizeof o / sizeof o[0]);
    }
    if (!h.shared_classifier) order[n++] = cls;

    adept_model *m = NULL;
    adept_status st = adept_model_create_on(&cfg, device, 0, 0.0f, &m);
    if (st != ADEPT_OK) return adept_fail_context(st, "%s", label);
    /* on a device each section is permuted into a host buffer of the largest one, then uploaded */
    float *scratch = NULL;
    if (device != ADEPT_CPU) {
        size_t most = 0;
        for (int s = 0; s < n; s++)
            if (order[s].rows * order[s].cols > most) most = order[s].rows * order[s].cols;
        if (!(scratch = malloc(most * sizeof(float) + 1))) {
            adept_model_free(m);
            return adept_fail(ADEPT_ENOMEM, "%s: out of memory", label);
        }
    }
    const unsigned char *p = (const unsigned char *)data + h.header_bytes;
    for (int s = 0; s < n; s++) {
        const section *sec = &order[s];
        int reps = sec->per_layer ? h.n_layers : 1;
        size_t one = sec->rows * sec->cols * 4;
        for (int l = 0; l < reps; l++, p += one) {
            if (sec->skip) continue;
            char name[160];
            if (sec->per_layer) snprintf(name, sizeof name, "model.layers.%d.%s", l, sec->suffix);
            else snprintf(name, sizeof name, "%s", sec->suffix);
            adept_param *prm = adept_model_find(m, name);
            if (!prm || prm->numel != sec->rows * sec->cols) {
                free(scratch);
                adept_model_free(m);
                return adept_fail(ADEPT_ESTATE, "%s: the model has no tensor %s of %zu x %zu", label, name, sec->rows,
                                  sec->cols);
            }
            if (!scratch) {
                copy_rows(adept_tensor_f32(prm->value), p, sec->rows, sec->cols, sec->heads);
                continue;
            }
            copy_rows(scratch, p, sec->rows, sec->cols, sec->heads);
            st = adept_tensor_write(prm->value, 0, scratch, prm->numel * sizeof(float));
            if (st != ADEPT_OK) {
                free(scratch);
                adept_model_free(m);
                return adept_fail_context(st, "%s", label);
            }
        }
    }
    free(scratch);
    *out = m;
    return ADEPT_OK;
}

typedef struct mapping {
    void *addr;
    size_t size;
} mapping;

static adept_status map_file(const char *path, mapping *mp) {
    mp->addr = NULL;
    mp->size = 0;
    int fd;
    struct stat sb;
    ADEPT_TRY(adept_input_open(path, "llama2.c checkpoint", &fd, &sb));
    mp->size = (size_t)sb.st_size;
    if (mp->size == 0) {
        close(fd);
        return ADEPT_OK;
    }
    void *a = mmap(NULL, mp->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (a == MAP_FAILED) return adept_fail(ADEPT_EIO, "%s: mmap failed: %s", path, strerror(errno));
    mp->addr = a;
    return ADEPT_OK;
}

adept_status adept_llama2c_load(const char *path, adept_model **out) { return adept_llama2c_load_on(path, ADEPT_CPU, out); }

adept_status adept_llama2c_load_on(const char *path, adept_device device, adept_model **out) {
    *out = NULL;
    mapping mp;
    ADEPT_TRY(map_file(path, &mp));
    static const char empty[1] = {0};
    adept_status st = adept_llama2c_load_buffer_on(mp.addr ? mp.addr : empty, mp.size, path, device, out);
    if (mp.addr) munmap(mp.addr, mp.size);
    return st;
}

/* Opens a file to probe it: NULL for anything but a readable regular file, leaving the caller's message alone. */
static FILE *probe_open(const char *path) {
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", adept_last_error());
    FILE *f;
    if (adept_input_fopen(path, NULL, &f) != ADEPT_OK) f = NULL;
    adept_fail(ADEPT_OK, "%s", saved);
    return f;
}

int adept_llama2c_sniff(const char *path) {
    FILE *f = probe_open(path);
    if (!f) return 0;
    unsigned char b[28];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n >= 4 && (uint32_t)rd_i32(b) == ADEPT_LLAMA2C_MAGIC) return 1;
    const char *dot = strrchr(path, '.');
    return n == 28 && dot && !strcmp(dot, ".bin");
}

int adept_llama2c_is_checkpoint(const char *path) {
    FILE *f = probe_open(path);
    if (!f) return 0;
    unsigned char b[256] = {0};
    size_t n = fread(b, 1, sizeof b, f);
    int ok = fseek(f, 0, SEEK_END) == 0;
    long size = ok ? ftell(f) : -1;
    fclose(f);
    if (size < (long)n) return 0;
    /* parse_header reads at most the first 256 bytes; the rest of the file only counts through its size */
    adept_llama2c_header h;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", adept_last_error());
    int yes = adept_llama2c_parse_header(b, (size_t)size, path, &h) == ADEPT_OK;
    adept_fail(ADEPT_OK, "%s", saved); /* probing leaves the caller's message alone */
    return yes;
}
