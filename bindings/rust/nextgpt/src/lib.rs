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
//! handle's lifetime. Handles the library lends (a pipeline's stages, a backbone's tokenizer)
//! come as [`Borrowed`]. Every function of the header has a safe wrapper here (a test checks
//! it); [`sys`] holds the raw declarations for what a wrapper does not expose.
#![forbid(unsafe_op_in_unsafe_fn)]

mod error;
mod ffi;
mod borrowed;
mod callback;
mod cancel;
mod context;
mod tensor;
mod tokenizer;
mod scheduler;
mod media;
mod video;
mod modality;
mod encoder;
mod projector;
mod backbone;
mod decoder;
mod pipeline;
mod memory;

pub use borrowed::Borrowed;
pub use cancel::CancelFlag;
pub use error::*;
pub use context::*;
pub use tensor::*;
pub use tokenizer::*;
pub use scheduler::*;
pub use media::*;
pub use video::*;
pub use modality::*;
pub use encoder::*;
pub use projector::*;
pub use backbone::*;
pub use decoder::*;
pub use pipeline::*;
pub use memory::*;

pub use nextgpt_sys as sys;

use ffi::owned;

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
