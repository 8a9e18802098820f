#!/usr/bin/python3
"""gen_clip_cases.py — our own golden cases for the CLIP tokenizer and text encoder
(stages "clip.tokenize" and "clip.text_encoder"), and the tiny models they run on.

What it writes:
  tests/golden/models/clip-a/   tokenizer/ (vocab.json, merges.txt, special_tokens_map.json,
                                tokenizer_config.json: SD 1.5's layout, pad "<|endoftext|>") and
                                text_encoder/ (config.json, model.safetensors: transformers'
                                CLIPTextModel names; hidden 32, 2 layers, 4 heads, quick_gelu) —
                                hidden 32 = the shared sd-a UNet's cross_attention_dim.
  tests/golden/models/clip-b/   the same vocabulary with OpenCLIP's tokenizer settings
                                (Zeroscope / SD 2: pad_token "!"), text encoder with
                                hidden_act "gelu", 3 layers.
  tests/golden/vision/clip.tokenize/<case>/      params.text -> input_ids I64 [1, 77]
  tests/golden/vision/clip.text_encoder/<case>/  input_ids I64 [B, 77] (or params.text)
                                                  -> last_hidden_state F32 [B, 77, hidden]

The vocabulary is built here the way CLIP's was (openai/CLIP simple_tokenizer.py: the 256
byte-level characters, the same with "</w>", then one entry per merge, then <|startoftext|>,
<|endoftext|>), with byte-pair merges TRAINED on a small corpus, so the real BPE algorithm is
exercised (multi-step merges, words that stay split, bytes of CJK and emoji).

The expected outputs come from PORTS, not from transformers (not installed here):
  - CLIPTokenizer of huggingface/transformers v4.29.0 (models/clip/tokenization_clip.py) on the
    path it takes when ftfy is NOT installed: BasicTokenizer(strip_accents=False,
    do_split_on_punc=False) (clean control characters, whitespace -> " ", spaces around CJK
    ideographs, NFC, split on whitespace, str.lower()), " ".join, regex findall with the CLIP
    pattern (the `regex` module, IGNORECASE), bytes_to_unicode, bpe() with the merges ranks and
    "</w>"; PreTrainedTokenizer.tokenize's split on the special tokens first (tokens_trie);
    then the call the diffusers pipelines make: padding="max_length", max_length=77,
    truncation=True ([bos] + ids[:75] + [eos], padded with the pad token's id).
  - CLIPTextModel of transformers v4.29.0 (models/clip/modeling_clip.py: CLIPTextEmbeddings,
    CLIPEncoderLayer pre-LN with the causal mask, CLIPAttention scale head_dim**-0.5, CLIPMLP
    with ACT2FN[hidden_act], final_layer_norm), in torch float32 on the CPU, no attention_mask
    (the SD pipelines pass none unless config.use_attention_mask).

Run with Debian's python (numpy + torch 1.13 + python3-regex): /usr/bin/python3 tools/gen_clip_cases.py
"""
import json, os, unicodedata
import regex
import torch
import torch.nn.functional as F
from golden_st import write_st

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "tests", "golden")
SRC_TOK = ("tools/gen_clip_cases.py: a port of huggingface/transformers v4.29.0 CLIPTokenizer (slow, the no-ftfy "
           "BasicTokenizer path, special-token split, padding='max_length', max_length=77, truncation=True as the "
           "diffusers pipelines call it), with the `regex` module; NOT transformers itself")
SRC_ENC = ("tools/gen_clip_cases.py: a torch float32 port of huggingface/transformers v4.29.0 CLIPTextModel "
           "(modeling_clip.py: embeddings, pre-LN encoder layers with the causal mask, final_layer_norm; "
           "last_hidden_state), run on CPU; NOT transformers itself")
MAXLEN = 77


# ---------------------------------------------------------------- tokenizer port
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENC = bytes_to_unicode()
PAT = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                    regex.IGNORECASE)


def _is_whitespace(c):  # transformers.tokenization_utils
    if c in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(c) == "Zs"


def _is_control(c):
    if c in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(c).startswith("C")


def _is_chinese_char(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text):  # BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or _is_control(c):
            continue
        out.append(" " if _is_whitespace(c) else c)
    text = "".join(out)
    text = "".join(" " + c + " " if _is_chinese_char(ord(c)) else c for c in text)
    text = unicodedata.normalize("NFC", text)
    toks = [t.lower() for t in text.strip().split()]
    return " ".join(toks).strip().split()


def pretokenize(text):
    text = " ".join(basic_tokenize(text))
    return ["".join(BYTE_ENC[b] for b in t.encode("utf-8")) for t in PAT.findall(text)]


def get_pairs(word):
    return set(zip(word[:-1], word[1:]))


class Tokenizer:
    def __init__(self, vocab, merges, specials, bos, eos, pad, unk):
        self.encoder = vocab
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.specials = specials  # strings split out before _tokenize (PreTrainedTokenizer.tokenize)
        self.bos, self.eos, self.pad, self.unk = (vocab[bos], vocab[eos], vocab[pad], vocab[unk])

    def bpe(self, token):
        if token in ("<|startoftext|>", "<|endoftext|>"):
            return token
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = get_pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:])
                    break
                new.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        return " ".join(word)

    def split_specials(self, text):  # tokens_trie.split: earliest match, longest at that position
        out, i, start = [], 0, 0
        while i < len(text):
            best = None
            for s in self.specials:
                if text.startswith(s, i) and (best is None or len(s) > len(best)):
                    best = s
            if best is None:
                i += 1
                continue
            if i > start:
                out.append((False, text[start:i]))
            out.append((True, best))
            i += len(best)
            start = i
        if start < len(text):
            out.append((False, text[start:]))
        return out

    def ids(self, text):
        ids = []
        for special, chunk in self.split_specials(text):
            if special:
                ids.append(self.encoder.get(chunk, self.unk))
                continue
            for t in pretokenize(chunk):
                ids.extend(self.encoder.get(p, self.unk) for p in self.bpe(t).split(" "))
        return ids

    def __call__(self, text, max_length=MAXLEN):
        ids = [self.bos] + self.ids(text)[: max_length - 2] + [self.eos]
        return ids + [self.pad] * (max_length - len(ids))


CORPUS = """a photo of a cat. a photo of a dog! a painting of a cat sitting on a mat.
it's a cat, isn't it? don't stop the photographer; the photographs of the cats are photogenic.
a high quality photo of an astronaut riding a horse on the moon, trending on artstation.
the quick brown fox jumps over the lazy dog 1234567890 times!!! ... ??? :-)
a beautiful landscape with mountains, rivers and trees at sunset, digital art, 4k, hd.
猫の写真 一只猫 可爱的猫 猫猫 写真 🐱 🐶 🚀 ✨ café résumé naïve straße
they're we've you'll she'd i'm photo photos photography cat cats catalog
"""


def train_bpe(n_merges):
    words = {}
    for line in CORPUS.split("\n"):
        for t in pretokenize(line):
            w = tuple(t[:-1]) + (t[-1] + "</w>",)
            words[w] = words.get(w, 0) + 1
    base = list(BYTE_ENC.values())
    vocab = base + [v + "</w>" for v in base]
    seen = set(vocab)
    merges = []
    while len(merges) < n_merges:
        counts = {}
        for w, c in words.items():
            for p in zip(w[:-1], w[1:]):
                counts[p] = counts.get(p, 0) + c
        cands = sorted(((c, p) for p, c in counts.items() if p[0] + p[1] not in seen), key=lambda x: (-x[0], x[1]))
        if not cands:
            break
        _, best = cands[0]
        merges.append(best)
        seen.add(best[0] + best[1])
        vocab.append(best[0] + best[1])
        nw = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + c
        words = nw
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {v: i for i, v in enumerate(vocab)}, merges


def write_tokenizer(d, vocab, merges, pad):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(a + " " + b + "\n" for a, b in merges))
    tok = lambda s: {"content": s, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": tok("<|startoftext|>"), "eos_token": tok("<|endoftext|>"),
                   "pad_token": pad if pad == "!" else "<|endoftext|>", "unk_token": tok("<|endoftext|>")}, f, indent=2)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"add_prefix_space": False, "bos_token": tok("<|startoftext|>"), "do_lower_case": True,
                   "eos_token": tok("<|endoftext|>"), "errors": "replace", "model_max_length": MAXLEN,
                   "pad_token": pad, "tokenizer_class": "CLIPTokenizer", "unk_token": tok("<|endoftext|>")}, f,
                  indent=2)


# ---------------------------------------------------------------- text encoder port
ACT = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu}


def make_encoder(d, vocab_size, hidden, layers, heads, inter, act, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, std=0.2: torch.randn(*s, generator=g) * std
    w = {"text_model.embeddings.token_embedding.weight": r(vocab_size, hidden, std=0.5),
         "text_model.embeddings.position_embedding.weight": r(MAXLEN, hidden, std=0.3),
         "text_model.embeddings.position_ids": torch.arange(MAXLEN).reshape(1, MAXLEN)}
    for i in range(layers):
        p = "text_model.encoder.layers.%d." % i
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[p + "self_attn.%s.weight" % n] = r(hidden, hidden)
            w[p + "self_attn.%s.bias" % n] = r(hidden, std=0.05)
        for n in ("layer_norm1", "layer_norm2"):
            w[p + n + ".weight"] = 1 + r(hidden, std=0.1)
            w[p + n + ".bias"] = r(hidden, std=0.05)
        w[p + "mlp.fc1.weight"] = r(inter, hidden)
        w[p + "mlp.fc1.bias"] = r(inter, std=0.05)
        w[p + "mlp.fc2.weight"] = r(hidden, inter)
        w[p + "mlp.fc2.bias"] = r(hidden, std=0.05)
    w["text_model.final_layer_norm.weight"] = 1 + r(hidden, std=0.1)
    w["text_model.final_layer_norm.bias"] = r(hidden, std=0.05)
    cfg = {"_name_or_path": "tiny-clip-text", "architectures": ["CLIPTextModel"], "attention_dropout": 0.0,
           "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": act, "hidden_size": hidden,
           "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": inter, "layer_norm_eps": 1e-05,
           "max_position_embeddings": MAXLEN, "model_type": "clip_text_model", "num_attention_heads": heads,
           "num_hidden_layers": layers, "pad_token_id": 1, "projection_dim": hidden, "torch_dtype": "float32",
           "transformers_version": "4.29.0", "vocab_size": vocab_size}
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_st(os.path.join(d, "model.safetensors"), w)
    return cfg, w


def clip_encoder(cfg, w, prefix, x, mask=None):
    """CLIPEncoder of transformers v4.29.0 (modeling_clip.py): num_hidden_layers pre-LN CLIPEncoderLayers
    (x += out_proj(attention(layer_norm1 x)), q scaled by head_dim**-0.5 after q_proj; x += fc2(act(fc1(
    layer_norm2 x)))), tensors `prefix`{i}.*; mask (additive, broadcast to [B, heads, S, S]) or None (the
    vision tower has none). Shared with tools/gen_safety_cases.py."""
    B, S, D = x.shape
    H = cfg["num_attention_heads"]
    hd = D // H
    act = ACT[cfg["hidden_act"]]
    eps = cfg["layer_norm_eps"]
    for i in range(cfg["num_hidden_layers"]):
        p = prefix + "%d." % i
        lin = lambda t, n: F.linear(t, w[p + n + ".weight"], w[p + n + ".bias"])
        res = x
        h = F.layer_norm(x, (D,), w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"], eps)
        q = lin(h, "self_attn.q_proj") * hd ** -0.5
        k, v = lin(h, "self_attn.k_proj"), lin(h, "self_attn.v_proj")
        sh = lambda t: t.view(B, S, H, hd).transpose(1, 2)
        a = torch.matmul(sh(q), sh(k).transpose(-1, -2))
        if mask is not None:
            a = a + mask
        a = torch.matmul(F.softmax(a, dim=-1), sh(v)).transpose(1, 2).reshape(B, S, D)
        x = res + lin(a, "self_attn.out_proj")
        res = x
        h = F.layer_norm(x, (D,), w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"], eps)
        x = res + lin(act(lin(h, "mlp.fc1")), "mlp.fc2")
    return x


def clip_text_forward(cfg, w, ids):
    B, S = ids.shape
    D = cfg["hidden_size"]
    eps = cfg["layer_norm_eps"]
    x = w["text_model.embeddings.token_embedding.weight"][ids] + w["text_model.embeddings.position_embedding.weight"][:S][None]
    mask = torch.full((S, S), torch.finfo(torch.float32).min).triu(1)[None, None]
    x = clip_encoder(cfg, w, "text_model.encoder.layers.", x, mask)
    return F.layer_norm(x, (D,), w["text_model.final_layer_norm.weight"], w["text_model.final_layer_norm.bias"], eps)


# ---------------------------------------------------------------- cases
TEXTS = {
    "empty": "",
    "photo_of_a_cat": "a photo of a cat",
    "contractions": "it's a cat, isn't it? don't! they'RE here",
    "punctuation": "wow!!! ... (really?) 1234 #hashtag @user :-)",
    "cjk": "猫の写真, 一只可爱的猫",
    "emoji": "a cat 🐱 and a rocket 🚀✨",
    "accents": "Café résumé NAÏVE Straße",
    "nfc_and_sigma": "Cafe\u0301 NAI\u0308VE \u0130STANBUL \u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u039f\u03a3 \uf900",
    "whitespace": "  a   photo\n\nof\ta\r\ncat  \u3000 ",
    "upper_case": "A PHOTO OF A CAT",
    "specials": "a <|endoftext|> b<<|startoftext|>c !x",
    "long_truncated": " ".join(["a photo of a cat sitting on a mat"] * 12),
    "unknown_words": "zyxw qqq photographically",
}


def case(stage, name, model, params, inputs, expected, source, atol=0, rtol=0, note=None):
    d = os.path.join(ROOT, "vision", stage, name)
    os.makedirs(d, exist_ok=True)
    c = {"stage": stage, "model": "../../../models/" + model, "params": params, "atol": atol, "rtol": rtol,
         "source": source}
    if note:
        c["note"] = note
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(c, f, indent=1, ensure_ascii=False)
        f.write("\n")
    if inputs:
        write_st(os.path.join(d, "inputs.safetensors"), inputs)
    write_st(os.path.join(d, "expected.safetensors"), expected)


def main():
    vocab, merges = train_bpe(300)
    models = os.path.join(ROOT, "models")
    toks = {}
    for name, pad, hidden, layers, heads, act, seed in (("clip-a", "<|endoftext|>", 32, 2, 4, "quick_gelu", 1),
                                                        ("clip-b", "!", 32, 3, 4, "gelu", 2)):
        write_tokenizer(os.path.join(models, name, "tokenizer"), vocab, merges, pad)
        specials = sorted({"<|startoftext|>", "<|endoftext|>", pad})
        toks[name] = Tokenizer(vocab, merges, specials, "<|startoftext|>", "<|endoftext|>", pad, "<|endoftext|>")
        cfg, w = make_encoder(os.path.join(models, name, "text_encoder"), len(vocab), hidden, layers, heads,
                              hidden * 2, act, seed)
        toks[name].cfg, toks[name].w = cfg, w
    for t, text in TEXTS.items():
        ids = torch.tensor([toks["clip-a"](text)], dtype=torch.int64)
        case("clip.tokenize", t, "clip-a", {"text": text}, None, {"input_ids": ids}, SRC_TOK)
    for t in ("contractions", "specials", "punctuation", "empty"):
        ids = torch.tensor([toks["clip-b"](TEXTS[t])], dtype=torch.int64)
        case("clip.tokenize", "openclip_" + t, "clip-b", {"text": TEXTS[t]}, None, {"input_ids": ids}, SRC_TOK,
             note="OpenCLIP-style tokenizer (Zeroscope, SD 2): pad_token '!' is a special token too")
    for m in ("clip-a", "clip-b"):
        tk = toks[m]
        for t in ("empty", "photo_of_a_cat", "long_truncated"):
            ids = torch.tensor([tk(TEXTS[t])], dtype=torch.int64)
            y = clip_text_forward(tk.cfg, tk.w, ids)
            case("clip.text_encoder", m.replace("-", "_") + "_" + t, m, {"text": TEXTS[t]}, None,
                 {"last_hidden_state": y}, SRC_TOK + "; then " + SRC_ENC, atol=2e-5, rtol=1e-4,
                 note="end to end: prompt -> tokenizer -> text encoder")
        g = torch.Generator().manual_seed(7)
        ids = torch.randint(0, len(vocab), (3, MAXLEN), generator=g)
        y = clip_text_forward(tk.cfg, tk.w, ids)
        case("clip.text_encoder", m.replace("-", "_") + "_ids_b3", m, {}, {"input_ids": ids},
             {"last_hidden_state": y}, SRC_ENC, atol=2e-5, rtol=1e-4, note="random input_ids, batch 3")
    print("vocab", len(vocab), "merges", len(merges))
    for t in ("photo_of_a_cat", "contractions", "cjk", "specials"):
        print(t, toks["clip-a"].ids(TEXTS[t]))


if __name__ == "__main__":
    main()
