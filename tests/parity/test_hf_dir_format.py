#!/usr/bin/python3
"""Hugging Face directories written by an independent Python writer (config.json as transformers writes it,
f32 single files and bf16/f16 shards with HF's index) load into adeptlua and give the logits of a straightforward
float64 HF-semantics forward; what adeptlua saves back reads, in Python, bitwise equal to what was written."""
import json
import os
import struct
import subprocess
import sys
import tempfile

from common import read_safetensors_raw
import numpy as np
import torch

failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


# ---- safetensors, independently of the engine --------------------------------------------------------------
def to_bytes(t, dtype):
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.to(torch.float16).numpy().astype("<f2").tobytes()
    return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()


def write_st(path, tensors, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = to_bytes(t, dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


read_st = read_safetensors_raw


def from_bytes(dtype, shape, b):
    if dtype == "F32":
        a = np.frombuffer(b, "<f4").astype(np.float64)
    elif dtype == "F16":
        a = np.frombuffer(b, "<f2").astype(np.float64)
    else:
        a = (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return torch.tensor(a.reshape(shape))


# ---- a tiny model of each family, and HF semantics -----------------------------------------------------------
def make_config(arch, tied):
    c = {"architectures": [arch], "model_type": {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
         "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3"}[arch],
         "vocab_size": 41, "hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 3,
         "num_attention_heads": 6, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 500.0,
         "max_position_embeddings": 128, "tie_word_embeddings": tied, "hidden_act": "silu",
         "initializer_range": 0.02, "use_cache": True, "transformers_version": "4.51.0", "bos_token_id": 1,
         "eos_token_id": 2, "rope_scaling": None, "attention_dropout": 0.0}
    if arch == "Qwen3ForCausalLM":
        c.update(head_dim=8, attention_bias=False, use_sliding_window=False, sliding_window=None,
                 max_window_layers=3, layer_types=["full_attention"] * 3)
    if arch == "Qwen2ForCausalLM":
        c.update(use_sliding_window=False, sliding_window=4096, max_window_layers=3)
    if arch == "MistralForCausalLM":
        c.update(sliding_window=None, head_dim=None)
    if arch == "LlamaForCausalLM":
        c.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
    return c


def make_weights(c, gen):
    C, F, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    D = c.get("head_dim") or C // c["num_attention_heads"]
    QD, KD = c["num_attention_heads"] * D, c["num_key_value_heads"] * D
    arch = c["architectures"][0]
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64) * 0.3
    w = {"model.embed_tokens.weight": r(c["vocab_size"], C), "model.norm.weight": 1 + r(C)}
    for l in range(L):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = 1 + r(C)
        w[p + "self_attn.q_proj.weight"] = r(QD, C)
        w[p + "self_attn.k_proj.weight"] = r(KD, C)
        w[p + "self_attn.v_proj.weight"] = r(KD, C)
        w[p + "self_attn.o_proj.weight"] = r(C, QD)
        if arch == "Qwen2ForCausalLM":
            w[p + "self_attn.q_proj.bias"] = r(QD)
            w[p + "self_attn.k_proj.bias"] = r(KD)
            w[p + "self_attn.v_proj.bias"] = r(KD)
        if arch == "Qwen3ForCausalLM":
            w[p + "self_attn.q_norm.weight"] = 1 + r(D)
            w[p + "self_attn.k_norm.weight"] = 1 + r(D)
        w[p + "post_attention_layernorm.weight"] = 1 + r(C)
        w[p + "mlp.gate_proj.weight"] = r(F, C)
        w[p + "mlp.up_proj.weight"] = r(F, C)
        w[p + "mlp.down_proj.weight"] = r(C, F)
    if not c["tie_word_embeddings"]:
        w["lm_head.weight"] = r(c["vocab_size"], C)
    return w


def rms(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def hf_forward(c, w, ids):
    T, C, H, KV = len(ids), c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    D = c.get("head_dim") or C // H
    eps = c["rms_norm_eps"]
    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cat((ang.cos(), ang.cos()), -1)[:, None], torch.cat((ang.sin(), ang.sin()), -1)[:, None]
    rot = lambda x: torch.cat((-x[..., D // 2:], x[..., :D // 2]), -1)
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rms(x, w[p + "input_layernorm.weight"], eps)
        lin = lambda n: h @ w[p + n + ".weight"].T + (w[p + n + ".bias"] if p + n + ".bias" in w else 0)
        q, k, v = lin("self_attn.q_proj").view(T, H, D), lin("self_attn.k_proj").view(T, KV, D), \
            lin("self_attn.v_proj").view(T, KV, D)
        if p + "self_attn.q_norm.weight" in w:
            q, k = rms(q, w[p + "self_attn.q_norm.weight"], eps), rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        att = (torch.einsum("thd,shd->hts", q, k) / D ** 0.5 + mask).softmax(-1)
        x = x + torch.einsum("hts,shd->thd", att, v).reshape(T, H * D) @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + (torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)) \
            @ w[p + "mlp.down_proj.weight"].T
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return rms(x, w["model.norm.weight"], eps) @ head.T


def write_dir(d, c, w, dtype, shards):
    os.makedirs(d)
    json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)
    names = list(w)
    if shards == 1:
        write_st(os.path.join(d, "model.safetensors"), w, dtype)
        return
    parts = [names[i::shards] for i in range(shards)]  # interleaved: shards need not follow table order
    wm = {}
    for i, part in enumerate(parts):
        f = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
        write_st(os.path.join(d, f), {n: w[n] for n in part}, dtype)
        wm.update({n: f for n in part})
    json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, open(os.path.join(d, "model.safetensors.index.json"), "w"))


LUA = """
local adept = require "adept"
for i, case in ipairs(CASES) do
  local m = adept.load(case.dir)
  adept.save_tensors(case.dir .. "/logits.safetensors", {logits = m:logits(IDS)})
  m:save(case.dir .. "/saved")
end
"""


def main():
    exe = os.environ.get("ADEPTLUA")
    if not exe or not os.path.exists(exe):
        print("FAIL: ADEPTLUA is not set to the built host")
        return 1
    torch.set_num_threads(1)  # tiny tensors: threads only contend on a loaded machine
    gen = torch.Generator().manual_seed(1234)
    ids = [1, 5, 9, 3, 40, 0, 17, 22, 8, 8, 31]
    cases = [("LlamaForCausalLM", False, "F32", 1), ("LlamaForCausalLM", True, "BF16", 3),
             ("MistralForCausalLM", False, "F16", 2), ("Qwen2ForCausalLM", True, "F32", 2),
             ("Qwen2ForCausalLM", False, "BF16", 1), ("Qwen3ForCausalLM", False, "BF16", 2),
             ("Qwen3ForCausalLM", True, "F32", 1)]
    with tempfile.TemporaryDirectory() as tmp:
        specs = []
        for i, (arch, tied, dtype, shards) in enumerate(cases):
            c = make_config(arch, tied)
            w = make_weights(c, gen)
            d = os.path.join(tmp, "case%d" % i)
            write_dir(d, c, w, dtype, shards)
            specs.append((d, c, w, arch, tied, dtype, shards))
        script = os.path.join(tmp, "run.lua")
        with open(script, "w") as f:
            f.write("local IDS = {%s}\nlocal CASES = {%s}\n" % (",".join(map(str, ids)), ",".join(
                "{dir = %s}" % json.dumps(s[0]) for s in specs)) + LUA)
        r = subprocess.run([exe, script], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, "adeptlua loaded, ran and saved every directory")
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            return 1
        for d, c, w, arch, tied, dtype, shards in specs:
            label = "%s tied=%s %s x%d" % (arch, tied, dtype, shards)
            # the weights as the file holds them (rounded to its dtype), then HF semantics in float64
            wf = {n: from_bytes(dtype, tuple(t.shape), to_bytes(t, dtype)) for n, t in w.items()}
            ref = hf_forward(c, wf, ids)
            got_t, _ = read_st(os.path.join(d, "logits.safetensors"))
            got = from_bytes(*got_t["logits"])
            rel = float((got - ref).abs().max() / ref.abs().max())
            check(got.shape == ref.shape and rel < 1e-4, "%s: logits match HF semantics (rel %.2e)" % (label, rel))
            # saved back: same names, same dtype, the same bytes
            sd = os.path.join(d, "saved")
            files = sorted(f for f in os.listdir(sd) if f.endswith(".safetensors"))
            saved = {}
            for f in files:
                t, meta = read_st(os.path.join(sd, f))
                check(meta.get("format") == "pt", "%s: %s carries format=pt metadata" % (label, f))
                saved.update(t)
            wrote = {n: (dtype, tuple(t.shape), to_bytes(t, dtype)) for n, t in w.items()}
            check(set(saved) == set(wrote), "%s: saved tensor names are the written ones" % label)
            check(all(saved[n] == wrote[n] for n in wrote if n in saved), "%s: saved bytes equal the written "
                  "bytes (dtype kept)" % label)
            cj = json.load(open(os.path.join(sd, "config.json")))
            want_dtype = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]
            check(cj.get("torch_dtype") == want_dtype and cj.get("transformers_version") == "4.51.0" and
                  cj.get("num_hidden_layers") == 3 and cj.get("tie_word_embeddings") == tied,
                  "%s: saved config.json keeps the fields, torch_dtype %s" % (label, cj.get("torch_dtype")))
            aj = json.load(open(os.path.join(sd, "adept.json")))
            check(aj.get("expanded_layers") == [], "%s: adept.json lists no expanded layers" % label)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
