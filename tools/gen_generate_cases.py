#!/usr/bin/python3
"""gen_generate_cases.py — our own golden cases for the whole Stable Diffusion and Zeroscope pipelines
(stages "sd.generate" and "zeroscope.generate") at sizes the shared set does not show, and the
composite models they run on.

The expected outputs come from PORTS of the code NExT-GPT runs (NExT-GPT/NExT-GPT@60d618b), written
line by line below for the arguments NExT-GPT passes (prompt_embeds, negative_prompt_embeds, latents,
guidance_scale, num_inference_steps, height, width[, num_frames], eta 0), on the project's torch ports
of their modules, imported, not copied (diffusers and transformers are not installed here):
tools/gen_unet_cases.py UNet (diffusers v0.17.0 UNet2DConditionModel), tools/gen_unet3d_cases.py
load_unet (UNet3DConditionModel), tools/gen_sched_cases.py PNDM and DDIM (scheduling_pndm.py,
scheduling_ddim.py v0.17.0), tools/gen_decoder_cases.py VaeDecoder (AutoencoderKL.decode) with that
file's stage_vae_decode (= vae.decode(x).sample) and stage_zeroscope_vae_decode (= custom_vd's
decode_latents).

  NExT-GPT-Lagacy/code/model/custom_sd.py StableDiffusionPipeline:
  __init__: the scheduler as SchedulerMixin.from_pretrained builds its config (the class's __init__
     defaults, the file's values over them, the file's other keys kept as "hidden" config); if it has
     steps_offset != 1 it is set to 1; if it has clip_sample true it is set to false (so a DDIM config
     without clip_sample, whose default is true, gets false; PNDM has no clip_sample unless the file
     names one, and ignores it); if the unet config's _diffusers_version (packaging's base_version;
     packaging is not installed here, see release()) is below 0.9.0 and its sample_size below 64,
     sample_size becomes 64; vae_scale_factor = 2^(len(vae block_out_channels) - 1).
  __call__: height / width default to unet sample_size x vae_scale_factor; check_inputs (multiples of
     8, prompt and negative embeddings of one shape); do_classifier_free_guidance = guidance_scale > 1;
     _encode_prompt with embeddings given (cat([negative, prompt]) only with guidance);
     set_timesteps(num_inference_steps); latents (the case input, which must have the shape
     prepare_latents would draw: [B, unet in_channels, height / scale, width / scale]) x
     init_noise_sigma (1 for PNDM and DDIM); per timestep t: cat([latents] * 2) with guidance
     (scale_model_input is the identity for both), UNet(x, t, encoder_hidden_states), u + g (c - u)
     with guidance, scheduler.step(eps, t, latents, **extra_step_kwargs) where eta is passed only when
     the step's signature takes it (DDIM; inspected on the port as upstream inspects diffusers'; eta >
     0 would draw noise from the generator: not a case input, refused).
  decode_latents: vae.decode(latents * (1 / 0.18215)) — the HARD-CODED SD 1.x factor, not
     vae.config.scaling_factor — then (image / 2 + 0.5).clamp(0, 1), NHWC, .float().numpy()
     (output_type "np"): output "image" F32 [1, H, W, 3].

  NExT-GPT-Lagacy/code/model/custom_vd.py TextToVideoSDPipeline: no config fix-ups in __init__;
  __call__ as above with num_images_per_prompt 1, latents [B, 4, F, height / scale, width / scale],
  the UNet3D on [latents; latents] with guidance, and the DDIM step on latents and eps permuted and
  reshaped to [B*F, 4, h, w] and back (elementwise: it changes nothing); decode_latents: 1 /
  vae.config.scaling_factor, frames into the batch, decode, [B, 3, F, H, W], .float() (output_type
  "pt"): output "frames" F32 [1, 3, F, H, W], unclamped.

Before anything is written, the port must reproduce every shared case of both stages
(../shared/golden/vision/sd.generate on sd-a, ../shared/golden/video/zeroscope.generate on
zeroscope-a, produced by custom_sd.py / custom_vd.py themselves on diffusers 0.17.0) within a quarter
of its atol: it does within 1.3e-6 (sd.generate, atol 2e-5; the same port in float64 is 8.2e-7 from
them, its own |fp32 - fp64| 1.2e-6) and 5.9e-5 (zeroscope.generate, atol 1e-3 / 5e-4; float64 port
4.5e-5, |fp32 - fp64| 4.8e-5), i.e. float32 rounding (upstream's and the port's), not a difference
in the algorithm.

Models (composites of the project's other-size models: relative symlinks, no weights copied; each
has its own model_index.json (sd-a's / zeroscope-a's, scheduler class as its config says) and
scheduler/scheduler_config.json):
  tests/golden/models/sd-b-pipe/            unet -> ../sd-b/unet ([16, 32, 48], 2 upsamplers,
                                            cross-attention 48), vae -> ../sd-b-dec/vae ([16, 32, 32]:
                                            scale 4, scaling_factor 0.13025); sd-b's PNDM config
  tests/golden/models/sd-b-pipe-ddim/       the same unet and vae; a DDIMScheduler config with
                                            steps_offset 0 and no clip_sample (both fixed up)
  tests/golden/models/sd-b-pipe-v08/        vae -> ../sd-b-dec/vae; unet/ is a folder: config.json =
                                            sd-b's with _diffusers_version 0.8.0 (sample_size 16 ->
                                            64), diffusion_pytorch_model.safetensors -> ../../sd-b/
                                            unet/...; a diffusers-0.1-style PNDM config without
                                            steps_offset (default 0 -> 1)
  tests/golden/models/zeroscope-b-pipe/     unet -> ../zeroscope-b/unet ([32, 32, 64], 2 upsamplers,
                                            cross-attention 40), vae -> ../zeroscope-b-dec/vae ([16,
                                            32, 32, 48]: scale 8, scaling_factor 0.2); zeroscope-b's
                                            DDIM config
  tests/golden/models/zeroscope-b-pipe-so0/ the same unet and vae; a DDIM config with steps_offset 0
                                            and no clip_sample (true), which custom_vd keeps
Inputs: latents N(0, 1), prompt_embeds N(0, 1), negative_prompt_embeds N(0, 0.5^2) (the shared cases'
magnitudes), stored F16 to keep the files small; the port reads them widened to float32 exactly, as
ngpt-case does. Tolerance: the same code in float64 (scheduler coefficients as the scheduler computes
them, float32), atol = max|fp32 - fp64| x 16 rounded up to 1/2/5 x 10^k, at least the shared cases'
2e-5 (sd.generate) / 5e-4 (zeroscope.generate); rtol 1e-3 as the shared cases.

Each case's note also records what it tells apart, measured with the port's variants (not upstream):
dividing the final SD latents by vae.config.scaling_factor instead of 0.18215 (max |diff| 0.15 ..
0.18 in every sd.generate case), custom_sd without its config fix-ups (0.8 on sd-b-pipe-ddim; on
sd-b-pipe-v08 another default size, 64x64), custom_sd's scheduler fix-ups applied to custom_vd (2.4 on
zeroscope-b-pipe-so0); each is asserted to exceed 10 x the case's atol.

Cases, 3-5 steps:
  vision/sd.generate/sd-b-pipe_pndm_4steps_g7_5_64x96       guidance 7.5, latents 16x24
  vision/sd.generate/sd-b-pipe_pndm_5steps_g3_96x64         guidance 3, latents 24x16
  vision/sd.generate/sd-b-pipe_pndm_3steps_g1_72x56         guidance 1 (no CFG), latents 18x14 (the
                                                            UNet's upsample_size path)
  vision/sd.generate/sd-b-pipe-ddim_ddim_4steps_g7_5_80x64  DDIM eta 0, steps_offset / clip_sample
                                                            fixed up, latents 20x16
  vision/sd.generate/sd-b-pipe-v08_pndm_3steps_g7_5_default_size   no height / width: 64 x 4 = 256
  video/zeroscope.generate/zeroscope-b-pipe_ddim_3steps_g9_f2_64x96     guidance 9, 2 frames
  video/zeroscope.generate/zeroscope-b-pipe_ddim_4steps_g1_f3_96x64     guidance 1 (no CFG), 3 frames
  video/zeroscope.generate/zeroscope-b-pipe_ddim_3steps_g7_5_f3_80x48   latents 10x6 (upsample_size)
  video/zeroscope.generate/zeroscope-b-pipe-so0_ddim_3steps_g9_f2_64x64 steps_offset 0, clip_sample true
No zeroscope case leaves height / width out: custom_vd's default (unet sample_size x scale) is not
what NExT-GPT uses (generate_videos passes 320x576), and ngpt_decoder_generate's documented video
default is NExT-GPT's 320x576 (nextgpt.h), so such a case would test neither.

Run with Debian's python3 (torch 1.13, numpy):   /usr/bin/python3 tools/gen_generate_cases.py
Tests never run this script; it rewrites the same bytes each time (fixed seeds, one thread).
"""
import inspect
import json
import os
import re
import shutil

import numpy as np
import torch

from gen_unet_cases import UNet  # noqa: E402 (also puts ../shared/golden on sys.path)
from gen_decoder_cases import VaeDecoder, load_ports, stage_vae_decode, stage_zeroscope_vae_decode  # noqa: E402
from gen_unet3d_cases import load_unet as load_unet3d  # noqa: E402
from gen_sched_cases import DDIM, PNDM  # noqa: E402
from golden_st import dump_json, link_component, round_tol  # noqa: E402
from check import load_safetensors, save_safetensors  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "golden")
OUT = os.path.join(REPO, "tests", "golden")
MODELS = os.path.join(OUT, "models")
RTOL = 1e-3
SD, ZS = "sd.generate", "zeroscope.generate"
FAMILY = {SD: "vision", ZS: "video"}
SHARED_ATOL = {SD: 2e-5, ZS: 5e-4}  # the floor: the shared cases' (smallest) atol
SOURCE = {
    SD: ("tools/gen_generate_cases.py: torch " + torch.__version__ + " float32 CPU port of NExT-GPT/NExT-GPT@60d618b "
         "NExT-GPT-Lagacy/code/model/custom_sd.py StableDiffusionPipeline (__init__'s config fix-ups, __call__("
         "prompt_embeds, negative_prompt_embeds, latents, height, width, num_inference_steps, guidance_scale, eta, "
         "output_type='np').images, decode_latents) on the ports of huggingface/diffusers v0.17.0 "
         "UNet2DConditionModel, PNDMScheduler / DDIMScheduler and AutoencoderKL.decode (tools/gen_unet_cases.py, "
         "gen_sched_cases.py, gen_decoder_cases.py), checked against every shared sd.generate case; NOT diffusers "
         "itself"),
    ZS: ("tools/gen_generate_cases.py: torch " + torch.__version__ + " float32 CPU port of NExT-GPT/NExT-GPT@60d618b "
         "NExT-GPT-Lagacy/code/model/custom_vd.py TextToVideoSDPipeline.__call__(prompt_embeds, "
         "negative_prompt_embeds, latents, guidance_scale, num_inference_steps, height, width, num_frames, eta, "
         "output_type='pt').frames on the ports of huggingface/diffusers v0.17.0 UNet3DConditionModel, "
         "DDIMScheduler and AutoencoderKL.decode (tools/gen_unet3d_cases.py, gen_sched_cases.py, "
         "gen_decoder_cases.py), checked against every shared zeroscope.generate case; NOT diffusers itself"),
}
SCHEDULERS = {"PNDMScheduler": PNDM, "DDIMScheduler": DDIM}


class LatentShapeError(ValueError):
    """Given latents of another shape than the pipeline would draw (upstream would run the UNet on
    them; a case must not have them)."""


# ------------------------------------------------------------------------------------ shared pieces

def release(v):
    """packaging's Version(v).base_version as a comparable release tuple (packaging is not installed
    here): the leading N(.N)* of a PEP 440 version, zero-padded; pre / post / dev / local parts dropped."""
    m = re.match(r"\s*v?(\d+(?:\.\d+)*)", v)
    if not m:
        raise ValueError("Invalid version: %r" % v)
    r = tuple(int(x) for x in m.group(1).split("."))
    return r + (0,) * (3 - len(r)) if len(r) < 3 else r


def load_scheduler(model_dir):
    """SchedulerMixin.from_pretrained(model_dir, subfolder="scheduler") of diffusers 0.17, as a config
    dict (what scheduler.config holds: the class's __init__ defaults, the file's values over them, and
    the file's other keys, registered as "hidden" config by from_config) and the port class."""
    file_cfg = json.load(open(os.path.join(model_dir, "scheduler", "scheduler_config.json")))
    cls = SCHEDULERS[file_cfg["_class_name"]]
    return cls, {**cls.defaults, **file_cfg}


def encode_prompt(dtype, num_images_per_prompt, do_classifier_free_guidance, prompt_embeds, negative_prompt_embeds):
    """_encode_prompt with prompt_embeds given (custom_sd and custom_vd read the same for it)."""
    batch_size = prompt_embeds.shape[0]
    prompt_embeds = prompt_embeds.to(dtype=dtype)  # text_encoder.dtype
    bs_embed, seq_len, _ = prompt_embeds.shape
    prompt_embeds = prompt_embeds.repeat(1, num_images_per_prompt, 1)
    prompt_embeds = prompt_embeds.view(bs_embed * num_images_per_prompt, seq_len, -1)
    if do_classifier_free_guidance:
        assert negative_prompt_embeds is not None  # else upstream runs CLIP on "" (not this stage)
        seq_len = negative_prompt_embeds.shape[1]
        negative_prompt_embeds = negative_prompt_embeds.to(dtype=dtype)
        negative_prompt_embeds = negative_prompt_embeds.repeat(1, num_images_per_prompt, 1)
        negative_prompt_embeds = negative_prompt_embeds.view(batch_size * num_images_per_prompt, seq_len, -1)
        prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
    return prompt_embeds


def check_inputs(height, width, prompt_embeds, negative_prompt_embeds):
    if height % 8 != 0 or width % 8 != 0:
        raise ValueError("`height` and `width` have to be divisible by 8 but are %s and %s." % (height, width))
    if prompt_embeds is None:
        raise ValueError("Provide either `prompt` or `prompt_embeds`.")
    if negative_prompt_embeds is not None and prompt_embeds.shape != negative_prompt_embeds.shape:
        raise ValueError("`prompt_embeds` and `negative_prompt_embeds` must have the same shape when passed directly")


def prepare_extra_step_kwargs(scheduler, eta):
    """inspect.signature of the port's step, as upstream inspects diffusers' (DDIM takes eta, PNDM not);
    the generator is None in these calls and DDIM only draws from it when eta > 0 (refused)."""
    extra_step_kwargs = {}
    if "eta" in set(inspect.signature(scheduler.step).parameters.keys()):
        if eta > 0:
            raise NotImplementedError("eta > 0: DDIM draws its variance noise from the generator")
        extra_step_kwargs["eta"] = eta
    return extra_step_kwargs


# ---------------------------------------------------------------------------------- custom_sd.py

class StableDiffusionPipeline:
    """custom_sd.StableDiffusionPipeline on a model folder (unet/, vae/, scheduler/), in float32 (the
    case) or float64 (its tolerance). fixups=False and latent_scale (a number instead of custom_sd's
    hard-coded 0.18215) give the variants a case is measured against, not upstream."""

    def __init__(self, model_dir, dtype=torch.float32, fixups=True, latent_scale=0.18215):
        self.dtype = dtype
        self.latent_scale = latent_scale
        unet = UNet(os.path.join(model_dir, "unet"), dtype)
        vae32, vae64, self.vae_scaling_factor = load_ports(model_dir, "vae", VaeDecoder)
        vae = vae32 if dtype == torch.float32 else vae64
        cls, config = load_scheduler(model_dir)
        if fixups:
            if "steps_offset" in config and config["steps_offset"] != 1:
                new_config = dict(config)
                new_config["steps_offset"] = 1
                config = new_config
            if "clip_sample" in config and config["clip_sample"] is True:
                new_config = dict(config)
                new_config["clip_sample"] = False
                config = new_config
        scheduler = cls(config)
        scheduler.init_noise_sigma = 1.0  # PNDMScheduler.__init__ / DDIMScheduler.__init__
        self.scheduler_config = config
        unet_config = dict(unet.cfg)
        is_unet_version_less_0_9_0 = "_diffusers_version" in unet_config and \
            release(unet_config["_diffusers_version"]) < (0, 9, 0)
        is_unet_sample_size_less_64 = "sample_size" in unet_config and unet_config["sample_size"] < 64
        if fixups and is_unet_version_less_0_9_0 and is_unet_sample_size_less_64:
            new_config = dict(unet_config)
            new_config["sample_size"] = 64
            unet_config = new_config
        self.unet, self.unet_config, self.vae, self.scheduler = unet, unet_config, vae, scheduler
        self.vae_scale_factor = 2 ** (len(self.vae.cfg["block_out_channels"]) - 1)
        assert unet.cfg["in_channels"] == unet.cfg["out_channels"] == vae.cfg["latent_channels"]

    def decode_latents(self, latents):
        latents = 1 / self.latent_scale * latents  # custom_sd: 1 / 0.18215, not vae.config.scaling_factor
        image = stage_vae_decode(self.vae, None, latents)["image"]  # vae.decode(latents).sample
        image = (image / 2 + 0.5).clamp(0, 1)
        image = image.cpu().permute(0, 2, 3, 1)
        return (image.float() if self.dtype == torch.float32 else image).numpy()  # (kept f64 in f64)

    def prepare_latents(self, batch_size, num_channels_latents, height, width, latents):
        shape = (batch_size, num_channels_latents, height // self.vae_scale_factor, width // self.vae_scale_factor)
        # upstream takes given latents as they are; a case's must have the shape it would draw
        if tuple(latents.shape) != shape:
            raise LatentShapeError("latents %s, the pipeline draws %s" % (tuple(latents.shape), shape))
        return latents * self.scheduler.init_noise_sigma

    def __call__(self, height=None, width=None, num_inference_steps=50, guidance_scale=7.5, num_images_per_prompt=1,
                 eta=0.0, latents=None, prompt_embeds=None, negative_prompt_embeds=None):
        """-> (image numpy [B, H, W, 3] as output_type "np" returns it, info)."""
        # 0. Default height and width to unet
        height = height or self.unet_config["sample_size"] * self.vae_scale_factor
        width = width or self.unet_config["sample_size"] * self.vae_scale_factor
        # 1. Check inputs
        check_inputs(height, width, prompt_embeds, negative_prompt_embeds)
        # 2. Define call parameters
        batch_size = prompt_embeds.shape[0]
        do_classifier_free_guidance = guidance_scale > 1.0
        # 3. Encode input prompt
        prompt_embeds = encode_prompt(self.dtype, num_images_per_prompt, do_classifier_free_guidance, prompt_embeds,
                                      negative_prompt_embeds)
        # 4. Prepare timesteps
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps = self.scheduler.timesteps
        # 5. Prepare latent variables
        num_channels_latents = self.unet.cfg["in_channels"]
        latents = self.prepare_latents(batch_size * num_images_per_prompt, num_channels_latents, height, width,
                                       latents.to(self.dtype))
        # 6. Prepare extra step kwargs
        extra_step_kwargs = prepare_extra_step_kwargs(self.scheduler, eta)
        # 7. Denoising loop
        for i, t in enumerate(timesteps):
            latent_model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents
            # scale_model_input: PNDM's and DDIM's return the sample unchanged
            noise_pred = self.unet.forward(latent_model_input, t, encoder_hidden_states=prompt_embeds)
            if do_classifier_free_guidance:
                noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
            latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs)
        self.unet.check_all_used()
        # 8. Post-processing
        image = self.decode_latents(latents)
        self.vae.check_all_used()
        info = {"height": height, "width": width, "latent": list(latents.shape), "cfg": do_classifier_free_guidance,
                "timesteps": [int(x) for x in timesteps], "scale": self.vae_scale_factor,
                "sample_size": self.unet_config["sample_size"], "scheduler": type(self.scheduler).__name__,
                "steps_offset": self.scheduler_config["steps_offset"],
                "clip_sample": self.scheduler_config.get("clip_sample")}
        return image, info


# ---------------------------------------------------------------------------------- custom_vd.py

class TextToVideoSDPipeline:
    """custom_vd.TextToVideoSDPipeline on a model folder (unet/, vae/, scheduler/): no config fix-ups
    (its __init__ has none), decode_latents with vae.config.scaling_factor. fixups=True applies
    custom_sd's scheduler fix-ups: a variant a case is measured against, not upstream."""

    def __init__(self, model_dir, dtype=torch.float32, fixups=False):
        self.dtype = dtype
        _, u32, u64 = load_unet3d(model_dir)
        self.unet = u32 if dtype == torch.float32 else u64
        self.unet_config = self.unet.cfg
        vae32, vae64, self.scaling_factor = load_ports(model_dir, "vae", VaeDecoder)
        self.vae = vae32 if dtype == torch.float32 else vae64
        cls, config = load_scheduler(model_dir)
        if fixups:
            config = {**config, "steps_offset": 1, "clip_sample": False}
        self.scheduler = cls(config)
        self.scheduler.init_noise_sigma = 1.0  # DDIMScheduler.__init__
        self.scheduler_config = config
        self.vae_scale_factor = 2 ** (len(self.vae.cfg["block_out_channels"]) - 1)
        assert self.unet_config["in_channels"] == self.unet_config["out_channels"] == self.vae.cfg["latent_channels"]

    def decode_latents(self, latents):  # 1 / vae.config.scaling_factor; frames into the batch; .float()
        return stage_zeroscope_vae_decode(self.vae, self.scaling_factor, latents)["frames"]

    def prepare_latents(self, batch_size, num_channels_latents, num_frames, height, width, latents):
        shape = (batch_size, num_channels_latents, num_frames, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        if tuple(latents.shape) != shape:
            raise LatentShapeError("latents %s, the pipeline draws %s" % (tuple(latents.shape), shape))
        return latents * self.scheduler.init_noise_sigma

    def __call__(self, height=None, width=None, num_frames=16, num_inference_steps=50, guidance_scale=9.0, eta=0.0,
                 latents=None, prompt_embeds=None, negative_prompt_embeds=None):
        """-> (video tensor [B, 3, F, H, W] as output_type "pt" returns it, info)."""
        # 0. Default height and width to unet
        height = height or self.unet_config["sample_size"] * self.vae_scale_factor
        width = width or self.unet_config["sample_size"] * self.vae_scale_factor
        num_images_per_prompt = 1
        # 1. Check inputs
        check_inputs(height, width, prompt_embeds, negative_prompt_embeds)
        # 2. Define call parameters
        batch_size = prompt_embeds.shape[0]
        do_classifier_free_guidance = guidance_scale > 1.0
        # 3. Encode input prompt
        prompt_embeds = encode_prompt(self.dtype, num_images_per_prompt, do_classifier_free_guidance, prompt_embeds,
                                      negative_prompt_embeds)
        # 4. Prepare timesteps
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps = self.scheduler.timesteps
        # 5. Prepare latent variables
        num_channels_latents = self.unet_config["in_channels"]
        latents = self.prepare_latents(batch_size * num_images_per_prompt, num_channels_latents, num_frames, height,
                                       width, latents.to(self.dtype))
        # 6. Prepare extra step kwargs
        extra_step_kwargs = prepare_extra_step_kwargs(self.scheduler, eta)
        # 7. Denoising loop
        for i, t in enumerate(timesteps):
            latent_model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents
            # DDIMScheduler.scale_model_input returns the sample unchanged
            noise_pred = self.unet(latent_model_input, t, prompt_embeds)
            if do_classifier_free_guidance:
                noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
            # reshape latents (upstream's names: the last two axes are h, w)
            bsz, channel, frames, width_, height_ = latents.shape
            latents = latents.permute(0, 2, 1, 3, 4).reshape(bsz * frames, channel, width_, height_)
            noise_pred = noise_pred.permute(0, 2, 1, 3, 4).reshape(bsz * frames, channel, width_, height_)
            latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs)
            latents = latents[None, :].reshape(bsz, frames, channel, width_, height_).permute(0, 2, 1, 3, 4)
        # 8. Post-processing
        video = self.decode_latents(latents)
        self.vae.check_all_used()
        info = {"height": height, "width": width, "latent": list(latents.shape), "cfg": do_classifier_free_guidance,
                "timesteps": [int(x) for x in timesteps], "scale": self.vae_scale_factor,
                "scaling_factor": self.scaling_factor, "sample_size": self.unet_config["sample_size"],
                "steps_offset": self.scheduler_config["steps_offset"],
                "clip_sample": self.scheduler_config["clip_sample"]}
        return video, info


# ---------------------------------------------------------------------------------------- running

def run_case(stage, model_dir, params, inp, dtype, **variant):
    """The stage's pipeline on a case's params and inputs -> ({output name: numpy}, info)."""
    with torch.no_grad():
        t = {k: torch.from_numpy(v.astype(np.float32)) for k, v in inp.items()}  # F16 widened exactly
        if stage == SD:
            assert params["scheduler"] == {PNDM: "pndm", DDIM: "ddim"}[load_scheduler(model_dir)[0]], params
            pipe = StableDiffusionPipeline(model_dir, dtype, **variant)
            image, info = pipe(height=params.get("height"), width=params.get("width"),
                               num_inference_steps=params["num_inference_steps"],
                               guidance_scale=params["guidance_scale"], eta=params.get("eta", 0.0),
                               latents=t["latents"], prompt_embeds=t["prompt_embeds"],
                               negative_prompt_embeds=t.get("negative_prompt_embeds"))
            return {"image": image}, info
        assert params["scheduler"] == "ddim" and load_scheduler(model_dir)[0] is DDIM, params
        pipe = TextToVideoSDPipeline(model_dir, dtype, **variant)
        video, info = pipe(height=params.get("height"), width=params.get("width"), num_frames=params["num_frames"],
                           num_inference_steps=params["num_inference_steps"], guidance_scale=params["guidance_scale"],
                           eta=params.get("eta", 0.0), latents=t["latents"], prompt_embeds=t["prompt_embeds"],
                           negative_prompt_embeds=t.get("negative_prompt_embeds"))
        return {"frames": video.numpy()}, info


def max_err(a, b):
    return max(float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max()) for k in b)


def check_shared():
    """The port against every shared (upstream-produced) sd.generate and zeroscope.generate case."""
    worst = {}
    for stage in (SD, ZS):
        root = os.path.join(SHARED, FAMILY[stage], stage)
        cases = sorted(os.listdir(root))
        assert cases
        for c in cases:
            d = os.path.join(root, c)
            case = json.load(open(os.path.join(d, "case.json")))
            model = os.path.normpath(os.path.join(d, case["model"]))
            inp, _ = load_safetensors(os.path.join(d, "inputs.safetensors"))
            exp, _ = load_safetensors(os.path.join(d, "expected.safetensors"))
            got, info = run_case(stage, model, case["params"], inp, torch.float32)
            got64, _ = run_case(stage, model, case["params"], inp, torch.float64)
            assert set(got) == set(exp), (c, set(got), set(exp))
            for k, e in exp.items():
                assert got[k].shape == e.shape and got[k].dtype == e.dtype, (c, k, got[k].shape, e.shape)
            err, err64, gap = max_err(got, exp), max_err(got64, exp), max_err(got, got64)
            print("shared %s/%s (atol %g, timesteps %s): max|port - upstream| %.2e, float64 port %.2e, "
                  "|fp32 - fp64| %.2e" % (stage, c, case["atol"], info["timesteps"], err, err64, gap))
            assert err < 0.25 * case["atol"], (stage, c, err, case["atol"])
            worst[stage] = max(worst.get(stage, 0.0), err)
    return worst


# ---------------------------------------------------------------------------------------- the models

BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
# name -> (pipeline model_index of, unet folder, vae folder (relative to models/), unet config changes, scheduler
# config: a folder's to copy, or a dict to write)
COMPOSITES = {
    "sd-b-pipe": ("sd-a", "sd-b/unet", "sd-b-dec/vae", None, "sd-b"),
    "sd-b-pipe-ddim": ("sd-a", "sd-b/unet", "sd-b-dec/vae", None, dict(
        {"_class_name": "DDIMScheduler", "_diffusers_version": "0.8.0"}, **BETAS,
        set_alpha_to_one=False, steps_offset=0, prediction_type="epsilon", trained_betas=None)),
    "sd-b-pipe-v08": ("sd-a", "sd-b/unet", "sd-b-dec/vae", {"_diffusers_version": "0.8.0"}, dict(
        {"_class_name": "PNDMScheduler", "_diffusers_version": "0.1.0"}, **BETAS, skip_prk_steps=True)),
    "zeroscope-b-pipe": ("zeroscope-a", "zeroscope-b/unet", "zeroscope-b-dec/vae", None, "zeroscope-b"),
    "zeroscope-b-pipe-so0": ("zeroscope-a", "zeroscope-b/unet", "zeroscope-b-dec/vae", None, dict(
        {"_class_name": "DDIMScheduler", "_diffusers_version": "0.15.0.dev0"}, **BETAS,
        set_alpha_to_one=False, steps_offset=0, prediction_type="epsilon", trained_betas=None)),
}


def make_composites():
    for name, (index_of, unet, vae, unet_over, sched) in COMPOSITES.items():
        d = os.path.join(MODELS, name)
        if os.path.isdir(d):
            shutil.rmtree(d)  # symlinks inside are unlinked, not followed
        os.makedirs(os.path.join(d, "scheduler"))
        if isinstance(sched, str):
            sched = json.load(open(os.path.join(MODELS, sched, "scheduler", "scheduler_config.json")))
        dump_json(os.path.join(d, "scheduler", "scheduler_config.json"), sched, 1)
        idx = json.load(open(os.path.join(SHARED, "models", index_of, "model_index.json")))
        assert idx["scheduler"][0] == "diffusers", idx
        idx["scheduler"] = ["diffusers", sched["_class_name"]]
        dump_json(os.path.join(d, "model_index.json"), idx, 1)
        # (sd-b's unet config is indented by 2)
        link_component(MODELS, d, "unet", unet, unet_over, "diffusion_pytorch_model.safetensors", 2)
        link_component(MODELS, d, "vae", vae, None, None, None)
        u = json.load(open(os.path.join(d, "unet", "config.json")))
        v = json.load(open(os.path.join(d, "vae", "config.json")))
        assert u["in_channels"] == u["out_channels"] == v["latent_channels"], name
        print("model %s: unet %s%s, vae %s (scale %d, scaling_factor %g), scheduler %s"
              % (name, unet, "" if unet_over is None else " config changed: %s" % unet_over, vae,
                 2 ** (len(v["block_out_channels"]) - 1), v["scaling_factor"],
                 json.dumps({k: x for k, x in sched.items() if k not in BETAS})))


# ------------------------------------------------------------------------------------------ cases

def write_case(stage, name, model, params, inp, note):
    model_dir = os.path.join(MODELS, model)
    y32, info = run_case(stage, model_dir, params, inp, torch.float32)
    y64, _ = run_case(stage, model_dir, params, inp, torch.float64)
    gap = max_err(y32, y64)
    atol = round_tol(gap * 16, SHARED_ATOL[stage])
    # what a case tells apart: the variants (not upstream) that it fails, measured
    seen = []
    variants = []
    if stage == SD:
        variants.append(("the final latents divided by the VAE config's scaling_factor instead of 0.18215",
                         {"latent_scale": json.load(open(os.path.join(model_dir, "vae", "config.json")))
                          ["scaling_factor"]}))
        variants.append(("without custom_sd's config fix-ups", {"fixups": False}))
    else:
        variants.append(("with custom_sd's scheduler fix-ups (steps_offset 1, clip_sample false)", {"fixups": True}))
    for what, kw in variants:
        try:
            yv, _ = run_case(stage, model_dir, params, inp, torch.float32, **kw)
        except LatentShapeError as e:
            seen.append("%s: %s" % (what, e))
            continue
        if all(yv[k].shape == y32[k].shape for k in y32):
            dv = max_err(yv, y32)
            if dv == 0.0:
                continue  # the variant changes nothing here
            assert dv > 10 * atol, (name, what, dv, atol)
            seen.append("%s: max |diff| %.3g" % (what, dv))
        else:
            seen.append("%s: shape %s" % (what, [list(yv[k].shape) for k in y32]))
    size = "%dx%d" % (info["height"], info["width"])
    if params.get("height") is None:
        size += " (no height / width given: sample_size %d x VAE scale %d)" % (info["sample_size"], info["scale"])
    auto = "%s, latents %s (VAE scale %d), timesteps %s, %s; the scheduler config as the pipeline uses it: " \
           "steps_offset %s, %s" % (
               size, info["latent"], info["scale"], info["timesteps"],
               "CFG on [negative; prompt]" if info["cfg"] else
               "no CFG (guidance <= 1: the UNet runs on the prompt only)",
               info["steps_offset"], clip_note(info))
    tail = "; measured, these would fail: " + "; ".join(seen) if seen else ""
    save_case(stage, name, model, params, inp, y32, auto + "; " + note + tail, gap, atol, SOURCE[stage])


def clip_note(info):
    """The scheduler's clip_sample as a case note says it."""
    return ("no clip_sample (PNDM has none)" if info["clip_sample"] is None else
            "clip_sample %s" % str(info["clip_sample"]).lower())


def save_case(stage, name, model, params, inp, y32, note, gap, atol, source):
    """Write case `name` of `stage` (its folder replaced: inputs, expected, case.json whose note ends
    with the fp32 - fp64 gap the tolerance came from) and print its summary."""
    d = os.path.join(OUT, FAMILY[stage], stage, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    save_safetensors(os.path.join(d, "inputs.safetensors"), inp)
    save_safetensors(os.path.join(d, "expected.safetensors"), y32)
    case = {"stage": stage, "model": "../../../models/" + model, "params": params, "atol": atol, "rtol": RTOL,
            "source": source, "note": note + "; max|fp32 - fp64| %.2e" % gap}
    dump_json(os.path.join(d, "case.json"), case, 1)
    out = next(iter(y32.values()))
    print("%s/%s: %s mean %.3g std %.3g, |fp32 - fp64| %.2e, atol %g\n  %s"
          % (stage, name, list(out.shape), float(out.mean()), float(out.std()), gap, atol, case["note"]))


def main():
    torch.set_num_threads(1)
    worst = check_shared()
    print("port: worst error vs the shared cases: %s" % ", ".join("%s %.2e" % kv for kv in worst.items()))
    make_composites()
    for stage in (SD, ZS):
        root = os.path.join(OUT, FAMILY[stage], stage)
        if os.path.isdir(root):
            for c in os.listdir(root):
                if c.startswith(tuple(m + "_" for m in COMPOSITES)):
                    shutil.rmtree(os.path.join(root, c))

    rng = np.random.default_rng(20261211)

    def inputs(lat_shape, D):  # F16: exact in F32, the port reads them widened
        return {"latents": rng.standard_normal(lat_shape).astype(np.float16),
                "prompt_embeds": rng.standard_normal((1, 77, D)).astype(np.float16),
                "negative_prompt_embeds": (0.5 * rng.standard_normal((1, 77, D))).astype(np.float16)}

    def sd_params(steps, g, sched, h, w):
        p = {"num_inference_steps": steps, "guidance_scale": g, "scheduler": sched}
        if sched == "ddim":
            p["eta"] = 0.0
        if h:
            p.update(height=h, width=w)
        return p

    b = "sd-b UNet (3 levels [16, 32, 48], 2 upsamplers, cross-attention 48) + sd-b-dec VAE ([16, 32, 32]: scale 4, " \
        "scaling_factor 0.13025, which custom_sd ignores for its hard-coded 0.18215)"
    for name, model, steps, g, sched, h, w, note in (
            ("pndm_4steps_g7_5_64x96", "sd-b-pipe", 4, 7.5, "pndm", 64, 96, b + "; NExT-GPT's guidance 7.5"),
            ("pndm_5steps_g3_96x64", "sd-b-pipe", 5, 3.0, "pndm", 96, 64, b + "; guidance 3"),
            ("pndm_3steps_g1_72x56", "sd-b-pipe", 3, 1.0, "pndm", 72, 56,
             b + "; guidance 1.0: no classifier-free guidance (negative_prompt_embeds given and unused); latents "
                 "18x14, not multiples of 4: the UNet's upsample_size path"),
            ("ddim_4steps_g7_5_80x64", "sd-b-pipe-ddim", 4, 7.5, "ddim", 80, 64,
             b + "; the folder's scheduler is a DDIMScheduler (eta 0) with steps_offset 0 and no clip_sample (DDIM's "
                 "default true): custom_sd.__init__ sets them to 1 and false; latents 20x16"),
            ("pndm_3steps_g7_5_default_size", "sd-b-pipe-v08", 3, 7.5, "pndm", None, None,
             b + "; the unet config says _diffusers_version 0.8.0 and sample_size 16: custom_sd.__init__ makes it "
                 "64, so the default size is 64 x 4 = 256; PNDM config of diffusers 0.1 without steps_offset "
                 "(default 0, set to 1)")):
        lat = (1, 4, (h or 256) // 4, (w or 256) // 4)
        write_case(SD, "%s_%s" % (model, name), model, sd_params(steps, g, sched, h, w), inputs(lat, 48), note)

    def zs_params(steps, g, frames, h, w):
        p = {"num_inference_steps": steps, "guidance_scale": g, "num_frames": frames}
        if h:
            p.update(height=h, width=w)
        p.update(eta=0.0, scheduler="ddim")
        return p

    z = "zeroscope-b UNet3D ([32, 32, 64], 2 upsamplers, cross-attention 40) + zeroscope-b-dec VAE ([16, 32, 32, " \
        "48]: scale 8, scaling_factor 0.2, which custom_vd divides by)"
    for name, model, steps, g, frames, h, w, note in (
            ("ddim_3steps_g9_f2_64x96", "zeroscope-b-pipe", 3, 9.0, 2, 64, 96,
             z + "; the pipeline's default guidance 9"),
            ("ddim_4steps_g1_f3_96x64", "zeroscope-b-pipe", 4, 1.0, 3, 96, 64,
             z + "; guidance 1.0: no classifier-free guidance (negative_prompt_embeds given and unused)"),
            ("ddim_3steps_g7_5_f3_80x48", "zeroscope-b-pipe", 3, 7.5, 3, 80, 48,
             z + "; NExT-GPT's guidance 7.5; latents 10x6, not multiples of 4: the UNet's upsample_size path"),
            ("ddim_3steps_g9_f2_64x64", "zeroscope-b-pipe-so0", 3, 9.0, 2, 64, 64,
             z + "; DDIM config with steps_offset 0 and no clip_sample (default true), used as they are: "
                 "custom_vd has no config fix-ups (x0 is clamped to [-1, 1] at every step)")):
        lat = (1, 4, frames, (h or 64) // 8, (w or 64) // 8)
        write_case(ZS, "%s_%s" % (model, name), model, zs_params(steps, g, frames, h, w), inputs(lat, 40), note)


if __name__ == "__main__":
    main()
