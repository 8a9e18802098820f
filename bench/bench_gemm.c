/* bench_gemm.c — CPU GEMM and decode GEMV.
 *
 *  1. Square GEMM n^3 (n = 1024, 2048; 4096 with NGPT_BENCH_FULL=1): the op layer's linear
 *     (y = x W^T, F32 weights; and BF16 weights with the bf16-compute option) against oneDNN's
 *     matmul called directly (same layout, primitive created outside the timing) and OpenBLAS
 *     cblas_sgemm, all in this run. Run with OPENBLAS_CORETYPE=SkylakeX: Debian's OpenBLAS 0.3.21
 *     does not know these Xeons and otherwise uses its Prescott kernels (DESIGN §7).
 *  2. Decode GEMV y[1, 11008] = x[1, 4096] W^T for F32/F16/BF16 W against a read-bandwidth
 *     ceiling measured here (an AVX-512, else AVX2, read loop over the same ~1 GiB). The weights cycle through
 *     copies totalling > 1 GiB so they come from DRAM, not the 260 MiB L3, as in a real decode.
 *
 * Threads: NGPT_BENCH_THREADS (default: all CPUs) for our pool; oneDNN gets the same through
 * omp_set_num_threads; OpenBLAS uses its own (OPENBLAS_NUM_THREADS, default all). */
#include "bench_util.h"

#include "core/alloc.h"
#include "core/dtype.h"

#include <immintrin.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#ifdef NX_BENCH_OPENBLAS
#include <cblas.h>
#endif

static nx_pool *pool;
static nx_backend *be;

static void fill(float *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

/* ---- oneDNN direct ---- */

/* y[M, N] = x[M, K] W^T with W stored [N, K], as the op layer's linear; packed: W reordered
 * (outside the timing) into the layout the primitive picks for itself (format any) */
static double dnnl_direct_w(int64_t M, int64_t N, int64_t K, int bf16, int packed, const void *x, const void *w,
                            float *y, int reps)
{
    dnnl_engine_t eng;
    dnnl_stream_t str;
    dnnl_engine_create(&eng, dnnl_cpu, 0);
    dnnl_stream_create(&str, eng, dnnl_stream_default_flags);
    dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t src, wei, wany, dst;
    dnnl_dims_t ds = {M, K}, dw = {K, N}, dd = {M, N}, ss = {K, 1}, sw = {1, K}, sd = {N, 1};
    dnnl_memory_desc_init_by_strides(&src, 2, ds, dt, ss);
    dnnl_memory_desc_init_by_strides(&wei, 2, dw, dt, sw);
    dnnl_memory_desc_init_by_tag(&wany, 2, dw, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_strides(&dst, 2, dd, dnnl_f32, sd);
    dnnl_matmul_desc_t md;
    dnnl_matmul_desc_init(&md, &src, packed ? &wany : &wei, NULL, &dst);
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    if (dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) != dnnl_success) return -1;
    dnnl_primitive_create(&prim, pd);
    dnnl_memory_t ms, mw, mdst, mwp = NULL;
    dnnl_memory_create(&ms, &src, eng, (void *)x);
    dnnl_memory_create(&mw, &wei, eng, (void *)w);
    dnnl_memory_create(&mdst, &dst, eng, y);
    omp_set_num_threads(nx_pool_threads(pool));
    if (packed) {
        const dnnl_memory_desc_t *wp = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        dnnl_memory_create(&mwp, wp, eng, DNNL_MEMORY_ALLOCATE);
        dnnl_primitive_desc_t rpd;
        dnnl_primitive_t rp;
        dnnl_reorder_primitive_desc_create(&rpd, &wei, eng, wp, eng, NULL);
        dnnl_primitive_create(&rp, rpd);
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, mw}, {DNNL_ARG_TO, mwp}};
        dnnl_primitive_execute(rp, str, 2, ra);
        dnnl_stream_wait(str);
        dnnl_primitive_destroy(rp);
        dnnl_primitive_desc_destroy(rpd);
    }
    dnnl_primitive_desc_destroy(pd);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, packed ? mwp : mw}, {DNNL_ARG_DST, mdst}};
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = bench_now();
        dnnl_primitive_execute(prim, str, 3, args);
        dnnl_stream_wait(str);
        double t = bench_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(mw);
    if (mwp) dnnl_memory_destroy(mwp);
    dnnl_memory_destroy(mdst);
    dnnl_primitive_destroy(prim);
    dnnl_stream_destroy(str);
    dnnl_engine_destroy(eng);
    return best;
}

static double dnnl_direct(int64_t M, int64_t N, int64_t K, int bf16, const void *x, const void *w, float *y, int reps)
{
    return dnnl_direct_w(M, N, K, bf16, 0, x, w, y, reps);
}

static double op_linear(nx_tensor *y, nx_tensor *x, nx_tensor *w, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = bench_now();
        if (nx_cpu_linear(be, y, x, w, NULL) != NGPT_OK) {
            fprintf(stderr, "linear failed: %s\n", ngpt_last_error());
            return -1;
        }
        double t = bench_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    return best;
}

static void bench_square(int64_t n)
{
    int reps = n >= 4096 ? 2 : 4;
    size_t nn = (size_t)(n * n);
    float *x = nx_malloc_aligned(nn * 4), *w = nx_malloc_aligned(nn * 4), *y = nx_malloc_aligned(nn * 4);
    uint16_t *xb = nx_malloc_aligned(nn * 2), *wb = nx_malloc_aligned(nn * 2);
    fill(x, nn, 1);
    fill(w, nn, 2);
    nx_f32_to_bf16_n(x, xb, nn);
    nx_f32_to_bf16_n(w, wb, nn);
    int64_t sh[2] = {n, n};
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 2, sh, x, be), tw = nx_view(NGPT_DTYPE_F32, 2, sh, w, be);
    nx_tensor twb = nx_view(NGPT_DTYPE_BF16, 2, sh, wb, be), ty = nx_view(NGPT_DTYPE_F32, 2, sh, y, be);
    double gf = 2.0 * (double)n * n * n * 1e-9;

    double t_op = op_linear(&ty, &tx, &tw, reps);
    double t_dn = dnnl_direct(n, n, n, 0, x, w, y, reps);
    double t_ob = -1;
#ifdef NX_BENCH_OPENBLAS
    t_ob = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)n, 1.0f, x, (int)n, w, (int)n, 0.0f,
                    y, (int)n);
        double t = bench_now() - t0;
        if (r > 0 && t < t_ob) t_ob = t;
    }
#endif
    printf("| %lld | f32 | %.1f | %.1f | %.3f | ", (long long)n, gf / t_op, gf / t_dn, t_dn / t_op);
    if (t_ob > 0) printf("%.1f | %.2f |\n", gf / t_ob, t_ob / t_op);
    else printf("- | - |\n");

    nx_cpu_set_bf16_compute(be, true);
    double t_opb = op_linear(&ty, &tx, &twb, reps);
    nx_cpu_set_bf16_compute(be, false);
    double t_dnb = dnnl_direct(n, n, n, 1, xb, wb, y, reps);
    printf("| %lld | bf16 (x rounded per call, W bf16) | %.1f | %.1f | %.3f | - | - |\n", (long long)n, gf / t_opb,
           gf / t_dnb, t_dnb / t_opb);
    fflush(stdout);
    nx_free_aligned(x), nx_free_aligned(w), nx_free_aligned(y), nx_free_aligned(xb), nx_free_aligned(wb);
}

/* Prefill-shaped linear y[M, N] = x[M, K] W^T (LLaMA MLP up: K 4096, N 11008) for each weight
 * dtype: F32 compute (F16/BF16 W through the fused convert GEMM, and through the oneDNN path it
 * replaced, alternating in this process) and BF16 compute. */
static void bench_prefill_linear(int64_t M)
{
    const int64_t N = 11008, K = 4096;
    float *x = nx_malloc_aligned((size_t)(M * K) * 4), *y = nx_malloc_aligned((size_t)(M * N) * 4);
    float *w = nx_malloc_aligned((size_t)(N * K) * 4);
    uint16_t *wh = nx_malloc_aligned((size_t)(N * K) * 2), *wb = nx_malloc_aligned((size_t)(N * K) * 2);
    fill(x, (size_t)(M * K), 5);
    fill(w, (size_t)(N * K), 6);
    nx_f32_to_f16_n(w, wh, (size_t)(N * K));
    nx_f32_to_bf16_n(w, wb, (size_t)(N * K));
    int64_t xs[2] = {M, K}, ws[2] = {N, K}, ys[2] = {M, N};
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 2, xs, x, be), ty = nx_view(NGPT_DTYPE_F32, 2, ys, y, be);
    nx_tensor tw[3] = {nx_view(NGPT_DTYPE_F32, 2, ws, w, be), nx_view(NGPT_DTYPE_F16, 2, ws, wh, be),
                       nx_view(NGPT_DTYPE_BF16, 2, ws, wb, be)};
    double gf = 2.0 * (double)M * N * K * 1e-9;
    double t32 = 0;
    /* mode 0: F32 compute, 1: the same through the oneDNN path (W converted tile by tile, what
     * the fused GEMM replaced; F16/BF16 W only), 2: BF16 compute */
    for (int mode = 0; mode < 3; mode++)
        for (int d = 0; d < 3; d++) {
            if (mode == 1 && d == 0) continue;
            nx_cpu_set_bf16_compute(be, mode == 2);
            nx_cpu_set_wcvt(mode != 1);
            double t = op_linear(&ty, &tx, &tw[d], 2);
            nx_cpu_set_wcvt(true);
            nx_cpu_set_bf16_compute(be, false);
            if (mode == 0 && d == 0) t32 = t;
            const char *how = mode == 2 ? "bf16" : d == 0 ? "f32 (oneDNN)" : mode == 0 ? "f32 (fused convert GEMM)"
                                                                                      : "f32 (tiles + oneDNN)";
            printf("| %lld x %lld x %lld | %s | %s | %.1f | %.1f | %.2f | %s |\n", (long long)M, (long long)N,
                   (long long)K, nx_dtype_name(tw[d].dtype), how, t * 1e3, gf / t, t32 / t, bench_load());
            fflush(stdout);
        }
    nx_free_aligned(x), nx_free_aligned(y), nx_free_aligned(w), nx_free_aligned(wh), nx_free_aligned(wb);
}

/* ViT-shaped BF16 linears (ImageBind-huge vision: 257 tokens, width 1280, MLP 5120): the op
 * layer on plain and on packed W (nx_cpu_linear_pack, AMX only) against oneDNN called directly
 * on 256 and 288 rows (multiples of its 32-row blocks), W plain and in its own layout. */
static void bench_vit_linear(void)
{
    static const int64_t NK[4][2] = {{3840, 1280}, {1280, 1280}, {5120, 1280}, {1280, 5120}};
    const int64_t Ms[2] = {256, 288};
    for (int s = 0; s < 4; s++) {
        const int64_t N = NK[s][0], K = NK[s][1], Mx = 320;
        float *x = nx_malloc_aligned((size_t)(Mx * K) * 4), *y = nx_malloc_aligned((size_t)(Mx * N) * 4);
        float *w = nx_malloc_aligned((size_t)(N * K) * 4);
        uint16_t *xb = nx_malloc_aligned((size_t)(Mx * K) * 2), *wb = nx_malloc_aligned((size_t)(N * K) * 2);
        fill(x, (size_t)(Mx * K), 7);
        fill(w, (size_t)(N * K), 8);
        nx_f32_to_bf16_n(x, xb, (size_t)(Mx * K));
        nx_f32_to_bf16_n(w, wb, (size_t)(N * K));
        const int64_t M = 257;
        int64_t xs[2] = {M, K}, ws[2] = {N, K}, ys[2] = {M, N};
        nx_tensor tx = nx_view(NGPT_DTYPE_F32, 2, xs, x, be), ty = nx_view(NGPT_DTYPE_F32, 2, ys, y, be);
        nx_tensor tw = nx_view(NGPT_DTYPE_BF16, 2, ws, wb, be);
        nx_cpu_set_bf16_compute(be, true);
        double t_op = op_linear(&ty, &tx, &tw, 8);
        nx_cpu_set_bf16_compute(be, false);
        printf("| %lld x %lld x %lld | op layer | %.3f | %.1f |\n", (long long)M, (long long)N, (long long)K,
               t_op * 1e3, 2e-9 * (double)M * N * K / t_op);
        uint16_t *wp = nx_malloc_aligned((size_t)(N * K) * 2);
        memcpy(wp, wb, (size_t)(N * K) * 2);
        nx_tensor twp = nx_view(NGPT_DTYPE_BF16, 2, ws, wp, be);
        if (nx_cpu_linear_pack(be, &twp) == NGPT_OK && twp.packed) {
            nx_cpu_set_bf16_compute(be, true);
            t_op = op_linear(&ty, &tx, &twp, 8);
            nx_cpu_set_bf16_compute(be, false);
            printf("| %lld x %lld x %lld | op layer, W packed | %.3f | %.1f |\n", (long long)M, (long long)N,
                   (long long)K, t_op * 1e3, 2e-9 * (double)M * N * K / t_op);
        }
        nx_free_aligned(wp);
        for (int i = 0; i < 2; i++) {
            double t = dnnl_direct(Ms[i], N, K, 1, xb, wb, y, 8);
            printf("| %lld x %lld x %lld | oneDNN direct | %.3f | %.1f |\n", (long long)Ms[i], (long long)N,
                   (long long)K, t * 1e3, 2e-9 * (double)Ms[i] * N * K / t);
            t = dnnl_direct_w(Ms[i], N, K, 1, 1, xb, wb, y, 8);
            printf("| %lld x %lld x %lld | oneDNN direct, W packed | %.3f | %.1f |\n", (long long)Ms[i], (long long)N,
                   (long long)K, t * 1e3, 2e-9 * (double)Ms[i] * N * K / t);
        }
        fflush(stdout);
        nx_free_aligned(x), nx_free_aligned(y), nx_free_aligned(w), nx_free_aligned(xb), nx_free_aligned(wb);
    }
}

/* ---- bandwidth ceiling ---- */

typedef struct rd_job {
    const char *p;
    size_t      n, chunk;
    double      sink[64];
} rd_job;

__attribute__((target("avx2"))) static void rd_task256(rd_job *j, int64_t t, size_t i0, size_t i1)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = i0; i + 128 <= i1; i += 128) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps((const float *)(j->p + i)));
        a1 = _mm256_add_ps(a1, _mm256_load_ps((const float *)(j->p + i + 32)));
        a2 = _mm256_add_ps(a2, _mm256_load_ps((const float *)(j->p + i + 64)));
        a3 = _mm256_add_ps(a3, _mm256_load_ps((const float *)(j->p + i + 96)));
    }
    float l[8];
    _mm256_storeu_ps(l, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    j->sink[t % 64] += l[0] + l[7];
}

__attribute__((target("avx512f"))) static void rd_task(int64_t t, int64_t nt, void *arg)
{
    (void)nt;
    rd_job *j = arg;
    size_t i0 = (size_t)t * j->chunk, i1 = i0 + j->chunk < j->n ? i0 + j->chunk : j->n;
    if (!nx_cpu_has_avx512()) { /* an AVX2 CPU (the library's GEMV is AVX2 there too) */
        rd_task256(j, t, i0, i1);
        return;
    }
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = i0; i + 256 <= i1; i += 256) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps((const float *)(j->p + i)));
        a1 = _mm512_add_ps(a1, _mm512_load_ps((const float *)(j->p + i + 64)));
        a2 = _mm512_add_ps(a2, _mm512_load_ps((const float *)(j->p + i + 128)));
        a3 = _mm512_add_ps(a3, _mm512_load_ps((const float *)(j->p + i + 192)));
    }
    j->sink[t % 64] += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static double read_bw(const char *buf, size_t n)
{
    rd_job j = {.p = buf, .n = n, .chunk = (size_t)4 << 20};
    double best = 1e30;
    for (int r = 0; r < 8; r++) {
        double t0 = bench_now();
        nx_pool_run(pool, (int64_t)((n + j.chunk - 1) / j.chunk), rd_task, &j);
        double t = bench_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    return (double)n / best * 1e-9;
}

static double memcpy_bw(char *buf, size_t n)
{
    size_t h = n / 2;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now();
        memcpy(buf, buf + h, h);
        double t = bench_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    return 2.0 * (double)h / best * 1e-9; /* bytes read + written */
}

static void bench_gemv(void)
{
    const int64_t N = 11008, K = 4096;
    const size_t total = (size_t)1152 << 20; /* > 4x the L3 */
    char *buf = nx_malloc_aligned(total);
    float *x = nx_malloc_aligned((size_t)K * 4), *y = nx_malloc_aligned((size_t)N * 4);
    if (!buf || !x || !y) {
        printf("GEMV: out of memory\n");
        return;
    }
    for (size_t i = 0; i < total / 4; i++) ((float *)buf)[i] = (float)(i % 1024) * (1.0f / 1024.0f) - 0.5f;
    fill(x, (size_t)K, 3);
    double bw = read_bw(buf, total);
    double cp = memcpy_bw(buf, total);
    double res_t[3];
    const ngpt_dtype dts[3] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        size_t wbytes = (size_t)(N * K) * nx_dtype_size(dts[d]);
        int copies = (int)(total / wbytes);
        int64_t xs[2] = {1, K}, ws[2] = {N, K}, ys[2] = {1, N};
        nx_tensor tx = nx_view(NGPT_DTYPE_F32, 2, xs, x, be), ty = nx_view(NGPT_DTYPE_F32, 2, ys, y, be);
        /* best of 5 passes over all copies (the 2 cores are shared: best-of filters out
         * other tenants), after a warm-up pass */
        double t = 1e30;
        for (int pass = 0; pass < 6; pass++) {
            double t0 = bench_now();
            for (int i = 0; i < copies; i++) {
                nx_tensor tw = nx_view(dts[d], 2, ws, buf + (size_t)i * wbytes, be);
                nx_cpu_linear(be, &ty, &tx, &tw, NULL);
            }
            double tp = (bench_now() - t0) / copies;
            if (pass > 0 && tp < t) t = tp;
        }
        res_t[d] = t;
    }
    double bw2 = read_bw(buf, total);
    if (bw2 > bw) bw = bw2; /* the 2 cores are shared: the better of two measurements */
    printf("\nread bandwidth ceiling (%s read loop, %d threads, 1.1 GiB, best of before/after): %.1f GB/s; "
           "memcpy (1 thread, read+write): %.1f GB/s\n\n",
           nx_cpu_has_avx512() ? "AVX-512" : "AVX2", nx_pool_threads(pool), bw, cp);
    printf("| W dtype | W bytes | time/call (ms) | GB/s | %% of read ceiling | GFLOP/s |\n|---|---|---|---|---|---|\n");
    for (int d = 0; d < 3; d++) {
        size_t wbytes = (size_t)(N * K) * nx_dtype_size(dts[d]);
        double t = res_t[d];
        double gbs = (double)wbytes / t * 1e-9;
        printf("| %s | %.0f MB | %.3f | %.1f | %.1f%% | %.1f |\n", nx_dtype_name(dts[d]), (double)wbytes * 1e-6, t * 1e3,
               gbs, 100.0 * gbs / bw, 2.0 * N * K / t * 1e-9);
    }
    /* oneDNN on the decode shape, for reference (DESIGN §7: ~10 GFLOP/s) */
    {
        int64_t xs[2] = {5, K}, ws[2] = {N, K}, ys[2] = {5, N};
        float *x5 = nx_malloc_aligned((size_t)(5 * K) * 4), *y5 = nx_malloc_aligned((size_t)(5 * N) * 4);
        fill(x5, (size_t)(5 * K), 4);
        nx_tensor tx = nx_view(NGPT_DTYPE_F32, 2, xs, x5, be), ty = nx_view(NGPT_DTYPE_F32, 2, ys, y5, be);
        nx_tensor tw = nx_view(NGPT_DTYPE_F32, 2, ws, buf, be);
        nx_cpu_linear(be, &ty, &tx, &tw, NULL);
        double t0 = bench_now();
        for (int r = 0; r < 4; r++) {
            tw.data = buf + (size_t)(r % 6) * (size_t)(N * K) * 4;
            nx_cpu_linear(be, &ty, &tx, &tw, NULL);
        }
        double t = (bench_now() - t0) / 4;
        printf("\n(for reference: M=5, the oneDNN path, F32 W: %.3f ms/call = %.1f GB/s of W)\n", t * 1e3,
               (double)(N * K) * 4 / t * 1e-9);
        nx_free_aligned(x5), nx_free_aligned(y5);
    }
    nx_free_aligned(buf), nx_free_aligned(x), nx_free_aligned(y);
}

int main(int argc, char **argv)
{
    const bool vit_only = argc > 1 && strcmp(argv[1], "vit") == 0;
    bench_header("bench_gemm: op-layer GEMM vs oneDNN direct vs OpenBLAS; decode GEMV vs read bandwidth");
    if (nx_pool_create(&pool, bench_threads()) != NGPT_OK || nx_cpu_backend_create(&be, pool, NULL) != NGPT_OK) {
        fprintf(stderr, "setup failed: %s\n", ngpt_last_error());
        return 1;
    }
    printf("# threads: %d; oneDNN %d.%d.%d\n", nx_pool_threads(pool), dnnl_version()->major, dnnl_version()->minor,
           dnnl_version()->patch);
#ifndef NX_BENCH_OPENBLAS
    printf("# OpenBLAS: not built in (no openblas pkg-config)\n");
#endif
    printf("\n| M x N x K (bf16) | how | ms | GFLOP/s |\n|---|---|---|---|\n");
    bench_vit_linear();
    if (vit_only) goto done;
    printf("\n| n | dtype | op layer GFLOP/s | oneDNN direct GFLOP/s | op/oneDNN | OpenBLAS GFLOP/s | op/OpenBLAS |\n"
           "|---|---|---|---|---|---|---|\n");
    bench_square(1024);
    bench_square(2048);
    if (bench_full()) bench_square(4096);
    printf("\n| M x N x K | W dtype | compute | ms | GFLOP/s | speed vs F32 W, F32 compute | load 1/5/15 |\n"
           "|---|---|---|---|---|---|---|\n");
    bench_prefill_linear(32);
    bench_prefill_linear(128);
    if (bench_full()) bench_prefill_linear(512);
    if (bench_full()) bench_prefill_linear(16);
    bench_gemv();
done:
    nx_backend_free(be);
    nx_pool_free(pool);
    return 0;
}
