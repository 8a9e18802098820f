//! Helpers at the C boundary: strings, paths and borrowed slices.
use crate::{sys, Error, Result};
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Ok for NGPT_OK, else the error with the library's message.
pub(crate) fn check(status: sys::ngpt_status) -> Result<()> {
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
pub(crate) unsafe fn owned(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: by the caller.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

pub(crate) fn c_path(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::invalid("a path contains a NUL byte"))
}

pub(crate) fn c_str(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid("a string contains a NUL byte"))
}

/// An optional string's pointer for the C side: NULL for None.
pub(crate) fn c_ptr_or_null(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// A slice from a library pointer (empty for NULL / 0).
///
/// # Safety
/// `p` points to `n` valid elements that live as long as `'a`.
pub(crate) unsafe fn slice<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: by the caller.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

/// [`slice`], writable: p valid for n writes for 'a and not aliased (or null / n == 0).
pub(crate) unsafe fn slice_mut<'a, T>(p: *mut T, n: usize) -> &'a mut [T] {
    if p.is_null() || n == 0 {
        &mut []
    } else {
        // SAFETY: by the caller.
        unsafe { std::slice::from_raw_parts_mut(p, n) }
    }
}
