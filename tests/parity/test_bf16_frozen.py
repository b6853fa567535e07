#!/usr/bin/python3
"""bf16 frozen weights (DESIGN.md §2.9, docs/model.md "Precision"): a bf16 checkpoint loaded with dtype "auto"
keeps its matrices in bf16 and multiplies by them bf16 x bf16 -> f32 with the activations (and, in backward, the
output gradients) rounded to bf16, as PyTorch's autocast does. This runs tiny Qwen3 (untied) and Llama (tied)
checkpoints written in bf16 through adeptlua and through the float64 reference with exactly that rounding
(BF16Product below), so the two agree to fp32 rounding: logits of the all-frozen model, then the loss and the
gradients of a model whose layer 0 and final norm train (fp32 masters) under frozen bf16 layers 1-2 and head.
It also checks that the rounding is what separates the paths (the reference without it is farther away than the
tolerance) and that dtype "f32" matches the unrounded reference. Where the CPU multiplies bf16 weights by widening
them for sgemm (adept.w16_products() == "sgemm": no oneDNN or no AVX-512 BF16) the activations are not rounded,
and the unrounded reference is the one compared against."""
import os
import sys
import tempfile

from common import adeptlua, check, failures, read_safetensors, run_lua_cases, write_hf_dir
import reference  # skips (77) without torch / numpy
from reference import tiny_config, tiny_weights
from bf16_rounding import bf16, closest, which

torch = reference.torch
torch.set_num_threads(1)

# fp32 arithmetic against float64 on the same rounded operands: as tests/parity/test_model_parity.py, at most
# 3 layers x 9 products + the head = 28 products in the forward and twice that in the backward, each a sum of at
# most K = 40 terms within 2 K u (u = 2^-24) of their magnitudes: 84 * 2 * 40 * u = 4.0e-4 relative to the
# tensor's largest entry. The bf16 rounding itself moves the logits by about 2^-8 relative per rounded operand:
# the unrounded reference must be farther than TOL (so the test sees the rounding), by at least 4x.
TOL = 84 * 2 * 40 * 2.0 ** -24


class BF16Product(torch.autograd.Function):
    """y = bf16(x) @ W^T with W frozen; backward dx = bf16(dy) @ W (the product adeptlua's oneDNN path runs)."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(w)
        return bf16(x) @ w.T

    @staticmethod
    def backward(ctx, dy):
        (w,) = ctx.saved_tensors
        return bf16(dy) @ w, None


def product(rounded):
    """the reference's matrix product: rounded for the frozen bf16 rows named in `rounded`"""
    def mm(x, w, name):
        return BF16Product.apply(x, w) if name in rounded else x @ w.T
    return mm


LUA = """
local adept = require "adept"
local out = {}
local path = adept.w16_products()
for i, case in ipairs(CASES) do
  local a = adept.load(case.dir)                     -- dtype auto: bf16 matrices
  local f = adept.load(case.dir, {dtype = "f32"})
  local r = {logits_auto = a:logits(IDS), logits_f32 = f:logits(IDS)}
  local dtypes = {}
  for _, p in ipairs(a:params()) do dtypes[#dtypes + 1] = p.dtype end
  -- layer 0 and the final norm train; layers 1-2 and the head stay frozen bf16
  a:freeze("all")
  a:unfreeze("^model%.layers%.0%.")
  a:unfreeze("^model%.norm%.")
  local loss, n = a:loss_and_grad({inputs = BATCH, targets = TARGETS})
  for _, p in ipairs(a:params()) do
    local g = a:grad(p.name)
    if g then r["grad." .. p.name] = g end
  end
  local trained_dtypes = {}
  for _, p in ipairs(a:params()) do trained_dtypes[#trained_dtypes + 1] = p.dtype end
  adept.save_tensors(case.dir .. "/out.safetensors", r)
  out[i] = {loss = loss, n = n, dtypes = dtypes, trained_dtypes = trained_dtypes}
end
print("RESULT " .. adept.json.encode({path = path, cases = out}))
"""


def main():
    exe = adeptlua()
    gen = torch.Generator().manual_seed(77)
    ids = [1, 5, 9, 3, 40, 0, 17, 22, 8, 8, 31]
    batch = [[4, 9, 33, 2, 7, 7, 12, 30], [1, 1, 20, 38, 6, 15, 3, 11]]
    targets = [[9, 33, 2, 7, 7, 12, 30, 5], [-1, 20, 38, 6, 15, 3, 11, 2]]
    cases = [("Qwen3ForCausalLM", False), ("LlamaForCausalLM", True), ("LlamaForCausalLM", False), ("Qwen3ForCausalLM", True)]
    with tempfile.TemporaryDirectory() as tmp:
        specs = []
        for i, (arch, tied) in enumerate(cases):
            c = tiny_config(arch, tied)
            w = tiny_weights(c, gen)
            d = os.path.join(tmp, "case%d" % i)
            write_hf_dir(d, c, w, "BF16", 1)
            specs.append((d, c, {n: bf16(t) for n, t in w.items()}, arch, tied))
        res = run_lua_cases(exe, tmp, [s[0] for s in specs], ids, batch, targets, LUA,
                            "adeptlua loaded the bf16 checkpoints and ran them")
        if res is None:
            return 1
        onednn = res["path"] == "onednn"
        print("bf16 products: %s" % res["path"])
        for (d, c, w, arch, tied), got in zip(specs, res["cases"]):
            label = "%s tied=%s" % (arch, tied)
            out = read_safetensors(os.path.join(d, "out.safetensors"))
            matrices = {n for n, t in w.items() if t.dim() == 2}
            check(all(dt == ("bf16" if len(t) == 2 else "f32") for dt, t in
                      zip(got["dtypes"], [[0, 0] if n in matrices else [0] for n in param_order(c, w)])),
                  "%s: matrices load as bf16, norms as f32" % label)
            # forward, everything frozen bf16
            ref_exact = reference.forward(c, w, [ids])[0]
            scale = float(ref_exact.abs().max())
            rel = lambda a, b: float((torch.as_tensor(a, dtype=torch.float64) - b).abs().max()) / scale
            rounded_forward = lambda: reference.forward(c, w, [ids], mm=product(matrices if onednn else set()))[0]
            ref_round = rounded_forward()
            _, err, n_cand, n_flip = closest(rounded_forward, lambda r: rel(out["logits_auto"], r))
            check(err <= TOL, "%s: bf16 logits match the reference %s (rel %.2e, tol %.1e; %s)" % (
                label, "rounding operands to bf16" if onednn else "with fp32 operands", err, TOL,
                which(n_cand, n_flip)))
            check(rel(out["logits_f32"], ref_exact) <= TOL, "%s: dtype f32 logits match the fp32 reference (rel %.2e)"
                  % (label, rel(out["logits_f32"], ref_exact)))
            if onednn:
                check(rel(ref_round, ref_exact) >= 4 * TOL, "%s: the rounding moves the logits by %.2e, well past the "
                      "tolerance (so the comparison above sees it)" % (label, rel(ref_round, ref_exact)))
            # training: layer 0 and the final norm with fp32 masters, the rest frozen bf16
            trainable = {n for n in w if n.startswith("model.layers.0.") or n == "model.norm.weight"}
            wt = {n: t.clone().requires_grad_(n in trainable) for n, t in w.items()}
            frozen16 = (matrices - trainable) if onednn else set()

            def train():
                wt = {n: t.clone().requires_grad_(n in trainable) for n, t in w.items()}
                loss = reference.loss(reference.forward(c, wt, batch, mm=product(frozen16)), targets)
                loss.backward()
                return float(loss), {k: wt[k].grad for k in trainable}
            n = sum(1 for row in targets for t in row if t >= 0)
            names = [k[5:] for k in out if k.startswith("grad.")]
            check(sorted(names) == sorted(trainable), "%s: gradients exactly for the trainable rows" % label)
            if sorted(names) != sorted(trainable):
                continue

            def errors(ref):
                loss, grads = ref
                g = max(float((torch.as_tensor(out["grad." + k], dtype=torch.float64) - grads[k]).abs().max()) /
                        max(float(grads[k].abs().max()), 1e-30) for k in names)
                return abs(got["loss"] - loss) / loss, g
            ref, _, n_cand, n_flip = closest(train, lambda r: max(errors(r)))
            loss_err, grad_err = errors(ref)
            check(got["n"] == n and loss_err <= TOL, "%s: loss (the mean over %d targets) %.9f vs %.9f (%s)" % (
                label, n, got["loss"], ref[0], which(n_cand, n_flip)))
            check(grad_err <= TOL, "%s: gradients of the trainable rows match (worst rel %.2e, tol %.1e; %s)" % (
                label, grad_err, TOL, which(n_cand, n_flip)))
            check(all(dt == "f32" for dt, nm in zip(got["trained_dtypes"], param_order(c, w)) if nm in trainable),
                  "%s: trainable rows were widened to fp32 masters" % label)
            check(all(dt == "bf16" for dt, nm in zip(got["trained_dtypes"], param_order(c, w))
                      if nm in matrices - trainable), "%s: frozen matrices stayed bf16" % label)
    print("%d failures" % len(failures))
    return 1 if failures else 0


def param_order(c, w):
    """the names in adeptlua's table order (model.c: embedding, each layer's rows in HF order, norm, lm_head)"""
    order = ["input_layernorm", "self_attn.q_proj", "self_attn.q_proj.bias", "self_attn.k_proj",
             "self_attn.k_proj.bias", "self_attn.v_proj", "self_attn.v_proj.bias", "self_attn.o_proj",
             "self_attn.q_norm", "self_attn.k_norm", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
             "mlp.down_proj"]
    names = ["model.embed_tokens.weight"]
    for l in range(c["num_hidden_layers"]):
        for o in order:
            n = "model.layers.%d.%s" % (l, o if o.endswith(".bias") else o + ".weight")
            if n in w:
                names.append(n)
    names.append("model.norm.weight")
    if "lm_head.weight" in w:
        names.append("lm_head.weight")
    return names


if __name__ == "__main__":
    sys.exit(main())
