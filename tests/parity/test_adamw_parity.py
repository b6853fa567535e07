"""AdamW parity: 10 steps of adept.train (AdamW, warmup+cosine, global-norm clipping, frozen tensors, per-tensor
and per-row LR multipliers) on a tiny Llama give the loss trace, gradient norms and final weights of torch.optim.AdamW within
bounds derived below (RHO).
The torch side: one param group per tensor (lr = base * scale, weight_decay only on 2-D tensors), LambdaLR with
the same schedule formula, clip_grad_norm_; per-row multipliers by splitting lm_head into one parameter per row.
The reference model is tests/parity/reference.py."""
import json
import math
import os
import subprocess
import sys
import tempfile

from common import adeptlua, lua_table, nan_max, read_safetensors, require_modules, within, write_safetensors

np, torch = require_modules("numpy", "torch")
import reference  # noqa: E402  (after the skip check above)
EXE = adeptlua()

torch.set_num_threads(1)  # tiny tensors; avoids contention on the shared machine
CFG = dict(vocab_size=37, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
           num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
STEPS, WARMUP, MIN_RATIO, LR, WD, BETAS, EPS, CLIP = 10, 3, 0.1, 3e-3, 0.1, (0.9, 0.95), 1e-8, 1.0
FROZEN = lambda n: n.startswith("model.layers.0.") or n == "model.embed_tokens.weight"
SCALES = {"model.layers.1.self_attn.q_proj.weight": 0.5, "model.layers.1.mlp.down_proj.weight": 2.0,
          "model.layers.2.input_layernorm.weight": 3.0, "model.norm.weight": 0.25}
ROWS = "lm_head.weight"


def factor(step):
    if step < WARMUP:
        return (step + 1) / WARMUP
    p = min(1.0, (step - WARMUP) / max(1, STEPS - WARMUP))
    return MIN_RATIO + (1 - MIN_RATIO) * 0.5 * (1 + math.cos(math.pi * p))


# Tolerances. adeptlua runs in f32 (u = 2^-24), torch's forward in f64 on the same f32 weights: as in
# test_model_parity, each of the <= 84 chained products (3 layers, forward and backward) sums <= 48 terms within
# 2 * 48 u of their magnitudes, so the loss and the gradients carry a relative error rho <= 84 * 2 * 48 u = 4.8e-4,
# and so does the gradient norm (|d||g|| | <= ||dg||). AdamW's step m/(sqrt(v) + eps) depends on the gradient
# only through ratios, so a relative gradient error rho changes a step by <= 2 rho (|m/sqrt v| <= 1.01 in 10 steps
# with these betas, by Cauchy-Schwarz over the bias-corrected averages), and a weight by 2 rho * sum_s lr_s * scale:
# with the schedule below and the largest LR scale that is 2 rho * 0.02 * 3 = 6e-5. This assumes no gradient
# element cancels to far below its terms (random weights of std 0.2 make that rare; the test prints the largest
# difference). A wrong optimizer term (bias correction, decay on a norm, a scale) moves weights by ~lr = 3e-3.
RHO = 84 * 2 * 48 * 2.0 ** -24
NORM_TOL = RHO
LOSS_TOL = RHO * 4.2  # the losses stay below log(37) + 0.6 = 4.2


def weight_tol():
    lrs = sum(LR * factor(s) for s in range(STEPS))
    return 2 * 1.01 * RHO * lrs * max([1.0, 2.0] + list(SCALES.values()))  # row scales are below 2


def main():
    gen = torch.Generator().manual_seed(7)
    C, F, V, H, KH = (CFG[k] for k in ("hidden_size", "intermediate_size", "vocab_size", "num_attention_heads",
                                       "num_key_value_heads"))
    D = C // H
    r = lambda *s: (torch.randn(*s, generator=gen) * 0.2).numpy().astype(np.float32)
    nrm = lambda *s: (1 + 0.1 * torch.randn(*s, generator=gen)).numpy().astype(np.float32)
    W = {"model.embed_tokens.weight": r(V, C), "model.norm.weight": nrm(C), "lm_head.weight": r(V, C)}
    for l in range(CFG["num_hidden_layers"]):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = nrm(C)
        W[p + "post_attention_layernorm.weight"] = nrm(C)
        W[p + "self_attn.q_proj.weight"] = r(H * D, C)
        W[p + "self_attn.k_proj.weight"] = r(KH * D, C)
        W[p + "self_attn.v_proj.weight"] = r(KH * D, C)
        W[p + "self_attn.o_proj.weight"] = r(C, H * D)
        W[p + "mlp.gate_proj.weight"] = r(F, C)
        W[p + "mlp.up_proj.weight"] = r(F, C)
        W[p + "mlp.down_proj.weight"] = r(C, F)
    row_scales = (0.5 + torch.rand(V, generator=gen) * 1.5).numpy().astype(np.float32)
    batches = []
    for s in range(STEPS):
        ids = torch.randint(0, V, (2, 9), generator=gen)
        batches.append(ids.tolist())

    # ---- adeptlua ----
    with tempfile.TemporaryDirectory() as d:
        wpath, rpath, out, log = (os.path.join(d, f) for f in ("w.safetensors", "rows.safetensors", "out.safetensors",
                                                                "metrics.jsonl"))
        write_safetensors(wpath, W)
        write_safetensors(rpath, {"rows": row_scales})
        lua_cfg = lua_table(CFG)
        scales = ",".join(f'["{k}"]={v}' for k, v in SCALES.items())
        script = f"""
local adept = require "adept"
local m = adept.model({lua_cfg}, {{seed = 3}})
adept.load_weights(m, {json.dumps(wpath)})
m:freeze("^model%.layers%.0%.")
m:freeze("^model%.embed_tokens%.")
local opt = adept.adamw(m, {{lr = {LR}, betas = {{{BETAS[0]}, {BETAS[1]}}}, eps = {EPS}, weight_decay = {WD}}})
local scales = {{{scales}}}
scales["{ROWS}"] = adept.load_tensors({json.dumps(rpath)}).rows
opt:set_lr_scales(scales)
local batches = adept.json.decode({json.dumps(json.dumps(batches))})
adept.train{{model = m, optimizer = opt, data = batches, steps = {STEPS}, clip = {CLIP},
  schedule = adept.schedule.cosine{{warmup = {WARMUP}, min_ratio = {MIN_RATIO}}}, log = {json.dumps(log)},
  progress = false}}
adept.save_weights(m, {json.dumps(out)})
"""
        sp = os.path.join(d, "run.lua")
        open(sp, "w").write(script)
        res = subprocess.run([EXE, sp], capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            print(res.stdout, res.stderr)
            print("FAIL: adeptlua failed")
            return 1
        got_loss = [json.loads(l)["loss"] for l in open(log) if json.loads(l).get("type") == "train"]
        got_norm = [json.loads(l)["grad_norm"] for l in open(log) if json.loads(l).get("type") == "train"]
        got_w = read_safetensors(out)

    # ---- torch ----
    torch.manual_seed(0)
    P = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in W.items() if k != ROWS}
    rows = [torch.nn.Parameter(torch.tensor(W[ROWS][i])) for i in range(V)]
    groups = []
    for k, p in P.items():
        if FROZEN(k):
            p.requires_grad_(False)
            continue
        groups.append({"params": [p], "lr": LR * SCALES.get(k, 1.0), "weight_decay": WD if p.dim() == 2 else 0.0})
    for i, p in enumerate(rows):  # each row its own group: per-row multipliers; decay as the 2-D tensor it is
        groups.append({"params": [p], "lr": LR * float(row_scales[i]), "weight_decay": WD})
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    trainable = [p for g in groups for p in g["params"]]
    want_loss, want_norm = [], []
    for s in range(STEPS):
        ids = torch.tensor(batches[s])
        Wd = {k: p.double() for k, p in P.items()}
        Wd[ROWS] = torch.stack(rows).double()
        loss = reference.loss(reference.forward(CFG, Wd, ids[:, :-1]), ids[:, 1:])
        opt.zero_grad()
        loss.backward()
        want_norm.append(float(torch.nn.utils.clip_grad_norm_(trainable, CLIP)))
        opt.step()
        sched.step()
        want_loss.append(loss.item())

    fails = []
    worst = nan_max(abs(a - b) for a, b in zip(got_loss, want_loss)) if len(got_loss) == STEPS else float("inf")
    for s, (a, b) in enumerate(zip(got_loss, want_loss)):
        print(f"step {s + 1:2d}: adeptlua {a:.9f}  torch {b:.9f}  diff {a - b:+.2e}  "
              f"grad norm {got_norm[s]:.6f} / {want_norm[s]:.6f}")
    if len(got_loss) != STEPS:
        fails.append(f"{len(got_loss)} logged steps, expected {STEPS}")
    if not within(worst, LOSS_TOL):
        fails.append(f"loss traces differ by {worst:.3g} > {LOSS_TOL:.3g}")
    if not within(nan_max(abs(a - b) / b for a, b in zip(got_norm, want_norm)), NORM_TOL):
        fails.append(f"gradient norms differ by more than {NORM_TOL:.3g} relative")
    final = {k: p.detach().numpy() for k, p in P.items()}
    final[ROWS] = torch.stack(rows).detach().numpy()
    wworst = 0.0
    for k, v in final.items():
        if FROZEN(k) and not np.array_equal(got_w[k].astype(np.float32), W[k]):
            fails.append(f"frozen {k} changed")
        wworst = nan_max([wworst, np.abs(got_w[k] - v).max()])
    print(f"final weights: largest difference {wworst:.2e} (bound {weight_tol():.2e}); gradient norms: largest relative difference "
          f"{nan_max(abs(a - b) / b for a, b in zip(got_norm, want_norm)):.2e}")
    if not within(wworst, weight_tol()):
        fails.append(f"final weights differ by {wworst:.3g} > {weight_tol():.3g}")
    moved = [k for k in SCALES if not np.array_equal(got_w[k].astype(np.float32), W[k])]
    if len(moved) != len(SCALES):
        fails.append("some scaled tensors did not train")
    for f in fails:
        print("FAIL", f)
    print(f"largest loss difference {worst:.2e}; {len(fails)} failures")
    return 1 if fails else 0


sys.exit(main())
