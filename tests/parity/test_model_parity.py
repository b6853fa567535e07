"""Model parity: random tiny LLaMA-family models (GQA, Qwen2 q/k/v biases, Qwen3 q/k norms, tied and untied heads)
run in adeptlua and in the float64 PyTorch reference of reference.py (Hugging Face semantics: rotate_half RoPE,
RMSNorm, GQA, causal softmax attention, SwiGLU, token-weighted cross-entropy ignoring -1). Logits, loss
and every gradient must agree within 4.8e-4 relative error (max |a-b| / max |b| per tensor; derived at TOL). Also: frozen tensors
leave the trainable gradients bitwise unchanged and have no gradient buffer; expansion keeps logits bitwise."""
import json
import os
import subprocess
import sys
import tempfile

from common import adeptlua, nan_max, read_safetensors, require_modules, write_safetensors

np, torch = require_modules("numpy", "torch")
import reference  # noqa: E402  (after the skip check above)
EXE = adeptlua()

torch.set_default_dtype(torch.float64)
# adeptlua computes in f32 (unit roundoff u = 2^-24), the reference in f64 on the same f32 weights. Each product
# of the forward sums at most K = 48 terms (the MLP width) within 2 K u of the sum of their magnitudes; errors add
# to first order along the chain, which is at most 3 layers x 9 products + the head = 28 in the forward and twice
# that in the backward: 84 * 2 * 48 * u = 4.8e-4 relative to the tensor's largest entry, which RMS-normalised
# activations keep on the scale of those magnitudes. A wrong term (a missing bias, a transposed head, another
# RoPE pairing) is off by more than 1e-2.
TOL = 84 * 2 * 48 * 2.0 ** -24


def make_weights(cfg, gen):
    C, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KH = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or C // H
    r = lambda *s: (torch.randn(*s, generator=gen) * 0.2).numpy().astype(np.float32)
    n = lambda *s: (1 + 0.1 * torch.randn(*s, generator=gen)).numpy().astype(np.float32)
    W = {"model.embed_tokens.weight": r(V, C), "model.norm.weight": n(C)}
    if not cfg.get("tie_word_embeddings"):
        W["lm_head.weight"] = r(V, C)
    for l in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{l}."
        W[pre + "input_layernorm.weight"] = n(C)
        W[pre + "post_attention_layernorm.weight"] = n(C)
        W[pre + "self_attn.q_proj.weight"] = r(H * D, C)
        W[pre + "self_attn.k_proj.weight"] = r(KH * D, C)
        W[pre + "self_attn.v_proj.weight"] = r(KH * D, C)
        W[pre + "self_attn.o_proj.weight"] = r(C, H * D)
        if cfg.get("attention_bias"):
            for m, d in (("q", H * D), ("k", KH * D), ("v", KH * D)):
                W[pre + f"self_attn.{m}_proj.bias"] = r(d)
        if cfg.get("qk_norm"):
            W[pre + "self_attn.q_norm.weight"] = n(D)
            W[pre + "self_attn.k_norm.weight"] = n(D)
        W[pre + "mlp.gate_proj.weight"] = r(F, C)
        W[pre + "mlp.up_proj.weight"] = r(F, C)
        W[pre + "mlp.down_proj.weight"] = r(C, F)
    return W


def lua_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "{" + ",".join(lua_value(x) for x in v) + "}"
    return repr(v)


LUA = r"""
local adept = require "adept"
local cfg, wpath, out, frozen_pat, unfreeze_pat = ...
local function build()
  local m = adept.model(cfg, {seed = 1})
  for name, t in pairs(adept.load_tensors(wpath)) do m:set_param(name, t) end
  return m
end
local m = build()
local res = {logits = m:logits(INPUTS)}
local loss, n = m:loss_and_grad({inputs = INPUTS, targets = TARGETS})
local loss_only = m:loss({inputs = INPUTS, targets = TARGETS})
assert(loss == loss_only, "loss and loss_and_grad differ")
for _, name in ipairs(m:param_names()) do res["grad." .. name] = m:grad(name) end
adept.save_tensors(out .. ".1", res)  -- gradients are views: save before they change
-- a second call accumulates: gradients double
m:loss_and_grad({inputs = INPUTS, targets = TARGETS})
res = {["grad2.model.norm.weight"] = m:grad("model.norm.weight")}
-- frozen run: trainable gradients bitwise equal, frozen ones without a buffer
local f = build()
f:freeze(frozen_pat)
if unfreeze_pat ~= "" then f:unfreeze(unfreeze_pat) end
local nfrozen = 0
f:loss_and_grad({inputs = INPUTS, targets = TARGETS})
for _, name in ipairs(f:param_names()) do
  local g = f:grad(name)
  if g then res["frozen." .. name] = g else nfrozen = nfrozen + 1 end
end
-- expansion keeps the logits bitwise
res["expanded.before"] = m:logits(INPUTS)
local copies = m:expand({0, cfg.num_hidden_layers - 1})
res["expanded.logits"] = m:logits(INPUTS)
adept.save_tensors(out .. ".2", res)
print(string.format("LOSS %.17g %d FROZEN %d LAYERS %d COPIES %s EXPANDED %s", loss, n, nfrozen, m:num_layers(),
  table.concat(copies, ","), table.concat(m:expanded_layers(), ",")))
"""


def run_variant(name, cfg, frozen_pat, seed, B=2, T=9, unfreeze=""):
    gen = torch.Generator().manual_seed(seed)
    W = make_weights(cfg, gen)
    V = cfg["vocab_size"]
    ids = torch.randint(0, V, (B, T + 1), generator=gen)
    inputs, targets = ids[:, :T].clone(), ids[:, 1:].clone()
    targets[0, :3] = -1  # prompt tokens ignored
    targets[1, -1] = -1
    with tempfile.TemporaryDirectory() as d:
        wpath, out, script = (os.path.join(d, f) for f in ("w.safetensors", "out.safetensors", "run.lua"))
        write_safetensors(wpath, W)
        src = LUA.replace("INPUTS", lua_value(inputs.tolist())).replace("TARGETS", lua_value(targets.tolist()))
        src = src.replace("local cfg, wpath, out, frozen_pat, unfreeze_pat = ...",
                          f"local cfg, wpath, out, frozen_pat, unfreeze_pat = {lua_value_table(cfg)}, "
                          f"{json.dumps(wpath)}, {json.dumps(out)}, {json.dumps(frozen_pat)}, {json.dumps(unfreeze)}")
        open(script, "w").write(src)
        r = subprocess.run([EXE, script], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            return [f"{name}: adeptlua failed"]
        line = [l for l in r.stdout.splitlines() if l.startswith("LOSS")][0].split()
        got = read_safetensors(out + ".1")
        got.update(read_safetensors(out + ".2"))
    fails = []
    Wt = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in W.items()}
    logits = reference.forward(cfg, Wt, inputs)
    loss = reference.loss(logits, targets)
    loss.backward()

    def cmp(label, a, b):
        b = b.detach().numpy() if torch.is_tensor(b) else b
        rel = np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)
        ok = bool(rel <= TOL)  # False for NaN
        if not ok:
            fails.append(f"{name}: {label} relative error {rel:.3g}")
        return rel

    worst = cmp("logits", got["logits"].reshape(logits.shape), logits)
    l_got, n_got = float(line[1]), int(line[2])
    if not abs(l_got - loss.item()) <= TOL * abs(loss.item()):
        fails.append(f"{name}: loss {l_got} vs reference {loss.item()}")
    if n_got != int((targets >= 0).sum()):
        fails.append(f"{name}: token count {n_got}")
    for k, t in Wt.items():
        worst = nan_max([worst, cmp("grad " + k, got["grad." + k], t.grad)])
    if set(k[5:] for k in got if k.startswith("grad.")) != set(W):
        fails.append(f"{name}: gradient names differ from the weight names")
    g2 = got["grad2.model.norm.weight"]
    if not np.allclose(g2, 2 * got["grad.model.norm.weight"], rtol=1e-5, atol=1e-7):
        fails.append(f"{name}: gradients do not accumulate over calls")
    # frozen: every remaining gradient bitwise equal to the all-trainable run, frozen ones absent
    import re
    def lua_re(p):
        return "." if p == "all" else p.replace("%.", r"\.").replace("%d", r"\d")

    def is_frozen(k):
        return bool(re.search(lua_re(frozen_pat), k)) and not (unfreeze and re.search(lua_re(unfreeze), k))
    n_frozen_expected = sum(1 for k in W if is_frozen(k))
    if int(line[4]) != n_frozen_expected:
        fails.append(f"{name}: {line[4]} frozen tensors without gradient, expected {n_frozen_expected}")
    for k in W:
        fk = "frozen." + k
        if is_frozen(k):
            if fk in got:
                fails.append(f"{name}: frozen {k} has a gradient")
        elif fk not in got or not np.array_equal(got[fk], got["grad." + k]):
            fails.append(f"{name}: trainable {k} gradient differs when others are frozen")
    if not np.array_equal(got["expanded.logits"], got["expanded.before"]):
        fails.append(f"{name}: logits changed after expansion")
    L = cfg["num_hidden_layers"]
    if int(line[6]) != L + 2 or line[8] != f"1,{L + 1}" or line[10] != f"1,{L + 1}":
        fails.append(f"{name}: expansion bookkeeping {line[5:]}")
    print(f"{name}: loss {l_got:.6f} (ref {loss.item():.6f}), worst relative error {worst:.2e}, "
          f"{len(W)} tensors, {n_frozen_expected} frozen")
    return fails


def lua_value_table(cfg):
    return "{" + ",".join(f"{k}={lua_value(v)}" for k, v in cfg.items()) + "}"


BASE = dict(vocab_size=37, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=4, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
VARIANTS = [
    ("llama-untied", dict(BASE), "^model%.layers%.0%.", 1),
    ("llama-gqa-tied", dict(BASE, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=500000.0),
     "^model%.embed", 2),
    ("qwen2-bias", dict(BASE, architectures=["Qwen2ForCausalLM"], attention_bias=True, num_key_value_heads=2,
                        rms_norm_eps=1e-6, tie_word_embeddings=True), "self_attn", 3),
    ("qwen3-qknorm", dict(BASE, architectures=["Qwen3ForCausalLM"], qk_norm=True, head_dim=16, num_key_value_heads=2,
                          rms_norm_eps=1e-6), "^model%.layers%.[01]%.", 4),
    ("mqa-frozen-top", dict(BASE, num_key_value_heads=1, num_hidden_layers=2), "mlp", 5),
]

fails = []
for name, cfg, pat, seed in VARIANTS:
    fails += run_variant(name, cfg, pat, seed)
# large enough that the GEMMs split over threads and attention runs (batch, kv group) in parallel
fails += run_variant("llama-threaded", dict(BASE, vocab_size=300, hidden_size=64, intermediate_size=160,
                                            num_hidden_layers=2, num_key_value_heads=2), "^lm_head", 6, B=3, T=70)
# Mistral's sliding window narrower than the sequence (4 of 9 positions): the windowed attention kernels
fails += run_variant("mistral-window", dict(BASE, architectures=["MistralForCausalLM"], num_key_value_heads=2,
                                            sliding_window=4, max_position_embeddings=64), "^model%.layers%.0%.", 8)
# only MLP gate/up trainable in the lowest trainable layer: its attention backward is skipped
fails += run_variant("qwen2-mlp-only", dict(VARIANTS[2][1]), "all", 7, unfreeze="^model%.layers%.[12]%.mlp%.[gu]")
for f in fails:
    print("FAIL", f)
print(f"{len(VARIANTS) + 3} variants, {len(fails)} failures")
sys.exit(1 if fails else 0)
