//! Print the libnextgpt version and the backend a default context picks, through the safe
//! Rust crate (bindings/rust/nextgpt).
//!
//!     cd bindings/rust && NGPT_LIB_DIR=$PWD/../../build/lib \
//!         LD_LIBRARY_PATH=$PWD/../../build/lib cargo run --example version
fn main() -> Result<(), nextgpt::Error> {
    println!("libnextgpt {} (ABI {}, CUDA build: {})", nextgpt::version(), nextgpt::abi_version(),
             nextgpt::has_cuda_build());
    let ctx = nextgpt::Context::new(nextgpt::Device::Auto)?;
    println!("backend: {} ({})", ctx.backend_name(), ctx.device_name());
    let note = ctx.backend_note();
    if !note.is_empty() {
        println!("note: {}", note);
    }
    Ok(())
}
