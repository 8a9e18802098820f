//! The LLaMA/Vicuna backbone and its conversations (sessions).
use crate::ffi::*;
use crate::*;
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{self, NonNull};
use crate::callback::*;
use std::ffi::CString;
use std::os::raw::{c_char, c_void};

/// `ngpt_backbone`: the LLaMA/Vicuna language model (+ the NExT-GPT delta), read-only once
/// loaded. Conversations are [`Session`]s, which borrow it. Borrows its [`Context`].
pub struct Backbone<'c> {
    pub(crate) ptr: NonNull<sys::ngpt_backbone>,
    pub(crate) _ctx: PhantomData<&'c Context>,
    /// Lent by a pipeline ([`crate::Borrowed`]): freed by its owner, never by Drop.
    pub(crate) lent: bool,
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
        p.delta_path = c_ptr_or_null(&delta);
        p.compute_dtype = o.compute_dtype;
        p.flags = o.flags;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_backbone_create(&mut out, ctx.as_ptr(), dir.as_ptr(), &p) })?;
        Ok(Backbone { ptr: NonNull::new(out).expect("ngpt_backbone_create returned NULL"), _ctx: PhantomData, lent: false })
    }

    /// The hidden size (4096 for Vicuna-7B).
    pub fn n_embd(&self) -> i32 {
        unsafe { sys::ngpt_backbone_n_embd(self.ptr.as_ptr()) }
    }

    /// The vocabulary size, the delta's 38 added tokens included (32038 for NExT-GPT).
    pub fn n_vocab(&self) -> i32 {
        unsafe { sys::ngpt_backbone_n_vocab(self.ptr.as_ptr()) }
    }

    /// The number of transformer layers (32 for Vicuna-7B).
    pub fn n_layer(&self) -> i32 {
        unsafe { sys::ngpt_backbone_n_layer(self.ptr.as_ptr()) }
    }

    /// The default (and largest) session context: `max_position_embeddings` of config.json
    /// (2048 for Vicuna-7B).
    pub fn n_ctx(&self) -> i32 {
        unsafe { sys::ngpt_backbone_n_ctx(self.ptr.as_ptr()) }
    }

    /// The tokenizer that goes with the weights, lent by the backbone for as long as it is
    /// borrowed: the delta folder's when it has tokenizer.model, else the model folder's; None
    /// when neither has one.
    pub fn tokenizer(&self) -> Option<Borrowed<'_, Tokenizer>> {
        // SAFETY: the backbone owns the tokenizer and frees it with itself; Borrowed never frees
        // it, and its lifetime is tied to &self. The library only reads through the pointer.
        let t = unsafe { sys::ngpt_backbone_tokenizer(self.ptr.as_ptr()) };
        NonNull::new(t as *mut sys::ngpt_tokenizer).map(|ptr| Borrowed::new(Tokenizer { ptr, lent: true }))
    }

    /// The embedding rows of `ids`: F32 [ids.len(), n_embd] row-major (`embed_tokens`), e.g. to
    /// build a [`Batch::embeds`] prompt of token rows and soft tokens. An id outside
    /// [0, n_vocab) is `NGPT_ERR_INVALID_ARGUMENT`.
    pub fn embed_tokens(&self, ids: &[i32]) -> Result<Vec<f32>> {
        let n = i32::try_from(ids.len()).map_err(|_| Error::invalid("more than 2^31 token ids"))?;
        let mut rows = vec![0f32; ids.len() * self.n_embd() as usize];
        // SAFETY: rows holds n * n_embd floats, ids n ids (both non-NULL, also when empty).
        check(unsafe { sys::ngpt_backbone_embed_tokens(rows.as_mut_ptr(), self.ptr.as_ptr(), ids.as_ptr(), n) })?;
        Ok(rows)
    }

    /// A new conversation with a KV cache of `n_ctx` positions (0 = the backbone's
    /// [`Backbone::n_ctx`]; at most that). The cache is F32, 2 * n_layer * n_ctx * n_embd * 4
    /// bytes (2 GiB for Vicuna-7B at 2048: size it to the conversation).
    pub fn session(&self, n_ctx: i32) -> Result<Session<'_>> {
        let mut p: sys::ngpt_backbone_session_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_backbone_session_params_default(&mut p, std::mem::size_of_val(&p)) })?;
        p.n_ctx = n_ctx;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_backbone_session_create(&mut out, self.ptr.as_ptr(), &p) })?;
        Ok(Session { ptr: NonNull::new(out).expect("ngpt_backbone_session_create returned NULL"),
                     n_embd: self.n_embd() as usize, n_vocab: self.n_vocab() as usize, _bb: PhantomData, lent: false })
    }
}

impl Drop for Backbone<'_> {
    fn drop(&mut self) {
        if !self.lent {
            unsafe { sys::ngpt_backbone_free(self.ptr.as_ptr()) }
        }
    }
}

/// What [`Session::eval`] keeps of its positions' outputs (`ngpt_output_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputMode {
    /// Fill the KV cache only: [`Session::logits`] then has nothing.
    None,
    /// Logits and hidden state of the batch's last position (the default).
    #[default]
    Last,
    /// Logits and hidden states of every position of the batch.
    All,
}

/// A run of positions for [`Session::eval`], appended at the session's `n_past`
/// (`ngpt_backbone_batch`): token ids, embedding rows ("soft tokens", e.g. a projected image), or
/// both mixed. Borrows its slices for the call only; the lengths are checked by `eval`.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    ids: Option<&'a [i32]>,
    embeds: Option<&'a [f32]>,
    is_embed: Option<&'a [bool]>,
    output: OutputMode,
}

impl<'a> Batch<'a> {
    /// One position per token id.
    pub fn tokens(ids: &'a [i32]) -> Batch<'a> {
        Batch { ids: Some(ids), embeds: None, is_embed: None, output: OutputMode::Last }
    }

    /// One position per embedding row: `rows` is F32 [n, n_embd] row-major (HF `inputs_embeds`).
    pub fn embeds(rows: &'a [f32]) -> Batch<'a> {
        Batch { ids: None, embeds: Some(rows), is_embed: None, output: OutputMode::Last }
    }

    /// Position i is row i of `embeds` (F32 [n, n_embd]) where `is_embed[i]`, else `ids[i]`;
    /// `ids` and `is_embed` hold n values (the unused entries of each are ignored).
    pub fn mixed(ids: &'a [i32], embeds: &'a [f32], is_embed: &'a [bool]) -> Batch<'a> {
        Batch { ids: Some(ids), embeds: Some(embeds), is_embed: Some(is_embed), output: OutputMode::Last }
    }

    /// The outputs to keep (default [`OutputMode::Last`]).
    pub fn output(mut self, mode: OutputMode) -> Batch<'a> {
        self.output = mode;
        self
    }
}

/// Options of [`Session::generate`] and [`Session::generate_greedy`]; `None` / empty = the
/// library's defaults (`ngpt_generate_params_default`).
#[derive(Clone, Debug, Default)]
pub struct GenerateParams {
    /// At most this many tokens (default 16).
    pub max_new_tokens: Option<i32>,
    /// Tokens that end generation (kept as the last id); empty = none.
    pub stop_ids: Vec<i32>,
    /// Sampling, applied as transformers does (repetition penalty, then temperature, top-k,
    /// top-p, then a draw); `generate_greedy` ignores these. Default 0 = greedy argmax.
    pub temperature: Option<f32>,
    /// Keep the k most likely; default 0 = all.
    pub top_k: Option<i32>,
    /// Keep the smallest set with probability >= top_p; default 1 = all.
    pub top_p: Option<f32>,
    /// CTRL-style on the tokens generated in this call (a logit l becomes l / p if l > 0 else
    /// l * p); default 1 = off.
    pub repetition_penalty: Option<f32>,
    /// The draws are reproducible for a seed on one backend (default 0).
    pub seed: Option<u64>,
    /// Also return [`Generation::hidden`] (default false: left empty).
    pub with_hidden: bool,
}

/// The tokens a generation chose (a copy).
#[derive(Clone, Debug)]
pub struct Generation {
    /// The generated ids only (not the prompt), the stop id last when one ended it.
    pub ids: Vec<i32>,
    /// With [`GenerateParams::with_hidden`]: F32 [ids.len(), n_embd] row-major, row j = the
    /// final-norm state of the position whose logits chose `ids[j]` (row 0: the prompt's last
    /// position) — what NExT-GPT's output projectors read. Else empty.
    pub hidden: Vec<f32>,
    /// Why it ended: `sys::NGPT_STOP_ID` (the last id is a stop id), `NGPT_STOP_MAX_TOKENS`,
    /// `NGPT_STOP_CANCELLED` (the callback returned false; its token is the last id) or
    /// `NGPT_STOP_CONTEXT_FULL` (the session's n_ctx was reached: the last id is not in the cache).
    pub stop_reason: sys::ngpt_stop_reason,
}

/// Options of [`Session::turn`]; `None` / empty = the library's defaults (NExT-GPT's demo).
#[derive(Clone, Debug, Default)]
pub struct TurnParams {
    /// Modalities whose signal group is appended when the model does not start one (image,
    /// video, audio order); `Modality::Text` is invalid.
    pub require: Vec<Modality>,
    /// Sampled tokens; default 246 (demo). The forced rest of a group the model starts, and
    /// required groups, come on top.
    pub max_new_tokens: Option<i32>,
    /// Default 1.0; 0 = greedy argmax.
    pub temperature: Option<f32>,
    /// Keep the k most likely; default 0 = off.
    pub top_k: Option<i32>,
    /// Default 0.01 (demo_app.py); 1 = off.
    pub top_p: Option<f32>,
    /// Default 1 = off; over the ids generated in this turn.
    pub repetition_penalty: Option<f32>,
    /// Default 0.
    pub seed: Option<u64>,
    /// Strings that end the answer, matched on the text across tokens (never part of the
    /// answer): None = `["###"]`, `Some(vec![])` = none. Empty strings are invalid.
    pub stop_strings: Option<Vec<String>>,
    /// Ids that end the answer (their text never reaches it): None = `[EOS]`, `Some(vec![])` = none.
    pub stop_ids: Option<Vec<i32>>,
    /// Signal groups allowed per modality, e.g. `[(Modality::Image, 2)]` (0 = no limit); a
    /// modality not listed keeps the default, 1 (demo). Further first tokens are dropped as strays.
    pub max_groups: Vec<(Modality, i32)>,
    /// Mask the tokens that would be dropped (stray group tokens, `<Img>`, `</Img>`) out of the
    /// logits; default false.
    pub suppress_strays: Option<bool>,
    /// First turn only: text before "### Human:" (the library's extension; NExT-GPT has none).
    pub system: Option<String>,
    /// A flag another thread may set: nonzero stops the turn before its next sampled token (a
    /// started group is completed first; `stop_reason` then says `NGPT_STOP_CANCELLED`).
    pub cancel: Option<CancelFlag>,
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
    /// Every id chosen in this turn, in order: text, group tokens, and the stop token last when
    /// the turn ended on a stop id or stop string.
    pub ids: Vec<i32>,
    /// Positions of this turn's prompt (template + media).
    pub n_prompt: i32,
    /// Wall-clock milliseconds of the prompt's evaluation.
    pub prompt_ms: f64,
    /// Wall-clock milliseconds of the generation.
    pub generate_ms: f64,
}

/// `ngpt_backbone_session`: one conversation's KV cache. Borrows its [`Backbone`].
pub struct Session<'b> {
    pub(crate) ptr: NonNull<sys::ngpt_backbone_session>,
    pub(crate) n_embd: usize,
    pub(crate) n_vocab: usize,
    pub(crate) _bb: PhantomData<&'b ()>,
    /// Lent by a pipeline ([`crate::Borrowed`]): freed by its owner, never by Drop.
    pub(crate) lent: bool,
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
        if let Some(v) = p.top_k { tp.top_k = v; }
        if let Some(v) = p.top_p { tp.top_p = v; }
        if let Some(v) = p.repetition_penalty { tp.repetition_penalty = v; }
        if let Some(v) = p.seed { tp.seed = v; }
        // Kept alive until the call returns: the strings, their pointer array, the system text.
        let stop_c = match &p.stop_strings {
            Some(v) => Some(v.iter().map(|x| c_str(x)).collect::<Result<Vec<CString>>>()?),
            None => None,
        };
        let stop_ptrs: Option<Vec<*const c_char>> = stop_c.as_ref().map(|v| v.iter().map(|c| c.as_ptr()).collect());
        if let Some(v) = &stop_ptrs {
            // a non-NULL pointer also for an empty list: NULL would mean the default ["###"]
            tp.stop_strings = v.as_ptr();
            tp.n_stop_strings = i32::try_from(v.len()).map_err(|_| Error::invalid("more than 2^31 stop strings"))?;
        }
        if let Some(v) = &p.stop_ids {
            tp.stop_ids = v.as_ptr(); // non-NULL also when empty (NULL = [EOS])
            tp.n_stop_ids = i32::try_from(v.len()).map_err(|_| Error::invalid("more than 2^31 stop ids"))?;
        }
        for &(m, n) in &p.max_groups {
            if m == Modality::Text {
                return Err(Error::invalid("max_groups: Modality::Text has no signal groups (image, audio or video)"));
            }
            tp.max_groups[m.raw() as usize] = n;
        }
        if let Some(v) = p.suppress_strays { tp.suppress_strays = v as i32; }
        let system = p.system.as_deref().map(c_str).transpose()?;
        if let Some(c) = &system { tp.system = c.as_ptr(); }
        // SAFETY (of the C read): AtomicI32 has the layout of an i32; the Arc keeps it alive
        // through the call, and the library only reads it.
        if let Some(flag) = &p.cancel { tp.cancel = flag.as_ptr(); }
        let tm = self.turn_media(media)?;
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
            let mut n_ids = 0;
            let ids = unsafe { sys::ngpt_turn_result_ids(r, &mut n_ids) };
            let ids = unsafe { slice(ids, n_ids.max(0) as usize) }.to_vec();
            let (mut prompt_ms, mut generate_ms) = (0.0, 0.0);
            unsafe { sys::ngpt_turn_result_timings(r, &mut prompt_ms, &mut generate_ms) };
            Ok(TurnResult { text, groups, stop_reason: unsafe { sys::ngpt_turn_result_stop_reason(r) }, ids,
                            n_prompt: unsafe { sys::ngpt_turn_result_n_prompt(r) }, prompt_ms, generate_ms })
        };
        let res = collect();
        unsafe { sys::ngpt_turn_result_free(r) };
        res
    }

    /// The `ngpt_turn_media` of (modality, soft rows) pairs, each rows [n_rows >= 1, n_embd]
    /// (the C struct carries no width: a wrong one would be read past its end).
    fn turn_media(&self, media: &[(Modality, &[f32])]) -> Result<Vec<sys::ngpt_turn_media>> {
        let mut tm = Vec::with_capacity(media.len());
        for (m, rows) in media {
            if rows.is_empty() || rows.len() % self.n_embd != 0 {
                return Err(Error::invalid(&format!("soft rows must be [n_rows, n_embd {}]: {} floats",
                                                   self.n_embd, rows.len())));
            }
            let n_rows = i32::try_from(rows.len() / self.n_embd).map_err(|_| Error::invalid("more than 2^31 soft rows"))?;
            tm.push(sys::ngpt_turn_media { modality: m.raw(), soft_rows: rows.as_ptr(), n_rows });
        }
        Ok(tm)
    }

    /// Right after a [`Session::turn`], re-write the cached answer as NExT-GPT's history holds
    /// it when generated media re-enter the conversation: `"### Assistant:" {<Img> soft </Img>}
    /// [BOS] answer-text` (the cache is rolled back to the answer's start, the media rows —
    /// encoded by ImageBind + the input projector, [n_rows, n_embd] each — and the answer's text
    /// without its signal groups are evaluated again). At least one medium; once per answer
    /// (else `NGPT_ERR_INVALID_ARGUMENT`).
    pub fn add_assistant_media(&mut self, media: &[(Modality, &[f32])]) -> Result<()> {
        let tm = self.turn_media(media)?;
        // SAFETY: tm's rows are borrowed from `media` for the call; n_media 0 is refused by the library.
        check(unsafe {
            sys::ngpt_backbone_add_assistant_media(self.ptr.as_ptr(), if tm.is_empty() { ptr::null() } else { tm.as_ptr() },
                                                   tm.len())
        })
    }

    /// Append `batch` at `n_past` and run it (a prefill, or a decode step of one position).
    /// Everything is checked before the cache is touched (lengths here; ids in [0, n_vocab) and
    /// n_past + positions <= n_ctx by the library, `NGPT_ERR_INVALID_ARGUMENT`): on an error
    /// `n_past` is unchanged. The outputs are then [`Session::logits`] and [`Session::hidden`].
    pub fn eval(&mut self, batch: &Batch) -> Result<()> {
        let mut b: sys::ngpt_backbone_batch = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_backbone_batch_default(&mut b, std::mem::size_of_val(&b)) })?;
        let n = match (batch.ids, batch.embeds, batch.is_embed) {
            (Some(ids), None, None) => ids.len(),
            (None, Some(rows), None) => {
                if rows.len() % self.n_embd != 0 {
                    return Err(Error::invalid(&format!("embedding rows must be [n, n_embd {}]: {} floats is not a \
                                                        multiple of {}", self.n_embd, rows.len(), self.n_embd)));
                }
                rows.len() / self.n_embd
            }
            (Some(ids), Some(rows), Some(is_embed)) => {
                if is_embed.len() != ids.len() || rows.len() != ids.len() * self.n_embd {
                    return Err(Error::invalid(&format!(
                        "a mixed batch of {} ids needs {} is_embed flags and [{}, n_embd {}] = {} embedding floats, \
                         not {} and {}", ids.len(), ids.len(), ids.len(), self.n_embd, ids.len() * self.n_embd,
                        is_embed.len(), rows.len())));
                }
                ids.len()
            }
            _ => return Err(Error::invalid("a batch is tokens, embeds or mixed")),
        };
        b.n_tokens = i32::try_from(n).map_err(|_| Error::invalid("more than 2^31 positions in a batch"))?;
        b.ids = batch.ids.map_or(ptr::null(), |v| v.as_ptr());
        b.embeds = batch.embeds.map_or(ptr::null(), |v| v.as_ptr());
        // bool is one byte holding 0 or 1: the uint8_t flags the header asks for.
        b.is_embed = batch.is_embed.map_or(ptr::null(), |v| v.as_ptr() as *const u8);
        b.output = match batch.output {
            OutputMode::None => sys::NGPT_OUTPUT_NONE,
            OutputMode::Last => sys::NGPT_OUTPUT_LAST,
            OutputMode::All => sys::NGPT_OUTPUT_ALL,
        };
        // SAFETY: the arrays hold n ids / flags and n * n_embd floats (checked above), read
        // during the call only.
        check(unsafe { sys::ngpt_backbone_eval(self.ptr.as_ptr(), &b) })
    }

    /// The last eval's logits, F32 [n_rows, n_vocab] row-major (`lm_head` output): n_rows = 1
    /// ([`OutputMode::Last`]) or the batch's positions ([`OutputMode::All`]); after a generation,
    /// the logits that chose its last id. Borrowed, not copied (a prompt's can be hundreds of
    /// MB): `&self` keeps the session from evaluating, generating, truncating or resetting while
    /// the slice lives. `NGPT_ERR_INVALID_ARGUMENT` when there are none: no eval since the session
    /// was created, reset or truncated, or [`OutputMode::None`].
    pub fn logits(&self) -> Result<&[f32]> {
        let mut n = 0;
        let p = unsafe { sys::ngpt_backbone_get_logits(self.ptr.as_ptr(), &mut n) };
        if p.is_null() || n <= 0 {
            return Err(Error::invalid("no logits: no eval with outputs since the session was created, reset or \
                                       truncated (or OutputMode::None)"));
        }
        // SAFETY: the session holds n_rows * n_vocab floats until its next eval/generate/reset/
        // truncate/free, all of which need &mut self or self.
        Ok(unsafe { slice(p, n as usize * self.n_vocab) })
    }

    /// The last eval's hidden states, F32 [n_rows, n_embd] row-major (after the final RMSNorm:
    /// what NExT-GPT's output projectors read); rows and borrowing as [`Session::logits`].
    pub fn hidden(&self) -> Result<&[f32]> {
        let mut n = 0;
        let p = unsafe { sys::ngpt_backbone_get_hidden(self.ptr.as_ptr(), &mut n) };
        if p.is_null() || n <= 0 {
            return Err(Error::invalid("no hidden states: no eval with outputs since the session was created, reset \
                                       or truncated (or OutputMode::None)"));
        }
        // SAFETY: as logits, n_rows * n_embd floats.
        Ok(unsafe { slice(p, n as usize * self.n_embd) })
    }

    /// Sample tokens continuing from the last eval, which must have kept outputs
    /// ([`OutputMode::Last`] or `All`; else `NGPT_ERR_INVALID_ARGUMENT`). Each chosen token is
    /// fed back unless it is a stop id or the last allowed. `on_token` sees each id before it is
    /// fed back; returning false stops (that id is the last, `NGPT_STOP_CANCELLED`). Reaching the
    /// session's n_ctx ends the generation with what it chose (`NGPT_STOP_CONTEXT_FULL`), not an
    /// error. A panic in `on_token` stops the generation and is resumed from this call once the
    /// library has returned.
    pub fn generate(&mut self, p: &GenerateParams, on_token: Option<&mut dyn FnMut(i32) -> bool>)
                    -> Result<Generation> {
        self.generate_impl(p, on_token, false)
    }

    /// [`Session::generate`] with greedy decoding (argmax, first index on ties) whatever the
    /// sampling fields say.
    pub fn generate_greedy(&mut self, p: &GenerateParams, on_token: Option<&mut dyn FnMut(i32) -> bool>)
                           -> Result<Generation> {
        self.generate_impl(p, on_token, true)
    }

    fn generate_impl(&mut self, p: &GenerateParams, on_token: Option<&mut dyn FnMut(i32) -> bool>, greedy: bool)
                     -> Result<Generation> {
        let mut gp: sys::ngpt_generate_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_generate_params_default(&mut gp, std::mem::size_of_val(&gp)) })?;
        if let Some(v) = p.max_new_tokens { gp.max_new_tokens = v; }
        if let Some(v) = p.temperature { gp.temperature = v; }
        if let Some(v) = p.top_k { gp.top_k = v; }
        if let Some(v) = p.top_p { gp.top_p = v; }
        if let Some(v) = p.repetition_penalty { gp.repetition_penalty = v; }
        if let Some(v) = p.seed { gp.seed = v; }
        if !p.stop_ids.is_empty() {
            gp.stop_ids = p.stop_ids.as_ptr();
            gp.n_stop_ids = i32::try_from(p.stop_ids.len()).map_err(|_| Error::invalid("more than 2^31 stop ids"))?;
        }
        // max_new_tokens is the capacity of the outputs (a negative one is refused by the library)
        let cap = gp.max_new_tokens.max(0) as usize;
        let mut ids = vec![0i32; cap];
        let mut hidden = if p.with_hidden { vec![0f32; cap * self.n_embd] } else { Vec::new() };
        let mut call = on_token.map(|f| IdCall { f, panic: None });
        if let Some(c) = call.as_mut() {
            gp.on_token = Some(session_token);
            gp.user_data = c as *mut IdCall as *mut c_void;
        }
        let mut n = 0;
        // SAFETY: ids holds max_new_tokens ids and hidden (when not NULL) max_new_tokens * n_embd
        // floats; stop_ids and the callback's IdCall outlive the call.
        let st = unsafe {
            let f = if greedy { sys::ngpt_backbone_generate_greedy } else { sys::ngpt_backbone_generate };
            f(&mut n, self.ptr.as_ptr(), &gp, ids.as_mut_ptr(),
              if p.with_hidden { hidden.as_mut_ptr() } else { ptr::null_mut() })
        };
        if let Some(payload) = call.and_then(|c| c.panic) {
            std::panic::resume_unwind(payload);
        }
        let n = n.max(0) as usize;
        let stop_reason = if st == sys::NGPT_ERR_CANCELLED {
            sys::NGPT_STOP_CANCELLED
        } else if st == sys::NGPT_ERR_INVALID_ARGUMENT && n > 0 && self.n_past() >= self.n_ctx() {
            sys::NGPT_STOP_CONTEXT_FULL // the tokens so far are kept, as the header says
        } else {
            check(st)?;
            if n > 0 && p.stop_ids.contains(&ids[n - 1]) { sys::NGPT_STOP_ID } else { sys::NGPT_STOP_MAX_TOKENS }
        };
        ids.truncate(n);
        hidden.truncate(if p.with_hidden { n * self.n_embd } else { 0 });
        Ok(Generation { ids, hidden, stop_reason })
    }

    /// Forget the conversation.
    pub fn reset(&mut self) -> Result<()> {
        check(unsafe { sys::ngpt_backbone_session_reset(self.ptr.as_ptr()) })
    }

    /// Keep the first `n_past` positions (0 <= n_past <= [`Session::n_past`], else
    /// `NGPT_ERR_INVALID_ARGUMENT`), e.g. to rewind a turn. The last eval's outputs are dropped.
    pub fn truncate(&mut self, n_past: i32) -> Result<()> {
        check(unsafe { sys::ngpt_backbone_session_truncate(self.ptr.as_ptr(), n_past) })
    }

    /// Positions in the KV cache.
    pub fn n_past(&self) -> i32 {
        unsafe { sys::ngpt_backbone_session_n_past(self.ptr.as_ptr()) }
    }

    /// Positions the KV cache holds (the `n_ctx` it was created with; 0 there = the backbone's).
    pub fn n_ctx(&self) -> i32 {
        unsafe { sys::ngpt_backbone_session_n_ctx(self.ptr.as_ptr()) }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if !self.lent {
            unsafe { sys::ngpt_backbone_session_free(self.ptr.as_ptr()) }
        }
    }
}
