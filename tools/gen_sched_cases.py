#!/usr/bin/python3
"""gen_sched_cases.py — our own golden cases for the scheduler stages (tests/golden/...).

The expected outputs come from a PORT of diffusers 0.17.0's scheduling_ddim.py, scheduling_ddpm.py,
scheduling_pndm.py, scheduling_dpmsolver_multistep.py, scheduling_dpmsolver_singlestep.py,
scheduling_euler_discrete.py,
scheduling_euler_ancestral_discrete.py, scheduling_heun_discrete.py,
scheduling_unipc_multistep.py, scheduling_lms_discrete.py, scheduling_k_dpm_2_discrete.py,
scheduling_k_dpm_2_ancestral_discrete.py and scheduling_deis_multistep.py (the classes below
copy their __init__ / set_timesteps / scale_model_input / step code line by line, torch float32
tensors and numpy float64 arrays as diffusers uses, NumPy 1.x casting included; code two classes
share is written once), not from diffusers itself, which is not installed here. It covers configurations the shared golden set lacks: DDIM eta > 0 with given noise,
v_prediction, sample prediction, clip_sample, trailing spacing, zero-SNR rescale, linear/cosine
betas; PNDM with PRK steps; DPM-Solver order 3, heun, algorithm dpmsolver, the SDE variant with
given noise; Euler (linear and Karras sigmas, epsilon/v/sample) and Euler ancestral with given
noise, Heun, UniPC, LMS, KDPM2, KDPM2 ancestral, DEIS, DDPM and DPM-Solver singlestep (stages the
shared set has not).

The classes also carry diffusers' `order` class attribute and add_noise (add_noise_vp, add_noise_sigma:
v0.17.0's code, one per family), which no scheduler case uses: tools/gen_img2img_cases.py starts its
pipelines from given latents with them.

Run with Debian's python (numpy + torch 1.13): /usr/bin/python3 tools/gen_sched_cases.py
(writes tests/golden/{vision,video}/scheduler.*/<case>/). Random data come from a seeded torch
generator; the files are committed, so this script only needs re-running to add cases.
"""
import json, math, os, sys
import numpy as np
import torch
from golden_st import write_st

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")
SOURCE = ("tools/gen_sched_cases.py: a torch float32 port of huggingface/diffusers v0.17.0 "
          "{cls} (set_timesteps/step copied line by line), run on CPU; NOT diffusers itself")


def betas_for_alpha_bar(num_diffusion_timesteps, max_beta=0.999):
    def alpha_bar(time_step):
        return math.cos((time_step + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = []
    for i in range(num_diffusion_timesteps):
        t1 = i / num_diffusion_timesteps
        t2 = (i + 1) / num_diffusion_timesteps
        betas.append(min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta))
    return torch.tensor(betas, dtype=torch.float32)


def rescale_zero_terminal_snr(betas):
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)
    alphas_bar_sqrt = alphas_cumprod.sqrt()
    alphas_bar_sqrt_0 = alphas_bar_sqrt[0].clone()
    alphas_bar_sqrt_T = alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt -= alphas_bar_sqrt_T
    alphas_bar_sqrt *= alphas_bar_sqrt_0 / (alphas_bar_sqrt_0 - alphas_bar_sqrt_T)
    alphas_bar = alphas_bar_sqrt**2
    alphas = alphas_bar[1:] / alphas_bar[:-1]
    alphas = torch.cat([alphas_bar[0:1], alphas])
    betas = 1 - alphas
    return betas


def make_betas(c):
    T, bs, be, sched = c["num_train_timesteps"], c["beta_start"], c["beta_end"], c["beta_schedule"]
    if c.get("trained_betas") is not None:
        return torch.tensor(c["trained_betas"], dtype=torch.float32)
    if sched == "linear":
        return torch.linspace(bs, be, T, dtype=torch.float32)
    if sched == "scaled_linear":
        return torch.linspace(bs**0.5, be**0.5, T, dtype=torch.float32) ** 2
    if sched == "squaredcos_cap_v2":
        return betas_for_alpha_bar(T)
    raise NotImplementedError(sched)


def kdiff_x0(prediction_type, sigma, model_output, sample):
    """pred_original_sample of EulerAncestralDiscreteScheduler.step and LMSDiscreteScheduler.step
    (one code; Euler's and Heun's take sigma_hat / sigma_next)."""
    if prediction_type == "epsilon":
        return sample - sigma * model_output
    if prediction_type == "v_prediction":
        return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + (sample / (sigma**2 + 1))
    return model_output  # "sample" (LMS, Euler)


def vp_tables(sch, cfg):
    """DPMSolverMultistepScheduler's and UniPCMultistepScheduler's __init__ tables (one code): the
    config with the class defaults, betas, alphas_cumprod, alpha_t, sigma_t, lambda_t."""
    c = {**sch.defaults, **{k: v for k, v in cfg.items() if k in sch.defaults}}
    sch.betas = make_betas(c)
    sch.alphas = 1.0 - sch.betas
    sch.alphas_cumprod = torch.cumprod(sch.alphas, dim=0)
    sch.alpha_t = torch.sqrt(sch.alphas_cumprod)
    sch.sigma_t = torch.sqrt(1 - sch.alphas_cumprod)
    sch.lambda_t = torch.log(sch.alpha_t) - torch.log(sch.sigma_t)
    return c


def convert_model_output(sch, x0, model_output, timestep, sample):
    """DPMSolverMultistepScheduler's and UniPCMultistepScheduler's convert_model_output (one code):
    the x0 prediction (dpmsolver++ / predict_x0) or the noise prediction."""
    pred = sch.config["prediction_type"]
    if x0:
        if pred == "epsilon":
            alpha_t, sigma_t = sch.alpha_t[timestep], sch.sigma_t[timestep]
            return (sample - sigma_t * model_output) / alpha_t
        if pred == "sample":
            return model_output
        alpha_t, sigma_t = sch.alpha_t[timestep], sch.sigma_t[timestep]
        return alpha_t * sample - sigma_t * model_output
    if pred == "epsilon":
        return model_output
    if pred == "sample":
        alpha_t, sigma_t = sch.alpha_t[timestep], sch.sigma_t[timestep]
        return (sample - alpha_t * model_output) / sigma_t
    alpha_t, sigma_t = sch.alpha_t[timestep], sch.sigma_t[timestep]
    return alpha_t * model_output + sigma_t * sample


def add_noise_vp(self, original_samples, noise, timesteps):
    """add_noise of DDPMScheduler, DDIMScheduler, PNDMScheduler, DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler, DEISMultistepScheduler and UniPCMultistepScheduler v0.17.0 (one code in
    each): sqrt(alphas_cumprod[t]) x + sqrt(1 - alphas_cumprod[t]) noise, the table cast to the samples'
    dtype first. Used by the img2img pipelines (tools/gen_img2img_cases.py), no scheduler case."""
    alphas_cumprod = self.alphas_cumprod.to(device=original_samples.device, dtype=original_samples.dtype)
    timesteps = timesteps.to(original_samples.device)
    sqrt_alpha_prod = alphas_cumprod[timesteps] ** 0.5
    sqrt_alpha_prod = sqrt_alpha_prod.flatten()
    while len(sqrt_alpha_prod.shape) < len(original_samples.shape):
        sqrt_alpha_prod = sqrt_alpha_prod.unsqueeze(-1)
    sqrt_one_minus_alpha_prod = (1 - alphas_cumprod[timesteps]) ** 0.5
    sqrt_one_minus_alpha_prod = sqrt_one_minus_alpha_prod.flatten()
    while len(sqrt_one_minus_alpha_prod.shape) < len(original_samples.shape):
        sqrt_one_minus_alpha_prod = sqrt_one_minus_alpha_prod.unsqueeze(-1)
    noisy_samples = sqrt_alpha_prod * original_samples + sqrt_one_minus_alpha_prod * noise
    return noisy_samples


def add_noise_sigma(self, original_samples, noise, timesteps):
    """add_noise of EulerDiscreteScheduler, EulerAncestralDiscreteScheduler and LMSDiscreteScheduler
    v0.17.0 (the index inline: (schedule_timesteps == t).nonzero().item()) and, through their
    index_for_timestep, of HeunDiscreteScheduler, KDPM2DiscreteScheduler and
    KDPM2AncestralDiscreteScheduler (the class's add_index): x + noise sigmas[index], the sigmas cast
    to the samples' dtype first (a local copy; the scheduler's stay float32)."""
    sigmas = self.sigmas.to(device=original_samples.device, dtype=original_samples.dtype)
    schedule_timesteps = self.timesteps.to(original_samples.device)
    timesteps = timesteps.to(original_samples.device)
    step_indices = [self.add_index(t, schedule_timesteps) for t in timesteps]
    sigma = sigmas[step_indices].flatten()
    while len(sigma.shape) < len(original_samples.shape):
        sigma = sigma.unsqueeze(-1)
    noisy_samples = original_samples + noise * sigma
    return noisy_samples


class DDIM:  # scheduling_ddim.py v0.17.0
    order = 1
    add_noise = add_noise_vp
    defaults = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    trained_betas=None, clip_sample=True, set_alpha_to_one=True, steps_offset=0,
                    prediction_type="epsilon", thresholding=False, dynamic_thresholding_ratio=0.995,
                    clip_sample_range=1.0, sample_max_value=1.0, timestep_spacing="leading",
                    rescale_betas_zero_snr=False)

    def __init__(self, cfg):
        self.config = c = {**self.defaults, **{k: v for k, v in cfg.items() if k in self.defaults}}
        self.betas = make_betas(c)
        if c["rescale_betas_zero_snr"]:
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if c["set_alpha_to_one"] else self.alphas_cumprod[0]

    def _get_variance(self, timestep, prev_timestep):
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        return (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)

    def set_timesteps(self, num_inference_steps):
        c = self.config
        self.num_inference_steps = num_inference_steps
        if c["timestep_spacing"] == "leading":
            step_ratio = c["num_train_timesteps"] // self.num_inference_steps
            timesteps = (np.arange(0, num_inference_steps) * step_ratio).round()[::-1].copy().astype(np.int64)
            timesteps += c["steps_offset"]
        elif c["timestep_spacing"] == "trailing":
            step_ratio = c["num_train_timesteps"] / self.num_inference_steps
            timesteps = np.round(np.arange(c["num_train_timesteps"], 0, -step_ratio)).astype(np.int64)
            timesteps -= 1
        self.timesteps = torch.from_numpy(timesteps)

    def step(self, model_output, timestep, sample, eta=0.0, use_clipped_model_output=False, variance_noise=None):
        c = self.config
        prev_timestep = timestep - c["num_train_timesteps"] // self.num_inference_steps
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        if c["prediction_type"] == "epsilon":
            pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
            pred_epsilon = model_output
        elif c["prediction_type"] == "sample":
            pred_original_sample = model_output
            pred_epsilon = (sample - alpha_prod_t ** (0.5) * pred_original_sample) / beta_prod_t ** (0.5)
        elif c["prediction_type"] == "v_prediction":
            pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
            pred_epsilon = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
        if c["clip_sample"]:
            pred_original_sample = pred_original_sample.clamp(-c["clip_sample_range"], c["clip_sample_range"])
        variance = self._get_variance(timestep, prev_timestep)
        std_dev_t = eta * variance ** (0.5)
        if use_clipped_model_output:
            pred_epsilon = (sample - alpha_prod_t ** (0.5) * pred_original_sample) / beta_prod_t ** (0.5)
        pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5) * pred_epsilon
        prev_sample = alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction
        if eta > 0:
            variance = std_dev_t * variance_noise
            prev_sample = prev_sample + variance
        return prev_sample


class DDPM:  # scheduling_ddpm.py v0.17.0 (no thresholding, no learned variance, no custom timesteps)
    order = 1
    add_noise = add_noise_vp
    defaults = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    trained_betas=None, variance_type="fixed_small", clip_sample=True, prediction_type="epsilon",
                    thresholding=False, dynamic_thresholding_ratio=0.995, clip_sample_range=1.0,
                    sample_max_value=1.0)

    def __init__(self, cfg):
        self.config = c = {**self.defaults, **{k: v for k, v in cfg.items() if k in self.defaults}}
        if c["beta_schedule"] == "sigmoid":
            betas = torch.linspace(-6, 6, c["num_train_timesteps"])
            self.betas = torch.sigmoid(betas) * (c["beta_end"] - c["beta_start"]) + c["beta_start"]
        else:
            self.betas = make_betas(c)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.one = torch.tensor(1.0)
        self.variance_type = c["variance_type"]
        self.num_inference_steps = None

    def set_timesteps(self, num_inference_steps):
        self.num_inference_steps = num_inference_steps
        step_ratio = self.config["num_train_timesteps"] // self.num_inference_steps
        timesteps = (np.arange(0, num_inference_steps) * step_ratio).round()[::-1].copy().astype(np.int64)
        self.timesteps = torch.from_numpy(timesteps)

    def previous_timestep(self, timestep):
        num_inference_steps = self.num_inference_steps if self.num_inference_steps else self.config["num_train_timesteps"]
        return timestep - self.config["num_train_timesteps"] // num_inference_steps

    def _get_variance(self, t):
        prev_t = self.previous_timestep(t)
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one
        current_beta_t = 1 - alpha_prod_t / alpha_prod_t_prev
        variance = (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t
        variance = torch.clamp(variance, min=1e-20)
        variance_type = self.config["variance_type"]
        if variance_type == "fixed_small":
            variance = variance
        elif variance_type == "fixed_small_log":
            variance = torch.log(variance)
            variance = torch.exp(0.5 * variance)
        elif variance_type == "fixed_large":
            variance = current_beta_t
        return variance

    def step(self, model_output, timestep, sample, variance_noise=None):
        c = self.config
        t = timestep
        prev_t = self.previous_timestep(t)
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        current_beta_t = 1 - current_alpha_t
        if c["prediction_type"] == "epsilon":
            pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        elif c["prediction_type"] == "sample":
            pred_original_sample = model_output
        elif c["prediction_type"] == "v_prediction":
            pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
        if c["clip_sample"]:
            pred_original_sample = pred_original_sample.clamp(-c["clip_sample_range"], c["clip_sample_range"])
        pred_original_sample_coeff = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
        current_sample_coeff = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
        pred_prev_sample = pred_original_sample_coeff * pred_original_sample + current_sample_coeff * sample
        variance = 0
        if t > 0:
            # variance_noise: randn_tensor in diffusers, an input here
            if self.variance_type == "fixed_small_log":
                variance = self._get_variance(t) * variance_noise
            else:
                variance = (self._get_variance(t) ** 0.5) * variance_noise
        pred_prev_sample = pred_prev_sample + variance
        return pred_prev_sample


class PNDM:  # scheduling_pndm.py v0.17.0
    order = 1
    add_noise = add_noise_vp
    defaults = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    trained_betas=None, skip_prk_steps=False, set_alpha_to_one=False, prediction_type="epsilon",
                    steps_offset=0)

    def __init__(self, cfg):
        self.config = c = {**self.defaults, **{k: v for k, v in cfg.items() if k in self.defaults}}
        self.betas = make_betas(c)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if c["set_alpha_to_one"] else self.alphas_cumprod[0]
        self.pndm_order = 4
        self.cur_model_output = 0
        self.counter = 0
        self.cur_sample = None
        self.ets = []

    def set_timesteps(self, num_inference_steps):
        c = self.config
        self.num_inference_steps = num_inference_steps
        step_ratio = c["num_train_timesteps"] // self.num_inference_steps
        self._timesteps = (np.arange(0, num_inference_steps) * step_ratio).round()
        self._timesteps += c["steps_offset"]
        if c["skip_prk_steps"]:
            self.prk_timesteps = np.array([])
            self.plms_timesteps = np.concatenate([self._timesteps[:-1], self._timesteps[-2:-1],
                                                  self._timesteps[-1:]])[::-1].copy()
        else:
            prk_timesteps = np.array(self._timesteps[-self.pndm_order:]).repeat(2) + np.tile(
                np.array([0, c["num_train_timesteps"] // num_inference_steps // 2]), self.pndm_order)
            self.prk_timesteps = (prk_timesteps[:-1].repeat(2)[1:-1])[::-1].copy()
            self.plms_timesteps = self._timesteps[:-3][::-1].copy()
        timesteps = np.concatenate([self.prk_timesteps, self.plms_timesteps]).astype(np.int64)
        self.timesteps = torch.from_numpy(timesteps)
        self.ets = []
        self.counter = 0
        self.cur_model_output = 0

    def step(self, model_output, timestep, sample):
        if self.counter < len(self.prk_timesteps) and not self.config["skip_prk_steps"]:
            return self.step_prk(model_output, timestep, sample)
        return self.step_plms(model_output, timestep, sample)

    def step_prk(self, model_output, timestep, sample):
        c = self.config
        diff_to_prev = 0 if self.counter % 2 else c["num_train_timesteps"] // self.num_inference_steps // 2
        prev_timestep = timestep - diff_to_prev
        timestep = self.prk_timesteps[self.counter // 4 * 4]
        if self.counter % 4 == 0:
            self.cur_model_output += 1 / 6 * model_output
            self.ets.append(model_output)
            self.cur_sample = sample
        elif (self.counter - 1) % 4 == 0:
            self.cur_model_output += 1 / 3 * model_output
        elif (self.counter - 2) % 4 == 0:
            self.cur_model_output += 1 / 3 * model_output
        elif (self.counter - 3) % 4 == 0:
            model_output = self.cur_model_output + 1 / 6 * model_output
            self.cur_model_output = 0
        cur_sample = self.cur_sample if self.cur_sample is not None else sample
        prev_sample = self._get_prev_sample(cur_sample, timestep, prev_timestep, model_output)
        self.counter += 1
        return prev_sample

    def step_plms(self, model_output, timestep, sample):
        c = self.config
        prev_timestep = timestep - c["num_train_timesteps"] // self.num_inference_steps
        if self.counter != 1:
            self.ets = self.ets[-3:]
            self.ets.append(model_output)
        else:
            prev_timestep = timestep
            timestep = timestep + c["num_train_timesteps"] // self.num_inference_steps
        if len(self.ets) == 1 and self.counter == 0:
            model_output = model_output
            self.cur_sample = sample
        elif len(self.ets) == 1 and self.counter == 1:
            model_output = (model_output + self.ets[-1]) / 2
            sample = self.cur_sample
            self.cur_sample = None
        elif len(self.ets) == 2:
            model_output = (3 * self.ets[-1] - self.ets[-2]) / 2
        elif len(self.ets) == 3:
            model_output = (23 * self.ets[-1] - 16 * self.ets[-2] + 5 * self.ets[-3]) / 12
        else:
            model_output = (1 / 24) * (55 * self.ets[-1] - 59 * self.ets[-2] + 37 * self.ets[-3] - 9 * self.ets[-4])
        prev_sample = self._get_prev_sample(sample, timestep, prev_timestep, model_output)
        self.counter += 1
        return prev_sample

    def _get_prev_sample(self, sample, timestep, prev_timestep, model_output):
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        if self.config["prediction_type"] == "v_prediction":
            model_output = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
        sample_coeff = (alpha_prod_t_prev / alpha_prod_t) ** (0.5)
        model_output_denom_coeff = alpha_prod_t * beta_prod_t_prev ** (0.5) + (
            alpha_prod_t * beta_prod_t * alpha_prod_t_prev) ** (0.5)
        prev_sample = (sample_coeff * sample - (alpha_prod_t_prev - alpha_prod_t) * model_output
                       / model_output_denom_coeff)
        return prev_sample


class DPM:  # scheduling_dpmsolver_multistep.py v0.17.0 (no thresholding / learned variance)
    order = 1  # (the class attribute; DPMSingle and DEIS inherit it and add_noise)
    add_noise = add_noise_vp
    defaults = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    trained_betas=None, solver_order=2, prediction_type="epsilon", algorithm_type="dpmsolver++",
                    solver_type="midpoint", lower_order_final=True, lambda_min_clipped=-float("inf"),
                    use_karras_sigmas=False)

    def __init__(self, cfg):
        self.config = c = vp_tables(self, cfg)

    def set_timesteps(self, num_inference_steps):
        c = self.config
        clipped_idx = torch.searchsorted(torch.flip(self.lambda_t, [0]), c["lambda_min_clipped"])
        timesteps = (np.linspace(0, c["num_train_timesteps"] - 1 - clipped_idx, num_inference_steps + 1)
                     .round()[::-1][:-1].copy().astype(np.int64))
        if c["use_karras_sigmas"]:
            sigmas = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
            log_sigmas = np.log(sigmas)
            sigmas = Euler._convert_to_karras(self, in_sigmas=sigmas, num_inference_steps=num_inference_steps)
            timesteps = np.array([Euler._sigma_to_t(self, sigma, log_sigmas) for sigma in sigmas]).round()
            timesteps = np.flip(timesteps).copy().astype(np.int64)
        _, unique_indices = np.unique(timesteps, return_index=True)
        timesteps = timesteps[np.sort(unique_indices)]
        self.timesteps = torch.from_numpy(timesteps)
        self.num_inference_steps = len(timesteps)
        self.model_outputs = [None] * c["solver_order"]
        self.lower_order_nums = 0

    def convert_model_output(self, model_output, timestep, sample):
        x0 = self.config["algorithm_type"] in ["dpmsolver++", "sde-dpmsolver++"]
        return convert_model_output(self, x0, model_output, timestep, sample)

    def first(self, model_output, timestep, prev_timestep, sample, noise=None):
        a = self.config["algorithm_type"]
        lambda_t, lambda_s = self.lambda_t[prev_timestep], self.lambda_t[timestep]
        alpha_t, alpha_s = self.alpha_t[prev_timestep], self.alpha_t[timestep]
        sigma_t, sigma_s = self.sigma_t[prev_timestep], self.sigma_t[timestep]
        h = lambda_t - lambda_s
        if a == "dpmsolver++":
            x_t = (sigma_t / sigma_s) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * model_output
        elif a == "dpmsolver":
            x_t = (alpha_t / alpha_s) * sample - (sigma_t * (torch.exp(h) - 1.0)) * model_output
        elif a == "sde-dpmsolver++":
            x_t = ((sigma_t / sigma_s * torch.exp(-h)) * sample
                   + (alpha_t * (1 - torch.exp(-2.0 * h))) * model_output
                   + sigma_t * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise)
        elif a == "sde-dpmsolver":
            x_t = ((alpha_t / alpha_s) * sample
                   - 2.0 * (sigma_t * (torch.exp(h) - 1.0)) * model_output
                   + sigma_t * torch.sqrt(torch.exp(2 * h) - 1.0) * noise)
        return x_t

    def second(self, model_output_list, timestep_list, prev_timestep, sample, noise=None):
        a, st = self.config["algorithm_type"], self.config["solver_type"]
        t, s0, s1 = prev_timestep, timestep_list[-1], timestep_list[-2]
        m0, m1 = model_output_list[-1], model_output_list[-2]
        lambda_t, lambda_s0, lambda_s1 = self.lambda_t[t], self.lambda_t[s0], self.lambda_t[s1]
        alpha_t, alpha_s0 = self.alpha_t[t], self.alpha_t[s0]
        sigma_t, sigma_s0 = self.sigma_t[t], self.sigma_t[s0]
        h, h_0 = lambda_t - lambda_s0, lambda_s0 - lambda_s1
        r0 = h_0 / h
        D0, D1 = m0, (1.0 / r0) * (m0 - m1)
        if a == "dpmsolver++":
            if st == "midpoint":
                x_t = ((sigma_t / sigma_s0) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * D0
                       - 0.5 * (alpha_t * (torch.exp(-h) - 1.0)) * D1)
            else:
                x_t = ((sigma_t / sigma_s0) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * D0
                       + (alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * D1)
        elif a == "dpmsolver":
            if st == "midpoint":
                x_t = ((alpha_t / alpha_s0) * sample - (sigma_t * (torch.exp(h) - 1.0)) * D0
                       - 0.5 * (sigma_t * (torch.exp(h) - 1.0)) * D1)
            else:
                x_t = ((alpha_t / alpha_s0) * sample - (sigma_t * (torch.exp(h) - 1.0)) * D0
                       - (sigma_t * ((torch.exp(h) - 1.0) / h - 1.0)) * D1)
        elif a == "sde-dpmsolver++":
            if st == "midpoint":
                x_t = ((sigma_t / sigma_s0 * torch.exp(-h)) * sample + (alpha_t * (1 - torch.exp(-2.0 * h))) * D0
                       + 0.5 * (alpha_t * (1 - torch.exp(-2.0 * h))) * D1
                       + sigma_t * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise)
            else:
                x_t = ((sigma_t / sigma_s0 * torch.exp(-h)) * sample + (alpha_t * (1 - torch.exp(-2.0 * h))) * D0
                       + (alpha_t * ((1.0 - torch.exp(-2.0 * h)) / (-2.0 * h) + 1.0)) * D1
                       + sigma_t * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise)
        elif a == "sde-dpmsolver":
            if st == "midpoint":
                x_t = ((alpha_t / alpha_s0) * sample - 2.0 * (sigma_t * (torch.exp(h) - 1.0)) * D0
                       - (sigma_t * (torch.exp(h) - 1.0)) * D1
                       + sigma_t * torch.sqrt(torch.exp(2 * h) - 1.0) * noise)
            else:
                x_t = ((alpha_t / alpha_s0) * sample - 2.0 * (sigma_t * (torch.exp(h) - 1.0)) * D0
                       - 2.0 * (sigma_t * ((torch.exp(h) - 1.0) / h - 1.0)) * D1
                       + sigma_t * torch.sqrt(torch.exp(2 * h) - 1.0) * noise)
        return x_t

    def third(self, model_output_list, timestep_list, prev_timestep, sample):
        a = self.config["algorithm_type"]
        t, s0, s1, s2 = prev_timestep, timestep_list[-1], timestep_list[-2], timestep_list[-3]
        m0, m1, m2 = model_output_list[-1], model_output_list[-2], model_output_list[-3]
        lambda_t, lambda_s0, lambda_s1, lambda_s2 = (self.lambda_t[t], self.lambda_t[s0], self.lambda_t[s1],
                                                     self.lambda_t[s2])
        alpha_t, alpha_s0 = self.alpha_t[t], self.alpha_t[s0]
        sigma_t, sigma_s0 = self.sigma_t[t], self.sigma_t[s0]
        h, h_0, h_1 = lambda_t - lambda_s0, lambda_s0 - lambda_s1, lambda_s1 - lambda_s2
        r0, r1 = h_0 / h, h_1 / h
        D0 = m0
        D1_0, D1_1 = (1.0 / r0) * (m0 - m1), (1.0 / r1) * (m1 - m2)
        D1 = D1_0 + (r0 / (r0 + r1)) * (D1_0 - D1_1)
        D2 = (1.0 / (r0 + r1)) * (D1_0 - D1_1)
        if a == "dpmsolver++":
            x_t = ((sigma_t / sigma_s0) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * D0
                   + (alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * D1
                   - (alpha_t * ((torch.exp(-h) - 1.0 + h) / h**2 - 0.5)) * D2)
        else:
            x_t = ((alpha_t / alpha_s0) * sample - (sigma_t * (torch.exp(h) - 1.0)) * D0
                   - (sigma_t * ((torch.exp(h) - 1.0) / h - 1.0)) * D1
                   - (sigma_t * ((torch.exp(h) - 1.0 - h) / h**2 - 0.5)) * D2)
        return x_t

    def step(self, model_output, timestep, sample, noise=None):
        c = self.config
        step_index = (self.timesteps == timestep).nonzero()
        step_index = len(self.timesteps) - 1 if len(step_index) == 0 else step_index.item()
        prev_timestep = 0 if step_index == len(self.timesteps) - 1 else self.timesteps[step_index + 1]
        lower_order_final = ((step_index == len(self.timesteps) - 1) and c["lower_order_final"]
                             and len(self.timesteps) < 15)
        lower_order_second = ((step_index == len(self.timesteps) - 2) and c["lower_order_final"]
                              and len(self.timesteps) < 15)
        model_output = self.convert_model_output(model_output, timestep, sample)
        for i in range(c["solver_order"] - 1):
            self.model_outputs[i] = self.model_outputs[i + 1]
        self.model_outputs[-1] = model_output
        if c["solver_order"] == 1 or self.lower_order_nums < 1 or lower_order_final:
            prev_sample = self.first(model_output, timestep, prev_timestep, sample, noise=noise)
        elif c["solver_order"] == 2 or self.lower_order_nums < 2 or lower_order_second:
            timestep_list = [self.timesteps[step_index - 1], timestep]
            prev_sample = self.second(self.model_outputs, timestep_list, prev_timestep, sample, noise=noise)
        else:
            timestep_list = [self.timesteps[step_index - 2], self.timesteps[step_index - 1], timestep]
            prev_sample = self.third(self.model_outputs, timestep_list, prev_timestep, sample)
        if self.lower_order_nums < c["solver_order"]:
            self.lower_order_nums += 1
        return prev_sample


class DPMSingle(DPM):  # scheduling_dpmsolver_singlestep.py v0.17.0 (no thresholding / learned variance)
    defaults = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    trained_betas=None, solver_order=2, prediction_type="epsilon", algorithm_type="dpmsolver++",
                    solver_type="midpoint", lower_order_final=True, use_karras_sigmas=False,
                    lambda_min_clipped=-float("inf"))

    def __init__(self, cfg):
        self.config = c = vp_tables(self, cfg)
        if c["algorithm_type"] not in ["dpmsolver", "dpmsolver++"]:
            assert c["algorithm_type"] == "deis"
            c["algorithm_type"] = "dpmsolver++"
        if c["solver_type"] not in ["midpoint", "heun"]:
            assert c["solver_type"] in ["logrho", "bh1", "bh2"]
            c["solver_type"] = "midpoint"

    def get_order_list(self, num_inference_steps):
        steps = num_inference_steps
        order = self.config["solver_order"]
        if self.config["lower_order_final"]:
            if order == 3:
                if steps % 3 == 0:
                    orders = [1, 2, 3] * (steps // 3 - 1) + [1, 2] + [1]
                elif steps % 3 == 1:
                    orders = [1, 2, 3] * (steps // 3) + [1]
                else:
                    orders = [1, 2, 3] * (steps // 3) + [1, 2]
            elif order == 2:
                if steps % 2 == 0:
                    orders = [1, 2] * (steps // 2)
                else:
                    orders = [1, 2] * (steps // 2) + [1]
            elif order == 1:
                orders = [1] * steps
        else:
            if order == 3:
                orders = [1, 2, 3] * (steps // 3)
            elif order == 2:
                orders = [1, 2] * (steps // 2)
            elif order == 1:
                orders = [1] * steps
        return orders

    def set_timesteps(self, num_inference_steps):
        c = self.config
        self.num_inference_steps = num_inference_steps
        clipped_idx = torch.searchsorted(torch.flip(self.lambda_t, [0]), c["lambda_min_clipped"])
        timesteps = (np.linspace(0, c["num_train_timesteps"] - 1 - clipped_idx, num_inference_steps + 1)
                     .round()[::-1][:-1].copy().astype(np.int64))
        if c["use_karras_sigmas"]:
            sigmas = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
            log_sigmas = np.log(sigmas)
            sigmas = Euler._convert_to_karras(self, in_sigmas=sigmas, num_inference_steps=num_inference_steps)
            timesteps = np.array([Euler._sigma_to_t(self, sigma, log_sigmas) for sigma in sigmas]).round()
            timesteps = np.flip(timesteps).copy().astype(np.int64)
        self.timesteps = torch.from_numpy(timesteps)
        self.model_outputs = [None] * c["solver_order"]
        self.sample = None
        if not c["lower_order_final"] and num_inference_steps % c["solver_order"] != 0:
            c["lower_order_final"] = True  # register_to_config: it stays
        self.order_list = self.get_order_list(num_inference_steps)

    # first(): DPM-Solver multistep's dpm_solver_first_order_update, the same code

    def second(self, model_output_list, timestep_list, prev_timestep, sample, noise=None):
        a, st = self.config["algorithm_type"], self.config["solver_type"]
        t, s0, s1 = prev_timestep, timestep_list[-1], timestep_list[-2]
        m0, m1 = model_output_list[-1], model_output_list[-2]
        lambda_t, lambda_s0, lambda_s1 = self.lambda_t[t], self.lambda_t[s0], self.lambda_t[s1]
        alpha_t, alpha_s1 = self.alpha_t[t], self.alpha_t[s1]
        sigma_t, sigma_s1 = self.sigma_t[t], self.sigma_t[s1]
        h, h_0 = lambda_t - lambda_s1, lambda_s0 - lambda_s1
        r0 = h_0 / h
        D0, D1 = m1, (1.0 / r0) * (m0 - m1)
        if a == "dpmsolver++":
            if st == "midpoint":
                x_t = ((sigma_t / sigma_s1) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * D0
                       - 0.5 * (alpha_t * (torch.exp(-h) - 1.0)) * D1)
            else:
                x_t = ((sigma_t / sigma_s1) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * D0
                       + (alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * D1)
        else:
            if st == "midpoint":
                x_t = ((alpha_t / alpha_s1) * sample - (sigma_t * (torch.exp(h) - 1.0)) * D0
                       - 0.5 * (sigma_t * (torch.exp(h) - 1.0)) * D1)
            else:
                x_t = ((alpha_t / alpha_s1) * sample - (sigma_t * (torch.exp(h) - 1.0)) * D0
                       - (sigma_t * ((torch.exp(h) - 1.0) / h - 1.0)) * D1)
        return x_t

    def third(self, model_output_list, timestep_list, prev_timestep, sample):
        a, st = self.config["algorithm_type"], self.config["solver_type"]
        t, s0, s1, s2 = prev_timestep, timestep_list[-1], timestep_list[-2], timestep_list[-3]
        m0, m1, m2 = model_output_list[-1], model_output_list[-2], model_output_list[-3]
        lambda_t, lambda_s0, lambda_s1, lambda_s2 = (self.lambda_t[t], self.lambda_t[s0], self.lambda_t[s1],
                                                     self.lambda_t[s2])
        alpha_t, alpha_s2 = self.alpha_t[t], self.alpha_t[s2]
        sigma_t, sigma_s2 = self.sigma_t[t], self.sigma_t[s2]
        h, h_0, h_1 = lambda_t - lambda_s2, lambda_s0 - lambda_s2, lambda_s1 - lambda_s2
        r0, r1 = h_0 / h, h_1 / h
        D0 = m2
        D1_0, D1_1 = (1.0 / r1) * (m1 - m2), (1.0 / r0) * (m0 - m2)
        D1 = (r0 * D1_0 - r1 * D1_1) / (r0 - r1)
        D2 = 2.0 * (D1_1 - D1_0) / (r0 - r1)
        if a == "dpmsolver++":
            if st == "midpoint":
                x_t = ((sigma_t / sigma_s2) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * D0
                       + (alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * D1_1)
            else:
                x_t = ((sigma_t / sigma_s2) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * D0
                       + (alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * D1
                       - (alpha_t * ((torch.exp(-h) - 1.0 + h) / h**2 - 0.5)) * D2)
        else:
            if st == "midpoint":
                x_t = ((alpha_t / alpha_s2) * sample - (sigma_t * (torch.exp(h) - 1.0)) * D0
                       - (sigma_t * ((torch.exp(h) - 1.0) / h - 1.0)) * D1_1)
            else:
                x_t = ((alpha_t / alpha_s2) * sample - (sigma_t * (torch.exp(h) - 1.0)) * D0
                       - (sigma_t * ((torch.exp(h) - 1.0) / h - 1.0)) * D1
                       - (sigma_t * ((torch.exp(h) - 1.0 - h) / h**2 - 0.5)) * D2)
        return x_t

    def step(self, model_output, timestep, sample, noise=None):
        c = self.config
        step_index = (self.timesteps == timestep).nonzero()
        step_index = len(self.timesteps) - 1 if len(step_index) == 0 else step_index.item()
        prev_timestep = 0 if step_index == len(self.timesteps) - 1 else self.timesteps[step_index + 1]
        model_output = self.convert_model_output(model_output, timestep, sample)
        for i in range(c["solver_order"] - 1):
            self.model_outputs[i] = self.model_outputs[i + 1]
        self.model_outputs[-1] = model_output
        order = self.order_list[step_index]
        while self.model_outputs[-order] is None:
            order -= 1
        if order == 1:
            self.sample = sample
        timestep_list = [self.timesteps[step_index - i] for i in range(order - 1, 0, -1)] + [timestep]
        if order == 1:
            return self.first(self.model_outputs[-1], timestep_list[-1], prev_timestep, self.sample)
        if order == 2:
            return self.second(self.model_outputs, timestep_list, prev_timestep, self.sample)
        return self.third(self.model_outputs, timestep_list, prev_timestep, self.sample)


class DEIS(DPM):  # scheduling_deis_multistep.py v0.17.0 (no thresholding); step: DPM-Solver's, line for line
    defaults = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    trained_betas=None, solver_order=2, prediction_type="epsilon", algorithm_type="deis",
                    solver_type="logrho", lower_order_final=True)

    def __init__(self, cfg):
        self.config = c = vp_tables(self, cfg)
        if c["algorithm_type"] not in ["deis"]:
            assert c["algorithm_type"] in ["dpmsolver", "dpmsolver++"]
            c["algorithm_type"] = "deis"
        if c["solver_type"] not in ["logrho"]:
            assert c["solver_type"] in ["midpoint", "heun", "bh1", "bh2"]
            c["solver_type"] = "logrho"

    def set_timesteps(self, num_inference_steps):
        timesteps = (np.linspace(0, self.config["num_train_timesteps"] - 1, num_inference_steps + 1)
                     .round()[::-1][:-1].copy().astype(np.int64))
        _, unique_indices = np.unique(timesteps, return_index=True)
        timesteps = timesteps[np.sort(unique_indices)]
        self.timesteps = torch.from_numpy(timesteps)
        self.num_inference_steps = len(timesteps)
        self.model_outputs = [None] * self.config["solver_order"]
        self.lower_order_nums = 0

    def convert_model_output(self, model_output, timestep, sample):
        x0_pred = convert_model_output(self, True, model_output, timestep, sample)
        alpha_t, sigma_t = self.alpha_t[timestep], self.sigma_t[timestep]
        return (sample - alpha_t * x0_pred) / sigma_t

    def first(self, model_output, timestep, prev_timestep, sample, noise=None):
        lambda_t, lambda_s = self.lambda_t[prev_timestep], self.lambda_t[timestep]
        alpha_t, alpha_s = self.alpha_t[prev_timestep], self.alpha_t[timestep]
        sigma_t, _ = self.sigma_t[prev_timestep], self.sigma_t[timestep]
        h = lambda_t - lambda_s
        x_t = (alpha_t / alpha_s) * sample - (sigma_t * (torch.exp(h) - 1.0)) * model_output
        return x_t

    def second(self, model_output_list, timestep_list, prev_timestep, sample, noise=None):
        t, s0, s1 = prev_timestep, timestep_list[-1], timestep_list[-2]
        m0, m1 = model_output_list[-1], model_output_list[-2]
        alpha_t, alpha_s0, alpha_s1 = self.alpha_t[t], self.alpha_t[s0], self.alpha_t[s1]
        sigma_t, sigma_s0, sigma_s1 = self.sigma_t[t], self.sigma_t[s0], self.sigma_t[s1]
        rho_t, rho_s0, rho_s1 = sigma_t / alpha_t, sigma_s0 / alpha_s0, sigma_s1 / alpha_s1

        def ind_fn(t, b, c):
            return t * (-np.log(c) + np.log(t) - 1) / (np.log(b) - np.log(c))

        coef1 = ind_fn(rho_t, rho_s0, rho_s1) - ind_fn(rho_s0, rho_s0, rho_s1)
        coef2 = ind_fn(rho_t, rho_s1, rho_s0) - ind_fn(rho_s0, rho_s1, rho_s0)
        x_t = alpha_t * (sample / alpha_s0 + coef1 * m0 + coef2 * m1)
        return x_t

    def third(self, model_output_list, timestep_list, prev_timestep, sample):
        t, s0, s1, s2 = prev_timestep, timestep_list[-1], timestep_list[-2], timestep_list[-3]
        m0, m1, m2 = model_output_list[-1], model_output_list[-2], model_output_list[-3]
        alpha_t, alpha_s0, alpha_s1, alpha_s2 = self.alpha_t[t], self.alpha_t[s0], self.alpha_t[s1], self.alpha_t[s2]
        sigma_t, sigma_s0, sigma_s1, simga_s2 = self.sigma_t[t], self.sigma_t[s0], self.sigma_t[s1], self.sigma_t[s2]
        rho_t, rho_s0, rho_s1, rho_s2 = (sigma_t / alpha_t, sigma_s0 / alpha_s0, sigma_s1 / alpha_s1,
                                         simga_s2 / alpha_s2)

        def ind_fn(t, b, c, d):
            numerator = t * (
                np.log(c) * (np.log(d) - np.log(t) + 1)
                - np.log(d) * np.log(t)
                + np.log(d)
                + np.log(t) ** 2
                - 2 * np.log(t)
                + 2
            )
            denominator = (np.log(b) - np.log(c)) * (np.log(b) - np.log(d))
            return numerator / denominator

        coef1 = ind_fn(rho_t, rho_s0, rho_s1, rho_s2) - ind_fn(rho_s0, rho_s0, rho_s1, rho_s2)
        coef2 = ind_fn(rho_t, rho_s1, rho_s2, rho_s0) - ind_fn(rho_s0, rho_s1, rho_s2, rho_s0)
        coef3 = ind_fn(rho_t, rho_s2, rho_s0, rho_s1) - ind_fn(rho_s0, rho_s2, rho_s0, rho_s1)
        x_t = alpha_t * (sample / alpha_s0 + coef1 * m0 + coef2 * m1 + coef3 * m2)
        return x_t


class Euler:  # scheduling_euler_discrete.py v0.17.0 (step with s_churn 0, as the pipelines call it)
    order = 1  # (LMS and EulerAncestral inherit it and add_noise, as add_index)
    add_noise = add_noise_sigma
    defaults = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    trained_betas=None, prediction_type="epsilon", interpolation_type="linear",
                    use_karras_sigmas=False)
    ancestral = False

    def __init__(self, cfg):
        self.config = c = {**self.defaults, **{k: v for k, v in cfg.items() if k in self.defaults}}
        self.betas = make_betas(c)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        sigmas = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        sigmas = np.concatenate([sigmas[::-1], [0.0]]).astype(np.float32)
        self.sigmas = torch.from_numpy(sigmas)
        self.init_noise_sigma = self.sigmas.max()
        self.use_karras_sigmas = c.get("use_karras_sigmas", False)

    def add_index(self, t, schedule_timesteps):  # Euler's add_noise: inline, the only match
        return (schedule_timesteps == t).nonzero().item()

    def index_for_timestep(self, timestep):  # (Euler writes this inline; Heun's differs)
        return (self.timesteps == timestep).nonzero().item()

    def scale_model_input(self, sample, timestep):
        step_index = self.index_for_timestep(timestep)
        sigma = self.sigmas[step_index]
        sample = sample / ((sigma**2 + 1) ** 0.5)
        return sample

    def set_timesteps(self, num_inference_steps):
        c = self.config
        self.num_inference_steps = num_inference_steps
        timesteps = np.linspace(0, c["num_train_timesteps"] - 1, num_inference_steps, dtype=float)[::-1].copy()
        sigmas = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        log_sigmas = np.log(sigmas)
        assert c.get("interpolation_type", "linear") == "linear"  # EulerAncestral: linear only
        sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
        if self.use_karras_sigmas:
            sigmas = self._convert_to_karras(in_sigmas=sigmas, num_inference_steps=self.num_inference_steps)
            timesteps = np.array([self._sigma_to_t(sigma, log_sigmas) for sigma in sigmas])
        sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        self.sigmas = torch.from_numpy(sigmas)
        self.timesteps = torch.from_numpy(timesteps)

    def _sigma_to_t(self, sigma, log_sigmas):
        log_sigma = np.log(sigma)
        dists = log_sigma - log_sigmas[:, np.newaxis]
        low_idx = np.cumsum((dists >= 0), axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low = log_sigmas[low_idx]
        high = log_sigmas[high_idx]
        w = (low - log_sigma) / (low - high)
        w = np.clip(w, 0, 1)
        t = (1 - w) * low_idx + w * high_idx
        t = t.reshape(sigma.shape)
        return t

    def _convert_to_karras(self, in_sigmas, num_inference_steps):
        sigma_min: float = in_sigmas[-1].item()
        sigma_max: float = in_sigmas[0].item()
        rho = 7.0
        ramp = np.linspace(0, 1, num_inference_steps)
        min_inv_rho = sigma_min ** (1 / rho)
        max_inv_rho = sigma_max ** (1 / rho)
        sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
        return sigmas

    def step(self, model_output, timestep, sample, noise=None, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"),
             s_noise=1.0):
        c = self.config
        step_index = (self.timesteps == timestep).nonzero().item()
        sigma = self.sigmas[step_index]
        gamma = min(s_churn / (len(self.sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        eps = torch.zeros_like(model_output) * s_noise  # randn_tensor in diffusers; unused with s_churn 0
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            sample = sample + eps * (sigma_hat**2 - sigma**2) ** 0.5
        if c["prediction_type"] == "original_sample" or c["prediction_type"] == "sample":
            pred_original_sample = model_output
        elif c["prediction_type"] == "epsilon":
            pred_original_sample = sample - sigma_hat * model_output
        elif c["prediction_type"] == "v_prediction":
            pred_original_sample = model_output * (-sigma / (sigma**2 + 1) ** 0.5) + (sample / (sigma**2 + 1))
        derivative = (sample - pred_original_sample) / sigma_hat
        dt = self.sigmas[step_index + 1] - sigma_hat
        prev_sample = sample + derivative * dt
        return prev_sample


class LMS(Euler):  # scheduling_lms_discrete.py v0.17.0 (set_timesteps, scale_model_input: Euler's)
    defaults = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    trained_betas=None, use_karras_sigmas=False, prediction_type="epsilon")

    def set_timesteps(self, num_inference_steps):
        Euler.set_timesteps(self, num_inference_steps)
        self.derivatives = []

    def get_lms_coefficient(self, order, t, current_order):
        from scipy import integrate  # Debian's python3-scipy (1.10)

        def lms_derivative(tau):
            prod = 1.0
            for k in range(order):
                if current_order == k:
                    continue
                prod *= (tau - self.sigmas[t - k]) / (self.sigmas[t - current_order] - self.sigmas[t - k])
            return prod

        integrated_coeff = integrate.quad(lms_derivative, self.sigmas[t], self.sigmas[t + 1], epsrel=1e-4)[0]
        return integrated_coeff

    def step(self, model_output, timestep, sample, noise=None, order=4):
        c = self.config
        step_index = (self.timesteps == timestep).nonzero().item()
        sigma = self.sigmas[step_index]
        pred_original_sample = kdiff_x0(c["prediction_type"], sigma, model_output, sample)
        derivative = (sample - pred_original_sample) / sigma
        self.derivatives.append(derivative)
        if len(self.derivatives) > order:
            self.derivatives.pop(0)
        order = min(step_index + 1, order)
        lms_coeffs = [self.get_lms_coefficient(order, step_index, curr_order) for curr_order in range(order)]
        prev_sample = sample + sum(
            coeff * derivative for coeff, derivative in zip(lms_coeffs, reversed(self.derivatives))
        )
        return prev_sample


class EulerAncestral(Euler):  # scheduling_euler_ancestral_discrete.py v0.17.0
    defaults = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    trained_betas=None, prediction_type="epsilon")
    ancestral = True

    def step(self, model_output, timestep, sample, noise=None):
        c = self.config
        step_index = (self.timesteps == timestep).nonzero().item()
        sigma = self.sigmas[step_index]
        pred_original_sample = kdiff_x0(c["prediction_type"], sigma, model_output, sample)
        sigma_from = self.sigmas[step_index]
        sigma_to = self.sigmas[step_index + 1]
        sigma_up = (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5
        sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
        derivative = (sample - pred_original_sample) / sigma
        dt = sigma_down - sigma
        prev_sample = sample + derivative * dt
        prev_sample = prev_sample + noise * sigma_up  # noise: randn_tensor in diffusers, an input here
        return prev_sample


class Heun(Euler):  # scheduling_heun_discrete.py v0.17.0
    order = 2  # (KDPM2 and KDPM2Ancestral inherit it, and add_index)
    defaults = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
                    trained_betas=None, prediction_type="epsilon", use_karras_sigmas=False)
    ancestral = False

    def __init__(self, cfg):
        super().__init__(cfg)
        self.set_timesteps(self.config["num_train_timesteps"])

    def add_index(self, t, schedule_timesteps):  # Heun's add_noise: index_for_timestep (last match
        return self.index_for_timestep(t, schedule_timesteps)  # in first-order state, else first)

    def index_for_timestep(self, timestep, schedule_timesteps=None):
        if schedule_timesteps is None:
            schedule_timesteps = self.timesteps
        indices = (schedule_timesteps == timestep).nonzero()
        if self.state_in_first_order:
            pos = -1
        else:
            pos = 0
        return indices[pos].item()

    def set_timesteps(self, num_inference_steps):
        c = self.config
        self.num_inference_steps = num_inference_steps
        num_train_timesteps = c["num_train_timesteps"]
        timesteps = np.linspace(0, num_train_timesteps - 1, num_inference_steps, dtype=float)[::-1].copy()
        sigmas = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        log_sigmas = np.log(sigmas)
        sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
        if c["use_karras_sigmas"]:
            sigmas = self._convert_to_karras(in_sigmas=sigmas, num_inference_steps=self.num_inference_steps)
            timesteps = np.array([self._sigma_to_t(sigma, log_sigmas) for sigma in sigmas])
        sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        sigmas = torch.from_numpy(sigmas)
        self.sigmas = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
        self.init_noise_sigma = self.sigmas.max()
        timesteps = torch.from_numpy(timesteps)
        timesteps = torch.cat([timesteps[:1], timesteps[1:].repeat_interleave(2)])
        self.timesteps = timesteps
        self.prev_derivative = None
        self.dt = None

    @property
    def state_in_first_order(self):
        return self.dt is None

    def step(self, model_output, timestep, sample, noise=None):
        c = self.config
        step_index = self.index_for_timestep(timestep)
        if self.state_in_first_order:
            sigma = self.sigmas[step_index]
            sigma_next = self.sigmas[step_index + 1]
        else:
            sigma = self.sigmas[step_index - 1]
            sigma_next = self.sigmas[step_index]
        gamma = 0
        sigma_hat = sigma * (gamma + 1)
        if c["prediction_type"] == "epsilon":
            sigma_input = sigma_hat if self.state_in_first_order else sigma_next
            pred_original_sample = sample - sigma_input * model_output
        elif c["prediction_type"] == "v_prediction":
            sigma_input = sigma_hat if self.state_in_first_order else sigma_next
            pred_original_sample = model_output * (-sigma_input / (sigma_input**2 + 1) ** 0.5) + (
                sample / (sigma_input**2 + 1)
            )
        if self.state_in_first_order:
            derivative = (sample - pred_original_sample) / sigma_hat
            dt = sigma_next - sigma_hat
            self.prev_derivative = derivative
            self.dt = dt
            self.sample = sample
        else:
            derivative = (sample - pred_original_sample) / sigma_next
            derivative = (self.prev_derivative + derivative) / 2
            dt = self.dt
            sample = self.sample
            self.prev_derivative = None
            self.dt = None
            self.sample = None
        prev_sample = sample + derivative * dt
        return prev_sample


class KDPM2(Heun):  # scheduling_k_dpm_2_discrete.py v0.17.0 (index_for_timestep: Heun's)
    defaults = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
                    trained_betas=None, prediction_type="epsilon")

    def set_timesteps(self, num_inference_steps):
        self.num_inference_steps = num_inference_steps
        num_train_timesteps = self.config["num_train_timesteps"]
        timesteps = np.linspace(0, num_train_timesteps - 1, num_inference_steps, dtype=float)[::-1].copy()
        sigmas = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        self.log_sigmas = torch.from_numpy(np.log(sigmas))
        sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
        sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        sigmas = torch.from_numpy(sigmas)
        sigmas_interpol = sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp()
        self.sigmas = torch.cat([sigmas[:1], sigmas[1:].repeat_interleave(2), sigmas[-1:]])
        self.sigmas_interpol = torch.cat(
            [sigmas_interpol[:1], sigmas_interpol[1:].repeat_interleave(2), sigmas_interpol[-1:]])
        self.init_noise_sigma = self.sigmas.max()
        timesteps = torch.from_numpy(timesteps)
        timesteps_interpol = self.sigma_to_t(sigmas_interpol).to(dtype=timesteps.dtype)
        interleaved_timesteps = torch.stack((timesteps_interpol[1:-1, None], timesteps[1:, None]), dim=-1).flatten()
        self.timesteps = torch.cat([timesteps[:1], interleaved_timesteps])
        self.sample = None

    def sigma_to_t(self, sigma):
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low = self.log_sigmas[low_idx]
        high = self.log_sigmas[high_idx]
        w = (low - log_sigma) / (low - high)
        w = w.clamp(0, 1)
        t = (1 - w) * low_idx + w * high_idx
        t = t.view(sigma.shape)
        return t

    @property
    def state_in_first_order(self):
        return self.sample is None

    def scale_model_input(self, sample, timestep):
        step_index = self.index_for_timestep(timestep)
        if self.state_in_first_order:
            sigma = self.sigmas[step_index]
        else:
            sigma = self.sigmas_interpol[step_index]
        sample = sample / ((sigma**2 + 1) ** 0.5)
        return sample

    def step(self, model_output, timestep, sample, noise=None):
        c = self.config
        step_index = self.index_for_timestep(timestep)
        if self.state_in_first_order:
            sigma = self.sigmas[step_index]
            sigma_interpol = self.sigmas_interpol[step_index + 1]
            sigma_next = self.sigmas[step_index + 1]
        else:
            sigma = self.sigmas[step_index - 1]
            sigma_interpol = self.sigmas_interpol[step_index]
            sigma_next = self.sigmas[step_index]
        gamma = 0
        sigma_hat = sigma * (gamma + 1)
        sigma_input = sigma_hat if self.state_in_first_order else sigma_interpol
        pred_original_sample = kdiff_x0(c["prediction_type"], sigma_input, model_output, sample)
        if self.state_in_first_order:
            derivative = (sample - pred_original_sample) / sigma_hat
            dt = sigma_interpol - sigma_hat
            self.sample = sample
        else:
            derivative = (sample - pred_original_sample) / sigma_interpol
            dt = sigma_next - sigma_hat
            sample = self.sample
            self.sample = None
        prev_sample = sample + derivative * dt
        return prev_sample


class KDPM2Ancestral(KDPM2):  # scheduling_k_dpm_2_ancestral_discrete.py v0.17.0
    ancestral = True

    def set_timesteps(self, num_inference_steps):
        self.num_inference_steps = num_inference_steps
        num_train_timesteps = self.config["num_train_timesteps"]
        timesteps = np.linspace(0, num_train_timesteps - 1, num_inference_steps, dtype=float)[::-1].copy()
        sigmas = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        self.log_sigmas = torch.from_numpy(np.log(sigmas))
        sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
        sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        sigmas = torch.from_numpy(sigmas)
        sigmas_next = sigmas.roll(-1)
        sigmas_next[-1] = 0.0
        sigmas_up = (sigmas_next**2 * (sigmas**2 - sigmas_next**2) / sigmas**2) ** 0.5
        sigmas_down = (sigmas_next**2 - sigmas_up**2) ** 0.5
        sigmas_down[-1] = 0.0
        sigmas_interpol = sigmas.log().lerp(sigmas_down.log(), 0.5).exp()
        sigmas_interpol[-2:] = 0.0
        self.sigmas = torch.cat([sigmas[:1], sigmas[1:].repeat_interleave(2), sigmas[-1:]])
        self.sigmas_interpol = torch.cat(
            [sigmas_interpol[:1], sigmas_interpol[1:].repeat_interleave(2), sigmas_interpol[-1:]])
        self.sigmas_up = torch.cat([sigmas_up[:1], sigmas_up[1:].repeat_interleave(2), sigmas_up[-1:]])
        self.sigmas_down = torch.cat([sigmas_down[:1], sigmas_down[1:].repeat_interleave(2), sigmas_down[-1:]])
        self.init_noise_sigma = self.sigmas.max()
        timesteps = torch.from_numpy(timesteps)
        timesteps_interpol = self.sigma_to_t(sigmas_interpol).to(dtype=timesteps.dtype)
        interleaved_timesteps = torch.stack((timesteps_interpol[:-2, None], timesteps[1:, None]), dim=-1).flatten()
        self.timesteps = torch.cat([timesteps[:1], interleaved_timesteps])
        self.sample = None

    def scale_model_input(self, sample, timestep):
        step_index = self.index_for_timestep(timestep)
        if self.state_in_first_order:
            sigma = self.sigmas[step_index]
        else:
            sigma = self.sigmas_interpol[step_index - 1]
        sample = sample / ((sigma**2 + 1) ** 0.5)
        return sample

    def step(self, model_output, timestep, sample, noise=None):
        c = self.config
        step_index = self.index_for_timestep(timestep)
        if self.state_in_first_order:
            sigma = self.sigmas[step_index]
            sigma_interpol = self.sigmas_interpol[step_index]
            sigma_up = self.sigmas_up[step_index]
            sigma_down = self.sigmas_down[step_index - 1]
        else:
            sigma = self.sigmas[step_index - 1]
            sigma_interpol = self.sigmas_interpol[step_index - 1]
            sigma_up = self.sigmas_up[step_index - 1]
            sigma_down = self.sigmas_down[step_index - 1]
        gamma = 0
        sigma_hat = sigma * (gamma + 1)
        sigma_input = sigma_hat if self.state_in_first_order else sigma_interpol
        pred_original_sample = kdiff_x0(c["prediction_type"], sigma_input, model_output, sample)
        if self.state_in_first_order:
            derivative = (sample - pred_original_sample) / sigma_hat
            dt = sigma_interpol - sigma_hat
            self.sample = sample
            self.dt = dt
            prev_sample = sample + derivative * dt
        else:
            derivative = (sample - pred_original_sample) / sigma_interpol
            dt = sigma_down - sigma_hat
            sample = self.sample
            self.sample = None
            prev_sample = sample + derivative * dt
            prev_sample = prev_sample + noise * sigma_up  # noise: randn_tensor in diffusers (every step), an input here
        return prev_sample


class UniPC:  # scheduling_unipc_multistep.py v0.17.0 (no thresholding, no solver_p)
    order = 1
    add_noise = add_noise_vp
    defaults = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    trained_betas=None, solver_order=2, prediction_type="epsilon", predict_x0=True,
                    solver_type="bh2", lower_order_final=True, disable_corrector=[])

    def __init__(self, cfg):
        self.config = c = vp_tables(self, cfg)
        if c["solver_type"] not in ["bh1", "bh2"]:
            if c["solver_type"] in ["midpoint", "heun", "logrho"]:
                c["solver_type"] = "bh1"
            else:
                raise NotImplementedError(c["solver_type"])
        self.predict_x0 = c["predict_x0"]
        self.disable_corrector = c["disable_corrector"]
        self.timestep_list = [None] * c["solver_order"]

    def set_timesteps(self, num_inference_steps):
        timesteps = (np.linspace(0, self.config["num_train_timesteps"] - 1, num_inference_steps + 1)
                     .round()[::-1][:-1].copy().astype(np.int64))
        _, unique_indices = np.unique(timesteps, return_index=True)
        timesteps = timesteps[np.sort(unique_indices)]
        self.timesteps = torch.from_numpy(timesteps)
        self.num_inference_steps = len(timesteps)
        self.model_outputs = [None] * self.config["solver_order"]
        self.lower_order_nums = 0
        self.last_sample = None

    def convert_model_output(self, model_output, timestep, sample):
        return convert_model_output(self, self.predict_x0, model_output, timestep, sample)

    def _bh_terms(self, t, s0, m0, order):
        # the part multistep_uni_p_bh_update and multistep_uni_c_bh_update share, line by line
        timestep_list = self.timestep_list
        model_output_list = self.model_outputs
        lambda_t, lambda_s0 = self.lambda_t[t], self.lambda_t[s0]
        h = lambda_t - lambda_s0
        rks = []
        D1s = []
        for i in range(1, order):
            si = timestep_list[-(i + 1)]
            mi = model_output_list[-(i + 1)]
            lambda_si = self.lambda_t[si]
            rk = (lambda_si - lambda_s0) / h
            rks.append(rk)
            D1s.append((mi - m0) / rk)
        rks.append(1.0)
        rks = torch.tensor(rks)
        R = []
        b = []
        hh = -h if self.predict_x0 else h
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        factorial_i = 1
        if self.config["solver_type"] == "bh1":
            B_h = hh
        elif self.config["solver_type"] == "bh2":
            B_h = torch.expm1(hh)
        for i in range(1, order + 1):
            R.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * factorial_i / B_h)
            factorial_i *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial_i
        R = torch.stack(R)
        b = torch.tensor(b)
        D1s = torch.stack(D1s, dim=1) if len(D1s) > 0 else None
        return D1s, R, b, h_phi_1, B_h

    def _x_t_(self, t, s0, x, m0, h_phi_1):
        alpha_t, alpha_s0 = self.alpha_t[t], self.alpha_t[s0]
        sigma_t, sigma_s0 = self.sigma_t[t], self.sigma_t[s0]
        if self.predict_x0:
            return sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0, alpha_t
        return alpha_t / alpha_s0 * x - sigma_t * h_phi_1 * m0, sigma_t

    def multistep_uni_p_bh_update(self, model_output, prev_timestep, sample, order):
        s0, t = self.timestep_list[-1], prev_timestep
        m0 = self.model_outputs[-1]
        x = sample
        D1s, R, b, h_phi_1, B_h = self._bh_terms(t, s0, m0, order)
        if D1s is not None:
            if order == 2:
                rhos_p = torch.tensor([0.5], dtype=x.dtype)
            else:
                rhos_p = torch.linalg.solve(R[:-1, :-1], b[:-1])
        x_t_, scale = self._x_t_(t, s0, x, m0, h_phi_1)  # scale: alpha_t (predict_x0) or sigma_t
        pred_res = torch.einsum("k,bkchw->bchw", rhos_p, D1s) if D1s is not None else 0
        x_t = x_t_ - scale * B_h * pred_res
        return x_t.to(x.dtype)

    def multistep_uni_c_bh_update(self, this_model_output, this_timestep, last_sample, this_sample, order):
        s0, t = self.timestep_list[-1], this_timestep
        m0 = self.model_outputs[-1]
        x = last_sample
        model_t = this_model_output
        D1s, R, b, h_phi_1, B_h = self._bh_terms(t, s0, m0, order)
        if order == 1:
            rhos_c = torch.tensor([0.5], dtype=x.dtype)
        else:
            rhos_c = torch.linalg.solve(R, b)
        x_t_, scale = self._x_t_(t, s0, x, m0, h_phi_1)
        corr_res = torch.einsum("k,bkchw->bchw", rhos_c[:-1], D1s) if D1s is not None else 0
        D1_t = model_t - m0
        x_t = x_t_ - scale * B_h * (corr_res + rhos_c[-1] * D1_t)
        return x_t.to(x.dtype)

    def step(self, model_output, timestep, sample):
        step_index = (self.timesteps == timestep).nonzero()
        step_index = len(self.timesteps) - 1 if len(step_index) == 0 else step_index.item()
        use_corrector = step_index > 0 and step_index - 1 not in self.disable_corrector and self.last_sample is not None
        model_output_convert = self.convert_model_output(model_output, timestep, sample)
        if use_corrector:
            sample = self.multistep_uni_c_bh_update(this_model_output=model_output_convert, this_timestep=timestep,
                                                    last_sample=self.last_sample, this_sample=sample,
                                                    order=self.this_order)
        prev_timestep = 0 if step_index == len(self.timesteps) - 1 else self.timesteps[step_index + 1]
        for i in range(self.config["solver_order"] - 1):
            self.model_outputs[i] = self.model_outputs[i + 1]
            self.timestep_list[i] = self.timestep_list[i + 1]
        self.model_outputs[-1] = model_output_convert
        self.timestep_list[-1] = timestep
        if self.config["lower_order_final"]:
            this_order = min(self.config["solver_order"], len(self.timesteps) - step_index)
        else:
            this_order = self.config["solver_order"]
        self.this_order = min(this_order, self.lower_order_nums + 1)
        assert self.this_order > 0
        self.last_sample = sample
        prev_sample = self.multistep_uni_p_bh_update(model_output=model_output, prev_timestep=prev_timestep,
                                                     sample=sample, order=self.this_order)
        if self.lower_order_nums < self.config["solver_order"]:
            self.lower_order_nums += 1
        return prev_sample


def write_case(d, stage, params, atol, rtol, cls_name, note, T):
    case = {"stage": stage, "params": params, "atol": atol, "rtol": rtol, "source": SOURCE.format(cls=cls_name)}
    if note:
        case["note"] = note
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    print(d, T, "timesteps")


def gen_euler(name, cls, params, shape, seed, atol=5e-5, rtol=1e-5, note=""):
    """A k-diffusion scheduler case (Euler, Euler ancestral, Heun, LMS, KDPM2, KDPM2 ancestral): the pipelines' loop (latents * init_noise_sigma is the
    caller's; per step scale_model_input, then step), recording the model inputs too."""
    stage = {Euler: "scheduler.euler", EulerAncestral: "scheduler.euler_ancestral", Heun: "scheduler.heun",
             LMS: "scheduler.lms", KDPM2: "scheduler.kdpm2", KDPM2Ancestral: "scheduler.kdpm2_ancestral"}[cls]
    g = torch.Generator().manual_seed(seed)
    s = cls(params)
    s.set_timesteps(params["num_inference_steps"])
    T = len(s.timesteps)
    x0 = torch.randn(shape, generator=g, dtype=torch.float32) * s.init_noise_sigma
    mo = torch.randn((T,) + tuple(shape), generator=g, dtype=torch.float32)
    vn = torch.randn((T,) + tuple(shape), generator=g, dtype=torch.float32) if cls.ancestral else None
    if params.get("prediction_type") == "sample":
        mo = mo * 0.8
    x, out, ins = x0.clone(), [], []
    for k, t in enumerate(s.timesteps):
        ins.append(s.scale_model_input(x, t).clone())
        x = s.step(mo[k], t, x, noise=vn[k] if cls.ancestral else None)
        out.append(x.clone())
    d = os.path.join(ROOT, "vision", stage, name)
    os.makedirs(d, exist_ok=True)
    inputs = {"sample0": x0, "model_outputs": mo}
    if cls.ancestral:
        inputs["variance_noise"] = vn
    write_st(os.path.join(d, "inputs.safetensors"), inputs)
    write_st(os.path.join(d, "expected.safetensors"), {"timesteps": s.timesteps.numpy().astype(np.float64),
                                                       "init_noise_sigma": s.init_noise_sigma.reshape(1),
                                                       "model_inputs": torch.stack(ins),
                                                       "samples": torch.stack(out),
                                                       "alphas_cumprod": s.alphas_cumprod}, f64=("timesteps",))
    write_case(d, stage, params, atol, rtol, {Euler: "EulerDiscreteScheduler", Heun: "HeunDiscreteScheduler",
                                              EulerAncestral: "EulerAncestralDiscreteScheduler",
                                              LMS: "LMSDiscreteScheduler", KDPM2: "KDPM2DiscreteScheduler",
                                              KDPM2Ancestral: "KDPM2AncestralDiscreteScheduler"}[cls], note, T)


SD15 = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)


def gen(family, stage, name, cls, params, shape, seed, noise=False, atol=5e-5, rtol=1e-5, note=""):
    g = torch.Generator().manual_seed(seed)
    s = cls(params)
    s.set_timesteps(params["num_inference_steps"])
    T = len(s.timesteps)
    x0 = torch.randn(shape, generator=g, dtype=torch.float32)
    mo = torch.randn((T,) + tuple(shape), generator=g, dtype=torch.float32)
    vn = torch.randn((T,) + tuple(shape), generator=g, dtype=torch.float32) if noise else None
    if params.get("prediction_type") == "sample":
        mo = mo * 0.8  # x0 predictions of a plausible size
    x, out = x0.clone(), []
    for k, t in enumerate(s.timesteps):
        t = int(t)
        if cls is DDIM:
            x = s.step(mo[k], t, x, eta=params.get("eta", 0.0),
                       use_clipped_model_output=params.get("use_clipped_model_output", False),
                       variance_noise=vn[k] if noise else None)
        elif cls is DPM:
            x = s.step(mo[k], t, x, noise=vn[k] if noise else None)
        elif cls is DDPM:
            x = s.step(mo[k], t, x, variance_noise=vn[k])
        else:
            x = s.step(mo[k], t, x)
        out.append(x.clone())
    d = os.path.join(ROOT, family, stage, name)
    os.makedirs(d, exist_ok=True)
    inputs = {"sample0": x0, "model_outputs": mo}
    if noise:
        inputs["variance_noise"] = vn
    write_st(os.path.join(d, "inputs.safetensors"), inputs)
    write_st(os.path.join(d, "expected.safetensors"), {"timesteps": s.timesteps.to(torch.int64),
                                                       "samples": torch.stack(out),
                                                       "alphas_cumprod": s.alphas_cumprod})
    write_case(d, stage, params, atol, rtol,
               {DDIM: "DDIMScheduler", PNDM: "PNDMScheduler", DPM: "DPMSolverMultistepScheduler",
                UniPC: "UniPCMultistepScheduler", DEIS: "DEISMultistepScheduler", DDPM: "DDPMScheduler",
                DPMSingle: "DPMSolverSinglestepScheduler"}[cls], note, T)


def main_euler():
    img = (1, 4, 6, 6)
    gen_euler("sd15_n12", Euler, dict(num_inference_steps=12, prediction_type="epsilon", **SD15), img, 21,
              note="SD 1.5's betas, linear sigma interpolation; fractional timesteps (999, 908.18..., ...)")
    gen_euler("karras_n9", Euler, dict(num_inference_steps=9, use_karras_sigmas=True, **SD15), img, 22, atol=1e-4,
              note="use_karras_sigmas: rho-7 sigmas, timesteps mapped back through log-sigma interpolation")
    gen_euler("vpred_linear_n7", Euler, dict(num_inference_steps=7, prediction_type="v_prediction",
                                             beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                                             num_train_timesteps=1000), img, 23)
    gen_euler("sample_cosine_n5", Euler, dict(num_inference_steps=5, prediction_type="sample",
                                              beta_schedule="squaredcos_cap_v2", num_train_timesteps=1000), img, 24,
              atol=1e-4)
    gen_euler("one_step", Euler, dict(num_inference_steps=1, **SD15), img, 25,
              note="one inference step: np.linspace(0, 999, 1) is [0], the smallest sigma")
    gen_euler("sd15_n10", EulerAncestral, dict(num_inference_steps=10, **SD15), img, 26,
              note="the noise diffusers would draw each step is the input variance_noise [T, S...]")
    gen_euler("sd15_n8", Heun, dict(num_inference_steps=8, **SD15), img, 28,
              note="second order: 15 steps, each timestep after the first taken twice")
    gen_euler("karras_vpred_n5", Heun, dict(num_inference_steps=5, use_karras_sigmas=True,
                                            prediction_type="v_prediction", **SD15), img, 29, atol=1e-4)
    gen_euler("defaults_n3", Heun, dict(num_inference_steps=3), img, 30,
              note="HeunDiscreteScheduler's own defaults: beta 0.00085..0.012, linear")
    gen_euler("vpred_n6", EulerAncestral, dict(num_inference_steps=6, prediction_type="v_prediction", **SD15),
              (1, 4, 2, 4, 4), 27)


def main():
    img = (1, 4, 6, 6)
    vid = (1, 4, 2, 4, 4)
    ddim_sd = dict(SD15, steps_offset=1, set_alpha_to_one=False, clip_sample=False, prediction_type="epsilon")
    gen("vision", "scheduler.ddim", "eta05_noise", DDIM, dict(num_inference_steps=7, eta=0.5, **ddim_sd), img, 1,
        noise=True, note="eta > 0: the noise diffusers would draw is the input variance_noise [T, S...]")
    gen("vision", "scheduler.ddim", "vpred_clip_trailing", DDIM,
        dict(num_inference_steps=9, eta=0.0, use_clipped_model_output=True, beta_start=0.0001, beta_end=0.02,
             beta_schedule="linear", num_train_timesteps=1000, clip_sample=True, clip_sample_range=1.5,
             set_alpha_to_one=True, prediction_type="v_prediction", timestep_spacing="trailing"), img, 2,
        note="v_prediction, clip_sample 1.5 with use_clipped_model_output, trailing spacing, linear betas")
    gen("vision", "scheduler.ddim", "sample_cosine_zerosnr", DDIM,
        dict(num_inference_steps=10, eta=1.0, num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
             rescale_betas_zero_snr=True, clip_sample=False, steps_offset=1, set_alpha_to_one=False,
             prediction_type="sample"), img, 3, noise=True,
        note="prediction_type sample, cosine betas rescaled to zero terminal SNR, eta 1 with variance_noise")
    gen("vision", "scheduler.ddim", "audioldm_linear_n12", DDIM,
        dict(num_inference_steps=12, eta=0.0, beta_start=0.0015, beta_end=0.0195, beta_schedule="linear",
             num_train_timesteps=1000, steps_offset=1, set_alpha_to_one=False, clip_sample=False,
             prediction_type="epsilon"), (1, 8, 4, 4), 4, note="AudioLDM's beta range with a linear schedule")
    gen("vision", "scheduler.pndm", "prk_n8", PNDM,
        dict(num_inference_steps=8, skip_prk_steps=False, steps_offset=1, set_alpha_to_one=False, **SD15), img, 5,
        note="PRK warm-up (12 Runge-Kutta sub-steps) then PLMS")
    gen("vision", "scheduler.pndm", "vpred_plms_n7", PNDM,
        dict(num_inference_steps=7, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=True,
             prediction_type="v_prediction", **SD15), img, 6)
    dpm_base = dict(SD15, steps_offset=1, set_alpha_to_one=False, clip_sample=False, skip_prk_steps=True)
    gen("video", "scheduler.dpmsolver", "order3_n12", DPM,
        dict(num_inference_steps=12, solver_order=3, prediction_type="epsilon", **dpm_base), vid, 7, atol=2e-4,
        note="solver_order 3, dpmsolver++ midpoint, lower_order_final (12 < 15 steps)")
    gen("video", "scheduler.dpmsolver", "dpmsolver_heun_vpred_n20", DPM,
        dict(num_inference_steps=20, algorithm_type="dpmsolver", solver_type="heun", prediction_type="v_prediction",
             **dpm_base), vid, 8, atol=2e-4, note="algorithm dpmsolver, heun, v_prediction, 20 steps (no lower-order final)")
    gen("video", "scheduler.dpmsolver", "dpmsolver_order3_sample_n8", DPM,
        dict(num_inference_steps=8, algorithm_type="dpmsolver", solver_order=3, prediction_type="sample",
             **dpm_base), vid, 9, atol=2e-4)
    gen("video", "scheduler.dpmsolver", "sde_pp_heun_noise_n6", DPM,
        dict(num_inference_steps=6, algorithm_type="sde-dpmsolver++", solver_type="heun", prediction_type="epsilon",
             **dpm_base), vid, 10, noise=True, atol=2e-4,
        note="sde-dpmsolver++: the noise diffusers would draw each step is the input variance_noise [T, S...]")
    gen("video", "scheduler.dpmsolver", "karras_n10", DPM,
        dict(num_inference_steps=10, use_karras_sigmas=True, prediction_type="epsilon", **dpm_base), vid, 12,
        atol=2e-4, note="use_karras_sigmas: rho-7 sigmas over the training range, mapped back to integer timesteps")
    gen("video", "scheduler.dpmsolver", "order1_linear_n4", DPM,
        dict(num_inference_steps=4, solver_order=1, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
             num_train_timesteps=1000), vid, 11, atol=2e-4)


def main_unipc():
    img = (1, 4, 6, 6)
    st = "scheduler.unipc"
    gen("vision", st, "sd15_n20", UniPC, dict(num_inference_steps=20, **SD15), img, 41,
        note="UniPCMultistepScheduler's defaults (solver_order 2, bh2, predict_x0) on SD 1.5's betas")
    gen("vision", st, "order3_bh1_n10", UniPC, dict(num_inference_steps=10, solver_order=3, solver_type="bh1", **SD15),
        img, 42, atol=1e-4, note="solver_order 3: 2x2 and 3x3 torch.linalg.solve for the rhos; bh1")
    gen("vision", st, "noise_pred_vpred_n8", UniPC,
        dict(num_inference_steps=8, predict_x0=False, prediction_type="v_prediction", beta_start=0.0001, beta_end=0.02,
             beta_schedule="linear", num_train_timesteps=1000), img, 43,
        note="predict_x0 false (the history holds noise predictions), v_prediction, linear betas")
    gen("vision", st, "sample_order3_cosine_n12", UniPC,
        dict(num_inference_steps=12, solver_order=3, prediction_type="sample", lower_order_final=False,
             beta_schedule="squaredcos_cap_v2", num_train_timesteps=1000), img, 44, atol=1e-4,
        note="prediction_type sample, cosine betas, order 3 to the end (lower_order_final false)")
    gen("vision", st, "disable_corrector_n6", UniPC,
        dict(num_inference_steps=6, disable_corrector=[0, 2], solver_type="midpoint", **SD15), img, 45,
        note="no UniC after steps 0 and 2; solver_type midpoint, which UniPC takes as bh1")
    gen("vision", st, "order1_eps_n5", UniPC,
        dict(num_inference_steps=5, solver_order=1, predict_x0=False, **SD15), img, 46,
        note="solver_order 1 with noise predictions: UniC at order 1 (rho 0.5)")
    gen("vision", st, "order3_noise_pred_n7", UniPC,
        dict(num_inference_steps=7, solver_order=3, predict_x0=False, **SD15), img, 47, atol=1e-4)


def main_lms():
    img = (1, 4, 6, 6)
    gen_euler("sd15_n12", LMS, dict(num_inference_steps=12, **SD15), img, 51,
              note="order 4 from the fourth step on; coefficients by scipy.integrate.quad of float32 Lagrange "
                   "polynomials")
    gen_euler("karras_vpred_n8", LMS, dict(num_inference_steps=8, use_karras_sigmas=True,
                                           prediction_type="v_prediction", **SD15), img, 52, atol=1e-4)
    gen_euler("sample_linear_n5", LMS, dict(num_inference_steps=5, prediction_type="sample", beta_start=0.0001,
                                            beta_end=0.02, beta_schedule="linear", num_train_timesteps=1000),
              img, 53)


def main_kdpm2():
    img = (1, 4, 6, 6)
    gen_euler("sd15_n8", KDPM2, dict(num_inference_steps=8, **SD15), img, 61,
              note="15 steps: first-order ones to the log-midpoint sigmas (fractional timesteps from KDPM2's float32 "
                   "sigma_to_t), second-order ones from the kept sample")
    gen_euler("vpred_linear_n5", KDPM2, dict(num_inference_steps=5, prediction_type="v_prediction", beta_start=0.0001,
                                             beta_end=0.02, beta_schedule="linear", num_train_timesteps=1000), img, 62)
    gen_euler("defaults_one_step", KDPM2, dict(num_inference_steps=1), img, 63,
              note="KDPM2DiscreteScheduler's own defaults (beta 0.00085..0.012, linear); one step to sigma 0")
    gen_euler("sd15_n10", KDPM2Ancestral, dict(num_inference_steps=10, **SD15), img, 64,
              note="the noise diffusers would draw each step is the input variance_noise [T, S...] (read on the "
                   "second-order steps)")
    gen_euler("vpred_linear_n6", KDPM2Ancestral, dict(num_inference_steps=6, prediction_type="v_prediction",
                                                      beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                                                      num_train_timesteps=1000), (1, 4, 2, 4, 4), 65,
              note="v_prediction, linear betas, video-shaped latents")


def main_deis():
    img = (1, 4, 6, 6)
    st = "scheduler.deis"
    gen("vision", st, "sd15_n20", DEIS, dict(num_inference_steps=20, **SD15), img, 71,
        note="DEISMultistepScheduler's defaults (solver_order 2, logrho) on SD 1.5's betas; coefficients from "
             "numpy float32 logs")
    gen("vision", st, "order3_n10", DEIS, dict(num_inference_steps=10, solver_order=3, **SD15), img, 72, atol=1e-4,
        note="solver_order 3, lower_order_final (10 < 15 steps)")
    gen("vision", st, "vpred_linear_n8", DEIS,
        dict(num_inference_steps=8, prediction_type="v_prediction", algorithm_type="dpmsolver++",
             solver_type="midpoint", beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
             num_train_timesteps=1000), img, 73,
        note="v_prediction; DPM-Solver's algorithm and solver names, which DEIS takes as deis / logrho")
    gen("vision", st, "sample_order3_cosine_n16", DEIS,
        dict(num_inference_steps=16, solver_order=3, prediction_type="sample", beta_schedule="squaredcos_cap_v2",
             num_train_timesteps=1000), (1, 4, 2, 4, 4), 74, atol=1e-4,
        note="prediction_type sample, cosine betas, order 3 to the end (16 >= 15 steps: no lower-order final)")
    gen("vision", st, "order1_n5", DEIS, dict(num_inference_steps=5, solver_order=1, **SD15), img, 75)


def main_ddpm():
    img = (1, 4, 6, 6)
    st = "scheduler.ddpm"
    gen("vision", st, "defaults_n10", DDPM, dict(num_inference_steps=10), img, 81, noise=True,
        note="DDPMScheduler's defaults (fixed_small variance, clip_sample 1.0, linear betas); the noise diffusers "
             "would draw at every step but the last is the input variance_noise [T, S...]")
    gen("vision", st, "sd15_fixed_large_n12", DDPM,
        dict(num_inference_steps=12, variance_type="fixed_large", clip_sample=False, **SD15), img, 82, noise=True)
    gen("vision", st, "vpred_small_log_n8", DDPM,
        dict(num_inference_steps=8, variance_type="fixed_small_log", prediction_type="v_prediction",
             clip_sample_range=2.0, beta_schedule="squaredcos_cap_v2", num_train_timesteps=1000), img, 83,
        noise=True, atol=1e-4)
    gen("vision", st, "sample_sigmoid_n7", DDPM,
        dict(num_inference_steps=7, prediction_type="sample", beta_schedule="sigmoid", beta_start=0.0001,
             beta_end=0.02, num_train_timesteps=1000), (1, 4, 2, 4, 4), 84, noise=True,
        note="prediction_type sample on the sigmoid beta schedule")


def main_dpm_single():
    img = (1, 4, 6, 6)
    st = "scheduler.dpmsolver_singlestep"
    gen("vision", st, "sd15_n10", DPMSingle, dict(num_inference_steps=10, **SD15), img, 91,
        note="DPMSolverSinglestepScheduler's defaults (order 2, dpmsolver++, midpoint): orders [1, 2] * 5, each "
             "second-order step from the sample its group started at")
    gen("vision", st, "order3_heun_n11", DPMSingle, dict(num_inference_steps=11, solver_order=3, solver_type="heun",
                                                          **SD15), img, 92, atol=1e-4,
        note="orders [1, 2, 3] * 3 + [1, 2]")
    gen("vision", st, "dpmsolver_order3_vpred_n9", DPMSingle,
        dict(num_inference_steps=9, solver_order=3, algorithm_type="dpmsolver", prediction_type="v_prediction",
             lower_order_final=False, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
             num_train_timesteps=1000), img, 93, atol=1e-4,
        note="algorithm dpmsolver, v_prediction, lower_order_final false: [1, 2, 3] * 3 to the end")
    gen("vision", st, "karras_heun_n8", DPMSingle,
        dict(num_inference_steps=8, use_karras_sigmas=True, solver_type="heun", algorithm_type="dpmsolver",
             **SD15), (1, 4, 2, 4, 4), 94, atol=1e-4)
    gen("vision", st, "sample_order3_forced_n7", DPMSingle,
        dict(num_inference_steps=7, solver_order=3, prediction_type="sample", lower_order_final=False,
             solver_type="logrho", beta_schedule="squaredcos_cap_v2", num_train_timesteps=1000), img, 95, atol=1e-4,
        note="7 steps are no multiple of 3: set_timesteps turns lower_order_final on; logrho is taken as midpoint")


if __name__ == "__main__":
    if sys.argv[1:] == ["dpm_single"]:
        main_dpm_single()
    elif sys.argv[1:] == ["ddpm"]:
        main_ddpm()
    elif sys.argv[1:] == ["deis"]:
        main_deis()
    elif sys.argv[1:] == ["kdpm2"]:
        main_kdpm2()
    elif sys.argv[1:] == ["euler"]:
        main_euler()
    elif sys.argv[1:] == ["unipc"]:
        main_unipc()
    elif sys.argv[1:] == ["lms"]:
        main_lms()
    else:
        main()
        main_euler()
        main_unipc()
        main_lms()
        main_kdpm2()
        main_deis()
        main_ddpm()
        main_dpm_single()
