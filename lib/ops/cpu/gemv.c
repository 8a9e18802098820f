/* gemv.c — y[M, N] = x[M, K] @ w[N, K]^T (+ b) for M <= 4 (batch-1 decode): hand-written
 * AVX-512 and AVX2 kernels for F32, F16 (vcvtph2ps) and BF16 (shift into the high half) weights,
 * with a portable fallback. oneDNN reaches ~10 GFLOP/s on this shape (DESIGN §7); the work is reading W
 * once, so the kernel streams each weight row exactly once for all M rows of x, 4 rows of W at a
 * time (4 x M accumulators), and N is split into contiguous row ranges across the pool.
 * Accumulation is F32 (each lane sums K/16 products, then a tree reduction across lanes). */
#include "avx2_util.h"
#include "cpu_ops.h"

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <immintrin.h>

#define GEMV_MAX_M 4
#define PF 1024
/* F16/BF16 W on AVX-512: one prefetch per 64-byte line of each row, this far ahead, into L2.
 * On a Zen 4 host (session 21) the F32 kernel's every-32-bytes L1 prefetch at PF left the F16
 * decode at 25-26 tok/s (2 layers of 7B dims, 46-55% of the read ceiling, 0.7-0.9x llama.cpp);
 * this one 31-37 tok/s in the same A/B runs (0.9-1.3x llama.cpp, whose own runs spread 28-39). */
#define PF_HALF 2048

typedef struct gemv_job {
    const float *x;    /* [M, K] */
    const void  *w;    /* [N, K] */
    const void  *b;    /* [N] or NULL */
    ngpt_dtype   bdt;
    float       *y;    /* [M, N] */
    int64_t      M, N, K;
    int64_t      rows_per_task;
    ngpt_dtype   wdt;
    nx_isa       isa;
    const float *xd;   /* AVX2, BF16 W: x with each block of 16 as its 8 even then 8 odd elements */
} gemv_job;

static inline float load_scalar(const void *p, ngpt_dtype dt, int64_t i)
{
    switch (dt) {
    case NGPT_DTYPE_F16: return nx_f16_to_f32(((const uint16_t *)p)[i]);
    case NGPT_DTYPE_BF16: return nx_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

/* ---- portable fallback ---- */

static void gemv_rows_scalar(const gemv_job *j, int64_t n0, int64_t n1)
{
    const int64_t K = j->K;
    for (int64_t n = n0; n < n1; n++) {
        for (int64_t m = 0; m < j->M; m++) {
            const float *x = j->x + m * K;
            float acc[8] = {0};
            int64_t k = 0;
            if (j->wdt == NGPT_DTYPE_F32) {
                const float *w = (const float *)j->w + n * K;
                for (; k + 8 <= K; k += 8)
                    for (int u = 0; u < 8; u++) acc[u] += w[k + u] * x[k + u];
            } else {
                const uint16_t *w = (const uint16_t *)j->w + n * K;
                for (; k + 8 <= K; k += 8)
                    for (int u = 0; u < 8; u++) acc[u] += load_scalar(w, j->wdt, k + u) * x[k + u];
            }
            float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for (; k < K; k++) s += load_scalar(j->w, j->wdt, n * K + k) * x[k];
            if (j->b) s += load_scalar(j->b, j->bdt, n);
            j->y[m * j->N + n] = s;
        }
    }
}

/* ---- AVX-512 ---- */

#define NX_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define NX_INLINE static inline __attribute__((always_inline))

NX_INLINE NX_AVX512 __m512 ldw(const void *w, ngpt_dtype dt, int64_t i, __mmask16 mk)
{
    if (dt == NGPT_DTYPE_F32) return _mm512_maskz_loadu_ps(mk, (const float *)w + i);
    __m256i h = _mm256_maskz_loadu_epi16(mk, (const uint16_t *)w + i);
    if (dt == NGPT_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* 16 columns from k (mk: which of them) of R rows of w against M rows of x, into acc. */
NX_INLINE NX_AVX512 void gemv_step(const float *x, const void *w, int64_t K, int64_t n, int64_t k, __mmask16 mk,
                                   const int M, const int R, const ngpt_dtype dt, __m512 acc[4][GEMV_MAX_M])
{
    __m512 xv[GEMV_MAX_M];
    _Pragma("GCC unroll 4")
    for (int m = 0; m < M; m++) xv[m] = _mm512_maskz_loadu_ps(mk, x + m * K + k);
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        __m512 wv = ldw(w, dt, (n + r) * K + k, mk);
        _Pragma("GCC unroll 4")
        for (int m = 0; m < M; m++) acc[r][m] = _mm512_fmadd_ps(wv, xv[m], acc[r][m]);
    }
}

/* R rows of w (R = 4 or 1) against M rows of x: y[m, n + r]. M, R and dt are compile-time
 * constants after inlining into the instantiations below. */
NX_INLINE NX_AVX512 void gemv_block(const gemv_job *j, int64_t n, const int M, const int R, const ngpt_dtype dt)
{
    const int64_t K = j->K;
    const int64_t esz = dt == NGPT_DTYPE_F32 ? 4 : 2;
    __m512 acc[4][GEMV_MAX_M];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4")
        for (int m = 0; m < M; m++) acc[r][m] = _mm512_setzero_ps();
    int64_t k = 0;
    if (esz == 2) { /* a line of each row per step, its prefetch into L2 (PF_HALF) */
        for (; k + 32 <= K; k += 32) {
            const int64_t off = k * esz + PF_HALF, wrap = off >= K * esz ? (int64_t)(R - 1) * K * esz : 0;
            _Pragma("GCC unroll 4")
            for (int r = 0; r < R; r++) _mm_prefetch((const char *)j->w + (n + r) * K * esz + off + wrap, _MM_HINT_T1);
            gemv_step(j->x, j->w, K, n, k, 0xffff, M, R, dt, acc);
            gemv_step(j->x, j->w, K, n, k + 16, 0xffff, M, R, dt, acc);
        }
    }
    for (; k + 16 <= K; k += 16) {
        /* software prefetch PF bytes ahead in each of the R weight streams (the hardware
         * prefetcher alone left F16/BF16 at ~77% of the read ceiling); past the end of a row,
         * into the same stream's row of the next block (R rows on), so every row starts
         * prefetched — not into row n + r + 1, which this block is already reading */
        const int64_t off = k * esz + PF, wrap = off >= K * esz ? (int64_t)(R - 1) * K * esz : 0;
        _Pragma("GCC unroll 4")
        for (int r = 0; r < R; r++) _mm_prefetch((const char *)j->w + (n + r) * K * esz + off + wrap, _MM_HINT_T0);
        gemv_step(j->x, j->w, K, n, k, 0xffff, M, R, dt, acc);
    }
    if (k < K) gemv_step(j->x, j->w, K, n, k, (__mmask16)((1u << (K - k)) - 1u), M, R, dt, acc);
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        float bias = j->b ? load_scalar(j->b, j->bdt, n + r) : 0.0f;
        _Pragma("GCC unroll 4")
        for (int m = 0; m < M; m++) j->y[m * j->N + n + r] = _mm512_reduce_add_ps(acc[r][m]) + bias;
    }
}

NX_INLINE NX_AVX512 void gemv_rows_avx512_t(const gemv_job *j, int64_t n0, int64_t n1, const int M, const ngpt_dtype dt)
{
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) gemv_block(j, n, M, 4, dt);
    for (; n < n1; n++) gemv_block(j, n, M, 1, dt);
}

#define GEMV_INST(M_, DT_, NAME_)                                                          \
    static NX_AVX512 void gemv_avx512_##NAME_##_##M_(const gemv_job *j, int64_t n0, int64_t n1) \
    {                                                                                      \
        gemv_rows_avx512_t(j, n0, n1, M_, DT_);                                            \
    }
#define GEMV_INST_M(DT_, NAME_) GEMV_INST(1, DT_, NAME_) GEMV_INST(2, DT_, NAME_) GEMV_INST(3, DT_, NAME_) GEMV_INST(4, DT_, NAME_)
GEMV_INST_M(NGPT_DTYPE_F32, f32)
GEMV_INST_M(NGPT_DTYPE_F16, f16)
GEMV_INST_M(NGPT_DTYPE_BF16, bf16)

typedef void (*gemv_rows_fn)(const gemv_job *, int64_t, int64_t);
static const gemv_rows_fn k_avx512[3][GEMV_MAX_M] = {
    {gemv_avx512_f32_1, gemv_avx512_f32_2, gemv_avx512_f32_3, gemv_avx512_f32_4},
    {gemv_avx512_f16_1, gemv_avx512_f16_2, gemv_avx512_f16_3, gemv_avx512_f16_4},
    {gemv_avx512_bf16_1, gemv_avx512_bf16_2, gemv_avx512_bf16_3, gemv_avx512_bf16_4},
};

/* ---- AVX2 (+FMA, F16C): the same scheme 8 lanes wide. 16 ymm registers hold R x M
 * accumulators plus M rows of x, so R is 4 for M <= 2 and 2 above; the K % 8 tail is scalar. ---- */

NX_INLINE NX_AVX2 __m256 ldw8(const void *w, ngpt_dtype dt, int64_t i)
{
    if (dt == NGPT_DTYPE_F32) return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (dt == NGPT_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

NX_INLINE NX_AVX2 void gemv_block8(const gemv_job *j, int64_t n, const int M, const int R, const ngpt_dtype dt)
{
    const int64_t K = j->K;
    const int64_t esz = dt == NGPT_DTYPE_F32 ? 4 : 2;
    __m256 acc[4][GEMV_MAX_M];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4")
        for (int m = 0; m < M; m++) acc[r][m] = _mm256_setzero_ps();
    int64_t k = 0;
    if (dt == NGPT_DTYPE_BF16 && j->xd) {
        /* 16 BF16 at a time: the 32-bit lane holding (w[2i], w[2i+1]) shifted left is w[2i] as
         * F32, masked it is w[2i+1]; against x's even and odd elements (xd): 2 integer ops per 16
         * weights instead of 2 widenings + 2 shifts */
        const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
        for (; k + 16 <= K; k += 16) {
            const int64_t off = k * esz + PF, wrap = off >= K * esz ? (int64_t)(R - 1) * K * esz : 0;
            _Pragma("GCC unroll 4")
            for (int r = 0; r < R; r++) {
                if ((k & (64 / esz - 1)) == 0) /* one prefetch per 64-byte line, as below */
                    _mm_prefetch((const char *)j->w + (n + r) * K * esz + off + wrap, _MM_HINT_T0);
                const __m256i w16 = _mm256_loadu_si256((const __m256i *)((const uint16_t *)j->w + (n + r) * K + k));
                const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(w16, 16));
                const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(w16, hi));
                _Pragma("GCC unroll 4")
                for (int m = 0; m < M; m++) {
                    const float *xm = j->xd + m * K + k;
                    acc[r][m] = _mm256_fmadd_ps(we, _mm256_loadu_ps(xm), acc[r][m]);
                    acc[r][m] = _mm256_fmadd_ps(wo, _mm256_loadu_ps(xm + 8), acc[r][m]);
                }
            }
        }
    }
    for (; k + 8 <= K; k += 8) {
        __m256 xv[GEMV_MAX_M];
        _Pragma("GCC unroll 4")
        for (int m = 0; m < M; m++) xv[m] = _mm256_loadu_ps(j->x + m * K + k);
        const int64_t off = k * esz + PF, wrap = off >= K * esz ? (int64_t)(R - 1) * K * esz : 0;
        _Pragma("GCC unroll 4")
        for (int r = 0; r < R; r++) {
            if ((k & (64 / esz - 1)) == 0) /* one prefetch per 64-byte line */
                _mm_prefetch((const char *)j->w + (n + r) * K * esz + off + wrap, _MM_HINT_T0);
            __m256 wv = ldw8(j->w, dt, (n + r) * K + k);
            _Pragma("GCC unroll 4")
            for (int m = 0; m < M; m++) acc[r][m] = _mm256_fmadd_ps(wv, xv[m], acc[r][m]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        float bias = j->b ? load_scalar(j->b, j->bdt, n + r) : 0.0f;
        _Pragma("GCC unroll 4")
        for (int m = 0; m < M; m++) {
            float t = nx_hsum8(acc[r][m]);
            for (int64_t kk = k; kk < K; kk++) t += load_scalar(j->w, dt, (n + r) * K + kk) * j->x[m * K + kk];
            j->y[m * j->N + n + r] = t + bias;
        }
    }
}

NX_INLINE NX_AVX2 void gemv_rows_avx2_t(const gemv_job *j, int64_t n0, int64_t n1, const int M, const ngpt_dtype dt)
{
    const int R = M <= 2 ? 4 : 2;
    int64_t n = n0;
    for (; n + R <= n1; n += R) gemv_block8(j, n, M, R, dt);
    for (; n < n1; n++) gemv_block8(j, n, M, 1, dt);
}

#define GEMV_INST8(M_, DT_, NAME_)                                                         \
    static NX_AVX2 void gemv_avx2_##NAME_##_##M_(const gemv_job *j, int64_t n0, int64_t n1) \
    {                                                                                      \
        gemv_rows_avx2_t(j, n0, n1, M_, DT_);                                              \
    }
#define GEMV_INST8_M(DT_, NAME_) GEMV_INST8(1, DT_, NAME_) GEMV_INST8(2, DT_, NAME_) GEMV_INST8(3, DT_, NAME_) GEMV_INST8(4, DT_, NAME_)
GEMV_INST8_M(NGPT_DTYPE_F32, f32)
GEMV_INST8_M(NGPT_DTYPE_F16, f16)
GEMV_INST8_M(NGPT_DTYPE_BF16, bf16)

static const gemv_rows_fn k_avx2[3][GEMV_MAX_M] = {
    {gemv_avx2_f32_1, gemv_avx2_f32_2, gemv_avx2_f32_3, gemv_avx2_f32_4},
    {gemv_avx2_f16_1, gemv_avx2_f16_2, gemv_avx2_f16_3, gemv_avx2_f16_4},
    {gemv_avx2_bf16_1, gemv_avx2_bf16_2, gemv_avx2_bf16_3, gemv_avx2_bf16_4},
};

static void gemv_task(int64_t task, int64_t n_tasks, void *arg)
{
    (void)n_tasks;
    const gemv_job *j = arg;
    int64_t n0 = task * j->rows_per_task;
    int64_t n1 = n0 + j->rows_per_task < j->N ? n0 + j->rows_per_task : j->N;
    const int d = j->wdt == NGPT_DTYPE_F32 ? 0 : j->wdt == NGPT_DTYPE_F16 ? 1 : 2;
    if (j->isa == NX_ISA_AVX512) k_avx512[d][j->M - 1](j, n0, n1);
    else if (j->isa == NX_ISA_AVX2) k_avx2[d][j->M - 1](j, n0, n1);
    else gemv_rows_scalar(j, n0, n1);
}

ngpt_status nx_cpu_gemv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b)
{
    const int64_t N = w->ne[0], K = w->ne[1];
    const int64_t M = K ? nx_numel(x) / K : 0;
    if (M == 0 || N == 0) return NGPT_OK;
    if (K == 0) { /* y = b (or 0) */
        float *yy = y->data;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) yy[m * N + n] = b ? load_scalar(b->data, b->dtype, n) : 0.0f;
        return NGPT_OK;
    }
    int threads = nx_pool_threads(be->pool);
    /* ~4 tasks per thread (the pool balances dynamically), rows a multiple of 4, >= 16 rows. */
    int64_t per = (N + (int64_t)threads * 4 - 1) / ((int64_t)threads * 4);
    per = (per + 3) & ~(int64_t)3;
    if (per < 16) per = 16;
    gemv_job j = {
        .w = w->data, .b = b ? b->data : NULL, .bdt = b ? b->dtype : NGPT_DTYPE_F32,
        .N = N, .K = K, .rows_per_task = per, .wdt = w->dtype, .isa = nx_cpu_isa(),
    };
    float *xd = NULL; /* see gemv_job.xd; without it (no memory) the plain AVX2 loop runs */
    if (j.isa == NX_ISA_AVX2 && j.wdt == NGPT_DTYPE_BF16 && K >= 16 && (xd = nx_malloc((size_t)(M * K) * sizeof *xd))) {
        const float *xs = x->data;
        for (int64_t m = 0; m < M; m++)
            for (int64_t k0 = 0; k0 + 16 <= K; k0 += 16)
                for (int i = 0; i < 8; i++) {
                    xd[m * K + k0 + i] = xs[m * K + k0 + 2 * i];
                    xd[m * K + k0 + 8 + i] = xs[m * K + k0 + 2 * i + 1];
                }
    }
    /* Rows of x in groups of up to 4: each group streams W once. */
    for (int64_t m0 = 0; m0 < M; m0 += GEMV_MAX_M) {
        j.x = (const float *)x->data + m0 * K;
        j.y = (float *)y->data + m0 * N;
        j.M = M - m0 < GEMV_MAX_M ? M - m0 : GEMV_MAX_M;
        j.xd = xd ? xd + m0 * K : NULL;
        nx_pool_run(be->pool, (N + per - 1) / per, gemv_task, &j);
    }
    nx_free(xd);
    return NGPT_OK;
}
