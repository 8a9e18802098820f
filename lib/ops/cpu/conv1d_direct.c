/* conv1d_direct.c — a direct conv1d (stride 1, no groups, any dilation) on AVX-512 for the narrow,
 * long convolutions of HiFi-GAN's last stages (32-128 channels over 20000-80000 samples, k 3/7/11,
 * dilations 1/3/5). oneDNN's plain-layout (ncw) path ran them at 60-200 GFLOP/s, well below the
 * ~300 of its GEMMs: its im2col + GEMM pays a pass over k C x L columns, and at 32-64 output
 * channels the GEMM is thin. Here the input rows themselves are the GEMM's B panel: in ncw a
 * tap's 16 consecutive outputs read 16 consecutive inputs, so an 8-channel x 48-position block of
 * y is 24 zmm accumulators fed by 3 unaligned loads of x and 8 weight broadcasts per (c, tap).
 *
 *   y[n, o, t] = b[o] + sum_c sum_j w[o, c, j] x[n, c, t - pad + j d]   (zeros outside [0, L))
 *
 * Tiles whose window would read outside [0, L) (the first and last few) read a zero-padded copy
 * of their window instead, made before the parallel loop; every other tile reads x in place.
 * Each output is summed in the same order (c, then j) whatever the split, so results do not
 * depend on the thread count. */
#include "cpu_ops.h"
#include "cpu_util.h"

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <immintrin.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

enum { RB = 8, TW = 48 }; /* output channels x positions per register tile */

typedef struct d1_job {
    const float *x, *wp, *b;
    float       *y;
    bool         leaky;        /* the fused epilogue (nx_conv_epi) */
    float        slope;
    const float *res;
    int64_t      C, O, L, Lo, k, d, pad;
    int64_t      nt;           /* tiles of TW positions per batch item */
    int64_t      win;          /* TW + (k - 1) d: the inputs one tile reads per channel */
    int64_t      nl, r0;       /* tiles [0, nl) read edge_l, tiles [r0, nt) read edge_r */
    const float *edge_l, *edge_r; /* [N][C][nl * TW + win - TW], [N][C][(nt - r0) * TW + win - TW] */
    int64_t      wl, wr;       /* their row lengths */
} d1_job;

/* Zero-padded copy of x[n, c, u - pad] for u in [u0, u0 + w) into e[c][0 .. w). */
static void stage_edge(float *e, const float *x, int64_t C, int64_t L, int64_t pad, int64_t u0, int64_t w)
{
    for (int64_t c = 0; c < C; c++) {
        float *er = e + c * w;
        const float *xr = x + c * L;
        for (int64_t u = 0; u < w; u++) {
            const int64_t s = u0 + u - pad;
            er[u] = s >= 0 && s < L ? xr[s] : 0.0f;
        }
    }
}

#define FMA3(r)                                                         \
    do {                                                                \
        const __m512 wv = _mm512_set1_ps(wq[r]);                        \
        a##r##0 = _mm512_fmadd_ps(wv, x0, a##r##0);                     \
        a##r##1 = _mm512_fmadd_ps(wv, x1, a##r##1);                     \
        a##r##2 = _mm512_fmadd_ps(wv, x2, a##r##2);                     \
    } while (0)

#define STORE3(r)                                                                          \
    do {                                                                                   \
        if (o0 + r < j->O) {                                                               \
            const __m512 bv = _mm512_set1_ps(j->b ? j->b[o0 + r] : 0.0f);                  \
            float *yr = yt + (int64_t)r * j->Lo;                                           \
            const float *rr = rt ? rt + (int64_t)r * j->Lo : NULL;                         \
            store16(j, yr, rr, m0, _mm512_add_ps(a##r##0, bv));                           \
            store16(j, yr + 16, rr ? rr + 16 : NULL, m1, _mm512_add_ps(a##r##1, bv));      \
            store16(j, yr + 32, rr ? rr + 32 : NULL, m2, _mm512_add_ps(a##r##2, bv));      \
        }                                                                                  \
    } while (0)

/* y = epilogue(v) for the lanes in m */
AVX512 static inline void store16(const d1_job *j, float *y, const float *res, __mmask16 m, __m512 v)
{
    if (!m) return;
    if (j->leaky) {
        const __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ);
        v = _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, _mm512_set1_ps(j->slope)), v);
    }
    if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res));
    _mm512_mask_storeu_ps(y, m, v);
}

/* One RB x TW block of y: output channels [o0, o0 + RB) at positions [t0, t0 + TW) of batch item
 * n, from xs (the tile's window: channel c at xs + c * xstride, tap j at + j d). */
AVX512 static void block(const d1_job *j, const float *xs, int64_t xstride, int64_t o0, float *yt, const float *rt,
                         int64_t nvalid)
{
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    __m512 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    __m512 a40 = a00, a41 = a00, a42 = a00, a50 = a00, a51 = a00, a52 = a00;
    __m512 a60 = a00, a61 = a00, a62 = a00, a70 = a00, a71 = a00, a72 = a00;
    const float *wq = j->wp + o0 * j->C * j->k; /* [C][k][RB] of this channel block */
    for (int64_t c = 0; c < j->C; c++) {
        const float *xr = xs + c * xstride;
        for (int64_t t = 0; t < j->k; t++, wq += RB) {
            const float *xt = xr + t * j->d;
            const __m512 x0 = _mm512_loadu_ps(xt), x1 = _mm512_loadu_ps(xt + 16), x2 = _mm512_loadu_ps(xt + 32);
            FMA3(0);
            FMA3(1);
            FMA3(2);
            FMA3(3);
            FMA3(4);
            FMA3(5);
            FMA3(6);
            FMA3(7);
        }
    }
    const __mmask16 m0 = nvalid >= 16 ? 0xffff : (__mmask16)((1u << nvalid) - 1u);
    const __mmask16 m1 = nvalid >= 32 ? 0xffff : nvalid <= 16 ? 0 : (__mmask16)((1u << (nvalid - 16)) - 1u);
    const __mmask16 m2 = nvalid >= 48 ? 0xffff : nvalid <= 32 ? 0 : (__mmask16)((1u << (nvalid - 32)) - 1u);
    STORE3(0);
    STORE3(1);
    STORE3(2);
    STORE3(3);
    STORE3(4);
    STORE3(5);
    STORE3(6);
    STORE3(7);
}

/* Items are (n, tile) pairs; every channel block of a tile in turn, so the tile's window of x stays
 * in cache while the weights stream from L2. */
static void tiles(int64_t i0, int64_t i1, void *arg)
{
    const d1_job *j = arg;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t n = i / j->nt, tile = i % j->nt, t0 = tile * TW;
        const float *xs;
        int64_t xstride;
        if (tile < j->nl) {
            xs = j->edge_l + n * j->C * j->wl + t0;
            xstride = j->wl;
        } else if (tile >= j->r0) {
            xs = j->edge_r + n * j->C * j->wr + (tile - j->r0) * TW;
            xstride = j->wr;
        } else {
            xs = j->x + n * j->C * j->L + t0 - j->pad;
            xstride = j->L;
        }
        const int64_t nvalid = j->Lo - t0 < TW ? j->Lo - t0 : TW;
        for (int64_t o0 = 0; o0 < j->O; o0 += RB) {
            const int64_t off = (n * j->O + o0) * j->Lo + t0;
            block(j, xs, xstride, o0, j->y + off, j->res ? j->res + off : NULL, nvalid);
        }
    }
}

/* wp[ob][c][t][r] = w[ob RB + r][c][t], zero rows past O */
static void pack_weights(float *wp, const float *w, int64_t O, int64_t C, int64_t k)
{
    const int64_t Op = (O + RB - 1) / RB * RB;
    for (int64_t o = 0; o < Op; o++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t t = 0; t < k; t++)
                wp[((o / RB * C + c) * k + t) * RB + o % RB] = o < O ? w[(o * C + c) * k + t] : 0.0f;
}

ngpt_status nx_cpu_conv1d_direct(nx_backend *be, float *y, const float *x, const float *w, const float *b,
                                 int64_t N, int64_t C, int64_t O, int64_t L, int64_t Lo, int64_t k, int64_t dil,
                                 int64_t pad, const nx_conv_epi *epi)
{
    d1_job j = {.x = x, .b = b, .y = y, .C = C, .O = O, .L = L, .Lo = Lo, .k = k, .d = dil, .pad = pad};
    if (epi) {
        j.leaky = epi->leaky;
        j.slope = epi->slope;
        j.res = epi->res;
    }
    j.nt = (Lo + TW - 1) / TW;
    j.win = TW + (k - 1) * dil;
    /* tile i reads x[i TW - pad + u], u in [0, win): inside [0, L) from tile nl up to tile r0 - 1 */
    j.nl = pad > 0 ? (pad + TW - 1) / TW : 0;
    j.nl = j.nl < j.nt ? j.nl : j.nt;
    int64_t r0 = j.nt; /* first tile whose window passes L */
    while (r0 > j.nl && (r0 - 1) * TW - pad + j.win > L) r0--;
    j.r0 = r0;
    j.wl = j.nl * TW + j.win - TW;
    j.wr = (j.nt - j.r0) * TW + j.win - TW;
    const int64_t Op = (O + RB - 1) / RB * RB;
    float *wp = nx_cpu_block_alloc(be, (size_t)(Op * C * k) * sizeof(float));
    float *el = j.nl ? nx_malloc_aligned((size_t)(N * C * j.wl) * sizeof(float)) : NULL;
    float *er = j.r0 < j.nt ? nx_malloc_aligned((size_t)(N * C * j.wr) * sizeof(float)) : NULL;
    ngpt_status s = NGPT_OK;
    if (!wp || (j.nl && !el) || (j.r0 < j.nt && !er)) {
        s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "conv: cannot allocate the direct conv1d buffers (%lld x %lld channels, "
                   "k %lld)", (long long)O, (long long)C, (long long)k);
    } else {
        pack_weights(wp, w, O, C, k);
        for (int64_t n = 0; n < N; n++) {
            if (el) stage_edge(el + n * C * j.wl, x + n * C * L, C, L, pad, 0, j.wl);
            if (er) stage_edge(er + n * C * j.wr, x + n * C * L, C, L, pad, j.r0 * TW, j.wr);
        }
        j.wp = wp;
        j.edge_l = el;
        j.edge_r = er;
        nx_cpu_parallel_for(be, N * j.nt, 2 * Op * C * k * TW, tiles, &j);
    }
    nx_cpu_block_free(be, wp);
    nx_free_aligned(el);
    nx_free_aligned(er);
    return s;
}
