#!/usr/bin/env bash
# gpu_pack.sh — prepare .device/ (git-ignored) for a GPU run through the `device` tool, whose
# machines are bare (no Debian packages, nothing to install from) and take at most 64 MiB of tree:
#   - the CUDA build's test, case-runner and benchmark binaries (built here, sm_90; bench_unet
#     writes its full-size random SD 1.5 checkpoint on the GPU machine at run time, nothing carried);
#   - the non-system libraries they need (oneDNN, ICU, PCRE2, jansson, libgomp), xz-compressed;
#   - stand-ins for the audio/video codec libraries (bench/gpu_stubs.py explains why; libpng,
#     libjpeg (decoding) and libturbojpeg (encoding) travel as they are);
#   - the shared golden cases minus the media-decoding stages (the stubs cannot decode).
# Then: device run with carry [".device"] and command `bench/gpu_remote.sh`.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build-cuda}
GOLDEN=${NGPT_GOLDEN_DIR:-../shared/golden}
D=.device
if [ -d "$B" ]; then meson configure "$B" -Dcuda=enabled -Dgpu_archs=90 -Dbuildtype=release > /dev/null
else meson setup "$B" -Dcuda=enabled -Dgpu_archs=90 -Dbuildtype=release > /dev/null; fi
ninja -C "$B" > /dev/null
rm -rf "$D" && mkdir -p "$D/stage/bin" "$D/stage/lib"
bins="tools/ngpt-case tests/gpu/test_ops_cuda tests/gpu/test_context_cuda tests/gpu/test_llama_cuda tests/gpu/test_encoder_cuda tests/gpu/test_decoder_dtype_cuda bench/bench_attention_cuda bench/bench_llama bench/bench_imagebind bench/bench_unet bench/bench_decoders bench/bench_unet3d bench/pipeline_memory bench/list_tensors"
for b in $bins; do cp "$B/$b" "$D/stage/bin/"; done
cp -L "$B/lib/libnextgpt.so.0" "$D/stage/bin/"
python3 bench/gpu_stubs.py "$D/stage/lib" "$D/stage/bin/libnextgpt.so.0" $(for b in $bins; do echo "$D/stage/bin/$(basename $b)"; done)
for l in libdnnl.so libicuuc.so libicudata.so libpcre2-8.so libjansson.so libgomp.so libturbojpeg.so libjpeg.so libpng16.so; do
    p=$(ldd "$D/stage/bin/libnextgpt.so.0" | awk -v l="$l" 'index($1, l) == 1 {print $3}')
    [ -n "$p" ] && cp -L "$p" "$D/stage/lib/"
done
mkdir -p "$D/stage/golden"
tar -C "$GOLDEN/.." -cf - --exclude='image.preprocess' --exclude='video.preprocess' --exclude='audio.fbank' \
    "$(basename "$GOLDEN")" | tar -C "$D/stage" -xf -
# the tree that travels is capped at 64 MiB: symbols out, strongest xz
strip --strip-unneeded "$D"/stage/bin/* "$D"/stage/lib/*.so* 2> /dev/null || true
XZ_OPT="-9 -T2" tar -C "$D/stage" -cJf "$D/pack.tar.xz" .
rm -rf "$D/stage"
ls -la "$D"
