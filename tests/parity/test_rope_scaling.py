#!/usr/bin/python3
"""rope_scaling of Llama 3.1/3.2 ("llama3") and "linear": HF directories with those configs load into adeptlua and
give the logits of the float64 reference (reference.py, which follows transformers' rope init functions), over 40
positions whose head-dim frequencies fall in all three llama3 bands; the saved config.json keeps the scaling; an
unimplemented type is refused by name."""
import json
import os
import subprocess
import tempfile

from common import adeptlua, check, failures, read_safetensors, write_hf_dir
import reference  # skips (77) without torch / numpy

torch = reference.torch
torch.set_num_threads(1)

# Same chain as test_hf_dir_format.py: 3 layers x 9 products + the head, sums of at most 40 terms, f32 against
# f64: 28 * 2 * 40 * u relative to the largest logit.
LOGIT_TOL = 28 * 2 * 40 * 2.0 ** -24

LUA = """
local adept = require "adept"
for _, case in ipairs(CASES) do
  local m = adept.load(case.dir)
  adept.save_tensors(case.dir .. "/logits.safetensors", {logits = m:logits(IDS)})
  m:save(case.dir .. "/saved")
end
"""


def main():
    exe = adeptlua()
    gen = torch.Generator().manual_seed(7)
    ids = [(i * 7 + 3) % 41 for i in range(40)]
    # head_dim 16 and theta 500: wavelengths 2*pi*500^(2i/16) run from 6.3 to 1440 positions; with an original
    # context of 64 the llama3 bands are < 16 (kept), 16..64 (blended) and > 64 (divided by factor)
    scalings = [{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                 "original_max_position_embeddings": 64},
                {"rope_type": "linear", "factor": 4.0}]
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for i, sc in enumerate(scalings):
            c = reference.tiny_config("LlamaForCausalLM", False)
            c.update(hidden_size=32, num_attention_heads=2, num_key_value_heads=1, head_dim=16, rope_scaling=sc)
            w = reference.tiny_weights(c, gen)
            d = os.path.join(tmp, "case%d" % i)
            write_hf_dir(d, c, w, "F32", 1)
            cases.append((d, c, w))
        script = os.path.join(tmp, "run.lua")
        with open(script, "w") as f:
            f.write("local IDS = {%s}\nlocal CASES = {%s}\n" % (",".join(map(str, ids)), ",".join(
                "{dir = %s}" % json.dumps(d) for d, _, _ in cases)) + LUA)
        r = subprocess.run([exe, script], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, "adeptlua loaded both scaled models")
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            return 1
        for d, c, w in cases:
            kind = c["rope_scaling"]["rope_type"]
            got = torch.tensor(read_safetensors(os.path.join(d, "logits.safetensors"))["logits"], dtype=torch.float64)
            W = {k: v.to(torch.float32).to(torch.float64) for k, v in w.items()}
            ref = reference.forward_ids(c, W, ids)
            unscaled = dict(c, rope_scaling=None)
            ref_plain = reference.forward_ids(unscaled, W, ids)
            err = float((got.reshape(ref.shape) - ref).abs().max() / ref.abs().max())
            gap = float((ref_plain - ref).abs().max() / ref.abs().max())
            print("%s: max |adeptlua - reference| / max |reference| = %.2e (bound %.1e); the scaling moves the "
                  "logits by %.2e" % (kind, err, LOGIT_TOL, gap))
            check(err <= LOGIT_TOL, "%s: logits match the float64 reference" % kind)
            check(gap > 100 * LOGIT_TOL, "%s: the scaling changes the logits far beyond the bound" % kind)
            saved = json.load(open(os.path.join(d, "saved", "config.json")))
            check(saved.get("rope_scaling") == c["rope_scaling"], "%s: the saved config.json keeps rope_scaling" % kind)
        # an unimplemented type: refused, naming it
        c = reference.tiny_config("LlamaForCausalLM", False)
        c["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
        d = os.path.join(tmp, "yarn")
        write_hf_dir(d, c, reference.tiny_weights(c, gen), "F32", 1)
        r = subprocess.run([exe, "-e", "adept.load(%s)" % json.dumps(d)], capture_output=True, text=True, timeout=60)
        check(r.returncode != 0 and 'type "yarn" is not supported' in r.stderr, "yarn is refused by name")
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
