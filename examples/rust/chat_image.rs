//! A two-turn conversation about an image with the whole NExT-GPT pipeline.
//!
//!     cd bindings/rust && NGPT_LIB_DIR=$PWD/../../build/lib LD_LIBRARY_PATH=$PWD/../../build/lib \
//!         cargo run --example chat_image -- ../../build/tools/tiny ../../data/tiny/cat.jpg
//!
//! Arguments: BUNDLE IMAGE [QUESTION [FOLLOW_UP]]. BUNDLE is a NExT-GPT bundle folder
//! (bundle.json naming the language model, ImageBind, the projectors and the decoders; see the
//! README). The pipeline loads every part once and keeps the conversation in the language
//! model's KV cache, so the follow-up is answered with the picture and the first answer still in
//! view. The answer is streamed as it is generated. With the tiny test bundle (random weights)
//! the answers are noise.
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use nextgpt::{Modality, Pipeline, PipelineTurnParams};

/// One user turn: print the question, stream the answer.
fn ask(pipeline: &mut Pipeline, question: &str, media: &[(Modality, &Path)]) -> Result<(), nextgpt::Error> {
    print!("user: {}\nassistant: ", question);
    std::io::stdout().flush().ok();
    // NExT-GPT's demo sampling settings are the defaults; only the answer's length is capped.
    let params = PipelineTurnParams { max_new_tokens: Some(32), ..Default::default() };
    let mut stream = |piece: &str| {
        print!("{}", piece);
        std::io::stdout().flush().ok();
        true // false would cancel the turn
    };
    let result = pipeline.turn(question, media, &params, Some(&mut stream))?;
    println!();
    // The model may also answer with media (signal tokens); a chat program would save them.
    // Here they are only listed.
    for (i, out) in result.outputs.iter().enumerate() {
        match &out.result {
            Ok(bytes) => println!("(output {}: {:?}, {} bytes)", i, out.modality, bytes.len()),
            Err(e) => println!("(output {}: {:?}, {})", i, out.modality, e.message),
        }
    }
    Ok(())
}

fn run(bundle: &str, image: &str, question: &str, follow_up: &str) -> Result<(), nextgpt::Error> {
    let ctx = nextgpt::Context::new(nextgpt::Device::Auto)?;
    let mut pipeline = Pipeline::new(&ctx, bundle, &[])?;
    if pipeline.is_test_model() {
        eprintln!("chat_image: note: {} is a test model with random weights: its answers are noise", bundle);
    }
    // The image goes in by path.
    ask(&mut pipeline, question, &[(Modality::Image, Path::new(image))])?;
    ask(&mut pipeline, follow_up, &[]) // same conversation: no need to send the image again
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args.len() > 5 {
        eprintln!("usage: chat_image BUNDLE IMAGE [QUESTION [FOLLOW_UP]]");
        return ExitCode::from(2);
    }
    let question = args.get(3).map_or("What is in this picture?", |s| s.as_str());
    let follow_up = args.get(4).map_or("And what colour is it?", |s| s.as_str());
    match run(&args[1], &args[2], question, follow_up) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nchat_image: {}", e);
            ExitCode::FAILURE
        }
    }
}
