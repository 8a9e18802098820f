//! Text in, picture out: NExT-GPT forced to answer with an image.
//!
//!     cd bindings/rust && NGPT_LIB_DIR=$PWD/../../build/lib LD_LIBRARY_PATH=$PWD/../../build/lib \
//!         cargo run --example generate_image -- ../../build/tools/tiny "a cat in the snow" cat.png
//!
//! Arguments: BUNDLE PROMPT OUT.png [STEPS]. NExT-GPT produces an image when its language model
//! emits the signal tokens [IMG0]..[IMG3]; whether it does depends on the prompt. `force` makes
//! the pipeline append that signal group when the model did not, so an image always comes out:
//! the group's hidden states go through the image output projector into Stable Diffusion's
//! conditioning. STEPS is the number of denoising steps (default 50, NExT-GPT's). With the tiny
//! test bundle the picture is noise.
use std::process::ExitCode;

use nextgpt::{Modality, Pipeline, PipelineTurnParams};

fn run(bundle: &str, prompt: &str, out_path: &str, steps: i32) -> Result<(), Box<dyn std::error::Error>> {
    let ctx = nextgpt::Context::new(nextgpt::Device::Auto)?;
    // Preloading the image decoder makes a load error show up here, not in the output.
    let mut pipeline = Pipeline::new(&ctx, bundle, &[Modality::Image])?;
    let params = PipelineTurnParams {
        force: vec![Modality::Image], // always answer with an image
        steps,                        // 0 = the decoder's default, 50
        seed: 1,                      // same seed, same picture
        max_new_tokens: Some(32),
        ..Default::default()
    };
    let result = pipeline.turn(prompt, &[], &params, None)?;
    println!("answer: {}", result.text);
    // One output per signal group; the model may have started other groups too. A failed output
    // (no decoder, a decoder error) does not fail the turn: its result holds the reason.
    let image = result.outputs.iter().find(|o| o.modality == Modality::Image).ok_or("no image output")?;
    let png = image.result.as_ref().map_err(|e| format!("no image: {}", e))?;
    std::fs::write(out_path, png).map_err(|e| format!("{}: {}", out_path, e))?; // an encoded PNG already
    println!("wrote {} ({}, {} bytes)", out_path, image.format, png.len());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 || args.len() > 5 {
        eprintln!("usage: generate_image BUNDLE PROMPT OUT.png [STEPS]");
        return ExitCode::from(2);
    }
    let steps = match args.get(4).map(|s| s.parse::<i32>()) {
        None => 0,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("generate_image: STEPS must be a positive number");
            return ExitCode::from(2);
        }
    };
    match run(&args[1], &args[2], &args[3], steps) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("generate_image: {}", e);
            ExitCode::FAILURE
        }
    }
}
