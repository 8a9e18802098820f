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
 * columns (the blocks of all phases) the forward DFTs (a vector's lanes are 16 or 8 columns:
 * their rows loaded and transposed, then a symmetric DFT), 47 real GEMMs of [O, C] x [C, columns],
 * the inverse DFTs with bias and activation, transposed back
 * into YP (y by phase; then y = YP + residual) or, without dilation, straight into y with the
 * residual. Each step is one parallel loop: an own-GEMM task
 * streams its rows of U once (with one big chunk per step, U, 47 C O floats, is read once per
 * chunk, not once per small chunk; the price is V and M passing through L3).
 * Gathers and scatters were avoided on purpose: on this host (a KVM guest) a 16-lane gather took
 * ~70 cycles, slower than the DFT it fed.
 *
 * In F32 the result differs from the direct sum by ~1e-6 relative (the DFT is orthogonal up to
 * scale: no growth like Winograd's points). The weights are transformed on every call, like
 * wino1d's (a cache would keep 64 C O floats per conv).
 *
 * Two widths, picked by cpu_isa.h: the transforms run 16 lanes wide on AVX-512 and 8 on AVX2
 * (fftconv1d_lanes.h holds them once for both), the GEMMs on the register tiles of either
 * (nx_cpu_gemm_tiles). Not oneDNN's batched matmul: on a 2-core AMD EPYC its OpenMP team spun
 * through the pool's transforms between the calls (the vocoder took 3.78 s that way, 3.57 s
 * with the own tiles). No portable form: without AVX2 conv.c never picks this path. */
#include "avx2_util.h"
#include "cpu_ops.h"
#include "cpu_util.h"

#include "../../core/alloc.h"
#include "../../core/cpu_isa.h"
#include "../../core/error.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

/* NPROD: the real products a bin takes (bins 1..15: Karatsuba's three; bin 0: two, DC and
 * Nyquist); a product is an [Oq x C] x [C x columns] GEMM */
enum { NB = 32, NBIN = 16, NPROD = 3, TILE = 48 };

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

/* wt[c - c0][i][rr] = w[8 ob + rr][c][k - 1 - i] / 32 for c in [c0, c1): block ob's reversed
 * taps, the 8 rows as lanes (zeros past O), scaled by the inverse DFT's 1/32. Each row of w is
 * read along its run of (c1 - c0) k floats. */
static void block_taps(const fc_job *j, int64_t ob, int64_t c0, int64_t c1, float wt[][NB / 2][8])
{
    const int64_t k = j->k;
    for (int rr = 0; rr < 8; rr++) {
        const int64_t o = ob * 8 + rr;
        const float *wr = j->w + (o * j->C + c0) * k;
        for (int64_t c = 0; c < c1 - c0; c++, wr += k)
            for (int64_t i = 0; i < k; i++) wt[c][i][rr] = o < j->O ? wr[k - 1 - i] * (1.0f / NB) : 0.f;
    }
}

/* Bin f of a block's taps wt as Karatsuba's three factors Wr, Wi, Wr + Wi (bin 0: W_0, W_16),
 * stored 8 floats (the block's rows) at u, u + ps and u + 2 ps. */
static NX_AVX2 inline void block_bin(const float wt[][8], int64_t k, int f, float *u, int64_t ps)
{
    __m256 vr = _mm256_setzero_ps(), vi = _mm256_setzero_ps(), ny = _mm256_setzero_ps();
    for (int64_t i = 0; i < k; i++) { /* W_f = sum_i wrev[i] e^{-2 pi i f i / 32} */
        const __m256 wv = _mm256_loadu_ps(wt[i]);
        vr = _mm256_fmadd_ps(_mm256_set1_ps(g_cos[f][i]), wv, vr);
        vi = _mm256_fnmadd_ps(_mm256_set1_ps(g_sin[f][i]), wv, vi);
        if (f == 0) ny = (i & 1) ? _mm256_sub_ps(ny, wv) : _mm256_add_ps(ny, wv);
    }
    _mm256_storeu_ps(u, vr);              /* Wr (bin 0: W_0) */
    _mm256_storeu_ps(u + ps, f ? vi : ny); /* Wi (bin 0: W_16) */
    if (f) _mm256_storeu_ps(u + 2 * ps, _mm256_add_ps(vr, vi));
}

/* U in the own GEMM's layout ([fp][Oq / 8][C][8]) for output-channel blocks [b0, b1): per block
 * and chunk of CB input channels the taps, then one bin at a time over the chunk, so that the
 * stores run along 3 planes at a time (1 KiB each). All 47 planes at once per (block, channel)
 * made the transform as slow as the GEMMs on an AMD EPYC. */
static NX_AVX2 void weight_rows(int64_t b0, int64_t b1, void *arg)
{
    enum { CB = 32 }; /* wt: 16 KiB of the stack (the caller's thread runs tasks too) */
    const fc_job *j = arg;
    const int64_t ps = j->Oq * j->C; /* one product's U */
    float wt[CB][NB / 2][8];
    for (int64_t ob = b0; ob < b1; ob++)
        for (int64_t c0 = 0; c0 < j->C; c0 += CB) {
            const int64_t c1 = j->C - c0 < CB ? j->C : c0 + CB;
            block_taps(j, ob, c0, c1, wt);
            for (int f = 0; f < NBIN; f++)
                for (int64_t c = c0; c < c1; c++)
                    block_bin(wt[c - c0], j->k, f, j->U + (int64_t)f * NPROD * ps + (ob * j->C + c) * 8, ps);
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

/* r[i] <- column i of the 8 x 8 matrix whose rows are r[0..7] */
static NX_AVX2 inline void tr8(__m256 *r)
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    /* u[4 G + q], 128-bit lane k: column 4 k + q of rows 4 G .. 4 G + 3 */
    for (int G = 0; G < 2; G++) {
        const __m256 a = t[4 * G], b = t[4 * G + 1], c = t[4 * G + 2], d = t[4 * G + 3];
        u[4 * G] = _mm256_shuffle_ps(a, c, 0x44);
        u[4 * G + 1] = _mm256_shuffle_ps(a, c, 0xEE);
        u[4 * G + 2] = _mm256_shuffle_ps(b, d, 0x44);
        u[4 * G + 3] = _mm256_shuffle_ps(b, d, 0xEE);
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x20);
        r[4 + q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x31);
    }
}

/* The transforms at 16 lanes (AVX-512) ... */
#define FC_W 16
#define FC_TARGET AVX512
#define FC_SFX avx512
#define fvec __m512
#define fmask __mmask16
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VFMA _mm512_fmadd_ps
#define VFNMA _mm512_fnmadd_ps
#define VSET1 _mm512_set1_ps
#define VZERO _mm512_setzero_ps
#define VMASK(n) ((__mmask16)((1u << (n)) - 1u)) /* 0 < n < 16 */
#define VLOADM(mk, p) _mm512_maskz_loadu_ps(mk, p)
#define VSTOREM(p, mk, v) _mm512_mask_storeu_ps(p, mk, v)
#define VLEAKY(v, s) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ), _mm512_mul_ps(v, s), v)
#define FC_TR tr16
#include "fftconv1d_lanes.h"

/* ... and at 8 (AVX2) */
#define FC_W 8
#define FC_TARGET NX_AVX2
#define FC_SFX avx2
#define fvec __m256
#define fmask __m256i
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VFMA _mm256_fmadd_ps
#define VFNMA _mm256_fnmadd_ps
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#define VMASK(n) nx_tail8(n)
#define VLOADM(mk, p) _mm256_maskload_ps(p, mk)
#define VSTOREM(p, mk, v) _mm256_maskstore_ps(p, mk, v)
#define VLEAKY(v, s) _mm256_blendv_ps(_mm256_mul_ps(v, s), v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ))
#define FC_TR tr8
#include "fftconv1d_lanes.h"

bool nx_cpu_conv1d_fft_fits(int64_t k, int64_t L, int64_t Lo)
{
    return k >= 2 && k <= NB / 2 && L < ((int64_t)1 << 30) && Lo < ((int64_t)1 << 30);
}

ngpt_status nx_cpu_conv1d_fft(nx_backend *be, float *y, const float *x, const float *w, const float *b, int64_t N,
                              int64_t C, int64_t O, int64_t L, int64_t Lo, int64_t k, int64_t dil, int64_t pad,
                              const nx_conv_epi *epi)
{
    if (!nx_cpu_has_avx2()) /* conv.c does not pick this path then */
        return nx_err(NGPT_ERR_INTERNAL, "conv: the DFT conv1d needs AVX2 (this CPU: %s)", nx_isa_name(nx_cpu_isa()));
    pthread_once(&g_tables_once, tables_init);
    fc_job j = {.w = w, .b = b, .C = C, .O = O, .L = L, .Lo = Lo, .k = k, .d = dil, .pad = pad};
    const bool w16 = nx_cpu_has_avx512();
    const int64_t lanes = w16 ? 16 : 8;
    void (*forward)(int64_t, int64_t, void *) = w16 ? forward_avx512 : forward_avx2;
    void (*inverse)(int64_t, int64_t, void *) = w16 ? inverse_avx512 : inverse_avx2;
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
    j.rows_per_task = nx_cpu_gemm_tile_rows(C);
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
        nx_cpu_parallel_for(be, j.Oq / 8, 8 * C * (2 * k + 8 * NBIN), weight_rows, &j);
        const int64_t per = (j.Oq + j.rows_per_task - 1) / j.rows_per_task;
        for (int64_t n = 0; n < N; n++) {
            j.xn = x + n * C * L;
            j.yn = y + n * O * Lo;
            j.resn = j.res ? j.res + n * O * Lo : NULL;
            nx_cpu_parallel_for(be, C, dil * j.Lp, phase_in, &j);
            for (j.col0 = 0; j.col0 < j.cols; j.col0 += chunk) {
                j.ncol = j.cols - j.col0 < chunk ? j.cols - j.col0 : chunk;
                j.ld = (j.ncol + TILE - 1) / TILE * TILE; /* the GEMM reads whole 48-column tiles */
                nx_cpu_parallel_for(be, j.ld / lanes, C * NB * NB, forward, &j);
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
