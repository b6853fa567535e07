"""safetensors format parity: files written here by an independent minimal writer (struct + json + numpy, as the
spec describes; bf16 rounding by torch) are read by adeptlua, written back, and read here by an independent reader."""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as e:  # the parity label needs Debian's python3-numpy and python3-torch
    print(f"skipped: {e}")
    sys.exit(77)

EXE = os.environ.get("ADEPTLUA")
if not EXE or not os.path.exists(EXE):
    print("skipped: ADEPTLUA is not set (run through ctest)")
    sys.exit(77)

ST_NAMES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int32"): "I32",
            np.dtype("uint8"): "U8", np.dtype("float64"): "F64", np.dtype("int64"): "I64"}


def write_st(path, tensors, metadata=None, pad=True):
    """tensors: list of (name, st_dtype, shape, raw little-endian bytes), written in this order."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_st(path):
    """Returns (header dict, {name: (dtype, shape, raw bytes)}, header length), checking the spec's invariants."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    assert 8 + n <= len(buf), f"header length {n} beyond file of {len(buf)}"
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    out, ranges = {}, []
    for name, e in header.items():
        if name == "__metadata__":
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in e.items())
            continue
        b, end = e["data_offsets"]
        assert 0 <= b <= end <= len(data), (name, b, end, len(data))
        out[name] = (e["dtype"], tuple(e["shape"]), data[b:end])
        ranges.append((b, end))
    ranges.sort()
    pos = 0
    for b, end in ranges:  # our writer packs tensors contiguously from 0 to the end of the file
        assert b == pos, f"gap or overlap at {b}, expected {pos}"
        pos = end
    assert pos == len(data), f"{len(data) - pos} trailing bytes"
    return header, out, n


def bf16_bytes(x):
    return torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()


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
        items.insert(1, ("bf", "BF16", bf.shape, bf16_bytes(bf)))
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
        if got["x"][:2] != ("F32", (100, 100)) or x.size != 10000 or abs(x.mean()) > 0.05 or abs(x.std() - 1) > 0.05:
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
