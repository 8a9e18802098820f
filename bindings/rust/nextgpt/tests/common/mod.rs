//! What the integration tests share: where the golden cases and the tiny bundle are, and a
//! reader of the golden safetensors files (enough of the format for them: a JSON header of
//! name -> {dtype, shape, data_offsets}, then the data).
#![allow(dead_code)] // each test file uses part of it
use std::path::{Path, PathBuf};

/// The shared golden cases (NGPT_GOLDEN_DIR, else ../shared/golden beside the source tree).
pub fn golden() -> PathBuf {
    match std::env::var_os("NGPT_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/golden"),
    }
}

/// The embedded tiny bundle (NGPT_TINY_BUNDLE, set by tests/bindings/test_rust.sh); None (the
/// caller skips, saying so) when unset.
pub fn tiny() -> Option<PathBuf> {
    let t = std::env::var_os("NGPT_TINY_BUNDLE").map(PathBuf::from);
    if t.is_none() {
        eprintln!("NGPT_TINY_BUNDLE is not set: skipped");
    }
    t
}

/// The project's sample photo (data/tiny/cat.jpg).
pub fn cat_jpg() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../data/tiny/cat.jpg")
}

/// A context on the CPU.
pub fn cpu() -> nextgpt::Context {
    nextgpt::Context::new(nextgpt::Device::Cpu).unwrap()
}

/// The cases of a golden stage ("vision/unet2d"): its folders holding a case.json, sorted.
pub fn cases(stage: &str) -> Vec<PathBuf> {
    let dir = golden().join(stage);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {}", dir.display(), e))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no case in {}", dir.display());
    v
}

/// The text of case.json after `"key":` (the first occurrence: "atol", "rtol", "model" or a
/// key of "params", which no other key shares).
pub fn case_field(case: &Path, key: &str) -> String {
    let json = std::fs::read_to_string(case.join("case.json")).unwrap();
    let at = json.find(&format!("\"{}\":", key));
    let at = at.unwrap_or_else(|| panic!("{} not in {}/case.json", key, case.display()));
    json[at + key.len() + 3..].trim_start().to_string()
}

/// A number of case.json ("atol", "rtol", "num_inference_steps", ...).
pub fn case_num(case: &Path, key: &str) -> f64 {
    let f = case_field(case, key);
    let end = f.find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c))).unwrap_or(f.len());
    f[..end].parse().unwrap_or_else(|e| panic!("{} of {}: {}", key, case.display(), e))
}

/// A case's tolerance: (atol, rtol).
pub fn tolerance(case: &Path) -> (f32, f32) {
    (case_num(case, "atol") as f32, case_num(case, "rtol") as f32)
}

/// |got - want| <= atol + rtol |want| everywhere (FORMAT.md), same length.
#[track_caller]
pub fn assert_within(got: &[f32], want: &[f32], (atol, rtol): (f32, f32), what: &str) {
    assert_eq!(got.len(), want.len(), "{}: lengths", what);
    let bad = got.iter().zip(want).filter(|&(o, e)| !((o - e).abs() <= atol + rtol * e.abs())).count();
    assert_eq!(bad, 0, "{}: {} of {} values beyond atol {} + rtol {} (max |diff| {})", what, bad, want.len(), atol,
               rtol, max_abs_diff(got, want));
}

/// The error of a call that must fail: its status and a needle of its message.
#[track_caller]
pub fn expect_err<T>(r: nextgpt::Result<T>, status: i32, needle: &str) -> nextgpt::Error {
    match r {
        Ok(_) => panic!("expected status {} ({:?}), got Ok", status, needle),
        Err(e) => {
            assert_error(&e, status, needle);
            e
        }
    }
}

/// An error's status and a needle of its message.
#[track_caller]
pub fn assert_error(e: &nextgpt::Error, status: i32, needle: &str) {
    assert_eq!(e.status, status, "{}", e);
    assert!(e.message.contains(needle), "{:?} does not contain {:?}", e.message, needle);
}

/// Tensor `name` of a safetensors file: its dtype ("F32", "I64", ...), shape and bytes.
pub fn read(path: &Path, name: &str) -> (String, Vec<i64>, Vec<u8>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {}", path.display(), e));
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let head = std::str::from_utf8(&b[8..8 + n]).unwrap().replace(' ', "");
    let at = head.find(&format!("\"{}\":{{", name)).unwrap_or_else(|| panic!("{} not in {}", name, path.display()));
    let entry = &head[at..];
    let entry = &entry[..entry.find('}').unwrap()];
    let field = |key: &str, end: char| entry.split(key).nth(1).unwrap().split(end).next().unwrap().to_string();
    let dtype = field("\"dtype\":\"", '"');
    let shape = field("\"shape\":[", ']');
    let shape: Vec<i64> = shape.split(',').filter(|x| !x.is_empty()).map(|x| x.parse().unwrap()).collect();
    let v: Vec<usize> = field("\"data_offsets\":[", ']').split(',').map(|x| x.parse().unwrap()).collect();
    (dtype, shape, b[8 + n + v[0]..8 + n + v[1]].to_vec())
}

/// Tensor `name` of a safetensors file: dtype and bytes.
pub fn tensor(path: &Path, name: &str) -> (String, Vec<u8>) {
    let (dtype, _, bytes) = read(path, name);
    (dtype, bytes)
}

/// Tensor `name` of a safetensors file as a library tensor (F32, I64, U8, ... as stored).
pub fn load(path: &Path, name: &str) -> nextgpt::Tensor {
    let (dtype, shape, bytes) = read(path, name);
    let dt = match dtype.as_str() {
        "F32" => nextgpt::sys::NGPT_DTYPE_F32,
        "F16" => nextgpt::sys::NGPT_DTYPE_F16,
        "BF16" => nextgpt::sys::NGPT_DTYPE_BF16,
        "I64" => nextgpt::sys::NGPT_DTYPE_I64,
        "I32" => nextgpt::sys::NGPT_DTYPE_I32,
        "U8" => nextgpt::sys::NGPT_DTYPE_U8,
        "BOOL" => nextgpt::sys::NGPT_DTYPE_BOOL,
        other => panic!("{}: dtype {} of {} not handled", path.display(), other, name),
    };
    nextgpt::Tensor::from_bytes(dt, &shape, &bytes).unwrap()
}

pub fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()
}

pub fn i64s(b: &[u8]) -> Vec<i64> {
    b.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

pub fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// The largest |a - b| (NaN anywhere: infinity, so a comparison with it fails).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| if x.is_nan() || y.is_nan() { f32::INFINITY } else { (x - y).abs() }).fold(0.0, f32::max)
}
