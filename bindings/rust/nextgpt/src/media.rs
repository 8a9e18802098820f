//! Decoded media: images and sounds, their preprocessing and their encoded files.
use crate::ffi::*;
use crate::*;
use std::path::Path;
use std::ptr::{self, NonNull};

/// An image file format (`ngpt_image_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// [`Image::save`]: from the path's extension (.png, .jpg / .jpeg); [`Image::encode`]: PNG.
    #[default]
    Auto,
    /// PNG (libpng, 8-bit RGB, zlib level 6; lossless: the quality is ignored).
    Png,
    /// Baseline JPEG (libjpeg-turbo), 4:2:0 chroma unless `sys::NGPT_ENCODE_JPEG_444`.
    Jpeg,
}

impl ImageFormat {
    pub(crate) fn raw(self) -> sys::ngpt_image_format {
        match self {
            ImageFormat::Auto => sys::NGPT_IMAGE_FORMAT_AUTO,
            ImageFormat::Png => sys::NGPT_IMAGE_FORMAT_PNG,
            ImageFormat::Jpeg => sys::NGPT_IMAGE_FORMAT_JPEG,
        }
    }
}

/// A sound file format (`ngpt_audio_format`), written through libsndfile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// [`Audio::save`]: from the path's extension (.wav -> `Wav16`, .flac, .ogg / .oga);
    /// [`Audio::encode`]: `Wav16`.
    #[default]
    Auto,
    /// WAV, 16-bit PCM (samples clipped to [-1, 1]).
    Wav16,
    /// WAV, 32-bit IEEE float: lossless for float samples (loading clips to [-1, 1], as
    /// torchaudio.load does).
    WavFloat,
    /// FLAC, 16-bit.
    Flac,
    /// OGG/Vorbis (quality 0.4).
    Ogg,
}

impl AudioFormat {
    pub(crate) fn raw(self) -> sys::ngpt_audio_format {
        match self {
            AudioFormat::Auto => sys::NGPT_AUDIO_FORMAT_AUTO,
            AudioFormat::Wav16 => sys::NGPT_AUDIO_FORMAT_WAV16,
            AudioFormat::WavFloat => sys::NGPT_AUDIO_FORMAT_WAV_FLOAT,
            AudioFormat::Flac => sys::NGPT_AUDIO_FORMAT_FLAC,
            AudioFormat::Ogg => sys::NGPT_AUDIO_FORMAT_OGG,
        }
    }
}

/// Where the clips of a sound or a video start (`ngpt_clip_rule`): pytorchvideo's
/// ConstantClipsPerVideoSampler places clip k of n at `k * max(duration - clip, 0) / DIV`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClipRule {
    /// DIV = n: pytorchvideo 0.1.5 from PyPI, pinned by NExT-GPT (the library's default).
    #[default]
    PytorchVideo015,
    /// DIV = n - 1: the later fix that ImageBind itself pins.
    PytorchVideoFixed,
}

impl ClipRule {
    pub(crate) fn raw(self) -> sys::ngpt_clip_rule {
        match self {
            ClipRule::PytorchVideo015 => sys::NGPT_CLIP_RULE_PYTORCHVIDEO_0_1_5,
            ClipRule::PytorchVideoFixed => sys::NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED,
        }
    }

    pub(crate) fn from_raw(r: sys::ngpt_clip_rule) -> ClipRule {
        match r {
            sys::NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED => ClipRule::PytorchVideoFixed,
            _ => ClipRule::PytorchVideo015,
        }
    }
}

/// Options of [`Audio::preprocess_with`] and [`Encoder::encode_audio_with`]
/// (`ngpt_audio_preprocess_params`); `Default` is the library's defaults
/// (`ngpt_audio_preprocess_params_default`). Build it with `..Default::default()`: fields are
/// appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioPreprocessParams {
    /// Where the 3 clips of 2 s start; default [`ClipRule::PytorchVideo015`] (NExT-GPT's).
    pub clip_rule: ClipRule,
}

impl Default for AudioPreprocessParams {
    fn default() -> Self {
        AudioPreprocessParams { clip_rule: ClipRule::from_raw(audio_params_default().clip_rule) }
    }
}

fn audio_params_default() -> sys::ngpt_audio_preprocess_params {
    // SAFETY: a zeroed POD struct filled by _default with our own size (it cannot fail then;
    // zeroed is the defaults' value anyway).
    let mut p: sys::ngpt_audio_preprocess_params = unsafe { std::mem::zeroed() };
    unsafe { sys::ngpt_audio_preprocess_params_default(&mut p, std::mem::size_of_val(&p)) };
    p
}

impl AudioPreprocessParams {
    pub(crate) fn raw(&self) -> sys::ngpt_audio_preprocess_params {
        let mut p = audio_params_default();
        p.clip_rule = self.clip_rule.raw();
        p
    }
}

/// The bytes of the `ngpt_blob` that `encode` makes (copied, the blob freed).
pub(crate) fn blob_bytes(encode: impl FnOnce(*mut *mut sys::ngpt_blob) -> sys::ngpt_status) -> Result<Vec<u8>> {
    let mut b: *mut sys::ngpt_blob = ptr::null_mut();
    let st = encode(&mut b);
    // SAFETY: on success b is a blob whose data holds size bytes until ngpt_blob_free; the
    // error (if any) is read by check before the free; NULL is a no-op for the free.
    let r = check(st).map(|()| unsafe { slice(sys::ngpt_blob_data(b), sys::ngpt_blob_size(b)) }.to_vec());
    unsafe { sys::ngpt_blob_free(b) };
    r
}

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
                                        c_ptr_or_null(&name))
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
        self.save(path, ImageFormat::Png, 0, 0)
    }

    /// The encoded file's bytes: `format` PNG (`Auto` too) or JPEG; `quality` JPEG 1..=100
    /// (0 = 90; ignored for PNG); `flags` `sys::NGPT_ENCODE_*` bits (0 = defaults;
    /// `NGPT_ENCODE_JPEG_444`: full-resolution chroma).
    pub fn encode(&self, format: ImageFormat, quality: i32, flags: u32) -> Result<Vec<u8>> {
        blob_bytes(|out| unsafe { sys::ngpt_image_encode(out, self.ptr.as_ptr(), format.raw(), quality, flags) })
    }

    /// [`Image::encode`] written to `path` (replaced whole once encoded); `Auto` takes the
    /// format from the extension (.png, .jpg, .jpeg).
    pub fn save<P: AsRef<Path>>(&self, path: P, format: ImageFormat, quality: i32, flags: u32) -> Result<()> {
        let p = c_path(path.as_ref())?;
        check(unsafe { sys::ngpt_image_save(self.ptr.as_ptr(), p.as_ptr(), format.raw(), quality, flags) })
    }

    /// The Stable Diffusion pipeline's last step: a VAE output F32 [B, 3, H, W] (nominally
    /// [-1, 1]) -> U8 [B, H, W, 3] = round_half_even(clamp(x / 2 + 0.5, 0, 1) * 255).
    /// [`Image::from_tensor`] takes a batch of one.
    pub fn postprocess(image: &Tensor) -> Result<Tensor> {
        let v = borrow(image);
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_image_postprocess(&mut t.t, &v) })?;
        Ok(t)
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

    /// Decode a sound file held in memory (WAV, FLAC, OGG, MP3, ...: what [`Audio::load`]
    /// reads); `name` labels error messages (`None` = `"<memory>"`).
    pub fn from_memory(data: &[u8], name: Option<&str>) -> Result<Audio> {
        let name = name.map(c_str).transpose()?;
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::ngpt_audio_load_memory(&mut out, data.as_ptr() as *const _, data.len(),
                                        c_ptr_or_null(&name))
        })?;
        Ok(Audio { ptr: NonNull::new(out).expect("ngpt_audio_load_memory returned NULL") })
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

    /// ImageBind's audio transform with options (the clip rule): F32 [3, 1, 128, 204] (3 clips
    /// of 2 s at 16 kHz, Kaldi fbank of the first channel, normalised). A sound shorter than one
    /// 25 ms fbank window is `NGPT_ERR_INVALID_ARGUMENT`.
    pub fn preprocess_with(&self, p: &AudioPreprocessParams) -> Result<Tensor> {
        let pp = p.raw();
        let mut t = Tensor::empty();
        check(unsafe { sys::ngpt_audio_preprocess(&mut t.t, self.ptr.as_ptr(), &pp) })?;
        Ok(t)
    }

    /// The encoded file's bytes at this sound's rate and channel count (`Auto` = `Wav16`).
    pub fn encode(&self, format: AudioFormat) -> Result<Vec<u8>> {
        blob_bytes(|out| unsafe { sys::ngpt_audio_encode(out, self.ptr.as_ptr(), format.raw()) })
    }

    /// [`Audio::encode`] written to `path` (replaced whole once encoded); `Auto` takes the
    /// format from the extension (.wav, .flac, .ogg, .oga).
    pub fn save<P: AsRef<Path>>(&self, path: P, format: AudioFormat) -> Result<()> {
        let p = c_path(path.as_ref())?;
        check(unsafe { sys::ngpt_audio_save(self.ptr.as_ptr(), p.as_ptr(), format.raw()) })
    }
}

impl Drop for Audio {
    fn drop(&mut self) {
        unsafe { sys::ngpt_audio_free(self.ptr.as_ptr()) }
    }
}
