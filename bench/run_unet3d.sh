#!/bin/sh
# run_unet3d.sh — Zeroscope v2 576w's video decoder on the CPU (2 threads): one UNet3D CFG step
# (batch 2, 8 frames, 32x32 latents = 256x256 pixels, full widths) and the VAE decode per frame,
# libnextgpt (bench_unet3d) vs PyTorch (bench/unet3d_torch.py, a plain-torch port of diffusers
# 0.17's UNet3DConditionModel proven against the golden cases with --check) on the same random
# weights and inputs, then the ratios and the agreement of the outputs. From the repository root:
#   meson setup build -Dcuda=disabled && ninja -C build
#   bench/run_unet3d.sh [build] [reps]        (NGPT_TORCH_BF16=1: also torch bf16 autocast)
# Checkpoint: $NGPT_ZS_DIR (default /tmp/ngpt_bench_zeroscope, 5.8 GB F32, written once).
set -eu
BUILD=${1:-build}
REPS=${2:-1}
THREADS=${NGPT_BENCH_THREADS:-2}
export NGPT_ZS_DIR="${NGPT_ZS_DIR:-/tmp/ngpt_bench_zeroscope}" NGPT_BENCH_THREADS="$THREADS"
. "$(dirname "$0")/openblas_core.sh"
export OMP_NUM_THREADS="$THREADS"
HERE=$(dirname "$0")
OUT=$(mktemp)
echo "## port check (diffusers 0.17 golden cases)"
/usr/bin/python3 "$HERE/unet3d_torch.py" --check "${NGPT_GOLDEN:-$HERE/../../shared/golden}" | tail -1
echo
echo "## libnextgpt"
"$BUILD/bench/bench_unet3d" "$REPS" | tee "$OUT"
echo
echo "## PyTorch"
BF=""
[ "${NGPT_TORCH_BF16:-0}" = 1 ] && BF="--bf16"
/usr/bin/python3 "$HERE/unet3d_torch.py" --bench "$NGPT_ZS_DIR" "$THREADS" "$REPS" $BF | tee -a "$OUT"
echo
echo "## ratio (PyTorch s / libnextgpt s; > 1: libnextgpt faster), per PyTorch configuration"
awk -F'|' '
  /^\| ours f32 / { w = $3; gsub(/^ +| +$/, "", w); ours[w] = $5 + 0 }
  /^\| ours bf16 / { w = $3; gsub(/^ +| +$/, "", w); ours16[w] = $5 + 0 }
  /^\| torch / { c = $2; gsub(/^ +| +$/, "", c); w = $3; gsub(/^ +| +$/, "", w);
                 printf "%-22s %-14s %.2fx   (outputs: max |torch - ours| / max |torch| = %s)\n", w, c, $5 / ours[w], $6;
                 if (c ~ /bf16/ && (w in ours16)) printf "%-22s %-14s %.2fx against ours bf16\n", w, c, $5 / ours16[w];
                 if (!(w in best) || $5 + 0 < best[w]) { best[w] = $5 + 0; bc[w] = c } }
  END { for (w in best) printf "best PyTorch configuration for %s: %s -> %.2fx\n", w, bc[w], best[w] / ours[w] }' "$OUT"
rm -f "$OUT"
