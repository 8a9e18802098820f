#!/usr/bin/python3
"""gen_clap_cases.py — our own golden cases for AudioLDM's text branch: the RoBERTa tokenizer and
CLAP's text encoder (stages "roberta.tokenize" and "clap.text_encoder"), and the tiny model they
run on. AudioLDM's pipeline uses them for its unconditional embedding (NExT-GPT passes only
prompt_embeds, so the pipeline encodes "" itself: nextgpt-facts §4).

What it writes:
  tests/golden/models/clap-a/   model_index.json (AudioLDMPipeline), tokenizer/ (vocab.json,
                                merges.txt, special_tokens_map.json, tokenizer_config.json in
                                AudioLDM's layout: RobertaTokenizer, model_max_length 512,
                                <mask> lstrip) and text_encoder/ (config.json model_type
                                "clap_text_model", model.safetensors with transformers'
                                ClapTextModelWithProjection names; hidden 32, 2 layers, 4 heads,
                                max_position_embeddings 514 as AudioLDM's, projection_dim 24).
  tests/golden/audio/roberta.tokenize/<case>/   params.text (+ max_length) -> input_ids,
                                                attention_mask I64 [1, max_length]
  tests/golden/audio/clap.text_encoder/<case>/  input_ids (+ attention_mask) I64 [B, S] or
                                                params.text -> prompt_embeds F32 [B, 24]

The vocabulary is built the way GPT-2/RoBERTa's was: <s> <pad> </s> <unk>, the 256 byte-level
characters, one entry per merge, <mask> last; the merges are TRAINED here on a small corpus
(pre-tokenised with GPT-2's pattern, case kept, no "</w>"), so real multi-step BPE runs.

The expected outputs come from PORTS, not from transformers (not installed here):
  - RobertaTokenizer of huggingface/transformers v4.29.0 (models/roberta/tokenization_roberta.py,
    tokenization_utils.py): PreTrainedTokenizer.tokenize splits on the special tokens first
    (tokens_trie: earliest match, longest there) and strips the neighbours' whitespace where the
    AddedToken says so (<mask> lstrip=True, the others none); each other chunk: regex findall
    with GPT-2's pattern (the `regex` module), bytes_to_unicode, bpe() with merges.txt read as
    read().split("\\n")[1:-1]; unknown -> <unk>. Then the call AudioLDMPipeline._encode_prompt
    makes: padding="max_length", max_length=tokenizer.model_max_length (512; for "" as the
    negative prompt: max_length=prompt_embeds.shape[1]), truncation=True:
    [<s>] + ids[:max_length-2] + [</s>] + [<pad>]..., attention_mask 1 on the unpadded part.
  - ClapTextModelWithProjection of transformers (models/clap/modeling_clap.py): RoBERTa-style
    ClapTextEmbeddings (position ids = padding_idx + cumsum(ids != pad), padding_idx at pads;
    token_type_ids zeros; LayerNorm), post-LN ClapTextLayer x N (attention with the additive
    mask (1 - attention_mask) * finfo(float32).min, GELU intermediate), ClapTextPooler (first
    token, dense, tanh), ClapProjectionLayer (linear1, relu, linear2) -> text_embeds; then the
    pipeline's F.normalize(text_embeds, dim=-1). torch float32 on the CPU, eval (no dropout).

Run with Debian's python (numpy + torch 1.13 + python3-regex): /usr/bin/python3 tools/gen_clap_cases.py
"""
import json, os, shutil
import numpy as np
import regex
import torch
import torch.nn.functional as F
from golden_st import write_st

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "tests", "golden")
SRC_TOK = ("tools/gen_clap_cases.py: a port of huggingface/transformers v4.29.0 RobertaTokenizer (slow: special-token "
           "split with AddedToken lstrip/rstrip, GPT-2 pattern with the `regex` module, byte-level BPE) called as "
           "AudioLDMPipeline._encode_prompt does (padding='max_length', truncation=True); NOT transformers itself")
SRC_ENC = ("tools/gen_clap_cases.py: a torch float32 port of huggingface/transformers ClapTextModelWithProjection "
           "(modeling_clap.py: RoBERTa embeddings, post-LN layers with the additive attention mask, pooler, "
           "projection) and AudioLDMPipeline's F.normalize(text_embeds, dim=-1), run on CPU; NOT transformers itself")
MAXLEN = 512      # tokenizer_config.json model_max_length (AudioLDM's)
MAXPOS = 514      # max_position_embeddings (AudioLDM's)
PAD_ID = 1


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
PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
SPECIALS = {"<s>": (False, False), "</s>": (False, False), "<unk>": (False, False), "<pad>": (False, False),
            "<mask>": (True, False)}  # AddedToken (lstrip, rstrip) as RobertaTokenizer.__init__ makes them


def pretokenize(text):
    return ["".join(BYTE_ENC[b] for b in t.encode("utf-8")) for t in PAT.findall(text)]


def get_pairs(word):
    return set(zip(word[:-1], word[1:]))


class Tokenizer:
    def __init__(self, vocab, merges_txt):
        self.encoder = vocab
        lines = merges_txt.split("\n")[1:-1]  # tokenization_roberta.py
        self.ranks = dict(zip([tuple(m.split()) for m in lines], range(len(lines))))
        self.unk = vocab["<unk>"]

    def bpe(self, token):
        word = tuple(token)
        pairs = get_pairs(word)
        if not pairs:
            return token
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
            for s in SPECIALS:
                if text.startswith(s, i) and (best is None or len(s) > len(best)):
                    best = s
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

    def tokenize(self, text):  # PreTrainedTokenizer.tokenize (4.29)
        tokens = self.split_specials(text)
        for i, tok in enumerate(tokens):
            if tok in SPECIALS:
                lstrip, rstrip = SPECIALS[tok]
                left = tokens[i - 1] if i > 0 else None
                right = tokens[i + 1] if i < len(tokens) - 1 else None
                if rstrip and right:
                    tokens[i + 1] = right.lstrip()
                if lstrip and left:
                    tokens[i - 1] = left.rstrip()
        out = []
        for tok in tokens:
            if not tok:
                continue
            if tok in SPECIALS:
                out.append(tok)
            else:
                for t in pretokenize(tok):
                    out.extend(self.bpe(t).split(" "))
        return out

    def ids(self, text):
        return [self.encoder.get(t, self.unk) for t in self.tokenize(text)]

    def __call__(self, text, max_length=MAXLEN):
        ids = [self.encoder["<s>"]] + self.ids(text)[: max_length - 2] + [self.encoder["</s>"]]
        mask = [1] * len(ids) + [0] * (max_length - len(ids))
        return ids + [PAD_ID] * (max_length - len(ids)), mask


CORPUS = """A dog barking in the distance. A cat meowing! Rain falling on a tin roof, thunder rumbling.
It's a bird, isn't it? Don't stop the music; the musicians are playing their instruments loudly.
Birds are singing in the forest while a river flows; water splashing, wind blowing through trees.
The quick brown fox jumps over the lazy dog 1234567890 times!!! ... ??? :-) people talking
Café résumé naïve straße — 猫の写真 一只猫 🐱 🐶 🚀 ✨ they're we've you'll she'd I'm
"""


def train_bpe(n_merges):
    words = {}
    for line in CORPUS.split("\n"):
        for t in pretokenize(line):
            w = tuple(t)
            words[w] = words.get(w, 0) + 1
    base = list(BYTE_ENC.values())
    vocab = ["<s>", "<pad>", "</s>", "<unk>"] + base
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
    vocab.append("<mask>")
    return {v: i for i, v in enumerate(vocab)}, merges


def write_tokenizer(d, vocab, merges):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    txt = "#version: 0.2\n" + "".join(a + " " + b + "\n" for a, b in merges)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write(txt)
    mask = {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False, "single_word": False}
    with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": mask,
                   "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"}, f, indent=2)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"add_prefix_space": False, "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
                   "errors": "replace", "mask_token": mask, "model_max_length": MAXLEN, "pad_token": "<pad>",
                   "sep_token": "</s>", "tokenizer_class": "RobertaTokenizer", "trim_offsets": True,
                   "unk_token": "<unk>"}, f, indent=2)
    return txt


# ---------------------------------------------------------------- text encoder port
ACT = {"gelu": F.gelu, "relu": F.relu}


def make_encoder(d, vocab_size, hidden, layers, heads, inter, proj, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, std=0.2: torch.randn(*s, generator=g) * std
    E = "text_model.embeddings."
    w = {E + "word_embeddings.weight": r(vocab_size, hidden, std=0.5),
         E + "position_embeddings.weight": r(MAXPOS, hidden, std=0.3),
         E + "token_type_embeddings.weight": r(1, hidden, std=0.3),
         E + "LayerNorm.weight": 1 + r(hidden, std=0.1), E + "LayerNorm.bias": r(hidden, std=0.05),
         E + "position_ids": torch.arange(MAXPOS).reshape(1, MAXPOS),
         E + "token_type_ids": torch.zeros(1, MAXPOS, dtype=torch.int64)}
    for i in range(layers):
        p = "text_model.encoder.layer.%d." % i
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            w[p + n + ".weight"] = r(hidden, hidden)
            w[p + n + ".bias"] = r(hidden, std=0.05)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + n + ".weight"] = 1 + r(hidden, std=0.1)
            w[p + n + ".bias"] = r(hidden, std=0.05)
        w[p + "intermediate.dense.weight"] = r(inter, hidden)
        w[p + "intermediate.dense.bias"] = r(inter, std=0.05)
        w[p + "output.dense.weight"] = r(hidden, inter)
        w[p + "output.dense.bias"] = r(hidden, std=0.05)
    w["text_model.pooler.dense.weight"] = r(hidden, hidden)
    w["text_model.pooler.dense.bias"] = r(hidden, std=0.05)
    w["text_projection.linear1.weight"] = r(proj, hidden)
    w["text_projection.linear1.bias"] = r(proj, std=0.05)
    w["text_projection.linear2.weight"] = r(proj, proj)
    w["text_projection.linear2.bias"] = r(proj, std=0.05)
    cfg = {"_name_or_path": "tiny-clap-text", "architectures": ["ClapTextModelWithProjection"],
           "attention_probs_dropout_prob": 0.1, "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu",
           "hidden_dropout_prob": 0.1, "hidden_size": hidden, "initializer_factor": 1.0, "initializer_range": 0.02,
           "intermediate_size": inter, "layer_norm_eps": 1e-12, "max_position_embeddings": MAXPOS,
           "model_type": "clap_text_model", "num_attention_heads": heads, "num_hidden_layers": layers,
           "pad_token_id": PAD_ID, "position_embedding_type": "absolute", "projection_dim": proj,
           "projection_hidden_act": "relu", "torch_dtype": "float32", "transformers_version": "4.29.0",
           "type_vocab_size": 1, "use_cache": True, "vocab_size": vocab_size}
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_st(os.path.join(d, "model.safetensors"), w)
    return cfg, w


def clap_text_forward(cfg, w, ids, mask=None, dtype=torch.float32):
    """ClapTextModelWithProjection(ids, attention_mask).text_embeds, then F.normalize."""
    w = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in w.items()}
    B, S = ids.shape
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = D // H
    eps = cfg["layer_norm_eps"]
    pad = cfg["pad_token_id"]
    if mask is None:
        mask = torch.ones(B, S, dtype=torch.int64)
    m = ids.ne(pad).int()
    pos = (torch.cumsum(m, dim=1).type_as(m) * m).long() + pad  # create_position_ids_from_input_ids
    E = "text_model.embeddings."
    x = w[E + "word_embeddings.weight"][ids] + w[E + "token_type_embeddings.weight"][torch.zeros_like(ids)]
    x = x + w[E + "position_embeddings.weight"][pos]
    x = F.layer_norm(x, (D,), w[E + "LayerNorm.weight"], w[E + "LayerNorm.bias"], eps)
    ext = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
    for i in range(cfg["num_hidden_layers"]):
        p = "text_model.encoder.layer.%d." % i
        lin = lambda t, n: F.linear(t, w[p + n + ".weight"], w[p + n + ".bias"])
        sh = lambda t: t.view(B, S, H, hd).permute(0, 2, 1, 3)
        q, k, v = sh(lin(x, "attention.self.query")), sh(lin(x, "attention.self.key")), sh(lin(x, "attention.self.value"))
        a = torch.matmul(q, k.transpose(-1, -2)) / (hd ** 0.5) + ext
        a = torch.matmul(F.softmax(a, dim=-1), v).permute(0, 2, 1, 3).reshape(B, S, D)
        x = F.layer_norm(lin(a, "attention.output.dense") + x, (D,), w[p + "attention.output.LayerNorm.weight"],
                         w[p + "attention.output.LayerNorm.bias"], eps)
        f = ACT[cfg["hidden_act"]](lin(x, "intermediate.dense"))
        x = F.layer_norm(lin(f, "output.dense") + x, (D,), w[p + "output.LayerNorm.weight"],
                         w[p + "output.LayerNorm.bias"], eps)
    pooled = torch.tanh(F.linear(x[:, 0], w["text_model.pooler.dense.weight"], w["text_model.pooler.dense.bias"]))
    h = ACT[cfg["projection_hidden_act"]](F.linear(pooled, w["text_projection.linear1.weight"],
                                                   w["text_projection.linear1.bias"]))
    emb = F.linear(h, w["text_projection.linear2.weight"], w["text_projection.linear2.bias"])
    return F.normalize(emb, dim=-1)


# ---------------------------------------------------------------- cases
TEXTS = {
    "empty": "",
    "dog_barking": "A dog barking in the distance",
    "contractions": "It's a bird, isn't it? they'RE here, I'll go; we've seen",
    "punctuation": "Wow!!! ... (really?) 1234567 #hashtag @user :-) 3.14",
    "unicode": "Café résumé naïve straße — 猫の写真, 一只猫 🐱🚀✨ e\u0301",
    "whitespace": "  a   dog\n\nbarks\tloudly  \u3000 end \u00a0 ",
    "specials": "a <mask> b <s>c</s>  <pad>x   <mask>y<unk> <mask>",
    "unknown_words": "zyxw qqq Xylophone",
}


def case(stage, name, model, params, inputs, expected, source, atol=0, rtol=0, note=None):
    d = os.path.join(ROOT, "audio", stage, name)
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


def atol_for(cfg, w, ids, mask):
    """8 x max |fp32 - fp64|, rounded up to 1/2/5 x 10^k, at least 1e-6 (as the shared STAGES.md)."""
    d = (clap_text_forward(cfg, w, ids, mask) .double() - clap_text_forward(cfg, w, ids, mask, torch.float64)).abs()
    x = max(float(d.max()) * 8, 1e-6)
    k = 10.0 ** np.floor(np.log10(x))
    for m in (1, 2, 5, 10):
        if m * k >= x:
            return float("%.0e" % (m * k))


def main():
    vocab, merges = train_bpe(320)
    models = os.path.join(ROOT, "models")
    mdir = os.path.join(models, "clap-a")
    for st in ("roberta.tokenize", "clap.text_encoder"):  # audio/STAGES.md is kept
        shutil.rmtree(os.path.join(ROOT, "audio", st), ignore_errors=True)
    os.makedirs(mdir, exist_ok=True)
    with open(os.path.join(mdir, "model_index.json"), "w") as f:
        json.dump({"_class_name": "AudioLDMPipeline", "_diffusers_version": "0.17.0",
                   "text_encoder": ["transformers", "ClapTextModelWithProjection"],
                   "tokenizer": ["transformers", "RobertaTokenizer"]}, f, indent=2)
    txt = write_tokenizer(os.path.join(mdir, "tokenizer"), vocab, merges)
    tok = Tokenizer(vocab, txt)
    cfg, w = make_encoder(os.path.join(mdir, "text_encoder"), len(vocab), 32, 2, 4, 64, 24, 11)
    P = cfg["projection_dim"]

    for t, text in TEXTS.items():
        ids, mask = tok(text)
        case("roberta.tokenize", t, "clap-a", {"text": text}, None,
             {"input_ids": torch.tensor([ids]), "attention_mask": torch.tensor([mask])}, SRC_TOK)
    long_text = " ".join(["A dog barking in the distance while it's raining!"] * 60)
    for name, text, ml in (("truncated_16", TEXTS["contractions"], 16), ("long_512", long_text, MAXLEN),
                           ("empty_24", "", P)):
        ids, mask = tok(text, ml)
        case("roberta.tokenize", name, "clap-a", {"text": text, "max_length": ml}, None,
             {"input_ids": torch.tensor([ids]), "attention_mask": torch.tensor([mask])}, SRC_TOK,
             note="max_length %d (truncation keeps <s> and </s>)" % ml)

    for t, ml, note in (("empty", P, "the pipeline's negative prompt: \"\" padded to prompt_embeds.shape[1] = "
                                     "projection_dim tokens (NExT-GPT's unconditional embedding)"),
                        ("empty", None, "\"\" padded to model_max_length 512 (the same embedding as empty_24: the "
                                        "padding sits under the attention mask)"),
                        ("dog_barking", None, "end to end: prompt -> tokenizer (512) -> text encoder -> normalize"),
                        ("unicode", None, "end to end, non-ASCII prompt"),
                        ("specials", None, "end to end, special tokens in the text")):
        ids, mask = tok(TEXTS[t], ml or MAXLEN)
        ids, mask = torch.tensor([ids]), torch.tensor([mask])
        y = clap_text_forward(cfg, w, ids, mask)
        params = {"text": TEXTS[t]}
        if ml:
            params["max_length"] = ml
        case("clap.text_encoder", "text_%s_%d" % (t, ml or MAXLEN), "clap-a", params, None, {"prompt_embeds": y},
             SRC_TOK + "; then " + SRC_ENC, atol=max(atol_for(cfg, w, ids, mask), 1e-5), rtol=1e-4, note=note)
    g = torch.Generator().manual_seed(5)
    S = 40
    ids = torch.randint(4, len(vocab), (3, S), generator=g)
    lens = [S, 23, 2]
    mask = torch.zeros(3, S, dtype=torch.int64)
    for b, n in enumerate(lens):
        mask[b, :n] = 1
        ids[b, 0] = 0
        ids[b, n - 1] = 2
        ids[b, n:] = PAD_ID
    ids[0, 7] = PAD_ID  # a pad id inside the attended part: position padding_idx, still attended
    y = clap_text_forward(cfg, w, ids, mask)
    case("clap.text_encoder", "ids_mask_b3", "clap-a", {}, {"input_ids": ids, "attention_mask": mask},
         {"prompt_embeds": y}, SRC_ENC, atol=max(atol_for(cfg, w, ids, mask), 1e-5), rtol=1e-4,
         note="random input_ids, batch 3, unpadded lengths 40 / 23 / 2 (pads after, mask 0 there; row 0 has a "
              "pad id at position 7 under mask 1)")
    ids = torch.randint(0, len(vocab), (2, 17), generator=g)
    y = clap_text_forward(cfg, w, ids, None)
    case("clap.text_encoder", "ids_nomask_b2", "clap-a", {}, {"input_ids": ids}, {"prompt_embeds": y}, SRC_ENC,
         atol=max(atol_for(cfg, w, ids, None), 1e-5), rtol=1e-4,
         note="random input_ids (any id, pads included), no attention_mask: transformers' default of all ones")
    print("vocab", len(vocab), "merges", len(merges))
    for t in ("dog_barking", "contractions", "unicode", "specials", "whitespace"):
        print(t, tok.tokenize(TEXTS[t]))


if __name__ == "__main__":
    main()
