#!/usr/bin/python3
"""Random-weight LLaMA in Hugging Face layout, and its conversion to GGUF for llama.cpp.

  to_gguf.py gen  DIR --dtype f32|f16 [--layers 2] [--seed 1]
      DIR/config.json + DIR/model.safetensors (HF names and layout), LLaMA-7B layer dims
      (hidden 4096, 32 heads, FFN 11008, vocab 32000), uniform random weights.
  to_gguf.py convert DIR OUT.gguf
      What llama.cpp's convert_hf_to_gguf.py does for LlamaForCausalLM, for these tensors:
      GGUF names (token_embd, blk.N.attn_q, ...), llama.* metadata, 2-D weights in the
      safetensors' dtype and 1-D norms in F32, and Q/K rows permuted from HF's rotate_half
      RoPE (pairs (i, i + d/2)) to GGML's RoPE mode 0 (pairs (2i, 2i + 1)):
      w.reshape(n_head, 2, d/2, H).swapaxes(1, 2).reshape(H, H)  (LlamaModel.permute).
      Tokenizer: tokenizer.ggml.model = "none" + llama.vocab_size (llama.cpp adds dummy
      tokens; only token ids are fed).

Needs numpy and llama.cpp's gguf-py (bench/llamacpp/.deps/src/gguf-py, from setup.sh).
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".deps", "src", "gguf-py"))

H, NH, I, V = 4096, 32, 11008, 32000


def tensors(layers):
    """(name, shape, scale, offset) in file order; norms are 1 + noise."""
    out = [("model.embed_tokens.weight", (V, H), 0.1, 0.0),
           ("lm_head.weight", (V, H), 0.05, 0.0),
           ("model.norm.weight", (H,), 0.2, 1.0)]
    for l in range(layers):
        p = f"model.layers.{l}."
        for m, shp in (("self_attn.q_proj", (H, H)), ("self_attn.k_proj", (H, H)),
                       ("self_attn.v_proj", (H, H)), ("self_attn.o_proj", (H, H)),
                       ("mlp.gate_proj", (I, H)), ("mlp.up_proj", (I, H)), ("mlp.down_proj", (H, I))):
            out.append((p + m + ".weight", shp, 0.03, 0.0))
        out.append((p + "input_layernorm.weight", (H,), 0.2, 1.0))
        out.append((p + "post_attention_layernorm.weight", (H,), 0.2, 1.0))
    return out


def gen(d, dtype, layers, seed):
    os.makedirs(d, exist_ok=True)
    npdt = np.float32 if dtype == "f32" else np.float16
    stname = "F32" if dtype == "f32" else "F16"
    es = np.dtype(npdt).itemsize
    ts = tensors(layers)
    hdr, off = {}, 0
    for name, shp, _, _ in ts:
        n = int(np.prod(shp)) * es
        hdr[name] = {"dtype": stname, "shape": list(shp), "data_offsets": [off, off + n]}
        off += n
    hj = json.dumps(hdr).encode()
    hj += b" " * (-len(hj) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(len(hj).to_bytes(8, "little"))
        f.write(hj)
        for k, (name, shp, scale, base) in enumerate(ts):
            rng = np.random.default_rng([seed, k])
            a = (rng.random(shp, dtype=np.float32) - 0.5) * scale + base
            f.write(a.astype(npdt).tobytes())
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
           "intermediate_size": I, "num_attention_heads": NH, "num_key_value_heads": NH,
           "num_hidden_layers": layers, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "vocab_size": V,
           "max_position_embeddings": 2048, "torch_dtype": "float32" if dtype == "f32" else "float16"}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


def read_safetensors(path):
    """{name: numpy array (memory-mapped)}"""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        hdr = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        dt = {"F32": np.float32, "F16": np.float16}[e["dtype"]]
        a, b = e["data_offsets"]
        out[name] = mm[8 + n + a:8 + n + b].view(dt).reshape(e["shape"])
    return out


def permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def convert(d, out):
    import gguf
    cfg = json.load(open(os.path.join(d, "config.json")))
    st = read_safetensors(os.path.join(d, "model.safetensors"))
    nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    hd = cfg["hidden_size"] // nh
    f16 = st["lm_head.weight"].dtype == np.float16
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("ngpt-bench-random-llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("none")
    names = {"model.embed_tokens.weight": "token_embd.weight", "lm_head.weight": "output.weight",
             "model.norm.weight": "output_norm.weight"}
    sub = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
           "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
           "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for name, a in st.items():
        if name in names:
            gn = names[name]
        else:
            parts = name.split(".")  # model.layers.N.<a>.<b>.weight | model.layers.N.<norm>.weight
            key = ".".join(parts[3:-1])
            gn = f"blk.{parts[2]}.{sub[key]}.weight"
            if key == "self_attn.q_proj":
                a = permute(a, nh)
            elif key == "self_attn.k_proj":
                a = permute(a, nkv)
        if a.ndim == 1:
            a = a.astype(np.float32)
        w.add_tensor(gn, np.ascontiguousarray(a))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "gen":
        opt = dict(zip(a[2::2], a[3::2]))
        gen(a[1], opt.get("--dtype", "f32"), int(opt.get("--layers", 2)), int(opt.get("--seed", 1)))
    elif len(a) == 3 and a[0] == "convert":
        convert(a[1], a[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
