/* gemm_wcvt.c — y[M, N] = x[M, K] @ W[N, K]^T (+ b) for F16/BF16 W with F32 x and y, computed in
 * F32 with the conversion of W fused into the GEMM (AVX-512 only; nx_cpu_linear keeps the
 * convert-then-oneDNN path for other CPUs).
 *
 * Why not oneDNN: oneDNN 2.6 has no f32 x f16/bf16-weights matmul, so the old path converted W in
 * 8 MiB tiles on our pool and ran one oneDNN f32 matmul per tile. Measured (bench/RESULTS.md,
 * "F16 prefill"), the conversion itself was only ~8% of the time; the loss was the ~20 short
 * oneDNN calls per linear, each with several OpenMP barriers that GOMP's spinning waiters make
 * expensive on a shared, oversubscribed host (the same tiles took 2x longer than one F32 call,
 * and exactly as long with OMP_WAIT_POLICY=passive, which a library cannot set). Here one
 * nx_pool_run does the whole linear: tasks are handed out dynamically, nobody spins, and each
 * task converts the W rows it is about to use into its own L2-sized buffer.
 *
 * Blocking (BLIS-like, with W on the broadcast side so that W needs no transposition, only a
 * conversion): x is packed once per call as x^T panels of NR = 32 rows ([K][32] each, so the
 * micro-kernel loads two vectors of 16 x-rows per k). A task owns MC rows of W; per K block of
 * KC it converts W[rows, k-block] to F32 (MC x KC, ~112 KiB, stays in L2), then for every x panel
 * (its KC x 32 slice, 32 KiB, stays in L1 over the task's MC / MR micro-tiles) runs the
 * 14 x 32 micro-kernel: 28 accumulators + 2 x vectors + 1 broadcast W value = 31 of the 32 zmm
 * registers, 28 FMAs per 2 loads + 14 broadcasts. The 14 x 32 tile of y^T is transposed on the
 * way out (16 x 16 in registers) and added into y; y is assigned (+ bias) on the first K block.
 * Accumulation is F32 and in k order within a K block, so results equal an F32 GEMM on the
 * exactly converted weights up to F32 rounding, like the oneDNN path. */
#include "cpu_ops.h"

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <immintrin.h>
#include <string.h>

#define MR 14            /* W rows per micro-tile */
#define NR 32            /* x rows per micro-tile (two vectors) */
#define MC (MR * 8)      /* W rows per task */
#define KC 256           /* K block */

#define NX_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define NX_INLINE static inline __attribute__((always_inline))

typedef struct wcvt_job {
    const float *x;      /* [M, K] */
    float       *xt;     /* [Mp / NR][K][NR] */
    const void  *w;      /* [N, K], F16 or BF16 */
    const float *bias;   /* [N] or NULL */
    float       *y;      /* [M, N] */
    int64_t      M, N, K, Mp;
    int64_t      kchunk; /* packing: K range per task */
    bool         f16;
    float       *bufs;   /* one MC x KC conversion buffer per concurrently running task */
    int         *busy;
    int          nbuf;
} wcvt_job;

/* In-place 16 x 16 transpose: r[i] lane j -> r[j] lane i. */
NX_INLINE NX_AVX512 void tr16(__m512 r[16])
{
    __m512 t[16];
    _Pragma("GCC unroll 8")
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + c], lane L: rows 4g..4g+3 of column 4L + c */
    _Pragma("GCC unroll 4")
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 2]);
        __m512d c = _mm512_castps_pd(t[4 * g + 1]), d = _mm512_castps_pd(t[4 * g + 3]);
        r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    /* a 4 x 4 transpose of 128-bit lanes for each c */
    _Pragma("GCC unroll 4")
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
        __m512 v2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88), v3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
        t[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        t[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
        t[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
    }
    _Pragma("GCC unroll 16")
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* ---- x^T packing: task = (panel, K chunk) ---- */

static NX_AVX512 void pack_task(int64_t t, int64_t nt, void *arg)
{
    (void)nt;
    const wcvt_job *j = arg;
    const int64_t nkc = (j->K + j->kchunk - 1) / j->kchunk;
    const int64_t p = t / nkc, k0 = (t % nkc) * j->kchunk;
    const int64_t k1 = k0 + j->kchunk < j->K ? k0 + j->kchunk : j->K;
    float *dst = j->xt + p * j->K * NR;
    for (int g = 0; g < NR / 16; g++) {
        const int64_t m0 = p * NR + g * 16;
        for (int64_t k = k0; k < k1; k += 16) {
            const int64_t kv = k1 - k < 16 ? k1 - k : 16;
            const __mmask16 mk = (__mmask16)((1u << kv) - 1u);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = m0 + i < j->M ? _mm512_maskz_loadu_ps(mk, j->x + (m0 + i) * j->K + k) : _mm512_setzero_ps();
            tr16(r);
            for (int64_t i = 0; i < kv; i++) _mm512_store_ps(dst + (k + i) * NR + g * 16, r[i]);
        }
    }
}

/* ---- W block conversion: rows [n0, n0 + nv) x cols [k0, k0 + kb) -> buf (row stride KC) ---- */

static NX_AVX512 void convert_block(const wcvt_job *j, float *buf, int64_t n0, int64_t nv, int64_t k0, int64_t kb)
{
    const uint16_t *w = (const uint16_t *)j->w;
    for (int64_t r = 0; r < nv; r++) {
        const uint16_t *s = w + (n0 + r) * j->K + k0;
        float *d = buf + r * KC;
        for (int64_t k = 0; k < kb; k += 16) {
            const __mmask16 mk = kb - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (kb - k)) - 1u);
            __m256i h = _mm256_maskz_loadu_epi16(mk, s + k);
            __m512 f = j->f16 ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
            _mm512_mask_store_ps(d + k, mk, f);
        }
    }
}

/* ---- micro-kernel and the transposed store ---- */

/* acc[2i + h] += W row i (a + i*KC) x x^T panel half h, over kb steps of k */
NX_INLINE NX_AVX512 void kernel_14x32(const float *a, const float *b, int64_t kb, __m512 acc[2 * MR])
{
    _Pragma("GCC unroll 28")
    for (int i = 0; i < 2 * MR; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kb; k++) {
        const __m512 b0 = _mm512_load_ps(b + k * NR), b1 = _mm512_load_ps(b + k * NR + 16);
        _Pragma("GCC unroll 14")
        for (int i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i * KC + k]);
            acc[2 * i] = _mm512_fmadd_ps(ai, b0, acc[2 * i]);
            acc[2 * i + 1] = _mm512_fmadd_ps(ai, b1, acc[2 * i + 1]);
        }
    }
}

/* acc holds y^T[n0 + i][m0 + 16h + l]: y[m0 + l'][n0 .. n0 + nv) (+)= its transpose. */
NX_INLINE NX_AVX512 void store_tile(const wcvt_job *j, __m512 acc[2 * MR], int64_t m0, int64_t n0, int64_t nv, bool first)
{
    const __mmask16 nm = (__mmask16)((1u << nv) - 1u);
    const __m512 bias = first && j->bias ? _mm512_maskz_loadu_ps(nm, j->bias + n0) : _mm512_setzero_ps();
    for (int h = 0; h < NR / 16; h++) {
        const int64_t mv = j->M - (m0 + 16 * h);
        if (mv <= 0) break;
        __m512 r[16];
        _Pragma("GCC unroll 14")
        for (int i = 0; i < MR; i++) r[i] = acc[2 * i + h];
        r[14] = r[15] = _mm512_setzero_ps();
        tr16(r);
        float *y = j->y + (m0 + 16 * h) * j->N + n0;
        const int lim = mv < 16 ? (int)mv : 16;
        for (int l = 0; l < lim; l++) {
            float *p = y + l * j->N;
            __m512 v = first ? _mm512_add_ps(r[l], bias) : _mm512_add_ps(r[l], _mm512_maskz_loadu_ps(nm, p));
            _mm512_mask_storeu_ps(p, nm, v);
        }
    }
}

static NX_AVX512 void gemm_task(int64_t t, int64_t nt, void *arg)
{
    (void)nt;
    wcvt_job *j = arg;
    /* At most nbuf (= pool threads) tasks run at once, so a free buffer always exists. */
    int slot = -1;
    while (slot < 0)
        for (int s = 0; s < j->nbuf && slot < 0; s++) {
            int z = 0;
            if (__atomic_compare_exchange_n(&j->busy[s], &z, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) slot = s;
        }
    float *buf = j->bufs + (int64_t)slot * MC * KC;
    const int64_t n0 = t * MC, nv = j->N - n0 < MC ? j->N - n0 : MC;
    /* rows past N feed only masked-off outputs; zero them so nothing reads stale memory */
    const int64_t nvr = (nv + MR - 1) / MR * MR;
    if (nvr > nv) memset(buf + nv * KC, 0, (size_t)((nvr - nv) * KC) * sizeof(float));
    for (int64_t k0 = 0; k0 < j->K; k0 += KC) {
        const int64_t kb = j->K - k0 < KC ? j->K - k0 : KC;
        convert_block(j, buf, n0, nv, k0, kb);
        for (int64_t m0 = 0; m0 < j->Mp; m0 += NR) {
            const float *b = j->xt + m0 * j->K + k0 * NR;
            for (int64_t i0 = 0; i0 < nv; i0 += MR) {
                __m512 acc[2 * MR];
                kernel_14x32(buf + i0 * KC, b, kb, acc);
                store_tile(j, acc, m0, n0 + i0, nv - i0 < MR ? nv - i0 : MR, k0 == 0);
            }
        }
    }
    __atomic_store_n(&j->busy[slot], 0, __ATOMIC_RELEASE);
}

static int g_wcvt_off; /* nx_cpu_set_wcvt(false): tests and bench_gemm reach the oneDNN path */

void nx_cpu_set_wcvt(bool on) { __atomic_store_n(&g_wcvt_off, on ? 0 : 1, __ATOMIC_RELAXED); }

bool nx_cpu_linear_wcvt_ok(ngpt_dtype wdt)
{
    return (wdt == NGPT_DTYPE_F16 || wdt == NGPT_DTYPE_BF16) && !__atomic_load_n(&g_wcvt_off, __ATOMIC_RELAXED) &&
           nx_cpu_has_avx512();
}

ngpt_status nx_cpu_linear_wcvt(nx_backend *be, float *y, const float *x, const void *w, ngpt_dtype wdt,
                               const float *bias, int64_t M, int64_t N, int64_t K)
{
    const int nthr = nx_pool_threads(be->pool) > 0 ? nx_pool_threads(be->pool) : 1;
    const int64_t Mp = (M + NR - 1) / NR * NR;
    wcvt_job j = {
        .x = x, .w = w, .bias = bias, .y = y, .M = M, .N = N, .K = K, .Mp = Mp,
        .kchunk = 512, .f16 = wdt == NGPT_DTYPE_F16, .nbuf = nthr,
    };
    j.xt = nx_malloc_aligned((size_t)(Mp * K) * sizeof(float));
    j.bufs = nx_malloc_aligned((size_t)nthr * MC * KC * sizeof(float));
    j.busy = nx_calloc((size_t)nthr, sizeof(int));
    if (!j.xt || !j.bufs || !j.busy) {
        nx_free_aligned(j.xt);
        nx_free_aligned(j.bufs);
        nx_free(j.busy);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "linear: cannot allocate GEMM buffers (%lld x %lld)", (long long)M,
                      (long long)K);
    }
    nx_pool_run(be->pool, Mp / NR * ((K + j.kchunk - 1) / j.kchunk), pack_task, &j);
    nx_pool_run(be->pool, (N + MC - 1) / MC, gemm_task, &j);
    nx_free_aligned(j.xt);
    nx_free_aligned(j.bufs);
    nx_free(j.busy);
    return NGPT_OK;
}
