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
 * sum by ~1e-6 of the row's scale, as oneDNN's own F(4x4, 3x3) does.
 *
 * The columns (tiles of every batch item) go in chunks, V and M of a chunk a few tens of MB;
 * per chunk three parallel loops: the input transform (a task per input channel, 8 tiles in the
 * lanes of a vector), the 36 GEMMs (nx_cpu_gemm_tiles, a task per point and block of rows), the
 * output transform with the bias (a task per output channel). The weights are transformed on
 * every call (36 O C floats; caching them would keep 4x the weights): the rule in conv.c takes
 * this path only where there are enough tiles for that to pay. The epilogue is left to conv.c. */
#include "avx2_util.h"
#include "cpu_ops.h"
#include "cpu_util.h"
#include "wino_f43.h"

#include "../../core/alloc.h"
#include "../../core/cpu_isa.h"
#include "../../core/error.h"

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
                        for (int k = 0; k < A; k++) u[i * A + k][c][rr] = t[i][0] * G[k][0] + t[i][1] * G[k][1] + t[i][2] * G[k][2];
                }
            for (int a = 0; a < P; a++) memcpy(j->U + a * ps + (ob * C + c0) * 8, u[a], (size_t)nc * 8 * sizeof(float));
        }
}

/* V[a][c][col - col0] = (B^T d B)_a for input channels [c0, c1), 8 columns at a time in the
 * lanes; columns past the chunk's up to the GEMM's whole tiles are zeros. */
static NX_AVX2 void input_rows(int64_t c0, int64_t c1, void *arg)
{
    const w2_job *j = arg;
    const int64_t ld = j->ld, C = j->C;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t g = 0; g < ld; g += L8) {
            float d[A][A][L8], t[A][A][L8];
            for (int l = 0; l < L8; l++) {
                const int64_t col = j->col0 + g + l;
                if (g + l >= j->ncol) {
                    for (int r = 0; r < A; r++)
                        for (int q = 0; q < A; q++) d[r][q][l] = 0.f;
                    continue;
                }
                const int64_t n = col / j->tiles, tile = col % j->tiles;
                const int64_t h0 = tile / j->tw * T - j->pt, w0 = tile % j->tw * T - j->pl;
                const float *xc = j->x + (n * C + c) * j->H * j->W;
                for (int r = 0; r < A; r++) {
                    const int64_t h = h0 + r;
                    const bool in_h = h >= 0 && h < j->H;
                    for (int q = 0; q < A; q++) {
                        const int64_t wc = w0 + q;
                        d[r][q][l] = in_h && wc >= 0 && wc < j->W ? xc[h * j->W + wc] : 0.f;
                    }
                }
            }
            for (int i = 0; i < A; i++) /* t = B^T d */
                for (int q = 0; q < A; q++)
                    for (int l = 0; l < L8; l++) {
                        float s = 0.f;
                        for (int k = 0; k < A; k++) s += BT[i][k] * d[k][q][l];
                        t[i][q][l] = s;
                    }
            for (int i = 0; i < A; i++) /* v = t B */
                for (int k = 0; k < A; k++) {
                    float *v = j->V + ((int64_t)(i * A + k) * C + c) * ld + g;
                    for (int l = 0; l < L8; l++) {
                        float s = 0.f;
                        for (int q = 0; q < A; q++) s += t[i][q][l] * BT[k][q];
                        v[l] = s;
                    }
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

/* y = A^T M A + b for output channels [o0, o1), 8 columns at a time in the lanes */
static NX_AVX2 void output_rows(int64_t o0, int64_t o1, void *arg)
{
    const w2_job *j = arg;
    const int64_t ld = j->ld;
    for (int64_t o = o0; o < o1; o++) {
        const float bias = j->b ? j->b[o] : 0.f;
        for (int64_t g = 0; g < j->ncol; g += L8) {
            float m[A][A][L8], t[T][A][L8], z[T][T][L8];
            for (int a = 0; a < P; a++) memcpy(m[a / A][a % A], j->M + ((int64_t)a * j->O + o) * ld + g, sizeof m[0][0]);
            for (int i = 0; i < T; i++) /* t = A^T m */
                for (int q = 0; q < A; q++)
                    for (int l = 0; l < L8; l++) {
                        float s = 0.f;
                        for (int k = 0; k < A; k++) s += AT[i][k] * m[k][q][l];
                        t[i][q][l] = s;
                    }
            for (int i = 0; i < T; i++) /* z = t A + b */
                for (int k = 0; k < T; k++)
                    for (int l = 0; l < L8; l++) {
                        float s = bias;
                        for (int q = 0; q < A; q++) s += t[i][q][l] * AT[k][q];
                        z[i][k][l] = s;
                    }
            for (int l = 0; l < L8 && g + l < j->ncol; l++) {
                const int64_t col = j->col0 + g + l, n = col / j->tiles, tile = col % j->tiles;
                const int64_t h0 = tile / j->tw * T, w0 = tile % j->tw * T;
                float *yo = j->y + (n * j->O + o) * j->Ho * j->Wo;
                for (int i = 0; i < T && h0 + i < j->Ho; i++)
                    for (int k = 0; k < T && w0 + k < j->Wo; k++) yo[(h0 + i) * j->Wo + w0 + k] = z[i][k][l];
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
    /* a task's rows of U within ~256 KiB (L2, beside the GEMM's panel of V), whole 8-row blocks */
    j.rows_per_task = ((int64_t)1 << 16) / C / 8 * 8;
    j.rows_per_task = j.rows_per_task < 8 ? 8 : j.rows_per_task;
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
