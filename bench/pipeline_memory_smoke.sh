#!/bin/sh
# pipeline_memory_smoke.sh BUILD_BENCH_DIR SOURCE_ROOT — the test suite's check of
# tools/make_sized_bundle.py (preset small) and bench/pipeline_memory (a 64x64 turn): seconds.
set -eu
BENCH=$1
SRC=$2
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
/usr/bin/python3 "$SRC/tools/make_sized_bundle.py" "$DIR/b" --preset small --list-tensors "$BENCH/list_tensors" >/dev/null
"$BENCH/pipeline_memory" "$DIR/b" "$SRC/data/tiny/cat.jpg" 64 2 > "$DIR/out.txt"
cat "$DIR/out.txt"
grep -q '^CPU peak beyond mapped weights: .* GiB measured (anonymous), .* GiB estimated; goal 2 GiB$' "$DIR/out.txt"
grep -q '^| decode | ' "$DIR/out.txt"
