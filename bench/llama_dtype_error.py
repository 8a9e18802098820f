#!/usr/bin/env python3
"""llama_dtype_error.py — the upstream model's own half-precision error, the yardstick for the
bounds of tests/gpu/test_llama_cuda.c (run on the GPU machine by bench/gpu_remote.sh).

transformers' LlamaForCausalLM on the golden tiny LLaMA (models/llama-a), on CUDA, in float32 and
then cast to float16 / bfloat16, on the ids the test uses; prints max|half - f32| / max|f32| for
the logits and the final hidden states (after the last norm), the test's error measure.
usage: llama_dtype_error.py GOLDEN_DIR
"""
import copy
import sys

import torch
from transformers import LlamaForCausalLM

IDS = [1, 15, 200, 7, 999, 42, 3, 512, 77]


def outputs(model, ids):
    with torch.no_grad():
        o = model(ids, output_hidden_states=True)
    return o.logits.float(), o.hidden_states[-1].float()


def rel(a, ref):
    return ((a - ref).abs().max() / ref.abs().max()).item()


def main():
    path = sys.argv[1] + "/models/llama-a"
    base = LlamaForCausalLM.from_pretrained(path).float().cuda().eval()
    ids = torch.tensor([IDS], device="cuda")
    ref_l, ref_h = outputs(base, ids)
    print("upstream (transformers, %s) on %s, ids %s" % (torch.cuda.get_device_name(), path, IDS))
    for dt in (torch.float16, torch.bfloat16):
        m = copy.deepcopy(base).to(dt)
        lg, hd = outputs(m, ids)
        print("upstream %-14s logits rel err %.2e, hidden %.2e" % (str(dt).replace("torch.", ""), rel(lg, ref_l),
                                                                   rel(hd, ref_h)))


if __name__ == "__main__":
    main()
