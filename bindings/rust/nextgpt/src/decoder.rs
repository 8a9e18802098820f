//! The diffusers decoders (SD 1.5, AudioLDM, Zeroscope).
use crate::ffi::*;
use crate::*;
use std::any::Any;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::os::raw::c_void;
use crate::callback::caught;
use std::panic;
use std::path::Path;
use std::ptr::{self, NonNull};

/// Options of [`Decoder::generate`]; 0 = the decoder's defaults (50 steps, guidance 7.5, its size,
/// the folder's scheduler, 24 frames, 5 s). Build it with `..Default::default()`: fields are
/// appended. The unconditional embedding, the initial noise and the callbacks are
/// [`DecodeInputs`] ([`Decoder::generate_with`]).
#[derive(Clone, Debug, Default)]
pub struct DecodeParams {
    pub steps: i32,
    pub guidance_scale: f32,
    pub seed: u64,
    pub height: i32,
    pub width: i32,
    /// Video: the frame count.
    pub num_frames: i32,
    /// Audio: seconds of sound (at most 60).
    pub audio_length_s: f64,
    /// `sys::NGPT_SCHEDULER_*` (0: the folder's scheduler_config.json).
    pub scheduler: u32,
    /// DDIM's eta (0: deterministic).
    pub eta: f32,
    /// Image-to-image ([`DecodeInputs::init_latents`]): the part of the schedule that runs, in
    /// (0, 1]; `int(steps x strength)` steps, the schedule's last. `None`: 0.8, diffusers'.
    pub strength: Option<f64>,
}

/// What [`Decoder::generate_with`] takes besides the conditioning and the settings: borrowed
/// tensors and callbacks, all optional (`..Default::default()`).
#[derive(Default)]
pub struct DecodeInputs<'a> {
    /// The unconditional embedding of classifier-free guidance (NExT-GPT's negative prompt: the
    /// text encoder's embedding of ""), F32 with `cond`'s shape. `None`: computed by the
    /// decoder's text encoder (`sys::NGPT_ERR_UNSUPPORTED` without one), or not needed when
    /// `guidance_scale <= 1`.
    pub uncond: Option<&'a Tensor>,
    /// The initial noise instead of drawing it from `seed`, F32: image [B, 4, h/8, w/8], audio
    /// [B, 8, frames/4, 16], video [B, 4, F, h/8, w/8] (8 and 4: the VAE's scale of SD /
    /// AudioLDM; other VAEs, theirs). Multiplied by the scheduler's init_noise_sigma; with
    /// [`DecodeInputs::init_latents`], the noise added to them.
    pub latents: Option<&'a Tensor>,
    /// Image-to-image (video-to-video, audio-to-audio): the latents to start from, F32 shaped as
    /// [`DecodeInputs::latents`] (image and video: the size taken from them when the settings
    /// leave it 0, else it must match; a batch dividing cond's is repeated over it): diffusers'
    /// init_latents, [`Decoder::image_latents`] of a picture, [`Decoder::video_latents`] of
    /// frames, or [`Decoder::vae_encode`]'s mean (+ its noise) x [`Decoder::vae_scaling_factor`].
    /// The noise (`latents`, or the seed's) is added at the first timestep that runs
    /// ([`DecodeParams::strength`]) instead of scaling it by init_noise_sigma.
    pub init_latents: Option<&'a Tensor>,
    /// Called after every denoising step with (step 1..=total, total, seconds since the call
    /// began); false cancels (`sys::NGPT_ERR_CANCELLED`).
    pub on_step: Option<&'a mut dyn FnMut(i32, i32, f32) -> bool>,
    /// A cheap look at the denoising after each step (after `on_step`): (step, total, the
    /// current latents F32, shaped as [`DecodeInputs::latents`], and for the 4-channel latents
    /// of image and video decoders their RGB approximation F32 [B, h, w, 3] (video [B, F, h, w,
    /// 3]) in [0, 1] at the latent resolution, `None` for audio). Both are borrowed for the
    /// call (copy what you keep). False cancels (`sys::NGPT_ERR_CANCELLED`). Costs one download
    /// of the latents per step.
    pub on_preview: Option<&'a mut dyn FnMut(i32, i32, &Tensor, Option<&Tensor>) -> bool>,
}

/// generate's callbacks and the panic one of them raised: a panic must not unwind into C, so it
/// cancels the call and is resumed once the C call has returned.
struct DecodeCall<'a> {
    on_step: Option<&'a mut dyn FnMut(i32, i32, f32) -> bool>,
    on_preview: Option<&'a mut dyn FnMut(i32, i32, &Tensor, Option<&Tensor>) -> bool>,
    panic: Option<Box<dyn Any + Send>>,
}

unsafe extern "C" fn decode_step(step: i32, total: i32, elapsed_s: f32, user: *mut c_void) -> bool {
    // SAFETY: user is the &mut DecodeCall passed by Decoder::generate_impl, alive for the call.
    let call = unsafe { &mut *(user as *mut DecodeCall) };
    match call.on_step.as_mut() {
        Some(f) => caught(&mut call.panic, || f(step, total, elapsed_s)),
        None => true,
    }
}

/// A library tensor lent for a callback as a `Tensor` that is never freed (owner cleared).
///
/// # Safety
/// `p` is NULL or a valid tensor whose data outlives the returned value.
unsafe fn lent(p: *const sys::ngpt_tensor) -> Option<ManuallyDrop<Tensor>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: by the caller.
    let mut t = unsafe { *p };
    t.owner = ptr::null_mut();
    Some(ManuallyDrop::new(Tensor { t }))
}

unsafe extern "C" fn decode_preview(step: i32, total: i32, latents: *const sys::ngpt_tensor,
                                    rgb: *const sys::ngpt_tensor, user: *mut c_void) -> bool {
    // SAFETY: user is the &mut DecodeCall passed by Decoder::generate_impl, alive for the call;
    // latents and rgb (or NULL) are borrowed for the duration of the callback.
    let call = unsafe { &mut *(user as *mut DecodeCall) };
    let (lat, rgb) = unsafe { (lent(latents), lent(rgb)) };
    let empty = ManuallyDrop::new(Tensor::empty());
    let lat = lat.as_deref().unwrap_or(&empty);
    match call.on_preview.as_mut() {
        Some(f) => caught(&mut call.panic, || f(step, total, lat, rgb.as_deref())),
        None => true,
    }
}

/// The `ngpt_decoder_kind` of a decoder's modality (Text is none).
fn decoder_kind(m: Modality) -> Result<sys::ngpt_decoder_kind> {
    match m {
        Modality::Image => Ok(sys::NGPT_DECODER_IMAGE),
        Modality::Audio => Ok(sys::NGPT_DECODER_AUDIO),
        Modality::Video => Ok(sys::NGPT_DECODER_VIDEO),
        Modality::Text => Err(Error::invalid("Modality::Text is not a decoder kind (image, audio or video)")),
    }
}

/// A borrowed I32 [batch, len / batch] view of `ids` (`what` names it in errors).
fn ids_view(ids: &[i32], batch: usize, what: &str) -> Result<sys::ngpt_tensor> {
    if batch == 0 || ids.is_empty() || ids.len() % batch != 0 {
        return Err(Error::invalid(&format!(
            "{} holds {} ids: not [batch = {}, n] with n > 0", what, ids.len(), batch)));
    }
    // SAFETY: an all-zero ngpt_tensor is an empty caller-owned view.
    let mut t: sys::ngpt_tensor = unsafe { std::mem::zeroed() };
    t.dtype = sys::NGPT_DTYPE_I32;
    t.rank = 2;
    t.shape[0] = batch as i64;
    t.shape[1] = (ids.len() / batch) as i64;
    t.data = ids.as_ptr() as *mut c_void;
    Ok(t)
}

/// A pointer to an optional argument view (NULL for None).
fn opt_ptr(v: &Option<sys::ngpt_tensor>) -> *const sys::ngpt_tensor {
    v.as_ref().map_or(ptr::null(), |v| v as *const sys::ngpt_tensor)
}

/// `ngpt_decoder`: a diffusers pipeline folder (SD 1.5 / AudioLDM / Zeroscope). Borrows its
/// [`Context`].
pub struct Decoder<'c> {
    pub(crate) ptr: NonNull<sys::ngpt_decoder>,
    pub(crate) _ctx: PhantomData<&'c Context>,
    /// Lent by a pipeline ([`crate::Borrowed`]): freed by its owner, never by Drop.
    pub(crate) lent: bool,
}

// SAFETY: one thread at a time per handle (generate takes &mut self); handles of one context may
// run on different threads at once (the header: CPU jobs and CUDA calls take turns).
unsafe impl Send for Decoder<'_> {}

impl<'c> Decoder<'c> {
    /// Load the decoder folder `model_dir` (kind from model_index.json, every component present).
    pub fn new<P: AsRef<Path>>(ctx: &'c Context, model_dir: P) -> Result<Decoder<'c>> {
        Self::with_options(ctx, model_dir, Options::default())
    }

    /// [`Decoder::new`] with a compute dtype and `sys::NGPT_DECODER_FLAG_*` bits.
    pub fn with_options<P: AsRef<Path>>(ctx: &'c Context, model_dir: P, o: Options) -> Result<Decoder<'c>> {
        Self::with_components(ctx, model_dir, None, 0, o)
    }

    /// [`Decoder::with_options`] loading only `components` (`sys::NGPT_DECODER_UNET`, `_VAE`,
    /// `_VOCODER`, `_TEXT_ENCODER` bits; 0 = every component the folder has) as decoder `kind`
    /// (`None`: from model_index.json's `_class_name`; `Modality::Text` is no kind).
    pub fn with_components<P: AsRef<Path>>(ctx: &'c Context, model_dir: P, kind: Option<Modality>, components: u32,
                                           o: Options) -> Result<Decoder<'c>> {
        let kind = kind.map(decoder_kind).transpose()?;
        let dir = c_path(model_dir.as_ref())?;
        // SAFETY: a zeroed POD struct filled by _default with our own size.
        let mut p: sys::ngpt_decoder_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_decoder_params_default(&mut p, std::mem::size_of_val(&p)) })?;
        if let Some(k) = kind {
            p.kind = k;
        }
        p.components = components;
        p.compute_dtype = o.compute_dtype;
        p.flags = o.flags;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_decoder_create(&mut out, ctx.as_ptr(), dir.as_ptr(), &p) })?;
        Ok(Decoder { ptr: NonNull::new(out).expect("ngpt_decoder_create returned NULL"), _ctx: PhantomData, lent: false })
    }

    /// What generate divides the final latents by before the VAE (0.18215 for an image decoder,
    /// as NExT-GPT's pipeline; the VAE config's otherwise).
    pub fn vae_scaling_factor(&self) -> f32 {
        unsafe { sys::ngpt_decoder_vae_scaling_factor(self.ptr.as_ptr()) }
    }

    /// An audio decoder's waveform rate in Hz (its vocoder's `sampling_rate`); 0 for other kinds.
    pub fn sample_rate(&self) -> i32 {
        unsafe { sys::ngpt_decoder_sample_rate(self.ptr.as_ptr()) }
    }

    /// The kind in use: `Modality::Image` (Stable Diffusion), `Audio` (AudioLDM) or `Video`
    /// (Zeroscope); never `Text`.
    pub fn kind(&self) -> Modality {
        match unsafe { sys::ngpt_decoder_get_kind(self.ptr.as_ptr()) } {
            sys::NGPT_DECODER_AUDIO => Modality::Audio,
            sys::NGPT_DECODER_VIDEO => Modality::Video,
            _ => Modality::Image, // NGPT_DECODER_IMAGE: a live decoder is never AUTO
        }
    }

    /// One denoiser evaluation (UNet2DConditionModel / UNet3DConditionModel): `sample` F32
    /// [B, C, h, w] (image, audio) or [B, C, F, h, w] (video); `timesteps` `[B]` or `[1]` (I64 or
    /// float; one timestep is broadcast over the batch); `encoder_hidden_states` F32
    /// [B, S, cross_attention_dim] for image and video (`None` for audio); `class_labels` F32
    /// [B, D] for audio (the projected CLAP / NExT-GPT embedding; `None` otherwise) -> F32 with
    /// the shape of `sample`. `sys::NGPT_ERR_UNSUPPORTED` without a loaded UNet.
    pub fn unet(&mut self, sample: &Tensor, timesteps: &Tensor, encoder_hidden_states: Option<&Tensor>,
                class_labels: Option<&Tensor>) -> Result<Tensor> {
        let (s, ts) = (borrow(sample), borrow(timesteps));
        let (e, c) = (encoder_hidden_states.map(borrow), class_labels.map(borrow));
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_decoder_unet(self.ptr.as_ptr(), &mut t.t, &s, &ts, opt_ptr(&e), opt_ptr(&c)) })?;
        Ok(t)
    }

    /// VAE decode: `latents` F32 [B, latent_channels, h, w] ALREADY divided by
    /// [`Decoder::vae_scaling_factor`] (video [B, C, F, h, w], decoded frame by frame) -> F32
    /// [B, out_channels, 8h, 8w] (video [B, 3, F, 8h, 8w]; audio the mel [B, 1, 4h, n_mels]),
    /// unclamped.
    pub fn vae_decode(&mut self, latents: &Tensor) -> Result<Tensor> {
        let l = borrow(latents);
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_decoder_vae_decode(self.ptr.as_ptr(), &mut t.t, &l) })?;
        Ok(t)
    }

    /// VAE encode (image-to-image, round trips): `image` F32 [B, in_channels, H, W], pixels in
    /// [-1, 1], H and W multiples of the VAE's scale (8 for SD; video: frames as the batch) ->
    /// (mean, logvar), each F32 [B, latent_channels, H/8, W/8]: AutoencoderKL's latent
    /// distribution, the mean NOT multiplied by the scaling factor (latents as the UNet sees
    /// them: mean x [`Decoder::vae_scaling_factor`]), the log-variance clamped to [-30, 20]
    /// (a sample: mean + exp(logvar / 2) x noise). `sys::NGPT_ERR_NOT_FOUND` naming the tensor
    /// when the VAE folder lacks the encoder's weights.
    pub fn vae_encode(&mut self, image: &Tensor) -> Result<(Tensor, Tensor)> {
        let im = borrow(image);
        let (mut mean, mut logvar) = (Tensor::empty(), Tensor::empty());
        check(unsafe { sys::ngpt_decoder_vae_encode(self.ptr.as_ptr(), &mut mean.t, &mut logvar.t, &im) })?;
        Ok((mean, logvar))
    }

    /// Image-to-image's init latents from a picture (image decoders), as diffusers'
    /// StableDiffusionImg2ImgPipeline makes them: each side cut down to a multiple of 8 by
    /// Pillow's Lanczos resize, the VAE encoder, then a sample of the latent distribution
    /// (`Some(seed)`: mean + exp(logvar / 2) x the seed's noise — give generate another seed) or
    /// its mean (`None`), x [`Decoder::vae_scaling_factor`]. F32 [1, 4, H/8, W/8]; pass it as
    /// [`DecodeInputs::init_latents`] with the size left 0 (generate takes it from there).
    pub fn image_latents(&mut self, image: &Image, sample_seed: Option<u64>) -> Result<Tensor> {
        let mut t = Tensor::empty();
        let (sample, seed) = match sample_seed { Some(s) => (1, s), None => (0, 0) };
        check(unsafe { sys::ngpt_decoder_image_latents(self.ptr.as_ptr(), &mut t.t, image.ptr.as_ptr(), sample, seed) })?;
        Ok(t)
    }

    /// Video-to-video's init latents from frames (video decoders), as diffusers'
    /// VideoToVideoSDPipeline makes them: `frames` U8 [F, H, W, 3] RGB (or F32 in [0, 1]; H and
    /// W multiples of 8, not resized), each through the VAE encoder, sampled (`Some(seed)`) or
    /// its mean (`None`), x [`Decoder::vae_scaling_factor`]: F32 [1, 4, F, H/8, W/8]; pass it as
    /// [`DecodeInputs::init_latents`] with the size and frames left 0.
    pub fn video_latents(&mut self, frames: &Tensor, sample_seed: Option<u64>) -> Result<Tensor> {
        let f = borrow(frames);
        let mut t = Tensor::empty();
        let (sample, seed) = match sample_seed { Some(s) => (1, s), None => (0, 0) };
        check(unsafe { sys::ngpt_decoder_video_latents(self.ptr.as_ptr(), &mut t.t, &f, sample, seed) })?;
        Ok(t)
    }

    /// Audio only, the vocoder (AudioLDM's SpeechT5HifiGan): `mel` F32 [B, T, n_mels] or
    /// [T, n_mels], or the VAE's layout [B, 1, T, n_mels] ([`Decoder::vae_decode`]'s and
    /// generate's mel, squeezed as the pipeline's `mel_spectrogram_to_waveform` does) ->
    /// the waveform F32 [B, L] (or `[L]`), L = the vocoder's exact length (160 T + 32 for
    /// AudioLDM's), not cropped. [`Decoder::sample_rate`] gives its rate.
    pub fn vocoder(&mut self, mel: &Tensor) -> Result<Tensor> {
        let m = borrow(mel);
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_decoder_vocoder(self.ptr.as_ptr(), &mut t.t, &m) })?;
        Ok(t)
    }

    /// The padded token count of the text encoder (tokenizer_config.json's model_max_length: 77
    /// for CLIP, 512 for AudioLDM's CLAP); 0 without a text encoder.
    pub fn text_max_length(&self) -> i32 {
        unsafe { sys::ngpt_decoder_text_max_length(self.ptr.as_ptr()) }
    }

    /// The width of the text embedding: hidden_size (768 for SD 1.5, 1024 for Zeroscope), audio
    /// projection_dim (512); 0 without a text encoder.
    pub fn text_hidden_size(&self) -> i32 {
        unsafe { sys::ngpt_decoder_text_hidden_size(self.ptr.as_ptr()) }
    }

    /// The pipelines' tokenization of `prompt` (CLIP; RoBERTa for audio), padded and truncated
    /// to `n_ids` ids (`None`: [`Decoder::text_max_length`]; 2 ..= max_position_embeddings):
    /// (ids = `[bos] + tokens + [eos] + padding`, the count before padding — where the
    /// tokenizer's attention mask is 1).
    pub fn tokenize_text(&mut self, prompt: &str, n_ids: Option<usize>) -> Result<(Vec<i32>, usize)> {
        let n = n_ids.unwrap_or(self.text_max_length().max(0) as usize);
        let n32 = i32::try_from(n).map_err(|_| Error::invalid("n_ids does not fit in an int32"))?;
        let prompt = c_str(prompt)?;
        let mut ids = vec![0i32; n.max(1)];
        let mut n_tokens = 0i32;
        // SAFETY: ids holds at least n_ids writable values.
        check(unsafe {
            sys::ngpt_decoder_tokenize_text(self.ptr.as_ptr(), ids.as_mut_ptr(), n32, prompt.as_ptr(), &mut n_tokens)
        })?;
        ids.truncate(n);
        Ok((ids, n_tokens.max(0) as usize))
    }

    /// The text encoder on the tokenized `prompt`: F32 [1, text_max_length, hidden] (CLIP's
    /// last_hidden_state); audio [1, projection_dim], normalised (usable as `cond`).
    pub fn encode_text(&mut self, prompt: &str) -> Result<Tensor> {
        let prompt = c_str(prompt)?;
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_decoder_encode_text(self.ptr.as_ptr(), &mut t.t, prompt.as_ptr()) })?;
        Ok(t)
    }

    /// The text encoder on `input_ids`, `batch` rows of S ids row-major (S <=
    /// max_position_embeddings, ids in the vocabulary; e.g. [`Decoder::tokenize_text`]'s) ->
    /// F32 [batch, S, hidden] (last_hidden_state; causal mask, no padding mask, as the
    /// pipelines call it); audio [batch, projection_dim], normalised, every token attended.
    pub fn encode_text_ids(&mut self, input_ids: &[i32], batch: usize) -> Result<Tensor> {
        let ids = ids_view(input_ids, batch, "input_ids")?;
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_decoder_encode_text_ids(self.ptr.as_ptr(), &mut t.t, &ids) })?;
        Ok(t)
    }

    /// Audio only: [`Decoder::encode_text_ids`] with `attention_mask` (0/1, one per id; `None` =
    /// all ones, as transformers defaults it) -> F32 [batch, projection_dim], normalised. A mask
    /// on a CLIP text encoder is `sys::NGPT_ERR_UNSUPPORTED`.
    pub fn encode_text_masked(&mut self, input_ids: &[i32], attention_mask: Option<&[i32]>, batch: usize)
                              -> Result<Tensor> {
        let ids = ids_view(input_ids, batch, "input_ids")?;
        if let Some(m) = attention_mask {
            if m.len() != input_ids.len() {
                return Err(Error::invalid(&format!(
                    "attention_mask holds {} values for {} input_ids (one per id)", m.len(), input_ids.len())));
            }
        }
        let mask = attention_mask.map(|m| ids_view(m, batch, "attention_mask")).transpose()?;
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_decoder_encode_text_masked(self.ptr.as_ptr(), &mut t.t, &ids, opt_ptr(&mask)) })?;
        Ok(t)
    }

    /// The diffusers pipeline on conditioning `cond` (the output projector's result, as it
    /// comes: image and video [B, 77, D], audio [B, 1, D] or [B, D]), with the decoder's text
    /// encoder supplying the unconditional embedding (pass your own with
    /// [`Decoder::generate_with`]): image F32 [B, H, W, 3] in [0, 1], audio the waveform [B, n],
    /// video [B, 3, F, H, W].
    pub fn generate(&mut self, cond: &Tensor, p: &DecodeParams) -> Result<Tensor> {
        self.generate_impl(cond, p, false, DecodeInputs::default()).map(|(t, _)| t)
    }

    /// [`Decoder::generate`] with its second output: for an image decoder with the safety
    /// checker (`sys::NGPT_DECODER_FLAG_SAFETY_CHECKER`) the flags, BOOL `[B]` (a flagged image
    /// comes back black: this says which), for an audio decoder the mel spectrogram the vocoder
    /// read, F32 [B, 1, frames, n_mels]; `None` where the decoder has none.
    pub fn generate_with_aux(&mut self, cond: &Tensor, p: &DecodeParams) -> Result<(Tensor, Option<Tensor>)> {
        self.generate_impl(cond, p, true, DecodeInputs::default())
    }

    /// [`Decoder::generate_with_aux`] with the unconditional embedding, the initial noise and
    /// progress callbacks of `inputs`. A callback returning false cancels the call
    /// (`sys::NGPT_ERR_CANCELLED`); a panic in one cancels it too and is resumed from this call
    /// once the library has returned.
    pub fn generate_with(&mut self, cond: &Tensor, p: &DecodeParams, inputs: DecodeInputs<'_>)
                         -> Result<(Tensor, Option<Tensor>)> {
        self.generate_impl(cond, p, true, inputs)
    }

    fn generate_impl(&mut self, cond: &Tensor, p: &DecodeParams, want_aux: bool, inputs: DecodeInputs<'_>)
                     -> Result<(Tensor, Option<Tensor>)> {
        let mut dp: sys::ngpt_decode_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_decode_params_default(&mut dp, std::mem::size_of_val(&dp)) })?;
        dp.num_inference_steps = p.steps;
        dp.guidance_scale = p.guidance_scale;
        dp.seed = p.seed;
        dp.height = p.height;
        dp.width = p.width;
        dp.num_frames = p.num_frames;
        dp.audio_length_s = p.audio_length_s;
        dp.scheduler = p.scheduler as _;
        dp.eta = p.eta;
        let lat = inputs.latents.map(borrow);
        dp.latents = opt_ptr(&lat);
        let init = inputs.init_latents.map(borrow);
        dp.init_latents = opt_ptr(&init);
        if let Some(strength) = p.strength {
            dp.strength = strength;
        }
        let mut call = DecodeCall { on_step: inputs.on_step, on_preview: inputs.on_preview, panic: None };
        if call.on_step.is_some() {
            dp.on_step = Some(decode_step);
        }
        if call.on_preview.is_some() {
            dp.on_preview = Some(decode_preview);
        }
        dp.user_data = &mut call as *mut DecodeCall as *mut c_void;
        let c = borrow(cond);
        let u = inputs.uncond.map(borrow);
        let mut t = Tensor::empty();
        let mut aux = Tensor::empty();
        let aux_ptr: *mut sys::ngpt_tensor = if want_aux { &mut aux.t } else { ptr::null_mut() };
        // SAFETY: the views, call and the closures it borrows outlive the call; dp.user_data is
        // read only by decode_step / decode_preview, as a DecodeCall.
        let st = check(unsafe {
            sys::ngpt_decoder_generate(self.ptr.as_ptr(), &mut t.t, aux_ptr, &c, opt_ptr(&u), &dp)
        });
        if let Some(payload) = call.panic.take() {
            panic::resume_unwind(payload);
        }
        st?;
        // an untouched aux stays the empty caller view (rank 0, no data)
        let aux = if want_aux && !aux.t.data.is_null() { Some(aux) } else { None };
        Ok((t, aux))
    }

    /// Stable Diffusion's safety checker (a decoder made with
    /// `sys::NGPT_DECODER_FLAG_SAFETY_CHECKER`, whose `generate` then blacks out what it flags)
    /// on images F32 [B, H, W, 3] in [0, 1] (generate's output) or U8: per image whether it is
    /// flagged, and the rounded special-care and concept scores, F32 [B, 3] and [B, 17].
    pub fn safety_check(&mut self, images: &Tensor) -> Result<(Vec<bool>, Tensor, Tensor)> {
        let im = borrow(images);
        let (mut n, mut s, mut c) = (Tensor::empty(), Tensor::empty(), Tensor::empty());
        check(unsafe { sys::ngpt_decoder_safety_check(self.ptr.as_ptr(), &mut n.t, &mut s.t, &mut c.t, &im) })?;
        let flags = n.as_bytes().iter().map(|&b| b != 0).collect();
        Ok((flags, s, c))
    }
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        if !self.lent {
            unsafe { sys::ngpt_decoder_free(self.ptr.as_ptr()) }
        }
    }
}
