//! Video: ImageBind's video transform, Zeroscope's last step and encoded video files (the C
//! library has no video handle: frames are tensors).
use crate::ffi::*;
use crate::media::blob_bytes;
use crate::*;
use std::path::Path;

/// A video file format (`ngpt_video_format`), yuv420p at a constant frame rate through
/// libavformat / libavcodec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VideoFormat {
    /// [`video_save`]: from the path's extension (.mp4, .webm); [`video_encode`]: MP4.
    #[default]
    Auto,
    /// MP4: H.264 (libx264, CRF 23) when this FFmpeg has it, else MPEG-4 part 2.
    Mp4,
    /// WebM: VP9 (libvpx-vp9, CRF 32), else VP8 (libvpx).
    Webm,
}

impl VideoFormat {
    pub(crate) fn raw(self) -> sys::ngpt_video_format {
        match self {
            VideoFormat::Auto => sys::NGPT_VIDEO_FORMAT_AUTO,
            VideoFormat::Mp4 => sys::NGPT_VIDEO_FORMAT_MP4,
            VideoFormat::Webm => sys::NGPT_VIDEO_FORMAT_WEBM,
        }
    }

    /// The FFmpeg encoder this format uses in the loaded library ("libx264", "mpeg4",
    /// "libvpx-vp9", "libvpx"; `Auto` is MP4's), `None` when its FFmpeg has none (then encoding
    /// fails with `NGPT_ERR_UNSUPPORTED`).
    pub fn codec(self) -> Option<String> {
        // SAFETY: a static string or NULL.
        unsafe { owned(sys::ngpt_media_video_codec(self.raw())) }
    }
}

/// Options of [`video_preprocess`], [`video_preprocess_memory`] and
/// [`Encoder::encode_video_file_with`] (`ngpt_video_preprocess_params`); `Default` is the
/// library's defaults (`ngpt_video_preprocess_params_default`). Build it with
/// `..Default::default()`: fields are appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoPreprocessParams {
    /// Where the 5 clips of 2 s start; default [`ClipRule::PytorchVideo015`] (NExT-GPT's).
    pub clip_rule: ClipRule,
}

impl Default for VideoPreprocessParams {
    fn default() -> Self {
        VideoPreprocessParams { clip_rule: ClipRule::from_raw(video_params_default().clip_rule) }
    }
}

fn video_params_default() -> sys::ngpt_video_preprocess_params {
    // SAFETY: a zeroed POD struct filled by _default with our own size (it cannot fail then;
    // zeroed is the defaults' value anyway).
    let mut p: sys::ngpt_video_preprocess_params = unsafe { std::mem::zeroed() };
    unsafe { sys::ngpt_video_preprocess_params_default(&mut p, std::mem::size_of_val(&p)) };
    p
}

impl VideoPreprocessParams {
    pub(crate) fn raw(&self) -> sys::ngpt_video_preprocess_params {
        let mut p = video_params_default();
        p.clip_rule = self.clip_rule.raw();
        p
    }
}

/// ImageBind's video transform of the video file at `path` (any container and codec this
/// build's FFmpeg decodes; the best video stream): F32 [15, 3, 2, 224, 224], index
/// `3 * clip + crop` (5 clips of 2 s, their first and last frames; left / centre / right crops,
/// top / centre / bottom for portrait), then channel, frame, y, x; CLIP-normalised.
/// `&Default::default()` for NExT-GPT's clip rule.
pub fn video_preprocess<P: AsRef<Path>>(path: P, p: &VideoPreprocessParams) -> Result<Tensor> {
    let path = c_path(path.as_ref())?;
    let pp = p.raw();
    let mut t = Tensor::empty();
    check(unsafe { sys::ngpt_video_preprocess(&mut t.t, path.as_ptr(), &pp) })?;
    Ok(t)
}

/// [`video_preprocess`] of a video file held in memory; `name` labels error messages
/// (`None` = `"<memory>"`).
pub fn video_preprocess_memory(data: &[u8], name: Option<&str>, p: &VideoPreprocessParams) -> Result<Tensor> {
    let name = name.map(c_str).transpose()?;
    let pp = p.raw();
    let mut t = Tensor::empty();
    check(unsafe {
        sys::ngpt_video_preprocess_memory(&mut t.t, data.as_ptr() as *const _, data.len(),
                                          c_ptr_or_null(&name), &pp)
    })?;
    Ok(t)
}

/// Zeroscope's last step (diffusers' tensor2vid): a VAE output F32 [B, 3, F, H, W] (nominally
/// [-1, 1]) -> U8 [F, H, B * W, 3] = trunc(clamp(x * 0.5 + 0.5, 0, 1) * 255) (truncated, not
/// rounded; a batch laid side by side along the width): the frames [`video_encode`] takes.
pub fn video_postprocess(video: &Tensor) -> Result<Tensor> {
    let v = borrow(video);
    let mut t = Tensor::empty();
    check(unsafe { sys::ngpt_video_postprocess(&mut t.t, &v) })?;
    Ok(t)
}

/// The encoded file's bytes of `frames` U8 [F, H, W, 3] (RGB, F >= 1, H and W even) at `fps`
/// frames per second (0 < fps <= 1000; NExT-GPT saves 8); `Auto` = MP4.
pub fn video_encode(frames: &Tensor, fps: f32, format: VideoFormat) -> Result<Vec<u8>> {
    let f = borrow(frames);
    blob_bytes(|out| unsafe { sys::ngpt_video_encode(out, &f, fps, format.raw()) })
}

/// [`video_encode`] written to `path` (replaced whole once encoded); `Auto` takes the format
/// from the extension (.mp4, .webm).
pub fn video_save<P: AsRef<Path>>(frames: &Tensor, path: P, fps: f32, format: VideoFormat) -> Result<()> {
    let path = c_path(path.as_ref())?;
    let f = borrow(frames);
    check(unsafe { sys::ngpt_video_save(&f, path.as_ptr(), fps, format.raw()) })
}
