#!/bin/bash
# Coverage-guided runs of the libFuzzer targets of tests/fuzz.
# usage: tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]   (default: every target)
#   BUILD_DIR: configured with CC=clang -Dfuzz=true (and -Db_sanitize=address,undefined)
# Each target starts from its seeds (the folders tests/fuzz/meson.build replays) in a fresh
# working corpus under $NGPT_FUZZ_WORK (default: a temporary folder); a crash, leak, timeout or
# broken contract leaves its input there as crash-*/leak-*/timeout-*, prints it in base64 and
# fails the run: copy it into tests/fuzz/corpus/TARGET/ with the fix, so that the replay test
# keeps it fixed.
# NGPT_FUZZ_SEED fixes libFuzzer's seed (CI sets 1: the same mutants in the same order; how far
# a timed run gets still depends on the machine, so a faster one can find more, and the base64
# line is then all there is to go on). Developers' runs default to a random seed.
# -timeout=120: a 441-byte JPEG may legitimately claim 76 megapixels (Pillow decodes it too), a
# second's work that ASan and the coverage hooks stretch past 30 s.
# Exit 0 when every target ran clean.
set -u
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n 2,15p "$0"; exit 2; }
build=$1 secs=$2
shift 2
targets=${*:-$(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||')}
work=${NGPT_FUZZ_WORK:-$(mktemp -d)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
case $build in /*) ;; *) build=$PWD/$build ;; esac  # absolute: the targets run from other folders
export NGPT_TINY_BUNDLE=$build/tools/tiny
bad=0
for t in $targets; do
    case $t in
        weights) seeds="tests/fuzz/corpus/weights tests/data tests/data/bad" ;;
        image) seeds="tests/fuzz/corpus/image tests/data/media" ;;
        audio) seeds="tests/fuzz/corpus/audio tests/data/media/stereo44k.wav" ;;
        *) seeds="tests/fuzz/corpus/$t" ;;
    esac
    mkdir -p "$work/$t"
    # a lone file is not a corpus folder for libFuzzer: give it one of its own
    dirs=""
    for s in $seeds; do
        if [ -f "$s" ]; then mkdir -p "$work/$t.seed" && cp "$s" "$work/$t.seed/"; s=$work/$t.seed; fi
        dirs="$dirs $s"
    done
    # shellcheck disable=SC2086
    "$build/tests/fuzz/fuzz_$t" -seed="${NGPT_FUZZ_SEED:-0}" -max_total_time="$secs" -timeout=120 -rss_limit_mb=6000 -max_len=65536 \
        -artifact_prefix="$work/$t-" -print_final_stats=1 "$work/$t" $dirs >"$work/$t.log" 2>&1
    rc=$?
    execs=$(awk '/^stat::number_of_executed_units/ {print $2}' "$work/$t.log")
    if [ $rc -eq 0 ]; then
        echo "fuzz_$t: ok (${execs:-?} inputs in ${secs} s)"
    else
        bad=1
        echo "fuzz_$t: FAILED (exit $rc); input and log in $work"
        grep -E 'fuzz contract broken|ERROR: |runtime error|SUMMARY' "$work/$t.log" | head -n 5
        # the input itself, so that a find on a machine of CI's is reproducible from its log alone
        for f in "$work/$t"-crash-* "$work/$t"-leak-* "$work/$t"-timeout-*; do
            [ -f "$f" ] && echo "input ${f##*/} (base64): $(head -c 4096 "$f" | base64 -w 0)"
        done
    fi
done
exit $bad
