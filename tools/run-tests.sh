#!/bin/bash
# Build libnextgpt twice — the default configuration (CUDA kernels too when the toolkit is
# present) and a CPU-only ASan+UBSan build — run the whole test suite in both, compile a
# release build (no tests), run every libFuzzer target briefly (clang), and end with one line
# "N passed, N failed, N skipped" over all tests of both test builds and the fuzz targets.
# usage: tools/run-tests.sh            (dependencies: tools/install-deps.sh)
set -u
cd "$(dirname "$0")/.."
[ -d /usr/local/cuda/bin ] && export PATH="/usr/local/cuda/bin:$PATH"
jobs=${NGPT_JOBS:-$(nproc)}
passed=0; failed=0; skipped=0; broken=0

run_suite() {  # name, build dir, meson options...
    local name=$1 dir=$2
    shift 2
    echo "=== $name: configure ($*)"
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; broken=1; return; }
    fi
    grep -A8 'libnextgpt$' "$dir.setup.log" 2>/dev/null | sed -n 1,6p
    echo "=== $name: build"
    ninja -C "$dir" -j "$jobs" >"$dir.build.log" 2>&1 || { tail -n 60 "$dir.build.log"; broken=1; return; }
    echo "=== $name: test"
    meson test -C "$dir" --num-processes "$jobs" --print-errorlogs 2>&1 | tee "$dir.test.log" | grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout):'
    grep -hE '^golden: [0-9]+ passed' "$dir/meson-logs/testlog.txt" || true
    grep -h '^unimplemented stages' "$dir/meson-logs/testlog.txt" || true
    local ok fail skip tmo xpass
    ok=$(awk '/^Ok:/ {print $2}' "$dir.test.log"); fail=$(awk '/^Fail:/ {print $2}' "$dir.test.log")
    skip=$(awk '/^Skipped:/ {print $2}' "$dir.test.log"); tmo=$(awk '/^Timeout:/ {print $2}' "$dir.test.log")
    xpass=$(awk '/^Unexpected Pass:/ {print $3}' "$dir.test.log")
    if [ -z "$ok" ]; then broken=1; return; fi
    passed=$((passed + ok)); failed=$((failed + ${fail:-0} + ${tmo:-0} + ${xpass:-0})); skipped=$((skipped + ${skip:-0}))
}

run_suite default build-test -Dbuildtype=debugoptimized
# (tests/meson.build points LSAN_OPTIONS at tests/lsan.supp: leaks inside system codec libraries
# that nothing returns to us, documented there)
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suite asan build-test-asan -Dcuda=disabled -Dbench=false -Db_sanitize=address,undefined -Db_lundef=false

# A release (-O3) build, compiled only: gcc's -O3 analyses (format truncation, ...) warn where -O2
# does not, and -Werror makes them build failures for users who build release.
echo "=== release: build (-O3, CPU-only; compiled, not tested again)"
if [ ! -f build-test-release/build.ninja ]; then
    meson setup build-test-release -Dbuildtype=release -Dcuda=disabled >build-test-release.setup.log 2>&1 ||
        { cat build-test-release.setup.log; broken=1; }
fi
[ -f build-test-release/build.ninja ] &&
    { ninja -C build-test-release -j "$jobs" >build-test-release.build.log 2>&1 || { tail -n 60 build-test-release.build.log; broken=1; }; }

# A short coverage-guided run of every libFuzzer target (clang, ASan+UBSan): keeps the -Dfuzz=true
# build working and tries new mutants of every parser on each run; each target counts as one test.
# Long runs are a developer's job (tests/fuzz/run.sh, docs/architecture.md).
if command -v clang >/dev/null; then
    echo "=== fuzz: build (clang, libFuzzer, ASan+UBSan)"
    if [ ! -f build-test-fuzz/build.ninja ]; then
        CC=clang meson setup build-test-fuzz -Dfuzz=true -Dcuda=disabled -Dbench=false -Dbindings=disabled \
            -Db_sanitize=address,undefined -Db_lundef=false >build-test-fuzz.setup.log 2>&1 ||
            { cat build-test-fuzz.setup.log; broken=1; }
    fi
    if [ -f build-test-fuzz/build.ninja ]; then
        if ninja -C build-test-fuzz -j "$jobs" >build-test-fuzz.build.log 2>&1; then
            echo "=== fuzz: ${NGPT_FUZZ_SECONDS:-20} s a target"
            NGPT_FUZZ_SEED=${NGPT_FUZZ_SEED:-1} NGPT_FUZZ_WORK=$PWD/build-test-fuzz/fuzz-work bash tests/fuzz/run.sh build-test-fuzz "${NGPT_FUZZ_SECONDS:-20}" |
                tee build-test-fuzz.run.log
            ok=$(grep -c ': ok (' build-test-fuzz.run.log); fail=$(grep -c ': FAILED' build-test-fuzz.run.log)
            passed=$((passed + ok)); failed=$((failed + fail))
        else
            tail -n 60 build-test-fuzz.build.log; broken=1
        fi
    fi
else
    echo "=== fuzz: clang not found (tools/install-deps.sh installs it): libFuzzer runs skipped"
    skipped=$((skipped + 1))
fi

[ "$broken" -ne 0 ] && failed=$((failed + 1)) && echo "a build or test run could not complete (counted as one failure)"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
