#!/usr/bin/python3
"""Parity of the memory-lean kernels (issue 11) with PyTorch float64, at T = 1, 17, 512 and 4096:
1. flash-style attention: the CPU backend's forward (y and the per-row log-sum-exp) and backward (dq, dk, dv,
   recomputed block by block from lse) through the backend table, run by parity_kernel_driver on its own
   random inputs; torch recomputes causal GQA softmax attention in float64 from the same float32 inputs and
   differentiates it. T = 4096 runs one kv group (2 query heads) with D = 8 to keep the test short. The same
   with sliding windows (Mistral's sliding_window: key j visible to query i when i - W < j <= i), of widths
   that end inside a block, on a block edge and past several blocks.
2. the classifier + cross-entropy in row chunks: a one-layer model with a 8192-token vocabulary (so the
   classifier works in chunks of 256 rows: 2 chunks at T = 512, 16 at T = 4096) run by adeptlua; loss and every
   gradient (the head's accumulated chunk by chunk, the last hidden state's through the model), and m:logits
   assembled from the chunks at T <= 512, against reference.py in float64."""
import json
import os
import subprocess
import sys
import tempfile

from common import adeptlua, check, failures, nan_max, read_safetensors, require_modules, skip, write_safetensors

np, torch = require_modules("numpy", "torch")
import reference  # noqa: E402

torch.set_default_dtype(torch.float64)
U = 2.0 ** -24  # fp32 unit roundoff


def rel_err(a, b, scale=0.0):
    """max |a - b| / max(max |b|, scale) (NaN when a holds a NaN). scale is the size of the terms an output is
    summed from, for outputs that are exactly zero in exact arithmetic (with one key, dq and dk: the softmax of
    one score is 1 whatever the score), where fp32 leaves rounding noise of that size times u."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.isnan(a).any():
        return float("nan")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), scale, 1e-30))


# ---- 1. attention kernels --------------------------------------------------------------------------------------
def att_tol(T, D):
    """The bound, relative to each array's largest entry. Every output is a short chain (at most 6 links: score,
    exp, row sum, product with V or dO, the dS difference, the final product) of sums of at most D products
    (scores, dP, D_i) or at most T terms (the softmax sum, y, dq, dk, dv), computed in fp32. A recursive sum of n
    terms is within (n - 1) u of the sum of their magnitudes, which here is on the scale of the largest entry
    (softmax weights sum to 1; inputs are in [-1, 1)); a score error e moves exp(score) by the relative e, and a
    score is scale * sum of D products of magnitude <= 1, so its error is within D u sqrt(D). With 6 links:
    6 (T + D sqrt(D) + D) u -- 1.5e-3 at T = 4096, while a wrong mask, scale or group would be off by O(1)."""
    return 6 * (T + D * D ** 0.5 + D) * U


def attention_case(driver, B, T, H, KH, D, seed, W=0):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "att.bin")
        r = subprocess.run([driver, "attention", str(B), str(T), str(H), str(KH), str(D), str(seed), out, str(W)],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            check(False, f"attention T={T}: the driver ran")
            return
        raw = np.fromfile(out, dtype="<f4")
    nq, nk, nl = B * T * H * D, B * T * KH * D, B * H * T
    sizes = [nq, nk, nk, nq, nq, nl, nq, nk, nk]
    names = ["q", "k", "v", "dy", "y", "lse", "dq", "dk", "dv"]
    got, off = {}, 0
    for n, s in zip(names, sizes):
        got[n] = raw[off:off + s]
        off += s
    check(off == raw.size, f"attention T={T}: the driver wrote {raw.size} floats, expected {off}")
    q = torch.tensor(got["q"].astype(np.float64).reshape(B, T, H, D).transpose(0, 2, 1, 3).copy(), requires_grad=True)
    k = torch.tensor(got["k"].astype(np.float64).reshape(B, T, KH, D).transpose(0, 2, 1, 3).copy(), requires_grad=True)
    v = torch.tensor(got["v"].astype(np.float64).reshape(B, T, KH, D).transpose(0, 2, 1, 3).copy(), requires_grad=True)
    dy = torch.tensor(got["dy"].astype(np.float64).reshape(B, T, H, D).transpose(0, 2, 1, 3).copy())
    kk, vv = k.repeat_interleave(H // KH, dim=1), v.repeat_interleave(H // KH, dim=1)
    mask = torch.full((T, T), float("-inf")).triu(1)
    if W:  # HF's sliding window: also hide keys j <= i - W
        mask = mask + torch.full((T, T), float("-inf")).tril(-W)
    s = q @ kk.transpose(-1, -2) / D ** 0.5 + mask
    lse = torch.logsumexp(s, dim=-1)  # (B, H, T)
    y = torch.softmax(s, dim=-1) @ vv
    y.backward(dy)
    tol = att_tol(T, D)
    ref = {"y": y.detach().permute(0, 2, 1, 3).reshape(-1).numpy(), "lse": lse.detach().reshape(-1).numpy(),
           "dq": q.grad.permute(0, 2, 1, 3).reshape(-1).numpy(), "dk": k.grad.permute(0, 2, 1, 3).reshape(-1).numpy(),
           "dv": v.grad.permute(0, 2, 1, 3).reshape(-1).numpy()}
    # dq and dk sum dS k or dS q over keys, dS = P (dP - D_i) / sqrt(D) with |dP| <= D max|dy| max|v|
    mx = {n: float(np.abs(got[n]).max()) for n in ("q", "k", "v", "dy")}
    scale = {"dq": D ** 0.5 * mx["dy"] * mx["v"] * mx["k"], "dk": D ** 0.5 * mx["dy"] * mx["v"] * mx["q"]}
    worst = []
    for n in ("y", "lse", "dq", "dk", "dv"):
        e = rel_err(got[n], ref[n], scale.get(n, 0.0))
        worst.append(e)
        check(e <= tol, f"attention B={B} T={T} H={H} KH={KH} D={D} W={W}: {n} relative error {e:.2e} <= {tol:.1e}")
    print(f"attention T={T} window={W or 'none'}: worst relative error {nan_max(worst):.2e} (bound {tol:.1e})")


# ---- 2. chunked classifier + cross-entropy through the model -------------------------------------------------
CFG = dict(vocab_size=8192, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
           num_key_value_heads=1, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
           max_position_embeddings=4096)

LUA = r"""
local adept = require "adept"
local cfg, wpath, ipath, out, want_logits = CFG, WPATH, IPATH, OUT, WANT_LOGITS
local m = adept.model(cfg, {seed = 1})
for name, t in pairs(adept.load_tensors(wpath)) do m:set_param(name, t) end
local ids = adept.load_tensors(ipath)
local T = ids.inputs:shape()[2]
local inputs, targets = {{}}, {{}}
local it, tt = ids.inputs:table()[1], ids.targets:table()[1]
for t = 1, T do inputs[1][t] = math.floor(it[t]); targets[1][t] = math.floor(tt[t]) end
local res = {}
if want_logits then res.logits = m:logits(inputs) end
local loss, n = m:loss_and_grad({inputs = inputs, targets = targets})
local loss_only = m:loss({inputs = inputs, targets = targets})
for _, name in ipairs(m:param_names()) do res["grad." .. name] = m:grad(name) end
adept.save_tensors(out, res)
print(string.format("LOSS %.17g %d %.17g", loss, n, loss_only))
"""


def head_tol(T):
    """The model chain of test_model_parity (at most 9 products per layer plus the head, twice for the
    backward: 2 * (9 + 1) = 20 links) with sums now up to max(T, C, F) terms (the head's gradient adds the
    chunks' T rows; the attention sums T keys; the softmax sums V exponentials in double, so V does not count):
    20 * 2 * max(T, 24) u -- 9.8e-3 at T = 4096, 1.2e-3 at 512, 5.7e-5 at 17 and 1."""
    return 20 * 2 * max(T, 24) * U


def head_case(exe, T, seed):
    gen = torch.Generator().manual_seed(seed)
    C, F, V = CFG["hidden_size"], CFG["intermediate_size"], CFG["vocab_size"]
    H, KH = CFG["num_attention_heads"], CFG["num_key_value_heads"]
    D = C // H
    r = lambda *s: (torch.randn(*s, generator=gen) * 0.2).numpy().astype(np.float32)
    n = lambda *s: (1 + 0.1 * torch.randn(*s, generator=gen)).numpy().astype(np.float32)
    p = "model.layers.0."
    W = {"model.embed_tokens.weight": r(V, C), "model.norm.weight": n(C), "lm_head.weight": r(V, C),
         p + "input_layernorm.weight": n(C), p + "post_attention_layernorm.weight": n(C),
         p + "self_attn.q_proj.weight": r(H * D, C), p + "self_attn.k_proj.weight": r(KH * D, C),
         p + "self_attn.v_proj.weight": r(KH * D, C), p + "self_attn.o_proj.weight": r(C, H * D),
         p + "mlp.gate_proj.weight": r(F, C), p + "mlp.up_proj.weight": r(F, C), p + "mlp.down_proj.weight": r(C, F)}
    ids = torch.randint(0, V, (1, T + 1), generator=gen)
    inputs, targets = ids[:, :T].clone(), ids[:, 1:].clone()
    if T > 1:
        targets[0, 0] = -1  # an ignored position
    want_logits = T <= 512
    with tempfile.TemporaryDirectory() as d:
        wpath, ipath, out, script = (os.path.join(d, f) for f in ("w.safetensors", "ids.safetensors",
                                                                   "out.safetensors", "run.lua"))
        write_safetensors(wpath, W)
        write_safetensors(ipath, {"inputs": inputs.numpy().astype(np.float32),
                                  "targets": targets.numpy().astype(np.float32)})
        cfg_lua = "{" + ",".join(f"{k}={'true' if v is True else 'false' if v is False else repr(v)}"
                                 for k, v in CFG.items()) + "}"
        src = (LUA.replace("CFG", cfg_lua).replace("WPATH", json.dumps(wpath)).replace("IPATH", json.dumps(ipath))
               .replace("OUT", json.dumps(out)).replace("WANT_LOGITS", "true" if want_logits else "false"))
        open(script, "w").write(src)
        res = subprocess.run([exe, script], capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            print(res.stdout, res.stderr)
            check(False, f"classifier T={T}: adeptlua ran")
            return
        line = [l for l in res.stdout.splitlines() if l.startswith("LOSS")][0].split()
        got = read_safetensors(out)
    Wt = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in W.items()}
    logits = reference.forward(CFG, Wt, inputs)
    loss = reference.loss(logits, targets)
    loss.backward()
    tol = head_tol(T)
    l_got, n_got, l_only = float(line[1]), int(line[2]), float(line[3])
    check(l_got == l_only, f"classifier T={T}: loss and loss_and_grad agree bitwise")
    check(n_got == int((targets >= 0).sum()), f"classifier T={T}: {n_got} tokens counted")
    e = abs(l_got - loss.item()) / abs(loss.item())
    check(e <= tol, f"classifier T={T}: loss {l_got:.9f} vs {loss.item():.9f}, relative error {e:.2e} <= {tol:.1e}")
    worst = [e]
    if want_logits:
        e = rel_err(got["logits"].reshape(logits.shape), logits.detach().numpy())
        worst.append(e)
        check(e <= tol, f"classifier T={T}: m:logits from the chunks, relative error {e:.2e} <= {tol:.1e}")
    # a gradient that is exactly zero in exact arithmetic (q_proj and k_proj at T = 1: one key) is measured
    # against the model's largest gradient entry, the scale of the terms its rounding noise comes from
    gmax = max(float(t.grad.abs().max()) for t in Wt.values())
    for k, t in Wt.items():
        e = rel_err(got["grad." + k], t.grad.numpy(), gmax if float(t.grad.abs().max()) == 0 else 0.0)
        worst.append(e)
        check(e <= tol, f"classifier T={T}: grad {k} relative error {e:.2e} <= {tol:.1e}")
    print(f"classifier T={T}: worst relative error {nan_max(worst):.2e} (bound {tol:.1e})")


def main():
    build = os.environ.get("ADEPT_BUILD")
    driver = os.path.join(build, "parity_kernel_driver") if build else None
    if not driver or not os.path.exists(driver):
        skip("ADEPT_BUILD/parity_kernel_driver is missing (run through ctest after make build)")
    exe = adeptlua()
    for B, T, H, KH, D, seed in ((2, 1, 4, 2, 16, 1), (2, 17, 4, 2, 16, 2), (1, 512, 4, 2, 16, 3),
                                 (1, 4096, 2, 1, 8, 4)):
        attention_case(driver, B, T, H, KH, D, seed)
    # sliding windows: 1 (each row sees itself only), inside one block, a block edge, across blocks; B*KH = 4
    # groups at T = 512 takes the one-sweep backward on 2 threads, B*KH = 1 the two-pass one
    for B, T, H, KH, D, seed, W in ((2, 17, 4, 2, 16, 5, 1), (2, 17, 4, 2, 16, 6, 5), (2, 512, 4, 2, 16, 7, 64),
                                    (1, 512, 4, 2, 16, 8, 100), (1, 512, 2, 1, 16, 9, 200), (1, 4096, 2, 1, 8, 10, 1000)):
        attention_case(driver, B, T, H, KH, D, seed, W)
    for T, seed in ((1, 11), (17, 12), (512, 13), (4096, 14)):
        head_case(exe, T, seed)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)


main()
