#!/bin/sh
# Fetch llama.cpp (prebuilt CPU libraries + the exact source they were built from) from npm into
# bench/llamacpp/.deps/ (git-ignored; nothing of npm's is committed).
#   @node-llama-cpp/linux-x64  -> bins/linux-x64/libllama.v*.so, libggml*.so, libggml-cpu-<arch>.so
#   node-llama-cpp             -> llama/gitRelease.bundle: a git bundle of the llama.cpp release
#                                 named in llama/binariesGithubRelease.json (headers, gguf-py)
# Usage: bench/llamacpp/setup.sh [version]   (default 3.22.1)
set -eu
VER=${1:-3.22.1}
HERE=$(cd "$(dirname "$0")" && pwd)
DEPS=$HERE/.deps
mkdir -p "$DEPS"
cd "$DEPS"
if [ ! -f "bin-$VER/.ok" ]; then
    rm -rf "bin-$VER" "nlc-$VER" tgz && mkdir -p tgz "bin-$VER" "nlc-$VER"
    (cd tgz && npm pack --silent "@node-llama-cpp/linux-x64@$VER" "node-llama-cpp@$VER" >/dev/null)
    tar xzf "tgz/node-llama-cpp-linux-x64-$VER.tgz" -C "bin-$VER" --strip-components=1
    tar xzf "tgz/node-llama-cpp-$VER.tgz" -C "nlc-$VER" --strip-components=1
    rm -rf tgz
    touch "bin-$VER/.ok"
fi
REL=$(sed -n 's/.*"release": *"\([^"]*\)".*/\1/p' "nlc-$VER/llama/binariesGithubRelease.json")
BINREL=$(sed -n 's/.*"release":"\([^"]*\)".*/\1/p' "bin-$VER/bins/linux-x64/_nlcBuildMetadata.json")
if [ "$REL" != "$BINREL" ]; then
    echo "setup.sh: binaries built from llama.cpp $BINREL but node-llama-cpp's source is $REL" >&2
    exit 1
fi
if [ ! -f "src-$REL/include/llama.h" ]; then
    rm -rf "src-$REL"
    git -c advice.detachedHead=false clone -q "nlc-$VER/llama/gitRelease.bundle" "src-$REL"
fi
rm -f lib src
ln -s "bin-$VER/bins/linux-x64" lib
ln -s "src-$REL" src
echo "llama.cpp $REL (node-llama-cpp $VER): libs $DEPS/lib, headers $DEPS/src/include $DEPS/src/ggml/include"
