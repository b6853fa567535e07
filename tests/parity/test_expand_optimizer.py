"""Surgery carries optimizer state: AdamW steps 3 times on a tiny Llama, layer 1 is expanded (identity copy
inserted as layer 2, layer 2 renamed to 3), then 3 more steps. The torch reference moves the state by hand:
the renamed tensors keep their exp_avg, exp_avg_sq and step, the copies start fresh. Loss traces agree
within 1e-5 and final weights within 1e-4 (fp32 against float64 over 6 AdamW steps: each step moves a weight
by at most lr = 3e-3, and fp32 rounding of the forward/backward gives relative errors of ~1e-6 in the
gradients, far below both bounds; the same bounds as test_adamw_parity.py)."""
import json
import os
import subprocess
import sys
import tempfile

from common import adeptlua, lua_table, read_safetensors, require_modules, write_safetensors

np, torch = require_modules("numpy", "torch")
EXE = adeptlua()
HERE = os.path.dirname(os.path.abspath(__file__))


torch.set_num_threads(1)
import reference  # noqa: E402  (the one float64 reference model of tests/parity)
CFG = dict(vocab_size=29, hidden_size=16, intermediate_size=24, num_hidden_layers=3, num_attention_heads=2,
           num_key_value_heads=1, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
LR, WD, BETAS, EPS, BEFORE, AFTER, AT = 3e-3, 0.1, (0.9, 0.95), 1e-8, 3, 3, 1
KINDS = ["input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
         "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight", "mlp.gate_proj.weight",
         "mlp.up_proj.weight", "mlp.down_proj.weight"]


def main():
    gen = torch.Generator().manual_seed(11)
    C, F, V, H, KH = (CFG[k] for k in ("hidden_size", "intermediate_size", "vocab_size", "num_attention_heads",
                                       "num_key_value_heads"))
    D = C // H
    r = lambda *s: (torch.randn(*s, generator=gen) * 0.2).numpy().astype(np.float32)
    nrm = lambda *s: (1 + 0.1 * torch.randn(*s, generator=gen)).numpy().astype(np.float32)
    shapes = {"input_layernorm.weight": (C,), "post_attention_layernorm.weight": (C,),
              "self_attn.q_proj.weight": (H * D, C), "self_attn.k_proj.weight": (KH * D, C),
              "self_attn.v_proj.weight": (KH * D, C), "self_attn.o_proj.weight": (C, H * D),
              "mlp.gate_proj.weight": (F, C), "mlp.up_proj.weight": (F, C), "mlp.down_proj.weight": (C, F)}
    W = {"model.embed_tokens.weight": r(V, C), "model.norm.weight": nrm(C), "lm_head.weight": r(V, C)}
    for l in range(CFG["num_hidden_layers"]):
        for k in KINDS:
            W[f"model.layers.{l}.{k}"] = nrm(*shapes[k]) if "norm" in k else r(*shapes[k])
    batches = [torch.randint(0, V, (2, 9), generator=gen).tolist() for _ in range(BEFORE + AFTER)]

    with tempfile.TemporaryDirectory() as d:
        wpath, out = os.path.join(d, "w.safetensors"), os.path.join(d, "out.safetensors")
        write_safetensors(wpath, W)
        lua_cfg = lua_table(CFG)
        script = f"""
local adept = require "adept"
local m = adept.model({lua_cfg}, {{seed = 3}})
adept.load_weights(m, {json.dumps(wpath)})
local opt = adept.adamw(m, {{lr = {LR}, betas = {{{BETAS[0]}, {BETAS[1]}}}, eps = {EPS}, weight_decay = {WD}}})
local batches = adept.json.decode({json.dumps(json.dumps(batches))})
local losses = {{}}
for s = 1, {BEFORE + AFTER} do
  if s == {BEFORE + 1} then m:expand({{{AT}}}) end
  m:zero_grad()
  losses[s] = m:loss_and_grad(batches[s])
  opt:step()
end
print(adept.json.encode(losses))
adept.save_weights(m, {json.dumps(out)})
"""
        sp = os.path.join(d, "run.lua")
        open(sp, "w").write(script)
        res = subprocess.run([EXE, sp], capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            print(res.stdout, res.stderr)
            print("FAIL: adeptlua failed")
            return 1
        got_loss = json.loads(res.stdout.strip().splitlines()[-1])
        got_w = read_safetensors(out)

    # ---- torch: the same steps, the expansion done by hand with the state moved by hand ----
    P = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in W.items()}

    def make_opt(params):
        groups = [{"params": [p], "weight_decay": WD if p.dim() == 2 else 0.0} for p in params.values()]
        return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)

    opt = make_opt(P)
    cfg = dict(CFG)
    want_loss = []
    for s in range(BEFORE + AFTER):
        if s == BEFORE:
            L = cfg["num_hidden_layers"]
            newP, moved_from = {}, {}
            for k, p in P.items():
                if not k.startswith("model.layers."):
                    newP[k], moved_from[k] = p, k
            for l in range(L):
                tgt = l + (1 if l > AT else 0)
                for kind in KINDS:
                    old = f"model.layers.{l}.{kind}"
                    newP[f"model.layers.{tgt}.{kind}"], moved_from[f"model.layers.{tgt}.{kind}"] = P[old], old
                if l == AT:  # the identity copy: o_proj and down_proj zero, fresh optimizer state
                    for kind in KINDS:
                        v = P[f"model.layers.{l}.{kind}"].detach().clone()
                        if kind in ("self_attn.o_proj.weight", "mlp.down_proj.weight"):
                            v.zero_()
                        newP[f"model.layers.{AT + 1}.{kind}"] = torch.nn.Parameter(v)
            new_opt = make_opt(newP)
            for k, p in newP.items():
                if k in moved_from and P[moved_from[k]] in opt.state:
                    new_opt.state[p] = opt.state[P[moved_from[k]]]
            P, opt = newP, new_opt
            cfg["num_hidden_layers"] = L + 1
        ids = torch.tensor(batches[s])
        logits = reference.forward(cfg, {k: p.double() for k, p in P.items()}, ids[:, :-1])
        loss = reference.loss(logits, ids[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        want_loss.append(loss.item())

    fails = []
    diffs = [abs(a - b) for a, b in zip(got_loss, want_loss)]
    for s, (a, b) in enumerate(zip(got_loss, want_loss)):
        print(f"step {s + 1}: adeptlua {a:.9f}  torch {b:.9f}  diff {a - b:+.2e}")
    if len(got_loss) != BEFORE + AFTER or not all(d <= 1e-5 for d in diffs):  # NaN-aware
        fails.append("loss traces differ by more than 1e-5")
    worst = 0.0
    for k, p in P.items():
        d = float(np.abs(got_w[k] - p.detach().numpy()).max())
        if not d <= worst:
            worst = d
    print(f"final weights: largest difference {worst:.2e}")
    if not worst <= 1e-4:
        fails.append(f"final weights differ by {worst:.3g} > 1e-4")
    for f in fails:
        print("FAIL", f)
    return 1 if fails else 0


sys.exit(main())
