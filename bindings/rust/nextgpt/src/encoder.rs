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
        Ok(Encoder { ptr: NonNull::new(out).expect("ngpt_encoder_create returned NULL"), _ctx: PhantomData })
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

    /// One sound (default clip rule) -> F32 [1, embed_dim].
    pub fn encode_audio(&mut self, audio: &Audio) -> Result<Tensor> {
        let mut t = Tensor::empty();
        check(unsafe {
            sys::ngpt_encoder_encode_audio(self.ptr.as_ptr(), &mut t.t, audio.ptr.as_ptr(), ptr::null())
        })?;
        Ok(t)
    }
}

impl Drop for Encoder<'_> {
    fn drop(&mut self) {
        unsafe { sys::ngpt_encoder_free(self.ptr.as_ptr()) }
    }
}
