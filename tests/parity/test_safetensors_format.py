"""safetensors format parity: files written by the parity tests' independent minimal writer (common.py: struct +
json + numpy, as the spec describes; bf16 rounding by torch) are read by adeptlua, written back, and read by the
independent reader there, which checks the format's invariants."""
import json
import os
import subprocess
import sys
import tempfile

from common import adeptlua, require_modules, st_encode, st_read as read_st, st_write as write_st

np, torch = require_modules("numpy", "torch")
EXE = adeptlua()

ST_NAMES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int32"): "I32",
            np.dtype("uint8"): "U8", np.dtype("float64"): "F64", np.dtype("int64"): "I64"}


def run_lua(code):
    r = subprocess.run([EXE, "-e", code], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit(f"adeptlua failed with status {r.returncode}")
    return r.stdout


def main():
    rng = np.random.default_rng(1234)
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        src = {
            "w": rng.standard_normal((3, 5)).astype("<f4"),
            "h": rng.standard_normal((4,)).astype("<f2"),
            "ids": rng.integers(-1000, 1000, (2, 3)).astype("<i4"),
            "bytes": rng.integers(0, 256, (5,)).astype("u1"),
            "scalar": np.array(2.5, dtype="<f4"),
            "empty": np.zeros((0, 3), dtype="<f4"),
        }
        bf = rng.standard_normal((2, 2, 2)).astype(np.float32)
        items = [(k, ST_NAMES[v.dtype], v.shape, v.tobytes()) for k, v in src.items()]
        items.insert(1, ("bf", "BF16", bf.shape, st_encode(bf, "BF16")))
        meta = {"format": "pt", "source": "parity \u00e9"}
        for pad in (True, False):  # unpadded headers leave data misaligned: the reader must still be right
            a = os.path.join(d, f"a{int(pad)}.safetensors")
            b = os.path.join(d, f"b{int(pad)}.safetensors")
            write_st(a, items, meta, pad=pad)
            out = run_lua(f"""
                local m, meta = adept.load_tensors({json.dumps(a)})
                local n = 0
                for k, t in pairs(m) do n = n + 1; io.write(k, "=", table.concat(t:shape(), "x"), " ") end
                meta.roundtrip = "yes"
                adept.save_tensors({json.dumps(b)}, m, meta)
                print(n)""")
            shapes = dict(tok.split("=") for tok in out.split()[:-1])
            for name, _, shape, _ in items:
                want = "x".join(str(s) for s in shape)
                if shapes.get(name) != want:
                    print(f"FAIL pad={pad} {name}: adeptlua saw shape {shapes.get(name)!r}, expected {want!r}")
                    failures += 1
            header, got, n = read_st(b)
            if n % 8:
                print(f"FAIL header length {n} is not a multiple of 8")
                failures += 1
            if list(k for k in header if k != "__metadata__") != sorted(src.keys() | {"bf"}):
                print(f"FAIL tensor order {list(header)} is not sorted")
                failures += 1
            if header.get("__metadata__") != dict(meta, roundtrip="yes"):
                print(f"FAIL metadata {header.get('__metadata__')}")
                failures += 1
            for name, dtype, shape, raw in items:
                gd, gs, graw = got[name]
                if (gd, gs) != (dtype, tuple(shape)) or graw != raw:
                    print(f"FAIL pad={pad} {name}: got {gd} {gs}, expected {dtype} {tuple(shape)}; bytes equal: {graw == raw}")
                    failures += 1
            got_bf = torch.frombuffer(bytearray(got["bf"][2]), dtype=torch.bfloat16).float().reshape(bf.shape)
            if not torch.equal(got_bf, torch.from_numpy(bf).to(torch.bfloat16).float()):
                print("FAIL bf16 values differ")
                failures += 1

        # a file written by adeptlua from scratch: standard normal values, spec-conforming layout
        c = os.path.join(d, "c.safetensors")
        run_lua(f'adept.save_tensors({json.dumps(c)}, {{x = adept.randn({{100, 100}}, 7), z = adept.zeros({{}})}})')
        header, got, n = read_st(c)
        x = np.frombuffer(got["x"][2], dtype="<f4")
        if got["x"][:2] != ("F32", (100, 100)) or x.size != 10000 or not (abs(x.mean()) <= 0.05 and abs(x.std() - 1) <= 0.05):
            print(f"FAIL randn file: {got['x'][:2]}, mean {x.mean()}, std {x.std()}")
            failures += 1
        if got["z"] != ("F32", (), b"\0\0\0\0"):
            print(f"FAIL scalar zero: {got['z']}")
            failures += 1
        if "__metadata__" in header:
            print("FAIL metadata written when none was given")
            failures += 1
    print(f"{'FAILED' if failures else 'ok'}: {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
