#!/usr/bin/python3
"""PyTorch CPU baseline on the same weights as bench_vs_llamacpp (a minimal LLaMA forward in torch).

  OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench_torch.py MODELDIR [--threads 2] [--pp 128]
        [--prompt 16] [--tg 64] [--reps 2] [--check N]

MODELDIR is to_gguf.py's (config.json + model.safetensors). Weights are used in their stored dtype
(F32 memory-mapped; F16 upcast to F32 at load, as torch 1.13 has no CPU half matmul), HF layout (rotate_half RoPE).
--check N: compare the logits of N positions with MODELDIR/logits_ngpt_N.f32 that
`bench_vs_llamacpp ... check 2 N` wrote (same ids). Prints a "RESULT torch ..." line.
"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from to_gguf import read_safetensors  # noqa: E402


class Llama:
    def __init__(self, d):
        cfg = json.load(open(os.path.join(d, "config.json")))
        self.cfg = cfg
        st = read_safetensors(os.path.join(d, "model.safetensors"))
        import warnings
        warnings.simplefilter("ignore")  # non-writable memmap -> from_numpy warns
        self.w = {k: torch.from_numpy(v) for k, v in st.items()}
        self.H, self.nh, self.L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
        self.hd = self.H // self.nh
        self.eps = cfg["rms_norm_eps"]
        self.stored = self.w["lm_head.weight"].dtype
        if self.stored == torch.float16:
            # torch 1.13 has no CPU half matmul ("addmm_impl_cpu_" not implemented for 'Half'):
            # its best configuration for F16 weights is an upcast to F32 at load (2x the bytes).
            self.w = {k: v.float() for k, v in self.w.items()}
        self.dt = self.w["lm_head.weight"].dtype
        theta = cfg.get("rope_theta", 10000.0)
        self.inv = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        self.reset()

    def reset(self):
        self.k = [None] * self.L
        self.v = [None] * self.L
        self.n_past = 0

    def norm(self, x, w):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * w.float()).to(self.dt)

    def rope(self, x, pos):  # x [T, nh, hd]; HF rotate_half
        f = torch.outer(pos.float(), self.inv)
        emb = torch.cat((f, f), -1)
        cos, sin = emb.cos()[:, None, :].to(x.dtype), emb.sin()[:, None, :].to(x.dtype)
        h = self.hd // 2
        rot = torch.cat((-x[..., h:], x[..., :h]), -1)
        return x * cos + rot * sin

    @torch.no_grad()
    def forward(self, ids, all_logits=False):
        T = len(ids)
        W = self.w
        x = W["model.embed_tokens.weight"][torch.as_tensor(ids, dtype=torch.long)]
        pos = torch.arange(self.n_past, self.n_past + T)
        for l in range(self.L):
            p = f"model.layers.{l}."
            h = self.norm(x, W[p + "input_layernorm.weight"])
            q = (h @ W[p + "self_attn.q_proj.weight"].t()).view(T, self.nh, self.hd)
            k = (h @ W[p + "self_attn.k_proj.weight"].t()).view(T, self.nh, self.hd)
            v = (h @ W[p + "self_attn.v_proj.weight"].t()).view(T, self.nh, self.hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            self.k[l] = k if self.k[l] is None else torch.cat((self.k[l], k), 0)
            self.v[l] = v if self.v[l] is None else torch.cat((self.v[l], v), 0)
            K, V = self.k[l].float().transpose(0, 1), self.v[l].float().transpose(0, 1)  # [nh, S, hd]
            s = torch.matmul(q.float().transpose(0, 1), K.transpose(1, 2)) / (self.hd ** 0.5)  # [nh, T, S]
            S = K.shape[1]
            mask = torch.arange(S)[None, :] > (pos[:, None])
            s = s.masked_fill(mask[None], float("-inf")).softmax(-1)
            a = torch.matmul(s, V).transpose(0, 1).reshape(T, self.H).to(self.dt)
            x = x + a @ W[p + "self_attn.o_proj.weight"].t()
            h = self.norm(x, W[p + "post_attention_layernorm.weight"])
            g = h @ W[p + "mlp.gate_proj.weight"].t()
            u = h @ W[p + "mlp.up_proj.weight"].t()
            x = x + (torch.nn.functional.silu(g.float()).to(self.dt) * u) @ W[p + "mlp.down_proj.weight"].t()
        self.n_past += T
        if not all_logits:
            x = x[-1:]
        x = self.norm(x, W["model.norm.weight"])
        return (x @ W["lm_head.weight"].t()).float()


def ids_fill(n, V, salt):  # as bench_vs_llamacpp.c
    return [(i * 7919 + salt * 104729 + 13) % V for i in range(n)]


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    d = a[0]
    opt = dict(zip(a[1::2], a[2::2]))
    thr = int(opt.get("--threads", 2))
    pp, prompt, tg = int(opt.get("--pp", 128)), int(opt.get("--prompt", 16)), int(opt.get("--tg", 64))
    reps, chk = int(opt.get("--reps", 2)), int(opt.get("--check", 0))
    torch.set_num_threads(thr)
    m = Llama(d)
    V = m.cfg["vocab_size"]
    dts = "F16" if m.stored == torch.float16 else "F32"
    if chk:
        ref = np.fromfile(os.path.join(d, f"logits_ngpt_{chk}.f32"), dtype=np.float32).reshape(chk, V)
        # run until two runs agree (Debian's torch 1.13 has returned garbage on a first call)
        prev = None
        for _ in range(3):
            m.reset()
            out = m.forward(ids_fill(chk, V, 1), all_logits=True).numpy()
            if prev is not None and np.array_equal(prev, out):
                break
            prev = out
        diff = float(np.abs(out - ref).max())
        mx = float(np.abs(ref).max())
        agree = int((out.argmax(-1) == ref.argmax(-1)).sum())
        print(f"torch check {dts}: max |torch - ours| = {diff:.3g}, max |logit| = {mx:.3g}, relative "
              f"{diff / mx:.3g}; arg-max agrees at {agree}/{chk}")
        print(f"RESULT torchcheck {dts} maxdiff={diff:.3g} rel={diff / mx:.3g} argmax={agree}/{chk}")
    ids = ids_fill(max(pp, prompt) + tg, V, 2)
    m.reset()
    m.forward(ids[:prompt])  # warm-up, pages the weights in
    best_pp = best_tg = 1e30
    for r in range(reps):
        m.reset()
        t0 = time.perf_counter()
        m.forward(ids[:pp])
        best_pp = min(best_pp, time.perf_counter() - t0)
        m.reset()
        m.forward(ids[:prompt])
        t0 = time.perf_counter()
        for i in range(tg):
            m.forward(ids[prompt + i:prompt + i + 1])
        best_tg = min(best_tg, time.perf_counter() - t0)
        print(f"  torch rep {r}: pp{pp} {pp / best_pp:.1f} tok/s, tg{tg} {tg / best_tg:.2f} tok/s", file=sys.stderr)
    print(f"torch {torch.__version__} {dts}, {thr} threads: prefill pp{pp} {pp / best_pp:.1f} tok/s, "
          f"decode tg{tg} {tg / best_tg:.2f} tok/s")
    print(f"RESULT torch {dts} threads={thr} pp={pp} pp_tps={pp / best_pp:.2f} tg={tg} tg_tps={tg / best_tg:.3f}")


if __name__ == "__main__":
    main()
