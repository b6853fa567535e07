#!/usr/bin/python3
"""Parity of the tensor ops with PyTorch: adeptlua computes every op on randn tensors of odd shapes and prints
inputs and results (%.9g round-trips float32 exactly); torch recomputes them in float64 from the same inputs."""
import os
import subprocess
import sys
import tempfile

from common import adeptlua, require_modules

(torch,) = require_modules("torch")
exe = adeptlua()

LUA = r"""
local function dump(name, t)
  if type(t) == "number" then io.write(name, " | ", string.format("%.17g", t), "\n") return end
  local flat, out = {}, {}
  local function walk(x) if type(x) == "table" then for i = 1, #x do walk(x[i]) end else flat[#flat + 1] = x end end
  walk(t:table())
  for i = 1, #flat do out[i] = string.format("%.9g", flat[i]) end
  io.write(name, " ", table.concat(t:shape(), ","), " | ", table.concat(out, " "), "\n")
end
local shapes = {{1}, {7}, {3, 5}, {1023}, {4, 33, 3}, {4097}}
for s, shape in ipairs(shapes) do
  local a, b = adept.randn(shape, 100 + s), adept.randn(shape, 200 + s)
  local p = "s" .. s .. "."
  dump(p .. "a", a) dump(p .. "b", b)
  dump(p .. "abs", a:abs()) dump(p .. "square", a:square()) dump(p .. "sqrt", a:abs():sqrt())
  dump(p .. "add", a + b) dump(p .. "sub", a - b) dump(p .. "mul", a * b) dump(p .. "div", a / b)
  dump(p .. "mul3", a:mul(3.5)) dump(p .. "div3", a:div(-3)) dump(p .. "rsub", 1 - a)
  dump(p .. "sum", a:sum()) dump(p .. "mean", a:mean()) dump(p .. "max", a:max()) dump(p .. "min", a:min())
  dump(p .. "norm", a:norm()) dump(p .. "dot", a:dot(b)) dump(p .. "cosine", a:cosine(b))
  for d = 1, #shape do dump(p .. "sum_dim" .. d, a:sum(d)) dump(p .. "mean_dim" .. d, a:mean(d)) end
  local k = math.min(5, a:numel())
  local v, idx = a:topk(k)
  dump(p .. "topk", v)
  io.write(p .. "topk_idx | ", table.concat(idx, " "), "\n")
end
"""


def parse(text):
    out = {}
    for line in text.splitlines():
        head, _, vals = line.partition(" | ")
        parts = head.split(" ")
        name = parts[0]
        nums = [float(v) for v in vals.split()] if vals.strip() else []
        if len(parts) == 2:  # a tensor: "name d1,d2 | values"
            shape = [int(d) for d in parts[1].split(",")] if parts[1] else []
            out[name] = torch.tensor(nums, dtype=torch.float32).double().reshape(shape)  # %.9g -> exact float
        else:
            out[name] = nums[0] if name.endswith((".sum", ".mean", ".max", ".min", ".norm", ".dot", ".cosine")) else nums
    return out


def main():
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA)
    res = subprocess.run([exe, f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if res.returncode != 0:
        print(res.stdout, res.stderr)
        return 1
    r = parse(res.stdout)
    failures, checks = [], 0

    def close(name, got, want, rel):
        nonlocal checks
        checks += 1
        got = torch.as_tensor(got, dtype=torch.float64)
        want = torch.as_tensor(want, dtype=torch.float64)
        if got.shape != want.shape:
            failures.append(f"{name}: shape {list(got.shape)} != {list(want.shape)}")
            return
        err = ((got - want).abs() / want.abs().clamp(min=1.0)).max().item() if got.numel() else 0.0
        if not err <= rel:
            failures.append(f"{name}: max relative error {err:.3g} > {rel:g}")

    for s in range(1, 7):
        p = f"s{s}."
        a, b = r[p + "a"], r[p + "b"]
        f32 = lambda t: t.float().double()  # results of float32 element-wise math
        close(p + "abs", r[p + "abs"], a.abs(), 0)
        close(p + "square", r[p + "square"], f32(a.float() * a.float()), 0)
        close(p + "sqrt", r[p + "sqrt"], f32(a.float().abs().sqrt()), 0)
        close(p + "add", r[p + "add"], f32(a.float() + b.float()), 0)
        close(p + "sub", r[p + "sub"], f32(a.float() - b.float()), 0)
        close(p + "mul", r[p + "mul"], f32(a.float() * b.float()), 0)
        close(p + "div", r[p + "div"], f32(a.float() / b.float()), 0)
        close(p + "mul3", r[p + "mul3"], f32(a.float() * 3.5), 0)
        close(p + "div3", r[p + "div3"], f32(a.float() / -3), 0)
        close(p + "rsub", r[p + "rsub"], f32(1 - a.float()), 0)
        # whole-tensor reductions accumulate the f32 values in double on both sides, in other orders: within
        # 2 n 2^-53 of the sum of the terms' magnitudes (Higham), here as a fraction of max(1, |result|), the
        # error measure of close(); a sum of squares has positive terms, and the cosine adds the dot's and the
        # two norms' bounds. Elementwise ops are one IEEE rounding on both sides: exact.
        n = a.numel()
        g = 2 * n * 2.0 ** -53
        rel = lambda terms, result: g * float(terms) / max(1.0, abs(float(result)))
        close(p + "sum", r[p + "sum"], a.sum(), rel(a.abs().sum(), a.sum()))
        close(p + "mean", r[p + "mean"], a.mean(), rel(a.abs().sum() / n, a.mean()))
        close(p + "max", r[p + "max"], a.max(), 0)
        close(p + "min", r[p + "min"], a.min(), 0)
        close(p + "norm", r[p + "norm"], a.norm(), g + 2.0 ** -53)
        close(p + "dot", r[p + "dot"], (a * b).sum(), rel((a * b).abs().sum(), (a * b).sum()))
        cos = torch.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        close(p + "cosine", r[p + "cosine"], cos,
              rel((a * b).abs().sum() / (a.norm() * b.norm()), cos) + 2 * g + 4 * 2.0 ** -53)
        # reductions along a dim return f32: one rounding of a double sum (u = 2^-24 = 6e-8 of the result)
        for d in range(a.dim()):
            close(p + f"sum_dim{d + 1}", r[p + f"sum_dim{d + 1}"], f32(a.sum(d)), 1e-7)
            close(p + f"mean_dim{d + 1}", r[p + f"mean_dim{d + 1}"], f32(a.mean(d)), 1e-7)
        k = min(5, a.numel())
        tv, ti = torch.topk(a.flatten(), k)
        close(p + "topk", r[p + "topk"], tv, 0)
        checks += 1
        if [i + 1 for i in ti.tolist()] != [int(i) for i in r[p + "topk_idx"]]:
            failures.append(f"{p}topk indices {r[p + 'topk_idx']} != torch's (1-based) {[i + 1 for i in ti.tolist()]}")
    for msg in failures:
        print("FAIL", msg)
    print(f"{checks - len(failures)} passed, {len(failures)} failed (torch {torch.__version__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
