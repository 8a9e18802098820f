#!/usr/bin/env bash
# gpu_remote.sh — the GPU checks, run on a lent machine over the tree that bench/gpu_pack.sh
# prepared (device tool: carry [".device"], command bench/gpu_remote.sh). Writes a summary and one
# log per step to $OUT. Steps: CUDA op parity with the CPU backend, device selection, every golden
# case with --device cuda (media-decoding stages excepted: see gpu_pack.sh), attention (ours and
# torch SDPA, with a ratio table) and LLaMA benchmarks, the encoder's and decoders' compute dtypes (F16/BF16 vs the CPU on the golden
# models), the ImageBind and SD 1.5 UNet/VAE benchmarks, AudioLDM and Zeroscope end to end (ours
# and PyTorch's). Every step runs even if an earlier one
# failed. STEPS=REGEX runs only the steps whose names match; SKIP=REGEX skips those that match.
# All of it is ~11 minutes on an H200 (GPU run 7: ~8 without the memory turn, the turn ~2, the
# machine's start ~1 more): within the device tool's 10-minute limit per call, run it as two
# calls, BUDGET=450 SKIP='pipeline memory', then STEPS='pipeline memory' plus whatever the budget
# skipped (the same machine if it is still warm: it goes back 30 s after a call).
# BUDGET=SECONDS: no step runs past that many seconds from the start (each step's limit is cut
# to what is left; a step with under 20 s left is skipped), so the summary and the logs come back
# inside the device call's limit.
# QUICK=1 (for a session with little device time left): only the checks of code not yet run on a
# GPU and the benchmarks that decide its switches, ~4 minutes: op parity, the backbone/encoder/
# decoder tests (graphs, channels last), the golden cases, bench_llama with and without the
# decode graph, bench_imagebind (its "+ graph" rows), bench_unet (every switch) and Zeroscope
# end to end with ours and PyTorch's.
set -u
cd "$(dirname "$0")/.."
if [ "${QUICK:-0}" = 1 ] && [ -z "${STEPS:-}" ]; then
    STEPS='^(context|ops parity|llama cuda vs|encoder cuda vs|decoder dtype|golden cases|bench llama cuda$|bench llama cuda graph|bench imagebind cuda$|sd bench unet f16 cuda$|gen: write|gen zeroscope 24f|gen zeroscope 24 graph)'
fi
OUT=${OUT:-./out}
D=.device
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
# the device tool brings back at most 8 files: step logs go to $LOGS, tarred into $OUT at the end
LOGS=$(mktemp -d /tmp/gpu_logs.XXXXXX)
trap 'tar -C "$LOGS" -czf "$OUT/logs.tgz" . 2>/dev/null' EXIT
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
step() {  # step NAME LOG SECONDS CMD...
    local name=$1 log=$2 lim=$3 t0=$SECONDS
    shift 3
    if [ -n "${STEPS:-}" ] && ! echo "$name" | grep -qE "$STEPS"; then return 0; fi
    if [ -n "${SKIP:-}" ] && echo "$name" | grep -qE "$SKIP"; then say "$(printf '%-26s %s' "$name" "SKIP (SKIP=$SKIP)")"; return 0; fi
    if [ -n "${BUDGET:-}" ]; then  # end well inside the device call's limit, the logs tarred
        local left=$((BUDGET - SECONDS - 15))
        if [ $left -lt 20 ]; then say "$(printf '%-26s %s' "$name" "SKIP (BUDGET=${BUDGET}s spent)")"; return 0; fi
        [ $lim -gt $left ] && lim=$left
    fi
    timeout "$lim" "$@" > "$LOGS/$log" 2>&1
    local rc=$? v=PASS
    if [ $rc -eq 77 ]; then v=SKIP; elif [ $rc -eq 124 ]; then v="TIMEOUT ${lim}s"; elif [ $rc -ne 0 ]; then v="FAIL (exit $rc)"; fi
    say "$(printf '%-26s %-14s %4ds' "$name" "$v" $((SECONDS - t0)))"
}
say "libnextgpt gpu_remote.sh $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
say "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
tar -C "$D" -xJf "$D/pack.tar.xz" || { say "unpack failed"; exit 1; }
mkdir -p ../shared && rm -rf ../shared/golden && mv "$D/golden" ../shared/golden
# a pack made with OURS=1 (gpu_pack.sh) brings our golden tree: run it with STEPS='golden cases'
if [ -d "$D/ours_golden/golden" ]; then rm -rf tests/golden && mv "$D/ours_golden/golden" tests/golden; fi
# tests/golden may have stayed behind (gpu_pack.sh says why): its two models the dtype test needs
if [ ! -f tests/golden/models/sd-b-safety/model_index.json ]; then mkdir -p tests/golden/models && cp -rf "$D"/ours/. tests/golden/models/; fi
# The media-decoding cases of ours need the real codecs (stubbed here).
rm -rf tests/golden/vision/image.preprocess tests/golden/vision/audio.fbank
libdir() { find /usr /opt -name "$1" 2>/dev/null | head -1 | xargs -r dirname; }
export LD_LIBRARY_PATH="$PWD/$D/bin:$PWD/$D/lib:$(libdir libcudnn.so.9):$(libdir libcublas.so.13):$(libdir libcudart.so.13):/usr/local/cuda/lib64"
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$D/bin/libnextgpt.so.0" > "$LOGS/ldd.txt" 2>&1
grep -q "not found" "$LOGS/ldd.txt" && say "missing: $(grep 'not found' "$LOGS/ldd.txt" | tr -s ' \t' ' ' | paste -sd,)"
export NGPT_LOG_LEVEL=${NGPT_LOG_LEVEL:-info}
B=$D/bin
step "context (device select)" context.log 60 "$B/test_context_cuda"
step "ops parity cuda vs cpu" ops_cuda.log 150 "$B/test_ops_cuda"
grep -iE "fail|mismatch|error|not compared" "$LOGS/ops_cuda.log" | head -40 >> "$SUMMARY"
# the linears cuBLASLt refused (they ran on cuBLAS; the cases still compare): which shapes, why
grep -E "cuBLASLt" "$LOGS/ops_cuda.log" | sort | uniq -c | head -20 >> "$SUMMARY"
tail -3 "$LOGS/ops_cuda.log" >> "$SUMMARY"
step "llama cuda vs cpu (f32/f16/bf16)" llama_cuda.log 120 "$B/test_llama_cuda"
grep -E "rel err|FAIL|fail" "$LOGS/llama_cuda.log" | head -30 >> "$SUMMARY"
step "encoder cuda vs cpu (f32/f16/bf16)" encoder_cuda.log 120 "$B/test_encoder_cuda"
grep -E "cosine|FAIL|fail" "$LOGS/encoder_cuda.log" | head -20 >> "$SUMMARY"
step "llama upstream dtype error" llama_dtype_error.log 90 python3 bench/llama_dtype_error.py ../shared/golden
tail -3 "$LOGS/llama_dtype_error.log" >> "$SUMMARY"
step "decoder dtype cuda" decoder_dtype_cuda.log 120 "$B/test_decoder_dtype_cuda"
grep -E "rel L2|safety checker|FAIL|failed" "$LOGS/decoder_dtype_cuda.log" | grep -v "trace #" | head -30 >> "$SUMMARY"
step "golden cases --device cuda" golden_cuda.log 240 "$B/ngpt-case" all ../shared/golden tests/golden --device cuda
grep -v "^PASS" "$LOGS/golden_cuda.log" | head -60 >> "$SUMMARY"
step "bench attention cuda" bench_attention_cuda.tsv 60 "$B/bench_attention_cuda"
step "bench attention pytorch" bench_attention_torch.tsv 60 python3 bench/attention_torch.py
step "bench attention cudnn" bench_attention_cudnn.tsv 60 python3 bench/attention_torch.py --backend cudnn
# ours vs torch SDPA (its own pick) and vs cuDNN's fused attention (SDPA pinned to it), joined on
# the shape columns (dtype .. heads); ratio > 1 = ours faster
say "attention forward TFLOP/s, libnextgpt vs torch SDPA and cuDNN fused attention (same card, same shapes):"
awk -F'\t' '/^#/ || $1 == "dtype" || NF < 9 { next }
    FILENAME == ARGV[1] { t[$1 FS $2 FS $3 FS $4 FS $5 FS $6 FS $7] = $9; next }
    FILENAME == ARGV[2] { u[$1 FS $2 FS $3 FS $4 FS $5 FS $6 FS $7] = $9; next }
    { k = $1 FS $2 FS $3 FS $4 FS $5 FS $6 FS $7
      printf "%-4s hd %3d causal %d S %4d Skv %4d B %2d H %2d  ours %6.1f  torch %6s  ratio %5s  cudnn %6s  ratio %5s\n",
             $1, $2, $3, $4, $5, $6, $7, $9, (k in t) ? t[k] : "-", (k in t && t[k] > 0) ? sprintf("%.2f", $9 / t[k]) : "-",
             (k in u) ? u[k] : "-", (k in u && u[k] > 0) ? sprintf("%.2f", $9 / u[k]) : "-" }' \
    "$LOGS/bench_attention_torch.tsv" "$LOGS/bench_attention_cudnn.tsv" "$LOGS/bench_attention_cuda.tsv" | tee -a "$SUMMARY"
NGPT_BENCH_PROFILE=1 NGPT_BENCH_DEVICE=cuda step "bench llama cuda" bench_llama_cuda.log 150 "$B/bench_llama" 32 f16 512 32
cat "$LOGS/bench_llama_cuda.log" >> "$SUMMARY"
NGPT_BENCH_ATTN_SPLIT=0 NGPT_BENCH_DEVICE=cuda step "bench llama cuda flash decode" bench_llama_split.log 150 "$B/bench_llama" 32 f16 512 32
grep -E "^prefill|^decode|flash" "$LOGS/bench_llama_split.log" >> "$SUMMARY"
# nx_cuda_set_gemm_lt off: the prefill's linears through cuBLAS + a bias kernel, not the default
# cuBLASLt (decode's M 1 is on the GEMV either way)
NGPT_BENCH_GEMM_LT=0 NGPT_BENCH_DEVICE=cuda step "bench llama cuda cuBLAS" bench_llama_lt.log 150 "$B/bench_llama" 32 f16 512 32
grep -E "^prefill|^decode|cuBLAS" "$LOGS/bench_llama_lt.log" | head -20 >> "$SUMMARY"
# NGPT_BACKBONE_FLAG_CUDA_GRAPH: decode steps replayed from a recording (no profile: its syncs
# would stop the capture)
NGPT_BENCH_CUDA_GRAPH=1 NGPT_BENCH_DEVICE=cuda step "bench llama cuda graph" bench_llama_graph.log 150 "$B/bench_llama" 32 f16 512 32
grep -E "^prefill|^decode|graph|captured" "$LOGS/bench_llama_graph.log" | head -20 >> "$SUMMARY"
step "bench llama pytorch" bench_llama_torch.log 90 python3 bench/llama_torch.py 32 512 32
tail -4 "$LOGS/bench_llama_torch.log" >> "$SUMMARY"
export NGPT_IB_WEIGHTS=/tmp/ngpt_ib_huge_vision.safetensors
NGPT_BENCH_PROFILE=1 NGPT_BENCH_DEVICE=cuda step "bench imagebind cuda" bench_imagebind_cuda.log 120 "$B/bench_imagebind" 5
grep -E "^\||^# device|^# op profile|^#   " "$LOGS/bench_imagebind_cuda.log" >> "$SUMMARY"
# the same with the linears through cuBLAS + a bias kernel, not the default cuBLASLt (rows "- Lt")
NGPT_BENCH_PROFILE=1 NGPT_BENCH_GEMM_LT=0 NGPT_BENCH_DEVICE=cuda step "bench imagebind cuda cuBLAS" bench_imagebind_lt.log 120 "$B/bench_imagebind" 5
grep -E "^\||^# op profile|^#   linear|cuBLAS" "$LOGS/bench_imagebind_lt.log" | head -40 >> "$SUMMARY"
step "bench imagebind pytorch" bench_imagebind_torch.log 120 python3 bench/imagebind_torch.py "$NGPT_IB_WEIGHTS" 5 2 --cuda
grep -E "^\||^# torch" "$LOGS/bench_imagebind_torch.log" >> "$SUMMARY"
NGPT_BENCH_PROFILE=1 NGPT_BENCH_DEVICE=cuda step "sd bench unet f16 cuda" bench_unet_cuda.log 150 "$B/bench_unet" f16 50
grep -E "^(unet|vae|generate)|^#" "$LOGS/bench_unet_cuda.log" | head -80 >> "$SUMMARY"
# the same with cuBLAS + a bias kernel, not the default cuBLASLt (every line says "cuBLAS linears")
NGPT_BENCH_PROFILE=1 NGPT_BENCH_GEMM_LT=0 NGPT_BENCH_DEVICE=cuda step "sd bench unet f16 cuda cuBLAS" bench_unet_lt.log 150 "$B/bench_unet" f16 50
grep -E "^(unet|vae|generate)|^# op profile|^#   linear|cuBLAS linears" "$LOGS/bench_unet_lt.log" | head -40 >> "$SUMMARY"
# Issues 8 and 9: AudioLDM-l-full and Zeroscope v2 576w end to end, f16, ours vs PyTorch eager on the
# same random-weight folders (bench_decoders / bench_unet3d write them; the scheduler and
# model_index.json come from the golden tiny models, which have the real pipelines' ones).
G=../shared/golden/models
step "gen: write folders" gen_write.log 150 bash -c "$B/bench_decoders write /tmp/ngpt_ldm audioldm &&
    NGPT_ZS_DIR=/tmp/ngpt_zs $B/bench_unet3d write &&
    cp -r $G/audioldm-a/scheduler $G/audioldm-a/model_index.json /tmp/ngpt_ldm/ &&
    cp -r $G/zeroscope-a/scheduler $G/zeroscope-a/model_index.json /tmp/ngpt_zs/"
for secs in 5 9; do
    NGPT_BENCH_DEVICE=cuda step "gen audioldm ${secs}s cuda" gen_ldm${secs}_cuda.log 120 "$B/bench_decoders" gen /tmp/ngpt_ldm audioldm $secs 50 f16
    grep -E "^generate|^#" "$LOGS/gen_ldm${secs}_cuda.log" >> "$SUMMARY"
    step "gen audioldm ${secs}s torch" gen_ldm${secs}_torch.log 120 python3 bench/gen_torch.py audioldm /tmp/ngpt_ldm $secs 50
    grep -E "generate|^#" "$LOGS/gen_ldm${secs}_torch.log" >> "$SUMMARY"
done
NGPT_BENCH_PROFILE=1 NGPT_BENCH_DEVICE=cuda step "gen zeroscope 24f cuda" gen_zs_cuda.log 240 "$B/bench_decoders" gen /tmp/ngpt_zs zeroscope 24 50 f16
grep -E "^generate|^#" "$LOGS/gen_zs_cuda.log" | head -30 >> "$SUMMARY"
step "gen zeroscope 24f torch" gen_zs_torch.log 240 python3 bench/gen_torch.py zeroscope /tmp/ngpt_zs 24 50
grep -E "generate|^#" "$LOGS/gen_zs_torch.log" >> "$SUMMARY"
# the step recorded as a CUDA graph (NGPT_DECODER_FLAG_CUDA_GRAPH); the log says if it fell back
for g in "audioldm 5 ldm" "audioldm 9 ldm" "zeroscope 24 zs"; do
    set -- $g
    NGPT_BENCH_CUDA_GRAPH=1 NGPT_BENCH_DEVICE=cuda step "gen $1 $2 graph cuda" gen_$1_$2_graph.log 240 "$B/bench_decoders" gen "/tmp/ngpt_$3" "$1" "$2" 50 f16
    grep -E "^generate|^#|not captured" "$LOGS/gen_$1_$2_graph.log" >> "$SUMMARY"
done
# (F16 decoders run channels last on CUDA without NGPT_DECODER_FLAG_CHANNELS_LAST since session 31:
# run 7's "channels last" gen steps are the graph steps above now)
# Issue 7: the peak GPU memory of a real-size text + image-in, image-out turn (Vicuna-7B + delta,
# ImageBind-huge, SD 1.5; F16; goal 18 GiB), with random weights at the real sizes written here
# (~22 GB), nvidia-smi sampling the device's memory every 100 ms. Last: it takes the longest.
step "pipeline memory: write bundle" bundle_write.log 300 python3 tools/make_sized_bundle.py /tmp/ngpt_real --preset real --list-tensors "$B/list_tensors"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$LOGS/smi_memory.txt" 2>&1 &
SMI=$!
NGPT_BENCH_DEVICE=cuda step "pipeline memory cuda" pipeline_memory_cuda.log 240 "$B/pipeline_memory" /tmp/ngpt_real data/tiny/cat.jpg 512 2 0
kill $SMI 2> /dev/null
cat "$LOGS/pipeline_memory_cuda.log" | grep -vE "^smaps|^  " >> "$SUMMARY"
say "nvidia-smi memory.used during the turn: min $(sort -n "$LOGS/smi_memory.txt" | head -1) MiB, peak $(sort -n "$LOGS/smi_memory.txt" | tail -1) MiB (goal 18 GiB = 18432 MiB)"
say "done in ${SECONDS}s"
