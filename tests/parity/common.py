"""Shared set-up of the parity tests: skip (exit 77, as ctest expects) when a reference or the engine is
missing, and say why."""
import json
import os
import struct
import sys


def require_modules(*names):
    """Imports the reference modules (e.g. "torch", "numpy") or skips the test."""
    import importlib
    try:
        return [importlib.import_module(n) for n in names]
    except ImportError as e:
        print(f"skipped: {e} (Debian's python3-torch / python3-numpy; run with /usr/bin/python3)")
        sys.exit(77)


def adeptlua():
    """The path of the built host, from ctest's environment, or skips the test."""
    exe = os.environ.get("ADEPTLUA")
    if not exe or not os.path.exists(exe):
        print("skipped: ADEPTLUA is not set (run through ctest)")
        sys.exit(77)
    return exe


def read_safetensors_raw(path):
    """A safetensors file read by the spec alone: ({name: (dtype, shape, bytes)}, metadata)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = (e["dtype"], tuple(e["shape"]), raw[8 + n + b:8 + n + end])
    return out, header.get("__metadata__", {})
