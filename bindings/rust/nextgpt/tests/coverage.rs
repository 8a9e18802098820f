//! The safe crate wraps the whole C API: every function the header declares is called from
//! `src/` (so nothing is left reachable only through the unsafe `sys` declarations).
use std::collections::BTreeSet;
use std::path::PathBuf;

#[test]
fn every_header_function_has_a_safe_wrapper() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = std::env::var_os("NGPT_HEADER").map(PathBuf::from).unwrap_or_else(|| root.join("../../../include/nextgpt.h"));
    let flat = std::fs::read_to_string(&header).unwrap_or_else(|e| panic!("{}: {}", header.display(), e)).replace('\n', " ");
    let declared: BTreeSet<String> = flat
        .split("NGPT_API")
        .skip(1)
        .filter_map(|part| {
            let head = part.split('(').next()?;
            let name = head.rsplit(|c: char| c == ' ' || c == '*').next()?.trim();
            name.starts_with("ngpt_").then(|| name.to_string())
        })
        .collect();
    assert!(declared.len() > 100, "{} functions read from {}", declared.len(), header.display());
    let mut src = String::new();
    for entry in std::fs::read_dir(root.join("src")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().map_or(false, |e| e == "rs") {
            src += &std::fs::read_to_string(&path).unwrap();
        }
    }
    // called, or taken as a function pointer (`if greedy { sys::a } else { sys::b }`)
    let used = |f: &str| {
        let at = format!("sys::{}", f);
        src.match_indices(&at).any(|(i, _)| {
            src[i + at.len()..].chars().next().map_or(false, |c| !(c.is_alphanumeric() || c == '_'))
        })
    };
    let never: Vec<&String> = declared.iter().filter(|f| !used(f)).collect();
    assert!(never.is_empty(), "{} header functions have no safe wrapper: {:?}", never.len(), never);
}
