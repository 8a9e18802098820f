//! The whole NExT-GPT conversation from a bundle folder.
use crate::ffi::*;
use crate::*;
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{self, NonNull};
use crate::callback::*;
use std::os::raw::c_void;

/// Options of [`Pipeline::turn`]; `None` / 0 / empty = the library's defaults.
#[derive(Clone, Debug, Default)]
pub struct PipelineTurnParams {
    /// Answer with these modalities even when the model emits no signal tokens for them.
    pub force: Vec<Modality>,
    /// Denoising steps (0 = 50).
    pub steps: i32,
    /// Sampling and the decoders' initial noise.
    pub seed: u64,
    pub max_new_tokens: Option<i32>,
}

/// A media output of a pipeline turn.
#[derive(Clone, Debug)]
pub struct PipelineOutput {
    pub modality: Modality,
    /// The encoded file (PNG / WAV / MP4), or the reason it was not produced.
    pub result: std::result::Result<Vec<u8>, Error>,
    /// "png", "wav", "mp4" ("" when not produced).
    pub format: String,
    /// An image the safety checker blacked out (`sys::NGPT_PIPELINE_SAFETY_CHECKER`).
    pub nsfw: bool,
}

/// A pipeline turn (a copy; the C result is freed inside [`Pipeline::turn`]).
#[derive(Clone, Debug)]
pub struct PipelineResult {
    pub text: String,
    pub outputs: Vec<PipelineOutput>,
    pub cancelled: bool,
}

/// `ngpt_pipeline`: a whole NExT-GPT conversation from a bundle folder, every stage loaded once.
/// Borrows its [`Context`].
pub struct Pipeline<'c> {
    pub(crate) ptr: NonNull<sys::ngpt_pipeline>,
    _ctx: PhantomData<&'c Context>,
}

// SAFETY: one thread at a time per handle (turn takes &mut self); handles of one context may
// run on different threads at once (the header: CPU jobs and CUDA calls take turns).
unsafe impl Send for Pipeline<'_> {}

unsafe extern "C" fn pipeline_event(ev: *const sys::ngpt_pipeline_event, user: *mut c_void) -> bool {
    // SAFETY: user is the &mut TokenCall passed by Pipeline::turn, alive for the call; ev is valid
    // during the callback and its text holds text_len bytes (not NUL-terminated).
    let (ev, call) = unsafe { (&*ev, &mut *(user as *mut TokenCall)) };
    if ev.kind != sys::NGPT_PIPELINE_EVENT_TOKEN || call.panic.is_some() {
        return call.panic.is_none();
    }
    let piece = String::from_utf8_lossy(unsafe { slice(ev.text as *const u8, ev.text_len) });
    call_text(call, &piece)
}

impl<'c> Pipeline<'c> {
    /// Load the bundle in `bundle_dir` (bundle.json); `preload`: decoders to load now (else on
    /// first use).
    pub fn new<P: AsRef<Path>>(ctx: &'c Context, bundle_dir: P, preload: &[Modality]) -> Result<Pipeline<'c>> {
        Self::with_options(ctx, bundle_dir, preload, Options::default())
    }

    /// [`Pipeline::new`] with a compute dtype and `sys::NGPT_PIPELINE_*` flag bits
    /// (`NGPT_PIPELINE_NO_MEDIA_HISTORY`, `NGPT_PIPELINE_CUDA_GRAPHS`, `NGPT_PIPELINE_CHANNELS_LAST`).
    pub fn with_options<P: AsRef<Path>>(ctx: &'c Context, bundle_dir: P, preload: &[Modality], o: Options)
                                        -> Result<Pipeline<'c>> {
        let dir = c_path(bundle_dir.as_ref())?;
        let mut p: sys::ngpt_pipeline_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_pipeline_params_default(&mut p, std::mem::size_of_val(&p)) })?;
        p.preload = output_bits(preload)?;
        p.compute_dtype = o.compute_dtype;
        p.flags = o.flags;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_pipeline_create(&mut out, ctx.as_ptr(), dir.as_ptr(), &p) })?;
        Ok(Pipeline { ptr: NonNull::new(out).expect("ngpt_pipeline_create returned NULL"), _ctx: PhantomData })
    }

    /// True for a bundle with random weights (the tiny test model).
    pub fn is_test_model(&self) -> bool {
        unsafe { sys::ngpt_pipeline_is_test_model(self.ptr.as_ptr()) != 0 }
    }

    /// Forget the conversation.
    pub fn reset(&mut self) -> Result<()> {
        check(unsafe { sys::ngpt_pipeline_reset(self.ptr.as_ptr()) })
    }

    /// One user turn: `text` and media files (modality, path). `on_token` receives the answer
    /// as it is generated; returning false cancels (the result then says `cancelled`). A panic in
    /// `on_token` cancels the turn and is resumed from this call once the library has returned.
    pub fn turn(&mut self, text: &str, media: &[(Modality, &Path)], p: &PipelineTurnParams,
                on_token: Option<&mut dyn FnMut(&str) -> bool>) -> Result<PipelineResult> {
        let text = c_str(text)?;
        let paths = media.iter().map(|(_, path)| c_path(path)).collect::<Result<Vec<_>>>()?;
        let items: Vec<sys::ngpt_pipeline_media> = media.iter().zip(&paths).map(|((m, _), path)| {
            sys::ngpt_pipeline_media { modality: m.raw(), path: path.as_ptr(), data: ptr::null(), size: 0,
                                       image: ptr::null(), audio: ptr::null() }
        }).collect();
        let mut tp: sys::ngpt_pipeline_turn_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_pipeline_turn_params_default(&mut tp, std::mem::size_of_val(&tp)) })?;
        tp.force = bits(&p.force);
        tp.steps = p.steps;
        tp.seed = p.seed;
        if let Some(v) = p.max_new_tokens { tp.max_new_tokens = v; }
        let mut call = on_token.map(|f| TokenCall { f, panic: None });
        if let Some(c) = call.as_mut() {
            tp.on_event = Some(pipeline_event);
            tp.user_data = c as *mut TokenCall as *mut c_void;
        }
        let mut out = ptr::null_mut();
        let st = check(unsafe {
            sys::ngpt_pipeline_turn(&mut out, self.ptr.as_ptr(), text.as_ptr(),
                                    if items.is_empty() { ptr::null() } else { items.as_ptr() }, items.len(), &tp)
        });
        if let Some(payload) = call.and_then(|c| c.panic) {
            if !out.is_null() {
                unsafe { sys::ngpt_pipeline_result_free(out) };
            }
            std::panic::resume_unwind(payload);
        }
        st?;
        let r = out;
        let mut len = 0usize;
        let t = unsafe { sys::ngpt_pipeline_result_text(r, &mut len) };
        let text = String::from_utf8_lossy(unsafe { slice(t as *const u8, len) }).into_owned();
        let mut outputs = Vec::new();
        for i in 0..unsafe { sys::ngpt_pipeline_result_n_outputs(r) } {
            let (mut m, mut bytes, mut size, mut fmt) = (0, ptr::null(), 0usize, ptr::null());
            let st = unsafe { sys::ngpt_pipeline_result_output(r, i, &mut m, &mut bytes, &mut size, &mut fmt) };
            let result = if st == sys::NGPT_OK {
                Ok(unsafe { slice(bytes, size) }.to_vec())
            } else {
                let message = unsafe { owned(sys::ngpt_pipeline_result_output_message(r, i)) }.unwrap_or_default();
                Err(Error { status: st as i32, message })
            };
            outputs.push(PipelineOutput { modality: Modality::from_raw(m), result,
                                          format: unsafe { owned(fmt) }.unwrap_or_default(),
                                          nsfw: unsafe { sys::ngpt_pipeline_result_output_nsfw(r, i) } != 0 });
        }
        let cancelled = unsafe { sys::ngpt_pipeline_result_cancelled(r) } != 0;
        unsafe { sys::ngpt_pipeline_result_free(r) };
        Ok(PipelineResult { text, outputs, cancelled })
    }
}

impl Drop for Pipeline<'_> {
    fn drop(&mut self) {
        unsafe { sys::ngpt_pipeline_free(self.ptr.as_ptr()) }
    }
}
