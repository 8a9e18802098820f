#!/usr/bin/python3
"""gen_torch.py — the PyTorch side of bench_decoders gen on a GPU (bench/gpu_remote.sh): AudioLDM-l-full
and Zeroscope v2 576w end to end in float16 eager PyTorch, on the same random-weight diffusers folders,
with the plain-torch ports of bench/unet_torch.py and bench/unet3d_torch.py (scaled_dot_product_attention
where torch has it, as diffusers 0.17 uses it on torch 2): DDIM as the folders' scheduler_config.json,
classifier-free guidance 7.5 on a batch of 2, then the VAE (frame by frame for video) and, for audio,
the HiFi-GAN vocoder. One warm-up run of 2 steps, then one timed run.

  python3 bench/gen_torch.py audioldm DIR SECONDS STEPS
  python3 bench/gen_torch.py zeroscope DIR FRAMES STEPS     (576x320)
"""
import json, math, os, sys, time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unet_torch  # noqa: E402
import unet3d_torch  # noqa: E402


def alphas_cumprod(d):
    c = json.load(open(os.path.join(d, "scheduler", "scheduler_config.json")))
    n = c.get("num_train_timesteps", 1000)
    betas = torch.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, n, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0), n, c.get("steps_offset", 0)


def ddim(x, eps_fn, d, steps):
    ac, n, off = alphas_cumprod(d)
    ratio = n // steps
    for i in range(steps):
        t = (steps - 1 - i) * ratio + off
        eps = eps_fn(x, t)
        a_t = float(ac[t])
        a_p = float(ac[t - ratio]) if t - ratio >= 0 else float(ac[0])
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        x = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * eps
    return x


def to_dev(m, dev, dt=None):
    m.w = {k: (v.to(dev, dt) if dt is not None and v.is_floating_point() else v.to(dev)) for k, v in m.w.items()}
    return m


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("audioldm", "zeroscope"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    kind, d, size, steps = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    cpu = os.environ.get("NGPT_GEN_TORCH_CPU") == "1"  # a float32 check of this script where no GPU is
    if not cpu and not torch.cuda.is_available():
        print("gen_torch.py: no CUDA device: skipped")
        sys.exit(77)
    dev, dt = ("cpu", torch.float32) if cpu else ("cuda", torch.float16)
    sync = (lambda: None) if cpu else torch.cuda.synchronize
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if kind == "audioldm":
        unet = to_dev(unet_torch.UNet(os.path.join(d, "unet"), dt), dev)
        vae = to_dev(unet_torch.VAEDecoder(os.path.join(d, "vae"), dt), dev)
        voc = to_dev(unet_torch.HifiGan(os.path.join(d, "vocoder"), dt), dev)
        voc.f32 = [(a.to(dev), b.to(dev)) for a, b in voc.f32]
        scale = json.load(open(os.path.join(d, "vae", "config.json")))["scaling_factor"]
        frames = int(size / 0.01)
        h = -(-frames // 4)
        labels = torch.randn(2, 512, device=dev, dtype=dt)
        shape = (1, 8, h, 16)

        def eps_fn(x, t):
            e = unet.forward(torch.cat([x, x]).to(dt), torch.tensor([float(t)], device=dev), None, labels).float()
            u, c = e.chunk(2)
            return u + 7.5 * (c - u)

        def decode(x):
            mel = vae.forward(x / scale)
            return voc.forward(mel.squeeze(1))
    else:
        unet = to_dev(unet3d_torch.UNet3D(os.path.join(d, "unet")), dev, dt)
        vae = to_dev(unet3d_torch.VAEDecoder(os.path.join(d, "vae")), dev, dt)
        ehs = torch.randn(2, 77, 1024, device=dev, dtype=dt)
        shape = (1, 4, int(size), 40, 72)

        def eps_fn(x, t):
            e = unet.forward(torch.cat([x, x]).to(dt), float(t), ehs).float()
            u, c = e.chunk(2)
            return u + 7.5 * (c - u)

        def decode(x):
            return vae.decode_latents(x.to(dt))
    sync()
    print("# torch %s on %s; %s from %s, %s, loaded in %.1f s" % (
        torch.__version__, "cpu" if cpu else torch.cuda.get_device_name(0), kind, d, str(dt), time.perf_counter() - t0))
    if not cpu:
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        for n in (2, steps):
            x = torch.randn(shape, device=dev)
            sync()
            t0 = time.perf_counter()
            x = ddim(x, eps_fn, d, n)
            sync()
            t1 = time.perf_counter()
            out = decode(x)
            sync()
            t2 = time.perf_counter()
    print("torch generate %s %g %s, %d steps, CFG 7.5, %s: %.3f s (denoise %.3f s = %.1f ms/step, decode %.3f s);"
          " peak GPU memory %.2f GiB (weights included); output finite: %s" % (
              kind, size, "frames 576x320" if kind == "zeroscope" else "s of audio", steps, str(dt), t2 - t0, t1 - t0,
              1e3 * (t1 - t0) / steps, t2 - t1, 0 if cpu else torch.cuda.max_memory_allocated() / 2 ** 30,
              "yes" if bool(torch.isfinite(out.float()).all()) else "NO"))


if __name__ == "__main__":
    main()
