//! Raw declarations of libnextgpt's C ABI (`include/nextgpt.h`), generated at build time by
//! Debian's `bindgen` CLI (see build.rs): every `ngpt_*` function, type and enumerator, and every
//! `NGPT_*` constant, exactly as the header spells them. Everything here is `unsafe` to call; the
//! `nextgpt` crate is the safe layer. Enumerators are plain constants (`NGPT_OK`, `NGPT_DTYPE_F32`)
//! of the enum's integer type, so a value the library adds later is never undefined behaviour.
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case, deref_nullptr)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The `ngpt_*` functions bindgen generated are exactly the NGPT_API declarations of the header.
    #[test]
    fn generated_functions_match_the_header() {
        let generated: BTreeSet<String> = include_str!(concat!(env!("OUT_DIR"), "/bindings.rs"))
            .split("pub fn ")
            .skip(1)
            .map(|s| s.split('(').next().unwrap().trim().to_string())
            .collect();
        let header = std::fs::read_to_string(env!("NGPT_HEADER_PATH")).unwrap();
        let mut declared = BTreeSet::new();
        let flat = header.replace('\n', " ");
        for part in flat.split("NGPT_API").skip(1) {
            let head = part.split('(').next().unwrap();
            let name = head.rsplit(|c: char| c == ' ' || c == '*').next().unwrap().trim();
            if name.starts_with("ngpt_") {
                declared.insert(name.to_string());
            }
        }
        assert!(!declared.is_empty());
        assert_eq!(generated, declared);
    }

    #[test]
    fn calls_through_the_raw_declarations() {
        let v = unsafe { std::ffi::CStr::from_ptr(super::ngpt_version()) };
        assert_eq!(v.to_bytes_with_nul(), super::NGPT_VERSION_STRING);
        assert_eq!(unsafe { super::ngpt_abi_version() }, super::NGPT_ABI_VERSION as i32);
    }
}
