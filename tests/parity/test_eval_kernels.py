#!/usr/bin/python3
"""Parity of adept.eval's kernels with PyTorch float64: log-softmax at target ids (multiple-choice scoring) and the
token shift (top-1 changes, KL(p_base || p_tuned) as torch.nn.functional.kl_div(log q, log p, log_target=True)).
adeptlua draws the logits, prints them (%.9g round-trips float32) and its results; torch recomputes."""
import os
import subprocess
import sys
import tempfile

from common import adeptlua, require_modules

torch, F = require_modules("torch", "torch.nn.functional")
exe = adeptlua()

N, V = 37, 2000  # N*V above the kernels' 65536-element threshold for OpenMP
LUA = r"""
local adept = require "adept"
local N, V = %d, %d
local base = adept.randn({N, V}, 1) * 3
local tuned = base + adept.randn({N, V}, 2) * 0.5
local same = base:clone()
local targets = {}
for i = 1, N do targets[i] = (i %% 5 == 0) and -1 or ((i * 7919) %% V) end
local function dump(name, t)
  local flat, out = {}, {}
  for _, row in ipairs(t:table()) do for _, x in ipairs(row) do flat[#flat + 1] = x end end
  for i = 1, #flat do out[i] = string.format("%%.9g", flat[i]) end
  io.write(name, " | ", table.concat(out, " "), "\n")
end
dump("base", base) dump("tuned", tuned)
io.write("targets | ", table.concat(targets, " "), "\n")
local lp, greedy = adept._eval.target_logprobs(base, targets)
local lps, gs = {}, {}
for i = 1, N do lps[i] = string.format("%%.17g", lp[i]); gs[i] = greedy[i] and 1 or 0 end
io.write("logp | ", table.concat(lps, " "), "\n")
io.write("greedy | ", table.concat(gs, " "), "\n")
for name, t in pairs({shift = tuned, self = same}) do
  local s = adept._eval.token_shift(base, t, targets)
  io.write(name, " | ", s.positions, " ", s.changed, " ", s.marginal, " ", s.shifted, " ",
           string.format("%%.17g", s.kl_sum), "\n")
end
""" % (N, V)

with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
    f.write(LUA)
try:
    res = subprocess.run([exe, f.name], capture_output=True, text=True)
finally:
    os.unlink(f.name)
if res.returncode != 0:
    print(res.stdout, res.stderr)
    sys.exit(1)
out = {}
for line in res.stdout.splitlines():
    name, _, vals = line.partition(" | ")
    out[name] = [float(v) for v in vals.split()]

base = torch.tensor(out["base"], dtype=torch.float32).double().reshape(N, V)
tuned = torch.tensor(out["tuned"], dtype=torch.float32).double().reshape(N, V)
targets = torch.tensor(out["targets"], dtype=torch.long)
mask = targets >= 0
failures = []

lsm = F.log_softmax(base, dim=-1)
ref = torch.where(mask, lsm.gather(1, targets.clamp(min=0)[:, None])[:, 0], torch.zeros(N, dtype=torch.float64))
got = torch.tensor(out["logp"], dtype=torch.float64)
err = (got - ref).abs().max().item()
print(f"target log-probs: max abs diff {err:.3g}")
# the kernels work in double on the f32 logits: a log-sum-exp over V = 2000 terms is within 2 V 2^-53 = 4.4e-13 of
# its terms' sum, and the logits are below 20 (3 sigma * 3 * 2): |error| <= 1e-11, 1e-9 leaves margin for exp/log.
if not err <= 1e-9:  # `not <=`: fails on NaN
    failures.append("target log-probs")
ref_greedy = torch.where(mask, base.argmax(dim=-1) == targets, torch.ones(N, dtype=torch.bool))
if not torch.equal(torch.tensor(out["greedy"]) == 1, ref_greedy):
    failures.append("greedy flags")

lq = F.log_softmax(tuned, dim=-1)
kl_rows = F.kl_div(lq, lsm, reduction="none", log_target=True).sum(-1)  # KL(p_base || p_tuned) per row
top_b, top_t = base.argmax(-1), tuned.argmax(-1)
rank = (base > base.gather(1, top_t[:, None])).sum(-1) + 1  # rank of the tuned top-1 under base (no ties here)
changed = (top_b != top_t) & mask
ref_shift = [mask.sum().item(), changed.sum().item(), (changed & (rank <= 3)).sum().item(),
             (changed & (rank > 3)).sum().item(), kl_rows[mask].sum().item()]
got_shift = out["shift"]
print(f"token shift: adept {got_shift}, torch {ref_shift}")
# the KL sum: N rows of V double terms each, the same 2 V 2^-53 per row relative to the row's terms (positive)
if got_shift[:4] != ref_shift[:4] or not abs(got_shift[4] - ref_shift[4]) <= 1e-9 * max(1.0, ref_shift[4]):
    failures.append("token shift")
if ref_shift[1] == 0:
    failures.append("the perturbation changed no top-1 (test is vacuous)")
if out["self"] != [ref_shift[0], 0, 0, 0, 0]:
    failures.append(f"self shift {out['self']}")

if failures:
    print("FAILED:", ", ".join(failures))
    sys.exit(1)
print("ok")
