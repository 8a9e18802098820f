//! A cancel flag a turn reads while it runs.
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

/// A flag that stops a running turn at its next token or denoising step once set, from any
/// thread ([`crate::PipelineTurnParams::cancel`], [`crate::TurnParams::cancel`]). Clones share
/// the flag. It stays set until [`CancelFlag::reset`]: a turn given a set flag is cancelled at
/// its first check.
///
/// The library reads it through a `const volatile int32_t *`; the flag is an [`AtomicI32`], which
/// has the size, alignment and bit validity of an `i32` (nonzero = cancel). A caller that already
/// keeps such an atomic (an application-wide shutdown flag) hands it over with
/// [`CancelFlag::from_atomic`]; any nonzero value it stores cancels.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicI32>);

impl CancelFlag {
    /// A flag not set.
    pub fn new() -> CancelFlag {
        CancelFlag::default()
    }

    /// A flag read from the caller's own atomic: storing a nonzero value in it (from any thread)
    /// cancels, as [`CancelFlag::cancel`] does.
    pub fn from_atomic(flag: Arc<AtomicI32>) -> CancelFlag {
        CancelFlag(flag)
    }

    /// The atomic this flag reads (shared with its clones and with [`CancelFlag::from_atomic`]'s
    /// caller).
    pub fn atomic(&self) -> &Arc<AtomicI32> {
        &self.0
    }

    /// Ask the turn that reads this flag to stop.
    pub fn cancel(&self) {
        self.0.store(1, Ordering::SeqCst);
    }

    /// Clear the flag for the next turn.
    pub fn reset(&self) {
        self.0.store(0, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst) != 0
    }

    pub(crate) fn as_ptr(&self) -> *const i32 {
        self.0.as_ptr()
    }
}

impl From<Arc<AtomicI32>> for CancelFlag {
    fn from(flag: Arc<AtomicI32>) -> CancelFlag {
        CancelFlag::from_atomic(flag)
    }
}
