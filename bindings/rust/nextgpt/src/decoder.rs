//! The diffusers decoders (SD 1.5, AudioLDM, Zeroscope).
use crate::ffi::*;
use crate::*;
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{self, NonNull};

/// Options of [`Decoder::generate`]; 0 = the decoder's defaults (50 steps, guidance 7.5, its size,
/// the folder's scheduler, 24 frames, 5 s). Build it with `..Default::default()`: fields are
/// appended.
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
}

/// `ngpt_decoder`: a diffusers pipeline folder (SD 1.5 / AudioLDM / Zeroscope). Borrows its
/// [`Context`].
pub struct Decoder<'c> {
    pub(crate) ptr: NonNull<sys::ngpt_decoder>,
    pub(crate) _ctx: PhantomData<&'c Context>,
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
        let dir = c_path(model_dir.as_ref())?;
        // SAFETY: a zeroed POD struct filled by _default with our own size.
        let mut p: sys::ngpt_decoder_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_decoder_params_default(&mut p, std::mem::size_of_val(&p)) })?;
        p.compute_dtype = o.compute_dtype;
        p.flags = o.flags;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_decoder_create(&mut out, ctx.as_ptr(), dir.as_ptr(), &p) })?;
        Ok(Decoder { ptr: NonNull::new(out).expect("ngpt_decoder_create returned NULL"), _ctx: PhantomData })
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

    /// The diffusers pipeline on conditioning `cond` (the output projector's result, as it
    /// comes: image and video [B, 77, D], audio [B, 1, D] or [B, D]), with the decoder's text
    /// encoder supplying the unconditional embedding: image F32 [B, H, W, 3] in [0, 1], audio
    /// the waveform [B, n], video [B, 3, F, H, W].
    pub fn generate(&mut self, cond: &Tensor, p: &DecodeParams) -> Result<Tensor> {
        self.generate_impl(cond, p, false).map(|(t, _)| t)
    }

    /// [`Decoder::generate`] with its second output: for an image decoder with the safety
    /// checker (`sys::NGPT_DECODER_FLAG_SAFETY_CHECKER`) the flags, BOOL `[B]` (a flagged image
    /// comes back black: this says which), for an audio decoder the mel spectrogram the vocoder
    /// read, F32 [B, 1, frames, n_mels]; `None` where the decoder has none.
    pub fn generate_with_aux(&mut self, cond: &Tensor, p: &DecodeParams) -> Result<(Tensor, Option<Tensor>)> {
        self.generate_impl(cond, p, true)
    }

    fn generate_impl(&mut self, cond: &Tensor, p: &DecodeParams, want_aux: bool) -> Result<(Tensor, Option<Tensor>)> {
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
        let c = borrow(cond);
        let mut t = Tensor::empty();
        let mut aux = Tensor::empty();
        let aux_ptr: *mut sys::ngpt_tensor = if want_aux { &mut aux.t } else { ptr::null_mut() };
        check(unsafe { sys::ngpt_decoder_generate(self.ptr.as_ptr(), &mut t.t, aux_ptr, &c, ptr::null(), &dp) })?;
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
        unsafe { sys::ngpt_decoder_free(self.ptr.as_ptr()) }
    }
}
