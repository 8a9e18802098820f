#!/bin/sh
# run_pipeline_memory.sh — the memory of one real-width pipeline turn on the CPU, measured next to
# the estimate: writes a random-weight bundle (tools/make_sized_bundle.py, once) and runs
# bench/pipeline_memory on it (text + image in, image out forced, 512x512, 2 decoder steps).
#   bench/run_pipeline_memory.sh [BUILD=build] [PRESET=real-narrow] [SIZE=512]
# PRESET real-narrow: real widths, fewer layers (~3.4 GB written, ~6-7 GiB RSS, ~2 min on 2 cores);
# real: the full sizes (Vicuna-7B + delta, ImageBind-huge, SD 1.5: ~22 GB written, needs ~22 GB of
# disk and more RAM than that for a page cache that holds the weights; the LLM part takes minutes).
# The bundle goes to $NGPT_SIZED_DIR (default /tmp/ngpt_sized_PRESET); remove it after the run.
set -eu
BUILD=${1:-build}
PRESET=${2:-real-narrow}
SIZE=${3:-512}
HERE=$(dirname "$0")
DIR=${NGPT_SIZED_DIR:-/tmp/ngpt_sized_$PRESET}
if [ ! -f "$DIR/bundle.json" ]; then
  nice /usr/bin/python3 "$HERE/../tools/make_sized_bundle.py" "$DIR" --preset "$PRESET" \
    --list-tensors "$BUILD/bench/list_tensors"
fi
echo "commit $(git -C "$HERE/.." rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), preset $PRESET"
nice "$BUILD/bench/pipeline_memory" "$DIR" "$HERE/../data/tiny/cat.jpg" "$SIZE" 2 0
