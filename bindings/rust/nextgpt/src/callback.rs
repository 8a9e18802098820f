//! Text callbacks: a Rust closure behind a C function pointer, panics kept from unwinding into C.
use crate::ffi::*;
use std::os::raw::{c_char, c_void};

/// The token callback of a turn and the panic it raised, if any: a panic must not unwind into C,
/// so it cancels the turn and is resumed once the C call has returned.
pub(crate) struct TokenCall<'a> {
    pub(crate) f: &'a mut dyn FnMut(&str) -> bool,
    pub(crate) panic: Option<Box<dyn std::any::Any + Send>>,
}

/// Run the callback on one piece of text; a panic is kept (and cancels) instead of unwinding into C.
pub(crate) fn call_text(call: &mut TokenCall, piece: &str) -> bool {
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
    if call.panic.is_some() {
        return false;
    }
    let f = &mut call.f;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(token))) {
        Ok(go_on) => go_on,
        Err(payload) => {
            call.panic = Some(payload);
            false
        }
    }
}
