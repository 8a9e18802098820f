#!/usr/bin/env bash
# gpu_remote.sh — the GPU checks, run on a lent machine over the tree that bench/gpu_pack.sh
# prepared (device tool: carry [".device"], command bench/gpu_remote.sh). Writes a summary and one
# log per step to $OUT. Steps: CUDA op parity with the CPU backend, device selection, every golden
# case with --device cuda (media-decoding stages excepted: see gpu_pack.sh), attention (ours and
# torch SDPA, with a ratio table) and LLaMA benchmarks. Every step runs even if an earlier one failed.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-./out}
D=.device
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
step() {  # step NAME LOG SECONDS CMD...
    local name=$1 log=$2 lim=$3 t0=$SECONDS
    shift 3
    timeout "$lim" "$@" > "$OUT/$log" 2>&1
    local rc=$? v=PASS
    if [ $rc -eq 77 ]; then v=SKIP; elif [ $rc -eq 124 ]; then v="TIMEOUT ${lim}s"; elif [ $rc -ne 0 ]; then v="FAIL (exit $rc)"; fi
    say "$(printf '%-26s %-14s %4ds' "$name" "$v" $((SECONDS - t0)))"
}
say "libnextgpt gpu_remote.sh $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
say "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
tar -C "$D" -xJf "$D/pack.tar.xz" || { say "unpack failed"; exit 1; }
mkdir -p ../shared && rm -rf ../shared/golden && mv "$D/golden" ../shared/golden
# The media-decoding cases of ours need the real codecs (stubbed here).
rm -rf tests/golden/vision/image.preprocess tests/golden/vision/audio.fbank
libdir() { find /usr /opt -name "$1" 2>/dev/null | head -1 | xargs -r dirname; }
export LD_LIBRARY_PATH="$PWD/$D/bin:$PWD/$D/lib:$(libdir libcudnn.so.9):$(libdir libcublas.so.13):$(libdir libcudart.so.13):/usr/local/cuda/lib64"
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$D/bin/libnextgpt.so.0" > "$OUT/ldd.txt" 2>&1
grep -q "not found" "$OUT/ldd.txt" && say "missing: $(grep 'not found' "$OUT/ldd.txt" | tr -s ' \t' ' ' | paste -sd,)"
export NGPT_LOG_LEVEL=${NGPT_LOG_LEVEL:-info}
B=$D/bin
step "context (device select)" context.log 60 "$B/test_context_cuda"
step "ops parity cuda vs cpu" ops_cuda.log 150 "$B/test_ops_cuda"
grep -iE "fail|mismatch|error|not compared" "$OUT/ops_cuda.log" | head -40 >> "$SUMMARY"
tail -3 "$OUT/ops_cuda.log" >> "$SUMMARY"
step "golden cases --device cuda" golden_cuda.log 240 "$B/ngpt-case" all ../shared/golden tests/golden --device cuda
grep -v "^PASS" "$OUT/golden_cuda.log" | head -60 >> "$SUMMARY"
step "bench attention cuda" bench_attention_cuda.tsv 60 "$B/bench_attention_cuda"
step "bench attention pytorch" bench_attention_torch.tsv 60 python3 bench/attention_torch.py
# ours vs torch SDPA, joined on the shape columns (dtype .. heads); ratio > 1 = ours faster
say "attention forward TFLOP/s, libnextgpt vs torch SDPA (same card, same shapes):"
awk -F'\t' '/^#/ || $1 == "dtype" || NF < 9 { next }
    FILENAME == ARGV[1] { t[$1 FS $2 FS $3 FS $4 FS $5 FS $6 FS $7] = $9; next }
    { k = $1 FS $2 FS $3 FS $4 FS $5 FS $6 FS $7
      printf "%-4s hd %3d causal %d S %4d Skv %4d B %2d H %2d  ours %6.1f  torch %6s  ratio %s\n",
             $1, $2, $3, $4, $5, $6, $7, $9, (k in t) ? t[k] : "-", (k in t && t[k] > 0) ? sprintf("%.2f", $9 / t[k]) : "-" }' \
    "$OUT/bench_attention_torch.tsv" "$OUT/bench_attention_cuda.tsv" | tee -a "$SUMMARY"
NGPT_BENCH_DEVICE=cuda step "bench llama cuda" bench_llama_cuda.log 90 "$B/bench_llama" 4 f16 512 32
tail -6 "$OUT/bench_llama_cuda.log" >> "$SUMMARY"
step "bench llama pytorch" bench_llama_torch.log 90 python3 bench/llama_torch.py 4 512 32
tail -4 "$OUT/bench_llama_torch.log" >> "$SUMMARY"
say "done in ${SECONDS}s"
