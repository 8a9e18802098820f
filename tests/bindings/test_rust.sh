#!/bin/sh
# The Rust crates (bindings/rust): `cargo test --offline` of nextgpt-sys (bindings generated from
# the header by bindgen, layout tests) and nextgpt (the safe crate against the golden cases), then
# the example. Exit 77 (SKIP) without cargo or bindgen.
# usage: test_rust.sh SOURCE_ROOT BUILD_ROOT
set -eu
src=$1
build=$2
for tool in cargo bindgen; do
    command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool is not installed (apt-get install $tool)"; exit 77; }
done
golden=${NGPT_GOLDEN_DIR:-$src/../shared/golden}
[ -d "$golden" ] || { echo "SKIP: the golden cases are not at $golden (set NGPT_GOLDEN_DIR)"; exit 77; }
export NGPT_GOLDEN_DIR=$golden
export NGPT_LIB_DIR="$build/lib"
export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CARGO_TARGET_DIR="$build/bindings/rust/target"
export NGPT_HEADER="$src/include/nextgpt.h"
export NGPT_TINY_BUNDLE="$build/tools/tiny"
cd "$src/bindings/rust"
cargo test --offline --quiet --workspace 2>&1
cargo run --offline --quiet --example version 2>&1
