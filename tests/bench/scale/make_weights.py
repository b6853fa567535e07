#!/usr/bin/python3
"""tests/bench/scale: random bf16 weights for a config.json (Llama / Qwen3 shapes), streamed into sharded
safetensors a chunk at a time, for models whose fp32 copy would not fit in memory (Llama-3-8B: 32 GB in fp32,
16 GB in bf16). make_checkpoint.lua writes config.json and calls this for such shapes.
Values: N(0, 0.02^2) rounded to bf16 (nearest even), norm gains 1; the same seed gives the same files.
usage: make_weights.py CONFIG_JSON DIR [max_shard_bytes]"""
import json
import os
import struct
import sys

import numpy as np


def tensors(c):
    """(name, shape, kind) in HF order; kind 'norm' tensors are ones, the others random."""
    C, F, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    H, KH = c["num_attention_heads"], c["num_key_value_heads"]
    D = c.get("head_dim") or C // H
    out = [("model.embed_tokens.weight", (V, C), "w")]
    for l in range(L):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (C,), "norm"),
                (p + "self_attn.q_proj.weight", (H * D, C), "w"),
                (p + "self_attn.k_proj.weight", (KH * D, C), "w"),
                (p + "self_attn.v_proj.weight", (KH * D, C), "w"),
                (p + "self_attn.o_proj.weight", (C, H * D), "w")]
        if c.get("model_type") == "qwen3":
            out += [(p + "self_attn.q_norm.weight", (D,), "norm"), (p + "self_attn.k_norm.weight", (D,), "norm")]
        out += [(p + "post_attention_layernorm.weight", (C,), "norm"),
                (p + "mlp.gate_proj.weight", (F, C), "w"),
                (p + "mlp.up_proj.weight", (F, C), "w"),
                (p + "mlp.down_proj.weight", (C, F), "w")]
    out.append(("model.norm.weight", (C,), "norm"))
    if not c.get("tie_word_embeddings"):
        out.append(("lm_head.weight", (V, C), "w"))
    return out


def bf16(x):
    """float32 -> bf16 bits, round to nearest even"""
    u = x.view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)


def write_tensor(f, shape, kind, rng):
    n = int(np.prod(shape))
    if kind == "norm":
        f.write(np.full(n, 0x3F80, dtype=np.uint16).tobytes())
        return
    chunk = 1 << 25
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        f.write(bf16((rng.standard_normal(m, dtype=np.float32) * np.float32(0.02)).astype(np.float32)).tobytes())


def main():
    cfg_path, out = sys.argv[1], sys.argv[2]
    max_shard = int(sys.argv[3]) if len(sys.argv) > 3 else 2 << 30
    with open(cfg_path) as f:
        c = json.load(f)
    ts = tensors(c)
    shards, cur, size = [], [], 0
    for t in ts:
        nbytes = 2 * int(np.prod(t[1]))
        if cur and size + nbytes > max_shard:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += nbytes
    shards.append(cur)
    rng = np.random.default_rng(1)
    weight_map, total = {}, 0
    for s, group in enumerate(shards):
        name = f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for tname, shape, _ in group:
            nbytes = 2 * int(np.prod(shape))
            header[tname] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nbytes]}
            off += nbytes
            weight_map[tname] = name
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for _, shape, kind in group:
                write_tensor(f, shape, kind, rng)
        os.replace(tmp, os.path.join(out, name))
        total += off
        print(f"  {name}: {len(group)} tensors, {off / 2**30:.2f} GiB", flush=True)
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)


if __name__ == "__main__":
    main()
