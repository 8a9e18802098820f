//! The whole NExT-GPT conversation from a bundle folder.
use crate::ffi::*;
use crate::*;
use std::any::Any;
use std::ffi::{CStr, OsStr};
use std::marker::PhantomData;
use std::os::raw::c_void;
use std::os::unix::ffi::OsStrExt;
use crate::callback::caught;
use std::panic::resume_unwind;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};

/// Options of [`Pipeline::with_params`] (the fields of `ngpt_pipeline_params` a Rust program
/// sets); `Default` = the library's defaults.
#[derive(Clone, Debug, Default)]
pub struct PipelineParams {
    /// Decoders loaded at create (else on first use).
    pub preload: Vec<Modality>,
    /// The conversation's KV cache in positions; 0 = min(2048, the model's).
    pub n_ctx: i32,
    /// Compute dtype and `sys::NGPT_PIPELINE_*` flag bits (see [`Pipeline::with_options`]).
    pub options: Options,
}

/// Options of [`Pipeline::turn`] and [`Pipeline::turn_with`]; `None` / 0 / empty = the library's
/// defaults (NExT-GPT's demo). Build it with `..Default::default()`: fields are appended.
#[derive(Clone, Debug, Default)]
pub struct PipelineTurnParams {
    /// Answer with these modalities even when the model emits no signal tokens for them (the
    /// text stops early enough to leave their groups room). Image, audio or video.
    pub force: Vec<Modality>,
    /// Denoising steps in 0..=1000 (0 = 50).
    pub steps: i32,
    /// Sampling and the decoders' initial noise (default 0).
    pub seed: u64,
    /// Most answer tokens (default 246).
    pub max_new_tokens: Option<i32>,
    /// Sampling temperature (default 1.0; 0 = greedy).
    pub temperature: Option<f32>,
    /// Top-k sampling (0 = off, the default).
    pub top_k: i32,
    /// Nucleus sampling (default 0.01).
    pub top_p: Option<f32>,
    /// Repetition penalty (default 1 = off).
    pub repetition_penalty: Option<f32>,
    /// Classifier-free guidance of the decoders, finite (0 = 7.5).
    pub guidance_scale: f32,
    /// `sys::NGPT_SCHEDULER_*` (0 = AUTO: the decoder folder's scheduler_config.json).
    pub scheduler: sys::ngpt_scheduler_kind,
    /// Image / video pixels, multiples of 8 up to `sys::NGPT_DECODE_MAX_SIDE` (0 = the
    /// decoder's: SD's sample_size x 8).
    pub height: i32,
    pub width: i32,
    /// Video frames in 0..=256 (0 = 24).
    pub num_frames: i32,
    /// Audio seconds in 0..=60 (0 = 5).
    pub audio_length_s: f64,
    /// The MP4's frame rate in 0..=1000 (0 = 8, NExT-GPT's).
    pub video_fps: f32,
    /// Stops the turn when set from another thread (`None` = no flag).
    pub cancel: Option<CancelFlag>,
}

/// Where a media item of [`Pipeline::turn_with`] comes from.
#[derive(Clone, Copy)]
pub enum MediaSource<'a> {
    /// A file: an image (JPEG, PNG), a sound (WAV ...) or a video (MP4 ...).
    Path(&'a Path),
    /// An encoded image or sound file held in memory (not video: a video is read from a file).
    Bytes(&'a [u8]),
    /// Decoded pixels (modality Image).
    Image(&'a Image),
    /// Decoded samples (modality Audio).
    Audio(&'a Audio),
}

/// What a pipeline reports while it works (`ngpt_pipeline_event`); `elapsed_s`: seconds since
/// the call (create or turn) began.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PipelineEvent {
    /// A component is about to load: "language model", "imagebind", "projectors" (at create;
    /// `modality` Text), "image decoder", "audio decoder", "video decoder" (`modality` its own).
    Load { component: String, modality: Modality, elapsed_s: f64 },
    /// `step` of the turn's `total` media items are encoded (items are encoded images first,
    /// then sounds, then videos; `modality` is the one just encoded).
    Encode { modality: Modality, step: i32, total: i32, elapsed_s: f64 },
    /// A piece of the answer text.
    Token { text: String, elapsed_s: f64 },
    /// Denoising step `step` (1-based) of `total` of the `modality` output.
    Denoise { modality: Modality, step: i32, total: i32, elapsed_s: f64 },
    /// Output `step` (0-based, of `total`) of `modality` is finished.
    Output { modality: Modality, step: i32, total: i32, elapsed_s: f64 },
}

impl PipelineEvent {
    /// Seconds since the call began.
    pub fn elapsed_s(&self) -> f64 {
        match self {
            PipelineEvent::Load { elapsed_s, .. }
            | PipelineEvent::Encode { elapsed_s, .. }
            | PipelineEvent::Token { elapsed_s, .. }
            | PipelineEvent::Denoise { elapsed_s, .. }
            | PipelineEvent::Output { elapsed_s, .. } => *elapsed_s,
        }
    }

    /// A copy of `ev`; None for a kind this crate does not know.
    ///
    /// # Safety
    /// `ev.text` holds `ev.text_len` bytes (or is NULL).
    unsafe fn from_raw(ev: &sys::ngpt_pipeline_event) -> Option<PipelineEvent> {
        let text = || String::from_utf8_lossy(unsafe { slice(ev.text as *const u8, ev.text_len) }).into_owned();
        let (modality, step, total, elapsed_s) = (Modality::from_raw(ev.modality), ev.step, ev.total, ev.elapsed_s);
        Some(match ev.kind {
            sys::NGPT_PIPELINE_EVENT_LOAD => PipelineEvent::Load { component: text(), modality, elapsed_s },
            sys::NGPT_PIPELINE_EVENT_ENCODE => PipelineEvent::Encode { modality, step, total, elapsed_s },
            sys::NGPT_PIPELINE_EVENT_TOKEN => PipelineEvent::Token { text: text(), elapsed_s },
            sys::NGPT_PIPELINE_EVENT_DENOISE => PipelineEvent::Denoise { modality, step, total, elapsed_s },
            sys::NGPT_PIPELINE_EVENT_OUTPUT => PipelineEvent::Output { modality, step, total, elapsed_s },
            _ => return None,
        })
    }
}

/// The stages of a turn (`ngpt_pipeline_stage`): the index of [`PipelineResult::stage_ms`] and
/// [`PipelineResult::stage_memory`] (`stage as usize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PipelineStage {
    /// Decoders loaded during the turn.
    Load = sys::NGPT_PIPELINE_STAGE_LOAD as isize,
    /// Media decoding + ImageBind.
    Encode = sys::NGPT_PIPELINE_STAGE_ENCODE as isize,
    /// Input and output projectors.
    Project = sys::NGPT_PIPELINE_STAGE_PROJECT as isize,
    /// Prompt + generation.
    Llm = sys::NGPT_PIPELINE_STAGE_LLM as isize,
    /// Diffusion + VAE (+ vocoder).
    Decode = sys::NGPT_PIPELINE_STAGE_DECODE as isize,
    /// PNG / WAV / MP4 encoding.
    MediaOut = sys::NGPT_PIPELINE_STAGE_MEDIA_OUT as isize,
}

impl PipelineStage {
    /// Every stage, in index order.
    pub const ALL: [PipelineStage; 6] = [PipelineStage::Load, PipelineStage::Encode, PipelineStage::Project,
                                         PipelineStage::Llm, PipelineStage::Decode, PipelineStage::MediaOut];
}

const _: () = assert!(PipelineStage::ALL.len() == sys::NGPT_PIPELINE_STAGE_COUNT as usize);

/// Peak tensor memory the context held during a stage, in bytes: host (the CPU backend's
/// allocations, mmapped weights not counted) and device (0 on a CPU context). Everything the
/// context holds counts, other handles' tensors too when they work at the same time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageMemory {
    pub host: u64,
    pub device: u64,
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

/// A pipeline turn (a copy; the C result is freed inside the turn call).
#[derive(Clone, Debug)]
pub struct PipelineResult {
    pub text: String,
    pub outputs: Vec<PipelineOutput>,
    pub cancelled: bool,
    /// How many of the turn's outputs re-entered the conversation's history as media (0 when
    /// none was produced, or with `NGPT_PIPELINE_NO_MEDIA_HISTORY`), or the error that kept them
    /// out: the cached answer then stays as generated, except after a failure while the
    /// re-written answer was evaluated, when the cache ends where the answer began
    /// ([`Pipeline::reset`] to start clean).
    pub history: std::result::Result<usize, Error>,
    /// Wall-clock milliseconds per stage, indexed by [`PipelineStage`] `as usize`.
    pub stage_ms: Vec<f64>,
    /// Peak tensor memory per stage (the high-water mark over its intervals), indexed by
    /// [`PipelineStage`] `as usize`.
    pub stage_memory: Vec<StageMemory>,
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

/// The event callback of a create or turn and the panic it raised, if any: a panic must not
/// unwind into C, so it cancels the call and is resumed once the C call has returned.
struct EventCall<'a> {
    f: &'a mut dyn FnMut(PipelineEvent) -> bool,
    panic: Option<Box<dyn Any + Send>>,
}

impl EventCall<'_> {
    /// Point `on_event` / `user_data` of a params struct at `call` (None: no callback).
    fn install(call: &mut Option<EventCall>) -> (sys::ngpt_pipeline_event_fn, *mut c_void) {
        match call.as_mut() {
            Some(c) => (Some(pipeline_event), c as *mut EventCall as *mut c_void),
            None => (None, ptr::null_mut()),
        }
    }
}

unsafe extern "C" fn pipeline_event(ev: *const sys::ngpt_pipeline_event, user: *mut c_void) -> bool {
    // SAFETY: user is the &mut EventCall installed by the create / turn call, alive for the
    // call; ev is valid during the callback and its text holds text_len bytes.
    let (ev, call) = unsafe { (&*ev, &mut *(user as *mut EventCall)) };
    let Some(event) = (unsafe { PipelineEvent::from_raw(ev) }) else { return true };
    let f = &mut call.f;
    caught(&mut call.panic, || f(event))
}

impl<'c> Pipeline<'c> {
    /// Load the bundle in `bundle_dir` (bundle.json); `preload`: decoders to load now (else on
    /// first use).
    pub fn new<P: AsRef<Path>>(ctx: &'c Context, bundle_dir: P, preload: &[Modality]) -> Result<Pipeline<'c>> {
        Self::with_options(ctx, bundle_dir, preload, Options::default())
    }

    /// [`Pipeline::new`] with a compute dtype and `sys::NGPT_PIPELINE_*` flag bits
    /// (`NGPT_PIPELINE_NO_MEDIA_HISTORY`, `NGPT_PIPELINE_CUDA_GRAPHS`, `NGPT_PIPELINE_CHANNELS_LAST`,
    /// `NGPT_PIPELINE_SAFETY_CHECKER`).
    pub fn with_options<P: AsRef<Path>>(ctx: &'c Context, bundle_dir: P, preload: &[Modality], o: Options)
                                        -> Result<Pipeline<'c>> {
        let p = PipelineParams { preload: preload.to_vec(), n_ctx: 0, options: o };
        Self::with_params(ctx, bundle_dir, &p, None)
    }

    /// [`Pipeline::new`] with every option of `ngpt_pipeline_params`; `on_event` receives the
    /// [`PipelineEvent::Load`] events of the parts as they load. Returning false cancels: the
    /// create fails with `NGPT_ERR_CANCELLED`. A panic in `on_event` cancels too and is resumed
    /// from this call once the library has returned.
    pub fn with_params<P: AsRef<Path>>(ctx: &'c Context, bundle_dir: P, params: &PipelineParams,
                                       on_event: Option<&mut dyn FnMut(PipelineEvent) -> bool>)
                                       -> Result<Pipeline<'c>> {
        let dir = c_path(bundle_dir.as_ref())?;
        // SAFETY: a zeroed POD struct filled by _default with our own size.
        let mut p: sys::ngpt_pipeline_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_pipeline_params_default(&mut p, std::mem::size_of_val(&p)) })?;
        p.preload = output_bits(&params.preload)?;
        p.n_ctx = params.n_ctx;
        p.compute_dtype = params.options.compute_dtype;
        p.flags = params.options.flags;
        let mut call = on_event.map(|f| EventCall { f, panic: None });
        (p.on_event, p.user_data) = EventCall::install(&mut call);
        let mut out = ptr::null_mut();
        let st = check(unsafe { sys::ngpt_pipeline_create(&mut out, ctx.as_ptr(), dir.as_ptr(), &p) });
        if let Some(payload) = call.and_then(|c| c.panic) {
            unsafe { sys::ngpt_pipeline_free(out) }; // NULL (the create failed) is a no-op
            resume_unwind(payload);
        }
        st?;
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

    /// Free the loaded decoder of `modality` (image, audio or video); it reloads on its next use.
    pub fn release_decoder(&mut self, modality: Modality) -> Result<()> {
        check(unsafe { sys::ngpt_pipeline_release_decoder(self.ptr.as_ptr(), modality.raw()) })
    }

    /// The bundle's decoder folder for `modality`, absolute (bundle.json's entry joined to the
    /// bundle folder, made absolute against the working directory at create), or None when the
    /// bundle has none (and for Text).
    pub fn decoder_path(&self, modality: Modality) -> Option<PathBuf> {
        let p = unsafe { sys::ngpt_pipeline_decoder_path(self.ptr.as_ptr(), modality.raw()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: a NUL-terminated string owned by the pipeline, copied at once.
        let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
        Some(PathBuf::from(OsStr::from_bytes(bytes)))
    }

    /// The pipeline's language model, lent (read-only: its methods take `&self`).
    pub fn backbone(&self) -> Option<Borrowed<'_, Backbone<'c>>> {
        let p = NonNull::new(unsafe { sys::ngpt_pipeline_backbone(self.ptr.as_ptr()) })?;
        Some(Borrowed::new(Backbone { ptr: p, _ctx: PhantomData, lent: true }))
    }

    /// The pipeline's ImageBind, lent; `&mut self` so that no other lent stage is used meanwhile.
    pub fn encoder(&mut self) -> Option<Borrowed<'_, Encoder<'_>>> {
        let p = NonNull::new(unsafe { sys::ngpt_pipeline_encoder(self.ptr.as_ptr()) })?;
        Some(Borrowed::new(Encoder { ptr: p, _ctx: PhantomData, lent: true }))
    }

    /// The pipeline's projectors, lent; `&mut self` so that no other lent stage is used meanwhile.
    pub fn projector(&mut self) -> Option<Borrowed<'_, Projector<'_>>> {
        let p = NonNull::new(unsafe { sys::ngpt_pipeline_projector(self.ptr.as_ptr()) })?;
        Some(Borrowed::new(Projector { ptr: p, _ctx: PhantomData, lent: true }))
    }

    /// The decoder of `modality`, lent; None until it is loaded (by `preload` or a turn that
    /// produced that modality), after [`Pipeline::release_decoder`], and for Text.
    pub fn decoder(&mut self, modality: Modality) -> Option<Borrowed<'_, Decoder<'_>>> {
        let p = NonNull::new(unsafe { sys::ngpt_pipeline_decoder(self.ptr.as_ptr(), modality.raw()) })?;
        Some(Borrowed::new(Decoder { ptr: p, _ctx: PhantomData, lent: true }))
    }

    /// The conversation's backbone session, lent read-only for inspection (`n_past`, `n_ctx`,
    /// the logits and hidden rows of the last evaluated position). Turns and evals on it directly
    /// would desync the pipeline (the header): use [`Pipeline::turn_with`] and [`Pipeline::reset`].
    pub fn session(&mut self) -> Option<Borrowed<'_, Session<'_>>> {
        let p = NonNull::new(unsafe { sys::ngpt_pipeline_session(self.ptr.as_ptr()) })?;
        // SAFETY: a pipeline with a session has its backbone (NULL would give 0).
        let bb = unsafe { sys::ngpt_pipeline_backbone(self.ptr.as_ptr()) };
        let (n_embd, n_vocab) = unsafe { (sys::ngpt_backbone_n_embd(bb), sys::ngpt_backbone_n_vocab(bb)) };
        Some(Borrowed::new(Session { ptr: p, n_embd: n_embd.max(0) as usize, n_vocab: n_vocab.max(0) as usize,
                                     _bb: PhantomData, lent: true }))
    }

    /// One user turn: `text` and media files (modality, path). `on_token` receives the answer
    /// as it is generated; returning false cancels (the result then says `cancelled`). A panic in
    /// `on_token` cancels the turn and is resumed from this call once the library has returned.
    /// [`Pipeline::turn_with`] takes media from memory and reports every stage.
    pub fn turn(&mut self, text: &str, media: &[(Modality, &Path)], p: &PipelineTurnParams,
                on_token: Option<&mut dyn FnMut(&str) -> bool>) -> Result<PipelineResult> {
        let media: Vec<(Modality, MediaSource)> = media.iter().map(|&(m, path)| (m, MediaSource::Path(path))).collect();
        match on_token {
            Some(f) => {
                let mut tokens = |ev: PipelineEvent| match ev {
                    PipelineEvent::Token { text, .. } => f(&text),
                    _ => true,
                };
                self.turn_with(text, &media, p, Some(&mut tokens))
            }
            None => self.turn_with(text, &media, p, None),
        }
    }

    /// One user turn: `text` (UTF-8) and media items (modality: image, audio or video; a source:
    /// a file, encoded bytes, a decoded [`Image`] or [`Audio`]). `on_event` receives every stage's
    /// [`PipelineEvent`]s (a decoder loading, each item encoded, the answer's pieces, each
    /// denoising step, each output finished); returning false cancels, as does `p.cancel`: the
    /// result then says `cancelled` and the outputs not produced carry `NGPT_ERR_CANCELLED`. A
    /// panic in `on_event` cancels the turn and is resumed from this call once the library has
    /// returned.
    ///
    /// Errors (no result, the conversation unchanged): `NGPT_ERR_INVALID_ARGUMENT` for a media
    /// item of no input modality, a source the modality cannot take, empty bytes, decoder
    /// settings out of range (checked before anything runs); media that cannot be read or
    /// decoded (the message names the item); `NGPT_ERR_UNSUPPORTED` (video from memory, a
    /// modality the encoder lacks); errors of the language model. An output that could not be
    /// produced (no decoder in the bundle, a decoder error) does not fail the turn: its
    /// [`PipelineOutput::result`] says why.
    pub fn turn_with(&mut self, text: &str, media: &[(Modality, MediaSource<'_>)], p: &PipelineTurnParams,
                     on_event: Option<&mut dyn FnMut(PipelineEvent) -> bool>) -> Result<PipelineResult> {
        let text = c_str(text)?;
        let paths = media.iter().map(|(_, src)| match src {
            MediaSource::Path(path) => c_path(path).map(Some),
            _ => Ok(None),
        }).collect::<Result<Vec<_>>>()?;
        let mut items = Vec::with_capacity(media.len());
        for (i, ((m, src), path)) in media.iter().zip(&paths).enumerate() {
            let mut it = sys::ngpt_pipeline_media { modality: m.raw(), path: ptr::null(), data: ptr::null(), size: 0,
                                                    image: ptr::null(), audio: ptr::null() };
            match src {
                MediaSource::Path(_) => it.path = c_ptr_or_null(&path),
                MediaSource::Bytes([]) => {
                    return Err(Error::invalid(&format!("media[{}]: the encoded bytes are empty", i)));
                }
                MediaSource::Bytes(b) => (it.data, it.size) = (b.as_ptr() as *const c_void, b.len()),
                MediaSource::Image(img) => it.image = img.ptr.as_ptr(),
                MediaSource::Audio(a) => it.audio = a.ptr.as_ptr(),
            }
            items.push(it);
        }
        // SAFETY: a zeroed POD struct filled by _default with our own size.
        let mut tp: sys::ngpt_pipeline_turn_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_pipeline_turn_params_default(&mut tp, std::mem::size_of_val(&tp)) })?;
        tp.force = output_bits(&p.force)?;
        tp.steps = p.steps;
        tp.seed = p.seed;
        if let Some(v) = p.max_new_tokens { tp.max_new_tokens = v; }
        if let Some(v) = p.temperature { tp.temperature = v; }
        tp.top_k = p.top_k;
        if let Some(v) = p.top_p { tp.top_p = v; }
        if let Some(v) = p.repetition_penalty { tp.repetition_penalty = v; }
        tp.guidance_scale = p.guidance_scale;
        tp.scheduler = p.scheduler;
        tp.height = p.height;
        tp.width = p.width;
        tp.num_frames = p.num_frames;
        tp.audio_length_s = p.audio_length_s;
        tp.video_fps = p.video_fps;
        // the flag lives in `p`, borrowed for the whole call
        tp.cancel = p.cancel.as_ref().map_or(ptr::null(), |c| c.as_ptr());
        let mut call = on_event.map(|f| EventCall { f, panic: None });
        (tp.on_event, tp.user_data) = EventCall::install(&mut call);
        let mut out = ptr::null_mut();
        // SAFETY: items point into `paths` and the borrowed sources, alive for the call.
        let st = check(unsafe {
            sys::ngpt_pipeline_turn(&mut out, self.ptr.as_ptr(), text.as_ptr(),
                                    if items.is_empty() { ptr::null() } else { items.as_ptr() }, items.len(), &tp)
        });
        if let Some(payload) = call.and_then(|c| c.panic) {
            unsafe { sys::ngpt_pipeline_result_free(out) }; // NULL is a no-op
            resume_unwind(payload);
        }
        st?;
        let r = out;
        let res = unsafe { copy_result(r) };
        unsafe { sys::ngpt_pipeline_result_free(r) };
        Ok(res)
    }
}

/// A copy of everything a turn's result holds.
///
/// # Safety
/// `r` is a valid result, not yet freed.
unsafe fn copy_result(r: *const sys::ngpt_pipeline_result) -> PipelineResult {
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
    let mut n_media = 0i32;
    let history = check(unsafe { sys::ngpt_pipeline_result_history(r, &mut n_media) }).map(|()| n_media.max(0) as usize);
    let stages = PipelineStage::ALL.iter().map(|&s| s as sys::ngpt_pipeline_stage);
    let stage_ms = stages.clone().map(|s| unsafe { sys::ngpt_pipeline_result_stage_ms(r, s) }).collect();
    let stage_memory = stages.map(|s| {
        let mut m = StageMemory::default();
        unsafe { sys::ngpt_pipeline_result_stage_memory(r, s, &mut m.host, &mut m.device) };
        m
    }).collect();
    PipelineResult { text, outputs, cancelled, history, stage_ms, stage_memory }
}

impl Drop for Pipeline<'_> {
    fn drop(&mut self) {
        unsafe { sys::ngpt_pipeline_free(self.ptr.as_ptr()) }
    }
}
