#!/usr/bin/python3
"""Generate the project's own tokenizer golden cases (tests/golden/llm/tokenizer.{encode,decode}/).

Run once with Debian's python3 (it has sentencepiece 0.1.97 and numpy):

    /usr/bin/python3 tools/gen_tokenizer_cases.py

transformers is not installed, so the HF layer of transformers 4.29's slow LlamaTokenizer is
ported here, independently of the C code (tokenize(): no-split split, strip next to added
tokens, sp.encode per piece; _decode(): groups joined with " ", convert_tokens_to_string);
SentencePiece itself is the real library. Cases use the shared tokenizer folders under
<repo>/../shared/golden/models and are written in the format of shared/golden/FORMAT.md with
shared/golden/check.py's save_safetensors. Tests never run this script.
"""
import json
import os
import random
import shutil
import sys

import numpy as np
import sentencepiece as spm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "golden")
OUT = os.path.join(REPO, "tests", "golden", "llm")
sys.path.insert(0, SHARED)
from check import save_safetensors  # noqa: E402

OWN_MODELS = os.path.join(REPO, "tests", "golden", "models")
OWN = ("tok-b", "tok-b-nextgpt")
SIGNAL_TOKENS = (["<Img>", "</Img>"] + ["[IMG%d]" % i for i in range(4)] + ["[VID%d]" % i for i in range(24)] +
                 ["[AUD%d]" % i for i in range(8)])

SOURCE = ("tools/gen_tokenizer_cases.py: port of transformers 4.29.2 slow LlamaTokenizer "
          "(tokenize/_decode) over sentencepiece " + spm.__version__)


class SlowLlama:
    def __init__(self, folder):
        self.folder = folder
        self.sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
        self.n_sp = self.sp.get_piece_size()
        special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None}
        cfg = self._json("tokenizer_config.json")
        self.add_bos = cfg.get("add_bos_token", True)
        self.add_eos = cfg.get("add_eos_token", False)
        for src in (cfg, self._json("special_tokens_map.json")):
            for k in special:
                if k in src:
                    v = src[k]
                    special[k] = v["content"] if isinstance(v, dict) else v
        added = self._json("added_tokens.json")
        self.added_enc = dict(added)
        self.added_dec = {v: k for k, v in added.items()}
        self.special_tokens = [v for v in special.values() if v]
        self.special_ids = {self.tok2id(t) for t in self.special_tokens}
        self.bos_id = self.tok2id(special["bos_token"])
        self.eos_id = self.tok2id(special["eos_token"])
        self.no_split = sorted(set(self.special_tokens) | set(added))

    def _json(self, name):
        p = os.path.join(self.folder, name)
        return json.load(open(p, encoding="utf-8")) if os.path.exists(p) else {}

    def tok2id(self, t):
        if t in self.added_enc:
            return self.added_enc[t]
        return self.sp.piece_to_id(t)

    def split(self, text):
        """Trie.split: cut at every no-split token, leftmost match first, longest there."""
        out, start, i = [], 0, 0
        while i < len(text):
            best = None
            for t in self.no_split:
                if text.startswith(t, i) and (best is None or len(t) > len(best)):
                    best = t
            if best is None:
                i += 1
                continue
            if i > start:
                out.append(text[start:i])
            out.append(best)
            i += len(best)
            start = i
        if start < len(text):
            out.append(text[start:])
        return out

    def tokenize(self, text):
        tokens = self.split(text)
        for i, token in enumerate(tokens):
            if token in self.no_split:
                left = tokens[i - 1] if i > 0 else None
                right = tokens[i + 1] if i < len(tokens) - 1 else None
                if token in self.special_tokens:
                    continue  # AddedToken(lstrip=False, rstrip=False)
                if right:
                    tokens[i + 1] = right.lstrip()
                if left:
                    tokens[i - 1] = left.rstrip()
        out = []
        for token in tokens:
            if not token:
                continue
            if token in self.no_split:
                out.append(token)
            else:
                out.extend(self.sp.encode(token, out_type=str))
        return out

    def encode(self, text, add_special):
        ids = [self.tok2id(t) for t in self.tokenize(text)]
        if add_special:
            ids = ([self.bos_id] if self.add_bos else []) + ids + ([self.eos_id] if self.add_eos else [])
        return ids

    def id2tok(self, i):
        return self.added_dec[i] if i in self.added_dec else self.sp.id_to_piece(i)

    def tokens_to_string(self, tokens):
        cur, out, prev_special = [], "", False
        for i, token in enumerate(tokens):
            if token in self.special_tokens:
                if not prev_special and i != 0:
                    out += " "
                out += self.sp.decode(cur) + token
                prev_special, cur = True, []
            else:
                cur.append(token)
                prev_special = False
        return out + self.sp.decode(cur)

    def decode(self, ids, skip_special):
        tokens = [self.id2tok(i) for i in ids if not (skip_special and i in self.special_ids)]
        subs, cur = [], []
        for t in tokens:
            if t in self.added_enc:
                if cur:
                    subs.append(self.tokens_to_string(cur))
                    cur = []
                subs.append(t)
            else:
                cur.append(t)
        if cur:
            subs.append(self.tokens_to_string(cur))
        return " ".join(subs)


def train_tok_b():
    """tok-b's tokenizer.model: SentencePiece BPE with LLaMA-1's trainer settings (as the shared tok-*),
    1536 pieces, on another corpus than tok-a's licence texts: the non-blank lines of this machine's
    Python 3.11 standard library modules a*-m* (code: runs of spaces, '=', '__') and a few Cyrillic,
    Chinese, Greek and Latin-accent lines, character_coverage 0.9995 (so some of their characters
    stay byte-fallback). Deterministic for one corpus; the corpus is this machine's, so the model is
    committed and retrained only with --train-tok-b."""
    import glob
    import io
    lines = []
    for f in sorted(glob.glob("/usr/lib/python3.11/[a-m]*.py")):
        lines += [ln.rstrip("\n") for ln in open(f, encoding="utf-8", errors="replace") if ln.strip()]
    lines = lines[:60000] + ["Привет мир, как дела? Хорошо.", "中文测试：你好，世界！", "Ελληνικά κείμενο εδώ.",
                             "naïve café Straße façade"] * 50
    w = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=w, model_type="bpe", vocab_size=1536, byte_fallback=True,
        split_digits=True, add_dummy_prefix=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=0.9995,
        num_threads=1, max_sentence_length=4192, minloglevel=2, split_by_unicode_script=True)
    return w.getvalue()


def make_tok_b(train):
    """tests/golden/models/tok-b and tok-b-nextgpt: tok-a's json files around tok-b's model; the nextgpt
    folder adds the 38 signal tokens at ids 1536..1573 (key-sorted added_tokens.json, as transformers
    writes it)."""
    plain, ng = (os.path.join(OWN_MODELS, m) for m in OWN)
    model_path = os.path.join(plain, "tokenizer.model")
    model = train_tok_b() if train or not os.path.exists(model_path) else open(model_path, "rb").read()
    n = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    for d, src in ((plain, "tok-a"), (ng, "tok-a-nextgpt")):
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer.model"), "wb") as f:
            f.write(model)
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            shutil.copyfile(os.path.join(SHARED, "models", src, name), os.path.join(d, name))
    with open(os.path.join(ng, "added_tokens.json"), "w") as f:
        json.dump({t: n + i for i, t in enumerate(SIGNAL_TOKENS)}, f, indent=2, sort_keys=True)
        f.write("\n")


def write_case(stage, name, model, params, inputs, expected):
    d = os.path.join(OUT, stage, name)
    os.makedirs(d, exist_ok=True)
    model_dir = os.path.join(OWN_MODELS if model in OWN else os.path.join(SHARED, "models"), model)
    rel = os.path.relpath(model_dir, d)
    assert os.path.samefile(os.path.join(d, rel), model_dir)
    case = {"stage": stage, "model": rel, "params": params, "atol": 0, "rtol": 0, "source": SOURCE}
    with open(os.path.join(d, "case.json"), "w", encoding="utf-8") as f:
        json.dump(case, f, indent=2, ensure_ascii=False)
        f.write("\n")
    if inputs:
        save_safetensors(os.path.join(d, "inputs.safetensors"), inputs)
    save_safetensors(os.path.join(d, "expected.safetensors"), expected)


def main():
    for stage in ("tokenizer.encode", "tokenizer.decode"):
        shutil.rmtree(os.path.join(OUT, stage), ignore_errors=True)
    make_tok_b("--train-tok-b" in sys.argv[1:])
    toks = {m: SlowLlama(os.path.join(SHARED, "models", m)) for m in ("tok-a", "tok-a-nextgpt")}
    toks.update({m: SlowLlama(os.path.join(OWN_MODELS, m)) for m in OWN})
    ng = toks["tok-a-nextgpt"]
    added = sorted(ng.added_enc, key=ng.added_enc.get)
    seps = ["", " ", "  ", "\n", "w", " w ", "\t x\n", "\u3000", " \u00a0 ", "##"]
    adjacency = "start"
    for i, t in enumerate(added):
        adjacency += seps[i % len(seps)] + t
    adjacency += " end\n###"

    enc = [
        ("cjk", "tok-a", "中文测试：你好，世界！日本語のテキスト。한국어 텍스트입니다", True),
        ("emoji_zwj_flags", "tok-a", "party 🎉🎉 rocket 🚀 family 👨‍👩‍👧 flag 🇯🇵 thumbs 👍🏽 cat 🐱", True),
        ("combining_marks", "tok-a", "e\u0301 vs \u00e9, a\u0308o\u0308, Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d, "
         "\u0928\u092e\u0938\u094d\u0924\u0947", True),
        ("whitespace_runs", "tok-a", "a" + " " * 17 + "b\t\t\tc\n\n\n\nd" + " " * 5 + "\r\n e  \u00a0 f\u2003", True),
        ("only_spaces", "tok-a", "    ", True),
        ("leading_newline", "tok-a", "\n\nhello", False),
        ("digits", "tok-a", "0123456789 3.14159 1,000,000 2024-01-01 x2y3 007 -42 1e-5", True),
        ("newline_hashes", "tok-a-nextgpt", "\n###", False),
        ("empty_no_bos", "tok-a-nextgpt", "", False),
        ("empty_bos", "tok-a-nextgpt", "", True),
        ("nextgpt_turns", "tok-a-nextgpt",
         "### Human: hello there\n### Assistant: sure, here it is[IMG0] [IMG1] [IMG2] [IMG3]\n### "
         "Human: <Img>temp/x.jpg</Img> and a video\n### Assistant:", True),
        ("every_added_token", "tok-a-nextgpt", adjacency, True),
        ("added_tokens_unicode_spaces", "tok-a-nextgpt", "a\u3000[IMG0]\u00a0b\u2003[AUD3]\u2028\u0085c[VID9]\x1c", False),
        ("added_only", "tok-a-nextgpt", "[IMG0]", False),
        ("added_back_to_back", "tok-a-nextgpt", "[VID0][VID1][VID2][VID3][VID4][VID5][VID6][VID7][VID8][VID9][VID10][VID11]"
         "[VID12][VID13][VID14][VID15][VID16][VID17][VID18][VID19][VID20][VID21][VID22][VID23]", True),
        ("near_misses", "tok-a-nextgpt", "[IMG [IMG4] [img0] [VID24] <Img </Img [AUD8] [[IMG0]] <Img>>", True),
        ("specials_no_strip", "tok-a-nextgpt", "x</s> y<s>z <unk> w </s>\n<s>", True),
        ("specials_and_added", "tok-a-nextgpt", "<s>[IMG0]</s> [AUD0] <unk>\n[VID0]<s>", False),
        ("added_as_text_plain_model", "tok-a", "look [IMG0] <Img>x</Img>", True),
        ("code_and_punct", "tok-a", "def f(x):\n    return {'a': [1, 2]}  # comment\n\t}\\ \"quoted\" ~!@$%^&*()_+`", True),
        ("long_paragraph", "tok-a-nextgpt",
         ("The quick brown fox jumps over the lazy dog near the river bank, while a llama watches. " * 12).strip(), True),
        ("long_space_run", "tok-a", "x" + " " * 300 + "y", False),
        ("mixed_scripts", "tok-a", "Привет мир Ωμέγα naïve café Straße Ελληνικά עברית العربية", True),
        ("control_chars", "tok-a", "a\x02b\x01c\x7f d\x0b\x0c e\x1f", False),
    ]
    nb = toks["tok-b-nextgpt"]
    enc += [
        ("tok-b_code", "tok-b", "class Foo(object):\n        def __init__(self, x=None):\n                "
         "self.x = x  # 12345\n\n\treturn '__main__'", True),
        ("tok-b_mixed_scripts", "tok-b", "Привет, мир! 中文测试你好 Ελληνικά naïve café Straße Ω ж ё 🎉 ｆｕｌｌ", True),
        ("tok-b_digits_spaces", "tok-b", "  3.14159   2024-11-28\t\t0x1F  -7e+10 " + " " * 20 + "end", False),
        ("tok-b_nextgpt_turns", "tok-b-nextgpt",
         "### Human: <Img>a.jpg</Img> what is this?\n### Assistant: a cat[IMG0] [IMG1] [IMG2] [IMG3]\n###", True),
        ("tok-b_added_adjacent", "tok-b-nextgpt", "x[AUD0]  y\n[VID23][VID3]z </s> [IMG3]\u3000w", False),
    ]
    for name, model, text, add_bos in enc:
        ids = toks[model].encode(text, add_bos)
        write_case("tokenizer.encode", name, model, {"text": text, "add_bos": add_bos}, None,
                   {"ids": np.array(ids, dtype=np.int32)})

    dec = [
        ("leading_spaces", "tok-a", [260, 300], False),
        ("lone_space_piece_first", "tok-a", [ng.sp.piece_to_id("▁"), ng.sp.piece_to_id("▁a")], False),
        ("bos_then_space_pieces", "tok-a", [1, ng.sp.piece_to_id("▁"), ng.sp.piece_to_id("▁a")], False),
        ("byte_first", "tok-a", [3 + 0x41, ng.sp.piece_to_id("▁a")], False),
        ("invalid_bytes", "tok-a-nextgpt",
         [3 + b for b in (0xE4, 0xBD)] + [ng.sp.piece_to_id("▁a")] + [3 + b for b in (0xF0, 0x9F, 0x98, 0x80, 0xC0, 0x80, 0xED, 0xA0, 0x80, 0xFF)], False),
        ("bytes_between_added", "tok-a-nextgpt", [3 + 0xE4, 1002, 3 + 0xBD, 3 + 0xA0, 1003, 3 + 0x0A], False),
        ("unk_inside", "tok-a", [300, 0, 301, 0, 0], False),
        ("unk_skipped", "tok-a", [300, 0, 301, 0, 0], True),
        ("specials_and_added", "tok-a-nextgpt", [1, 1002, 2, 1003, 0, 1, 1, 300, 2, 1037], False),
        ("specials_and_added_skipped", "tok-a-nextgpt", [1, 1002, 2, 1003, 0, 1, 1, 300, 2, 1037], True),
        ("space_piece_between_added", "tok-a-nextgpt", [1002, ng.sp.piece_to_id("▁"), 1003, 260, 1004], False),
        ("only_bos", "tok-a-nextgpt", [1], True),
        ("empty_ids", "tok-a-nextgpt", [], False),
    ]
    rng = random.Random(20240601)
    for k in range(6):
        ids = [rng.randrange(ng.n_sp + len(ng.added_enc)) for _ in range(rng.randrange(1, 80))]
        dec.append(("random_%d" % k, "tok-a-nextgpt", ids, k % 2 == 1))
    for k in range(3):
        ids = [rng.randrange(3, 259) for _ in range(40)]  # byte soup
        dec.append(("random_bytes_%d" % k, "tok-a", ids, False))
    for k in range(3):
        ids = [rng.randrange(nb.n_sp + len(nb.added_enc)) for _ in range(rng.randrange(20, 90))]
        dec.append(("tok-b_random_%d" % k, "tok-b-nextgpt", ids, k == 1))
    dec.append(("tok-b_byte_soup", "tok-b", [rng.randrange(3, 259) for _ in range(50)], False))
    for name, model, text, add_bos in enc:  # round trips of the encode cases
        if name in ("every_added_token", "nextgpt_turns", "emoji_zwj_flags", "whitespace_runs", "control_chars",
                    "specials_no_strip", "combining_marks") or name.startswith("tok-b_"):
            ids = toks[model].encode(text, add_bos)
            dec.append(("roundtrip_" + name, model, ids, False))
            dec.append(("roundtrip_" + name + "_skip", model, ids, True))
    for name, model, ids, skip in dec:
        text = toks[model].decode(ids, skip)
        write_case("tokenizer.decode", name, model, {"skip_special_tokens": skip},
                   {"ids": np.array(ids, dtype=np.int32)},
                   {"text_utf8": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)})

    # the port must reproduce the shared golden cases exactly
    for stage in ("tokenizer.encode", "tokenizer.decode"):
        sd = os.path.join(SHARED, "llm", stage)
        for c in sorted(os.listdir(sd)):
            from check import load_safetensors
            case = json.load(open(os.path.join(sd, c, "case.json")))
            tk = SlowLlama(os.path.normpath(os.path.join(sd, c, case["model"])))
            exp = load_safetensors(os.path.join(sd, c, "expected.safetensors"))[0]
            p = case["params"]
            if stage == "tokenizer.encode":
                got = tk.encode(p["text"], p["add_bos"])
                ok = list(exp["ids"]) == got
            else:
                ids = [int(x) for x in load_safetensors(os.path.join(sd, c, "inputs.safetensors"))[0]["ids"]]
                ok = tk.decode(ids, p["skip_special_tokens"]).encode("utf-8") == exp["text_utf8"].tobytes()
            print("shared %-40s %s" % (stage + "/" + c, "ok" if ok else "MISMATCH"))
            assert ok
    print("wrote %d encode and %d decode cases under %s" % (len(enc), len(dec), OUT))


if __name__ == "__main__":
    main()
