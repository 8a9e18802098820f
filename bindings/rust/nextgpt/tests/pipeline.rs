//! The pipeline's safe API: lent stages, the full result, every turn option, events,
//! cancellation, media from memory, and the errors a user hits.
mod common;

use common::{assert_within, cpu, tolerance};
use nextgpt::sys;
use nextgpt::{CancelFlag, Image, MediaSource, Modality, Pipeline, PipelineEvent, PipelineParams,
              PipelineStage, PipelineTurnParams};
use std::path::{Path, PathBuf};

const INVALID: i32 = sys::NGPT_ERR_INVALID_ARGUMENT as i32;

/// A fresh folder under the temp dir for this test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ngpt-rs-pipeline-{}-{}", std::process::id(), name));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A bundle folder whose bundle.json names the given parts by absolute path.
fn bundle(name: &str, llm: &Path, imagebind: &Path, projectors: &Path, decoders: &[(&str, &Path)]) -> PathBuf {
    let d = scratch(name);
    let decs: Vec<String> = decoders.iter().map(|(k, p)| format!("\"{}\": \"{}\"", k, p.display())).collect();
    let json = format!(
        "{{\"format\": \"nextgpt-bundle\", \"version\": 1, \"llm\": \"{}\", \"delta\": null, \"imagebind\": \"{}\", \
         \"projectors\": \"{}\", \"decoders\": {{{}}}, \"random_weights\": true}}",
        llm.display(), imagebind.display(), projectors.display(), decs.join(", "));
    std::fs::write(d.join("bundle.json"), json).unwrap();
    d
}

/// A mono 16-bit PCM WAV: one second of a 440 Hz tone at 16 kHz.
fn tone_wav() -> Vec<u8> {
    let n = 16000u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&32000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let s = (0.3 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16000.0).sin() * 32767.0) as i16;
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

/// A short forced-image turn.
fn image_params(steps: i32) -> PipelineTurnParams {
    PipelineTurnParams { force: vec![Modality::Image], steps, max_new_tokens: Some(4), ..Default::default() }
}

#[test]
fn golden_projector_cases_through_the_lent_projector() {
    // a bundle of the golden models: llama-a (64 wide) + imagebind-a (32) + projector-a (32 -> 64)
    let m = common::golden().join("models");
    let dir = bundle("golden", &m.join("llama-a"), &m.join("imagebind-a"), &m.join("projector-a"), &[]);
    let ctx = cpu();
    let mut pl = Pipeline::new(&ctx, &dir, &[]).unwrap();
    assert_eq!(pl.backbone().unwrap().n_embd(), 64);
    {
        let mut proj = pl.projector().unwrap();
        assert_eq!((proj.llm_hidden_size(), proj.input_dim()), (64, 32));
        for case in ["random_n3", "unit_n1"] {
            let c = common::golden().join("vision/projector.input").join(case);
            let feature = common::load(&c.join("inputs.safetensors"), "feature");
            let out = proj.input(&feature).unwrap();
            let (_, shape, exp) = common::read(&c.join("expected.safetensors"), "embeds");
            assert_eq!(out.shape(), &shape[..], "{}", case);
            assert_within(out.as_f32().unwrap(), &common::f32s(&exp), tolerance(&c), case);
        }
        // the batch-1 cases (output takes one signal group)
        let cases = [("image_b1", Modality::Image), ("audio_b1", Modality::Audio), ("video_b1", Modality::Video)];
        for (case, modality) in cases {
            let c = common::golden().join("vision/projector.output").join(case);
            let (_, _, hid) = common::read(&c.join("inputs.safetensors"), "hidden");
            let (_, _, emb) = common::read(&c.join("inputs.safetensors"), "input_embs");
            let out = proj.output(modality, &common::f32s(&hid), &common::f32s(&emb)).unwrap();
            let (_, shape, exp) = common::read(&c.join("expected.safetensors"), "conditioning");
            assert_eq!(out.shape(), &shape[..], "{}", case);
            assert_within(out.as_f32().unwrap(), &common::f32s(&exp), tolerance(&c), case);
        }
        // a length the lent projector checks before the call
        let e = proj.output(Modality::Image, &[0.0; 63], &[0.0; 63]).err().unwrap();
        assert_eq!(e.status, INVALID);
        assert!(e.message.contains("[n_tokens, llm_hidden]"), "{}", e.message);
    }

    // the plain turn on this bundle: no signal tokens in llama-a's tokenizer, so nothing to force
    let e = pl.turn_with("draw", &[], &image_params(2), None).err().unwrap();
    assert_eq!(e.status, sys::NGPT_ERR_UNSUPPORTED as i32);
    assert!(e.message.contains("signal tokens"), "{}", e.message);
    let tp = PipelineTurnParams { max_new_tokens: Some(3), ..Default::default() };
    let r = pl.turn_with("hello", &[], &tp, None).unwrap();
    assert!(r.outputs.is_empty());
    assert_eq!(r.history, Ok(0));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_bundle_without_decoders() {
    let Some(tiny) = common::tiny() else { return };
    let dir = bundle("nodec", &tiny.join("llm"), &tiny.join("imagebind"), &tiny.join("projectors"), &[]);
    let ctx = cpu();
    let mut pl = Pipeline::new(&ctx, &dir, &[]).unwrap();
    assert!(pl.is_test_model());
    assert_eq!(pl.decoder_path(Modality::Image), None);
    assert!(pl.decoder(Modality::Image).is_none());
    // preloading a decoder the bundle lacks fails the create
    let e = Pipeline::new(&ctx, &dir, &[Modality::Audio]).err().unwrap();
    assert_eq!(e.status, sys::NGPT_ERR_NOT_FOUND as i32);
    assert!(e.message.contains("names no audio decoder"), "{}", e.message);
    // a forced output without a decoder fails alone: the text still comes
    let r = pl.turn_with("draw", &[], &image_params(2), None).unwrap();
    let e = r.outputs[0].result.as_ref().err().unwrap();
    assert_eq!(e.status, sys::NGPT_ERR_NOT_FOUND as i32);
    assert!(e.message.contains("names no image decoder"), "{}", e.message);
    assert_eq!(r.outputs[0].format, "");
    assert!(pl.decoder(Modality::Image).is_none());
    assert_eq!(r.history, Ok(0)); // nothing produced, nothing re-entered the history
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn lent_stages_decoder_path_history_and_stage_stats() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let mut pl = Pipeline::new(&ctx, &tiny, &[]).unwrap();
    // the backbone and the projectors meet
    let n_embd = pl.backbone().unwrap().n_embd();
    assert!(n_embd > 0);
    assert_eq!(pl.projector().unwrap().llm_hidden_size(), n_embd);
    assert!(pl.projector().unwrap().has_output(Modality::Image));
    // the lent encoder gives what an encoder of the same weights gives
    let cat = Image::load(common::cat_jpg()).unwrap();
    let lent = pl.encoder().unwrap().encode_image(&cat).unwrap();
    let mut own = nextgpt::Encoder::new(&ctx, tiny.join("imagebind"), 0).unwrap();
    let mine = own.encode_image(&cat).unwrap();
    assert_eq!(lent.shape(), &[1, own.embed_dim() as i64][..]);
    assert_eq!(lent.as_f32().unwrap(), mine.as_f32().unwrap());
    // a lent stage moved out of its Borrowed is still lent (never freed by Rust: the pipeline
    // frees it once), and the owned one moved in is not the pipeline's
    let other = nextgpt::Encoder::new(&ctx, tiny.join("imagebind"), 0).unwrap();
    let stolen = std::mem::replace(&mut *pl.encoder().unwrap(), other);
    drop(stolen);
    assert_eq!(pl.encoder().unwrap().encode_image(&cat).unwrap().as_f32().unwrap(), mine.as_f32().unwrap());
    let n_ctx = pl.backbone().unwrap().n_ctx();
    assert_eq!(pl.session().unwrap().n_ctx(), 2048.min(n_ctx));
    // decoders: a path for each, none loaded before a turn needs one, none for Text
    let dp = pl.decoder_path(Modality::Image).unwrap();
    assert_eq!(dp, tiny.join("decoders/image"));
    assert!(dp.join("model_index.json").is_file());
    assert!(pl.decoder_path(Modality::Video).unwrap().ends_with("decoders/video"));
    assert_eq!(pl.decoder_path(Modality::Text), None);
    assert!(pl.decoder(Modality::Image).is_none());
    assert!(pl.decoder(Modality::Text).is_none());
    assert_eq!(pl.session().unwrap().n_past(), 0);

    let r = pl.turn_with("draw it", &[(Modality::Image, MediaSource::Image(&cat))], &image_params(2), None).unwrap();
    assert!(!r.cancelled);
    let out = &r.outputs[0];
    assert_eq!((out.modality, out.format.as_str()), (Modality::Image, "png"));
    assert_eq!(&out.result.as_ref().unwrap()[..4], b"\x89PNG");
    assert_eq!(r.history, Ok(1)); // the image re-entered the conversation
    // the timings and memory of each stage
    assert_eq!((r.stage_ms.len(), r.stage_memory.len()), (PipelineStage::ALL.len(), PipelineStage::ALL.len()));
    assert!(r.stage_ms.iter().all(|&ms| ms >= 0.0), "{:?}", r.stage_ms);
    use PipelineStage::*;
    for s in [Load, Encode, Llm, Decode, MediaOut] {
        assert!(r.stage_ms[s as usize] > 0.0, "{:?}: {:?}", s, r.stage_ms);
    }
    let dm = r.stage_memory[PipelineStage::Decode as usize];
    assert!(dm.host > 0, "{:?}", r.stage_memory);
    assert!(r.stage_memory.iter().all(|m| m.device == 0)); // a CPU context
    assert!(pl.session().unwrap().n_past() > 0);
    // an owned decoder swapped into the lent one is freed with the Borrowed (its weights are
    // owned memory here: channels-last copies), the pipeline's is not
    let before = ctx.memory_used();
    let o = nextgpt::Options { compute_dtype: sys::NGPT_DTYPE_F32, flags: sys::NGPT_DECODER_FLAG_CHANNELS_LAST };
    let other = nextgpt::Decoder::with_options(&ctx, tiny.join("decoders/image"), o).unwrap();
    assert!(ctx.memory_used() > before);
    drop(std::mem::replace(&mut *pl.decoder(Modality::Image).unwrap(), other));
    assert_eq!(ctx.memory_used(), before);
    assert!(pl.decoder(Modality::Image).unwrap().vae_scaling_factor() > 0.0);

    // now loaded: the lent decoder works on the lent projector's conditioning shape
    let cond_shape = {
        let p = pl.projector().unwrap();
        [1, p.num_output_tokens(Modality::Image) as i64, p.output_dim(Modality::Image) as i64]
    };
    {
        let mut dec = pl.decoder(Modality::Image).expect("the image decoder after an image turn");
        assert_eq!(dec.sample_rate(), 0);
        let cond = nextgpt::Tensor::zeros(sys::NGPT_DTYPE_F32, &cond_shape).unwrap();
        let px = dec.generate(&cond, &nextgpt::DecodeParams { steps: 1, height: 16, width: 16, ..Default::default() })
            .unwrap();
        assert_eq!(px.shape(), &[1, 16, 16, 3][..]);
        let bad = nextgpt::Tensor::zeros(sys::NGPT_DTYPE_F32, &[1, 77, cond_shape[2] + 1]).unwrap();
        assert!(dec.generate(&bad, &nextgpt::DecodeParams { steps: 1, ..Default::default() }).is_err());
    }
    assert!(pl.decoder(Modality::Audio).is_none());
    pl.release_decoder(Modality::Image).unwrap();
    assert!(pl.decoder(Modality::Image).is_none());
    let e = pl.release_decoder(Modality::Text).err().unwrap();
    assert_eq!(e.status, INVALID);
    assert!(e.message.contains("bad modality"), "{}", e.message);
    // it reloads on the next image turn (a LOAD stage again)
    let r2 = pl.turn_with("again", &[], &image_params(1), None).unwrap();
    assert!(r2.outputs[0].result.is_ok());
    assert!(r2.stage_ms[PipelineStage::Load as usize] > 0.0);
    assert!(pl.decoder(Modality::Image).is_some());
    pl.reset().unwrap();
    assert_eq!(pl.session().unwrap().n_past(), 0);
}


#[test]
fn every_event_kind_of_an_image_turn() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    // create: a LOAD event per part, the preloaded decoder included
    let mut loads = Vec::new();
    let mut on_load = |ev: PipelineEvent| {
        loads.push(ev);
        true
    };
    let p = PipelineParams { preload: vec![Modality::Audio], ..Default::default() };
    let mut pl = Pipeline::with_params(&ctx, &tiny, &p, Some(&mut on_load)).unwrap();
    let names: Vec<&str> = loads.iter().map(|e| match e {
        PipelineEvent::Load { component, .. } => component.as_str(),
        other => panic!("at create: {:?}", other),
    }).collect();
    assert_eq!(names, ["language model", "imagebind", "projectors", "audio decoder"]);
    assert!(matches!(loads[3], PipelineEvent::Load { modality: Modality::Audio, .. }));
    assert!(pl.decoder(Modality::Audio).is_some()); // preloaded

    let wav = tone_wav();
    let cat = common::cat_jpg();
    let mut events = Vec::new();
    let mut on_event = |ev: PipelineEvent| {
        events.push(ev);
        true
    };
    let media = [(Modality::Image, MediaSource::Path(&cat)), (Modality::Audio, MediaSource::Bytes(&wav))];
    let r = pl.turn_with("draw it", &media, &image_params(3), Some(&mut on_event)).unwrap();
    assert!(r.outputs[0].result.is_ok());
    // elapsed time only grows
    assert!(events.windows(2).all(|w| w[0].elapsed_s() <= w[1].elapsed_s()));
    assert!(events[0].elapsed_s() >= 0.0);
    let encodes: Vec<_> = events.iter().filter(|e| matches!(e, PipelineEvent::Encode { .. })).collect();
    assert_eq!(encodes.len(), 2);
    assert!(matches!(encodes[0], PipelineEvent::Encode { modality: Modality::Image, step: 1, total: 2, .. }));
    assert!(matches!(encodes[1], PipelineEvent::Encode { modality: Modality::Audio, step: 2, total: 2, .. }));
    let text: String = events.iter().filter_map(|e| match e {
        PipelineEvent::Token { text, .. } => Some(text.as_str()),
        _ => None,
    }).collect();
    assert_eq!(text, r.text);
    assert!(events.iter().any(|e| matches!(e, PipelineEvent::Load { component, modality: Modality::Image, .. }
                                               if component == "image decoder")));
    let steps: Vec<(i32, i32)> = events.iter().filter_map(|e| match e {
        PipelineEvent::Denoise { modality: Modality::Image, step, total, .. } => Some((*step, *total)),
        _ => None,
    }).collect();
    // PNDM (the tiny decoder's scheduler, skip_prk_steps) runs steps + 1 UNet steps, as diffusers does
    assert_eq!(steps, [(1, 4), (2, 4), (3, 4), (4, 4)]);
    let last = events.last().unwrap();
    assert!(matches!(last, PipelineEvent::Output { modality: Modality::Image, step: 0, total: 1, .. }), "{:?}", last);
    // the order: encode, tokens, load of the decoder, denoising, output
    let pos = |f: &dyn Fn(&PipelineEvent) -> bool| events.iter().position(f).unwrap();
    let enc = pos(&|e| matches!(e, PipelineEvent::Encode { .. }));
    let tok = pos(&|e| matches!(e, PipelineEvent::Token { .. }));
    let load = pos(&|e| matches!(e, PipelineEvent::Load { .. }));
    let den = pos(&|e| matches!(e, PipelineEvent::Denoise { .. }));
    assert!(enc < tok && tok < load && load < den, "{:?}", events);

    // the old turn(): only the tokens reach on_token, the same text
    pl.reset().unwrap();
    let mut pieces = String::new();
    let mut on_token = |t: &str| {
        pieces.push_str(t);
        true
    };
    let again = pl.turn("draw it", &[(Modality::Image, cat.as_path()), (Modality::Audio, cat.as_path())],
                        &image_params(3), Some(&mut on_token));
    // the audio item is a JPEG here: the error names it
    let e = again.err().unwrap();
    assert!(e.message.contains("cat.jpg"), "{}", e.message);
    let again = pl.turn("draw it", &[(Modality::Image, cat.as_path())], &image_params(3), Some(&mut on_token)).unwrap();
    assert_eq!(pieces, again.text);
}

#[test]
fn create_events_cancel_and_panic() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let mut n = 0;
    let mut stop_at_second = |_: PipelineEvent| {
        n += 1;
        n < 2
    };
    let e = Pipeline::with_params(&ctx, &tiny, &PipelineParams::default(), Some(&mut stop_at_second)).err().unwrap();
    assert_eq!(e.status, sys::NGPT_ERR_CANCELLED as i32);
    assert!(e.message.contains("cancelled before loading the imagebind"), "{}", e.message);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut boom = |_: PipelineEvent| -> bool { panic!("boom at create") };
        let _ = Pipeline::with_params(&ctx, &tiny, &PipelineParams::default(), Some(&mut boom));
    }));
    assert_eq!(panicked.err().unwrap().downcast_ref::<&str>(), Some(&"boom at create"));
    // Text is no decoder to preload
    let p = PipelineParams { preload: vec![Modality::Text], ..Default::default() };
    assert_eq!(Pipeline::with_params(&ctx, &tiny, &p, None).err().unwrap().status, INVALID);
    // a missing bundle
    let e = Pipeline::new(&ctx, tiny.join("no-such-bundle"), &[]).err().unwrap();
    assert_eq!(e.status, sys::NGPT_ERR_NOT_FOUND as i32);
    assert!(e.message.contains("no-such-bundle"), "{}", e.message);
}

#[test]
fn n_ctx_bounds_the_conversation() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let p = PipelineParams { n_ctx: 96, ..Default::default() };
    let mut pl = Pipeline::with_params(&ctx, &tiny, &p, None).unwrap();
    let long = "tell me a long story about a cat ".repeat(20);
    let e = pl.turn_with(&long, &[], &PipelineTurnParams::default(), None).err().unwrap();
    assert_eq!(e.status, INVALID);
    assert!(e.message.contains("exceed the context of 96"), "{}", e.message);
    assert_eq!(pl.session().unwrap().n_past(), 0); // the conversation unchanged
    // the default context takes it
    let mut big = Pipeline::new(&ctx, &tiny, &[]).unwrap();
    let tp = PipelineTurnParams { max_new_tokens: Some(2), ..Default::default() };
    assert!(big.turn_with(&long, &[], &tp, None).is_ok());
}

#[test]
fn cancel_from_another_thread_after_events_and_by_panic() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let mut pl = Pipeline::new(&ctx, &tiny, &[Modality::Image]).unwrap();
    // the flag set by another thread while the image is being denoised
    let flag = CancelFlag::new();
    let tp = PipelineTurnParams { cancel: Some(flag.clone()), ..image_params(5) };
    let (to_thread, from_turn) = std::sync::mpsc::channel::<()>();
    let (to_turn, from_thread) = std::sync::mpsc::channel::<()>();
    let setter = flag.clone();
    let mut denoised = 0;
    let r = std::thread::scope(|s| {
        s.spawn(move || {
            from_turn.recv().unwrap();
            setter.cancel();
            to_turn.send(()).unwrap();
        });
        let mut on_event = |ev: PipelineEvent| {
            if let PipelineEvent::Denoise { step, .. } = ev {
                denoised += 1;
                if step == 2 {
                    to_thread.send(()).unwrap();
                    from_thread.recv().unwrap(); // the flag is set now
                }
            }
            true
        };
        pl.turn_with("draw it", &[], &tp, Some(&mut on_event)).unwrap()
    });
    assert!(r.cancelled);
    assert_eq!(denoised, 2);
    let e = r.outputs[0].result.as_ref().err().unwrap();
    assert_eq!(e.status, sys::NGPT_ERR_CANCELLED as i32);
    assert_eq!(r.history, Ok(0));
    assert!(flag.is_cancelled());
    // still set: the next turn stops at its first check (the media item)
    let cat = common::cat_jpg();
    let r = pl.turn_with("x", &[(Modality::Image, MediaSource::Path(&cat))], &tp, None).unwrap();
    assert!(r.cancelled);
    assert_eq!(r.text, "");
    assert_eq!(r.outputs[0].result.as_ref().err().unwrap().status, sys::NGPT_ERR_CANCELLED as i32);
    flag.reset();
    assert!(!pl.turn_with("x", &[], &tp, None).unwrap().cancelled);

    // the callback says stop after 3 events
    let mut n = 0;
    let mut three = |_: PipelineEvent| {
        n += 1;
        n < 3
    };
    let r = pl.turn_with("draw it", &[], &image_params(5), Some(&mut three)).unwrap();
    assert!(r.cancelled);
    assert_eq!(n, 3);

    // a panic cancels and comes out of turn_with once the library returned
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut boom = |ev: PipelineEvent| -> bool {
            if matches!(ev, PipelineEvent::Denoise { .. }) {
                panic!("boom at denoise")
            }
            true
        };
        let _ = pl.turn_with("draw it", &[], &image_params(3), Some(&mut boom));
    }));
    assert_eq!(panicked.err().unwrap().downcast_ref::<&str>(), Some(&"boom at denoise"));
    assert!(pl.turn_with("after", &[], &image_params(1), None).unwrap().outputs[0].result.is_ok());
}

#[test]
fn media_from_bytes_and_decoded_give_the_same_turn() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let mut pl = Pipeline::new(&ctx, &tiny, &[]).unwrap();
    let cat = common::cat_jpg();
    let jpg = std::fs::read(&cat).unwrap();
    let img = Image::from_memory(&jpg, Some("cat.jpg")).unwrap();
    let dir = scratch("media");
    let wav_path = dir.join("tone.wav");
    let wav = tone_wav();
    std::fs::write(&wav_path, &wav).unwrap();
    let snd = nextgpt::Audio::load(&wav_path).unwrap();
    let tp = PipelineTurnParams { seed: 7, temperature: Some(0.8), top_k: 20, top_p: Some(0.9),
                                  repetition_penalty: Some(1.1), ..image_params(2) };
    let mut turn = |media: &[(Modality, MediaSource)]| {
        pl.reset().unwrap();
        let r = pl.turn_with("what is this?", media, &tp, None).unwrap();
        (r.text, r.outputs[0].result.clone().unwrap())
    };
    let from_path = turn(&[(Modality::Image, MediaSource::Path(&cat)), (Modality::Audio, MediaSource::Path(&wav_path))]);
    let from_bytes = turn(&[(Modality::Image, MediaSource::Bytes(&jpg)), (Modality::Audio, MediaSource::Bytes(&wav))]);
    let decoded = turn(&[(Modality::Image, MediaSource::Image(&img)), (Modality::Audio, MediaSource::Audio(&snd))]);
    assert_eq!(from_path, from_bytes);
    assert_eq!(from_path, decoded);
    // another picture changes the answer's conditioning: not the same image out
    let gray = Image::from_rgb8(&[128; 32 * 32 * 3], 32, 32).unwrap();
    let other = turn(&[(Modality::Image, MediaSource::Image(&gray)), (Modality::Audio, MediaSource::Audio(&snd))]);
    assert_ne!(from_path.1, other.1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sampling_settings_reach_the_language_model() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let mut pl = Pipeline::new(&ctx, &tiny, &[]).unwrap();
    let mut answer = |tp: PipelineTurnParams| {
        pl.reset().unwrap();
        let mut tokens = 0;
        let mut on_event = |ev: PipelineEvent| {
            tokens += matches!(ev, PipelineEvent::Token { .. }) as i32;
            true
        };
        let r = pl.turn_with("tell me about cats", &[], &tp, Some(&mut on_event)).unwrap();
        (r.text, tokens)
    };
    let base = PipelineTurnParams { max_new_tokens: Some(12), temperature: Some(1.5), top_p: Some(1.0),
                                    ..Default::default() };
    let greedy = answer(PipelineTurnParams { temperature: Some(0.0), seed: 1, ..base.clone() });
    assert_eq!(greedy, answer(PipelineTurnParams { temperature: Some(0.0), seed: 2, ..base.clone() }));
    // top_k 1 is greedy whatever the temperature and seed
    assert_eq!(greedy, answer(PipelineTurnParams { top_k: 1, seed: 3, ..base.clone() }));
    // wide sampling: the seed decides
    let a = answer(PipelineTurnParams { seed: 1, ..base.clone() });
    let b = answer(PipelineTurnParams { seed: 2, ..base.clone() });
    assert_ne!(a.0, b.0);
    assert_eq!(a, answer(PipelineTurnParams { seed: 1, ..base.clone() }));
    assert_ne!(a, answer(PipelineTurnParams { seed: 1, repetition_penalty: Some(3.0), ..base.clone() }));
    let one = answer(PipelineTurnParams { max_new_tokens: Some(1), ..base.clone() });
    assert!(one.1 <= 1, "{:?}", one);
}

#[test]
fn decoder_settings_reach_the_decoders() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let mut pl = Pipeline::new(&ctx, &tiny, &[]).unwrap();
    let tp = PipelineTurnParams { height: 48, width: 40, guidance_scale: 3.0, scheduler: sys::NGPT_SCHEDULER_DDIM,
                                  ..image_params(2) };
    let mut totals = Vec::new();
    let mut on_event = |ev: PipelineEvent| {
        if let PipelineEvent::Denoise { total, .. } = ev {
            totals.push(total);
        }
        true
    };
    let r = pl.turn_with("draw", &[], &tp, Some(&mut on_event)).unwrap();
    assert_eq!(totals, [2, 2]); // DDIM: exactly `steps` (the folder's PNDM would run 3)
    let png = r.outputs[0].result.as_ref().unwrap();
    let img = Image::from_memory(png, None).unwrap();
    assert_eq!((img.width(), img.height()), (40, 48));
    let tp = PipelineTurnParams { force: vec![Modality::Audio], audio_length_s: 1.0, ..image_params(2) };
    let r = pl.turn_with("sing", &[], &tp, None).unwrap();
    let o = &r.outputs[0];
    assert_eq!((o.modality, o.format.as_str()), (Modality::Audio, "wav"));
    let wav = o.result.as_ref().unwrap();
    let rate = u32::from_le_bytes(wav[24..28].try_into().unwrap()) as usize;
    assert_eq!(wav.len() - 44, 2 * rate, "one second of 16-bit mono");
    let tp = PipelineTurnParams { force: vec![Modality::Video], num_frames: 3, video_fps: 4.0, height: 32, width: 32,
                                  ..image_params(1) };
    let r = pl.turn_with("film", &[], &tp, None).unwrap();
    let o = &r.outputs[0];
    assert_eq!(o.modality, Modality::Video);
    // SAFETY: a static string or NULL
    let codec = unsafe { sys::ngpt_media_video_codec(sys::NGPT_VIDEO_FORMAT_MP4) };
    match &o.result {
        Ok(mp4) => assert_eq!(&mp4[4..8], b"ftyp"),
        Err(e) => {
            assert!(codec.is_null(), "{}", e.message); // only a build without an MP4 encoder fails here
            assert_eq!(e.status, sys::NGPT_ERR_UNSUPPORTED as i32, "{}", e.message);
        }
    }
}

#[test]
fn turn_errors() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let mut pl = Pipeline::new(&ctx, &tiny, &[]).unwrap();
    let cat = common::cat_jpg();
    let jpg = std::fs::read(&cat).unwrap();
    let img = Image::load(&cat).unwrap();
    let tp = image_params(1);
    let err = |pl: &mut Pipeline, media: &[(Modality, MediaSource)], tp: &PipelineTurnParams| {
        pl.turn_with("x", media, tp, None).err().expect("an error")
    };
    // a media item of modality Text
    let e = err(&mut pl, &[(Modality::Text, MediaSource::Path(&cat))], &tp);
    assert_eq!(e.status, INVALID);
    assert!(e.message.contains("is not image, audio or video"), "{}", e.message);
    // steps out of range, and the other decoder settings
    let e = err(&mut pl, &[], &PipelineTurnParams { steps: 5000, ..Default::default() });
    assert_eq!(e.status, INVALID);
    assert!(e.message.contains("steps 5000 in 0..1000"), "{}", e.message);
    let e = err(&mut pl, &[], &PipelineTurnParams { height: 30, ..Default::default() });
    assert!(e.message.contains("multiples of 8"), "{}", e.message);
    let e = err(&mut pl, &[], &PipelineTurnParams { guidance_scale: f32::NAN, ..Default::default() });
    assert!(e.message.contains("guidance_scale NaN finite") || e.message.contains("guidance_scale nan finite"),
            "{}", e.message);
    let e = err(&mut pl, &[], &PipelineTurnParams { video_fps: 2000.0, ..Default::default() });
    assert!(e.message.contains("video_fps 2000 is not in 0..1000"), "{}", e.message);
    let e = err(&mut pl, &[], &PipelineTurnParams { scheduler: 1000, ..Default::default() });
    assert!(e.message.contains("scheduler 1000"), "{}", e.message);
    // Text is no output to force (checked in Rust)
    let e = err(&mut pl, &[], &PipelineTurnParams { force: vec![Modality::Text], ..Default::default() });
    assert_eq!(e.status, INVALID);
    assert!(e.message.contains("not an output modality"), "{}", e.message);
    // bytes that are not an image
    let e = err(&mut pl, &[(Modality::Image, MediaSource::Bytes(b"this is not a picture"))], &tp);
    assert_eq!(e.status, sys::NGPT_ERR_BAD_FORMAT as i32, "{}", e.message);
    assert!(e.message.contains("media[0] (image)"), "{}", e.message);
    // empty bytes (checked in Rust)
    let e = err(&mut pl, &[(Modality::Image, MediaSource::Path(&cat)), (Modality::Image, MediaSource::Bytes(&[]))], &tp);
    assert_eq!(e.status, INVALID);
    assert!(e.message.contains("media[1]: the encoded bytes are empty"), "{}", e.message);
    // a source the modality cannot take
    let e = err(&mut pl, &[(Modality::Audio, MediaSource::Image(&img))], &tp);
    assert_eq!(e.status, INVALID);
    assert!(e.message.contains("ngpt_pipeline_turn: media[0] (audio): an audio item gives an image"), "{}", e.message);
    let e = err(&mut pl, &[(Modality::Video, MediaSource::Bytes(&jpg))], &tp);
    assert_eq!(e.status, sys::NGPT_ERR_UNSUPPORTED as i32);
    assert!(e.message.contains("ngpt_pipeline_turn: media[0] (video): video is read from a file only"), "{}", e.message);
    // a missing file: named in the message
    let missing = tiny.join("no-such-cat.jpg");
    let e = err(&mut pl, &[(Modality::Image, MediaSource::Path(&missing))], &tp);
    assert!(e.message.contains("no-such-cat.jpg"), "{}", e.message);
    // a NUL in the text or a path (checked in Rust)
    assert_eq!(pl.turn_with("a\0b", &[], &tp, None).err().unwrap().status, INVALID);
    let nul = Path::new("a\0b.jpg");
    let e = err(&mut pl, &[(Modality::Image, MediaSource::Path(nul))], &tp);
    assert!(e.message.contains("NUL"), "{}", e.message);
    // after all of these the conversation is as before
    assert_eq!(pl.session().unwrap().n_past(), 0);
    assert!(pl.turn_with("fine", &[(Modality::Image, MediaSource::Bytes(&jpg))], &tp, None).is_ok());
}
