#!/usr/bin/python3
"""A two-turn conversation about an image with the whole NExT-GPT pipeline.

usage: PYTHONPATH=build/bindings/python examples/python/chat_image.py BUNDLE IMAGE [QUESTION [FOLLOW_UP]]

BUNDLE is a NExT-GPT bundle folder (bundle.json naming the language model, ImageBind, the
projectors and the decoders; see the README), e.g. build/tools/tiny. nextgpt.Pipeline loads every
part once and keeps the conversation in the language model's KV cache, so the follow-up is
answered with the picture and the first answer still in view. The answer is streamed as it is
generated. With the tiny test bundle (random weights) the answers are noise.
"""
import sys

import nextgpt


def stream(piece):
    sys.stdout.write(piece)
    sys.stdout.flush()
    return True  # False would cancel the turn


def ask(pipeline, question, media=()):
    print("user: %s\nassistant: " % question, end="", flush=True)
    # NExT-GPT's demo sampling settings are the defaults; only the answer's length is capped.
    result = pipeline.turn(question, media=media, max_new_tokens=32, on_token=stream)
    print()
    # The model may also answer with media (signal tokens); a chat program would save them
    # (output.save(path)). Here they are only listed.
    for i, out in enumerate(result.outputs):
        print("(output %d: %s, %s)" % (i, out.modality.name.lower(),
                                      "%d bytes" % len(out.data) if out.ok else out.message))


def main():
    if not 3 <= len(sys.argv) <= 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    bundle, image = sys.argv[1:3]
    question = sys.argv[3] if len(sys.argv) > 3 else "What is in this picture?"
    follow_up = sys.argv[4] if len(sys.argv) > 4 else "And what colour is it?"
    try:
        with nextgpt.Context() as ctx:
            pipeline = nextgpt.Pipeline(ctx, bundle)
            if pipeline.is_test_model:
                print("chat_image: note: %s is a test model with random weights: its answers are noise" % bundle,
                      file=sys.stderr)
            # The image goes in by path; encoded bytes or a nextgpt.Image work too.
            ask(pipeline, question, media=[(nextgpt.Modality.IMAGE, image)])
            ask(pipeline, follow_up)  # same conversation: no need to send the image again
    except nextgpt.Error as e:
        print("\nchat_image:", e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
