//! Picture and text in, picture out: Stable Diffusion's image-to-image, the image decoder alone.
//!
//!     cd bindings/rust && NGPT_LIB_DIR=$PWD/../../build/lib LD_LIBRARY_PATH=$PWD/../../build/lib \
//!         cargo run --example edit_image -- ../../build/tools/tiny/decoders/image ../../data/tiny/cat.jpg \
//!         "in the snow" out.png
//!
//! Arguments: IMAGE_DECODER PICTURE PROMPT OUT.png [STEPS] [STRENGTH]. The picture becomes latents
//! as diffusers' img2img pipeline makes them (each side cut down to a multiple of 8, the VAE
//! encoder, a sample of its distribution, x the scaling factor); the prompt goes through the
//! decoder's own text encoder; then the last STRENGTH of the schedule (default 0.8) runs from those
//! latents, noised to where it starts. The same settings give the same bytes as `nextgpt generate
//! --model DECODER --init-image PICTURE --seed 1`. With the tiny test bundle the picture is noise.
use std::process::ExitCode;

use nextgpt::{DecodeInputs, DecodeParams, Decoder, Image, ImageFormat};

fn run(decoder: &str, picture: &str, prompt: &str, out_path: &str, steps: i32, strength: f64)
       -> Result<(), Box<dyn std::error::Error>> {
    let ctx = nextgpt::Context::new(nextgpt::Device::Auto)?;
    let mut dec = Decoder::new(&ctx, decoder)?;
    let picture = Image::load(picture)?;
    // The VAE's sample draws its noise from seed 2, the denoising from seed 1: two draws.
    let init = dec.image_latents(&picture, Some(2))?;
    let cond = dec.encode_text(prompt)?;
    // steps 0: the decoder's default (50); the size comes from the init latents
    let params = DecodeParams { steps, seed: 1, strength: Some(strength), ..Default::default() };
    // uncond None: the decoder's text encoder on "", the pipeline's negative prompt
    let inputs = DecodeInputs { init_latents: Some(&init), ..Default::default() };
    let (images, _) = dec.generate_with(&cond, &params, inputs)?; // F32 [1, H, W, 3] in [0, 1]
    let result = Image::from_tensor(&images)?;
    result.save(out_path, ImageFormat::Auto, 0, 0)?;
    println!("wrote {} ({}x{}, from {}x{})", out_path, result.width(), result.height(), picture.width(), picture.height());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 || args.len() > 7 {
        eprintln!("usage: edit_image IMAGE_DECODER PICTURE PROMPT OUT.png [STEPS] [STRENGTH]");
        return ExitCode::from(2);
    }
    let steps = args.get(5).map_or(Ok(0), |s| s.parse::<i32>());
    let strength = args.get(6).map_or(Ok(0.8), |s| s.parse::<f64>()); // diffusers' default
    let (steps, strength) = match (steps, strength) {
        (Ok(n), Ok(s)) if (args.len() <= 5 || n > 0) && s > 0.0 && s <= 1.0 => (n, s),
        _ => {
            eprintln!("edit_image: STEPS must be a positive number and STRENGTH in (0, 1]");
            return ExitCode::from(2);
        }
    };
    match run(&args[1], &args[2], &args[3], &args[4], steps, strength) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edit_image: {}", e);
            ExitCode::FAILURE
        }
    }
}
