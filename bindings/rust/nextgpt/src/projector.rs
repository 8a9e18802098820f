//! NExT-GPT's input and output projectors.
use crate::ffi::*;
use crate::*;
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{self, NonNull};

/// `ngpt_projector`: NExT-GPT's input projector (embedding -> soft token) and output projectors
/// (signal hidden states -> decoder conditioning). Borrows its [`Context`].
pub struct Projector<'c> {
    pub(crate) ptr: NonNull<sys::ngpt_projector>,
    pub(crate) _ctx: PhantomData<&'c Context>,
    /// Lent by a pipeline ([`crate::Borrowed`]): freed by its owner, never by Drop.
    pub(crate) lent: bool,
}

// SAFETY: one thread at a time per handle (the compute calls take &mut self); handles of one context may
// run on different threads at once (the header: CPU jobs and CUDA calls take turns).
unsafe impl Send for Projector<'_> {}

impl<'c> Projector<'c> {
    /// Load the projectors at `path` (a projector folder or the NExT-GPT delta). `input`: load
    /// the input projector; `outputs`: the output projectors to load (both empty/false = all).
    pub fn new<P: AsRef<Path>>(ctx: &'c Context, path: P, input: bool, outputs: &[Modality]) -> Result<Projector<'c>> {
        let path = c_path(path.as_ref())?;
        let mut p: sys::ngpt_projector_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_projector_params_default(&mut p, std::mem::size_of_val(&p)) })?;
        p.modalities = if input { sys::NGPT_PROJECTOR_INPUT } else { 0 } | output_bits(outputs)?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_projector_create(&mut out, ctx.as_ptr(), path.as_ptr(), &p) })?;
        Ok(Projector { ptr: NonNull::new(out).expect("ngpt_projector_create returned NULL"), _ctx: PhantomData, lent: false })
    }

    /// features [n, input_dim] -> F32 [n, llm_hidden]: one soft token per row.
    pub fn input(&mut self, features: &Tensor) -> Result<Tensor> {
        let f = borrow(features);
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_projector_input(self.ptr.as_ptr(), &mut t.t, &f) })?;
        Ok(t)
    }

    /// Several media items of one modality in one segment, as NExT-GPT combines them: each row
    /// of `features` [n, input_dim] (n >= 1; `[input_dim]` for one item) projected (bias
    /// included), the projections summed in order -> F32 [1, llm_hidden]. Not
    /// [`Projector::input`] of the summed features: the bias counts n times.
    pub fn input_sum(&mut self, features: &Tensor) -> Result<Tensor> {
        let f = borrow(features);
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_projector_input_sum(self.ptr.as_ptr(), &mut t.t, &f) })?;
        Ok(t)
    }

    /// One signal group (batch 1): `hidden` and `input_embs` are [n_tokens, llm_hidden] row-major
    /// -> F32 [1, n_out, out_dim], the decoder's conditioning.
    pub fn output(&mut self, modality: Modality, hidden: &[f32], input_embs: &[f32]) -> Result<Tensor> {
        let h = self.llm_hidden_size() as i64;
        if h == 0 || hidden.len() as i64 % h != 0 || hidden.len() != input_embs.len() {
            return Err(Error::invalid("hidden and input_embs must both be [n_tokens, llm_hidden]"));
        }
        let shape = [1, hidden.len() as i64 / h, h];
        let (hv, ev) = (f32_view(hidden, &shape)?, f32_view(input_embs, &shape)?);
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_projector_output(self.ptr.as_ptr(), &mut t.t, modality.raw(), &hv, &ev) })?;
        Ok(t)
    }

    /// The LLM hidden size (4096 for NExT-GPT).
    pub fn llm_hidden_size(&self) -> i32 {
        unsafe { sys::ngpt_projector_llm_hidden_size(self.ptr.as_ptr()) }
    }

    /// Signal tokens the output projector of `modality` reads (4 / 8 / 24); 0 when not loaded.
    pub fn num_input_tokens(&self, modality: Modality) -> i32 {
        unsafe { sys::ngpt_projector_num_input_tokens(self.ptr.as_ptr(), modality.raw()) }
    }

    /// Whether the input projector is loaded.
    pub fn has_input(&self) -> bool {
        unsafe { sys::ngpt_projector_has_input(self.ptr.as_ptr()) != 0 }
    }

    /// Whether the output projector of `modality` is loaded.
    pub fn has_output(&self, modality: Modality) -> bool {
        unsafe { sys::ngpt_projector_has_output(self.ptr.as_ptr(), modality.raw()) != 0 }
    }

    /// The input projector's input width (1024, ImageBind's embedding); 0 without one.
    pub fn input_dim(&self) -> i32 {
        unsafe { sys::ngpt_projector_input_dim(self.ptr.as_ptr()) }
    }

    /// The conditioning width of `modality`'s output projector (768 / 512 / 1024); 0 when not loaded.
    pub fn output_dim(&self, modality: Modality) -> i32 {
        unsafe { sys::ngpt_projector_output_dim(self.ptr.as_ptr(), modality.raw()) }
    }

    /// The query tokens `modality`'s output projector gives (77 / 1 / 77); 0 when not loaded.
    pub fn num_output_tokens(&self, modality: Modality) -> i32 {
        unsafe { sys::ngpt_projector_num_output_tokens(self.ptr.as_ptr(), modality.raw()) }
    }

    /// The transformer width of `modality`'s output projector (512 for NExT-GPT); 0 when not
    /// loaded.
    pub fn d_model(&self, modality: Modality) -> i32 {
        unsafe { sys::ngpt_projector_d_model(self.ptr.as_ptr(), modality.raw()) }
    }

    /// The attention heads of `modality`'s output projector (4 for NExT-GPT); 0 when not loaded.
    pub fn nhead(&self, modality: Modality) -> i32 {
        unsafe { sys::ngpt_projector_nhead(self.ptr.as_ptr(), modality.raw()) }
    }
}

impl Drop for Projector<'_> {
    fn drop(&mut self) {
        if !self.lent {
            unsafe { sys::ngpt_projector_free(self.ptr.as_ptr()) }
        }
    }
}
