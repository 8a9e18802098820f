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
      libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev libsndfile1-dev
      libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev
      libpcre2-dev libicu-dev libopenblas-dev
      python3 python3-pycparser python3-numpy python3-sentencepiece
      python3-pil python3-torchvision python3-torchaudio bindgen cargo
      clang libclang-rt-14-dev"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi
