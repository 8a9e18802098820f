#!/usr/bin/python3
"""Run the five examples of one language on the embedded tiny bundle and check what they print
and write (suite 'examples'), so the examples cannot rot.

usage: check_examples.py LANG SOURCE_ROOT BUILD_ROOT TINY_BUNDLE NEXTGPT TMP
  LANG: c (build/examples/c/*), python (examples/python/*.py with /usr/bin/python3; PYTHONPATH
  set by meson; exit 77 without numpy), rust (cargo examples of bindings/rust, built offline here; exit 77 without cargo
  or bindgen).

Checks: embed_image prints an embedding of the encoder's size with unit L2 norm (and, outside C,
the very values the C example prints); a missing image fails with exit 1 and a message naming
it; chat_image answers two turns with non-empty text; generate_image writes a PNG of the
decoder's size, byte-identical to `nextgpt run` with the same settings; stages prints its five
stages and writes a PNG byte-identical to the pipeline's for the same image, prompt and seed;
edit_image writes the picture's size cut to multiples of 8, byte-identical to `nextgpt generate
--init-image` with the same settings.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys

STEPS = "3"  # denoising steps: enough to exercise the loop, fast on the tiny model
PROMPT = "Draw this in the snow."

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def run(cmd, expect=0, env=None):
    p = subprocess.run(cmd, capture_output=True, env=env, timeout=600)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    if p.returncode != expect:
        fail("%s: exit %d, expected %d\nstdout:\n%s\nstderr:\n%s" % (" ".join(cmd), p.returncode, expect, out, err))
    return out, err


def png_size(path):
    """(width, height) of a PNG file, or None when it is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    lang, src, build, tiny, nextgpt, tmp = sys.argv[1:7]
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    ex = os.path.join(src, "examples")
    if lang == "c":
        def cmd(name):
            return [os.path.join(build, "examples", "c", name)]
    elif lang == "python":
        if subprocess.run(["/usr/bin/python3", "-c", "import numpy"], capture_output=True).returncode != 0:
            print("SKIP: the Python examples need python3-numpy (apt-get install python3-numpy)")
            return 77

        def cmd(name):
            return ["/usr/bin/python3", os.path.join(ex, "python", name + ".py")]
    elif lang == "rust":
        for tool in ("cargo", "bindgen"):
            if not shutil.which(tool):
                print("SKIP: %s is not installed (apt-get install %s)" % (tool, tool))
                return 77
        env = dict(os.environ, NGPT_LIB_DIR=os.path.join(build, "lib"),
                   CARGO_TARGET_DIR=os.path.join(build, "bindings", "rust", "target"),
                   NGPT_HEADER=os.path.join(src, "include", "nextgpt.h"))
        p = subprocess.run(["cargo", "build", "--offline", "--quiet", "--examples"],
                           cwd=os.path.join(src, "bindings", "rust"), env=env)
        if p.returncode != 0:
            print("FAIL: cargo build --examples", file=sys.stderr)
            return 1
        target = os.path.join(build, "bindings", "rust", "target", "debug", "examples")

        def cmd(name):
            return [os.path.join(target, name)]
    else:
        print("unknown language %r" % lang, file=sys.stderr)
        return 2
    os.environ["LD_LIBRARY_PATH"] = os.path.join(build, "lib") + (
        ":" + os.environ["LD_LIBRARY_PATH"] if os.environ.get("LD_LIBRARY_PATH") else "")

    cat = os.path.join(src, "data", "tiny", "cat.jpg")
    with open(os.path.join(tiny, "imagebind", "config.json")) as f:
        embed_dim = json.load(f)["out_embed_dim"]
    with open(os.path.join(tiny, "decoders", "image", "unet", "config.json")) as f:
        sample = json.load(f)["sample_size"]
    with open(os.path.join(tiny, "decoders", "image", "vae", "config.json")) as f:
        side = sample * 2 ** (len(json.load(f)["block_out_channels"]) - 1)

    # embed_image: the embedding's size and norm, the values themselves
    out, _ = run(cmd("embed_image") + [os.path.join(tiny, "imagebind"), cat])
    lines = out.splitlines()
    head = [l for l in lines if l.startswith("embedding: ")]
    if not head or len(lines) < 3:
        fail("embed_image: no 'embedding:' line and values\n" + out)
    else:
        words = head[0].split()
        n, norm = int(words[1]), float(words[-1])
        values = [float(x) for x in lines[-1].split()]
        if n != embed_dim or len(values) != embed_dim:
            fail("embed_image: %d floats (%d printed), the encoder's size is %d" % (n, len(values), embed_dim))
        if abs(norm - 1) > 1e-4 or abs(math.sqrt(sum(v * v for v in values)) - 1) > 1e-3:
            fail("embed_image: L2 norm %s, expected 1" % norm)
        if lang != "c":
            ref, _ = run([os.path.join(build, "examples", "c", "embed_image"), os.path.join(tiny, "imagebind"), cat])
            if ref.splitlines()[-1:] != lines[-1:]:
                fail("embed_image: the values differ from the C example's")
    _, err = run(cmd("embed_image") + [os.path.join(tiny, "imagebind"), os.path.join(tmp, "no-such-cat.jpg")], expect=1)
    if "no-such-cat.jpg" not in err:
        fail("embed_image: the error for a missing image does not name it: " + err)

    # chat_image: two turns, each with a non-empty answer
    out, _ = run(cmd("chat_image") + [tiny, cat])
    answers = [l[len("assistant: "):] for l in out.splitlines() if l.startswith("assistant: ")]
    if len(answers) != 2 or not all(a.strip() for a in answers):
        fail("chat_image: expected two non-empty answers, got %r" % answers)

    # generate_image: a PNG of the decoder's size, the same bytes as `nextgpt run`
    png = os.path.join(tmp, "generated.png")
    out, _ = run(cmd("generate_image") + [tiny, "a cat in the snow", png, STEPS])
    if png_size(png) != (side, side):
        fail("generate_image: %s is %s, expected a %dx%d PNG" % (png, png_size(png), side, side))
    run([nextgpt, "run", "--model", tiny, "--prompt", "a cat in the snow", "--force", "image", "--steps", STEPS,
         "--seed", "1", "--max-tokens", "32", "--out-dir", os.path.join(tmp, "cli-generate")])
    ref = os.path.join(tmp, "cli-generate", "image-0.png")
    if not os.path.exists(ref):
        fail("generate_image: nextgpt run wrote no %s to compare with" % ref)
    elif os.path.exists(png) and read(png) != read(ref):
        fail("generate_image: the PNG differs from nextgpt run's")

    # stages: the five stages by hand give the pipeline's picture
    png = os.path.join(tmp, "stages.png")
    out, _ = run(cmd("stages") + [os.path.join(tiny, "imagebind"), os.path.join(tiny, "llm"),
                                  os.path.join(tiny, "projectors"), os.path.join(tiny, "decoders", "image"),
                                  cat, png, PROMPT, STEPS])
    for stage in ("1 encoder:", "2 projector:", "3 backbone:", "image signal group:", "4 projector:", "5 decoder:"):
        if stage not in out:
            fail("stages: no '%s' line\n%s" % (stage, out))
    if png_size(png) != (side, side):
        fail("stages: %s is %s, expected a %dx%d PNG" % (png, png_size(png), side, side))
    run([nextgpt, "run", "--model", tiny, "--image", cat, "--prompt", PROMPT, "--force", "image", "--steps", STEPS,
         "--max-tokens", "32", "--out-dir", os.path.join(tmp, "cli-stages")])
    ref = os.path.join(tmp, "cli-stages", "image-0.png")
    if not os.path.exists(ref):
        fail("stages: nextgpt run wrote no %s to compare with" % ref)
    elif os.path.exists(png) and read(png) != read(ref):
        fail("stages: the PNG differs from the pipeline's (nextgpt run) for the same inputs")

    # edit_image: image-to-image with the decoder alone; a 37x29 picture gives 32x24, the same bytes
    # as `nextgpt generate --init-image` (whose VAE sample draws from seed + 1)
    png = os.path.join(tmp, "edited.png")
    picture = os.path.join(src, "tests", "golden", "vision", "sd.image_latents", "sd_37x29_cut", "input.png")
    image_decoder = os.path.join(tiny, "decoders", "image")
    run(cmd("edit_image") + [image_decoder, picture, "in the snow", png, STEPS, "0.6"])
    if png_size(png) != (32, 24):
        fail("edit_image: %s is %s, expected a 32x24 PNG" % (png, png_size(png)))
    ref = os.path.join(tmp, "cli-edited.png")
    run([nextgpt, "generate", "--model", image_decoder, "--prompt", "in the snow", "--init-image", picture,
         "--steps", STEPS, "--strength", "0.6", "--seed", "1", "--out", ref])
    if os.path.exists(png) and os.path.exists(ref) and read(png) != read(ref):
        fail("edit_image: the PNG differs from nextgpt generate --init-image's")
    _, err = run(cmd("edit_image") + [image_decoder, os.path.join(tmp, "no-such.png"), "x", png], expect=1)
    if "no-such.png" not in err:
        fail("edit_image: the error for a missing picture does not name it: " + err)

    if failures:
        print("%s examples: %d check(s) failed" % (lang, len(failures)), file=sys.stderr)
        return 1
    print("%s examples: all passed" % lang)
    return 0


if __name__ == "__main__":
    sys.exit(main())
