//! The safe crate against the built library and the shared golden cases
//! (NGPT_GOLDEN_DIR, else ../shared/golden beside the source tree).
mod common;

use common::{f32s, golden, i32s, tensor};
use std::path::PathBuf;

#[test]
fn version_matches_the_header() {
    assert_eq!(nextgpt::version().as_bytes(), &nextgpt::sys::NGPT_VERSION_STRING[..5]);
    assert_eq!(nextgpt::version_number(), nextgpt::sys::NGPT_VERSION_NUMBER as i32);
    assert_eq!(nextgpt::abi_version(), nextgpt::sys::NGPT_ABI_VERSION as i32);
}

#[test]
fn context_on_the_cpu() {
    let ctx = nextgpt::Context::with_params(&nextgpt::ContextParams {
        device: nextgpt::Device::Cpu,
        n_threads: 1,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(ctx.backend(), nextgpt::Backend::Cpu);
    assert_eq!(ctx.backend_name(), "cpu");
    assert!(!ctx.device_name().is_empty());
    assert_eq!(ctx.n_threads(), 1);
    assert!(ctx.memory_peak() >= ctx.memory_used());
    let quiet = nextgpt::ContextParams { log_level: Some(nextgpt::sys::NGPT_LOG_NONE), ..Default::default() };
    assert!(nextgpt::Context::with_params(&quiet).is_ok());
    let bad = nextgpt::ContextParams { log_level: Some(77), ..Default::default() };
    assert_eq!(nextgpt::Context::with_params(&bad).err().unwrap().status, nextgpt::sys::NGPT_ERR_INVALID_ARGUMENT);
}

#[test]
fn errors_carry_status_and_message() {
    let e = nextgpt::Tokenizer::new("/nonexistent/tokenizer-dir").err().expect("must fail");
    assert_eq!(e.status, nextgpt::sys::NGPT_ERR_NOT_FOUND);
    assert_eq!(e.status_name(), "NGPT_ERR_NOT_FOUND");
    assert!(e.message.contains("/nonexistent/tokenizer-dir"), "{}", e.message);
    assert!(e.to_string().starts_with("NGPT_ERR_NOT_FOUND: "));
    let e = nextgpt::Image::from_memory(b"not an image", Some("junk.bin")).err().unwrap();
    assert_eq!(e.status, nextgpt::sys::NGPT_ERR_BAD_FORMAT);
    assert!(e.message.contains("junk.bin"));
}

#[test]
fn tokenizer_matches_golden_cases() {
    let tok = nextgpt::Tokenizer::new(golden().join("models/tok-a-nextgpt")).unwrap();
    let case = golden().join("llm/tokenizer.encode/nextgpt_prompt");
    let (dtype, ids) = tensor(&case.join("expected.safetensors"), "ids");
    assert_eq!(dtype, "I32");
    let text = "### Human: <Img>photo.jpg</Img> hello\n### Assistant:"; // the case's params.text
    let cj = std::fs::read_to_string(case.join("case.json")).unwrap();
    assert!(cj.contains("<Img>photo.jpg</Img> hello\\n### Assistant:"), "the case text changed");
    assert_eq!(tok.encode(text, true).unwrap(), i32s(&ids));

    let case = golden().join("llm/tokenizer.decode/signal_tokens");
    let ids = i32s(&tensor(&case.join("inputs.safetensors"), "ids").1);
    let want = tensor(&case.join("expected.safetensors"), "text_utf8").1;
    assert_eq!(tok.decode_bytes(&ids, false).unwrap(), want);

    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(1), Some(2)));
    let img0 = tok.piece_to_id("[IMG0]").unwrap();
    assert_eq!(tok.token_to_piece(img0).as_deref(), Some("[IMG0]"));
    assert_eq!(tok.token_to_piece(1 << 30), None);
    assert_eq!(tok.decode(&tok.encode("hi [IMG0]", true).unwrap(), true).unwrap(), "hi [IMG0]");
    let e = tok.decode(&[tok.vocab_size() + 1], false).unwrap_err();
    assert_eq!(e.status, nextgpt::sys::NGPT_ERR_INVALID_ARGUMENT);
    // Tokenizer is Send + Sync: share it between threads
    std::thread::scope(|s| {
        s.spawn(|| assert!(!tok.encode("from a thread", true).unwrap().is_empty()));
    });
}

#[test]
fn scheduler_ddim_matches_golden_case() {
    let case = golden().join("vision/scheduler.ddim/sd15_n6");
    let cfg = r#"{"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "steps_offset": 1,
                  "set_alpha_to_one": false, "clip_sample": false, "prediction_type": "epsilon"}"#;
    let mut s = nextgpt::Scheduler::from_json(cfg).unwrap();
    assert_eq!(s.kind(), nextgpt::sys::NGPT_SCHEDULER_DDIM);
    assert!(s.timesteps().is_err());
    s.set_timesteps(6).unwrap();
    let exp = case.join("expected.safetensors");
    let ts: Vec<i64> = tensor(&exp, "timesteps").1.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(s.timesteps().unwrap(), &ts[..]);
    let mut sample = f32s(&tensor(&case.join("inputs.safetensors"), "sample0").1);
    let outs = f32s(&tensor(&case.join("inputs.safetensors"), "model_outputs").1);
    let want = f32s(&tensor(&exp, "samples").1);
    let n = sample.len();
    for (k, &t) in ts.iter().enumerate() {
        s.scale_model_input(&mut sample, t).unwrap();
        s.step(&outs[k * n..(k + 1) * n], t, &mut sample, None).unwrap();
        for (g, w) in sample.iter().zip(&want[k * n..(k + 1) * n]) {
            assert!((g - w).abs() <= 5e-5 + 1e-5 * w.abs(), "step {}: {} vs {}", k, g, w);
        }
    }
    assert!(s.step(&sample.clone(), 123456, &mut sample, None).is_err());
    assert!(s.step(&[0.0], ts[0], &mut sample, None).is_err()); // length mismatch, checked in Rust
    let acp0 = s.alphas_cumprod().unwrap()[0];
    let noisy = s.add_noise(&[1.0; 4], &[0.0; 4], 0).unwrap();
    assert!((noisy[0] - acp0.sqrt()).abs() < 1e-6);
    s.reset().unwrap();
    assert_eq!(s.init_noise_sigma(), 1.0);
}

#[test]
fn scheduler_euler_float_timesteps() {
    let cfg = r#"{"_class_name": "EulerAncestralDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear"}"#;
    let mut s = nextgpt::Scheduler::from_json(cfg).unwrap();
    assert_eq!(s.kind(), nextgpt::sys::NGPT_SCHEDULER_EULER_ANCESTRAL);
    assert!(s.init_noise_sigma() > 14.0);
    s.set_timesteps(12).unwrap();
    assert_eq!(s.timesteps().unwrap_err().status, nextgpt::sys::NGPT_ERR_UNSUPPORTED as i32);
    let ts = s.timesteps_f64().unwrap().to_vec();
    assert_eq!(ts.len(), 12);
    assert_eq!(ts[0], 999.0);
    assert!(ts[1].fract() != 0.0);
    let mut x = vec![1.0f32; 8];
    s.scale_model_input_f64(&mut x, ts[0]).unwrap();
    assert!(x[0] < 0.1);
    let eps = vec![0.5f32; 8];
    assert!(s.step_f64(&eps, ts[0], &mut x, None).is_err()); // the ancestral sampler needs noise
    for &t in &ts {
        s.step_f64(&eps, t, &mut x, Some(&eps)).unwrap();
    }
    assert!(x.iter().all(|v| v.is_finite()));
    assert!(s.step_f64(&eps, 1.5, &mut x, Some(&eps)).is_err());
    let noisy = s.add_noise_f64(&[1.0; 4], &[1.0; 4], ts[11]).unwrap();
    assert!(noisy[0] > 1.0);
}

#[test]
fn scheduler_unipc() {
    let cfg = r#"{"_class_name": "UniPCMultistepScheduler", "solver_order": 3, "beta_start": 0.00085,
                  "beta_end": 0.012, "beta_schedule": "scaled_linear"}"#;
    let mut s = nextgpt::Scheduler::from_json(cfg).unwrap();
    assert_eq!(s.kind(), nextgpt::sys::NGPT_SCHEDULER_UNIPC_MULTISTEP);
    s.set_timesteps(10).unwrap();
    let ts = s.timesteps().unwrap().to_vec();
    assert_eq!(ts, vec![999, 899, 799, 699, 599, 500, 400, 300, 200, 100]);
    let mut x = vec![1.0f32; 8];
    for &t in &ts {
        let eps: Vec<f32> = x.iter().map(|v| 0.1 * v + 0.05).collect();
        s.step(&eps, t, &mut x, None).unwrap();
    }
    assert!(x.iter().all(|v| v.is_finite()));
    assert!(nextgpt::Scheduler::from_json(r#"{"_class_name": "UniPCMultistepScheduler", "solver_order": 4}"#).is_err());
    // a struct_size set by hand is replaced by the struct's own: the library reads no further
    let mut p = nextgpt::Scheduler::default_params();
    p.struct_size = 1 << 20;
    assert_eq!(nextgpt::Scheduler::from_json_with(cfg, &p).unwrap().kind(), nextgpt::sys::NGPT_SCHEDULER_UNIPC_MULTISTEP);
}

#[test]
fn scheduler_kdpm2_ancestral() {
    // 2n - 1 fractional timesteps; noise only on the second-order steps
    let cfg = r#"{"_class_name": "KDPM2AncestralDiscreteScheduler", "beta_schedule": "scaled_linear"}"#;
    let mut s = nextgpt::Scheduler::from_json(cfg).unwrap();
    assert_eq!(s.kind(), nextgpt::sys::NGPT_SCHEDULER_KDPM2_ANCESTRAL);
    s.set_timesteps(6).unwrap();
    assert!(s.timesteps().is_err());
    let ts = s.timesteps_f64().unwrap().to_vec();
    assert_eq!(ts.len(), 11);
    assert_eq!(ts[0], 999.0);
    let mut x = vec![1.0f32; 8];
    let noise = vec![0.5f32; 8];
    for (k, &t) in ts.iter().enumerate() {
        let eps: Vec<f32> = x.iter().map(|v| 0.1 * v + 0.05).collect();
        if k % 2 == 1 {
            assert!(s.step_f64(&eps, t, &mut x.clone(), None).is_err());
        }
        s.step_f64(&eps, t, &mut x, Some(&noise)).unwrap();
    }
    assert!(x.iter().all(|v| v.is_finite()));
}

#[test]
fn image_and_audio_preprocess() {
    let case = golden().join("vision/image.preprocess/small_png");
    let img = nextgpt::Image::load(case.join("input.png")).unwrap();
    assert_eq!(img.pixels().len(), (img.width() * img.height() * 3) as usize);
    let t = img.preprocess().unwrap();
    assert_eq!(t.shape(), &[3, 224, 224]);
    assert_eq!(t.dtype_name(), "F32");
    let want = f32s(&tensor(&case.join("expected.safetensors"), "pixels").1);
    for (g, w) in t.as_f32().unwrap().iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 + 1e-5 * w.abs());
    }
    let copy = nextgpt::Image::from_rgb8(img.pixels(), img.width(), img.height()).unwrap();
    assert_eq!(copy.pixels(), img.pixels());
    assert!(nextgpt::Image::from_rgb8(&[0; 5], 2, 2).is_err());

    let a = nextgpt::Audio::from_pcm(&vec![0.0f32; 32000], 2, 16000).unwrap();
    assert_eq!((a.frames(), a.channels(), a.sample_rate(), a.samples().len()), (16000, 2, 16000, 32000));
    let t = a.preprocess().unwrap();
    assert_eq!(t.shape(), &[3, 1, 128, 204]);
}

/// The stage handles and the pipeline on the embedded tiny bundle (NGPT_TINY_BUNDLE, set by
/// tests/bindings/test_rust.sh); the examples run them end to end (suite 'examples').
#[test]
fn tensors_made_by_the_caller() {
    use nextgpt::{sys, Tensor};
    let z = Tensor::zeros(sys::NGPT_DTYPE_F32, &[2, 3]).unwrap();
    assert_eq!((z.shape(), z.as_f32().unwrap()), (&[2i64, 3][..], &[0.0f32; 6][..]));
    let mut f = Tensor::from_f32(&[3], &[1.0, -2.5, 0.25]).unwrap();
    f.as_f32_mut().unwrap()[1] = 4.0;
    assert_eq!(f.as_f32().unwrap(), &[1.0, 4.0, 0.25]);
    let e = Tensor::from_f32(&[2, 2], &[1.0; 3]).err().unwrap();
    assert_eq!(e.status, sys::NGPT_ERR_INVALID_ARGUMENT);
    assert!(Tensor::zeros(sys::NGPT_DTYPE_F32, &[1; 9]).is_err());
    // the length is checked before anything is allocated (this shape asks for 4 TiB)
    let e = Tensor::from_f32(&[1 << 40], &[1.0]).err().unwrap();
    assert_eq!(e.status, sys::NGPT_ERR_INVALID_ARGUMENT);
    let e = Tensor::from_bytes(sys::NGPT_DTYPE_BF16, &[1 << 40, 1 << 20], &[0; 2]).err().unwrap();
    assert!(e.message.contains("2 bytes for a BF16 tensor"), "{}", e.message);
    let e = Tensor::zeros(sys::NGPT_DTYPE_F32, &[2, -1]).err().unwrap(); // the library's own check
    assert!(e.message.contains("negative dimension"), "{}", e.message);
    // BF16 as its bit patterns: a copy of another tensor's bytes, and checked against the shape
    let bits: Vec<u8> = [1.0f32, -2.5, 0.15625].iter().flat_map(|x| ((x.to_bits() >> 16) as u16).to_ne_bytes()).collect();
    let b = Tensor::from_bytes(sys::NGPT_DTYPE_BF16, &[1, 3], &bits).unwrap();
    assert_eq!((b.dtype_name().as_str(), b.as_bytes()), ("BF16", &bits[..]));
    assert!(Tensor::from_bytes(sys::NGPT_DTYPE_BF16, &[1, 2], &bits).is_err());
    // and it is an input like the library's outputs: U8 pixels into an Image
    let px: Vec<u8> = (0..4 * 5 * 3).map(|i| i as u8).collect();
    let img = nextgpt::Image::from_tensor(&Tensor::from_bytes(sys::NGPT_DTYPE_U8, &[4, 5, 3], &px).unwrap()).unwrap();
    assert_eq!((img.width(), img.height(), img.pixels()), (5, 4, &px[..]));
    let Some(tiny) = std::env::var_os("NGPT_TINY_BUNDLE").map(PathBuf::from) else { return };
    let ctx = nextgpt::Context::new(nextgpt::Device::Cpu).unwrap();
    let only_input = nextgpt::Projector::new(&ctx, tiny.join("projectors"), true, &[]).unwrap();
    assert!(only_input.has_input() && !only_input.has_output(nextgpt::Modality::Image));
    let mut pj = nextgpt::Projector::new(&ctx, tiny.join("projectors"), false, &[]).unwrap(); // everything
    assert!(pj.has_input() && pj.has_output(nextgpt::Modality::Image));
    assert!(pj.output_dim(nextgpt::Modality::Image) > 0 && pj.num_output_tokens(nextgpt::Modality::Image) > 0);
    let n = pj.input_dim() as usize;
    let emb: Vec<f32> = (0..n).map(|i| f32::from_bits(((i as f32 * 0.37).sin().to_bits()) & 0xffff_0000)).collect();
    let as_bf16: Vec<u8> = emb.iter().flat_map(|x| ((x.to_bits() >> 16) as u16).to_ne_bytes()).collect();
    let want = pj.input(&Tensor::from_f32(&[1, n as i64], &emb).unwrap()).unwrap();
    let got = pj.input(&Tensor::from_bytes(sys::NGPT_DTYPE_BF16, &[1, n as i64], &as_bf16).unwrap()).unwrap();
    assert_eq!(got.as_f32().unwrap(), want.as_f32().unwrap());
}

#[test]
fn stages_and_pipeline_on_the_tiny_bundle() {
    use nextgpt::{Modality, TurnParams};
    let Some(tiny) = std::env::var_os("NGPT_TINY_BUNDLE").map(PathBuf::from) else {
        eprintln!("NGPT_TINY_BUNDLE is not set: skipped");
        return;
    };
    let cat = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../data/tiny/cat.jpg");
    let ctx = nextgpt::Context::new(nextgpt::Device::Cpu).unwrap();
    let mut enc = nextgpt::Encoder::new(&ctx, tiny.join("imagebind"), nextgpt::sys::NGPT_ENCODER_IMAGE).unwrap();
    let emb = enc.encode_image(&nextgpt::Image::load(&cat).unwrap()).unwrap();
    assert_eq!(emb.shape(), &[1, enc.embed_dim() as i64]);
    let norm: f32 = emb.as_f32().unwrap().iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    let e = nextgpt::Encoder::new(&ctx, tiny.join("nope"), 0).err().unwrap();
    assert_eq!(e.status, nextgpt::sys::NGPT_ERR_NOT_FOUND as i32);

    let mut pj = nextgpt::Projector::new(&ctx, tiny.join("projectors"), true, &[Modality::Image]).unwrap();
    let soft = pj.input(&emb).unwrap();
    let bb = nextgpt::Backbone::new(&ctx, tiny.join("llm"), None).unwrap();
    assert_eq!(soft.shape(), &[1, bb.n_embd() as i64]);
    let mut s = bb.session(256).unwrap();
    let p = TurnParams { require: vec![Modality::Image], max_new_tokens: Some(4), ..Default::default() };
    assert!(s.turn("x", &[(Modality::Image, &[0.0; 3][..])], &p).is_err()); // wrong width
    let turn = s.turn("draw it", &[(Modality::Image, soft.as_f32().unwrap())], &p).unwrap();
    let g = turn.groups.iter().find(|g| g.modality == Modality::Image).unwrap();
    assert_eq!(g.n_tokens as i32, pj.num_input_tokens(Modality::Image));
    assert_eq!(g.hidden.len(), g.n_tokens * bb.n_embd() as usize);
    // the answer streamed: the pieces are the text; false cancels; a panic comes back out
    let mut s2 = bb.session(256).unwrap();
    let tp = TurnParams { max_new_tokens: Some(6), ..Default::default() };
    let mut pieces = String::new();
    let streamed = s2.turn_streaming("hi", &[], &tp, &mut |t: &str| { pieces.push_str(t); true }).unwrap();
    assert_eq!(pieces, streamed.text);
    s2.reset().unwrap();
    let mut n = 0;
    let cut = s2.turn_streaming("hi", &[], &tp, &mut |_: &str| { n += 1; false }).unwrap();
    assert_eq!((n, cut.stop_reason), (1, nextgpt::sys::NGPT_STOP_CANCELLED));
    s2.reset().unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s2.turn_streaming("hi", &[], &tp, &mut |_: &str| panic!("from on_text")).ok();
    }));
    assert!(caught.is_err());
    assert!(s2.turn("hi", &[], &tp).is_ok()); // the session is usable after the panic
    assert!(pj.output(Modality::Audio, &g.hidden, &g.input_embs).is_err()); // not loaded
    let cond = pj.output(Modality::Image, &g.hidden, &g.input_embs).unwrap();
    let mut dec = nextgpt::Decoder::new(&ctx, tiny.join("decoders/image")).unwrap();
    assert_eq!((dec.vae_scaling_factor(), dec.sample_rate()), (0.18215, 0));
    let px = dec.generate(&cond, &nextgpt::DecodeParams { steps: 2, ..Default::default() }).unwrap();
    assert_eq!(px.shape(), &[1, 64, 64, 3]);
    // the audio chain as the stages give it: the audio projector's [1, 1, D] into the decoder
    let mut apj = nextgpt::Projector::new(&ctx, tiny.join("projectors"), false, &[Modality::Audio]).unwrap();
    let n_aud = apj.num_input_tokens(Modality::Audio) as usize * bb.n_embd() as usize;
    let acond = apj.output(Modality::Audio, &vec![0.1; n_aud], &vec![0.2; n_aud]).unwrap();
    assert_eq!(acond.shape().len(), 3);
    let mut adec = nextgpt::Decoder::new(&ctx, tiny.join("decoders/audio")).unwrap();
    let ap = nextgpt::DecodeParams { steps: 2, audio_length_s: 0.32, scheduler: nextgpt::sys::NGPT_SCHEDULER_DDIM as u32,
                                     ..Default::default() };
    let wave = adec.generate(&acond, &ap).unwrap();
    assert_eq!(wave.shape(), &[1, (0.32 * adec.sample_rate() as f64) as i64]);
    // Stable Diffusion's safety checker (our golden model's) on that image
    let sd_safety = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../tests/golden/models/sd-b-safety");
    let checked = nextgpt::Options { flags: nextgpt::sys::NGPT_DECODER_FLAG_SAFETY_CHECKER, ..Default::default() };
    let mut sdec = nextgpt::Decoder::with_options(&ctx, &sd_safety, checked).unwrap();
    let (flags, special, concept) = sdec.safety_check(&px).unwrap();
    assert_eq!((flags.len(), special.shape(), concept.shape()), (1, &[1i64, 3][..], &[1i64, 17][..]));
    assert_eq!(flags[0], concept.as_f32().unwrap().iter().any(|&v| v > 0.0));
    assert_eq!(dec.safety_check(&px).err().unwrap().status, nextgpt::sys::NGPT_ERR_UNSUPPORTED as i32);
    // generate's second output: the checker's flags (a flagged image comes back black), the mel
    let cond48: Vec<f32> = (0..2 * 77 * 48).map(|i| (i as f32 * 0.731).sin()).collect();
    let c48 = nextgpt::Tensor::from_f32(&[2, 77, 48], &cond48).unwrap();
    let sp = nextgpt::DecodeParams { steps: 1, guidance_scale: 1.0, width: 32, height: 32, ..Default::default() };
    let (imgs, nsfw) = sdec.generate_with_aux(&c48, &sp).unwrap();
    let nsfw = nsfw.expect("the checker's flags");
    assert_eq!((imgs.shape(), nsfw.dtype(), nsfw.shape()), (&[2i64, 32, 32, 3][..], nextgpt::sys::NGPT_DTYPE_BOOL, &[2i64][..]));
    for (i, &f) in nsfw.as_bytes().iter().enumerate() {
        let im = &imgs.as_f32().unwrap()[i * 32 * 32 * 3..(i + 1) * 32 * 32 * 3];
        assert_eq!(f != 0, im.iter().all(|&v| v == 0.0));
    }
    let two = nextgpt::DecodeParams { steps: 2, ..Default::default() };
    assert!(dec.generate_with_aux(&cond, &two).unwrap().1.is_none()); // no checker: no flags
    let (_, mel) = adec.generate_with_aux(&acond, &ap).unwrap();
    assert_eq!(mel.expect("the audio decoder's mel").shape().len(), 4);
    // Text is no output modality (its projector bit is the input projector's)
    assert!(nextgpt::Projector::new(&ctx, tiny.join("projectors"), false, &[Modality::Text]).is_err());
    assert!(nextgpt::Pipeline::new(&ctx, &tiny, &[Modality::Text]).is_err());
    let img = nextgpt::Image::from_tensor(&px).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    assert!(img.save_png(tiny.join("no-such-dir/x.png")).is_err());

    let est = nextgpt::estimate_memory(&tiny, &nextgpt::MemoryParams::default()).unwrap();
    let bbm = est.parts[0].unwrap();
    assert_eq!(bbm.kv, 2 * 3 * 2048 * 128 * 4); // the tiny LLaMA's F32 KV cache
    assert_eq!(bbm.mapped, bbm.weights);
    assert_eq!(est.peak, *est.stages.iter().max().unwrap());
    let gpu = nextgpt::MemoryParams { backend: nextgpt::Backend::Cuda, compute_dtype: nextgpt::sys::NGPT_DTYPE_F16,
                                      ..Default::default() };
    assert_eq!(nextgpt::estimate_memory(&tiny, &gpu).unwrap().overhead, 1 << 30);
    let checked = nextgpt::MemoryParams { flags: nextgpt::sys::NGPT_PIPELINE_SAFETY_CHECKER, ..Default::default() };
    assert!(nextgpt::estimate_memory(&tiny, &checked).err().unwrap().message.contains("safety_checker"));
    let f16_cpu = nextgpt::MemoryParams { compute_dtype: nextgpt::sys::NGPT_DTYPE_F16, ..Default::default() };
    assert_eq!(nextgpt::estimate_memory(&tiny, &f16_cpu).err().unwrap().status, nextgpt::sys::NGPT_ERR_UNSUPPORTED as i32);

    let mut pl = nextgpt::Pipeline::new(&ctx, &tiny, &[]).unwrap();
    assert!(pl.is_test_model());
    let mut streamed = String::new();
    let mut on_token = |t: &str| { streamed.push_str(t); true };
    let params = nextgpt::PipelineTurnParams { force: vec![Modality::Image], steps: 2, seed: 0, max_new_tokens: Some(6),
                                              ..Default::default() };
    let r = pl.turn("draw it", &[(Modality::Image, cat.as_path())], &params, Some(&mut on_token)).unwrap();
    assert_eq!(streamed, r.text);
    let out = r.outputs.iter().find(|o| o.modality == Modality::Image).unwrap();
    assert_eq!(&out.result.as_ref().unwrap()[..4], b"\x89PNG");
    let mut cancel = |_: &str| false;
    assert!(pl.turn("again", &[], &params, Some(&mut cancel)).unwrap().cancelled);
    // a panic in the callback cancels the turn and comes out of turn() once the library returned
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut boom = |_: &str| -> bool { panic!("boom in on_token") };
        let _ = pl.turn("again", &[], &params, Some(&mut boom));
    }));
    let payload = panicked.err().expect("the callback's panic was swallowed");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in on_token"));
    assert!(pl.turn("after the panic", &[], &params, None).is_ok()); // the pipeline is still usable
    let missing = tiny.join("no-such-cat.jpg");
    let e = pl.turn("x", &[(Modality::Image, missing.as_path())], &params, None).err().unwrap();
    assert!(e.message.contains("no-such-cat.jpg"), "{}", e.message);

    // the CUDA graph flags through with_options: accepted on the CPU, the same answer
    use nextgpt::{sys, Options};
    let graphs = Options { flags: sys::NGPT_PIPELINE_CUDA_GRAPHS, ..Default::default() };
    let mut plain = nextgpt::Pipeline::new(&ctx, &tiny, &[]).unwrap();
    let mut flagged = nextgpt::Pipeline::with_options(&ctx, &tiny, &[], graphs).unwrap();
    let a = plain.turn("draw it", &[(Modality::Image, cat.as_path())], &params, None).unwrap();
    let b = flagged.turn("draw it", &[(Modality::Image, cat.as_path())], &params, None).unwrap();
    assert_eq!(a.text, b.text);
    assert_eq!(a.outputs[0].result.as_ref().unwrap(), b.outputs[0].result.as_ref().unwrap());
    let bad = Options { flags: 0x80, ..Default::default() };
    assert_eq!(nextgpt::Pipeline::with_options(&ctx, &tiny, &[], bad).err().unwrap().status,
               sys::NGPT_ERR_INVALID_ARGUMENT as i32);
    let bbg = Options { flags: sys::NGPT_BACKBONE_FLAG_CUDA_GRAPH, ..Default::default() };
    assert!(nextgpt::Backbone::with_options(&ctx, tiny.join("llm"), None, bbg).is_ok());
    let f16 = Options { compute_dtype: sys::NGPT_DTYPE_F16, ..Default::default() };
    assert_eq!(nextgpt::Decoder::with_options(&ctx, tiny.join("decoders/image"), f16).err().unwrap().status,
               sys::NGPT_ERR_UNSUPPORTED as i32); // F16 needs CUDA
    let encg = Options { flags: sys::NGPT_ENCODER_FLAG_CUDA_GRAPH, ..Default::default() };
    assert!(nextgpt::Encoder::with_options(&ctx, tiny.join("imagebind"), sys::NGPT_ENCODER_IMAGE, encg).is_ok());
    // channels last: the decoders NHWC inside; the same answer text, an image
    let cl = Options { flags: sys::NGPT_PIPELINE_CHANNELS_LAST, ..Default::default() };
    let mut nhwc = nextgpt::Pipeline::with_options(&ctx, &tiny, &[], cl).unwrap();
    let c = nhwc.turn("draw it", &[(Modality::Image, cat.as_path())], &params, None).unwrap();
    assert_eq!(a.text, c.text);
    assert_eq!(&c.outputs[0].result.as_ref().unwrap()[..4], b"\x89PNG");
    let decl = Options { flags: sys::NGPT_DECODER_FLAG_CHANNELS_LAST, ..Default::default() };
    assert!(nextgpt::Decoder::with_options(&ctx, tiny.join("decoders/image"), decl).is_ok());
}
