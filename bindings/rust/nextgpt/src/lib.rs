//! Safe Rust API of libnextgpt over the generated `nextgpt-sys` declarations.
//!
//! ```no_run
//! let ctx = nextgpt::Context::new(nextgpt::Device::Cpu)?;
//! println!("libnextgpt {} on {} ({})", nextgpt::version(), ctx.backend_name(), ctx.device_name());
//! let tok = nextgpt::Tokenizer::new("models/nextgpt/tokenizer")?;
//! let ids = tok.encode("Hello [IMG0]", true)?;
//! # Ok::<(), nextgpt::Error>(())
//! ```
//!
//! Every fallible call returns `Result<T, Error>`; the error carries the `ngpt_status` and the
//! library's thread-local message (`ngpt_last_error()`), read right after the failing call. Every
//! handle frees itself on `Drop`. Threads, as the header documents them: handles are `Send` (use
//! from any thread, one at a time); `Tokenizer` is also `Sync` (immutable after creation).
//! Borrowed data (timesteps, pixels, samples, tensor contents) is returned as slices tied to the
//! handle's lifetime. What this crate does not wrap yet is reachable, unsafely, through
//! [`sys`].
#![forbid(unsafe_op_in_unsafe_fn)]

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::c_char;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{self, NonNull};

pub use nextgpt_sys as sys;

// ---- errors -----------------------------------------------------------------------------------

/// A failed libnextgpt call: the status (negative `ngpt_status`) and the library's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: i32,
    pub message: String,
}

impl Error {
    fn last(status: sys::ngpt_status) -> Error {
        // SAFETY: ngpt_last_error never returns NULL and is valid until the next call on this thread.
        let message = unsafe { owned(sys::ngpt_last_error()) }.unwrap_or_default();
        Error { status: status as i32, message }
    }

    fn invalid(message: &str) -> Error {
        Error { status: sys::NGPT_ERR_INVALID_ARGUMENT as i32, message: message.to_string() }
    }

    /// The status's name, e.g. "NGPT_ERR_NOT_FOUND".
    pub fn status_name(&self) -> String {
        // SAFETY: returns a static string for any value.
        unsafe { owned(sys::ngpt_status_string(self.status as sys::ngpt_status)) }.unwrap_or_default()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status_name(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn check(status: sys::ngpt_status) -> Result<()> {
    if status == sys::NGPT_OK {
        Ok(())
    } else {
        Err(Error::last(status))
    }
}

/// A copy of a C string (None for NULL).
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
unsafe fn owned(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: by the caller.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

fn c_path(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::invalid("a path contains a NUL byte"))
}

fn c_str(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid("a string contains a NUL byte"))
}

/// A slice from a library pointer (empty for NULL / 0).
///
/// # Safety
/// `p` points to `n` valid elements that live as long as `'a`.
unsafe fn slice<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: by the caller.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

// ---- versions ---------------------------------------------------------------------------------

/// The version of the library actually loaded ("0.1.0").
pub fn version() -> String {
    // SAFETY: a static string.
    unsafe { owned(sys::ngpt_version()) }.unwrap_or_default()
}

/// NGPT_VERSION_NUMBER of the library actually loaded.
pub fn version_number() -> i32 {
    unsafe { sys::ngpt_version_number() }
}

/// NGPT_ABI_VERSION of the library actually loaded (the soname's number).
pub fn abi_version() -> i32 {
    unsafe { sys::ngpt_abi_version() }
}

/// Whether this build of the library contains the CUDA backend.
pub fn has_cuda_build() -> bool {
    unsafe { sys::ngpt_has_cuda_build() != 0 }
}

// ---- context ----------------------------------------------------------------------------------

/// Which device a context asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// CUDA when a usable GPU is present, else the CPU (never an error).
    Auto,
    Cpu,
    /// CUDA required: creation fails without a usable GPU.
    Cuda,
}

/// The backend a context runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Cuda,
    Other(i32),
}

/// Context options (the fields of `ngpt_context_params` a Rust program sets).
#[derive(Clone, Debug)]
pub struct ContextParams {
    pub device: Device,
    /// CUDA device ordinal.
    pub device_index: i32,
    /// CPU worker threads; 0 = the number of online CPUs.
    pub n_threads: i32,
    /// Bytes of tensor memory the context may hold; 0 = no limit.
    pub memory_limit: u64,
}

impl Default for ContextParams {
    fn default() -> Self {
        ContextParams { device: Device::Auto, device_index: 0, n_threads: 0, memory_limit: 0 }
    }
}

/// `ngpt_context`: device, threads, logging and memory accounting. Stage handles created from
/// a context borrow it, so the compiler makes sure they are dropped first.
pub struct Context {
    ptr: NonNull<sys::ngpt_context>,
}

// SAFETY: the header allows a handle to be used from any thread, by one thread at a time.
unsafe impl Send for Context {}

impl Context {
    /// A context on `device` with every other option at its default.
    pub fn new(device: Device) -> Result<Context> {
        Context::with_params(&ContextParams { device, ..Default::default() })
    }

    pub fn with_params(p: &ContextParams) -> Result<Context> {
        // SAFETY: a zeroed POD struct filled by _default with our own size.
        let mut cp: sys::ngpt_context_params = unsafe { std::mem::zeroed() };
        check(unsafe { sys::ngpt_context_params_default(&mut cp, std::mem::size_of_val(&cp)) })?;
        cp.device = match p.device {
            Device::Auto => sys::NGPT_DEVICE_AUTO,
            Device::Cpu => sys::NGPT_DEVICE_CPU,
            Device::Cuda => sys::NGPT_DEVICE_CUDA,
        };
        cp.device_index = p.device_index;
        cp.n_threads = p.n_threads;
        cp.memory_limit = p.memory_limit;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_context_create(&mut out, &cp) })?;
        Ok(Context { ptr: NonNull::new(out).expect("ngpt_context_create returned NULL") })
    }

    pub fn backend(&self) -> Backend {
        let b = unsafe { sys::ngpt_context_backend(self.ptr.as_ptr()) };
        match b {
            sys::NGPT_BACKEND_CPU => Backend::Cpu,
            sys::NGPT_BACKEND_CUDA => Backend::Cuda,
            other => Backend::Other(other as i32),
        }
    }

    /// "cpu" or "cuda".
    pub fn backend_name(&self) -> String {
        unsafe { owned(sys::ngpt_backend_name(sys::ngpt_context_backend(self.ptr.as_ptr()))) }.unwrap_or_default()
    }

    /// The CPU model or the GPU name.
    pub fn device_name(&self) -> String {
        unsafe { owned(sys::ngpt_context_device_name(self.ptr.as_ptr())) }.unwrap_or_default()
    }

    /// Why AUTO chose the CPU; "" on CUDA or when the CPU was asked for.
    pub fn backend_note(&self) -> String {
        unsafe { owned(sys::ngpt_context_backend_note(self.ptr.as_ptr())) }.unwrap_or_default()
    }

    pub fn n_threads(&self) -> i32 {
        unsafe { sys::ngpt_context_n_threads(self.ptr.as_ptr()) }
    }

    pub fn memory_used(&self) -> u64 {
        unsafe { sys::ngpt_context_memory_used(self.ptr.as_ptr()) }
    }

    pub fn memory_peak(&self) -> u64 {
        unsafe { sys::ngpt_context_memory_peak(self.ptr.as_ptr()) }
    }

    /// The raw handle, for calls through [`sys`]; it stays owned by `self`.
    pub fn as_ptr(&self) -> *mut sys::ngpt_context {
        self.ptr.as_ptr()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        unsafe { sys::ngpt_context_free(self.ptr.as_ptr()) }
    }
}

// ---- tensors ----------------------------------------------------------------------------------

/// A library-owned tensor (an output of the library), freed on Drop.
pub struct Tensor {
    t: sys::ngpt_tensor,
}

// SAFETY: plain host memory owned by this value.
unsafe impl Send for Tensor {}
unsafe impl Sync for Tensor {}

impl Tensor {
    fn empty() -> Tensor {
        // SAFETY: an all-zero ngpt_tensor is an empty caller-owned rank-0 view.
        Tensor { t: unsafe { std::mem::zeroed() } }
    }

    /// The element type (`sys::NGPT_DTYPE_*`).
    pub fn dtype(&self) -> sys::ngpt_dtype {
        self.t.dtype
    }

    /// "F32", "I64", ... as safetensors spells them.
    pub fn dtype_name(&self) -> String {
        unsafe { owned(sys::ngpt_dtype_name(self.t.dtype)) }.unwrap_or_default()
    }

    pub fn shape(&self) -> &[i64] {
        &self.t.shape[..(self.t.rank.max(0) as usize).min(self.t.shape.len())]
    }

    pub fn numel(&self) -> usize {
        unsafe { sys::ngpt_tensor_numel(&self.t) as usize }
    }

    /// The raw bytes of the data (row-major).
    pub fn as_bytes(&self) -> &[u8] {
        let n = unsafe { sys::ngpt_tensor_nbytes(&self.t) };
        // SAFETY: data holds nbytes bytes owned by this tensor.
        unsafe { slice(self.t.data as *const u8, n) }
    }

    /// The elements when the tensor is F32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        if self.t.dtype != sys::NGPT_DTYPE_F32 {
            return None;
        }
        // SAFETY: library allocations are aligned for every dtype; numel F32 values.
        Some(unsafe { slice(self.t.data as *const f32, self.numel()) })
    }

    /// The elements when the tensor is U8.
    pub fn as_u8(&self) -> Option<&[u8]> {
        if self.t.dtype != sys::NGPT_DTYPE_U8 {
            return None;
        }
        Some(self.as_bytes())
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        unsafe { sys::ngpt_tensor_free(&mut self.t) }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({}, {:?})", self.dtype_name(), self.shape())
    }
}

// ---- tokenizer --------------------------------------------------------------------------------

/// `ngpt_tokenizer`: NExT-GPT's LLaMA tokenizer (SentencePiece BPE + the 38 added tokens).
pub struct Tokenizer {
    ptr: NonNull<sys::ngpt_tokenizer>,
}

// SAFETY: the header documents a tokenizer as immutable and usable from several threads at once.
unsafe impl Send for Tokenizer {}
unsafe impl Sync for Tokenizer {}

impl Tokenizer {
    /// Load the tokenizer folder `model_dir` (tokenizer.model, added_tokens.json, ...).
    pub fn new<P: AsRef<Path>>(model_dir: P) -> Result<Tokenizer> {
        let dir = c_path(model_dir.as_ref())?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_tokenizer_create(&mut out, dir.as_ptr()) })?;
        Ok(Tokenizer { ptr: NonNull::new(out).expect("ngpt_tokenizer_create returned NULL") })
    }

    /// Token ids of `text`; `add_bos` = transformers' add_special_tokens.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<i32>> {
        let mut n = 0usize;
        let p = text.as_ptr() as *const c_char;
        let st = unsafe {
            sys::ngpt_tokenizer_encode(self.ptr.as_ptr(), p, text.len(), add_bos as i32, ptr::null_mut(), 0, &mut n)
        };
        if st != sys::NGPT_OK && st != sys::NGPT_ERR_BUFFER_TOO_SMALL {
            return Err(Error::last(st));
        }
        let mut ids = vec![0i32; n];
        check(unsafe {
            sys::ngpt_tokenizer_encode(self.ptr.as_ptr(), p, text.len(), add_bos as i32, ids.as_mut_ptr(), n, &mut n)
        })?;
        ids.truncate(n);
        Ok(ids)
    }

    /// The UTF-8 bytes of `ids` (may contain NUL from the byte token <0x00>).
    pub fn decode_bytes(&self, ids: &[i32], skip_special_tokens: bool) -> Result<Vec<u8>> {
        let mut n = 0usize;
        let skip = skip_special_tokens as i32;
        let st = unsafe {
            sys::ngpt_tokenizer_decode(self.ptr.as_ptr(), ids.as_ptr(), ids.len(), skip, ptr::null_mut(), 0, &mut n)
        };
        if st != sys::NGPT_OK && st != sys::NGPT_ERR_BUFFER_TOO_SMALL {
            return Err(Error::last(st));
        }
        let mut buf = vec![0u8; n + 1];
        check(unsafe {
            sys::ngpt_tokenizer_decode(self.ptr.as_ptr(), ids.as_ptr(), ids.len(), skip,
                                       buf.as_mut_ptr() as *mut c_char, n + 1, &mut n)
        })?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[i32], skip_special_tokens: bool) -> Result<String> {
        let b = self.decode_bytes(ids, skip_special_tokens)?;
        Ok(String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    pub fn vocab_size(&self) -> i32 {
        unsafe { sys::ngpt_tokenizer_vocab_size(self.ptr.as_ptr()) }
    }

    /// The stored piece of `id` ("▁the", "<0x0A>", "[IMG0]"); None when out of range.
    pub fn token_to_piece(&self, id: i32) -> Option<String> {
        unsafe { owned(sys::ngpt_tokenizer_token_to_piece(self.ptr.as_ptr(), id)) }
    }

    /// The id of exactly `piece`, if there is one.
    pub fn piece_to_id(&self, piece: &str) -> Option<i32> {
        let c = CString::new(piece).ok()?;
        let id = unsafe { sys::ngpt_tokenizer_piece_to_id(self.ptr.as_ptr(), c.as_ptr()) };
        (id >= 0).then_some(id)
    }

    pub fn bos_id(&self) -> Option<i32> {
        let id = unsafe { sys::ngpt_tokenizer_bos_id(self.ptr.as_ptr()) };
        (id >= 0).then_some(id)
    }

    pub fn eos_id(&self) -> Option<i32> {
        let id = unsafe { sys::ngpt_tokenizer_eos_id(self.ptr.as_ptr()) };
        (id >= 0).then_some(id)
    }
}

impl Drop for Tokenizer {
    fn drop(&mut self) {
        unsafe { sys::ngpt_tokenizer_free(self.ptr.as_ptr()) }
    }
}

// ---- schedulers -------------------------------------------------------------------------------

/// `ngpt_scheduler`: DDIM, PNDM or DPM-Solver multistep, from a diffusers scheduler_config.json.
pub struct Scheduler {
    ptr: NonNull<sys::ngpt_scheduler>,
}

// SAFETY: stateful, used by one thread at a time (&mut for the stateful calls).
unsafe impl Send for Scheduler {}

impl Scheduler {
    /// The default `ngpt_scheduler_params` (kind, prediction type, eta, ... from the config),
    /// to change before [`Scheduler::from_file_with`] / [`Scheduler::from_json_with`].
    pub fn default_params() -> sys::ngpt_scheduler_params {
        // SAFETY: a zeroed POD struct filled by _default with our own size.
        let mut p: sys::ngpt_scheduler_params = unsafe { std::mem::zeroed() };
        unsafe { sys::ngpt_scheduler_params_default(&mut p, std::mem::size_of_val(&p)) };
        p
    }

    pub fn from_file<P: AsRef<Path>>(config_json: P) -> Result<Scheduler> {
        Scheduler::from_file_with(config_json, &Scheduler::default_params())
    }

    pub fn from_file_with<P: AsRef<Path>>(config_json: P, p: &sys::ngpt_scheduler_params) -> Result<Scheduler> {
        let path = c_path(config_json.as_ref())?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_scheduler_create(&mut out, path.as_ptr(), p) })?;
        Ok(Scheduler { ptr: NonNull::new(out).expect("ngpt_scheduler_create returned NULL") })
    }

    pub fn from_json(json: &str) -> Result<Scheduler> {
        Scheduler::from_json_with(json, &Scheduler::default_params())
    }

    pub fn from_json_with(json: &str, p: &sys::ngpt_scheduler_params) -> Result<Scheduler> {
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::ngpt_scheduler_create_from_json(&mut out, json.as_ptr() as *const c_char, json.len(), p)
        })?;
        Ok(Scheduler { ptr: NonNull::new(out).expect("ngpt_scheduler_create_from_json returned NULL") })
    }

    /// The kind in use (`sys::NGPT_SCHEDULER_*`).
    pub fn kind(&self) -> sys::ngpt_scheduler_kind {
        unsafe { sys::ngpt_scheduler_get_kind(self.ptr.as_ptr()) }
    }

    pub fn set_timesteps(&mut self, n: i32) -> Result<()> {
        check(unsafe { sys::ngpt_scheduler_set_timesteps(self.ptr.as_ptr(), n) })
    }

    /// The timesteps in stepping order (an error before set_timesteps).
    pub fn timesteps(&self) -> Result<&[i64]> {
        let mut ts = ptr::null();
        let mut n = 0usize;
        check(unsafe { sys::ngpt_scheduler_timesteps(self.ptr.as_ptr(), &mut ts, &mut n) })?;
        // SAFETY: borrowed until the next set_timesteps (&mut self) or drop.
        Ok(unsafe { slice(ts, n) })
    }

    pub fn alphas_cumprod(&self) -> Result<&[f32]> {
        let mut p = ptr::null();
        let mut n = 0usize;
        check(unsafe { sys::ngpt_scheduler_alphas_cumprod(self.ptr.as_ptr(), &mut p, &mut n) })?;
        Ok(unsafe { slice(p, n) })
    }

    pub fn init_noise_sigma(&self) -> f32 {
        unsafe { sys::ngpt_scheduler_init_noise_sigma(self.ptr.as_ptr()) }
    }

    /// One denoising step: `sample` becomes the sample at the previous timestep.
    pub fn step(&mut self, model_output: &[f32], timestep: i64, sample: &mut [f32],
                variance_noise: Option<&[f32]>) -> Result<()> {
        if model_output.len() != sample.len() || variance_noise.map_or(false, |v| v.len() != sample.len()) {
            return Err(Error::invalid("model_output, sample and variance_noise must have the same length"));
        }
        let noise = variance_noise.map_or(ptr::null(), |v| v.as_ptr());
        check(unsafe {
            sys::ngpt_scheduler_step(self.ptr.as_ptr(), model_output.as_ptr(), timestep, sample.as_mut_ptr(),
                                     sample.len(), noise)
        })
    }

    /// Forget the stepping history, keep the timesteps.
    pub fn reset(&mut self) -> Result<()> {
        check(unsafe { sys::ngpt_scheduler_reset(self.ptr.as_ptr()) })
    }

    pub fn scale_model_input(&self, sample: &mut [f32], timestep: i64) -> Result<()> {
        check(unsafe {
            sys::ngpt_scheduler_scale_model_input(self.ptr.as_ptr(), sample.as_mut_ptr(), sample.len(), timestep)
        })
    }

    /// sqrt(acp[t]) * original + sqrt(1 - acp[t]) * noise.
    pub fn add_noise(&self, original: &[f32], noise: &[f32], timestep: i64) -> Result<Vec<f32>> {
        if original.len() != noise.len() {
            return Err(Error::invalid("original and noise must have the same length"));
        }
        let mut out = vec![0f32; original.len()];
        check(unsafe {
            sys::ngpt_scheduler_add_noise(self.ptr.as_ptr(), out.as_mut_ptr(), original.as_ptr(), noise.as_ptr(),
                                          out.len(), timestep)
        })?;
        Ok(out)
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        unsafe { sys::ngpt_scheduler_free(self.ptr.as_ptr()) }
    }
}

// ---- media ------------------------------------------------------------------------------------

/// `ngpt_image`: a decoded RGB8 image (JPEG, PNG).
pub struct Image {
    ptr: NonNull<sys::ngpt_image>,
}

// SAFETY: independent of any context; one thread at a time.
unsafe impl Send for Image {}

impl Image {
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Image> {
        let p = c_path(path.as_ref())?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_image_load(&mut out, p.as_ptr()) })?;
        Ok(Image { ptr: NonNull::new(out).expect("ngpt_image_load returned NULL") })
    }

    /// Decode an image file held in memory; `name` labels error messages.
    pub fn from_memory(data: &[u8], name: Option<&str>) -> Result<Image> {
        let name = name.map(c_str).transpose()?;
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::ngpt_image_load_memory(&mut out, data.as_ptr() as *const _, data.len(),
                                        name.as_ref().map_or(ptr::null(), |n| n.as_ptr()))
        })?;
        Ok(Image { ptr: NonNull::new(out).expect("ngpt_image_load_memory returned NULL") })
    }

    /// Packed RGB8 pixels, `height` rows of `width * 3` bytes (copied).
    pub fn from_rgb8(rgb: &[u8], width: i32, height: i32) -> Result<Image> {
        if width < 0 || height < 0 || rgb.len() != width as usize * height as usize * 3 {
            return Err(Error::invalid("rgb must hold width * height * 3 bytes"));
        }
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_image_from_rgb8(&mut out, rgb.as_ptr(), width, height, 0) })?;
        Ok(Image { ptr: NonNull::new(out).expect("ngpt_image_from_rgb8 returned NULL") })
    }

    pub fn width(&self) -> i32 {
        unsafe { sys::ngpt_image_width(self.ptr.as_ptr()) }
    }

    pub fn height(&self) -> i32 {
        unsafe { sys::ngpt_image_height(self.ptr.as_ptr()) }
    }

    /// Packed RGB8, row-major, width * 3 bytes per row.
    pub fn pixels(&self) -> &[u8] {
        let n = self.width() as usize * self.height() as usize * 3;
        unsafe { slice(sys::ngpt_image_pixels(self.ptr.as_ptr()), n) }
    }

    /// ImageBind's vision transform: F32 [3, 224, 224].
    pub fn preprocess(&self) -> Result<Tensor> {
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_image_preprocess(&mut t.t, self.ptr.as_ptr()) })?;
        Ok(t)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        unsafe { sys::ngpt_image_free(self.ptr.as_ptr()) }
    }
}

/// `ngpt_audio`: decoded float samples.
pub struct Audio {
    ptr: NonNull<sys::ngpt_audio>,
}

// SAFETY: independent of any context; one thread at a time.
unsafe impl Send for Audio {}

impl Audio {
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Audio> {
        let p = c_path(path.as_ref())?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_audio_load(&mut out, p.as_ptr()) })?;
        Ok(Audio { ptr: NonNull::new(out).expect("ngpt_audio_load returned NULL") })
    }

    /// Interleaved samples [frames][channels] (copied).
    pub fn from_pcm(samples: &[f32], channels: i32, sample_rate: i32) -> Result<Audio> {
        if channels <= 0 || samples.len() % channels as usize != 0 {
            return Err(Error::invalid("samples must hold a whole number of frames of `channels` samples"));
        }
        let frames = (samples.len() / channels as usize) as i64;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_audio_from_pcm(&mut out, samples.as_ptr(), frames, channels, sample_rate) })?;
        Ok(Audio { ptr: NonNull::new(out).expect("ngpt_audio_from_pcm returned NULL") })
    }

    pub fn sample_rate(&self) -> i32 {
        unsafe { sys::ngpt_audio_sample_rate(self.ptr.as_ptr()) }
    }

    pub fn channels(&self) -> i32 {
        unsafe { sys::ngpt_audio_channels(self.ptr.as_ptr()) }
    }

    pub fn frames(&self) -> i64 {
        unsafe { sys::ngpt_audio_frames(self.ptr.as_ptr()) }
    }

    /// Interleaved samples [frames][channels].
    pub fn samples(&self) -> &[f32] {
        let n = self.frames() as usize * self.channels() as usize;
        unsafe { slice(sys::ngpt_audio_samples(self.ptr.as_ptr()), n) }
    }

    /// ImageBind's audio transform with the default clip rule: F32 [3, 1, 128, 204].
    pub fn preprocess(&self) -> Result<Tensor> {
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_audio_preprocess(&mut t.t, self.ptr.as_ptr(), ptr::null()) })?;
        Ok(t)
    }
}

impl Drop for Audio {
    fn drop(&mut self) {
        unsafe { sys::ngpt_audio_free(self.ptr.as_ptr()) }
    }
}
