#!/usr/bin/python3
"""Tokenize text with NExT-GPT's LLaMA tokenizer through the Python bindings, and decode it back.

usage: PYTHONPATH=build/bindings/python examples/python/tokenize_text.py TOKENIZER_DIR [TEXT]

TOKENIZER_DIR is a Hugging Face tokenizer folder (tokenizer.model, added_tokens.json, ...), e.g.
../shared/golden/models/tok-a-nextgpt. (Named tokenize_text.py, not tokenize.py: a script's folder
comes first on sys.path, and a tokenize.py there would shadow the standard library's module.)
"""
import sys

import nextgpt


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    text = sys.argv[2] if len(sys.argv) > 2 else "### Human: <Img>cat.jpg</Img> draw a cat [IMG0]"
    try:
        with nextgpt.Tokenizer(sys.argv[1]) as tok:
            ids = tok.encode(text)
            print("libnextgpt %s, vocabulary of %d tokens" % (nextgpt.version(), tok.vocab_size))
            print("ids:    ", ids)
            print("pieces: ", [tok.token_to_piece(i) for i in ids])
            print("decoded:", repr(tok.decode(ids, skip_special_tokens=True)))
    except nextgpt.Error as e:  # carries e.status, e.status_name and ngpt_last_error()'s e.message
        print("error:", e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
