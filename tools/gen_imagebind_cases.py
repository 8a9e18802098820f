#!/usr/bin/python3
"""Generate the project's own ImageBind golden cases (tests/golden/vision/imagebind.*) and the
imagebind-b model they partly run on.

Run once with Debian's python3 (python3-torch 1.13.1, the version NExT-GPT pins, and numpy):

    /usr/bin/python3 tools/gen_imagebind_cases.py

What the shared set (../shared/golden/vision/imagebind.*) lacks:
  - the video path: the vision branch on clip stacks [B, S, 3, T, 224, 224] and the mean over the S
    clips (imagebind.video on the shared imagebind-a);
  - other sizes (its STAGES.md: "other sets use other sizes"): tests/golden/models/imagebind-b, vision
    96 wide, 3 blocks of 6 heads (head dim 16), audio 64 wide, 3 blocks of 2 heads (head dim 32),
    out_embed_dim 40, F16-stored, with imagebind.vision, imagebind.audio and imagebind.video cases.
ImageBind itself is not installed here, so its two branches are ported below with torch modules,
following facebookresearch/ImageBind (imagebind/models/imagebind_model.py,
multimodal_preprocessors.py, transformer.py, helpers.py) as NExT-GPT's copy runs it:

  vision: PadIm2Video(repeat, ntimes=2) -> Conv3d(k = s = kernel_size, no bias)
  audio:  Conv2d(1 -> D, audio_kernel_size, stride audio_stride, no bias) -> LayerNorm(eps 1e-5)
  then flatten(2).transpose(1, 2) (audio: the LayerNorm comes here, PatchEmbedGeneric's norm_layer)
  -> cat(cls_token) -> + pos_embed -> [vision: LayerNorm(eps 1e-6)] -> blocks (x += MHA(LN1 x);
  x += MLP(LN2 x), nn.MultiheadAttention over (L, B, D) with packed in_proj and, for audio,
  add_bias_kv; MLP fc1 -> GELU -> fc2, LN eps 1e-6) -> head LayerNorm(eps 1e-6) -> token 0
  -> Linear(no bias) -> F.normalize(dim=-1) (NExT-GPT's copy: no audio logit scale)
  -> ImageBindModel.forward: ndim >= 5 inputs reshaped to B*S clips, reshape(B, S, -1).mean(1).

The weights are loaded with load_state_dict(strict=True) per branch, so every name and shape is
checked; the port must reproduce every shared imagebind.vision and imagebind.audio case within 1e-6
first. Inputs are random and stored as F16 to keep the cases small (the reference runs on the F16
values widened to F32, exactly what the C side reads). The tolerance follows the shared set's
rule (STAGES.md): the same code in float64, atol = max|fp32 - fp64| x 8 rounded up to 1/2/5 x
10^k, floor 1e-6; rtol 1e-4. Files follow shared/golden/FORMAT.md (check.py's save_safetensors).
Tests never run this script; it rewrites the same bytes each time (fixed seeds).
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "golden")
MODEL = os.path.join(SHARED, "models", "imagebind-a")
OUT = os.path.join(REPO, "tests", "golden", "vision", "imagebind.video")
sys.path.insert(0, SHARED)
from check import load_safetensors, save_safetensors  # noqa: E402
from golden_st import round_tol  # noqa: E402

SOURCE = ("tools/gen_imagebind_cases.py: torch " + torch.__version__ + " port of facebookresearch/ImageBind's "
          "vision branch (ImageBindModel.forward({'vision': pixels})['vision'], NExT-GPT copy) on imagebind-a")


class PadIm2Video(nn.Module):
    """multimodal_preprocessors.PadIm2Video(pad_type='repeat', ntimes=2, time_dim=2)."""

    def __init__(self, ntimes):
        super().__init__()
        self.ntimes = ntimes

    def forward(self, x):
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.shape[2] == 1:
            new_shape = [1] * len(x.shape)
            new_shape[2] = self.ntimes
            x = x.repeat(new_shape)
        return x


class Block(nn.Module):
    """transformer.BlockWithMasking (no layer scale, drop path identity at inference)."""

    def __init__(self, dim, heads, mlp_ratio, add_bias_kv):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, bias=True, add_bias_kv=add_bias_kv)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(mlp_ratio * dim, dim)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):  # x: (L, B, D), as EinOpsRearrange("b l d -> l b d") leaves it
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=None)[0]
        x = x + self.mlp(self.norm_2(x))
        return x


class Branch(nn.Module):
    """One modality of ImageBindModel: preprocessor, trunk, head, postprocessor (L2 normalise)."""

    def __init__(self, cfg, mod):
        super().__init__()
        self.mod = mod
        D, out = cfg[mod + "_embed_dim"], cfg["out_embed_dim"]
        if mod == "vision":
            k = tuple(cfg["kernel_size"])
            self.pad = PadIm2Video(cfg["video_frames"])
            self.conv = nn.Conv3d(3, D, kernel_size=k, stride=k, bias=False)
            grid = [cfg["video_frames"] // k[0], cfg["image_size"] // k[1], cfg["image_size"] // k[2]]
        else:
            k, st = cfg["audio_kernel_size"], cfg["audio_stride"]
            self.conv = nn.Conv2d(1, D, kernel_size=k, stride=st, bias=False)
            self.stem_norm = nn.LayerNorm(D, eps=cfg.get("audio_stem_layer_norm_eps", 1e-5))
            grid = [(cfg["audio_num_mel_bins"] - k) // st + 1, (cfg["audio_target_len"] - k) // st + 1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + int(np.prod(grid)), D))
        self.pre_ln = nn.LayerNorm(D, eps=1e-6) if cfg[mod + "_pre_transformer_ln"] else None
        self.blocks = nn.ModuleList([Block(D, cfg[mod + "_num_heads"], cfg["mlp_ratio"], cfg[mod + "_add_bias_kv"])
                                     for _ in range(cfg[mod + "_num_blocks"])])
        self.head_norm = nn.LayerNorm(D, eps=1e-6)
        self.head = nn.Linear(D, out, bias=False)

    def names(self):
        """this module's parameter names -> the upstream checkpoint's"""
        mod = self.mod
        pre = "modality_preprocessors.%s." % mod
        m = {
            "conv.weight": pre + ("rgbt_stem.proj.1.weight" if mod == "vision" else "rgbt_stem.proj.weight"),
            "cls_token": pre + "cls_token",
            "pos_embed": pre + "pos_embedding_helper.pos_embed",
            "head_norm.weight": "modality_heads.%s.0.weight" % mod,
            "head_norm.bias": "modality_heads.%s.0.bias" % mod,
            "head.weight": "modality_heads.%s.2.weight" % mod,
        }
        if self.pre_ln is not None:
            m["pre_ln.weight"] = "modality_trunks.%s.pre_transformer_layer.0.weight" % mod
            m["pre_ln.bias"] = "modality_trunks.%s.pre_transformer_layer.0.bias" % mod
        if mod == "audio":
            m["stem_norm.weight"] = pre + "rgbt_stem.norm_layer.weight"
            m["stem_norm.bias"] = pre + "rgbt_stem.norm_layer.bias"
        for name in self.state_dict():
            if name.startswith("blocks."):
                m[name] = "modality_trunks.%s.%s" % (mod, name)
        return m

    def load(self, st):
        self.load_state_dict({mine: torch.from_numpy(st[theirs]) for mine, theirs in self.names().items()},
                             strict=True)

    def clip(self, x):
        if self.mod == "vision":
            x = self.conv(self.pad(x))
            x = x.flatten(2).transpose(1, 2)                  # B C (T) H W -> B (T)HW C
        else:
            x = self.stem_norm(self.conv(x).flatten(2).transpose(1, 2))
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.pos_embed
        if self.pre_ln is not None:
            x = self.pre_ln(x)
        x = x.permute(1, 0, 2)                                # b l d -> l b d
        for blk in self.blocks:
            x = blk(x)
        x = x.permute(1, 0, 2)                                # l b d -> b l d
        x = self.head(self.head_norm(x)[:, 0, ...])           # LN -> SelectElement(0) -> Linear
        return F.normalize(x, dim=-1, p=2)

    def forward(self, v):  # ImageBindModel.forward for this modality's key
        reduce_list = v.ndim >= 5
        if reduce_list:
            B, S = v.shape[:2]
            v = v.reshape(B * S, *v.shape[2:])
        v = self.clip(v)
        if reduce_list:
            v = v.reshape(B, S, -1).mean(dim=1)
        return v


def load_branches(folder):
    """cfg and, per modality stored, the port in float32 and float64 with the folder's weights."""
    cfg = json.load(open(os.path.join(folder, "config.json")))
    st, _ = load_safetensors(os.path.join(folder, "model.safetensors"))
    st = {k: v.astype(np.float32) for k, v in st.items()}
    models = {}
    for mod in cfg["modalities"]:
        m32, m64 = Branch(cfg, mod).eval(), Branch(cfg, mod).double().eval()
        m32.load(st)
        m64.load({k: v.astype(np.float64) for k, v in st.items()})
        models[mod] = (m32, m64)
    return cfg, models


def check_shared(models):
    """The port against every shared (upstream-produced) imagebind.vision / imagebind.audio case."""
    for stage, mod, key in (("imagebind.vision", "vision", "pixels"), ("imagebind.audio", "audio", "fbank")):
        root = os.path.join(SHARED, "vision", stage)
        for c in sorted(os.listdir(root)):
            inp, _ = load_safetensors(os.path.join(root, c, "inputs.safetensors"))
            exp, _ = load_safetensors(os.path.join(root, c, "expected.safetensors"))
            with torch.no_grad():
                got = models[mod][0](torch.from_numpy(inp[key].astype(np.float32))).numpy()
            err = float(np.abs(got - exp["embedding"]).max())
            assert err < 1e-6, (stage, c, err)
            print("shared %s/%s: port max |diff| %.2e" % (stage, c, err))


def write_case(stage, name, model_rel, key, shape, x16, pair, source, note):
    """Runs the float32 and float64 ports on the F16 input and writes the case."""
    x = x16.astype(np.float32)
    with torch.no_grad():
        y32 = pair[0](torch.from_numpy(x)).numpy()
        y64 = pair[1](torch.from_numpy(x.astype(np.float64))).numpy()
    atol = round_tol(float(np.abs(y32.astype(np.float64) - y64).max()) * 8, 1e-6)
    d = os.path.join(REPO, "tests", "golden", "vision", stage, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    save_safetensors(os.path.join(d, "inputs.safetensors"), {key: x16})
    save_safetensors(os.path.join(d, "expected.safetensors"), {"embedding": y32.astype(np.float32)})
    case = {"stage": stage, "model": model_rel, "params": {}, "atol": atol, "rtol": 1e-4,
            "source": source, "note": note}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    print(stage, name, y32.shape, "atol", atol)


CFG_B = {
    "model_type": "imagebind", "modalities": ["vision", "audio"], "out_embed_dim": 40,
    "vision_embed_dim": 96, "vision_num_blocks": 3, "vision_num_heads": 6,
    "audio_embed_dim": 64, "audio_num_blocks": 3, "audio_num_heads": 2,
    "video_frames": 2, "kernel_size": [2, 14, 14], "audio_kernel_size": 16, "audio_stride": 10,
    "audio_num_mel_bins": 128, "audio_target_len": 204, "audio_drop_path": 0.1, "image_size": 224,
    "vision_pre_transformer_ln": True, "vision_add_bias_kv": False,
    "audio_pre_transformer_ln": False, "audio_add_bias_kv": True, "mlp_ratio": 4,
    "layer_norm_eps": 1e-06, "audio_stem_layer_norm_eps": 1e-05, "audio_logit_scale_applied": False,
    "note": "imagebind-b: other sizes than imagebind-a (vision 96 x 3 blocks x 6 heads, audio 64 x 3 x 2 heads, "
            "out 40), F16-stored; written by tools/gen_imagebind_cases.py",
}


def make_model_b():
    """Random weights in imagebind-a's style (norm scales 1 + N(0, 0.2^2), biases, CLS and positions
    N(0, 0.1^2), matrices N(0, 1 / fan_in), the stems 0.6 / sqrt(fan_in)), stored F16, plus the unused
    audio logit scale buffer that imagebind_huge.pth holds."""
    g = torch.Generator().manual_seed(20261128)
    w = {}
    for mod in CFG_B["modalities"]:
        for mine, theirs in Branch(CFG_B, mod).names().items():
            shape = dict(Branch(CFG_B, mod).state_dict().items())[mine].shape
            r = torch.randn(*shape, generator=g)
            if mine.endswith("norm.weight") or ".norm_" in mine and mine.endswith("weight") or \
                    mine in ("pre_ln.weight", "head_norm.weight"):
                t = 1 + 0.2 * r
            elif mine.endswith("bias") or mine in ("cls_token", "pos_embed") or "bias_" in mine:
                t = 0.1 * r
            else:
                fan_in = int(np.prod(shape[1:]))
                t = r * ((0.6 if mine == "conv.weight" else 1.0) / fan_in ** 0.5)
            w[theirs] = t.to(torch.float16).numpy()
    w["modality_postprocessors.audio.1.log_logit_scale"] = np.array(np.log(20.0), np.float16)
    d = os.path.join(REPO, "tests", "golden", "models", "imagebind-b")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CFG_B, f, indent=1)
        f.write("\n")
    save_safetensors(os.path.join(d, "model.safetensors"), w)
    return d


def main():
    torch.set_num_threads(1)
    cfg, models = load_branches(MODEL)
    check_shared(models)
    rng = np.random.default_rng(20261126)
    S = cfg["image_size"]
    cases = {
        # 1 video of 2 clips with 2 distinct frames each (ngpt_video_preprocess's layout per clip)
        "clips2_t2_b1": ((1, 2, 3, 2, S, S), "one item, 2 clips of 2 distinct frames: mean over the clips"),
        # 2 items of 2 single-frame clips (PadIm2Video repeats T = 1 to 2 frames)
        "clips2_t1_b2": ((2, 2, 3, 1, S, S), "two items of 2 single-frame clips (repeated to 2 frames): "
                                             "item-major flattening, mean per item"),
    }
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for name, (shape, note) in cases.items():
        px16 = (rng.standard_normal(shape) * 1.2).astype(np.float16)
        write_case("imagebind.video", name, "../../../../../../shared/golden/models/imagebind-a", "pixels",
                   shape, px16, models["vision"], SOURCE,
                   "pixels F16 %s (random normal x 1.2); %s" % (list(shape), note))
    # imagebind-b: every stage at other sizes
    _, models = load_branches(make_model_b())
    rng = np.random.default_rng(20261128)
    src = SOURCE.replace("vision branch", "vision and audio branches").replace(
        "({'vision': pixels})['vision']", "").replace("imagebind-a", "imagebind-b")
    rel = "../../../models/imagebind-b"
    for stage, mod, key, shape, scale, note in (
            ("imagebind.vision", "vision", "pixels", (2, 3, S, S), 1.2, "two images"),
            ("imagebind.audio", "audio", "fbank", (2, 3, 1, 128, 204), 1.0,
             "two items of 3 clips: each clip L2-normalised (no x20), mean over the clips"),
            ("imagebind.video", "vision", "pixels", (1, 3, 3, 2, S, S), 1.2,
             "one item, 3 clips of 2 distinct frames: mean over the clips")):
        x16 = (rng.standard_normal(shape) * scale).astype(np.float16)
        write_case(stage, "imagebind-b_random", rel, key, shape, x16, models[mod], src,
                   "%s F16 %s (random normal x %g); %s" % (key, list(shape), scale, note))


if __name__ == "__main__":
    main()
