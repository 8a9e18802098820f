#!/usr/bin/env bash
# gpu_pack.sh — prepare .device/ (git-ignored) for a GPU run through the `device` tool, whose
# machines are bare (no Debian packages, nothing to install from) and take at most 64 MiB of tree:
#   - the CUDA build's test, case-runner and benchmark binaries (built here, sm_90; bench_unet
#     writes its full-size random SD 1.5 checkpoint on the GPU machine at run time, nothing carried);
#   - the non-system libraries they need (oneDNN, ICU (its data library emptied), PCRE2, jansson,
#     libgomp), xz-compressed;
#   - stand-ins for the audio/video codec libraries (bench/gpu_stubs.py explains why; libpng,
#     libjpeg (decoding), libturbojpeg (encoding), libwebp, libwebpdemux and libgif travel as
#     they are: small, and nothing beyond libc);
#   - the shared golden cases minus the media-decoding stages (the stubs cannot decode).
# Then: device run with carry [".device"] and command `bench/gpu_remote.sh`. OURS=1 packs our own
# golden cases instead of the shared ones (below), for a second call with STEPS='golden cases'.
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
for l in libdnnl.so libicuuc.so libpcre2-8.so libjansson.so libgomp.so libturbojpeg.so libjpeg.so libpng16.so \
         libwebp.so libwebpdemux.so libgif.so; do
    p=$(ldd "$D/stage/bin/libnextgpt.so.0" | awk -v l="$l" 'index($1, l) == 1 {print $3}')
    [ -n "$p" ] && cp -L "$p" "$D/stage/lib/"
done
# ICU's data library is 31 MB (7 MB compressed) and the library needs none of it: NFC, case
# mapping and character properties are built into libicuuc (all golden cases and test_clip pass
# with an empty ICU data package, 2026-11-27). An empty package under the same SONAME travels
# (icupkg and genccode: Debian's icu-devtools), else the real one.
icudata=$(ldd "$D/stage/bin/libnextgpt.so.0" | awk 'index($1, "libicudata.so") == 1 {print $1 " " $3}')
soname=${icudata%% *}
if [ -n "$icudata" ] && command -v icupkg > /dev/null && command -v genccode > /dev/null; then
    t=$(mktemp -d)
    major=${soname##*.so.}
    icupkg -tl new "$t/empty.dat" && genccode -d "$t" "$t/empty.dat" > /dev/null &&
        sed -i "s/} empty_dat={/} icudt${major}_dat={/" "$t/empty_dat.c" &&
        cc -shared -fPIC -O2 -Wl,-soname,"$soname" -o "$D/stage/lib/$soname" "$t/empty_dat.c"
    rm -rf "$t"
fi
[ -n "$icudata" ] && [ ! -f "$D/stage/lib/$soname" ] && cp -L "${icudata#* }" "$D/stage/lib/"
mkdir -p "$D/stage/golden"
if [ "${OURS:-0}" = 1 ]; then
    # OURS=1: our own golden cases instead of the shared ones, for a second call with
    # STEPS='golden cases' (the two do not fit one pack): tests/golden as ours_golden/, and of the
    # shared tree the small models our cases name (tokenizers, imagebind-a, nextgpt-delta-a); the
    # few cases naming the large shared models (sd-a, audioldm-a, zeroscope-a) stay behind.
    mkdir -p "$D/stage/golden/models" "$D/stage/ours_golden"
    for mdl in tok-a tok-a-nextgpt imagebind-a nextgpt-delta-a; do cp -rL "$GOLDEN/models/$mdl" "$D/stage/golden/models/"; done
    big=$(grep -rlE '"model": "[^"]*shared/golden/models/(sd-a|audioldm-a|zeroscope-a)"' tests/golden --include=case.json |
          xargs -r -n1 dirname | sed 's|^tests/||')
    tar -C tests -cf - --exclude='image.preprocess' --exclude='audio.fbank' $(for c in $big; do echo "--exclude=$c"; done) \
        golden | tar -C "$D/stage/ours_golden" -xf -
    echo "OURS=1: $(echo "$big" | grep -c .) of our cases left behind (they name sd-a, audioldm-a or zeroscope-a)"
else
    tar -C "$GOLDEN/.." -cf - --exclude='image.preprocess' --exclude='video.preprocess' --exclude='audio.fbank' \
        "$(basename "$GOLDEN")" | tar -C "$D/stage" -xf -
fi
# Our own golden tree (tests/golden, ~53 MB) and this pack do not fit the 64 MiB that travels
# together: for the call, take tests/golden out of what travels (`git rm -r -q --cached
# tests/golden && echo /tests/golden/ >> .git/info/exclude`; after it, `git reset -q tests/golden`
# and drop the line). The two models test_decoder_dtype_cuda reads from it travel here instead
# (an OURS=1 pack has them in ours_golden already).
if [ "${OURS:-0}" != 1 ]; then
    mkdir -p "$D/stage/ours"
    cp -rL tests/golden/models/clip-a tests/golden/models/sd-b-safety "$D/stage/ours/"  # -L: sd-b-safety links to sd-b-pipe
fi
# the tree that travels is capped at 64 MiB: symbols out, strongest xz
strip --strip-unneeded "$D"/stage/bin/* "$D"/stage/lib/*.so* 2> /dev/null || true
XZ_OPT="-9e -T1 --lzma2=preset=9e,dict=384MiB" tar -C "$D/stage" -cJf "$D/pack.tar.xz" .  # one window over every binary
rm -rf "$D/stage"
ls -la "$D"
