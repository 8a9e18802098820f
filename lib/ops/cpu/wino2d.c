/* wino2d.c — 3x3 convolutions (stride 1, dilation 1, no groups, F32, NCHW) through the 2-D
 * Winograd F(4x4, 3x3) on the CPU's own GEMM tiles, for CPUs without AVX-512: oneDNN 2.x's
 * Winograd kernels are AVX-512 only, and on an AVX2 AMD EPYC (Zen 3) the SD, AudioLDM and
 * Zeroscope VAEs ran at PyTorch's speed on its direct convolutions (the same ones PyTorch calls).
 *
 * Each output tile of 4 x 4 reads a 6 x 6 patch d of x (zeros outside); with U = G w G^T per
 * (output, input) channel pair and V = B^T d B per (input channel, tile), the tile is
 * A^T M A with M = sum over c of U . V (element-wise over the 36 points): per point a one GEMM
 *     M_a [O, tiles] = U_a [O, C] . V_a [C, tiles]
 * 36 multiplies per 16 outputs and channel pair instead of 144 (4x fewer). The matrices are
 * F(4, 3)'s (wino_f43.h, points 0, +-1, +-2, inf): in F32 the result differs from the direct
 * sum by up to a few 1e-6 of each output's sum |x w| (the error follows the whole tile's
 * magnitudes), as with oneDNN's own F(4x4, 3x3).
 *
 * The columns (tiles of every batch item) go in chunks, V and M of a chunk a few tens of MB;
 * per chunk three parallel loops: the input transform (a task per input channel, 8 tiles in the
 * lanes of a vector; F(4, 3)'s integer matrices written out as a few adds and FMAs), the 36
 * GEMMs (nx_cpu_gemm_tiles, a task per point and block of rows), the output transform with the
 * bias (a task per output channel). The weights are transformed on
 * every call (36 O C floats; caching them would keep 4x the weights): the rule in conv.c takes
 * this path only where there are enough tiles for that to pay. The epilogue is left to conv.c. */
#include "avx2_util.h"
#include "cpu_ops.h"
#include "cpu_util.h"
#include "wino_f43.h"

#include "../../core/alloc.h"
#include "../../core/cpu_isa.h"
#include "../../core/error.h"

#include <stdbool.h>
#include <string.h>

enum { T = NX_W43_T, A = NX_W43_A, R = NX_W43_R, P = A * A, L8 = 8, TILE = 48, CB = 16 };
#define BT NX_W43_BT
#define G NX_W43_G
#define AT NX_W43_AT

typedef struct w2_job {
    const float *x, *w, *b;
    float       *y;
    int64_t      N, C, O, H, W, Ho, Wo, pt, pl;
    int64_t      th, tw, tiles;   /* tiles per image: th rows of tw */
    int64_t      Op;              /* O rounded up to 8 */
    float       *U;               /* [P][Op / 8][C][8] (nx_cpu_gemm_tiles' packing), rows past O zero */
    float       *V, *M;           /* this chunk's [P][C][ld] and [P][O][ld] */
    int64_t      col0, ncol, ld;  /* the chunk's columns (n tiles + tile) and row stride */
    int64_t      rows_per_task;   /* GEMM rows a task takes (a multiple of 8) */
} w2_job;

/* U for output-channel blocks [b0, b1): per block and chunk of CB input channels the 36 points
 * of G w G^T for the block's 8 rows, then one point at a time over the chunk (one store stream
 * at a time: 36 at once is slow, fftconv1d.c found). u is 18 KiB of the stack: the caller's
 * thread runs tasks too. */
static NX_AVX2 void weight_blocks(int64_t b0, int64_t b1, void *arg)
{
    const w2_job *j = arg;
    const int64_t C = j->C, ps = j->Op * C;
    float u[P][CB][8];
    for (int64_t ob = b0; ob < b1; ob++)
        for (int64_t c0 = 0; c0 < C; c0 += CB) {
            const int64_t nc = C - c0 < CB ? C - c0 : CB;
            for (int64_t c = 0; c < nc; c++)
                for (int rr = 0; rr < 8; rr++) {
                    const int64_t o = ob * 8 + rr;
                    if (o >= j->O) {
                        for (int a = 0; a < P; a++) u[a][c][rr] = 0.f;
                        continue;
                    }
                    const float *g = j->w + (o * C + c0 + c) * 9;
                    float t[A][R]; /* G g */
                    for (int i = 0; i < A; i++)
                        for (int q = 0; q < R; q++) t[i][q] = G[i][0] * g[q] + G[i][1] * g[3 + q] + G[i][2] * g[6 + q];
                    for (int i = 0; i < A; i++)
                        for (int k = 0; k < A; k++)
                            u[i * A + k][c][rr] = t[i][0] * G[k][0] + t[i][1] * G[k][1] + t[i][2] * G[k][2];
                }
            for (int a = 0; a < P; a++) memcpy(j->U + a * ps + (ob * C + c0) * 8, u[a], (size_t)nc * 8 * sizeof(float));
        }
}

/* r = B^T d for six vectors d[0..5] (wino_f43.h's rows written out: integer weights, few terms) */
static NX_AVX2 inline void bt6(__m256 *r, const __m256 *d)
{
    const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), five = _mm256_set1_ps(5.f);
    const __m256 d4m2 = _mm256_sub_ps(d[4], d[2]), d3m1 = _mm256_sub_ps(d[3], d[1]);
    const __m256 p12 = _mm256_fmadd_ps(four, d[2], _mm256_mul_ps(four, d[1])); /* 4 d1 + 4 d2 */
    const __m256 d34 = _mm256_add_ps(d[3], d[4]);
    r[0] = _mm256_fnmadd_ps(five, d[2], _mm256_fmadd_ps(four, d[0], d[4]));
    r[1] = _mm256_sub_ps(d34, p12);
    r[2] = _mm256_sub_ps(_mm256_fmadd_ps(four, d[1], d[4]), _mm256_fmadd_ps(four, d[2], d[3]));
    r[3] = _mm256_fmadd_ps(two, d3m1, d4m2);
    r[4] = _mm256_fnmadd_ps(two, d3m1, d4m2);
    r[5] = _mm256_fnmadd_ps(five, d[3], _mm256_fmadd_ps(four, d[1], d[5]));
}

/* E[q][l] = p[4 l + q], q < 4: the 32 floats at p split by their index mod 4 */
static NX_AVX2 inline void split4(__m256 *E, const float *p)
{
    const __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8), v2 = _mm256_loadu_ps(p + 16);
    const __m256 v3 = _mm256_loadu_ps(p + 24);
    const __m256 p0 = _mm256_permute2f128_ps(v0, v2, 0x20), p1 = _mm256_permute2f128_ps(v0, v2, 0x31);
    const __m256 p2 = _mm256_permute2f128_ps(v1, v3, 0x20), p3 = _mm256_permute2f128_ps(v1, v3, 0x31);
    const __m256 t0 = _mm256_unpacklo_ps(p0, p1), t1 = _mm256_unpackhi_ps(p0, p1);
    const __m256 t2 = _mm256_unpacklo_ps(p2, p3), t3 = _mm256_unpackhi_ps(p2, p3);
    E[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    E[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    E[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    E[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/* p[4 l + k] = z[k][l], k < 4: split4 undone, 32 floats stored */
static NX_AVX2 inline void join4(float *p, const __m256 *z)
{
    const __m256 t0 = _mm256_unpacklo_ps(z[0], z[1]), t1 = _mm256_unpackhi_ps(z[0], z[1]);
    const __m256 t2 = _mm256_unpacklo_ps(z[2], z[3]), t3 = _mm256_unpackhi_ps(z[2], z[3]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    _mm256_storeu_ps(p, _mm256_permute2f128_ps(u0, u1, 0x20));
    _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
    _mm256_storeu_ps(p + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps(p + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
}

/* Column col's tile: batch item, top-left output position */
static inline void tile_at(const w2_job *j, int64_t col, int64_t *n, int64_t *h0, int64_t *w0)
{
    const int64_t tile = col % j->tiles;
    *n = col / j->tiles;
    *h0 = tile / j->tw * T;
    *w0 = tile % j->tw * T;
}

/* Whether the 8 columns from col are 8 consecutive tiles of one tile row */
static inline bool one_row(const w2_job *j, int64_t col)
{
    return col % j->tw + L8 <= j->tw && col / j->tiles == (col + L8 - 1) / j->tiles;
}

/* V[a][c][col - col0] = (B^T d B)_a for input channels [c0, c1), 8 columns (tiles) in the lanes
 * of a vector. Eight tiles of one tile row whose patches lie inside x are read as rows of 36
 * floats split by their index mod 4 (split4); others are gathered one by one with zeros outside.
 * Columns past the chunk's, up to the GEMM's whole tiles, are zeros. */
static NX_AVX2 void input_rows(int64_t c0, int64_t c1, void *arg)
{
    const w2_job *j = arg;
    const int64_t ld = j->ld, C = j->C;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t g = 0; g < ld; g += L8) {
            __m256 d[A][A], t[A][A], col6[A], r6[A];
            const int64_t col = j->col0 + g;
            int64_t n, h0, w0;
            tile_at(j, col, &n, &h0, &w0);
            h0 -= j->pt;
            w0 -= j->pl;
            if (g + L8 <= j->ncol && one_row(j, col) && h0 >= 0 && h0 + A <= j->H && w0 >= 0 &&
                w0 + 4 * L8 + 4 <= j->W) { /* (n is a batch item's only for columns in the chunk) */
                const float *xc = j->x + (n * C + c) * j->H * j->W;
                for (int r = 0; r < A; r++) {
                    __m256 e[8];
                    split4(e, xc + (h0 + r) * j->W + w0);
                    split4(e + 4, xc + (h0 + r) * j->W + w0 + 4);
                    for (int q = 0; q < A; q++) d[r][q] = e[q];
                }
            } else {
                float buf[A][A][L8];
                for (int l = 0; l < L8; l++) {
                    if (g + l >= j->ncol) {
                        for (int r = 0; r < A; r++)
                            for (int q = 0; q < A; q++) buf[r][q][l] = 0.f;
                        continue;
                    }
                    int64_t nl, hl, wl;
                    tile_at(j, col + l, &nl, &hl, &wl);
                    hl -= j->pt;
                    wl -= j->pl;
                    const float *xl = j->x + (nl * C + c) * j->H * j->W;
                    for (int r = 0; r < A; r++)
                        for (int q = 0; q < A; q++) {
                            const int64_t h = hl + r, wc = wl + q;
                            buf[r][q][l] = h >= 0 && h < j->H && wc >= 0 && wc < j->W ? xl[h * j->W + wc] : 0.f;
                        }
                }
                for (int r = 0; r < A; r++)
                    for (int q = 0; q < A; q++) d[r][q] = _mm256_loadu_ps(buf[r][q]);
            }
            for (int q = 0; q < A; q++) { /* t = B^T d, a column at a time */
                for (int r = 0; r < A; r++) col6[r] = d[r][q];
                bt6(r6, col6);
                for (int i = 0; i < A; i++) t[i][q] = r6[i];
            }
            for (int i = 0; i < A; i++) { /* v = t B: B^T applied to each row of t */
                bt6(r6, t[i]);
                for (int k = 0; k < A; k++) _mm256_storeu_ps(j->V + ((int64_t)(i * A + k) * C + c) * ld + g, r6[k]);
            }
        }
}

/* M_a = U_a V_a, a task per (point, block of rows_per_task rows) */
static void gemms(int64_t t0, int64_t t1, void *arg)
{
    const w2_job *j = arg;
    const int64_t per = (j->Op + j->rows_per_task - 1) / j->rows_per_task;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t a = t / per, r0 = t % per * j->rows_per_task;
        if (r0 >= j->O) continue;
        const int64_t nr = j->O - r0 < j->rows_per_task ? j->O - r0 : j->rows_per_task;
        nx_cpu_gemm_tiles(j->M + (a * j->O + r0) * j->ld, j->ld, j->U + (a * j->Op + r0) * j->C,
                          j->V + a * j->C * j->ld, j->ld, j->C, nr, j->ncol);
    }
}

/* r = A^T m for six vectors m[0..5] */
static NX_AVX2 inline void at4(__m256 *r, const __m256 *m)
{
    const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), eight = _mm256_set1_ps(8.f);
    const __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
    const __m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
    r[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
    r[1] = _mm256_fmadd_ps(two, d34, d12);
    r[2] = _mm256_fmadd_ps(four, s34, s12);
    r[3] = _mm256_add_ps(_mm256_fmadd_ps(eight, d34, d12), m[5]);
}

/* y = A^T M A + b for output channels [o0, o1), 8 columns (tiles) in the lanes. Eight tiles of
 * one tile row inside y are stored as rows of 32 floats (join4); others one by one. */
static NX_AVX2 void output_rows(int64_t o0, int64_t o1, void *arg)
{
    const w2_job *j = arg;
    const int64_t ld = j->ld;
    for (int64_t o = o0; o < o1; o++) {
        const __m256 bias = _mm256_set1_ps(j->b ? j->b[o] : 0.f);
        for (int64_t g = 0; g < j->ncol; g += L8) {
            __m256 m[A][A], t[T][A], z[T][T], col6[A], r4[T];
            for (int a = 0; a < P; a++) m[a / A][a % A] = _mm256_loadu_ps(j->M + ((int64_t)a * j->O + o) * ld + g);
            for (int q = 0; q < A; q++) { /* t = A^T m, a column at a time */
                for (int r = 0; r < A; r++) col6[r] = m[r][q];
                at4(r4, col6);
                for (int i = 0; i < T; i++) t[i][q] = r4[i];
            }
            for (int i = 0; i < T; i++) { /* z = t A + b */
                at4(r4, t[i]);
                for (int k = 0; k < T; k++) z[i][k] = _mm256_add_ps(r4[k], bias);
            }
            const int64_t col = j->col0 + g;
            int64_t n, h0, w0;
            tile_at(j, col, &n, &h0, &w0);
            if (g + L8 <= j->ncol && one_row(j, col) && h0 + T <= j->Ho && w0 + T * L8 <= j->Wo) {
                float *yo = j->y + ((n * j->O + o) * j->Ho + h0) * j->Wo + w0;
                for (int i = 0; i < T; i++) join4(yo + i * j->Wo, z[i]);
                continue;
            }
            float buf[T][T][L8];
            for (int i = 0; i < T; i++)
                for (int k = 0; k < T; k++) _mm256_storeu_ps(buf[i][k], z[i][k]);
            for (int l = 0; l < L8 && g + l < j->ncol; l++) {
                int64_t nl, hl, wl;
                tile_at(j, col + l, &nl, &hl, &wl);
                float *yo = j->y + (nl * j->O + o) * j->Ho * j->Wo;
                for (int i = 0; i < T && hl + i < j->Ho; i++)
                    for (int k = 0; k < T && wl + k < j->Wo; k++) yo[(hl + i) * j->Wo + wl + k] = buf[i][k][l];
            }
        }
    }
}

ngpt_status nx_cpu_conv_wino2d(nx_backend *be, float *y, const float *x, const float *w, const float *b, int64_t N,
                               int64_t C, int64_t O, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int64_t pt,
                               int64_t pl)
{
    if (!nx_cpu_has_avx2()) /* conv.c does not pick this path then */
        return nx_err(NGPT_ERR_INTERNAL, "conv: the 2-D Winograd needs AVX2 (this CPU: %s)", nx_isa_name(nx_cpu_isa()));
    w2_job j = {.x = x, .w = w, .b = b, .y = y, .N = N, .C = C, .O = O, .H = H, .W = W, .Ho = Ho, .Wo = Wo,
                .pt = pt, .pl = pl};
    j.th = (Ho + T - 1) / T;
    j.tw = (Wo + T - 1) / T;
    j.tiles = j.th * j.tw;
    j.Op = (O + 7) / 8 * 8;
    j.rows_per_task = nx_cpu_gemm_tile_rows(C);
    /* columns per chunk: V and M (36 (C + O) floats a column) within ~24 MiB, whole tiles */
    const int64_t cols = N * j.tiles;
    int64_t chunk = ((int64_t)6 << 20) / (P * (C + O)) / TILE * TILE;
    chunk = chunk < TILE ? TILE : chunk;
    const int64_t cols_t = (cols + TILE - 1) / TILE * TILE;
    chunk = chunk > cols_t ? cols_t : chunk;
    j.U = nx_cpu_block_alloc(be, (size_t)(P * j.Op * C) * sizeof(float));
    j.V = nx_cpu_block_alloc(be, (size_t)(P * C * chunk) * sizeof(float));
    j.M = nx_cpu_block_alloc(be, (size_t)(P * O * chunk) * sizeof(float));
    ngpt_status s = NGPT_OK;
    if (!j.U || !j.V || !j.M) {
        s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "conv: cannot allocate the 2-D Winograd buffers (%lld x %lld channels, "
                   "%lld columns)", (long long)O, (long long)C, (long long)chunk);
    } else {
        nx_cpu_parallel_for(be, j.Op / 8, 8 * C * P * 12, weight_blocks, &j);
        const int64_t per = (j.Op + j.rows_per_task - 1) / j.rows_per_task;
        for (j.col0 = 0; j.col0 < cols; j.col0 += chunk) {
            j.ncol = cols - j.col0 < chunk ? cols - j.col0 : chunk;
            j.ld = (j.ncol + TILE - 1) / TILE * TILE; /* the GEMM reads whole 48-column tiles */
            nx_cpu_parallel_for(be, C, j.ld * P * 16, input_rows, &j);
            nx_cpu_parallel_for(be, P * per, j.rows_per_task * C * j.ncol, gemms, &j);
            nx_cpu_parallel_for(be, O, j.ncol * P * 10, output_rows, &j);
        }
    }
    nx_cpu_block_free(be, j.U);
    nx_cpu_block_free(be, j.V);
    nx_cpu_block_free(be, j.M);
    return s;
}
