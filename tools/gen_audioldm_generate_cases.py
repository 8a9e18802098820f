#!/usr/bin/python3
"""gen_audioldm_generate_cases.py — our own golden cases for the whole AudioLDM pipeline (stage
"audioldm.generate") at sizes the shared set does not show, and the composite models they run on.

The expected outputs come from a PORT of NExT-GPT's NExT-GPT-Lagacy/code/model/custom_ad.py
(NExT-GPT/NExT-GPT@60d618b) AudioLDMPipeline.__call__, the code NExT-GPT runs, written line by line
below for the arguments NExT-GPT passes (prompt_embeds, negative_prompt_embeds, latents,
guidance_scale, num_inference_steps, audio_length_in_s; output_type "pt"), on the project's torch
ports of its modules, imported, not copied (diffusers and transformers are not installed here):
tools/gen_unet_cases.py UNet (diffusers v0.17.0 UNet2DConditionModel, AudioLDM's class embedding),
tools/gen_sched_cases.py DDIM (scheduling_ddim.py v0.17.0), tools/gen_decoder_cases.py VaeDecoder
(AutoencoderKL.decode) and HifiGan (transformers 4.29 SpeechT5HifiGan), with that file's
stage_audioldm_vae_decode (= decode_latents) and stage_vocoder (= mel_spectrogram_to_waveform).
The port, as custom_ad.py does it:
  0. vocoder_upsample_factor = np.prod(vocoder upsample_rates) / vocoder sampling_rate (numpy
     float64); height = int(audio_length_in_s / factor) (a float64 quotient, truncated: 0.35 / 0.002
     = 174.99999999999997 -> 174); original_waveform_length = int(audio_length_in_s * vocoder
     sampling_rate); height rounded up to a multiple of vae_scale_factor = 2^(len(vae
     block_out_channels) - 1) when it is not one.
  1. check_inputs: audio_length_in_s >= factor * vae_scale_factor, model_in_dim % vae_scale_factor
     == 0, prompt_embeds and negative_prompt_embeds of one shape (ValueError otherwise).
  2-3. do_classifier_free_guidance = guidance_scale > 1; _encode_prompt with embeddings given: the
     embeddings as they are (repeat(1, 1)), cat([negative, prompt]) only with guidance.
  4-5. DDIM set_timesteps(num_inference_steps); latents (the case input, shape [B, unet in_channels,
     height / scale, model_in_dim / scale]) * init_noise_sigma (1.0).
  7. per timestep t: cat([latents] * 2) with guidance (scale_model_input: DDIM's is the identity),
     UNet(x, t, encoder_hidden_states=None, class_labels=embeddings), chunk(2) and u + g (c - u) with
     guidance; DDIM step(eta) (eta > 0 draws noise from the generator: not a case input, refused).
  8. mel = decode_latents (vae.decode(latents / vae.config.scaling_factor)); waveform =
     vocoder(mel.squeeze(1)).float()[:, :original_waveform_length] — a slice: when the vocoder gives
     fewer samples than original_waveform_length, upstream returns all it has.
Outputs: "waveform" F32 [B, min(original_waveform_length, vocoder samples)] and "mel" F32 [B, 1,
height, model_in_dim] (the decode_latents result inside the call), as in the shared cases.

Before anything is written, the port must reproduce every shared audioldm.generate case
(../shared/golden/audio/audioldm.generate, model audioldm-a, produced by custom_ad.py itself on
diffusers 0.17.0) within a quarter of its atol (5e-5), waveform and mel: it does within 4.1e-6
(mel; waveform 6.0e-8); the same port in float64 is 2.5e-6 from them and the port's own
|fp32 - fp64| is 3.6e-6, i.e. the rest is float32 rounding (upstream's and the port's), not a
difference in the algorithm.

Models (composites of the project's other-size models: relative symlinks, no weights copied; each
has its own model_index.json and scheduler/scheduler_config.json, audioldm-b's DDIM config):
  tests/golden/models/audioldm-b-pipe/         unet -> ../audioldm-b/unet (4 levels [12, 24, 36, 48],
                                               class dim 40), vae -> ../audioldm-b-dec/vae ([16, 24,
                                               48]: scale 4, latent 8, scaling_factor 1.1342578530311584),
                                               vocoder -> ../audioldm-b-dec/vocoder (64 mels, rates
                                               [4, 4, 2]: 32 samples a frame, 16 kHz: hop 0.002 s)
  tests/golden/models/audioldm-b-pipe-cvoc/    the same unet and vae, vocoder -> ../audioldm-c-voc/vocoder
                                               (rates [5, 4, 2], kernels [16, 8, 5]: 40 T + 9 samples,
                                               normalize_before, 16 kHz: hop 0.0025 s)
  tests/golden/models/audioldm-b-pipe-24k/     the same unet and vae; vocoder/ is a folder: config.json =
                                               audioldm-b-dec's with sampling_rate 24000 (a config value
                                               AudioLDMPipeline reads for both the height factor, hop
                                               32/24000 s, and the crop length; the weights do not depend
                                               on it), model.safetensors -> ../../audioldm-b-dec/vocoder/
                                               model.safetensors
The UNet's in/out channels are checked against the VAE's latent_channels and the vocoder's
model_in_dim against the VAE scale. Inputs: latents N(0, 1), prompt_embeds N(0, 1.2^2) (NExT-GPT's
projector output, not normalised), negative_prompt_embeds a random unit vector (a normalised CLAP
embedding), F32, fixed seed. Tolerance: the same code in float64 (scheduler coefficients as the
scheduler computes them, float32), atol = max|fp32 - fp64| over waveform and mel x 16 rounded up to
1/2/5 x 10^k, at least the shared cases' 5e-5; rtol 1e-3 as the shared cases.

Cases (tests/golden/audio/audioldm.generate/<model>_ddim_<steps>steps_g<guidance>[_b2]_<seconds>s), 3-5
DDIM steps, eta 0, 0.3-0.47 s: guidance 7.5, 2.5 and 1.0 (no guidance); heights 174 -> 176, 225 -> 228,
155 -> 156, 150 -> 152 (batch 2), 122 -> 124 (audioldm-c-voc's 40 T + 9 samples), 262 -> 264 (24 kHz:
crop int(0.35 * 24000) = 8400, not int(0.35 * 16000)), each cropped; and 0.41 s: height 204 (a multiple
of 4, from the truncated 204.99999999999997), whose 6528 vocoder samples are fewer than int(0.41 *
16000) = 6560, so upstream's slice returns 6528.

Run with Debian's python3 (torch 1.13, numpy):   /usr/bin/python3 tools/gen_audioldm_generate_cases.py
Tests never run this script; it rewrites the same bytes each time (fixed seeds, one thread).
"""
import json
import os
import shutil

import numpy as np
import torch

from gen_unet_cases import UNet  # noqa: E402 (also puts ../shared/golden on sys.path)
from gen_decoder_cases import HifiGan, VaeDecoder, load_ports, stage_audioldm_vae_decode, stage_vocoder  # noqa: E402
from gen_sched_cases import DDIM  # noqa: E402
from golden_st import dump_json, link_component, round_tol  # noqa: E402
from check import load_safetensors, save_safetensors  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "golden")
OUT = os.path.join(REPO, "tests", "golden")
MODELS = os.path.join(OUT, "models")
STAGE = "audioldm.generate"
SHARED_ATOL, RTOL = 5e-5, 1e-3
SOURCE = ("tools/gen_audioldm_generate_cases.py: torch " + torch.__version__ + " float32 CPU port of "
          "NExT-GPT/NExT-GPT@60d618b NExT-GPT-Lagacy/code/model/custom_ad.py AudioLDMPipeline.__call__(prompt_embeds, "
          "negative_prompt_embeds, latents, guidance_scale, num_inference_steps, audio_length_in_s, "
          "output_type='pt').audios on the ports of huggingface/diffusers v0.17.0 UNet2DConditionModel, "
          "DDIMScheduler, AutoencoderKL.decode and transformers 4.29 SpeechT5HifiGan (tools/gen_unet_cases.py, "
          "gen_sched_cases.py, gen_decoder_cases.py), checked against every shared audioldm.generate case; mel = the "
          "decode_latents result inside the call; NOT diffusers itself")


class AudioLDMPipeline:
    """custom_ad.AudioLDMPipeline on a model folder (unet/, vae/, vocoder/, scheduler/), in float32 (the
    case) or float64 (its tolerance)."""

    def __init__(self, model_dir, dtype=torch.float32):
        self.dtype = dtype
        self.unet = UNet(os.path.join(model_dir, "unet"), dtype)
        vae32, vae64, self.scaling_factor = load_ports(model_dir, "vae", VaeDecoder)
        voc32, voc64, _ = load_ports(model_dir, "vocoder", HifiGan)
        self.vae, self.vocoder = (vae32, voc32) if dtype == torch.float32 else (vae64, voc64)
        self.vae_config = self.vae.cfg
        self.vocoder_config = self.vocoder.c
        sched = json.load(open(os.path.join(model_dir, "scheduler", "scheduler_config.json")))
        assert sched["_class_name"] == "DDIMScheduler", sched["_class_name"]
        self.scheduler = DDIM(sched)
        self.scheduler.init_noise_sigma = 1.0  # DDIMScheduler.__init__
        # __init__
        self.vae_scale_factor = 2 ** (len(self.vae_config["block_out_channels"]) - 1)
        # the components must fit together (upstream would fail inside a conv otherwise)
        assert self.unet.cfg["in_channels"] == self.unet.cfg["out_channels"] == self.vae_config["latent_channels"]

    def check_inputs(self, audio_length_in_s, vocoder_upsample_factor, prompt_embeds, negative_prompt_embeds):
        min_audio_length_in_s = vocoder_upsample_factor * self.vae_scale_factor
        if audio_length_in_s < min_audio_length_in_s:
            raise ValueError("`audio_length_in_s` has to be a positive value greater than or equal to %s, but is %s."
                             % (min_audio_length_in_s, audio_length_in_s))
        if self.vocoder_config["model_in_dim"] % self.vae_scale_factor != 0:
            raise ValueError("model_in_dim %d not divisible by the VAE scale factor %d"
                             % (self.vocoder_config["model_in_dim"], self.vae_scale_factor))
        if prompt_embeds is None:
            raise ValueError("Provide either `prompt` or `prompt_embeds`.")
        if negative_prompt_embeds is not None and prompt_embeds.shape != negative_prompt_embeds.shape:
            raise ValueError("`prompt_embeds` and `negative_prompt_embeds` must have the same shape")

    def _encode_prompt(self, num_waveforms_per_prompt, do_classifier_free_guidance, prompt_embeds,
                       negative_prompt_embeds):
        batch_size = prompt_embeds.shape[0]
        prompt_embeds = prompt_embeds.to(dtype=self.dtype)  # text_encoder.dtype
        bs_embed, seq_len = prompt_embeds.shape
        prompt_embeds = prompt_embeds.repeat(1, num_waveforms_per_prompt)
        prompt_embeds = prompt_embeds.view(bs_embed * num_waveforms_per_prompt, seq_len)
        if do_classifier_free_guidance:
            assert negative_prompt_embeds is not None  # else upstream runs CLAP on "" (not this stage)
            seq_len = negative_prompt_embeds.shape[1]
            negative_prompt_embeds = negative_prompt_embeds.to(dtype=self.dtype)
            negative_prompt_embeds = negative_prompt_embeds.repeat(1, num_waveforms_per_prompt)
            negative_prompt_embeds = negative_prompt_embeds.view(batch_size * num_waveforms_per_prompt, seq_len)
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
        return prompt_embeds

    def prepare_latents(self, batch_size, num_channels_latents, height, latents):
        shape = (batch_size, num_channels_latents, height // self.vae_scale_factor,
                 self.vocoder_config["model_in_dim"] // self.vae_scale_factor)
        # upstream takes given latents as they are; a case's must have the shape it would draw
        assert tuple(latents.shape) == shape, (tuple(latents.shape), shape)
        latents = latents.to(self.dtype)
        return latents * self.scheduler.init_noise_sigma

    def decode_latents(self, latents):  # 1 / scaling_factor * latents; vae.decode(latents).sample
        return stage_audioldm_vae_decode(self.vae, self.scaling_factor, latents)["mel"]

    def mel_spectrogram_to_waveform(self, mel_spectrogram):  # squeeze(1), vocoder, .float() (kept f64 in f64)
        return stage_vocoder(self.vocoder, None, mel_spectrogram)["waveform"]

    def __call__(self, audio_length_in_s=None, num_inference_steps=10, guidance_scale=2.5, num_waveforms_per_prompt=1,
                 eta=0.0, latents=None, prompt_embeds=None, negative_prompt_embeds=None):
        """-> (audio, mel_spectrogram, info); audio as custom_ad returns it with output_type "pt"."""
        vc = self.vocoder_config
        # 0. Convert audio input length from seconds to spectrogram height
        vocoder_upsample_factor = np.prod(vc["upsample_rates"]) / vc["sampling_rate"]
        if audio_length_in_s is None:
            audio_length_in_s = self.unet.cfg["sample_size"] * self.vae_scale_factor * vocoder_upsample_factor
        height = int(audio_length_in_s / vocoder_upsample_factor)
        original_waveform_length = int(audio_length_in_s * vc["sampling_rate"])
        info = {"frames": height}
        if height % self.vae_scale_factor != 0:
            height = int(np.ceil(height / self.vae_scale_factor)) * self.vae_scale_factor
        # 1. Check inputs
        self.check_inputs(audio_length_in_s, vocoder_upsample_factor, prompt_embeds, negative_prompt_embeds)
        # 2. Define call parameters
        batch_size = prompt_embeds.shape[0]
        do_classifier_free_guidance = guidance_scale > 1.0
        # 3. Encode input prompt
        prompt_embeds = self._encode_prompt(num_waveforms_per_prompt, do_classifier_free_guidance, prompt_embeds,
                                            negative_prompt_embeds)
        # 4. Prepare timesteps
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps = self.scheduler.timesteps
        # 5. Prepare latent variables
        num_channels_latents = self.unet.cfg["in_channels"]
        latents = self.prepare_latents(batch_size * num_waveforms_per_prompt, num_channels_latents, height, latents)
        # 6. Prepare extra step kwargs (DDIM's step takes eta; a generator only matters for eta > 0)
        if eta > 0:
            raise NotImplementedError("eta > 0: DDIM draws its variance noise from the generator")
        extra_step_kwargs = {"eta": eta}
        # 7. Denoising loop
        for i, t in enumerate(timesteps):
            latent_model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents
            # DDIMScheduler.scale_model_input returns the sample unchanged
            noise_pred = self.unet.forward(latent_model_input, t, encoder_hidden_states=None, class_labels=prompt_embeds)
            if do_classifier_free_guidance:
                noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
            latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs)
        self.unet.check_all_used()
        # 8. Post-processing
        mel_spectrogram = self.decode_latents(latents)
        self.vae.check_all_used()
        audio = self.mel_spectrogram_to_waveform(mel_spectrogram)
        self.vocoder.check_all_used()
        info.update(height=height, latent=list(latents.shape), vocoder_samples=int(audio.shape[1]),
                    original_waveform_length=original_waveform_length, timesteps=[int(x) for x in timesteps],
                    hop=float(vocoder_upsample_factor), scale=self.vae_scale_factor,
                    sampling_rate=vc["sampling_rate"])
        audio = audio[:, :original_waveform_length]
        return audio, mel_spectrogram, info


def run_case(model_dir, params, inp, dtype):
    pipe = AudioLDMPipeline(model_dir, dtype)
    assert params.get("scheduler", "ddim") == "ddim", params
    with torch.no_grad():
        t = {k: torch.from_numpy(v.astype(np.float32)) for k, v in inp.items()}
        if dtype != torch.float32:
            t = {k: v.to(dtype) for k, v in t.items()}
        audio, mel, info = pipe(audio_length_in_s=params["audio_length_in_s"],
                                num_inference_steps=params["num_inference_steps"],
                                guidance_scale=params["guidance_scale"], eta=params.get("eta", 0.0),
                                latents=t["latents"], prompt_embeds=t["prompt_embeds"],
                                negative_prompt_embeds=t.get("negative_prompt_embeds"))
    return {"waveform": audio.numpy(), "mel": mel.numpy()}, info


def check_shared():
    """The port against every shared (upstream-produced) audioldm.generate case; the worst errors."""
    root = os.path.join(SHARED, "audio", STAGE)
    cases = sorted(os.listdir(root))
    assert cases
    worst, worst64 = 0.0, 0.0
    for c in cases:
        d = os.path.join(root, c)
        case = json.load(open(os.path.join(d, "case.json")))
        model = os.path.normpath(os.path.join(d, case["model"]))
        inp, _ = load_safetensors(os.path.join(d, "inputs.safetensors"))
        exp, _ = load_safetensors(os.path.join(d, "expected.safetensors"))
        got, info = run_case(model, case["params"], inp, torch.float32)
        got64, _ = run_case(model, case["params"], inp, torch.float64)
        assert set(got) == set(exp), (c, set(got), set(exp))
        line = []
        for k, e in sorted(exp.items()):
            g = got[k]
            assert g.shape == e.shape and g.dtype == e.dtype, (c, k, g.shape, e.shape, g.dtype)
            err = float(np.abs(g.astype(np.float64) - e).max())
            err64 = float(np.abs(got64[k] - e).max())
            gap = float(np.abs(g.astype(np.float64) - got64[k]).max())
            assert err < 0.25 * case["atol"], (c, k, err, case["atol"])
            worst, worst64 = max(worst, err), max(worst64, err64)
            line.append("%s %s max|port - upstream| %.2e, float64 port %.2e, |fp32 - fp64| %.2e"
                        % (k, list(g.shape), err, err64, gap))
        print("shared %s/%s (atol %g, height %d, %d of %d samples):\n  %s"
              % (STAGE, c, case["atol"], info["height"], info["original_waveform_length"], info["vocoder_samples"],
                 "\n  ".join(line)))
    return worst, worst64


# ---------------------------------------------------------------------------------------- the models

COMPOSITES = {  # name -> (unet, vae, vocoder folders relative to models/, vocoder config changes)
    "audioldm-b-pipe": ("audioldm-b/unet", "audioldm-b-dec/vae", "audioldm-b-dec/vocoder", None),
    "audioldm-b-pipe-cvoc": ("audioldm-b/unet", "audioldm-b-dec/vae", "audioldm-c-voc/vocoder", None),
    "audioldm-b-pipe-24k": ("audioldm-b/unet", "audioldm-b-dec/vae", "audioldm-b-dec/vocoder",
                            {"sampling_rate": 24000}),
}


def make_composites():
    idx = json.load(open(os.path.join(SHARED, "models", "audioldm-a", "model_index.json")))
    for name, (unet, vae, voc, voc_over) in COMPOSITES.items():
        d = os.path.join(MODELS, name)
        if os.path.isdir(d):
            shutil.rmtree(d)  # symlinks inside are unlinked, not followed
        os.makedirs(os.path.join(d, "scheduler"))
        dump_json(os.path.join(d, "model_index.json"), idx, 1)
        shutil.copyfile(os.path.join(MODELS, "audioldm-b", "scheduler", "scheduler_config.json"),
                        os.path.join(d, "scheduler", "scheduler_config.json"))
        link_component(MODELS, d, "unet", unet, None, None, None)
        link_component(MODELS, d, "vae", vae, None, None, None)
        link_component(MODELS, d, "vocoder", voc, voc_over, "model.safetensors", 1)
        # the components fit: latent channels, mel bins / scale, class-embedding input
        u = json.load(open(os.path.join(d, "unet", "config.json")))
        v = json.load(open(os.path.join(d, "vae", "config.json")))
        c = json.load(open(os.path.join(d, "vocoder", "config.json")))
        sc = 2 ** (len(v["block_out_channels"]) - 1)
        assert u["in_channels"] == u["out_channels"] == v["latent_channels"], name
        assert c["model_in_dim"] % sc == 0 and v["in_channels"] == v["out_channels"] == 1, name
        assert u["class_embed_type"] == "simple_projection", name
        print("model %s: unet %s, vae %s (scale %d, latent %d, width %d), vocoder %s (rates %s, %d Hz)%s"
              % (name, unet, vae, sc, v["latent_channels"], c["model_in_dim"] // sc, voc, c["upsample_rates"],
                 c["sampling_rate"], "" if voc_over is None else " config changed: %s" % voc_over))


def write_case(name, model, params, inp, note):
    model_dir = os.path.join(MODELS, model)
    y32, info = run_case(model_dir, params, inp, torch.float32)
    y64, _ = run_case(model_dir, params, inp, torch.float64)
    gap = max(float(np.abs(y32[k].astype(np.float64) - y64[k]).max()) for k in y32)
    atol = round_tol(gap * 16, SHARED_ATOL)
    d = os.path.join(OUT, "audio", STAGE, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    save_safetensors(os.path.join(d, "inputs.safetensors"), inp)
    save_safetensors(os.path.join(d, "expected.safetensors"), y32)
    sc, sr = info["scale"], info["sampling_rate"]
    hop_txt = "%g" % info["hop"] if sr == 16000 else "(%d/%d)" % (round(info["hop"] * sr), sr)
    frames = info["frames"]
    wave_n = y32["waveform"].shape[1]
    auto = ("mel height %d (int(%g/%s) = %d%s), latent %s; " % (
        info["height"], params["audio_length_in_s"], hop_txt, frames,
        "" if frames == info["height"] else " rounded up to a multiple of %d" % sc, info["latent"]))
    if info["vocoder_samples"] > info["original_waveform_length"]:
        auto += "waveform cropped to int(%g*%d) = %d of %d vocoder samples" % (
            params["audio_length_in_s"], sr, info["original_waveform_length"], info["vocoder_samples"])
    else:
        auto += "the vocoder gives %d samples, fewer than int(%g*%d) = %d: the slice keeps all %d" % (
            info["vocoder_samples"], params["audio_length_in_s"], sr, info["original_waveform_length"], wave_n)
    case = {"stage": STAGE, "model": "../../../models/" + model, "params": params, "atol": atol, "rtol": RTOL,
            "source": SOURCE, "note": auto + "; " + note}
    dump_json(os.path.join(d, "case.json"), case, 1)
    print("%s/%s: timesteps %s, waveform %s mel %s, |wave| max %.3g std %.3g, |fp32 - fp64| %.2e, atol %g\n  %s"
          % (STAGE, name, info["timesteps"], list(y32["waveform"].shape), list(y32["mel"].shape),
             float(np.abs(y32["waveform"]).max()), float(y32["waveform"].std()), gap, atol, case["note"]))


def main():
    torch.set_num_threads(1)
    worst, worst64 = check_shared()
    print("port: worst error vs the shared cases %.2e (float64 port %.2e)" % (worst, worst64))
    make_composites()
    root = os.path.join(OUT, "audio", STAGE)
    if os.path.isdir(root):
        for c in os.listdir(root):
            if c.startswith(tuple(m + "_" for m in COMPOSITES)):
                shutil.rmtree(os.path.join(root, c))

    rng = np.random.default_rng(20261210)
    D = 40  # audioldm-b's projection_class_embeddings_input_dim

    def inputs(B, h):
        lat = rng.standard_normal((B, 8, h, 16)).astype(np.float32)
        pe = (1.2 * rng.standard_normal((B, D))).astype(np.float32)
        ne = rng.standard_normal((B, D))
        ne = (ne / np.linalg.norm(ne, axis=1, keepdims=True)).astype(np.float32)
        return {"latents": lat, "prompt_embeds": pe, "negative_prompt_embeds": ne}

    def params(steps, g, secs):
        return {"num_inference_steps": steps, "guidance_scale": g, "audio_length_in_s": secs, "eta": 0.0,
                "scheduler": "ddim"}

    b = "audioldm-b UNet (4 levels [12, 24, 36, 48], class dim 40), audioldm-b-dec VAE (scale 4, scaling_factor " \
        "1.1342578530311584) and vocoder (rates [4, 4, 2], 16 kHz: hop 0.002 s)"
    cv = "audioldm-b UNet and VAE, audioldm-c-voc vocoder (rates [5, 4, 2], 40 T + 9 samples, normalize_before)"
    for name, model, p, B, h, note in (
            ("audioldm-b-pipe_ddim_3steps_g7_5_0_35s", "audioldm-b-pipe", params(3, 7.5, 0.35), 1, 44,
             b + "; NExT-GPT's guidance 7.5; 0.35/0.002 is 174.99999999999997 in float64, truncated to 174"),
            ("audioldm-b-pipe_ddim_4steps_g2_5_0_45s", "audioldm-b-pipe", params(4, 2.5, 0.45), 1, 57,
             b + "; the pipeline's default guidance 2.5; odd latent height 57 (UNet upsample_size path)"),
            ("audioldm-b-pipe_ddim_5steps_g1_0_0_31s", "audioldm-b-pipe", params(5, 1.0, 0.31), 1, 39,
             b + "; guidance 1.0: no classifier-free guidance (the UNet runs on the latents with class_labels = "
                 "prompt_embeds only; negative_prompt_embeds given and unused)"),
            ("audioldm-b-pipe_ddim_3steps_g2_5_b2_0_3s", "audioldm-b-pipe", params(3, 2.5, 0.3), 2, 38,
             b + "; batch 2: the UNet batch is [negative 0, negative 1, prompt 0, prompt 1]"),
            ("audioldm-b-pipe_ddim_3steps_g7_5_0_41s", "audioldm-b-pipe", params(3, 7.5, 0.41), 1, 51,
             b + "; 0.41/0.002 is 204.99999999999997, truncated to 204, a multiple of 4, so the vocoder's "
                 "32 x 204 samples are fewer than int(0.41*16000)"),
            ("audioldm-b-pipe-cvoc_ddim_4steps_g2_5_0_305s", "audioldm-b-pipe-cvoc", params(4, 2.5, 0.305), 1, 31,
             cv + ", 16 kHz: hop 0.0025 s; this VAE's mel, normalised by that vocoder's mean / scale, gives a "
                  "nearly constant waveform (std ~2.5e-4): the case is about the 40 T + 9 length and the crop"),
            ("audioldm-b-pipe-24k_ddim_4steps_g7_5_0_35s", "audioldm-b-pipe-24k", params(4, 7.5, 0.35), 1, 66,
             "audioldm-b UNet and VAE, audioldm-b-dec vocoder weights with its config's sampling_rate set to 24000: "
             "hop 32/24000 s for the height (0.35 / hop = 262.5, truncated to 262) and the crop at "
             "24 kHz")):
        write_case(name, model, p, inputs(B, h), note)


if __name__ == "__main__":
    main()
