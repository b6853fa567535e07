#!/usr/bin/python3
"""An expanded model saved by adeptlua (identity copies after chosen layers) loads in the float64 HF-semantics
reference of reference.py with the original model's logits: the reference on the saved expanded
weights equals the reference on the original weights bit for bit, and adeptlua's logits before and after
expansion are bitwise equal and match the reference. config.json and adept.json describe the copies."""
import json
import os
import subprocess
import sys
import tempfile

from common import adeptlua, check, failures, read_safetensors_raw as read_st, write_hf_dir as write_dir
import reference  # skips (77) without torch / numpy
from reference import tiny_config as make_config, tiny_weights as make_weights

torch = reference.torch
hf_forward = reference.forward_ids
from_bytes = reference.tensor_from_st


LUA = """
local adept = require "adept"
for _, case in ipairs(CASES) do
  local m = adept.load(case.dir)
  local before = m:logits(IDS)
  local copies = m:expand(case.layers, {init = "identity"})
  local after = m:logits(IDS)
  assert(#copies == #case.layers)
  local a, b = before:table(), after:table()
  for t = 1, #a do for v = 1, #a[t] do
    if a[t][v] ~= b[t][v] then error(("logits changed at %d,%d: %.9g vs %.9g"):format(t, v, a[t][v], b[t][v])) end
  end end
  m:save(case.dir .. "/expanded")
  local m2 = adept.load(case.dir .. "/expanded")
  adept.save_tensors(case.dir .. "/logits.safetensors", {before = before, after = m2:logits(IDS)})
  local f = assert(io.open(case.dir .. "/copies.json", "w"))
  f:write(adept.json.encode({copies = copies, reloaded = m2:expanded_layers()}))
  f:close()
end
"""


def main():
    exe = adeptlua()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(99)
    ids = [1, 5, 9, 3, 40, 0, 17, 22, 8, 8, 31]
    cases = [("LlamaForCausalLM", False, [0, 2]), ("Qwen2ForCausalLM", True, [1]),
             ("Qwen3ForCausalLM", False, [1, 2])]
    with tempfile.TemporaryDirectory() as tmp:
        specs = []
        for i, (arch, tied, layers) in enumerate(cases):
            c = make_config(arch, tied)
            w = make_weights(c, gen)
            d = os.path.join(tmp, "case%d" % i)
            write_dir(d, c, w, "F32", 1)
            specs.append((d, c, w, arch, layers))
        script = os.path.join(tmp, "run.lua")
        with open(script, "w") as f:
            f.write("local IDS = {%s}\nlocal CASES = {%s}\n" % (",".join(map(str, ids)), ",".join(
                "{dir = %s, layers = {%s}}" % (json.dumps(s[0]), ",".join(map(str, s[4]))) for s in specs)) + LUA)
        r = subprocess.run([exe, script], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, "adeptlua expanded (logits bitwise unchanged), saved and reloaded every model")
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            return 1
        for d, c, w, arch, layers in specs:
            label = "%s expand %s" % (arch, layers)
            sd = os.path.join(d, "expanded")
            cj = json.load(open(os.path.join(sd, "config.json")))
            L = c["num_hidden_layers"] + len(layers)
            check(cj["num_hidden_layers"] == L, "%s: config.json num_hidden_layers = %d" % (label, L))
            if "layer_types" in c:
                check(len(cj.get("layer_types", [])) == L, "%s: layer_types has one entry per layer" % label)
            want = [l + i + 1 for i, l in enumerate(sorted(layers))]
            aj = json.load(open(os.path.join(sd, "adept.json")))
            check(aj.get("expanded_layers") == want, "%s: adept.json lists the copies %s" % (label, want))
            cp = json.load(open(os.path.join(d, "copies.json")))
            check(cp["copies"] == want and cp["reloaded"] == want, "%s: m:expanded_layers() survives the reload" % label)
            saved = {}
            for f in os.listdir(sd):
                if f.endswith(".safetensors"):
                    saved.update({n: from_bytes(*t) for n, t in read_st(os.path.join(sd, f))[0].items()})
            for n in want:
                p = "model.layers.%d." % n
                zero = all(float(saved[p + k].abs().max()) == 0 for k in ("self_attn.o_proj.weight", "mlp.down_proj.weight"))
                check(zero, "%s: copy %d has zero o_proj and down_proj" % (label, n))
            cfg2 = dict(c, num_hidden_layers=L)
            ref_orig = hf_forward(c, {n: from_bytes("F32", tuple(t.shape), t.to(torch.float32).numpy().tobytes())
                                      for n, t in w.items()}, ids)
            ref_exp = hf_forward(cfg2, saved, ids)
            check(torch.equal(ref_orig, ref_exp), "%s: HF reference on the saved expanded model equals the original "
                  "bit for bit" % label)
            lg, _ = read_st(os.path.join(d, "logits.safetensors"))
            before, after = from_bytes(*lg["before"]), from_bytes(*lg["after"])
            check(torch.equal(before, after), "%s: reloaded expanded logits equal the original bitwise" % label)
            rel = float((after - ref_exp).abs().max() / ref_exp.abs().max())
            # the bound of test_hf_dir_format (28 products of <= 40 terms in f32) with one more layer per copy:
            # (28 + 9 * copies) * 2 * 40 * u
            tol = (28 + 9 * len(layers)) * 2 * 40 * 2.0 ** -24
            check(rel <= tol, "%s: adeptlua logits of the expanded model match the HF reference (rel %.2e)" % (label, rel))
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
