//! Text callbacks: a Rust closure behind a C function pointer, panics kept from unwinding into C.
use crate::ffi::*;
use std::os::raw::{c_char, c_void};

/// The token callback of a turn and the panic it raised, if any: a panic must not unwind into C,
/// so it cancels the turn and is resumed once the C call has returned.
pub(crate) struct TokenCall<'a> {
    pub(crate) f: &'a mut dyn FnMut(&str) -> bool,
    pub(crate) panic: Option<Box<dyn std::any::Any + Send>>,
}

/// `f()`, or false (cancel) when it panics (the payload kept in `panic`, to be resumed once the
/// C call has returned) or when an earlier callback of the call panicked: every closure behind a
/// C callback runs through this, so no panic unwinds into C.
pub(crate) fn caught(panic: &mut Option<Box<dyn std::any::Any + Send>>, f: impl FnOnce() -> bool) -> bool {
    if panic.is_some() {
        return false;
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(go_on) => go_on,
        Err(payload) => {
            *panic = Some(payload);
            false
        }
    }
}

/// Run the callback on one piece of text (see [`caught`]).
pub(crate) fn call_text(call: &mut TokenCall, piece: &str) -> bool {
    let f = &mut call.f;
    caught(&mut call.panic, || f(piece))
}

pub(crate) unsafe extern "C" fn session_text(utf8: *const c_char, len: usize, user: *mut c_void) -> bool {
    // SAFETY: user is the &mut TokenCall passed by Session::turn_impl, alive for the call; utf8
    // holds len bytes during the callback (not NUL-terminated; NUL bytes pass through).
    let call = unsafe { &mut *(user as *mut TokenCall) };
    let piece = String::from_utf8_lossy(unsafe { slice(utf8 as *const u8, len) });
    call_text(call, &piece)
}

/// The token-id callback of a generation and the panic it raised, if any (as [`TokenCall`]).
pub(crate) struct IdCall<'a> {
    pub(crate) f: &'a mut dyn FnMut(i32) -> bool,
    pub(crate) panic: Option<Box<dyn std::any::Any + Send>>,
}

pub(crate) unsafe extern "C" fn session_token(token: i32, user: *mut c_void) -> bool {
    // SAFETY: user is the &mut IdCall passed by Session::generate_impl, alive for the call.
    let call = unsafe { &mut *(user as *mut IdCall) };
    let f = &mut call.f;
    caught(&mut call.panic, || f(token))
}
