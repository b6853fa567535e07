/* Build and machine facts for provenance: the embedded git commit, the vector ISA the engine was compiled for,
   OpenBLAS's kernels, the CPU model. */
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

/* The predefined macros of this translation unit, compiled with the engine's flags (-march=native unless
   PORTABLE=1): the instruction sets the compiler could use, which decide the code of the engine's own loops. */
const char *adept_build_isa(void) {
    return
#if defined(__x86_64__)
        "x86-64"
#elif defined(__aarch64__)
        "aarch64"
#else
        "other"
#endif
#ifdef __SSE4_2__
           " sse4.2"
#endif
#ifdef __AVX__
           " avx"
#endif
#ifdef __AVX2__
           " avx2"
#endif
#ifdef __FMA__
           " fma"
#endif
#ifdef __AVX512F__
           " avx512f"
#endif
#ifdef __AVX512BW__
           " avx512bw"
#endif
#ifdef __AVX512DQ__
           " avx512dq"
#endif
#ifdef __AVX512VL__
           " avx512vl"
#endif
#ifdef __AVX512BF16__
           " avx512bf16"
#endif
#ifdef __AVX512FP16__
           " avx512fp16"
#endif
        ;
}
