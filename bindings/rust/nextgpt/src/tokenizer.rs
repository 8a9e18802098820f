//! NExT-GPT's LLaMA tokenizer.
use crate::ffi::*;
use crate::*;
use std::ffi::CString;
use std::os::raw::c_char;
use std::path::Path;
use std::ptr::{self, NonNull};

/// `ngpt_tokenizer`: NExT-GPT's LLaMA tokenizer (SentencePiece BPE + the 38 added tokens).
pub struct Tokenizer {
    pub(crate) ptr: NonNull<sys::ngpt_tokenizer>,
    /// Lent by a backbone ([`crate::Borrowed`]): freed by its owner, never by Drop.
    pub(crate) lent: bool,
}

// SAFETY: the header documents a tokenizer as immutable and usable from several threads at once.
unsafe impl Send for Tokenizer {}
unsafe impl Sync for Tokenizer {}

impl Tokenizer {
    /// Load the tokenizer folder `model_dir` (tokenizer.model, added_tokens.json, ...).
    pub fn new<P: AsRef<Path>>(model_dir: P) -> Result<Tokenizer> {
        let dir = c_path(model_dir.as_ref())?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_tokenizer_create(&mut out, dir.as_ptr()) })?;
        Ok(Tokenizer { ptr: NonNull::new(out).expect("ngpt_tokenizer_create returned NULL"), lent: false })
    }

    /// Token ids of `text`; `add_bos` = transformers' add_special_tokens.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<i32>> {
        let mut n = 0usize;
        let p = text.as_ptr() as *const c_char;
        let st = unsafe {
            sys::ngpt_tokenizer_encode(self.ptr.as_ptr(), p, text.len(), add_bos as i32, ptr::null_mut(), 0, &mut n)
        };
        if st != sys::NGPT_OK && st != sys::NGPT_ERR_BUFFER_TOO_SMALL {
            return Err(Error::last(st));
        }
        let mut ids = vec![0i32; n];
        check(unsafe {
            sys::ngpt_tokenizer_encode(self.ptr.as_ptr(), p, text.len(), add_bos as i32, ids.as_mut_ptr(), n, &mut n)
        })?;
        ids.truncate(n);
        Ok(ids)
    }

    /// The UTF-8 bytes of `ids` (may contain NUL from the byte token <0x00>).
    pub fn decode_bytes(&self, ids: &[i32], skip_special_tokens: bool) -> Result<Vec<u8>> {
        let mut n = 0usize;
        let skip = skip_special_tokens as i32;
        let st = unsafe {
            sys::ngpt_tokenizer_decode(self.ptr.as_ptr(), ids.as_ptr(), ids.len(), skip, ptr::null_mut(), 0, &mut n)
        };
        if st != sys::NGPT_OK && st != sys::NGPT_ERR_BUFFER_TOO_SMALL {
            return Err(Error::last(st));
        }
        let mut buf = vec![0u8; n + 1];
        check(unsafe {
            sys::ngpt_tokenizer_decode(self.ptr.as_ptr(), ids.as_ptr(), ids.len(), skip,
                                       buf.as_mut_ptr() as *mut c_char, n + 1, &mut n)
        })?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[i32], skip_special_tokens: bool) -> Result<String> {
        let b = self.decode_bytes(ids, skip_special_tokens)?;
        Ok(String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    pub fn vocab_size(&self) -> i32 {
        unsafe { sys::ngpt_tokenizer_vocab_size(self.ptr.as_ptr()) }
    }

    /// The stored piece of `id` (`"▁the"`, `"<0x0A>"`, `"[IMG0]"`); None when out of range.
    pub fn token_to_piece(&self, id: i32) -> Option<String> {
        unsafe { owned(sys::ngpt_tokenizer_token_to_piece(self.ptr.as_ptr(), id)) }
    }

    /// The id of exactly `piece`, if there is one.
    pub fn piece_to_id(&self, piece: &str) -> Option<i32> {
        let c = CString::new(piece).ok()?;
        let id = unsafe { sys::ngpt_tokenizer_piece_to_id(self.ptr.as_ptr(), c.as_ptr()) };
        (id >= 0).then_some(id)
    }

    pub fn bos_id(&self) -> Option<i32> {
        let id = unsafe { sys::ngpt_tokenizer_bos_id(self.ptr.as_ptr()) };
        (id >= 0).then_some(id)
    }

    pub fn eos_id(&self) -> Option<i32> {
        let id = unsafe { sys::ngpt_tokenizer_eos_id(self.ptr.as_ptr()) };
        (id >= 0).then_some(id)
    }
}

impl Drop for Tokenizer {
    fn drop(&mut self) {
        if !self.lent {
            unsafe { sys::ngpt_tokenizer_free(self.ptr.as_ptr()) }
        }
    }
}
