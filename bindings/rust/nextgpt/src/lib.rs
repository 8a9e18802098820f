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
//! from any thread, one at a time: the stateful calls take `&mut self`), and different handles of
//! one context may be used from different threads at once (their calls take turns: on the CPU
//! per job, on CUDA per call, under the context's device lock); `Tokenizer` and `Backbone` are
//! also `Sync` (a backbone's sessions may run on several threads).
//! Borrowed data (timesteps, pixels, samples, tensor contents) is returned as slices tied to the
//! handle's lifetime. What this crate does not wrap yet is reachable, unsafely, through
//! [`sys`].
#![forbid(unsafe_op_in_unsafe_fn)]

use std::ffi::{CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_void};
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

/// [`slice`], writable: p valid for n writes for 'a and not aliased (or null / n == 0).
unsafe fn slice_mut<'a, T>(p: *mut T, n: usize) -> &'a mut [T] {
    if p.is_null() || n == 0 {
        &mut []
    } else {
        // SAFETY: by the caller.
        unsafe { std::slice::from_raw_parts_mut(p, n) }
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
    /// Messages below this level (`sys::NGPT_LOG_*`) are dropped; `None` = the library's
    /// default (WARN, to stderr); `Some(sys::NGPT_LOG_NONE)` silences it.
    pub log_level: Option<sys::ngpt_log_level>,
}

impl Default for ContextParams {
    fn default() -> Self {
        ContextParams { device: Device::Auto, device_index: 0, n_threads: 0, memory_limit: 0, log_level: None }
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
        if let Some(l) = p.log_level {
            cp.log_level = l;
        }
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

/// A library-owned tensor, freed on Drop: the library's outputs, and inputs made with
/// [`Tensor::zeros`], [`Tensor::from_f32`] or [`Tensor::from_bytes`].
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

    /// A zero-filled tensor of `dtype` (`sys::NGPT_DTYPE_*`) and `shape` (`ngpt_tensor_create`).
    pub fn zeros(dtype: sys::ngpt_dtype, shape: &[i64]) -> Result<Tensor> {
        if shape.len() > sys::NGPT_MAX_DIMS as usize {
            return Err(Error::invalid("more dimensions than NGPT_MAX_DIMS"));
        }
        let mut t = Tensor::empty();
        // SAFETY: shape holds rank values; on failure t stays empty (the call zeroes it first).
        check(unsafe { sys::ngpt_tensor_create(&mut t.t, dtype, shape.len() as i32, shape.as_ptr()) })?;
        Ok(t)
    }

    /// A tensor of `dtype` and `shape` holding a copy of `bytes`, row-major in native byte
    /// order: the way in for the dtypes Rust has no type for (BF16 and F16 as their 16-bit
    /// patterns, e.g. another tensor's [`Tensor::as_bytes`]).
    pub fn from_bytes(dtype: sys::ngpt_dtype, shape: &[i64], bytes: &[u8]) -> Result<Tensor> {
        let mut t = Tensor::zeros(dtype, shape)?;
        if t.as_bytes().len() != bytes.len() {
            return Err(Error::invalid(&format!(
                "{} bytes for a {} tensor of shape {:?} ({} bytes)",
                bytes.len(),
                t.dtype_name(),
                shape,
                t.as_bytes().len()
            )));
        }
        t.as_bytes_mut().copy_from_slice(bytes);
        Ok(t)
    }

    /// An F32 tensor of `shape` holding a copy of `data`.
    pub fn from_f32(shape: &[i64], data: &[f32]) -> Result<Tensor> {
        let mut t = Tensor::zeros(sys::NGPT_DTYPE_F32, shape)?;
        match t.as_f32_mut() {
            Some(d) if d.len() == data.len() => d.copy_from_slice(data),
            _ => return Err(Error::invalid("the data does not hold the shape's element count")),
        }
        Ok(t)
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

    /// The raw bytes, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        let n = unsafe { sys::ngpt_tensor_nbytes(&self.t) };
        // SAFETY: data holds nbytes bytes owned by this tensor, borrowed mutably through self.
        unsafe { slice_mut(self.t.data as *mut u8, n) }
    }

    /// The elements when the tensor is F32, writable.
    pub fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        if self.t.dtype != sys::NGPT_DTYPE_F32 {
            return None;
        }
        let n = self.numel();
        // SAFETY: as as_f32, borrowed mutably through self.
        Some(unsafe { slice_mut(self.t.data as *mut f32, n) })
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

/// `ngpt_scheduler`: any of the 13 samplers of `ngpt_scheduler_kind` (DDIM, PNDM, DPM-Solver++,
/// Euler, UniPC, ...), from a diffusers scheduler_config.json.
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

    /// The timesteps in stepping order (an error before set_timesteps, and for the k-diffusion
    /// samplers — Euler, Euler ancestral, Heun, LMS, KDPM2, KDPM2 ancestral — whose timesteps
    /// are fractional: see [`Scheduler::timesteps_f64`]).
    pub fn timesteps(&self) -> Result<&[i64]> {
        let mut ts = ptr::null();
        let mut n = 0usize;
        check(unsafe { sys::ngpt_scheduler_timesteps(self.ptr.as_ptr(), &mut ts, &mut n) })?;
        // SAFETY: borrowed until the next set_timesteps (&mut self) or drop.
        Ok(unsafe { slice(ts, n) })
    }

    /// Every kind's timesteps as f64 (the k-diffusion samplers' fractional ones; the model takes
    /// them as f32).
    pub fn timesteps_f64(&self) -> Result<&[f64]> {
        let mut ts = ptr::null();
        let mut n = 0usize;
        check(unsafe { sys::ngpt_scheduler_timesteps_f64(self.ptr.as_ptr(), &mut ts, &mut n) })?;
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
        self.step_f64(model_output, timestep as f64, sample, variance_noise)
    }

    /// [`Scheduler::step`] at a timestep of [`Scheduler::timesteps_f64`] (every kind).
    pub fn step_f64(&mut self, model_output: &[f32], timestep: f64, sample: &mut [f32],
                    variance_noise: Option<&[f32]>) -> Result<()> {
        if model_output.len() != sample.len() || variance_noise.map_or(false, |v| v.len() != sample.len()) {
            return Err(Error::invalid("model_output, sample and variance_noise must have the same length"));
        }
        let noise = variance_noise.map_or(ptr::null(), |v| v.as_ptr());
        check(unsafe {
            sys::ngpt_scheduler_step_f64(self.ptr.as_ptr(), model_output.as_ptr(), timestep, sample.as_mut_ptr(),
                                         sample.len(), noise)
        })
    }

    /// Forget the stepping history, keep the timesteps.
    pub fn reset(&mut self) -> Result<()> {
        check(unsafe { sys::ngpt_scheduler_reset(self.ptr.as_ptr()) })
    }

    /// The model's input at `timestep`, in place: unchanged, or divided by (sigma^2 + 1)^0.5
    /// for the k-diffusion samplers.
    pub fn scale_model_input(&self, sample: &mut [f32], timestep: i64) -> Result<()> {
        self.scale_model_input_f64(sample, timestep as f64)
    }

    pub fn scale_model_input_f64(&self, sample: &mut [f32], timestep: f64) -> Result<()> {
        check(unsafe {
            sys::ngpt_scheduler_scale_model_input_f64(self.ptr.as_ptr(), sample.as_mut_ptr(), sample.len(), timestep)
        })
    }

    /// sqrt(acp[t]) * original + sqrt(1 - acp[t]) * noise (the k-diffusion samplers:
    /// original + sigma(t) * noise).
    pub fn add_noise(&self, original: &[f32], noise: &[f32], timestep: i64) -> Result<Vec<f32>> {
        self.add_noise_f64(original, noise, timestep as f64)
    }

    pub fn add_noise_f64(&self, original: &[f32], noise: &[f32], timestep: f64) -> Result<Vec<f32>> {
        if original.len() != noise.len() {
            return Err(Error::invalid("original and noise must have the same length"));
        }
        let mut out = vec![0f32; original.len()];
        check(unsafe {
            sys::ngpt_scheduler_add_noise_f64(self.ptr.as_ptr(), out.as_mut_ptr(), original.as_ptr(), noise.as_ptr(),
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

    /// An image from pixels [H, W, 3] (U8, or F32 in [0, 1] rounded as diffusers' numpy_to_pil);
    /// a batch of one, [1, H, W, 3] (what [`Decoder::generate`] returns for one image), is taken
    /// as its image.
    pub fn from_tensor(pixels: &Tensor) -> Result<Image> {
        let mut view = pixels.t;
        view.owner = ptr::null_mut(); // a borrowed view: the library must not free it
        if view.rank == 4 && view.shape[0] == 1 {
            view.rank = 3;
            view.shape = [view.shape[1], view.shape[2], view.shape[3], 0, 0, 0, 0, 0];
        }
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_image_from_tensor(&mut out, &view) })?;
        Ok(Image { ptr: NonNull::new(out).expect("ngpt_image_from_tensor returned NULL") })
    }

    /// Encode as PNG and write to `path`.
    pub fn save_png<P: AsRef<Path>>(&self, path: P) -> Result<()> {
        let p = c_path(path.as_ref())?;
        check(unsafe { sys::ngpt_image_save(self.ptr.as_ptr(), p.as_ptr(), sys::NGPT_IMAGE_FORMAT_PNG, 0, 0) })
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

// ---- modalities -------------------------------------------------------------------------------

/// What a media item or a signal group is (`ngpt_modality`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Modality {
    Text,
    Image,
    Audio,
    Video,
}

impl Modality {
    fn raw(self) -> sys::ngpt_modality {
        match self {
            Modality::Text => sys::NGPT_MODALITY_TEXT,
            Modality::Image => sys::NGPT_MODALITY_IMAGE,
            Modality::Audio => sys::NGPT_MODALITY_AUDIO,
            Modality::Video => sys::NGPT_MODALITY_VIDEO,
        }
    }

    fn from_raw(m: sys::ngpt_modality) -> Modality {
        match m {
            sys::NGPT_MODALITY_IMAGE => Modality::Image,
            sys::NGPT_MODALITY_AUDIO => Modality::Audio,
            sys::NGPT_MODALITY_VIDEO => Modality::Video,
            _ => Modality::Text,
        }
    }

    /// The modality's bit (`NGPT_MODALITY_BIT` / `NGPT_PIPELINE_FORCE`).
    pub fn bit(self) -> u32 {
        1u32 << self.raw()
    }
}

fn bits(ms: &[Modality]) -> u32 {
    ms.iter().fold(0, |b, m| b | m.bit())
}

/// The bits of output modalities: `Text` has no output (its bit is the projector's input one).
fn output_bits(ms: &[Modality]) -> Result<u32> {
    if ms.contains(&Modality::Text) {
        return Err(Error::invalid("Modality::Text is not an output modality (image, audio or video)"));
    }
    Ok(bits(ms))
}

/// A borrowed F32 view of `data` with `shape`, for arguments (owner NULL: never freed by the library).
fn f32_view(data: &[f32], shape: &[i64]) -> Result<sys::ngpt_tensor> {
    if shape.len() > 8 || shape.iter().product::<i64>() != data.len() as i64 {
        return Err(Error::invalid("the data does not hold the shape's element count"));
    }
    // SAFETY: an all-zero ngpt_tensor is an empty caller-owned view.
    let mut t: sys::ngpt_tensor = unsafe { std::mem::zeroed() };
    t.dtype = sys::NGPT_DTYPE_F32;
    t.rank = shape.len() as i32;
    t.shape[..shape.len()].copy_from_slice(shape);
    t.data = data.as_ptr() as *mut c_void;
    Ok(t)
}

/// A borrowed view of a library tensor, for arguments.
fn borrow(t: &Tensor) -> sys::ngpt_tensor {
    let mut v = t.t;
    v.owner = ptr::null_mut();
    v
}

// ---- encoder ----------------------------------------------------------------------------------

/// `ngpt_encoder`: ImageBind (vision and audio branches). Borrows its [`Context`].
pub struct Encoder<'c> {
    ptr: NonNull<sys::ngpt_encoder>,
    _ctx: PhantomData<&'c Context>,
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

// ---- projectors -------------------------------------------------------------------------------

/// `ngpt_projector`: NExT-GPT's input projector (embedding -> soft token) and output projectors
/// (signal hidden states -> decoder conditioning). Borrows its [`Context`].
pub struct Projector<'c> {
    ptr: NonNull<sys::ngpt_projector>,
    _ctx: PhantomData<&'c Context>,
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
        Ok(Projector { ptr: NonNull::new(out).expect("ngpt_projector_create returned NULL"), _ctx: PhantomData })
    }

    /// features [n, input_dim] -> F32 [n, llm_hidden]: one soft token per row.
    pub fn input(&mut self, features: &Tensor) -> Result<Tensor> {
        let f = borrow(features);
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_projector_input(self.ptr.as_ptr(), &mut t.t, &f) })?;
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
}

impl Drop for Projector<'_> {
    fn drop(&mut self) {
        unsafe { sys::ngpt_projector_free(self.ptr.as_ptr()) }
    }
}

// ---- backbone and chat turns ------------------------------------------------------------------

/// `ngpt_backbone`: the LLaMA/Vicuna language model (+ the NExT-GPT delta), read-only once
/// loaded. Conversations are [`Session`]s, which borrow it. Borrows its [`Context`].
pub struct Backbone<'c> {
    ptr: NonNull<sys::ngpt_backbone>,
    _ctx: PhantomData<&'c Context>,
}

// SAFETY: the header lets any number of sessions on any threads share a backbone (on CUDA their
// calls take turns under the context's device lock).
unsafe impl Send for Backbone<'_> {}
unsafe impl Sync for Backbone<'_> {}

/// What the stages' `with_options` constructors take beyond the defaults: the compute dtype
/// (`sys::NGPT_DTYPE_F32`, or F16 / BF16 on a CUDA context — see each stage in nextgpt.h) and the
/// stage's flag bits (`sys::NGPT_BACKBONE_FLAG_*`, `NGPT_ENCODER_FLAG_*`, `NGPT_DECODER_FLAG_*`,
/// `NGPT_PIPELINE_*`: e.g. the CUDA graph flags).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    pub compute_dtype: sys::ngpt_dtype,
    pub flags: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { compute_dtype: sys::NGPT_DTYPE_F32, flags: 0 }
    }
}

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
    ptr: NonNull<sys::ngpt_backbone_session>,
    n_embd: usize,
    _bb: PhantomData<&'b ()>,
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

// ---- decoders ---------------------------------------------------------------------------------

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
    ptr: NonNull<sys::ngpt_decoder>,
    _ctx: PhantomData<&'c Context>,
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
    /// checker (`sys::NGPT_DECODER_FLAG_SAFETY_CHECKER`) the flags, BOOL [B] (a flagged image
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

// ---- pipeline ---------------------------------------------------------------------------------

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
    ptr: NonNull<sys::ngpt_pipeline>,
    _ctx: PhantomData<&'c Context>,
}

// SAFETY: one thread at a time per handle (turn takes &mut self); handles of one context may
// run on different threads at once (the header: CPU jobs and CUDA calls take turns).
unsafe impl Send for Pipeline<'_> {}

/// The token callback of a turn and the panic it raised, if any: a panic must not unwind into C,
/// so it cancels the turn and is resumed once the C call has returned.
struct TokenCall<'a> {
    f: &'a mut dyn FnMut(&str) -> bool,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

/// Run the callback on one piece of text; a panic is kept (and cancels) instead of unwinding into C.
fn call_text(call: &mut TokenCall, piece: &str) -> bool {
    if call.panic.is_some() {
        return false;
    }
    let f = &mut call.f;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(piece))) {
        Ok(go_on) => go_on,
        Err(payload) => {
            call.panic = Some(payload);
            false
        }
    }
}

unsafe extern "C" fn session_text(utf8: *const c_char, len: usize, user: *mut c_void) -> bool {
    // SAFETY: user is the &mut TokenCall passed by Session::turn_impl, alive for the call; utf8
    // holds len bytes during the callback (not NUL-terminated; NUL bytes pass through).
    let call = unsafe { &mut *(user as *mut TokenCall) };
    let piece = String::from_utf8_lossy(unsafe { slice(utf8 as *const u8, len) });
    call_text(call, &piece)
}

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

// ---- memory estimate ----------------------------------------------------------------------------

/// What [`estimate_memory`] is asked about (the fields of `ngpt_memory_params` a Rust program sets).
#[derive(Clone, Debug)]
pub struct MemoryParams {
    /// Where the pipeline would run (no device is needed to estimate either).
    pub backend: Backend,
    /// `NGPT_DTYPE_F32` (default), BF16 on either backend, or F16 with [`Backend::Cuda`].
    pub compute_dtype: sys::ngpt_dtype,
    /// The conversation's context (0 = min(2048, the model's)).
    pub n_ctx: i32,
    /// The decoders the turn runs (default: image).
    pub outputs: Vec<Modality>,
    /// Image / video size (0 = the decoder's default).
    pub width: i32,
    pub height: i32,
    /// `sys::NGPT_PIPELINE_*` bits that change memory (`NGPT_PIPELINE_SAFETY_CHECKER`).
    pub flags: u32,
}

impl Default for MemoryParams {
    fn default() -> Self {
        MemoryParams { backend: Backend::Cpu, compute_dtype: sys::NGPT_DTYPE_F32, n_ctx: 0,
                       outputs: vec![Modality::Image], width: 0, height: 0, flags: 0 }
    }
}

/// One part's bytes: weights as the backend holds them (`mapped` of them views of the files),
/// its KV cache, its peak working memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryPart {
    pub weights: u64,
    pub mapped: u64,
    pub kv: u64,
    pub work: u64,
}

/// `ngpt_pipeline_estimate_memory`'s answer (a copy).
#[derive(Clone, Debug)]
pub struct MemoryEstimate {
    /// Indexed by `ngpt_memory_part` (backbone, encoder, projector, image/audio/video decoder);
    /// None for a part the bundle does not have.
    pub parts: Vec<Option<MemoryPart>>,
    /// Indexed by `ngpt_pipeline_stage`: tensor bytes the context holds at the stage's peak.
    pub stages: Vec<u64>,
    /// The turn's peak (largest stage + overhead), the CUDA allowance, the mmapped weights.
    pub peak: u64,
    pub overhead: u64,
    pub mapped: u64,
}

/// The memory a pipeline turn on `bundle_dir` needs, from its configs alone.
pub fn estimate_memory<P: AsRef<Path>>(bundle_dir: P, p: &MemoryParams) -> Result<MemoryEstimate> {
    let dir = c_path(bundle_dir.as_ref())?;
    let mut mp: sys::ngpt_memory_params = unsafe { std::mem::zeroed() };
    check(unsafe { sys::ngpt_memory_params_default(&mut mp, std::mem::size_of_val(&mp)) })?;
    mp.backend = match p.backend {
        Backend::Cpu => sys::NGPT_BACKEND_CPU,
        Backend::Cuda => sys::NGPT_BACKEND_CUDA,
        Backend::Other(v) => v as sys::ngpt_backend,
    };
    mp.compute_dtype = p.compute_dtype;
    mp.n_ctx = p.n_ctx;
    mp.outputs = bits(&p.outputs);
    mp.width = p.width;
    mp.height = p.height;
    mp.flags = p.flags;
    let mut out = ptr::null_mut();
    check(unsafe { sys::ngpt_pipeline_estimate_memory(&mut out, dir.as_ptr(), &mp) })?;
    let mut parts = Vec::new();
    for i in 0..sys::NGPT_MEMORY_PART_COUNT {
        if unsafe { sys::ngpt_memory_estimate_has_part(out, i) } == 0 {
            parts.push(None);
            continue;
        }
        let mut m = MemoryPart::default();
        unsafe { sys::ngpt_memory_estimate_part(out, i, &mut m.weights, &mut m.mapped, &mut m.kv, &mut m.work) };
        parts.push(Some(m));
    }
    let stages = (0..sys::NGPT_PIPELINE_STAGE_COUNT).map(|s| unsafe { sys::ngpt_memory_estimate_stage(out, s) }).collect();
    let (mut peak, mut overhead, mut mapped) = (0u64, 0u64, 0u64);
    unsafe {
        sys::ngpt_memory_estimate_peak(out, &mut peak, &mut overhead, &mut mapped);
        sys::ngpt_memory_estimate_free(out);
    }
    Ok(MemoryEstimate { parts, stages, peak, overhead, mapped })
}
