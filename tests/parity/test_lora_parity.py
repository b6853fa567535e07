"""LoRA forward and backward against a float64 PyTorch reference: a tiny random Llama (and a Qwen3 with q/k
norms) with adapters on every projection of some layers, A and B both non-zero (B zero would make A's
gradient vanish), one loss_and_grad. The reference computes W + (alpha/rank) B A in float64 with autograd
(the same function: x W^T + s (x A^T) B^T = x (W + s B A)^T), so the loss and the gradients of A and B come
from torch. Tolerances: the engine runs in float32, whose rounding (2^-24 ~ 6e-8 relative per operation)
accumulated over a few hundred operations per value gives relative errors of ~1e-6; we allow 1e-5 on the
loss and 1e-4 relative to the largest gradient of each tensor (the bounds of test_model_parity.py). The
base rows must get no gradient (frozen)."""
import json
import os
import subprocess
import sys
import tempfile

from common import adeptlua, require_modules, write_safetensors

np, torch = require_modules("numpy", "torch")
EXE = adeptlua()
torch.set_num_threads(1)
import reference  # noqa: E402

RANK, ALPHA = 3, 7.0
TARGETS = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
           "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def run_case(name, cfg, layers, gen):
    C, F, V, H, KH = (cfg[k] for k in ("hidden_size", "intermediate_size", "vocab_size", "num_attention_heads",
                                       "num_key_value_heads"))
    D = cfg.get("head_dim") or C // H
    r = lambda *s: (torch.randn(*s, generator=gen) * 0.3).numpy().astype(np.float32)
    nrm = lambda *s: (1 + 0.1 * torch.randn(*s, generator=gen)).numpy().astype(np.float32)
    dims = {"q_proj": (H * D, C), "k_proj": (KH * D, C), "v_proj": (KH * D, C), "o_proj": (C, H * D),
            "gate_proj": (F, C), "up_proj": (F, C), "down_proj": (C, F)}
    W = {"model.embed_tokens.weight": r(V, C), "model.norm.weight": nrm(C), "lm_head.weight": r(V, C)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = nrm(C)
        W[p + "post_attention_layernorm.weight"] = nrm(C)
        if cfg.get("qk_norm_test"):
            W[p + "self_attn.q_norm.weight"] = nrm(D)
            W[p + "self_attn.k_norm.weight"] = nrm(D)
        for t, (o, i) in dims.items():
            W[f"{p}{TARGETS[t]}.{t}.weight"] = r(o, i)
    lora = {}
    for l in layers:
        for t, (o, i) in dims.items():
            base = f"model.layers.{l}.{TARGETS[t]}.{t}"
            lora[base + ".lora_A.weight"] = r(RANK, i)
            lora[base + ".lora_B.weight"] = r(o, RANK)
    batch = torch.randint(0, V, (2, 8), generator=gen).tolist()
    lua_cfg = {k: v for k, v in cfg.items() if k != "qk_norm_test"}
    with tempfile.TemporaryDirectory() as d:
        wpath = os.path.join(d, "w.safetensors")
        write_safetensors(wpath, {**W, **lora})
        script = f"""
local adept = require "adept"
local m = adept.model(adept.json.decode({json.dumps(json.dumps(lua_cfg))}), {{seed = 3}})
m:add_lora{{rank = {RANK}, alpha = {ALPHA}, layers = {{{", ".join(map(str, layers))}}}}}
adept.load_weights(m, {json.dumps(wpath)})
m:zero_grad()
local loss = m:loss_and_grad(adept.json.decode({json.dumps(json.dumps(batch))}))
local grads = {{}}
for _, p in ipairs(m:params()) do
  if p.trainable then grads[p.name] = m:grad(p.name):table() end
  assert((p.kind == "lora_A" or p.kind == "lora_B") == p.trainable, p.name)
end
print(adept.json.encode({{loss = loss, grads = grads}}))
"""
        sp = os.path.join(d, "run.lua")
        open(sp, "w").write(script)
        res = subprocess.run([EXE, sp], capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            print(res.stdout, res.stderr)
            return [f"{name}: adeptlua failed"]
        got = json.loads(res.stdout.strip().splitlines()[-1])

    Wt = {k: torch.tensor(v, dtype=torch.float64) for k, v in W.items()}
    Lt = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in lora.items()}
    eff = dict(Wt)
    for l in layers:
        for t in dims:
            base = f"model.layers.{l}.{TARGETS[t]}.{t}"
            eff[base + ".weight"] = Wt[base + ".weight"] + (ALPHA / RANK) * (
                Lt[base + ".lora_B.weight"] @ Lt[base + ".lora_A.weight"])
    ids = torch.tensor(batch)
    loss = reference.loss(reference.forward(lua_cfg, eff, ids[:, :-1]), ids[:, 1:])
    loss.backward()

    fails = []
    print(f"{name}: loss adeptlua {got['loss']:.9f} torch {loss.item():.9f}")
    if not abs(got["loss"] - loss.item()) <= 1e-5:
        fails.append(f"{name}: loss differs by {abs(got['loss'] - loss.item()):.3g}")
    if sorted(got["grads"]) != sorted(lora):
        fails.append(f"{name}: trainable rows {sorted(got['grads'])} are not the adapters {sorted(lora)}")
        return fails
    worst = 0.0
    for k, t in Lt.items():
        want = t.grad.numpy()
        g = np.array(got["grads"][k], dtype=np.float64).reshape(want.shape)
        scale = max(float(np.abs(want).max()), 1e-12)
        rel = float(np.abs(g - want).max()) / scale
        worst = max(worst, rel) if rel == rel else float("nan")
        if not rel <= 1e-4:
            fails.append(f"{name}: gradient of {k} differs by {rel:.3g} of its largest entry {scale:.3g}")
    print(f"{name}: gradients of {len(Lt)} adapter tensors, worst relative difference {worst:.2e}")
    return fails


def main():
    gen = torch.Generator().manual_seed(5)
    llama = dict(vocab_size=29, hidden_size=16, intermediate_size=24, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    qwen3 = dict(llama, architectures=["Qwen3ForCausalLM"], head_dim=8, qk_norm_test=True)
    fails = run_case("llama, adapters in layers 0 and 2", llama, [0, 2], gen)
    fails += run_case("qwen3, adapters in layer 1 only", qwen3, [1], gen)
    for f in fails:
        print("FAIL", f)
    return 1 if fails else 0


sys.exit(main())
