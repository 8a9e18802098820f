//! Media in and out, the encoder's and the projector's calls: against the shared golden cases
//! (vision/, video/), round trips through encoded bytes and files, and the errors a caller hits.
mod common;

use common::{assert_within, case_num, cases, cpu, expect_err, f32s, golden, load, max_abs_diff, read};
use nextgpt::sys;
use nextgpt::{AudioFormat, AudioPreprocessParams, ClipRule, ImageFormat, Modality, Tensor, VideoFormat,
              VideoPreprocessParams};
use std::path::{Path, PathBuf};

/// A fresh folder under the system's temp dir, removed on drop (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("nextgpt-media-{}-{}", tag, std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn case_clip_rule(case: &Path) -> ClipRule {
    let j = std::fs::read_to_string(case.join("case.json")).unwrap();
    if j.contains("\"pytorchvideo-fixed\"") {
        ClipRule::PytorchVideoFixed
    } else {
        assert!(j.contains("\"pytorchvideo-0.1.5\""), "{}: clip rule", case.display());
        ClipRule::PytorchVideo015
    }
}

/// |got - want| <= atol + rtol |want| everywhere, same shape.
#[track_caller]
fn assert_close(got: &Tensor, want_shape: &[i64], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.shape(), want_shape, "{}", what);
    assert_within(got.as_f32().expect("F32 output"), want, (atol, rtol), what);
}

/// IEEE half -> f32.
fn f16_to_f32(h: u16) -> f32 {
    let s = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as f32;
    s * match e {
        0 => m * 2f32.powi(-24),
        31 => if m == 0.0 { f32::INFINITY } else { f32::NAN },
        _ => (1.0 + m / 1024.0) * 2f32.powi(e - 15),
    }
}

/// A golden tensor as f32 values (F32 or F16 as stored) and its shape.
fn floats(path: &Path, name: &str) -> (Vec<i64>, Vec<f32>) {
    let (dtype, shape, bytes) = read(path, name);
    let v = match dtype.as_str() {
        "F32" => f32s(&bytes),
        "F16" => bytes.chunks(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        other => panic!("{} {}: dtype {}", path.display(), name, other),
    };
    (shape, v)
}

/// `t` with another shape of the same element count (a copy).
fn reshaped(t: &Tensor, shape: &[i64]) -> Tensor {
    Tensor::from_bytes(t.dtype(), shape, t.as_bytes()).unwrap()
}

#[test]
fn dtype_size_and_clear_error() {
    use nextgpt::dtype_size;
    assert_eq!(dtype_size(sys::NGPT_DTYPE_F32), 4);
    assert_eq!((dtype_size(sys::NGPT_DTYPE_F16), dtype_size(sys::NGPT_DTYPE_BF16)), (2, 2));
    assert_eq!((dtype_size(sys::NGPT_DTYPE_I64), dtype_size(sys::NGPT_DTYPE_F64)), (8, 8));
    assert_eq!((dtype_size(sys::NGPT_DTYPE_I32), dtype_size(sys::NGPT_DTYPE_I16)), (4, 2));
    assert_eq!((dtype_size(sys::NGPT_DTYPE_U8), dtype_size(sys::NGPT_DTYPE_I8), dtype_size(sys::NGPT_DTYPE_BOOL)), (1, 1, 1));
    assert_eq!(dtype_size(99), 0);
    let t = Tensor::zeros(sys::NGPT_DTYPE_BF16, &[3, 5]).unwrap();
    assert_eq!(t.as_bytes().len(), 15 * dtype_size(t.dtype()));

    let last = || unsafe { std::ffi::CStr::from_ptr(sys::ngpt_last_error()) }.to_string_lossy().into_owned();
    let e = expect_err(nextgpt::Image::from_memory(b"junk", Some("junk.png")), sys::NGPT_ERR_BAD_FORMAT, "junk.png");
    assert_eq!(last(), e.message); // the thread's message, as the Error copied it
    nextgpt::clear_error();
    assert_eq!(last(), "");
    assert!(e.message.contains("junk.png")); // the Error keeps its copy
}

#[test]
fn image_postprocess_matches_golden() {
    for case in cases("vision/image.postprocess") {
        let input = load(&case.join("inputs.safetensors"), "image");
        let (dtype, shape, want) = read(&case.join("expected.safetensors"), "image_u8");
        assert_eq!(dtype, "U8");
        let got = nextgpt::Image::postprocess(&input).unwrap();
        assert_eq!((got.dtype(), got.shape()), (sys::NGPT_DTYPE_U8, &shape[..]), "{}", case.display());
        assert_eq!(got.as_u8().unwrap(), &want[..], "{}: exact", case.display());
    }
    // a batch of one goes on to an Image and its PNG
    let case = golden().join("vision/image.postprocess/b1_16x16");
    let u8s = nextgpt::Image::postprocess(&load(&case.join("inputs.safetensors"), "image")).unwrap();
    let img = nextgpt::Image::from_tensor(&u8s).unwrap();
    assert_eq!((img.width(), img.height(), img.pixels()), (16, 16, u8s.as_u8().unwrap()));

    let chw = Tensor::zeros(sys::NGPT_DTYPE_F32, &[3, 16, 16]).unwrap();
    expect_err(nextgpt::Image::postprocess(&chw), sys::NGPT_ERR_SHAPE_MISMATCH, "expected [B, 3, H, W]");
    let four_ch = Tensor::zeros(sys::NGPT_DTYPE_F32, &[1, 4, 8, 8]).unwrap();
    expect_err(nextgpt::Image::postprocess(&four_ch), sys::NGPT_ERR_SHAPE_MISMATCH, "[1, 4, 8, 8]");
    let bytes = Tensor::zeros(sys::NGPT_DTYPE_U8, &[1, 3, 8, 8]).unwrap();
    expect_err(nextgpt::Image::postprocess(&bytes), sys::NGPT_ERR_DTYPE_MISMATCH, "expected F32");
}

#[test]
fn image_encode_and_save_round_trip() {
    let cat = nextgpt::Image::load(common::cat_jpg()).unwrap();
    let (w, h) = (cat.width(), cat.height());
    // PNG: lossless, and AUTO encodes PNG
    let png = cat.encode(ImageFormat::Png, 0, 0).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(cat.encode(ImageFormat::Auto, 0, 0).unwrap(), png);
    let back = nextgpt::Image::from_memory(&png, Some("cat.png")).unwrap();
    assert_eq!((back.width(), back.height()), (w, h));
    assert_eq!(back.pixels(), cat.pixels());
    // JPEG: quality and chroma options, decoded back close to the original
    let q95 = cat.encode(ImageFormat::Jpeg, 95, 0).unwrap();
    assert_eq!(&q95[..3], b"\xff\xd8\xff");
    let q20 = cat.encode(ImageFormat::Jpeg, 20, 0).unwrap();
    assert!(q20.len() < q95.len(), "quality 20: {} bytes, 95: {}", q20.len(), q95.len());
    assert_eq!(cat.encode(ImageFormat::Jpeg, 0, 0).unwrap(), cat.encode(ImageFormat::Jpeg, 90, 0).unwrap());
    let full = cat.encode(ImageFormat::Jpeg, 95, sys::NGPT_ENCODE_JPEG_444).unwrap();
    assert_ne!(full, q95);
    for (bytes, tol) in [(&q95, 6.0), (&full, 6.0)] {
        let j = nextgpt::Image::from_memory(bytes, None).unwrap();
        assert_eq!((j.width(), j.height()), (w, h));
        let mean = j.pixels().iter().zip(cat.pixels()).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>()
            / j.pixels().len() as f64;
        assert!(mean < tol, "mean |JPEG - original| = {}", mean);
    }
    // files: AUTO from the extension, explicit formats, save_png
    let dir = TempDir::new("image");
    for (name, fmt, magic) in [("a.png", ImageFormat::Auto, &b"\x89PNG"[..]), ("a.JPG", ImageFormat::Auto, b"\xff\xd8"),
                               ("b.jpeg", ImageFormat::Auto, b"\xff\xd8"), ("c.bin", ImageFormat::Png, b"\x89PNG"),
                               ("d.png", ImageFormat::Jpeg, b"\xff\xd8")] {
        let p = dir.0.join(name);
        cat.save(&p, fmt, 0, 0).unwrap();
        assert!(std::fs::read(&p).unwrap().starts_with(magic), "{}", name);
        let again = nextgpt::Image::load(&p).unwrap();
        assert_eq!((again.width(), again.height()), (w, h));
    }
    assert_eq!(std::fs::read(dir.0.join("c.bin")).unwrap(), png);
    cat.save_png(dir.0.join("e.png")).unwrap();
    assert_eq!(std::fs::read(dir.0.join("e.png")).unwrap(), png);

    // errors
    expect_err(cat.save(dir.0.join("x.bmp"), ImageFormat::Auto, 0, 0), sys::NGPT_ERR_INVALID_ARGUMENT, "x.bmp");
    expect_err(cat.encode(ImageFormat::Jpeg, 101, 0), sys::NGPT_ERR_INVALID_ARGUMENT, "quality 101");
    expect_err(cat.encode(ImageFormat::Jpeg, -1, 0), sys::NGPT_ERR_INVALID_ARGUMENT, "quality");
    expect_err(cat.encode(ImageFormat::Png, 0, 0x80), sys::NGPT_ERR_INVALID_ARGUMENT, "flags");
    let e = expect_err(cat.save(dir.0.join("no-such-dir/x.png"), ImageFormat::Auto, 0, 0), sys::NGPT_ERR_IO, "no-such-dir");
    assert!(e.message.contains("x.png"), "{}", e.message);
    assert!(!dir.0.join("no-such-dir").exists());
    expect_err(nextgpt::Image::from_memory(&png[..png.len() / 2], Some("half.png")), sys::NGPT_ERR_BAD_FORMAT, "half.png");
    expect_err(nextgpt::Image::from_memory(b"GIF89a", None), sys::NGPT_ERR_BAD_FORMAT, "<memory>");
    expect_err(nextgpt::Image::load(dir.0.join("missing.jpg")), sys::NGPT_ERR_NOT_FOUND, "missing.jpg");
    expect_err(cat.save(dir.0.join("nul\0.png"), ImageFormat::Png, 0, 0), sys::NGPT_ERR_INVALID_ARGUMENT, "NUL");
}

#[test]
fn audio_encode_and_save_round_trip() {
    let (frames, channels, rate) = (4000usize, 2, 22050);
    let pcm: Vec<f32> = (0..frames * channels).map(|i| {
        let (f, c) = ((i / channels) as f32, (i % channels) as f32);
        0.8 * (f * (0.01 + 0.002 * c) + 0.0001 * f * f / 50.0).sin()
    }).collect();
    let a = nextgpt::Audio::from_pcm(&pcm, channels as i32, rate).unwrap();
    let same_shape = |b: &nextgpt::Audio, what: &str| {
        assert_eq!((b.channels(), b.sample_rate(), b.frames()), (channels as i32, rate, frames as i64), "{}", what);
    };
    // float WAV: the samples exactly; 16-bit WAV and FLAC: within one step of 2^-15
    let wf = a.encode(AudioFormat::WavFloat).unwrap();
    assert!(wf.starts_with(b"RIFF") && &wf[8..12] == b"WAVE");
    let b = nextgpt::Audio::from_memory(&wf, Some("float.wav")).unwrap();
    same_shape(&b, "float WAV");
    assert_eq!(b.samples(), &pcm[..]);
    let w16 = a.encode(AudioFormat::Wav16).unwrap();
    assert_eq!(a.encode(AudioFormat::Auto).unwrap(), w16);
    assert!(w16.len() < wf.len());
    let flac = a.encode(AudioFormat::Flac).unwrap();
    assert!(flac.starts_with(b"fLaC"));
    for (bytes, what) in [(&w16, "WAV16"), (&flac, "FLAC")] {
        let b = nextgpt::Audio::from_memory(bytes, Some(what)).unwrap();
        same_shape(&b, what);
        assert!(max_abs_diff(b.samples(), &pcm) <= 1.0 / 32768.0, "{}: {}", what, max_abs_diff(b.samples(), &pcm));
    }
    let ogg = a.encode(AudioFormat::Ogg).unwrap();
    assert!(ogg.starts_with(b"OggS"));
    let b = nextgpt::Audio::from_memory(&ogg, Some("x.ogg")).unwrap();
    assert_eq!((b.channels(), b.sample_rate()), (channels as i32, rate));
    assert!((b.frames() - frames as i64).abs() < 2048, "{} frames back", b.frames());

    // files: AUTO from the extension, explicit formats; loaded back
    let dir = TempDir::new("audio");
    for (name, fmt, magic) in [("a.wav", AudioFormat::Auto, &b"RIFF"[..]), ("a.flac", AudioFormat::Auto, b"fLaC"),
                               ("a.ogg", AudioFormat::Auto, b"OggS"), ("a.oga", AudioFormat::Auto, b"OggS"),
                               ("f.dat", AudioFormat::WavFloat, b"RIFF")] {
        let p = dir.0.join(name);
        a.save(&p, fmt).unwrap();
        assert!(std::fs::read(&p).unwrap().starts_with(magic), "{}", name);
        let back = nextgpt::Audio::load(&p).unwrap();
        assert_eq!((back.channels(), back.sample_rate()), (channels as i32, rate), "{}", name);
    }
    assert_eq!(std::fs::read(dir.0.join("a.wav")).unwrap(), w16);
    assert_eq!(nextgpt::Audio::load(dir.0.join("f.dat")).unwrap().samples(), &pcm[..]);

    // errors
    expect_err(a.save(dir.0.join("a.mp3"), AudioFormat::Auto), sys::NGPT_ERR_INVALID_ARGUMENT, "a.mp3");
    expect_err(a.save(dir.0.join("none/a.wav"), AudioFormat::Wav16), sys::NGPT_ERR_IO, "none/a.wav");
    expect_err(nextgpt::Audio::from_memory(b"RIFF....WAVEjunk", Some("bad.wav")), sys::NGPT_ERR_BAD_FORMAT, "bad.wav");
    expect_err(nextgpt::Audio::from_memory(&[], None), sys::NGPT_ERR_BAD_FORMAT, "<memory>");
    expect_err(nextgpt::Audio::load(dir.0.join("missing.wav")), sys::NGPT_ERR_NOT_FOUND, "missing.wav");
    expect_err(nextgpt::Audio::from_memory(&w16, Some("nul\0name")), sys::NGPT_ERR_INVALID_ARGUMENT, "NUL");
}

#[test]
fn audio_preprocess_with_params_matches_golden() {
    assert_eq!(AudioPreprocessParams::default().clip_rule, ClipRule::PytorchVideo015);
    for case in cases("vision/audio.fbank") {
        let wav = case.join("input.wav");
        let a = nextgpt::Audio::load(&wav).unwrap();
        let p = AudioPreprocessParams { clip_rule: case_clip_rule(&case) };
        let got = a.preprocess_with(&p).unwrap();
        let (shape, want) = floats(&case.join("expected.safetensors"), "fbank");
        let what = case.display().to_string();
        assert_close(&got, &shape, &want, case_num(&case, "atol") as f32, case_num(&case, "rtol") as f32, &what);
        // the same bytes from memory: the same sound
        let m = nextgpt::Audio::from_memory(&std::fs::read(&wav).unwrap(), Some("input.wav")).unwrap();
        assert_eq!(m.samples(), a.samples());
        if p.clip_rule == ClipRule::PytorchVideo015 {
            assert_eq!(a.preprocess().unwrap().as_f32(), got.as_f32(), "{}: preprocess() is the default rule", what);
        }
    }
    // the rule matters where the sound is longer than a clip (10 s)
    let a = nextgpt::Audio::load(golden().join("vision/audio.fbank/mono16k_10s/input.wav")).unwrap();
    let fixed = a.preprocess_with(&AudioPreprocessParams { clip_rule: ClipRule::PytorchVideoFixed }).unwrap();
    assert!(max_abs_diff(fixed.as_f32().unwrap(), a.preprocess().unwrap().as_f32().unwrap()) > 0.1);
    // shorter than one 25 ms fbank window
    let short = nextgpt::Audio::from_pcm(&[0.1; 300], 1, 16000).unwrap();
    expect_err(short.preprocess_with(&AudioPreprocessParams::default()), sys::NGPT_ERR_INVALID_ARGUMENT, "too short");
}

#[test]
fn encoder_matches_golden_cases() {
    let ctx = cpu();
    let model = golden().join("models/imagebind-a");
    let mut enc = nextgpt::Encoder::new(&ctx, &model, 0).unwrap();
    assert_eq!(enc.modalities(), sys::NGPT_ENCODER_IMAGE | sys::NGPT_ENCODER_VIDEO | sys::NGPT_ENCODER_AUDIO);
    let d = enc.embed_dim() as i64;
    for case in cases("vision/imagebind.vision") {
        let px = load(&case.join("inputs.safetensors"), "pixels");
        let (shape, want) = floats(&case.join("expected.safetensors"), "embedding");
        let got = enc.encode_pixels(&px).unwrap();
        assert_close(&got, &shape, &want, case_num(&case, "atol") as f32, case_num(&case, "rtol") as f32, &case.display().to_string());
        assert_eq!(shape[1], d);
    }
    for case in cases("vision/imagebind.audio") {
        let fb = load(&case.join("inputs.safetensors"), "fbank");
        let (shape, want) = floats(&case.join("expected.safetensors"), "embedding");
        let (atol, rtol) = (case_num(&case, "atol") as f32, case_num(&case, "rtol") as f32);
        let got = enc.encode_fbank(&fb).unwrap();
        assert_close(&got, &shape, &want, atol, rtol, &case.display().to_string());
        if fb.shape()[0] == 1 {
            // one sound's clips [S, 1, 128, 204] -> [1, D]
            let one = enc.encode_fbank(&reshaped(&fb, &fb.shape()[1..])).unwrap();
            assert_close(&one, &shape, &want, atol, rtol, "[S, 1, 128, 204]");
        }
    }
    // an image through encode_pixels: [3, 224, 224] as a batch of one equals encode_image
    let cat = nextgpt::Image::load(common::cat_jpg()).unwrap();
    let px = cat.preprocess().unwrap();
    let by_pixels = enc.encode_pixels(&reshaped(&px, &[1, 3, 224, 224])).unwrap();
    assert_eq!(by_pixels.as_f32(), enc.encode_image(&cat).unwrap().as_f32());

    // a sound with options: preprocess_with + encode_fbank
    let wav = golden().join("vision/audio.fbank/mono16k_10s/input.wav");
    let a = nextgpt::Audio::load(&wav).unwrap();
    let fixed = AudioPreprocessParams { clip_rule: ClipRule::PytorchVideoFixed };
    let e_fixed = enc.encode_audio_with(&a, &fixed).unwrap();
    assert_eq!(e_fixed.shape(), &[1, d]);
    assert_eq!(e_fixed.as_f32(), enc.encode_fbank(&a.preprocess_with(&fixed).unwrap()).unwrap().as_f32());
    let e_default = enc.encode_audio_with(&a, &AudioPreprocessParams::default()).unwrap();
    assert_eq!(e_default.as_f32(), enc.encode_audio(&a).unwrap().as_f32());
    assert_ne!(e_default.as_f32(), e_fixed.as_f32());

    // a video file: video_preprocess's 15 clips as one video of 15 clips
    let mp4 = golden().join("vision/video.preprocess/mandelbrot_h264_24fps_4_5s/input.mp4");
    let v = enc.encode_video_file(&mp4).unwrap();
    assert_eq!(v.shape(), &[1, d]);
    let clips = nextgpt::video_preprocess(&mp4, &VideoPreprocessParams::default()).unwrap();
    let mut shape = vec![1];
    shape.extend_from_slice(clips.shape());
    let by_clips = enc.encode_pixels(&reshaped(&clips, &shape)).unwrap();
    assert!(max_abs_diff(by_clips.as_f32().unwrap(), v.as_f32().unwrap()) <= 1e-6);
    let vp_fixed = VideoPreprocessParams { clip_rule: ClipRule::PytorchVideoFixed };
    let v_fixed = enc.encode_video_file_with(&mp4, &vp_fixed).unwrap();
    assert_eq!(v_fixed.shape(), &[1, d]);
    assert!(max_abs_diff(v_fixed.as_f32().unwrap(), v.as_f32().unwrap()) > 1e-6, "4.5 s: the rule picks other frames");

    // errors: shapes, a missing file, a branch not loaded
    expect_err(enc.encode_pixels(&px), sys::NGPT_ERR_SHAPE_MISMATCH, "got [3, 224, 224]");
    let small = Tensor::zeros(sys::NGPT_DTYPE_F32, &[1, 3, 112, 112]).unwrap();
    expect_err(enc.encode_pixels(&small), sys::NGPT_ERR_SHAPE_MISMATCH, "[N, 3, 224, 224]");
    let fb = a.preprocess().unwrap();
    expect_err(enc.encode_fbank(&reshaped(&fb, &[3, 128, 204])), sys::NGPT_ERR_SHAPE_MISMATCH, "got [3, 128, 204]");
    expect_err(enc.encode_pixels(&fb), sys::NGPT_ERR_SHAPE_MISMATCH, "pixels");
    let missing = golden().join("no-such-video.mp4");
    expect_err(enc.encode_video_file(&missing), sys::NGPT_ERR_NOT_FOUND, "no-such-video.mp4");

    let mut vision = nextgpt::Encoder::new(&ctx, &model, sys::NGPT_ENCODER_IMAGE).unwrap();
    assert_eq!(vision.modalities(), sys::NGPT_ENCODER_IMAGE | sys::NGPT_ENCODER_VIDEO);
    expect_err(vision.encode_fbank(&fb), sys::NGPT_ERR_UNSUPPORTED, "audio branch");
    expect_err(vision.encode_audio_with(&a, &fixed), sys::NGPT_ERR_UNSUPPORTED, "audio branch");
    assert_eq!(vision.encode_video_file(&mp4).unwrap().as_f32(), v.as_f32());
    let mut audio = nextgpt::Encoder::new(&ctx, &model, sys::NGPT_ENCODER_AUDIO).unwrap();
    assert_eq!(audio.modalities(), sys::NGPT_ENCODER_AUDIO);
    expect_err(audio.encode_pixels(&by_pixels), sys::NGPT_ERR_UNSUPPORTED, "vision branch");
    expect_err(audio.encode_video_file(&mp4), sys::NGPT_ERR_UNSUPPORTED, "vision branch");
    expect_err(audio.encode_video_file_with(&mp4, &vp_fixed), sys::NGPT_ERR_UNSUPPORTED, "vision branch");
}

#[test]
fn video_preprocess_matches_golden() {
    assert_eq!(VideoPreprocessParams::default().clip_rule, ClipRule::PytorchVideo015);
    for case in cases("vision/video.preprocess") {
        let file = std::fs::read_to_string(case.join("case.json")).unwrap()
            .split("\"file\":").nth(1).unwrap().split('"').nth(1).unwrap().to_string();
        let path = case.join(&file);
        let p = VideoPreprocessParams { clip_rule: case_clip_rule(&case) };
        let got = nextgpt::video_preprocess(&path, &p).unwrap();
        let (shape, want) = floats(&case.join("expected.safetensors"), "pixels");
        let what = case.display().to_string();
        assert_close(&got, &shape, &want, case_num(&case, "atol") as f32, case_num(&case, "rtol") as f32, &what);
        let mem = nextgpt::video_preprocess_memory(&std::fs::read(&path).unwrap(), Some(&file), &p).unwrap();
        assert_eq!(mem.as_f32(), got.as_f32(), "{}: from memory", what);
        // the other rule: other frames for a video longer than 2 s
        let other = match p.clip_rule {
            ClipRule::PytorchVideo015 => ClipRule::PytorchVideoFixed,
            ClipRule::PytorchVideoFixed => ClipRule::PytorchVideo015,
        };
        let o = nextgpt::video_preprocess(&path, &VideoPreprocessParams { clip_rule: other }).unwrap();
        assert!(max_abs_diff(o.as_f32().unwrap(), &want) > case_num(&case, "atol") as f32, "{}: the clip rule", what);
    }
    let dir = TempDir::new("video-in");
    let e = expect_err(nextgpt::video_preprocess(dir.0.join("missing.mp4"), &Default::default()),
                       sys::NGPT_ERR_NOT_FOUND, "missing.mp4");
    assert_eq!(e.status_name(), "NGPT_ERR_NOT_FOUND");
    expect_err(nextgpt::video_preprocess_memory(b"not a video at all", Some("junk.mp4"), &Default::default()),
               sys::NGPT_ERR_BAD_FORMAT, "junk.mp4");
    expect_err(nextgpt::video_preprocess_memory(&[], None, &Default::default()), sys::NGPT_ERR_BAD_FORMAT, "<memory>");
}

#[test]
fn video_postprocess_matches_golden() {
    for case in cases("video/video.postprocess") {
        let input = load(&case.join("inputs.safetensors"), "video");
        let (dtype, shape, want) = read(&case.join("expected.safetensors"), "frames_u8");
        assert_eq!(dtype, "U8");
        let got = nextgpt::video_postprocess(&input).unwrap();
        assert_eq!((got.dtype(), got.shape()), (sys::NGPT_DTYPE_U8, &shape[..]), "{}", case.display());
        assert_eq!(got.as_u8().unwrap(), &want[..], "{}: exact", case.display());
    }
    let four = Tensor::zeros(sys::NGPT_DTYPE_F32, &[3, 2, 8, 8]).unwrap();
    expect_err(nextgpt::video_postprocess(&four), sys::NGPT_ERR_SHAPE_MISMATCH, "expected [B, 3, F, H, W]");
    let bytes = Tensor::zeros(sys::NGPT_DTYPE_U8, &[1, 3, 2, 8, 8]).unwrap();
    expect_err(nextgpt::video_postprocess(&bytes), sys::NGPT_ERR_DTYPE_MISMATCH, "expected F32");
}

/// Frames U8 [f, h, w, 3]: a moving colour gradient.
fn frames(f: i64, h: i64, w: i64) -> Tensor {
    let mut px = Vec::with_capacity((f * h * w * 3) as usize);
    for t in 0..f {
        for y in 0..h {
            for x in 0..w {
                px.extend_from_slice(&[((x * 4 + t * 8) % 256) as u8, ((y * 4) % 256) as u8, ((x + y + t * 16) % 256) as u8]);
            }
        }
    }
    Tensor::from_bytes(sys::NGPT_DTYPE_U8, &[f, h, w, 3], &px).unwrap()
}

#[test]
fn video_encode_and_save_round_trip() {
    let mp4_codec = VideoFormat::Mp4.codec().expect("an MP4 encoder in this FFmpeg");
    assert!(["libx264", "mpeg4"].contains(&mp4_codec.as_str()), "{}", mp4_codec);
    assert_eq!(VideoFormat::Auto.codec(), Some(mp4_codec));
    let webm_codec = VideoFormat::Webm.codec();
    if let Some(c) = &webm_codec {
        assert!(["libvpx-vp9", "libvpx"].contains(&c.as_str()), "{}", c);
    }
    let clip = frames(24, 64, 96);
    let mp4 = nextgpt::video_encode(&clip, 8.0, VideoFormat::Mp4).unwrap();
    assert_eq!(&mp4[4..8], b"ftyp");
    let back = nextgpt::video_preprocess_memory(&mp4, Some("clip.mp4"), &Default::default()).unwrap();
    assert_eq!(back.shape(), &[15, 3, 2, 224, 224]);
    assert!(back.as_f32().unwrap().iter().all(|v| v.is_finite()));
    assert_eq!(&nextgpt::video_encode(&clip, 8.0, VideoFormat::Auto).unwrap()[4..8], b"ftyp");
    // Zeroscope's frames as they come out of video_postprocess
    let case = golden().join("video/video.postprocess/b1_f3_16x16");
    let u8s = nextgpt::video_postprocess(&load(&case.join("inputs.safetensors"), "video")).unwrap();
    let small = nextgpt::video_encode(&u8s, 8.0, VideoFormat::Mp4).unwrap();
    assert_eq!(nextgpt::video_preprocess_memory(&small, None, &Default::default()).unwrap().shape(), &[15, 3, 2, 224, 224]);

    let one = nextgpt::video_encode(&frames(1, 16, 16), 8.0, VideoFormat::Mp4).unwrap(); // 1/8 s: 5 clips of it
    assert_eq!(nextgpt::video_preprocess_memory(&one, None, &Default::default()).unwrap().shape(), &[15, 3, 2, 224, 224]);

    let dir = TempDir::new("video-out");
    let mut files = vec![("a.mp4", VideoFormat::Auto), ("b.bin", VideoFormat::Mp4)];
    if webm_codec.is_some() {
        let webm = nextgpt::video_encode(&clip, 8.0, VideoFormat::Webm).unwrap();
        assert_eq!(&webm[..4], b"\x1a\x45\xdf\xa3");
        files.push(("c.webm", VideoFormat::Auto));
    }
    for (name, fmt) in files {
        let p = dir.0.join(name);
        nextgpt::video_save(&clip, &p, 8.0, fmt).unwrap();
        let t = nextgpt::video_preprocess(&p, &Default::default()).unwrap();
        assert_eq!(t.shape(), &[15, 3, 2, 224, 224], "{}", name);
    }

    // errors
    expect_err(nextgpt::video_save(&clip, dir.0.join("a.avi"), 8.0, VideoFormat::Auto), sys::NGPT_ERR_INVALID_ARGUMENT, "a.avi");
    expect_err(nextgpt::video_save(&clip, dir.0.join("none/a.mp4"), 8.0, VideoFormat::Auto), sys::NGPT_ERR_IO, "none/a.mp4");
    expect_err(nextgpt::video_encode(&frames(2, 15, 16), 8.0, VideoFormat::Mp4), sys::NGPT_ERR_UNSUPPORTED, "must be even");
    expect_err(nextgpt::video_encode(&clip, 0.0, VideoFormat::Mp4), sys::NGPT_ERR_INVALID_ARGUMENT, "fps");
    expect_err(nextgpt::video_encode(&clip, 1001.0, VideoFormat::Mp4), sys::NGPT_ERR_INVALID_ARGUMENT, "fps");
    let f32_frames = Tensor::zeros(sys::NGPT_DTYPE_F32, &[2, 16, 16, 3]).unwrap();
    expect_err(nextgpt::video_encode(&f32_frames, 8.0, VideoFormat::Mp4), sys::NGPT_ERR_DTYPE_MISMATCH, "expected U8");
    let one_frame = Tensor::zeros(sys::NGPT_DTYPE_U8, &[16, 16, 3]).unwrap();
    expect_err(nextgpt::video_encode(&one_frame, 8.0, VideoFormat::Mp4), sys::NGPT_ERR_SHAPE_MISMATCH, "expected [F, H, W, 3]");
    let five_d = Tensor::zeros(sys::NGPT_DTYPE_U8, &[1, 2, 16, 16, 3]).unwrap();
    expect_err(nextgpt::video_save(&five_d, dir.0.join("x.mp4"), 8.0, VideoFormat::Auto), sys::NGPT_ERR_SHAPE_MISMATCH, "[1, 2, 16, 16, 3]");
    assert!(!dir.0.join("x.mp4").exists());
}

#[test]
fn projector_input_sum_and_sizes() {
    let ctx = cpu();
    let model = golden().join("models/projector-a");
    let mut pj = nextgpt::Projector::new(&ctx, &model, false, &[]).unwrap(); // everything
    // input_sum = the rows of `input` summed (NExT-GPT's several items of one modality)
    for case in cases("vision/projector.input") {
        let feat = load(&case.join("inputs.safetensors"), "feature");
        let (shape, want) = floats(&case.join("expected.safetensors"), "embeds");
        let (atol, rtol) = (case_num(&case, "atol") as f32, case_num(&case, "rtol") as f32);
        let h = shape[1] as usize;
        let mut sum = vec![0f32; h];
        for row in want.chunks(h) {
            for (s, v) in sum.iter_mut().zip(row) {
                *s += v;
            }
        }
        let n = shape[0] as f32;
        let got = pj.input_sum(&feat).unwrap();
        assert_eq!(got.shape(), &[1, shape[1]]);
        for (j, (g, w)) in got.as_f32().unwrap().iter().zip(&sum).enumerate() {
            let bound = n * atol + rtol * want.chunks(h).map(|r| r[j].abs()).sum::<f32>();
            assert!((g - w).abs() <= bound, "{}[{}]: {} vs {}", case.display(), j, g, w);
        }
        if shape[0] == 1 {
            assert_eq!(got.as_f32(), pj.input(&feat).unwrap().as_f32());
        }
    }
    // not the projection of the summed features: the bias counts n times
    let two = Tensor::from_f32(&[2, 32], &[0.0; 64]).unwrap();
    let bias = pj.input(&Tensor::from_f32(&[1, 32], &[0.0; 32]).unwrap()).unwrap();
    let doubled: Vec<f32> = bias.as_f32().unwrap().iter().map(|b| 2.0 * b).collect();
    assert_eq!(pj.input_sum(&two).unwrap().as_f32().unwrap(), &doubled[..]);

    // sizes of the output projectors, as config.json gives them (d_model 32, nhead 4)
    for m in [Modality::Image, Modality::Video, Modality::Audio] {
        assert_eq!((pj.d_model(m), pj.nhead(m)), (32, 4), "{:?}", m);
    }
    assert_eq!((pj.d_model(Modality::Text), pj.nhead(Modality::Text)), (0, 0));
    let only_image = nextgpt::Projector::new(&ctx, &model, false, &[Modality::Image]).unwrap();
    assert_eq!((only_image.d_model(Modality::Image), only_image.nhead(Modality::Image)), (32, 4));
    assert_eq!((only_image.d_model(Modality::Audio), only_image.nhead(Modality::Video)), (0, 0));

    // errors
    let wide = Tensor::from_f32(&[2, 33], &[0.0; 66]).unwrap();
    expect_err(pj.input_sum(&wide), sys::NGPT_ERR_SHAPE_MISMATCH, "got [2, 33]");
    let cube = Tensor::zeros(sys::NGPT_DTYPE_F32, &[1, 2, 32]).unwrap();
    expect_err(pj.input_sum(&cube), sys::NGPT_ERR_SHAPE_MISMATCH, "features");
    let none = Tensor::zeros(sys::NGPT_DTYPE_F32, &[0, 32]).unwrap();
    expect_err(pj.input_sum(&none), sys::NGPT_ERR_SHAPE_MISMATCH, "no items");
    let mut no_input = only_image;
    expect_err(no_input.input_sum(&two), sys::NGPT_ERR_UNSUPPORTED, "no input projector");
}
