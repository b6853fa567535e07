#!/usr/bin/python3
"""Hugging Face directories written by an independent Python writer (config.json as transformers writes it,
f32 single files and bf16/f16 shards with HF's index) load into adeptlua and give the logits of a straightforward
float64 HF-semantics forward; what adeptlua saves back reads, in Python, bitwise equal to what was written."""
import json
import os
import subprocess
import sys
import tempfile

from common import adeptlua, check, failures, read_safetensors_raw as read_st, st_encode as to_bytes, \
    write_hf_dir as write_dir
import reference  # skips (77) without torch / numpy
from reference import tiny_config as make_config, tiny_weights as make_weights

torch = reference.torch

torch.set_num_threads(1)  # tiny tensors: threads only contend on a loaded machine
from_bytes = reference.tensor_from_st


LUA = """
local adept = require "adept"
for i, case in ipairs(CASES) do
  -- f32: the weights widened exactly, so the fp32 bound below holds (the bf16 path is tests/lua/bf16_spec.lua)
  local m = adept.load(case.dir, {dtype = "f32"})
  adept.save_tensors(case.dir .. "/logits.safetensors", {logits = m:logits(IDS)})
  m:save(case.dir .. "/saved")
end
"""


LOGIT_TOL = 28 * 2 * 40 * 2.0 ** -24


def main():
    exe = adeptlua()
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
            ref = reference.forward_ids(c, wf, ids)
            got_t, _ = read_st(os.path.join(d, "logits.safetensors"))
            got = from_bytes(*got_t["logits"])
            rel = float((got - ref).abs().max() / ref.abs().max())
            # f32 in adeptlua vs f64 here on the same weights: <= 3 layers x 9 products + the head, each a sum of
            # <= 40 terms within 2 * 40 u of their magnitudes (u = 2^-24), relative to the largest logit:
            # 28 * 2 * 40 * u = 1.3e-4; a wrong term (bias, q/k norm, RoPE pairing, tied head) is off by > 1e-2.
            check(got.shape == ref.shape and rel <= LOGIT_TOL, "%s: logits match HF semantics (rel %.2e)" % (label, rel))
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
