#!/usr/bin/env python3
"""The last table of tests/device/run: adeptlua (bench_cuda_step's JSON lines) beside PyTorch (tests/device/bench.py's)
for the same model, mode, sequence length and precision: tokens/s of both, their ratio, MFU of both against the
bf16 GEMM peak bench.py measured on this GPU (model FLOPs by bench.flops_per_token, the same count for both
engines), and device memory (adeptlua: what the driver saw it hold; PyTorch: max_memory_allocated).

    python3 tests/device/table.py ENGINE_LOG PYTORCH_LOG [PYTORCH_LOG ...]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import CONFIGS, flops_per_token  # noqa: E402


def json_lines(path):
    rows = []
    if not os.path.exists(path):
        return rows
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def main(argv):
    ours = json_lines(argv[1])
    theirs, peak = [], None
    for p in argv[2:]:
        for r in json_lines(p):
            if "gemm_peak_bf16_tflops" in r:
                peak = r["gemm_peak_bf16_tflops"] * 1e12
            elif "tokens_per_s" in r:
                theirs.append(r)
    print(f"{'model':6} {'mode':6} {'seq':>5} {'prec':5} {'adeptlua tok/s':>14} {'PyTorch tok/s':>13} {'ratio':>6} "
          f"{'MFU ours':>8} {'MFU torch':>9} {'GiB ours':>8} {'GiB torch':>9}")
    for r in ours:
        prec = r["engine"].rsplit("-", 1)[-1]
        name = {"tiny": "smoke"}.get(r["model"], r["model"])
        ref = [t for t in theirs if t["model"] == name and t["mode"] == r["mode"] and t["seq"] == r["seq"]
               and t["batch"] == r["batch"] and (t["engine"].endswith("-f32") == (prec == "f32"))]
        t = ref[0] if ref else None
        mfu = flops_per_token(CONFIGS[name], r["mode"], r["params"], r["trainable"], r["seq"]) * r["tokens_per_s"] / peak \
            if peak and name in CONFIGS else float("nan")
        cell = lambda v, f: format(v, f) if v is not None else "—"
        print(f"{r['model']:6} {r['mode']:6} {r['seq']:5d} {prec:5} {r['tokens_per_s']:14.0f} "
              f"{cell(t and t['tokens_per_s'], '13.0f'):>13} {cell(t and r['tokens_per_s'] / t['tokens_per_s'], '6.2f'):>6} "
              f"{mfu * 100:7.1f}% {cell(t and t['mfu'] * 100, '8.1f'):>8}% {r.get('device_mem_gib', float('nan')):8.2f} "
              f"{cell(t and t['peak_mem_gib'], '9.2f'):>9}")
    # issue 12's third target: the ADEPT step at most 0.4x the full step (same model, length, precision)
    for r in ours:
        if r["mode"] != "adept":
            continue
        full = [f for f in ours if f["mode"] == "full" and f["engine"] == r["engine"] and f["model"] == r["model"]
                and f["seq"] == r["seq"] and f["batch"] == r["batch"]]
        if full:
            f = full[0]
            name = {"tiny": "smoke"}.get(r["model"], r["model"])
            flops = ""  # the ratio at equal efficiency: what the model's FLOPs alone allow
            if name in CONFIGS:
                fa = flops_per_token(CONFIGS[name], "adept", r["params"], r["trainable"], r["seq"])
                ff = flops_per_token(CONFIGS[name], "full", f["params"], f["trainable"], f["seq"])
                flops = f"; FLOPs per token {fa / ff:.2f}"
            print(f"ADEPT step / full step, adeptlua {r['model']} {r['engine'].rsplit('-', 1)[-1]} T={r['seq']}: "
                  f"{r['step_s'] / f['step_s']:.2f} (target <= 0.40{flops}); device memory "
                  f"{r.get('device_mem_gib', float('nan')):.2f} / {f.get('device_mem_gib', float('nan')):.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
