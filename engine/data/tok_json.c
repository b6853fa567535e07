/* Loading a Hugging Face tokenizer.json (cJSON): the BPE model (vocab, merges as "a b" strings or [a, b] pairs),
   added tokens, and the normalizer / pre-tokenizer / post-processor / decoder descriptions. Any component we do
   not implement is an error naming its type and the file; malformed input is an error, never a crash. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/input.h"
#include "adept/json.h"
#include "tok_internal.h"

#define FAIL(st, ...) adept_fail(st, __VA_ARGS__)

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static int jbool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}
/* An integer field in [lo, hi]; absent or null gives def; anything else is an error naming the field. */
static adept_status jint(const cJSON *o, const char *k, int64_t lo, int64_t hi, int def, const char *path,
                         const char *where, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    int64_t x;
    if (!v || cJSON_IsNull(v)) { *out = def; return ADEPT_OK; }
    if (!adept_json_int(v, lo, hi, &x))
        return adept_fail(ADEPT_EFORMAT, "%s: %s \"%s\" must be an integer in [%lld, %lld]", path, where, k,
                          (long long)lo, (long long)hi);
    *out = (int)x;
    return ADEPT_OK;
}
static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static int is_null(const cJSON *v) { return !v || cJSON_IsNull(v); }

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* {"String": "x"} or {"Regex": "..."} */
static adept_status load_pattern(const cJSON *p, tok_pattern *out, const char *path, const char *where) {
    memset(out, 0, sizeof *out);
    const char *s;
    if (cJSON_IsObject(p) && (s = jstr(p, "String"))) {
        out->kind = TOK_PAT_STRING;
        out->len = strlen(s);
        out->str = dupn(s, out->len);
        if (!out->str) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
        if (!out->len) return FAIL(ADEPT_EFORMAT, "%s: %s: empty String pattern", path, where);
        return ADEPT_OK;
    }
    if (cJSON_IsObject(p) && (s = jstr(p, "Regex"))) {
        out->kind = TOK_PAT_REGEX;
        char w[256];
        snprintf(w, sizeof w, "%s: %s", path, where);
        return tok_pattern_compile_regex(out, s, w);
    }
    return FAIL(ADEPT_EFORMAT, "%s: %s: pattern must be {\"String\": ...} or {\"Regex\": ...}", path, where);
}

static adept_status load_norm(const cJSON *j, tok_norm *n, const char *path, int depth) {
    memset(n, 0, sizeof *n);
    const char *type = cJSON_IsObject(j) ? jstr(j, "type") : NULL;
    if (!type) return FAIL(ADEPT_EFORMAT, "%s: normalizer without a \"type\"", path);
    if (depth > 16) return FAIL(ADEPT_EFORMAT, "%s: normalizers nested too deeply", path);
    if (!strcmp(type, "NFC")) n->kind = TOK_NORM_NFC;
    else if (!strcmp(type, "NFD")) n->kind = TOK_NORM_NFD;
    else if (!strcmp(type, "NFKC")) n->kind = TOK_NORM_NFKC;
    else if (!strcmp(type, "NFKD")) n->kind = TOK_NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) n->kind = TOK_NORM_LOWERCASE;
    else if (!strcmp(type, "Strip")) {
        n->kind = TOK_NORM_STRIP;
        n->left = jbool(j, "strip_left", 0); /* absent = false, as the JS reference reads it */
        n->right = jbool(j, "strip_right", 0);
    } else if (!strcmp(type, "Prepend")) {
        const char *s = jstr(j, "prepend");
        if (!s) return FAIL(ADEPT_EFORMAT, "%s: Prepend normalizer without \"prepend\"", path);
        n->kind = TOK_NORM_PREPEND;
        n->len = strlen(s);
        n->str = dupn(s, n->len);
    } else if (!strcmp(type, "Replace")) {
        const char *s = jstr(j, "content");
        n->kind = TOK_NORM_REPLACE;
        n->len = s ? strlen(s) : 0;
        n->str = dupn(s ? s : "", n->len);
        ADEPT_TRY(load_pattern(jget(j, "pattern"), &n->pat, path, "Replace normalizer"));
    } else if (!strcmp(type, "Sequence")) {
        const cJSON *a = jget(j, "normalizers");
        if (!cJSON_IsArray(a)) return FAIL(ADEPT_EFORMAT, "%s: Sequence normalizer without a \"normalizers\" array", path);
        n->kind = TOK_NORM_SEQUENCE;
        int cnt = cJSON_GetArraySize(a);
        n->items = calloc(cnt ? cnt : 1, sizeof *n->items);
        if (!n->items) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
        const cJSON *it;
        cJSON_ArrayForEach(it, a) ADEPT_TRY(load_norm(it, &n->items[n->nitems++], path, depth + 1));
    } else
        return FAIL(ADEPT_EUNSUPPORTED, "%s: normalizer type \"%s\" is not supported (supported: NFC, NFD, NFKC, "
                    "NFKD, Lowercase, Strip, Prepend, Replace, Sequence)", path, type);
    if ((n->kind == TOK_NORM_PREPEND || n->kind == TOK_NORM_REPLACE) && !n->str)
        return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
    return ADEPT_OK;
}

static int metaspace_repl(const cJSON *j, char *repl, int *len) {
    const char *r = jstr(j, "replacement");
    if (!r) r = "\xE2\x96\x81";
    size_t l = strlen(r);
    if (l == 0 || l > 4) return 0;
    memcpy(repl, r, l);
    *len = (int)l;
    return 1;
}

static int prepend_scheme(const cJSON *j) {
    const char *s = jstr(j, "prepend_scheme");
    if (s) return !strcmp(s, "never") ? 0 : !strcmp(s, "first") ? 1 : 2;
    return jbool(j, "add_prefix_space", 1) ? 2 : 0;
}

static adept_status load_pre(const cJSON *j, tok_pretok *p, const char *path, int depth, int *byte_level) {
    memset(p, 0, sizeof *p);
    const char *type = cJSON_IsObject(j) ? jstr(j, "type") : NULL;
    if (!type) return FAIL(ADEPT_EFORMAT, "%s: pre_tokenizer without a \"type\"", path);
    if (depth > 16) return FAIL(ADEPT_EFORMAT, "%s: pre-tokenizers nested too deeply", path);
    if (!strcmp(type, "ByteLevel")) {
        p->kind = TOK_PRE_BYTELEVEL;
        p->add_prefix_space = jbool(j, "add_prefix_space", 0);
        p->use_regex = jbool(j, "use_regex", 1);
        *byte_level = 1;
        if (p->use_regex) {
            p->pat.kind = TOK_PAT_REGEX;
            char w[512];
            snprintf(w, sizeof w, "%s: ByteLevel pre-tokenizer", path);
            ADEPT_TRY(tok_pattern_compile_regex(&p->pat, tok_gpt2_regex, w));
        }
    } else if (!strcmp(type, "Split")) {
        p->kind = TOK_PRE_SPLIT;
        ADEPT_TRY(load_pattern(jget(j, "pattern"), &p->pat, path, "Split pre-tokenizer"));
        const char *b = jstr(j, "behavior");
        if (!b) return FAIL(ADEPT_EFORMAT, "%s: Split pre-tokenizer without \"behavior\"", path);
        if (!strcmp(b, "Isolated")) p->behavior = TOK_SPLIT_ISOLATED;
        else if (!strcmp(b, "Removed")) p->behavior = TOK_SPLIT_REMOVED;
        else if (!strcmp(b, "MergedWithPrevious")) p->behavior = TOK_SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) p->behavior = TOK_SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) p->behavior = TOK_SPLIT_CONTIGUOUS;
        else return FAIL(ADEPT_EUNSUPPORTED, "%s: Split behavior \"%s\" is not supported", path, b);
        p->invert = jbool(j, "invert", 0);
    } else if (!strcmp(type, "Metaspace")) {
        p->kind = TOK_PRE_METASPACE;
        if (!metaspace_repl(j, p->repl, &p->repl_len))
            return FAIL(ADEPT_EFORMAT, "%s: Metaspace replacement must be one character", path);
        p->prepend = prepend_scheme(j);
        p->split = jbool(j, "split", 1);
    } else if (!strcmp(type, "Digits")) {
        p->kind = TOK_PRE_DIGITS;
        p->split = jbool(j, "individual_digits", 0);
    } else if (!strcmp(type, "Sequence")) {
        const cJSON *a = jget(j, "pretokenizers");
        if (!cJSON_IsArray(a)) return FAIL(ADEPT_EFORMAT, "%s: Sequence pre-tokenizer without \"pretokenizers\"", path);
        p->kind = TOK_PRE_SEQUENCE;
        int cnt = cJSON_GetArraySize(a);
        p->items = calloc(cnt ? cnt : 1, sizeof *p->items);
        if (!p->items) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
        const cJSON *it;
        cJSON_ArrayForEach(it, a) ADEPT_TRY(load_pre(it, &p->items[p->nitems++], path, depth + 1, byte_level));
    } else
        return FAIL(ADEPT_EUNSUPPORTED, "%s: pre_tokenizer type \"%s\" is not supported (supported: ByteLevel, "
                    "Split, Metaspace, Digits, Sequence)", path, type);
    return ADEPT_OK;
}

static adept_status load_dec(const cJSON *j, tok_dec *d, const char *path, int depth) {
    memset(d, 0, sizeof *d);
    const char *type = cJSON_IsObject(j) ? jstr(j, "type") : NULL;
    if (!type) return FAIL(ADEPT_EFORMAT, "%s: decoder without a \"type\"", path);
    if (depth > 16) return FAIL(ADEPT_EFORMAT, "%s: decoders nested too deeply", path);
    if (!strcmp(type, "ByteLevel")) d->kind = TOK_DEC_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) d->kind = TOK_DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d->kind = TOK_DEC_FUSE;
    else if (!strcmp(type, "Metaspace")) {
        d->kind = TOK_DEC_METASPACE;
        if (!metaspace_repl(j, d->repl, &d->repl_len))
            return FAIL(ADEPT_EFORMAT, "%s: Metaspace replacement must be one character", path);
        d->prepend = prepend_scheme(j);
    } else if (!strcmp(type, "Strip")) {
        const char *c = jstr(j, "content");
        d->kind = TOK_DEC_STRIP;
        d->len = c ? strlen(c) : 0;
        d->str = dupn(c ? c : "", d->len);
        if (!d->str) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
        ADEPT_TRY(jint(j, "start", 0, 1 << 20, 0, path, "Strip decoder", &d->start));
        ADEPT_TRY(jint(j, "stop", 0, 1 << 20, 0, path, "Strip decoder", &d->stop));
    } else if (!strcmp(type, "Replace")) {
        const char *c = jstr(j, "content");
        d->kind = TOK_DEC_REPLACE;
        d->len = c ? strlen(c) : 0;
        d->str = dupn(c ? c : "", d->len);
        if (!d->str) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
        ADEPT_TRY(load_pattern(jget(j, "pattern"), &d->pat, path, "Replace decoder"));
    } else if (!strcmp(type, "Sequence")) {
        const cJSON *a = jget(j, "decoders");
        if (!cJSON_IsArray(a)) return FAIL(ADEPT_EFORMAT, "%s: Sequence decoder without \"decoders\"", path);
        d->kind = TOK_DEC_SEQUENCE;
        int cnt = cJSON_GetArraySize(a);
        d->items = calloc(cnt ? cnt : 1, sizeof *d->items);
        if (!d->items) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
        const cJSON *it;
        cJSON_ArrayForEach(it, a) ADEPT_TRY(load_dec(it, &d->items[d->nitems++], path, depth + 1));
    } else
        return FAIL(ADEPT_EUNSUPPORTED, "%s: decoder type \"%s\" is not supported (supported: ByteLevel, "
                    "ByteFallback, Fuse, Metaspace, Strip, Replace, Sequence)", path, type);
    return ADEPT_OK;
}

static int32_t lookup_any(const adept_tokenizer *tok, const char *s) {
    return s ? adept_tokenizer_token_to_id(tok, s, strlen(s)) : -1;
}

/* TemplateProcessing "single": special ids before / after sequence A; ByteLevel / Roberta / none. */
static adept_status load_post(const cJSON *j, adept_tokenizer *tok, const char *path) {
    tok_hf *hf = tok->hf;
    if (is_null(j)) return ADEPT_OK;
    const char *type = cJSON_IsObject(j) ? jstr(j, "type") : NULL;
    if (!type) return FAIL(ADEPT_EFORMAT, "%s: post_processor without a \"type\"", path);
    if (!strcmp(type, "ByteLevel")) return ADEPT_OK; /* offsets only: no effect on ids */
    if (!strcmp(type, "Sequence")) { /* Llama-3.1+: [ByteLevel, TemplateProcessing]; at most one adds tokens */
        const cJSON *a = jget(j, "processors"), *it;
        if (!cJSON_IsArray(a)) return FAIL(ADEPT_EFORMAT, "%s: Sequence post_processor without \"processors\"", path);
        if (cJSON_GetArraySize(a) > 16) return FAIL(ADEPT_EUNSUPPORTED, "%s: post_processor Sequence too long", path);
        cJSON_ArrayForEach(it, a) {
            const char *t = cJSON_IsObject(it) ? jstr(it, "type") : NULL;
            if (t && !strcmp(t, "Sequence")) return FAIL(ADEPT_EUNSUPPORTED, "%s: nested post_processor Sequence", path);
            if (t && strcmp(t, "ByteLevel") && hf->tpl_pre)
                return FAIL(ADEPT_EUNSUPPORTED, "%s: two post-processors that add tokens in a Sequence", path);
            ADEPT_TRY(load_post(it, tok, path));
        }
        return ADEPT_OK;
    }
    int32_t pre[8], post[8];
    int npre = 0, npost = 0;
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = jget(j, "single");
        if (!cJSON_IsArray(single)) return FAIL(ADEPT_EFORMAT, "%s: TemplateProcessing without \"single\"", path);
        int seen_a = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, single) {
            const cJSON *sp = jget(it, "SpecialToken"), *sq = jget(it, "Sequence");
            if (cJSON_IsObject(sq)) {
                seen_a = 1;
                continue;
            }
            const char *name = cJSON_IsObject(sp) ? jstr(sp, "id") : NULL;
            if (!name) return FAIL(ADEPT_EFORMAT, "%s: TemplateProcessing item is neither SpecialToken nor Sequence", path);
            /* the ids come from "special_tokens" (name -> ids) when present, else from the vocabulary */
            const cJSON *st = jget(jget(j, "special_tokens"), name), *ids = jget(st, "ids");
            int32_t idv[8];
            int nid = 0;
            if (cJSON_IsArray(ids)) {
                const cJSON *x;
                cJSON_ArrayForEach(x, ids) {
                    int64_t v;
                    if (nid == 8 || !adept_json_int(x, 0, tok->nids - 1, &v))
                        return FAIL(ADEPT_EFORMAT, "%s: special token %s: ids must be at most 8 integers in [0, %d)",
                                    path, name, tok->nids);
                    idv[nid++] = (int32_t)v;
                }
            } else if ((idv[0] = lookup_any(tok, name)) >= 0) nid = 1;
            else return FAIL(ADEPT_EFORMAT, "%s: TemplateProcessing special token \"%s\" is not in the vocabulary", path, name);
            for (int k = 0; k < nid; k++) {
                if (idv[k] < 0 || idv[k] >= tok->nids) return FAIL(ADEPT_EFORMAT, "%s: special token id %d out of range", path, idv[k]);
                if (seen_a ? npost == 8 : npre == 8) return FAIL(ADEPT_EUNSUPPORTED, "%s: template too long", path);
                if (seen_a) post[npost++] = idv[k];
                else pre[npre++] = idv[k];
            }
        }
    } else if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = jget(j, "cls"), *sep = jget(j, "sep");
        const cJSON *c1 = cJSON_GetArrayItem(cls, 1), *s1 = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(c1) || !cJSON_IsNumber(s1)) return FAIL(ADEPT_EFORMAT, "%s: %s without cls/sep", path, type);
        int64_t cid, sid; /* range-checked before any conversion: the file may hold any double */
        if (!adept_json_int(c1, 0, tok->nids - 1, &cid) || !adept_json_int(s1, 0, tok->nids - 1, &sid))
            return FAIL(ADEPT_EFORMAT, "%s: %s cls/sep ids must be integers in [0, %d)", path, type, tok->nids);
        pre[npre++] = (int32_t)cid;
        post[npost++] = (int32_t)sid;
    } else
        return FAIL(ADEPT_EUNSUPPORTED, "%s: post_processor type \"%s\" is not supported (supported: "
                    "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing)", path, type);
    hf->tpl_pre = malloc(sizeof pre);
    hf->tpl_post = malloc(sizeof post);
    if (!hf->tpl_pre || !hf->tpl_post) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
    memcpy(hf->tpl_pre, pre, sizeof pre);
    memcpy(hf->tpl_post, post, sizeof post);
    hf->n_tpl_pre = npre;
    hf->n_tpl_post = npost;
    return ADEPT_OK;
}

static adept_status set_token(adept_tokenizer *tok, int32_t id, const char *s, size_t len, const char *path) {
    if (tok->tok[id]) {
        if (tok->tok_len[id] == len && !memcmp(tok->tok[id], s, len)) return ADEPT_OK;
        free(tok->tok[id]);
    }
    tok->tok[id] = dupn(s, len);
    if (!tok->tok[id]) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
    tok->tok_len[id] = (uint32_t)len;
    return ADEPT_OK;
}

static adept_status load_added(const cJSON *added, adept_tokenizer *tok, const char *path, int *added_at);

static adept_status load_model(const cJSON *root, adept_tokenizer *tok, const char *path) {
    tok_hf *hf = tok->hf;
    const cJSON *m = jget(root, "model");
    const char *type = cJSON_IsObject(m) ? jstr(m, "type") : NULL;
    if (!cJSON_IsObject(m)) return FAIL(ADEPT_EFORMAT, "%s: no \"model\" object", path);
    if (type && strcmp(type, "BPE"))
        return FAIL(ADEPT_EUNSUPPORTED, "%s: model type \"%s\" is not supported (only BPE)", path, type);
    const cJSON *vocab = jget(m, "vocab"), *merges = jget(m, "merges");
    if (!cJSON_IsObject(vocab)) return FAIL(ADEPT_EFORMAT, "%s: model.vocab must be an object", path);
    if (!is_null(merges) && !cJSON_IsArray(merges)) return FAIL(ADEPT_EFORMAT, "%s: model.merges must be an array", path);
    const cJSON *d = jget(m, "dropout");
    if (cJSON_IsNumber(d) && d->valuedouble > 0)
        return FAIL(ADEPT_EUNSUPPORTED, "%s: BPE dropout %g is not supported (inference tokenization)", path, d->valuedouble);
    const char *cp = jstr(m, "continuing_subword_prefix"), *ew = jstr(m, "end_of_word_suffix");
    if ((cp && *cp) || (ew && *ew))
        return FAIL(ADEPT_EUNSUPPORTED, "%s: BPE continuing_subword_prefix / end_of_word_suffix are not supported", path);
    hf->byte_fallback = jbool(m, "byte_fallback", 0);
    hf->fuse_unk = jbool(m, "fuse_unk", 0);
    hf->ignore_merges = jbool(m, "ignore_merges", 0);

    /* ids: the model vocabulary and the added tokens together */
    int32_t maxid = -1;
    size_t nv = 0;
    const cJSON *it;
    int64_t idv;
    cJSON_ArrayForEach(it, vocab) {
        if (!adept_json_int(it, 0, (1 << 24) - 1, &idv))
            return FAIL(ADEPT_EFORMAT, "%s: vocab entry \"%.64s\" must have an integer id in [0, 2^24)", path,
                        it->string ? it->string : "");
        if ((int32_t)idv > maxid) maxid = (int32_t)idv;
        nv++;
    }
    const cJSON *added = jget(root, "added_tokens");
    if (!is_null(added) && !cJSON_IsArray(added)) return FAIL(ADEPT_EFORMAT, "%s: added_tokens must be an array", path);
    cJSON_ArrayForEach(it, added) {
        if (!adept_json_int(jget(it, "id"), 0, (1 << 24) - 1, &idv) || !jstr(it, "content"))
            return FAIL(ADEPT_EFORMAT, "%s: added token without a valid id in [0, 2^24) and content", path);
        if ((int32_t)idv > maxid) maxid = (int32_t)idv;
    }
    if (maxid < 0) return FAIL(ADEPT_EFORMAT, "%s: empty vocabulary", path);
    tok->nids = maxid + 1;
    tok->tok = calloc((size_t)tok->nids, sizeof *tok->tok);
    tok->tok_len = calloc((size_t)tok->nids, sizeof *tok->tok_len);
    tok->is_special = calloc((size_t)tok->nids, 1);
    if (!tok->tok || !tok->tok_len || !tok->is_special) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
    ADEPT_TRY(tok_smap_init(&tok->vocab, nv));
    cJSON_ArrayForEach(it, vocab) {
        size_t len = strlen(it->string);
        int32_t id = (int32_t)it->valuedouble; /* range-checked above */
        /* two strings with one id: decoding that id would pick one silently (keys are unique: checked) */
        if (tok->tok[id])
            return FAIL(ADEPT_EFORMAT, "%s: model.vocab: \"%.64s\" and \"%.64s\" share the id %d (an id may name one "
                        "token)", path, tok->tok[id], it->string, id);
        ADEPT_TRY(tok_smap_put(&tok->vocab, it->string, len, id));
        ADEPT_TRY(set_token(tok, id, it->string, len, path));
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        hf->byte_ids[b] = tok_smap_get(&tok->vocab, name, 6);
    }
    const char *unk = jstr(m, "unk_token");
    hf->unk_id = unk ? tok_smap_get(&tok->vocab, unk, strlen(unk)) : -1;
    if (unk && hf->unk_id < 0) return FAIL(ADEPT_EFORMAT, "%s: unk_token \"%.64s\" is not in the vocabulary", path, unk);

    int nm = cJSON_GetArraySize(merges);
    ADEPT_TRY(tok_pmap_init(&hf->merges, (size_t)nm));
    int rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t la, lb;
        char *tmp = NULL;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1]) return FAIL(ADEPT_EFORMAT, "%s: merge %d \"%.64s\" is not \"left right\"", path, rank, s);
            a = s; la = (size_t)(sp - s);
            b = sp + 1; lb = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring; la = strlen(a);
            b = cJSON_GetArrayItem(it, 1)->valuestring; lb = strlen(b);
        } else return FAIL(ADEPT_EFORMAT, "%s: merge %d must be a string \"a b\" or a pair [a, b]", path, rank);
        int32_t ia = tok_smap_get(&tok->vocab, a, la), ib = tok_smap_get(&tok->vocab, b, lb);
        tmp = malloc(la + lb + 1);
        if (!tmp) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
        memcpy(tmp, a, la);
        memcpy(tmp + la, b, lb);
        int32_t im = tok_smap_get(&tok->vocab, tmp, la + lb);
        free(tmp);
        if (ia < 0 || ib < 0 || im < 0)
            return FAIL(ADEPT_EFORMAT, "%s: merge %d (\"%.*s\" \"%.*s\") uses a token that is not in the vocabulary",
                        path, rank, (int)(la > 64 ? 64 : la), a, (int)(lb > 64 ? 64 : lb), b);
        ADEPT_TRY(tok_pmap_put(&hf->merges, ia, ib, rank, im));
        rank++;
    }

    /* added tokens */
    int na = cJSON_GetArraySize(added);
    hf->added = calloc(na ? na : 1, sizeof *hf->added);
    if (!hf->added) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
    ADEPT_TRY(tok_smap_init(&tok->added_map, (size_t)na + 1));
    int *added_at = calloc((size_t)tok->nids, sizeof *added_at); /* id -> 1 + index in hf->added */
    if (!added_at) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
    adept_status ast = load_added(added, tok, path, added_at);
    free(added_at);
    return ast;
}

static adept_status load_added(const cJSON *added, adept_tokenizer *tok, const char *path, int *added_at) {
    tok_hf *hf = tok->hf;
    const cJSON *it;
    cJSON_ArrayForEach(it, added) {
        tok_added *t = &hf->added[hf->nadded];
        const char *c = jstr(it, "content");
        t->len = strlen(c);
        t->id = (int32_t)jget(it, "id")->valuedouble; /* range-checked above */
        /* An added token may repeat its vocabulary entry (same id and content) or redefine that id (it wins, as
           in tokenizers); two added tokens on one id, or one content on two ids, make encode or decode a guess. */
        if (t->len) {
            int32_t prev = tok_smap_get(&tok->added_map, c, t->len);
            if (prev >= 0 && prev != t->id)
                return FAIL(ADEPT_EFORMAT, "%s: added_tokens: \"%.64s\" is given twice, with ids %d and %d", path, c,
                            prev, t->id);
            if (prev < 0 && added_at[t->id])
                return FAIL(ADEPT_EFORMAT, "%s: added_tokens: \"%.64s\" and \"%.64s\" share the id %d", path,
                            hf->added[added_at[t->id] - 1].content, c, t->id);
            added_at[t->id] = hf->nadded + 1;
        }
        t->special = jbool(it, "special", 0);
        t->lstrip = jbool(it, "lstrip", 0);
        t->rstrip = jbool(it, "rstrip", 0);
        t->single_word = jbool(it, "single_word", 0);
        t->normalized = jbool(it, "normalized", !t->special);
        if (!t->len) continue; /* an empty added token can never match */
        t->content = dupn(c, t->len);
        if (!t->content) return FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
        hf->nadded++;
        ADEPT_TRY(tok_smap_put(&tok->added_map, c, t->len, t->id));
        ADEPT_TRY(set_token(tok, t->id, c, t->len, path));
        if (t->special) tok->is_special[t->id] = 1;
    }
    return ADEPT_OK;
}

/* bos/eos: tokenizer_config.json beside the file (as transformers reads them), else the template's first/last.
   A side file that is not JSON is ignored (ids keep the template's values); one that repeats a key, or that is
   not a regular file, is an error: the first would be a guess, the second could block. */
static adept_status load_bos_eos(adept_tokenizer *tok, const char *path) {
    tok_hf *hf = tok->hf;
    if (hf->n_tpl_pre) tok->bos = hf->tpl_pre[0];
    if (hf->n_tpl_post) tok->eos = hf->tpl_post[hf->n_tpl_post - 1];
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s", path);
    char *slash = strrchr(cfg, '/');
    if (slash) snprintf(slash + 1, sizeof cfg - (size_t)(slash + 1 - cfg), "tokenizer_config.json");
    else snprintf(cfg, sizeof cfg, "tokenizer_config.json");
    /* without a side file: the conventional names (GPT-2's <|endoftext|> is both) */
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", NULL};
    char *buf = NULL;
    size_t n = 0;
    adept_status st = tok->from_memory ? ADEPT_ENOTFOUND : adept_input_read(cfg, "tokenizer_config.json", 64u << 20, &buf, &n);
    if (st == ADEPT_ENOTFOUND) {
        adept_clear_error();
        for (int i = 0; tok->bos < 0 && bos_names[i]; i++)
            tok->bos = tok_smap_get(&tok->added_map, bos_names[i], strlen(bos_names[i]));
        for (int i = 0; tok->eos < 0 && eos_names[i]; i++)
            tok->eos = tok_smap_get(&tok->added_map, eos_names[i], strlen(eos_names[i]));
        return ADEPT_OK;
    }
    if (st != ADEPT_OK) return st;
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!j) return ADEPT_OK; /* a broken side file does not stop the tokenizer; ids keep the template's values */
    st = adept_json_check_unique(j, cfg);
    static const char *const keys[2] = {"bos_token", "eos_token"};
    for (int k = 0; k < 2 && st == ADEPT_OK; k++) {
        const cJSON *v = jget(j, keys[k]);
        const char *s = cJSON_IsString(v) ? v->valuestring : cJSON_IsObject(v) ? jstr(v, "content") : NULL;
        int32_t id = lookup_any(tok, s);
        if (id >= 0) *(k ? &tok->eos : &tok->bos) = id;
    }
    cJSON_Delete(j);
    return st;
}

adept_status tok_json_load(const char *path, const char *data, size_t n, adept_tokenizer *tok) {
    tok_bytelevel_init();
    cJSON *root = cJSON_ParseWithLength(data, n);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        size_t off = e && e >= data && e <= data + n ? (size_t)(e - data) : 0;
        return FAIL(ADEPT_EFORMAT, "%s: invalid JSON near byte %zu", path, off);
    }
    adept_status st = adept_json_check_unique(root, path);
    tok->hf = calloc(1, sizeof *tok->hf);
    if (!tok->hf && st == ADEPT_OK) st = FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
    if (st == ADEPT_OK && !cJSON_IsObject(root)) st = FAIL(ADEPT_EFORMAT, "%s: top level is not an object", path);
    if (st == ADEPT_OK) st = load_model(root, tok, path);
    const cJSON *c;
    if (st == ADEPT_OK && !is_null(c = jget(root, "normalizer"))) {
        tok->hf->norm = calloc(1, sizeof *tok->hf->norm);
        st = tok->hf->norm ? load_norm(c, tok->hf->norm, path, 0) : FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
    }
    if (st == ADEPT_OK && !is_null(c = jget(root, "pre_tokenizer"))) {
        tok->hf->pre = calloc(1, sizeof *tok->hf->pre);
        st = tok->hf->pre ? load_pre(c, tok->hf->pre, path, 0, &tok->hf->byte_level)
                          : FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
    }
    if (st == ADEPT_OK && !is_null(c = jget(root, "decoder"))) {
        tok->hf->dec = calloc(1, sizeof *tok->hf->dec);
        st = tok->hf->dec ? load_dec(c, tok->hf->dec, path, 0) : FAIL(ADEPT_ENOMEM, "%s: out of memory", path);
    }
    if (st == ADEPT_OK) st = load_post(jget(root, "post_processor"), tok, path);
    cJSON_Delete(root);
    if (st == ADEPT_OK) st = load_bos_eos(tok, path);
    if (st == ADEPT_OK) st = tok_hf_prepare(tok, path);
    return st;
}

void tok_hf_free(tok_hf *hf) {
    tok_pmap_free(&hf->merges);
    if (hf->norm) { tok_norm_free(hf->norm); free(hf->norm); }
    if (hf->pre) { tok_pretok_free(hf->pre); free(hf->pre); }
    if (hf->dec) { tok_dec_free(hf->dec); free(hf->dec); }
    free(hf->tpl_pre);
    free(hf->tpl_post);
    for (int i = 0; i < hf->nadded; i++) {
        free(hf->added[i].content);
        free(hf->added[i].ncontent);
    }
    free(hf->added);
    free(hf);
}
