"""PyTorch side of tests/bench/train_loop: the same Llama shapes in fp32, torch.optim.AdamW; one JSON line."""
import json
import sys
import time

import torch

mode, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(1)
V, C, F, L, H = 1024, 192, 512, 8, 6
D = C // H
B, T = 4, 128


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.Parameter(torch.ones(C)), torch.nn.Parameter(torch.ones(C))
        self.q, self.k, self.v, self.o = (torch.nn.Linear(C, C, bias=False) for _ in range(4))
        self.gate, self.up = torch.nn.Linear(C, F, bias=False), torch.nn.Linear(C, F, bias=False)
        self.down = torch.nn.Linear(F, C, bias=False)

    def forward(self, x, cos, sin):
        def norm(x, w):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

        def rope(x):
            h = x.shape[-1] // 2
            return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin

        h = norm(x, self.ln1)
        q = rope(self.q(h).view(B, T, H, D).transpose(1, 2))
        k = rope(self.k(h).view(B, T, H, D).transpose(1, 2))
        v = self.v(h).view(B, T, H, D).transpose(1, 2)
        att = torch.softmax((q @ k.transpose(-1, -2)) / D ** 0.5 + MASK, -1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(B, T, C))
        h = norm(x, self.ln2)
        return x + self.down(torch.nn.functional.silu(self.gate(h)) * self.up(h))


MASK = torch.full((T, T), float("-inf")).triu(1)
inv = 1.0 / 10000 ** (torch.arange(0, D, 2).float() / D)
ang = torch.arange(T).float()[:, None] * inv[None]
COS, SIN = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
embed = torch.nn.Embedding(V, C)
layers = torch.nn.ModuleList(Layer() for _ in range(L))
final = torch.nn.Parameter(torch.ones(C))
head = torch.nn.Linear(C, V, bias=False)
params = [*embed.parameters(), *layers.parameters(), final, *head.parameters()]
if mode == "top25":
    for p in params:
        p.requires_grad_(False)
    for l in layers[6:]:
        for p in l.parameters():
            p.requires_grad_(True)
trainable = [p for p in params if p.requires_grad]
opt = torch.optim.AdamW([{"params": [p], "weight_decay": 0.1 if p.dim() == 2 else 0.0} for p in trainable], lr=1e-4)
data = [torch.tensor([[(i * 7919 + r * 104729 + t * 31337) % V for t in range(1, T + 2)] for r in range(1, B + 1)])
        for i in range(1, 9)]


def step(i):
    ids = data[i % len(data)]
    x = embed(ids[:, :T])
    for l in layers:
        x = l(x, COS, SIN)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * final
    loss = torch.nn.functional.cross_entropy(head(x).view(-1, V), ids[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


for i in range(2):
    step(i)
t0 = time.perf_counter()
for i in range(steps):
    step(i)
el = time.perf_counter() - t0
rss = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        rss = int(line.split()[1]) * 1024
print(json.dumps({"tokens_per_s": steps * B * T / el, "peak_rss": rss, "trainable": sum(p.numel() for p in trainable),
                  "config": {"hidden": C, "layers": L, "vocab": V}, "batch": B, "seq": T}))
