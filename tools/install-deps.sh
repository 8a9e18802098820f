#!/bin/sh
# Install the Debian 12 packages libnextgpt builds and tests with (run as root, or with sudo).
# The CUDA toolkit (nvcc, cuBLAS, cuDNN) is not a Debian package: when /usr/local/cuda exists the
# build uses it (meson -Dcuda=auto), otherwise the CPU-only library is built.
# Bindings (-Dbindings=auto): python3-pycparser generates the ctypes module, python3-numpy is used
# by its tests, python3-sentencepiece and python3-pil/-torchvision/-torchaudio are the references of
# the tokenizer and media tests; bindgen (the CLI) and cargo build the Rust crates offline from
# Debian's crates.
# clang and its runtime (libFuzzer, sanitizers) build the fuzz targets of tests/fuzz.
set -eu
pkgs="meson ninja-build pkg-config gcc libc6-dev
      libdnnl-dev libjansson-dev
      libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev libwebp-dev libgif-dev libsndfile1-dev
      libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev
      libpcre2-dev libicu-dev libopenblas-dev
      python3 python3-pycparser python3-numpy bindgen cargo"
# The references and tools of some tests: those tests say SKIP (and why) without them, so a
# mirror that lacks one must not stop the build.
test_pkgs="python3-sentencepiece python3-pil python3-torchvision python3-torchaudio
      clang libclang-rt-14-dev"
missing() {
    out=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out="$out $p"
    done
    echo "$out"
}
# shellcheck disable=SC2086
need=$(missing $pkgs)
# shellcheck disable=SC2086
want=$(missing $test_pkgs)
if [ -n "$need$want" ]; then
    echo "installing:$need$want"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    [ -z "$need" ] || apt-get install -y -q --no-install-recommends $need
    # shellcheck disable=SC2086
    [ -z "$want" ] || apt-get install -y -q --no-install-recommends $want ||
        echo "warning: could not install$want: the tests that need them will be skipped"
fi
