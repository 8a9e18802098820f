#!/usr/bin/python3
"""Picture and text in, picture out: Stable Diffusion's image-to-image, the image decoder alone.

usage: PYTHONPATH=build/bindings/python examples/python/edit_image.py IMAGE_DECODER PICTURE PROMPT OUT.png [STEPS] [STRENGTH]

The picture becomes latents as diffusers' img2img pipeline makes them (each side cut down to a
multiple of 8, the VAE encoder, a sample of its distribution, x the scaling factor); the prompt
goes through the decoder's own text encoder; then the last STRENGTH of the schedule (default
0.8) runs from those latents, noised to where it starts. The same settings give the same bytes
as `nextgpt generate --model DECODER --init-image PICTURE --seed 1`. With the tiny test bundle
(build/tools/tiny/decoders/image) the picture is noise.
"""
import sys

import nextgpt


def main():
    if not 5 <= len(sys.argv) <= 7:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    decoder_dir, picture, prompt, out_path = sys.argv[1:5]
    try:
        steps = int(sys.argv[5]) if len(sys.argv) > 5 else 0  # 0 = the decoder's default, 50
        strength = float(sys.argv[6]) if len(sys.argv) > 6 else 0.8  # diffusers' default
    except ValueError:
        steps = strength = -1
    if (len(sys.argv) > 5 and steps <= 0) or not 0 < strength <= 1:
        print("edit_image: STEPS must be a positive number and STRENGTH in (0, 1]", file=sys.stderr)
        return 2
    try:
        with nextgpt.Context() as ctx, nextgpt.Decoder(ctx, decoder_dir) as dec:
            # The VAE's sample draws its noise from seed 2, the denoising from seed 1: two draws.
            init = dec.image_latents(picture, seed=2)
            cond = dec.encode_text(prompt)
            # uncond None: the decoder's text encoder on "", the pipeline's negative prompt; the
            # size comes from init_latents
            images = dec.generate(cond, steps=steps, seed=1, init_latents=init, strength=strength)
            with nextgpt.Image.from_tensor(images.numpy()[0]) as result:  # [1, H, W, 3] in [0, 1]
                result.save(out_path)
                print("wrote %s (%dx%d)" % (out_path, result.width, result.height))
    except nextgpt.Error as e:
        print("edit_image:", e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
