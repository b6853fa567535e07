#!/usr/bin/python3
"""Hugging Face directories that adeptlua SAVED after training on a device load in real `transformers` and give
adeptlua's logits (issue 12's check of the CUDA backend; tests/device/run calls it on a lent GPU).

For a tiny Llama, Mistral (a sliding window narrower than the sequence), Qwen2 (q/k/v biases) and Qwen3 (q/k
norms, tied head): an HF directory is written here (tests/parity's independent writer), adeptlua loads it on
--device, trains 3 AdamW steps there (so the saved weights are not the ones written), saves the HF directory and
writes its own logits of a 12-token sequence. Then transformers.AutoModelForCausalLM loads the saved directory
in float64 with eager attention and its logits are compared normwise. Where transformers is not installed (this
project's machines: Debian has no package for it) the float64 HF-semantics forward of tests/parity/reference.py
stands in, so the script itself is exercised on every machine; the line printed says which reference ran.

Bound: adeptlua's forward is fp32 (about 30 kernels of ~1e-6 normwise error each at this size, as
tests/unit/test_cuda_model.c argues), so 1e-4 normwise against float64 leaves a factor of 3.

usage: hf_check.py --adeptlua PATH [--device cuda|cpu] [--keep DIR]   (exit 0 ok, 1 a failure, 77 skipped)"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from common import check, failures, lua_table, read_safetensors, write_hf_dir  # noqa: E402
import reference  # noqa: E402  (skips, 77, without torch / numpy)

torch = reference.torch
BOUND = 1e-4
IDS = [1, 5, 9, 3, 40, 0, 17, 22, 8, 8, 31, 12]

LUA = """
local dir, device, ids = DIR, DEVICE, IDS
local m = adept.load(dir, {dtype = "f32", device = device, precision = "f32"}) -- bf16 would need a bf16 bound
local targets = {}
for t = 1, #ids do targets[t] = ids[t % #ids + 1] end
adept.train{model = m, optimizer = adept.adamw(m, {lr = 1e-2, weight_decay = 0}), steps = 3, progress = false,
            data = function() return {inputs = {ids}, targets = {targets}} end}
m:save(dir .. "/saved")
adept.save_tensors(dir .. "/adeptlua_logits.safetensors", {logits = m:logits(ids)})
"""


def transformers_logits(saved):
    """(logits, label) from transformers, or None when it is not installed."""
    try:
        import transformers
    except ImportError:
        return None
    # torch_dtype: accepted by every transformers version (newer ones also take dtype=, and warn on this)
    model = transformers.AutoModelForCausalLM.from_pretrained(saved, torch_dtype=torch.float64,
                                                              attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([IDS])).logits[0]
    return out, "transformers " + transformers.__version__


def reference_logits(saved):
    import json
    with open(os.path.join(saved, "config.json")) as f:
        cfg = json.load(f)
    files = sorted(n for n in os.listdir(saved) if n.endswith(".safetensors"))
    W = {}
    for n in files:
        W.update({k: torch.tensor(v) for k, v in read_safetensors(os.path.join(saved, n)).items()})
    return reference.forward_ids(cfg, W, IDS), "the float64 reference of tests/parity (transformers not installed)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--adeptlua", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--keep")
    a = ap.parse_args()
    if a.device == "cuda" and subprocess.run([a.adeptlua, "-q", "-e", "os.exit(adept.cuda.available() and 0 or 1)"]).returncode:
        print("skipped: no CUDA device for adeptlua (adept.cuda.available() is false)")
        return 77
    root = a.keep or tempfile.mkdtemp(prefix="adept-hf-check-")
    gen = torch.Generator().manual_seed(77)
    cases = [("LlamaForCausalLM", False, {}), ("MistralForCausalLM", False, {"sliding_window": 5}),
             ("Qwen2ForCausalLM", False, {}), ("Qwen3ForCausalLM", True, {})]
    for arch, tied, extra in cases:
        cfg = reference.tiny_config(arch, tied)
        cfg.update(extra)
        d = os.path.join(root, arch)
        write_hf_dir(d, cfg, reference.tiny_weights(cfg, gen), "F32", 1)
        script = LUA.replace("DIR", repr(d)).replace("DEVICE", repr(a.device)).replace(
            "IDS", "{" + ",".join(map(str, IDS)) + "}")
        r = subprocess.run([a.adeptlua, "-q", "-e", script], capture_output=True, text=True)
        if not check(r.returncode == 0, f"{arch}: adeptlua on {a.device} trained and saved"):
            print(r.stdout[-2000:], r.stderr[-2000:])
            continue
        ours = torch.tensor(read_safetensors(os.path.join(d, "adeptlua_logits.safetensors"))["logits"])
        saved = os.path.join(d, "saved")
        try:  # transformers failing to read the directory is this check failing, with its reason
            theirs = transformers_logits(saved) or reference_logits(saved)
        except Exception as e:  # noqa: BLE001
            check(False, f"{arch}: transformers could not load the saved directory: {type(e).__name__}: {e}")
            continue
        ref, label = theirs
        ours = ours.reshape(ref.shape)
        err = float((ours - ref).norm() / ref.norm())
        moved = float((ref - reference_logits(d)[0]).norm() / ref.norm())  # training changed the model
        check(err <= BOUND and moved > 1e-3,
              f"{arch}: the saved directory's logits by {label} against adeptlua's on {a.device}: normwise "
              f"{err:.2e} (bound {BOUND:g}); training moved them by {moved:.2e}")
    failed_archs = {f.split(":")[0] for f in failures}
    print(f"hf-check: {len(cases) - len(failed_archs)}/{len(cases)} architectures ok ({a.device})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
