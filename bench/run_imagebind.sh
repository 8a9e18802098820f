#!/bin/sh
# run_imagebind.sh — full-size ImageBind-huge vision on one image, CPU, 2 threads: libnextgpt
# (bench_imagebind, F32 and BF16 compute) and PyTorch (bench/imagebind_torch.py, Debian's
# python3-torch, bench/openblas_core.sh, bf16 by torch.autocast) on the same weights and
# pixels, then the ratio. Run from the repository root after a release build:
#   meson setup build-rel -Dcuda=disabled -Dbuildtype=release && ninja -C build-rel
#   bench/run_imagebind.sh [build-rel] [reps]
# Weights: $NGPT_IB_WEIGHTS (default /tmp/ngpt_ib_huge_vision.safetensors, 2.5 GB, written once).
set -eu
BUILD=${1:-build-rel}
REPS=${2:-1}
THREADS=${NGPT_BENCH_THREADS:-2}
W=${NGPT_IB_WEIGHTS:-/tmp/ngpt_ib_huge_vision.safetensors}
. "$(dirname "$0")/openblas_core.sh"
export NGPT_IB_WEIGHTS="$W" NGPT_BENCH_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS"
OUT=$(mktemp)
echo "## libnextgpt"
"$BUILD/bench/bench_imagebind" "$REPS" | tee "$OUT"
echo
echo "## PyTorch"
/usr/bin/python3 "$(dirname "$0")/imagebind_torch.py" "$W" "$REPS" "$THREADS" | tee -a "$OUT"
echo
echo "## ratio (PyTorch s/image / libnextgpt s/image; > 1: libnextgpt faster)"
awk -F'|' '
  /^\| (f32|bf16)/ { key = $2; gsub(/ /, "", key); sub(/\(.*/, "", key); s = $4 + 0;
                     if (!(key in ours)) ours[key] = s; else theirs[key] = s }
  /^decode\+preprocess/ { ms = $0; sub(/.*best /, "", ms); ms += 0; if (!dec1) dec1 = ms; else dec2 = ms }
  END { for (c in ours) if (c in theirs) printf "%s: %.2fx\n", c, theirs[c] / ours[c];
        if (dec1 && dec2) printf "decode+preprocess (best): %.2fx\n", dec2 / dec1 }' "$OUT"
grep '^decode+preprocess' "$OUT" | sed 's/^/  /'
rm -f "$OUT"
