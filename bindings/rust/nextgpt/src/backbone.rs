//! The LLaMA/Vicuna backbone and its conversations (sessions).
use crate::ffi::*;
use crate::*;
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{self, NonNull};
use crate::callback::*;
use std::os::raw::c_void;

/// `ngpt_backbone`: the LLaMA/Vicuna language model (+ the NExT-GPT delta), read-only once
/// loaded. Conversations are [`Session`]s, which borrow it. Borrows its [`Context`].
pub struct Backbone<'c> {
    pub(crate) ptr: NonNull<sys::ngpt_backbone>,
    pub(crate) _ctx: PhantomData<&'c Context>,
}

// SAFETY: the header lets any number of sessions on any threads share a backbone (on CUDA their
// calls take turns under the context's device lock).
unsafe impl Send for Backbone<'_> {}
unsafe impl Sync for Backbone<'_> {}

impl<'c> Backbone<'c> {
    /// Load a Hugging Face LLaMA folder, with the NExT-GPT `delta` (pytorch_model.pt or
    /// delta.safetensors) when given.
    pub fn new<P: AsRef<Path>>(ctx: &'c Context, model_dir: P, delta: Option<&Path>) -> Result<Backbone<'c>> {
        Self::with_options(ctx, model_dir, delta, Options::default())
    }

    /// [`Backbone::new`] with a compute dtype and `sys::NGPT_BACKBONE_FLAG_*` bits.
    pub fn with_options<P: AsRef<Path>>(ctx: &'c Context, model_dir: P, delta: Option<&Path>, o: Options)
                                        -> Result<Backbone<'c>> {
        let dir = c_path(model_dir.as_ref())?;
        let delta = delta.map(c_path).transpose()?;
        let mut p: sys::ngpt_backbone_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_backbone_params_default(&mut p, std::mem::size_of_val(&p)) })?;
        p.delta_path = delta.as_ref().map_or(ptr::null(), |d| d.as_ptr());
        p.compute_dtype = o.compute_dtype;
        p.flags = o.flags;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_backbone_create(&mut out, ctx.as_ptr(), dir.as_ptr(), &p) })?;
        Ok(Backbone { ptr: NonNull::new(out).expect("ngpt_backbone_create returned NULL"), _ctx: PhantomData })
    }

    /// The hidden size (4096 for Vicuna-7B).
    pub fn n_embd(&self) -> i32 {
        unsafe { sys::ngpt_backbone_n_embd(self.ptr.as_ptr()) }
    }

    pub fn n_vocab(&self) -> i32 {
        unsafe { sys::ngpt_backbone_n_vocab(self.ptr.as_ptr()) }
    }

    /// A new conversation with a KV cache of `n_ctx` positions (0 = the backbone's).
    pub fn session(&self, n_ctx: i32) -> Result<Session<'_>> {
        let mut p: sys::ngpt_backbone_session_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_backbone_session_params_default(&mut p, std::mem::size_of_val(&p)) })?;
        p.n_ctx = n_ctx;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_backbone_session_create(&mut out, self.ptr.as_ptr(), &p) })?;
        Ok(Session { ptr: NonNull::new(out).expect("ngpt_backbone_session_create returned NULL"),
                     n_embd: self.n_embd() as usize, _bb: PhantomData })
    }
}

impl Drop for Backbone<'_> {
    fn drop(&mut self) {
        unsafe { sys::ngpt_backbone_free(self.ptr.as_ptr()) }
    }
}

/// Options of [`Session::turn`]; `None` / empty = the library's defaults (NExT-GPT's demo).
#[derive(Clone, Debug, Default)]
pub struct TurnParams {
    /// Modalities whose signal group is appended when the model does not start one.
    pub require: Vec<Modality>,
    pub max_new_tokens: Option<i32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
}

/// A signal group of a turn: the hidden states of its positions and the embedding rows of its
/// tokens, each [n_tokens, n_embd] row-major — the output projector's two inputs.
#[derive(Clone, Debug)]
pub struct TurnGroup {
    pub modality: Modality,
    pub n_tokens: usize,
    pub hidden: Vec<f32>,
    pub input_embs: Vec<f32>,
    /// Appended because the modality was required, not started by the model.
    pub required: bool,
}

/// A turn's answer (a copy; the C result is freed inside [`Session::turn`]).
#[derive(Clone, Debug)]
pub struct TurnResult {
    pub text: String,
    pub groups: Vec<TurnGroup>,
    /// `sys::NGPT_STOP_*`.
    pub stop_reason: sys::ngpt_stop_reason,
}

/// `ngpt_backbone_session`: one conversation's KV cache. Borrows its [`Backbone`].
pub struct Session<'b> {
    pub(crate) ptr: NonNull<sys::ngpt_backbone_session>,
    pub(crate) n_embd: usize,
    pub(crate) _bb: PhantomData<&'b ()>,
}

// SAFETY: one thread at a time per handle (turn takes &mut self); handles of one context may
// run on different threads at once (the header: CPU jobs and CUDA calls take turns).
unsafe impl Send for Session<'_> {}

impl Session<'_> {
    /// Answer one user turn with NExT-GPT's template. `media`: (modality, soft rows) pairs,
    /// rows = projected soft tokens [n_rows, n_embd] row-major (several rows are summed).
    pub fn turn(&mut self, text: &str, media: &[(Modality, &[f32])], p: &TurnParams) -> Result<TurnResult> {
        self.turn_impl(text, media, p, None)
    }

    /// [`Session::turn`] with the answer streamed to `on_text` as it is generated (pieces of
    /// whole UTF-8 characters; stop strings never reach it); returning false cancels (the
    /// result's `stop_reason` then says so). A panic in `on_text` cancels the turn and is
    /// resumed from this call once the library has returned.
    pub fn turn_streaming(&mut self, text: &str, media: &[(Modality, &[f32])], p: &TurnParams,
                          on_text: &mut dyn FnMut(&str) -> bool) -> Result<TurnResult> {
        self.turn_impl(text, media, p, Some(on_text))
    }

    fn turn_impl(&mut self, text: &str, media: &[(Modality, &[f32])], p: &TurnParams,
                 on_text: Option<&mut dyn FnMut(&str) -> bool>) -> Result<TurnResult> {
        let text = c_str(text)?;
        let mut tp: sys::ngpt_turn_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_turn_params_default(&mut tp, std::mem::size_of_val(&tp)) })?;
        tp.require_modalities = bits(&p.require);
        if let Some(v) = p.max_new_tokens { tp.max_new_tokens = v; }
        if let Some(v) = p.temperature { tp.temperature = v; }
        if let Some(v) = p.top_p { tp.top_p = v; }
        if let Some(v) = p.seed { tp.seed = v; }
        let mut tm = Vec::with_capacity(media.len());
        for (m, rows) in media {
            if rows.is_empty() || rows.len() % self.n_embd != 0 {
                return Err(Error::invalid("soft rows must be [n_rows, n_embd]"));
            }
            let n_rows = i32::try_from(rows.len() / self.n_embd).map_err(|_| Error::invalid("more than 2^31 soft rows"))?;
            tm.push(sys::ngpt_turn_media { modality: m.raw(), soft_rows: rows.as_ptr(), n_rows });
        }
        let mut call = on_text.map(|f| TokenCall { f, panic: None });
        if let Some(c) = call.as_mut() {
            tp.on_text = Some(session_text);
            tp.user_data = c as *mut TokenCall as *mut c_void;
        }
        let mut out = ptr::null_mut();
        let st = check(unsafe {
            sys::ngpt_backbone_turn(&mut out, self.ptr.as_ptr(), text.as_ptr(),
                                    if tm.is_empty() { ptr::null() } else { tm.as_ptr() }, tm.len(), &tp)
        });
        if let Some(payload) = call.and_then(|c| c.panic) {
            if !out.is_null() {
                unsafe { sys::ngpt_turn_result_free(out) };
            }
            std::panic::resume_unwind(payload);
        }
        st?;
        // Copy what the result holds, then free it (also on a failed group read).
        let r = out;
        let collect = || -> Result<TurnResult> {
            let mut len = 0usize;
            let t = unsafe { sys::ngpt_turn_result_text(r, &mut len) };
            let text = String::from_utf8_lossy(unsafe { slice(t as *const u8, len) }).into_owned();
            let mut groups = Vec::new();
            for g in 0..unsafe { sys::ngpt_turn_result_n_groups(r) } {
                let (mut m, mut n) = (0, 0);
                let (mut hid, mut emb) = (ptr::null(), ptr::null());
                check(unsafe { sys::ngpt_turn_result_group(r, g, &mut m, &mut n, &mut hid, &mut emb) })?;
                let k = n.max(0) as usize * self.n_embd;
                groups.push(TurnGroup {
                    modality: Modality::from_raw(m),
                    n_tokens: n.max(0) as usize,
                    hidden: unsafe { slice(hid, k) }.to_vec(),
                    input_embs: unsafe { slice(emb, k) }.to_vec(),
                    required: unsafe { sys::ngpt_turn_result_group_required(r, g) } != 0,
                });
            }
            Ok(TurnResult { text, groups, stop_reason: unsafe { sys::ngpt_turn_result_stop_reason(r) } })
        };
        let res = collect();
        unsafe { sys::ngpt_turn_result_free(r) };
        res
    }

    /// Forget the conversation.
    pub fn reset(&mut self) -> Result<()> {
        check(unsafe { sys::ngpt_backbone_session_reset(self.ptr.as_ptr()) })
    }

    /// Positions in the KV cache.
    pub fn n_past(&self) -> i32 {
        unsafe { sys::ngpt_backbone_session_n_past(self.ptr.as_ptr()) }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        unsafe { sys::ngpt_backbone_session_free(self.ptr.as_ptr()) }
    }
}
