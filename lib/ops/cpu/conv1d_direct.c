/* conv1d_direct.c — a direct conv1d (stride 1, no groups, any dilation) on AVX-512 (and, on the
 * same blocks as 4 x 24 tiles, AVX2: block_avx2, which conv.c takes from 7 taps up), written for
 * HiFi-GAN's convolutions (32-512 channels over 2500-80000 samples, k 3/7/11, dilations 1/3/5) and
 * taken for every conv1d the 1-D Winograd does not take (conv.c). oneDNN's plain-layout (ncw)
 * path ran the narrow stages at 60-200 GFLOP/s, well below the
 * ~300 of its GEMMs: its im2col + GEMM pays a pass over k C x L columns, and at 32-64 output
 * channels the GEMM is thin. Here the input rows themselves are the GEMM's B panel: in ncw a
 * tap's 16 consecutive outputs read 16 consecutive inputs, so an 8-channel x 48-position block of
 * y is 24 zmm accumulators fed by 3 unaligned loads of x and 8 weight broadcasts per (c, tap).
 *
 *   y[n, o, t] = b[o] + sum_c sum_j w[o, c, j] x[n, c, t - pad + j d]   (zeros outside [0, L))
 *
 * Tiles whose window would read outside [0, L) (the first and last few) read a zero-padded copy
 * of their window instead, made before the parallel loop; every other tile reads x in place.
 * Each output is summed in the same order (c within fixed channel chunks, then j; the chunks'
 * partial sums in order) whatever the split, so results do not depend on the thread count. */
#include "avx2_tile.h"
#include "cpu_ops.h"
#include "cpu_util.h"

#include "../../core/alloc.h"
#include "../../core/cpu_isa.h"
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
    int64_t      ldx;          /* x's row (channel) stride; L <= ldx valid samples per row */
    int64_t      nt;           /* tiles of TW positions per batch item */
    int64_t      group;        /* tiles that share one pass over the weights */
    int64_t      cc;           /* input channels per pass (a chunk's window of x stays in L1) */
    int64_t      win;          /* TW + (k - 1) d: the inputs one tile reads per channel */
    int64_t      nl, r0;       /* tiles [0, nl) read edge_l, tiles [r0, nt) read edge_r */
    const float *edge_l, *edge_r; /* [N][C][nl * TW + win - TW], [N][C][(nt - r0) * TW + win - TW] */
    int64_t      wl, wr;       /* their row lengths */
    bool         w16;          /* AVX-512 blocks (else AVX2's) */
} d1_job;

/* Zero-padded copy of x[n, c, u - pad] for u in [u0, u0 + w) into e[c][0 .. w). */
static void stage_edge(float *e, const float *x, int64_t C, int64_t L, int64_t ldx, int64_t pad, int64_t u0, int64_t w)
{
    for (int64_t c = 0; c < C; c++) {
        float *er = e + c * w;
        const float *xr = x + c * ldx;
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

/* row r of the block: + the partial sums of earlier channel chunks (in y) unless this is the
 * first chunk; then either stored as a partial sum, or (the last chunk) + bias -> epilogue */
#define STORE3(r)                                                                          \
    do {                                                                                   \
        if (o0 + r < j->O) {                                                               \
            float *yr = yt + (int64_t)r * j->Lo;                                           \
            if (!first) {                                                                  \
                a##r##0 = _mm512_add_ps(a##r##0, _mm512_maskz_loadu_ps(m0, yr));           \
                a##r##1 = _mm512_add_ps(a##r##1, _mm512_maskz_loadu_ps(m1, yr + 16));      \
                a##r##2 = _mm512_add_ps(a##r##2, _mm512_maskz_loadu_ps(m2, yr + 32));      \
            }                                                                              \
            if (!last) {                                                                   \
                _mm512_mask_storeu_ps(yr, m0, a##r##0);                                    \
                _mm512_mask_storeu_ps(yr + 16, m1, a##r##1);                               \
                _mm512_mask_storeu_ps(yr + 32, m2, a##r##2);                               \
            } else {                                                                       \
                const __m512 bv = _mm512_set1_ps(j->b ? j->b[o0 + r] : 0.0f);              \
                const float *rr = rt ? rt + (int64_t)r * j->Lo : NULL;                     \
                store16(j, yr, rr, m0, _mm512_add_ps(a##r##0, bv));                       \
                store16(j, yr + 16, rr ? rr + 16 : NULL, m1, _mm512_add_ps(a##r##1, bv));  \
                store16(j, yr + 32, rr ? rr + 32 : NULL, m2, _mm512_add_ps(a##r##2, bv));  \
            }                                                                              \
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
 * n, over input channels [c0, c1), from xs (the tile's window: channel c at xs + c * xstride, tap
 * j at + j d). */
AVX512 static void block(const d1_job *j, const float *xs, int64_t xstride, int64_t o0, int64_t c0, int64_t c1,
                         float *yt, const float *rt, int64_t nvalid)
{
    const bool first = c0 == 0, last = c1 == j->C;
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    __m512 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    __m512 a40 = a00, a41 = a00, a42 = a00, a50 = a00, a51 = a00, a52 = a00;
    __m512 a60 = a00, a61 = a00, a62 = a00, a70 = a00, a71 = a00, a72 = a00;
    const float *wq = j->wp + (o0 * j->C + c0 * RB) * j->k; /* [C][k][RB] of this channel block, from c0 */
    for (int64_t c = c0; c < c1; c++) {
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

/* The same RB x TW block on AVX2: 2 x 2 tiles of 4 rows x 24 positions (avx2_tile.h), the
 * block's window of x read once per 4-row half (from L1: the channel chunk is sized for it). */
NX_AVX2 static void block_avx2(const d1_job *j, const float *xs, int64_t xstride, int64_t o0, int64_t c0, int64_t c1,
                               float *yt, const float *rt, int64_t nvalid)
{
    const bool first = c0 == 0, last = c1 == j->C;
    const float *wq = j->wp + (o0 * j->C + c0 * RB) * j->k; /* [C][k][RB] of this channel block, from c0 */
    const __m256 slope = _mm256_set1_ps(j->slope);
    float out[4][24];
    for (int h = 0; h < RB; h += 4)
        for (int64_t q = 0; q < TW && q < nvalid; q += 24) {
            nx_tile4x24(out, wq + h, xs + c0 * xstride + q, xstride, c1 - c0, j->k, j->d);
            for (int r = 0; r < 4 && o0 + h + r < j->O; r++) {
                float *yr = yt + (int64_t)(h + r) * j->Lo + q;
                const float *rr = rt ? rt + (int64_t)(h + r) * j->Lo + q : NULL;
                const __m256 bv = _mm256_set1_ps(last && j->b ? j->b[o0 + h + r] : 0.0f);
                for (int64_t e = 0; e < 24 && q + e < nvalid; e += 8) {
                    const int64_t cnt = nvalid - q - e;
                    const __m256i m = nx_tail8(cnt);
                    __m256 v = _mm256_loadu_ps(out[r] + e);
                    if (!first) v = _mm256_add_ps(v, _mm256_maskload_ps(yr + e, m)); /* earlier chunks' sums */
                    if (last) {
                        v = _mm256_add_ps(v, bv);
                        if (j->leaky)
                            v = _mm256_blendv_ps(_mm256_mul_ps(v, slope), v,
                                                 _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ));
                        if (rr) v = _mm256_add_ps(v, _mm256_maskload_ps(rr + e, m));
                    }
                    _mm256_maskstore_ps(yr + e, m, v);
                }
            }
        }
}

static void one_tile(const d1_job *j, int64_t i, int64_t o0, int64_t c0, int64_t c1)
{
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
        xs = j->x + n * j->C * j->ldx + t0 - j->pad;
        xstride = j->ldx;
    }
    const int64_t nvalid = j->Lo - t0 < TW ? j->Lo - t0 : TW;
    const int64_t off = (n * j->O + o0) * j->Lo + t0;
    if (j->w16) block(j, xs, xstride, o0, c0, c1, j->y + off, j->res ? j->res + off : NULL, nvalid);
    else block_avx2(j, xs, xstride, o0, c0, c1, j->y + off, j->res ? j->res + off : NULL, nvalid);
}

/* Items are (n, tile) pairs. A range is done in groups of tiles whose windows of x stay in L2, and
 * over input channels in chunks whose window of x (and weights) stay in L1, the partial sums
 * kept in y between chunks: at 256-512 channels a tile's whole window is 100-200 KB, every x
 * load missed L1, and the kernel ran at ~225 GFLOP/s against ~290 for 32-128 channels. */
static void tiles(int64_t i0, int64_t i1, void *arg)
{
    const d1_job *j = arg;
    for (int64_t g0 = i0; g0 < i1;) {
        int64_t g1 = g0 + j->group < i1 ? g0 + j->group : i1;
        const int64_t next_n = (g0 / j->nt + 1) * j->nt; /* a group stays in one batch item */
        g1 = g1 < next_n ? g1 : next_n;
        for (int64_t c0 = 0; c0 < j->C; c0 += j->cc) {
            const int64_t c1 = c0 + j->cc < j->C ? c0 + j->cc : j->C;
            for (int64_t o0 = 0; o0 < j->O; o0 += RB)
                for (int64_t i = g0; i < g1; i++) one_tile(j, i, o0, c0, c1);
        }
        g0 = g1;
    }
}

AVX512 void nx_cpu_gemm_tiles_avx512(float *y, int64_t ldy, const float *wp, const float *x, int64_t ldx, int64_t K,
                                     int64_t O, int64_t n)
{
    /* a k = 1 conv over [K, n] without bias or epilogue; block() stores y rows ldy apart */
    const d1_job j = {.wp = wp, .C = K, .O = O, .L = n, .ldx = ldx, .Lo = ldy, .k = 1, .d = 1};
    /* as tiles(): an O block's weights for a chunk of K stay in L1 across the tiles, which read
     * the chunk's rows of x from L2 */
    const int64_t cc = 4096 / TW;
    for (int64_t c0 = 0; c0 < K; c0 += cc) {
        const int64_t c1 = c0 + cc < K ? c0 + cc : K;
        for (int64_t o0 = 0; o0 < O; o0 += RB)
            for (int64_t t0 = 0; t0 < n; t0 += TW)
                block(&j, x + t0, ldx, o0, c0, c1, y + o0 * ldy + t0, NULL, n - t0 < TW ? n - t0 : TW);
    }
}

/* The packed weights wp[ob][c][t][rr] of output channel o = ob RB + rr, zero past O: w[o][c][t]
 * for a conv (w [O, C, k]); for a transposed conv (w [C, O, k]) one such array per output phase r
 * (M_r = ceil((k - r) / s) taps, t-th = w[c][o][r + (M_r - 1 - t) s]), one after the other, all
 * made in one pass over w. */
typedef struct pack_job {
    float       *wp;
    const float *w;
    int64_t      O, C, k, s; /* s: 0 for a conv */
} pack_job;

static int64_t phase_taps(int64_t k, int64_t s, int64_t r) { return r < k ? (k - r + s - 1) / s : 0; }

static void pack_rows(int64_t b0, int64_t b1, void *arg)
{
    const pack_job *p = arg;
    const int64_t Op = (p->O + RB - 1) / RB * RB;
    for (int64_t ob = b0; ob < b1; ob++)
        for (int64_t c = 0; c < p->C; c++) {
            if (!p->s) {
                for (int64_t t = 0; t < p->k; t++) {
                    float *dst = p->wp + ((ob * p->C + c) * p->k + t) * RB;
                    for (int64_t rr = 0; rr < RB; rr++) {
                        const int64_t o = ob * RB + rr;
                        dst[rr] = o < p->O ? p->w[(o * p->C + c) * p->k + t] : 0.0f;
                    }
                }
                continue;
            }
            float *base = p->wp; /* phase r's array starts after those of phases < r */
            for (int64_t r = 0; r < p->s; r++) {
                const int64_t M = phase_taps(p->k, p->s, r);
                for (int64_t t = 0; t < M; t++) {
                    float *dst = base + ((ob * p->C + c) * M + t) * RB;
                    for (int64_t rr = 0; rr < RB; rr++) {
                        const int64_t o = ob * RB + rr;
                        dst[rr] = o < p->O ? p->w[(c * p->O + o) * p->k + r + (M - 1 - t) * p->s] : 0.0f;
                    }
                }
                base += Op * p->C * M;
            }
        }
}

static void pack_weights(nx_backend *be, pack_job *p)
{
    nx_cpu_parallel_for(be, (p->O + RB - 1) / RB, p->C * p->k * RB, pack_rows, p);
}

/* y rows [n O + o] of tmp ([N O][nq]) to every s-th position of y from the phase's first */
typedef struct scatter_job {
    float       *y;
    const float *tmp;
    int64_t      nq, Lo, s, first;
} scatter_job;

static void scatter_rows(int64_t r0, int64_t r1, void *arg)
{
    const scatter_job *sj = arg;
    for (int64_t row = r0; row < r1; row++) {
        const float *tr = sj->tmp + row * sj->nq;
        float *yr = sj->y + row * sj->Lo + sj->first;
        for (int64_t q = 0; q < sj->nq; q++) yr[q * sj->s] = tr[q];
    }
}

/* y[N, O, Lo] from the packed weights wp ([Op / RB][C][k][RB]) with j's shapes: edges staged,
 * tiles run. */
static ngpt_status run(nx_backend *be, d1_job *j, int64_t N, const float *wp)
{
    const int64_t C = j->C, L = j->L, k = j->k, pad = j->pad, Op = (j->O + RB - 1) / RB * RB;
    j->nt = (j->Lo + TW - 1) / TW;
    j->win = TW + (k - 1) * j->d;
    /* the group's window of x, C (group TW + (k - 1) d) floats, within ~1 MiB of L2 */
    j->group = ((1 << 18) / (C > 0 ? C : 1) - (k - 1) * j->d) / TW;
    j->group = j->group < 1 ? 1 : j->group > 16 ? 16 : j->group;
    /* a chunk's window of x, cc win floats, within ~16 KiB of L1 (its weights, cc k RB floats, fit
     * beside it) */
    j->cc = 4096 / j->win;
    j->cc = j->cc < 8 ? 8 : j->cc;
    /* tile i reads x[i TW - pad + u], u in [0, win): inside [0, L) from tile nl up to tile r0 - 1 */
    j->nl = pad > 0 ? (pad + TW - 1) / TW : 0;
    j->nl = j->nl < j->nt ? j->nl : j->nt;
    int64_t r0 = j->nt; /* first tile whose window passes L */
    while (r0 > j->nl && (r0 - 1) * TW - pad + j->win > L) r0--;
    j->r0 = r0;
    j->wl = j->nl * TW + j->win - TW;
    j->wr = (j->nt - j->r0) * TW + j->win - TW;
    float *el = j->nl ? nx_malloc_aligned((size_t)(N * C * j->wl) * sizeof(float)) : NULL;
    float *er = j->r0 < j->nt ? nx_malloc_aligned((size_t)(N * C * j->wr) * sizeof(float)) : NULL;
    if ((j->nl && !el) || (j->r0 < j->nt && !er)) {
        nx_free_aligned(el);
        nx_free_aligned(er);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "conv: cannot allocate the direct conv1d edges (%lld channels, %lld + %lld "
                      "samples)", (long long)C, (long long)j->wl, (long long)j->wr);
    }
    for (int64_t n = 0; n < N; n++) {
        if (el) stage_edge(el + n * C * j->wl, j->x + n * C * j->ldx, C, L, j->ldx, pad, 0, j->wl);
        if (er) stage_edge(er + n * C * j->wr, j->x + n * C * j->ldx, C, L, j->ldx, pad, j->r0 * TW, j->wr);
    }
    j->wp = wp;
    j->w16 = nx_cpu_has_avx512();
    j->edge_l = el;
    j->edge_r = er;
    nx_cpu_parallel_for(be, N * j->nt, 2 * Op * C * k * TW, tiles, j);
    nx_free_aligned(el);
    nx_free_aligned(er);
    return NGPT_OK;
}

ngpt_status nx_cpu_conv1d_direct(nx_backend *be, float *y, const float *x, const float *w, const float *b,
                                 int64_t N, int64_t C, int64_t O, int64_t L, int64_t Lo, int64_t k, int64_t dil,
                                 int64_t pad, const nx_conv_epi *epi)
{
    d1_job j = {.x = x, .b = b, .y = y, .C = C, .O = O, .L = L, .ldx = L, .Lo = Lo, .k = k, .d = dil, .pad = pad};
    if (epi) {
        j.leaky = epi->leaky;
        j.slope = epi->slope;
        j.res = epi->res;
    }
    const int64_t Op = (O + RB - 1) / RB * RB;
    float *wp = nx_cpu_block_alloc(be, (size_t)(Op * C * k) * sizeof(float));
    if (!wp)
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "conv: cannot allocate the direct conv1d weights (%lld x %lld channels, "
                      "k %lld)", (long long)O, (long long)C, (long long)k);
    pack_job pj = {.wp = wp, .w = w, .O = O, .C = C, .k = k};
    pack_weights(be, &pj);
    ngpt_status s = run(be, &j, N, wp);
    nx_cpu_block_free(be, wp);
    return s;
}

/* ConvTranspose1d as s convolutions, one per output phase. Output t = q s + r - pad (phase r) sums
 * w[c, o, r + m s] x[c, q - m] over the M_r = ceil((k - r) / s) taps m: a conv1d over x with
 * those taps reversed, left pad M_r - 1 (or x shifted right, when the phase's first q is past
 * it). Each phase's outputs go to tmp, then to every s-th position of y. */
ngpt_status nx_cpu_conv_transpose1d_direct(nx_backend *be, float *y, const float *x, const float *w, const float *b,
                                           int64_t N, int64_t C, int64_t O, int64_t L, int64_t Lo, int64_t k,
                                           int64_t stride, int64_t pad)
{
    const int64_t s = stride, Op = (O + RB - 1) / RB * RB, Lq = (Lo + s - 1) / s + 1;
    float *wp = nx_cpu_block_alloc(be, (size_t)(Op * C * k) * sizeof(float)); /* the phases' taps add up to k */
    float *tmp = nx_cpu_block_alloc(be, (size_t)(N * O * Lq) * sizeof(float));
    ngpt_status st = NGPT_OK;
    if (!wp || !tmp)
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "conv_transpose1d: cannot allocate the direct buffers (%lld x %lld "
                    "channels, k %lld, %lld outputs)", (long long)C, (long long)O, (long long)k, (long long)Lo);
    pack_job pj = {.wp = wp, .w = w, .O = O, .C = C, .k = k, .s = s};
    if (st == NGPT_OK) pack_weights(be, &pj);
    const float *wr = wp;
    for (int64_t r = 0; st == NGPT_OK && r < s; wr += Op * C * phase_taps(k, s, r), r++) {
        /* the phase's outputs: q in [q0, q1], t = q s + r - pad in [0, Lo) */
        const int64_t q0 = pad - r > 0 ? (pad - r + s - 1) / s : -((r - pad) / s);
        const int64_t num = Lo - 1 + pad - r, q1 = num >= 0 ? num / s : -((-num + s - 1) / s);
        if (q1 < q0) continue;
        const int64_t nq = q1 - q0 + 1, M = phase_taps(k, s, r);
        if (M == 0) { /* no tap reaches these outputs: the bias alone */
            for (int64_t n = 0; n < N; n++)
                for (int64_t o = 0; o < O; o++)
                    for (int64_t q = q0; q <= q1; q++) y[(n * O + o) * Lo + q * s + r - pad] = b ? b[o] : 0.0f;
            continue;
        }
        /* output q' = q - q0 reads x[q' + off + t], off = q0 - (M - 1) */
        const int64_t off = q0 - (M - 1);
        d1_job j = {.b = b, .y = tmp, .C = C, .O = O, .ldx = L, .Lo = nq, .k = M, .d = 1};
        j.x = x + (off > 0 ? (off < L ? off : L) : 0);
        j.L = off > 0 ? (off < L ? L - off : 0) : L;
        j.pad = off < 0 ? -off : 0;
        st = run(be, &j, N, wr);
        scatter_job sj = {.y = y, .tmp = tmp, .nq = nq, .Lo = Lo, .s = s, .first = q0 * s + r - pad};
        if (st == NGPT_OK) nx_cpu_parallel_for(be, N * O, 2 * nq, scatter_rows, &sj);
    }
    nx_cpu_block_free(be, wp);
    nx_cpu_block_free(be, tmp);
    return st;
}
