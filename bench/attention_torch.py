#!/usr/bin/env python3
"""attention_torch.py — the PyTorch baseline for bench_attention_cuda (run by bench/gpu_remote.sh).

torch.nn.functional.scaled_dot_product_attention (whichever backend PyTorch picks: FlashAttention-2,
cuDNN or memory-efficient) on the same shapes, dtypes and data layout as bench_attention_cuda:
q [B, Sq, H, D], k/v [B, Skv, H, D] in memory, handed to SDPA as [B, H, S, D] views (transposed,
not copied), uniform(-1, 1) inputs, scale 1/sqrt(D). One warm-up call, then the mean of `reps`
timed calls (host clock around a device sync; more, up to 1000, when they would take under 20 ms),
exactly as the C bench. Causal shapes have seqlen == seqlen_kv, where torch's top-left causal
mask equals our bottom-right one. Prints the same
tab-separated columns, so the two tables join on the first seven.
--backend cudnn pins SDPA to cuDNN's fused attention (torch.nn.attention.SDPBackend.CUDNN_ATTENTION;
issue 6 asks for our kernel's TFLOP/s against it), --backend flash to FlashAttention-2; a shape the
pinned backend refuses is printed with 0 TFLOP/s (the join shows "-").
usage: attention_torch.py [reps] [--backend default|cudnn|flash]
"""
import argparse
import contextlib
import math
import sys
import time

import torch
import torch.nn.functional as F


def shapes():
    """(head_dim, causal, seqlen, seqlen_kv, batch, heads), in bench_attention_cuda's order."""
    out = []
    for d in (64, 128):
        for causal in (0, 1):
            for s in (512, 1024, 2048, 4096, 8192):
                out.append((d, causal, s, s, 16384 // s, 2048 // d))
    for d, s in ((40, 4096), (80, 1024), (160, 256)):  # SD1.5 UNet at 512x512, CFG batch 2, 8 heads
        out.append((d, 0, s, s, 2, 8))   # self
        out.append((d, 0, s, 77, 2, 8))  # cross, 77 text tokens
    return out


def pinned(backend):
    """A context manager that restricts SDPA to one backend (nullcontext for the default)."""
    if backend == "default":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel  # torch >= 2.3
    return sdpa_kernel({"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}[backend])


def time_sdpa(q, k, v, causal, scale, reps):
    """Seconds per call: one warm-up, then the mean of reps calls (more when they take < 20 ms)."""
    t = time.perf_counter()  # the warm-up also sizes the loop
    F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal), scale=scale)
    torch.cuda.synchronize()
    t1 = time.perf_counter() - t
    n = reps if t1 <= 0 or 0.02 / t1 <= reps else min(1000, int(0.02 / t1))
    t = time.perf_counter()
    for _ in range(n):
        F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal), scale=scale)
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def main():
    ap = argparse.ArgumentParser(description="torch SDPA on bench_attention_cuda's shapes")
    ap.add_argument("reps", nargs="?", type=int, default=5)
    ap.add_argument("--backend", choices=("default", "cudnn", "flash"), default="default")
    a = ap.parse_args()
    reps = max(1, a.reps)
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device for torch", file=sys.stderr)
        sys.exit(77)
    print("# device: %s; torch %s" % (torch.cuda.get_device_name(), torch.__version__))
    print("# kernel: torch.nn.functional.scaled_dot_product_attention (%s)" %
          ("backend chosen by torch" if a.backend == "default" else "pinned to " + a.backend))
    print("dtype\thead_dim\tcausal\tseqlen\tseqlen_kv\tbatch\theads\tms\tTFLOP/s")
    gen = torch.Generator(device="cuda").manual_seed(1)
    with torch.inference_mode():
        for name, dt in (("F16", torch.float16), ("BF16", torch.bfloat16)):
            for d, causal, s, skv, b, h in shapes():
                def rnd(n):
                    x = torch.empty((b, n, h, d), device="cuda", dtype=dt)
                    return x.uniform_(-1, 1, generator=gen).transpose(1, 2)  # [B, H, S, D] view
                q, k, v = rnd(s), rnd(skv), rnd(skv)
                flops = 4.0 * s * skv * d * h * b / (2.0 if causal else 1.0)
                try:
                    with pinned(a.backend):
                        dt_s = time_sdpa(q, k, v, causal, 1.0 / math.sqrt(d), reps)
                    row = "%.3f\t%.1f" % (dt_s * 1e3, flops / dt_s * 1e-12)
                except RuntimeError as e:  # the pinned backend does not take this shape
                    print("# %s hd %d S %d Skv %d: %s" % (name, d, s, skv, str(e).splitlines()[0][:120]))
                    row = "nan\t0.0"
                print("%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s" % (name, d, causal, s, skv, b, h, row), flush=True)
                del q, k, v


if __name__ == "__main__":
    main()
