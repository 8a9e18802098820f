//! Generates src/bindings.rs (in OUT_DIR) from include/nextgpt.h with the `bindgen` command-line
//! program (Debian's bindgen 0.60; the bindgen crate is not needed), and links libnextgpt.
//!
//! Environment:
//!   NGPT_HEADER   the header (default: ../../../include/nextgpt.h from this crate, i.e. the
//!                 source tree; else `pkg-config --variable=includedir nextgpt`/nextgpt.h)
//!   NGPT_LIB_DIR  the folder holding libnextgpt.so (default: from `pkg-config --libs nextgpt`)
//!   BINDGEN       the bindgen program (default: `bindgen` on PATH)
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(args: &[&str]) -> Option<String> {
    let out = Command::new("pkg-config").args(args).arg("nextgpt").output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    for v in ["NGPT_HEADER", "NGPT_LIB_DIR", "BINDGEN", "PKG_CONFIG_PATH"] {
        println!("cargo:rerun-if-env-changed={}", v);
    }
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let in_tree = manifest.join("../../../include/nextgpt.h");
    let header = match env::var_os("NGPT_HEADER") {
        Some(h) => PathBuf::from(h),
        None if in_tree.exists() => in_tree,
        None => match pkg_config(&["--variable=includedir"]) {
            Some(dir) => PathBuf::from(dir).join("nextgpt.h"),
            None => panic!("nextgpt.h not found: set NGPT_HEADER or install libnextgpt (pkg-config nextgpt)"),
        },
    };
    let header = header.canonicalize().unwrap_or_else(|e| panic!("{}: {}", header.display(), e));
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rustc-env=NGPT_HEADER_PATH={}", header.display());

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    let bindgen = env::var("BINDGEN").unwrap_or_else(|_| "bindgen".to_string());
    let status = Command::new(&bindgen)
        .arg(&header)
        .args(["--allowlist-function", "ngpt_.*"])
        .args(["--allowlist-type", "ngpt_.*"])
        .args(["--allowlist-var", "NGPT_.*"])
        .arg("--no-prepend-enum-name") // NGPT_OK, not ngpt_status_NGPT_OK: the prefix is in the name
        .args(["--default-enum-style", "consts"])
        .arg("--size_t-is-usize") // bindgen 0.60 defaults to u64 (later versions: usize)
        .arg("--no-doc-comments")
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{} failed on {} ({})", bindgen, header.display(), s),
        Err(e) => panic!("cannot run {}: {} (apt-get install bindgen, or set BINDGEN)", bindgen, e),
    }

    match env::var("NGPT_LIB_DIR") {
        Ok(dir) => println!("cargo:rustc-link-search=native={}", dir),
        Err(_) => {
            if let Some(libs) = pkg_config(&["--libs-only-L"]) {
                for dir in libs.split_whitespace().filter_map(|f| f.strip_prefix("-L")) {
                    println!("cargo:rustc-link-search=native={}", dir);
                }
            }
        }
    }
    println!("cargo:rustc-link-lib=dylib=nextgpt");
}
