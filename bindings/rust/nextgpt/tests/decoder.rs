//! The decoders stage by stage (UNet, VAE decode / encode, vocoder, text encoder, generate with
//! its unconditional embedding, initial noise and callbacks) against the shared golden cases
//! (vision/, audio/, video/ STAGES.md) and the tiny bundle, and the errors a user hits.
mod common;

use common::{assert_error, assert_within, case_field, case_num, cases, cpu, f32s, golden, load, max_abs_diff, read,
             tolerance};
use nextgpt::{sys, DecodeInputs, DecodeParams, Decoder, Image, Modality, Options, Tensor};
use std::path::{Path, PathBuf};

/// The case's model folder (case.json "model", relative to the case).
fn model(case: &Path) -> PathBuf {
    let f = case_field(case, "model");
    case.join(f.trim_start_matches('"').split('"').next().unwrap())
}

fn inputs(case: &Path, name: &str) -> Tensor {
    load(&case.join("inputs.safetensors"), name)
}

/// `got` against expected tensor `name` with the case's tolerance, elementwise
/// |got - expected| <= atol + rtol |expected| (FORMAT.md); shapes exactly.
fn assert_matches(got: &Tensor, case: &Path, name: &str) {
    let (_, shape, bytes) = read(&case.join("expected.safetensors"), name);
    assert_eq!(got.shape(), &shape[..], "{} of {}", name, case.display());
    let what = format!("{} of {}", name, case.display());
    assert_within(got.as_f32().expect("an F32 output"), &f32s(&bytes), tolerance(case), &what);
}

/// `t` x `k`, F32 (the stages whose goldens take the pipeline's latents, not yet divided).
fn times(t: &Tensor, k: f32) -> Tensor {
    let v: Vec<f32> = t.as_f32().unwrap().iter().map(|x| x * k).collect();
    Tensor::from_f32(t.shape(), &v).unwrap()
}

/// F32 data of `shape` (a smooth pattern in [-1, 1]).
fn pattern(shape: &[i64], phase: f32) -> Tensor {
    let n = shape.iter().product::<i64>() as usize;
    let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37 + phase).sin()).collect();
    Tensor::from_f32(shape, &v).unwrap()
}

#[test]
fn image_unet_and_vae_decode_match_golden() {
    let ctx = cpu();
    let mut dec = Decoder::new(&ctx, model(&cases("vision/unet2d")[0])).unwrap();
    assert_eq!(dec.kind(), Modality::Image);
    assert_eq!((dec.vae_scaling_factor(), dec.sample_rate()), (0.18215, 0));
    assert_eq!((dec.text_max_length(), dec.text_hidden_size()), (0, 0)); // sd-a has no text encoder
    for case in cases("vision/unet2d") {
        let ehs = inputs(&case, "encoder_hidden_states");
        let out = dec.unet(&inputs(&case, "sample"), &inputs(&case, "timestep"), Some(&ehs), None).unwrap();
        assert_matches(&out, &case, "out");
    }
    for case in cases("vision/vae.decode") {
        // these latents are already divided by the scaling factor, as vae_decode takes them
        assert_matches(&dec.vae_decode(&inputs(&case, "latents")).unwrap(), &case, "image");
    }
}

#[test]
fn image_generate_matches_golden_with_uncond_latents_and_callbacks() {
    let ctx = cpu();
    for case in cases("vision/sd.generate") {
        let mut dec = Decoder::new(&ctx, model(&case)).unwrap();
        let p = DecodeParams {
            steps: case_num(&case, "num_inference_steps") as i32,
            guidance_scale: case_num(&case, "guidance_scale") as f32,
            height: case_num(&case, "height") as i32,
            width: case_num(&case, "width") as i32,
            ..Default::default() // the folder's scheduler: PNDM
        };
        let (cond, uncond, latents) =
            (inputs(&case, "prompt_embeds"), inputs(&case, "negative_prompt_embeds"), inputs(&case, "latents"));
        let (mut steps, mut previews) = (Vec::new(), 0);
        let mut on_step = |step: i32, total: i32, elapsed: f32| {
            steps.push((step, total, elapsed));
            true
        };
        let mut on_preview = |step: i32, _total: i32, lat: &Tensor, rgb: Option<&Tensor>| {
            previews += 1;
            assert_eq!(step, previews);
            assert_eq!(lat.shape(), latents.shape());
            let rgb = rgb.expect("an image decoder's RGB preview");
            let h = latents.shape()[2];
            assert_eq!(rgb.shape(), &[1, h, latents.shape()[3], 3]);
            assert!(rgb.as_f32().unwrap().iter().all(|v| (0.0..=1.0).contains(v)));
            true
        };
        let with = DecodeInputs { uncond: Some(&uncond), latents: Some(&latents), on_step: Some(&mut on_step),
                                  on_preview: Some(&mut on_preview), init_latents: None };
        let (image, aux) = dec.generate_with(&cond, &p, with).unwrap();
        assert_matches(&image, &case, "image");
        assert!(aux.is_none()); // no safety checker
        // PNDM (skip_prk_steps) runs steps + 1 UNet steps; every one reported in order
        let total = steps[0].1;
        assert!(total >= p.steps, "{} of {}", total, p.steps);
        assert_eq!(steps.iter().map(|s| s.0).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
        assert!(steps.iter().all(|s| s.1 == total) && steps.windows(2).all(|w| w[0].2 <= w[1].2));
        assert_eq!(previews, total);
    }
}

#[test]
fn audio_stages_match_golden() {
    let ctx = cpu();
    let mut dec = Decoder::new(&ctx, model(&cases("audio/audioldm.unet")[0])).unwrap();
    assert_eq!((dec.kind(), dec.sample_rate()), (Modality::Audio, 16000));
    let scale = dec.vae_scaling_factor();
    assert!((scale - 0.965_492_8).abs() < 1e-6, "{}", scale);
    for case in cases("audio/audioldm.unet") {
        let labels = inputs(&case, "class_labels");
        let out = dec.unet(&inputs(&case, "sample"), &inputs(&case, "timestep"), None, Some(&labels)).unwrap();
        assert_matches(&out, &case, "out");
    }
    for case in cases("audio/audioldm.vae_decode") {
        // the golden takes the pipeline's latents: divide them first (as decode_latents does)
        let latents = times(&inputs(&case, "latents"), (1.0 / scale as f64) as f32);
        assert_matches(&dec.vae_decode(&latents).unwrap(), &case, "mel");
    }
    for case in cases("audio/vocoder.hifigan") {
        let mel = inputs(&case, "mel"); // [B, 1, T, 64], the VAE's layout
        let wave = dec.vocoder(&mel).unwrap();
        assert_matches(&wave, &case, "waveform");
        let s = mel.shape();
        assert_eq!(wave.shape(), &[s[0], 160 * s[2] + 32]);
        // [B, T, 64] gives the same; one mel [T, 64] gives one waveform [L]
        let flat = Tensor::from_f32(&[s[0], s[2], s[3]], mel.as_f32().unwrap()).unwrap();
        assert_eq!(dec.vocoder(&flat).unwrap().as_f32(), wave.as_f32());
        let n = (s[2] * s[3]) as usize;
        let one = Tensor::from_f32(&[s[2], s[3]], &mel.as_f32().unwrap()[..n]).unwrap();
        let w1 = dec.vocoder(&one).unwrap();
        assert_eq!(w1.shape(), &[160 * s[2] + 32]);
        assert_eq!(w1.as_f32().unwrap(), &wave.as_f32().unwrap()[..w1.numel()]);
    }
}

#[test]
fn audio_generate_matches_golden() {
    let ctx = cpu();
    for case in cases("audio/audioldm.generate") {
        let mut dec = Decoder::new(&ctx, model(&case)).unwrap();
        let p = DecodeParams {
            steps: case_num(&case, "num_inference_steps") as i32,
            guidance_scale: case_num(&case, "guidance_scale") as f32,
            audio_length_s: case_num(&case, "audio_length_in_s"),
            eta: case_num(&case, "eta") as f32,
            ..Default::default() // the folder's scheduler: DDIM
        };
        let (cond, uncond, latents) =
            (inputs(&case, "prompt_embeds"), inputs(&case, "negative_prompt_embeds"), inputs(&case, "latents"));
        let mut rgb_seen = false;
        let mut on_preview = |_: i32, _: i32, lat: &Tensor, rgb: Option<&Tensor>| {
            assert_eq!(lat.shape(), latents.shape());
            rgb_seen |= rgb.is_some();
            true
        };
        let with = DecodeInputs { uncond: Some(&uncond), latents: Some(&latents), on_preview: Some(&mut on_preview),
                                  ..Default::default() };
        let (wave, mel) = dec.generate_with(&cond, &p, with).unwrap();
        assert!(!rgb_seen); // no RGB preview of mel latents
        assert_matches(&wave, &case, "waveform");
        assert_matches(&mel.expect("the audio decoder's mel"), &case, "mel");
    }
}

#[test]
fn video_stages_match_golden() {
    let ctx = cpu();
    let mut dec = Decoder::new(&ctx, model(&cases("video/zeroscope.unet3d")[0])).unwrap();
    assert_eq!((dec.kind(), dec.sample_rate()), (Modality::Video, 0));
    for case in cases("video/zeroscope.unet3d") {
        let ehs = inputs(&case, "encoder_hidden_states");
        let out = dec.unet(&inputs(&case, "sample"), &inputs(&case, "timestep"), Some(&ehs), None).unwrap();
        assert_matches(&out, &case, "out");
    }
    for case in cases("video/zeroscope.vae_decode") {
        let latents = times(&inputs(&case, "latents"), (1.0 / dec.vae_scaling_factor() as f64) as f32);
        assert_matches(&dec.vae_decode(&latents).unwrap(), &case, "frames");
    }
}

#[test]
fn video_generate_matches_golden() {
    let ctx = cpu();
    for case in cases("video/zeroscope.generate") {
        let mut dec = Decoder::new(&ctx, model(&case)).unwrap();
        let p = DecodeParams {
            steps: case_num(&case, "num_inference_steps") as i32,
            guidance_scale: case_num(&case, "guidance_scale") as f32,
            num_frames: case_num(&case, "num_frames") as i32,
            height: case_num(&case, "height") as i32,
            width: case_num(&case, "width") as i32,
            eta: case_num(&case, "eta") as f32,
            ..Default::default()
        };
        let (uncond, latents) = (inputs(&case, "negative_prompt_embeds"), inputs(&case, "latents"));
        let with = DecodeInputs { uncond: Some(&uncond), latents: Some(&latents), ..Default::default() };
        let (frames, aux) = dec.generate_with(&inputs(&case, "prompt_embeds"), &p, with).unwrap();
        assert_matches(&frames, &case, "frames");
        assert!(aux.is_none());
    }
}

#[test]
fn text_encoder_of_the_tiny_image_decoder() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let mut dec = Decoder::new(&ctx, tiny.join("decoders/image")).unwrap();
    let (n, hidden) = (dec.text_max_length(), dec.text_hidden_size());
    assert_eq!((n, hidden), (77, 32));
    // CLIP's padded ids: [bos] tokens [eos] then padding to text_max_length
    let (ids, n_tokens) = dec.tokenize_text("a photo of a cat", None).unwrap();
    assert_eq!(ids.len(), n as usize);
    assert!(n_tokens > 2 && n_tokens < ids.len(), "{}", n_tokens);
    let (bos, eos) = (ids[0], ids[n_tokens - 1]);
    assert_ne!(bos, eos);
    assert!(ids[n_tokens..].iter().all(|&i| i == eos)); // SD 1.5's pad is "<|endoftext|>"
    // truncation keeps [bos] ... [eos] in n_ids
    let (short, cut) = dec.tokenize_text("a photo of a cat on a mat in the sun", Some(6)).unwrap();
    assert_eq!((short.len(), cut, short[0], short[5]), (6, 6, bos, eos));
    assert_eq!(&short[1..5], &ids[1..5]);

    // tokenize then encode_text_ids is encode_text
    let text = dec.encode_text("a photo of a cat").unwrap();
    assert_eq!(text.shape(), &[1, n as i64, hidden as i64]);
    let by_ids = dec.encode_text_ids(&ids, 1).unwrap();
    assert_eq!(by_ids.shape(), text.shape());
    assert!(max_abs_diff(by_ids.as_f32().unwrap(), text.as_f32().unwrap()) <= 1e-6);
    // a batch of two prompts: row 0 is the prompt alone; S = the ids' length
    let (other, _) = dec.tokenize_text("a dog", Some(n as usize)).unwrap();
    let both = dec.encode_text_ids(&[ids.clone(), other].concat(), 2).unwrap();
    assert_eq!(both.shape(), &[2, n as i64, hidden as i64]);
    assert!(max_abs_diff(&both.as_f32().unwrap()[..text.numel()], text.as_f32().unwrap()) <= 1e-5);
    let few = dec.encode_text_ids(&short, 1).unwrap();
    assert_eq!(few.shape(), &[1, 6, hidden as i64]);
    // masked without a mask is the plain call (CLIP takes no mask)
    let unmasked = dec.encode_text_masked(&ids, None, 1).unwrap();
    assert_eq!(unmasked.as_f32(), by_ids.as_f32());
    let e = dec.encode_text_masked(&ids, Some(&vec![1; ids.len()]), 1).err().unwrap();
    assert_error(&e, sys::NGPT_ERR_UNSUPPORTED, "attention mask");

    // generate's uncond: None = the text encoder's "" (padded to cond's 77 tokens): passing
    // encode_text("") gives the same image
    let p = DecodeParams { steps: 2, seed: 7, ..Default::default() };
    let own = dec.generate(&text, &p).unwrap();
    let empty = dec.encode_text("").unwrap();
    let (given, _) = dec.generate_with(&text, &p, DecodeInputs { uncond: Some(&empty), ..Default::default() }).unwrap();
    assert_eq!(own.shape(), &[1, 64, 64, 3]);
    assert!(max_abs_diff(own.as_f32().unwrap(), given.as_f32().unwrap()) <= 1e-6);
    // a different negative prompt changes the image
    let neg = dec.encode_text("blurry").unwrap();
    let with = DecodeInputs { uncond: Some(&neg), ..Default::default() };
    let (other_neg, _) = dec.generate_with(&text, &p, with).unwrap();
    assert!(max_abs_diff(own.as_f32().unwrap(), other_neg.as_f32().unwrap()) > 1e-4);

    // the text encoder released at create: "" kept for generate, the text calls refused
    let released = Options { flags: sys::NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER, ..Default::default() };
    let mut slim = Decoder::with_options(&ctx, tiny.join("decoders/image"), released).unwrap();
    assert_eq!((slim.text_max_length(), slim.text_hidden_size()), (n, hidden));
    let kept = slim.generate(&text, &p).unwrap();
    assert!(max_abs_diff(own.as_f32().unwrap(), kept.as_f32().unwrap()) <= 1e-6);
    assert_error(&slim.encode_text("a cat").err().unwrap(), sys::NGPT_ERR_UNSUPPORTED, "");
    assert_error(&slim.tokenize_text("a cat", None).err().unwrap(), sys::NGPT_ERR_UNSUPPORTED, "");
}

#[test]
fn text_encoder_of_the_tiny_audio_decoder() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let mut dec = Decoder::new(&ctx, tiny.join("decoders/audio")).unwrap();
    let (n, dim) = (dec.text_max_length(), dec.text_hidden_size() as i64);
    assert_eq!(n, 512); // RoBERTa's model_max_length
    let (ids, n_tokens) = dec.tokenize_text("a dog barks", None).unwrap();
    assert_eq!(ids.len(), 512);
    let text = dec.encode_text("a dog barks").unwrap();
    assert_eq!(text.shape(), &[1, dim]);
    let norm: f32 = text.as_f32().unwrap().iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "{}", norm); // normalised, usable as cond
    // encode_text is CLAP with the tokenizer's attention mask: 1 for the n_tokens, 0 after
    let mask: Vec<i32> = (0..ids.len()).map(|i| (i < n_tokens) as i32).collect();
    let masked = dec.encode_text_masked(&ids, Some(&mask), 1).unwrap();
    assert!(max_abs_diff(masked.as_f32().unwrap(), text.as_f32().unwrap()) <= 1e-6);
    // the unpadded ids, all attended: a full mask, no mask and encode_text_ids agree
    let tokens = &ids[..n_tokens];
    let plain = dec.encode_text_ids(tokens, 1).unwrap();
    let full = dec.encode_text_masked(tokens, Some(&vec![1; n_tokens]), 1).unwrap();
    let none = dec.encode_text_masked(tokens, None, 1).unwrap();
    assert_eq!(plain.shape(), &[1, dim]);
    assert_eq!(full.as_f32(), plain.as_f32());
    assert_eq!(none.as_f32(), plain.as_f32());
    assert!(max_abs_diff(plain.as_f32().unwrap(), text.as_f32().unwrap()) <= 1e-5);
    // a mask that hides the padding matters: all ones over the padded ids differs
    let all = dec.encode_text_masked(&ids, Some(&vec![1; ids.len()]), 1).unwrap();
    assert!(max_abs_diff(all.as_f32().unwrap(), text.as_f32().unwrap()) > 1e-4);
    // a batch of two rows, masks row by row
    let two = dec.encode_text_masked(&[tokens, tokens].concat(), Some(&vec![1; 2 * n_tokens]), 2).unwrap();
    assert_eq!(two.shape(), &[2, dim]);
    // the text as cond: a waveform of audio_length_s
    let p = DecodeParams { steps: 2, audio_length_s: 0.32, ..Default::default() };
    let (wave, mel) = dec.generate_with_aux(&text, &p).unwrap();
    assert_eq!(wave.shape(), &[1, (0.32 * dec.sample_rate() as f64) as i64]);
    assert_eq!(mel.expect("mel").shape()[..2], [1, 1]);
}

#[test]
fn vae_encode_round_trips() {
    let ctx = cpu();
    let mut sd = Decoder::new(&ctx, golden().join("models/sd-a")).unwrap();
    let image = pattern(&[2, 3, 32, 40], 0.0); // pixels in [-1, 1]
    let (mean, logvar) = sd.vae_encode(&image).unwrap();
    assert_eq!((mean.shape(), logvar.shape()), (&[2i64, 4, 4, 5][..], &[2i64, 4, 4, 5][..]));
    assert!(mean.as_f32().unwrap().iter().all(|v| v.is_finite()));
    assert!(logvar.as_f32().unwrap().iter().all(|v| (-30.0..=20.0).contains(v)));
    // mean is what vae_decode takes (not multiplied by the scaling factor)
    let back = sd.vae_decode(&mean).unwrap();
    assert_eq!(back.shape(), image.shape());
    assert!(back.as_f32().unwrap().iter().all(|v| v.is_finite()));
    // deterministic, and per image of the batch
    let (again, _) = sd.vae_encode(&image).unwrap();
    assert_eq!(again.as_f32(), mean.as_f32());
    let first = Tensor::from_f32(&[1, 3, 32, 40], &image.as_f32().unwrap()[..3 * 32 * 40]).unwrap();
    let (m1, _) = sd.vae_encode(&first).unwrap();
    assert!(max_abs_diff(m1.as_f32().unwrap(), &mean.as_f32().unwrap()[..m1.numel()]) <= 1e-5);
    // sides not multiples of 8
    let odd = pattern(&[1, 3, 30, 32], 0.0);
    assert_error(&sd.vae_encode(&odd).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "multiples of 8");

    // the audio VAE: a 1-channel mel image -> 8 latent channels at 1/4, back to the mel's shape
    let mut ad = Decoder::new(&ctx, golden().join("models/audioldm-a")).unwrap();
    let mel = pattern(&[1, 1, 32, 64], 1.0);
    let (am, _) = ad.vae_encode(&mel).unwrap();
    assert_eq!(am.shape(), &[1, 8, 8, 16]);
    let amel = ad.vae_decode(&am).unwrap();
    assert_eq!(amel.shape(), mel.shape());
    assert!(amel.as_f32().unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn generate_callbacks_cancel_and_panics_come_back() {
    let ctx = cpu();
    let mut dec = Decoder::new(&ctx, golden().join("models/sd-a")).unwrap();
    let cond = pattern(&[1, 77, 32], 0.5);
    let uncond = pattern(&[1, 77, 32], 2.0);
    let p = DecodeParams { steps: 3, height: 32, width: 32, seed: 1, ..Default::default() };
    // false from on_step cancels after that step
    let mut calls = 0;
    let mut stop = |_: i32, _: i32, _: f32| {
        calls += 1;
        false
    };
    let with = DecodeInputs { uncond: Some(&uncond), on_step: Some(&mut stop), ..Default::default() };
    assert_error(&dec.generate_with(&cond, &p, with).err().unwrap(), sys::NGPT_ERR_CANCELLED, "after step 1");
    assert_eq!(calls, 1);
    // false from on_preview too
    let mut stop_preview = |step: i32, _: i32, _: &Tensor, _: Option<&Tensor>| step < 2;
    let with = DecodeInputs { uncond: Some(&uncond), on_preview: Some(&mut stop_preview), ..Default::default() };
    assert_error(&dec.generate_with(&cond, &p, with).err().unwrap(), sys::NGPT_ERR_CANCELLED, "after step 2");
    // a panic in a callback cancels the call and comes out of generate_with
    for in_preview in [false, true] {
        let mut boom_step = |_: i32, _: i32, _: f32| -> bool { panic!("boom in on_step") };
        let mut boom_preview =
            |_: i32, _: i32, _: &Tensor, _: Option<&Tensor>| -> bool { panic!("boom in on_preview") };
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut with = DecodeInputs { uncond: Some(&uncond), ..Default::default() };
            if in_preview {
                with.on_preview = Some(&mut boom_preview);
            } else {
                with.on_step = Some(&mut boom_step);
            }
            let _ = dec.generate_with(&cond, &p, with);
        }));
        let payload = caught.err().expect("the callback's panic was swallowed");
        let want = if in_preview { "boom in on_preview" } else { "boom in on_step" };
        assert_eq!(payload.downcast_ref::<&str>(), Some(&want));
    }
    // the decoder is usable after: seed-drawn noise is reproducible, the given latents are used
    let with = DecodeInputs { uncond: Some(&uncond), ..Default::default() };
    let (a, _) = dec.generate_with(&cond, &p, with).unwrap();
    let (b, _) = dec.generate_with(&cond, &p, DecodeInputs { uncond: Some(&uncond), ..Default::default() }).unwrap();
    assert_eq!(a.shape(), &[1, 32, 32, 3]);
    assert_eq!(a.as_f32(), b.as_f32());
    let noise = pattern(&[1, 4, 4, 4], 3.0);
    let with = DecodeInputs { uncond: Some(&uncond), latents: Some(&noise), ..Default::default() };
    let (c, _) = dec.generate_with(&cond, &p, with).unwrap();
    assert!(max_abs_diff(a.as_f32().unwrap(), c.as_f32().unwrap()) > 1e-4);
    // guidance <= 1 needs no uncond
    let g1 = DecodeParams { guidance_scale: 1.0, ..p.clone() };
    assert_eq!(dec.generate(&cond, &g1).unwrap().shape(), &[1, 32, 32, 3]);
}

#[test]
fn errors_a_user_hits() {
    let ctx = cpu();
    let models = golden().join("models");
    // a missing decoder folder
    let e = Decoder::new(&ctx, models.join("no-such-decoder")).err().unwrap();
    assert_error(&e, sys::NGPT_ERR_NOT_FOUND, "no-such-decoder");
    let mut sd = Decoder::new(&ctx, models.join("sd-a")).unwrap();
    let t = Tensor::from_f32(&[1], &[981.0]).unwrap();
    let (s4, s3) = (pattern(&[1, 4, 8, 8], 0.0), pattern(&[1, 3, 8, 8], 0.0));
    let (ehs, ehs31) = (pattern(&[1, 77, 32], 0.0), pattern(&[1, 77, 31], 0.0));
    // wrong latent channels
    assert_error(&sd.unet(&s3, &t, Some(&ehs), None).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "sample");
    assert_error(&sd.vae_decode(&s3).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "latents");
    // wrong conditioning width, missing or extra conditioning
    assert_error(&sd.unet(&s4, &t, Some(&ehs31), None).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "encoder_hidden_states");
    assert_error(&sd.unet(&s4, &t, None, None).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "needs encoder_hidden_states");
    let p = DecodeParams { steps: 1, height: 64, width: 64, ..Default::default() };
    let with = DecodeInputs { uncond: Some(&ehs31), ..Default::default() };
    assert_error(&sd.generate_with(&ehs31, &p, with).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "cross_attention_dim");
    let with = DecodeInputs { uncond: Some(&ehs31), ..Default::default() };
    assert_error(&sd.generate_with(&ehs, &p, with).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "uncond and cond differ");
    let with = DecodeInputs { uncond: Some(&ehs), latents: Some(&s3), ..Default::default() };
    assert_error(&sd.generate_with(&ehs, &p, with).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "latents [1, 3, 8, 8]");
    // no text encoder: no uncond of its own, no text calls
    assert_error(&sd.generate(&ehs, &p).err().unwrap(), sys::NGPT_ERR_UNSUPPORTED, "uncond");
    assert_error(&sd.encode_text("a cat").err().unwrap(), sys::NGPT_ERR_UNSUPPORTED, "no text encoder");
    assert_error(&sd.tokenize_text("a cat", None).err().unwrap(), sys::NGPT_ERR_UNSUPPORTED, "no text encoder");
    assert_error(&sd.encode_text_ids(&[1, 2], 1).err().unwrap(), sys::NGPT_ERR_UNSUPPORTED, "no text encoder");
    assert_error(&sd.encode_text_masked(&[1, 2], None, 1).err().unwrap(), sys::NGPT_ERR_UNSUPPORTED, "no text encoder");
    // the vocoder on an image decoder
    let mel = pattern(&[1, 20, 64], 0.0);
    assert_error(&sd.vocoder(&mel).err().unwrap(), sys::NGPT_ERR_UNSUPPORTED, "no vocoder");
    // components: a VAE-only decoder has no UNet; only an audio decoder has a vocoder
    let vae_only = Decoder::with_components(&ctx, models.join("sd-a"), None, sys::NGPT_DECODER_VAE, Options::default());
    let mut vae_only = vae_only.unwrap();
    assert_eq!(vae_only.vae_decode(&s4).unwrap().shape(), &[1, 3, 64, 64]);
    assert_error(&vae_only.unet(&s4, &t, Some(&ehs), None).err().unwrap(), sys::NGPT_ERR_UNSUPPORTED, "no UNet");
    let with = DecodeInputs { uncond: Some(&ehs), ..Default::default() };
    assert_error(&vae_only.generate_with(&ehs, &p, with).err().unwrap(), sys::NGPT_ERR_UNSUPPORTED, "UNet");
    let e = Decoder::with_components(&ctx, models.join("sd-a"), None, sys::NGPT_DECODER_VOCODER, Options::default());
    assert_error(&e.err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "vocoder");
    // kinds: Text is none; a kind named must be model_index.json's
    let e = Decoder::with_components(&ctx, models.join("sd-a"), Some(Modality::Text), 0, Options::default());
    assert_error(&e.err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "Modality::Text");
    let e = Decoder::with_components(&ctx, models.join("sd-a"), Some(Modality::Video), 0, Options::default());
    assert_error(&e.err().unwrap(), sys::NGPT_ERR_BAD_FORMAT, "describes the image decoder, not the video one");
    let e = Decoder::with_components(&ctx, models.join("sd-a"), Some(Modality::Audio), 0, Options::default());
    assert_error(&e.err().unwrap(), sys::NGPT_ERR_BAD_FORMAT, "describes the image decoder, not the audio one");
    let sd_named = Decoder::with_components(&ctx, models.join("sd-a"), Some(Modality::Image), 0, Options::default());
    assert_eq!(sd_named.unwrap().kind(), Modality::Image);

    // the audio decoder's conditioning is class_labels, its mel has n_mels bins
    let mut ad = Decoder::new(&ctx, models.join("audioldm-a")).unwrap();
    let (a, labels) = (pattern(&[1, 8, 8, 16], 0.0), pattern(&[1, 24], 0.0));
    assert_error(&ad.unet(&a, &t, None, None).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "class_labels");
    assert_error(&ad.unet(&a, &t, Some(&ehs), Some(&labels)).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT,
            "no encoder_hidden_states");
    assert_error(&ad.vocoder(&pattern(&[1, 20, 63], 0.0)).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "mel");
    assert_error(&ad.vocoder(&pattern(&[1, 2, 20, 64], 0.0)).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "mel");

    // text arguments checked here before the call, and by the library
    let Some(tiny) = common::tiny() else { return };
    let mut ti = Decoder::new(&ctx, tiny.join("decoders/image")).unwrap();
    assert_error(&ti.encode_text_ids(&[1, 2, 3], 2).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "input_ids holds 3 ids");
    assert_error(&ti.encode_text_ids(&[1, 2], 0).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "batch = 0");
    assert_error(&ti.encode_text_ids(&[], 1).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "input_ids holds 0 ids");
    assert_error(&ti.encode_text_ids(&[1, 9999], 1).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "vocabulary");
    assert_error(&ti.encode_text_ids(&[1; 78], 1).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "[1, 78]");
    assert_error(&ti.encode_text_masked(&[1, 2], Some(&[1]), 1).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT,
            "attention_mask holds 1 values for 2 input_ids");
    assert_error(&ti.encode_text("a\0cat").err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "NUL");
    assert_error(&ti.tokenize_text("a cat", Some(1)).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "n_ids 1");
    assert_error(&ti.tokenize_text("a cat", Some(78)).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "n_ids 78");
    assert_error(&ti.tokenize_text("a cat", Some(usize::MAX)).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "int32");
}

#[test]
fn image_to_image_runs_the_last_steps_from_init_latents() {
    let ctx = cpu();
    let mut dec = Decoder::new(&ctx, golden().join("models/sd-a")).unwrap();
    let (cond, uncond) = (pattern(&[1, 77, 32], 0.5), pattern(&[1, 77, 32], 2.0));
    let noise = pattern(&[1, 4, 4, 4], 1.0);
    let (mean, _) = dec.vae_encode(&pattern(&[1, 3, 32, 32], 0.25)).unwrap();
    let k = dec.vae_scaling_factor();
    let scaled: Vec<f32> = mean.as_f32().unwrap().iter().map(|v| v * k).collect();
    let init = Tensor::from_f32(mean.shape(), &scaled).unwrap();
    let base = DecodeParams { steps: 4, height: 32, width: 32, ..Default::default() };
    let run = |dec: &mut Decoder, p: &DecodeParams, init: Option<&Tensor>| {
        let mut totals = Vec::new();
        let mut on_step = |_: i32, total: i32, _: f32| {
            totals.push(total);
            true
        };
        let with = DecodeInputs { uncond: Some(&uncond), latents: Some(&noise), init_latents: init,
                                  on_step: Some(&mut on_step), ..Default::default() };
        let out = dec.generate_with(&cond, p, with).map(|(image, _)| image);
        (out, totals)
    };
    let (from_noise, all) = run(&mut dec, &base, None);
    assert_eq!(all, vec![5; 5]); // PNDM: 4 steps are 5 UNet evaluations
    let half = DecodeParams { strength: Some(0.5), ..base.clone() };
    let (a, totals) = run(&mut dec, &half, Some(&init));
    assert_eq!(totals, vec![3; 3]); // int(4 x 0.5) steps: the schedule's last 3 evaluations
    let (b, _) = run(&mut dec, &half, Some(&init));
    let (a, b, from_noise) = (a.unwrap(), b.unwrap(), from_noise.unwrap());
    assert_eq!(a.as_f32(), b.as_f32());
    assert_ne!(a.as_f32(), from_noise.as_f32());
    let (_, totals) = run(&mut dec, &base, Some(&init)); // strength None: 0.8
    assert_eq!(totals, vec![4; 4]);
    let (err, _) = run(&mut dec, &DecodeParams { strength: Some(0.1), ..base.clone() }, Some(&init));
    assert_error(&err.err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "runs no step");
    let wrong = pattern(&[1, 4, 4, 8], 1.0);
    let (err, _) = run(&mut dec, &half, Some(&wrong));
    assert_error(&err.err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "init_latents [1, 4, 4, 8]");
}

#[test]
fn image_latents_match_golden_and_feed_image_to_image() {
    let ctx = cpu();
    let mut dec = Decoder::new(&ctx, golden().join("models/sd-a")).unwrap();
    let case = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../tests/golden/vision/sd.image_latents/sd_37x29_cut");
    let img = Image::load(case.join("input.png")).unwrap();
    let mode = dec.image_latents(&img, None).unwrap();
    assert_eq!(mode.shape(), &[1, 4, 3, 4]); // 37x29 cut to 32x24
    assert_matches(&mode, &case, "latents");
    let (a, b) = (dec.image_latents(&img, Some(3)).unwrap(), dec.image_latents(&img, Some(3)).unwrap());
    assert_eq!(a.as_f32(), b.as_f32());
    assert_ne!(a.as_f32(), mode.as_f32());
    assert_ne!(a.as_f32(), dec.image_latents(&img, Some(4)).unwrap().as_f32());
    let cond = pattern(&[1, 77, 32], 0.5);
    let p = DecodeParams { steps: 2, guidance_scale: 1.0, strength: Some(0.5), ..Default::default() };
    let with = DecodeInputs { init_latents: Some(&a), ..Default::default() };
    let (out, _) = dec.generate_with(&cond, &p, with).unwrap();
    assert_eq!(out.shape(), &[1, 24, 32, 3]); // the size taken from the latents
    let tiny = Image::from_rgb8(&[0; 7 * 7 * 3], 7, 7).unwrap();
    assert_error(&dec.image_latents(&tiny, None).err().unwrap(), sys::NGPT_ERR_INVALID_ARGUMENT, "multiples of 8");
}

#[test]
fn video_latents_match_golden_and_feed_video_to_video() {
    let ctx = cpu();
    let mut dec = Decoder::new(&ctx, golden().join("models/zeroscope-a")).unwrap();
    let case = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../tests/golden/video/zeroscope.video_latents/zs_3x32x48");
    let frames = load(&case.join("inputs.safetensors"), "frames"); // U8 [3, 32, 48, 3]
    let mode = dec.video_latents(&frames, None).unwrap();
    assert_eq!(mode.shape(), &[1, 4, 3, 4, 6]);
    assert_matches(&mode, &case, "latents");
    let a = dec.video_latents(&frames, Some(2)).unwrap();
    assert_eq!(a.as_f32(), dec.video_latents(&frames, Some(2)).unwrap().as_f32());
    assert_ne!(a.as_f32(), mode.as_f32());
    let cond = pattern(&[1, 77, 48], 0.5);
    let p = DecodeParams { steps: 2, guidance_scale: 1.0, strength: Some(0.5), ..Default::default() };
    let with = DecodeInputs { init_latents: Some(&a), ..Default::default() };
    let (out, _) = dec.generate_with(&cond, &p, with).unwrap();
    assert_eq!(out.shape(), &[1, 3, 3, 32, 48]); // size and frames from the latents
    let odd = Tensor::from_bytes(sys::NGPT_DTYPE_U8, &[1, 12, 16, 3], &[0; 12 * 16 * 3]).unwrap();
    assert_error(&dec.video_latents(&odd, None).err().unwrap(), sys::NGPT_ERR_SHAPE_MISMATCH, "multiples of 8");
}
