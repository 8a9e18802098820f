#!/usr/bin/python3
"""Write the corrupt/malicious checkpoint fixtures under tests/data/bad/ (committed, so CI
needs no torch). Run with Debian's /usr/bin/python3: `tools/make_bad_fixtures.py`.
Nothing here ever unpickles the malicious files."""
import io
import json
import os
import struct
import zipfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "bad")


def st_bytes(header, data, pad=True):
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def good_st():
    return st_bytes({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                     "b": {"dtype": "F16", "shape": [4], "data_offsets": [16, 24]}}, bytes(range(24)))


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def zi(name, method=zipfile.ZIP_STORED):
    """A fixed timestamp keeps the fixtures byte-identical between runs."""
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = method
    return info


def torch_zip(name, pkl, entries=None):
    """A zip laid out like torch 1.13's writer: STORED entries under '<arch>/'."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(zi("archive/data.pkl"), pkl)
        for k, v in (entries or {}).items():
            z.writestr(zi("archive/data/" + k), v)
        z.writestr(zi("archive/version"), b"3\n")
    write(name, buf.getvalue())


def main():
    os.makedirs(OUT, exist_ok=True)
    g = good_st()
    write("st_header_cut.safetensors", g[:20])                      # header cut
    write("st_data_cut.safetensors", g[:-5])                        # data cut
    write("st_len_past_eof.safetensors", struct.pack("<Q", 4096) + g[8:])
    write("st_len_huge.safetensors", struct.pack("<Q", 1 << 60) + g[8:])
    write("st_not_json.safetensors", st_bytes(None, b"")[:8 - 8] + struct.pack("<Q", 8) + b"{nope!!}")
    write("st_not_object.safetensors", st_bytes([1, 2, 3], b""))
    write("st_offsets_past_end.safetensors",
          st_bytes({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                    "big": {"dtype": "F32", "shape": [64], "data_offsets": [16, 272]}}, bytes(32)))
    write("st_overlap.safetensors",
          st_bytes({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                    "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, bytes(24)))
    write("st_size_mismatch.safetensors",
          st_bytes({"w": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 16]}}, bytes(16)))
    write("st_unknown_dtype.safetensors",
          st_bytes({"w": {"dtype": "F8_E9M9", "shape": [4], "data_offsets": [0, 4]}}, bytes(4)))
    write("st_negative_shape.safetensors",
          st_bytes({"w": {"dtype": "U8", "shape": [-4], "data_offsets": [0, 4]}}, bytes(4)))

    # pickles built from opcodes by hand (protocol 2), never loaded
    cmd = b"touch /tmp/ngpt_pwned"
    pwn = b"\x80\x02cposix\nsystem\nq\x00X" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."
    torch_zip("pkl_system.pt", pwn)
    evil = b"\x80\x02cbuiltins\neval\nq\x00X" + struct.pack("<I", 4) + b"1+1)" + b"\x85R."
    torch_zip("pkl_eval.pt", evil)
    # a stack deeper than the reader's bound (300000 empty lists), and too many nested MARKs
    deep = b"\x80\x02" + b"]" * 300000 + b"."
    torch_zip("pkl_deep.pt", deep)
    deep2 = b"\x80\x02" + b"(" * 100000 + b"."
    torch_zip("pkl_marks.pt", deep2)
    # a dict that contains itself (a cycle the flattener must not follow forever)
    cyc = b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s."
    torch_zip("pkl_cycle.pt", cyc)
    # one dict under two keys ({"a": d, "b": d}): nested, such sharing names 2^depth tensors from a
    # file of depth x 40 bytes, so the flattener refuses a dict it reaches twice
    shared = b"\x80\x02}q\x00(X\x01\x00\x00\x00a}q\x01X\x01\x00\x00\x00bh\x01u."
    torch_zip("pkl_shared_dict.pt", shared)
    # a tensor whose storage entry is missing / too short
    hdr = (b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00w"
           b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storage"
           b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x10tQ"
           b"K\x00K\x04K\x04\x86K\x04K\x01\x86\x89ccollections\nOrderedDict\n)Rtq\x03Ru.")
    torch_zip("pkl_short_storage.pt", hdr, {"0": bytes(32)})
    torch_zip("pkl_ok_tiny.pt", hdr, {"0": struct.pack("<16f", *range(16))})
    # a transposed (non-contiguous) view: size (4,4) stride (1,4)
    tr = hdr.replace(b"K\x04K\x01\x86\x89", b"K\x01K\x04\x86\x89")
    torch_zip("pkl_transposed.pt", tr, {"0": struct.pack("<16f", *range(16))})
    # an expanded view (strides 0): [4, 4] over a storage of one element; gathered, a file this
    # small could ask for any amount of memory
    ex = hdr.replace(b"cpuK\x10t", b"cpuK\x01t").replace(b"K\x04K\x01\x86\x89", b"K\x00K\x00\x86\x89")
    torch_zip("pkl_expanded.pt", ex, {"0": struct.pack("<f", 1.0)})
    # truncated zip: cut in the middle of the data
    with open(os.path.join(OUT, "pkl_ok_tiny.pt"), "rb") as f:
        whole = f.read()
    write("zip_truncated.pt", whole[: len(whole) // 2])
    # a local header whose name is not the central directory's (a corrupt or spliced archive)
    i = whole.index(b"PK\x03\x04")
    j = whole.index(b"archive/data.pkl", i)
    write("zip_bad_local.pt", whole[:j + 8] + b"D" + whole[j + 9:])
    # one name twice: which copy torch.load would read is not ours to guess
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z.writestr(zi("archive/data.pkl"), hdr)
            z.writestr(zi("archive/data/0"), bytes(64))
            z.writestr(zi("archive/data/0"), bytes(64))
    write("zip_dup_entries.pt", buf.getvalue())
    # compressed entry
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(zi("archive/data.pkl", zipfile.ZIP_DEFLATED), hdr)
        z.writestr(zi("archive/data/0", zipfile.ZIP_DEFLATED), bytes(64))
    write("zip_deflated.pt", buf.getvalue())
    # legacy torch.save (pre-1.6) magic
    write("legacy.pt", b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.")
    good_torch()


def good_torch():
    """tests/data/torch_nested.pt: a real torch.save of a nested checkpoint (only when torch is
    importable; the committed file is what the tests read)."""
    try:
        import torch
    except ImportError:
        return
    g = torch.Generator().manual_seed(0)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {"model": {"lin.weight": base, "lin.weight_t": base.t(), "row": base[2],
                    "bf": torch.randn(3, 5, generator=g).to(torch.bfloat16), "ids": torch.tensor([1, -2, 3]),
                    "mask": torch.tensor([True, False]), "scalar": torch.tensor(2.5, dtype=torch.float64)},
          "epoch": 3, "name": "x", "opt": {0: {"step": torch.tensor(7)}}}
    torch.save(sd, os.path.join(OUT, "..", "torch_nested.pt"))


if __name__ == "__main__":
    main()
