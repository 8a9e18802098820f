#!/usr/bin/python3
"""gen_decoder_cases.py — our own golden cases for the VAE decoders and the HiFi-GAN vocoder at sizes the
shared set does not show (stages "vae.decode", "audioldm.vae_decode", "zeroscope.vae_decode",
"vocoder.hifigan"), and the models they run on.

The expected outputs come from PORTS written with torch.nn.functional (float32, CPU), not the upstream
packages, which are not installed here:

  * huggingface/diffusers v0.17.0 AutoencoderKL.decode (autoencoder_kl.py _decode, vae.py Decoder,
    unet_2d_blocks.py UNetMidBlock2D / UpDecoderBlock2D, resnet.py ResnetBlock2D / Upsample2D,
    attention_processor.py Attention + AttnProcessor, the processor diffusers 0.17 picks under torch 1.13):
    post_quant_conv (1x1) -> conv_in (3x3) -> mid block [ResnetBlock2D, single-head Attention over H*W
    (GroupNorm eps 1e-6 on [B, C, HW], to_q/to_k/to_v, baddbmm(beta 0, alpha dim_head**-0.5), softmax
    upcast to float, bmm, to_out, + residual, / rescale_output_factor 1), ResnetBlock2D] -> per up block
    (reversed block_out_channels) layers_per_block + 1 ResnetBlock2D (GroupNorm eps 1e-6 -> SiLU -> conv3x3
    -> GroupNorm -> SiLU -> conv3x3, 1x1 conv_shortcut when the width changes, (x + h) / 1) and, except
    on the last block, Upsample2D (F.interpolate(scale_factor=2.0, mode="nearest") -> conv3x3) ->
    conv_norm_out -> SiLU -> conv_out. The attention weights are read under both names diffusers 0.17
    loads: the deprecated query/key/value/proj_attn (sd-a, audioldm-a) and to_q/to_k/to_v/to_out.0
    (zeroscope-a).
    Stage wrappers as the STAGES.md texts say: vae.decode takes latents already divided by the scaling
    factor and returns decode(latents).sample, unclamped; audioldm.vae_decode is
    AudioLDMPipeline.decode_latents = decode(1 / scaling_factor * latents); zeroscope.vae_decode is
    TextToVideoSDPipeline.decode_latents: 1 / scaling_factor * latents, frames folded into the batch
    (permute(0, 2, 1, 3, 4).reshape(B*F, C, h, w)), decode, unfolded [B, F, 3, H, W] -> permute(0, 2, 1,
    3, 4), .float(). scaling_factor comes from the model's vae/config.json.
  * huggingface/transformers 4.29 SpeechT5HifiGan + HifiGanResidualBlock (modeling_speecht5.py), called
    as diffusers 0.17 AudioLDMPipeline.mel_spectrogram_to_waveform does (squeeze(1), vocoder, .float()):
    (normalize_before: (mel - mean) / scale) -> transpose -> conv_pre (k 7, pad 3) -> per upsample
    leaky_relu(config slope) -> ConvTranspose1d(k, stride r, padding (k - r) // 2) -> mean over the
    resblocks (each: per dilation leaky_relu -> dilated conv (pad (k d - d) // 2) -> leaky_relu -> conv
    (pad (k - 1) // 2) -> + residual; summed in order then / num_kernels) -> leaky_relu with torch's
    DEFAULT slope 0.01 -> conv_post (k 7, pad 3) -> tanh -> squeeze(1).
Every size is read from the model's config.json. Before anything is written, the ports must reproduce
every shared case of the four stages (../shared/golden/{vision,audio,video}/...), asserting a max
abs error under 1/3 of that case's atol. Measured: the VAE stages 3.7e-6..6.4e-6 (atol 2e-5 / 5e-5) —
the fp32 noise of a deep conv + GroupNorm stack, not a port error: the same port in float64 is 2e-6..4e-6
from the upstream fp32 outputs; the vocoder 6.7e-8 (atol 1e-6).

Models written (random weights in the shared models' style: conv/linear weights torch's default init
U(+-1/sqrt(fan_in)), biases N(0, 0.1^2), norm scales 1 + N(0, 0.2^2), norm shifts N(0, 0.1^2); F32,
except the two VAEs over ~2 MB, stored F16 — encoder weights included, as a checkpoint holds them):
  tests/golden/models/sd-b-dec/        StableDiffusionPipeline, vae only: block_out_channels [16, 32, 32]
                                       (3 levels, x4), layers_per_block 2, norm_num_groups 8, latent 4,
                                       scaling_factor 0.13025, deprecated attention names
  tests/golden/models/zeroscope-b-dec/ TextToVideoSDPipeline, vae only: [16, 32, 32, 48] (x8),
                                       layers_per_block 1, norm_num_groups 16, latent 4, scaling_factor
                                       0.2, to_q/to_k/to_v/to_out.0 names, F16
  tests/golden/models/audioldm-b-dec/  AudioLDMPipeline, vae + vocoder: vae [16, 24, 48] (x4),
                                       layers_per_block 2, norm_num_groups 8, latent 8, 1 in/out channel,
                                       scaling_factor 1.1342578530311584, F16; vocoder 64 mels, upsample_rates
                                       [4, 4, 2], kernels [8, 8, 4], initial channel 48, resblock kernels
                                       [3, 5], dilations [[1, 3], [1, 3]], leaky_relu_slope 0.2,
                                       normalize_before false (mean / scale buffers present, random and
                                       NOT applied)
  tests/golden/models/audioldm-c-voc/  AudioLDMPipeline, vocoder only: 64 mels, upsample_rates [5, 4, 2],
                                       kernels [16, 8, 5] (odd k - r: 40 T + 9 samples), initial channel 32,
                                       resblock kernels [3, 7], dilations [[1, 3, 5], [1, 2]], slope 0.1,
                                       normalize_before true (transformers' default) with mean / scale
                                       buffers (mean 1 + N(0, 0.5^2), scale U(0.4, 0.8))
Each case is written with the float32 port; its atol is the larger of the shared stage's atol and the
fp64 rule of gen_imagebind_cases.py (the same code in float64: max|fp32 - fp64| x 8 rounded up to
1/2/5 x 10^k), rtol 1e-4 as the shared cases.

Run with Debian's python3 (torch 1.13, numpy):   /usr/bin/python3 tools/gen_decoder_cases.py
Tests never run this script; it rewrites the same bytes each time (fixed seeds, one thread).
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "golden")
OUT = os.path.join(REPO, "tests", "golden")
sys.path.insert(0, SHARED)
from check import load_safetensors, save_safetensors  # noqa: E402
from golden_st import dump_json, round_tol  # noqa: E402

SRC_VAE = ("tools/gen_decoder_cases.py: torch " + torch.__version__ + " float32 CPU port of huggingface/diffusers "
           "v0.17.0 AutoencoderKL.decode (post_quant_conv + vae.py Decoder, AttnProcessor)")
SRC_VOC = ("tools/gen_decoder_cases.py: torch " + torch.__version__ + " float32 CPU port of huggingface/transformers "
           "4.29 SpeechT5HifiGan (modeling_speecht5.py) as diffusers v0.17.0 "
           "AudioLDMPipeline.mel_spectrogram_to_waveform calls it (squeeze(1), vocoder, .float())")
GN_EPS = 1e-6


# ---------------------------------------------------------------------------------------------- VAE


class VaeDecoder:
    """diffusers 0.17 AutoencoderKL._decode: post_quant_conv, then Decoder.forward (latent_embeds None)."""

    def __init__(self, cfg, w, dtype):
        self.cfg = cfg
        self.g = cfg["norm_num_groups"]
        self.w = {k: torch.from_numpy(v.astype(np.float32)).to(dtype) for k, v in w.items()}
        self.dtype = dtype
        for k in self.w:
            assert k.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")), k
        a = "decoder.mid_block.attentions.0."
        self.att = (("query", "key", "value", "proj_attn") if a + "query.weight" in self.w
                    else ("to_q", "to_k", "to_v", "to_out.0"))
        self.used = set()

    def p(self, name):
        self.used.add(name)
        return self.w[name]

    def conv(self, x, p, pad):
        return F.conv2d(x, self.p(p + ".weight"), self.p(p + ".bias"), padding=pad)

    def norm(self, x, p):
        return F.group_norm(x, self.g, self.p(p + ".weight"), self.p(p + ".bias"), GN_EPS)

    def resnet(self, x, p):  # ResnetBlock2D(temb None, pre_norm, output_scale_factor 1, dropout 0)
        h = self.conv(F.silu(self.norm(x, p + ".norm1")), p + ".conv1", 1)
        h = self.conv(F.silu(self.norm(h, p + ".norm2")), p + ".conv2", 1)
        if p + ".conv_shortcut.weight" in self.w:
            x = self.conv(x, p + ".conv_shortcut", 0)
        return (x + h) / 1.0

    def attention(self, x, p):  # Attention(heads 1, dim_head C, residual, upcast_softmax) + AttnProcessor
        B, C, H, W = x.shape
        q_, k_, v_, o_ = self.att
        residual = x
        h = x.view(B, C, H * W).transpose(1, 2)
        h = F.group_norm(h.transpose(1, 2), self.g, self.p(p + ".group_norm.weight"),
                         self.p(p + ".group_norm.bias"), GN_EPS).transpose(1, 2)
        q = F.linear(h, self.p(p + "." + q_ + ".weight"), self.p(p + "." + q_ + ".bias"))
        k = F.linear(h, self.p(p + "." + k_ + ".weight"), self.p(p + "." + k_ + ".bias"))
        v = F.linear(h, self.p(p + "." + v_ + ".weight"), self.p(p + "." + v_ + ".bias"))
        scale = C ** -0.5  # dim_head**-0.5, dim_head = C
        scores = torch.baddbmm(torch.empty(B, H * W, H * W, dtype=q.dtype), q, k.transpose(-1, -2),
                               beta=0, alpha=scale)
        if self.dtype == torch.float32:
            scores = scores.float()  # upcast_softmax (a no-op in float32; skipped in the fp64 reference)
        probs = scores.softmax(dim=-1).to(q.dtype)
        h = torch.bmm(probs, v)
        h = F.linear(h, self.p(p + "." + o_ + ".weight"), self.p(p + "." + o_ + ".bias"))
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return (h + residual) / 1.0

    def __call__(self, z):
        c = self.cfg
        assert all(t == "UpDecoderBlock2D" for t in c["up_block_types"])
        assert c.get("act_fn", "silu") == "silu"
        z = self.conv(z, "post_quant_conv", 0)
        h = self.conv(z, "decoder.conv_in", 1)
        h = self.resnet(h, "decoder.mid_block.resnets.0")
        h = self.attention(h, "decoder.mid_block.attentions.0")
        h = self.resnet(h, "decoder.mid_block.resnets.1")
        n = len(c["block_out_channels"])
        for i in range(n):
            for r in range(c["layers_per_block"] + 1):
                h = self.resnet(h, "decoder.up_blocks.%d.resnets.%d" % (i, r))
            if i != n - 1:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
                h = self.conv(h, "decoder.up_blocks.%d.upsamplers.0.conv" % i, 1)
        h = F.silu(self.norm(h, "decoder.conv_norm_out"))
        return self.conv(h, "decoder.conv_out", 1)

    def check_all_used(self):
        dec = {k for k in self.w if k.startswith(("decoder.", "post_quant_conv."))}
        assert dec == self.used, sorted(dec ^ self.used)


def stage_vae_decode(dec, sf, x):  # latents already / scaling_factor
    return {"image": dec(x)}


def stage_audioldm_vae_decode(dec, sf, x):  # AudioLDMPipeline.decode_latents
    return {"mel": dec(1 / sf * x)}


def stage_zeroscope_vae_decode(dec, sf, x):  # TextToVideoSDPipeline.decode_latents
    latents = 1 / sf * x
    b, c, f, h, w = latents.shape
    latents = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    image = dec(latents)
    video = image[None, :].reshape((b, f, -1) + image.shape[2:]).permute(0, 2, 1, 3, 4)
    return {"frames": video.float() if x.dtype == torch.float32 else video}


# -------------------------------------------------------------------------------------------- vocoder


class HifiGan:
    """transformers 4.29 SpeechT5HifiGan.forward on a batched [B, T, n_mels] spectrogram."""

    def __init__(self, cfg, w, dtype):
        self.c = cfg
        self.w = {k: torch.from_numpy(v.astype(np.float32)).to(dtype) for k, v in w.items()}
        assert cfg.get("model_type", "hifigan") == "hifigan"
        self.used = {"mean", "scale"}

    def p(self, name):
        self.used.add(name)
        return self.w[name]

    def resblock(self, x, i, k, dil, slope):  # HifiGanResidualBlock.forward
        for j, d in enumerate(dil):
            res = x
            x = F.leaky_relu(x, slope)
            x = F.conv1d(x, self.p("resblocks.%d.convs1.%d.weight" % (i, j)), self.p("resblocks.%d.convs1.%d.bias" % (i, j)),
                         stride=1, dilation=d, padding=(k * d - d) // 2)
            x = F.leaky_relu(x, slope)
            x = F.conv1d(x, self.p("resblocks.%d.convs2.%d.weight" % (i, j)), self.p("resblocks.%d.convs2.%d.bias" % (i, j)),
                         stride=1, dilation=1, padding=(k - 1) // 2)
            x = x + res
        return x

    def __call__(self, spec):
        c = self.c
        slope = c["leaky_relu_slope"]
        if c.get("normalize_before", True):  # SpeechT5HifiGanConfig's default is True
            spec = (spec - self.w["mean"]) / self.w["scale"]
        assert spec.dim() == 3
        h = spec.transpose(2, 1)
        h = F.conv1d(h, self.p("conv_pre.weight"), self.p("conv_pre.bias"), stride=1, padding=3)
        nk = len(c["resblock_kernel_sizes"])
        for i, (r, k) in enumerate(zip(c["upsample_rates"], c["upsample_kernel_sizes"])):
            h = F.leaky_relu(h, slope)
            h = F.conv_transpose1d(h, self.p("upsampler.%d.weight" % i), self.p("upsampler.%d.bias" % i),
                                   stride=r, padding=(k - r) // 2)
            res = self.resblock(h, i * nk, c["resblock_kernel_sizes"][0], c["resblock_dilation_sizes"][0], slope)
            for j in range(1, nk):
                res += self.resblock(h, i * nk + j, c["resblock_kernel_sizes"][j], c["resblock_dilation_sizes"][j], slope)
            h = res / nk
        h = F.leaky_relu(h)  # torch's default negative_slope 0.01, as upstream
        h = F.conv1d(h, self.p("conv_post.weight"), self.p("conv_post.bias"), stride=1, padding=3)
        h = torch.tanh(h)
        return h.squeeze(1)

    def check_all_used(self):
        assert set(self.w) == self.used, sorted(set(self.w) ^ self.used)


def stage_vocoder(voc, _sf, mel):  # AudioLDMPipeline.mel_spectrogram_to_waveform
    if mel.dim() == 4:
        mel = mel.squeeze(1)
    wave = voc(mel)
    return {"waveform": wave.float() if mel.dtype == torch.float32 else wave}


# ------------------------------------------------------------------------------------------ plumbing

STAGES = {  # stage -> (family, component folder, port class, function, input name, shared atol)
    "vae.decode": ("vision", "vae", VaeDecoder, stage_vae_decode, "latents", 5e-5),
    "audioldm.vae_decode": ("audio", "vae", VaeDecoder, stage_audioldm_vae_decode, "latents", 2e-5),
    "zeroscope.vae_decode": ("video", "vae", VaeDecoder, stage_zeroscope_vae_decode, "latents", 5e-5),
    "vocoder.hifigan": ("audio", "vocoder", HifiGan, stage_vocoder, "mel", 1e-6),
}


def load_ports(model_dir, sub, cls):
    cfg = json.load(open(os.path.join(model_dir, sub, "config.json")))
    fn = "model.safetensors" if sub == "vocoder" else "diffusion_pytorch_model.safetensors"
    st, _ = load_safetensors(os.path.join(model_dir, sub, fn))
    sf = None
    if os.path.exists(os.path.join(model_dir, "vae", "config.json")):
        sf = json.load(open(os.path.join(model_dir, "vae", "config.json"))).get("scaling_factor", 0.18215)
    return cls(cfg, st, torch.float32), cls(cfg, st, torch.float64), sf


def check_shared():
    """The ports against every shared (upstream-produced) case of the four stages."""
    worst = {}
    for stage, (fam, sub, cls, fn, key, _) in STAGES.items():
        root = os.path.join(SHARED, fam, stage)
        for c in sorted(os.listdir(root)):
            case = json.load(open(os.path.join(root, c, "case.json")))
            model = os.path.normpath(os.path.join(root, c, case["model"]))
            p32, _, sf = load_ports(model, sub, cls)
            inp, _ = load_safetensors(os.path.join(root, c, "inputs.safetensors"))
            exp, _ = load_safetensors(os.path.join(root, c, "expected.safetensors"))
            got = fn(p32, sf, torch.from_numpy(inp[key].astype(np.float32)))
            p32.check_all_used()
            assert set(got) == set(exp), (stage, c, set(got), set(exp))
            for k, e in exp.items():
                g = got[k].numpy()
                assert g.shape == e.shape and g.dtype == e.dtype, (stage, c, k, g.shape, e.shape)
                err = float(np.abs(g.astype(np.float64) - e).max())
                assert err < case["atol"] / 3, (stage, c, k, err, case["atol"])
                worst[stage] = max(worst.get(stage, 0.0), err)
                print("shared %s/%s: port max |diff| %.2e (atol %g)" % (stage, c, err, case["atol"]))
    return worst


def write_case(stage, name, model, x, note):
    fam, sub, cls, fn, key, shared_atol = STAGES[stage]
    model_dir = os.path.join(OUT, "models", model)
    p32, p64, sf = load_ports(model_dir, sub, cls)
    t = torch.from_numpy(x)
    y32 = fn(p32, sf, t)
    y64 = fn(p64, sf, t.double())
    p32.check_all_used()
    err = max(float(np.abs(y32[k].numpy().astype(np.float64) - y64[k].numpy()).max()) for k in y32)
    atol = max(shared_atol, round_tol(err * 8, 1e-6))
    d = os.path.join(OUT, fam, stage, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    save_safetensors(os.path.join(d, "inputs.safetensors"), {key: x})
    save_safetensors(os.path.join(d, "expected.safetensors"), {k: v.numpy() for k, v in y32.items()})
    case = {"stage": stage, "model": "../../../models/" + model, "params": {}, "atol": atol, "rtol": 1e-4,
            "source": SRC_VOC if sub == "vocoder" else SRC_VAE, "note": note}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    out = next(iter(y32.values()))
    print("%s/%s: %s -> %s, |y| max %.3g std %.3g, fp32-fp64 %.2e, atol %g" % (
        stage, name, list(x.shape), list(out.shape), float(out.abs().max()), float(out.std()), err, atol))


# ---------------------------------------------------------------------------------------- the models


def vae_names(cfg):
    """name -> shape of a diffusers AutoencoderKL state dict (encoder too, as a checkpoint holds it)."""
    boc, L, lpb = cfg["block_out_channels"], cfg["latent_channels"], cfg["layers_per_block"]
    att = cfg.pop("_attention_names")
    s = {}

    def conv(p, o, i, k):
        s[p + ".weight"], s[p + ".bias"] = (o, i, k, k), (o,)

    def norm(p, c):
        s[p + ".weight"], s[p + ".bias"] = (c,), (c,)

    def resnet(p, i, o):
        norm(p + ".norm1", i)
        conv(p + ".conv1", o, i, 3)
        norm(p + ".norm2", o)
        conv(p + ".conv2", o, o, 3)
        if i != o:
            conv(p + ".conv_shortcut", o, i, 1)

    def mid(p, c):
        resnet(p + ".resnets.0", c, c)
        norm(p + ".attentions.0.group_norm", c)
        for n in att:
            s["%s.attentions.0.%s.weight" % (p, n)], s["%s.attentions.0.%s.bias" % (p, n)] = (c, c), (c,)
        resnet(p + ".resnets.1", c, c)

    conv("encoder.conv_in", boc[0], cfg["in_channels"], 3)
    ch = boc[0]
    for i, o in enumerate(boc):
        for r in range(lpb):
            resnet("encoder.down_blocks.%d.resnets.%d" % (i, r), ch if r == 0 else o, o)
        ch = o
        if i != len(boc) - 1:
            conv("encoder.down_blocks.%d.downsamplers.0.conv" % i, o, o, 3)
    mid("encoder.mid_block", boc[-1])
    norm("encoder.conv_norm_out", boc[-1])
    conv("encoder.conv_out", 2 * L, boc[-1], 3)
    conv("quant_conv", 2 * L, 2 * L, 1)
    conv("post_quant_conv", L, L, 1)
    conv("decoder.conv_in", boc[-1], L, 3)
    mid("decoder.mid_block", boc[-1])
    rev = list(reversed(boc))
    ch = rev[0]
    for i, o in enumerate(rev):
        for r in range(lpb + 1):
            resnet("decoder.up_blocks.%d.resnets.%d" % (i, r), ch if r == 0 else o, o)
        ch = o
        if i != len(rev) - 1:
            conv("decoder.up_blocks.%d.upsamplers.0.conv" % i, o, o, 3)
    norm("decoder.conv_norm_out", boc[0])
    conv("decoder.conv_out", cfg["out_channels"], boc[0], 3)
    return s


def hifigan_names(cfg):
    s = {}
    c0, n = cfg["upsample_initial_channel"], cfg["model_in_dim"]
    s["conv_pre.weight"], s["conv_pre.bias"] = (c0, n, 7), (c0,)
    for i, k in enumerate(cfg["upsample_kernel_sizes"]):
        s["upsampler.%d.weight" % i] = (c0 // 2 ** i, c0 // 2 ** (i + 1), k)  # ConvTranspose1d: [in, out, k]
        s["upsampler.%d.bias" % i] = (c0 // 2 ** (i + 1),)
    nk = len(cfg["resblock_kernel_sizes"])
    for i in range(len(cfg["upsample_rates"])):
        ch = c0 // 2 ** (i + 1)
        for j, (k, dil) in enumerate(zip(cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"])):
            for m in range(len(dil)):
                for cv in ("convs1", "convs2"):
                    s["resblocks.%d.%s.%d.weight" % (i * nk + j, cv, m)] = (ch, ch, k)
                    s["resblocks.%d.%s.%d.bias" % (i * nk + j, cv, m)] = (ch,)
    s["conv_post.weight"], s["conv_post.bias"] = (1, ch, 7), (1,)
    s["mean"], s["scale"] = (n,), (n,)
    return s


def random_weights(shapes, seed, buffers=None):
    """torch's default init for conv / linear weights (kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)),
    fan_in = size(1) * receptive field, also for ConvTranspose1d as torch computes it), biases N(0, 0.1^2),
    norm scales 1 + N(0, 0.2^2), norm shifts N(0, 0.1^2): the shared models' statistics."""
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if buffers and name in buffers:
            w[name] = buffers[name](g, shape)
        elif len(shape) == 1 and "norm" in name and name.endswith(".weight"):
            w[name] = 1 + 0.2 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            w[name] = 0.1 * torch.randn(shape, generator=g)
        else:
            bound = 1 / math.sqrt(shape[1] * int(np.prod(shape[2:])))
            w[name] = (torch.rand(shape, generator=g) * 2 - 1) * bound
    return {k: v.to(torch.float32).numpy() for k, v in w.items()}


VAE_BASE = {"_class_name": "AutoencoderKL", "_diffusers_version": "0.17.0", "act_fn": "silu", "sample_size": 64}
VAES = {
    "sd-b-dec": dict(block_out_channels=[16, 32, 32], in_channels=3, out_channels=3, latent_channels=4,
                     layers_per_block=2, norm_num_groups=8, scaling_factor=0.13025,
                     _attention_names=("query", "key", "value", "proj_attn"), seed=20261201),
    "zeroscope-b-dec": dict(block_out_channels=[16, 32, 32, 48], in_channels=3, out_channels=3,
                            latent_channels=4, layers_per_block=1, norm_num_groups=16, scaling_factor=0.2,
                            _attention_names=("to_q", "to_k", "to_v", "to_out.0"), seed=20261202, f16=True),
    "audioldm-b-dec": dict(block_out_channels=[16, 24, 48], in_channels=1, out_channels=1, latent_channels=8,
                           layers_per_block=2, norm_num_groups=8, scaling_factor=1.1342578530311584,
                           _attention_names=("query", "key", "value", "proj_attn"), seed=20261203, f16=True),
}
VOC_BASE = {"architectures": ["SpeechT5HifiGan"], "initializer_range": 0.01, "model_type": "hifigan",
            "sampling_rate": 16000, "torch_dtype": "float32", "transformers_version": "4.29.2"}
VOCODERS = {
    "audioldm-b-dec": dict(model_in_dim=64, upsample_initial_channel=48, upsample_rates=[4, 4, 2],
                           upsample_kernel_sizes=[8, 8, 4], resblock_kernel_sizes=[3, 5],
                           resblock_dilation_sizes=[[1, 3], [1, 3]], leaky_relu_slope=0.2,
                           normalize_before=False, seed=20261204),
    "audioldm-c-voc": dict(model_in_dim=64, upsample_initial_channel=32, upsample_rates=[5, 4, 2],
                           upsample_kernel_sizes=[16, 8, 5], resblock_kernel_sizes=[3, 7],
                           resblock_dilation_sizes=[[1, 3, 5], [1, 2]], leaky_relu_slope=0.1,
                           normalize_before=True, seed=20261205),
}
PIPELINES = {
    "sd-b-dec": ("StableDiffusionPipeline", {"vae": ["diffusers", "AutoencoderKL"]}),
    "zeroscope-b-dec": ("TextToVideoSDPipeline", {"vae": ["diffusers", "AutoencoderKL"]}),
    "audioldm-b-dec": ("AudioLDMPipeline", {"vae": ["diffusers", "AutoencoderKL"],
                                            "vocoder": ["transformers", "SpeechT5HifiGan"]}),
    "audioldm-c-voc": ("AudioLDMPipeline", {"vocoder": ["transformers", "SpeechT5HifiGan"]}),
}


def make_models():
    for name, (cls, comps) in PIPELINES.items():
        d = os.path.join(OUT, "models", name)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        dump_json(os.path.join(d, "model_index.json"),
                  dict({"_class_name": cls, "_diffusers_version": "0.17.0"}, **comps), 1)
        if name in VAES:
            v = dict(VAES[name])
            seed, f16 = v.pop("seed"), v.pop("f16", False)
            nb = len(v["block_out_channels"])
            cfg = dict(VAE_BASE, **v, down_block_types=["DownEncoderBlock2D"] * nb,
                       up_block_types=["UpDecoderBlock2D"] * nb)
            shapes = vae_names(cfg)  # pops _attention_names
            cfg = dict(sorted(cfg.items()))
            os.makedirs(os.path.join(d, "vae"))
            dump_json(os.path.join(d, "vae", "config.json"), cfg, 2)
            w = random_weights(shapes, seed)
            if f16:  # over ~2 MB in F32: stored half (the ports widen it exactly, as the library does)
                w = {k: v.astype(np.float16) for k, v in w.items()}
            save_safetensors(os.path.join(d, "vae", "diffusion_pytorch_model.safetensors"), w, {"format": "pt"})
        if name in VOCODERS:
            v = dict(VOCODERS[name])
            seed = v.pop("seed")
            cfg = dict(sorted(dict(VOC_BASE, **v).items()))
            cfg = dict({"architectures": cfg.pop("architectures")}, **cfg)
            norm = v["normalize_before"]
            # normalize_before: mean 1 + N(0, 0.5^2), scale U(0.4, 0.8), so mel N(-5, 2^2) becomes about
            # N(-10.5, 4^2) (a signal of audioldm-a's strength: waveform std ~0.03); else random and unused
            buffers = {
                "mean": lambda g, s: (1 + 0.5 * torch.randn(s, generator=g)) if norm else 0.1 * torch.randn(s, generator=g),
                "scale": lambda g, s: (0.4 + 0.4 * torch.rand(s, generator=g)) if norm else 0.5 + torch.rand(s, generator=g),
            }
            os.makedirs(os.path.join(d, "vocoder"))
            dump_json(os.path.join(d, "vocoder", "config.json"), cfg, 1)
            save_safetensors(os.path.join(d, "vocoder", "model.safetensors"),
                             random_weights(hifigan_names(cfg), seed, buffers), {"format": "pt"})
        total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
        print("model %s: %d bytes" % (name, total))


def main():
    torch.set_num_threads(1)
    with torch.no_grad():
        worst = check_shared()
        print("worst port error vs the shared cases:", worst)
        make_models()
        rng = np.random.default_rng(20261206)

        def normal(shape, mu, sd):
            return (mu + sd * rng.standard_normal(shape)).astype(np.float32)

        # vae.decode: latents already / scaling_factor (the shared inputs: N(0, 0.58^2) / 0.18215)
        for nm, shape in (("b1_5x7", (1, 4, 5, 7)), ("b2_6x4", (2, 4, 6, 4))):
            write_case("vae.decode", "sd-b-dec_" + nm, "sd-b-dec", normal(shape, 0, 0.6) / np.float32(0.13025),
                       "latents N(0, 0.6^2) / 0.13025, already divided as the stage says; 3-level VAE (x4), "
                       "layers_per_block 2, 8 groups; %s" % ("non-square" if shape[0] == 1 else "batch 2, non-square"))
        # zeroscope.vae_decode: the pipeline's latents, the stage divides by 0.2
        for nm, shape in (("b1_f2_3x5", (1, 4, 2, 3, 5)), ("b2_f2_4x3", (2, 4, 2, 4, 3))):
            write_case("zeroscope.vae_decode", "zeroscope-b-dec_" + nm, "zeroscope-b-dec", normal(shape, 0, 0.6),
                       "latents N(0, 0.6^2), the pipeline's (the stage divides by scaling_factor 0.2); 4-level "
                       "VAE [16, 32, 32, 48], 16 groups, to_q/to_k/to_v/to_out.0 names; %s" %
                       ("2 frames, non-square" if shape[0] == 1 else "batch 2 x 2 frames (frames folded "
                                                                      "item-major), non-square"))
        # audioldm.vae_decode: the pipeline's latents N(0, 1), the stage divides by 1.1342578530311584
        for nm, shape in (("b1_7x16", (1, 8, 7, 16)), ("b2_5x16", (2, 8, 5, 16))):
            write_case("audioldm.vae_decode", "audioldm-b-dec_" + nm, "audioldm-b-dec", normal(shape, 0, 1),
                       "latents N(0, 1), the pipeline's (the stage divides by scaling_factor 1.1342578530311584); "
                       "VAE [16, 24, 48], layers_per_block 2, 8 groups; odd latent height%s" %
                       ("" if shape[0] == 1 else ", batch 2"))
        # vocoder.hifigan: mel N(-5, 2^2) [B, 1, T, 64]
        for model, cases in (("audioldm-b-dec", (("b1_T27", (1, 1, 27, 64)), ("b2_T16", (2, 1, 16, 64)))),
                             ("audioldm-c-voc", (("b1_T13", (1, 1, 13, 64)), ("b2_T22", (2, 1, 22, 64))))):
            for nm, shape in cases:
                c = VOCODERS[model]
                write_case("vocoder.hifigan", model + "_" + nm, model, normal(shape, -5, 2),
                           "mel N(-5, 2^2); upsample_rates %s kernels %s, initial channel %d, resblock kernels %s "
                           "dilations %s, leaky_relu_slope %g (the last leaky_relu uses 0.01), normalize_before %s%s" %
                           (c["upsample_rates"], c["upsample_kernel_sizes"], c["upsample_initial_channel"],
                            c["resblock_kernel_sizes"], c["resblock_dilation_sizes"], c["leaky_relu_slope"],
                            str(c["normalize_before"]).lower(),
                            " (mean/scale buffers random, not applied)" if not c["normalize_before"] else
                            " ((mel - mean) / scale first)"))


if __name__ == "__main__":
    main()
