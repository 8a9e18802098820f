#!/usr/bin/python3
"""gen_unet3d_cases.py — our own zeroscope.unet3d golden cases at sizes the shared set does not show,
and the model they run on.

The shared set's zeroscope-a UNet3D is block_out_channels [32, 32, 32, 64] (4 levels: CrossAttnDown
x3 + Down / Up + CrossAttnUp x3), layers_per_block 1, attention_head_dim (the head SIZE) 8,
cross_attention_dim 48, norm_num_groups 32, F32. Its STAGES.md says "read every size from config".
The model written here differs in every size it can:

  tests/golden/models/zeroscope-b/  unet/ block_out_channels [32, 32, 64] (3 levels: CrossAttnDown x2
      + DownBlock3D / UpBlock3D + CrossAttnUp x2; 2 downsamplers), layers_per_block 2 (Zeroscope's
      own value; up blocks 3 resnets), attention_head_dim 16 (transformer_in: 8 heads of 16 = inner
      128 on 32 channels; spatial and temporal transformers 2 heads of 16 at width 32, 4 in the mid
      block at 64), cross_attention_dim 40, norm_num_groups 16
      (the TemporalConvLayers keep their hard-coded 32 groups, transformer_in its default 32),
      norm_eps 1e-6, F16 stored; model_index.json and scheduler/ copied from zeroscope-a (no vae/:
      zeroscope.unet3d loads the unet only).

The expected outputs come from a PORT of diffusers v0.17.0's UNet3DConditionModel.forward (torch
modules mirroring the upstream classes, so that load_state_dict(strict=True) checks every name and
shape against the upstream layout): unet_3d_condition.py (Timesteps(C0, flip_sin_to_cos=True, 0) +
TimestepEmbedding, repeat_interleave of emb / encoder_hidden_states over frames, permute to
[B*F, 4, h, w], conv_in, transformer_in = TransformerTemporalModel(8 heads of attention_head_dim),
down blocks, mid, up blocks with upsample_size forwarded when h or w is not a multiple of
2^num_upsamplers, conv_norm_out, SiLU, conv_out, back to [B, 4, F, h, w]); unet_3d_blocks.py
(CrossAttnDownBlock3D, DownBlock3D, UNetMidBlock3DCrossAttn, CrossAttnUpBlock3D, UpBlock3D with
use_linear_projection=True, out_channels // attention_head_dim heads of attention_head_dim);
resnet.py (ResnetBlock2D "default" time embedding, Downsample2D conv stride 2 pad 1, Upsample2D
nearest x2 or to upsample_size then conv, TemporalConvLayer: 4 x GroupNorm(32) - SiLU - Conv3d
(3,1,1), + identity); transformer_temporal.py (GroupNorm eps 1e-6 over [B, C, F, h, w], tokens
[B*h*w, F, C], Linear proj_in, BasicTransformerBlock with double_self_attention, Linear proj_out,
upstream 0.17's output reshape .reshape(B, h, w, C, F).permute(0, 3, 4, 1, 2) then .reshape(B*F, C,
h, w) kept verbatim (the two (C, F) readings cancel: frame f, channel c lands where it should), + residual); transformer_2d.py (continuous input,
GroupNorm eps 1e-6, Linear proj_in / proj_out); attention.py (BasicTransformerBlock: LayerNorm
eps 1e-5, attn1, attn2, GEGLU feed-forward of 4 x dim); attention_processor.py (AttnProcessor, the
one torch 1.13 gets: head_to_batch_dim, baddbmm scores x dim_head^-0.5, softmax, bmm,
batch_to_head_dim, to_out.0) — not diffusers itself, which is not installed here. As the shared
generator did (audio/STAGES.md), baddbmm(empty, q, k^T, beta=0) is computed as baddbmm(zeros, q, k^T,
beta=1), bitwise the documented result.

The port must first reproduce every shared zeroscope.unet3d case (zeroscope-a) within a fifth of the
case's atol (5e-5 .. 2e-4; the atols are 8 x upstream's own fp32 rounding, and this port in float32
lands 0.8e-5 .. 2.6e-5 from upstream's float32 output, the same distance as upstream's from the
float64 result: two float32 roundings of one computation, not bitwise equal since the reference was
produced on another machine / thread count), and its float64 run must also lie within a fifth of the
atol, before anything is written. Weights are random in zeroscope-a's style
(inspected: norm scales 1 + N(0, 0.2^2), biases N(0, 0.1^2), matrices and convolutions
U(+-1/sqrt(fan_in)), the TemporalConvLayers' conv4 U(+-sqrt(3)/sqrt(fan_in)) since Zeroscope's zero
initialisation would make them inert, conv_out N(0, 0.034^2)) and stored F16 (2.5 M parameters: the F32 file
would be 10 MB), widened to float32 exactly by the port. Inputs are F32, random normal. Tolerances follow the
shared rule (video/STAGES.md -> audio/STAGES.md): the same port run in float64 on the same weights
and inputs, atol = 8 x max |fp32 - fp64| rounded up to 1/2/5 x 10^k, floor 1e-5; rtol 1e-4 as the
shared zeroscope.unet3d cases use.

Run with Debian's python3 (torch 1.13, numpy):   /usr/bin/python3 tools/gen_unet3d_cases.py
Tests never run this script; it rewrites the same bytes each time (fixed seeds, one thread).
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
MODEL_A = os.path.join(SHARED, "models", "zeroscope-a")
STAGE = "zeroscope.unet3d"
sys.path.insert(0, SHARED)
from check import load_safetensors, save_safetensors  # noqa: E402
from golden_st import round_tol  # noqa: E402

SOURCE = ("tools/gen_unet3d_cases.py: torch " + torch.__version__ + " port of huggingface/diffusers v0.17.0 "
          "UNet3DConditionModel(sample, timestep, encoder_hidden_states).sample, CPU fp32, F16 weights widened "
          "exactly; checked against the shared zeroscope-a cases")


# ---------------------------------------------------------------- attention.py / attention_processor.py
class Attention(nn.Module):
    """attention_processor.Attention with AttnProcessor (bias=False, no norms, scale dim_head^-0.5)."""

    def __init__(self, query_dim, cross_attention_dim, heads, dim_head):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head ** -0.5
        kv = cross_attention_dim if cross_attention_dim is not None else query_dim
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(kv, inner, bias=False)
        self.to_v = nn.Linear(kv, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def head_to_batch_dim(self, t):
        b, s, d = t.shape
        return t.reshape(b, s, self.heads, d // self.heads).permute(0, 2, 1, 3).reshape(b * self.heads, s,
                                                                                      d // self.heads)

    def batch_to_head_dim(self, t):
        b, s, d = t.shape
        t = t.reshape(b // self.heads, self.heads, s, d)
        return t.permute(0, 2, 1, 3).reshape(b // self.heads, s, d * self.heads)

    def forward(self, x, encoder_hidden_states=None):
        q = self.to_q(x)
        ctx = x if encoder_hidden_states is None else encoder_hidden_states
        k, v = self.to_k(ctx), self.to_v(ctx)
        q, k, v = self.head_to_batch_dim(q), self.head_to_batch_dim(k), self.head_to_batch_dim(v)
        zeros = torch.zeros(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype)
        probs = torch.baddbmm(zeros, q, k.transpose(-1, -2), beta=1, alpha=self.scale).softmax(dim=-1)
        h = self.batch_to_head_dim(torch.bmm(probs, v))
        return self.to_out[1](self.to_out[0](h))


class GEGLU(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class BasicTransformerBlock(nn.Module):
    """layer_norm type, attention_bias False, only_cross_attention False."""

    def __init__(self, dim, heads, head_dim, cross_attention_dim=None, double_self_attention=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, None, heads, head_dim)
        assert cross_attention_dim is not None or double_self_attention
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, cross_attention_dim if not double_self_attention else None, heads, head_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, encoder_hidden_states=None):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), encoder_hidden_states) + x
        return self.ff(self.norm3(x)) + x


# ---------------------------------------------------------------- transformer_2d.py / transformer_temporal.py
class Transformer2DModel(nn.Module):
    """continuous input, use_linear_projection=True, 1 layer."""

    def __init__(self, heads, head_dim, in_channels, cross_attention_dim, norm_num_groups):
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(norm_num_groups, in_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(in_channels, inner)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, head_dim, cross_attention_dim)])
        self.proj_out = nn.Linear(inner, in_channels)

    def forward(self, x, encoder_hidden_states):
        batch, _, height, width = x.shape
        residual = x
        x = self.norm(x)
        inner_dim = x.shape[1]
        x = self.proj_in(x.permute(0, 2, 3, 1).reshape(batch, height * width, inner_dim))
        for blk in self.transformer_blocks:
            x = blk(x, encoder_hidden_states)
        x = self.proj_out(x)
        x = x.reshape(batch, height, width, inner_dim).permute(0, 3, 1, 2).contiguous()
        return x + residual


class TransformerTemporalModel(nn.Module):
    """double_self_attention=True (attn2 attends to the frames themselves), 1 layer."""

    def __init__(self, heads, head_dim, in_channels, norm_num_groups=32):
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(norm_num_groups, in_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(in_channels, inner)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, head_dim,
                                                                       double_self_attention=True)])
        self.proj_out = nn.Linear(inner, in_channels)

    def forward(self, x, num_frames):
        batch_frames, channel, height, width = x.shape
        batch_size = batch_frames // num_frames
        residual = x
        x = x[None, :].reshape(batch_size, num_frames, channel, height, width).permute(0, 2, 1, 3, 4)
        x = self.norm(x)
        x = x.permute(0, 3, 4, 2, 1).reshape(batch_size * height * width, num_frames, channel)
        x = self.proj_in(x)
        for blk in self.transformer_blocks:
            x = blk(x)
        x = self.proj_out(x)
        # verbatim diffusers 0.17 (channel, num_frames order)
        x = x[None, None, :].reshape(batch_size, height, width, channel, num_frames).permute(0, 3, 4, 1, 2)
        x = x.contiguous().reshape(batch_frames, channel, height, width)
        return x + residual


# ---------------------------------------------------------------- resnet.py
class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, temb_channels, groups, eps, output_scale_factor=1.0):
        super().__init__()
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.output_scale_factor


class TemporalConvLayer(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv1 = nn.Sequential(nn.GroupNorm(32, dim), nn.SiLU(), nn.Conv3d(dim, dim, (3, 1, 1), padding=(1, 0, 0)))
        for i in (2, 3, 4):
            setattr(self, "conv%d" % i, nn.Sequential(nn.GroupNorm(32, dim), nn.SiLU(), nn.Dropout(0.1),
                                                      nn.Conv3d(dim, dim, (3, 1, 1), padding=(1, 0, 0))))

    def forward(self, x, num_frames):
        x = x[None, :].reshape((-1, num_frames) + x.shape[1:]).permute(0, 2, 1, 3, 4)
        h = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        x = x + h
        return x.permute(0, 2, 1, 3, 4).reshape((x.shape[0] * x.shape[2], -1) + x.shape[3:])


class Downsample2D(nn.Module):
    def __init__(self, ch, padding):
        super().__init__()
        assert padding == 1  # 0 would pad (0, 1, 0, 1) first; the library fixes 1
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x, output_size=None):
        if output_size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=output_size, mode="nearest")
        return self.conv(x)


# ---------------------------------------------------------------- unet_3d_blocks.py
class Block3D(nn.Module):
    """CrossAttnDownBlock3D / DownBlock3D (up=False) and CrossAttnUpBlock3D / UpBlock3D (up=True)."""

    def __init__(self, cfg, up, attn, num_layers, in_ch, out_ch, prev_ch, resample):
        super().__init__()
        self.up, self.has_attn = up, attn
        g, eps, T, hd = cfg["norm_num_groups"], cfg["norm_eps"], 4 * cfg["block_out_channels"][0], \
            cfg["attention_head_dim"]
        self.resnets, self.temp_convs = nn.ModuleList(), nn.ModuleList()
        self.attentions, self.temp_attentions = nn.ModuleList(), nn.ModuleList()
        for i in range(num_layers):
            if up:
                skip = in_ch if i == num_layers - 1 else out_ch
                cin = (prev_ch if i == 0 else out_ch) + skip
            else:
                cin = in_ch if i == 0 else out_ch
            self.resnets.append(ResnetBlock2D(cin, out_ch, T, g, eps))
            self.temp_convs.append(TemporalConvLayer(out_ch))
            if attn:
                self.attentions.append(Transformer2DModel(out_ch // hd, hd, out_ch, cfg["cross_attention_dim"], g))
                self.temp_attentions.append(TransformerTemporalModel(out_ch // hd, hd, out_ch, g))
        if resample and up:
            self.upsamplers = nn.ModuleList([Upsample2D(out_ch)])
        elif resample:
            self.downsamplers = nn.ModuleList([Downsample2D(out_ch, cfg["downsample_padding"])])
        self.resample = resample

    def layer(self, i, x, temb, ehs, F_):
        x = self.temp_convs[i](self.resnets[i](x, temb), F_)
        if self.has_attn:
            x = self.temp_attentions[i](self.attentions[i](x, ehs), F_)
        return x

    def down(self, x, temb, ehs, F_):
        out = ()
        for i in range(len(self.resnets)):
            x = self.layer(i, x, temb, ehs, F_)
            out += (x,)
        if self.resample:
            x = self.downsamplers[0](x)
            out += (x,)
        return x, out

    def upf(self, x, res, temb, ehs, F_, upsample_size):
        for i in range(len(self.resnets)):
            x = torch.cat([x, res[-1]], dim=1)
            res = res[:-1]
            x = self.layer(i, x, temb, ehs, F_)
        if self.resample:
            x = self.upsamplers[0](x, upsample_size)
        return x


class UNetMidBlock3DCrossAttn(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, g, eps, T, hd = cfg["block_out_channels"][-1], cfg["norm_num_groups"], cfg["norm_eps"], \
            4 * cfg["block_out_channels"][0], cfg["attention_head_dim"]
        osf = cfg["mid_block_scale_factor"]
        self.resnets = nn.ModuleList([ResnetBlock2D(C, C, T, g, eps, osf), ResnetBlock2D(C, C, T, g, eps, osf)])
        self.temp_convs = nn.ModuleList([TemporalConvLayer(C), TemporalConvLayer(C)])
        self.attentions = nn.ModuleList([Transformer2DModel(C // hd, hd, C, cfg["cross_attention_dim"], g)])
        self.temp_attentions = nn.ModuleList([TransformerTemporalModel(C // hd, hd, C, g)])

    def forward(self, x, temb, ehs, F_):
        x = self.temp_convs[0](self.resnets[0](x, temb), F_)
        x = self.temp_attentions[0](self.attentions[0](x, ehs), F_)
        return self.temp_convs[1](self.resnets[1](x, temb), F_)


# ---------------------------------------------------------------- unet_3d_condition.py / embeddings.py
class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


def timestep_embedding(timesteps, dim):
    """get_timestep_embedding(flip_sin_to_cos=True, downscale_freq_shift=0), float32."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(0, half, dtype=torch.float32) / (half - 0)
    emb = timesteps[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class UNet3DConditionModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        assert cfg.get("act_fn", "silu") == "silu" and isinstance(cfg["attention_head_dim"], int)
        bo, n = cfg["block_out_channels"], len(cfg["block_out_channels"])
        self.cfg = cfg
        self.conv_in = nn.Conv2d(cfg["in_channels"], bo[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(bo[0], 4 * bo[0])
        self.transformer_in = TransformerTemporalModel(8, cfg["attention_head_dim"], bo[0])
        self.down_blocks, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        out = bo[0]
        for i, t in enumerate(cfg["down_block_types"]):
            assert t in ("CrossAttnDownBlock3D", "DownBlock3D")
            inp, out = out, bo[i]
            self.down_blocks.append(Block3D(cfg, False, t == "CrossAttnDownBlock3D", cfg["layers_per_block"],
                                            inp, out, None, i != n - 1))
        self.mid_block = UNetMidBlock3DCrossAttn(cfg)
        rev = list(reversed(bo))
        out = rev[0]
        self.num_upsamplers = 0
        for i, t in enumerate(cfg["up_block_types"]):
            assert t in ("CrossAttnUpBlock3D", "UpBlock3D")
            prev, out, inp = out, rev[i], rev[min(i + 1, n - 1)]
            self.num_upsamplers += i != n - 1
            self.up_blocks.append(Block3D(cfg, True, t == "CrossAttnUpBlock3D", cfg["layers_per_block"] + 1,
                                          inp, out, prev, i != n - 1))
        self.conv_norm_out = nn.GroupNorm(cfg["norm_num_groups"], bo[0], eps=cfg["norm_eps"])
        self.conv_out = nn.Conv2d(bo[0], cfg["out_channels"], 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        f = 2 ** self.num_upsamplers
        forward_upsample_size = any(s % f != 0 for s in sample.shape[-2:])
        upsample_size = None
        num_frames = sample.shape[2]
        timesteps = timestep.expand(sample.shape[0])
        emb = self.time_embedding(timestep_embedding(timesteps, self.cfg["block_out_channels"][0]).to(sample.dtype))
        emb = emb.repeat_interleave(repeats=num_frames, dim=0)
        ehs = encoder_hidden_states.repeat_interleave(repeats=num_frames, dim=0)
        x = sample.permute(0, 2, 1, 3, 4).reshape((sample.shape[0] * num_frames, -1) + sample.shape[3:])
        x = self.transformer_in(self.conv_in(x), num_frames)
        res = (x,)
        for blk in self.down_blocks:
            x, r = blk.down(x, emb, ehs, num_frames)
            res += r
        x = self.mid_block(x, emb, ehs, num_frames)
        for i, blk in enumerate(self.up_blocks):
            r = res[-len(blk.resnets):]
            res = res[:-len(blk.resnets)]
            if i != len(self.up_blocks) - 1 and forward_upsample_size:
                upsample_size = res[-1].shape[2:]
            x = blk.upf(x, r, emb, ehs, num_frames, upsample_size)
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return x[None, :].reshape((-1, num_frames) + x.shape[1:]).permute(0, 2, 1, 3, 4)


# ---------------------------------------------------------------- cases


def load_unet(folder):
    """cfg and the port in float32 and float64 with the folder's unet weights (F16 widened exactly)."""
    cfg = json.load(open(os.path.join(folder, "unet", "config.json")))
    st, _ = load_safetensors(os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"))
    m32 = UNet3DConditionModel(cfg).eval()
    m32.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in st.items()}, strict=True)
    m64 = UNet3DConditionModel(cfg).double().eval()
    m64.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in st.items()}, strict=True)
    return cfg, m32, m64


def run(model, inp, dtype):
    with torch.no_grad():
        return model(torch.from_numpy(inp["sample"]).to(dtype), torch.from_numpy(inp["timestep"]),
                     torch.from_numpy(inp["encoder_hidden_states"]).to(dtype)).numpy()


def check_shared():
    """The port against every shared (upstream-produced) zeroscope.unet3d case."""
    _, m32, m64 = load_unet(MODEL_A)
    root = os.path.join(SHARED, "video", STAGE)
    worst = 0.0
    for c in sorted(os.listdir(root)):
        case = json.load(open(os.path.join(root, c, "case.json")))
        assert case["model"].rstrip("/").endswith("zeroscope-a"), case["model"]
        inp, _ = load_safetensors(os.path.join(root, c, "inputs.safetensors"))
        exp, _ = load_safetensors(os.path.join(root, c, "expected.safetensors"))
        err = float(np.abs(run(m32, inp, torch.float32) - exp["out"]).max())
        err64 = float(np.abs(run(m64, inp, torch.float64) - exp["out"]).max())
        print("shared %s/%s: port max |diff| %.2e, its float64 run %.2e (case atol %g)" % (
            STAGE, c, err, err64, case["atol"]))
        assert err < case["atol"] / 5 and err64 < case["atol"] / 5, (c, err, err64)
        worst = max(worst, err)
    return worst


CFG_B = {
    "_class_name": "UNet3DConditionModel",
    "_diffusers_version": "0.17.0",
    "act_fn": "silu",
    "attention_head_dim": 16,
    "block_out_channels": [32, 32, 64],
    "cross_attention_dim": 40,
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "downsample_padding": 1,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 16,
    "out_channels": 4,
    "sample_size": 8,
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
}


def make_model_b():
    """tests/golden/models/zeroscope-b: random unet weights in zeroscope-a's style, F16; the pipeline's
    model_index.json and scheduler config copied from zeroscope-a."""
    g = torch.Generator().manual_seed(20261130)
    w = {}
    for name, p in UNet3DConditionModel(CFG_B).state_dict().items():
        shape = tuple(p.shape)
        if len(shape) == 1 and name.endswith("weight"):                    # GroupNorm / LayerNorm scales
            t = 1 + 0.2 * torch.randn(*shape, generator=g)
        elif len(shape) == 1:                                                # biases
            t = 0.1 * torch.randn(*shape, generator=g)
        elif name == "conv_out.weight":
            t = 0.034 * torch.randn(*shape, generator=g)
        else:
            bound = 1.0 / math.sqrt(int(np.prod(shape[1:])))
            if ".conv4." in name:
                bound *= math.sqrt(3.0)
            t = (torch.rand(*shape, generator=g) * 2 - 1) * bound
        w[name] = t.to(torch.float16).numpy()
    d = os.path.join(REPO, "tests", "golden", "models", "zeroscope-b")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(os.path.join(d, "unet"))
    os.makedirs(os.path.join(d, "scheduler"))
    shutil.copyfile(os.path.join(MODEL_A, "model_index.json"), os.path.join(d, "model_index.json"))
    shutil.copyfile(os.path.join(MODEL_A, "scheduler", "scheduler_config.json"),
                    os.path.join(d, "scheduler", "scheduler_config.json"))
    with open(os.path.join(d, "unet", "config.json"), "w") as f:
        json.dump(CFG_B, f, indent=2)
        f.write("\n")
    save_safetensors(os.path.join(d, "unet", "diffusion_pytorch_model.safetensors"), w, {"format": "pt"})
    return d


CASES = [
    # name, B, F, h, w, timesteps, note
    ("zeroscope-b_b1_f2_16x24_t37", 1, 2, 16, 24, [37], "one video, 2 frames, 16x24 latent"),
    ("zeroscope-b_b2_f3_16x20_t999_t120", 2, 3, 16, 20, [999, 120],
     "two videos (distinct timesteps per row and distinct encoder_hidden_states), 3 frames, 16x20 latent"),
    ("zeroscope-b_b1_f3_18x20_t640", 1, 3, 18, 20, [640],
     "one video, 3 frames, 18x20 latent: 18 is not a multiple of 2^num_upsamplers = 4, so the downsamplers "
     "give 9 then 5 rows and the UNet forwards the skip sizes to the upsamplers (nearest to 9, then to 18)"),
]


def main():
    torch.set_num_threads(1)
    worst = check_shared()
    print("port vs shared: worst max |diff| %.2e" % worst)
    folder = make_model_b()
    cfg, m32, m64 = load_unet(folder)
    rng = np.random.default_rng(20261130)
    root = os.path.join(REPO, "tests", "golden", "video", STAGE)
    for name, B, Fr, h, w, ts, note in CASES:
        inp = {
            "sample": rng.standard_normal((B, 4, Fr, h, w)).astype(np.float32),
            "timestep": np.array(ts, np.int64),
            "encoder_hidden_states": rng.standard_normal((B, 77, cfg["cross_attention_dim"])).astype(np.float32),
        }
        y32 = run(m32, inp, torch.float32)
        y64 = run(m64, inp, torch.float64)
        diff = float(np.abs(y32.astype(np.float64) - y64).max())
        atol = round_tol(diff * 8, 1e-5)
        d = os.path.join(root, name)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        save_safetensors(os.path.join(d, "inputs.safetensors"), inp)
        save_safetensors(os.path.join(d, "expected.safetensors"), {"out": y32.astype(np.float32)})
        case = {"stage": STAGE, "model": "../../../models/zeroscope-b", "params": {}, "atol": atol, "rtol": 1e-4,
                "source": SOURCE,
                "note": "sample F32 %s and encoder_hidden_states F32 [%d,77,%d] random normal, timestep I64 %s; %s. "
                        "max |fp32 - fp64| = %.2e" % ([B, 4, Fr, h, w], B, cfg["cross_attention_dim"], ts, note, diff)}
        with open(os.path.join(d, "case.json"), "w") as f:
            json.dump(case, f, indent=1)
            f.write("\n")
        print(STAGE, name, y32.shape, "|out| max %.3f std %.3f" % (np.abs(y32).max(), y32.std()),
              "fp64 diff %.2e atol %g" % (diff, atol))


if __name__ == "__main__":
    main()
