//! Encode an image to its ImageBind embedding.
//!
//!     cd bindings/rust && NGPT_LIB_DIR=$PWD/../../build/lib LD_LIBRARY_PATH=$PWD/../../build/lib \
//!         cargo run --example embed_image -- ../../build/tools/tiny/imagebind ../../data/tiny/cat.jpg
//!
//! IMAGEBIND is ImageBind's checkpoint: the official imagebind_huge.pth, a .safetensors, or a
//! folder with config.json + weights (the tiny bundle's imagebind/). The embedding is what
//! NExT-GPT feeds its input projector: 1024 floats for imagebind_huge (32 for the tiny test
//! model), L2-normalised, so the program prints its length and norm, then the values.
use std::process::ExitCode;

fn run(imagebind: &str, image_path: &str) -> Result<(), nextgpt::Error> {
    // A context picks the device (CUDA when usable, else the CPU) and owns the thread pool. The
    // handles made from it borrow it, so the compiler drops them first.
    let ctx = nextgpt::Context::new(nextgpt::Device::Auto)?;
    // Only the vision branch: ImageBind's audio branch is not needed for a picture.
    let mut encoder = nextgpt::Encoder::new(&ctx, imagebind, nextgpt::sys::NGPT_ENCODER_IMAGE)?;
    // Decoding and ImageBind's preprocessing (resize 224, crop, normalise) happen inside
    // encode_image, exactly as NExT-GPT's Python pipeline does them.
    let image = nextgpt::Image::load(image_path)?;
    let embedding = encoder.encode_image(&image)?; // F32 [1, D]: one row per image
    let v = embedding.as_f32().expect("the encoder returns F32");
    let norm = v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt();
    println!("image: {} ({}x{})", image_path, image.width(), image.height());
    println!("embedding: {} floats, L2 norm {:.6}", v.len(), norm);
    println!("{}", v.iter().map(|x| format!("{:.6}", x)).collect::<Vec<_>>().join(" "));
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: embed_image IMAGEBIND IMAGE");
        return ExitCode::from(2);
    }
    match run(&args[1], &args[2]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // e.status (ngpt_status) and e.message (ngpt_last_error(): what failed and where)
            eprintln!("embed_image: {}", e);
            ExitCode::FAILURE
        }
    }
}
