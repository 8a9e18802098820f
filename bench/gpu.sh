#!/usr/bin/env bash
# gpu.sh — the one script a session with a GPU machine runs (DESIGN.md §5): build with CUDA,
# run the GPU op-parity tests (and the unit suite, which includes device selection), the golden
# cases on CUDA when the case runner exists, and the CUDA benchmarks; logs and a summary go to
# $OUT (default ./out).
#
#   bench/gpu.sh                      # from the repository root
#   GPU_ARCHS=80 bench/gpu.sh         # A100 (default 90: H100/H200)
#   BUILD=build-gpu OUT=/tmp/o bench/gpu.sh
#
# Every step runs even if an earlier one failed (the build excepted); the exit status is 0 only
# when every step that ran passed. NGPT_GPU_TEST_ALLOW_CPU_UNIMPLEMENTED=1 lets the parity test
# skip ops whose CPU reference is not written yet.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-./out}
BUILD=${BUILD:-build-gpu}
GPU_ARCHS=${GPU_ARCHS:-90}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
status=0

say() { echo "$*" | tee -a "$SUMMARY"; }
step() {  # step NAME LOGFILE CMD...: run, log, record PASS/FAIL/SKIP (exit 77)
    local name=$1 log=$2
    shift 2
    local t0=$SECONDS
    "$@" > "$OUT/$log" 2>&1
    local rc=$?
    local verdict=PASS
    if [ $rc -eq 77 ]; then verdict=SKIP; elif [ $rc -ne 0 ]; then verdict="FAIL (exit $rc)"; status=1; fi
    say "$(printf '%-28s %-14s %4ds  %s' "$name" "$verdict" $((SECONDS - t0)) "$OUT/$log")"
    return $rc
}

say "libnextgpt gpu.sh — $(date -u +%Y-%m-%dT%H:%M:%SZ) — commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if command -v nvidia-smi > /dev/null; then
    nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
    say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
else
    say "GPU: nvidia-smi not found"
fi
say "nvcc: $(nvcc --version 2>/dev/null | tail -1)"

if [ -d "$BUILD" ]; then
    step configure configure.log meson setup --reconfigure "$BUILD" -Dcuda=enabled -Dgpu_archs="$GPU_ARCHS" -Dbuildtype=release
else
    step configure configure.log meson setup "$BUILD" -Dcuda=enabled -Dgpu_archs="$GPU_ARCHS" -Dbuildtype=release
fi || { say "configure failed: see $OUT/configure.log"; exit 1; }
step build build.log ninja -C "$BUILD" -j "$JOBS" || { say "build failed: see $OUT/build.log"; exit 1; }

counts() {  # the Ok/Fail/Skipped/Timeout counts of a meson test log, and any SKIP reasons
    say "$(printf '%-28s %s' "" "$(grep -E '^(Ok|Fail|Skipped|Timeout): ' "$1" | tr -s ' ' | paste -sd' ')")"
    grep -h '^SKIP: ' "$2" 2>/dev/null | sort -u | sed 's/^/                             /' | tee -a "$SUMMARY"
}
step "test suite gpu" test-gpu.log meson test -C "$BUILD" --suite gpu --print-errorlogs --timeout-multiplier 2
cp "$BUILD/meson-logs/testlog.txt" "$OUT/testlog-gpu.txt" 2>/dev/null
counts "$OUT/test-gpu.log" "$OUT/testlog-gpu.txt"
step "test suite unit" test-unit.log meson test -C "$BUILD" --suite unit --print-errorlogs
cp "$BUILD/meson-logs/testlog.txt" "$OUT/testlog-unit.txt" 2>/dev/null
counts "$OUT/test-unit.log" "$OUT/testlog-unit.txt"

# Golden cases on CUDA: the golden suite honours NGPT_DEVICE (cpu|cuda|auto) for ngpt-case.
if [ -x "$BUILD/tools/ngpt-case" ]; then
    "$BUILD/tools/ngpt-case" --help > "$OUT/ngpt-case-help.txt" 2>&1
    NGPT_DEVICE=cuda step "golden cases (cuda)" test-golden-cuda.log \
        meson test -C "$BUILD" --suite golden --print-errorlogs --timeout-multiplier 3
    cp "$BUILD/meson-logs/testlog.txt" "$OUT/testlog-golden-cuda.txt" 2>/dev/null
else
    say "$(printf '%-28s %s' "golden cases (cuda)" "SKIP (no $BUILD/tools/ngpt-case yet)")"
fi

# Benchmarks: every bench/*cuda* program that was built.
for src in bench/*cuda*.c bench/*cuda*.cu; do
    [ -e "$src" ] || continue
    name=$(basename "${src%.*}")
    exe="$BUILD/bench/$name"
    if [ -x "$exe" ]; then
        step "bench $name" "$name.tsv" "$exe"
    else
        say "$(printf '%-28s %s' "bench $name" "SKIP (not built)")"
    fi
done
if [ -f "$OUT/bench_attention_cuda.tsv" ]; then
    say ""
    say "attention forward (TFLOP/s; anchors: reference/performance-anchors.md §1.2):"
    grep -v '^#' "$OUT/bench_attention_cuda.tsv" | column -t -s $'\t' | tee -a "$SUMMARY" > /dev/null
fi

say ""
say "overall: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
