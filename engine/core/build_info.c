/* Build and machine facts for provenance: the embedded git commit, OpenBLAS's kernels, the CPU model. */
#include "adept/build_info.h"

#include <stdio.h>
#include <string.h>

#include "adept_commit.h" /* generated at every build by cmake/git_commit.cmake: ADEPT_GIT_COMMIT */

extern char *openblas_get_corename(void); /* from libopenblas; declared here to avoid cblas.h in core */

const char *adept_git_commit(void) { return ADEPT_GIT_COMMIT; }

const char *adept_blas_core(void) {
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

const char *adept_cpu_name(char *buf, unsigned cap) {
    if (!cap) return "";
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return buf;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        snprintf(buf, cap, "%s", v);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
    return buf;
}
