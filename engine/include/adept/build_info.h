/* What built and runs this engine, for provenance records and `adeptlua --version`. */
#ifndef ADEPT_BUILD_INFO_H
#define ADEPT_BUILD_INFO_H

/* The git commit the engine was built from ("0a84996c1d2e", "+dirty" appended when the work tree had
   changes), or "unknown" when it was not built from a git checkout. Embedded at build time. */
const char *adept_git_commit(void);
/* The vector instruction sets the engine was compiled for ("x86-64 sse4.2 avx avx2 fma avx512f ..."): two builds
   with the same list run the same code in the engine's own loops (OpenBLAS picks its kernels at run time). */
const char *adept_build_isa(void);
/* OpenBLAS's kernel family in use ("Haswell", "SkylakeX", "Prescott", ...). */
const char *adept_blas_core(void);
/* The CPU's model name from /proc/cpuinfo, or "unknown". Written into `buf` (cap bytes). */
const char *adept_cpu_name(char *buf, unsigned cap);

#endif
