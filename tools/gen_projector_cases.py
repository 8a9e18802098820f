#!/usr/bin/python3
"""gen_projector_cases.py — our own golden cases for the projector stages on the NExT-GPT delta
itself (tests/golden/vision/projector.{input,output}/delta_*), the route the shared cases (which
use the projector-a folder) do not cover: sizes derived from the delta's tensor shapes.

The model is ../shared/golden/models/nextgpt-delta-a (a tiny NExT-GPT delta: projector width
d_model 16, 4 + 4 layers, dim_feedforward 64, the real output widths 768 / 512 / 1024, llm hidden
64, llama_proj 1024 -> 64, F16 tensors). TextFcLayer below is NExT-GPT-Lagacy/code/model/layers.py
(commit 60d618b) in mode "transformer": its __init__ with the hard-coded sizes (hidden_dim 512,
nhead 4, 4 + 4 layers, dim_feedforward 2048) made parameters, and its forward copied line by line;
nn.Transformer is torch 1.13's own. The weights are loaded with load_state_dict(strict=True) from
delta.safetensors (read here without any library: F16 widened exactly to float32/float64).
input_embs are the delta's embed_tokens rows of the signal tokens ([IMG0..3], [AUD0..7],
[VID0..23], ids from added_tokens.json), as NExT-GPT looks them up; hidden are random.

Other sizes: tests/golden/models/projector-b (config.json in projector-a's format: llm hidden 96,
llama_proj 48 -> 96, output projectors d_model 24, nhead 2, 1 + 2 layers, dim_feedforward 40, outputs
77 x 40 / 77 x 56 / 1 x 20; random F32 weights) with projector.output cases for each modality and a
projector.input case (tests/golden/vision/projector.*/projector-b_*). There the layer is sized by the
config (build_cfg), as the C side reads it; that route first reproduces every shared projector.output /
projector.input case (projector-a) within 1e-6.

Tolerance: as the shared cases: the same code run in float64, atol = 8 x max |fp32 - fp64| rounded
up to 1/2/5 x 10^k (floor 1e-6), rtol 1e-4. Each fp32 run is done twice and must agree
(Debian's torch 1.13 occasionally returned garbage on a first call).

Run: /usr/bin/python3 tools/gen_projector_cases.py   (from the repository root)
"""
import json, math, os, struct, sys
import numpy as np
import torch
from torch import nn
from golden_st import round_tol, write_st

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DELTA = os.path.join(REPO, "..", "shared", "golden", "models", "nextgpt-delta-a")
OUT = os.path.join(REPO, "tests", "golden", "vision")
# case folder tests/golden/vision/<stage>/<case>/ -> five ../ reach the repository root, six its parent
MODEL_REL = "../../../../../../shared/golden/models/nextgpt-delta-a"
SOURCE = ("port of NExT-GPT@60d618b NExT-GPT-Lagacy/code/model/layers.py TextFcLayer (mode transformer, "
          "constructor sizes from the delta's shapes, nhead 4) on nextgpt-delta-a/delta.safetensors; "
          "torch 1.13 nn.Transformer CPU fp32 (tools/gen_projector_cases.py)")

ST_DT = {"F16": np.float16, "F32": np.float32, "BF16": None, "I64": np.int64}


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for k, v in hdr.items():
            if k == "__metadata__":
                continue
            a, b = v["data_offsets"]
            f.seek(base + a)
            arr = np.frombuffer(f.read(b - a), dtype=np.dtype(ST_DT[v["dtype"]]).newbyteorder("<"))
            out[k] = arr.reshape(v["shape"]).astype(np.float64)
    return out


class TextFcLayer(nn.Module):
    """layers.py TextFcLayer, mode 'transformer' (sizes parameterised)."""

    def __init__(self, in_dim, out_dim, num_input_tokens, num_output_tokens, hidden_dim, nhead, n_enc, n_dec, dff):
        super().__init__()
        self.num_input_tokens = num_input_tokens
        self.num_output_tokens = num_output_tokens
        self.mode = "transformer"
        self.out_dim = out_dim
        self.fc = nn.Linear(in_dim, hidden_dim)
        self.tfm = nn.Transformer(batch_first=True, norm_first=True,
                                  d_model=hidden_dim, num_encoder_layers=n_enc, num_decoder_layers=n_dec,
                                  dim_feedforward=dff, dropout=0.0, nhead=nhead)
        self.model = nn.Linear(hidden_dim, out_dim)
        self.query_embs = nn.Parameter(torch.randn(1, num_output_tokens, hidden_dim))

    def forward(self, x, input_embs):
        x = x + input_embs
        x = self.fc(x)
        x = self.tfm(x, self.query_embs.repeat(x.shape[0], 1, 1))
        outputs = self.model(x)
        return outputs


KEYS = {"image": ("gen_text_hidden_fcs.0", "IMG", 4), "audio": ("gen_text_hidden_fcs_audio.0", "AUD", 8),
        "video": ("gen_text_hidden_fcs_video.0", "VID", 24)}


def build(W, modality, dtype):
    key = KEYS[modality][0]
    sd = {k[len(key) + 1:]: torch.tensor(v, dtype=dtype) for k, v in W.items() if k.startswith(key + ".")}
    d, in_dim = sd["fc.weight"].shape
    out_dim = sd["model.weight"].shape[0]
    n_out = sd["query_embs"].shape[1]
    dff = sd["tfm.encoder.layers.0.linear1.weight"].shape[0]
    n_enc = len({k.split(".")[3] for k in sd if k.startswith("tfm.encoder.layers.")})
    n_dec = len({k.split(".")[3] for k in sd if k.startswith("tfm.decoder.layers.")})
    m = TextFcLayer(in_dim, out_dim, KEYS[modality][2], n_out, d, 4, n_enc, n_dec, dff).to(dtype)
    m.load_state_dict(sd, strict=True)
    return m.eval()


def write_case(stage, name, model, params, inputs, expected, atol, rtol, note):
    d = os.path.join(OUT, stage, name)
    os.makedirs(d, exist_ok=True)
    write_st(os.path.join(d, "inputs.safetensors"), inputs)
    write_st(os.path.join(d, "expected.safetensors"), expected)
    assert os.path.isdir(os.path.normpath(os.path.join(d, MODEL_REL.rsplit("/", 1)[0]))), "bad relative model path"
    case = {"stage": stage, "model": model, "params": params, "atol": atol, "rtol": rtol, "source": SOURCE,
            "note": note}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    print(d, {k: v.shape for k, v in expected.items()}, "atol", atol)


def gen_output(W, tok, modality, B, seed, name, model):
    key, sig, n_in = KEYS[modality]
    rng = np.random.default_rng(seed)
    llm = W[key + ".fc.weight"].shape[1]
    hidden = rng.standard_normal((B, n_in, llm)).astype(np.float32)
    ids = [tok[f"[{sig}{i}]"] for i in range(n_in)]
    emb = W["llama_model.base_model.model.model.embed_tokens.weight"][ids].astype(np.float32)
    input_embs = np.broadcast_to(emb, (B, n_in, llm)).copy()
    with torch.no_grad():
        outs = []
        for _ in range(2):
            m32 = build(W, modality, torch.float32)
            outs.append(m32(torch.from_numpy(hidden), torch.from_numpy(input_embs)).numpy())
        assert np.array_equal(outs[0], outs[1]), "two fp32 runs disagree"
        m64 = build(W, modality, torch.float64)
        ref = m64(torch.from_numpy(hidden).double(), torch.from_numpy(input_embs).double()).numpy()
    err = float(np.abs(outs[0] - ref).max())
    write_case("projector.output", name, model, {"modality": modality},
               {"hidden": hidden, "input_embs": input_embs}, {"conditioning": outs[0]},
               round_tol(8 * err, 1e-6), 1e-4,
               f"delta route: B={B}; input_embs = embed_tokens rows of [{sig}0..{sig}{n_in - 1}] (ids {ids[0]}..)")


def gen_input(W, n, seed, name, model):
    rng = np.random.default_rng(seed)
    w, b = W["llama_proj.weight"], W["llama_proj.bias"]
    feat = rng.standard_normal((n, w.shape[1])).astype(np.float32)
    feat /= np.linalg.norm(feat, axis=1, keepdims=True)  # ImageBind outputs are L2-normalised
    with torch.no_grad():
        lin = nn.Linear(w.shape[1], w.shape[0])
        lin.load_state_dict({"weight": torch.tensor(w, dtype=torch.float32), "bias": torch.tensor(b, dtype=torch.float32)})
        y = lin(torch.from_numpy(feat)).numpy()
        y2 = lin(torch.from_numpy(feat)).numpy()
        assert np.array_equal(y, y2)
        ref = feat.astype(np.float64) @ w.T + b
    err = float(np.abs(y - ref).max())
    write_case("projector.input", name, model, {}, {"feature": feat}, {"embeds": y}, round_tol(8 * err, 1e-6), 1e-5,
               "delta route: llama_proj of the NExT-GPT delta (F16 widened), L2-normalised random features")


PROJ_A = os.path.join(REPO, "..", "shared", "golden", "models", "projector-a")
SHARED_CASES = os.path.join(REPO, "..", "shared", "golden", "vision")
SOURCE_B = ("port of NExT-GPT@60d618b NExT-GPT-Lagacy/code/model/layers.py TextFcLayer (mode transformer, "
            "sizes from config.json) and llama_proj on projector-b; torch 1.13 nn.Transformer CPU fp32, "
            "fp64 for the tolerance (tools/gen_projector_cases.py)")
CFG_B = {
    "model_type": "nextgpt_projectors",
    "llm_hidden_size": 96,
    "input_projector": {"key": "llama_proj", "in_dim": 48, "out_dim": 96, "bias": True},
    "output_projectors": {
        m: {"key": KEYS[m][0], "mode": "transformer", "in_dim": 96, "out_dim": out, "num_input_tokens": KEYS[m][2],
            "num_output_tokens": n_out, "d_model": 24, "nhead": 2, "num_encoder_layers": 1,
            "num_decoder_layers": 2, "dim_feedforward": 40, "activation": "relu", "norm_first": True,
            "layer_norm_eps": 1e-05}
        for m, out, n_out in (("image", 40, 77), ("video", 56, 77), ("audio", 20, 1))},
    "note": "projector-b: other sizes than projector-a (llm hidden 96, input 48 -> 96; output projectors "
            "d_model 24, nhead 2, 1 + 2 layers, dim_feedforward 40); written by tools/gen_projector_cases.py",
}


def build_cfg(W, pc, dtype):
    """A TextFcLayer sized by a projector-* config entry (what the C side reads)."""
    key = pc["key"]
    sd = {k[len(key) + 1:]: torch.tensor(v, dtype=dtype) for k, v in W.items() if k.startswith(key + ".")}
    m = TextFcLayer(pc["in_dim"], pc["out_dim"], pc["num_input_tokens"], pc["num_output_tokens"], pc["d_model"],
                    pc["nhead"], pc["num_encoder_layers"], pc["num_decoder_layers"], pc["dim_feedforward"]).to(dtype)
    m.load_state_dict(sd, strict=True)
    return m.eval()


def check_shared():
    """The config-sized port against every shared projector.output / projector.input case (projector-a)."""
    W = read_st(os.path.join(PROJ_A, "model.safetensors"))
    cfg = json.load(open(os.path.join(PROJ_A, "config.json")))
    for stage in ("projector.output", "projector.input"):
        root = os.path.join(SHARED_CASES, stage)
        for c in sorted(os.listdir(root)):
            case = json.load(open(os.path.join(root, c, "case.json")))
            inp, exp = read_st(os.path.join(root, c, "inputs.safetensors")), \
                read_st(os.path.join(root, c, "expected.safetensors"))
            with torch.no_grad():
                if stage == "projector.output":
                    m = build_cfg(W, cfg["output_projectors"][case["params"]["modality"]], torch.float32)
                    got = m(torch.tensor(inp["hidden"], dtype=torch.float32),
                            torch.tensor(inp["input_embs"], dtype=torch.float32)).numpy()
                    err = float(np.abs(got - exp["conditioning"]).max())
                else:
                    got = inp["feature"].astype(np.float32) @ W["llama_proj.weight"].astype(np.float32).T + \
                        W["llama_proj.bias"].astype(np.float32)
                    err = float(np.abs(got - exp["embeds"]).max())
            assert err < 1e-6, (stage, c, err)
            print("shared %s/%s: port max |diff| %.2e" % (stage, c, err))


def make_model_b():
    """Random weights in projector-a's style (norm scales 1 + N(0, 0.2^2), biases N(0, 0.1^2), matrices
    N(0, 1 / fan_in), query_embs N(0, 1)), F32; returns the weights as float64 arrays."""
    g = torch.Generator().manual_seed(20261128)
    shapes = {"llama_proj.weight": (96, 48), "llama_proj.bias": (96,)}
    for m, pc in CFG_B["output_projectors"].items():
        ref = TextFcLayer(pc["in_dim"], pc["out_dim"], pc["num_input_tokens"], pc["num_output_tokens"],
                          pc["d_model"], pc["nhead"], pc["num_encoder_layers"], pc["num_decoder_layers"],
                          pc["dim_feedforward"])
        for k, v in ref.state_dict().items():
            shapes[pc["key"] + "." + k] = tuple(v.shape)
    W = {}
    for k in sorted(shapes):
        r = torch.randn(*shapes[k], generator=g, dtype=torch.float64)
        if k.endswith("query_embs"):
            t = r
        elif ".norm" in k and k.endswith("weight"):
            t = 1 + 0.2 * r
        elif k.endswith("bias"):
            t = 0.1 * r
        else:
            t = r / math.sqrt(shapes[k][1])
        W[k] = t.to(torch.float32).double().numpy()
    d = os.path.join(REPO, "tests", "golden", "models", "projector-b")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CFG_B, f, indent=1)
        f.write("\n")
    write_st(os.path.join(d, "model.safetensors"), {k: v.astype(np.float32) for k, v in W.items()})
    return W


def gen_b(W):
    """projector.output for each modality and projector.input on projector-b."""
    global SOURCE
    SOURCE = SOURCE_B
    model = "../../../models/projector-b"
    for modality, B, seed in (("image", 2, 21), ("video", 1, 22), ("audio", 3, 23)):
        pc = CFG_B["output_projectors"][modality]
        rng = np.random.default_rng(seed)
        shape = (B, pc["num_input_tokens"], CFG_B["llm_hidden_size"])
        hidden = rng.standard_normal(shape).astype(np.float32)
        input_embs = (rng.standard_normal(shape) * 0.3).astype(np.float32)
        with torch.no_grad():
            y = build_cfg(W, pc, torch.float32)(torch.from_numpy(hidden), torch.from_numpy(input_embs)).numpy()
            ref = build_cfg(W, pc, torch.float64)(torch.from_numpy(hidden).double(),
                                                  torch.from_numpy(input_embs).double()).numpy()
        write_case("projector.output", "projector-b_%s_b%d" % (modality, B), model, {"modality": modality},
                   {"hidden": hidden, "input_embs": input_embs}, {"conditioning": y},
                   round_tol(8 * float(np.abs(y - ref).max()), 1e-6), 1e-4,
                   "projector-b (d_model 24, nhead 2, 1 + 2 layers): B=%d; hidden N(0, 1), input_embs N(0, 0.09)" % B)
    rng = np.random.default_rng(24)
    feat = rng.standard_normal((3, 48)).astype(np.float32)
    feat /= np.linalg.norm(feat, axis=1, keepdims=True)
    w32, b32 = W["llama_proj.weight"].astype(np.float32), W["llama_proj.bias"].astype(np.float32)
    with torch.no_grad():
        y = torch.nn.functional.linear(torch.from_numpy(feat), torch.from_numpy(w32), torch.from_numpy(b32)).numpy()
    ref = feat.astype(np.float64) @ W["llama_proj.weight"].T + W["llama_proj.bias"]
    write_case("projector.input", "projector-b_n3", model, {}, {"feature": feat}, {"embeds": y},
               round_tol(8 * float(np.abs(y - ref).max()), 1e-6), 1e-5,
               "projector-b: llama_proj 48 -> 96 on 3 L2-normalised random features")


def main():
    torch.set_num_threads(1)  # one summation order on every machine: reruns rewrite the same bytes
    W = read_st(os.path.join(DELTA, "delta.safetensors"))
    with open(os.path.join(DELTA, "added_tokens.json")) as f:
        tok = json.load(f)
    folder = MODEL_REL
    pt = MODEL_REL + "/pytorch_model.pt"
    st = MODEL_REL + "/delta.safetensors"
    gen_output(W, tok, "image", 1, 11, "delta_image_b1", folder)
    gen_output(W, tok, "audio", 2, 12, "delta_audio_b2_pt", pt)
    gen_output(W, tok, "video", 1, 13, "delta_video_b1_st", st)
    gen_input(W, 2, 15, "delta_n2_pt", pt)
    check_shared()
    gen_b(make_model_b())


if __name__ == "__main__":
    main()
