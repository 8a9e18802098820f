#!/usr/bin/python3
"""imagebind_torch.py — the PyTorch side of bench/run_imagebind.sh: a minimal ImageBind-huge vision
forward (the same math as imagebind_model.py's vision branch: Conv3d stem over the image repeated to
2 frames, CLS + pos, pre-LN, 32 pre-LN blocks with nn.MultiheadAttention's math, head LN -> CLS ->
Linear, L2 normalise) on the weights bench_imagebind wrote (read from the safetensors with numpy),
and decode + preprocess of the same JPEG with PIL + torchvision (ImageBind data.py's transforms).

  OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/imagebind_torch.py WEIGHTS [reps] [threads]
  python3 bench/imagebind_torch.py WEIGHTS reps threads --cuda    (GPU: f32/f16/bf16, batch 1 and 16)

Prints the same table rows as bench_imagebind plus the cosine of its embedding against ours
(WEIGHTS.emb.<f32|bf16>.f32) on the same pixels (WEIGHTS.px.f32)."""
import json, os, struct, sys, time

import numpy as np
import torch
import torch.nn.functional as F

path = sys.argv[1]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 1
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
torch.set_num_threads(threads)
D, NB, NH, EPS = 1280, 32, 16, 1e-6


def load_safetensors(p):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    base = 8 + n
    mm = np.memmap(p, dtype=np.uint8, mode="r")
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.array(mm[base + a:base + b]).view(np.float32).reshape(v["shape"]))
    return out


def forward(W, px):
    """px [1, 3, 224, 224] -> [1, 1024]"""
    pv = "modality_preprocessors.vision."
    x = px.unsqueeze(2).repeat(1, 1, 2, 1, 1)                      # PadIm2Video: 2 frames
    x = F.conv3d(x, W[pv + "rgbt_stem.proj.1.weight"], stride=(2, 14, 14))
    x = x.flatten(2).transpose(1, 2)                                 # [1, 256, D]
    cls = W[pv + "cls_token"].expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], 1) + W[pv + "pos_embedding_helper.pos_embed"]
    t = "modality_trunks.vision."
    x = F.layer_norm(x, (D,), W[t + "pre_transformer_layer.0.weight"], W[t + "pre_transformer_layer.0.bias"], EPS)
    B, T, _ = x.shape
    hd = D // NH
    for i in range(NB):
        p = t + "blocks.%d." % i
        h = F.layer_norm(x, (D,), W[p + "norm_1.weight"], W[p + "norm_1.bias"], EPS)
        qkv = F.linear(h, W[p + "attn.in_proj_weight"], W[p + "attn.in_proj_bias"])
        q, k, v = qkv.view(B, T, 3, NH, hd).permute(2, 0, 3, 1, 4)
        a = torch.softmax((q * hd ** -0.5) @ k.transpose(-1, -2), -1)
        o = (a @ v).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(o, W[p + "attn.out_proj.weight"], W[p + "attn.out_proj.bias"])
        h = F.layer_norm(x, (D,), W[p + "norm_2.weight"], W[p + "norm_2.bias"], EPS)
        h = F.linear(F.gelu(F.linear(h, W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"])),
                     W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"])
        x = x + h
    hp = "modality_heads.vision."
    x = F.layer_norm(x, (D,), W[hp + "0.weight"], W[hp + "0.bias"], EPS)[:, 0]
    x = F.linear(x, W[hp + "2.weight"])
    return F.normalize(x, dim=-1)


def gemm_peak(bf16):
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 1e30
    for r in range(4):
        t0 = time.perf_counter()
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                torch.mm(a, b)
        else:
            torch.mm(a, b)
        t = time.perf_counter() - t0
        if r > 0:
            best = min(best, t)
    return 2.0 * n ** 3 * 1e-9 / best


def main_cuda():
    """--cuda: the same forward on the GPU, model cast to f32/f16/bf16, batch 1 and 16, best of reps after a
    warm-up (the baseline of NGPT_BENCH_DEVICE=cuda bench_imagebind)."""
    W32 = {k: v.cuda() for k, v in load_safetensors(path).items()}
    T = 257.0
    gf = (2 * 256 * D * 3 * 2 * 14 * 14 + NB * (2 * T * D * (3 * D + D + 8 * D) + 4 * T * T * D) + 2 * D * 1024) * 1e-9
    print("# torch %s on %s" % (torch.__version__, torch.cuda.get_device_name()))
    print("| compute | batch | ms/batch (best of %d) | images/s | TFLOP/s |" % reps)
    print("|---|---|---|---|---|")
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        W = {k: v.to(dt) for k, v in W32.items()}
        for b in (1, 16):
            px = torch.rand(b, 3, 224, 224, device="cuda", dtype=dt)
            best = 1e30
            with torch.inference_mode():
                for r in range(reps + 1):
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    forward(W, px).float().cpu()
                    t = time.perf_counter() - t0
                    if r > 0:
                        best = min(best, t)
            print("| %s | %d | %.2f | %.1f | %.1f |" % (str(dt).replace("torch.", "").upper().replace("FLOAT", "F")
                                                       , b, best * 1e3, b / best, gf * b / best * 1e-3))


def main():
    print("# torch %s, %d threads, OPENBLAS_CORETYPE=%s, load average %.2f" %
          (torch.__version__, torch.get_num_threads(), os.environ.get("OPENBLAS_CORETYPE", "(unset)"), os.getloadavg()[0]))
    # decode + preprocess: ImageBind data.py load_and_transform_vision_data
    try:
        from PIL import Image
        from torchvision import transforms
        tf = transforms.Compose([
            transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)),
        ])
        tt = []
        for _ in range(15):
            t0 = time.perf_counter()
            with open(path + ".jpg", "rb") as f:
                im = Image.open(f).convert("RGB")
            y = tf(im)
            tt.append(time.perf_counter() - t0)
        tt.sort()
        ours = torch.from_numpy(np.fromfile(path + ".px.f32", dtype=np.float32).reshape(3, 224, 224))
        print("decode+preprocess 1024x768 JPEG (PIL + torchvision): best %.2f ms, median %.2f ms; max |ours - theirs| %.2e"
              % (tt[0] * 1e3, tt[7] * 1e3, (ours - y).abs().max().item()))
    except ImportError as e:
        print("decode+preprocess: PIL/torchvision not available (%s)" % e)

    t0 = time.perf_counter()
    W = load_safetensors(path)
    tl = time.perf_counter() - t0
    px = torch.from_numpy(np.fromfile(path + ".px.f32", dtype=np.float32).reshape(1, 3, 224, 224))
    T = 257.0
    gf = (2 * 256 * D * 3 * 2 * 14 * 14 + NB * (2 * T * D * (3 * D + D + 8 * D) + 4 * T * T * D) + 2 * D * 1024) * 1e-9
    print("| compute | load s | s/image (best of %d) | GFLOP/s | GEMM-2048 peak GFLOP/s | fraction | cosine vs ours | load avg |" % reps)
    print("|---|---|---|---|---|---|---|---|")
    for bf16 in (False, True):
        best, e, note = 1e30, None, ""
        try:
            with torch.inference_mode():
                for _ in range(reps):
                    t0 = time.perf_counter()
                    if bf16:
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            e = forward(W, px)
                    else:
                        e = forward(W, px)
                    best = min(best, time.perf_counter() - t0)
        except Exception as ex:  # autocast on 1.13 CPU should work; say so if not
            print("| %s | autocast failed: %s |" % ("bf16" if bf16 else "f32", ex))
            continue
        ours_p = path + ".emb.%s.f32" % ("bf16" if bf16 else "f32")
        cos = float("nan")
        if os.path.exists(ours_p):
            o = torch.from_numpy(np.fromfile(ours_p, dtype=np.float32))
            cos = F.cosine_similarity(o, e.float().reshape(-1), dim=0).item()
        peak = gemm_peak(bf16)
        print("| %s%s | %.1f | %.2f | %.1f | %.1f | %.2f | %.6f | %.2f |" % (
            "bf16 (autocast)" if bf16 else "f32", note, tl, best, gf / best, peak, gf / best / peak, cos, os.getloadavg()[0]))
        sys.stdout.flush()


main_cuda() if "--cuda" in sys.argv else main()
