//! Errors: the status and the library's message of a failed call.
use crate::ffi::owned;
use crate::sys;
use std::fmt;

/// A failed libnextgpt call: the status (negative `ngpt_status`) and the library's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: i32,
    pub message: String,
}

impl Error {
    pub(crate) fn last(status: sys::ngpt_status) -> Error {
        // SAFETY: ngpt_last_error never returns NULL and is valid until the next call on this thread.
        let message = unsafe { owned(sys::ngpt_last_error()) }.unwrap_or_default();
        Error { status: status as i32, message }
    }

    pub(crate) fn invalid(message: &str) -> Error {
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

/// Forget this thread's last error message (`ngpt_clear_error`): for code that mixes [`sys`]
/// calls and reads `sys::ngpt_last_error()` itself. [`Error`] values keep their copy.
pub fn clear_error() {
    unsafe { sys::ngpt_clear_error() }
}
