#!/usr/bin/python3
"""gen_llama_cases.py — our own LLaMA golden cases at sizes the shared set does not show
(stages "llama.logits", "llama.logits_embeds", "llama.generate_greedy"), and the models they run on.

The shared set's llama-a is hidden 64, 4 heads of 16, 2 layers, F32; its STAGES.md says the hidden
sets range over hidden 64..128, 2..4 layers, 2..6 heads, head_dim 16..32, F32 or F16 storage. The
two models written here cover the other ends:

  tests/golden/models/llama-b/  hidden 96, 6 heads of 16, 4 layers, intermediate 256, F16 stored
                                (torch_dtype float16), rms_norm_eps 1e-5
  tests/golden/models/llama-c/  hidden 128, 4 heads of 32, 3 layers, intermediate 352, F16 stored,
                                rms_norm_eps 1e-6

both with the shared tok-a tokenizer files (vocab 1000) copied in, config.json / generation_config.json
as transformers 4.29 writes them (no rope_theta, no num_key_value_heads).

The expected outputs come from a PORT of transformers 4.29's LlamaForCausalLM (NExT-GPT's copy,
NExT-GPT-Lagacy/code/model/modeling_llama.py): LlamaRMSNorm (float32 variance, x * rsqrt(var + eps),
weight * x), LlamaRotaryEmbedding (inv_freq = 1 / 10000^(arange(0, d, 2) / d), cos/sin of
cat(freqs, freqs) cached in float32), rotate_half, attention q k^T / sqrt(d) + the causal mask of
finfo.min, float32 softmax, LlamaMLP down(silu(gate(x)) * up(x)), untied lm_head — not transformers
itself, which is not installed here. The port must first reproduce every shared llama-a case
(logits, logits_embeds, generate_greedy) within 2e-5 before anything is written. F16-stored weights
are widened to float32 exactly; greedy decoding runs with full recomputation at every step (the
shared cases say KV-cache decoding equals it) and every step's top-2 margin is checked >= 0.02, as
the shared cases guarantee. Tolerances: the shared set's atol 1e-4 / rtol 1e-3.

forward() also takes a LoRA table (linear(): PEFT 0.3.0's unmerged eval form), which
tools/gen_lora_cases.py uses for the "llama.lora" cases; without one it computes what it always did.

Run with Debian's python3 (torch 1.13, numpy):   /usr/bin/python3 tools/gen_llama_cases.py
Tests never run this script; it rewrites the same bytes each time (fixed seeds).
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "golden")
OUT = os.path.join(REPO, "tests", "golden")
sys.path.insert(0, SHARED)
from check import load_safetensors, save_safetensors  # noqa: E402

SOURCE = ("tools/gen_llama_cases.py: torch " + torch.__version__ + " port of transformers 4.29 "
          "LlamaForCausalLM (NExT-GPT-Lagacy/code/model/modeling_llama.py), CPU fp32, F16 weights widened "
          "exactly; greedy by full recomputation")

MODELS = {
    "llama-b": dict(hidden_size=96, num_attention_heads=6, num_hidden_layers=4, intermediate_size=256,
                    rms_norm_eps=1e-05, seed=20261128),
    "llama-c": dict(hidden_size=128, num_attention_heads=4, num_hidden_layers=3, intermediate_size=352,
                    rms_norm_eps=1e-06, seed=20261129),
}
VOCAB = 1000


def rms_norm(x, w, eps):
    var = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def linear(h, w, name, lora=None):
    """h W^T for the weight `name`; where `lora` (weight name -> (A [r, in], B [out, r], scaling)) has
    it, plus PEFT 0.3.0's unmerged eval term: result += lora_B(lora_A(x)) * scaling."""
    y = h @ w[name].T
    if lora and name in lora:
        a, b, s = lora[name]
        y = y + (h @ a.T) @ b.T * s
    return y


def forward(w, cfg, embeds, lora=None):
    """hidden (final RMSNorm output) and logits for embeds [n, hidden], positions 0..n-1; `lora` as
    linear() takes it (None: plain LLaMA)."""
    n, H = embeds.shape
    nh = cfg["num_attention_heads"]
    d = H // nh
    eps = cfg["rms_norm_eps"]
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2).float().to(torch.float32) / d))
    t = torch.arange(cfg["max_position_embeddings"], dtype=inv_freq.dtype)
    freqs = torch.einsum("i,j->ij", t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:n], emb.sin()[:n]
    mask = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)
    x = embeds
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = linear(h, w, p + "self_attn.q_proj.weight", lora).view(n, nh, d).transpose(0, 1)
        k = linear(h, w, p + "self_attn.k_proj.weight", lora).view(n, nh, d).transpose(0, 1)
        v = linear(h, w, p + "self_attn.v_proj.weight", lora).view(n, nh, d).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = q @ k.transpose(1, 2) / (d ** 0.5) + mask
        a = torch.softmax(a, dim=-1, dtype=torch.float32)
        o = (a @ v).transpose(0, 1).reshape(n, H)
        x = x + linear(o, w, p + "self_attn.o_proj.weight", lora)
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
    hidden = rms_norm(x, w["model.norm.weight"], eps)
    return hidden, hidden @ w["lm_head.weight"].T


def greedy(w, cfg, embeds, max_new, stop_ids):
    """ids and hidden rows as the stage defines them; None when a step's top-2 margin is < 0.02."""
    ids, rows = [], []
    x = embeds
    for _ in range(max_new):
        hidden, logits = forward(w, cfg, x)
        top = torch.topk(logits[-1], 2)
        if float(top.values[0] - top.values[1]) < 0.02:
            return None
        t = int(torch.argmax(logits[-1]))
        ids.append(t)
        rows.append(hidden[-1])
        if t in stop_ids:
            break
        x = torch.cat((x, w["model.embed_tokens.weight"][t][None]), 0)
    return np.array(ids, np.int32), torch.stack(rows).numpy()


def load_model(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    st, _ = load_safetensors(os.path.join(folder, "model.safetensors"))
    return cfg, {k: torch.from_numpy(v.astype(np.float32)) for k, v in st.items()}


def check_port():
    """The port against every shared llama-a case: the evidence that it computes what upstream does."""
    cfg, w = load_model(os.path.join(SHARED, "models", "llama-a"))
    worst = 0.0
    for stage in ("llama.logits", "llama.logits_embeds", "llama.generate_greedy"):
        root = os.path.join(SHARED, "llm", stage)
        for c in sorted(os.listdir(root)):
            case = json.load(open(os.path.join(root, c, "case.json")))
            if not case["model"].endswith("llama-a"):
                continue
            inp, _ = load_safetensors(os.path.join(root, c, "inputs.safetensors"))
            exp, _ = load_safetensors(os.path.join(root, c, "expected.safetensors"))
            e = (torch.from_numpy(inp["embeds"]) if "embeds" in inp
                 else w["model.embed_tokens.weight"][torch.from_numpy(inp["ids"].astype(np.int64))])
            with torch.no_grad():
                if stage == "llama.generate_greedy":
                    p = case["params"]
                    ids, hid = greedy(w, cfg, e, p["max_new_tokens"], set(p["stop_ids"]))
                    assert (ids == exp["ids"]).all(), (c, ids, exp["ids"])
                    got = {"hidden": hid}
                else:
                    hidden, logits = forward(w, cfg, e)
                    got = {"hidden": hidden.numpy(), "logits": logits.numpy()}
            for k, v in got.items():
                err = float(np.abs(v - exp[k]).max())
                assert err < 2e-5, (stage, c, k, err)
                worst = max(worst, err)
    print("port reproduces the shared llama-a cases: worst |diff| %.2e" % worst)


def make_model(name, m):
    """Random weights in the shared models' style: projections N(0, 1.5^2 / fan_in), norm scales
    1 + N(0, 0.2^2), embeddings N(0, 0.5^2), lm_head N(0, 0.3^2); stored F16."""
    g = torch.Generator().manual_seed(m["seed"])
    H, F, L = m["hidden_size"], m["intermediate_size"], m["num_hidden_layers"]

    def rn(*shape, std):
        return torch.randn(*shape, generator=g) * std

    w = {"model.embed_tokens.weight": rn(VOCAB, H, std=0.5)}
    for i in range(L):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = 1 + rn(H, std=0.2)
        for proj in "qkv":
            w[p + "self_attn.%s_proj.weight" % proj] = rn(H, H, std=1.5 / H ** 0.5)
        w[p + "self_attn.o_proj.weight"] = rn(H, H, std=1.0 / H ** 0.5)
        w[p + "post_attention_layernorm.weight"] = 1 + rn(H, std=0.2)
        w[p + "mlp.gate_proj.weight"] = rn(F, H, std=1.0 / H ** 0.5)
        w[p + "mlp.up_proj.weight"] = rn(F, H, std=1.0 / H ** 0.5)
        w[p + "mlp.down_proj.weight"] = rn(H, F, std=1.0 / F ** 0.5)
    w["model.norm.weight"] = 1 + rn(H, std=0.2)
    w["lm_head.weight"] = rn(VOCAB, H, std=0.3)
    w16 = {k: v.to(torch.float16).numpy() for k, v in sorted(w.items())}
    cfg = {
        "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
        "hidden_size": H, "initializer_range": 0.02, "intermediate_size": F, "max_position_embeddings": 2048,
        "model_type": "llama", "num_attention_heads": m["num_attention_heads"], "num_hidden_layers": L,
        "pad_token_id": 0, "rms_norm_eps": m["rms_norm_eps"], "tie_word_embeddings": False,
        "torch_dtype": "float16", "transformers_version": "4.29.2", "use_cache": True, "vocab_size": VOCAB,
    }
    d = os.path.join(OUT, "models", name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    tok = os.path.join(SHARED, "models", "tok-a")
    for f in sorted(os.listdir(tok)):
        shutil.copyfile(os.path.join(tok, f), os.path.join(d, f))
    shutil.copyfile(os.path.join(SHARED, "models", "llama-a", "generation_config.json"),
                    os.path.join(d, "generation_config.json"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    save_safetensors(os.path.join(d, "model.safetensors"), w16)
    return cfg, {k: torch.from_numpy(v.astype(np.float32)) for k, v in w16.items()}


def write_case(stage, name, model, params, inputs, expected, note, source=SOURCE):
    d = os.path.join(OUT, "llm", stage, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    save_safetensors(os.path.join(d, "inputs.safetensors"), inputs)
    save_safetensors(os.path.join(d, "expected.safetensors"), expected)
    case = {"stage": stage, "model": "../../../models/" + model, "params": params,
            "atol": 1e-4, "rtol": 1e-3, "source": source, "note": note}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    print(stage, name, {k: v.shape for k, v in expected.items()})


def main():
    torch.set_num_threads(1)
    with torch.no_grad():
        check_port()
        for name, m in MODELS.items():
            cfg, w = make_model(name, m)
            E = w["model.embed_tokens.weight"]
            rng = np.random.default_rng(m["seed"])
            # logits: a long prompt (past 64 positions: RoPE angles of every size), then a single BOS
            for tag, n in (("long", 77), ("single_bos", 1)):
                ids = np.concatenate(([1], rng.integers(3, VOCAB, n - 1))).astype(np.int32)
                hidden, logits = forward(w, cfg, E[torch.from_numpy(ids.astype(np.int64))])
                write_case("llama.logits", "%s_%s" % (name, tag), name, {}, {"ids": ids},
                           {"logits": logits.numpy(), "hidden": hidden.numpy()},
                           "%d ids: BOS then uniform random ids 3..999" % n)
            # logits_embeds: embedding rows with soft rows of other scales spliced in
            ids = np.concatenate(([1], rng.integers(3, VOCAB, 11))).astype(np.int64)
            emb = E[torch.from_numpy(ids)].clone()
            emb[4:7] = torch.from_numpy(rng.standard_normal((3, cfg["hidden_size"])).astype(np.float32)) * 3.0
            emb[9] = emb[9] * 0.01
            hidden, logits = forward(w, cfg, emb)
            write_case("llama.logits_embeds", name + "_mixed_scales", name, {},
                       {"embeds": emb.numpy()}, {"logits": logits.numpy(), "hidden": hidden.numpy()},
                       "12 rows: embedding rows, rows 4-6 soft N(0, 9), row 9 an embedding row x 0.01")
            # generate_greedy from ids and from embeds; prompts are drawn until every step's margin holds
            for tag in ("prompt", "from_embeds"):
                for _ in range(50):
                    ids = np.concatenate(([1], rng.integers(3, VOCAB, 14))).astype(np.int32)
                    e = E[torch.from_numpy(ids.astype(np.int64))].clone()
                    if tag == "from_embeds":
                        e[5] = torch.from_numpy(rng.standard_normal(cfg["hidden_size"]).astype(np.float32))
                    stop = [2, int(rng.integers(3, VOCAB))]
                    r = greedy(w, cfg, e, 16, set(stop))
                    if r is not None:
                        break
                else:
                    raise SystemExit("no prompt with top-2 margins >= 0.02 for " + name)
                inputs = {"ids": ids} if tag == "prompt" else {"embeds": e.numpy()}
                write_case("llama.generate_greedy", "%s_%s" % (name, tag), name,
                           {"max_new_tokens": 16, "stop_ids": stop}, inputs, {"ids": r[0], "hidden": r[1]},
                           "15-token prompt (%s); every step's top-2 logit margin >= 0.02" %
                           ("ids" if tag == "prompt" else "embedding rows, row 5 soft N(0, 1)"))


if __name__ == "__main__":
    main()
