#!/bin/sh
# test_cli.sh NEXTGPT SOURCE_ROOT TMP — the `nextgpt` command driven as a user would: `run` on the
# embedded tiny model writes a PNG (and --json), bad arguments exit 2, a missing input file or a
# bundle missing a part exits 1 naming it, `info` lists the components, `generate` runs a decoder
# alone (text-to-image/audio/video, image-to-image).
set -u
NG=$1; SRC=$2; TMP=$3
rm -rf "$TMP"; mkdir -p "$TMP"
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
expect_rc() {  # expected-rc description command...
  want=$1; what=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
  [ "$rc" -eq "$want" ] || { fail "$what: exit $rc, expected $want"; cat "$TMP/err" >&2; }
}

# run on the tiny model (no --model): a PNG, the random-weights notice, the text on stdout
expect_rc 0 "run" "$NG" run --image "$SRC/data/tiny/cat.jpg" --prompt "Draw it in the snow." --force image \
  --steps 2 --max-tokens 8 --out-dir "$TMP/out1"
grep -q "RANDOM weights" "$TMP/err" || fail "run: no random-weights notice on stderr"
grep -q "wrote $TMP/out1/image-0.png" "$TMP/out" || fail "run: no 'wrote' line"
head -c 4 "$TMP/out1/image-0.png" 2>/dev/null | od -An -c | grep -q "P   N   G" || fail "run: image-0.png is not a PNG"

# --json
expect_rc 0 "run --json" "$NG" run --prompt "a cat" --force image --steps 2 --max-tokens 4 --seed 3 \
  --out-dir "$TMP/out2" --json
grep -q '"status": "NGPT_OK"' "$TMP/out" || fail "run --json: no ok output"
grep -q '"test_model": true' "$TMP/out" || fail "run --json: test_model not true"
[ -f "$TMP/out2/image-0.png" ] || fail "run --json: no file written"
sed -n 's/.*"text": \("[^"]*"\).*/\1/p' "$TMP/out" > "$TMP/text2"
# --no-cuda-graphs (and --cuda-graphs, the default): accepted on the CPU, the same answer and image
expect_rc 0 "run --no-cuda-graphs" "$NG" run --prompt "a cat" --force image --steps 2 --max-tokens 4 --seed 3 \
  --out-dir "$TMP/out3" --cuda-graphs --no-cuda-graphs --device cpu
cmp -s "$TMP/out2/image-0.png" "$TMP/out3/image-0.png" || fail "run --no-cuda-graphs: another image than without"
# --channels-last: accepted on the CPU (the decoders NHWC inside), the same answer and a PNG of the size
expect_rc 0 "run --channels-last" "$NG" run --prompt "a cat" --force image --steps 2 --max-tokens 4 --seed 3 \
  --out-dir "$TMP/out4" --channels-last --device cpu --json
grep -q '"status": "NGPT_OK"' "$TMP/out" || fail "run --channels-last: no ok output"
head -c 4 "$TMP/out4/image-0.png" 2>/dev/null | od -An -c | grep -q "P   N   G" || fail "run --channels-last: no PNG"
sed -n 's/.*"text": \("[^"]*"\).*/\1/p' "$TMP/out" | cmp -s - "$TMP/text2" && [ -s "$TMP/text2" ] ||
  fail "run --channels-last: another answer than without"
# --safety-checker: the tiny model's image decoder has no safety_checker/, so the image output
# says so (the turn itself succeeds, the text is printed; an output not produced makes the exit
# status 1) and info's memory estimate exits 1 naming the folder
expect_rc 1 "run --safety-checker" "$NG" run --prompt "a cat" --force image --steps 2 --max-tokens 4 --seed 3 \
  --out-dir "$TMP/out7" --safety-checker --json
grep -q '"status": "NGPT_ERR_NOT_FOUND"' "$TMP/out" || fail "run --safety-checker: the image output is not NOT_FOUND"
grep -q 'safety_checker: folder not found' "$TMP/out" || fail "run --safety-checker: the folder is not named"
expect_rc 1 "info --safety-checker" "$NG" info --safety-checker
grep -q 'safety_checker: folder not found' "$TMP/err" || fail "info --safety-checker: the folder is not named"
# --size, --frames, --seconds reach the decoders: a short video and a short sound
expect_rc 0 "run --force video --size --frames" "$NG" run --prompt x --force video --steps 1 --size 64x64 --frames 2 \
  --max-tokens 2 --out-dir "$TMP/out9"
[ -s "$TMP/out9/video-0.mp4" ] || fail "run --force video --size 64x64 --frames 2: no video"
expect_rc 0 "run --force audio --seconds" "$NG" run --prompt x --force audio --steps 1 --seconds 0.5 --max-tokens 2 \
  --out-dir "$TMP/out10"
[ -s "$TMP/out10/audio-0.wav" ] || fail "run --force audio --seconds 0.5: no sound"
# 0.5 s at the vocoder's rate: the WAV's data chunk, whatever the rate and sample size
python3 - "$TMP/out10/audio-0.wav" <<'PY' || fail "run --force audio --seconds 0.5: not 0.5 s of sound"
import struct, sys
b = open(sys.argv[1], "rb").read()
ch, rate, bits = struct.unpack_from("<HIxxxxxxH", b, 22)
i = b.find(b"data")
n = struct.unpack_from("<I", b, i + 4)[0] // (ch * bits // 8)
sys.exit(0 if abs(n - rate // 2) <= rate // 100 else 1)
PY
expect_rc 2 "--frames 0" "$NG" run --prompt x --frames 0
expect_rc 2 "--seconds 61" "$NG" run --prompt x --seconds 61
expect_rc 2 "--steps ' 5' (digits only, as written)" "$NG" run --prompt x --steps " 5"
expect_rc 2 "--steps +5" "$NG" run --prompt x --steps +5
expect_rc 2 "--seed ' 7'" "$NG" run --prompt x --seed " 7"
expect_rc 2 "--seconds ' 1'" "$NG" run --prompt x --seconds " 1"
# chat: blank lines are ignored (no turn: nothing on stdout); a line with a NUL byte is refused,
# not sent cut short
expect_rc 0 "chat: blank lines" sh -c 'printf "   \n\t\n" | "$0" chat --max-tokens 2' "$NG"
[ -s "$TMP/out" ] && fail "chat: a blank line was sent as a turn"
expect_rc 1 "chat: a NUL byte" sh -c 'printf "hello\000x\n" | "$0" chat --max-tokens 2' "$NG"
grep -q "NUL byte" "$TMP/err" || fail "chat: a NUL byte: no message"
[ -s "$TMP/out" ] && fail "chat: the line with a NUL byte was sent"
# steps the forced decoder's schedule cannot take (steps_offset 1: timestep 1000) are refused
# before the language model runs
expect_rc 1 "run --steps 1000" "$NG" run --prompt x --force image --steps 1000
grep -q "steps 1000" "$TMP/err" || fail "run --steps 1000: the message does not name the steps"
# stdout that cannot be written (a full disk) is an error, not a silent exit 0
expect_rc 1 "run --json > /dev/full" sh -c '"$0" run --prompt "a cat" --force image --steps 2 --max-tokens 4 --json \
  --out-dir "$1" >/dev/full' "$NG" "$TMP/out8"
grep -q "cannot write the answer" "$TMP/err" || fail "run > /dev/full: no message"

# --scheduler: another sampler than the bundle's gives another image, the same one run twice
expect_rc 0 "run --scheduler euler-a" "$NG" run --prompt "a cat" --force image --steps 2 --max-tokens 4 --seed 3 \
  --out-dir "$TMP/out5" --scheduler euler-a --device cpu
head -c 4 "$TMP/out5/image-0.png" 2>/dev/null | od -An -c | grep -q "P   N   G" || fail "run --scheduler: no PNG"
cmp -s "$TMP/out2/image-0.png" "$TMP/out5/image-0.png" && fail "run --scheduler euler-a: the bundle's sampler's image"
expect_rc 0 "run --scheduler euler-a again" "$NG" run --prompt "a cat" --force image --steps 2 --max-tokens 4 \
  --seed 3 --out-dir "$TMP/out6" --scheduler euler-a --device cpu
cmp -s "$TMP/out5/image-0.png" "$TMP/out6/image-0.png" || fail "run --scheduler euler-a: not reproducible"
for sch in unipc lms kdpm2 kdpm2-a deis ddpm dpm-single; do
    expect_rc 0 "run --scheduler $sch" "$NG" run --prompt "a cat" --force image --steps 3 --max-tokens 4 --seed 3 \
      --out-dir "$TMP/out-$sch" --scheduler $sch --device cpu
    head -c 4 "$TMP/out-$sch/image-0.png" 2>/dev/null | od -An -c | grep -q "P   N   G" || fail "run --scheduler $sch: no PNG"
done

# usage errors: exit 2
expect_rc 2 "unknown option" "$NG" run --prompt x --bogus
expect_rc 2 "missing --prompt" "$NG" run --image "$SRC/data/tiny/cat.jpg"
expect_rc 2 "bad --steps" "$NG" run --prompt x --steps many
expect_rc 2 "bad --scheduler" "$NG" run --prompt x --scheduler karras-ve
expect_rc 2 "bad --force" "$NG" run --prompt x --force smell
expect_rc 2 "option without value" "$NG" run --prompt
grep -q "needs a value" "$TMP/err" || fail "option without value: message does not say so"
expect_rc 2 "trailing unknown option" "$NG" run --prompt x --no-media-history
grep -q "unknown argument '--no-media-history'" "$TMP/err" || fail "trailing unknown option: not named as unknown"
expect_rc 2 "negative --seed" "$NG" run --prompt x --seed -1
# an option of another command is unknown here, trailing or not
expect_rc 2 "info --steps" "$NG" info --steps 3
grep -q "unknown argument '--steps'" "$TMP/err" || fail "info --steps: not named as unknown"
expect_rc 2 "trailing info --steps" "$NG" info --steps
grep -q "unknown argument '--steps'" "$TMP/err" || fail "trailing info --steps: not named as unknown"
expect_rc 2 "run --ctx" "$NG" run --prompt x --ctx 64
grep -q "unknown argument '--ctx'" "$TMP/err" || fail "run --ctx: not named as unknown"
expect_rc 2 "chat --prompt" "$NG" chat --prompt x
grep -q "is given in the conversation" "$TMP/err" || fail "chat --prompt: does not say where it goes"
expect_rc 2 "--size not a multiple of 8" "$NG" info --size 13x13
# sizes and lengths as written: no wrap-around, signs, spaces, hexadecimal or exponents
for bad in 4294967304x512 +512x512 "512x 512" 512x512x x512; do
  expect_rc 2 "--size '$bad'" "$NG" run --prompt x --size "$bad"
done
for bad in 0x1p4 1e1; do
  expect_rc 2 "--seconds '$bad'" "$NG" run --prompt x --seconds "$bad"
done
printf 'x' > "$TMP/a-file"
expect_rc 1 "--out-dir is a file" "$NG" run --prompt x --out-dir "$TMP/a-file"
grep -q "not a folder we can write into" "$TMP/err" || fail "--out-dir is a file: no message"
expect_rc 2 "unknown command" "$NG" frobnicate
expect_rc 2 "bad --dtype" "$NG" run --prompt x --dtype f8
expect_rc 1 "--dtype f16 on the CPU" "$NG" run --prompt x --device cpu --dtype f16
grep -q "needs a CUDA context" "$TMP/err" || fail "--dtype f16 on the CPU: message does not say why"
expect_rc 0 "--dtype bf16 on the CPU" "$NG" run --prompt "a cat" --force image --steps 2 --max-tokens 4 --seed 3 \
  --out-dir "$TMP/out-bf16" --device cpu --dtype bf16
head -c 4 "$TMP/out-bf16/image-0.png" 2>/dev/null | od -An -c | grep -q "P   N   G" || fail "--dtype bf16: no PNG"
expect_rc 0 "info --dtype bf16 on the CPU" "$NG" info --device cpu --dtype bf16
grep -q "memory estimate of a turn (cpu, BF16" "$TMP/out" || fail "info --dtype bf16: no CPU BF16 estimate"

# runtime errors: exit 1 with the file named
expect_rc 1 "missing image" "$NG" run --prompt x --image "$TMP/no-such-cat.jpg"
grep -q "no-such-cat.jpg" "$TMP/err" || fail "missing image: message does not name the file"
printf 'not a jpeg' > "$TMP/bad.jpg"
expect_rc 1 "corrupt image" "$NG" run --prompt x --image "$TMP/bad.jpg" --max-tokens 2
grep -q "bad.jpg" "$TMP/err" || fail "corrupt image: message does not name the file"
mkdir -p "$TMP/broken"
printf '{"llm": "llm", "imagebind": "imagebind", "projectors": "projectors"}' > "$TMP/broken/bundle.json"
expect_rc 1 "bundle missing a part" "$NG" run --model "$TMP/broken" --prompt x
grep -q "broken/llm" "$TMP/err" || fail "bundle missing a part: message does not name it"
expect_rc 1 "no bundle.json" "$NG" run --model "$TMP/nowhere" --prompt x

# generate: one decoder alone (no --model: the tiny bundle's), text-to-image, -audio, -video and
# image-to-image; the same seed gives the same file
expect_rc 0 "generate" "$NG" generate --prompt "a red cat" --steps 2 --seed 5 --out "$TMP/gen-a.png" --json
grep -q "RANDOM weights" "$TMP/err" || fail "generate: no random-weights notice on stderr"
grep -q '"test_model": true, "modality": "image"' "$TMP/out" || fail "generate --json: not the tiny image decoder"
DEC=$(sed -n 's/.*"decoder": "\([^"]*\)".*/\1/p' "$TMP/out")
head -c 4 "$TMP/gen-a.png" 2>/dev/null | od -An -c | grep -q "P   N   G" || fail "generate: no PNG"
expect_rc 0 "generate again" "$NG" generate --prompt "a red cat" --steps 2 --seed 5 --out "$TMP/gen-b.png"
grep -q "wrote $TMP/gen-b.png (image)" "$TMP/out" || fail "generate: no 'wrote' line"
cmp -s "$TMP/gen-a.png" "$TMP/gen-b.png" || fail "generate: the same seed gave another image"
expect_rc 0 "generate --seed 6" "$NG" generate --prompt "a red cat" --steps 2 --seed 6 --out "$TMP/gen-c.png"
cmp -s "$TMP/gen-a.png" "$TMP/gen-c.png" && fail "generate: another seed gave the same image"
# the decoder folder itself as --model: not a test model by a bundle's say; --negative and --guidance taken
expect_rc 0 "generate --model DECODER" "$NG" generate --model "$DEC" --prompt "a red cat" --negative "blur" \
  --guidance 3 --steps 2 --seed 5 --out "$TMP/gen-d.jpg" --json
grep -q '"test_model": false' "$TMP/out" || fail "generate --model DECODER: test_model not false"
head -c 3 "$TMP/gen-d.jpg" 2>/dev/null | od -An -tx1 | grep -q "ff d8 ff" || fail "generate --out .jpg: not a JPEG"
# image-to-image from a 37x29 picture: cut to 32x24 (multiples of 8), so the PNG is 32x24
I2I="$SRC/tests/golden/vision/sd.image_latents/sd_37x29_cut/input.png"
expect_rc 0 "generate --init-image" "$NG" generate --prompt "snow" --init-image "$I2I" --strength 0.5 --steps 4 \
  --out "$TMP/gen-i2i.png"
python3 - "$TMP/gen-i2i.png" <<'PY' || fail "generate --init-image: not a 32x24 PNG"
import struct, sys
b = open(sys.argv[1], "rb").read(24)
sys.exit(0 if b[:4] == b"\x89PNG" and struct.unpack(">II", b[16:24]) == (32, 24) else 1)
PY
expect_rc 0 "generate --modality audio" "$NG" generate --modality audio --prompt rain --seconds 0.5 --steps 2 \
  --out "$TMP/gen.wav"
head -c 4 "$TMP/gen.wav" 2>/dev/null | grep -q RIFF || fail "generate --modality audio: no WAV"
expect_rc 0 "generate --modality video" "$NG" generate --modality video --prompt waves --frames 2 --size 64x64 \
  --steps 2 --out "$TMP/gen.mp4"
[ -s "$TMP/gen.mp4" ] || fail "generate --modality video: no video"
expect_rc 2 "generate --out .gif" "$NG" generate --prompt x --out "$TMP/x.gif"
grep -q "written as .png, .jpg or .jpeg" "$TMP/err" || fail "generate --out .gif: does not say which"
expect_rc 2 "generate without --prompt" "$NG" generate --steps 2
expect_rc 2 "generate --strength without --init-image" "$NG" generate --prompt x --strength 0.5
expect_rc 2 "generate --strength 1.5" "$NG" generate --prompt x --init-image "$I2I" --strength 1.5
expect_rc 2 "generate --init-image --size" "$NG" generate --prompt x --init-image "$I2I" --size 64x64
expect_rc 2 "generate --init-image audio" "$NG" generate --prompt x --modality audio --init-image "$I2I"
expect_rc 2 "generate --frames for an image" "$NG" generate --prompt x --frames 2
expect_rc 2 "generate --max-tokens" "$NG" generate --prompt x --max-tokens 3
grep -q "unknown argument '--max-tokens'" "$TMP/err" || fail "generate --max-tokens: not named as unknown"
expect_rc 2 "run --init-image" "$NG" run --prompt x --init-image "$I2I"
expect_rc 1 "generate missing --init-image" "$NG" generate --prompt x --init-image "$TMP/no-such.png"
grep -q "no-such.png" "$TMP/err" || fail "generate missing --init-image: not named"
mkdir -p "$TMP/imgonly"
printf '{"llm": "llm", "decoders": {"image": "%s"}}' "$DEC" > "$TMP/imgonly/bundle.json"
expect_rc 1 "generate: bundle without the modality" "$NG" generate --model "$TMP/imgonly" --modality video --prompt x
grep -q 'names no video decoder' "$TMP/err" || fail "generate: a bundle without the video decoder not said"
expect_rc 1 "generate: neither folder" "$NG" generate --model "$TMP" --prompt x
grep -q "neither a diffusers pipeline folder" "$TMP/err" || fail "generate: a folder of neither kind not said"

# info
expect_rc 0 "info" "$NG" info
grep -q "llm" "$TMP/out" && grep -q "decoders/image/unet" "$TMP/out" || fail "info: components not listed"
grep -q "memory estimate of a turn (cpu, F32" "$TMP/out" && grep -q "turn peak:" "$TMP/out" || fail "info: no memory estimate"
expect_rc 0 "info --device cuda --dtype f16 (estimated without a GPU)" "$NG" info --device cuda --dtype f16
grep -q "memory estimate of a turn (cuda, F16" "$TMP/out" || fail "info --device cuda: no CUDA estimate"
# on a CPU fallback the note says why (stderr had it; the JSON's note was empty)
if grep -q "^backend: *cpu" "$TMP/out"; then
  grep -q "^note: *using the CPU: .*CUDA" "$TMP/out" || fail "info --device cuda: the fallback has no note"
  expect_rc 0 "info --device cuda --json" "$NG" info --device cuda --dtype f16 --json
  grep -q '"note": "using the CPU: ' "$TMP/out" || fail "info --device cuda --json: the fallback has no note"
fi

[ "$fails" -eq 0 ] && echo "test_cli: all passed" >&2
exit $((fails > 0))
