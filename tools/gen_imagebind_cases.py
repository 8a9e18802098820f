#!/usr/bin/python3
"""Generate the project's own ImageBind golden cases (tests/golden/vision/imagebind.video/).

Run once with Debian's python3 (python3-torch 1.13.1, the version NExT-GPT pins, and numpy):

    /usr/bin/python3 tools/gen_imagebind_cases.py

What the shared set (../shared/golden/vision/imagebind.*) lacks is the video path: the vision
branch on clip stacks [B, S, 3, T, 224, 224] and the mean over the S clips. ImageBind itself is
not installed here, so its vision branch is ported below with torch modules, following
facebookresearch/ImageBind (imagebind/models/imagebind_model.py, multimodal_preprocessors.py,
transformer.py, helpers.py) as NExT-GPT's copy runs it:

  PadIm2Video(repeat, ntimes=2) -> Conv3d(k = s = kernel_size, no bias) -> flatten(2).transpose(1, 2)
  -> cat(cls_token) -> + pos_embed -> LayerNorm(eps 1e-6) -> blocks (x += MHA(LN1 x); x += MLP(LN2 x),
  nn.MultiheadAttention over (L, B, D) with packed in_proj, MLP fc1 -> GELU -> fc2, LN eps 1e-6)
  -> head LayerNorm(eps 1e-6) -> token 0 -> Linear(no bias) -> F.normalize(dim=-1)
  -> ImageBindModel.forward: ndim >= 5 inputs reshaped to B*S clips, reshape(B, S, -1).mean(1).

The weights are ../shared/golden/models/imagebind-a (upstream tensor names, loaded with
load_state_dict(strict=True) on the vision tensors, so every name and shape is checked). Pixel
inputs are random and stored as F16 to keep the cases small (the reference runs on the F16
values widened to F32, exactly what the C side reads). The tolerance follows the shared set's
rule (STAGES.md): the same code in float64, atol = max|fp32 - fp64| x 8 rounded up to 1/2/5 x
10^k, floor 1e-6; rtol 1e-4. Files follow shared/golden/FORMAT.md (check.py's save_safetensors).
Tests never run this script.
"""
import json
import math
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


class Vision(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, out = cfg["vision_embed_dim"], cfg["out_embed_dim"]
        k = tuple(cfg["kernel_size"])
        self.pad = PadIm2Video(cfg["video_frames"])
        self.conv = nn.Conv3d(3, D, kernel_size=k, stride=k, bias=False)
        grid = [cfg["video_frames"] // k[0], cfg["image_size"] // k[1], cfg["image_size"] // k[2]]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + int(np.prod(grid)), D))
        self.pre_ln = nn.LayerNorm(D, eps=1e-6)
        self.blocks = nn.ModuleList([Block(D, cfg["vision_num_heads"], cfg["mlp_ratio"], cfg["vision_add_bias_kv"])
                                     for _ in range(cfg["vision_num_blocks"])])
        self.head_norm = nn.LayerNorm(D, eps=1e-6)
        self.head = nn.Linear(D, out, bias=False)

    def load(self, st):
        m = {
            "conv.weight": "modality_preprocessors.vision.rgbt_stem.proj.1.weight",
            "cls_token": "modality_preprocessors.vision.cls_token",
            "pos_embed": "modality_preprocessors.vision.pos_embedding_helper.pos_embed",
            "pre_ln.weight": "modality_trunks.vision.pre_transformer_layer.0.weight",
            "pre_ln.bias": "modality_trunks.vision.pre_transformer_layer.0.bias",
            "head_norm.weight": "modality_heads.vision.0.weight",
            "head_norm.bias": "modality_heads.vision.0.bias",
            "head.weight": "modality_heads.vision.2.weight",
        }
        sd = {}
        for mine, theirs in m.items():
            sd[mine] = torch.from_numpy(st[theirs])
        for name, arr in st.items():
            pre = "modality_trunks.vision.blocks."
            if name.startswith(pre):
                sd["blocks." + name[len(pre):]] = torch.from_numpy(arr)
        self.load_state_dict(sd, strict=True)

    def clip(self, x):
        x = self.conv(self.pad(x))
        x = x.flatten(2).transpose(1, 2)                      # B C (T) H W -> B (T)HW C
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.pos_embed
        x = self.pre_ln(x).permute(1, 0, 2)                   # b l d -> l b d
        for blk in self.blocks:
            x = blk(x)
        x = x.permute(1, 0, 2)                                # l b d -> b l d
        x = self.head(self.head_norm(x)[:, 0, ...])           # LN -> SelectElement(0) -> Linear
        return F.normalize(x, dim=-1, p=2)

    def forward(self, v):  # ImageBindModel.forward for the vision key
        reduce_list = v.ndim >= 5
        if reduce_list:
            B, S = v.shape[:2]
            v = v.reshape(B * S, *v.shape[2:])
        v = self.clip(v)
        if reduce_list:
            v = v.reshape(B, S, -1).mean(dim=1)
        return v


def round_tol(x, floor):
    x = max(x, floor)
    e = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10.0 ** e >= x:
            return float("%.0e" % (m * 10.0 ** e))
    return x


def main():
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    st, _ = load_safetensors(os.path.join(MODEL, "model.safetensors"))
    st = {k: v for k, v in st.items() if ".vision." in k}
    model = Vision(cfg).eval()
    model.load(st)
    model64 = Vision(cfg).double().eval()
    model64.load({k: v.astype(np.float64) for k, v in st.items()})
    # the port must reproduce the shared (upstream-produced) imagebind.vision cases first
    shared_cases = os.path.join(SHARED, "vision", "imagebind.vision")
    for c in sorted(os.listdir(shared_cases)):
        inp, _ = load_safetensors(os.path.join(shared_cases, c, "inputs.safetensors"))
        exp, _ = load_safetensors(os.path.join(shared_cases, c, "expected.safetensors"))
        with torch.no_grad():
            got = model(torch.from_numpy(inp["pixels"].astype(np.float32))).numpy()
        err = float(np.abs(got - exp["embedding"]).max())
        assert err < 1e-6, (c, err)
        print("shared imagebind.vision/%s: port max |diff| %.2e" % (c, err))
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
        x = px16.astype(np.float32)
        with torch.no_grad():
            y32 = model(torch.from_numpy(x)).numpy()
            y64 = model64(torch.from_numpy(x.astype(np.float64))).numpy()
        atol = round_tol(float(np.abs(y32.astype(np.float64) - y64).max()) * 8, 1e-6)
        d = os.path.join(OUT, name)
        os.makedirs(d)
        save_safetensors(os.path.join(d, "inputs.safetensors"), {"pixels": px16})
        save_safetensors(os.path.join(d, "expected.safetensors"), {"embedding": y32.astype(np.float32)})
        case = {
            "stage": "imagebind.video",
            "model": "../../../../../../shared/golden/models/imagebind-a",
            "params": {},
            "atol": atol,
            "rtol": 1e-4,
            "source": SOURCE,
            "note": "pixels F16 %s (random normal x 1.2); %s" % (list(shape), note),
        }
        with open(os.path.join(d, "case.json"), "w") as f:
            json.dump(case, f, indent=2)
            f.write("\n")
        print(name, y32.shape, "atol", atol)


if __name__ == "__main__":
    main()
