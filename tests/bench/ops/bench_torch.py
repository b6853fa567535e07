#!/usr/bin/python3
"""The PyTorch half of tests/bench/ops/run: times the same ops and prints both columns with the ratio."""
import sys
import time

import torch

threads, n, adept_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
a, b = torch.randn(n, generator=g), torch.randn(n, generator=g)
m = torch.randn(1000, n // 1000, generator=g)
ops = {
    "sum": lambda: a.sum(), "max": lambda: a.max(), "norm": lambda: a.norm(), "dot": lambda: a.dot(b),
    "add": lambda: a + b, "mul_scalar": lambda: a * 2, "abs": lambda: a.abs(),
    "sum_dim1": lambda: m.sum(0), "sum_dim2": lambda: m.sum(1), "topk10": lambda: a.topk(10), "clone": lambda: a.clone(),
}
adept = dict(line.split() for line in open(adept_file) if line.strip())
print(f"tensor ops, n = {n} f32, {threads} threads (torch {torch.__version__}); best of 7, ms")
print(f"{'op':<12}{'adept':>10}{'torch':>10}{'ratio':>8}")
for name, fn in ops.items():
    fn()
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    ms, ours = best * 1e3, float(adept[name])
    print(f"{name:<12}{ours:>10.2f}{ms:>10.2f}{ours / ms:>8.2f}")
