#!/usr/bin/python3
"""precision "bf16" (issue 12, docs/model.md "Precision"): fp32 master weights, every product of an fp32 weight
rounds the weight and its activation operand (backward: the output gradient and the saved input) to bf16 and
accumulates in fp32; norms, attention, softmax and cross-entropy stay fp32. Tiny fp32 checkpoints (Llama untied,
Qwen2 tied with q/k/v biases, Qwen3 with q/k norms) run through adeptlua on the CPU with precision "bf16", every
row trainable, against two float64 references:
  - the same model with exactly adeptlua's roundings (BF16Linear below): logits, loss and every gradient within
    TOL, fp32 accumulation error only. The rounding must move the results well past TOL, so this sees it.
  - the UNROUNDED model (what fp32 training computes): logits and loss within the issue's bound for the bf16
    path, 1e-2 normwise. The gradients are NOT within 1e-2 of it row by row: the float64 model with the same
    roundings is itself 1e-2 - 4e-2 away on the rows behind attention scores and norms (q/k projections, q/k
    norms, norm gains: dS = P (dP - D) cancels), so no bf16 implementation could be; the test checks that
    adeptlua's distance is the roundings' own (within 1% of the rounded reference's, plus TOL) and prints it.
The matrices are the shared tiny weights scaled by 1/2 (std 0.15: a per-layer gain of ~0.7, so the three layers
do not amplify the roundings; at std 0.3 the rounded reference's logits are already 1.1e-2 - 1.7e-2 away).
precision "f32" on the same directory must match the unrounded reference within TOL."""
import os
import sys
import tempfile

from common import adeptlua, check, failures, read_safetensors, run_lua_cases, write_hf_dir
import reference  # skips (77) without torch / numpy
from reference import tiny_config, tiny_weights
from bf16_rounding import bf16, closest, which

torch = reference.torch
torch.set_num_threads(1)

# fp32 accumulation against float64 on the same rounded operands, as test_bf16_frozen.py derives it: at most 28
# products in the forward (3 layers x 9 + the head) and twice that in the backward, each a sum of at most K = 41
# terms (the head's backward sums over the vocabulary) within 2 K u (u = 2^-24) of their magnitudes.
TOL = 84 * 2 * 41 * 2.0 ** -24
# the bound for the bf16 path against the unrounded (fp32-exact) model
BOUND_BF16 = 1e-2


def exact_bf16(w):
    """a weight rounded to bf16: the fp32 masters are the same numbers on both sides, so they round alike (no
    midpoint ambiguity to record, unlike activations)"""
    return w.float().bfloat16().double()


class BF16Linear(torch.autograd.Function):
    """y = bf16(x) @ bf16(w)^T; backward dx = bf16(dy) @ bf16(w), dw = bf16(dy)^T @ bf16(x). x is rounded once and
    kept for dw, dy once for both products: adeptlua rounds the same fp32 values, which round the same way."""

    @staticmethod
    def forward(ctx, x, w):
        xr, wr = bf16(x), exact_bf16(w)
        ctx.save_for_backward(xr, wr)
        return xr @ wr.T

    @staticmethod
    def backward(ctx, dy):
        xr, wr = ctx.saved_tensors
        d = bf16(dy)
        dx = d @ wr
        dw = d.reshape(-1, d.shape[-1]).T @ xr.reshape(-1, xr.shape[-1])
        return dx, dw


def rounded_mm(x, w, name):
    return BF16Linear.apply(x, w)


LUA = """
local adept = require "adept"
local out = {}
for i, case in ipairs(CASES) do
  local m = adept.load(case.dir, {precision = "bf16"})
  local f = adept.load(case.dir, {precision = "f32"})
  local r = {logits = m:logits(IDS), logits_f32 = f:logits(IDS)}
  local loss, n = m:loss_and_grad({inputs = BATCH, targets = TARGETS})
  for _, p in ipairs(m:params()) do
    local g = m:grad(p.name)
    if g then r["grad." .. p.name] = g end
  end
  adept.save_tensors(case.dir .. "/out.safetensors", r)
  out[i] = {loss = loss, n = n, precision = m:precision(), default = adept.load(case.dir):precision()}
end
print("RESULT " .. adept.json.encode(out))
"""


def normwise(a, b):
    """||a - b|| / ||b|| over a whole tensor (a from adeptlua, b the float64 reference)"""
    a = torch.as_tensor(a, dtype=torch.float64).reshape(-1)
    b = b.reshape(-1)
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


def main():
    exe = adeptlua()
    gen = torch.Generator().manual_seed(12)
    ids = [1, 5, 9, 3, 40, 0, 17, 22, 8, 8, 31]
    batch = [[4, 9, 33, 2, 7, 7, 12, 30], [1, 1, 20, 38, 6, 15, 3, 11]]
    targets = [[9, 33, 2, 7, 7, 12, 30, 5], [-1, 20, 38, 6, 15, 3, 11, 2]]
    cases = [("LlamaForCausalLM", False), ("Qwen2ForCausalLM", True), ("Qwen3ForCausalLM", False)]
    worst = {"exact": 0.0, "rounded": 0.0, "grad": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        specs = []
        for i, (arch, tied) in enumerate(cases):
            c = tiny_config(arch, tied)
            w = {n: (t * 0.5 if t.dim() == 2 else t).float().double()  # fp32 masters, matrices at half scale
                 for n, t in tiny_weights(c, gen).items()}
            d = os.path.join(tmp, "case%d" % i)
            write_hf_dir(d, c, w, "F32", 1)
            specs.append((d, c, w, "%s tied=%s" % (arch, tied)))
        res = run_lua_cases(exe, tmp, [s[0] for s in specs], ids, batch, targets, LUA,
                            "adeptlua ran the fp32 checkpoints with precision bf16", timeout=300)
        if res is None:
            return 1
        for (d, c, w, label), got in zip(specs, res):
            out = read_safetensors(os.path.join(d, "out.safetensors"))
            check(got["precision"] == "bf16" and got["default"] == "f32",
                  "%s: precision bf16 as asked; the cpu's default is f32" % label)
            # forward
            ref_exact = reference.forward(c, w, [ids])[0]
            rounded_forward = lambda: reference.forward(c, w, [ids], mm=rounded_mm)[0].detach()
            ref_round = rounded_forward()
            _, err, n_cand, n_flip = closest(rounded_forward, lambda r: normwise(out["logits"], r))
            err_exact = normwise(out["logits"], ref_exact)
            worst["rounded"], worst["exact"] = max(worst["rounded"], err), max(worst["exact"], err_exact)
            check(err <= TOL, "%s: bf16 logits match the reference with the same roundings (%.2e, tol %.1e; %s)" % (
                label, err, TOL, which(n_cand, n_flip)))
            check(err_exact <= BOUND_BF16, "%s: bf16 logits against the unrounded model %.2e (bound %.0e)" % (
                label, err_exact, BOUND_BF16))
            moved = normwise(ref_round, ref_exact)
            check(moved >= 4 * TOL, "%s: the rounding moves the logits by %.2e, well past the tolerance (so the "
                  "comparison above sees it)" % (label, moved))
            f32_err = normwise(out["logits_f32"], ref_exact)
            check(f32_err <= TOL, "%s: precision f32 logits match the unrounded model (%.2e)" % (label, f32_err))

            # training: every row trainable, loss and all gradients
            names = sorted(k[5:] for k in out if k.startswith("grad."))
            check(names == sorted(w), "%s: a gradient for every row (%d)" % (label, len(names)))
            if names != sorted(w):
                continue

            def train(mm):
                def run():
                    wt = {n: t.clone().requires_grad_(True) for n, t in w.items()}
                    loss = reference.loss(reference.forward(c, wt, batch, mm=mm), targets)
                    loss.backward()
                    return float(loss), {k: wt[k].grad for k in names}
                return run

            def errors(ref):
                loss, grads = ref
                g = max(normwise(out["grad." + k], grads[k]) for k in names)
                return abs(got["loss"] - loss) / loss, g
            ref, _, n_cand, n_flip = closest(train(rounded_mm), lambda r: max(errors(r)))
            loss_err, grad_err = errors(ref)
            exact = train(None)()
            loss_exact, grad_exact = errors(exact)
            worst["rounded"] = max(worst["rounded"], loss_err, grad_err)
            worst["exact"] = max(worst["exact"], loss_exact)
            worst["grad"] = max(worst["grad"], grad_exact)
            n = sum(1 for row in targets for t in row if t >= 0)
            check(got["n"] == n and loss_err <= TOL, "%s: loss %.9f vs %.9f with the same roundings (%.2e; %s)" % (
                label, got["loss"], ref[0], loss_err, which(n_cand, n_flip)))
            check(grad_err <= TOL, "%s: gradients of all %d rows with the same roundings (worst %.2e, tol %.1e)" % (
                label, len(names), grad_err, TOL))
            check(loss_exact <= BOUND_BF16, "%s: loss against the unrounded model %.2e (bound %.0e)" % (
                label, loss_exact, BOUND_BF16))
            # each row's distance from the unrounded model is the roundings' own: the float64 model with the same
            # roundings is as far (bf16 operands cost this much whoever multiplies them)
            own = {k: normwise(ref[1][k], exact[1][k]) for k in names}
            mine = {k: normwise(out["grad." + k], exact[1][k]) for k in names}
            far = max(names, key=lambda k: mine[k])
            check(all(mine[k] <= 1.01 * own[k] + TOL for k in names),
                  "%s: gradients against the unrounded model: worst %.2e (%s), the same roundings in float64 %.2e; "
                  "%d of %d rows within %.0e" % (label, mine[far], far, own[far],
                                                  sum(1 for k in names if mine[k] <= BOUND_BF16), len(names),
                                                  BOUND_BF16))
    print("worst normwise error: %.2e against the rounded reference (tol %.1e); against the unrounded model %.2e for "
          "logits and loss (bound %.0e), %.2e for a gradient row" % (worst["rounded"], TOL, worst["exact"],
                                                                      BOUND_BF16, worst["grad"]))
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
