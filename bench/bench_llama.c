/* bench_llama.c — backbone prefill and decode speed on a random-weight model with LLaMA-7B's
 * layer dimensions (hidden 4096, 32 heads, FFN 11008, vocab 32000) but few layers, through the
 * public API. Decode is reported as tokens/s and as a fraction of the memory-read ceiling: weight
 * bytes read per token / read bandwidth measured in the same run (a multi-threaded sum over a
 * buffer of the same size).
 *
 *   bench_llama [layers=2] [dtype=f16|bf16|f32] [prompt=128] [decode=16] [threads=0]
 *   env: NGPT_BENCH_PREFILL_REPS (best of n prefills), NGPT_BENCH_CPU_BF16=1 (CPU compute dtype
 *   BF16), NGPT_BENCH_WCVT=0 (F16/BF16 W through the oneDNN path instead of the fused convert
 *   GEMM), NGPT_BENCH_ISA=portable|avx2 (cap the CPU kernels), NGPT_BENCH_PROFILE, NGPT_BENCH_DEVICE; on CUDA NGPT_BENCH_ATTN_SPLIT=0 (decode
 *   attention through the flash kernel, not the default split-KV one), NGPT_BENCH_GEMM_LT=0 (the
 *   prefill's linears through cuBLAS + a bias kernel, not the default cuBLASLt) and
 *   NGPT_BENCH_CUDA_GRAPH=1 (decode steps recorded and replayed: NGPT_BACKBONE_FLAG_CUDA_GRAPH).
 */
#include "nextgpt.h"
#include "bench_membw.h"
#include "bench_util.h"
#include "api/context.h"
#include "core/alloc.h"
#include "core/dtype.h"
#include "core/weights.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/backend.h"
#include "ops/ops.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

/* Random values; beyond 1M elements a random block repeated (the values do not matter for speed,
 * and a full-size 7B model would otherwise take minutes to draw). */
static void *rand_tensor(ngpt_dtype dt, size_t n, float scale)
{
    size_t es = ngpt_dtype_size(dt);
    void *p = malloc(n * es);
    const size_t block = (size_t)1 << 20;
    for (size_t i = 0; i < n && i < block; i++) {
        float v = frand() * scale;
        if (dt == NGPT_DTYPE_F32) ((float *)p)[i] = v;
        else if (dt == NGPT_DTYPE_F16) ((uint16_t *)p)[i] = nx_f32_to_f16(v);
        else ((uint16_t *)p)[i] = nx_f32_to_bf16(v);
    }
    for (size_t i = block; i < n; i += block) memcpy((char *)p + i * es, p, (n - i < block ? n - i : block) * es);
    return p;
}


static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int layers = argc > 1 ? atoi(argv[1]) : 2;
    const char *dts = argc > 2 ? argv[2] : "f16";
    int prompt = argc > 3 ? atoi(argv[3]) : 128;
    int decode = argc > 4 ? atoi(argv[4]) : 16;
    int threads = argc > 5 ? atoi(argv[5]) : 0;
    const int H = 4096, NH = 32, I = 11008, V = 32000;
    ngpt_dtype dt = !strcmp(dts, "f32") ? NGPT_DTYPE_F32 : !strcmp(dts, "bf16") ? NGPT_DTYPE_BF16 : NGPT_DTYPE_F16;
    const char *tname = dt == NGPT_DTYPE_F32 ? "float32" : dt == NGPT_DTYPE_F16 ? "float16" : "bfloat16";

    char dir[512];
    snprintf(dir, sizeof dir, "%s/ngpt_bench_llama_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return 1;
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"hidden_size\": %d, \"intermediate_size\": %d, \"num_attention_heads\": %d, \"num_hidden_layers\": %d, "
               "\"rms_norm_eps\": 1e-6, \"vocab_size\": %d, \"max_position_embeddings\": 2048, \"torch_dtype\": \"%s\"}",
            H, I, NH, layers, V, tname);
    fclose(f);

    /* random weights */
    size_t n_t = 3 + 9 * (size_t)layers, k = 0;
    nx_st_entry *e = calloc(n_t, sizeof *e);
    char (*names)[96] = calloc(n_t, 96);
    int64_t (*shapes)[2] = calloc(n_t, sizeof *shapes);
    size_t layer_bytes = 0, es = ngpt_dtype_size(dt);
#define ADD(nm, r, d0, d1, scale)                                                            \
    do {                                                                                     \
        snprintf(names[k], 96, "%s", nm);                                                    \
        shapes[k][0] = d0;                                                                   \
        shapes[k][1] = d1;                                                                   \
        e[k] = (nx_st_entry){names[k], dt, r, shapes[k],                                     \
                             rand_tensor(dt, (size_t)(d0) * (size_t)((r) == 2 ? (d1) : 1), scale)}; \
        k++;                                                                                 \
    } while (0)
    ADD("model.embed_tokens.weight", 2, V, H, 0.1f);
    ADD("lm_head.weight", 2, V, H, 0.05f);
    ADD("model.norm.weight", 1, H, 0, 0.1f);
    for (int l = 0; l < layers; l++) {
        char nm[96];
        static const char *const mats[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        for (int m = 0; m < 7; m++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, mats[m]);
            int64_t d0 = m < 4 ? H : m < 6 ? I : H, d1 = m < 4 ? H : m < 6 ? H : I;
            ADD(nm, 2, d0, d1, 0.03f);
            layer_bytes += (size_t)d0 * (size_t)d1 * es;
        }
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD(nm, 1, H, 0, 0.1f);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(nm, 1, H, 0, 0.1f);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (nx_safetensors_write(path, e, k, NULL, 0) != NGPT_OK) {
        fprintf(stderr, "write: %s\n", ngpt_last_error());
        return 1;
    }
    for (size_t i = 0; i < k; i++) free((void *)e[i].data);

    /* NGPT_BENCH_WCVT=0: F16/BF16 weights through the oneDNN path (W converted tile by tile) instead
     * of the fused convert GEMM, for before/after comparisons with one binary. */
    if (getenv("NGPT_BENCH_WCVT") && atoi(getenv("NGPT_BENCH_WCVT")) == 0) nx_cpu_set_wcvt(false);
    const char *isa = getenv("NGPT_BENCH_ISA"); /* cap the CPU kernels: portable | avx2 */
    if (isa) nx_isa_limit(!strcmp(isa, "portable") ? NX_ISA_PORTABLE : !strcmp(isa, "avx2") ? NX_ISA_AVX2 : NX_ISA_AVX512);
    fprintf(stderr, "CPU kernels: %s\n", nx_isa_name(nx_cpu_isa()));
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    /* NGPT_BENCH_DEVICE=cuda runs it on the GPU (bench/gpu_remote.sh); the CPU is the default. */
    const char *bdev = getenv("NGPT_BENCH_DEVICE");
    const bool cuda = bdev && !strcmp(bdev, "cuda");
    cp.device = cuda ? NGPT_DEVICE_CUDA : NGPT_DEVICE_CPU;
    cp.n_threads = threads;
    /* CUDA computes in the weights' dtype (F16/BF16 on tensor cores); the CPU in F32 */
    ngpt_backbone_params bp;
    ngpt_backbone_params_default(&bp, sizeof bp);
    bp.compute_dtype = cuda ? dt : NGPT_DTYPE_F32;
    /* NGPT_BENCH_CPU_BF16=1: compute dtype BF16 on the CPU (the prompt's linears with BF16 inputs) */
    if (!cuda && getenv("NGPT_BENCH_CPU_BF16") && atoi(getenv("NGPT_BENCH_CPU_BF16"))) {
        bp.compute_dtype = NGPT_DTYPE_BF16;
        printf("# CPU compute dtype BF16 (prompt linears through oneDNN bf16)\n");
    }
    bp.n_ctx = prompt + decode + 8;
    /* NGPT_BENCH_GEMM_LT=0: linears of more than 8 rows through cuBLAS and a bias kernel instead
     * of the default cuBLASLt with the bias fused */
    const bool no_lt = cuda && getenv("NGPT_BENCH_GEMM_LT") && !atoi(getenv("NGPT_BENCH_GEMM_LT"));
    /* NGPT_BENCH_CUDA_GRAPH=1: decode steps as a recorded graph (a fallback is logged at INFO) */
    if (cuda && getenv("NGPT_BENCH_CUDA_GRAPH") && atoi(getenv("NGPT_BENCH_CUDA_GRAPH"))) {
        bp.flags |= NGPT_BACKBONE_FLAG_CUDA_GRAPH;
        cp.log_level = NGPT_LOG_INFO;
        printf("# decode steps: recorded once as a CUDA graph, replayed\n");
    }
    ngpt_context *ctx = NULL;
    ngpt_backbone *bb = NULL;
    ngpt_backbone_session *s = NULL;
    if (ngpt_context_create(&ctx, &cp) || ngpt_backbone_create(&bb, ctx, dir, &bp) ||
        ngpt_backbone_session_create(&s, bb, NULL)) {
        fprintf(stderr, "setup: %s\n", ngpt_last_error());
        return 1;
    }
    /* NGPT_BENCH_ATTN_SPLIT=0: decode attention through the flash kernel, not the default split-KV one */
    if (cuda && getenv("NGPT_BENCH_ATTN_SPLIT") && !atoi(getenv("NGPT_BENCH_ATTN_SPLIT"))) {
        nx_cuda_set_attention_split(ctx->be, false);
        printf("# decode attention: the flash kernel (not the default split-KV one)\n");
    }
    if (no_lt) {
        nx_cuda_set_gemm_lt(ctx->be, false);
        printf("# linears: cuBLAS + a bias kernel (not the default cuBLASLt)\n");
    }
    int nthr = ngpt_context_n_threads(ctx);
    int32_t *ids = malloc((size_t)prompt * sizeof *ids);
    for (int i = 0; i < prompt; i++) ids[i] = (int32_t)(i * 7919 % V);
    ngpt_backbone_batch b;
    ngpt_backbone_batch_default(&b, sizeof b);
    b.n_tokens = prompt;
    b.ids = ids;
    if (cuda) { /* first-call set-up (cuBLAS heuristics, kernel loading) out of the timing, as for PyTorch */
        if (ngpt_backbone_eval(s, &b) || ngpt_backbone_session_reset(s)) {
            fprintf(stderr, "warm-up: %s\n", ngpt_last_error());
            return 1;
        }
    }
    /* NGPT_BENCH_PREFILL_REPS=n: best of n prefills (the session reset between them) */
    const int pre_reps = getenv("NGPT_BENCH_PREFILL_REPS") && atoi(getenv("NGPT_BENCH_PREFILL_REPS")) > 1
                             ? atoi(getenv("NGPT_BENCH_PREFILL_REPS")) : 1;
    double t0, t_pre = 1e30;
    for (int r = 0; r < pre_reps; r++) {
        if (r > 0 && ngpt_backbone_session_reset(s)) return 1;
        t0 = now();
        if (ngpt_backbone_eval(s, &b)) {
            fprintf(stderr, "prefill: %s\n", ngpt_last_error());
            return 1;
        }
        if (now() - t0 < t_pre) t_pre = now() - t0;
    }
    int32_t tok = ids[prompt - 1];
    b.n_tokens = 1;
    b.ids = &tok;
    /* NGPT_BENCH_POOL_AB=1: odd tokens with the pool's jobs on its pthread workers, even ones on
     * the OpenMP team (the default: core/pool.c); best and median of each, in one process */
    const bool pool_ab = !cuda && getenv("NGPT_BENCH_POOL_AB") && atoi(getenv("NGPT_BENCH_POOL_AB"));
    nx_pool *pool = ((struct ngpt_context *)ctx)->pool;
    double *ab_t = calloc((size_t)decode + 1, sizeof *ab_t);
    if (!ab_t) return 1;
    double best = 1e30, t_all = now();
    for (int i = 0; i < decode; i++) {
        if (pool_ab) nx_pool_set_omp(pool, !(i & 1));
        t0 = now();
        if (ngpt_backbone_eval(s, &b)) {
            fprintf(stderr, "decode: %s\n", ngpt_last_error());
            return 1;
        }
        double dtm = now() - t0;
        ab_t[i] = dtm;
        if (dtm < best) best = dtm;
    }
    if (pool_ab) {
        nx_pool_set_omp(pool, true);
        for (int par = 0; par < 2; par++) {
            double v[4096];
            int n = 0;
            for (int i = par; i < decode && n < 4096; i += 2) v[n++] = ab_t[i];
            qsort(v, (size_t)n, sizeof *v, cmp_double);
            printf("pool jobs on %s: decode best %.2f ms, median %.2f ms (%d tokens)\n",
                   par ? "pthread workers" : "the OpenMP team",
                   n ? v[0] * 1e3 : 0.0, n ? v[n / 2] * 1e3 : 0.0, n);
        }
    }
    free(ab_t);
    const double mean = decode > 0 ? (now() - t_all) / decode : 0.0;
    if (getenv("NGPT_BENCH_PROFILE")) { /* where the time goes: ops bracketed by syncs (slower overall) */
        nx_ops_profile_enable(true);
        b.n_tokens = prompt;
        b.ids = ids;
        if (ngpt_backbone_session_reset(s) || ngpt_backbone_eval(s, &b)) return 1;
        nx_ops_profile_report(stdout, "prefill");
        b.n_tokens = 1;
        b.ids = &tok;
        for (int i = 0; i < 8; i++)
            if (ngpt_backbone_eval(s, &b)) return 1;
        nx_ops_profile_report(stdout, "8 decode steps");
        nx_ops_profile_enable(false);
    }
    size_t per_tok = layer_bytes + (size_t)V * H * es; /* all layers' matrices + lm_head */
    printf("device: %s, %d threads; LLaMA-7B dims, %d layers, %s weights, %s compute, vocab %d\n",
           ngpt_context_device_name(ctx), nthr, layers, dts, ngpt_dtype_name(bp.compute_dtype), V);
    printf("prefill %d tokens: %.4f s = %.1f tok/s (load %s)\n", prompt, t_pre, prompt / t_pre, bench_load());
    if (cuda) { /* the host read bandwidth says nothing of HBM: report the rate the weights were read at */
        printf("decode (best of %d): %.3f ms = %.1f tok/s; weights read per token %.1f MB -> %.0f GB/s effective\n",
               decode, best * 1e3, 1.0 / best, per_tok / 1e6, per_tok / best / 1e9);
    } else {
        double bw = bench_read_bw(per_tok, nthr);
        double ceiling = bw * 1e9 / (double)per_tok;
        printf("decode (best of %d): %.2f ms = %.1f tok/s; weights read per token %.1f MB; read bandwidth %.1f GB/s "
               "(same run) -> ceiling %.1f tok/s; %.0f%% of it (mean %.2f ms = %.0f%%)\n", decode, best * 1e3,
               1.0 / best, per_tok / 1e6, bw, ceiling, 100.0 / best / ceiling, mean * 1e3, 100.0 / mean / ceiling);
    }
    ngpt_backbone_session_free(s);
    ngpt_backbone_free(bb);
    ngpt_context_free(ctx);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    free(ids);
    free(e);
    free(names);
    free(shapes);
    return 0;
}
