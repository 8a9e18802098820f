//! Library-owned tensors and the borrowed views calls take.
use crate::ffi::*;
use crate::*;
use std::fmt;
use std::os::raw::c_void;
use std::ptr;

/// A library-owned tensor, freed on Drop: the library's outputs, and inputs made with
/// [`Tensor::zeros`], [`Tensor::from_f32`] or [`Tensor::from_bytes`].
pub struct Tensor {
    pub(crate) t: sys::ngpt_tensor,
}

// SAFETY: plain host memory owned by this value.
unsafe impl Send for Tensor {}
unsafe impl Sync for Tensor {}

impl Tensor {
    pub(crate) fn empty() -> Tensor {
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
        // checked before anything is allocated (a wrong shape may ask for terabytes)
        if let Some(n) = shape_bytes(dtype, shape) {
            if n != bytes.len() as u128 {
                let name = unsafe { owned(sys::ngpt_dtype_name(dtype)) }.unwrap_or_default();
                return Err(Error::invalid(&format!(
                    "{} bytes for a {} tensor of shape {:?} ({} bytes)", bytes.len(), name, shape, n)));
            }
        }
        let mut t = Tensor::zeros(dtype, shape)?;
        t.as_bytes_mut().copy_from_slice(bytes);
        Ok(t)
    }

    /// An F32 tensor of `shape` holding a copy of `data`.
    pub fn from_f32(shape: &[i64], data: &[f32]) -> Result<Tensor> {
        if shape_bytes(sys::NGPT_DTYPE_F32, shape).map_or(false, |n| n != 4 * data.len() as u128) {
            return Err(Error::invalid("the data does not hold the shape's element count"));
        }
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

/// The bytes of a `dtype` tensor of `shape`, when every dimension is >= 0 (else the library's
/// own check answers); u128 cannot overflow for 8 dimensions of i64 times an element size.
fn shape_bytes(dtype: sys::ngpt_dtype, shape: &[i64]) -> Option<u128> {
    if shape.iter().any(|&d| d < 0) || shape.len() > sys::NGPT_MAX_DIMS as usize {
        return None;
    }
    let size = unsafe { sys::ngpt_dtype_size(dtype) } as u128;
    shape.iter().try_fold(size, |n, &d| n.checked_mul(d as u128))
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

/// Bytes of one element of `dtype` (`sys::NGPT_DTYPE_*`: 4 for F32, 2 for F16 and BF16, 1 for
/// U8, I8 and BOOL, ...); 0 for an unknown dtype.
pub fn dtype_size(dtype: sys::ngpt_dtype) -> usize {
    unsafe { sys::ngpt_dtype_size(dtype) }
}

/// A borrowed F32 view of `data` with `shape`, for arguments (owner NULL: never freed by the library).
pub(crate) fn f32_view(data: &[f32], shape: &[i64]) -> Result<sys::ngpt_tensor> {
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
pub(crate) fn borrow(t: &Tensor) -> sys::ngpt_tensor {
    let mut v = t.t;
    v.owner = ptr::null_mut();
    v
}
