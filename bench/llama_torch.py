#!/usr/bin/env python3
"""llama_torch.py — the PyTorch baseline for bench_llama on CUDA (run by bench/gpu_remote.sh).

The same work as `NGPT_BENCH_DEVICE=cuda bench_llama LAYERS f16 PROMPT DECODE`: LLaMA-7B dimensions
(hidden 4096, 32 heads, MLP 11008, vocab 32000) cut to LAYERS layers, f16 weights on the GPU,
one prefill of PROMPT tokens, then the best of DECODE single-token steps with the KV cache.
usage: llama_torch.py LAYERS PROMPT DECODE
"""
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    layers, prompt, decode = (int(a) for a in sys.argv[1:4])
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_attention_heads=32,
                      num_hidden_layers=layers, vocab_size=32000, max_position_embeddings=2048,
                      rms_norm_eps=1e-6)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.float16).eval()
    ids = (torch.arange(prompt, device="cuda")[None] * 7919) % 32000
    with torch.no_grad():
        model(ids, use_cache=True)  # warm-up: cuBLAS handles, kernels, allocator
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model(ids, use_cache=True)
        torch.cuda.synchronize()
        t_pre = time.perf_counter() - t
        cache, tok, best = out.past_key_values, ids[:, -1:], 1e30
        for _ in range(decode):
            t = time.perf_counter()
            out = model(tok, past_key_values=cache, use_cache=True)
            out.logits.float().cpu()
            best = min(best, time.perf_counter() - t)
            cache = out.past_key_values
    print("device: %s; torch %s; LLaMA-7B dims, %d layers, f16 weights, vocab 32000" %
          (torch.cuda.get_device_name(), torch.__version__, layers))
    print("prefill %d tokens: %.4f s = %.1f tok/s" % (prompt, t_pre, prompt / t_pre))
    print("decode (best of %d): %.3f ms = %.1f tok/s" % (decode, best * 1e3, 1 / best))


if __name__ == "__main__":
    main()
