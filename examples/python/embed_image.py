#!/usr/bin/python3
"""Encode an image to its ImageBind embedding.

usage: PYTHONPATH=build/bindings/python examples/python/embed_image.py IMAGEBIND IMAGE

IMAGEBIND is ImageBind's checkpoint: the official imagebind_huge.pth, a .safetensors, or a folder
with config.json + weights (the tiny bundle's build/tools/tiny/imagebind). The embedding is what
NExT-GPT feeds its input projector: 1024 floats for imagebind_huge (32 for the tiny test model),
L2-normalised, so the program prints its length and norm, then the values.
"""
import math
import sys

import nextgpt


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    imagebind, image_path = sys.argv[1:]
    try:
        # A context picks the device (CUDA when usable, else the CPU) and owns the thread pool;
        # closing it closes the handles made from it.
        with nextgpt.Context() as ctx:
            # Only the vision branch: ImageBind's audio branch is not needed for a picture.
            encoder = nextgpt.Encoder(ctx, imagebind, modalities="image")
            # Decoding and ImageBind's preprocessing (resize 224, crop, normalise) happen inside
            # encode_image, exactly as NExT-GPT's Python pipeline does them.
            with nextgpt.Image(image_path) as image:
                size = (image.width, image.height)
                embedding = encoder.encode_image(image).tolist()[0]  # [1, D]: one row per image
    except nextgpt.Error as e:  # e.status, e.status_name and ngpt_last_error()'s e.message
        print("embed_image:", e, file=sys.stderr)
        return 1
    print("image: %s (%dx%d)" % (image_path, size[0], size[1]))
    print("embedding: %d floats, L2 norm %.6f" % (len(embedding), math.sqrt(sum(x * x for x in embedding))))
    print(" ".join("%.6f" % x for x in embedding))
    return 0


if __name__ == "__main__":
    sys.exit(main())
