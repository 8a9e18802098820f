#!/bin/sh
# run_decoders.sh — the diffusion decoders at full size on the CPU, 2 threads: libnextgpt
# (bench_decoders) and PyTorch (bench/unet_torch.py, a plain-torch port of diffusers'
# UNet2DConditionModel / AutoencoderKL decoder and transformers' SpeechT5HifiGan, checked against
# the golden cases first) on the same random weights and the same inputs, then the ratios.
# PyTorch in its best CPU configuration: Debian's /usr/bin/python3 (torch 1.13.1), 2 threads,
# bench/openblas_core.sh, channels-last, bf16 by casting the model (autocast fails on GroupNorm).
# Run from the repository root after a release build:
#   meson setup build-rel -Dcuda=disabled -Dbuildtype=release && ninja -C build-rel
#   bench/run_decoders.sh [build-rel] [reps] [config ...]
# configs (default: all): sd_unet_256 sd_unet_512 sd_vae_512 audioldm_unet_5 audioldm_vae_5
#   audioldm_vocoder_5   (NAME_SIZE: pixels for sd, seconds of audio for audioldm)
# Weights: $NGPT_DEC_DIR/{sd,audioldm} (default /tmp/ngpt_dec_*: 3.6 GB + 3.3 GB of F32, written once).
# Golden check of the port alone: /usr/bin/python3 bench/unet_torch.py --check ../shared/golden
set -eu
BUILD=${1:-build-rel}
REPS=${2:-2}
[ $# -ge 2 ] && shift 2 || shift $#
CONFIGS=${*:-sd_unet_256 sd_unet_512 sd_vae_512 audioldm_unet_5 audioldm_vae_5 audioldm_vocoder_5}
THREADS=${NGPT_BENCH_THREADS:-2}
. "$(dirname "$0")/openblas_core.sh"
export NGPT_BENCH_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS"
HERE=$(dirname "$0")
GOLDEN=${NGPT_GOLDEN_DIR:-$HERE/../../shared/golden}
if [ -d "$GOLDEN" ]; then
  echo "## the torch port against the golden cases"
  /usr/bin/python3 "$HERE/unet_torch.py" --check "$GOLDEN" | tail -1
fi
OUT=$(mktemp)
for c in $CONFIGS; do
  model=${c%%_*}; rest=${c#*_}; comp=${rest%_*}; size=${rest##*_}
  dir=${NGPT_DEC_DIR:-/tmp/ngpt_dec}_$model
  [ "$model" = sd ] && tag=${model}_${comp}_${size}px || tag=${model}_${comp}_${size}s
  "$BUILD/bench/bench_decoders" write "$dir" "$model" | grep -v '^# .*ready' || true
  echo "## $tag"
  "$BUILD/bench/bench_decoders" run "$dir" "$model" "$comp" "$size" "$REPS" | tee -a "$OUT"
  /usr/bin/python3 "$HERE/unet_torch.py" --bench "$dir" "$tag" "$REPS" "$THREADS" | tee -a "$OUT"
done
echo
echo "## ratio PyTorch s / libnextgpt s, best of $REPS (> 1: libnextgpt faster); our vocoder's bf16"
echo "## row is BF16 as a BF16 decoder runs it on an AMX CPU (elsewhere that decoder's vocoder is F32)"
awk -F'|' '
  /^\| [a-z]/ { tag = $2; gsub(/ /, "", tag); lib = $3; gsub(/ /, "", lib); dt = $4; gsub(/ /, "", dt);
                s = $5 + 0; t[tag, lib, dt] = s; if (!(tag in seen)) { seen[tag] = 1; order[n++] = tag } }
  END {
    printf "| config | compute | libnextgpt s | PyTorch s | ratio |\n|---|---|---|---|---|\n";
    for (i = 0; i < n; i++) {
      g = order[i];
      for (k = 0; k < 2; k++) {
        dt = k ? "bf16" : "f32";
        if (!((g, "torch", dt) in t)) continue;
        o = ((g, "libnextgpt", dt) in t) ? t[g, "libnextgpt", dt] : t[g, "libnextgpt", "f32"];
        od = ((g, "libnextgpt", dt) in t) ? dt : "f32";
        printf "| %s | %s (ours %s) | %.2f | %.2f | %.2fx |\n", g, dt, od, o, t[g, "torch", dt], t[g, "torch", dt] / o
      }
      if (g ~ /vocoder/) { sec = g; sub(/.*_/, "", sec); sec += 0;
        printf "| %s | real-time factor (compute s / audio s) | %.3f | %.3f (f32) | |\n", g,
               t[g, "libnextgpt", "f32"] / sec, t[g, "torch", "f32"] / sec }
    }
  }' "$OUT"
rm -f "$OUT"
