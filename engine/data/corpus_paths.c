/* Corpus paths: a list of files, glob patterns (glob(3), sorted) and directories (walked recursively in sorted
   order, names starting with '.' skipped) expanded into the files to read, in the order given. */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adept/input.h"
#include "data/corpus_internal.h"

typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

static adept_status strlist_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return adept_fail(ADEPT_ENOMEM, "dataset: out of memory listing files");
        l->v = v, l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return adept_fail(ADEPT_ENOMEM, "dataset: out of memory listing files");
    l->n++;
    return ADEPT_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static adept_status walk_dir(const char *dir, strlist *out, int depth) {
    if (depth > 64) return adept_fail(ADEPT_EINVAL, "dataset: %s: directories nested deeper than 64 levels", dir);
    DIR *d = opendir(dir);
    if (!d) return adept_fail(ADEPT_EIO, "dataset: %s: cannot open directory: %s", dir, strerror(errno));
    strlist names = {0};
    adept_status st = ADEPT_OK;
    struct dirent *e;
    while (st == ADEPT_OK && (e = readdir(d)))
        if (e->d_name[0] != '.') st = strlist_push(&names, e->d_name);
    closedir(d);
    if (names.n) qsort(names.v, names.n, sizeof *names.v, cmp_str);
    for (size_t i = 0; i < names.n && st == ADEPT_OK; i++) {
        size_t n = strlen(dir) + strlen(names.v[i]) + 2;
        char *p = malloc(n);
        if (!p) { st = adept_fail(ADEPT_ENOMEM, "dataset: out of memory"); break; }
        snprintf(p, n, "%s/%s", dir, names.v[i]);
        struct stat sb;
        if (stat(p, &sb) != 0) st = adept_fail(ADEPT_EIO, "dataset: %s: %s", p, strerror(errno));
        else if (S_ISDIR(sb.st_mode)) st = walk_dir(p, out, depth + 1);
        else if (S_ISREG(sb.st_mode)) st = strlist_push(out, p);
        free(p);
    }
    adept_corpus_list_free(names.v, names.n);
    return st;
}

static adept_status add_path(const char *path, strlist *out) {
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            size_t before = out->n;
            ADEPT_TRY(walk_dir(path, out, 0));
            if (out->n == before) return adept_fail(ADEPT_ENOTFOUND, "dataset: %s: directory holds no files", path);
            return ADEPT_OK;
        }
        if (!S_ISREG(sb.st_mode)) /* a FIFO would block, a device never end */
            return adept_fail(ADEPT_EINVAL, "dataset: %s is %s, not a regular file or directory", path,
                              adept_input_kind(sb.st_mode));
        return strlist_push(out, path);
    }
    if (!strpbrk(path, "*?[")) return adept_fail(ADEPT_ENOTFOUND, "dataset: %s: no such file or directory", path);
    glob_t g;
    int rc = glob(path, 0, NULL, &g); /* sorted by glob(3) */
    if (rc == GLOB_NOMATCH) return adept_fail(ADEPT_ENOTFOUND, "dataset: no file matches '%s'", path);
    if (rc != 0) return adept_fail(ADEPT_EIO, "dataset: glob '%s' failed", path);
    adept_status st = ADEPT_OK;
    for (size_t i = 0; i < g.gl_pathc && st == ADEPT_OK; i++) {
        if (stat(g.gl_pathv[i], &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) st = walk_dir(g.gl_pathv[i], out, 0);
        else if (S_ISREG(sb.st_mode)) st = strlist_push(out, g.gl_pathv[i]);
    }
    globfree(&g);
    return st;
}

adept_status adept_corpus_list(const char *const *paths, int npaths, char ***files, size_t *nfiles) {
    *files = NULL, *nfiles = 0;
    if (npaths <= 0) return adept_fail(ADEPT_EINVAL, "dataset: no path given");
    strlist out = {0};
    for (int i = 0; i < npaths; i++) {
        adept_status st = paths[i] ? add_path(paths[i], &out) : adept_fail(ADEPT_EINVAL, "dataset: path %d is NULL", i);
        if (st != ADEPT_OK) { adept_corpus_list_free(out.v, out.n); return st; }
    }
    *files = out.v, *nfiles = out.n;
    return ADEPT_OK;
}

void adept_corpus_list_free(char **files, size_t nfiles) {
    for (size_t i = 0; i < nfiles; i++) free(files[i]);
    free(files);
}
