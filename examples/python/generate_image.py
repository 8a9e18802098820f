#!/usr/bin/python3
"""Text in, picture out: NExT-GPT forced to answer with an image.

usage: PYTHONPATH=build/bindings/python examples/python/generate_image.py BUNDLE PROMPT OUT.png [STEPS]

NExT-GPT produces an image when its language model emits the signal tokens [IMG0]..[IMG3];
whether it does depends on the prompt. `force` makes the pipeline append that signal group when
the model did not, so an image always comes out: the group's hidden states go through the image
output projector into Stable Diffusion's conditioning. STEPS is the number of denoising steps
(default 50, NExT-GPT's). With the tiny test bundle (build/tools/tiny) the picture is noise.
"""
import sys

import nextgpt


def main():
    if not 4 <= len(sys.argv) <= 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    bundle, prompt, out_path = sys.argv[1:4]
    steps = sys.argv[4] if len(sys.argv) > 4 else "0"  # 0 = the decoder's default, 50
    if not steps.isdigit() or (len(sys.argv) > 4 and int(steps) == 0):
        print("generate_image: STEPS must be a positive number, not %r" % steps, file=sys.stderr)
        return 2
    steps = int(steps)
    try:
        with nextgpt.Context() as ctx:
            # Preloading the image decoder makes a load error show up here, not in the output.
            pipeline = nextgpt.Pipeline(ctx, bundle, preload=[nextgpt.Modality.IMAGE])
            result = pipeline.turn(prompt, force=[nextgpt.Modality.IMAGE], max_new_tokens=32, steps=steps,
                                   seed=1)  # same seed, same picture
    except nextgpt.Error as e:
        print("generate_image:", e, file=sys.stderr)
        return 1
    print("answer:", result.text)
    # One output per signal group; the model may have started other groups too. A failed output
    # (no decoder, a decoder error) does not fail the turn: its status and message say why.
    image = next((o for o in result.outputs if o.modality == nextgpt.Modality.IMAGE), None)
    if image is None or not image.ok:
        print("generate_image: no image:", image.message if image else "no image output", file=sys.stderr)
        return 1
    try:
        image.save(out_path)  # the bytes are an encoded PNG already
    except OSError as e:
        print("generate_image:", e, file=sys.stderr)
        return 1
    print("wrote %s (%s, %d bytes)" % (out_path, image.format, len(image.data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
