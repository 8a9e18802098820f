#!/usr/bin/python3
"""make_sized_bundle.py — a random-weight NExT-GPT bundle at chosen sizes, in the official layout
the pipeline loads (the tiny bundle's: bundle.json, llm/, delta/, imagebind/, decoders/image/),
for measuring memory at real widths (bench/run_pipeline_memory.sh, bench/pipeline_memory.c).

    tools/make_sized_bundle.py OUT_DIR [--preset real|real-narrow|small] [--llm-layers N]
        [--imagebind-vision-blocks N] [--imagebind-audio-blocks N] [--list-tensors BUILD/bench/list_tensors]

Presets (widths are always the real ones except "small"):
  real         Vicuna-7B (32 layers, 4096, 11008, vocab 32000) F16 + the NExT-GPT delta (F16: LoRA
               r=32 on q/k/v/o, embed_tokens + lm_head of 32038 rows, the 7b_tiva_v0 projectors),
               ImageBind-huge vision (1280 x 32 blocks) + audio (768 x 12) F32, SD 1.5 (UNet,
               VAE decoder, CLIP-L text encoder) F32: ~22 GB.
  real-narrow  the same widths, LLM 2 layers, ImageBind 2 + 2 blocks; SD 1.5's VAE decoder and CLIP
               text encoder in full, its UNet cut to its first two levels (block_out_channels
               [320, 640], layers_per_block 2, cross-attention 768: the 64x64-latent level where
               a 512x512 image's activations are largest is the real one; 0.45 GB instead of
               3.4 GB): ~3.4 GB in all (override the counts with the flags).
  small        a smoke size (LLM 2 x 256, ImageBind 64/48 wide, SD 1.5 UNet full is replaced by
               the tiny one): seconds, for the test suite.

Only the image decoder is written (the turn measured is text + image in, image out). Tokenizers and
scheduler configs are the tiny bundle's (data/tiny/bundle): the token ids the real vocabulary adds
(32000..32037) are the tiny tokenizer's added tokens renumbered. Values: deterministic uniform
+-1/sqrt(fan_in) (norm scales 1, biases 0), as make_tiny_bundle; tensors are written one at a time
(the generator holds one tensor, at most ~0.5 GB for the real embed_tokens in F32 before F16).
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, '..', 'data', 'tiny')

PRESETS = {
    'real': dict(llm_layers=32, hidden=4096, ffn=11008, heads=32, vocab=32000, lora_r=32,
                 vis_dim=1280, vis_blocks=32, vis_heads=16, aud_dim=768, aud_blocks=12, aud_heads=12,
                 out_dim=1024, sd='full', proj=(512, 2048, 768, 512, 1024)),
    'real-narrow': dict(llm_layers=2, hidden=4096, ffn=11008, heads=32, vocab=32000, lora_r=32,
                        vis_dim=1280, vis_blocks=2, vis_heads=16, aud_dim=768, aud_blocks=2, aud_heads=12,
                        out_dim=1024, sd='narrow', proj=(512, 2048, 768, 512, 1024)),
    'small': dict(llm_layers=2, hidden=256, ffn=688, heads=4, vocab=1000, lora_r=8,
                  vis_dim=64, vis_blocks=2, vis_heads=4, aud_dim=48, aud_blocks=2, aud_heads=4,
                  out_dim=1024, sd='tiny', proj=(32, 128, 32, 24, 48)),
}
N_ADDED = 38


class Writer:
    """One safetensors file, written tensor by tensor: the header first (from the list), then the data."""

    def __init__(self, path, tensors):
        self.path, self.tensors = path, tensors  # [(name, dtype, shape)]
        os.makedirs(os.path.dirname(path), exist_ok=True)

    def write(self, rel):
        header, off = {'__metadata__': {'format': 'pt'}}, 0
        for name, dt, shape in self.tensors:
            n = int(np.prod(shape, dtype=np.int64)) * {'F16': 2, 'F32': 4, 'I64': 8}[dt]
            header[name] = {'dtype': dt, 'shape': list(shape), 'data_offsets': [off, off + n]}
            off += n
        h = json.dumps(header, separators=(',', ':')).encode()
        h += b' ' * ((8 - len(h) % 8) % 8)
        total = 0
        with open(self.path, 'wb') as f:
            f.write(struct.pack('<Q', len(h)))
            f.write(h)
            for name, dt, shape in self.tensors:
                for chunk in values(rel, name, dt, shape):
                    f.write(chunk.tobytes())
                    total += chunk.nbytes
        return total


def values(rel, name, dt, shape):
    """The tensor's values, in chunks of rows (make_tiny_bundle's rules, numpy's generator)."""
    shape = list(shape)
    n = int(np.prod(shape, dtype=np.int64))
    if dt == 'I64':
        last = shape[-1] if shape else 1
        yield (np.arange(n, dtype=np.int64) % last)
        return
    npdt = np.float16 if dt == 'F16' else np.float32
    leaf = name.rsplit('.', 1)[-1]
    c = None
    if name.endswith('.bias') or leaf == 'mean':
        c = 0.0
    elif leaf == 'scale' or (len(shape) == 1 and name.endswith('.weight')):
        c = 1.0
    elif len(shape) == 0:
        c = 0.0
    if c is not None:
        yield np.full(n, c, dtype=npdt)
        return
    fan_in = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 50
    a = 1.0 / np.sqrt(fan_in)
    rng = np.random.default_rng(zlib.crc32((rel + '/' + name).encode()))
    step = 1 << 24
    for s in range(0, n, step):
        k = min(step, n - s)
        v = rng.random(k, dtype=np.float32)
        v = (v * np.float32(2 * a) - np.float32(a)).astype(npdt)
        yield v


def tiny_list(file):
    """The tiny tensors.txt entries of one file: [(name, dtype, shape)]."""
    out, cur = [], None
    with open(os.path.join(TINY, 'tensors.txt')) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            if line.startswith('file '):
                cur = line[5:]
                continue
            if cur == file:
                p = line.split()
                out.append((p[0], p[1], [int(x) for x in p[2:]]))
    return out


def llm_tensors(c):
    H, I, L, V = c['hidden'], c['ffn'], c['llm_layers'], c['vocab']
    t = [('lm_head.weight', 'F16', [V, H]), ('model.embed_tokens.weight', 'F16', [V, H])]
    for l in range(L):
        p = 'model.layers.%d.' % l
        t += [(p + 'input_layernorm.weight', 'F16', [H]), (p + 'mlp.down_proj.weight', 'F16', [H, I]),
              (p + 'mlp.gate_proj.weight', 'F16', [I, H]), (p + 'mlp.up_proj.weight', 'F16', [I, H]),
              (p + 'post_attention_layernorm.weight', 'F16', [H])]
        for m in 'kovq':
            t.append((p + 'self_attn.%s_proj.weight' % m, 'F16', [H, H]))
    t.append(('model.norm.weight', 'F16', [H]))
    return t


def delta_tensors(c):
    """NExT-GPT 7b_tiva_v0's delta: the LLM part (LoRA, embed_tokens, lm_head) and the projectors."""
    H, L, V, r = c['hidden'], c['llm_layers'], c['vocab'] + N_ADDED, c['lora_r']
    pre = 'llama_model.base_model.model.'
    t = [(pre + 'lm_head.weight', 'F16', [V, H]), (pre + 'model.embed_tokens.weight', 'F16', [V, H])]
    for l in range(L):
        for m in 'kovq':
            p = pre + 'model.layers.%d.self_attn.%s_proj.' % (l, m)
            t += [(p + 'lora_A.default.weight', 'F16', [r, H]), (p + 'lora_B.default.weight', 'F16', [H, r])]
    t += [('llama_proj.bias', 'F16', [H]), ('llama_proj.weight', 'F16', [H, c['out_dim']])]
    d, ff, o_img, o_aud, o_vid = c['proj']  # d_model, dim_feedforward, the decoders' condition widths
    for key, tokens, out in (('gen_text_hidden_fcs.0', 77, o_img), ('gen_text_hidden_fcs_audio.0', 1, o_aud),
                             ('gen_text_hidden_fcs_video.0', 77, o_vid)):
        t += [(key + '.fc.bias', 'F16', [d]), (key + '.fc.weight', 'F16', [d, H]),
              (key + '.model.bias', 'F16', [out]), (key + '.model.weight', 'F16', [out, d]),
              (key + '.query_embs', 'F16', [1, tokens, d])]
        for part, n_layers in (('decoder', 4), ('encoder', 4)):
            for l in range(n_layers):
                p = '%s.tfm.%s.layers.%d.' % (key, part, l)
                t += [(p + 'linear1.bias', 'F16', [ff]), (p + 'linear1.weight', 'F16', [ff, d]),
                      (p + 'linear2.bias', 'F16', [d]), (p + 'linear2.weight', 'F16', [d, ff])]
                attn = ['self_attn'] + (['multihead_attn'] if part == 'decoder' else [])
                for a in sorted(attn):
                    t += [(p + a + '.in_proj_bias', 'F16', [3 * d]), (p + a + '.in_proj_weight', 'F16', [3 * d, d]),
                          (p + a + '.out_proj.bias', 'F16', [d]), (p + a + '.out_proj.weight', 'F16', [d, d])]
                for k in range(1, 4 if part == 'decoder' else 3):
                    t += [(p + 'norm%d.bias' % k, 'F16', [d]), (p + 'norm%d.weight' % k, 'F16', [d])]
            t += [('%s.tfm.%s.norm.bias' % (key, part), 'F16', [d]), ('%s.tfm.%s.norm.weight' % (key, part), 'F16', [d])]
    return t


def imagebind_tensors(c):
    """The tiny list with the real widths (per branch: D, 3D, 4D, the output 1024) and block count."""
    dims = {'vision': (64, c['vis_dim'], c['vis_blocks']), 'audio': (48, c['aud_dim'], c['aud_blocks'])}
    out = []
    for name, dt, shape in tiny_list('imagebind/model.safetensors'):
        br = 'vision' if '.vision.' in name else 'audio'
        t, D, blocks = dims[br]
        m = {t: D, 3 * t: 3 * D, 4 * t: 4 * D}
        s = list(shape)
        if name.startswith('modality_heads.') and name.endswith('.2.weight'):
            s = [c['out_dim'], D]
        elif 'pos_embed' in name:
            s = [1, s[1], D]
        else:
            s = [m.get(x, x) if i in (0, 1) or (len(s) == 3 and i == 2) else x for i, x in enumerate(s)]
            if 'rgbt_stem' in name and len(s) > 1:
                s = [D] + list(shape[1:])
        key = 'modality_trunks.%s.blocks.' % br
        if name.startswith(key):
            b = int(name[len(key):].split('.')[0])
            if b != 0:
                continue
            rest = name[len(key):].split('.', 1)[1]
            for k in range(blocks):
                out.append((key + '%d.%s' % (k, rest), dt, s))
            continue
        out.append((name, dt, s))
    # keep the file order of the tiny list: trunks' blocks grouped per branch as above
    return out


def clip_tensors(c):
    """CLIP ViT-L/14's text model (SD 1.5): 12 layers, 768 wide, 3072, vocab 49408 (tiny: 32/64/722)."""
    full = c['sd'] in ('full', 'narrow')
    H, I, V, L = (768, 3072, 49408, 12) if full else (32, 64, 722, 2)
    m = {32: H, 64: I, 722: V}
    out = []
    for name, dt, shape in tiny_list('decoders/image/text_encoder/model.safetensors'):
        s = [m.get(x, x) for x in shape] if dt != 'I64' else shape
        key = 'text_model.encoder.layers.'
        if name.startswith(key):
            if not name.startswith(key + '0.'):
                continue
            rest = name[len(key) + 2:]
            out += [(key + '%d.%s' % (k, rest), dt, s) for k in range(L)]
            continue
        out.append((name, dt, s))
    return out


def list_tool(tool, *args):
    r = subprocess.run([tool] + list(args), check=True, capture_output=True, text=True)
    return [(p[0], p[1], [int(x) for x in p[2:]]) for p in (l.split() for l in r.stdout.splitlines() if l.strip())]


def varint(n):
    b = bytearray()
    while True:
        b.append((n & 0x7f) | (0x80 if n > 0x7f else 0))
        n >>= 7
        if not n:
            return bytes(b)


def grow_tokenizer(path, vocab):
    """Append NORMAL pieces (ModelProto field 1) to the tiny tokenizer.model up to `vocab` pieces:
    the real vocabulary's size, so the added tokens take the real ids (32000..32037)."""
    with open(path, 'rb') as f:
        data = f.read()
    have = count_pieces(data)
    extra = bytearray()
    for i in range(have, vocab):
        piece = ('\u2581x%d' % i).encode()
        sub = b'\x0a' + varint(len(piece)) + piece + b'\x15' + struct.pack('<f', -1000.0 - i) + b'\x18\x01'
        extra += b'\x0a' + varint(len(sub)) + sub
    with open(path, 'wb') as f:
        f.write(data + bytes(extra))
    return have


def count_pieces(data):
    i, n = 0, 0
    while i < len(data):
        key, i = read_varint(data, i)
        wt = key & 7
        if wt == 2:
            ln, i = read_varint(data, i)
            i += ln
        elif wt == 0:
            _, i = read_varint(data, i)
        elif wt == 5:
            i += 4
        elif wt == 1:
            i += 8
        else:
            raise ValueError('tokenizer.model: wire type %d' % wt)
        n += (key >> 3) == 1
    return n


def read_varint(data, i):
    n, s = 0, 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7f) << s
        s += 7
        if not b & 0x80:
            return n, i


def edit_json(path, **kv):
    with open(path) as f:
        j = json.load(f)
    j.update(kv)
    with open(path, 'w') as f:
        json.dump(j, f, indent=1)
        f.write('\n')


SD15_UNET = {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.17.0", "act_fn": "silu",
             "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False,
             "cross_attention_dim": 768, "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                                               "CrossAttnDownBlock2D", "DownBlock2D"],
             "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4,
             "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
             "out_channels": 4, "sample_size": 64,
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
SD15_VAE = {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32,
            "sample_size": 512}
CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
          "projection_dim": 768, "vocab_size": 49408, "_name_or_path": "random CLIP ViT-L/14 text"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('out')
    ap.add_argument('--preset', default='real-narrow', choices=sorted(PRESETS))
    ap.add_argument('--llm-layers', type=int)
    ap.add_argument('--imagebind-vision-blocks', type=int)
    ap.add_argument('--imagebind-audio-blocks', type=int)
    ap.add_argument('--list-tensors', default=os.path.join(HERE, '..', 'build', 'bench', 'list_tensors'),
                    help='the list_tensors program of a build (bench/list_tensors.c)')
    a = ap.parse_args()
    c = dict(PRESETS[a.preset])
    if a.llm_layers: c['llm_layers'] = a.llm_layers
    if a.imagebind_vision_blocks: c['vis_blocks'] = a.imagebind_vision_blocks
    if a.imagebind_audio_blocks: c['aud_blocks'] = a.imagebind_audio_blocks
    out = a.out
    if os.path.exists(out):
        shutil.rmtree(out)
    src = os.path.join(TINY, 'bundle')
    for d in ('llm', 'imagebind', 'decoders/image'):
        shutil.copytree(os.path.join(src, d), os.path.join(out, d))
    # the delta folder: the tokenizer files (added_tokens renumbered after the base vocabulary)
    shutil.copytree(os.path.join(src, 'llm'), os.path.join(out, 'delta'))
    for d in ('llm', 'delta'):
        with open(os.path.join(out, d, 'added_tokens.json')) as f:
            added = json.load(f)
        base = min(added.values())
        added = {k: v - base + c['vocab'] for k, v in added.items()}
        with open(os.path.join(out, d, 'added_tokens.json'), 'w') as f:
            json.dump(added, f, indent=2)
    os.remove(os.path.join(out, 'llm', 'added_tokens.json'))
    for d in ('llm', 'delta'):
        grow_tokenizer(os.path.join(out, d, 'tokenizer.model'), c['vocab'])
    llm = dict(hidden_size=c['hidden'], intermediate_size=c['ffn'], num_attention_heads=c['heads'],
               num_hidden_layers=c['llm_layers'], vocab_size=c['vocab'])
    edit_json(os.path.join(out, 'llm', 'config.json'), **llm)
    edit_json(os.path.join(out, 'delta', 'config.json'), **dict(llm, vocab_size=c['vocab'] + N_ADDED))
    edit_json(os.path.join(out, 'imagebind', 'config.json'), out_embed_dim=c['out_dim'],
              vision_embed_dim=c['vis_dim'], vision_num_blocks=c['vis_blocks'], vision_num_heads=c['vis_heads'],
              audio_embed_dim=c['aud_dim'], audio_num_blocks=c['aud_blocks'], audio_num_heads=c['aud_heads'])
    img = os.path.join(out, 'decoders', 'image')
    if c['sd'] in ('full', 'narrow'):
        unet = dict(SD15_UNET)
        if c['sd'] == 'narrow':
            unet.update(block_out_channels=[320, 640], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"])
        with open(os.path.join(img, 'unet', 'config.json'), 'w') as f:
            json.dump(unet, f, indent=1)
        edit_json(os.path.join(img, 'vae', 'config.json'), **SD15_VAE)
        edit_json(os.path.join(img, 'text_encoder', 'config.json'), **CLIP_L)
    files = [('llm/model.safetensors', llm_tensors(c)), ('delta/delta.safetensors', delta_tensors(c)),
             ('imagebind/model.safetensors', imagebind_tensors(c)),
             ('decoders/image/text_encoder/model.safetensors', clip_tensors(c))]
    if c['sd'] in ('full', 'narrow'):
        files += [('decoders/image/unet/diffusion_pytorch_model.safetensors',
                   list_tool(a.list_tensors, 'unet', os.path.join(img, 'unet', 'config.json'))),
                  ('decoders/image/vae/diffusion_pytorch_model.safetensors', list_tool(a.list_tensors, 'sd-vae-decoder'))]
    else:
        files += [('decoders/image/unet/diffusion_pytorch_model.safetensors',
                   tiny_list('decoders/image/unet/diffusion_pytorch_model.safetensors')),
                  ('decoders/image/vae/diffusion_pytorch_model.safetensors',
                   tiny_list('decoders/image/vae/diffusion_pytorch_model.safetensors'))]
    manifest = {"format": "nextgpt-bundle", "version": 1,
                "name": "libnextgpt random-weight bundle, preset %s" % a.preset, "random_weights": True,
                "note": "make_sized_bundle.py: %s" % json.dumps(c), "llm": "llm", "delta": "delta/delta.safetensors",
                "imagebind": "imagebind", "projectors": "delta", "decoders": {"image": "decoders/image"},
                "audio_uncond": None}
    with open(os.path.join(out, 'bundle.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
        f.write('\n')
    total = 0
    for rel, t in files:
        n = Writer(os.path.join(out, rel), t).write(rel)
        total += n
        print('%-58s %5d tensors %9.1f MB' % (rel, len(t), n / 1e6), flush=True)
    print('total %.2f GB of weights in %s' % (total / 1e9, out))


if __name__ == '__main__':
    sys.exit(main())
