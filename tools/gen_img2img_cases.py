#!/usr/bin/python3
"""gen_img2img_cases.py — our own golden cases for image-to-image and video-to-video through the whole
pipelines (stages "sd.generate" and "zeroscope.generate" with an `init_latents` input and a `strength`
param), on the composite models of tools/gen_generate_cases.py.

The expected outputs come from PORTS, on the pipelines of tools/gen_generate_cases.py (NExT-GPT/NExT-GPT@60d618b
NExT-GPT-Lagacy/code/model/custom_sd.py / custom_vd.py, checked there against the shared upstream cases), of
what diffusers does to start from given latents:

  diffusers v0.17.0 pipelines/stable_diffusion/pipeline_stable_diffusion_img2img.py, and diffusers v0.18.0
  pipelines/text_to_video_synthesis/pipeline_text_to_video_synth_img2img.py (VideoToVideoSDPipeline: not in
  0.17; its get_timesteps is the same code):
    get_timesteps: scheduler.set_timesteps(num_inference_steps);
       init_timestep = min(int(num_inference_steps * strength), num_inference_steps) (Python float: double
       arithmetic, int() truncates); t_start = max(num_inference_steps - init_timestep, 0);
       timesteps = scheduler.timesteps[t_start * scheduler.order:] (the class attribute order: 2 for
       HeunDiscreteScheduler, KDPM2DiscreteScheduler and KDPM2AncestralDiscreteScheduler, 1 for every other,
       PNDM included, whose PLMS list has num_inference_steps + 1 entries).
    prepare_latents, with latents given (image.shape[1] == 4: init_latents = the image as it is):
       latents = scheduler.add_noise(init_latents, noise, timesteps[:1].repeat(batch)), NOT multiplied by
       init_noise_sigma. noise is randn_tensor(init_latents.shape) upstream; here it is the case's `latents`
       input (the tensor the text-to-X cases take as their initial noise). VideoToVideoSDPipeline moves the
       frames into the batch ([B, 4, F, h, w] -> [B*F, 4, h, w]), draws the noise in that shape, adds it
       and moves the frames back: add_noise is elementwise with one coefficient per batch entry (one
       timestep, repeated), so the case's noise, given in the latents' [B, 4, F, h, w] layout and moved
       the same way, is that draw permuted.
    the denoising loop over those timesteps: custom_sd's / custom_vd's (the port of gen_generate_cases.py)
       with scheduler.scale_model_input (the identity for PNDM and DDIM; sample / sqrt(sigma^2 + 1) for
       Euler and Heun, at the sigma of the scheduler's index for t), then their decode_latents.
  add_noise (tools/gen_sched_cases.py add_noise_vp / add_noise_sigma, ports of diffusers v0.17.0):
    DDIM, PNDM (and DDPM, DPM-Solver, DEIS, UniPC): sqrt(acp[t]) x + sqrt(1 - acp[t]) noise, acp cast to the
    samples' dtype; Euler (and Euler ancestral, LMS): x + sigmas[i] noise, i = the index of t in
    scheduler.timesteps; Heun (and KDPM2, KDPM2 ancestral): i = index_for_timestep(t), which is the LAST
    match of t while the scheduler is in its first-order state (as after set_timesteps), the first match
    otherwise. With Heun's doubled lists (timesteps [t0, t1, t1, t2, t2, ...], sigmas [s0, s1, s1, s2, s2,
    ..., 0]) timesteps[2 k:] starts at the SECOND copy of t_k, which is first-order: the run is a first-order
    step from s_k to s_(k+1), then pairs; both matches of t_k hold s_k, so the index rule cannot be told
    apart by a case.
  the scheduler: the model folder's class, or another kind named by the case (params.scheduler) built by
    from_config on the config the pipeline holds (custom_sd: after its steps_offset / clip_sample fix-ups),
    as ngpt_decode_params.scheduler documents: the class's __init__ defaults, the config's values for the
    keys it takes. Euler's and Heun's timesteps are float64 (np.linspace); the UNet gets them as they are
    and rounds them to float32 in its time projection (get_timestep_embedding's .float()).

Validation, before anything is written:
  1. tools/gen_generate_cases.py's check_shared(): the text-to-X port reproduces every shared sd.generate and
     zeroscope.generate case (upstream's custom_sd / custom_vd outputs) within a quarter of its atol;
  2. this script's img2img port with strength 1 and the text-to-X start (latents x init_noise_sigma in place
     of add_noise: the variant "start=init_noise_sigma") on the same shared cases: the same outputs, bit for
     bit (the loop is the same code with scale_model_input added, the identity for PNDM / DDIM);
  3. optional, when NGPT_DIFFUSERS_SRC names a huggingface/diffusers v0.17.0 source tree (a checkout, or
     `git archive v0.17.0 src/diffusers/schedulers`): every case's pipeline run again with diffusers' own
     PNDMScheduler / DDIMScheduler / EulerDiscreteScheduler / HeunDiscreteScheduler (their modules loaded
     from that tree; ConfigMixin / register_to_config / BaseOutput / randn_tensor replaced by small stand-ins
     below, since diffusers' package needs huggingface_hub) in the port's place, from_config on the same
     config: its output must be within 1e-6 of the port's (the timesteps, add_noise, order, scale_model_input
     and step of the real classes). The files do not depend on whether this ran.

Models: tests/golden/models/sd-b-pipe (PNDM config), sd-b-pipe-ddim (DDIM config, steps_offset 0 fixed up to
1), zeroscope-b-pipe (DDIM), made by tools/gen_generate_cases.py (run it first).
Inputs: init_latents N(0, 1) (the magnitude of an SD latent, vae.encode(x).latent_dist.sample() x
scaling_factor), latents (the noise) N(0, 1), prompt_embeds N(0, 1), negative_prompt_embeds N(0, 0.5^2), all
stored F16 (read widened to float32 exactly, as ngpt-case does). Tolerance as gen_generate_cases.py: the same
code in float64 (scheduler tables as the schedulers compute them, float32; add_noise casts them to the
samples' dtype, as upstream), atol = max|fp32 - fp64| x 16 rounded up to 1/2/5 x 10^k, at least the shared
cases' 2e-5 (sd.generate) / 5e-4 (zeroscope.generate); rtol 1e-3.

Each case's note records what it tells apart, measured with the port's variants (not upstream), each asserted
to exceed 10 x the case's atol where it changes the output at all:
  start=init_noise_sigma  latents = noise x init_noise_sigma (the text-to-X start, init_latents unused) on the
                          img2img timesteps, in place of add_noise
  order=1                 timesteps[t_start:], without scheduler.order
  tail                    timesteps[-(init_timestep x order):], the last init_timestep steps, in place of
                          timesteps[t_start x order:] (differs where the list is not num_inference_steps x
                          order long: PNDM's n + 1, Heun's 2 n - 1)
  swap                    timesteps[init_timestep x order:] (strength read as the part skipped)
  init_round              init_timestep = round(n x strength) in place of int()
  start=vp                for a sigma scheduler, sqrt(acp[t]) x + sqrt(1 - acp[t]) noise (DDIM's add_noise)
                          in place of x + sigma noise
  f32_strength            strength rounded to float32 first (a float API field): 0.7f x 10 = 6.9999998, int 6

Cases (all under the stages' folders, named img2img_<model>_...: tools/gen_generate_cases.py removes only
its own <model>_... cases, this script only its img2img_... ones):
  vision/sd.generate/img2img_sd-b-pipe_pndm_s0_75_8steps_g7_5_64x64        PNDM, strength 0.75, 8 steps
  vision/sd.generate/img2img_sd-b-pipe-ddim_ddim_s0_5_10steps_g7_5_64x48   DDIM, strength 0.5, 10 steps
  vision/sd.generate/img2img_sd-b-pipe-ddim_ddim_s1_4steps_g7_5_48x64      DDIM, strength 1: t_start 0
  vision/sd.generate/img2img_sd-b-pipe_heun_s0_6_6steps_g7_5_64x64         Heun (from_config on PNDM's)
  vision/sd.generate/img2img_sd-b-pipe-ddim_euler_s0_3_10steps_g3_72x56    Euler (from_config on DDIM's)
  vision/sd.generate/img2img_sd-b-pipe-ddim_ddim_s0_7_10steps_g7_5_56x64   DDIM, strength 0.7: 10 x 0.7 in double
                                                                           is 7.000000000000001, int 7 (float32: 6)
  video/zeroscope.generate/img2img_zeroscope-b-pipe_ddim_s0_6_5steps_g9_f2_64x64   DDIM, 2 frames

Run with Debian's python3 (torch 1.13, numpy):   /usr/bin/python3 tools/gen_img2img_cases.py
Tests never run this script; it rewrites the same bytes each time (fixed seeds, one thread).
"""
import functools
import importlib
import inspect
import json
import logging
import os
import shutil
import sys
import types

import numpy as np
import torch

import gen_generate_cases as GG  # noqa: E402 (also puts ../shared/golden on sys.path)
from gen_generate_cases import SD, ZS, FAMILY, LatentShapeError, check_inputs, encode_prompt, max_err  # noqa: E402
from gen_sched_cases import DDIM, PNDM, Euler, Heun, add_noise_vp  # noqa: E402
from golden_st import round_tol  # noqa: E402
from check import load_safetensors  # noqa: E402

MODELS, OUT, SHARED = GG.MODELS, GG.OUT, GG.SHARED
KINDS = {"pndm": PNDM, "ddim": DDIM, "euler": Euler, "heun": Heun}
DIFFUSERS = {PNDM: ("scheduling_pndm", "PNDMScheduler"), DDIM: ("scheduling_ddim", "DDIMScheduler"),
             Euler: ("scheduling_euler_discrete", "EulerDiscreteScheduler"),
             Heun: ("scheduling_heun_discrete", "HeunDiscreteScheduler")}
PREFIX = "img2img_"
SOURCE = {
    SD: ("tools/gen_img2img_cases.py: torch " + torch.__version__ + " float32 CPU port of NExT-GPT/NExT-GPT@60d618b "
         "NExT-GPT-Lagacy/code/model/custom_sd.py StableDiffusionPipeline (tools/gen_generate_cases.py, checked "
         "against every shared sd.generate case) started from init_latents as huggingface/diffusers v0.17.0 "
         "StableDiffusionImg2ImgPipeline does (get_timesteps(num_inference_steps, strength), prepare_latents: "
         "scheduler.add_noise(init_latents, noise, timesteps[:1]), noise = the latents input; scale_model_input "
         "in the loop), on the ports of diffusers v0.17.0 UNet2DConditionModel, the named scheduler (set_timesteps, "
         "order, add_noise, scale_model_input, step; tools/gen_sched_cases.py) and AutoencoderKL.decode; NOT "
         "diffusers itself"),
    ZS: ("tools/gen_img2img_cases.py: torch " + torch.__version__ + " float32 CPU port of NExT-GPT/NExT-GPT@60d618b "
         "NExT-GPT-Lagacy/code/model/custom_vd.py TextToVideoSDPipeline (tools/gen_generate_cases.py, checked "
         "against every shared zeroscope.generate case) started from init_latents as huggingface/diffusers "
         "v0.18.0 VideoToVideoSDPipeline does (get_timesteps, prepare_latents: frames into the batch, "
         "scheduler.add_noise(init_latents, noise, timesteps[:1]), noise = the latents input; scale_model_input "
         "in the loop), on the ports of diffusers v0.17.0 UNet3DConditionModel, DDIMScheduler and "
         "AutoencoderKL.decode; NOT diffusers itself"),
}


class NoTimesteps(ValueError):
    """A variant that leaves no timestep to run (upstream would fail on timesteps[:1] of an empty list)."""


# ------------------------------------------------------------------------------------ img2img pieces

def order_of(scheduler):
    return scheduler.order  # the port's class attribute (diffusers' value) or diffusers' own


def get_timesteps(scheduler, num_inference_steps, strength, v):
    """StableDiffusionImg2ImgPipeline.get_timesteps (v: a variant's changes, {} = upstream)."""
    x = num_inference_steps * (float(np.float32(strength)) if v.get("f32_strength") else strength)
    init_timestep = min(int(round(x)) if v.get("init_round") else int(x), num_inference_steps)
    t_start = max(num_inference_steps - init_timestep, 0)
    order = order_of(scheduler) if v.get("order", True) else 1
    if v.get("tail"):
        timesteps = scheduler.timesteps[len(scheduler.timesteps) - init_timestep * order:]
    elif v.get("swap"):
        timesteps = scheduler.timesteps[init_timestep * order:]
    else:
        timesteps = scheduler.timesteps[t_start * order:]
    if len(timesteps) == 0:
        raise NoTimesteps("no timestep left")
    return timesteps, num_inference_steps - t_start, init_timestep, t_start


def start_latents(scheduler, init_latents, noise, latent_timestep, v):
    """prepare_latents' add_noise (v["start"]: a variant's start instead)."""
    start = v.get("start", "add_noise")
    if start == "init_noise_sigma":
        return noise * scheduler.init_noise_sigma
    if start == "vp":
        t = latent_timestep.round().long()
        assert torch.equal(t.double(), latent_timestep.double()), latent_timestep
        return add_noise_vp(scheduler, init_latents, noise, t)
    return scheduler.add_noise(init_latents, noise, latent_timestep)


def add_noise_coefficients(scheduler, t):
    """What add_noise multiplies init_latents and the noise by at t (for the note), float32 as the case runs."""
    one = torch.ones(1, 1, 1, 1)
    x = start_latents(scheduler, one, torch.zeros_like(one), t, {})
    n = start_latents(scheduler, torch.zeros_like(one), one, t, {})
    return float(x.flatten()[0]), float(n.flatten()[0])


def set_scheduler(pipe, kind, diffusers_mod=None):
    """The pipeline's scheduler: the folder's class, or the kind named, by from_config on the config the pipeline
    holds (custom_sd's after its fix-ups); with diffusers_mod, diffusers' own class of that kind."""
    cls = KINDS[kind]
    config = pipe.scheduler_config
    if diffusers_mod is not None:
        pipe.scheduler = getattr(diffusers_mod[cls], DIFFUSERS[cls][1]).from_config(config)
        return
    pipe.scheduler = cls(config)
    if cls in (PNDM, DDIM):
        pipe.scheduler.init_noise_sigma = 1.0  # PNDMScheduler.__init__ / DDIMScheduler.__init__


def scale_model_input(scheduler, sample, t):
    f = getattr(scheduler, "scale_model_input", None)  # the PNDM / DDIM ports have none: diffusers' is the identity
    return sample if f is None else f(sample, t)


def step(scheduler, noise_pred, t, latents, extra_step_kwargs):
    out = scheduler.step(noise_pred, t, latents, **extra_step_kwargs)
    return out if torch.is_tensor(out) else out.prev_sample  # (diffusers' own: SchedulerOutput)


def extra_kwargs(scheduler, eta):
    """custom_sd / custom_vd prepare_extra_step_kwargs: eta where step takes it (DDIM), generator (None) where
    step takes it (diffusers' Euler; it draws noise it does not use with s_churn 0)."""
    kw = GG.prepare_extra_step_kwargs(scheduler, eta)
    if "generator" in set(inspect.signature(scheduler.step).parameters.keys()):
        kw["generator"] = None
    return kw


def shared_info(scheduler, timesteps, n, init_timestep, t_start, strength):
    return {"strength": strength, "init_timestep": init_timestep, "t_start": t_start, "order": order_of(scheduler),
            "all_timesteps": [float(x) for x in scheduler.timesteps], "timesteps": [float(x) for x in timesteps],
            "steps_run": n, "scheduler": DIFFUSERS[type(scheduler)][1] if type(scheduler) in DIFFUSERS else
            type(scheduler).__name__}


class StableDiffusionImg2Img(GG.StableDiffusionPipeline):
    """custom_sd.StableDiffusionPipeline started from init_latents as StableDiffusionImg2ImgPipeline."""

    def __init__(self, model_dir, dtype, kind, diffusers_mod=None, **kw):
        super().__init__(model_dir, dtype, **kw)
        set_scheduler(self, kind, diffusers_mod)

    def __call__(self, height=None, width=None, num_inference_steps=50, guidance_scale=7.5, num_images_per_prompt=1,
                 eta=0.0, latents=None, prompt_embeds=None, negative_prompt_embeds=None, init_latents=None,
                 strength=0.8, variant=None):
        v = variant or {}
        if strength < 0 or strength > 1:
            raise ValueError("The value of strength should in [0.0, 1.0] but is %s" % strength)
        height = height or self.unet_config["sample_size"] * self.vae_scale_factor
        width = width or self.unet_config["sample_size"] * self.vae_scale_factor
        check_inputs(height, width, prompt_embeds, negative_prompt_embeds)
        batch_size = prompt_embeds.shape[0]
        do_classifier_free_guidance = guidance_scale > 1.0
        prompt_embeds = encode_prompt(self.dtype, num_images_per_prompt, do_classifier_free_guidance, prompt_embeds,
                                      negative_prompt_embeds)
        # 5. set timesteps
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps, n, init_timestep, t_start = get_timesteps(self.scheduler, num_inference_steps, strength, v)
        latent_timestep = timesteps[:1].repeat(batch_size * num_images_per_prompt)
        # 6. prepare_latents: the image is latents already (4 channels); the noise is the case's `latents`
        shape = (batch_size * num_images_per_prompt, self.unet.cfg["in_channels"], height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        for name, x in (("init_latents", init_latents), ("latents", latents)):
            if tuple(x.shape) != shape:
                raise LatentShapeError("%s %s, the pipeline draws %s" % (name, tuple(x.shape), shape))
        latents = start_latents(self.scheduler, init_latents.to(self.dtype), latents.to(self.dtype), latent_timestep,
                                v)
        extra_step_kwargs = extra_kwargs(self.scheduler, eta)
        # 8. Denoising loop
        for i, t in enumerate(timesteps):
            latent_model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents
            latent_model_input = scale_model_input(self.scheduler, latent_model_input, t)
            noise_pred = self.unet.forward(latent_model_input, t, encoder_hidden_states=prompt_embeds)
            if do_classifier_free_guidance:
                noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
            latents = step(self.scheduler, noise_pred, t, latents, extra_step_kwargs)
        self.unet.check_all_used()
        image = self.decode_latents(latents)
        self.vae.check_all_used()
        info = {"height": height, "width": width, "latent": list(latents.shape), "cfg": do_classifier_free_guidance,
                "scale": self.vae_scale_factor, "steps_offset": self.scheduler_config["steps_offset"],
                "clip_sample": self.scheduler_config.get("clip_sample"),
                "add_noise": add_noise_coefficients(self.scheduler, latent_timestep),
                **shared_info(self.scheduler, timesteps, n, init_timestep, t_start, strength)}
        return image, info


class VideoToVideoSD(GG.TextToVideoSDPipeline):
    """custom_vd.TextToVideoSDPipeline started from init_latents as VideoToVideoSDPipeline."""

    def __init__(self, model_dir, dtype, kind, diffusers_mod=None, **kw):
        super().__init__(model_dir, dtype, **kw)
        set_scheduler(self, kind, diffusers_mod)

    def __call__(self, height=None, width=None, num_frames=16, num_inference_steps=50, guidance_scale=9.0, eta=0.0,
                 latents=None, prompt_embeds=None, negative_prompt_embeds=None, init_latents=None, strength=0.6,
                 variant=None):
        v = variant or {}
        if strength < 0 or strength > 1:
            raise ValueError("The value of strength should in [0.0, 1.0] but is %s" % strength)
        height = height or self.unet_config["sample_size"] * self.vae_scale_factor
        width = width or self.unet_config["sample_size"] * self.vae_scale_factor
        num_images_per_prompt = 1
        check_inputs(height, width, prompt_embeds, negative_prompt_embeds)
        batch_size = prompt_embeds.shape[0]
        do_classifier_free_guidance = guidance_scale > 1.0
        prompt_embeds = encode_prompt(self.dtype, num_images_per_prompt, do_classifier_free_guidance, prompt_embeds,
                                      negative_prompt_embeds)
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps, n, init_timestep, t_start = get_timesteps(self.scheduler, num_inference_steps, strength, v)
        latent_timestep = timesteps[:1].repeat(batch_size * num_images_per_prompt)
        shape = (batch_size, self.unet_config["in_channels"], num_frames, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        for name, x in (("init_latents", init_latents), ("latents", latents)):
            if tuple(x.shape) != shape:
                raise LatentShapeError("%s %s, the pipeline draws %s" % (name, tuple(x.shape), shape))
        # prepare_latents: (b, c, f, h, w) -> (b * f, c, h, w); the noise (given in the latents' layout) moved alike
        video, noise = init_latents.to(self.dtype), latents.to(self.dtype)
        bsz, channel, frames, width_, height_ = video.shape
        video = video.permute(0, 2, 1, 3, 4).reshape(bsz * frames, channel, width_, height_)
        noise = noise.permute(0, 2, 1, 3, 4).reshape(bsz * frames, channel, width_, height_)
        latents = start_latents(self.scheduler, video, noise, latent_timestep, v)
        latents = latents[None, :].reshape((bsz, frames, latents.shape[1]) + latents.shape[2:]).permute(0, 2, 1, 3, 4)
        extra_step_kwargs = extra_kwargs(self.scheduler, eta)
        for i, t in enumerate(timesteps):
            latent_model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents
            latent_model_input = scale_model_input(self.scheduler, latent_model_input, t)
            noise_pred = self.unet(latent_model_input, t, prompt_embeds)
            if do_classifier_free_guidance:
                noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
            bsz, channel, frames, width_, height_ = latents.shape
            latents = latents.permute(0, 2, 1, 3, 4).reshape(bsz * frames, channel, width_, height_)
            noise_pred = noise_pred.permute(0, 2, 1, 3, 4).reshape(bsz * frames, channel, width_, height_)
            latents = step(self.scheduler, noise_pred, t, latents, extra_step_kwargs)
            latents = latents[None, :].reshape(bsz, frames, channel, width_, height_).permute(0, 2, 1, 3, 4)
        video = self.decode_latents(latents)
        self.vae.check_all_used()
        info = {"height": height, "width": width, "latent": list(latents.shape), "cfg": do_classifier_free_guidance,
                "scale": self.vae_scale_factor, "steps_offset": self.scheduler_config["steps_offset"],
                "clip_sample": self.scheduler_config["clip_sample"],
                "add_noise": add_noise_coefficients(self.scheduler, latent_timestep),
                **shared_info(self.scheduler, timesteps, n, init_timestep, t_start, strength)}
        return video, info


# ---------------------------------------------------------------------------------------- running

def run_case(stage, model_dir, params, inp, dtype, variant=None, diffusers_mod=None, strength=None):
    """The stage's img2img pipeline on a case's params and inputs -> ({output name: numpy}, info).
    strength=None: the case's params.strength (default 0.8)."""
    with torch.no_grad():
        t = {k: torch.from_numpy(v.astype(np.float32)) for k, v in inp.items()}  # F16 widened exactly
        kind = params.get("scheduler") or {PNDM: "pndm", DDIM: "ddim"}[GG.load_scheduler(model_dir)[0]]
        s = params.get("strength", 0.8) if strength is None else strength
        init = t.get("init_latents")
        if init is None:  # a text-to-X case, run as img2img (validation 2): the start must not read it
            assert variant and variant.get("start") == "init_noise_sigma"
            init = torch.full_like(t["latents"], float("nan"))
        if stage == SD:
            pipe = StableDiffusionImg2Img(model_dir, dtype, kind, diffusers_mod)
            image, info = pipe(height=params.get("height"), width=params.get("width"),
                               num_inference_steps=params["num_inference_steps"],
                               guidance_scale=params["guidance_scale"], eta=params.get("eta", 0.0),
                               latents=t["latents"], prompt_embeds=t["prompt_embeds"],
                               negative_prompt_embeds=t.get("negative_prompt_embeds"), init_latents=init,
                               strength=s, variant=variant)
            return {"image": image}, info
        pipe = VideoToVideoSD(model_dir, dtype, kind, diffusers_mod)
        video, info = pipe(height=params.get("height"), width=params.get("width"), num_frames=params["num_frames"],
                           num_inference_steps=params["num_inference_steps"], guidance_scale=params["guidance_scale"],
                           eta=params.get("eta", 0.0), latents=t["latents"], prompt_embeds=t["prompt_embeds"],
                           negative_prompt_embeds=t.get("negative_prompt_embeds"), init_latents=init, strength=s,
                           variant=variant)
        return {"frames": video.numpy()}, info


def check_shared_as_img2img():
    """Validation 2: the img2img port, strength 1 and the text-to-X start, on every shared case: upstream's
    outputs within a quarter of the atol, and the text-to-X port's outputs bit for bit."""
    worst = 0.0
    for stage in (SD, ZS):
        root = os.path.join(SHARED, FAMILY[stage], stage)
        for c in sorted(os.listdir(root)):
            d = os.path.join(root, c)
            case = json.load(open(os.path.join(d, "case.json")))
            model = os.path.normpath(os.path.join(d, case["model"]))
            inp, _ = load_safetensors(os.path.join(d, "inputs.safetensors"))
            exp, _ = load_safetensors(os.path.join(d, "expected.safetensors"))
            got, info = run_case(stage, model, case["params"], inp, torch.float32, {"start": "init_noise_sigma"},
                                 strength=1.0)
            ref, _ = GG.run_case(stage, model, case["params"], inp, torch.float32)
            err, same = max_err(got, exp), max_err(got, ref)
            print("shared %s/%s as img2img (strength 1, text-to-X start; timesteps %s): max|port - upstream| %.2e, "
                  "|img2img port - text-to-X port| %.1e" % (stage, c, info["timesteps"], err, same))
            assert err < 0.25 * case["atol"] and same == 0.0, (stage, c, err, same)
            worst = max(worst, err)
    return worst


# ------------------------------------------------------------- diffusers' own schedulers (validation 3)

def load_diffusers(src):
    """diffusers v0.17.0's PNDM / DDIM / Euler / Heun scheduler modules from the source tree src, with small
    stand-ins for what they import from the rest of the package (configuration_utils needs huggingface_hub):
    register_to_config records the __init__ arguments (defaults applied) as the config, from_config passes a
    config's keys that __init__ takes, as ConfigMixin.extract_init_dict does for these classes."""
    pkg_dir = os.path.join(src, "src", "diffusers")
    if not os.path.isdir(pkg_dir):
        pkg_dir = os.path.join(src, "diffusers")
    assert os.path.isfile(os.path.join(pkg_dir, "schedulers", "scheduling_heun_discrete.py")), src

    class FrozenDict(dict):
        def __getattr__(self, k):
            try:
                return self[k]
            except KeyError:
                raise AttributeError(k)

    class ConfigMixin:
        config_name = "scheduler_config.json"

        def register_to_config(self, **kwargs):
            self._internal_dict = FrozenDict({**getattr(self, "_internal_dict", {}), **kwargs})

        @property
        def config(self):
            return self._internal_dict

        def __getattr__(self, name):  # ConfigMixin.__getattr__: config values as attributes (Heun's __init__
            d = self.__dict__.get("_internal_dict")  # reads self.use_karras_sigmas before it sets it)
            if d is not None and name in d:
                return d[name]
            raise AttributeError("'%s' object has no attribute '%s'" % (type(self).__name__, name))

        @classmethod
        def from_config(cls, config, **kwargs):
            params = inspect.signature(cls.__init__).parameters
            return cls(**{k: x for k, x in {**config, **kwargs}.items() if k in params and k != "self"})

    def register_to_config(init):
        @functools.wraps(init)
        def inner(self, *args, **kwargs):
            bound = inspect.signature(init).bind(self, *args, **kwargs)
            bound.apply_defaults()
            ConfigMixin.register_to_config(self, **{k: x for k, x in bound.arguments.items() if k != "self"})
            init(self, *args, **kwargs)
        return inner

    class BaseOutput:  # the dataclass outputs' base; attribute access is all the pipelines use
        pass

    def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    saved = {k: m for k, m in sys.modules.items() if k == "diffusers" or k.startswith("diffusers.")}
    for k in saved:
        del sys.modules[k]
    root = types.ModuleType("diffusers")
    root.__path__ = []
    cu = types.ModuleType("diffusers.configuration_utils")
    cu.ConfigMixin, cu.register_to_config, cu.FrozenDict = ConfigMixin, register_to_config, FrozenDict
    ut = types.ModuleType("diffusers.utils")
    ut.BaseOutput, ut.randn_tensor = BaseOutput, randn_tensor
    ut.logging = types.SimpleNamespace(get_logger=logging.getLogger)
    sch = types.ModuleType("diffusers.schedulers")
    sch.__path__ = [os.path.join(pkg_dir, "schedulers")]
    sys.modules.update({"diffusers": root, "diffusers.configuration_utils": cu, "diffusers.utils": ut,
                        "diffusers.schedulers": sch})
    try:
        return {cls: importlib.import_module("diffusers.schedulers." + mod) for cls, (mod, _) in DIFFUSERS.items()}
    finally:
        for k in [k for k in sys.modules if k == "diffusers" or k.startswith("diffusers.")]:
            del sys.modules[k]
        sys.modules.update(saved)


# ------------------------------------------------------------------------------------------ cases

VARIANTS = (
    ("latents = noise x init_noise_sigma (the text-to-X start, init_latents unused) instead of add_noise",
     {"start": "init_noise_sigma"}),
    ("timesteps[t_start:] (without scheduler.order)", {"order": False}),
    ("timesteps[-(init_timestep x order):] (the last init_timestep steps) instead of timesteps[t_start x order:]",
     {"tail": True}),
    ("timesteps[init_timestep x order:] (t_start and init_timestep swapped)", {"swap": True}),
    ("init_timestep = round(num_inference_steps x strength) instead of int()", {"init_round": True}),
    ("DDIM's add_noise (sqrt(acp[t]) x + sqrt(1 - acp[t]) noise) instead of x + sigma noise", {"start": "vp"}),
    ("strength rounded to float32 before num_inference_steps x strength", {"f32_strength": True}),
)


def fmt_t(ts):
    return "[%s]" % ", ".join(("%d" % x) if float(x).is_integer() else ("%.4g" % x) for x in ts)


def write_case(stage, name, model, params, inp, note, diffusers_mod, validation):
    model_dir = os.path.join(MODELS, model)
    y32, info = run_case(stage, model_dir, params, inp, torch.float32)
    y64, _ = run_case(stage, model_dir, params, inp, torch.float64)
    gap = max_err(y32, y64)
    atol = round_tol(gap * 16, GG.SHARED_ATOL[stage])
    seen, same = [], []
    for what, v in VARIANTS:
        if v.get("start") == "vp" and info["scheduler"] != "EulerDiscreteScheduler":
            continue  # (VP schedulers have it already; Heun's timesteps are fractional: acp has no entry)
        try:
            yv, _ = run_case(stage, model_dir, params, inp, torch.float32, v)
        except NoTimesteps as e:
            seen.append("%s: %s" % (what, e))
            continue
        dv = max_err(yv, y32)
        if dv == 0.0:
            same.append(what)
            continue
        assert dv > 10 * atol, (name, what, dv, atol)
        seen.append("%s: max |diff| %.3g" % (what, dv))
    if diffusers_mod is not None:
        yd, infod = run_case(stage, model_dir, params, inp, torch.float32, diffusers_mod=diffusers_mod)
        dd = max_err(yd, y32)
        print("  diffusers v0.17.0 %s in the port's place: max |diff| %.2e, timesteps %s" % (
            infod["scheduler"], dd, fmt_t(infod["timesteps"])))
        assert infod["timesteps"] == info["timesteps"] and infod["order"] == info["order"], (infod, info)
        assert dd < 1e-6, (name, dd)
        validation.append((name, dd))
    a, b = info["add_noise"]
    t0 = info["timesteps"][0]
    kind = info["scheduler"]
    from_cfg = params.get("scheduler") != {PNDM: "pndm", DDIM: "ddim"}[GG.load_scheduler(model_dir)[0]]
    auto = ("%dx%d, latents %s (VAE scale %d); %s%s, order %d; strength %g x %d steps: init_timestep %d, t_start %d, "
            "timesteps[%d:] of %s = %s (%d UNet runs); latents = add_noise(init_latents, noise = the latents input, "
            "%s) = %.6g init_latents + %.6g noise (not x init_noise_sigma); %s; the scheduler config as the pipeline "
            "holds it: steps_offset %s, %s" % (
                info["height"], info["width"], info["latent"], info["scale"], kind,
                " (from_config on the folder's config)" if from_cfg else "", info["order"], info["strength"],
                params["num_inference_steps"], info["init_timestep"], info["t_start"],
                info["t_start"] * info["order"], fmt_t(info["all_timesteps"]), fmt_t(info["timesteps"]),
                len(info["timesteps"]), fmt_t([t0]), a, b,
                "CFG on [negative; prompt]" if info["cfg"] else
                "no CFG (guidance <= 1: the UNet runs on the prompt only)", info["steps_offset"], GG.clip_note(info)))
    tail = "; measured, these would fail: " + "; ".join(seen) if seen else ""
    tail += ("; these change nothing here: " + "; ".join(same)) if same else ""
    GG.save_case(stage, name, model, params, inp, y32, auto + "; " + note + tail, gap, atol, SOURCE[stage])


def main():
    torch.set_num_threads(1)
    for m in ("sd-b-pipe", "sd-b-pipe-ddim", "zeroscope-b-pipe"):
        assert os.path.isdir(os.path.join(MODELS, m, "unet")), "run tools/gen_generate_cases.py first"
    worst = GG.check_shared()
    print("validation 1, text-to-X port: worst error vs the shared cases: %s"
          % ", ".join("%s %.2e" % kv for kv in worst.items()))
    w2 = check_shared_as_img2img()
    print("validation 2, img2img port at strength 1 with the text-to-X start: worst %.2e, identical to the "
          "text-to-X port" % w2)
    src = os.environ.get("NGPT_DIFFUSERS_SRC")
    diffusers_mod = load_diffusers(src) if src else None
    validation = []
    for stage in (SD, ZS):
        root = os.path.join(OUT, FAMILY[stage], stage)
        for c in os.listdir(root):
            if c.startswith(PREFIX):
                shutil.rmtree(os.path.join(root, c))

    rng = np.random.default_rng(20270214)

    def inputs(lat_shape, D):  # F16: exact in F32, the port reads them widened
        return {"init_latents": rng.standard_normal(lat_shape).astype(np.float16),
                "latents": rng.standard_normal(lat_shape).astype(np.float16),
                "prompt_embeds": rng.standard_normal((1, 77, D)).astype(np.float16),
                "negative_prompt_embeds": (0.5 * rng.standard_normal((1, 77, D))).astype(np.float16)}

    def sd_params(steps, g, sched, strength, h, w):
        p = {"num_inference_steps": steps, "guidance_scale": g, "scheduler": sched, "strength": strength}
        if sched == "ddim":
            p["eta"] = 0.0
        p.update(height=h, width=w)
        return p

    b = "sd-b UNet + sd-b-dec VAE (custom_sd's hard-coded 1 / 0.18215 before the decode)"
    for name, model, steps, g, sched, strength, h, w, note in (
            ("pndm_s0_75_8steps_g7_5_64x64", "sd-b-pipe", 8, 7.5, "pndm", 0.75, 64, 64,
             b + "; PNDM (PLMS, skip_prk_steps): its list has the second-to-last step twice, so timesteps[t_start:] "
                 "starts at that duplicate's second copy, where PLMS's counter 0 (a first-order step) begins"),
            ("ddim_s0_5_10steps_g7_5_64x48", "sd-b-pipe-ddim", 10, 7.5, "ddim", 0.5, 64, 48,
             b + "; DDIM eta 0 (steps_offset 0 and no clip_sample in the folder: fixed up to 1 and false); half the "
                 "schedule"),
            ("ddim_s1_4steps_g7_5_48x64", "sd-b-pipe-ddim", 4, 7.5, "ddim", 1.0, 48, 64,
             b + "; strength 1: t_start 0, every timestep runs, but the start is still add_noise at the first "
                 "timestep (init_latents weighted by sqrt(acp[t0]) > 0), not the noise x init_noise_sigma of "
                 "text-to-image"),
            ("heun_s0_6_6steps_g7_5_64x64", "sd-b-pipe", 6, 7.5, "heun", 0.6, 64, 64,
             b + "; HeunDiscreteScheduler (order 2) from_config on the folder's PNDM config: 6 x 0.6 = "
                 "3.5999999999999996 in double, int() 3; timesteps[2 t_start:] starts at the second copy of t_3 "
                 "(a first-order step from s_3 to s_4, then Heun pairs; the last step, to sigma 0, first order); "
                 "add_noise at index_for_timestep(t_3) in the first-order state (its last match: sigma s_3); "
                 "scale_model_input divides by sqrt(sigma^2 + 1); the UNet gets the float64 timesteps (399.6, "
                 "199.8, 0) rounded to float32"),
            ("euler_s0_3_10steps_g3_72x56", "sd-b-pipe-ddim", 10, 3.0, "euler", 0.3, 72, 56,
             b + "; EulerDiscreteScheduler (order 1) from_config on the folder's DDIM config (after custom_sd's "
                 "fix-ups; Euler takes neither key): 10 x 0.3 = 3.0000000000000004, int() 3; add_noise x + sigma "
                 "noise at the sigma of t_7; guidance 3; latents 18x14, not multiples of 4: the UNet's "
                 "upsample_size path")):
        lat = (1, 4, h // 4, w // 4)
        write_case(SD, "%s%s_%s" % (PREFIX, model, name), model, sd_params(steps, g, sched, strength, h, w),
                   inputs(lat, 48), note, diffusers_mod, validation)
    # (added later, from its own generator: the other cases keep their bytes)
    rng_later = np.random.default_rng(20270215)
    later = {"init_latents": rng_later.standard_normal((1, 4, 14, 16)).astype(np.float16),
             "latents": rng_later.standard_normal((1, 4, 14, 16)).astype(np.float16),
             "prompt_embeds": rng_later.standard_normal((1, 77, 48)).astype(np.float16),
             "negative_prompt_embeds": (0.5 * rng_later.standard_normal((1, 77, 48))).astype(np.float16)}
    write_case(SD, PREFIX + "sd-b-pipe-ddim_ddim_s0_7_10steps_g7_5_56x64", "sd-b-pipe-ddim",
               sd_params(10, 7.5, "ddim", 0.7, 56, 64), later,
               b + "; strength 0.7: 10 x 0.7 = 7.000000000000001 in double (Python's float), int() 7, t_start 3; "
                   "in float32, 0.7f x 10 = 6.9999998, int 6, t_start 4: the API's double strength "
                   "(ngpt_decode_params) and the case's JSON number keep Python's 7; latents 14x16",
               diffusers_mod, validation)

    z = "zeroscope-b UNet3D + zeroscope-b-dec VAE (scale 8, custom_vd's 1 / vae.config.scaling_factor)"
    for name, model, steps, g, strength, frames, h, w, note in (
            ("ddim_s0_6_5steps_g9_f2_64x64", "zeroscope-b-pipe", 5, 9.0, 0.6, 2, 64, 64,
             z + "; the folder's DDIMScheduler (eta 0, steps_offset 1, clip_sample false; custom_vd changes "
                 "nothing); 5 x 0.6 = 3.0, int() 3; the pipeline's default guidance 9; 2 frames"),):
        p = {"num_inference_steps": steps, "guidance_scale": g, "num_frames": frames, "height": h, "width": w,
             "eta": 0.0, "scheduler": "ddim", "strength": strength}
        lat = (1, 4, frames, h // 8, w // 8)
        write_case(ZS, "%s%s_%s" % (PREFIX, model, name), model, p, inputs(lat, 40), note, diffusers_mod, validation)
    if diffusers_mod is not None:
        print("validation 3, diffusers v0.17.0's schedulers in the port's place: worst %.2e over %d cases"
              % (max(x for _, x in validation), len(validation)))
    else:
        print("validation 3 skipped (set NGPT_DIFFUSERS_SRC to a diffusers v0.17.0 source tree)")


if __name__ == "__main__":
    main()
