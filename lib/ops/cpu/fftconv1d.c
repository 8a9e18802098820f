/* fftconv1d.c — conv1d through 32-point DFTs of overlapping blocks (overlap-save), for HiFi-GAN's
 * resblock convolutions with 7 and 11 taps (dilation 1/3/5, 128-512 channels): there the direct
 * conv1d runs at the FMA peak and F(4, 3) Winograd pays for its zero taps (k 7 computes 9), so
 * only an algorithm with fewer multiplies per output could be faster.
 *
 * A dilation d splits y into d phases, y[d u + res], each a dense k-tap correlation over one phase
 * of x (x[d v + qb], qb = (res - pad) mod d). Each phase is cut into blocks of m = 32 - k + 1
 * outputs; a block reads 32 consecutive phase samples s[i] (zeros outside x), and with S their DFT
 * and W the DFT of the reversed, zero-padded taps, the last m samples of the inverse DFT of S W
 * are the block's outputs (the first k - 1 wrap around). Per (input, output) channel pair a block
 * costs 2 real multiplies for bins 0 and 16 and 3 for each complex bin 1..15 (Karatsuba: Wr Sr,
 * Wi Si, (Wr + Wi)(Sr + Si)): 47 against k m direct ones, 5.1x fewer at k 11, 3.9x at 7 (1.9x
 * at 3, where the transforms eat it).
 *
 * Per batch item: x is copied by phase (XP: a block's samples are then contiguous); for chunks of
 * columns (the blocks of all phases) the forward DFTs (16 columns a vector: 16 rows loaded and
 * transposed, then a symmetric DFT), 47 real GEMMs of [O, C] x [C, columns] on the direct conv's
 * register tiles (nx_cpu_gemm_tiles), the inverse DFTs with bias and activation, transposed back
 * into YP (y by phase; then y = YP + residual) or, without dilation, straight into y with the
 * residual. Each step is one parallel loop: a GEMM task
 * streams its rows of U once (with one big chunk per step, U, 47 C O floats, is read once per
 * chunk, not once per small chunk; the price is V and M passing through L3).
 * Gathers and scatters were avoided on purpose: on this host (a KVM guest) a 16-lane gather took
 * ~70 cycles, slower than the DFT it fed.
 *
 * In F32 the result differs from the direct sum by ~1e-6 relative (the DFT is orthogonal up to
 * scale: no growth like Winograd's points). The weights are transformed on every call, like
 * wino1d's (a cache would keep 64 C O floats per conv). AVX-512 only. */
#include "cpu_ops.h"
#include "cpu_util.h"

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

/* NPROD: the real products a bin takes (bins 1..15: Karatsuba's three; bin 0: two, DC and
 * Nyquist); a product is an [Oq x C] x [C x columns] GEMM */
enum { NB = 32, NBIN = 16, NPROD = 3, LANES = 16, TILE = 48 };

typedef struct fc_job {
    const float *w, *b, *res;
    bool         leaky;
    float        slope;
    int64_t      C, O, L, Lo, k, d, pad, m;
    int64_t      nblk, cols;     /* blocks per phase; columns = d nblk (col = res nblk + blk) */
    int64_t      Oq;             /* O rounded up to 8: a product's GEMM rows */
    float       *U;              /* [NBIN][NPROD][Oq / 8][C][8], see nx_cpu_gemm_tiles; rows past O zero */
    const float *xn, *resn;      /* this batch item's x and residual, and its y */
    float       *yn;
    /* x and y by phase: XP [C][d][Lp], XP[c][qb][v - vmin] = x[c][d v + qb] (zeros outside x), so
     * a column's 32 samples are contiguous; YP [O][d][nblk m], YP[o][res][u] = y[o][d u + res] */
    float       *XP, *YP;
    int64_t      vmin, Lp;
    float       *V, *M;          /* this chunk's [NBIN][NPROD][C][ld] and [NBIN][NPROD][Oq][ld] */
    int64_t      col0, ncol, ld; /* the chunk's columns, and its row stride (whole 48-column tiles) */
    int64_t      rows_per_task;  /* GEMM rows a task takes (a multiple of 8) */
} fc_job;

/* cos and sin of 2 pi f i / 32, f, i < 32 (filled once, pthread_once) */
static float g_cos[NB][NB], g_sin[NB][NB];
static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void)
{
    for (int f = 0; f < NB; f++)
        for (int i = 0; i < NB; i++) {
            const double a = 2.0 * M_PI * (double)((f * i) % NB) / NB;
            g_cos[f][i] = (float)cos(a);
            g_sin[f][i] = (float)sin(a);
        }
}

/* U for output-channel blocks [b0, b1) of 8: bins of the reversed taps, scaled by 1/32 (the
 * inverse DFT's factor), as Karatsuba's three factors Wr, Wi, Wr + Wi (bin 0: W_0, W_16). The
 * packed layout keeps a block's 8 rows at one column together, so the 8 rows are the lanes: per
 * (block, c) the taps are copied to wt[i][row] and each bin is k multiply-adds of 8-float vectors,
 * stored 8 floats at a time. */
static AVX512 void weight_blocks(int64_t b0, int64_t b1, void *arg)
{
    const fc_job *j = arg;
    const int64_t C = j->C, k = j->k, ps = j->Oq * C; /* ps: one product's U */
    float wt[NB / 2][8];
    for (int64_t ob = b0; ob < b1; ob++)
        for (int64_t c = 0; c < C; c++) {
            for (int64_t i = 0; i < k; i++) /* wt[i] = w[k - 1 - i] / 32: the reversed taps */
                for (int rr = 0; rr < 8; rr++) {
                    const int64_t o = ob * 8 + rr;
                    wt[i][rr] = o < j->O ? j->w[(o * C + c) * k + k - 1 - i] * (1.0f / NB) : 0.f;
                }
            for (int f = 0; f < NBIN; f++) {
                __m256 vr = _mm256_setzero_ps(), vi = _mm256_setzero_ps(), ny = _mm256_setzero_ps();
                for (int64_t i = 0; i < k; i++) { /* W_f = sum_i wrev[i] e^{-2 pi i f i / 32} */
                    const __m256 wv = _mm256_loadu_ps(wt[i]);
                    vr = _mm256_fmadd_ps(_mm256_set1_ps(g_cos[f][i]), wv, vr);
                    vi = _mm256_fnmadd_ps(_mm256_set1_ps(g_sin[f][i]), wv, vi);
                    if (f == 0) ny = (i & 1) ? _mm256_sub_ps(ny, wv) : _mm256_add_ps(ny, wv);
                }
                float *u = j->U + (int64_t)f * NPROD * ps + (ob * C + c) * 8;
                _mm256_storeu_ps(u, vr);              /* Wr (bin 0: W_0) */
                _mm256_storeu_ps(u + ps, f ? vi : ny); /* Wi (bin 0: W_16) */
                if (f) _mm256_storeu_ps(u + 2 * ps, _mm256_add_ps(vr, vi));
            }
        }
}

/* Column (res, blk) reads XP[c][qb] from v = blk m + qa, with res - pad = qa d + qb, 0 <= qb < d:
 * its offset in a channel's d Lp floats. */
static inline int64_t col_xp(const fc_job *j, int64_t col)
{
    const int64_t res = col / j->nblk, blk = col % j->nblk, q = res - j->pad;
    const int64_t qa = q >= 0 ? q / j->d : -((-q + j->d - 1) / j->d), qb = q - qa * j->d;
    return qb * j->Lp + blk * j->m + qa - j->vmin;
}

/* XP for channels [c0, c1) of the batch item */
static void phase_in(int64_t c0, int64_t c1, void *arg)
{
    const fc_job *j = arg;
    const int64_t d = j->d;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t qb = 0; qb < d; qb++) {
            float *dst = j->XP + (c * d + qb) * j->Lp;
            const float *xs = j->xn + c * j->L + qb; /* phase qb: xs[d u] = x[d u + qb] */
            /* dst[v] = xs[d (v + vmin)] for v + vmin in [0, n), n = the phase's samples; zeros around */
            const int64_t n = qb < j->L ? (j->L - qb + d - 1) / d : 0;
            int64_t v0 = -j->vmin, v1 = n - j->vmin;
            v0 = v0 < j->Lp ? v0 : j->Lp;
            v1 = v1 < j->Lp ? v1 : j->Lp;
            memset(dst, 0, (size_t)v0 * sizeof(float));
            if (d == 1) memcpy(dst + v0, xs, (size_t)(v1 - v0) * sizeof(float));
            else for (int64_t v = v0; v < v1; v++) dst[v] = xs[d * (v - v0)];
            memset(dst + v1, 0, (size_t)(j->Lp - v1) * sizeof(float));
        }
}

/* y rows [o0, o1) from YP, + the residual */
static void phase_out(int64_t o0, int64_t o1, void *arg)
{
    const fc_job *j = arg;
    const int64_t ph = j->nblk * j->m;
    for (int64_t o = o0; o < o1; o++) {
        float *yo = j->yn + o * j->Lo;
        const float *ro = j->resn ? j->resn + o * j->Lo : NULL;
        for (int64_t res = 0; res < j->d && res < j->Lo; res++) {
            const float *src = j->YP + (o * j->d + res) * ph;
            const int64_t nu = (j->Lo - res + j->d - 1) / j->d;
            if (ro) for (int64_t u = 0; u < nu; u++) yo[u * j->d + res] = src[u] + ro[u * j->d + res];
            else for (int64_t u = 0; u < nu; u++) yo[u * j->d + res] = src[u];
        }
    }
}

/* r[i] <- column i of the 16 x 16 matrix whose rows are r[0..15] */
static AVX512 inline void tr16(__m512 *r)
{
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* u[4 G + q], 128-bit lane k: column 4 k + q of rows 4 G .. 4 G + 3 */
    for (int G = 0; G < 4; G++) {
        const __m512 a = t[4 * G], b = t[4 * G + 1], c = t[4 * G + 2], d = t[4 * G + 3];
        u[4 * G] = _mm512_shuffle_ps(a, c, 0x44);
        u[4 * G + 1] = _mm512_shuffle_ps(a, c, 0xEE);
        u[4 * G + 2] = _mm512_shuffle_ps(b, d, 0x44);
        u[4 * G + 3] = _mm512_shuffle_ps(b, d, 0xEE);
    }
    /* row 4 k + q = lane k of u[q], u[4 + q], u[8 + q], u[12 + q] */
    for (int q = 0; q < 4; q++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44), v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xEE);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
        const __m512 v3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xEE);
        r[q] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + q] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[8 + q] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + q] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

/* The 17 bins of 16 real 32-sample sequences (lanes) as Karatsuba's three factors: bin f's real
 * part to v + f bs, its imaginary part to v + f bs + ps and their sum to v + f bs + 2 ps; bin 0's
 * first two slots take the DC and the Nyquist term. With e_i = s_i + s_{32-i} and
 * o_i = s_i - s_{32-i} (i = 1..15), and bins f and 16 - f sharing the even- and odd-i halves of
 * their sums (cos(2 pi (16 - f) i / 32) = (-1)^i cos(2 pi f i / 32), sin(...) = (-1)^(i+1)
 * sin(...)), it is ~300 vector operations instead of the plain DFT's 1024 multiply-adds. */
static AVX512 inline void dft32(const __m512 *s, float *v, int64_t ps, int64_t bs)
{
    __m512 e[16], o[16];
    for (int i = 1; i < 16; i++) {
        e[i] = _mm512_add_ps(s[i], s[NB - i]);
        o[i] = _mm512_sub_ps(s[i], s[NB - i]);
    }
    const __m512 s0p = _mm512_add_ps(s[0], s[16]), s0m = _mm512_sub_ps(s[0], s[16]);
    __m512 ev = e[2], od = e[1];
    for (int i = 4; i < 16; i += 2) ev = _mm512_add_ps(ev, e[i]);
    for (int i = 3; i < 16; i += 2) od = _mm512_add_ps(od, e[i]);
    _mm512_storeu_ps(v, _mm512_add_ps(s0p, _mm512_add_ps(ev, od)));      /* DC */
    _mm512_storeu_ps(v + ps, _mm512_add_ps(s0p, _mm512_sub_ps(ev, od))); /* Nyquist */
    for (int f = 1; f <= 8; f++) {
        __m512 re_e = _mm512_setzero_ps(), re_o = re_e, im_e = re_e, im_o = re_e;
        for (int i = 2; i < 16; i += 2) {
            re_e = _mm512_fmadd_ps(_mm512_set1_ps(g_cos[f][i]), e[i], re_e);
            im_e = _mm512_fmadd_ps(_mm512_set1_ps(g_sin[f][i]), o[i], im_e);
        }
        for (int i = 1; i < 16; i += 2) {
            re_o = _mm512_fmadd_ps(_mm512_set1_ps(g_cos[f][i]), e[i], re_o);
            im_o = _mm512_fmadd_ps(_mm512_set1_ps(g_sin[f][i]), o[i], im_o);
        }
        const __m512 base = (f & 1) ? s0m : s0p; /* s_0 + (-1)^f s_16 */
        const __m512 a = _mm512_add_ps(base, re_e);
        const __m512 r1 = _mm512_add_ps(a, re_o), i1 = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_add_ps(im_e, im_o));
        _mm512_storeu_ps(v + f * bs, r1);
        _mm512_storeu_ps(v + f * bs + ps, i1);
        _mm512_storeu_ps(v + f * bs + 2 * ps, _mm512_add_ps(r1, i1));
        if (f < 8) {
            const __m512 r2 = _mm512_sub_ps(a, re_o), i2 = _mm512_sub_ps(im_e, im_o);
            _mm512_storeu_ps(v + (16 - f) * bs, r2);
            _mm512_storeu_ps(v + (16 - f) * bs + ps, i2);
            _mm512_storeu_ps(v + (16 - f) * bs + 2 * ps, _mm512_add_ps(r2, i2));
        }
    }
}

/* Forward DFTs of the chunk's columns in 16-column groups [g0, g1) for every input channel into V:
 * bins 1..15 real parts in rows c, imaginary in C + c; bin 0 holds the DC term in row c and the
 * Nyquist term in C + c. A group's 32 samples come in as 16 rows (one per column, contiguous in
 * XP) and are transposed to lanes. Lanes past the chunk's columns are zeros (the GEMM reads
 * whole tiles). */
static AVX512 void forward(int64_t g0, int64_t g1, void *arg)
{
    const fc_job *j = arg;
    const int64_t C = j->C, ld = j->ld, chs = j->d * j->Lp;
    for (int64_t g = g0 * LANES; g < g1 * LANES; g += LANES) {
        const int64_t nl = j->ncol - g < LANES ? (j->ncol - g > 0 ? j->ncol - g : 0) : LANES;
        int64_t off[LANES];
        for (int64_t l = 0; l < nl; l++) off[l] = col_xp(j, j->col0 + g + l);
        for (int64_t c = 0; c < C; c++) {
            const float *xc = j->XP + c * chs;
            __m512 s[NB];
            for (int l = 0; l < LANES; l++) {
                s[l] = l < nl ? _mm512_loadu_ps(xc + off[l]) : _mm512_setzero_ps();
                s[LANES + l] = l < nl ? _mm512_loadu_ps(xc + off[l] + LANES) : _mm512_setzero_ps();
            }
            tr16(s);
            tr16(s + LANES);
            dft32(s, j->V + c * ld + g, C * ld, NPROD * C * ld);
        }
    }
}

/* The GEMMs, a task per (bin, product, block of rows_per_task rows): M_fp[rows] = U_fp[rows] V_fp
 * (bin 0 has no third product). */
static void gemms(int64_t t0, int64_t t1, void *arg)
{
    const fc_job *j = arg;
    const int64_t per = (j->Oq + j->rows_per_task - 1) / j->rows_per_task, C = j->C;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t fp = t / per, r0 = t % per * j->rows_per_task;
        if (fp == 2) continue; /* bin 0, product 2 */
        const int64_t nr = j->Oq - r0 < j->rows_per_task ? j->Oq - r0 : j->rows_per_task;
        nx_cpu_gemm_tiles(j->M + (fp * j->Oq + r0) * j->ld, j->ld, j->U + (fp * j->Oq + r0) * C,
                          j->V + fp * C * j->ld, j->ld, C, nr, j->ncol);
    }
}

/* Inverse DFTs of the chunk's columns for output channels [o0, o1) from M: block output
 * u = n - (k - 1), n in [k - 1, 32), is
 *   z[n] = Z_0 + (-1)^n Z_16 + 2 sum_{f=1..15} (Zr_f cos(2 pi f n / 32) - Zi_f sin(2 pi f n / 32))
 * (the 1/32 is in U), + bias, the activation; transposed back to one row per column and stored to
 * YP[o][res][blk m + u], u < m (phase_out adds the residual on the way to y), or with d = 1 to
 * y[blk m + u] with the residual (u < m, blk m + u < Lo). */
static AVX512 void inverse(int64_t o0, int64_t o1, void *arg)
{
    const fc_job *j = arg;
    const int64_t ld = j->ld, k = j->k, m = j->m, ph = j->nblk * m;
    const __mmask16 m0 = m >= 16 ? 0xffff : (__mmask16)((1u << m) - 1u);
    const __mmask16 m1 = m <= 16 ? 0 : (__mmask16)((1u << (m - 16)) - 1u);
    for (int64_t g = 0; g < j->ncol; g += LANES) {
        const int64_t nl = j->ncol - g < LANES ? j->ncol - g : LANES;
        int64_t off[LANES]; /* YP offset of the column's u = 0 within an output channel's d ph */
        for (int64_t l = 0; l < nl; l++) {
            const int64_t col = j->col0 + g + l;
            off[l] = col / j->nblk * ph + col % j->nblk * m;
        }
        for (int64_t o = o0; o < o1; o++) {
            __m512 zr[NBIN], zi[NBIN], z[NB];
            for (int f = 0; f < NBIN; f++) { /* Zr = P0 - P1, Zi = P2 - P0 - P1 (bin 0: Z_0, Z_16) */
                const float *mf = j->M + ((int64_t)f * NPROD * j->Oq + o) * ld + g;
                const __m512 p0 = _mm512_loadu_ps(mf), p1 = _mm512_loadu_ps(mf + j->Oq * ld);
                if (!f) {
                    zr[0] = p0;
                    zi[0] = p1;
                    continue;
                }
                const __m512 p2 = _mm512_loadu_ps(mf + 2 * j->Oq * ld);
                zr[f] = _mm512_sub_ps(p0, p1);
                zi[f] = _mm512_sub_ps(p2, _mm512_add_ps(p0, p1));
            }
            const __m512 bias = _mm512_set1_ps(j->b ? j->b[o] : 0.f);
            /* bins f and 16 - f share cos and sin up to (-1)^n: for even n they enter as
             * Zr_f + Zr_{16-f} and Zi_f - Zi_{16-f}, for odd n as Zr_f - Zr_{16-f} and Zi_f + Zi_{16-f} */
            __m512 ae[8], be_[8], ao[8], bo[8];
            for (int f = 1; f < 8; f++) {
                ae[f] = _mm512_add_ps(zr[f], zr[16 - f]);
                ao[f] = _mm512_sub_ps(zr[f], zr[16 - f]);
                be_[f] = _mm512_sub_ps(zi[f], zi[16 - f]);
                bo[f] = _mm512_add_ps(zi[f], zi[16 - f]);
            }
            for (int64_t u = 0; u < NB; u++) {
                const int64_t n = u + k - 1;
                if (n >= NB) {
                    z[u] = _mm512_setzero_ps();
                    continue;
                }
                const __m512 *A = (n & 1) ? ao : ae, *B = (n & 1) ? bo : be_;
                __m512 v = (n & 1) ? _mm512_sub_ps(zr[0], zi[0]) : _mm512_add_ps(zr[0], zi[0]);
                for (int f = 1; f < 8; f++) {
                    v = _mm512_fmadd_ps(_mm512_set1_ps(2.f * g_cos[f][n]), A[f], v);
                    v = _mm512_fnmadd_ps(_mm512_set1_ps(2.f * g_sin[f][n]), B[f], v);
                }
                v = _mm512_fmadd_ps(_mm512_set1_ps(2.f * g_cos[8][n]), zr[8], v);
                v = _mm512_fnmadd_ps(_mm512_set1_ps(2.f * g_sin[8][n]), zi[8], v);
                v = _mm512_add_ps(v, bias);
                if (j->leaky) {
                    const __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ);
                    v = _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, _mm512_set1_ps(j->slope)), v);
                }
                z[u] = v;
            }
            tr16(z);
            tr16(z + LANES);
            if (j->d == 1) { /* one phase: the column's outputs are y[blk m + u] itself, + the residual */
                float *yo = j->yn + o * j->Lo;
                const float *ro = j->resn ? j->resn + o * j->Lo : NULL;
                for (int64_t l = 0; l < nl; l++) {
                    const int64_t rem = j->Lo - off[l]; /* outputs left in the row: > 0 */
                    const __mmask16 k0 = m0 & (rem >= 16 ? 0xffff : (__mmask16)((1u << rem) - 1u));
                    const __mmask16 k1 = m1 & (rem >= 32 ? 0xffff : rem <= 16 ? 0 : (__mmask16)((1u << (rem - 16)) - 1u));
                    __m512 a = z[l], b = z[LANES + l];
                    if (ro) {
                        a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(k0, ro + off[l]));
                        b = _mm512_add_ps(b, _mm512_maskz_loadu_ps(k1, ro + off[l] + LANES));
                    }
                    _mm512_mask_storeu_ps(yo + off[l], k0, a);
                    if (k1) _mm512_mask_storeu_ps(yo + off[l] + LANES, k1, b);
                }
                continue;
            }
            float *yp = j->YP + o * j->d * ph;
            for (int64_t l = 0; l < nl; l++) {
                _mm512_mask_storeu_ps(yp + off[l], m0, z[l]);
                if (m1) _mm512_mask_storeu_ps(yp + off[l] + LANES, m1, z[LANES + l]);
            }
        }
    }
}

bool nx_cpu_conv1d_fft_fits(int64_t k, int64_t L, int64_t Lo)
{
    return k >= 2 && k <= NB / 2 && L < ((int64_t)1 << 30) && Lo < ((int64_t)1 << 30);
}

ngpt_status nx_cpu_conv1d_fft(nx_backend *be, float *y, const float *x, const float *w, const float *b, int64_t N,
                              int64_t C, int64_t O, int64_t L, int64_t Lo, int64_t k, int64_t dil, int64_t pad,
                              const nx_conv_epi *epi)
{
    pthread_once(&g_tables_once, tables_init);
    fc_job j = {.w = w, .b = b, .C = C, .O = O, .L = L, .Lo = Lo, .k = k, .d = dil, .pad = pad};
    if (epi) {
        j.leaky = epi->leaky;
        j.slope = epi->slope;
        j.res = epi->res;
    }
    j.m = NB - k + 1;
    const int64_t per_phase = (Lo + dil - 1) / dil; /* outputs of phase 0, the longest */
    j.nblk = (per_phase + j.m - 1) / j.m;
    j.cols = dil * j.nblk;
    j.Oq = (O + 7) / 8 * 8;
    /* a task's rows of U within ~256 KiB (L2, beside its M rows and V), whole 8-row blocks */
    j.rows_per_task = ((int64_t)1 << 16) / C / 8 * 8;
    j.rows_per_task = j.rows_per_task < 8 ? 8 : j.rows_per_task;
    /* columns per chunk: V and M (16 (K + R) floats a column) within ~32 MiB, whole tiles */
    int64_t chunk = ((int64_t)1 << 23) / (NBIN * NPROD * (C + j.Oq)) / TILE * TILE;
    chunk = chunk < TILE ? TILE : chunk;
    const int64_t cols_t = (j.cols + TILE - 1) / TILE * TILE;
    chunk = chunk > cols_t ? cols_t : chunk;
    /* the phase samples columns read: v from blk m + qa (qa from floor(-pad / d) at res 0) on */
    j.vmin = pad > 0 ? -((pad + dil - 1) / dil) : 0;
    const int64_t qa_max = (dil - 1 - pad) >= 0 ? (dil - 1 - pad) / dil : -((pad - dil + 1 + dil - 1) / dil);
    j.Lp = (j.nblk - 1) * j.m + qa_max + NB - j.vmin;
    const size_t ubytes = (size_t)(NBIN * NPROD * j.Oq * C) * sizeof(float);
    j.U = nx_cpu_block_alloc(be, ubytes);
    j.XP = nx_cpu_block_alloc(be, (size_t)(C * dil * j.Lp) * sizeof(float));
    j.YP = dil > 1 ? nx_cpu_block_alloc(be, (size_t)(O * dil * j.nblk * j.m) * sizeof(float)) : NULL;
    j.V = nx_cpu_block_alloc(be, (size_t)(NBIN * NPROD * C * chunk) * sizeof(float));
    j.M = nx_cpu_block_alloc(be, (size_t)(NBIN * NPROD * j.Oq * chunk) * sizeof(float));
    ngpt_status s = NGPT_OK;
    if (!j.U || !j.V || !j.M || !j.XP || (dil > 1 && !j.YP)) {
        s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "conv: cannot allocate the DFT conv1d buffers (%lld x %lld channels, "
                   "%lld columns)", (long long)O, (long long)C, (long long)chunk);
    } else {
        nx_cpu_parallel_for(be, j.Oq / 8, 8 * C * (2 * k + 8 * NBIN), weight_blocks, &j);
        const int64_t per = (j.Oq + j.rows_per_task - 1) / j.rows_per_task;
        for (int64_t n = 0; n < N; n++) {
            j.xn = x + n * C * L;
            j.yn = y + n * O * Lo;
            j.resn = j.res ? j.res + n * O * Lo : NULL;
            nx_cpu_parallel_for(be, C, dil * j.Lp, phase_in, &j);
            for (j.col0 = 0; j.col0 < j.cols; j.col0 += chunk) {
                j.ncol = j.cols - j.col0 < chunk ? j.cols - j.col0 : chunk;
                j.ld = (j.ncol + TILE - 1) / TILE * TILE;
                nx_cpu_parallel_for(be, j.ld / LANES, C * NB * NB, forward, &j);
                nx_cpu_parallel_for(be, NBIN * NPROD * per, j.rows_per_task * C * j.ncol, gemms, &j);
                nx_cpu_parallel_for(be, O, j.ncol * (NB - k + 1) * NB, inverse, &j);
            }
            if (dil > 1) nx_cpu_parallel_for(be, O, Lo, phase_out, &j); /* d = 1: inverse wrote y */
        }
    }
    nx_cpu_block_free(be, j.U);
    nx_cpu_block_free(be, j.XP);
    nx_cpu_block_free(be, j.YP);
    nx_cpu_block_free(be, j.V);
    nx_cpu_block_free(be, j.M);
    return s;
}
