/* One long text encoded on several threads (byte-level: chunks stitched by re-synchronising the pre-tokenizer scan;
   SentencePiece-style: chunks cut where no merge can cross) must give
   exactly the ids of the sequential encode: the shared tokenizers on random mixed-script texts and on
   real corpus text. Skips (77) without ADEPT_SHARED's tokenizers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adept/threads.h"
#include "adept/tokenizer.h"
#include "check.h"
#include "data/tok_internal.h"

static const char *const PIECES[] = {"the", "The", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "123", "4",
                                     "'s", "'LL", "don't", ",", ".", "!?", "...", "é", "naïve", "中文", "日本語",
                                     "😀", "👩‍👩‍👧", "<|endoftext|>", "<|begin_of_text|>", "Ω", "\xc2\xa0", "x",
                                     "supercalifragilistic", "$$$", "—", "\xe2\x80\xa8"};

static char *random_text(unsigned *seed, size_t target, size_t *len) {
    char *t = malloc(target + 64);
    size_t n = 0;
    size_t np = sizeof PIECES / sizeof *PIECES;
    while (n < target) {
        *seed = *seed * 1103515245u + 12345u;
        const char *p = PIECES[(*seed >> 8) % np];
        size_t l = strlen(p);
        if (n + l > target + 63) break;
        memcpy(t + n, p, l);
        n += l;
    }
    *len = n;
    return t;
}

static int same(const adept_tokenizer *tok, const char *text, size_t len, int threads) {
    adept_ids a = {0}, b = {0};
    tok_parallel_min_bytes = (size_t)-1;
    adept_set_threads(1);
    CHECK_OK(adept_tokenizer_encode(tok, text, len, 0, 0, &a));
    tok_parallel_min_bytes = 0;
    adept_set_threads(threads);
    CHECK_OK(adept_tokenizer_encode(tok, text, len, 0, 0, &b));
    int ok = a.n == b.n && !memcmp(a.ids, b.ids, a.n * sizeof *a.ids);
    if (!ok) fprintf(stderr, "  %zu bytes, %d threads: %zu vs %zu ids\n", len, threads, a.n, b.n);
    adept_ids_free(&a);
    adept_ids_free(&b);
    return ok;
}

int main(void) {
    const char *shared = getenv("ADEPT_SHARED");
    if (!shared) shared = "../shared";
    static const char *const names[] = {"gpt2", "llama3", "qwen3", "mistral"};
    int loaded = 0;
    char *corpus = NULL;
    size_t clen = 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/corpora/tinystories_val.txt", shared);
    FILE *f = fopen(path, "rb");
    if (f) {
        corpus = malloc(3 << 20);
        clen = fread(corpus, 1, 3 << 20, f);
        fclose(f);
    }
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/tokenizers/%s/tokenizer.json", shared, names[k]);
        adept_tokenizer *tok;
        if (adept_tokenizer_load(path, &tok) != ADEPT_OK) continue;
        loaded++;
        unsigned seed = 12345u + (unsigned)k;
        for (int r = 0; r < 60; r++) {
            size_t len;
            char *t = random_text(&seed, 50 + (size_t)r * 97, &len);
            CHECK(same(tok, t, len, 2 + r % 7));
            free(t);
        }
        if (corpus) {
            CHECK(same(tok, corpus, clen, 4));
            CHECK(same(tok, corpus + 1, clen / 3, 3)); /* starts mid-character-run */
        }
        adept_tokenizer_free(tok);
    }
    free(corpus);
    if (!loaded) {
        printf("SKIP: no shared tokenizers under %s/tokenizers\n", shared);
        return 77;
    }
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}
