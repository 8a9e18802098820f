"""nextgpt.Decoder: a diffusers pipeline (SD 1.5, AudioLDM, Zeroscope) as one handle, whole
(generate) or part by part (UNet, VAE, vocoder, text encoder, safety checker)."""
import ctypes

from ._convert import _cstr, _params, _path
from ._enums import DecoderKind
from ._handle import _Handle
from ._library import capi, lib
from .error import _Raised, _call
from .media import _with_image
from .tensor import Tensor, _copy_of, _new_tensor_out, _tensor_view


class Decoder(_Handle):
    """ngpt_decoder: a diffusers pipeline folder (SD 1.5 / AudioLDM / Zeroscope) on ctx's backend.
    Tensor arguments are numpy arrays or nextgpt.Tensor; results are Tensors."""
    _free = "ngpt_decoder_free"
    _exclusive = True

    def __init__(self, ctx, model_dir, kind=None, components=None, compute_dtype=None, flags=None):
        """compute_dtype: Dtype.F32 (default), BF16 (CPU: the UNet's and VAE's matrices and filters in
        BF16, BF16 GEMM/convolution inputs, F32 activations), or F16 / BF16 on a CUDA context. flags:
        NGPT_DECODER_FLAG_* bits (capi), e.g. capi.NGPT_DECODER_FLAG_CUDA_GRAPH |
        capi.NGPT_DECODER_FLAG_CHANNELS_LAST."""
        p = _params(capi.ngpt_decoder_params, "ngpt_decoder_params_default", kind=kind,
                    components=components, compute_dtype=compute_dtype, flags=flags)
        out = ctypes.POINTER(capi.ngpt_decoder)()
        _call("ngpt_decoder_create", ctypes.byref(out), ctx._h(), _path(model_dir), ctypes.byref(p))
        self._adopt(out, ctx)

    @property
    def kind(self):
        return DecoderKind(lib.ngpt_decoder_get_kind(self._h()))

    @property
    def vae_scaling_factor(self):
        return lib.ngpt_decoder_vae_scaling_factor(self._h())

    @property
    def sample_rate(self):
        """Hz of an audio decoder's waveform (its vocoder's sampling_rate); 0 for other kinds."""
        return lib.ngpt_decoder_sample_rate(self._h())

    def unet(self, sample, timesteps, encoder_hidden_states=None, class_labels=None):
        views = [_tensor_view(x) for x in (sample, timesteps, encoder_hidden_states, class_labels)]
        t = _new_tensor_out()
        _call("ngpt_decoder_unet", self._h(), ctypes.byref(t), *[v for v, _ in views])
        return Tensor(t)

    def vae_decode(self, latents):
        view, keep = _tensor_view(latents)
        t = _new_tensor_out()
        _call("ngpt_decoder_vae_decode", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def vae_encode(self, image, logvar=False):
        """VAE encode: image F32 [B, in_channels, H, W] in [-1, 1] (H, W multiples of the VAE's
        scale, 8 for SD) -> Tensor F32 [B, latent_channels, H/8, W/8], the latent distribution's
        mean (not multiplied by vae_scaling_factor); logvar=True returns (mean, logvar), the
        log-variance clamped to [-30, 20]."""
        view, keep = _tensor_view(image)
        mean = _new_tensor_out()
        lv = _new_tensor_out() if logvar else None
        _call("ngpt_decoder_vae_encode", self._h(), ctypes.byref(mean), ctypes.byref(lv) if logvar else None, view)
        return (Tensor(mean), Tensor(lv)) if logvar else Tensor(mean)

    def image_latents(self, image, sample=True, seed=0):
        """Image-to-image's init_latents from a picture (an Image, a PIL image, a numpy uint8
        [h, w, 3] array, or a path), as
        diffusers' StableDiffusionImg2ImgPipeline makes them: each side cut down to a multiple of 8
        (Pillow's Lanczos resize), the VAE encoder, a sample of the latent distribution (noise from
        `seed`; give generate another seed) or its mean when sample=False, x vae_scaling_factor.
        Tensor F32 [1, 4, H/8, W/8]; pass it as generate(init_latents=...) with the size left 0."""
        def run(img):
            t = _new_tensor_out()
            _call("ngpt_decoder_image_latents", self._h(), ctypes.byref(t), img._h(), 1 if sample else 0, seed)
            return Tensor(t)
        return _with_image(image, run)

    def video_latents(self, frames, sample=True, seed=0):
        """Video-to-video's init_latents from frames, as diffusers' VideoToVideoSDPipeline makes
        them: frames uint8 [F, H, W, 3] RGB (or float32 in [0, 1]; numpy or Tensor; H and W
        multiples of 8, not resized), each through the VAE encoder, sampled (noise from `seed`)
        or its mean (sample=False), x vae_scaling_factor. Tensor F32 [1, 4, F, H/8, W/8]; pass it
        as generate(init_latents=...) with the size and num_frames left 0."""
        view, keep = _tensor_view(frames)
        t = _new_tensor_out()
        _call("ngpt_decoder_video_latents", self._h(), ctypes.byref(t), view, 1 if sample else 0, seed)
        return Tensor(t)

    def vocoder(self, mel):
        view, keep = _tensor_view(mel)
        t = _new_tensor_out()
        _call("ngpt_decoder_vocoder", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    @property
    def text_max_length(self):
        """Padded token count of the text encoder (CLIP 77, AudioLDM's CLAP 512); 0 without one."""
        return lib.ngpt_decoder_text_max_length(self._h())

    @property
    def text_hidden_size(self):
        return lib.ngpt_decoder_text_hidden_size(self._h())

    def tokenize_text(self, prompt, max_length=None):
        """The pipelines' tokenization of prompt (str; CLIP, or RoBERTa for AUDIO): a list of
        max_length ids (bos, tokens, eos, padding)."""
        n = max_length or self.text_max_length
        ids = (ctypes.c_int32 * max(n, 1))()
        _call("ngpt_decoder_tokenize_text", self._h(), ids, n, _cstr(prompt, "prompt"), None)
        return list(ids[:n])

    def encode_text(self, prompt):
        """The text encoder on prompt (str): Tensor F32 [1, 77, hidden] (CLIP); AUDIO: [1, 512],
        the normalised CLAP embedding (usable as cond)."""
        t = _new_tensor_out()
        _call("ngpt_decoder_encode_text", self._h(), ctypes.byref(t), _cstr(prompt, "prompt"))
        return Tensor(t)

    def encode_text_ids(self, input_ids):
        """The text encoder on input_ids (I32/I64 [B, S]): Tensor F32 [B, S, hidden] (CLIP);
        AUDIO: [B, 512], normalised."""
        view, keep = _tensor_view(input_ids)
        t = _new_tensor_out()
        _call("ngpt_decoder_encode_text_ids", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def encode_text_masked(self, input_ids, attention_mask):
        """AUDIO: CLAP on input_ids with attention_mask (I32/I64 [B, S] of 0/1): Tensor F32 [B, 512]."""
        view, keep = _tensor_view(input_ids)
        mview, mkeep = _tensor_view(attention_mask)
        t = _new_tensor_out()
        _call("ngpt_decoder_encode_text_masked", self._h(), ctypes.byref(t), view, mview)
        return Tensor(t)

    def generate(self, cond, uncond=None, steps=0, guidance_scale=0.0, seed=0, scheduler=None,
                 height=0, width=0, num_frames=0, audio_length_s=0.0, eta=0.0, on_step=None,
                 on_preview=None, return_nsfw=False, latents=None, init_latents=None, strength=None):
        """The diffusers pipeline of this decoder on conditioning `cond` (numpy or Tensor; the
        output projector's result): a Tensor F32 — image [B, H, W, 3] in [0, 1], audio [B, n],
        video [B, 3, F, H, W]. uncond None = the decoder's text encoder on "" (image, video).
        0 = the decoder's defaults (50 steps, guidance 7.5, its size). on_step(step, total) ->
        False cancels. on_preview(step, total, latents, rgb) -> False cancels: copies (Tensor) of
        the current latents and, for image/video, their RGB approximation [B, (F,) h, w, 3] in
        [0, 1] at the latent resolution (None for audio). An image decoder created with
        capi.NGPT_DECODER_FLAG_SAFETY_CHECKER blacks out the images its safety checker flags;
        return_nsfw=True then returns (images, [flagged, ...]) (an empty list without a checker).
        latents: the initial noise (F32, [B, C, h, w]; video [B, C, F, h, w]) instead of the
        seed's. init_latents (same shape): image-to-image, from these latents (vae_encode's mean x
        vae_scaling_factor, as diffusers' img2img: image_latents makes them from a picture) with
        int(steps x strength) of the steps (strength None = 0.8); the size is taken from them when
        height and width are 0, else must match them; a batch dividing cond's is repeated over it."""
        p = _params(capi.ngpt_decode_params, "ngpt_decode_params_default", num_inference_steps=steps,
                    guidance_scale=guidance_scale, seed=seed, scheduler=scheduler, height=height,
                    width=width, num_frames=num_frames, audio_length_s=audio_length_s, eta=eta,
                    strength=strength)
        lv, keep_l = _tensor_view(latents)
        iv, keep_i = _tensor_view(init_latents)
        p.latents, p.init_latents = lv, iv
        raised = _Raised()
        cb = None
        if on_step is not None:
            cb = capi.ngpt_step_fn(raised.guard(lambda step, total, _e, _u: on_step(step, total) is not False))
            p.on_step = cb
        pcb = None
        if on_preview is not None:
            pcb = capi.ngpt_preview_fn(raised.guard(
                lambda step, total, lat, rgb, _u: on_preview(step, total, _copy_of(lat), _copy_of(rgb)) is not False))
            p.on_preview = pcb
        cv, keep_c = _tensor_view(cond)
        uv, keep_u = _tensor_view(uncond)
        t = _new_tensor_out()
        aux = _new_tensor_out() if return_nsfw and self.kind == DecoderKind.IMAGE else None
        raised.call("ngpt_decoder_generate", self._h(), ctypes.byref(t), ctypes.byref(aux) if aux else None, cv, uv,
                    ctypes.byref(p))
        if not return_nsfw:
            return Tensor(t)
        flags = Tensor(aux).tolist() if aux is not None and aux.data else []
        return Tensor(t), [bool(v) for v in flags]

    def safety_check(self, images):
        """Stable Diffusion's safety checker (a decoder created with
        capi.NGPT_DECODER_FLAG_SAFETY_CHECKER) on images — numpy/Tensor F32 [B, H, W, 3] in
        [0, 1] (generate's output) or U8 — as NExT-GPT's pipeline runs it:
        (nsfw, special_scores, concept_scores): a list of B bools (the images it would black
        out) and Tensors F32 [B, 3] and [B, 17] (the rounded scores). The images are unchanged."""
        view, keep = _tensor_view(images)
        n, s, c = _new_tensor_out(), _new_tensor_out(), _new_tensor_out()
        _call("ngpt_decoder_safety_check", self._h(), ctypes.byref(n), ctypes.byref(s), ctypes.byref(c), view)
        return [bool(v) for v in Tensor(n).tolist()], Tensor(s), Tensor(c)
