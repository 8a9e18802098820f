//! Decoded media: images and sounds.
use crate::ffi::*;
use crate::*;
use std::path::Path;
use std::ptr::{self, NonNull};

/// `ngpt_image`: a decoded RGB8 image (JPEG, PNG).
pub struct Image {
    pub(crate) ptr: NonNull<sys::ngpt_image>,
}

// SAFETY: independent of any context; one thread at a time.
unsafe impl Send for Image {}

impl Image {
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Image> {
        let p = c_path(path.as_ref())?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_image_load(&mut out, p.as_ptr()) })?;
        Ok(Image { ptr: NonNull::new(out).expect("ngpt_image_load returned NULL") })
    }

    /// Decode an image file held in memory; `name` labels error messages.
    pub fn from_memory(data: &[u8], name: Option<&str>) -> Result<Image> {
        let name = name.map(c_str).transpose()?;
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::ngpt_image_load_memory(&mut out, data.as_ptr() as *const _, data.len(),
                                        name.as_ref().map_or(ptr::null(), |n| n.as_ptr()))
        })?;
        Ok(Image { ptr: NonNull::new(out).expect("ngpt_image_load_memory returned NULL") })
    }

    /// Packed RGB8 pixels, `height` rows of `width * 3` bytes (copied).
    pub fn from_rgb8(rgb: &[u8], width: i32, height: i32) -> Result<Image> {
        if width < 0 || height < 0 || rgb.len() != width as usize * height as usize * 3 {
            return Err(Error::invalid("rgb must hold width * height * 3 bytes"));
        }
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_image_from_rgb8(&mut out, rgb.as_ptr(), width, height, 0) })?;
        Ok(Image { ptr: NonNull::new(out).expect("ngpt_image_from_rgb8 returned NULL") })
    }

    pub fn width(&self) -> i32 {
        unsafe { sys::ngpt_image_width(self.ptr.as_ptr()) }
    }

    pub fn height(&self) -> i32 {
        unsafe { sys::ngpt_image_height(self.ptr.as_ptr()) }
    }

    /// Packed RGB8, row-major, width * 3 bytes per row.
    pub fn pixels(&self) -> &[u8] {
        let n = self.width() as usize * self.height() as usize * 3;
        unsafe { slice(sys::ngpt_image_pixels(self.ptr.as_ptr()), n) }
    }

    /// ImageBind's vision transform: F32 [3, 224, 224].
    pub fn preprocess(&self) -> Result<Tensor> {
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_image_preprocess(&mut t.t, self.ptr.as_ptr()) })?;
        Ok(t)
    }

    /// An image from pixels [H, W, 3] (U8, or F32 in [0, 1] rounded as diffusers' numpy_to_pil);
    /// a batch of one, [1, H, W, 3] (what [`Decoder::generate`] returns for one image), is taken
    /// as its image.
    pub fn from_tensor(pixels: &Tensor) -> Result<Image> {
        let mut view = pixels.t;
        view.owner = ptr::null_mut(); // a borrowed view: the library must not free it
        if view.rank == 4 && view.shape[0] == 1 {
            view.rank = 3;
            view.shape = [view.shape[1], view.shape[2], view.shape[3], 0, 0, 0, 0, 0];
        }
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_image_from_tensor(&mut out, &view) })?;
        Ok(Image { ptr: NonNull::new(out).expect("ngpt_image_from_tensor returned NULL") })
    }

    /// Encode as PNG and write to `path`.
    pub fn save_png<P: AsRef<Path>>(&self, path: P) -> Result<()> {
        let p = c_path(path.as_ref())?;
        check(unsafe { sys::ngpt_image_save(self.ptr.as_ptr(), p.as_ptr(), sys::NGPT_IMAGE_FORMAT_PNG, 0, 0) })
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        unsafe { sys::ngpt_image_free(self.ptr.as_ptr()) }
    }
}

/// `ngpt_audio`: decoded float samples.
pub struct Audio {
    pub(crate) ptr: NonNull<sys::ngpt_audio>,
}

// SAFETY: independent of any context; one thread at a time.
unsafe impl Send for Audio {}

impl Audio {
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Audio> {
        let p = c_path(path.as_ref())?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_audio_load(&mut out, p.as_ptr()) })?;
        Ok(Audio { ptr: NonNull::new(out).expect("ngpt_audio_load returned NULL") })
    }

    /// Interleaved samples `[frames][channels]` (copied).
    pub fn from_pcm(samples: &[f32], channels: i32, sample_rate: i32) -> Result<Audio> {
        if channels <= 0 || samples.len() % channels as usize != 0 {
            return Err(Error::invalid("samples must hold a whole number of frames of `channels` samples"));
        }
        let frames = (samples.len() / channels as usize) as i64;
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_audio_from_pcm(&mut out, samples.as_ptr(), frames, channels, sample_rate) })?;
        Ok(Audio { ptr: NonNull::new(out).expect("ngpt_audio_from_pcm returned NULL") })
    }

    pub fn sample_rate(&self) -> i32 {
        unsafe { sys::ngpt_audio_sample_rate(self.ptr.as_ptr()) }
    }

    pub fn channels(&self) -> i32 {
        unsafe { sys::ngpt_audio_channels(self.ptr.as_ptr()) }
    }

    pub fn frames(&self) -> i64 {
        unsafe { sys::ngpt_audio_frames(self.ptr.as_ptr()) }
    }

    /// Interleaved samples `[frames][channels]`.
    pub fn samples(&self) -> &[f32] {
        let n = self.frames() as usize * self.channels() as usize;
        unsafe { slice(sys::ngpt_audio_samples(self.ptr.as_ptr()), n) }
    }

    /// ImageBind's audio transform with the default clip rule: F32 [3, 1, 128, 204].
    pub fn preprocess(&self) -> Result<Tensor> {
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_audio_preprocess(&mut t.t, self.ptr.as_ptr(), ptr::null()) })?;
        Ok(t)
    }
}

impl Drop for Audio {
    fn drop(&mut self) {
        unsafe { sys::ngpt_audio_free(self.ptr.as_ptr()) }
    }
}
