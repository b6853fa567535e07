#!/usr/bin/env python3
"""PyTorch side of the CUDA benchmark (issue 12): training throughput of Llama-shaped models in bf16 on one GPU,
full training and ADEPT (4 layer copies trainable, the rest frozen), PyTorch eager with SDPA attention and fused
AdamW (and torch.compile with --compile). Prints one JSON line per run and a table last: tokens/s, MFU against
a bf16 GEMM peak measured here, peak device memory. The adeptlua side joins once the model runs on the CUDA
backend (docs/cuda.md); until then this gives the baseline to beat.

    python3 tests/device/bench.py [--models 124m,1b] [--seq 2048] [--batch 1] [--steps 10] [--compile]
    python3 tests/device/bench.py --smoke      # tiny shapes on the CPU, to check the script itself
"""
import argparse, json, math, os, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

# hidden, layers, heads, kv heads, intermediate, vocab
CONFIGS = {
    "124m": dict(hidden=768, layers=12, heads=12, kv_heads=12, inter=2048, vocab=32000),
    "1b": dict(hidden=2048, layers=16, heads=32, kv_heads=8, inter=5632, vocab=32000),
    "smoke": dict(hidden=64, layers=2, heads=4, kv_heads=2, inter=128, vocab=256),
}


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.w, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.w


def rope(x, cos, sin):  # x [B, H, T, D], rotate_half convention
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.h, self.kh = c["hidden"], c["heads"], c["kv_heads"]
        self.hd = d // self.h
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, self.kh * self.hd, bias=False)
        self.v = nn.Linear(d, self.kh * self.hd, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.gate = nn.Linear(d, c["inter"], bias=False)
        self.up = nn.Linear(d, c["inter"], bias=False)
        self.down = nn.Linear(c["inter"], d, bias=False)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        y = self.n1(x)
        q = self.q(y).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k(y).view(B, T, self.kh, self.hd).transpose(1, 2)
        v = self.v(y).view(B, T, self.kh, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if self.kh != self.h:
            k = k.repeat_interleave(self.h // self.kh, dim=1)
            v = v.repeat_interleave(self.h // self.kh, dim=1)
        if hasattr(F, "scaled_dot_product_attention"):
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch < 2.0 (the --smoke check on an old CPU build)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            a = s.softmax(-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, D))
        y = self.n2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class Llama(nn.Module):
    def __init__(self, c, extra_layers=0):
        super().__init__()
        self.c = c
        self.emb = nn.Embedding(c["vocab"], c["hidden"])
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["layers"] + extra_layers))
        self.norm = RMSNorm(c["hidden"])
        self.head = nn.Linear(c["hidden"], c["vocab"], bias=False)

    def forward(self, ids, targets):
        T, hd = ids.shape[1], self.c["hidden"] // self.c["heads"]
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=ids.device).float() / hd))
        ang = torch.arange(T, device=ids.device).float()[:, None] * inv[None]
        cos, sin = ang.cos().to(self.emb.weight.dtype), ang.sin().to(self.emb.weight.dtype)
        x = self.emb(ids)
        for b in self.blocks:
            x = b(x, cos, sin)
        logits = self.head(self.norm(x)).float()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def measure_peak_bf16(dev):
    if dev.type != "cuda":
        return float("nan")
    n = 8192
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * 10 / (time.perf_counter() - t)


def flops_per_token(c, mode, n_all, n_train, T):
    """Model FLOPs per token (for MFU; tests/device/table.py uses it for adeptlua's rows too): forward 2N plus
    causal attention 2 L T d (QK^T and PV, half of 4 L T d); full training triples both. ADEPT (4 copies on top):
    the forward, then backward (4 flops per weight: dx and dw) through the trainable copies, and dx only (2 per
    weight) through the frozen final norm and head."""
    copies = 4 if mode == "adept" else 0
    L, d = c["layers"] + copies, c["hidden"]
    attn = 2 * L * T * d
    if mode == "full":
        return 6 * n_all + 3 * attn
    return 2 * n_all + attn + 4 * n_train + 2 * c["vocab"] * d + 2 * attn * copies / L


def run(name, mode, args, dev, dtype, peak):
    c = CONFIGS[name]
    torch.manual_seed(0)
    copies = 4 if mode == "adept" else 0
    m = Llama(c, extra_layers=copies).to(dev, dtype)
    if mode == "adept":  # the copies (placed after every L/4-th layer in ADEPT; here the last 4) train, the rest frozen
        for p in m.parameters():
            p.requires_grad_(False)
        for b in m.blocks[c["layers"]:]:
            for p in b.parameters():
                p.requires_grad_(True)
    params = [p for p in m.parameters() if p.requires_grad]
    fused = dev.type == "cuda"
    opt = torch.optim.AdamW(params, lr=1e-4, fused=fused) if fused else torch.optim.AdamW(params, lr=1e-4)
    step_fn = torch.compile(m) if args.compile else m
    ids = torch.randint(0, c["vocab"], (args.batch, args.seq + 1), device=dev)
    x, y = ids[:, :-1], ids[:, 1:]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        loss = step_fn(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / args.steps
    tokens = args.batch * args.seq
    n_all = sum(p.numel() for p in m.parameters())
    n_train = sum(p.numel() for p in params)
    T = args.seq
    flops = flops_per_token(c, mode, n_all, n_train, T)
    r = dict(engine="pytorch" + ("-compile" if args.compile else "-eager") + ("-f32" if dtype == torch.float32 else ""), model=name, mode=mode, seq=T,
             batch=args.batch, step_s=dt, tokens_per_s=tokens / dt, mfu=flops * tokens / dt / peak,
             peak_mem_gib=(torch.cuda.max_memory_allocated() / 2**30) if dev.type == "cuda" else float("nan"),
             params=n_all, trainable=n_train, loss=float(loss))
    print(json.dumps(r), flush=True)
    if name in args.profile_models.split(","):
        profile(step, dev, args.profile_steps, f"{name} {mode}")
    del m, opt
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return r


def profile(step, dev, steps, label):
    """steps more steps under torch.profiler, after the timed ones: the kernels by device time, to set beside
    adeptlua's profile (bench_cuda_step --profile) op by op. Lines start with "torch-profile:"."""
    from torch.profiler import ProfilerActivity
    cuda = dev.type == "cuda"
    with torch.profiler.profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()

    def self_time(e):  # microseconds; the device field's name changed across PyTorch versions
        if not cuda:
            return e.self_cpu_time_total
        for k in ("self_device_time_total", "self_cuda_time_total"):
            v = getattr(e, k, None)
            if v is not None:
                return v
        return 0

    events = [e for e in prof.key_averages() if self_time(e) > 0]
    total = sum(self_time(e) for e in events) or 1.0
    print(f"torch-profile: == {label}: {total / 1e3 / steps:.3f} ms of {'device' if cuda else 'cpu'} time per step "
          f"over {steps} step(s), by kernel/op (self time)", flush=True)
    print(f"torch-profile: {'share':>7} {'ms/step':>10} {'calls/step':>10}  name")
    for e in sorted(events, key=lambda e: -self_time(e))[:12]:
        t = self_time(e)
        print(f"torch-profile: {100 * t / total:6.1f}% {t / 1e3 / steps:10.3f} {e.count / steps:10.1f}  {e.key[:110]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="124m,1b")
    ap.add_argument("--modes", default="full,adept")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--profile-models", default="", help="models (comma-separated) also profiled after timing")
    ap.add_argument("--profile-steps", type=int, default=3)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"],
                    help="f32: fp32 with TF32 off, the fair reference for adeptlua's fp32 CUDA path")
    args = ap.parse_args()
    if args.smoke:
        args.models, args.seq, args.steps, args.warmup = "smoke", 32, 2, 1
    dev = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if dev.type != "cuda" and not args.smoke:
        print("bench.py: no CUDA device: nothing was measured (use --smoke to check the script on a CPU)")
        return 2
    dtype = torch.bfloat16 if dev.type == "cuda" and args.dtype == "bf16" else torch.float32
    if args.dtype == "f32":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    peak = measure_peak_bf16(dev) if dev.type == "cuda" else 1e12
    print(json.dumps(dict(gemm_peak_bf16_tflops=peak / 1e12,
                          device=torch.cuda.get_device_name() if dev.type == "cuda" else "cpu")), flush=True)
    rows = [run(n, mode, args, dev, dtype, peak) for n in args.models.split(",") for mode in args.modes.split(",")]
    print(f"\n{'engine':16} {'model':6} {'mode':6} {'tokens/s':>10} {'step ms':>9} {'MFU':>6} {'peak GiB':>9}")
    for r in rows:
        print(f"{r['engine']:16} {r['model']:6} {r['mode']:6} {r['tokens_per_s']:10.0f} {r['step_s'] * 1e3:9.1f} "
              f"{r['mfu'] * 100:5.1f}% {r['peak_mem_gib']:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
