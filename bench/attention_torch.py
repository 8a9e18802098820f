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
usage: attention_torch.py [reps]
"""
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


def main():
    reps = max(1, int(sys.argv[1])) if len(sys.argv) > 1 else 5
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device for torch", file=sys.stderr)
        sys.exit(77)
    print("# device: %s; torch %s" % (torch.cuda.get_device_name(), torch.__version__))
    print("# kernel: torch.nn.functional.scaled_dot_product_attention (backend chosen by torch)")
    print("dtype\thead_dim\tcausal\tseqlen\tseqlen_kv\tbatch\theads\tms\tTFLOP/s")
    gen = torch.Generator(device="cuda").manual_seed(1)
    with torch.inference_mode():
        for name, dt in (("F16", torch.float16), ("BF16", torch.bfloat16)):
            for d, causal, s, skv, b, h in shapes():
                def rnd(n):
                    x = torch.empty((b, n, h, d), device="cuda", dtype=dt)
                    return x.uniform_(-1, 1, generator=gen).transpose(1, 2)  # [B, H, S, D] view
                q, k, v = rnd(s), rnd(skv), rnd(skv)
                scale = 1.0 / math.sqrt(d)
                F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal), scale=scale)
                torch.cuda.synchronize()
                t = time.perf_counter()  # small shapes get more calls: at least ~20 ms timed
                F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal), scale=scale)
                torch.cuda.synchronize()
                t1 = time.perf_counter() - t
                n = reps if t1 <= 0 or 0.02 / t1 <= reps else min(1000, int(0.02 / t1))
                t = time.perf_counter()
                for _ in range(n):
                    F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal), scale=scale)
                torch.cuda.synchronize()
                dt_s = (time.perf_counter() - t) / n
                flops = 4.0 * s * skv * d * h * b / (2.0 if causal else 1.0)
                print("%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t%.1f" % (name, d, causal, s, skv, b, h, dt_s * 1e3,
                                                                  flops / dt_s * 1e-12), flush=True)
                del q, k, v


if __name__ == "__main__":
    main()
