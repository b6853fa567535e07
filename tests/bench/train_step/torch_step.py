"""PyTorch side of the train_step benchmark: the same LLaMA config, data and thread count as adept_step.lua,
forward+backward+AdamW (float32, eager, HF semantics written out: RMSNorm, rotate_half RoPE, causal softmax attention,
SwiGLU, untied head). usage: torch_step.py config steps threads"""
import resource
import sys
import time

import torch
import torch.nn.functional as F

config, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(1)
B, T, V, C, L, H, FF = 8, 256, 8192, 512, 8, 8, 1408
D = C // H


def param(*shape, norm=False):
    return torch.nn.Parameter(torch.ones(*shape) if norm else torch.randn(*shape) * 0.02)


P = {"embed": param(V, C), "norm": param(C, norm=True), "head": param(V, C)}
for l in range(L):
    for n, s in (("ln1", (C,)), ("ln2", (C,))):
        P[f"{l}.{n}"] = param(*s, norm=True)
    for n, s in (("q", (C, C)), ("k", (C, C)), ("v", (C, C)), ("o", (C, C)), ("gate", (FF, C)), ("up", (FF, C)),
                 ("down", (C, FF))):
        P[f"{l}.{n}"] = param(*s)
if config == "b":  # only the top 2 layers trainable
    for k, p in P.items():
        p.requires_grad_(k.split(".")[0] in ("6", "7"))

inv = 1.0 / 10000 ** (torch.arange(0, D, 2).float() / D)
ang = torch.arange(T).float()[:, None] * inv[None]
cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
mask = torch.full((T, T), float("-inf")).triu(1)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def rot(x):
    return torch.cat([-x[..., D // 2:], x[..., :D // 2]], -1)


def forward(ids, tgt):
    x = P["embed"][ids]
    for l in range(L):
        h = rms(x, P[f"{l}.ln1"])
        q = (h @ P[f"{l}.q"].T).view(B, T, H, D).transpose(1, 2)
        k = (h @ P[f"{l}.k"].T).view(B, T, H, D).transpose(1, 2)
        v = (h @ P[f"{l}.v"].T).view(B, T, H, D).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        att = torch.softmax(q @ k.transpose(-1, -2) / D ** 0.5 + mask, -1)
        x = x + (att @ v).transpose(1, 2).reshape(B, T, C) @ P[f"{l}.o"].T
        h = rms(x, P[f"{l}.ln2"])
        x = x + (F.silu(h @ P[f"{l}.gate"].T) * (h @ P[f"{l}.up"].T)) @ P[f"{l}.down"].T
    logits = rms(x, P["norm"]) @ P["head"].T
    return F.cross_entropy(logits.view(-1, V), tgt.reshape(-1))


seed, rows = 12345, []  # the same LCG tokens as adept_step.lua
for r in range(B):
    row = []
    for t in range(T + 1):
        seed = (seed * 1103515245 + 12345) % 2147483648
        row.append(seed % 8192)
    rows.append(row)
data = torch.tensor(rows)
ids, tgt = data[:, :T], data[:, 1:]


# AdamW as adeptlua applies it: weight decay on matrices only, betas (0.9, 0.95)
trainable = {k: p for k, p in P.items() if p.requires_grad}
opt = torch.optim.AdamW([
    {"params": [p for p in trainable.values() if p.dim() == 2], "weight_decay": 0.1},
    {"params": [p for p in trainable.values() if p.dim() != 2], "weight_decay": 0.0}],
    lr=1e-4, betas=(0.9, 0.95), eps=1e-8)


def step():
    for p in P.values():
        p.grad = None
    loss = forward(ids, tgt)
    loss.backward()
    opt.step()
    return loss.item()


loss = step()  # warm-up
dt = float("inf")  # the best step time: the least disturbed measurement on a shared machine (same rule for both)
for _ in range(steps):
    t0 = time.perf_counter()
    loss = step()
    dt = min(dt, time.perf_counter() - t0)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
n = sum(p.numel() for p in P.values())
print(f"RESULT engine=pytorch config={config} tokens_per_s={B * T / dt:.1f} step_s={dt:.3f} peak_rss_mib={rss:.0f} "
      f"loss={loss:.4f} params={n}")
