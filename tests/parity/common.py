"""Shared set-up of the parity tests: skip (exit 77, as ctest expects) when a reference or the engine is
missing, and say why; the one spec-only safetensors writer and reader the tests use (written from the format's
description, independently of the engine); NaN-aware comparisons; a Lua script run over test directories. The
PyTorch reference model is reference.py."""
import json
import math
import os
import struct
import subprocess
import sys


def skip(reason):
    """Ends the test as skipped (ctest's SKIP_RETURN_CODE 77), printing why."""
    print(f"skipped: {reason}")
    sys.exit(77)


def require_modules(*names):
    """Imports the reference modules (e.g. "torch", "numpy") or skips the test."""
    import importlib
    try:
        return [importlib.import_module(n) for n in names]
    except ImportError as e:
        skip(f"{e} (Debian's python3-torch / python3-numpy; run with /usr/bin/python3)")


def adeptlua():
    """The path of the built host, from ctest's environment, or skips the test."""
    exe = os.environ.get("ADEPTLUA")
    if not exe or not os.path.exists(exe):
        skip("ADEPTLUA is not set to the built host (run through ctest)")
    return exe


# ---- pass/fail lines ------------------------------------------------------------------------------------------
failures = []


def check(cond, what):
    """Prints "ok: what" or "FAIL: what" and remembers the failure; the test exits 1 if any failed."""
    cond = bool(cond)
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)
    return cond


# ---- NaN-aware comparisons -----------------------------------------------------------------------------------
# Python's max() keeps its first argument when a later one is NaN (NaN > x is False), and `err > tol` is False
# for a NaN err: both hide a NaN. These return NaN when any value is NaN; compare with `not (err <= tol)`.
def nan_max(values):
    """Largest of the numbers, NaN if any is NaN, 0.0 for none."""
    worst = 0.0
    for v in values:
        v = float(v)
        if math.isnan(v):
            return math.nan
        worst = max(worst, v)
    return worst


def within(err, tol):
    """True when err <= tol; False for a NaN err (or tol)."""
    return bool(err <= tol)


# ---- safetensors, from the format's description -------------------------------------------------------------
# A file: 8-byte little-endian header length n, n bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
# "__metadata__": {str: str}}, then the data; offsets count from the first byte after the header.
ELEMENT_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                 "BOOL": 1}


def st_encode(x, dtype):
    """Little-endian bytes of a numpy array or torch tensor stored as dtype (F32, F16 or BF16: rounded to it)."""
    import numpy as np
    if hasattr(x, "detach"):  # torch tensors round in torch (numpy has no bfloat16)
        import torch
        x = x.detach()
        if dtype == "BF16":
            return x.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
        if dtype in ("F32", "F16"):
            x = x.to(torch.float32 if dtype == "F32" else torch.float16)
        x = x.numpy()
    x = np.asarray(x)
    if dtype == "BF16":
        import torch
        return st_encode(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), dtype)
    np_type = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}[dtype]
    return np.ascontiguousarray(x, dtype=np_type).tobytes()


def st_decode(dtype, shape, raw):
    """The float64 (or int64 for integer dtypes) numpy array held by raw bytes of dtype and shape."""
    import numpy as np
    if dtype == "BF16":
        a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    elif dtype in ("F64", "F32", "F16"):
        a = np.frombuffer(raw, {"F64": "<f8", "F32": "<f4", "F16": "<f2"}[dtype]).astype(np.float64)
    else:
        a = np.frombuffer(raw, {"I64": "<i8", "I32": "<i4", "U8": "u1"}[dtype]).astype(np.int64)
    return a.reshape(shape)


def st_write(path, tensors, metadata=None, pad=True):
    """Writes tensors, a list of (name, dtype, shape, raw bytes) or a dict name -> (dtype, shape, raw), in that
    order, packed from offset 0. pad: spaces after the JSON up to a multiple of 8 (as the reference writer does)."""
    items = tensors.items() if isinstance(tensors, dict) else [(t[0], t[1:]) for t in tensors]
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in items:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_safetensors(path, arrays, dtype="F32", metadata=None):
    """Writes {name: numpy array or torch tensor}, every tensor stored as dtype."""
    st_write(path, {n: (dtype, tuple(a.shape), st_encode(a, dtype)) for n, a in arrays.items()}, metadata)


def st_read(path):
    """Reads a file, checking the format's invariants (header in the file, UTF-8 JSON, string metadata, each
    tensor's byte length matching dtype and shape, tensors packed without gaps or overlaps up to the end).
    Returns (header dict, {name: (dtype, shape, raw bytes)}, header length)."""
    with open(path, "rb") as f:
        buf = f.read()
    assert len(buf) >= 8, f"{path}: {len(buf)} bytes, shorter than the 8-byte header length"
    (n,) = struct.unpack("<Q", buf[:8])
    assert 8 + n <= len(buf), f"{path}: header length {n} beyond file of {len(buf)}"
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    out, ranges = {}, []
    for name, e in header.items():
        if name == "__metadata__":
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in e.items()), f"{path}: metadata"
            continue
        b, end = e["data_offsets"]
        assert 0 <= b <= end <= len(data), (path, name, b, end, len(data))
        if e["dtype"] in ELEMENT_BYTES:
            assert end - b == ELEMENT_BYTES[e["dtype"]] * math.prod(e["shape"]), (path, name, "size vs shape")
        out[name] = (e["dtype"], tuple(e["shape"]), data[b:end])
        ranges.append((b, end))
    ranges.sort()
    pos = 0
    for b, end in ranges:
        assert b == pos, f"{path}: gap or overlap at {b}, expected {pos}"
        pos = end
    assert pos == len(data), f"{path}: {len(data) - pos} trailing bytes"
    return header, out, n


def read_safetensors_raw(path):
    """({name: (dtype, shape, raw bytes)}, metadata) of a file, checked as st_read does."""
    header, out, _ = st_read(path)
    return out, header.get("__metadata__", {})


def lua_table(d):
    """A Lua table constructor for a flat dict of numbers, strings and booleans (model configs in scripts)."""
    val = lambda v: str(v).lower() if isinstance(v, bool) else json.dumps(v)
    return "{" + ",".join(f"{k}={val(v)}" for k, v in d.items()) + "}"


def write_hf_dir(d, config, weights, dtype, shards):
    """A Hugging Face model directory as transformers writes it: config.json and the weights as one
    model.safetensors, or split into shards (interleaved by name: shards need not follow table order) with
    model.safetensors.index.json; every file carries the format=pt metadata."""
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write = lambda path, names: st_write(path, {n: (dtype, tuple(weights[n].shape), st_encode(weights[n], dtype))
                                                for n in names}, {"format": "pt"})
    names = list(weights)
    if shards == 1:
        write(os.path.join(d, "model.safetensors"), names)
        return
    weight_map = {}
    for i in range(shards):
        part, f = names[i::shards], "model-%05d-of-%05d.safetensors" % (i + 1, shards)
        write(os.path.join(d, f), part)
        weight_map.update({n: f for n in part})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


def read_safetensors(path):
    """{name: float64 numpy array} of a file, checked as st_read does."""
    return {n: st_decode(*t) for n, t in read_safetensors_raw(path)[0].items()}


def run_lua_cases(exe, tmp, dirs, ids, batch, targets, lua, what, timeout=120):
    """Runs `lua` under adeptlua after a prelude defining IDS, BATCH and TARGETS (Lua tables of the lists) and
    CASES ({dir = ...} for each directory); returns the JSON the script prints after "RESULT ", or None when it
    failed (recorded as a failure of `what`, its output printed)."""
    lua_list = lambda xs: "{" + ",".join(lua_list(x) if isinstance(x, list) else str(x) for x in xs) + "}"
    script = os.path.join(tmp, "run.lua")
    with open(script, "w") as f:
        f.write("local IDS = %s\nlocal BATCH = %s\nlocal TARGETS = %s\nlocal CASES = {%s}\n" % (
            lua_list(ids), lua_list(batch), lua_list(targets), ",".join("{dir = %s}" % json.dumps(d) for d in dirs))
            + lua)
    r = subprocess.run([exe, script], capture_output=True, text=True, timeout=timeout)
    if not check(r.returncode == 0, what):
        print(r.stdout, r.stderr)
        return None
    return json.loads([l for l in r.stdout.splitlines() if l.startswith("RESULT ")][0][7:])
