//! The context (device, threads, logging, memory accounting) and the stages' options.
use crate::ffi::*;
use crate::*;
use std::ptr::{self, NonNull};

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
    pub(crate) ptr: NonNull<sys::ngpt_context>,
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

