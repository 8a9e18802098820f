//! ImageBind: media in, embeddings out.
use crate::ffi::*;
use crate::*;
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{self, NonNull};

/// `ngpt_encoder`: ImageBind (vision and audio branches). Borrows its [`Context`].
pub struct Encoder<'c> {
    pub(crate) ptr: NonNull<sys::ngpt_encoder>,
    pub(crate) _ctx: PhantomData<&'c Context>,
    /// Lent by a pipeline ([`crate::Borrowed`]): freed by its owner, never by Drop.
    pub(crate) lent: bool,
}

// SAFETY: one thread at a time per handle (the stateful calls take &mut self); handles of one context may
// run on different threads at once (the header: CPU jobs and CUDA calls take turns).
unsafe impl Send for Encoder<'_> {}

impl<'c> Encoder<'c> {
    /// Load ImageBind from `path` (imagebind_huge.pth, a .safetensors, or a folder with
    /// config.json); `modalities` = `sys::NGPT_ENCODER_*` bits to load, 0 = every stored branch.
    pub fn new<P: AsRef<Path>>(ctx: &'c Context, path: P, modalities: u32) -> Result<Encoder<'c>> {
        Self::with_options(ctx, path, modalities, Options::default())
    }

    /// [`Encoder::new`] with a compute dtype and `sys::NGPT_ENCODER_FLAG_*` bits.
    pub fn with_options<P: AsRef<Path>>(ctx: &'c Context, path: P, modalities: u32, o: Options) -> Result<Encoder<'c>> {
        let path = c_path(path.as_ref())?;
        // SAFETY: a zeroed POD struct filled by _default with our own size.
        let mut p: sys::ngpt_encoder_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_encoder_params_default(&mut p, std::mem::size_of_val(&p)) })?;
        p.modalities = modalities;
        p.compute_dtype = o.compute_dtype;
        p.flags = o.flags;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_encoder_create(&mut out, ctx.as_ptr(), path.as_ptr(), &p) })?;
        Ok(Encoder { ptr: NonNull::new(out).expect("ngpt_encoder_create returned NULL"), _ctx: PhantomData, lent: false })
    }

    /// The embedding size (1024 for imagebind_huge).
    pub fn embed_dim(&self) -> i32 {
        unsafe { sys::ngpt_encoder_embed_dim(self.ptr.as_ptr()) }
    }

    /// One image -> F32 [1, embed_dim], L2-normalised.
    pub fn encode_image(&mut self, image: &Image) -> Result<Tensor> {
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_encoder_encode_image(self.ptr.as_ptr(), &mut t.t, image.ptr.as_ptr()) })?;
        Ok(t)
    }

    /// The `sys::NGPT_ENCODER_*` bits this encoder can encode: `IMAGE | VIDEO` when the vision
    /// branch is loaded, `AUDIO` when the audio branch is.
    pub fn modalities(&self) -> u32 {
        unsafe { sys::ngpt_encoder_modalities(self.ptr.as_ptr()) }
    }

    /// The vision branch on preprocessed pixels ([`Image::preprocess`], [`video_preprocess`]),
    /// any float dtype -> F32 [N, embed_dim]:
    /// `[N, 3, 224, 224]` N images; `[N, 3, 2, 224, 224]` N single clips (no averaging);
    /// `[N, S, 3, 2, 224, 224]` N videos of S clips, averaged (224 and 2: the config's
    /// image_size and video_frames). Another shape is `NGPT_ERR_SHAPE_MISMATCH`; an encoder
    /// without the vision branch `NGPT_ERR_UNSUPPORTED`.
    pub fn encode_pixels(&mut self, pixels: &Tensor) -> Result<Tensor> {
        let v = borrow(pixels);
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_encoder_encode_pixels(self.ptr.as_ptr(), &mut t.t, &v) })?;
        Ok(t)
    }

    /// The audio branch on fbank clips ([`Audio::preprocess`]), any float dtype -> F32
    /// [N, embed_dim]: `[N, S, 1, 128, 204]` N sounds of S clips, averaged; `[S, 1, 128, 204]`
    /// one sound (-> [1, embed_dim]). Another shape is `NGPT_ERR_SHAPE_MISMATCH`; an encoder
    /// without the audio branch `NGPT_ERR_UNSUPPORTED`.
    pub fn encode_fbank(&mut self, fbank: &Tensor) -> Result<Tensor> {
        let v = borrow(fbank);
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_encoder_encode_fbank(self.ptr.as_ptr(), &mut t.t, &v) })?;
        Ok(t)
    }

    /// One sound (default clip rule) -> F32 [1, embed_dim].
    pub fn encode_audio(&mut self, audio: &Audio) -> Result<Tensor> {
        let mut t = Tensor::empty();
        check(unsafe {
            sys::ngpt_encoder_encode_audio(self.ptr.as_ptr(), &mut t.t, audio.ptr.as_ptr(), ptr::null())
        })?;
        Ok(t)
    }

    /// One sound ([`Audio::preprocess_with`]`(p)` + [`Encoder::encode_fbank`]) -> F32 [1, embed_dim].
    pub fn encode_audio_with(&mut self, audio: &Audio, p: &AudioPreprocessParams) -> Result<Tensor> {
        let pp = p.raw();
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_encoder_encode_audio(self.ptr.as_ptr(), &mut t.t, audio.ptr.as_ptr(), &pp) })?;
        Ok(t)
    }

    /// One video file (default clip rule): [`video_preprocess`]'s 15 clips through the vision
    /// branch, averaged -> F32 [1, embed_dim].
    pub fn encode_video_file<P: AsRef<Path>>(&mut self, path: P) -> Result<Tensor> {
        self.encode_video_file_with(path, &VideoPreprocessParams::default())
    }

    /// [`Encoder::encode_video_file`] with options (the clip rule).
    pub fn encode_video_file_with<P: AsRef<Path>>(&mut self, path: P, p: &VideoPreprocessParams) -> Result<Tensor> {
        let path = c_path(path.as_ref())?;
        let pp = p.raw();
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_encoder_encode_video_file(self.ptr.as_ptr(), &mut t.t, path.as_ptr(), &pp) })?;
        Ok(t)
    }
}

impl Drop for Encoder<'_> {
    fn drop(&mut self) {
        if !self.lent {
            unsafe { sys::ngpt_encoder_free(self.ptr.as_ptr()) }
        }
    }
}
