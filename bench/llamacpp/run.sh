#!/bin/sh
# libnextgpt's LLaMA backbone vs llama.cpp (and PyTorch CPU) on the same random weights with
# LLaMA-7B layer dims (2 layers), F32 and F16, in one table. A benchmark, not a test.
#   bench/llamacpp/run.sh            (from anywhere; uses ./build of the repository)
# Environment: THREADS (2), PP (512), PROMPT (16), TG (64), REPS (3: best of, per process),
#   RUNS (2: processes per dtype; the table shows the least disturbed one, the log all),
#   TORCH (1: also bench_torch.py; 0 skips), TORCH_PP (128), TORCH_TG (16),
#   MODELS (/tmp/ngpt_llcpp: generated models, ~8 GB), BUILD (build).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
THREADS=${THREADS:-2} PP=${PP:-512} PROMPT=${PROMPT:-16} TG=${TG:-64} REPS=${REPS:-3} RUNS=${RUNS:-2}
TORCH=${TORCH:-1} TORCH_PP=${TORCH_PP:-128} TORCH_TG=${TORCH_TG:-16}
MODELS=${MODELS:-/tmp/ngpt_llcpp} BUILD=${BUILD:-$ROOT/build}
PY=/usr/bin/python3
LOG=$MODELS/run.log
. "$HERE/../openblas_core.sh"

[ -f "$HERE/.deps/src/include/llama.h" ] || "$HERE/setup.sh"
BIN=$BUILD/bench/bench_vs_llamacpp
if [ ! -x "$BIN" ]; then
    meson setup --reconfigure "$BUILD" >/dev/null
fi
ninja -C "$BUILD" bench/bench_vs_llamacpp >/dev/null
LIB=$HERE/.deps/lib

mkdir -p "$MODELS"
for dt in f32 f16; do
    if [ ! -f "$MODELS/$dt/model.gguf" ]; then
        echo "generating $MODELS/$dt (HF safetensors + GGUF)..." >&2
        $PY "$HERE/to_gguf.py" gen "$MODELS/$dt" --dtype $dt
        $PY "$HERE/to_gguf.py" convert "$MODELS/$dt" "$MODELS/$dt/model.gguf"
    fi
done

: > "$LOG"
say() { echo "$@" | tee -a "$LOG"; }
say "# $(date -u '+%F %T UTC'), $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1) (family $(sed -n 's/^cpu family[^:]*: //p' /proc/cpuinfo | head -1) model $(sed -n 's/^model[^a-z:]*: //p' /proc/cpuinfo | head -1)), $(nproc) CPUs, $THREADS threads per engine, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
say "# llama.cpp $(basename "$(readlink "$HERE/.deps/src")" | sed 's/^src-//') from npm @node-llama-cpp/linux-x64 $(basename "$(dirname "$(dirname "$(readlink "$HERE/.deps/lib")")")" | sed 's/^bin-//')"

# 1. correctness first: same model?
if ! "$BIN" "$LIB" "$MODELS/f32" check "$THREADS" 16 2>>"$LOG" | tee -a "$LOG"; then
    say "F32 logits of libnextgpt and llama.cpp differ (or llama.cpp did not run): speed comparison skipped"
    exit 1
fi
"$BIN" "$LIB" "$MODELS/f16" check "$THREADS" 16 2>>"$LOG" | tee -a "$LOG" || true
if [ "$TORCH" = 1 ]; then
    for dt in f32 f16; do
        $PY "$HERE/bench_torch.py" "$MODELS/$dt" --threads "$THREADS" --pp 1 --tg 1 \
            --reps 1 --check 16 2>>"$LOG" | grep torchcheck | tee -a "$LOG"
    done
fi

# 2. speed
for dt in f32 f16; do
    r=0
    while [ $r -lt "$RUNS" ]; do
        say "# load average $(cut -d' ' -f1-3 /proc/loadavg)"
        "$BIN" "$LIB" "$MODELS/$dt" speed "$THREADS" "$PP" "$PROMPT" "$TG" "$REPS" 2>>"$LOG" | tee -a "$LOG"
        r=$((r + 1))
    done
    if [ "$TORCH" = 1 ]; then
        say "# load average $(cut -d' ' -f1-3 /proc/loadavg)"
        $PY "$HERE/bench_torch.py" "$MODELS/$dt" --threads "$THREADS" --pp "$TORCH_PP" \
            --tg "$TORCH_TG" --reps 2 2>>"$LOG" | tee -a "$LOG"
    fi
done
say "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# 3. table
$PY - "$LOG" <<'PYEOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
def kv(l):
    return dict(x.split("=", 1) for x in l.split() if "=" in x)
speed, torch, loads = {}, {}, []
for i, l in enumerate(lines):
    if l.startswith("# load average"):
        loads.append(l.split("average")[1].strip(" :"))
    if l.startswith("RESULT speed"):
        dt = l.split()[2]
        d = {k: float(v) for k, v in kv(l).items()}
        d["load"] = loads[-1] if loads else "?"
        # least disturbed run: highest combined decode + prefill throughput of both engines
        score = d["ng_tg"] + d["ll_tg"] + (d["ng_pp"] + d["ll_pp"]) / 50
        if dt not in speed or score > speed[dt]["score"]:
            d["score"] = score
            speed[dt] = d
    if l.startswith("RESULT torch "):
        dt = l.split()[2]
        torch[dt] = {k: float(v) for k, v in kv(l).items()}
print()
print(lines[0].lstrip("# "))
print(lines[1].lstrip("# "))
for l in lines:
    if l.startswith("RESULT check") or l.startswith("RESULT torchcheck"):
        print(l[7:])
print()
print("| weights | engine | prefill tok/s | decode tok/s | decode % of read ceiling | prefill ours / x | decode ours / x | load avg (1/5/15 min) |")
print("|---|---|---|---|---|---|---|---|")
for dt in ("F32", "F16"):
    if dt not in speed:
        continue
    s = speed[dt]
    pp, tg = int(s["pp"]), int(s["tg"])
    print(f"| {dt} | libnextgpt | {s['ng_pp']:.1f} (pp{pp}) | {s['ng_tg']:.2f} | {100 * s['ng_tg'] / s['ceil']:.0f}% | - | - | {s['load']} |")
    print(f"| {dt} | llama.cpp | {s['ll_pp']:.1f} (pp{pp}) | {s['ll_tg']:.2f} | {100 * s['ll_tg'] / s['ceil']:.0f}% | "
          f"**{s['ng_pp'] / s['ll_pp']:.2f}** | **{s['ng_tg'] / s['ll_tg']:.2f}** | same run |")
    if dt in torch:
        t = torch[dt]
        # torch ran in its own process after; ratio against this dtype's libnextgpt numbers
        print(f"| {dt} | PyTorch {'(F16 upcast to F32)' if dt == 'F16' else ''} | {t['pp_tps']:.1f} (pp{int(t['pp'])}) | "
              f"{t['tg_tps']:.2f} | {100 * t['tg_tps'] / s['ceil']:.0f}% | {s['ng_pp'] / t['pp_tps']:.2f} (pp differs) | "
              f"{s['ng_tg'] / t['tg_tps']:.2f} | next process |")
    print(f"| {dt} | read ceiling | | {s['ceil']:.2f} | {s['mb_tok']:.0f} MB/token at {s['bw']:.1f} GB/s | | | |")
PYEOF
