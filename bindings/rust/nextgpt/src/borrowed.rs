//! Handles the library owns and lends: a pipeline's stages, a backbone's tokenizer.
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// A handle lent by its owner for `'a` (e.g. [`crate::Pipeline::encoder`]): used like the owned
/// type, never freed by Rust (its owner frees it).
///
/// A lent handle is marked lent: its `Drop` frees nothing. Every lent handle derefs to `&T`. The
/// stages whose calls take `&mut self` — [`crate::Encoder`], [`crate::Projector`],
/// [`crate::Decoder`] — also deref to `&mut T`, which is sound because such a handle carries the
/// lender's borrow `'a` as its own lifetime: even one moved out with `std::mem::replace` can
/// neither outlive the lender nor free what it owns (and the owned handle swapped in is freed
/// when the `Borrowed` is dropped). The tokenizer, the backbone and the session are lent
/// read-only:
///
/// ```compile_fail
/// fn steal(bb: &nextgpt::Backbone, other: nextgpt::Tokenizer) {
///     let mut lent = bb.tokenizer().unwrap();
///     drop(std::mem::replace(&mut *lent, other)); // no &mut Tokenizer: it would free the backbone's
/// }
/// ```
///
/// and a lent stage cannot outlive its lender:
///
/// ```compile_fail
/// fn keep<'c>(ctx: &'c nextgpt::Context, other: nextgpt::Encoder<'c>) -> nextgpt::Encoder<'c> {
///     let mut pl = nextgpt::Pipeline::new(ctx, "bundle", &[]).unwrap();
///     let stolen = std::mem::replace(&mut *pl.encoder().unwrap(), other);
///     drop(pl);
///     stolen
/// }
/// ```
pub struct Borrowed<'a, T> {
    inner: T,
    _owner: PhantomData<&'a mut ()>,
}

impl<T> Borrowed<'_, T> {
    /// `inner` is a handle marked lent (its owner frees it); the caller ties `'a` to the
    /// owner's borrow.
    pub(crate) fn new(inner: T) -> Self {
        Borrowed { inner, _owner: PhantomData }
    }
}

impl<T> Deref for Borrowed<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

macro_rules! lent_mut {
    ($($t:ident),*) => {$(
        impl<'a> DerefMut for Borrowed<'a, crate::$t<'a>> {
            fn deref_mut(&mut self) -> &mut crate::$t<'a> {
                &mut self.inner
            }
        }
    )*};
}

lent_mut!(Encoder, Projector, Decoder);
