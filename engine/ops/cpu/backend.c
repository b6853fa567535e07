/* The CPU dispatch table: OpenMP kernels from this folder, installed for ADEPT_CPU by default. */
#include "ops/cpu/cpu.h"

static const adept_ops_backend cpu_backend = {
    .name = "cpu",
    .unary = adept_cpu_unary,
    .binary = adept_cpu_binary,
    .scalar = adept_cpu_scalar,
    .reduce = adept_cpu_reduce,
    .reduce_dim = adept_cpu_reduce_dim,
    .dot3 = adept_cpu_dot3,
    .topk = adept_cpu_topk,
    .copy = adept_cpu_copy,
};

const adept_ops_backend *adept_ops_cpu_backend(void) { return &cpu_backend; }
