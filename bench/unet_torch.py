#!/usr/bin/python3
"""unet_torch.py — the PyTorch side of bench/run_decoders.sh: a compact plain-torch port of the three
diffusion-decoder networks libnextgpt runs, reading diffusers / transformers folders (config.json +
safetensors, upstream tensor names):

  - diffusers 0.17 UNet2DConditionModel: conv_in, sinusoidal time embedding (flip_sin_to_cos,
    freq_shift) -> Linear-SiLU-Linear, optional class_embed_type "simple_projection" (+
    class_embeddings_concat, AudioLDM), DownBlock2D / CrossAttnDownBlock2D, UNetMidBlock2DCrossAttn,
    UpBlock2D / CrossAttnUpBlock2D (skip concat, nearest upsample to the skip's size when the latent
    is not a multiple of 8), ResnetBlock2D with the time embedding, Transformer2DModel (GroupNorm,
    1x1 proj_in/out, BasicTransformerBlock: self-attention, cross-attention — a second
    self-attention when encoder_hidden_states is None, as AudioLDM runs it — GEGLU feed-forward);
  - diffusers 0.17 AutoencoderKL decoder (post_quant_conv, mid block with the single-head attention,
    stored under either the old query/key/value/proj_attn or the new to_q/.../to_out.0 names,
    UpDecoderBlock2D);
  - transformers SpeechT5HifiGan (conv_pre, ConvTranspose1d upsamplers, mean of the multi-receptive-
    field residual blocks, leaky ReLU 0.01, conv_post, tanh).

Modes (Debian's torch 1.13: /usr/bin/python3):

  bench/unet_torch.py --check GOLDEN_DIR
      runs the port in float32 on every unet2d / vae.decode (vision) and audioldm.unet /
      audioldm.vae_decode / vocoder.hifigan (audio) case under GOLDEN_DIR (/work/shared/golden) and
      checks |ours - expected| <= atol + rtol |expected| with the case's tolerances; exit 1 on a failure.

  OPENBLAS_CORETYPE=SkylakeX bench/unet_torch.py --bench DIR TAG REPS [THREADS]
      the same-run baseline of bench_decoders: reads DIR/io/TAG.json (component, model folder) and
      DIR/io/TAG.inputs.safetensors (written by bench_decoders), runs the component in float32 and in
      bfloat16 (the model cast to bf16: torch 1.13's CPU autocast fails on GroupNorm), channels-last
      for the 2-D models, best of REPS runs, and prints one row per dtype with the max abs / rel
      difference to libnextgpt's output on the same inputs (DIR/io/TAG.ours.f32.safetensors).
"""
import json, math, os, struct, sys, time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the meson test skips (77) where numpy/torch are missing
    sys.stderr.write("unet_torch.py: %s (use Debian's /usr/bin/python3 with python3-torch)\n" % e)
    sys.exit(77)

ST_DT = {"F32": (np.float32, None), "I64": (np.int64, None), "F16": (np.float16, None), "BF16": (np.uint16, "bf16")}


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        npdt, special = ST_DT[v["dtype"]]
        a, b = v["data_offsets"]
        arr = np.array(mm[base + a:base + b]).view(npdt).reshape(v["shape"])
        t = torch.from_numpy(arr)
        if special == "bf16":
            t = (t.to(torch.int32) << 16).view(torch.float32)
        out[k] = t
    return out


def find_weights(d):
    for name in ("diffusion_pytorch_model.safetensors", "model.safetensors"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise FileNotFoundError(d + ": no safetensors weights")


class Model:
    """Weights of one folder, cast to `dtype`; 4-D conv weights in channels-last when asked."""

    def __init__(self, d, dtype=torch.float32, channels_last=False):
        self.cfg = json.load(open(os.path.join(d, "config.json")))
        self.dtype = dtype
        self.cl = channels_last
        w = read_st(find_weights(d))
        for k, v in w.items():
            v = v.to(dtype) if v.is_floating_point() else v
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
            w[k] = v
        self.w = w

    def conv(self, x, p, **kw):
        return F.conv2d(x, self.w[p + ".weight"], self.w.get(p + ".bias"), **kw)

    def lin(self, x, p):
        return F.linear(x, self.w[p + ".weight"], self.w.get(p + ".bias"))

    def gn(self, x, p, groups, eps):
        return F.group_norm(x, groups, self.w[p + ".weight"], self.w[p + ".bias"], eps)

    def resnet(self, x, temb, p, groups, eps):
        """ResnetBlock2D (resnet_time_scale_shift default, output_scale_factor 1)."""
        h = self.conv(F.silu(self.gn(x, p + ".norm1", groups, eps)), p + ".conv1", padding=1)
        if temb is not None:
            h = h + self.lin(F.silu(temb), p + ".time_emb_proj")[:, :, None, None]
        h = self.conv(F.silu(self.gn(h, p + ".norm2", groups, eps)), p + ".conv2", padding=1)
        if p + ".conv_shortcut.weight" in self.w:
            x = self.conv(x, p + ".conv_shortcut")
        return x + h

    def upsample(self, x, p, size=None):
        """Upsample2D(use_conv): nearest x2 (or to the skip's size), 3x3 conv."""
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.conv(x, p + ".conv", padding=1)


def attention(q, k, v, heads):
    """softmax(q k^T / sqrt(d)) v over [B, L, heads * d] (diffusers' AttnProcessor math)."""
    B, L, C = q.shape
    S = k.shape[1]
    d = C // heads
    q = q.reshape(B, L, heads, d).transpose(1, 2).reshape(B * heads, L, d)
    k = k.reshape(B, S, heads, d).transpose(1, 2).reshape(B * heads, S, d)
    v = v.reshape(B, S, heads, d).transpose(1, 2).reshape(B * heads, S, d)
    if q.is_cuda and hasattr(F, "scaled_dot_product_attention"):  # torch >= 2 on a GPU: as diffusers 0.17 there
        o = F.scaled_dot_product_attention(q, k, v)
    else:
        a = torch.softmax(torch.bmm(q * (d ** -0.5), k.transpose(1, 2)), dim=-1)
        o = torch.bmm(a, v)
    return o.reshape(B, heads, L, d).transpose(1, 2).reshape(B, L, C)


class UNet(Model):
    """diffusers 0.17 UNet2DConditionModel (2-D), the subset SD 1.5 and AudioLDM use."""

    def __init__(self, d, dtype=torch.float32, channels_last=False):
        super().__init__(d, dtype, channels_last)
        c = self.cfg
        assert c.get("_class_name", "UNet2DConditionModel") == "UNet2DConditionModel", c.get("_class_name")
        assert not c.get("use_linear_projection", False) and c.get("resnet_time_scale_shift", "default") == "default"
        assert c.get("class_embed_type") in (None, "simple_projection"), c.get("class_embed_type")
        self.bo = c["block_out_channels"]
        n = len(self.bo)
        ahd = c["attention_head_dim"]
        self.heads = ahd if isinstance(ahd, list) else [ahd] * n  # diffusers 0.17: the number of heads
        self.groups = c["norm_num_groups"]
        self.eps = c["norm_eps"]

    def transformer(self, x, ehs, p, heads):
        """Transformer2DModel, continuous input, 1 layer, 1x1 conv projections."""
        w = self.w
        B, C, H, W = x.shape
        res = x
        h = self.gn(x, p + ".norm", self.groups, 1e-6)
        h = self.conv(h, p + ".proj_in")
        inner = h.shape[1]
        h = h.permute(0, 2, 3, 1).reshape(B, H * W, inner)
        b = p + ".transformer_blocks.0"
        n = F.layer_norm(h, (inner,), w[b + ".norm1.weight"], w[b + ".norm1.bias"], 1e-5)
        h = self.lin(attention(self.lin(n, b + ".attn1.to_q"), self.lin(n, b + ".attn1.to_k"),
                               self.lin(n, b + ".attn1.to_v"), heads), b + ".attn1.to_out.0") + h
        n = F.layer_norm(h, (inner,), w[b + ".norm2.weight"], w[b + ".norm2.bias"], 1e-5)
        kv = n if ehs is None else ehs
        h = self.lin(attention(self.lin(n, b + ".attn2.to_q"), self.lin(kv, b + ".attn2.to_k"),
                               self.lin(kv, b + ".attn2.to_v"), heads), b + ".attn2.to_out.0") + h
        n = F.layer_norm(h, (inner,), w[b + ".norm3.weight"], w[b + ".norm3.bias"], 1e-5)
        a, gate = self.lin(n, b + ".ff.net.0.proj").chunk(2, dim=-1)
        h = self.lin(a * F.gelu(gate), b + ".ff.net.2") + h
        h = h.reshape(B, H, W, inner).permute(0, 3, 1, 2)
        if self.cl:
            h = h.contiguous(memory_format=torch.channels_last)
        else:
            h = h.contiguous()
        return self.conv(h, p + ".proj_out") + res

    def forward(self, sample, timestep, ehs=None, class_labels=None):
        """sample [B, C, h, w]; timestep: float tensor [B] or [1]; ehs [B, S, D] or None;
        class_labels [B, D] or None."""
        c, w = self.cfg, self.w
        B = sample.shape[0]
        dt = self.dtype
        # time embedding (Timesteps: sinusoid in float32, then the model's dtype)
        t = timestep.to(torch.float32).reshape(-1).expand(B)
        half = self.bo[0] // 2
        ex = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=sample.device) /
                       (half - c.get("freq_shift", 0)))
        e = t[:, None] * ex[None]
        e = torch.cat([torch.sin(e), torch.cos(e)], -1)
        if c.get("flip_sin_to_cos", True):
            e = torch.cat([e[:, half:], e[:, :half]], -1)
        e = e.to(dt)
        emb = self.lin(F.silu(self.lin(e, "time_embedding.linear_1")), "time_embedding.linear_2")
        if c.get("class_embed_type") == "simple_projection":
            ce = self.lin(class_labels.to(dt), "class_embedding")
            emb = torch.cat([emb, ce], -1) if c.get("class_embeddings_concat") else emb + ce
        n = len(self.bo)
        up_factor = 2 ** (n - 1)
        fwd_size = any(s % up_factor != 0 for s in sample.shape[-2:])
        x = sample.to(dt)
        ehs = ehs.to(dt) if ehs is not None else None
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.conv(x, "conv_in", padding=1)
        skips = [x]
        L = c["layers_per_block"]
        for i, bt in enumerate(c["down_block_types"]):
            for j in range(L):
                p = "down_blocks.%d" % i
                x = self.resnet(x, emb, p + ".resnets.%d" % j, self.groups, self.eps)
                if bt == "CrossAttnDownBlock2D":
                    x = self.transformer(x, ehs, p + ".attentions.%d" % j, self.heads[i])
                skips.append(x)
            if i != n - 1:
                x = self.conv(x, "down_blocks.%d.downsamplers.0.conv" % i, stride=2, padding=c.get("downsample_padding", 1))
                skips.append(x)
        x = self.resnet(x, emb, "mid_block.resnets.0", self.groups, self.eps)
        x = self.transformer(x, ehs, "mid_block.attentions.0", self.heads[-1])
        x = self.resnet(x, emb, "mid_block.resnets.1", self.groups, self.eps)
        rheads = list(reversed(self.heads))
        for i, bt in enumerate(c["up_block_types"]):
            p = "up_blocks.%d" % i
            for j in range(L + 1):
                x = torch.cat([x, skips.pop()], dim=1)
                x = self.resnet(x, emb, p + ".resnets.%d" % j, self.groups, self.eps)
                if bt == "CrossAttnUpBlock2D":
                    x = self.transformer(x, ehs, p + ".attentions.%d" % j, rheads[i])
            if i != n - 1:
                x = self.upsample(x, p + ".upsamplers.0", skips[-1].shape[2:] if fwd_size else None)
        x = F.silu(self.gn(x, "conv_norm_out", self.groups, self.eps))
        return self.conv(x, "conv_out", padding=1)


class VAEDecoder(Model):
    """diffusers 0.17 AutoencoderKL.decode (post_quant_conv + Decoder); latents already divided by
    the scaling factor."""

    def mid_attention(self, x, p):
        w = self.w
        names = (("to_q", "to_k", "to_v", "to_out.0") if p + ".to_q.weight" in w
                 else ("query", "key", "value", "proj_attn"))
        B, C, H, W = x.shape
        h = self.gn(x, p + ".group_norm", self.cfg["norm_num_groups"], 1e-6)
        h = h.reshape(B, C, H * W).transpose(1, 2)
        q, k, v = (self.lin(h, p + "." + nm) for nm in names[:3])
        # upcast_softmax: the scores' softmax in float32
        if q.is_cuda and hasattr(F, "scaled_dot_product_attention"):
            a = F.scaled_dot_product_attention(q, k, v)
        else:
            s = torch.bmm(q * (C ** -0.5), k.transpose(1, 2)).float().softmax(-1).to(q.dtype)
            a = torch.bmm(s, v)
        h = self.lin(a, p + "." + names[3])
        h = h.transpose(1, 2).reshape(B, C, H, W)
        if self.cl:
            h = h.contiguous(memory_format=torch.channels_last)
        return h + x

    def forward(self, z):
        c = self.cfg
        g = c["norm_num_groups"]
        x = z.to(self.dtype)
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.conv(x, "post_quant_conv")
        x = self.conv(x, "decoder.conv_in", padding=1)
        x = self.resnet(x, None, "decoder.mid_block.resnets.0", g, 1e-6)
        x = self.mid_attention(x, "decoder.mid_block.attentions.0")
        x = self.resnet(x, None, "decoder.mid_block.resnets.1", g, 1e-6)
        n = len(c["block_out_channels"])
        for i in range(n):
            p = "decoder.up_blocks.%d" % i
            for j in range(c["layers_per_block"] + 1):
                x = self.resnet(x, None, p + ".resnets.%d" % j, g, 1e-6)
            if i != n - 1:
                x = self.upsample(x, p + ".upsamplers.0")
        x = F.silu(self.gn(x, "decoder.conv_norm_out", g, 1e-6))
        return self.conv(x, "decoder.conv_out", padding=1)


class HifiGan(Model):
    """transformers SpeechT5HifiGan: mel [B, T, model_in_dim] -> waveform [B, samples]."""

    def __init__(self, d, dtype=torch.float32, channels_last=False):
        super().__init__(d, dtype, channels_last)
        n = len(self.cfg["upsample_rates"])
        self.f32 = [(self.w["upsampler.%d.weight" % i].float(), self.w["upsampler.%d.bias" % i].float())
                    for i in range(n)]

    def c1(self, x, p, **kw):
        return F.conv1d(x, self.w[p + ".weight"], self.w[p + ".bias"], **kw)

    def forward(self, mel):
        c, w = self.cfg, self.w
        x = mel.to(self.dtype)
        if c.get("normalize_before"):
            x = (x - w["mean"]) / w["scale"]
        x = self.c1(x.transpose(1, 2), "conv_pre", padding=3)
        ks, ds = c["resblock_kernel_sizes"], c["resblock_dilation_sizes"]
        slope = c["leaky_relu_slope"]
        for i, (u, k) in enumerate(zip(c["upsample_rates"], c["upsample_kernel_sizes"])):
            x = F.leaky_relu(x, slope)
            wu, bu = w["upsampler.%d.weight" % i], w["upsampler.%d.bias" % i]
            if self.dtype == torch.bfloat16:
                # torch 1.13's CPU conv_transpose1d rejects bf16 (it builds a wrong 2-D weight
                # view and fails its channel check): these run in f32 on f32 copies of the weights
                wu, bu = self.f32[i]
                x = F.conv_transpose1d(x.float(), wu, bu, stride=u, padding=(k - u) // 2).to(self.dtype)
            else:
                x = F.conv_transpose1d(x, wu, bu, stride=u, padding=(k - u) // 2)
            acc = None
            for j, (kk, dd) in enumerate(zip(ks, ds)):
                p = "resblocks.%d" % (i * len(ks) + j)
                h = x
                for m, d in enumerate(dd):
                    r = h
                    h = self.c1(F.leaky_relu(h, slope), p + ".convs1.%d" % m, dilation=d, padding=(kk * d - d) // 2)
                    h = self.c1(F.leaky_relu(h, slope), p + ".convs2.%d" % m, padding=(kk - 1) // 2)
                    h = h + r
                acc = h if acc is None else acc + h
            x = acc / len(ks)
        x = self.c1(F.leaky_relu(x), "conv_post", padding=3)
        return torch.tanh(x).squeeze(1)


# ------------------------------------------------------------------------------------------------
# --check: the port against the golden cases


def run_component(comp, model, inp, scale=None):
    if comp == "unet":
        return model.forward(inp["sample"], inp["timestep"], inp.get("encoder_hidden_states"), inp.get("class_labels"))
    if comp == "vae":
        z = inp["latents"]
        if scale is not None:
            z = (1.0 / scale) * z
        return model.forward(z)
    if comp == "vocoder":
        m = inp["mel"]
        return model.forward(m.squeeze(1) if m.dim() == 4 else m)
    raise ValueError(comp)


CHECKS = [  # (family/stage, component, model subfolder, divide latents by the scaling factor)
    ("vision/unet2d", "unet", "unet", False),
    ("vision/vae.decode", "vae", "vae", False),
    ("audio/audioldm.unet", "unet", "unet", False),
    ("audio/audioldm.vae_decode", "vae", "vae", True),
    ("audio/vocoder.hifigan", "vocoder", "vocoder", False),
]
CLASSES = {"unet": UNet, "vae": VAEDecoder, "vocoder": HifiGan}


def check(golden):
    if not os.path.isdir(golden):
        print("golden directory %s not found: skipped" % golden)
        return 77
    torch.set_num_threads(int(os.environ.get("NGPT_BENCH_THREADS", "2")))
    fails = total = 0
    for stage, comp, sub, divide in CHECKS:
        sd = os.path.join(golden, stage)
        if not os.path.isdir(sd):
            print("skip %s (not found)" % stage)
            continue
        for case in sorted(os.listdir(sd)):
            cd = os.path.join(sd, case)
            cj = json.load(open(os.path.join(cd, "case.json")))
            mdir = os.path.normpath(os.path.join(cd, cj["model"], sub))
            model = CLASSES[comp](mdir)
            inp = read_st(os.path.join(cd, "inputs.safetensors"))
            exp = list(read_st(os.path.join(cd, "expected.safetensors")).values())[0]
            scale = model_scale(os.path.join(os.path.dirname(mdir), "vae")) if divide else None
            with torch.no_grad():
                out = run_component(comp, model, inp, scale)
            err = (out - exp).abs()
            ok = out.shape == exp.shape and bool((err <= cj["atol"] + cj["rtol"] * exp.abs()).all())
            total += 1
            fails += not ok
            print("%s %s/%s: max |diff| %.2e (atol %.0e, rtol %.0e)" %
                  ("ok  " if ok else "FAIL", stage, case, err.max().item(), cj["atol"], cj["rtol"]))
    print("%d/%d golden cases pass" % (total - fails, total))
    return 1 if fails or total == 0 else 0


def model_scale(vae_dir):
    return json.load(open(os.path.join(vae_dir, "config.json")))["scaling_factor"]


# ------------------------------------------------------------------------------------------------
# --bench: same weights, same inputs as bench_decoders


def bench(d, tag, reps, threads):
    torch.set_num_threads(threads)
    meta = json.load(open(os.path.join(d, "io", tag + ".json")))
    comp, mdir = meta["component"], os.path.join(d, meta["model"])
    inp = read_st(os.path.join(d, "io", tag + ".inputs.safetensors"))
    ours_p = os.path.join(d, "io", tag + ".ours.f32.safetensors")
    ours = list(read_st(ours_p).values())[0] if os.path.exists(ours_p) else None
    cl = comp != "vocoder"
    print("# torch %s, %d threads, OPENBLAS_CORETYPE=%s, %s, load average %.2f" %
          (torch.__version__, torch.get_num_threads(), os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
           "channels-last" if cl else "ncw", os.getloadavg()[0]))
    f32_out = None
    # NGPT_BENCH_DTYPES=f32 skips the bf16 row: on CPUs without AVX-512 torch 1.13's bf16 is
    # scalar (20x its f32 on a Zen 3), minutes per config for no information.
    want = os.environ.get("NGPT_BENCH_DTYPES", "f32 bf16").split()
    for dt, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        if name not in want:
            continue
        model = CLASSES[comp](mdir, dt, cl)
        times = []
        with torch.no_grad():
            for r in range(reps):
                t0 = time.perf_counter()
                out = run_component(comp, model, inp)
                times.append(time.perf_counter() - t0)
        out = out.float()
        if f32_out is None:
            f32_out = out
        diff = ""
        if ours is not None:
            ref = f32_out if name == "bf16" else out
            e = (ours - ref).abs().max().item()
            diff = "max |ours f32 - torch f32| %.2e (rel to max |out| %.2e)" % (e, e / max(ref.abs().max().item(), 1e-30))
            if name == "bf16":
                e2 = (out - f32_out).abs().max().item()
                diff = "max |torch bf16 - torch f32| %.2e (rel %.2e)" % (e2, e2 / max(f32_out.abs().max().item(), 1e-30))
        print("| %s | torch | %s | %.3f | %s | %.2f |" % (tag, name, min(times), diff, os.getloadavg()[0]))
        sys.stdout.flush()
        del model


def main():
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "--check":
        sys.exit(check(a[1]))
    if len(a) >= 3 and a[0] == "--bench":
        bench(a[1], a[2], int(a[3]) if len(a) > 3 else 2, int(a[4]) if len(a) > 4 else 2)
        return
    sys.stderr.write(__doc__)
    sys.exit(2)


if __name__ == "__main__":
    main()
