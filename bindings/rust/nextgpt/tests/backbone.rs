//! The backbone and its sessions: model facts, the lent tokenizer, embed_tokens, eval / logits /
//! hidden against the golden llm cases (llama.logits, llama.logits_embeds, llama.lora,
//! llama.generate_greedy), sampling, truncation, and chat turns (ids, n_prompt, timings, the new
//! TurnParams fields, add_assistant_media) on the tiny bundle; and the errors a user would hit.
mod common;

use common::{cases, cpu, expect_err};
use nextgpt::sys;
use nextgpt::{Backbone, Batch, GenerateParams, Modality, OutputMode, Session, TurnParams};
use std::path::{Path, PathBuf};

const INVALID: i32 = sys::NGPT_ERR_INVALID_ARGUMENT as i32;

fn model(name: &str) -> PathBuf {
    common::golden().join("models").join(name)
}

/// The raw JSON text of `key`'s value in a case.json (enough for its numbers, lists and strings).
fn json_value<'a>(json: &'a str, key: &str) -> &'a str {
    let at = json.find(&format!("\"{}\":", key)).unwrap_or_else(|| panic!("{} not in {}", key, json));
    json[at + key.len() + 3..].trim_start()
}

fn json_f32(json: &str, key: &str) -> f32 {
    let v = json_value(json, key);
    v[..v.find(|c: char| c == ',' || c == '\n' || c == '}').unwrap()].trim().parse().unwrap()
}

fn json_i32s(json: &str, key: &str) -> Vec<i32> {
    let v = json_value(json, key);
    v[1..v.find(']').unwrap()].split(',').map(|x| x.trim()).filter(|x| !x.is_empty()).map(|x| x.parse().unwrap()).collect()
}

/// A JSON string value (escapes \n \t \" \\ \/ \uXXXX with surrogate pairs).
fn json_string(json: &str, key: &str) -> String {
    let v = json_value(json, key);
    let mut chars = v[1..].chars();
    let mut out = String::new();
    let mut pending_high: Option<u32> = None;
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next().unwrap() {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let u = u32::from_str_radix(&hex, 16).unwrap();
                    if (0xD800..0xDC00).contains(&u) {
                        pending_high = Some(u);
                    } else if let Some(h) = pending_high.take() {
                        out.push(char::from_u32(0x10000 + ((h - 0xD800) << 10) + (u - 0xDC00)).unwrap());
                    } else {
                        out.push(char::from_u32(u).unwrap());
                    }
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    out
}

struct Case {
    dir: PathBuf,
    json: String,
    atol: f32,
    rtol: f32,
}

impl Case {
    fn new(dir: &Path) -> Case {
        let json = std::fs::read_to_string(dir.join("case.json")).unwrap();
        let (atol, rtol) = (json_f32(&json, "atol"), json_f32(&json, "rtol"));
        Case { dir: dir.to_path_buf(), json, atol, rtol }
    }

    fn model(&self) -> PathBuf {
        self.dir.join(json_string(&self.json, "model"))
    }

    fn input(&self, name: &str) -> Option<(Vec<i64>, Vec<u8>)> {
        let path = self.dir.join("inputs.safetensors");
        let head = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(head[..8].try_into().unwrap()) as usize;
        if !std::str::from_utf8(&head[8..8 + n]).unwrap().contains(&format!("\"{}\"", name)) {
            return None;
        }
        let (_, shape, bytes) = common::read(&path, name);
        Some((shape, bytes))
    }

    fn expected(&self, name: &str) -> (Vec<i64>, Vec<u8>) {
        let (_, shape, bytes) = common::read(&self.dir.join("expected.safetensors"), name);
        (shape, bytes)
    }

    /// |got - want| <= atol + rtol * |want| elementwise, shapes equal.
    #[track_caller]
    fn assert_close(&self, what: &str, got: &[f32], want: &[f32]) {
        common::assert_within(got, want, (self.atol, self.rtol), &format!("{} of {}", what, self.dir.display()));
    }

    /// Eval the case's prompt (ids or embeds) with every position's outputs, compare logits
    /// and hidden with expected.safetensors.
    fn check_logits(&self, s: &mut Session, embed_width: usize) {
        let (lshape, want_logits) = self.expected("logits");
        let (hshape, want_hidden) = self.expected("hidden");
        if let Some((_, ids)) = self.input("ids") {
            s.eval(&Batch::tokens(&common::i32s(&ids)).output(OutputMode::All)).unwrap();
        } else {
            let (shape, rows) = self.input("embeds").unwrap();
            assert_eq!(shape[1] as usize, embed_width);
            s.eval(&Batch::embeds(&common::f32s(&rows)).output(OutputMode::All)).unwrap();
        }
        assert_eq!(s.n_past() as i64, lshape[0]);
        assert_eq!(s.logits().unwrap().len() as i64, lshape[0] * lshape[1]);
        assert_eq!(s.hidden().unwrap().len() as i64, hshape[0] * hshape[1]);
        self.assert_close("logits", s.logits().unwrap(), &common::f32s(&want_logits));
        self.assert_close("hidden", s.hidden().unwrap(), &common::f32s(&want_hidden));
    }
}

#[test]
fn model_facts_and_the_lent_tokenizer() {
    let ctx = cpu();
    let bb = Backbone::new(&ctx, model("llama-a"), None).unwrap();
    assert_eq!((bb.n_vocab(), bb.n_embd(), bb.n_layer(), bb.n_ctx()), (1000, 64, 2, 2048));
    let ng = Backbone::new(&ctx, model("nextgpt-a"), None).unwrap();
    assert_eq!((ng.n_vocab(), ng.n_embd(), ng.n_layer(), ng.n_ctx()), (1038, 128, 3, 2048));
    // sessions: 0 = the backbone's n_ctx; more than it is refused
    assert_eq!(bb.session(0).unwrap().n_ctx(), 2048);
    assert_eq!(bb.session(32).unwrap().n_ctx(), 32);
    expect_err(bb.session(4096).map(|_| ()), INVALID, "n_ctx 4096");

    // the lent tokenizer encodes the golden tokenizer cases of its model (tok-a / tok-a-nextgpt
    // have the same tokenizer.model; nextgpt-a has the added tokens)
    let (tok, ngtok) = (bb.tokenizer().expect("llama-a has a tokenizer"), ng.tokenizer().unwrap());
    assert_eq!((tok.vocab_size(), ngtok.vocab_size()), (1000, 1038));
    let mut n = 0;
    for dir in cases("llm/tokenizer.encode") {
        let c = Case::new(&dir);
        let t = match c.model().file_name().unwrap().to_str().unwrap() {
            "tok-a" => &tok,
            "tok-a-nextgpt" => &ngtok,
            _ => continue,
        };
        let text = json_string(&c.json, "text");
        let add_bos = json_value(&c.json, "add_bos").starts_with("true");
        let want = common::i32s(&c.expected("ids").1);
        assert_eq!(t.encode(&text, add_bos).unwrap(), want, "{}", dir.display());
        // the same as the standalone tokenizer of the golden folder
        assert_eq!(nextgpt::Tokenizer::new(c.model()).unwrap().encode(&text, add_bos).unwrap(), want);
        n += 1;
    }
    assert!(n >= 2, "no tokenizer.encode case on tok-a");
    assert_eq!(ngtok.piece_to_id("[IMG0]"), Some(1002));
    assert_eq!(tok.piece_to_id("[IMG0]"), None);
}

#[test]
fn embed_tokens_rows_are_what_eval_reads() {
    let ctx = cpu();
    let bb = Backbone::new(&ctx, model("nextgpt-a"), None).unwrap();
    let c = Case::new(&common::golden().join("llm/llama.logits/nextgpt-a_signals"));
    let ids = common::i32s(&c.input("ids").unwrap().1);
    let rows = bb.embed_tokens(&ids).unwrap();
    assert_eq!(rows.len(), ids.len() * 128);
    assert!(bb.embed_tokens(&[]).unwrap().is_empty());
    // the rows fed as embeddings give the golden logits of the ids
    let mut s = bb.session(64).unwrap();
    c.check_logits(&mut s, 128);
    let by_ids = s.logits().unwrap().to_vec();
    s.reset().unwrap();
    s.eval(&Batch::embeds(&rows).output(OutputMode::All)).unwrap();
    c.assert_close("logits from embed_tokens rows", s.logits().unwrap(), &by_ids);
    // a mixed batch: every other position an embedding row (the others' rows are ignored: zeros)
    let is_embed: Vec<bool> = (0..ids.len()).map(|i| i % 2 == 0).collect();
    let mut sparse = rows.clone();
    let mut bad_ids = ids.clone();
    for (i, &e) in is_embed.iter().enumerate() {
        if e {
            bad_ids[i] = 0; // ignored: the row is read
        } else {
            sparse[i * 128..(i + 1) * 128].fill(0.0);
        }
    }
    s.reset().unwrap();
    s.eval(&Batch::mixed(&bad_ids, &sparse, &is_embed).output(OutputMode::All)).unwrap();
    c.assert_close("logits of a mixed batch", s.logits().unwrap(), &by_ids);
    // an id outside the vocabulary
    expect_err(bb.embed_tokens(&[5, 1038]), INVALID, "outside the vocabulary");
    expect_err(bb.embed_tokens(&[-1]), INVALID, "token id -1");
}

#[test]
fn eval_matches_golden_logits() {
    let ctx = cpu();
    for stage in ["llm/llama.logits", "llm/llama.logits_embeds"] {
        for dir in cases(stage) {
            let c = Case::new(&dir);
            let bb = Backbone::new(&ctx, c.model(), None).unwrap();
            let mut s = bb.session(0).unwrap();
            c.check_logits(&mut s, bb.n_embd() as usize);
            // OutputMode::Last (the default): the last row of All's, after a rewind
            let (v, h) = (bb.n_vocab() as usize, bb.n_embd() as usize);
            let all = (s.logits().unwrap().to_vec(), s.hidden().unwrap().to_vec());
            let n = s.n_past() as usize;
            s.truncate(0).unwrap();
            if let Some((_, ids)) = c.input("ids") {
                s.eval(&Batch::tokens(&common::i32s(&ids))).unwrap();
            } else {
                s.eval(&Batch::embeds(&common::f32s(&c.input("embeds").unwrap().1))).unwrap();
            }
            c.assert_close("last logits", s.logits().unwrap(), &all.0[(n - 1) * v..]);
            c.assert_close("last hidden", s.hidden().unwrap(), &all.1[(n - 1) * h..]);
        }
    }
}

#[test]
fn delta_with_lora_matches_golden() {
    let ctx = cpu();
    for dir in cases("llm/llama.lora") {
        let c = Case::new(&dir);
        let delta = dir.join(json_string(&c.json, "delta"));
        let bb = Backbone::new(&ctx, c.model(), Some(&delta)).unwrap();
        assert_eq!(bb.n_vocab(), 1038); // V + the 38 added tokens
        assert_eq!(bb.tokenizer().unwrap().piece_to_id("<Img>"), Some(1000));
        let mut s = bb.session(64).unwrap();
        c.check_logits(&mut s, bb.n_embd() as usize);
    }
}

#[test]
fn generate_greedy_matches_golden() {
    let ctx = cpu();
    for dir in cases("llm/llama.generate_greedy") {
        let c = Case::new(&dir);
        let bb = Backbone::new(&ctx, c.model(), None).unwrap();
        let mut s = bb.session(128).unwrap();
        let prompt = |s: &mut Session| match c.input("ids") {
            Some((_, ids)) => s.eval(&Batch::tokens(&common::i32s(&ids))).unwrap(),
            None => s.eval(&Batch::embeds(&common::f32s(&c.input("embeds").unwrap().1))).unwrap(),
        };
        prompt(&mut s);
        let n_prompt = s.n_past();
        let stop_ids = json_i32s(&c.json, "stop_ids");
        let max = json_f32(&c.json, "max_new_tokens") as i32;
        let p = GenerateParams { max_new_tokens: Some(max), stop_ids: stop_ids.clone(), with_hidden: true,
                                 ..Default::default() };
        let mut seen = Vec::new();
        let g = s.generate_greedy(&p, Some(&mut |t| { seen.push(t); true })).unwrap();
        let want_ids = common::i32s(&c.expected("ids").1);
        assert_eq!(g.ids, want_ids, "{}", dir.display());
        assert_eq!(seen, want_ids);
        c.assert_close("hidden", &g.hidden, &common::f32s(&c.expected("hidden").1));
        let stopped = stop_ids.contains(want_ids.last().unwrap());
        assert_eq!(g.stop_reason, if stopped { sys::NGPT_STOP_ID } else { sys::NGPT_STOP_MAX_TOKENS });
        // every token but the last was fed back
        assert_eq!(s.n_past(), n_prompt + g.ids.len() as i32 - 1);
        // generate_greedy ignores sampling; generate at temperature 0 (its default) is greedy too
        for greedy in [true, false] {
            s.truncate(0).unwrap();
            prompt(&mut s);
            let hot = GenerateParams { temperature: Some(if greedy { 1.5 } else { 0.0 }), top_k: Some(3), ..p.clone() };
            let again = if greedy { s.generate_greedy(&hot, None) } else { s.generate(&hot, None) }.unwrap();
            assert_eq!(again.ids, want_ids);
        }
        // without hidden: none copied
        s.truncate(0).unwrap();
        prompt(&mut s);
        let g = s.generate_greedy(&GenerateParams { with_hidden: false, ..p.clone() }, None).unwrap();
        assert_eq!((g.ids, g.hidden.len()), (want_ids, 0));
    }
}

#[test]
fn sampling_cancel_panic_and_context_full() {
    let ctx = cpu();
    let bb = Backbone::new(&ctx, model("nextgpt-a"), None).unwrap();
    let prompt: Vec<i32> = bb.tokenizer().unwrap().encode("### Human: hello\n### Assistant:", true).unwrap();
    let mut s = bb.session(64).unwrap();
    // no logits to start from
    expect_err(s.generate(&GenerateParams::default(), None), INVALID, "no logits to start from");
    s.eval(&Batch::tokens(&prompt)).unwrap();
    let n0 = s.n_past();
    // seeded sampling is reproducible; the default max_new_tokens is 16
    let hot = GenerateParams { temperature: Some(1.0), top_p: Some(0.9), repetition_penalty: Some(1.2), seed: Some(7),
                               ..Default::default() };
    let a = s.generate(&hot, None).unwrap();
    assert_eq!((a.ids.len(), a.stop_reason, a.hidden.len()), (16, sys::NGPT_STOP_MAX_TOKENS, 0));
    assert!(a.ids.iter().all(|&t| (0..1038).contains(&t)));
    s.truncate(n0 - 1).unwrap();
    s.eval(&Batch::tokens(&prompt[prompt.len() - 1..])).unwrap();
    assert_eq!(s.generate(&hot, None).unwrap().ids, a.ids);
    // the callback stops after 3 tokens: the third is the last id
    s.truncate(n0 - 1).unwrap();
    s.eval(&Batch::tokens(&prompt[prompt.len() - 1..])).unwrap();
    let mut k = 0;
    let cut = s.generate(&hot, Some(&mut |_| { k += 1; k < 3 })).unwrap();
    assert_eq!((cut.ids.as_slice(), cut.stop_reason), (&a.ids[..3], sys::NGPT_STOP_CANCELLED));
    assert_eq!(s.n_past(), n0 + 2);
    // a panic in the callback stops generation and comes out of generate once the library returned
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = s.generate(&hot, Some(&mut |_| panic!("in on_token")));
    }));
    assert_eq!(caught.err().unwrap().downcast_ref::<&str>(), Some(&"in on_token"));
    s.truncate(n0).unwrap();
    s.eval(&Batch::tokens(&a.ids[..1])).unwrap(); // the session is still usable
    // a stop id ends it, kept as the last id
    s.truncate(n0 - 1).unwrap();
    s.eval(&Batch::tokens(&prompt[prompt.len() - 1..])).unwrap();
    let stop = GenerateParams { stop_ids: vec![a.ids[4]], ..hot.clone() };
    let g = s.generate(&stop, None).unwrap();
    let first = a.ids.iter().position(|&t| t == a.ids[4]).unwrap();
    assert_eq!((g.ids.as_slice(), g.stop_reason), (&a.ids[..first + 1], sys::NGPT_STOP_ID));
    // max_new_tokens 0: nothing; negative: refused
    let none = s.generate(&GenerateParams { max_new_tokens: Some(0), ..Default::default() }, None).unwrap();
    assert!(none.ids.is_empty());
    expect_err(s.generate(&GenerateParams { max_new_tokens: Some(-1), ..Default::default() }, None), INVALID,
           "max_new_tokens -1");
    expect_err(s.generate(&GenerateParams { top_p: Some(0.0), ..hot.clone() }, None), INVALID, "top_p 0 must be in (0, 1]");
    expect_err(s.generate(&GenerateParams { top_p: Some(1.5), ..hot.clone() }, None), INVALID, "top_p 1.5 must be in (0, 1]");
    expect_err(s.generate(&GenerateParams { top_k: Some(-2), ..hot.clone() }, None), INVALID, "top_k -2 must be >= 0");

    // reaching n_ctx ends the generation with what it chose: one token per free position + 1
    let mut small = bb.session(prompt.len() as i32 + 3).unwrap();
    small.eval(&Batch::tokens(&prompt)).unwrap();
    let full = small.generate_greedy(&GenerateParams { with_hidden: true, ..Default::default() }, None).unwrap();
    assert_eq!((full.ids.len(), full.stop_reason), (4, sys::NGPT_STOP_CONTEXT_FULL));
    assert_eq!((full.hidden.len(), small.n_past()), (4 * 128, small.n_ctx()));
}

#[test]
fn eval_and_truncate_errors() {
    let ctx = cpu();
    let bb = Backbone::new(&ctx, model("llama-a"), None).unwrap();
    let mut s = bb.session(8).unwrap();
    // no outputs before any eval
    expect_err(s.logits(), INVALID, "no logits");
    expect_err(s.hidden(), INVALID, "no hidden states");
    // past n_ctx: refused before touching the cache
    expect_err(s.eval(&Batch::tokens(&[1; 9])), INVALID, "exceed the context of 8");
    assert_eq!(s.n_past(), 0);
    s.eval(&Batch::tokens(&[1, 15, 16, 17, 18, 19])).unwrap();
    expect_err(s.eval(&Batch::tokens(&[20, 21, 22])), INVALID, "3 positions after 6 would exceed the context of 8");
    assert_eq!(s.n_past(), 6);
    assert_eq!(s.logits().unwrap().len(), 1000); // the earlier eval's outputs are kept
    // a wrong embedding width, a mixed batch whose lengths disagree (checked here)
    expect_err(s.eval(&Batch::embeds(&[0.5; 65])), INVALID, "n_embd 64");
    expect_err(s.eval(&Batch::mixed(&[1, 2], &[0.0; 128], &[true])), INVALID, "2 is_embed flags");
    expect_err(s.eval(&Batch::mixed(&[1, 2], &[0.0; 64], &[true, false])), INVALID, "[2, n_embd 64] = 128");
    // the library's checks: an empty batch, an id outside the vocabulary
    expect_err(s.eval(&Batch::tokens(&[])), INVALID, "a batch of 0 positions");
    expect_err(s.eval(&Batch::tokens(&[1000])), INVALID, "outside the vocabulary");
    assert_eq!(s.n_past(), 6);
    // OutputMode::None fills the cache only
    s.eval(&Batch::tokens(&[20]).output(OutputMode::None)).unwrap();
    assert_eq!(s.n_past(), 7);
    expect_err(s.logits(), INVALID, "OutputMode::None");
    // truncate: beyond n_past / negative refused; it drops the outputs
    s.eval(&Batch::tokens(&[21])).unwrap();
    expect_err(s.truncate(9), INVALID, "n_past 9 outside [0, 8]");
    expect_err(s.truncate(-1), INVALID, "outside [0, 8]");
    s.truncate(3).unwrap();
    assert_eq!(s.n_past(), 3);
    expect_err(s.logits(), INVALID, "truncated");
    // the rewound cache continues as if fresh: positions 3.. again give the one-shot logits
    s.eval(&Batch::tokens(&[17, 18, 19])).unwrap();
    let rewound = s.logits().unwrap().to_vec();
    s.reset().unwrap();
    assert_eq!(s.n_past(), 0);
    s.eval(&Batch::tokens(&[1, 15, 16, 17, 18, 19])).unwrap();
    let d = common::max_abs_diff(&rewound, s.logits().unwrap());
    assert!(d < 1e-4, "rewound logits differ by {}", d);
}

#[test]
fn turn_ids_prompt_timings_and_params() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let bb = Backbone::new(&ctx, tiny.join("llm"), None).unwrap();
    let tok = bb.tokenizer().unwrap();
    let mut s = bb.session(256).unwrap();
    let greedy = TurnParams { temperature: Some(0.0), max_new_tokens: Some(12), ..Default::default() };
    let r = s.turn("hello there", &[], &greedy).unwrap();
    assert!(r.n_prompt > 0 && !r.ids.is_empty());
    assert!(r.prompt_ms > 0.0 && r.generate_ms > 0.0, "{} {}", r.prompt_ms, r.generate_ms);
    // the prompt, then the answer's ids (all but a stop token are in the cache)
    let stop_tail = matches!(r.stop_reason, sys::NGPT_STOP_ID | sys::NGPT_STOP_STRING) as i32;
    assert!(s.n_past() <= r.n_prompt + r.ids.len() as i32 - stop_tail, "{} {} {}", s.n_past(), r.n_prompt, r.ids.len());
    assert!(s.n_past() > r.n_prompt);
    // the ids decode to the text through the lent tokenizer (here: 12 text tokens, all cached)
    if r.stop_reason == sys::NGPT_STOP_MAX_TOKENS && r.groups.is_empty() {
        assert_eq!(tok.decode(&r.ids, true).unwrap(), r.text);
        assert_eq!(s.n_past(), r.n_prompt + r.ids.len() as i32);
    } else {
        assert!(tok.decode(&r.ids, true).unwrap().contains(r.text.trim()), "{:?} vs {:?}", r.ids, r.text);
    }
    // the same turn by hand: the first sampled id is the greedy argmax after the prompt
    let mut again = bb.session(256).unwrap();
    let first = again.turn("hello there", &[], &TurnParams { max_new_tokens: Some(1), ..greedy.clone() }).unwrap();
    assert_eq!(first.ids[0], r.ids[0]);
    assert_eq!(first.n_prompt, r.n_prompt);

    // no stop strings and no stop ids: only max_new_tokens ends it
    let mut s2 = bb.session(256).unwrap();
    let open = TurnParams { stop_strings: Some(vec![]), stop_ids: Some(vec![]), top_k: Some(5), repetition_penalty: Some(1.3),
                            max_new_tokens: Some(20), seed: Some(3), ..Default::default() };
    let r2 = s2.turn("count", &[], &open).unwrap();
    assert_eq!(r2.stop_reason, sys::NGPT_STOP_MAX_TOKENS);
    assert!(r2.ids.len() >= 20);
    // a stop id: the first sampled id of that answer ends a replay at once
    s2.reset().unwrap();
    let stop_first = TurnParams { stop_ids: Some(vec![r2.ids[0]]), ..open.clone() };
    let r3 = s2.turn("count", &[], &stop_first).unwrap();
    assert_eq!((r3.stop_reason, r3.ids.as_slice(), r3.text.as_str()), (sys::NGPT_STOP_ID, &r2.ids[..1], ""));
    // a system text lengthens the first prompt
    let mut s3 = bb.session(256).unwrap();
    let sys_turn = s3.turn("count", &[], &TurnParams { system: Some("Be brief.".into()), ..open.clone() }).unwrap();
    assert!(sys_turn.n_prompt > r2.n_prompt, "{} vs {}", sys_turn.n_prompt, r2.n_prompt);
    // the cancel flag set beforehand: nothing sampled
    s3.reset().unwrap();
    let flag = nextgpt::CancelFlag::new();
    flag.cancel();
    let c = s3.turn("count", &[], &TurnParams { cancel: Some(flag.clone()), ..open.clone() }).unwrap();
    assert_eq!((c.stop_reason, c.text.as_str()), (sys::NGPT_STOP_CANCELLED, ""));
    // the caller's own atomic, any nonzero value; cleared, the same flag lets a turn run
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    let mine = nextgpt::CancelFlag::from(shutdown.clone());
    assert!(std::sync::Arc::ptr_eq(mine.atomic(), &shutdown));
    shutdown.store(7, std::sync::atomic::Ordering::SeqCst);
    assert!(mine.is_cancelled());
    s3.reset().unwrap();
    let c = s3.turn("count", &[], &TurnParams { cancel: Some(mine.clone()), ..open.clone() }).unwrap();
    assert_eq!((c.stop_reason, c.text.as_str()), (sys::NGPT_STOP_CANCELLED, ""));
    mine.reset();
    assert_eq!(shutdown.load(std::sync::atomic::Ordering::SeqCst), 0);
    s3.reset().unwrap();
    let c = s3.turn("count", &[], &TurnParams { cancel: Some(mine), ..open.clone() }).unwrap();
    assert_ne!(c.stop_reason, sys::NGPT_STOP_CANCELLED);
    // max_groups and suppress_strays go through (an image group allowed twice)
    s3.reset().unwrap();
    let groups = TurnParams { max_groups: vec![(Modality::Image, 2)], suppress_strays: Some(true), require: vec![Modality::Image],
                              ..open.clone() };
    let g = s3.turn("draw", &[], &groups).unwrap();
    assert!(g.groups.iter().any(|x| x.modality == Modality::Image));
    // bad params
    expect_err(s3.turn("x", &[], &TurnParams { max_groups: vec![(Modality::Text, 1)], ..Default::default() }), INVALID,
           "Modality::Text");
    expect_err(s3.turn("x", &[], &TurnParams { max_groups: vec![(Modality::Audio, -1)], ..Default::default() }), INVALID,
           "max_groups[2] -1 < 0");
    expect_err(s3.turn("x", &[], &TurnParams { stop_strings: Some(vec!["".into()]), ..Default::default() }), INVALID,
           "stop_strings[0] is NULL or empty");
    expect_err(s3.turn("x", &[], &TurnParams { stop_strings: Some(vec!["a\0b".into()]), ..Default::default() }), INVALID,
           "NUL");
    expect_err(s3.turn("x", &[], &TurnParams { system: Some("a\0".into()), ..Default::default() }), INVALID, "NUL");
}

#[test]
fn add_assistant_media_rewrites_the_answer() {
    let Some(tiny) = common::tiny() else { return };
    let ctx = cpu();
    let bb = Backbone::new(&ctx, tiny.join("llm"), None).unwrap();
    let h = bb.n_embd() as usize;
    let soft: Vec<f32> = (0..h).map(|i| (i as f32 * 0.1).sin()).collect();
    let mut s = bb.session(256).unwrap();
    // only right after a turn
    expect_err(s.add_assistant_media(&[(Modality::Image, &soft)]), INVALID, "only right after ngpt_backbone_turn");
    let p = TurnParams { temperature: Some(0.0), max_new_tokens: Some(8), require: vec![Modality::Image], ..Default::default() };
    let r = s.turn("draw a cat", &[], &p).unwrap();
    assert!(r.groups.iter().any(|g| g.modality == Modality::Image && g.n_tokens == 4));
    let after_turn = s.n_past();
    let answer_start = r.n_prompt; // the first turn starts at 0
    // a wrong width (checked here), no media (the library)
    expect_err(s.add_assistant_media(&[(Modality::Image, &soft[..h - 1])]), INVALID, "n_embd 128");
    expect_err(s.add_assistant_media(&[]), INVALID, "n_media is 0");
    s.add_assistant_media(&[(Modality::Image, &soft)]).unwrap();
    // "### Assistant:" <Img> soft </Img> [BOS] text: the 4 group tokens left, <Img> soft </Img> [BOS] came in
    let text_ids = bb.tokenizer().unwrap().encode(&r.text, false).unwrap();
    assert_eq!(s.n_past(), answer_start + 4 + text_ids.len() as i32, "after the turn: {}", after_turn);
    // once per answer
    expect_err(s.add_assistant_media(&[(Modality::Image, &soft)]), INVALID, "once per answer");
    // the conversation goes on after the re-written answer
    let before = s.n_past();
    let r2 = s.turn("and a dog", &[], &TurnParams { max_new_tokens: Some(4), ..p.clone() }).unwrap();
    assert!(r2.n_prompt > 0 && s.n_past() > before + r2.n_prompt);
    // a truncate back into the prompt leaves no answer to re-write
    s.truncate(before + r2.n_prompt - 1).unwrap();
    expect_err(s.add_assistant_media(&[(Modality::Image, &soft)]), INVALID, "only right after");
}
