//! Handles the library owns and lends: a pipeline's stages, a backbone's tokenizer.
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

/// A handle lent by its owner for `'a` (e.g. [`crate::Pipeline`]'s encoder): used like the owned
/// type through `Deref`, never freed by Rust (its owner frees it).
pub struct Borrowed<'a, T> {
    inner: ManuallyDrop<T>,
    _owner: PhantomData<&'a mut ()>,
}

impl<T> Borrowed<'_, T> {
    /// `inner` wraps a pointer its owner frees; the caller ties `'a` to the owner's borrow.
    pub(crate) fn new(inner: T) -> Self {
        Borrowed { inner: ManuallyDrop::new(inner), _owner: PhantomData }
    }
}

impl<T> Deref for Borrowed<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for Borrowed<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}
