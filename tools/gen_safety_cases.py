#!/usr/bin/python3
"""gen_safety_cases.py — our own golden cases for Stable Diffusion's safety checker as NExT-GPT's SD pipeline
runs it (stage "sd.safety_checker", and stage "sd.generate" with params.safety_checker true), and the three
small models they run on.

What NExT-GPT runs (NExT-GPT/NExT-GPT@60d618b, NExT-GPT-Lagacy/code/model/custom_sd.py): right after
decode_latents (image F32 numpy [B, H, W, 3] in [0, 1]), whatever the output_type,

    safety_checker_input = self.feature_extractor(self.numpy_to_pil(image), return_tensors="pt")
    image, has_nsfw_concept = self.safety_checker(images=image, clip_input=safety_checker_input.pixel_values.to(dtype))

(dtype = prompt_embeds.dtype). The pieces, ported below for the arguments NExT-GPT passes (transformers and
diffusers are not installed here):

  numpy_to_pil (diffusers v0.17.0 utils/pil_utils.py): (images * 255).round().astype("uint8") — float32 times
     the Python int 255 is float32, numpy's round is half to EVEN (126.5 -> 126, 127.5 -> 128) — then
     PIL.Image.fromarray (RGB).
  feature_extractor (transformers 4.29 CLIPImageProcessor from feature_extractor/preprocessor_config.json;
     from_dict passes the file's keys to __init__, whose defaults are size {"shortest_edge": 224},
     resample 3 (bicubic), crop_size {"height": 224, "width": 224}, rescale_factor 1/255, OpenAI CLIP
     mean / std, every do_* true): size through get_size_dict(default_to_square=False) (an int n ->
     {"shortest_edge": n}; resize() then demands "shortest_edge", a {"height", "width"} size is a
     ValueError in 4.29), crop_size through get_size_dict(default_to_square=True) (n -> {"height": n,
     "width": n}; center_crop() demands "height" and "width"). preprocess, per image: convert("RGB");
     np.array (u8 HWC); resize: get_resize_output_image_size(default_to_square=False): the short side
     becomes shortest_edge, the long side int(shortest_edge * long / short) (truncated, not rounded), then
     to_pil_image (u8: no rescale) and PIL Image.resize((w, h), resample, reducing_gap=None) -> u8 (Pillow's
     fixed-point bicubic, see ../shared/golden/vision/STAGES.md image.preprocess), skipped by Pillow when
     the size is unchanged; center_crop(height, width) in CHW: top = (H - ch) // 2, left = (W - cw) // 2
     (FLOOR, where torchvision's CenterCrop rounds), and where the crop is larger than the image, a
     zero-filled canvas of max(ch, H) x max(cw, W) holding the image at ((newH - H) // 2, (newW - W) // 2)
     is cropped at the shifted offsets (sd-b-safety-pad's case pads the resized short side);
     rescale: u8 * rescale_factor (a Python float: the product is float64) .astype(float32); normalize:
     mean and std as float32 arrays (the image's dtype), (x - mean) / std in float32; channels first;
     return_tensors "pt" stacks the batch -> pixel_values F32 [B, 3, ch, cw].
  safety_checker (diffusers v0.17.0 pipelines/stable_diffusion/safety_checker.py StableDiffusionSafetyChecker,
     a transformers PreTrainedModel with config_class CLIPConfig, from safety_checker/{config.json,
     model.safetensors | pytorch_model.bin}): vision_model = CLIPVisionModel(config.vision_config),
     visual_projection = Linear(vision hidden_size, config.projection_dim, bias=False), parameters
     concept_embeds [17, P], special_care_embeds [3, P], concept_embeds_weights [17],
     special_care_embeds_weights [3] (P = the TOP-LEVEL projection_dim, default 512; vision_config's own
     projection_dim is unused). forward: pooled = vision_model(clip_input)[1]; image_embeds =
     visual_projection(pooled); special_cos_dist / cos_dist = mm(F.normalize(image_embeds),
     F.normalize(embeds).t()) .cpu().float().numpy(); then per image, literally (ported below, not
     vectorised): adjustment = 0.0; for each special concept k in order: score = round(cos - weights[k]
     .item() + adjustment, 3) — np.float32 minus a Python float is np.float64, and round() of an np.float64
     is numpy's round (rint(x * 1000) / 1000, half to even), not Python's correctly rounded one; if score > 0
     the image is in "special care" and adjustment = 0.01 FROM THEN ON (later special concepts and every
     concept score get it, earlier special concepts do not); then each concept j: score = round(cos -
     weights[j].item() + adjustment, 3), bad if > 0; has_nsfw_concept = any bad concept; a flagged image is
     replaced by np.zeros (black) in the numpy batch itself. (forward_onnx, which neither rounds nor applies
     the adjustment to special scores, is not what the pipeline calls.)
  CLIPVisionModel (transformers 4.29 modeling_clip.py): CLIPVisionEmbeddings: patch_embedding Conv2d(3, D,
     patch, stride patch, no bias), flatten row-major, prepend class_embedding, add
     position_embedding(position_ids) (position_ids a persistent buffer arange(num_patches + 1)[None];
     checkpoints may or may not store it: _keys_to_ignore_on_load_missing = ["position_ids"]);
     pre_layrnorm; CLIPEncoder (tools/gen_clip_cases.py clip_encoder, no mask); pooled =
     post_layernorm(last_hidden_state[:, 0]); every LayerNorm with eps = vision_config.layer_norm_eps;
     ACT2FN[hidden_act] (quick_gelu x * sigmoid(1.702 x), gelu exact erf).
  CLIPConfig (transformers 4.29 configuration_clip.py): vision_config = CLIPVisionConfig defaults
     (hidden_size 768, intermediate_size 3072, projection_dim 512, num_hidden_layers 12,
     num_attention_heads 12, num_channels 3, image_size 224, patch_size 32, hidden_act "quick_gelu",
     layer_norm_eps 1e-5) updated by the file's "vision_config"; BUT when the legacy key
     "vision_config_dict" is present (SD 1.5's safety_checker/config.json has both), CLIPConfig.__init__
     does vision_config.update(CLIPVisionConfig(**vision_config_dict).to_dict()): the defaults plus
     vision_config_dict, i.e. EVERY key, override vision_config, so a value only vision_config names
     falls back to its default. text_config / text_config_dict are not used by the checker.

Verified with the search tool (transformers cannot be fetched whole: its snapshot is 1.3 GB): the CLIPConfig
block above in huggingface/transformers src/transformers/models/clip/configuration_clip.py (the index's newest
version; its comment dates the "_vision_config_dict ... update" logic to commit 8827e1b2, early 2023, before
4.29); modeling_clip.py and image_transforms.py of a 4.27.1 snapshot (xiaojunjun65/transformers-mlu_4.27.1):
pre_layrnorm / post_layernorm WITH eps=config.layer_norm_eps (copies of older modeling_clip.py in other
repositories have plain nn.LayerNorm(embed_dim): eps 1e-5 whatever the config says), the persistent position_ids buffer, q scaled after
q_proj, rescale = image * scale then astype, resize through to_pil_image + PIL resize(reducing_gap=None),
get_resize_output_image_size's int(), center_crop's floor offsets and zero padding, normalize with mean / std
cast to the image's dtype; CLIPImageProcessor's resize / center_crop / rescale / normalize / preprocess order
as 4.2x vendored copies show it (the newest image_processing_clip.py, also read, differs only where it does not
matter here: rescale upcasts explicitly to float64 (the same result for u8), resize accepts a
{"height", "width"} size, an input_data_format argument). diffusers v0.17.0 and custom_sd.py were read from
their git mirrors.

Models (tests/golden/models/):
  sd-b-safety/      model_index.json = sd-b-pipe's with safety_checker ["stable_diffusion",
                    "StableDiffusionSafetyChecker"], feature_extractor ["transformers", "CLIPImageProcessor"],
                    requires_safety_checker true; unet, vae, scheduler -> ../sd-b-pipe/* (relative symlinks);
                    safety_checker/config.json in SD 1.5's layout: a full "vision_config" AND a
                    "vision_config_dict" {hidden_size 32, intermediate_size 64, num_attention_heads 4,
                    num_hidden_layers 2, patch_size 8, image_size 32}: the effective tower is those + defaults
                    (quick_gelu, layer_norm_eps 1e-5), while "vision_config" says hidden_act "gelu" and
                    layer_norm_eps 1e-6 (decoys a loader must ignore); projection_dim 16 (vision_config's
                    512 unused); text_config / text_config_dict present and unused;
                    safety_checker/model.safetensors WITHOUT position_ids;
                    feature_extractor/preprocessor_config.json in SD 1.5's legacy form: size 32, crop_size 32
                    (ints), resample 3, "feature_extractor_type": "CLIPFeatureExtractor".
  sd-b-safety-bin/  the same links, feature_extractor ["transformers", "CLIPFeatureExtractor"];
                    safety_checker/config.json with a plain vision_config (no vision_config_dict): hidden 24,
                    3 layers, 3 heads, intermediate 48, patch 4, image_size 24, hidden_act "gelu",
                    layer_norm_eps 1e-6 (num_channels left to its default 3), projection_dim 12;
                    safety_checker/pytorch_model.bin (torch.save of the state dict, torch 1.13 zip format,
                    position_ids I64 [1, 37] stored as older checkpoints do); preprocessor_config.json in the
                    dict form: size {"shortest_edge": 28}, crop_size {"height": 24, "width": 24} (crop smaller
                    than the resized short side).
  sd-b-safety-pad/  the same links; a plain vision_config: hidden 24, 2 layers, 2 heads, intermediate 40,
                    patch 6, image_size 24, quick_gelu; projection_dim 10; model.safetensors;
                    preprocessor_config.json: size {"shortest_edge": 20} below crop_size 24, so
                    transformers' center_crop pads the short side with zero pixels (2 rows each side).
The towers' embeddings (class, position, patch) are small (std ~0.02), so pre_layrnorm's eps matters: the
decoy eps / act and a wrong default each move image_embeds far past the tolerance (measured, in the notes).
concept_embeds / special_care_embeds (rows of assorted norms) and their thresholds are chosen AFTER the
image_embeds of every case image are known (a min-norm direction that separates the target image from
the others, plus noise; random directions for untargeted concepts), so that: every sd.safety_checker
case with B >= 2 has flagged and unflagged images; on sd-b-safety one image hits special concept 0, which
gives it the adjustment, flips its special concept 1 from -0.005 to +0.005 and a concept from <= 0 to > 0
(flagged only by the adjustment); on sd-b-safety-bin one image has special concepts 0 and 1 at -0.005 /
-0.004 and hits 2 (the adjustment comes after them: they stay negative, and no concept reaches 0 even
with it: special care but not flagged). Asserted for every score of every sd.safety_checker image, in the
float32 and the float64 run: at least 2e-5 from any rounding boundary (k + 0.5) * 1e-3, and the unrounded
value at least 1e-3 from 0 and from 0.0005 (where the rounded score turns positive), so float-order
differences cannot change a rounded score or a decision. For the sd.generate images (whose pixels a C
pipeline reproduces only to its own float error, which can move a u8 level) every unrounded value is at
least 0.02 from the decision, and the generator asserts that 4 random +-1 u8 perturbations of 2 % of the
pixels (and the float64 pipeline's u8 image) move no value by more than a fifth of that margin.

Cases:
  vision/sd.safety_checker/<model>_<what>/: inputs `images` F32 [B, H, W, 3] in [0, 1] (what decode_latents
     returns: smooth colour fields, waves, rectangles, noise, exact 0 and 1, and float32 values whose x * 255
     is exactly k + 0.5 (flat blocks of even k and of odd k, and scattered pixels), so round-half-even
     matters); expected `pixel_values` F32 [B, 3, S, S] (feature extractor), `image_embeds` F32 [B, P],
     `special_scores` F32 [B, 3] and `concept_scores` F32 [B, 17] (the rounded values of the result dicts),
     `has_nsfw_concepts` I64 [B] (0 / 1), `images` F32 [B, H, W, 3] (flagged ones black). params {}.
  vision/sd.generate/sd-b-safety_*/: gen_generate_cases.py's sd.generate (its StableDiffusionPipeline port,
     imported) on batch-2 latents / prompt_embeds / negative_prompt_embeds with params "safety_checker": true;
     run_safety_checker after decode_latents as custom_sd does; expected `image` (flagged ones black) and
     `has_nsfw_concepts` I64 [2].
Tolerance: the same port in float64 (tower, cosine; the feature extractor is u8 / float32 arithmetic either
way; scores and decisions asserted equal), atol = max|fp32 - fp64| x 8 (sd.safety_checker, floor 1e-5) or
x 16 (sd.generate, floor 2e-5, as gen_generate_cases.py) rounded up to 1/2/5 x 10^k; rtol 1e-3. Each note
records what the case tells apart, measured with variants of the port (not upstream).

Run with Debian's python3 (torch 1.13, numpy 1.24, Pillow 9.4, python3-regex for gen_clip_cases.py):
    /usr/bin/python3 tools/gen_safety_cases.py
It needs the sd-b-pipe model of tools/gen_generate_cases.py; it rewrites the same bytes each time (fixed
seeds, one thread). Tests never run it.
"""
import collections
import json
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import gen_generate_cases as GG  # noqa: E402 (also puts ../shared/golden on sys.path)
from gen_clip_cases import clip_encoder  # noqa: E402
from golden_st import dump_json, link_component, round_tol, write_st  # noqa: E402
from check import load_safetensors, save_safetensors  # noqa: E402

MODELS, OUT = GG.MODELS, GG.OUT
STAGE, SD = "sd.safety_checker", GG.SD
RTOL = 1e-3
ATOL_FLOOR = {STAGE: 1e-5, SD: GG.SHARED_ATOL[SD]}
FACTOR = {STAGE: 8, SD: 16}
N_SPECIAL, N_CONCEPT = 3, 17  # StableDiffusionSafetyChecker.__init__'s parameter shapes
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "projection_dim": 512, "num_hidden_layers": 12,
                   "num_attention_heads": 12, "num_channels": 3, "image_size": 224, "patch_size": 32,
                   "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0,
                   "initializer_range": 0.02, "initializer_factor": 1.0}
PRE = "vision_model.vision_model."
SOURCE_FE = ("diffusers v0.17.0 numpy_to_pil, transformers v4.29 CLIPImageProcessor (Pillow " + Image.__version__ +
             " bicubic resize)")
SOURCE_SC = ("diffusers v0.17.0 StableDiffusionSafetyChecker.forward on transformers v4.29 CLIPVisionModel (CLIPConfig "
             "with its vision_config_dict rule)")
SOURCE = {
    STAGE: ("tools/gen_safety_cases.py: torch " + torch.__version__ + " float32 CPU port of NExT-GPT/NExT-GPT@60d618b "
            "NExT-GPT-Lagacy/code/model/custom_sd.py StableDiffusionPipeline.run_safety_checker: " + SOURCE_FE +
            ", " + SOURCE_SC + "; NOT diffusers / transformers themselves"),
    SD: ("tools/gen_safety_cases.py + tools/gen_generate_cases.py: torch " + torch.__version__ + " float32 CPU port of "
         "NExT-GPT/NExT-GPT@60d618b NExT-GPT-Lagacy/code/model/custom_sd.py StableDiffusionPipeline.__call__("
         "prompt_embeds, negative_prompt_embeds, latents, height, width, num_inference_steps, guidance_scale, "
         "output_type='np') with its safety checker (run_safety_checker after decode_latents: " + SOURCE_FE + ", " +
         SOURCE_SC + ") on the ports of huggingface/diffusers v0.17.0 UNet2DConditionModel, PNDMScheduler and "
         "AutoencoderKL.decode; NOT diffusers / transformers themselves"),
}


# ------------------------------------------------------------------------------------------ configs

def get_size_dict(size, default_to_square):
    """transformers 4.29 image_processing_utils.get_size_dict for the forms a preprocessor config holds."""
    if isinstance(size, dict):
        if set(size) not in ({"height", "width"}, {"shortest_edge"}, {"shortest_edge", "longest_edge"},
                             {"longest_edge"}):
            raise ValueError("size dict keys %s" % sorted(size))
        return dict(size)
    if isinstance(size, int):
        return {"height": size, "width": size} if default_to_square else {"shortest_edge": size}
    if isinstance(size, (list, tuple)):
        return {"height": size[0], "width": size[1]}
    raise ValueError("size %r" % (size,))


def feature_extractor_config(d):
    """CLIPImageProcessor(**d) of transformers 4.29 (from_dict of a preprocessor_config.json), as a dict."""
    fe = {"do_resize": True, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": True,
          "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255,
          "do_normalize": True, "image_mean": OPENAI_CLIP_MEAN, "image_std": OPENAI_CLIP_STD, "do_convert_rgb": True}
    for k in fe:
        if k in d and not (d[k] is None and k in ("size", "crop_size", "image_mean", "image_std")):
            fe[k] = d[k]
    fe["size"] = get_size_dict(fe["size"], default_to_square=False)
    fe["crop_size"] = get_size_dict(fe["crop_size"], default_to_square=True)
    return fe


def load_feature_extractor(model_dir):
    """CLIPImageProcessor.from_pretrained(model_dir/feature_extractor) of transformers 4.29, as a dict."""
    return feature_extractor_config(json.load(open(os.path.join(model_dir, "feature_extractor",
                                                                "preprocessor_config.json"))))


def clip_config(d, use_vision_config_dict=True):
    """CLIPConfig(**d) of transformers 4.29: -> (effective vision config, top-level projection_dim).
    use_vision_config_dict=False gives a variant (not upstream): the legacy key ignored."""
    vision_config = dict(d.get("vision_config") or {})
    vision_config_dict = d.get("vision_config_dict")
    if vision_config_dict is not None and use_vision_config_dict:
        vision_config.update({**VISION_DEFAULTS, **vision_config_dict})  # CLIPVisionConfig(**...).to_dict()
    return {**VISION_DEFAULTS, **vision_config}, d.get("projection_dim", 512)


# -------------------------------------------------------------------- numpy_to_pil + feature extractor

def numpy_to_pil(images, rounding="half_even"):
    """diffusers 0.17 numpy_to_pil -> u8 arrays [H, W, 3] (the PIL images' contents). rounding "half_up" is a
    variant (not upstream): C's roundf."""
    if images.ndim == 3:
        images = images[None, ...]
    x = images * 255
    u8 = (x.round() if rounding == "half_even" else np.floor(x + np.asarray(0.5, x.dtype))).astype("uint8")
    return [np.array(Image.fromarray(a).convert("RGB")) for a in u8]  # PIL RGB, convert_to_rgb, to_numpy_array


def resize_output_size(h, w, size, long_rounding="int"):
    """get_resize_output_image_size(default_to_square=False); long_rounding "round" is a variant."""
    short, long = (w, h) if w <= h else (h, w)
    new_short = size
    new_long = int(size * long / short) if long_rounding == "int" else int(round(size * long / short))
    return (new_long, new_short) if w <= h else (new_short, new_long)


def center_crop(image, ch, cw, offsets="floor"):
    """transformers 4.29 image_transforms.center_crop on HWC u8 (done in CHW upstream: the same elements);
    offsets "round" is a variant (torchvision's int(round((H - ch) / 2)))."""
    h, w = image.shape[:2]
    off = (lambda a, b: (a - b) // 2) if offsets == "floor" else (lambda a, b: int(round((a - b) / 2.0)))
    top, left = off(h, ch), off(w, cw)
    bottom, right = top + ch, left + cw
    if top >= 0 and bottom <= h and left >= 0 and right <= w:
        return image[top:bottom, left:right]
    new_h, new_w = max(ch, h), max(cw, w)
    canvas = np.zeros((new_h, new_w) + image.shape[2:], image.dtype)
    top_pad, left_pad = (new_h - h) // 2, (new_w - w) // 2
    canvas[top_pad:top_pad + h, left_pad:left_pad + w] = image
    top, bottom, left, right = top + top_pad, bottom + top_pad, left + left_pad, right + left_pad
    return canvas[max(0, top):min(new_h, bottom), max(0, left):min(new_w, right)]


def feature_extract(fe, u8_images, long_rounding="int", offsets="floor", info=None):
    """CLIPImageProcessor.preprocess(images, return_tensors="pt").pixel_values -> torch F32 [B, 3, ch, cw]."""
    out = []
    for a in u8_images:
        h, w = a.shape[:2]
        if fe["do_resize"]:
            if "shortest_edge" not in fe["size"]:
                raise ValueError("The `size` parameter must contain the key `shortest_edge`.")
            oh, ow = resize_output_size(h, w, fe["size"]["shortest_edge"], long_rounding)
            a = np.array(Image.fromarray(a).resize((ow, oh), resample=fe["resample"], reducing_gap=None))
        if fe["do_center_crop"]:
            ch, cw = fe["crop_size"]["height"], fe["crop_size"]["width"]
            if info is not None:
                info.append({"in": [h, w], "resized": list(a.shape[:2]),
                             "top": (a.shape[0] - ch) // 2, "left": (a.shape[1] - cw) // 2})
            a = center_crop(a, ch, cw, offsets)
        if fe["do_rescale"]:
            a = (a * fe["rescale_factor"]).astype(np.float32)  # u8 * Python float: float64, then float32
        if fe["do_normalize"]:
            mean = np.array(fe["image_mean"], dtype=a.dtype)
            std = np.array(fe["image_std"], dtype=a.dtype)
            a = (a - mean) / std
        out.append(a.transpose(2, 0, 1))
    return torch.tensor(np.array(out))


# ------------------------------------------------------------------------------------ safety checker

def cosine_distance(image_embeds, text_embeds):
    normalized_image_embeds = F.normalize(image_embeds)
    normalized_text_embeds = F.normalize(text_embeds)
    return torch.mm(normalized_image_embeds, normalized_text_embeds.t())


class SafetyChecker:
    """StableDiffusionSafetyChecker (vision tower + projection + the scoring loop) on a config dict and a state
    dict, in float32 or float64 (position_ids stay I64)."""

    def __init__(self, config, state, dtype=torch.float32, use_vision_config_dict=True, **over):
        self.vcfg, self.projection_dim = clip_config(config, use_vision_config_dict)
        self.vcfg = {**self.vcfg, **over}  # variants (not upstream): e.g. another layer_norm_eps
        self.dtype = dtype
        self.w = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
        c = self.vcfg
        D, p = c["hidden_size"], c["patch_size"]
        n_pos = (c["image_size"] // p) ** 2 + 1
        shapes = {PRE + "embeddings.class_embedding": [D],
                  PRE + "embeddings.patch_embedding.weight": [D, c["num_channels"], p, p],
                  PRE + "embeddings.position_embedding.weight": [n_pos, D],
                  "visual_projection.weight": [self.projection_dim, D],
                  "concept_embeds": [N_CONCEPT, self.projection_dim],
                  "special_care_embeds": [N_SPECIAL, self.projection_dim],
                  "concept_embeds_weights": [N_CONCEPT], "special_care_embeds_weights": [N_SPECIAL]}
        for k, s in shapes.items():
            if k in self.w:
                assert list(self.w[k].shape) == s, (k, list(self.w[k].shape), s)
        if PRE + "embeddings.position_ids" not in self.w:  # the buffer's own value
            self.w[PRE + "embeddings.position_ids"] = torch.arange(n_pos).expand((1, -1))

    @classmethod
    def from_dir(cls, model_dir, dtype=torch.float32, **kw):
        d = os.path.join(model_dir, "safety_checker")
        config = json.load(open(os.path.join(d, "config.json")))
        if os.path.exists(os.path.join(d, "model.safetensors")):
            state = {k: torch.from_numpy(v) for k, v in load_safetensors(os.path.join(d, "model.safetensors"))[0].items()}
        else:
            state = torch.load(os.path.join(d, "pytorch_model.bin"), map_location="cpu")
        return cls(config, state, dtype, **kw)

    def vision_model(self, pixel_values):
        """CLIPVisionModel(pixel_values)[1] (the pooled output)."""
        c, w = self.vcfg, self.w
        D, eps = c["hidden_size"], c["layer_norm_eps"]
        batch_size = pixel_values.shape[0]
        patch_embeds = F.conv2d(pixel_values, w[PRE + "embeddings.patch_embedding.weight"], stride=c["patch_size"])
        patch_embeds = patch_embeds.flatten(2).transpose(1, 2)
        class_embeds = w[PRE + "embeddings.class_embedding"].expand(batch_size, 1, -1)
        embeddings = torch.cat([class_embeds, patch_embeds], dim=1)
        embeddings = embeddings + F.embedding(w[PRE + "embeddings.position_ids"],
                                              w[PRE + "embeddings.position_embedding.weight"])
        x = F.layer_norm(embeddings, (D,), w[PRE + "pre_layrnorm.weight"], w[PRE + "pre_layrnorm.bias"], eps)
        x = clip_encoder(c, w, PRE + "encoder.layers.", x)
        return F.layer_norm(x[:, 0, :], (D,), w[PRE + "post_layernorm.weight"], w[PRE + "post_layernorm.bias"], eps)

    def image_embeds(self, clip_input):
        return F.linear(self.vision_model(clip_input.to(self.dtype)), self.w["visual_projection.weight"])

    def cos_dists(self, image_embeds):
        special_cos_dist = cosine_distance(image_embeds, self.w["special_care_embeds"]).cpu().float().numpy()
        cos_dist = cosine_distance(image_embeds, self.w["concept_embeds"]).cpu().float().numpy()
        return special_cos_dist, cos_dist

    def forward(self, clip_input, images):
        """-> (images, has_nsfw_concepts, result, image_embeds, raw); raw (not upstream) holds each score's
        unrounded value and the adjustment in it, for the margin checks."""
        image_embeds = self.image_embeds(clip_input)
        special_cos_dist, cos_dist = self.cos_dists(image_embeds)
        result, raw = [], []
        batch_size = image_embeds.shape[0]
        for i in range(batch_size):
            result_img = {"special_scores": {}, "special_care": [], "concept_scores": {}, "bad_concepts": []}
            raw_img = {"special": {}, "concept": {}}
            # increase this value to create a stronger `nfsw` filter
            # at the cost of increasing the possibility of filtering benign images
            adjustment = 0.0
            for concept_idx in range(len(special_cos_dist[0])):
                concept_cos = special_cos_dist[i][concept_idx]
                concept_threshold = self.w["special_care_embeds_weights"][concept_idx].item()
                raw_img["special"][concept_idx] = (concept_cos - concept_threshold + adjustment, adjustment)
                result_img["special_scores"][concept_idx] = round(concept_cos - concept_threshold + adjustment, 3)
                if result_img["special_scores"][concept_idx] > 0:
                    result_img["special_care"].append({concept_idx, result_img["special_scores"][concept_idx]})
                    adjustment = 0.01
            for concept_idx in range(len(cos_dist[0])):
                concept_cos = cos_dist[i][concept_idx]
                concept_threshold = self.w["concept_embeds_weights"][concept_idx].item()
                raw_img["concept"][concept_idx] = (concept_cos - concept_threshold + adjustment, adjustment)
                result_img["concept_scores"][concept_idx] = round(concept_cos - concept_threshold + adjustment, 3)
                if result_img["concept_scores"][concept_idx] > 0:
                    result_img["bad_concepts"].append(concept_idx)
            result.append(result_img)
            raw.append(raw_img)
        has_nsfw_concepts = [len(res["bad_concepts"]) > 0 for res in result]
        for idx, has_nsfw_concept in enumerate(has_nsfw_concepts):
            if has_nsfw_concept:
                images[idx] = np.zeros(images[idx].shape)  # black image
        return images, has_nsfw_concepts, result, image_embeds, raw


def variant_scores(special_cos_dist, cos_dist, sw, cw, mode):
    """Variants of the scoring loop (not upstream) -> (special_scores, concept_scores, has_nsfw):
    "all_special": the adjustment added to every special score once any special concept hits;
    "concepts_only": never added to special scores (forward_onnx's placement, rounded);
    "no_adjustment": never added."""
    sp_raw = special_cos_dist.astype(np.float64) - sw[None]
    hit = (np.round(sp_raw, 3) > 0).any(axis=1)
    adj = np.where(hit, 0.01, 0.0)[:, None] if mode != "no_adjustment" else np.zeros((len(hit), 1))
    sp = np.round(sp_raw + (adj if mode == "all_special" else 0.0), 3)
    cs = np.round(cos_dist.astype(np.float64) - cw[None] + adj, 3)
    return sp, cs, (cs > 0).any(axis=1)


def run_safety_checker(model_dir, image, dtype, rounding="half_even", long_rounding="int", offsets="floor",
                       info=None, u8=None, **kw):
    """custom_sd.run_safety_checker(image, device, dtype) on the model folder -> (outputs, result, raw, checker).
    u8 (instead of numpy_to_pil(image)) feeds given u8 images to the feature extractor (perturbation checks)."""
    fe = load_feature_extractor(model_dir)
    sc = SafetyChecker.from_dir(model_dir, dtype, **kw)
    with torch.no_grad():
        pixel_values = feature_extract(fe, numpy_to_pil(image, rounding) if u8 is None else u8, long_rounding,
                                       offsets, info)
        images, has_nsfw, result, image_embeds, raw = sc.forward(pixel_values.to(dtype), image.copy())
    out = {"pixel_values": pixel_values.numpy(), "image_embeds": image_embeds.float().numpy()
           if dtype == torch.float32 else image_embeds.numpy(),
           "special_scores": np.array([[r["special_scores"][k] for k in range(N_SPECIAL)] for r in result],
                                      np.float32),
           "concept_scores": np.array([[r["concept_scores"][k] for k in range(N_CONCEPT)] for r in result],
                                      np.float32),
           "has_nsfw_concepts": np.array(has_nsfw, np.int64), "images": images}
    return out, result, raw, sc


# --------------------------------------------------------------------------------------- the models

def make_tower(seed, D, layers, heads, inter, patch, image_size, P, position_ids):
    """Fixed random weights of the checker's vision tower + projection, in upstream state_dict order (the
    checker's own parameters, which come first, are added later by design())."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, std: torch.randn(*s, generator=g) * std
    n_pos = (image_size // patch) ** 2 + 1
    w = collections.OrderedDict()
    w[PRE + "embeddings.class_embedding"] = r(D, std=0.02)
    if position_ids:
        w[PRE + "embeddings.position_ids"] = torch.arange(n_pos).reshape(1, n_pos)
    w[PRE + "embeddings.patch_embedding.weight"] = r(D, 3, patch, patch, std=0.02 / np.sqrt(3 * patch * patch))
    w[PRE + "embeddings.position_embedding.weight"] = r(n_pos, D, std=0.02)
    w[PRE + "pre_layrnorm.weight"] = 1 + r(D, std=0.1)
    w[PRE + "pre_layrnorm.bias"] = r(D, std=0.05)
    for i in range(layers):
        p = PRE + "encoder.layers.%d." % i
        for n in ("k_proj", "v_proj", "q_proj", "out_proj"):
            w[p + "self_attn.%s.weight" % n] = r(D, D, std=0.25)
            w[p + "self_attn.%s.bias" % n] = r(D, std=0.05)
        w[p + "layer_norm1.weight"] = 1 + r(D, std=0.1)
        w[p + "layer_norm1.bias"] = r(D, std=0.05)
        w[p + "mlp.fc1.weight"] = r(inter, D, std=0.25)
        w[p + "mlp.fc1.bias"] = r(inter, std=0.05)
        w[p + "mlp.fc2.weight"] = r(D, inter, std=0.2)
        w[p + "mlp.fc2.bias"] = r(D, std=0.05)
        w[p + "layer_norm2.weight"] = 1 + r(D, std=0.1)
        w[p + "layer_norm2.bias"] = r(D, std=0.05)
    w[PRE + "post_layernorm.weight"] = 1 + r(D, std=0.1)
    w[PRE + "post_layernorm.bias"] = r(D, std=0.05)
    w["visual_projection.weight"] = r(P, D, std=0.25)
    return w


GENERIC = {"_name_or_path": "", "add_cross_attention": False, "architectures": None, "attention_dropout": 0.0,
           "bad_words_ids": None, "bos_token_id": None, "chunk_size_feed_forward": 0,
           "cross_attention_hidden_size": None, "decoder_start_token_id": None, "diversity_penalty": 0.0,
           "do_sample": False, "dropout": 0.0, "early_stopping": False, "encoder_no_repeat_ngram_size": 0,
           "eos_token_id": None, "finetuning_task": None, "forced_bos_token_id": None,
           "forced_eos_token_id": None, "id2label": {"0": "LABEL_0", "1": "LABEL_1"}, "initializer_factor": 1.0,
           "initializer_range": 0.02, "is_decoder": False, "is_encoder_decoder": False,
           "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "length_penalty": 1.0, "max_length": 20, "min_length": 0,
           "no_repeat_ngram_size": 0, "num_beam_groups": 1, "num_beams": 1, "num_return_sequences": 1,
           "output_attentions": False, "output_hidden_states": False, "output_scores": False,
           "pad_token_id": None, "prefix": None, "problem_type": None, "pruned_heads": {},
           "remove_invalid_values": False, "repetition_penalty": 1.0, "return_dict": True,
           "return_dict_in_generate": False, "sep_token_id": None, "task_specific_params": None,
           "temperature": 1.0, "tie_encoder_decoder": False, "tie_word_embeddings": True, "tokenizer_class": None,
           "top_k": 50, "top_p": 1.0, "torch_dtype": None, "torchscript": False,
           "transformers_version": "4.22.0.dev0", "typical_p": 1.0, "use_bfloat16": False}


def sd15_style_config():
    """sd-b-safety's safety_checker/config.json: SD 1.5's layout (vision_config + vision_config_dict, text_config +
    text_config_dict), tiny sizes; vision_config's hidden_act / layer_norm_eps are decoys (see the docstring)."""
    vision_dict = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
                   "patch_size": 8, "image_size": 32}
    vision = dict(sorted({**GENERIC, **vision_dict, "hidden_act": "gelu", "layer_norm_eps": 1e-06,
                          "model_type": "clip_vision_model", "num_channels": 3, "projection_dim": 512}.items()))
    text_dict = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2}
    text = dict(sorted({**GENERIC, **text_dict, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
                        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
                        "model_type": "clip_text_model", "projection_dim": 512, "vocab_size": 49408}.items()))
    return {"_commit_hash": None, "_name_or_path": "tiny-stable-diffusion-safety-checker",
            "architectures": ["StableDiffusionSafetyChecker"], "initializer_factor": 1.0,
            "logit_scale_init_value": 2.6592, "model_type": "clip", "projection_dim": 16, "text_config": text,
            "text_config_dict": text_dict, "torch_dtype": "float32", "transformers_version": None,
            "vision_config": vision, "vision_config_dict": vision_dict}


def plain_config():
    """sd-b-safety-bin's safety_checker/config.json: a plain vision_config (what save_pretrained of 4.29 would
    keep of it), no *_config_dict."""
    return {"_name_or_path": "tiny-stable-diffusion-safety-checker-bin",
            "architectures": ["StableDiffusionSafetyChecker"], "initializer_factor": 1.0,
            "logit_scale_init_value": 2.6592, "model_type": "clip", "projection_dim": 12,
            "text_config": {"hidden_size": 24, "intermediate_size": 48, "model_type": "clip_text_model",
                            "num_attention_heads": 3, "num_hidden_layers": 3},
            "torch_dtype": "float32", "transformers_version": "4.29.2",
            "vision_config": {"hidden_act": "gelu", "hidden_size": 24, "image_size": 24, "intermediate_size": 48,
                              "layer_norm_eps": 1e-06, "model_type": "clip_vision_model", "num_attention_heads": 3,
                              "num_hidden_layers": 3, "patch_size": 4}}


def pad_config():
    """sd-b-safety-pad's safety_checker/config.json: a plain vision_config, defaults for act and eps."""
    return {"_name_or_path": "tiny-stable-diffusion-safety-checker-pad",
            "architectures": ["StableDiffusionSafetyChecker"], "model_type": "clip", "projection_dim": 10,
            "torch_dtype": "float32", "transformers_version": "4.29.2",
            "vision_config": {"hidden_size": 24, "image_size": 24, "intermediate_size": 40,
                              "model_type": "clip_vision_model", "num_attention_heads": 2,
                              "num_hidden_layers": 2, "patch_size": 6}}


FE_LEGACY = {"crop_size": 32, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
             "do_resize": True, "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": OPENAI_CLIP_MEAN,
             "image_std": OPENAI_CLIP_STD, "resample": 3, "size": 32}
FE_DICT = {"crop_size": {"height": 24, "width": 24}, "do_center_crop": True, "do_convert_rgb": True,
           "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": OPENAI_CLIP_MEAN,
           "image_processor_type": "CLIPImageProcessor", "image_std": OPENAI_CLIP_STD, "resample": 3,
           "rescale_factor": 1 / 255, "size": {"shortest_edge": 28}}
FE_PAD = {"crop_size": 24, "do_center_crop": True, "do_normalize": True, "do_resize": True,
          "image_mean": OPENAI_CLIP_MEAN, "image_processor_type": "CLIPImageProcessor", "image_std": OPENAI_CLIP_STD,
          "resample": 3, "size": {"shortest_edge": 20}}

# name -> (safety_checker config, tower (seed, D, layers, heads, inter, patch, image_size), position_ids stored,
#          weights file, preprocessor config, model_index feature_extractor class)
SAFETY_MODELS = {
    "sd-b-safety": (sd15_style_config(), (101, 32, 2, 4, 64, 8, 32), False, "model.safetensors", FE_LEGACY,
                    "CLIPImageProcessor"),
    "sd-b-safety-bin": (plain_config(), (202, 24, 3, 3, 48, 4, 24), True, "pytorch_model.bin", FE_DICT,
                        "CLIPFeatureExtractor"),
    "sd-b-safety-pad": (pad_config(), (303, 24, 2, 2, 40, 6, 24), False, "model.safetensors", FE_PAD,
                        "CLIPImageProcessor"),
}


def write_model(name, state):
    cfg, tower, _, weights, fe, fe_class = SAFETY_MODELS[name]
    d = os.path.join(MODELS, name)
    if os.path.isdir(d):
        shutil.rmtree(d)  # symlinks inside are unlinked, not followed
    os.makedirs(os.path.join(d, "safety_checker"))
    os.makedirs(os.path.join(d, "feature_extractor"))
    idx = json.load(open(os.path.join(MODELS, "sd-b-pipe", "model_index.json")))
    idx["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    idx["feature_extractor"] = ["transformers", fe_class]
    idx["requires_safety_checker"] = True
    dump_json(os.path.join(d, "model_index.json"), idx, 1)
    for sub in ("unet", "vae", "scheduler"):
        link_component(MODELS, d, sub, "sd-b-pipe/" + sub, None, None, None)
    dump_json(os.path.join(d, "safety_checker", "config.json"), cfg, 2)
    if weights == "model.safetensors":
        write_st(os.path.join(d, "safety_checker", weights), state)
    else:
        torch.save(collections.OrderedDict((k, v.clone()) for k, v in state.items()),
                   os.path.join(d, "safety_checker", weights))
    dump_json(os.path.join(d, "feature_extractor", "preprocessor_config.json"), fe, 2)


# -------------------------------------------------------------------------------------- the design

# targets: (image key, "special" | "concept", index, kind, value); value = the wanted score with the
# adjustment in it. kinds: "hit" (> 0 by itself), "flip" (<= 0 without the adjustment, > 0 with it),
# "near" (-0.005-ish: <= 0, though an adjustment would lift it above 0).
TARGETS = {
    "sd-b-safety": [
        ("b2_64x64_ties/0", "concept", 3, "hit", 0.03),
        ("b3_40x64_special_care/1", "special", 0, "hit", 0.02),
        ("b3_40x64_special_care/1", "special", 1, "flip", 0.005),
        ("b3_40x64_special_care/1", "concept", 11, "flip", 0.005),
        ("b3_40x64_special_care/2", "concept", 0, "hit", 0.02),
        ("b3_40x64_special_care/2", "concept", 16, "hit", 0.045),
        ("gen:pndm_3steps_g7_5_64x64/1", "concept", 7, "hit", 0.06),
        ("gen:pndm_3steps_g1_72x48/0", "concept", 13, "hit", 0.06),
    ],
    "sd-b-safety-bin": [
        ("b2_72x48_special_order/0", "special", 0, "near", -0.005),
        ("b2_72x48_special_order/0", "special", 1, "near", -0.004),
        ("b2_72x48_special_order/0", "special", 2, "hit", 0.025),
        ("b2_72x48_special_order/1", "concept", 5, "hit", 0.03),
        ("b3_56x40/0", "concept", 9, "hit", 0.02),
        ("b3_56x40/2", "concept", 2, "hit", 0.06),
        ("b3_56x40/2", "concept", 12, "hit", 0.015),
        ("b1_40x64_flagged/0", "concept", 14, "hit", 0.035),
    ],
    "sd-b-safety-pad": [
        ("b2_40x64_padded/1", "concept", 6, "hit", 0.03),
    ],
}
GEN_MARGIN = 0.02  # sd.generate images: every unrounded score at least this far from the decision


def round_margin(v):
    """Distance (in score units) of v from the nearest rounding boundary (k + 0.5) * 1e-3."""
    x = v * 1000.0
    return abs(x - (np.floor(x) + 0.5)) / 1000.0


def value_ok(v, pre, kind, gen):
    """Is the unrounded score v (pre: without the adjustment) acceptable for its role?"""
    if gen:
        return v >= 0.03 if kind == "hit" else v <= -GEN_MARGIN
    if kind == "hit":
        return v >= 0.0015 and pre >= 0.0015
    if kind == "flip":
        return v >= 0.0015 and pre <= -0.001
    if kind == "near":
        return -0.0085 <= v <= -0.0015
    return v <= -0.003


def design(name, keys, emb32, emb64, rng):
    """Concept / special-care embeddings and thresholds for the images `keys` with image_embeds emb32 (float32
    run) and emb64 (float64 run), realising TARGETS[name] -> the four parameters (float32 tensors)."""
    P = emb32.shape[1]
    n = len(keys)
    gen = np.array([k.startswith("gen:") for k in keys])
    targets = {}
    for key, kind_, idx, kind, value in TARGETS[name]:
        targets[(kind_, idx)] = (keys.index(key), kind, value)
    e32, e64 = torch.from_numpy(emb32), torch.from_numpy(emb64)
    en = F.normalize(e32.double()).numpy()
    hits_before = np.zeros(n, bool)  # special care so far: the adjustment of the next score
    params = {}
    for kind_, count in (("special", N_SPECIAL), ("concept", N_CONCEPT)):
        embeds, weights = [], []
        rand = rng.standard_normal((count, P))
        norms = rng.uniform(0.5, 2.0, count)
        gaps = rng.uniform(0.03, 0.25, count)
        for j in range(count):
            adj = np.where(hits_before, 0.01, 0.0)
            r = rand[j] / np.linalg.norm(rand[j])
            tgt = targets.get((kind_, j))
            if tgt is None:
                c = torch.from_numpy((r * norms[j]).astype(np.float32))
                cos = cosine_distance(e32, c[None]).float().numpy()[:, 0].astype(np.float64)
                w = np.float32((cos + adj).max() + gaps[j])
                roles = ["none"] * n
            else:
                t, kind, value = tgt
                others = [i for i in range(n) if i != t]
                a = en[others] - en[t]
                sol = np.linalg.lstsq(a, -np.ones(len(others)), rcond=None)[0]  # equal-margin separating direction
                sol /= np.linalg.norm(sol)
                roles = ["none"] * n
                roles[t] = kind
                for eta in (0.6, 0.4, 0.25, 0.1, 0.0):
                    d = sol + eta * r
                    c = torch.from_numpy((d / np.linalg.norm(d) * norms[j]).astype(np.float32))
                    cos = cosine_distance(e32, c[None]).float().numpy()[:, 0].astype(np.float64)
                    w = np.float32(cos[t] + adj[t] - value)
                    v = cos - float(w) + adj
                    if all(value_ok(v[i], v[i] - adj[i], roles[i], gen[i]) for i in range(n)):
                        break
                else:
                    raise AssertionError("%s %s %d: no direction separates %s" % (name, kind_, j, keys[t]))
            # shift the threshold (< 5e-4) until every score of every sd.safety_checker image, float32 and
            # float64 runs, is 2e-5 from a rounding boundary (and still fits its role)
            cos_both = [cosine_distance(e, c[None].to(e.dtype)).float().numpy()[:, 0].astype(np.float64)
                        for e in (e32, e64)]
            for step in [0] + [s * k for k in range(1, 51) for s in (1, -1)]:
                w2 = np.float32(float(w) + step * 1e-5)
                ok = True
                for cos in cos_both:
                    v = cos - float(w2) + adj
                    for i in range(n):
                        ok = ok and value_ok(v[i], v[i] - adj[i], roles[i], gen[i])
                        if not gen[i]:  # (a little more than check_margins asserts: cos of 1 vs 17 concepts)
                            ok = ok and round_margin(v[i]) >= 3e-5 and min(abs(v[i]), abs(v[i] - 5e-4)) >= 1.1e-3
                if ok:
                    break
            else:
                raise AssertionError("%s %s %d: no threshold keeps the margins" % (name, kind_, j))
            embeds.append(c)
            weights.append(w2)
            if kind_ == "special":
                v = cos_both[0] - float(w2) + adj
                hits_before |= np.round(v, 3) > 0
        params[kind_] = (torch.stack(embeds), torch.tensor(np.array(weights, np.float32)))
    return collections.OrderedDict([("concept_embeds", params["concept"][0]),
                                    ("special_care_embeds", params["special"][0]),
                                    ("concept_embeds_weights", params["concept"][1]),
                                    ("special_care_embeds_weights", params["special"][1])])


# -------------------------------------------------------------------------------------------- images

def tie_value(k):
    """A float32 x with float32(x * 255) == k + 0.5 exactly (numpy_to_pil's product), or None."""
    x = np.float32((k + 0.5) / 255)
    for d in range(9):
        for s in (1, -1):
            y = x
            for _ in range(d):
                y = np.nextafter(y, np.float32(s * 2), dtype=np.float32)
            if y * np.float32(255) == np.float32(k + 0.5):
                return y
    return None


TIES = {k: tie_value(k) for k in range(255)}
TIES = {k: v for k, v in TIES.items() if v is not None}


def case_image(rng, H, W):
    """One float32 [H, W, 3] image in [0, 1]: a colour field with waves and rectangles, noise, an exact 0 block
    and an exact 1 block, a flat block of even-k ties, one of odd-k ties (x * 255 == k + 0.5), 3 % tie pixels."""
    yy, xx = np.mgrid[0:H, 0:W] / max(H, W)
    a = np.zeros((H, W, 3))
    for c in range(3):
        a[..., c] = (rng.uniform(0.2, 0.8) + rng.uniform(-0.5, 0.5) * yy + rng.uniform(-0.5, 0.5) * xx +
                     rng.uniform(0.05, 0.3) * np.sin(rng.uniform(3, 25) * xx + rng.uniform(3, 25) * yy +
                                                     rng.uniform(0, 6.3)))
    for _ in range(4):
        y0, x0 = rng.integers(0, H - 8), rng.integers(0, W - 8)
        a[y0:y0 + rng.integers(4, H // 3), x0:x0 + rng.integers(4, W // 3)] = rng.uniform(0, 1, 3)
    a = np.clip(a + rng.normal(0, 0.04, a.shape), 0, 1).astype(np.float32)
    bh, bw = H // 4, W // 4
    evens = [k for k in TIES if k % 2 == 0]
    odds = [k for k in TIES if k % 2 == 1]
    for pool in (evens, odds):
        y0, x0 = rng.integers(0, H - bh), rng.integers(0, W - bw)
        a[y0:y0 + bh, x0:x0 + bw] = [TIES[int(k)] for k in rng.choice(pool, 3)]
    m = rng.random((H, W, 3)) < 0.03
    ks = rng.choice(sorted(TIES), m.sum())
    a[m] = np.array([TIES[int(k)] for k in ks], np.float32)
    for v in (0.0, 1.0):
        y0, x0 = rng.integers(0, H - 4), rng.integers(0, W - 4)
        a[y0:y0 + 3, x0:x0 + 5] = v
    return a


# name, model, B, H, W, note
SAFETY_CASES = [
    ("b2_64x64_ties", "sd-b-safety", 2, 64, 64,
     "square 64x64 -> 32x32 (no crop); image 0 flagged by one concept, image 1 clean"),
    ("b3_40x64_special_care", "sd-b-safety", 3, 40, 64,
     "landscape 40x64 -> 32x51 (int(32 * 64 / 40) = int(51.2)), crop left (51 - 32) // 2 = 9 (torchvision would "
     "round 9.5 to 10); image 1 hits special-care concept 0, whose adjustment 0.01 then lifts special concept 1 "
     "from -0.005 to +0.005 and concept 11 from -0.005 to +0.005: flagged only by the adjustment; image 2 flagged "
     "by two concepts; image 0 clean"),
    ("b1_56x40", "sd-b-safety", 1, 56, 40,
     "batch 1, portrait 56x40 -> 44x32 (int(32 * 56 / 40) = int(44.8): rounding would give 45), crop top 6; "
     "clean (a single image cannot be both flagged and not)"),
    ("b2_72x48_special_order", "sd-b-safety-bin", 2, 72, 48,
     "portrait 72x48 -> 42x28 (shortest_edge 28), crop 24x24 at top 9, left 2; image 0: special concepts 0 and 1 "
     "at -0.005 / -0.004, special concept 2 hit: the adjustment comes after 0 and 1 (they stay negative) and no "
     "concept reaches 0 with it (special care, not flagged); image 1 flagged"),
    ("b3_56x40", "sd-b-safety-bin", 3, 56, 40,
     "portrait 56x40 -> 39x28 (int(39.2)), crop 24x24 at top (39 - 24) // 2 = 7 (torchvision: round(7.5) = 8), "
     "left 2; images 0 and 2 flagged (2 by two concepts), image 1 clean"),
    ("b1_40x64_flagged", "sd-b-safety-bin", 1, 40, 64,
     "batch 1, landscape 40x64 -> 28x44 (int(44.8)), crop top 2, left 10; flagged: the whole output is black"),
    ("b2_40x64_padded", "sd-b-safety-pad", 2, 40, 64,
     "landscape 40x64 -> 20x32 (shortest_edge 20, below the 24 crop): center_crop pads the 20 rows into a 24-row "
     "zero canvas at row 2 and crops columns from (32 - 24) // 2 = 4; image 1 flagged, image 0 clean"),
]
# name, steps, guidance, H, W, note
GENERATE_CASES = [
    ("pndm_3steps_g7_5_64x64", 3, 7.5, 64, 64, "NExT-GPT's guidance 7.5; image 1 flagged (black), image 0 not"),
    ("pndm_4steps_g3_40x64", 4, 3.0, 40, 64, "guidance 3, latents 10x16; neither image flagged"),
    ("pndm_3steps_g1_72x48", 3, 1.0, 72, 48,
     "guidance 1 (no CFG: negative_prompt_embeds unused), latents 18x12; image 0 flagged, image 1 not"),
]


def gen_inputs(rng, H, W):
    return {"latents": rng.standard_normal((2, 4, H // 4, W // 4)).astype(np.float16),
            "prompt_embeds": rng.standard_normal((2, 77, 48)).astype(np.float16),
            "negative_prompt_embeds": (0.5 * rng.standard_normal((2, 77, 48))).astype(np.float16)}


def gen_params(steps, g, H, W):
    return {"num_inference_steps": steps, "guidance_scale": g, "scheduler": "pndm", "height": H, "width": W,
            "safety_checker": True}


# ---------------------------------------------------------------------------------------- the cases

def max_err(a, b, keys):
    return max(float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max()) for k in keys)


def check_margins(raw, result, what):
    """Every score: 2e-5 from a rounding boundary, unrounded value 1e-3 from 0 and from 0.0005."""
    worst = (1.0, 1.0)
    for i, r in enumerate(raw):
        for group in ("special", "concept"):
            for k, (v, _) in r[group].items():
                rm, dm = round_margin(v), min(abs(v), abs(v - 5e-4))
                assert rm >= 2e-5 and dm >= 1e-3, (what, i, group, k, v)
                worst = (min(worst[0], rm), min(worst[1], dm))
    return worst


def describe(result, raw):
    """Per image: what it hits (from the result dicts and the unrounded values)."""
    out = []
    for i, (r, rw) in enumerate(zip(result, raw)):
        sp = ["special %d %+.3f" % (k, r["special_scores"][k]) for k in range(N_SPECIAL) if r["special_scores"][k] > 0]
        near = ["special %d %+.3f" % (k, r["special_scores"][k]) for k in range(N_SPECIAL)
                if -0.01 < r["special_scores"][k] <= 0]
        flips = [k for k in r["bad_concepts"] if rw["concept"][k][0] - rw["concept"][k][1] <= 0]
        s = "image %d: " % i
        s += ("special care (%s)" % ", ".join(sp)) if sp else "no special care"
        if near:
            s += ", near-misses %s" % ", ".join(near)
        if r["bad_concepts"]:
            s += ", FLAGGED by concept%s %s" % ("s" if len(r["bad_concepts"]) > 1 else "",
                                                ", ".join("%d (%+.3f)" % (k, r["concept_scores"][k])
                                                          for k in r["bad_concepts"]))
            if flips:
                s += " (%s only through the adjustment)" % ", ".join(str(k) for k in flips)
        else:
            s += ", not flagged (highest concept score %+.3f)" % max(r["concept_scores"].values())
        out.append(s)
    return "; ".join(out)


def write_case(stage, name, model, params, inp, y32, y64, note):
    keys = [k for k, v in y32.items() if v.dtype != np.int64]
    for k in y32:
        if y32[k].dtype == np.int64 or k in ("special_scores", "concept_scores"):
            assert np.array_equal(y32[k], y64[k]), (name, k)
    gap = max_err(y32, y64, keys)
    atol = round_tol(gap * FACTOR[stage], ATOL_FLOOR[stage])
    d = os.path.join(OUT, "vision", stage, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    save_safetensors(os.path.join(d, "inputs.safetensors"), inp)
    save_safetensors(os.path.join(d, "expected.safetensors"), y32)
    case = {"stage": stage, "model": "../../../models/" + model, "params": params, "atol": atol, "rtol": RTOL,
            "source": SOURCE[stage], "note": note + "; max|fp32 - fp64| %.2e" % gap}
    dump_json(os.path.join(d, "case.json"), case, 1)
    print("%s/%s: atol %g\n  %s" % (stage, name, atol, case["note"]))
    return atol


def variants_note(model_dir, image, y32, atol, **kw):
    """What the case tells apart: the port's variants (not upstream), measured against the float32 result."""
    seen = []
    keys = ["pixel_values", "image_embeds", "special_scores", "concept_scores"]

    def cmp(what, **v):
        y, _, _, _ = run_safety_checker(model_dir, image, torch.float32, **{**kw, **v})
        if any(y[k].shape != y32[k].shape for k in keys):
            seen.append("%s: pixel_values shape %s" % (what, list(y["pixel_values"].shape)))
            return
        diffs = {k: float(np.abs(y[k].astype(np.float64) - y32[k]).max()) for k in keys}
        if max(diffs.values()) == 0.0 and np.array_equal(y["has_nsfw_concepts"], y32["has_nsfw_concepts"]):
            return
        assert max(diffs.values()) > 10 * atol, (what, diffs, atol)
        k = max(diffs, key=diffs.get)
        s = "%s: max |diff| %.3g (%s)" % (what, diffs[k], k)
        if not np.array_equal(y["has_nsfw_concepts"], y32["has_nsfw_concepts"]):
            s += ", has_nsfw_concepts %s" % y["has_nsfw_concepts"].tolist()
        seen.append(s)

    cmp("round half up (C roundf) in numpy_to_pil", rounding="half_up")
    cmp("torchvision's rounded crop offsets", offsets="round")
    cmp("the resized long side rounded instead of truncated", long_rounding="round")
    cfg = json.load(open(os.path.join(model_dir, "safety_checker", "config.json")))
    if "vision_config_dict" in cfg:
        cmp("vision_config_dict ignored (vision_config's gelu and eps 1e-6)", use_vision_config_dict=False)
        cmp("vision_config_dict ignored for layer_norm_eps only (1e-6)", layer_norm_eps=1e-6)
        cmp("vision_config_dict ignored for hidden_act only (gelu)", hidden_act="gelu")
    else:
        cmp("layer_norm_eps left at its default 1e-5", layer_norm_eps=1e-5)
        cmp("hidden_act left at its default quick_gelu", hidden_act="quick_gelu")
    sc = SafetyChecker.from_dir(model_dir)
    with torch.no_grad():
        sp_cos, cos = sc.cos_dists(torch.from_numpy(y32["image_embeds"]))
    sw = sc.w["special_care_embeds_weights"].numpy().astype(np.float64)
    cw = sc.w["concept_embeds_weights"].numpy().astype(np.float64)
    for mode, what in (("all_special", "the adjustment added to all three special scores once any hits"),
                       ("concepts_only", "the adjustment added to concept scores only (forward_onnx's placement)"),
                       ("no_adjustment", "no special-care adjustment")):
        sp, cs, nsfw = variant_scores(sp_cos, cos, sw, cw, mode)
        sp, cs = sp.astype(np.float32), cs.astype(np.float32)  # as the expected scores are stored
        dsp = float(np.abs(sp - y32["special_scores"]).max())
        dcs = float(np.abs(cs - y32["concept_scores"]).max())
        if dsp > 0 or dcs > 0 or not np.array_equal(nsfw.astype(np.int64), y32["has_nsfw_concepts"]):
            seen.append("%s: special_scores |diff| %.3g, concept_scores %.3g, has_nsfw_concepts %s"
                        % (what, dsp, dcs, nsfw.astype(int).tolist()))
    return seen


def main():
    torch.set_num_threads(1)
    for name in SAFETY_MODELS:
        assert name not in GG.COMPOSITES
    assert os.path.isdir(os.path.join(MODELS, "sd-b-pipe", "unet")), "run tools/gen_generate_cases.py first"
    rng = np.random.default_rng(20261231)

    # inputs of every case
    # (the padded case, added later, draws from its own generator: the other cases keep their bytes)
    pad_rng = np.random.default_rng(20270101)
    safety_inputs = {name: np.stack([case_image(pad_rng if m == "sd-b-safety-pad" else rng, H, W) for _ in range(B)])
                     for name, m, B, H, W, _ in SAFETY_CASES}
    gen_inp = {name: gen_inputs(rng, H, W) for name, _, _, H, W, _ in GENERATE_CASES}
    gen_out = {}
    for name, steps, g, H, W, _ in GENERATE_CASES:
        for dtype in (torch.float32, torch.float64):
            gen_out[name, dtype] = GG.run_case(SD, os.path.join(MODELS, "sd-b-pipe"), gen_params(steps, g, H, W),
                                               gen_inp[name], dtype)

    # the towers, the image_embeds of every image, the concept design, the files
    for model, (cfg, tower, pos_ids, _, fe_cfg, _) in SAFETY_MODELS.items():
        vcfg, P = clip_config(cfg)
        seed, D, layers, heads, inter, patch, size = tower
        assert (D, layers, heads, inter, patch, size) == tuple(vcfg[k] for k in (
            "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
            "image_size")), (model, vcfg)
        tw = make_tower(seed, D, layers, heads, inter, patch, size, P, pos_ids)
        fe = feature_extractor_config(fe_cfg)
        groups = [(["%s/%d" % (name, i) for i in range(B)], safety_inputs[name])
                  for name, m, B, H, W, _ in SAFETY_CASES if m == model]
        if model == "sd-b-safety":
            groups += [(["gen:%s/%d" % (name, i) for i in range(2)], gen_out[name, torch.float32][0]["image"])
                       for name, *_ in GENERATE_CASES]
        keys = [k for ks, _ in groups for k in ks]
        emb = {}
        for dtype in (torch.float32, torch.float64):  # batched as the cases run them
            sc = SafetyChecker(cfg, tw, dtype)
            with torch.no_grad():
                emb[dtype] = torch.cat([sc.image_embeds(feature_extract(fe, numpy_to_pil(im)).to(dtype))
                                        for _, im in groups]).numpy()
        params = design(model, keys, emb[torch.float32].astype(np.float32), emb[torch.float64], rng)
        state = collections.OrderedDict(list(params.items()) + list(tw.items()))
        write_model(model, state)
        en = F.normalize(torch.from_numpy(emb[torch.float32])).numpy()
        off = (en @ en.T)[~np.eye(len(en), dtype=bool)]
        print("model %s: %d images, image_embeds pairwise cosine %.3f .. %.3f" % (model, len(keys), off.min(),
                                                                                   off.max()))

    # sd.safety_checker cases
    root = os.path.join(OUT, "vision", STAGE)
    if os.path.isdir(root):
        shutil.rmtree(root)
    for name, model, B, H, W, note in SAFETY_CASES:
        model_dir = os.path.join(MODELS, model)
        image = safety_inputs[name]
        info = []
        y32, result, raw32, sc = run_safety_checker(model_dir, image, torch.float32, info=info)
        y64, _, raw64, _ = run_safety_checker(model_dir, image, torch.float64)
        m32 = check_margins(raw32, result, name + " float32")
        m64 = check_margins(raw64, result, name + " float64")
        if B > 1:
            assert 0 < y32["has_nsfw_concepts"].sum() < B, (name, y32["has_nsfw_concepts"])
        gap = max_err(y32, y64, ["pixel_values", "image_embeds", "images"])
        atol = round_tol(gap * FACTOR[STAGE], ATOL_FLOOR[STAGE])
        seen = variants_note(model_dir, image, y32, atol)
        n_ties = int(sum(((im * np.float32(255)) % 1 == 0.5).sum() for im in image))
        auto = ("%s; batch %d, %dx%d; feature extractor: resize to %s, crop %s at top %d, left %d; %d tie values "
                "(x * 255 == k + 0.5 exactly); %s; margins: every score >= %.1e from a rounding boundary, every "
                "unrounded score >= %.1e from 0 and 0.0005" % (
                    note, B, H, W, "x".join(map(str, info[0]["resized"])), "x".join(
                        map(str, y32["pixel_values"].shape[2:])), info[0]["top"], info[0]["left"], n_ties,
                    describe(result, raw32), min(m32[0], m64[0]), min(m32[1], m64[1])))
        if seen:
            auto += "; measured, these would fail: " + "; ".join(seen)
        write_case(STAGE, model + "_" + name, model, {}, {"images": image}, y32, y64, auto)

    # sd.generate with the safety checker
    root = os.path.join(OUT, "vision", SD)
    for c in os.listdir(root):
        if c.startswith(tuple(m + "_" for m in SAFETY_MODELS)):
            shutil.rmtree(os.path.join(root, c))
    model = "sd-b-safety"
    model_dir = os.path.join(MODELS, model)
    prng = np.random.default_rng(7)
    for name, steps, g, H, W, note in GENERATE_CASES:
        params = gen_params(steps, g, H, W)
        ys = {}
        for dtype in (torch.float32, torch.float64):
            out, info = GG.run_case(SD, model_dir, params, gen_inp[name], dtype)
            assert np.array_equal(out["image"], gen_out[name, dtype][0]["image"]), name  # same pipeline
            y, result, raw, _ = run_safety_checker(model_dir, out["image"], dtype)
            ys[dtype] = ({"image": y["images"], "has_nsfw_concepts": y["has_nsfw_concepts"]}, result, raw,
                         out["image"], info)
        (y32, result, raw, image32, info), (y64, _, raw64, image64, _) = ys[torch.float32], ys[torch.float64]
        nsfw = y32["has_nsfw_concepts"]
        # decision margins, and how far u8-level changes move the scores
        vals = np.array([[v for v, _ in list(r["special"].values()) + list(r["concept"].values())] for r in raw])
        margin = float(np.abs(vals - 5e-4).min())
        assert margin >= GEN_MARGIN, (name, margin)
        u8 = numpy_to_pil(image32)
        u8_64 = numpy_to_pil(image64)
        n_u8 = int(sum((a != b).sum() for a, b in zip(u8, u8_64)))
        moved = 0.0
        trials = [u8_64]
        for _ in range(4):
            t = []
            for a in u8:
                m = prng.random(a.shape) < 0.02
                t.append(np.clip(a.astype(np.int64) + m * prng.choice([-1, 1], a.shape), 0, 255).astype(np.uint8))
            trials.append(t)
        for t in trials:
            _, _, rawp, _ = run_safety_checker(model_dir, image32, torch.float32, u8=t)
            vp = np.array([[v for v, _ in list(r["special"].values()) + list(r["concept"].values())] for r in rawp])
            moved = max(moved, float(np.abs(vp - vals).max()))
        assert moved < margin / 5, (name, moved, margin)
        flagged = image32.copy()
        auto = ("%s; sd-b-pipe's UNet / VAE / PNDM scheduler through symlinks; %dx%d, latents %s, timesteps %s; "
                "safety checker (sd-b-safety: 32x32 crop, 2-layer tower, projection 16): %s; has_nsfw_concepts %s; "
                "every unrounded score >= %.3f from the decision; the float64 pipeline's u8 image differs in %d "
                "values; 4 random +-1 changes of 2 %% of the u8 values (and the float64 u8 image) move the scores "
                "by <= %.1e" % (note, H, W, info["latent"], info["timesteps"], describe(result, raw), nsfw.tolist(),
                                margin, n_u8, moved))
        gap = max_err(y32, y64, ["image"])
        atol = round_tol(gap * FACTOR[SD], ATOL_FLOOR[SD])
        dv = float(np.abs(flagged - y32["image"]).max())
        if nsfw.any():
            assert dv > 10 * atol
            auto += "; measured, this would fail: without the safety checker: max |diff| %.3g" % dv
        write_case(SD, model + "_" + name, model, params, gen_inp[name], y32, y64, auto)


if __name__ == "__main__":
    main()
