#!/usr/bin/python3
"""gen_vae_cases.py — our own golden cases for the VAE encoder (stage "vae.encode").

The shared golden set checks only the decoder. The expected outputs here come from a PORT of
diffusers 0.17.0's AutoencoderKL.encode (models/vae.py Encoder: conv_in, DownEncoderBlock2D with
ResnetBlock2D and Downsample2D(use_conv, padding=0: F.pad(0,1,0,1) + stride-2 conv),
UNetMidBlock2D with the single-head VAE attention (baddbmm + float softmax + bmm, as the 0.17
attention processor computes it), conv_norm_out + SiLU, conv_out with double_z; then quant_conv
and DiagonalGaussianDistribution: mean, logvar = chunk(2, dim=1), logvar clamped to [-30, 20]),
written with torch.nn.functional in float32 on the CPU — not diffusers itself, which is not
installed here. Weights: the shared golden models (sd-a, audioldm-a) read from safetensors.

Also stages "sd.image_latents" (a picture -> image-to-image's init_latents, gen_image_latents) and
"zeroscope.video_latents" (frames -> video-to-video's, gen_video_latents).

Run with Debian's python (numpy + torch 1.13 + Pillow): /usr/bin/python3 tools/gen_vae_cases.py
[image_latents] (writes tests/golden/vision/vae.encode/<case>/, vision/sd.image_latents/<case>/ and
video/zeroscope.video_latents/<case>/; with image_latents only the latter two). Inputs come from a seeded torch generator; the
files are committed, so this only needs re-running to add cases.
"""
import json, os, struct, sys
import numpy as np
import torch
import torch.nn.functional as F
from golden_st import write_st

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "tests", "golden")
MODELS = os.path.join(HERE, "..", "..", "shared", "golden", "models")
SOURCE = ("tools/gen_vae_cases.py: a torch float32 port of huggingface/diffusers v0.17.0 "
          "AutoencoderKL.encode (vae.py Encoder + quant_conv + DiagonalGaussianDistribution), run on CPU; "
          "NOT diffusers itself")
EPS = 1e-6


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32"
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").copy().reshape(v["shape"]))
    return out




class Port:
    def __init__(self, model):
        d = os.path.join(MODELS, model, "vae")
        self.cfg = json.load(open(os.path.join(d, "config.json")))
        self.w = read_st(os.path.join(d, "diffusion_pytorch_model.safetensors"))
        self.groups = self.cfg["norm_num_groups"]

    def resnet(self, x, p):  # ResnetBlock2D, temb None, output_scale_factor 1
        w = self.w
        h = F.silu(F.group_norm(x, self.groups, w[p + ".norm1.weight"], w[p + ".norm1.bias"], EPS))
        h = F.conv2d(h, w[p + ".conv1.weight"], w[p + ".conv1.bias"], padding=1)
        h = F.silu(F.group_norm(h, self.groups, w[p + ".norm2.weight"], w[p + ".norm2.bias"], EPS))
        h = F.conv2d(h, w[p + ".conv2.weight"], w[p + ".conv2.bias"], padding=1)
        if p + ".conv_shortcut.weight" in w:
            x = F.conv2d(x, w[p + ".conv_shortcut.weight"], w[p + ".conv_shortcut.bias"])
        return (x + h) / 1.0

    def attention(self, x, p):  # the VAE's AttentionBlock: one head over H*W
        w = self.w
        B, C, H, W = x.shape
        residual = x
        h = F.group_norm(x, self.groups, w[p + ".group_norm.weight"], w[p + ".group_norm.bias"], EPS)
        h = h.view(B, C, H * W).transpose(1, 2)
        # the AttentionBlock's names (query, key, value, proj_attn), or the same weights under the
        # Attention processor's (to_q, to_k, to_v, to_out.0) that later checkpoints carry
        new = p + ".to_q.weight" in w
        nm = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"} if new else {}
        lin = lambda x, n: F.linear(x, w["%s.%s.weight" % (p, nm.get(n, n))], w["%s.%s.bias" % (p, nm.get(n, n))])
        q, k, v = lin(h, "query"), lin(h, "key"), lin(h, "value")
        scale = 1 / (C ** 0.5)
        scores = torch.baddbmm(torch.empty(B, H * W, H * W, dtype=q.dtype), q, k.transpose(-1, -2), beta=0, alpha=scale)
        probs = scores.float().softmax(dim=-1).to(q.dtype)
        h = torch.bmm(probs, v)
        h = lin(h, "proj_attn")
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return (h + residual) / 1.0

    def encode(self, x):
        w, c = self.w, self.cfg
        h = F.conv2d(x, w["encoder.conv_in.weight"], w["encoder.conv_in.bias"], padding=1)
        n = len(c["block_out_channels"])
        for i in range(n):
            for r in range(c["layers_per_block"]):
                h = self.resnet(h, f"encoder.down_blocks.{i}.resnets.{r}")
            if i != n - 1:  # Downsample2D(use_conv=True, padding=0)
                h = F.pad(h, (0, 1, 0, 1), mode="constant", value=0)
                h = F.conv2d(h, w[f"encoder.down_blocks.{i}.downsamplers.0.conv.weight"],
                             w[f"encoder.down_blocks.{i}.downsamplers.0.conv.bias"], stride=2)
        h = self.resnet(h, "encoder.mid_block.resnets.0")
        h = self.attention(h, "encoder.mid_block.attentions.0")
        h = self.resnet(h, "encoder.mid_block.resnets.1")
        h = F.silu(F.group_norm(h, self.groups, w["encoder.conv_norm_out.weight"], w["encoder.conv_norm_out.bias"], EPS))
        h = F.conv2d(h, w["encoder.conv_out.weight"], w["encoder.conv_out.bias"], padding=1)
        moments = F.conv2d(h, w["quant_conv.weight"], w["quant_conv.bias"])
        mean, logvar = torch.chunk(moments, 2, dim=1)
        logvar = torch.clamp(logvar, -30.0, 20.0)
        return mean, logvar


def gen(name, model, shape, seed, note):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float32) * 2 - 1  # pixels in [-1, 1]
    with torch.no_grad():
        mean, logvar = Port(model).encode(x)
    d = os.path.join(ROOT, "vision", "vae.encode", name)
    os.makedirs(d, exist_ok=True)
    write_st(os.path.join(d, "inputs.safetensors"), {"image": x})
    write_st(os.path.join(d, "expected.safetensors"), {"mean": mean.contiguous(), "logvar": logvar.contiguous()})
    case = {"stage": "vae.encode", "model": "../../../../../../shared/golden/models/" + model, "params": {},
            "atol": 5e-5, "rtol": 1e-4, "source": SOURCE, "note": note}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    print(d, tuple(mean.shape), float(mean.abs().max()), float(logvar.abs().max()))


SOURCE_LATENTS = ("tools/gen_vae_cases.py: huggingface/diffusers v0.17.0 VaeImageProcessor.preprocess (Pillow 9.4 "
                  "Image.resize LANCZOS to multiples of 8, /255, 2x-1) ported line by line with the real Pillow, then "
                  "the torch float32 port of AutoencoderKL.encode above, latent_dist.mode() x vae.config.scaling_factor; "
                  "NOT diffusers itself")


def gen_image_latents(name, model, size, seed, note, smooth=True):
    """Stage "sd.image_latents": a PNG of `size` (w, h) -> what StableDiffusionImg2ImgPipeline's
    prepare_latents makes of it, with the distribution's mode for its sample (the library draws the
    sample's noise from its own documented generator, which torch cannot reproduce)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    w, h = size
    if smooth:  # a photo-like picture: gradients plus a little noise, so the resize filter matters
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        base = np.stack([128 + 100 * np.sin(xx / 5.0 + c) * np.cos(yy / 7.0 - c) for c in range(3)], axis=-1)
        px = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    else:
        px = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    d = os.path.join(ROOT, "vision", "sd.image_latents", name)
    os.makedirs(d, exist_ok=True)
    Image.fromarray(px, "RGB").save(os.path.join(d, "input.png"))
    img = Image.open(os.path.join(d, "input.png")).convert("RGB")
    # VaeImageProcessor.resize (vae_scale_factor 8, resample "lanczos"); Pillow copies when the size is unchanged
    cw, ch = (x - x % 8 for x in (img.width, img.height))
    img = img.resize((cw, ch), resample=Image.LANCZOS)
    x = np.array(img).astype(np.float32) / 255.0
    x = torch.from_numpy(x[None].transpose(0, 3, 1, 2))
    x = 2.0 * x - 1.0
    port = Port(model)
    with torch.no_grad():
        mean, _ = port.encode(x)
    latents = port.cfg["scaling_factor"] * mean
    write_st(os.path.join(d, "expected.safetensors"), {"latents": latents.contiguous()})
    case = {"stage": "sd.image_latents", "model": "../../../../../../shared/golden/models/" + model,
            "params": {"file": "input.png", "sample": False}, "atol": 5e-5, "rtol": 1e-4, "source": SOURCE_LATENTS,
            "note": note}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    print(d, (w, h), "->", tuple(latents.shape), float(latents.abs().max()))


SOURCE_VIDEO = ("tools/gen_vae_cases.py: huggingface/diffusers v0.18.0 pipeline_text_to_video_synth_img2img.py "
                "preprocess_video (uint8 frames / 255, [b, c, f, h, w], 2x-1) and VideoToVideoSDPipeline.prepare_latents "
                "(frames into the batch, vae.encode(video).latent_dist.mode() x vae.config.scaling_factor, reshape and "
                "permute back) ported line by line, on the torch float32 port of AutoencoderKL.encode above; NOT "
                "diffusers itself")


def gen_video_latents(name, model, shape, seed, note):
    """Stage "zeroscope.video_latents": frames U8 [F, H, W, 3] -> VideoToVideoSDPipeline's init latents
    [1, C, F, h, w] (the mode, as gen_image_latents)."""
    f, h, w = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = [np.clip(np.stack([128 + 100 * np.sin(xx / 4.0 + c + k) * np.cos(yy / 6.0 - c) for c in range(3)],
                               axis=-1) + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8) for k in range(f)]
    # preprocess_video (a list of numpy frames)
    video = np.stack(frames, axis=0)
    video = np.array(video).astype(np.float32) / 255.0
    video = video[None, ...]
    video = torch.from_numpy(video.transpose(0, 4, 1, 2, 3))
    video = 2.0 * video - 1.0
    # prepare_latents
    bsz, channel, nframes, width, height = video.shape
    video = video.permute(0, 2, 1, 3, 4).reshape(bsz * nframes, channel, width, height)
    port = Port(model)
    with torch.no_grad():
        mean, _ = port.encode(video)
    latents = port.cfg["scaling_factor"] * mean
    latents = latents[None, :].reshape((bsz, nframes, latents.shape[1]) + latents.shape[2:]).permute(0, 2, 1, 3, 4)
    d = os.path.join(ROOT, "video", "zeroscope.video_latents", name)
    os.makedirs(d, exist_ok=True)
    write_st(os.path.join(d, "inputs.safetensors"), {"frames": np.stack(frames, axis=0)}, u8=("frames",))
    write_st(os.path.join(d, "expected.safetensors"), {"latents": latents.contiguous()})
    case = {"stage": "zeroscope.video_latents", "model": "../../../../../../shared/golden/models/" + model,
            "params": {"sample": False}, "atol": 5e-5, "rtol": 1e-4, "source": SOURCE_VIDEO, "note": note}
    with open(os.path.join(d, "case.json"), "w") as fh:
        json.dump(case, fh, indent=1)
        fh.write("\n")
    print(d, shape, "->", tuple(latents.shape), float(latents.abs().max()))


def main():
    torch.set_num_threads(1)
    gen_image_latents("sd_37x29_cut", "sd-a", (37, 29), 4, "37x29 -> Lanczos to 32x24 -> latents [1, 4, 3, 4]")
    gen_image_latents("sd_40x24_exact", "sd-a", (40, 24), 5, "40x24, multiples of 8: no resize -> [1, 4, 3, 5]")
    gen_image_latents("sd_71x52_noise", "sd-a", (71, 52), 6, "71x52 of uniform noise -> Lanczos to 64x48",
                      smooth=False)
    gen_image_latents("sd_16x63_tall", "sd-a", (16, 63), 7, "16x63: only the height is cut (one Lanczos pass, 63 -> 56)")
    gen_video_latents("zs_3x32x48", "zeroscope-a", (3, 32, 48), 8, "3 frames of 48x32 -> [1, 4, 3, 4, 6]")
    gen_video_latents("zs_1x24x16", "zeroscope-a", (1, 24, 16), 9, "one frame, portrait 16x24 -> [1, 4, 1, 3, 2]")
    if sys.argv[1:] == ["image_latents"]:  # leave the vae.encode cases as committed
        return
    gen("sd_b1_32x32", "sd-a", (1, 3, 32, 32), 1, "image U(-1,1) -> mean, logvar (clamped), unscaled")
    gen("sd_b2_24x40", "sd-a", (2, 3, 24, 40), 2, "batch 2, non-square, odd latent width 5")
    gen("audioldm_b1_36x64", "audioldm-a", (1, 1, 36, 64), 3,
        "AudioLDM's mel VAE (1 input channel, 8 latent channels, scale 4); latent height 9 (odd)")


if __name__ == "__main__":
    main()
