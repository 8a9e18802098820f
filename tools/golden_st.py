"""golden_st.py — write_st(), the safetensors writer of the golden-case generators (tools/gen_*.py):
F32 for floating tensors (F64 for those named), I64 for int64 ones, from torch tensors or numpy
arrays; the header padded to 8 bytes as safetensors does."""
import json
import struct

import numpy as np


def write_st(path, tensors, f64=()):
    """f64: names of tensors written as F64 (else floating tensors are F32)."""
    hdr, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.numpy() if hasattr(t, "numpy") else np.asarray(t)
        if name in f64:
            dt, b = "F64", np.ascontiguousarray(a.astype("<f8")).tobytes()
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
