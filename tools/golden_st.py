"""golden_st.py — helpers of the golden-case generators (tools/gen_*.py): round_tol(), the
tolerance rounding they share, and write_st(), their safetensors writer:
F32 for floating tensors (F64 for those named), I64 for int64 ones, from torch tensors or numpy
arrays; the header padded to 8 bytes as safetensors does."""
import json
import math
import os
import struct

import numpy as np


def write_st(path, tensors, f64=(), u8=()):
    """f64: names of tensors written as F64, u8: as U8 (else floating tensors are F32)."""
    hdr, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.numpy() if hasattr(t, "numpy") else np.asarray(t)
        if name in f64:
            dt, b = "F64", np.ascontiguousarray(a.astype("<f8")).tobytes()
        elif name in u8:
            assert a.dtype == np.uint8, name
            dt, b = "U8", np.ascontiguousarray(a).tobytes()
        elif a.dtype == np.int64:
            dt, b = "I64", np.ascontiguousarray(a.astype("<i8")).tobytes()
        else:
            dt, b = "F32", np.ascontiguousarray(a.astype("<f4")).tobytes()
        hdr[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def round_tol(x, floor):
    """x rounded up to 1, 2 or 5 x 10^k, at least floor: the tolerance of a case from its measured
    float32-vs-float64 gap (already multiplied by the generator's safety factor)."""
    x = max(x, floor)
    e = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10.0 ** e >= x * (1 - 1e-12):
            return float("%.0e" % (m * 10.0 ** e))
    return x


def dump_json(path, obj, indent):
    """obj as JSON with `indent` and a final newline (the model configs the generators write)."""
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent)
        f.write("\n")


def link_component(models, d, sub, src, over, weights, indent):
    """Component `sub` of the composite model folder d: a relative symlink to models/src, or, with
    `over` (config keys to change; each must exist), a folder holding src's config.json with
    those keys changed (dumped with `indent`) and a relative symlink to src's `weights` file."""
    if over is None:
        os.symlink(os.path.join("..", src), os.path.join(d, sub))
        return
    os.makedirs(os.path.join(d, sub))
    cfg = json.load(open(os.path.join(models, src, "config.json")))
    for k, v in over.items():
        assert k in cfg, k
        cfg[k] = v
    dump_json(os.path.join(d, sub, "config.json"), cfg, indent)
    os.symlink(os.path.join("..", "..", src, weights), os.path.join(d, sub, weights))
