//! NExT-GPT by hand, one stage handle at a time: what `nextgpt::Pipeline` does for an image in
//! and an image out, written out so each handle's job is visible.
//!
//!     cd bindings/rust && B=../../build/tools/tiny NGPT_LIB_DIR=$PWD/../../build/lib \
//!         LD_LIBRARY_PATH=$PWD/../../build/lib cargo run --example stages -- \
//!         $B/imagebind $B/llm $B/projectors $B/decoders/image ../../data/tiny/cat.jpg out.png
//!
//! Arguments: IMAGEBIND LLM PROJECTORS IMAGE_DECODER IMAGE OUT.png [PROMPT] [STEPS].
//!
//!     image --Encoder--> embedding [1, 1024]                  ImageBind, frozen
//!           --Projector::input--> soft token [1, 4096]        llama_proj: a "word" the LLM reads
//!           --Session::turn--> answer text + [IMG0..3] signal group (hidden states)
//!           --Projector::output--> conditioning [1, 77, 768]  what SD's text encoder would give
//!           --Decoder::generate--> pixels [1, H, W, 3] --> PNG
//!
//! (Sizes are NExT-GPT's; the tiny test bundle has the same shapes scaled down.) For the official
//! release the paths are imagebind_huge.pth, the Vicuna-7B folder (pass the NExT-GPT delta to
//! `Backbone::new`), the delta pytorch_model.pt (it holds the projectors) and the
//! stable-diffusion-v1-5 folder. The defaults are the pipeline's, so the PNG is the one
//! `nextgpt run --force image` writes for the same image, prompt, steps and seed 0.
use std::process::ExitCode;

use nextgpt::{Backbone, DecodeParams, Decoder, Encoder, Image, Modality, Projector, TurnParams};

fn run(a: &[String], prompt: &str, steps: i32) -> Result<(), Box<dyn std::error::Error>> {
    let (imagebind, llm, projectors, decoder_dir, image_path, out_path) = (&a[1], &a[2], &a[3], &a[4], &a[5], &a[6]);
    // The context: device, threads and memory accounting shared by every handle below (they
    // borrow it, so the compiler drops them first).
    let ctx = nextgpt::Context::new(nextgpt::Device::Auto)?;

    // 1. Encoder: ImageBind's vision branch turns the picture into one embedding.
    let mut encoder = Encoder::new(&ctx, imagebind, nextgpt::sys::NGPT_ENCODER_IMAGE)?;
    let embedding = encoder.encode_image(&Image::load(image_path)?)?;
    println!("1 encoder:   {} -> embedding {:?}", image_path, embedding.shape());

    // 2. Input projector: the embedding becomes one row in the LLM's embedding space, a "soft
    //    token" spliced into the prompt between <Img> and </Img>. The same file holds the
    //    output projectors (step 4): load the input and the image output ones.
    let mut projector = Projector::new(&ctx, projectors, true, &[Modality::Image])?;
    let soft_token = projector.input(&embedding)?;
    println!("2 projector: embedding -> soft token {:?}", soft_token.shape());

    // 3. Backbone: the language model (weights, shareable) and a session (this conversation's
    //    KV cache). A turn builds NExT-GPT's prompt template around the soft token, generates
    //    the answer and returns the signal groups: the hidden states at [IMG0]..[IMG3].
    //    Requiring the image modality appends that group when the model does not start it
    //    itself. Sampling: the demo's (temperature 1, top_p 0.01, seed 0).
    let backbone = Backbone::new(&ctx, llm, None)?; // Some(delta) for the real model
    let mut session = backbone.session(512)?; // KV cache positions: enough for one short turn
    let params = TurnParams { require: vec![Modality::Image], max_new_tokens: Some(32), ..Default::default() };
    let soft_rows = soft_token.as_f32().expect("the projector returns F32");
    let turn = session.turn(prompt, &[(Modality::Image, soft_rows)], &params)?;
    println!("3 backbone:  answer \"{}\"", turn.text);
    // The image group: hidden states of its 4 positions, plus the embedding rows of
    // [IMG0]..[IMG3], the output projector's two inputs. The model may start other groups too.
    let group = turn.groups.iter().find(|g| g.modality == Modality::Image).ok_or("the turn returned no image group")?;
    println!("             image signal group: {} hidden states of {}", group.n_tokens, backbone.n_embd());

    // 4. Output projector: signal hidden states -> the decoder's conditioning, in place of the
    //    CLIP text embedding Stable Diffusion normally gets.
    let cond = projector.output(Modality::Image, &group.hidden, &group.input_embs)?;
    println!("4 projector: signal states -> conditioning {:?}", cond.shape());

    // 5. Decoder: Stable Diffusion's denoising loop on that conditioning; the decoder's own CLIP
    //    text encoder supplies the embedding of "" for classifier-free guidance, NExT-GPT's
    //    negative prompt. Defaults: 50 DDIM steps, guidance 7.5, seed 0.
    let mut decoder = Decoder::new(&ctx, decoder_dir)?;
    let pixels = decoder.generate(&cond, &DecodeParams { steps, ..Default::default() })?; // [1, H, W, 3]
    println!("5 decoder:   conditioning -> pixels {:?}", pixels.shape());

    let picture = Image::from_tensor(&pixels)?; // batch 1: the one image
    picture.save_png(out_path)?;
    println!("wrote {} ({}x{})", out_path, picture.width(), picture.height());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 7 || args.len() > 9 {
        eprintln!("usage: stages IMAGEBIND LLM PROJECTORS IMAGE_DECODER IMAGE OUT.png [PROMPT] [STEPS]");
        return ExitCode::from(2);
    }
    let prompt = args.get(7).map_or("Draw this in the snow.", |s| s.as_str());
    let steps = match args.get(8).map(|s| s.parse::<i32>()) {
        None => 0, // the decoder's default, 50
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("stages: STEPS must be a positive number");
            return ExitCode::from(2);
        }
    };
    match run(&args, prompt, steps) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // a nextgpt::Error shows its status and ngpt_last_error()'s message
            eprintln!("stages: {}", e);
            ExitCode::FAILURE
        }
    }
}
