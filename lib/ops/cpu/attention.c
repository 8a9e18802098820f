/* attention.c — scaled dot-product attention, flash style: each task takes one (batch, head,
 * tile of BQ queries), walks the keys in tiles of BK with an online softmax (running max m,
 * running sum l, rescaled accumulator O), so memory is O(BQ * (D + BK) + D * BK) per task,
 * never [Sq, Skv]. The pool runs chunks of tiles (dynamic balancing evens out causal tiles), one
 * scratch allocation per chunk.
 *
 * Per key tile the tile of K is transposed once to Kt[D][BK] so that the scores of one query
 * against BK keys are BK-wide vector FMAs (q[d] broadcast x Kt[d][:]); P @ V is D-wide FMAs
 * into the query's O row. Both, and exp, are AVX-512 or AVX2 when the CPU has it (runtime
 * dispatch, nx_cpu_isa), else plain C. Under the CPU's BF16 compute, on CPUs with AVX512-BF16,
 * both products take BF16 operands instead ("BF16 compute" below).
 *
 * Semantics: scores = scale * q.k + mask; causal hides key j from query i when
 * j > i + (Skv - Sq) (bottom-right aligned). A query row whose keys are all hidden or all -inf
 * (mask) has no defined softmax; we output ZEROS for it (not NaN, unlike a naive softmax), e.g.
 * causal rows with i + Skv - Sq < 0. Mask values below ~-87 relative to the row max contribute
 * exactly 0 in the AVX-512 path (exp underflow), as they would in F32 anyway. */
#include "avx2_util.h"
#include "cpu_ops.h"

#include "../../core/alloc.h"
#include "../../core/cpu_isa.h"
#include "../../core/dtype.h"
#include "../../core/error.h"

#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#define BQ 256
#define BK 64

typedef struct attn_job {
    const float *q, *k, *v, *mask;
    float       *out;
    uint32_t    *kp, *vp;       /* bf16: K and V packed per key tile (pack_task), [B][Hkv][n_kt] */
    int64_t      n_kt;          /* key tiles */
    int64_t      B, Sq, Skv, H, Hkv, D;
    int64_t      mask_bstride;  /* elements between batches of the mask (0: shared [Sq, Skv]) */
    int64_t      n_qt;          /* query tiles */
    int64_t      n_units;       /* tiles (or rows, on the row path) in all */
    int64_t      n_chunks;      /* pool tasks: each runs a contiguous range of units on one scratch */
    size_t       scr_floats;    /* scratch per task */
    void       (*unit)(const struct attn_job *j, int64_t u, float *scr);
    float        scale;
    bool         causal;
    bool         bf16;          /* the tiles in BF16 (V 3): BF16 compute with AVX512-BF16 */
    bool         amx;           /* ... and their products on AMX tiles (attn_tile_amx) */
    int64_t      kdp;           /* bf16: rows of d pairs per packed K tile (amx: whole tiles of 16) */
    nx_isa       isa;
    atomic_int   oom;
} attn_job;

#define NX_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define NX_INLINE static inline __attribute__((always_inline))

/* ---- AVX-512 helpers ---- */

/* exp(x) for 16 lanes, ~2 ulp on [-87, 88]; 0 below -87 (including -inf). Cephes expf. */
NX_INLINE NX_AVX512 __m512 exp512(__m512 x)
{
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512 e = _mm512_scalef_ps(p, n);
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ), e);
}

/* ---- the tile, written once; V (2: AVX-512, 1: AVX2, 0: plain C) selects intrinsics (a
 * constant after inlining) ----
 * Scores and P @ V work on 4 query rows at a time so each loaded K/V vector feeds 4 FMAs
 * (FMA-bound rather than load-bound). */

static inline NX_AVX512 void scores4_512(const float *qs, int64_t D, const float *Kt, float *s)
{
    __m512 a[4][4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < 4; r++)
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) a[r][u] = _mm512_setzero_ps();
    for (int64_t d = 0; d < D; d++) {
        const float *kr = Kt + d * BK;
        __m512 kv[4];
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) kv[u] = _mm512_loadu_ps(kr + 16 * u);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) {
            __m512 qd = _mm512_set1_ps(qs[r * D + d]);
            _Pragma("GCC unroll 4")
            for (int u = 0; u < 4; u++) a[r][u] = _mm512_fmadd_ps(qd, kv[u], a[r][u]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < 4; r++)
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) _mm512_storeu_ps(s + r * BK + 16 * u, a[r][u]);
}

static inline NX_AVX512 __mmask16 tail_mask(int64_t rem)
{
    return rem >= 16 ? (__mmask16)0xffff : rem <= 0 ? (__mmask16)0 : (__mmask16)((1u << rem) - 1u);
}

/* max over s[0, n) after s += mask row mr (when given), vectorised: the tiles' per-row scalar
 * loop cost as much as a quarter of the score FMAs at D 64 */
static inline NX_AVX512 float row_max_512(float *s, int n, const float *mr)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 16) {
        __mmask16 k = tail_mask(n - j);
        __m512 v = _mm512_maskz_loadu_ps(k, s + j);
        if (mr) {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, mr + j));
            _mm512_mask_storeu_ps(s + j, k, v);
        }
        m = _mm512_mask_max_ps(m, k, m, v);
    }
    return _mm512_reduce_max_ps(m);
}

static inline NX_AVX512 float exp_row_512(float *s, float mnew)
{
    __m512 m = _mm512_set1_ps(mnew), sum = _mm512_setzero_ps();
    for (int j = 0; j < BK; j += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + j), m));
        _mm512_storeu_ps(s + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

/* o[r] = corr[r] * o[r] + sum_jj p[r][jj] v[jj] for 4 rows r */
static inline NX_AVX512 void pv4_512(float *o, const float *p, const float *v0, int64_t vstride, int nk, int64_t D,
                                     const float *corr)
{
    for (int64_t d = 0; d < D; d += 64) {
        int64_t rem = D - d;
        __mmask16 mk[4];
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) {
            int64_t r = rem - 16 * u;
            mk[u] = r >= 16 ? (__mmask16)0xffff : r <= 0 ? (__mmask16)0 : (__mmask16)((1u << r) - 1u);
        }
        __m512 acc[4][4];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) {
            __m512 c = _mm512_set1_ps(corr[r]);
            _Pragma("GCC unroll 4")
            for (int u = 0; u < 4; u++) acc[r][u] = _mm512_mul_ps(c, _mm512_maskz_loadu_ps(mk[u], o + r * D + d + 16 * u));
        }
        for (int jj = 0; jj < nk; jj++) {
            const float *vr = v0 + jj * vstride + d;
            __m512 vv[4];
            _Pragma("GCC unroll 4")
            for (int u = 0; u < 4; u++) vv[u] = _mm512_maskz_loadu_ps(mk[u], vr + 16 * u);
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) {
                __m512 pj = _mm512_set1_ps(p[r * BK + jj]);
                _Pragma("GCC unroll 4")
                for (int u = 0; u < 4; u++) acc[r][u] = _mm512_fmadd_ps(pj, vv[u], acc[r][u]);
            }
        }
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++)
            _Pragma("GCC unroll 4")
            for (int u = 0; u < 4; u++) _mm512_mask_storeu_ps(o + r * D + d + 16 * u, mk[u], acc[r][u]);
    }
}

/* ---- AVX2 helpers: the AVX-512 ones 8 lanes wide (16 ymm registers: 4 rows x 2 vectors of
 * accumulators per pass); tails through maskload/maskstore ---- */

/* exp512 on 8 lanes: the same clamp, polynomial and flush to 0 below -87; n in [-126, 127],
 * so 2^n is built in the exponent field directly */
NX_INLINE NX_AVX2 __m256 exp256(__m256 x)
{
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256 two_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
    return _mm256_and_ps(_mm256_mul_ps(p, two_n), _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ));
}

static inline NX_AVX2 void scores4_256(const float *qs, int64_t D, const float *Kt, float *s)
{
    for (int j0 = 0; j0 < BK; j0 += 16) {
        __m256 a[4][2];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = _mm256_setzero_ps();
        for (int64_t d = 0; d < D; d++) {
            const float *kr = Kt + d * BK + j0;
            __m256 k0 = _mm256_loadu_ps(kr), k1 = _mm256_loadu_ps(kr + 8);
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) {
                __m256 qd = _mm256_broadcast_ss(qs + r * D + d);
                a[r][0] = _mm256_fmadd_ps(qd, k0, a[r][0]);
                a[r][1] = _mm256_fmadd_ps(qd, k1, a[r][1]);
            }
        }
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) {
            _mm256_storeu_ps(s + r * BK + j0, a[r][0]);
            _mm256_storeu_ps(s + r * BK + j0 + 8, a[r][1]);
        }
    }
}

static inline NX_AVX2 float row_max_256(float *s, int n, const float *mr)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m = ninf;
    for (int j = 0; j < n; j += 8) {
        __m256i k = nx_tail8(n - j);
        __m256 v = _mm256_maskload_ps(s + j, k);
        if (mr) {
            v = _mm256_add_ps(v, _mm256_maskload_ps(mr + j, k));
            _mm256_maskstore_ps(s + j, k, v);
        }
        m = _mm256_max_ps(m, _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(k)));
    }
    return nx_hmax8(m);
}

static inline NX_AVX2 float exp_row_256(float *s, float mnew)
{
    __m256 m = _mm256_set1_ps(mnew), sum = _mm256_setzero_ps();
    for (int j = 0; j < BK; j += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
        _mm256_storeu_ps(s + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    return nx_hsum8(sum);
}

static inline NX_AVX2 void pv4_256(float *o, const float *p, const float *v0, int64_t vstride, int nk, int64_t D,
                                   const float *corr)
{
    for (int64_t d = 0; d < D; d += 16) {
        const __m256i k0 = nx_tail8(D - d), k1 = nx_tail8(D - d - 8);
        __m256 acc[4][2];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) {
            __m256 c = _mm256_set1_ps(corr[r]);
            acc[r][0] = _mm256_mul_ps(c, _mm256_maskload_ps(o + r * D + d, k0));
            acc[r][1] = _mm256_mul_ps(c, _mm256_maskload_ps(o + r * D + d + 8, k1));
        }
        for (int jj = 0; jj < nk; jj++) {
            const float *vr = v0 + jj * vstride + d;
            __m256 v0v = _mm256_maskload_ps(vr, k0), v1v = _mm256_maskload_ps(vr + 8, k1);
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) {
                __m256 pj = _mm256_broadcast_ss(p + r * BK + jj);
                acc[r][0] = _mm256_fmadd_ps(pj, v0v, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(pj, v1v, acc[r][1]);
            }
        }
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) {
            _mm256_maskstore_ps(o + r * D + d, k0, acc[r][0]);
            _mm256_maskstore_ps(o + r * D + d + 8, k1, acc[r][1]);
        }
    }
}

NX_INLINE void scores4(const float *qs, int64_t D, const float *Kt, float *s, const int V)
{
    if (V == 2) {
        scores4_512(qs, D, Kt, s);
        return;
    }
    if (V == 1) {
        scores4_256(qs, D, Kt, s);
        return;
    }
    for (int r = 0; r < 4; r++) {
        float *sr = s + r * BK;
        for (int j = 0; j < BK; j++) sr[j] = 0.0f;
        for (int64_t d = 0; d < D; d++)
            for (int j = 0; j < BK; j++) sr[j] += qs[r * D + d] * Kt[d * BK + j];
    }
}

NX_INLINE float row_max(float *s, int n, const float *mr, const int V)
{
    if (V == 2) return row_max_512(s, n, mr);
    if (V == 1) return row_max_256(s, n, mr);
    float mx = -INFINITY;
    for (int jj = 0; jj < n; jj++) {
        if (mr) s[jj] += mr[jj];
        mx = s[jj] > mx ? s[jj] : mx;
    }
    return mx;
}

NX_INLINE float exp_row(float *s, float mnew, const int V)
{
    if (V == 2) return exp_row_512(s, mnew);
    if (V == 1) return exp_row_256(s, mnew);
    float sum = 0.0f;
    for (int j = 0; j < BK; j++) {
        s[j] = expf(s[j] - mnew);
        sum += s[j];
    }
    return sum;
}

/* One query row's online-softmax step over a key tile (row i of the tile at q0, keys from j0, nk
 * of them in the tile): the row's mask added and its hidden keys (mask, causal cut, past nk) set
 * to -inf, Si [BK] becomes exp(s - m_new) in place and m, l follow; returns the factor the row's
 * accumulator is rescaled by. A row with every key so far hidden contributes nothing: Si zeroed,
 * factor 1. Rows i >= nq (padding) see no key. V as row_max. */
NX_INLINE float softmax_row_step(const attn_job *j, float *Si, int64_t b, int64_t q0, int i, int nq, int64_t j0,
                                 int nk, float *m, float *l, const int V)
{
    const int64_t off = j->Skv - j->Sq;
    int64_t nvalid = i < nq ? nk : 0;
    if (j->causal && q0 + i + off - j0 + 1 < nvalid) nvalid = q0 + i + off - j0 + 1;
    float mx = -INFINITY;
    if (nvalid > 0)
        mx = row_max(Si, (int)nvalid, j->mask ? j->mask + b * j->mask_bstride + (q0 + i) * j->Skv + j0 : NULL, V);
    const float mnew = mx > *m ? mx : *m;
    if (mnew == -INFINITY) {
        for (int jj = 0; jj < BK; jj++) Si[jj] = 0.0f;
        return 1.0f;
    }
    for (int jj = nvalid > 0 ? (int)nvalid : 0; jj < BK; jj++) Si[jj] = -INFINITY;
    const float corr = *m == -INFINITY ? 0.0f : expf(*m - mnew);
    *l = *l * corr + exp_row(Si, mnew, V);
    *m = mnew;
    return corr;
}

NX_INLINE void pv4(float *o, const float *p, const float *v0, int64_t vstride, int nk, int64_t D, const float *corr,
                   const int V)
{
    if (V == 2) {
        pv4_512(o, p, v0, vstride, nk, D, corr);
        return;
    }
    if (V == 1) {
        pv4_256(o, p, v0, vstride, nk, D, corr);
        return;
    }
    for (int r = 0; r < 4; r++) {
        float *orow = o + r * D;
        for (int64_t d = 0; d < D; d++) orow[d] *= corr[r];
        for (int jj = 0; jj < nk; jj++)
            for (int64_t d = 0; d < D; d++) orow[d] += p[r * BK + jj] * v0[jj * vstride + d];
    }
}

/* ---- BF16 compute (V 3: AVX-512 with AVX512-BF16) ----
 * Under nx_cpu_set_bf16_compute the tiles take q (scaled), K, the probabilities and V as BF16
 * with F32 accumulation, as PyTorch's bf16 attention does: vdpbf16ps multiplies two BF16 pairs
 * per F32 lane, twice the multiply-adds of an F32 FMA. Its operands are pairs along the summed
 * axis: q.k sums over d, so K is held as [D/2][BK] pairs of consecutive d (a transposed tile, as
 * Kt), and P.V sums over keys, so V as [BK/2][D16] pairs of consecutive keys, P as its rows'
 * consecutive pairs (its plain row order in BF16). The softmax itself stays F32. */
#define NX_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

static inline uint32_t bf16_pair(float lo, float hi)
{
    return (uint32_t)nx_f32_to_bf16(lo) | (uint32_t)nx_f32_to_bf16(hi) << 16;
}

static inline NX_AVX512BF16 void scores4_bf16(const uint32_t *qp, int64_t DP, const uint32_t *Kp, float *s)
{
    __m512 a[4][4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < 4; r++)
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) a[r][u] = _mm512_setzero_ps();
    for (int64_t dp = 0; dp < DP; dp++) {
        __m512bh kv[4];
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) kv[u] = (__m512bh)_mm512_loadu_si512(Kp + dp * BK + 16 * u);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) {
            __m512bh qd = (__m512bh)_mm512_set1_epi32((int)qp[r * DP + dp]);
            _Pragma("GCC unroll 4")
            for (int u = 0; u < 4; u++) a[r][u] = _mm512_dpbf16_ps(a[r][u], qd, kv[u]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < 4; r++)
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) _mm512_storeu_ps(s + r * BK + 16 * u, a[r][u]);
}

/* o[r] = corr[r] * o[r] + sum over key pairs of p[r] . v for 4 rows; pp: [4][BK/2] pairs, Vp:
 * [np][D16] pairs */
static inline NX_AVX512BF16 void pv4_bf16(float *o, const uint32_t *pp, const uint32_t *Vp, int np, int64_t D,
                                          int64_t D16, const float *corr)
{
    for (int64_t d = 0; d < D; d += 64) {
        __mmask16 mk[4];
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) mk[u] = tail_mask(D - d - 16 * u);
        __m512 acc[4][4];
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) {
            __m512 c = _mm512_set1_ps(corr[r]);
            _Pragma("GCC unroll 4")
            for (int u = 0; u < 4; u++) acc[r][u] = _mm512_mul_ps(c, _mm512_maskz_loadu_ps(mk[u], o + r * D + d + 16 * u));
        }
        for (int jp = 0; jp < np; jp++) {
            __m512bh vv[4];
            _Pragma("GCC unroll 4")
            for (int u = 0; u < 4; u++) vv[u] = (__m512bh)_mm512_maskz_loadu_epi32(mk[u], Vp + jp * D16 + d + 16 * u);
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) {
                __m512bh pj = (__m512bh)_mm512_set1_epi32((int)pp[r * (BK / 2) + jp]);
                _Pragma("GCC unroll 4")
                for (int u = 0; u < 4; u++) acc[r][u] = _mm512_dpbf16_ps(acc[r][u], pj, vv[u]);
            }
        }
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++)
            _Pragma("GCC unroll 4")
            for (int u = 0; u < 4; u++) _mm512_mask_storeu_ps(o + r * D + d + 16 * u, mk[u], acc[r][u]);
    }
}

/* p[0, BK) (F32 probabilities) -> BK/2 BF16 pairs, in order */
static inline NX_AVX512BF16 void pack_probs_bf16(uint32_t *pp, const float *p)
{
    _Pragma("GCC unroll 2")
    for (int j = 0; j < BK; j += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + j + 16), _mm512_loadu_ps(p + j));
        _mm512_storeu_si512(pp + j / 2, (__m512i)v);
    }
}

NX_INLINE void attn_tile(const attn_job *j, int64_t b, int64_t h, int64_t q0, float *scr, const int V)
{
    const int64_t D = j->D, Sq = j->Sq, Skv = j->Skv, H = j->H, Hkv = j->Hkv;
    const int64_t hk = h / (H / Hkv), off = Skv - Sq;
    const int nq = (int)(Sq - q0 < BQ ? Sq - q0 : BQ);
    const int nq4 = (nq + 3) & ~3;
    float *Qs = scr;          /* [BQ][D] scaled queries (rows >= nq zero) */
    float *O = Qs + BQ * D;   /* [BQ][D] unnormalised output */
    float *Kt = O + BQ * D;   /* [D][BK] */
    float *S = Kt + D * BK;   /* [BQ][BK] scores, then probabilities */
    /* BF16 (V 3): pairs of q along d, of K along d, of V along keys, of P along keys */
    const int64_t DP = (D + 1) / 2, D16 = (D + 15) & ~(int64_t)15;
    uint32_t *Qp = (uint32_t *)(S + BQ * BK), *Pp = Qp + BQ * DP;
    float m[BQ], l[BQ], corr[BQ];
    for (int i = 0; i < nq4; i++) {
        const float *qr = i < nq ? j->q + ((b * Sq + q0 + i) * H + h) * D : NULL;
        for (int64_t d = 0; d < D; d++) {
            Qs[i * D + d] = qr ? qr[d] * j->scale : 0.0f;
            O[i * D + d] = 0.0f;
        }
        for (int64_t dp = 0; V == 3 && dp < DP; dp++)
            Qp[i * DP + dp] = bf16_pair(Qs[i * D + 2 * dp], 2 * dp + 1 < D ? Qs[i * D + 2 * dp + 1] : 0.0f);
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    int64_t kv_end = Skv;
    if (j->causal && q0 + nq + off < kv_end) kv_end = q0 + nq + off; /* last query's keys */
    const int64_t kvrow = Hkv * D;
    for (int64_t j0 = 0; j0 < kv_end; j0 += BK) {
        const int nk = (int)(kv_end - j0 < BK ? kv_end - j0 : BK);
        const float *kb = j->k + ((b * Skv + j0) * Hkv + hk) * D;
        const float *vb = j->v + ((b * Skv + j0) * Hkv + hk) * D;
        const int64_t kt = (b * Hkv + hk) * j->n_kt + j0 / BK; /* the packed tile (V 3) */
        const uint32_t *Kp = V == 3 ? j->kp + kt * j->kdp * BK : NULL, *Vp = V == 3 ? j->vp + kt * (BK / 2) * D16 : NULL;
        if (V == 3) {
            for (int i = 0; i < nq4; i += 4) scores4_bf16(Qp + i * DP, DP, Kp, S + i * BK);
        } else {
            for (int jj = 0; jj < nk; jj++)
                for (int64_t d = 0; d < D; d++) Kt[d * BK + jj] = kb[jj * kvrow + d];
            for (int jj = nk; jj < BK; jj++)
                for (int64_t d = 0; d < D; d++) Kt[d * BK + jj] = 0.0f;
            for (int i = 0; i < nq4; i += 4) scores4(Qs + i * D, D, Kt, S + i * BK, V);
        }
        for (int i = 0; i < nq4; i++)
            corr[i] = softmax_row_step(j, S + i * BK, b, q0, i, nq, j0, nk, &m[i], &l[i], V == 3 ? 2 : V);
        if (V == 3) {
            for (int i = 0; i < nq4; i++) pack_probs_bf16(Pp + i * (BK / 2), S + i * BK);
            for (int i = 0; i < nq4; i += 4)
                pv4_bf16(O + i * D, Pp + i * (BK / 2), Vp, (nk + 1) / 2, D, D16, corr + i);
        } else {
            for (int i = 0; i < nq4; i += 4) pv4(O + i * D, S + i * BK, vb, kvrow, nk, D, corr + i, V);
        }
    }
    for (int i = 0; i < nq; i++) {
        float *orow = j->out + ((b * Sq + q0 + i) * H + h) * D;
        float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f; /* fully masked row -> zeros */
        for (int64_t d = 0; d < D; d++) orow[d] = O[i * D + d] * inv;
    }
}

static NX_AVX512 void attn_tile_avx512(const attn_job *j, int64_t b, int64_t h, int64_t q0, float *scr)
{
    attn_tile(j, b, h, q0, scr, 2);
}

static NX_AVX512BF16 void attn_tile_bf16(const attn_job *j, int64_t b, int64_t h, int64_t q0, float *scr)
{
    attn_tile(j, b, h, q0, scr, 3);
}

static NX_AVX2 void attn_tile_avx2(const attn_job *j, int64_t b, int64_t h, int64_t q0, float *scr)
{
    attn_tile(j, b, h, q0, scr, 1);
}

static void attn_tile_plain(const attn_job *j, int64_t b, int64_t h, int64_t q0, float *scr)
{
    attn_tile(j, b, h, q0, scr, 0);
}

/* ---- BF16 compute on AMX (V 4: AMX-BF16) ----
 * TDPBF16PS multiplies a 16 x 32 BF16 tile by a 32 x 16 one held as 16 rows of 16 pairs, into
 * 16 x 16 F32: 16x the multiply-adds of a vdpbf16ps. The packed operands of V 3 are already in
 * its layouts: q as pairs along d (A: 16 query rows x 16 pairs), K as [kdp][BK] pairs along d (B),
 * P as its rows' key pairs (A), V as [BK/2][D16] key pairs (B). q.k's summed axis is padded with
 * zero pairs to whole tiles (kdp = 16 * ceil(D / 32)); the query rows to 16. O is kept in rows
 * of D16 so that each 16 x 16 block of it loads as a tile; the online softmax (F32, as V 3) and
 * its rescaling of O run in AVX-512 between key tiles. */
#define NX_AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,amx-tile,amx-bf16")))

/* the LDTILECFG operand (palette 1): 8 tiles of 16 rows x 64 bytes */
typedef struct amx_tilecfg {
    uint8_t  palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t  rows[16];
} amx_tilecfg;

/* 2^t for 16 lanes of t = x log2(e), x finite and <= 0 (a row's scores minus their max): the
 * range reduction of exp512 without its clamps and a degree-4 Taylor polynomial of 2^f on
 * [-1/2, 1/2], relative error < 5e-5: the probabilities are rounded to BF16 (2^-9) anyway. Far
 * below the F32 range scalef gives 0, as exp would. */
NX_INLINE NX_AMX __m512 exp512_bf16(__m512 x)
{
    const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(9.6181291e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* The online softmax of 16 query rows over a key tile whose BK keys are all visible (no mask,
 * no causal cut; the SD and ImageBind shapes): row maxima, one vector exp for the 16 rescaling
 * factors, then per row exp, sum, the BF16 pairs of P and the rescaled O row, from registers. */
NX_INLINE NX_AMX void softmax16_amx(const float *S, uint32_t *Pp, float *O, int64_t D16, float *m, float *l)
{
    float mx[16], cr[16];
    for (int r = 0; r < 16; r++) {
        const float *sr = S + r * BK;
        const __m512 a = _mm512_max_ps(_mm512_loadu_ps(sr), _mm512_loadu_ps(sr + 16));
        const __m512 c = _mm512_max_ps(_mm512_loadu_ps(sr + 32), _mm512_loadu_ps(sr + 48));
        mx[r] = _mm512_reduce_max_ps(_mm512_max_ps(a, c));
    }
    const __m512 mo = _mm512_loadu_ps(m), mn = _mm512_max_ps(mo, _mm512_loadu_ps(mx));
    _mm512_storeu_ps(cr, exp512(_mm512_sub_ps(mo, mn))); /* exp(-inf) = 0: the first tile */
    _mm512_storeu_ps(m, mn);
    for (int r = 0; r < 16; r++) {
        const float *sr = S + r * BK;
        const __m512 mr = _mm512_set1_ps(m[r]);
        const __m512 e0 = exp512_bf16(_mm512_sub_ps(_mm512_loadu_ps(sr), mr));
        const __m512 e1 = exp512_bf16(_mm512_sub_ps(_mm512_loadu_ps(sr + 16), mr));
        const __m512 e2 = exp512_bf16(_mm512_sub_ps(_mm512_loadu_ps(sr + 32), mr));
        const __m512 e3 = exp512_bf16(_mm512_sub_ps(_mm512_loadu_ps(sr + 48), mr));
        l[r] = l[r] * cr[r] + _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(e0, e1), _mm512_add_ps(e2, e3)));
        _mm512_storeu_si512(Pp + r * (BK / 2), (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
        _mm512_storeu_si512(Pp + r * (BK / 2) + 16, (__m512i)_mm512_cvtne2ps_pbh(e3, e2));
        const __m512 c = _mm512_set1_ps(cr[r]);
        for (int64_t d = 0; d < D16; d += 16)
            _mm512_storeu_ps(O + r * D16 + d, _mm512_mul_ps(c, _mm512_loadu_ps(O + r * D16 + d)));
    }
}

static NX_AMX void attn_tile_amx(const attn_job *j, int64_t b, int64_t h, int64_t q0, float *scr)
{
    const int64_t D = j->D, Sq = j->Sq, Skv = j->Skv, H = j->H, Hkv = j->Hkv;
    const int64_t hk = h / (H / Hkv), off = Skv - Sq, KDP = j->kdp, D16 = (D + 15) & ~(int64_t)15;
    const int nq = (int)(Sq - q0 < BQ ? Sq - q0 : BQ);
    const int nq16 = (nq + 15) & ~15;
    float *S = scr;                                 /* [BQ][BK] scores, then probabilities */
    float *O = S + BQ * BK;                         /* [BQ][D16] unnormalised output */
    uint32_t *Qp = (uint32_t *)(O + BQ * D16);      /* [BQ][KDP] pairs of scaled q */
    uint32_t *Pp = Qp + BQ * KDP;                   /* [BQ][BK/2] pairs of P */
    float m[BQ], l[BQ], corr[BQ];
    for (int i = 0; i < nq16; i++) {
        const float *qr = i < nq ? j->q + ((b * Sq + q0 + i) * H + h) * D : NULL;
        for (int64_t dp = 0; dp < KDP; dp++) {
            const float lo = qr && 2 * dp < D ? qr[2 * dp] * j->scale : 0.0f;
            const float hi = qr && 2 * dp + 1 < D ? qr[2 * dp + 1] * j->scale : 0.0f;
            Qp[i * KDP + dp] = bf16_pair(lo, hi);
        }
        for (int64_t d = 0; d < D16; d++) O[i * D16 + d] = 0.0f;
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    amx_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
    int64_t kv_end = Skv;
    if (j->causal && q0 + nq + off < kv_end) kv_end = q0 + nq + off; /* last query's keys */
    const long qs = (long)(KDP * 4), ks = (long)(BK * 4), ps = (long)(BK / 2 * 4), os = (long)(D16 * 4);
    for (int64_t j0 = 0; j0 < kv_end; j0 += BK) {
        const int nk = (int)(kv_end - j0 < BK ? kv_end - j0 : BK);
        const int64_t kt = (b * Hkv + hk) * j->n_kt + j0 / BK;
        const uint32_t *Kp = j->kp + kt * KDP * BK, *Vp = j->vp + kt * (BK / 2) * D16;
        for (int r0 = 0; r0 < nq16; r0 += 16) { /* S[r0 .. r0 + 16) = q . k over the BK keys */
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int64_t dp = 0; dp < KDP; dp += 16) {
                _tile_loadd(4, Qp + r0 * KDP + dp, qs);
                _tile_loadd(5, Kp + dp * BK, ks);
                _tile_loadd(6, Kp + dp * BK + 16, ks);
                _tile_dpbf16ps(0, 4, 5);
                _tile_loadd(7, Kp + dp * BK + 32, ks);
                _tile_dpbf16ps(1, 4, 6);
                _tile_loadd(5, Kp + dp * BK + 48, ks);
                _tile_dpbf16ps(2, 4, 7);
                _tile_dpbf16ps(3, 4, 5);
            }
            _tile_stored(0, S + r0 * BK, ks);
            _tile_stored(1, S + r0 * BK + 16, ks);
            _tile_stored(2, S + r0 * BK + 32, ks);
            _tile_stored(3, S + r0 * BK + 48, ks);
        }
        /* whole groups of 16 rows that see all BK keys: the fast softmax */
        const bool full = nk == BK && !j->mask && (!j->causal || q0 + off - j0 + 1 >= BK);
        const int nfast = full ? nq & ~15 : 0;
        for (int r0 = 0; r0 < nfast; r0 += 16)
            softmax16_amx(S + r0 * BK, Pp + r0 * (BK / 2), O + r0 * D16, D16, m + r0, l + r0);
        for (int i = nfast; i < nq16; i++) {
            float *Si = S + i * BK;
            corr[i] = softmax_row_step(j, Si, b, q0, i, nq, j0, nk, &m[i], &l[i], 2);
            pack_probs_bf16(Pp + i * (BK / 2), Si);
            const __m512 c = _mm512_set1_ps(corr[i]);
            for (int64_t d = 0; d < D16; d += 16)
                _mm512_storeu_ps(O + i * D16 + d, _mm512_mul_ps(c, _mm512_loadu_ps(O + i * D16 + d)));
        }
        for (int r0 = 0; r0 < nq16; r0 += 16) { /* O[r0 .. r0 + 16) += P . V */
            _tile_loadd(4, Pp + r0 * (BK / 2), ps);
            _tile_loadd(5, Pp + r0 * (BK / 2) + 16, ps);
            int64_t d = 0;
            for (; d + 32 <= D16; d += 32) { /* two column blocks at a time: independent chains */
                float *Ob = O + r0 * D16 + d;
                _tile_loadd(0, Ob, os);
                _tile_loadd(1, Ob + 16, os);
                _tile_loadd(2, Vp + d, os);
                _tile_loadd(3, Vp + 16 * D16 + d, os);
                _tile_loadd(6, Vp + d + 16, os);
                _tile_loadd(7, Vp + 16 * D16 + d + 16, os);
                _tile_dpbf16ps(0, 4, 2);
                _tile_dpbf16ps(1, 4, 6);
                _tile_dpbf16ps(0, 5, 3);
                _tile_dpbf16ps(1, 5, 7);
                _tile_stored(0, Ob, os);
                _tile_stored(1, Ob + 16, os);
            }
            if (d < D16) {
                float *Ob = O + r0 * D16 + d;
                _tile_loadd(0, Ob, os);
                _tile_loadd(6, Vp + d, os);
                _tile_loadd(7, Vp + 16 * D16 + d, os);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(0, 5, 7);
                _tile_stored(0, Ob, os);
            }
        }
    }
    _tile_release();
    for (int i = 0; i < nq; i++) {
        float *orow = j->out + ((b * Sq + q0 + i) * H + h) * D;
        float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f; /* fully masked row -> zeros */
        for (int64_t d = 0; d < D; d++) orow[d] = O[i * D16 + d] * inv;
    }
}

/* ---- few query rows (decode) or few keys: per (batch, head, row), straight from the K/V rows ----
 * The tiles above compute 4 query rows for every row that exists and transpose each K tile with
 * scalar copies; for the backbone's decode step (1 query row against the whole cache) that made
 * attention ~2.5 ms per layer at 512 positions, about 8x what reading K and V costs. Here the
 * scores are D-wide dot products over the K rows as they lie, then exp, then P @ V over the V
 * rows: K and V are read once. AVX-512 and AVX2 (the portable build runs the tiles). */
enum { ROW_PATH_MAX_SQ = 3, ROW_PATH_MAX_SKV = 16 };

/* the row path's three loops, per level: q . k over D; s[0, n) = exp(s - mx) with their sum;
 * o = inv * sum_t s[t] v[t] */
static inline NX_AVX512 float dot_512(const float *q, const float *k, int64_t D)
{
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < D; d += 16) {
        __mmask16 mk = tail_mask(D - d);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, q + d), _mm512_maskz_loadu_ps(mk, k + d), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static inline NX_AVX512 float exp_sum_512(float *s, int64_t n, float mx)
{
    __m512 m = _mm512_set1_ps(mx), sum = _mm512_setzero_ps();
    for (int64_t t = 0; t < n; t += 16) {
        __mmask16 mk = tail_mask(n - t);
        __m512 e = _mm512_maskz_mov_ps(mk, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + t), m)));
        _mm512_mask_storeu_ps(s + t, mk, e);
        sum = _mm512_add_ps(sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

static inline NX_AVX512 void pv_row_512(float *o, const float *s, const float *vb, int64_t kvrow, int64_t n, int64_t D,
                                        float inv)
{
    for (int64_t d = 0; d < D; d += 64) {
        __mmask16 mk[4];
        __m512 acc[4];
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) {
            mk[u] = tail_mask(D - d - 16 * u);
            acc[u] = _mm512_setzero_ps();
        }
        for (int64_t t = 0; t < n; t++) {
            const float *vr = vb + t * kvrow + d;
            __m512 pt = _mm512_set1_ps(s[t]);
            _Pragma("GCC unroll 4")
            for (int u = 0; u < 4; u++) acc[u] = _mm512_fmadd_ps(pt, _mm512_maskz_loadu_ps(mk[u], vr + 16 * u), acc[u]);
        }
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) _mm512_mask_storeu_ps(o + d + 16 * u, mk[u], _mm512_mul_ps(acc[u], _mm512_set1_ps(inv)));
    }
}

static inline NX_AVX2 float dot_256(const float *q, const float *k, int64_t D)
{
    __m256 acc = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; d += 8) {
        __m256i mk = nx_tail8(D - d);
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(q + d, mk), _mm256_maskload_ps(k + d, mk), acc);
    }
    return nx_hsum8(acc);
}

static inline NX_AVX2 float exp_sum_256(float *s, int64_t n, float mx)
{
    __m256 m = _mm256_set1_ps(mx), sum = _mm256_setzero_ps();
    for (int64_t t = 0; t < n; t += 8) {
        __m256i mk = nx_tail8(n - t);
        __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_maskload_ps(s + t, mk), m)), _mm256_castsi256_ps(mk));
        _mm256_maskstore_ps(s + t, mk, e);
        sum = _mm256_add_ps(sum, e);
    }
    return nx_hsum8(sum);
}

static inline NX_AVX2 void pv_row_256(float *o, const float *s, const float *vb, int64_t kvrow, int64_t n, int64_t D,
                                      float inv)
{
    for (int64_t d = 0; d < D; d += 32) {
        __m256i mk[4];
        __m256 acc[4];
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) {
            mk[u] = nx_tail8(D - d - 8 * u);
            acc[u] = _mm256_setzero_ps();
        }
        for (int64_t t = 0; t < n; t++) {
            const float *vr = vb + t * kvrow + d;
            __m256 pt = _mm256_broadcast_ss(s + t);
            _Pragma("GCC unroll 4")
            for (int u = 0; u < 4; u++) acc[u] = _mm256_fmadd_ps(pt, _mm256_maskload_ps(vr + 8 * u, mk[u]), acc[u]);
        }
        _Pragma("GCC unroll 4")
        for (int u = 0; u < 4; u++) _mm256_maskstore_ps(o + d + 8 * u, mk[u], _mm256_mul_ps(acc[u], _mm256_set1_ps(inv)));
    }
}

/* one query row (V: 2 AVX-512, 1 AVX2) */
NX_INLINE void attn_row(const attn_job *j, int64_t b, int64_t h, int64_t i, float *s, const int V)
{
    const int64_t D = j->D, Sq = j->Sq, Skv = j->Skv, H = j->H, Hkv = j->Hkv;
    const int64_t hk = h / (H / Hkv), kvrow = Hkv * D;
    int64_t n = Skv;
    if (j->causal) { /* keys 0 .. i + (Skv - Sq) */
        int64_t lim = i + (Skv - Sq) + 1;
        n = lim < 0 ? 0 : lim < n ? lim : n;
    }
    const float *q = j->q + ((b * Sq + i) * H + h) * D;
    const float *kb = j->k + (b * Skv * Hkv + hk) * D, *vb = j->v + (b * Skv * Hkv + hk) * D;
    const float *mr = j->mask ? j->mask + b * j->mask_bstride + i * Skv : NULL;
    float *o = j->out + ((b * Sq + i) * H + h) * D;
    float mx = -INFINITY;
    for (int64_t t = 0; t < n; t++) {
        const float *kr = kb + t * kvrow;
        float x = (V == 2 ? dot_512(q, kr, D) : dot_256(q, kr, D)) * j->scale + (mr ? mr[t] : 0.0f);
        s[t] = x;
        mx = x > mx ? x : mx;
    }
    if (mx == -INFINITY) { /* every key hidden (or no key): zeros, as the tiles do */
        for (int64_t d = 0; d < D; d++) o[d] = 0.0f;
        return;
    }
    const float inv = 1.0f / (V == 2 ? exp_sum_512(s, n, mx) : exp_sum_256(s, n, mx));
    if (V == 2) pv_row_512(o, s, vb, kvrow, n, D, inv);
    else pv_row_256(o, s, vb, kvrow, n, D, inv);
}

static NX_AVX512 void attn_row_avx512(const attn_job *j, int64_t b, int64_t h, int64_t i, float *s)
{
    attn_row(j, b, h, i, s, 2);
}

static NX_AVX2 void attn_row_avx2(const attn_job *j, int64_t b, int64_t h, int64_t i, float *s)
{
    attn_row(j, b, h, i, s, 1);
}

/* ---- the pool's tasks: chunks of units (query tiles, or rows on the row path) ---- */

/* bf16: key tile t of every (batch, kv head) packed once for all query tiles: K as pairs along
 * d ([DP][BK], zero past the last key and past D), V as pairs of consecutive keys ([BK/2][D16]) */
static void pack_task(int64_t t, int64_t nt, void *arg)
{
    (void)nt;
    const attn_job *j = arg;
    const int64_t D = j->D, DP = j->kdp, D16 = (D + 15) & ~(int64_t)15, kvrow = j->Hkv * D;
    const int64_t tile = t % j->n_kt, bh = t / j->n_kt, hk = bh % j->Hkv, b = bh / j->Hkv, j0 = tile * BK;
    const int nk = (int)(j->Skv - j0 < BK ? j->Skv - j0 : BK);
    const float *kb = j->k + ((b * j->Skv + j0) * j->Hkv + hk) * D, *vb = j->v + ((b * j->Skv + j0) * j->Hkv + hk) * D;
    uint32_t *Kp = j->kp + t * DP * BK, *Vp = j->vp + t * (BK / 2) * D16;
    for (int jj = 0; jj < BK; jj++) {
        const float *kr = jj < nk ? kb + jj * kvrow : NULL;
        for (int64_t dp = 0; dp < DP; dp++)
            Kp[dp * BK + jj] = kr && 2 * dp < D ? bf16_pair(kr[2 * dp], 2 * dp + 1 < D ? kr[2 * dp + 1] : 0.0f) : 0;
    }
    for (int jp = 0; jp < BK / 2; jp++) {
        const float *v0 = 2 * jp < nk ? vb + 2 * jp * kvrow : NULL, *v1 = 2 * jp + 1 < nk ? vb + (2 * jp + 1) * kvrow : NULL;
        for (int64_t d = 0; d < D16; d++)
            Vp[jp * D16 + d] = v0 && d < D ? bf16_pair(v0[d], v1 ? v1[d] : 0.0f) : 0;
    }
}

static void tile_unit(const attn_job *j, int64_t u, float *scr)
{
    const int64_t qt = u % j->n_qt, bh = u / j->n_qt, h = bh % j->H, b = bh / j->H;
    if (j->amx) attn_tile_amx(j, b, h, qt * BQ, scr);
    else if (j->bf16) attn_tile_bf16(j, b, h, qt * BQ, scr);
    else if (j->isa == NX_ISA_AVX512) attn_tile_avx512(j, b, h, qt * BQ, scr);
    else if (j->isa == NX_ISA_AVX2) attn_tile_avx2(j, b, h, qt * BQ, scr);
    else attn_tile_plain(j, b, h, qt * BQ, scr);
}

static void row_unit(const attn_job *j, int64_t u, float *scr)
{
    const int64_t i = u % j->Sq, bh = u / j->Sq, h = bh % j->H, b = bh / j->H;
    if (j->isa == NX_ISA_AVX512) attn_row_avx512(j, b, h, i, scr);
    else attn_row_avx2(j, b, h, i, scr);
}

/* Task t runs units [t * n_units / n_chunks, (t + 1) * n_units / n_chunks) on one scratch. */
static void chunk_task(int64_t t, int64_t nt, void *arg)
{
    (void)nt;
    attn_job *j = arg;
    float *scr = nx_malloc_aligned(j->scr_floats * sizeof(float));
    if (!scr) {
        atomic_store(&j->oom, 1);
        return;
    }
    for (int64_t u = t * j->n_units / j->n_chunks; u < (t + 1) * j->n_units / j->n_chunks; u++) j->unit(j, u, scr);
    nx_free_aligned(scr);
}

/* Single-head, unmasked, non-causal attention with a wide head (the VAE mid-block's one head of
 * 512 over 64² = 4096 tokens) as two oneDNN GEMMs per block of query rows: S = scale Q K^T,
 * row softmax, O = P V. The flash tiles above keep a D-wide accumulator per query row, which
 * at D >= 256 no longer fits in registers (they ran that attention at ~75 GFLOP/s against
 * ~250 for the GEMMs). S is ~4 MiB per block (from 64 rows up). */
enum { GEMM_ATTN_MIN_D = 256 };

static ngpt_status attention_gemm(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                                  const nx_tensor *v, float scale)
{
    const int64_t B = q->ne[0], Sq = q->ne[1], D = q->ne[3], Skv = k->ne[1];
    int64_t QB = ((int64_t)1 << 20) / (Skv > 0 ? Skv : 1);
    QB = QB < 64 ? 64 : QB > Sq ? Sq : QB;
    float *sc = nx_cpu_block_alloc(be, (size_t)(QB * Skv) * sizeof(float));
    if (!sc) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "attention: cannot allocate %lld x %lld scores", (long long)QB,
                           (long long)Skv);
    ngpt_status s = NGPT_OK;
    for (int64_t b = 0; b < B && s == NGPT_OK; b++) {
        float *qb = (float *)q->data + b * Sq * D, *ob = (float *)out->data + b * Sq * D;
        nx_tensor tk = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){Skv, D}, (float *)k->data + b * Skv * D, be);
        nx_tensor tv = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){Skv, D}, (float *)v->data + b * Skv * D, be);
        for (int64_t q0 = 0; q0 < Sq && s == NGPT_OK; q0 += QB) {
            const int64_t n = Sq - q0 < QB ? Sq - q0 : QB;
            nx_tensor tq = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){n, D}, qb + q0 * D, be);
            nx_tensor ts = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){n, Skv}, sc, be);
            nx_tensor to = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){n, D}, ob + q0 * D, be);
            s = nx_cpu_matmul(be, &ts, &tq, &tk, false, true, scale, 0.0f);
            if (s == NGPT_OK) s = nx_cpu_softmax(be, &ts, &ts, 1.0f);
            if (s == NGPT_OK) s = nx_cpu_matmul(be, &to, &ts, &tv, false, false, 1.0f, 0.0f);
        }
    }
    nx_cpu_block_free(be, sc);
    return s;
}

ngpt_status nx_cpu_attention(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                             const nx_tensor *v, const nx_tensor *mask, float scale, bool causal)
{
    if (q->ne[2] == 1 && k->ne[2] == 1 && q->ne[3] >= GEMM_ATTN_MIN_D && !mask && !causal &&
        !nx_cpu_bf16_compute(be) && q->ne[1] * k->ne[1] >= 64 * 64)
        return attention_gemm(be, out, q, k, v, scale);
    attn_job j = {
        .q = q->data, .k = k->data, .v = v->data, .mask = mask ? mask->data : NULL, .out = out->data,
        .B = q->ne[0], .Sq = q->ne[1], .H = q->ne[2], .D = q->ne[3], .Skv = k->ne[1], .Hkv = k->ne[2],
        .scale = scale, .causal = causal, .isa = nx_cpu_isa(),
    };
    atomic_init(&j.oom, 0);
    if (j.B == 0 || j.Sq == 0 || j.H == 0 || j.D == 0) return NGPT_OK;
    /* [Sq, Skv] is shared by the batch; [B, Sq, Skv] and [B, 1, Sq, Skv] are per batch */
    j.mask_bstride = mask && mask->rank >= 3 && mask->ne[0] > 1 ? j.Sq * j.Skv : 0; /* batch 1 broadcasts */
    j.n_qt = (j.Sq + BQ - 1) / BQ;
    /* a few query rows, or a few keys (Zeroscope's temporal attention: 8 frames), waste most of a
     * tile's 4-row groups and BK-wide key blocks: the row path */
    const bool rows = j.isa >= NX_ISA_AVX2 && (j.Sq <= ROW_PATH_MAX_SQ || j.Skv <= ROW_PATH_MAX_SKV);
    j.n_units = j.B * j.H * (rows ? j.Sq : j.n_qt);
    j.unit = rows ? row_unit : tile_unit;
    j.bf16 = !rows && j.Skv > 0 && nx_cpu_bf16_compute(be) && nx_cpu_has_avx512_bf16();
    j.amx = j.bf16 && nx_cpu_has_amx_bf16();
    const int64_t DP = (j.D + 1) / 2, D16 = (j.D + 15) & ~(int64_t)15;
    j.kdp = j.amx ? (DP + 15) & ~(int64_t)15 : DP;
    j.scr_floats = rows  ? (size_t)(j.Skv > 0 ? j.Skv : 1)
                   : j.amx ? (size_t)(BQ * (BK + D16 + j.kdp + BK / 2))
                           : (size_t)(2 * BQ * j.D + j.D * BK + BQ * BK + (j.bf16 ? BQ * DP + BQ * BK / 2 : 0));
    if (j.bf16) {
        j.n_kt = (j.Skv + BK - 1) / BK;
        const int64_t tiles = j.B * j.Hkv * j.n_kt;
        j.kp = nx_malloc_aligned((size_t)(tiles * j.kdp * BK) * sizeof(uint32_t));
        j.vp = nx_malloc_aligned((size_t)(tiles * (BK / 2) * D16) * sizeof(uint32_t));
        if (!j.kp || !j.vp) {
            nx_free_aligned(j.kp);
            nx_free_aligned(j.vp);
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "attention: cannot allocate the BF16 K and V (%lld tiles)",
                          (long long)tiles);
        }
        nx_pool_run(be->pool, tiles, pack_task, &j);
    }
    /* chunks of units so each task allocates its scratch once; enough of them per thread for the
     * pool's dynamic balancing (causal tiles differ in cost) */
    const int64_t per_thread = 16 * (int64_t)nx_pool_threads(be->pool);
    j.n_chunks = j.n_units < per_thread ? j.n_units : per_thread;
    nx_pool_run(be->pool, j.n_chunks, chunk_task, &j);
    nx_free_aligned(j.kp);
    nx_free_aligned(j.vp);
    if (atomic_load(&j.oom)) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "attention: cannot allocate tile scratch");
    return NGPT_OK;
}

/* The first len keys of each batch item: nx_cpu_attention on views (one query: causal is no
 * restriction, and the same call as a decode step's nx_op_attention makes, bit for bit). */
ngpt_status nx_cpu_attention_len(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                                 const nx_tensor *v, const nx_tensor *len, float scale)
{
    const int32_t L = *(const int32_t *)len->data;
    const int64_t B = q->ne[0], Skv = k->ne[1], kvrow = k->ne[2] * k->ne[3], qrow = q->ne[2] * q->ne[3];
    if (L < 1 || L > Skv)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "attention_len: length %d outside [1, %lld]", L, (long long)Skv);
    const size_t es = nx_dtype_size(q->dtype);
    for (int64_t b = 0; b < B; b++) {
        const int64_t qn[4] = {1, 1, q->ne[2], q->ne[3]}, kn[4] = {1, L, k->ne[2], k->ne[3]};
        nx_tensor qb = nx_view(q->dtype, 4, qn, (char *)q->data + (size_t)(b * qrow) * es, q->be);
        nx_tensor ob = nx_view(out->dtype, 4, qn, (char *)out->data + (size_t)(b * qrow) * es, out->be);
        nx_tensor kb = nx_view(k->dtype, 4, kn, (char *)k->data + (size_t)(b * Skv * kvrow) * es, k->be);
        nx_tensor vb = nx_view(v->dtype, 4, kn, (char *)v->data + (size_t)(b * Skv * kvrow) * es, v->be);
        NX_TRY(nx_cpu_attention(be, &ob, &qb, &kb, &vb, NULL, scale, true));
    }
    return NGPT_OK;
}
