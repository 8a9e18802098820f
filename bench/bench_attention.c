/* bench_attention.c — CPU attention prefill: S = 512 (2048 with NGPT_BENCH_FULL=1), 32 heads,
 * head dim 128, causal (LLaMA-7B prefill), B = 1: the op (flash style, O(tile) memory) against
 * the naive form in the same run: permute q/k/v to [H, S, D], S = Q K^T * scale (batched
 * oneDNN matmul through the op layer), causal mask + row softmax (on the pool), O = P V,
 * permute back. Also the non-causal case. */
#include "bench_util.h"

#include "core/alloc.h"

#include <math.h>

static nx_pool *pool;
static nx_backend *be;

typedef struct sm_job {
    float  *s;
    int64_t S;
    bool    causal;
} sm_job;

static void softmax_rows(int64_t t, int64_t nt, void *arg)
{
    (void)nt;
    sm_job *j = arg;
    float *r = j->s + t * j->S;
    int64_t i = t % j->S, lim = j->causal ? i + 1 : j->S;
    float mx = -INFINITY, sum = 0;
    for (int64_t c = 0; c < lim; c++) mx = r[c] > mx ? r[c] : mx;
    for (int64_t c = 0; c < lim; c++) {
        r[c] = expf(r[c] - mx);
        sum += r[c];
    }
    float inv = 1.0f / sum;
    for (int64_t c = 0; c < lim; c++) r[c] *= inv;
    for (int64_t c = lim; c < j->S; c++) r[c] = 0.0f;
}

/* [S, H, D] <-> [H, S, D] */
static void permute_shd(float *dst, const float *src, int64_t S, int64_t H, int64_t D, int to_hsd)
{
    for (int64_t s = 0; s < S; s++)
        for (int64_t h = 0; h < H; h++) {
            const float *a = to_hsd ? src + (s * H + h) * D : src + (h * S + s) * D;
            float *b = to_hsd ? dst + (h * S + s) * D : dst + (s * H + h) * D;
            memcpy(b, a, (size_t)D * 4);
        }
}

static void run(int64_t S, int causal)
{
    const int64_t H = 32, D = 128;
    size_t n = (size_t)(S * H * D);
    float *q = nx_malloc_aligned(n * 4), *k = nx_malloc_aligned(n * 4), *v = nx_malloc_aligned(n * 4);
    float *o = nx_malloc_aligned(n * 4), *o2 = nx_malloc_aligned(n * 4);
    float *qh = nx_malloc_aligned(n * 4), *kh = nx_malloc_aligned(n * 4), *vh = nx_malloc_aligned(n * 4);
    float *oh = nx_malloc_aligned(n * 4), *sc = nx_malloc_aligned((size_t)(H * S * S) * 4);
    unsigned seed = 7;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        q[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
        k[i] = q[(i * 7919) % n];
        v[i] = q[(i * 104729) % n];
    }
    int64_t sh[4] = {1, S, H, D};
    nx_tensor tq = nx_view(NGPT_DTYPE_F32, 4, sh, q, be), tk = nx_view(NGPT_DTYPE_F32, 4, sh, k, be);
    nx_tensor tv = nx_view(NGPT_DTYPE_F32, 4, sh, v, be), to = nx_view(NGPT_DTYPE_F32, 4, sh, o, be);
    float scale = 1.0f / sqrtf((float)D);
    int reps = 3;
    double t_flash = 1e30, t_naive = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = bench_now();
        nx_cpu_attention(be, &to, &tq, &tk, &tv, NULL, scale, causal);
        double t = bench_now() - t0;
        if (r > 0 && t < t_flash) t_flash = t;
    }
    int64_t hsd[3] = {H, S, D}, hss[3] = {H, S, S};
    nx_tensor tqh = nx_view(NGPT_DTYPE_F32, 3, hsd, qh, be), tkh = nx_view(NGPT_DTYPE_F32, 3, hsd, kh, be);
    nx_tensor tvh = nx_view(NGPT_DTYPE_F32, 3, hsd, vh, be), toh = nx_view(NGPT_DTYPE_F32, 3, hsd, oh, be);
    nx_tensor tsc = nx_view(NGPT_DTYPE_F32, 3, hss, sc, be);
    for (int r = 0; r < reps + 1; r++) {
        double t0 = bench_now();
        permute_shd(qh, q, S, H, D, 1);
        permute_shd(kh, k, S, H, D, 1);
        permute_shd(vh, v, S, H, D, 1);
        nx_cpu_matmul(be, &tsc, &tqh, &tkh, false, true, scale, 0.0f);
        sm_job sj = {.s = sc, .S = S, .causal = causal};
        nx_pool_run(pool, H * S, softmax_rows, &sj);
        nx_cpu_matmul(be, &toh, &tsc, &tvh, false, false, 1.0f, 0.0f);
        permute_shd(o2, oh, S, H, D, 0);
        double t = bench_now() - t0;
        if (r > 0 && t < t_naive) t_naive = t;
    }
    double maxd = 0;
    for (size_t i = 0; i < n; i++) maxd = fmax(maxd, fabs((double)o[i] - o2[i]));
    double flops = 4.0 * (double)S * S * D * H * (causal ? 0.5 : 1.0);
    printf("| %lld | %s | %.2f | %.1f | %.2f | %.1f | %.2fx | %.1e | %.0f MB |\n", (long long)S,
           causal ? "causal" : "full", t_flash * 1e3, flops / t_flash * 1e-9, t_naive * 1e3, flops / t_naive * 1e-9,
           t_naive / t_flash, maxd, (double)(H * S * S) * 4e-6);
    fflush(stdout);
    nx_free_aligned(q), nx_free_aligned(k), nx_free_aligned(v), nx_free_aligned(o), nx_free_aligned(o2);
    nx_free_aligned(qh), nx_free_aligned(kh), nx_free_aligned(vh), nx_free_aligned(oh), nx_free_aligned(sc);
}

/* The op alone on the models' other shapes: ms and GFLOP/s (QK^T + PV, 2 FLOPs per FMA). */
static void shape_run(const char *what, int64_t B, int64_t Sq, int64_t Skv, int64_t H, int64_t D, int causal)
{
    size_t nq = (size_t)(B * Sq * H * D), nk = (size_t)(B * Skv * H * D);
    float *q = nx_malloc_aligned(nq * 4), *k = nx_malloc_aligned(nk * 4), *v = nx_malloc_aligned(nk * 4);
    float *o = nx_malloc_aligned(nq * 4);
    unsigned seed = 11;
    for (size_t i = 0; i < nk; i++) {
        seed = seed * 1664525u + 1013904223u;
        k[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
        v[i] = k[(i * 7919) % nk];
        if (i < nq) q[i] = k[(i * 104729) % nk];
    }
    for (size_t i = nk; i < nq; i++) q[i] = 0.25f;
    int64_t qs[4] = {B, Sq, H, D}, ks[4] = {B, Skv, H, D};
    nx_tensor tq = nx_view(NGPT_DTYPE_F32, 4, qs, q, be), tk = nx_view(NGPT_DTYPE_F32, 4, ks, k, be);
    nx_tensor tv = nx_view(NGPT_DTYPE_F32, 4, ks, v, be), to = nx_view(NGPT_DTYPE_F32, 4, qs, o, be);
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = bench_now();
        nx_cpu_attention(be, &to, &tq, &tk, &tv, NULL, 1.0f / sqrtf((float)D), causal);
        double t = bench_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    double flops = 4.0 * (double)B * Sq * Skv * H * D;
    printf("| %s | [%lld, %lld, %lld, %lld] x %lld keys | %.3f | %.1f |\n", what, (long long)B, (long long)Sq,
           (long long)H, (long long)D, (long long)Skv, best * 1e3, flops / best * 1e-9);
    fflush(stdout);
    nx_free_aligned(q), nx_free_aligned(k), nx_free_aligned(v), nx_free_aligned(o);
}

int main(void)
{
    bench_header("bench_attention: CPU flash attention vs naive GEMM + softmax + GEMM (H=32, D=128, B=1)");
    if (nx_pool_create(&pool, bench_threads()) != NGPT_OK || nx_cpu_backend_create(&be, pool, NULL) != NGPT_OK) {
        fprintf(stderr, "setup failed: %s\n", ngpt_last_error());
        return 1;
    }
    printf("# threads: %d\n\n", nx_pool_threads(pool));
    printf("| S | mask | flash ms | flash GFLOP/s | naive ms | naive GFLOP/s | naive/flash | max |diff| | naive scores "
           "buffer |\n|---|---|---|---|---|---|---|---|---|\n");
    run(512, 1);
    run(512, 0);
    if (bench_full()) {
        run(2048, 1);
        run(2048, 0);
    }
    printf("\n| the models' shapes | q [B, Sq, H, D] | ms | GFLOP/s |\n|---|---|---|---|\n");
    shape_run("LLaMA-7B decode step, 512 cached", 1, 1, 512, 32, 128, 1);
    shape_run("Zeroscope temporal self-attention (32x32, 2x8 frames)", 2048, 8, 8, 5, 64, 0);
    shape_run("Zeroscope temporal, level 1 (16x16)", 512, 8, 8, 10, 64, 0);
    shape_run("Zeroscope spatial self-attention, level 0", 16, 1024, 1024, 5, 64, 0);
    shape_run("Zeroscope spatial cross-attention, level 0", 16, 1024, 77, 5, 64, 0);
    shape_run("SD 1.5 self-attention 64x64, CFG batch", 2, 4096, 4096, 8, 40, 0);
    /* the CPU's BF16 compute: the tiles on AMX (attn_tile_amx), on AVX512-BF16, else F32 */
    if (nx_cpu_has_avx512_bf16()) {
        const char *unit = nx_cpu_has_amx_bf16() ? "AMX-BF16 tiles" : "AVX512-BF16 tiles";
        printf("\n| BF16 compute (%s) | q [B, Sq, H, D] | ms | GFLOP/s |\n|---|---|---|---|\n", unit);
        nx_cpu_set_bf16_compute(be, true);
        shape_run("SD 1.5 self-attention 64x64, CFG batch", 2, 4096, 4096, 8, 40, 0);
        shape_run("SD 1.5 self-attention 32x32, CFG batch", 2, 1024, 1024, 8, 80, 0);
        shape_run("LLaMA-7B prefill, 512 tokens, causal", 1, 512, 512, 32, 128, 1);
        shape_run("ImageBind-huge vision, 257 tokens", 1, 257, 257, 16, 80, 0);
        nx_cpu_set_bf16_compute(be, false);
    }
    nx_backend_free(be);
    nx_pool_free(pool);
    return 0;
}
