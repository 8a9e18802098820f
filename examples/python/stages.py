#!/usr/bin/python3
"""NExT-GPT by hand, one stage handle at a time: what nextgpt.Pipeline does for an image in and
an image out, written out so each handle's job is visible.

usage: PYTHONPATH=build/bindings/python examples/python/stages.py IMAGEBIND LLM PROJECTORS IMAGE_DECODER IMAGE OUT.png [PROMPT] [STEPS]

    image --Encoder--> embedding [1, 1024]                ImageBind, frozen
          --Projector.input--> soft token [1, 4096]       llama_proj: a "word" the LLM reads
          --Session.turn--> answer text + [IMG0..3] signal group (hidden states)
          --Projector.output--> conditioning [1, 77, 768] what SD's text encoder would give
          --Decoder.generate--> pixels [1, H, W, 3] --> PNG

(Sizes are NExT-GPT's; the tiny test bundle, build/tools/tiny, has the same shapes scaled down:
B=build/tools/tiny; stages.py $B/imagebind $B/llm $B/projectors $B/decoders/image data/tiny/cat.jpg
out.png.) For the official release the paths are imagebind_huge.pth, the Vicuna-7B folder (pass
delta_path= the NExT-GPT delta to Backbone), the delta pytorch_model.pt (it holds the
projectors) and the stable-diffusion-v1-5 folder. The defaults are the pipeline's, so the PNG is
the one `nextgpt run --force image` writes for the same image, prompt, steps and seed 0.
"""
import sys

import nextgpt
from nextgpt import Modality


def main():
    if not 7 <= len(sys.argv) <= 9:
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    imagebind, llm, projectors, decoder_dir, image_path, out_path = sys.argv[1:7]
    prompt = sys.argv[7] if len(sys.argv) > 7 else "Draw this in the snow."
    steps = sys.argv[8] if len(sys.argv) > 8 else "0"  # 0 = the decoder's default, 50
    if not steps.isdigit() or (len(sys.argv) > 8 and int(steps) == 0):
        print("stages: STEPS must be a positive number, not %r" % steps, file=sys.stderr)
        return 2
    steps = int(steps)
    try:
        # The context: device, threads and memory accounting shared by every handle below.
        with nextgpt.Context() as ctx:
            # 1. Encoder: ImageBind's vision branch turns the picture into one embedding.
            encoder = nextgpt.Encoder(ctx, imagebind, modalities="image")
            embedding = encoder.encode_image(image_path)
            print("1 encoder:   %s -> embedding %s" % (image_path, list(embedding.shape)))

            # 2. Input projector: the embedding becomes one row in the LLM's embedding space, a
            #    "soft token" spliced into the prompt between <Img> and </Img>. The same file holds
            #    the output projectors (step 4): load the input and the image output ones.
            projector = nextgpt.Projector(ctx, projectors, input=True, outputs=[Modality.IMAGE])
            soft_token = projector.input(embedding)
            print("2 projector: embedding -> soft token %s" % list(soft_token.shape))

            # 3. Backbone: the language model (weights, shareable) and a session (this
            #    conversation's KV cache). A turn builds NExT-GPT's prompt template around the soft
            #    token, generates the answer and returns the signal groups: the hidden states at
            #    [IMG0]..[IMG3]. Requiring the image modality appends that group when the model
            #    does not start it itself. Sampling: the demo's (temperature 1, top_p 0.01, seed 0).
            backbone = nextgpt.Backbone(ctx, llm)  # delta_path= the NExT-GPT delta, for the real model
            session = backbone.session(n_ctx=512)  # KV cache positions: enough for one short turn
            turn = session.turn(prompt, media=[(Modality.IMAGE, soft_token)], require=[Modality.IMAGE],
                                max_new_tokens=32)
            print('3 backbone:  answer "%s"' % turn.text)
            # The image group: hidden states of the 4 signal positions, plus the embedding rows of
            # [IMG0]..[IMG3], the output projector's two inputs. The model may start other groups.
            group = next((g for g in turn.groups if g.modality == Modality.IMAGE), None)
            if group is None:
                print("stages: the turn returned no image group", file=sys.stderr)
                return 1
            print("             image signal group: %d hidden states of %d" % (len(group.hidden), backbone.n_embd))

            # 4. Output projector: signal hidden states -> the decoder's conditioning, in place of
            #    the CLIP text embedding Stable Diffusion normally gets.
            cond = projector.output(Modality.IMAGE, group.hidden, group.input_embs)
            print("4 projector: signal states -> conditioning %s" % list(cond.shape))

            # 5. Decoder: Stable Diffusion's denoising loop on that conditioning. uncond None: the
            #    decoder's own CLIP text encoder supplies the embedding of "" for classifier-free
            #    guidance, NExT-GPT's negative prompt. Defaults: 50 DDIM steps, guidance 7.5, seed 0.
            decoder = nextgpt.Decoder(ctx, decoder_dir)
            pixels = decoder.generate(cond, steps=steps)  # F32 [1, H, W, 3] in [0, 1]
            print("5 decoder:   conditioning -> pixels %s" % list(pixels.shape))

            with nextgpt.Image.from_tensor(pixels) as picture:  # batch 1: [1, H, W, 3] -> one image
                picture.save(out_path)
                print("wrote %s (%dx%d)" % (out_path, picture.width, picture.height))
    except nextgpt.Error as e:  # e.status, e.status_name and ngpt_last_error()'s e.message
        print("stages:", e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
