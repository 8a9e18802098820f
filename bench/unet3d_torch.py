#!/usr/bin/python3
"""unet3d_torch.py — the PyTorch side of bench/run_unet3d.sh: a compact plain-torch port of diffusers
0.17.0's UNet3DConditionModel (unet_3d_condition.py, unet_3d_blocks.py, resnet.py ResnetBlock2D /
TemporalConvLayer / Down- and Upsample2D, transformer_2d.py with use_linear_projection,
transformer_temporal.py, attention.py BasicTransformerBlock with GEGLU, attention_processor.py
AttnProcessor: baddbmm + softmax + bmm; baddbmm on zeros with beta=1
instead of on torch.empty with beta=0, which gives NaN on Debian's torch 1.13.1, see golden/audio/STAGES.md) and of AutoencoderKL's decoder as TextToVideoSDPipeline's
decode_latents runs it (frame by frame), reading a diffusers folder (unet/ and vae/: config.json +
diffusion_pytorch_model.safetensors, F32) in the diffusers tensor names. Not diffusers itself (not
installed here): proven against the golden cases that diffusers 0.17 produced (--check).

  /usr/bin/python3 bench/unet3d_torch.py --check /work/shared/golden
      runs every zeroscope.unet3d and zeroscope.vae_decode case under GOLDEN/video through the port
      (model GOLDEN/models/zeroscope-a) and compares with the expected tensors at the case tolerance.

  OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/unet3d_torch.py --bench DIR [threads] [reps]
      DIR is what bench_unet3d wrote: DIR/unet, DIR/vae (a full-size random Zeroscope checkpoint),
      DIR/io/*.f32 (inputs and libnextgpt's outputs). Times one CFG UNet step (batch 2) and the VAE
      decode per frame in the configurations below (best of reps each), prints table rows in the
      same format as bench_unet3d and the max difference against libnextgpt's outputs.

  /usr/bin/python3 bench/unet3d_torch.py --conv [threads]
      the level-0 temporal Conv3d and spatial 3x3 conv alone (bench_unet3d's NGPT_BENCH_ZS_CONV=1).

PyTorch configurations tried (torch 1.13 CPU has no scaled_dot_product_attention):
  f32          NCHW contiguous, torch.inference_mode
  f32-cl       channels_last activations and conv weights (oneDNN's preferred conv layout)
  bf16         torch.autocast("cpu", bfloat16) (slower than f32 on this AVX512-BF16, no-AMX host;
               run only with --bf16)
"""
import json, math, os, resource, struct, sys, time

import numpy as np
import torch
import torch.nn.functional as F


# ------------------------------------------------------------------------------------------------
# safetensors

def read_st(path):
    """F32 tensors of a safetensors file, mmapped (copy-on-write, no copy made)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="c")
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (path, k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(mm[base + a:base + b].view(np.float32).reshape(v["shape"]))
    return out


def read_case(path):
    """Any dtype used by the golden cases (F32, I64, U8)."""
    dt = {"F32": np.float32, "I64": np.int64, "U8": np.uint8, "F64": np.float64, "I32": np.int32}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=dt[v["dtype"]]).copy().reshape(v["shape"]))
    return out


# ------------------------------------------------------------------------------------------------
# UNet3DConditionModel

class UNet3D:
    def __init__(self, unet_dir, cl=False):
        self.c = json.load(open(os.path.join(unet_dir, "config.json")))
        assert self.c.get("_class_name") == "UNet3DConditionModel"
        self.w = read_st(os.path.join(unet_dir, "diffusion_pytorch_model.safetensors"))
        self.cl = cl
        if cl:  # channels_last conv weights
            self.w = {k: (v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v)
                      for k, v in self.w.items()}
        self.groups = self.c.get("norm_num_groups", 32)
        self.eps = self.c.get("norm_eps", 1e-5)
        self.hd = self.c.get("attention_head_dim", 64)  # the head SIZE in UNet3D (diffusers 0.17)

    # -- building blocks ----------------------------------------------------------------------
    def conv(self, x, p, stride=1, padding=1):
        return F.conv2d(x, self.w[p + ".weight"], self.w[p + ".bias"], stride=stride, padding=padding)

    def lin(self, x, p, bias=True):
        return F.linear(x, self.w[p + ".weight"], self.w.get(p + ".bias") if bias else None)

    def gn(self, x, p, groups, eps):
        return F.group_norm(x, groups, self.w[p + ".weight"], self.w[p + ".bias"], eps)

    def ln(self, x, p):
        return F.layer_norm(x, (x.shape[-1],), self.w[p + ".weight"], self.w[p + ".bias"], 1e-5)

    def resnet(self, x, temb, p):  # ResnetBlock2D, time_embedding_norm "default", output_scale_factor 1
        h = F.silu(self.gn(x, p + ".norm1", self.groups, self.eps))
        h = self.conv(h, p + ".conv1")
        h = h + self.lin(F.silu(temb), p + ".time_emb_proj")[:, :, None, None]
        h = F.silu(self.gn(h, p + ".norm2", self.groups, self.eps))
        h = self.conv(h, p + ".conv2")
        if p + ".conv_shortcut.weight" in self.w:
            x = self.conv(x, p + ".conv_shortcut", padding=0)
        return x + h

    def temp_conv(self, x, p, nf):  # TemporalConvLayer: 4 x (GroupNorm(32) - SiLU - Conv3d (3,1,1)) + identity
        h = x[None, :].reshape((-1, nf) + x.shape[1:]).permute(0, 2, 1, 3, 4)
        identity = h
        for k in range(4):
            ci = 2 if k == 0 else 3
            h = F.silu(F.group_norm(h, 32, self.w[f"{p}.conv{k+1}.0.weight"], self.w[f"{p}.conv{k+1}.0.bias"], 1e-5))
            h = F.conv3d(h, self.w[f"{p}.conv{k+1}.{ci}.weight"], self.w[f"{p}.conv{k+1}.{ci}.bias"], padding=(1, 0, 0))
        h = identity + h
        return h.permute(0, 2, 1, 3, 4).reshape((h.shape[0] * h.shape[2], -1) + h.shape[3:])

    def attention(self, x, p, heads, ctx=None):  # Attention + AttnProcessor (diffusers 0.17)
        B, L, _ = x.shape
        ctx = x if ctx is None else ctx
        q, k, v = self.lin(x, p + ".to_q", False), self.lin(ctx, p + ".to_k", False), self.lin(ctx, p + ".to_v", False)
        d = q.shape[-1] // heads

        def h2b(t):
            return t.reshape(B, t.shape[1], heads, d).permute(0, 2, 1, 3).reshape(B * heads, t.shape[1], d)

        q, k, v = h2b(q), h2b(k), h2b(v)
        if q.is_cuda and hasattr(F, "scaled_dot_product_attention"):  # torch >= 2 on a GPU: as diffusers there
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            s = torch.baddbmm(torch.zeros(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype, device=q.device), q,
                              k.transpose(-1, -2), beta=1, alpha=d ** -0.5)  # diffusers: empty + beta=0 (NaN on 1.13)
            o = torch.bmm(s.softmax(dim=-1).to(v.dtype), v)
        o = o.reshape(B, heads, L, d).permute(0, 2, 1, 3).reshape(B, L, heads * d)
        return self.lin(o, p + ".to_out.0")

    def tblock(self, x, p, heads, ctx=None):  # BasicTransformerBlock (attn2: cross, or self when ctx is None)
        x = self.attention(self.ln(x, p + ".norm1"), p + ".attn1", heads) + x
        x = self.attention(self.ln(x, p + ".norm2"), p + ".attn2", heads, ctx) + x
        h = self.lin(self.ln(x, p + ".norm3"), p + ".ff.net.0.proj")
        h, gate = h.chunk(2, dim=-1)
        return self.lin(h * F.gelu(gate), p + ".ff.net.2") + x

    def transformer2d(self, x, ehs, p, heads):  # use_linear_projection=True (the 3-D blocks' default)
        B, C, H, W = x.shape
        h = self.gn(x, p + ".norm", self.groups, 1e-6)
        h = h.permute(0, 2, 3, 1).reshape(B, H * W, C)
        h = self.lin(h, p + ".proj_in")
        h = self.tblock(h, p + ".transformer_blocks.0", heads, ehs)
        h = self.lin(h, p + ".proj_out")
        h = h.reshape(B, H, W, C).permute(0, 3, 1, 2).contiguous()
        if self.cl:
            h = h.contiguous(memory_format=torch.channels_last)
        return h + x

    def temporal(self, x, p, heads, nf, groups):  # TransformerTemporalModel, as diffusers 0.17 writes it
        BF, C, H, W = x.shape
        B = BF // nf
        residual = x
        h = x[None, :].reshape(B, nf, C, H, W).permute(0, 2, 1, 3, 4)
        h = F.group_norm(h, groups, self.w[p + ".norm.weight"], self.w[p + ".norm.bias"], 1e-6)
        h = h.permute(0, 3, 4, 2, 1).reshape(B * H * W, nf, C)
        h = self.lin(h, p + ".proj_in")
        h = self.tblock(h, p + ".transformer_blocks.0", heads)
        h = self.lin(h, p + ".proj_out")
        h = h[None, None, :].reshape(B, H, W, C, nf).permute(0, 3, 4, 1, 2).contiguous()
        h = h.reshape(BF, C, H, W)
        if self.cl:
            h = h.contiguous(memory_format=torch.channels_last)
        return h + residual

    # -- forward --------------------------------------------------------------------------------
    def forward(self, sample, timestep, ehs):
        c, w = self.c, self.w
        B, _, nf, H, W = sample.shape
        bo = c["block_out_channels"]
        n = len(bo)
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(B).float()
        half = bo[0] // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=sample.device) / half)
        e = t[:, None] * freqs[None, :]
        e = torch.cat([torch.cos(e), torch.sin(e)], dim=-1)  # flip_sin_to_cos, shift 0
        emb = self.lin(F.silu(self.lin(e.to(sample.dtype), "time_embedding.linear_1")), "time_embedding.linear_2")
        emb = emb.repeat_interleave(nf, dim=0)
        ehs = ehs.repeat_interleave(nf, dim=0)

        x = sample.permute(0, 2, 1, 3, 4).reshape((B * nf, -1) + sample.shape[3:])
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.conv(x, "conv_in")
        x = self.temporal(x, "transformer_in", 8, nf, 32)

        up_size = None
        if H % (2 ** (n - 1)) or W % (2 ** (n - 1)):
            up_size = True  # forward_upsample_size: upsample to the skip's size
        skips = [x]
        for i in range(n):
            attn = c["down_block_types"][i].startswith("CrossAttn")
            heads = bo[i] // self.hd
            for j in range(c["layers_per_block"]):
                p = f"down_blocks.{i}"
                x = self.resnet(x, emb, f"{p}.resnets.{j}")
                x = self.temp_conv(x, f"{p}.temp_convs.{j}", nf)
                if attn:
                    x = self.transformer2d(x, ehs, f"{p}.attentions.{j}", heads)
                    x = self.temporal(x, f"{p}.temp_attentions.{j}", heads, nf, self.groups)
                skips.append(x)
            if i != n - 1:
                x = self.conv(x, f"down_blocks.{i}.downsamplers.0.conv", stride=2, padding=1)
                skips.append(x)

        heads = bo[-1] // self.hd
        x = self.resnet(x, emb, "mid_block.resnets.0")
        x = self.temp_conv(x, "mid_block.temp_convs.0", nf)
        x = self.transformer2d(x, ehs, "mid_block.attentions.0", heads)
        x = self.temporal(x, "mid_block.temp_attentions.0", heads, nf, self.groups)
        x = self.resnet(x, emb, "mid_block.resnets.1")
        x = self.temp_conv(x, "mid_block.temp_convs.1", nf)

        for i in range(n):
            r = n - 1 - i
            attn = c["up_block_types"][i].startswith("CrossAttn")
            heads = bo[r] // self.hd
            for j in range(c["layers_per_block"] + 1):
                p = f"up_blocks.{i}"
                x = torch.cat([x, skips.pop()], dim=1)
                x = self.resnet(x, emb, f"{p}.resnets.{j}")
                x = self.temp_conv(x, f"{p}.temp_convs.{j}", nf)
                if attn:
                    x = self.transformer2d(x, ehs, f"{p}.attentions.{j}", heads)
                    x = self.temporal(x, f"{p}.temp_attentions.{j}", heads, nf, self.groups)
            if i != n - 1:
                if up_size:
                    x = F.interpolate(x, size=skips[-1].shape[2:], mode="nearest")
                else:
                    x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                x = self.conv(x, f"up_blocks.{i}.upsamplers.0.conv")

        x = F.silu(self.gn(x, "conv_norm_out", self.groups, self.eps))
        x = self.conv(x, "conv_out")
        return x[None, :].reshape((-1, nf) + x.shape[1:]).permute(0, 2, 1, 3, 4)


# ------------------------------------------------------------------------------------------------
# AutoencoderKL decoder, frame by frame (TextToVideoSDPipeline.decode_latents)

class VAEDecoder:
    def __init__(self, vae_dir, cl=False):
        self.c = json.load(open(os.path.join(vae_dir, "config.json")))
        self.w = {k: v for k, v in read_st(os.path.join(vae_dir, "diffusion_pytorch_model.safetensors")).items()
                  if not k.startswith("encoder.") and not k.startswith("quant_conv.")}
        self.cl = cl
        if cl:
            self.w = {k: (v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v)
                      for k, v in self.w.items()}
        self.groups = self.c.get("norm_num_groups", 32)

    def conv(self, x, p, padding=1):
        return F.conv2d(x, self.w[p + ".weight"], self.w[p + ".bias"], padding=padding)

    def gn(self, x, p):
        return F.group_norm(x, self.groups, self.w[p + ".weight"], self.w[p + ".bias"], 1e-6)

    def resnet(self, x, p):
        h = self.conv(F.silu(self.gn(x, p + ".norm1")), p + ".conv1")
        h = self.conv(F.silu(self.gn(h, p + ".norm2")), p + ".conv2")
        if p + ".conv_shortcut.weight" in self.w:
            x = self.conv(x, p + ".conv_shortcut", padding=0)
        return x + h

    def attention(self, x, p):  # one head over H*W; both key spellings
        w = self.w
        names = ("to_q", "to_k", "to_v", "to_out.0") if p + ".to_q.weight" in w else ("query", "key", "value", "proj_attn")
        B, C, H, W = x.shape
        h = self.gn(x, p + ".group_norm").reshape(B, C, H * W).transpose(1, 2)
        q, k, v = (F.linear(h, w[f"{p}.{nm}.weight"], w[f"{p}.{nm}.bias"]) for nm in names[:3])
        if q.is_cuda and hasattr(F, "scaled_dot_product_attention"):
            h = F.scaled_dot_product_attention(q, k, v)
        else:
            s = torch.baddbmm(torch.zeros(B, H * W, H * W, dtype=q.dtype, device=q.device), q, k.transpose(-1, -2),
                              beta=1, alpha=C ** -0.5)
            h = torch.bmm(s.softmax(dim=-1).to(v.dtype), v)
        h = F.linear(h, w[f"{p}.{names[3]}.weight"], w[f"{p}.{names[3]}.bias"])
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        if self.cl:
            h = h.contiguous(memory_format=torch.channels_last)
        return h + x

    def decode(self, z):  # z [N, 4, h, w], already divided by the scaling factor
        c = self.c
        if self.cl:
            z = z.contiguous(memory_format=torch.channels_last)
        x = self.conv(z, "post_quant_conv", padding=0)
        x = self.conv(x, "decoder.conv_in")
        x = self.resnet(x, "decoder.mid_block.resnets.0")
        x = self.attention(x, "decoder.mid_block.attentions.0")
        x = self.resnet(x, "decoder.mid_block.resnets.1")
        n = len(c["block_out_channels"])
        for i in range(n):
            for r in range(c["layers_per_block"] + 1):
                x = self.resnet(x, f"decoder.up_blocks.{i}.resnets.{r}")
            if i != n - 1:
                x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"), f"decoder.up_blocks.{i}.upsamplers.0.conv")
        x = F.silu(self.gn(x, "decoder.conv_norm_out"))
        return self.conv(x, "decoder.conv_out")

    def decode_latents(self, latents, per_frame=True):  # [B,4,F,h,w] pipeline latents -> [B,3,F,H,W]
        latents = latents / self.c.get("scaling_factor", 0.18215)
        B, C, nf, h, w = latents.shape
        z = latents.permute(0, 2, 1, 3, 4).reshape(B * nf, C, h, w)
        if per_frame:
            img = torch.cat([self.decode(z[i:i + 1]) for i in range(B * nf)])
        else:
            img = self.decode(z)
        img = img.contiguous()
        return img[None, :].reshape((B, nf, -1) + img.shape[2:]).permute(0, 2, 1, 3, 4).float()


# ------------------------------------------------------------------------------------------------
# --check: the golden cases

def check(golden):
    model = os.path.join(golden, "models", "zeroscope-a")
    unet, vae = UNet3D(os.path.join(model, "unet")), VAEDecoder(os.path.join(model, "vae"))
    bad = 0
    for stage in ("zeroscope.unet3d", "zeroscope.vae_decode"):
        sd = os.path.join(golden, "video", stage)
        for case in sorted(os.listdir(sd)):
            d = os.path.join(sd, case)
            meta = json.load(open(os.path.join(d, "case.json")))
            inp, exp = read_case(os.path.join(d, "inputs.safetensors")), read_case(os.path.join(d, "expected.safetensors"))
            with torch.no_grad():
                if stage == "zeroscope.unet3d":
                    got, ref = unet.forward(inp["sample"], inp["timestep"], inp["encoder_hidden_states"]), exp["out"]
                else:
                    got, ref = vae.decode_latents(inp["latents"]), exp["frames"]
            ok = got.shape == ref.shape and bool(torch.allclose(got, ref, atol=meta["atol"], rtol=meta["rtol"]))
            err = (got - ref).abs().max().item() if got.shape == ref.shape else float("inf")
            print("%-4s %s/%s: shape %s, max |port - diffusers| %.3g (atol %g, rtol %g)" %
                  ("ok" if ok else "FAIL", stage, case, tuple(ref.shape), err, meta["atol"], meta["rtol"]))
            bad += not ok
    print("port vs golden: %s" % ("all cases pass" if not bad else "%d case(s) FAIL" % bad))
    return 1 if bad else 0


# ------------------------------------------------------------------------------------------------
# --bench: the same math on bench_unet3d's weights and inputs

def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fromfile(p, shape):
    return torch.from_numpy(np.fromfile(p, dtype=np.float32).reshape(shape))


def bench(d, threads, reps, bf16):
    torch.set_num_threads(threads)
    meta = json.load(open(os.path.join(d, "io", "meta.json")))
    B, nf, h, w, S, D, vf = (meta[k] for k in ("batch", "frames", "h", "w", "ctx", "cross_dim", "vae_frames"))
    sample = fromfile(os.path.join(d, "io", "sample.f32"), (B, 4, nf, h, w))
    ehs = fromfile(os.path.join(d, "io", "ehs.f32"), (B, S, D))
    lat = fromfile(os.path.join(d, "io", "latents.f32"), (1, 4, vf, h, w))
    ours_eps = fromfile(os.path.join(d, "io", "eps.ours.f32"), (B, 4, nf, h, w))
    ours_img = fromfile(os.path.join(d, "io", "frames.ours.f32"), (1, 3, vf, 8 * h, 8 * w))
    print("# torch %s, %d threads, OPENBLAS_CORETYPE=%s, load average %.2f" % (
        torch.__version__, torch.get_num_threads(), os.environ.get("OPENBLAS_CORETYPE", "(unset)"), os.getloadavg()[0]))
    configs = [("f32", False, False), ("f32-cl", True, False)] + ([("bf16", False, True)] if bf16 else [])
    for name, cl, ac in configs:
        t0 = time.perf_counter()
        unet = UNet3D(os.path.join(d, "unet"), cl)
        tl = time.perf_counter() - t0
        best, eps = 1e30, None
        with torch.inference_mode():
            for _ in range(reps):
                t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=ac):
                    eps = unet.forward(sample, meta["timestep"], ehs)
                best = min(best, time.perf_counter() - t0)
        eps = eps.float()
        err = (eps - ours_eps).abs().max().item() / max(eps.abs().max().item(), 1e-30)
        print("| torch %s | unet cfg step | %.2f | %.3f | %.2e | %.0f | %.2f |" % (
            name, tl, best, err, rss_mib(), os.getloadavg()[0]))
        sys.stdout.flush()
        del unet
        vae = VAEDecoder(os.path.join(d, "vae"), cl)
        best = 1e30
        with torch.inference_mode():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=ac):
                vae.decode_latents(lat[:, :, :1])  # warm-up, one frame
            for _ in range(reps):
                t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=ac):
                    img = vae.decode_latents(lat)
                best = min(best, time.perf_counter() - t0)
        err = (img - ours_img).abs().max().item() / max(img.abs().max().item(), 1e-30)
        print("| torch %s | vae decode / frame | %.2f | %.3f | %.2e | %.0f | %.2f |" % (
            name, tl, best / vf, err, rss_mib(), os.getloadavg()[0]))
        sys.stdout.flush()
        del vae


def conv(threads):
    """--conv: the shapes of bench_unet3d's NGPT_BENCH_ZS_CONV=1, best of 5 after a warm-up."""
    torch.set_num_threads(threads)
    x = torch.rand(2, 320, 8, 32, 32) * 2 - 1
    w3, w2, b = torch.rand(320, 320, 3, 1, 1) * 0.06 - 0.03, torch.rand(320, 320, 3, 3) * 0.02 - 0.01, torch.zeros(320)
    for cl in (False, True):
        x2 = x.permute(0, 2, 1, 3, 4).reshape(16, 320, 32, 32)
        xx, ww3, ww2 = x, w3, w2
        if cl:
            xx, ww3 = x.contiguous(memory_format=torch.channels_last_3d), w3.contiguous(memory_format=torch.channels_last_3d)
            x2, ww2 = x2.contiguous(memory_format=torch.channels_last), w2.contiguous(memory_format=torch.channels_last)
        for k in range(2):
            best = 1e30
            with torch.inference_mode():
                for r in range(6):
                    t0 = time.perf_counter()
                    if k == 0:
                        F.conv3d(xx, ww3, b, padding=(1, 0, 0))
                    else:
                        F.conv2d(x2, ww2, b, padding=1)
                    if r:
                        best = min(best, time.perf_counter() - t0)
            gf = 2.0 * 320 * 320 * (3 if k == 0 else 9) * 16384 / 1e9
            print("| torch%s | %s | %.1f ms | %.1f GFLOP/s | load %.2f |" % (
                " channels_last" if cl else "", "conv3d 3x1x1 [2,320,8,32,32]" if k == 0 else "conv2d 3x3 [16,320,32,32]",
                best * 1e3, gf / best, os.getloadavg()[0]))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--check":
        torch.set_num_threads(2)
        sys.exit(check(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--conv":
        conv(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    elif len(sys.argv) > 2 and sys.argv[1] == "--bench":
        args = [a for a in sys.argv[2:] if not a.startswith("--")]
        bench(args[0], int(args[1]) if len(args) > 1 else 2, int(args[2]) if len(args) > 2 else 1, "--bf16" in sys.argv)
    else:
        print(__doc__)
        sys.exit(2)
