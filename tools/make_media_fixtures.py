#!/usr/bin/python3
"""make_media_fixtures.py — regenerate tests/data/media/ and our media golden cases.

Run from the repository root with Debian's /usr/bin/python3 (numpy, Pillow 9.4, torch 1.13,
torchaudio 0.13, torchvision 0.14 when installed):  /usr/bin/python3 tools/make_media_fixtures.py

tests/data/media/
  *.jpg, *.png           small images in every layout the decoder handles
  *.bmp *.tif *.p?m *.ico  BMP, TIFF, Netpbm and ICO in the layouts Pillow writes, and by hand
                         (tiff(), bmp()) those it cannot: 4-bit gray WhiteIsZero and palettes,
                         planar RGB, associated alpha, RGB555/565, OS/2 and short-palette BMPs,
                         RLE8, maxvals, an ICO whose largest entry is a 4-bit DIB, TIFF
                         Orientation (which Pillow applies on open); libtiff writes (through
                         ctypes, libtiff_write) the tiled and YCbCr-JPEG TIFFs
  pixels.safetensors     U8 [h,w,3] per image file name = Image.open(f).convert("RGB") (Pillow)
  huge_header.png        a valid PNG signature + IHDR claiming 100000 x 100000 (must be refused)
  extraneous.jpg         rgb_q90.jpg with 3 stray bytes before its DQT (libjpeg warns, Pillow decodes)
  pal_short_plte.png     10x10 palette PNG whose PLTE has 10 entries for indices up to 255
  bad_progressive.jpg    committed, not written here: a 223x225 progressive JPEG (Pillow, quality 80)
                         with a few bytes changed, found by a fuzzing sweep: libjpeg warns, then
                         fails ("Bogus Huffman table definition"; Pillow: "broken data stream"); it
                         must be refused, not returned half decoded
  samp_3x1.jpg, ycck.jpg committed, not written here: made with libjpeg's C API (sampling factors
                         3x1,1x1,1x1 and a YCCK colour space, which Pillow cannot write) by
                         tools/make_libjpeg_fixtures.c: `make_libjpeg_fixtures samp_3x1.jpg 61 43
                         samp:3x1,1x1,1x1` and `... ycck.jpg 61 43 ycck`; their Pillow pixels are
                         in pixels.safetensors like the others'
  stereo44k.wav          0.5 s, 2 channels, 44.1 kHz, 16-bit (bad-header tests start from it)
tests/golden/vision/<stage>/<case>/   FORMAT.md layout; expected outputs from the reference code
  (ImageBind data.py's transforms: PIL + torchvision for images, torchaudio for audio, the
  pytorchvideo 0.1.5 ConstantClipsPerVideoSampler rule re-stated with Fractions).
The tests never run Python: the outputs of this script are committed.
"""
import io, json, os, struct, sys, zlib
from fractions import Fraction

import numpy as np
from PIL import Image
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "media")
GOLD = os.path.join(ROOT, "tests", "golden", "vision")


def write_safetensors(path, tensors):
    dt = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}
    hdr, blobs, off = {}, [], 0
    for k, a in tensors.items():
        a = np.ascontiguousarray(a)
        b = a.tobytes()
        hdr[k] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def scene(w, h, seed):
    """Smooth gradients + shapes + a little noise: exercises chroma and the resize filter."""
    r = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([
        128 + 100 * np.sin(x / (w / 5.0) + seed),
        128 + 100 * np.cos(y / (h / 3.0)),
        (x * 255.0 / w + y * 255.0 / h) / 2,
    ], -1)
    img[(x - w / 2) ** 2 + (y - h / 3) ** 2 < (min(w, h) / 4) ** 2] = [250, 30, 60]
    img += r.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)


def images():
    out = {}
    rgb = scene(61, 43, 1)
    save = {}
    im = Image.fromarray(rgb)
    save["rgb_q90.jpg"] = (im, dict(format="JPEG", quality=90))
    save["rgb_444.jpg"] = (im, dict(format="JPEG", quality=95, subsampling=0))
    save["rgb_422.jpg"] = (im, dict(format="JPEG", quality=80, subsampling=1))
    save["progressive.jpg"] = (Image.fromarray(scene(70, 50, 2)), dict(format="JPEG", quality=85, progressive=True))
    save["gray.jpg"] = (im.convert("L"), dict(format="JPEG", quality=90))
    save["cmyk.jpg"] = (Image.fromarray(scene(40, 30, 3)).convert("CMYK"), dict(format="JPEG", quality=92))
    save["rgb.png"] = (im, dict(format="PNG"))
    save["rgba.png"] = (Image.fromarray(np.dstack([rgb, (np.arange(61 * 43) % 256).reshape(43, 61).astype(np.uint8)])), dict(format="PNG"))
    save["gray.png"] = (im.convert("L"), dict(format="PNG"))
    save["la.png"] = (im.convert("LA"), dict(format="PNG"))
    save["gray1.png"] = (im.convert("1"), dict(format="PNG"))
    pal = im.convert("P", palette=Image.ADAPTIVE, colors=16)
    save["palette4.png"] = (pal, dict(format="PNG", bits=4))
    pt = im.convert("P", palette=Image.ADAPTIVE, colors=200)
    save["palette_trns.png"] = (pt, dict(format="PNG", transparency=bytes(range(0, 200))))
    g16 = (np.arange(43 * 61).reshape(43, 61) * 23 % 65536).astype(np.uint16)
    save["gray16.png"] = (Image.fromarray(g16), dict(format="PNG"))
    for name, (img, kw) in save.items():
        b = io.BytesIO()
        img.save(b, **kw)
        out[name] = b.getvalue()
    # Pillow cannot write interlaced PNGs or 16-bit RGB(A)/LA: build them with zlib by hand.
    def png(w, h, ct, depth, rows, interlace=0):
        ihdr = struct.pack(">IIBBBBB", w, h, depth, ct, 0, 0, interlace)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    a = scene(37, 29, 4)
    # Adam7: 7 passes of sub-images, filter type 0 on every row.
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\0" + row.tobytes()
    out["interlaced.png"] = png(37, 29, 2, 8, raw, 1)
    r16 = (scene(33, 21, 5).astype(np.uint16) * 257 + np.random.RandomState(5).randint(0, 256, (21, 33, 3))).astype(">u2")
    out["rgb16.png"] = png(33, 21, 2, 16, b"".join(b"\0" + row.tobytes() for row in r16))
    a16 = np.dstack([r16, r16[..., :1]]).astype(">u2")
    out["rgba16.png"] = png(33, 21, 6, 16, b"".join(b"\0" + row.tobytes() for row in a16))
    la16 = np.dstack([r16[..., :1], r16[..., 1:2]]).astype(">u2")
    out["la16.png"] = png(33, 21, 4, 16, b"".join(b"\0" + row.tobytes() for row in la16))
    j = out["rgb_q90.jpg"]
    i = j.index(b"\xff\xdb")
    out["extraneous.jpg"] = j[:i] + b"\0\1\2" + j[i:]
    idx = np.random.RandomState(6).randint(0, 256, (10, 10)).astype(np.uint8)
    ihdr = struct.pack(">IIBBBBB", 10, 10, 8, 3, 0, 0, 0)
    out["pal_short_plte.png"] = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"PLTE", bytes(range(30))) +
                                 chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r.tobytes() for r in idx))) + chunk(b"IEND", b""))
    out.update(images_av())
    return out


def tiff(w, h, bits, spp, photometric, strips, colormap=None, extra=None, planar=1):
    """A little-endian TIFF, one IFD after the (uncompressed) strips: the layouts Pillow cannot write."""
    off, offs = 8, []
    for s in strips:
        offs.append(off)
        off += len(s)
    tags = {256: (4, [w]), 257: (4, [h]), 258: (3, [bits] * spp), 259: (3, [1]), 262: (3, [photometric]),
            273: (4, offs), 277: (3, [spp]), 278: (4, [h]), 279: (4, [len(s) for s in strips])}
    if planar == 2:
        tags[284] = (3, [2])
    if colormap is not None:
        tags[320] = (3, colormap)
    if extra is not None:
        tags[338] = (3, [extra])
    arrays, entries = b"", b""
    for t, (typ, vals) in sorted(tags.items()):
        raw = b"".join(struct.pack("<H" if typ == 3 else "<I", v) for v in vals)
        if len(raw) <= 4:
            entries += struct.pack("<HHI", t, typ, len(vals)) + raw.ljust(4, b"\0")
        else:
            entries += struct.pack("<HHII", t, typ, len(vals), off + len(arrays))
            arrays += raw + b"\0" * (len(raw) % 2)
    ifd = struct.pack("<H", len(tags)) + entries + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", off + len(arrays)) + b"".join(strips) + arrays + ifd


def libtiff_write(arr, comp, photometric, tile=None, rps=None, planar=1, sub=None, quality=85):
    """A TIFF written by libtiff itself (through ctypes): tiles, YCbCr JPEG, which Pillow cannot write."""
    import ctypes
    import tempfile
    lt = ctypes.CDLL("libtiff.so.6")
    lt.TIFFOpen.restype = ctypes.c_void_p
    lt.TIFFOpen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setf = lambda t, tag, *v: lt.TIFFSetField(ctypes.c_void_p(t), ctypes.c_uint32(tag), *[ctypes.c_int(x) for x in v])
    h, w, c = arr.shape
    with tempfile.NamedTemporaryFile(suffix=".tif") as f:
        t = lt.TIFFOpen(f.name.encode(), b"w")
        for tag, v in ((256, w), (257, h), (258, 8), (277, c), (259, comp), (262, photometric), (284, planar)):
            setf(t, tag, v)
        if tile:
            setf(t, 322, tile[0]), setf(t, 323, tile[1])
        else:
            setf(t, 278, rps or h)
        if comp == 7:
            setf(t, 65537, quality)  # TIFFTAG_JPEGQUALITY
        if comp == 7 and photometric == 6:
            if sub:
                setf(t, 530, *sub)
            setf(t, 65538, 1)  # TIFFTAG_JPEGCOLORMODE = RGB: libtiff converts our RGB
        planes = [arr] if planar == 1 else [arr[:, :, k:k + 1] for k in range(c)]
        for p, pl in enumerate(planes):
            if tile:
                tw, th = tile
                for ty in range(0, h, th):
                    for tx in range(0, w, tw):
                        tb = np.zeros((th, tw, pl.shape[2]), np.uint8)
                        sub_ = pl[ty:ty + th, tx:tx + tw]
                        tb[:sub_.shape[0], :sub_.shape[1]] = sub_
                        idx = lt.TIFFComputeTile(ctypes.c_void_p(t), tx, ty, 0, p)
                        lt.TIFFWriteEncodedTile(ctypes.c_void_p(t), idx, tb.tobytes(), tb.size)
            else:
                r = rps or h
                for k, y in enumerate(range(0, h, r)):
                    buf = pl[y:y + r].tobytes()
                    lt.TIFFWriteEncodedStrip(ctypes.c_void_p(t), p * ((h + r - 1) // r) + k, buf, len(buf))
        lt.TIFFClose(ctypes.c_void_p(t))
        return open(f.name, "rb").read()


def bmp(w, h, bits, pixels, comp=0, pal=b"", hsize=40, masks=(), clr_used=0):
    """A BMP with the given (already padded or RLE-coded) pixel bytes."""
    if hsize == 12:
        hdr = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        hdr = struct.pack("<IiiHHIIiiII", hsize, w, h, 1, bits, comp, len(pixels), 2835, 2835, clr_used, 0)
        hdr += b"".join(struct.pack("<I", m) for m in masks)
    off = 14 + len(hdr) + len(pal)
    return b"BM" + struct.pack("<IHHI", off + len(pixels), 0, 0, off) + hdr + pal + pixels


def images_av():
    """BMP, TIFF and Netpbm: what Pillow writes, and by hand the layouts it cannot write."""
    out, save = {}, {}
    im = Image.fromarray(scene(23, 17, 21))
    pal = im.convert("P", palette=Image.ADAPTIVE, colors=16)
    save["rgb.bmp"] = (im, dict(format="BMP"))
    save["pal8.bmp"] = (pal, dict(format="BMP"))
    save["gray1.bmp"] = (im.convert("1"), dict(format="BMP"))
    save["rgba.bmp"] = (im.convert("RGBA"), dict(format="BMP"))
    save["rgb_lzw.tif"] = (im, dict(format="TIFF", compression="tiff_lzw"))
    save["rgb_pred_deflate.tif"] = (im, dict(format="TIFF", compression="tiff_adobe_deflate", tiffinfo={317: 2}))
    save["rgba_packbits.tif"] = (Image.fromarray(np.dstack([scene(23, 17, 21), scene(23, 17, 22)[..., 0]]), "RGBA"),
                                 dict(format="TIFF", compression="packbits"))
    save["la.tif"] = (im.convert("LA"), dict(format="TIFF"))
    save["pal.tif"] = (pal, dict(format="TIFF"))
    save["cmyk.tif"] = (im.convert("CMYK"), dict(format="TIFF", compression="tiff_lzw"))
    save["g4.tif"] = (im.convert("1"), dict(format="TIFF", compression="group4"))
    g16 = (np.arange(17 * 23).reshape(17, 23) * 7 % 600).astype(np.uint16)
    save["gray16.tif"] = (Image.fromarray(g16), dict(format="TIFF"))
    save["orient6.tif"] = (im, dict(format="TIFF", tiffinfo={274: 6}))  # Pillow applies TIFF Orientation on open
    save["orient7_lzw.tif"] = (im, dict(format="TIFF", compression="tiff_lzw", tiffinfo={274: 7}))
    save["rgb.ppm"] = (im, dict(format="PPM"))
    save["gray.pgm"] = (im.convert("L"), dict(format="PPM"))
    save["bits.pbm"] = (im.convert("1"), dict(format="PPM"))
    for name, (img, kw) in save.items():
        b = io.BytesIO()
        img.save(b, **kw)
        out[name] = b.getvalue()
    r = np.random.RandomState(23)
    a = scene(19, 13, 23)
    alpha = r.randint(0, 256, (13, 19, 1)).astype(np.uint8)
    alpha[0, :4] = [[0], [255], [1], [128]]
    premul = np.dstack([a.astype(np.int32) * alpha // 255, alpha]).astype(np.uint8)
    out["rgba_assoc.tif"] = tiff(19, 13, 8, 4, 2, [premul.tobytes()], extra=1)
    out["rgb_planar.tif"] = tiff(19, 13, 8, 3, 2, [a[..., c].tobytes() for c in range(3)], planar=2)
    g4 = r.randint(0, 16, (13, 19))
    packed = b"".join(bytes((int(row[x]) << 4) | (int(row[x + 1]) if x + 1 < 19 else 0) for x in range(0, 19, 2)) for row in g4)
    out["gray4_miniswhite.tif"] = tiff(19, 13, 4, 1, 0, [packed])
    out["pal4.tif"] = tiff(19, 13, 4, 1, 3, [packed], colormap=[int(v) for v in r.randint(0, 65536, 48)])
    quad = lambda n: b"".join(bytes(list(r.randint(0, 256, 3)) + [0]) for _ in range(n))
    rows = lambda rs: b"".join(row + b"\0" * (-len(row) % 4) for row in rs[::-1])  # bottom-up, 4-byte rows
    v16 = r.randint(0, 65536, (13, 19)).astype("<u2")
    out["rgb565.bmp"] = bmp(19, 13, 16, rows([row.tobytes() for row in v16]), comp=3, masks=(0xf800, 0x7e0, 0x1f))
    out["rgb555.bmp"] = bmp(19, 13, 16, rows([row.tobytes() for row in v16]))
    i8 = r.randint(0, 256, (13, 19)).astype(np.uint8)
    out["pal8_short.bmp"] = bmp(19, 13, 8, rows([row.tobytes() for row in i8]), pal=quad(20), clr_used=20)
    out["pal4_os2.bmp"] = bmp(19, 13, 4, rows([packed[y * 10:(y + 1) * 10] for y in range(13)]), pal=b"".join(bytes(list(r.randint(0, 256, 3))) for _ in range(16)), hsize=12)
    # RLE8: runs, an absolute run, end of line short of the width (the rest is index 0), end of bitmap
    rle = b""
    for y in range(12, -1, -1):
        row = i8[y]
        if y == 5:
            rle += b"\x04" + bytes([row[0]]) + b"\0\0"
            continue
        rle += b"\0" + bytes([19]) + row.tobytes() + b"\0" + b"\0\0"
    out["rle8.bmp"] = bmp(19, 13, 8, rle + b"\0\1", comp=1, pal=quad(256))
    # Netpbm beyond maxval 255: Pillow rescales (round half to even), mode "I" for gray
    p5 = r.randint(0, 101, (13, 19)).astype(np.uint8)
    out["maxval100.pgm"] = b"P5\n# a comment\n19 13\n100\n" + p5.tobytes()
    p6 = r.randint(0, 1001, (13, 19, 3)).astype(">u2")
    out["maxval1000.ppm"] = b"P6 19 13 1000\n" + p6.tobytes()
    out["plain.ppm"] = ("P3\n19 13\n255\n" + " ".join(str(int(v)) for v in a.flatten()) + "\n").encode()
    # TIFF in tiles and JPEG-compressed TIFF (strips and tiles, RGB and subsampled YCbCr), which
    # FFmpeg 5.1 decodes as garbage: Pillow writes JPEG strips; libtiff itself the rest
    for fn, mode in (("jpeg.tif", "RGB"), ("jpeg_gray.tif", "L"), ("jpeg_cmyk.tif", "CMYK")):
        b = io.BytesIO()
        im.convert(mode).save(b, "TIFF", compression="jpeg", quality=85)
        out[fn] = b.getvalue()
    big = Image.fromarray(scene(45, 37, 26))
    for fn, kw in (("tiled_lzw.tif", dict(comp=5, photometric=2, tile=(16, 32))),
                   ("tiled_planar.tif", dict(comp=1, photometric=2, tile=(16, 16), planar=2)),
                   ("jpeg_ycbcr21.tif", dict(comp=7, photometric=6, rps=16, sub=(2, 1))),
                   ("jpeg_ycbcr_tiled.tif", dict(comp=7, photometric=6, tile=(32, 16)))):
        out[fn] = libtiff_write(np.asarray(big), **kw)
    # ICO: Pillow's (PNG entries; BMP entries), and a hand-made one whose largest entry is a 4-bit
    # DIB (XOR image + AND mask) behind a smaller 32-bit one
    rgba = Image.fromarray(np.dstack([scene(40, 40, 24), scene(40, 40, 25)[..., :1]]), "RGBA")
    for fn, kw in (("png.ico", {}), ("bmp.ico", {"bitmap_format": "bmp"})):
        b = io.BytesIO()
        rgba.save(b, "ICO", sizes=[(16, 16), (40, 40)], **kw)
        out[fn] = b.getvalue()
    def dib(w, h, bits, pixels, pal=b""):
        mask = r.randint(0, 256, (w + 31) // 32 * 4 * h).astype(np.uint8).tobytes()
        return struct.pack("<IiiHHIIiiII", 40, w, 2 * h, 1, bits, 0, 0, 0, 0, 0, 0) + pal + pixels + mask
    small = dib(8, 8, 32, rows([row.tobytes() for row in r.randint(0, 256, (8, 8, 4)).astype(np.uint8)]))
    big = dib(19, 13, 4, rows([packed[y * 10:(y + 1) * 10] for y in range(13)]), quad(16))
    entries = [(8, 8, 0, 32, small), (19, 13, 16, 4, big)]
    head, body = struct.pack("<HHH", 0, 1, len(entries)), b""
    for w, h, ncol, bits, data in entries:
        head += struct.pack("<BBBBHHII", w, h, ncol, 0, 1, bits, len(data), 6 + 16 * len(entries) + len(body))
        body += data
    out["dib4.ico"] = head + body
    return out

# Committed fixtures this script does not write (see the docstring); their pixels are recorded.
KEPT = ["samp_3x1.jpg", "ycck.jpg"]


def imagebind_vision(path):
    """ImageBind data.load_and_transform_vision_data for one image."""
    img = Image.open(path).convert("RGB")
    try:
        from torchvision import transforms
        t = transforms.Compose([
            transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224), transforms.ToTensor(),
            transforms.Normalize(mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))])
        return t(img).numpy(), "torchvision %s" % __import__("torchvision").__version__
    except ImportError:  # the same steps, written out (torchvision 0.14 semantics)
        w, h = img.size
        s, l = min(w, h), max(w, h)
        nw, nh = (224, int(224 * l / s)) if w <= h else (int(224 * l / s), 224)
        img = img.resize((nw, nh), Image.BICUBIC)
        top, left = int(round((nh - 224) / 2.0)), int(round((nw - 224) / 2.0))
        x = torch.from_numpy(np.asarray(img)[top:top + 224, left:left + 224].copy()).permute(2, 0, 1).float().div(255)
        m = torch.tensor((0.48145466, 0.4578275, 0.40821073))[:, None, None]
        sd = torch.tensor((0.26862954, 0.26130258, 0.27577711))[:, None, None]
        return x.sub_(m).div_(sd).numpy(), "torchvision-equivalent torch code (torchvision not installed)"


def imagebind_audio(path, rule, dtype=torch.float32):
    """ImageBind data.load_and_transform_audio_data for one file (clip sampler re-stated);
    dtype float64 gives the reference for the tolerance (as the shared cases' generator did)."""
    import torchaudio
    w, sr = torchaudio.load(path)
    w = w.to(dtype)
    if sr != 16000:
        w = torchaudio.functional.resample(w, orig_freq=sr, new_freq=16000)
    dur = w.size(1) / 16000
    ms = Fraction(max(dur - 2, 0))
    step = ms / (3 if rule == "pytorchvideo-0.1.5" else 2)
    clips = []
    for k in range(3):
        s = step * k
        c = w[:, int(s * 16000):int((s + 2) * 16000)]
        c -= c.mean()
        fb = torchaudio.compliance.kaldi.fbank(c, htk_compat=True, sample_frequency=16000, use_energy=False,
                                               window_type="hanning", num_mel_bins=128, dither=0.0,
                                               frame_length=25, frame_shift=10).transpose(0, 1)
        p = 204 - fb.size(1)
        fb = torch.nn.functional.pad(fb, (0, p), mode="constant", value=0) if p > 0 else fb[:, :204]
        clips.append(((fb.unsqueeze(0) - -4.268) / 9.138))
    return torch.stack(clips).numpy()


def audio_tol(path, rule):
    """atol = max|fp32 - fp64| x 8 rounded up to 1/2/5 x 10^k, at least 2e-4 (STAGES.md rule)."""
    import math
    fb = imagebind_audio(path, rule)
    d = float(np.abs(fb.astype(np.float64) - imagebind_audio(path, rule, torch.float64)).max()) * 8
    k = math.floor(math.log10(d)) if d > 0 else -4
    for m in (1, 2, 5, 10):
        if m * 10.0 ** k >= d:
            return fb, max(float("%.0e" % (m * 10.0 ** k)), 2e-4)


def wav_bytes(x, sr):
    import wave
    b = io.BytesIO()
    with wave.open(b, "wb") as f:
        f.setnchannels(x.shape[1])
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes(np.clip(x * 32768, -32768, 32767).astype("<i2").tobytes())
    return b.getvalue()


def signal(n, sr, ch, seed):
    r = np.random.RandomState(seed)
    t = np.arange(n) / sr
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 900 * t * t))
    out = [chirp + 0.2 * np.sin(2 * np.pi * (440 + 300 * c) * t) + 0.02 * r.normal(size=n) + 0.05 * (c + 1)
           for c in range(ch)]
    return np.stack(out, 1)


def case(stage, name, params, atol, rtol, source, note, files, expected):
    d = os.path.join(GOLD, stage, name)
    os.makedirs(d, exist_ok=True)
    for fn, b in files.items():
        open(os.path.join(d, fn), "wb").write(b)
    json.dump({"stage": stage, "params": params, "atol": atol, "rtol": rtol, "source": source, "note": note},
              open(os.path.join(d, "case.json"), "w"), indent=1)
    write_safetensors(os.path.join(d, "expected.safetensors"), expected)


def vision_case(name, fn, data, note):
    """An image.preprocess case: the file `data` as `fn`, the reference's pixels as expected."""
    tmp = os.path.join(DATA, ".tmp_" + fn)
    open(tmp, "wb").write(data)
    px, how = imagebind_vision(tmp)
    os.remove(tmp)
    src = "ImageBind data.load_and_transform_vision_data steps (Pillow %s, %s), by tools/make_media_fixtures.py"
    case("image.preprocess", name, {"file": fn}, 1e-5, 1e-5, src % (Image.__version__, how), note, {fn: data},
         {"pixels": px.astype(np.float32)})


def encoded(x, sr, fmt, encoder):
    """x [frames, channels] encoded by FFmpeg (torchaudio.io.StreamWriter) into a file's bytes."""
    import tempfile
    from torchaudio.io import StreamWriter
    with tempfile.NamedTemporaryFile(suffix="." + fmt) as f:
        w = StreamWriter(f.name, format=fmt)
        w.add_audio_stream(sample_rate=sr, num_channels=x.shape[1], encoder=encoder)
        with w.open():
            w.write_audio_chunk(0, torch.from_numpy(x.astype(np.float32)))
        return open(f.name, "rb").read()


def main():
    os.makedirs(DATA, exist_ok=True)
    imgs = images()
    pixels = {}
    for name, b in sorted(imgs.items()):
        open(os.path.join(DATA, name), "wb").write(b)
        pixels[name] = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))
    for name in KEPT:
        pixels[name] = np.asarray(Image.open(os.path.join(DATA, name)).convert("RGB"))
    write_safetensors(os.path.join(DATA, "pixels.safetensors"), pixels)
    huge = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
    open(os.path.join(DATA, "huge_header.png"), "wb").write(huge + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    open(os.path.join(DATA, "stereo44k.wav"), "wb").write(wav_bytes(signal(22050, 44100, 2, 7), 44100))

    # image.preprocess cases: the layouts the shared set lacks.
    big = {}
    b = io.BytesIO(); Image.fromarray(scene(300, 260, 11)).convert("CMYK").save(b, "JPEG", quality=90); big["cmyk_jpeg"] = ("input.jpg", b.getvalue(), "CMYK 300x260 jpg quality 90")
    g16 = (np.add.outer(np.arange(240) * 3, np.arange(260) * 2) % 600).astype(np.uint16)
    b = io.BytesIO(); Image.fromarray(g16).save(b, "PNG"); big["gray16_png"] = ("input.png", b.getvalue(), "16-bit gray 260x240 png (values 0..599: Pillow clips at 255)")
    b = io.BytesIO(); Image.fromarray(scene(233, 225, 13)).convert("P", palette=Image.ADAPTIVE, colors=64).save(b, "PNG", transparency=bytes(range(0, 256, 4))); big["palette_trns_png"] = ("input.png", b.getvalue(), "P 233x225 png with tRNS (ignored by convert RGB)")
    for name, (fn, data, note) in big.items():
        vision_case(name, fn, data, note)
    bmp_tiff_pnm_cases()

    # audio.fbank cases: FLAC at 22.05 kHz, stereo 48 kHz WAV with the fixed clip rule.
    import torchaudio
    src_aud = ("ImageBind data.load_and_transform_audio_data steps (torchaudio %s, clip sampler rule re-stated), "
               "by tools/make_media_fixtures.py" % torchaudio.__version__)
    x = signal(int(22050 * 2.6), 22050, 1, 21)
    tmp = os.path.join(DATA, ".tmp.flac")
    torchaudio.save(tmp, torch.from_numpy((np.round(x.T * 32767) / 32768).astype(np.float32)), 22050,
                    bits_per_sample=16, format="flac")
    flac = open(tmp, "rb").read()
    fb, tol = audio_tol(tmp, "pytorchvideo-0.1.5")
    os.remove(tmp)
    case("audio.fbank", "flac22k_2_6s", {"file": "input.flac", "clip_rule": "pytorchvideo-0.1.5"}, tol, 1e-4,
         src_aud, "2.6 s, 22050 Hz, 1 channel, 16-bit FLAC", {"input.flac": flac}, {"fbank": fb})
    wb = wav_bytes(signal(int(48000 * 2.4), 48000, 2, 22), 48000)
    tmp = os.path.join(DATA, ".tmp.wav")
    open(tmp, "wb").write(wb)
    fb, tol = audio_tol(tmp, "pytorchvideo-fixed")
    os.remove(tmp)
    case("audio.fbank", "stereo48k_2_4s_fixedrule", {"file": "input.wav", "clip_rule": "pytorchvideo-fixed"}, tol,
         1e-4, src_aud, "2.4 s, 48000 Hz, 2 channels, 16-bit PCM", {"input.wav": wb}, {"fbank": fb})
    ffmpeg_audio_cases()
    webp_cases()
    gif_cases()
    stream_fixtures()


def webp_cases():
    """image.preprocess cases for WebP (Pillow 9.4 opens it through libwebp's WebPAnimDecoder)."""
    rgba = np.concatenate([scene(150, 260, 31), (np.arange(150 * 260) % 256).reshape(260, 150, 1).astype(np.uint8)], 2)
    items = []
    b = io.BytesIO(); Image.fromarray(scene(233, 180, 29)).save(b, "WEBP", quality=80)
    items.append(("webp_lossy_q80", b.getvalue(), "233x180 lossy WebP, quality 80"))
    b = io.BytesIO(); Image.fromarray(rgba, "RGBA").save(b, "WEBP", lossless=True)
    items.append(("webp_lossless_rgba", b.getvalue(), "150x260 lossless WebP with alpha (dropped by convert RGB)"))
    b = io.BytesIO()
    frames = [Image.fromarray(scene(300, 200, s)) for s in (33, 34)]
    frames[0].save(b, "WEBP", save_all=True, append_images=frames[1:], quality=70, duration=80)
    items.append(("webp_animated", b.getvalue(), "300x200 animated WebP, 2 frames: the first is read"))
    for name, data, note in items:
        vision_case(name, "input.webp", data, note)


def raw_gif(rng, w, h):
    """A GIF Pillow does not write: a first image smaller than the screen at an offset or reaching
    past it, a local or no colour table, a short table, a transparent index, interlaced rows."""
    import struct
    sw, sh = rng.randint(1, w + 8), rng.randint(1, h + 8)
    x0, y0 = rng.randint(0, 6), rng.randint(0, 6)
    bits = rng.randint(1, 8)
    n_used = rng.randint(2, 1 << bits) if rng.random() < 0.7 else (1 << bits)
    table = bytes(rng.randrange(256) for _ in range(3 * n_used)) + b"\0" * (3 * ((1 << bits) - n_used))
    kind = rng.choice(["global", "local", "none"])
    out = b"GIF89a" + struct.pack("<HH", sw, sh)
    out += bytes([0x80 | (bits - 1) if kind != "none" else 0, rng.randrange(256), 0])
    if kind != "none":
        out += table
    if rng.random() < 0.5:
        out += b"\x21\xf9\x04" + bytes([1, 0, 0, rng.randrange(1 << bits), 0])
    interlace = rng.random() < 0.3
    flags = (0x40 if interlace else 0) | ((0x80 | (bits - 1)) if kind == "local" else 0)
    out += b"," + struct.pack("<HHHH", x0, y0, w, h) + bytes([flags]) + (table if kind == "local" else b"")
    # LZW with 9-bit codes only: a clear code every 200 pixels keeps the table from growing
    codes = []
    for i in range(w * h):
        if i % 200 == 0:
            codes.append(256)
        codes.append(rng.randrange(1 << bits) if rng.random() < 0.9 else rng.randrange(256))
    codes.append(257)
    acc, nb, bs = 0, 0, bytearray()
    for c in codes:
        acc |= c << nb
        nb += 9
        while nb >= 8:
            bs.append(acc & 255)
            acc >>= 8
            nb -= 8
    if nb:
        bs.append(acc & 255)
    out += bytes([8]) + b"".join(bytes([len(bs[i:i + 255])]) + bytes(bs[i:i + 255]) for i in range(0, len(bs), 255))
    return out + b"\0;"



def gif_cases():
    """image.preprocess cases for GIF: an interlaced adaptive-palette GIF from Pillow, and a hand-made
    one (raw_gif) whose first image is offset in its screen."""
    import random
    b = io.BytesIO()
    Image.fromarray(scene(241, 197, 41)).convert("P", palette=Image.ADAPTIVE, colors=64).save(b, "GIF", interlace=True)
    items = [("gif_interlaced", b.getvalue(), "241x197 interlaced GIF, 64-colour adaptive palette (Pillow)")]
    rng = random.Random(43)
    items.append(("gif_offset_frame", raw_gif(rng, 150, 120), "hand-made GIF: first image offset in its screen"))
    for name, data, note in items:
        vision_case(name, "input.gif", data, note)


def bmp_tiff_pnm_cases():
    """image.preprocess cases for the formats decoded through libavcodec, at sizes the resize works on."""
    items = []
    b = io.BytesIO(); Image.fromarray(scene(257, 203, 51)).save(b, "BMP")
    items.append(("bmp_rgb24", "input.bmp", b.getvalue(), "257x203 24-bit BMP (Pillow)"))
    b = io.BytesIO(); Image.fromarray(scene(190, 250, 52)).save(b, "TIFF", compression="tiff_lzw")
    items.append(("tiff_lzw", "input.tif", b.getvalue(), "190x250 RGB TIFF, LZW (Pillow + libtiff)"))
    b = io.BytesIO(); Image.fromarray(scene(240, 230, 53)).convert("CMYK").save(b, "TIFF", compression="tiff_adobe_deflate")
    items.append(("tiff_cmyk_deflate", "input.tif", b.getvalue(), "240x230 CMYK TIFF, Deflate: Pillow's cmyk2rgb"))
    g = (np.add.outer(np.arange(211) * 5, np.arange(230) * 3) % 1000).astype(">u2")
    items.append(("pgm_maxval999", "input.pgm", b"P5\n230 211\n999\n" + g.tobytes(),
                  "230x211 16-bit PGM, maxval 999 (Pillow mode I: rescaled to 65535, then clipped at 255)"))
    for name, fn, data, note in items:
        vision_case(name, fn, data, note)


def ffmpeg_audio_cases():
    """audio.fbank cases of formats libsndfile cannot open, which torchaudio 0.13's load hands to
    FFmpeg (torchaudio.io._compat.load_audio): AAC in MP4 (M4A) and Opus at 16 kHz (decoded at
    48 kHz by every reference decoder), encoded by FFmpeg."""
    import torchaudio
    src = ("ImageBind data.load_and_transform_audio_data steps (torchaudio %s, load through its FFmpeg fallback, "
           "clip sampler rule re-stated), by tools/make_media_fixtures.py" % torchaudio.__version__)
    for name, fmt, enc, sr, secs, ch, fn, note in [
            ("m4a_aac_22k_2_3s", "mp4", "aac", 22050, 2.3, 2, "input.m4a", "2.3 s, 22050 Hz, 2 channels, AAC in MP4"),
            ("opus_16k_1_7s", "ogg", "libopus", 16000, 1.7, 1, "input.opus",
             "1.7 s, encoded from 16 kHz mono, Ogg Opus (decoded at 48 kHz)")]:
        data = encoded(0.6 * signal(int(sr * secs), sr, ch, 23), sr, fmt, enc)
        tmp = os.path.join(DATA, ".tmp_" + fn)
        open(tmp, "wb").write(data)
        fb, tol = audio_tol(tmp, "pytorchvideo-0.1.5")
        os.remove(tmp)
        case("audio.fbank", name, {"file": fn, "clip_rule": "pytorchvideo-0.1.5"}, tol, 1e-4, src, note, {fn: data},
             {"fbank": fb})


def stream_fixtures():
    """FFmpeg-encoded fixtures (torchaudio.io.StreamWriter), each with what the reference reads:
    uniform_854_bt709.mp4    854 x 48, 12 frames of RGB (200, 40, 90), H.264 tagged BT.709: 854
                             is a width where swscale's block converters leave the last columns
                             of a packed row unwritten, and decord's scale filter converts with
                             the tagged matrix: (213, 57, 88) everywhere
    uniform_322_full.mp4     322 x 48, the same colour, H.264 full range: (189, 48, 92)
    loud.mp3                 0.5 s of a 220 Hz square wave at 0.98, stereo 44.1 kHz: decoded
                             peaks of 1.205 (torchaudio.load, FFmpeg, no clipping)
    The values are printed here and checked in tests/unit/test_media.c."""
    from torchaudio.io import StreamReader, StreamWriter
    import torchaudio
    for name, w, opt in (("uniform_854_bt709.mp4", 854, {"x264-params": "colormatrix=bt709"}),
                         ("uniform_322_full.mp4", 322, {"x264-params": "fullrange=on"})):
        path = os.path.join(DATA, name)
        sw = StreamWriter(path)
        sw.add_video_stream(frame_rate=24, width=w, height=48, format="rgb24", encoder="libx264",
                            encoder_format="yuv420p", encoder_option=opt)
        with sw.open():
            sw.write_video_chunk(0, torch.tensor([200, 40, 90], dtype=torch.uint8).view(1, 3, 1, 1)
                                 .expand(12, 3, 48, w).contiguous())
        sr = StreamReader(path)
        sr.add_video_stream(frames_per_chunk=12, filter_desc="scale=%d:48,format=pix_fmts=rgb24" % w)
        fr = torch.cat([c for (c,) in sr.stream()], 0).float()
        print(name, "RGB min", fr.amin((0, 2, 3)).tolist(), "max", fr.amax((0, 2, 3)).tolist())
    n = 22050
    t = torch.arange(n) / 44100
    x = (torch.sign(torch.sin(2 * 3.14159265 * 220 * t)) * 0.98).view(n, 1).repeat(1, 2).float()
    path = os.path.join(DATA, "loud.mp3")
    sw = StreamWriter(path, format="mp3")
    sw.add_audio_stream(sample_rate=44100, num_channels=2, format="flt", encoder="libmp3lame")
    with sw.open():
        sw.write_audio_chunk(0, x)
    a, rate = torchaudio.load(path)
    print("loud.mp3", tuple(a.shape), rate, "peak %.7f" % float(a.abs().max()))


def lanczos_fixtures():
    """lanczos.safetensors: Pillow's Image.resize(LANCZOS) of one 71 x 52 scene (`input`, U8
    [52, 71, 3]) to the sizes diffusers' VaeImageProcessor cuts it to and beyond (`WxH`: U8
    [H, W, 3]), for nx_resize_lanczos_rgb8 (tests/unit/test_media.c), byte for byte."""
    src = scene(71, 52, 17)
    out = {"input": src}
    for w, h in ((64, 48), (71, 48), (64, 52), (23, 17), (8, 8), (150, 97), (71, 200)):
        out["%dx%d" % (w, h)] = np.asarray(Image.fromarray(src).resize((w, h), resample=Image.LANCZOS))
    write_safetensors(os.path.join(DATA, "lanczos.safetensors"), out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--streams"]:
        stream_fixtures()
    elif sys.argv[1:] == ["--lanczos"]:
        lanczos_fixtures()
    else:
        main()
