#!/usr/bin/python3
"""Our media decoding and ImageBind transforms against the upstream Python stack itself, on
random inputs no fixed case list holds: Pillow 9.4 + torchvision 0.14 for images, torchaudio
0.13 for audio (Debian 12's python3-pil, python3-torchvision, python3-torchaudio: the versions
NExT-GPT pins). The reference steps are tools/make_media_fixtures.py's imagebind_vision and
imagebind_audio (ImageBind data.py's, with the pytorchvideo 0.1.5 clip rule re-stated).

Images: sizes from 1 x 1 to 3000 wide, extreme aspect ratios, every layout Pillow writes (RGB,
L, LA, RGBA, P with and without transparency, 16-bit gray PNG, interlaced PNG; JPEG 4:2:0 /
4:2:2 / 4:4:4, progressive, grayscale, CMYK; WebP lossy, lossless, with alpha, animated; GIF,
animated, and hand-made GIFs with offset, oversized, interlaced first images, local, short or no
colour tables and transparent indices; BMP, TIFF in every compression and mode Pillow writes,
tiled and JPEG-compressed TIFF written by libtiff, PBM/PGM/PPM, ICO with PNG or BMP entries) with random smooth-plus-noise content. Decoded
pixels must equal Pillow's convert("RGB") exactly; the transform within 1e-5.
Audio: 16-bit WAV at rates from 8 kHz to 96 kHz (odd ones too), 1 to 3 channels, 0.05 s to 7 s,
and AAC (MP4), MP3, Opus and FLAC files written by FFmpeg; both clip rules; within the fp32-vs-fp64
tolerance rule of the golden cases (AAC, which both sides decode with FFmpeg: samples equal).

Run by meson (suite 'bindings'); exit 77 (SKIP) without Pillow, torch, torchvision or torchaudio.
NGPT_MEDIA_DIFF_N scales the number of inputs (default 40 images and 16 sounds).
"""
import io
import os
import random
import sys
import tempfile

try:
    import numpy as np
    from PIL import Image
    import torch
    import torchaudio  # noqa: F401
    import torchvision  # noqa: F401
except ImportError as e:
    print("SKIP: %s (apt-get install python3-pil python3-torchvision python3-torchaudio)" % e)
    sys.exit(77)

import nextgpt  # noqa: E402

SRC = os.environ.get("NGPT_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tools"))
from make_media_fixtures import audio_tol, encoded, imagebind_vision, libtiff_write, raw_gif, wav_bytes  # noqa: E402


def content(rng, w, h, channels):
    """Smooth gradients, a hard edge and noise: bicubic overshoot and clipping get exercised."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for c in range(channels):
        a, b, f = rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(0.01, 0.3)
        v = 128 + 90 * np.sin(f * (a * x + b * y) + c)
        v += np.where(x > w * rng.uniform(0.2, 0.8), rng.uniform(-100, 100), 0)
        v += np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(0, 40), (h, w))
        out.append(v)
    return np.clip(np.stack(out, -1), 0, 255).astype(np.uint8)


def random_image(rng):
    kind = rng.random()
    if kind < 0.15:
        w, h = rng.randint(1, 40), rng.randint(1, 40)
    elif kind < 0.3:  # extreme aspect ratios
        w, h = rng.randint(1, 6), rng.randint(200, 3000)
        if rng.random() < 0.5:
            w, h = h, w
    else:
        w, h = rng.randint(100, 900), rng.randint(100, 700)
    layout = rng.choice(["RGB", "L", "LA", "RGBA", "P", "Ptrns", "I16", "RGBi", "jpg420", "jpg422", "jpg444",
                         "jpgprog", "jpgL", "jpgCMYK", "webp", "webpLossless", "webpRGBA", "webpAnim",
                         "gif", "gifAnim", "gifRaw", "bmp", "tif", "tifTiled", "pnm", "ico"])
    b = io.BytesIO()
    if layout == "gifRaw":
        w, h = min(w, 200), min(h, 200)
        return "%s %dx%d" % (layout, w, h), raw_gif(rng, w, h)
    if layout.startswith("gif"):
        img = Image.fromarray(content(rng, w, h, 3)).convert("P", palette=Image.ADAPTIVE, colors=rng.choice([4, 64, 256]))
        if layout == "gifAnim":
            img.save(b, "GIF", save_all=True, append_images=[img.rotate(90)], transparency=rng.randrange(4),
                     interlace=rng.random() < 0.5)
        else:
            img.save(b, "GIF", interlace=rng.random() < 0.5)
    elif layout.startswith("webp"):
        q = rng.randint(20, 100)
        if layout == "webpRGBA":
            Image.fromarray(content(rng, w, h, 4), "RGBA").save(b, "WEBP", quality=q, lossless=rng.random() < 0.5)
        elif layout == "webpAnim":  # the first frame is what Pillow opens
            frames = [Image.fromarray(content(rng, w, h, 3)) for _ in range(2)]
            frames[0].save(b, "WEBP", save_all=True, append_images=frames[1:], quality=q, duration=100)
        else:
            Image.fromarray(content(rng, w, h, 3)).save(b, "WEBP", quality=q, lossless=layout == "webpLossless")
    elif layout.startswith("jpg"):
        q = rng.randint(30, 98)
        if layout == "jpgL":
            Image.fromarray(content(rng, w, h, 1)[:, :, 0], "L").save(b, "JPEG", quality=q)
        elif layout == "jpgCMYK":
            Image.fromarray(content(rng, w, h, 3)).convert("CMYK").save(b, "JPEG", quality=q)
        else:
            sub = {"jpg420": 2, "jpg422": 1, "jpg444": 0, "jpgprog": 2}[layout]
            Image.fromarray(content(rng, w, h, 3)).save(b, "JPEG", quality=q, subsampling=sub,
                                                        progressive=layout == "jpgprog")
    elif layout == "tifTiled":  # libtiff's own writer: tiles, and JPEG (RGB or subsampled YCbCr) tiles or strips
        w, h = min(w, 600), min(h, 600)
        comp = rng.choice([1, 5, 8, 7, 7])
        ph = rng.choice([2, 6]) if comp == 7 else 2
        tiled = rng.random() < 0.7
        kw = dict(tile=(16 * rng.randint(1, 8), 16 * rng.randint(1, 8))) if tiled else dict(rps=rng.randint(8, 64))
        if ph == 6:
            kw["sub"] = rng.choice([(1, 1), (2, 1), (2, 2)])
        if comp != 7 and rng.random() < 0.3:
            kw["planar"] = 2
        layout += "-c%d-p%d-%s" % (comp, ph, kw)
        return "%s %dx%d" % (layout, w, h), libtiff_write(content(rng, w, h, 3), comp, ph, **kw)
    elif layout == "ico":  # Pillow writes the sizes that fit, largest first opened; PNG or BMP entries
        w, h = min(w, 256), min(h, 256)
        sizes = [(min(w, 16), min(h, 16)), (w, h)]
        fmt = rng.choice(["png", "bmp"])
        Image.fromarray(content(rng, w, h, 4), "RGBA").save(b, "ICO", sizes=sizes, bitmap_format=fmt)
        layout += "-" + fmt
    elif layout in ("bmp", "tif", "pnm"):
        modes = {"bmp": ["RGB", "RGBA", "L", "P", "1"], "pnm": ["RGB", "L", "1", "I"],
                 "tif": ["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "CMYK"]}[layout]
        mode = rng.choice(modes)
        src = Image.fromarray(content(rng, w, h, 4), "RGBA")
        img = src.convert("RGB").convert(mode, palette=Image.ADAPTIVE) if mode == "P" else \
            src.convert("L").convert("I").point(lambda v: v * 3) if mode in ("I", "I;16") else \
            src if mode == "RGBA" else src.convert(mode)
        if mode == "I;16":
            img = Image.fromarray(np.asarray(img).astype(np.uint16))
        kw = {}
        if layout == "tif":
            comps = [None, "tiff_lzw", "tiff_adobe_deflate", "packbits"] + (["group4"] if mode == "1" else []) + \
                (["jpeg"] if mode in ("RGB", "L", "CMYK") else [])
            kw["compression"] = rng.choice(comps)
            layout += "-%s" % kw["compression"]
        img.save(b, {"bmp": "BMP", "pnm": "PPM"}.get(layout, "TIFF"), **kw)
        layout += "-" + mode
    elif layout == "I16":
        v = content(rng, w, h, 1)[:, :, 0].astype(np.uint16) * rng.choice([1, 3, 257])
        Image.fromarray(v).save(b, "PNG")
    else:
        n = {"RGB": 3, "L": 1, "LA": 2, "RGBA": 4, "P": 3, "Ptrns": 3, "RGBi": 3}[layout]
        px = content(rng, w, h, n)
        img = Image.fromarray(px[:, :, 0] if n == 1 else px, {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[n])
        if layout == "P":
            img.convert("P", palette=Image.ADAPTIVE, colors=rng.choice([2, 16, 256])).save(b, "PNG")
        elif layout == "Ptrns":
            img.convert("P", palette=Image.ADAPTIVE, colors=64).save(b, "PNG", transparency=bytes(range(0, 256, 4)))
        else:
            img.save(b, "PNG", interlace=1 if layout == "RGBi" else 0)  # Pillow writes no interlace: harmless
    return "%s %dx%d" % (layout, w, h), b.getvalue()


# Containers torchaudio.io.StreamWriter writes with this FFmpeg: (format, encoder, sample rates)
CODECS = [("mp4", "aac", [8000, 16000, 22050, 44100, 48000]), ("mp3", "libmp3lame", [16000, 22050, 44100, 48000]),
          ("ogg", "libopus", [8000, 16000, 48000]), ("flac", "flac", [11025, 44100, 96000])]


def random_sound(rng):
    """A WAV, or (one in two) an AAC/MP4, MP3, Opus or FLAC file: the formats libsndfile cannot
    open go through our FFmpeg path, as torchaudio's load falls back to FFmpeg."""
    codec = rng.choice(CODECS) if rng.random() < 0.5 else None
    sr = rng.choice(codec[2] if codec else [8000, 11025, 12345, 16000, 22050, 24000, 32000, 44100, 48000, 96000])
    ch = rng.randint(1, 2 if codec else 3)
    dur = rng.choice([0.05, 0.3, 1.0, 1.99, 2.0, 2.01, 3.3, 7.0]) if rng.random() < 0.5 else rng.uniform(0.05, 7)
    n = max(1, int(sr * dur))
    t = np.arange(n) / sr
    x = np.stack([0.5 * np.sin(2 * np.pi * (rng.uniform(50, 4000) + rng.uniform(0, 500) * t) * t)
                  + np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(0, 0.2), n)
                  for _ in range(ch)], -1)
    x = np.clip(x, -1, 1)
    what = "%d Hz x %d, %.3f s" % (sr, ch, n / sr)
    if codec:  # kept below full scale: decoders overshoot, and sox's path clips where FFmpeg's does not
        return "%s %s" % (codec[1], what), encoded(0.6 * x, sr, codec[0], codec[1])
    return "wav " + what, wav_bytes(x, sr)


def saved(folder, name, data):
    """data written to folder/name (the reference reads files); returns the path."""
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def main():
    scale = float(os.environ.get("NGPT_MEDIA_DIFF_N", "1"))
    rng = random.Random(20261127)
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        n_img = int(40 * scale)
        for k in range(n_img):
            what, data = random_image(rng)
            path = saved(tmp, "img_%d" % k, data)
            try:
                want_px = np.asarray(Image.open(path).convert("RGB"))
            except Exception as e:  # a file a writer made that Pillow refuses (libtiff's JPEG
                # strips of 0 bytes): ours must refuse it too, by name
                try:
                    nextgpt.Image.from_bytes(data, name=what).close()
                    fails.append("image %s: Pillow refuses it (%s), we decode it" % (what, e))
                except nextgpt.Error as ours:
                    if what not in ours.message:
                        fails.append("image %s: refused without its name: %s" % (what, ours.message))
                continue
            img = nextgpt.Image.from_bytes(data, name=what)
            got_px = img.pixels()
            if got_px.shape != want_px.shape or not np.array_equal(got_px, want_px):
                diff = "shape %s vs %s" % (got_px.shape, want_px.shape) if got_px.shape != want_px.shape else \
                    "%d pixels differ, max %d" % ((got_px != want_px).sum(),
                                                  np.abs(got_px.astype(int) - want_px).max())
                fails.append("image %s: decoded pixels differ from Pillow's: %s" % (what, diff))
                continue
            want, _ = imagebind_vision(path)
            got = img.preprocess().numpy()
            err = float(np.abs(got - want).max())
            if got.shape != want.shape or err > 1e-5:
                fails.append("image %s: transform differs by %.3g" % (what, err))
        n_snd = int(16 * scale)
        for k in range(n_snd):
            what, data = random_sound(rng)
            path = saved(tmp, "snd_%d.wav" % k, data)
            rule = rng.choice(["pytorchvideo-0.1.5", "pytorchvideo-fixed"])
            want, tol = audio_tol(path, rule)
            snd = nextgpt.Audio.from_bytes(data, name=what)
            if not what.startswith("wav"):
                # AAC: the same FFmpeg decoder, the same samples to the bit. MP3, Opus: another
                # decoder (libsndfile's mpg123 / libopus, as the reference's sox has them; torchaudio
                # here uses FFmpeg's own because Debian's sox lacks them): within 1e-5 for MP3's
                # rounding, 1e-2 for Opus (FFmpeg's native Opus decoder differs from libopus by a
                # few 1e-4 on stereo, up to 1.9e-3 seen in 96 random sounds and 6e-3 in 128 more,
                # on loud 48 kHz stereo: two decoders of a lossy codec). FLAC: lossless, equal.
                ref, ref_sr = torchaudio.load(path)
                got_x = np.asarray(snd.samples()).reshape(snd.frames, snd.channels).T
                err = float(np.abs(got_x - ref.numpy()).max()) if got_x.shape == tuple(ref.shape) else float("inf")
                limit = 0.0 if what.startswith(("aac", "flac")) else 1e-2 if what.startswith("libopus") else 1e-5
                if ref_sr != snd.sample_rate or err > limit:
                    fails.append("audio %s: decoded samples differ from torchaudio.load's by %.3g (%d Hz vs %d, %s vs %s)"
                                 % (what, err, snd.sample_rate, ref_sr, got_x.shape, tuple(ref.shape)))
                    continue
                # the transform, on our samples: near-silent mel bands (a lossy codec empties the top
                # of the spectrum) turn sample rounding into large log differences
                path = os.path.join(tmp, "snd_%d_ours.wav" % k)
                torchaudio.save(path, torch.from_numpy(got_x.copy()), snd.sample_rate, encoding="PCM_F",
                                bits_per_sample=32)
                want, tol = audio_tol(path, rule)
            got = snd.preprocess(clip_rule=0 if rule == "pytorchvideo-0.1.5" else 1).numpy()
            err = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
            if err > tol:
                fails.append("audio %s (%s): fbank differs by %.3g (tolerance %.3g)" % (what, rule, err, tol))
    for f in fails:
        print(f)
    print("%d images and %d sounds against Pillow %s, torchvision %s, torchaudio %s: %d differ"
          % (n_img, n_snd, Image.__version__, torchvision.__version__, torchaudio.__version__, len(fails)))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
