/* cpu_util.c — parallel-for over the pool in contiguous chunks; the vector kernels. */
#include "cpu_util.h"

#include "avx2_util.h"


#define NX_PAR_MIN_WORK 32768  /* below this many element-touches a job runs on the caller */

typedef struct {
    nx_range_fn fn;
    void *arg;
    int64_t n;
} par_job;

static void par_task(int64_t t, int64_t n_tasks, void *vp)
{
    par_job *j = vp;
    int64_t i0 = j->n * t / n_tasks, i1 = j->n * (t + 1) / n_tasks;
    if (i1 > i0) j->fn(i0, i1, j->arg);
}

void nx_cpu_parallel_for(nx_backend *be, int64_t n, int64_t item_cost, nx_range_fn fn, void *arg)
{
    if (n <= 0) return;
    int threads = nx_pool_threads(be ? be->pool : NULL);
    if (item_cost < 1) item_cost = 1;
    if (threads <= 1 || n == 1 || n * item_cost < NX_PAR_MIN_WORK) {
        fn(0, n, arg);
        return;
    }
    int64_t tasks = (int64_t)threads * 4;
    int64_t max_by_work = n * item_cost / (NX_PAR_MIN_WORK / 4);
    if (tasks > max_by_work) tasks = max_by_work;
    if (tasks > n) tasks = n;
    if (tasks < 2) {
        fn(0, n, arg);
        return;
    }
    par_job j = {fn, arg, n};
    nx_pool_run(be->pool, tasks, par_task, &j);
}

#include "../../core/alloc.h"

#include <immintrin.h>

const float *nx_cpu_as_f32(const nx_tensor *t, float **tmp)
{
    *tmp = NULL;
    if (t->dtype == NGPT_DTYPE_F32) return t->data;
    size_t n = (size_t)nx_numel(t);
    float *f = nx_malloc((n ? n : 1) * sizeof *f);
    if (!f) return NULL;
    if (t->dtype == NGPT_DTYPE_F16)
        nx_f16_to_f32_n(t->data, f, n);
    else
        nx_bf16_to_f32_n(t->data, f, n);
    *tmp = f;
    return f;
}

/* ---- AVX-512 ---- */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

AVX512 static inline __mmask16 tail_mask(int64_t left) { return (__mmask16)((1u << left) - 1u); }

AVX512 static float sum_avx512(const float *x, int64_t n)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
    if (i < n) a1 = _mm512_add_ps(a1, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

AVX512 static float sumsqdev_avx512(const float *x, float mean, int64_t n)
{
    __m512 m = _mm512_set1_ps(mean);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), m), v1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), m);
        a0 = _mm512_fmadd_ps(v0, v0, a0);
        a1 = _mm512_fmadd_ps(v1, v1, a1);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_sub_ps(_mm512_loadu_ps(x + i), m);
        a0 = _mm512_fmadd_ps(v, v, a0);
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), m);
        a1 = _mm512_fmadd_ps(v, v, a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

AVX512 static void norm_wb_avx512(float *y, const float *x, float mean, float s, const float *w, const float *b,
                                  int64_t n)
{
    __m512 m = _mm512_set1_ps(mean), sv = _mm512_set1_ps(s);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m), sv);
        if (w) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + i));
        if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, b + i));
        _mm512_mask_storeu_ps(y + i, k, v);
    }
}

AVX512 static void affine_avx512(float *y, const float *x, float a, float c, int64_t n)
{
    __m512 av = _mm512_set1_ps(a), cv = _mm512_set1_ps(c);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), av, cv));
    }
}

/* nx_vcolstats on AVX-512: 16 columns at a time over blocks of COLSTAT_ROWS rows, in F32
 * registers, each block's sums then added to the double accumulators */
#define COLSTAT_ROWS 64

/* p[i] += v[i] widened to double, for the lanes i of m */
AVX512 static inline void add8_pd(double *p, __mmask8 m, __m256 v)
{
    _mm512_mask_storeu_pd(p, m, _mm512_add_pd(_mm512_maskz_loadu_pd(m, p), _mm512_cvtps_pd(v)));
}

AVX512 static void colstats_avx512(const float *x, int64_t rows, int64_t C, const float *shift, double *s,
                                   double *q)
{
    for (int64_t r0 = 0; r0 < rows; r0 += COLSTAT_ROWS) {
        const int64_t r1 = rows - r0 < COLSTAT_ROWS ? rows : r0 + COLSTAT_ROWS;
        for (int64_t c = 0; c < C; c += 16) {
            const __mmask16 m = C - c >= 16 ? (__mmask16)0xffff : tail_mask(C - c);
            const __m512 sh = _mm512_maskz_loadu_ps(m, shift + c);
            __m512 as = _mm512_setzero_ps(), aq = _mm512_setzero_ps();
            for (int64_t r = r0; r < r1; r++) {
                const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + r * C + c), sh);
                as = _mm512_add_ps(as, d);
                aq = _mm512_fmadd_ps(d, d, aq);
            }
            const __mmask8 lo = (__mmask8)m, hi = (__mmask8)(m >> 8);
            add8_pd(s + c, lo, _mm512_castps512_ps256(as));
            add8_pd(q + c, lo, _mm512_castps512_ps256(aq));
            add8_pd(s + c + 8, hi, _mm512_extractf32x8_ps(as, 1));
            add8_pd(q + c + 8, hi, _mm512_extractf32x8_ps(aq, 1));
        }
    }
}

/* x >= 0 ? x : x * slope (slope 0: ReLU); NaN stays NaN (x * slope) */
AVX512 static void leaky_avx512(float *y, const float *x, float slope, int64_t n)
{
    const __m512 sv = _mm512_set1_ps(slope), zero = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        __mmask16 pos = _mm512_cmp_ps_mask(v, zero, _CMP_GE_OQ);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, sv), v));
    }
}

/* ---- AVX2 (+FMA): the AVX-512 kernels 8 lanes wide; tails through maskload/maskstore ---- */

NX_AVX2 static float sum_avx2(const float *x, int64_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    for (; i < n; i += 8) a0 = _mm256_add_ps(a0, _mm256_maskload_ps(x + i, nx_tail8(n - i)));
    return nx_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

NX_AVX2 static float sumsqdev_avx2(const float *x, float mean, int64_t n)
{
    const __m256 m = _mm256_set1_ps(mean);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 v0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), m), v1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m);
        __m256 v2 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 16), m), v3 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 24), m);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
        a2 = _mm256_fmadd_ps(v2, v2, a2);
        a3 = _mm256_fmadd_ps(v3, v3, a3);
    }
    for (; i < n; i += 8) {
        __m256i k = nx_tail8(n - i);
        __m256 v = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), m), _mm256_castsi256_ps(k));
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    return nx_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

/* An elementwise AVX2 loop: BODY maps __m256 v (x[i..i+8)) to the value stored at y + i; full
 * vectors with plain loads and stores (masked stores are slow on AMD), the tail masked. */
#define AVX2_MAP(y, x, n, BODY)                                                      \
    do {                                                                             \
        int64_t i_ = 0;                                                              \
        for (; i_ + 8 <= (n); i_ += 8) {                                             \
            const int64_t i = i_;                                                    \
            __m256 v = _mm256_loadu_ps((x) + i);                                     \
            _mm256_storeu_ps((y) + i, (BODY));                                       \
        }                                                                            \
        if (i_ < (n)) {                                                              \
            const int64_t i = i_;                                                    \
            const __m256i k_ = nx_tail8((n) - i);                                       \
            __m256 v = _mm256_maskload_ps((x) + i, k_);                              \
            _mm256_maskstore_ps((y) + i, k_, (BODY));                                \
        }                                                                            \
    } while (0)

/* w[i..], b[i..] for a possibly partial vector (masked: no read past the end) */
NX_AVX2 static inline __m256 ld8(const float *p, int64_t i, int64_t n)
{
    return n - i >= 8 ? _mm256_loadu_ps(p + i) : _mm256_maskload_ps(p + i, nx_tail8(n - i));
}

NX_AVX2 static void norm_wb_avx2(float *y, const float *x, float mean, float s, const float *w, const float *b, int64_t n)
{
    const __m256 m = _mm256_set1_ps(mean), sv = _mm256_set1_ps(s);
    if (w && b)
        AVX2_MAP(y, x, n, _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(v, m), sv), ld8(w, i, n), ld8(b, i, n)));
    else if (w)
        AVX2_MAP(y, x, n, _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(v, m), sv), ld8(w, i, n)));
    else if (b)
        AVX2_MAP(y, x, n, _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v, m), sv), ld8(b, i, n)));
    else
        AVX2_MAP(y, x, n, _mm256_mul_ps(_mm256_sub_ps(v, m), sv));
}

NX_AVX2 static void affine_avx2(float *y, const float *x, float a, float c, int64_t n)
{
    const __m256 av = _mm256_set1_ps(a), cv = _mm256_set1_ps(c);
    AVX2_MAP(y, x, n, _mm256_fmadd_ps(v, av, cv));
}

NX_AVX2 static void leaky_avx2(float *y, const float *x, float slope, int64_t n)
{
    const __m256 sv = _mm256_set1_ps(slope), zero = _mm256_setzero_ps();
    /* x < 0 or NaN: x * slope */
    AVX2_MAP(y, x, n, _mm256_blendv_ps(v, _mm256_mul_ps(v, sv), _mm256_cmp_ps(v, zero, _CMP_NGE_UQ)));
}

/* ---- portable (8 independent accumulators so the compiler can keep them in a vector) ---- */

static float sum_c(const float *x, int64_t n)
{
    float a[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) a[j] += x[i + j];
    for (; i < n; i++) a[0] += x[i];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

static float sumsqdev_c(const float *x, float mean, int64_t n)
{
    float a[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float d = x[i + j] - mean;
            a[j] += d * d;
        }
    for (; i < n; i++) a[0] += (x[i] - mean) * (x[i] - mean);
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* Sums run in blocks of SUM_BLOCK elements (F32 lanes) whose partial sums add up in double: an
 * F32 running sum of thousands of values with a large common offset (LayerNorm's mean of
 * activations around 100) lost ~1e-4 relative on the 8-lane forms. */
#define SUM_BLOCK 512

float nx_vsum(const float *x, int64_t n)
{
    const nx_isa isa = nx_cpu_isa();
    double acc = 0;
    for (int64_t i = 0; i < n; i += SUM_BLOCK) {
        const int64_t m = n - i < SUM_BLOCK ? n - i : SUM_BLOCK;
        acc += isa == NX_ISA_AVX512 ? sum_avx512(x + i, m) : isa == NX_ISA_AVX2 ? sum_avx2(x + i, m) : sum_c(x + i, m);
    }
    return (float)acc;
}

float nx_vsumsq(const float *x, int64_t n) { return nx_vsumsqdev(x, 0.0f, n); }

float nx_vsumsqdev(const float *x, float mean, int64_t n)
{
    const nx_isa isa = nx_cpu_isa();
    double acc = 0;
    for (int64_t i = 0; i < n; i += SUM_BLOCK) {
        const int64_t m = n - i < SUM_BLOCK ? n - i : SUM_BLOCK;
        acc += isa == NX_ISA_AVX512 ? sumsqdev_avx512(x + i, mean, m)
             : isa == NX_ISA_AVX2   ? sumsqdev_avx2(x + i, mean, m)
                                    : sumsqdev_c(x + i, mean, m);
    }
    return (float)acc;
}

void nx_vnorm_wb(float *y, const float *x, float mean, float s, const float *w, const float *b, int64_t n)
{
    if (nx_cpu_has_avx512()) {
        norm_wb_avx512(y, x, mean, s, w, b, n);
        return;
    }
    if (nx_cpu_has_avx2()) {
        norm_wb_avx2(y, x, mean, s, w, b, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float v = (x[i] - mean) * s;
        if (w) v *= w[i];
        if (b) v += b[i];
        y[i] = v;
    }
}

void nx_vscale_wb(float *y, const float *x, float s, const float *w, const float *b, int64_t n)
{
    nx_vnorm_wb(y, x, 0.0f, s, w, b, n);
}

void nx_vaffine(float *y, const float *x, float a, float c, int64_t n)
{
    if (nx_cpu_has_avx512()) {
        affine_avx512(y, x, a, c, n);
        return;
    }
    if (nx_cpu_has_avx2()) {
        affine_avx2(y, x, a, c, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * a + c;
}

void nx_vcolstats(const float *x, int64_t rows, int64_t C, const float *shift, double *s, double *q)
{
    if (nx_cpu_has_avx512()) {
        colstats_avx512(x, rows, C, shift, s, q);
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C; c++) {
            const double d = (double)(x[r * C + c] - shift[c]);
            s[c] += d;
            q[c] += d * d;
        }
}

void nx_vleaky_relu(float *y, const float *x, float slope, int64_t n)
{
    if (nx_cpu_has_avx512()) {
        leaky_avx512(y, x, slope, n);
        return;
    }
    if (nx_cpu_has_avx2()) {
        leaky_avx2(y, x, slope, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] = x[i] >= 0.0f ? x[i] : x[i] * slope;
}

/* ---- exp-based kernels ---- */

#include <math.h>

/* exp(x): n = round(x log2 e), r = x - n ln2 (two-part ln2), Taylor degree 6 on |r| <= ln2/2,
 * scaled by 2^n with scalef (overflow -> inf, underflow -> 0). NaN passes through. */
AVX512 static inline __m512 exp512(__m512 x)
{
    __m512 xc = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(89.0f)), _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512 e = _mm512_scalef_ps(p, n);
    return _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

enum { SIG_SILU, SIG_SIGMOID, SIG_QUICK_GELU, SIG_GELU_TANH };

/* Everything of the form num / (1 + exp(-a)): SiLU (x, a = x), sigmoid (1, x), quick GELU
 * (x, 1.702 x) and tanh-GELU (x, 2 sqrt(2/pi) (x + 0.044715 x^3)), since
 * 0.5 (1 + tanh(u)) = sigmoid(2u). */
AVX512 static void sig_avx512(float *y, const float *x, int64_t n, int mode)
{
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i), a = v;
        if (mode == SIG_QUICK_GELU) a = _mm512_mul_ps(v, _mm512_set1_ps(1.702f));
        if (mode == SIG_GELU_TANH) {
            __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
            a = _mm512_mul_ps(_mm512_fmadd_ps(v3, _mm512_set1_ps(0.044715f), v), _mm512_set1_ps(1.5957691216057308f));
        }
        __m512 d = _mm512_add_ps(one, exp512(_mm512_sub_ps(zero, a)));
        _mm512_mask_storeu_ps(y + i, k, _mm512_div_ps(mode == SIG_SIGMOID ? one : v, d));
    }
}

/* Exact GELU x * Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2, with the Numerical Recipes erfc
 * (relative error < 1.2e-7 for all z >= 0, so the negative tail stays accurate). */
AVX512 static void gelu_avx512(float *y, const float *x, int64_t n)
{
    static const float c[10] = {-1.26551223f, 1.00002368f, 0.37409196f, 0.09678418f, -0.18628806f,
                                0.27886807f, -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
    const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        __m512 z = _mm512_mul_ps(_mm512_abs_ps(v), _mm512_set1_ps(0.70710678118654752f));
        __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(half, z, one));
        __m512 p = _mm512_set1_ps(c[9]);
        for (int j = 8; j >= 0; j--) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c[j]));
        /* exp(p - x^2 / 2) with x^2 = xx + xl exactly (FMA), so the tail keeps its accuracy */
        __m512 xx = _mm512_mul_ps(v, v), xl = _mm512_fmsub_ps(v, v, xx);
        __m512 e = exp512(_mm512_fnmadd_ps(half, xx, p));
        e = _mm512_mul_ps(t, _mm512_fnmadd_ps(_mm512_mul_ps(half, xl), e, e));  /* erfc(z) */
        __m512 ph = _mm512_mul_ps(half, e);                              /* Phi(-|x|) */
        __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
        ph = _mm512_mask_sub_ps(ph, pos, one, ph);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(v, ph));
    }
}

/* exp(x) on 8 lanes, the same polynomial as exp512; 2^n applied as 2^(n/2) * 2^(n - n/2) (AVX2
 * has no scalef), so the [-104, 89] range still overflows to inf and underflows gradually. */
NX_AVX2 static inline __m256 exp256(__m256 x)
{
    __m256 xc = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(89.0f)), _mm256_set1_ps(-104.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    __m256 e = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

NX_AVX2 static inline __m256 sig256(__m256 v, int mode)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 a = v;
    if (mode == SIG_QUICK_GELU) a = _mm256_mul_ps(v, _mm256_set1_ps(1.702f));
    if (mode == SIG_GELU_TANH) {
        __m256 v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
        a = _mm256_mul_ps(_mm256_fmadd_ps(v3, _mm256_set1_ps(0.044715f), v), _mm256_set1_ps(1.5957691216057308f));
    }
    __m256 d = _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), a)));
    return _mm256_div_ps(mode == SIG_SIGMOID ? one : v, d);
}

NX_AVX2 static void sig_avx2(float *y, const float *x, int64_t n, int mode)
{
    switch (mode) { /* constant modes, so each loop is specialised */
    case SIG_SILU: AVX2_MAP(y, x, n, sig256(v, SIG_SILU)); break;
    case SIG_SIGMOID: AVX2_MAP(y, x, n, sig256(v, SIG_SIGMOID)); break;
    case SIG_QUICK_GELU: AVX2_MAP(y, x, n, sig256(v, SIG_QUICK_GELU)); break;
    default: AVX2_MAP(y, x, n, sig256(v, SIG_GELU_TANH)); break;
    }
}

/* gelu_avx512 on 8 lanes */
NX_AVX2 static inline __m256 gelu256(__m256 v)
{
    static const float c[10] = {-1.26551223f, 1.00002368f, 0.37409196f, 0.09678418f, -0.18628806f,
                                0.27886807f, -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    __m256 z = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v), _mm256_set1_ps(0.70710678118654752f));
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
    __m256 p = _mm256_set1_ps(c[9]);
    for (int j = 8; j >= 0; j--) p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(c[j]));
    __m256 xx = _mm256_mul_ps(v, v), xl = _mm256_fmsub_ps(v, v, xx);
    __m256 e = exp256(_mm256_fnmadd_ps(half, xx, p));
    e = _mm256_mul_ps(t, _mm256_fnmadd_ps(_mm256_mul_ps(half, xl), e, e));
    __m256 ph = _mm256_mul_ps(half, e);
    ph = _mm256_blendv_ps(ph, _mm256_sub_ps(one, ph), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    return _mm256_mul_ps(v, ph);
}

NX_AVX2 static void gelu_avx2(float *y, const float *x, int64_t n) { AVX2_MAP(y, x, n, gelu256(v)); }

NX_AVX2 static float exp_sum_avx2(float *y, const float *x, float scale, float shift, int64_t n)
{
    const __m256 s = _mm256_set1_ps(scale), sh = _mm256_set1_ps(shift);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 e0 = exp256(_mm256_fmsub_ps(_mm256_loadu_ps(x + i), s, sh));
        __m256 e1 = exp256(_mm256_fmsub_ps(_mm256_loadu_ps(x + i + 8), s, sh));
        _mm256_storeu_ps(y + i, e0);
        _mm256_storeu_ps(y + i + 8, e1);
        a0 = _mm256_add_ps(a0, e0);
        a1 = _mm256_add_ps(a1, e1);
    }
    for (; i < n; i += 8) {
        __m256i k = nx_tail8(n - i);
        __m256 e = _mm256_and_ps(exp256(_mm256_fmsub_ps(_mm256_maskload_ps(x + i, k), s, sh)), _mm256_castsi256_ps(k));
        _mm256_maskstore_ps(y + i, k, e);
        a0 = _mm256_add_ps(a0, e);
    }
    return nx_hsum8(_mm256_add_ps(a0, a1));
}

NX_AVX2 static float max_scaled_avx2(const float *x, float scale, int64_t n)
{
    const __m256 s = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    __m256 m = ninf;
    for (int64_t i = 0; i < n; i += 8) {
        __m256i k = nx_tail8(n - i);
        __m256 v = _mm256_blendv_ps(ninf, _mm256_mul_ps(_mm256_maskload_ps(x + i, k), s), _mm256_castsi256_ps(k));
        m = _mm256_max_ps(m, v);
    }
    return nx_hmax8(m);
}

void nx_vgelu(float *y, const float *x, int64_t n)
{
    if (nx_cpu_has_avx512()) {
        gelu_avx512(y, x, n);
        return;
    }
    if (nx_cpu_has_avx2()) {
        gelu_avx2(y, x, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * erfcf(-x[i] * 0.70710678118654752f);  /* no cancellation */
}

void nx_vgelu_tanh(float *y, const float *x, int64_t n)
{
    if (nx_cpu_has_avx512()) {
        sig_avx512(y, x, n, SIG_GELU_TANH);
        return;
    }
    if (nx_cpu_has_avx2()) {
        sig_avx2(y, x, n, SIG_GELU_TANH);
        return;
    }
    for (int64_t i = 0; i < n; i++) {  /* 0.5 (1 + tanh(u)) = sigmoid(2u) */
        float v = x[i];
        y[i] = v / (1.0f + expf(-1.5957691216057308f * (v + 0.044715f * v * v * v)));
    }
}

void nx_vquick_gelu(float *y, const float *x, int64_t n)
{
    if (nx_cpu_has_avx512()) {
        sig_avx512(y, x, n, SIG_QUICK_GELU);
        return;
    }
    if (nx_cpu_has_avx2()) {
        sig_avx2(y, x, n, SIG_QUICK_GELU);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

AVX512 static float exp_sum_avx512(float *y, const float *x, float scale, float shift, int64_t n)
{
    __m512 s = _mm512_set1_ps(scale), sh = _mm512_set1_ps(shift), a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 e0 = exp512(_mm512_fmsub_ps(_mm512_loadu_ps(x + i), s, sh));
        __m512 e1 = exp512(_mm512_fmsub_ps(_mm512_loadu_ps(x + i + 16), s, sh));
        _mm512_storeu_ps(y + i, e0);
        _mm512_storeu_ps(y + i + 16, e1);
        a0 = _mm512_add_ps(a0, e0);
        a1 = _mm512_add_ps(a1, e1);
    }
    for (; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 e = _mm512_maskz_mov_ps(k, exp512(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, x + i), s, sh)));
        _mm512_mask_storeu_ps(y + i, k, e);
        a0 = _mm512_add_ps(a0, e);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

AVX512 static float max_scaled_avx512(const float *x, float scale, int64_t n)
{
    __m512 s = _mm512_set1_ps(scale), m = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        m = _mm512_mask_max_ps(m, k, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), s));
    }
    return _mm512_reduce_max_ps(m);
}

void nx_vsilu(float *y, const float *x, int64_t n)
{
    if (nx_cpu_has_avx512()) {
        sig_avx512(y, x, n, SIG_SILU);
        return;
    }
    if (nx_cpu_has_avx2()) {
        sig_avx2(y, x, n, SIG_SILU);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

void nx_vsigmoid(float *y, const float *x, int64_t n)
{
    if (nx_cpu_has_avx512()) {
        sig_avx512(y, x, n, SIG_SIGMOID);
        return;
    }
    if (nx_cpu_has_avx2()) {
        sig_avx2(y, x, n, SIG_SIGMOID);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

float nx_vexp_sum(float *y, const float *x, float scale, float shift, int64_t n)
{
    if (nx_cpu_has_avx512()) return exp_sum_avx512(y, x, scale, shift, n);
    if (nx_cpu_has_avx2()) return exp_sum_avx2(y, x, scale, shift, n);
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i] * scale - shift);
    return sum_c(y, n);
}

float nx_vmax_scaled(const float *x, float scale, int64_t n)
{
    if (nx_cpu_has_avx512()) return max_scaled_avx512(x, scale, n);
    if (nx_cpu_has_avx2()) return max_scaled_avx2(x, scale, n);
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] * scale;
        m = v > m ? v : m;
    }
    return m;
}

void nx_vmul_scalar(float *y, float s, int64_t n) { nx_vaffine(y, y, s, 0.0f, n); }
