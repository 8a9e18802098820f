/* gemm_tiles_avx2.c — nx_cpu_gemm_tiles' AVX2 form, and the dispatch between it and the AVX-512
 * form (conv1d_direct.c). y[O][n] = W x with W packed [ceil(O / 8)][K][8] (the direct conv1d's
 * k = 1 layout): each 8-row block is run as two 4-row x 24-column register tiles (avx2_tile.h).
 * K is taken in chunks of KC and the columns in blocks of TB so that a half block's weights
 * (KC x 8 floats) and a tile's panel of x (KC x 24) stay in L1 across the tiles and the block's
 * chunk of x (KC x TB, 96 KiB) in L2 across the row blocks; the partial sums of earlier chunks
 * wait in y. (Without the column blocks, 4000 columns ran at half the speed of 144.)
 *
 * Why not oneDNN's matmul for these GEMMs: the callers (the DFT conv1d, the 1-D Winograd) run
 * their transforms on the library's pool, and every switch to oneDNN's OpenMP team and back left
 * one team spinning on the other's cores (15% of the vocoder's time on a 2-core AMD EPYC). */
#include "avx2_tile.h"
#include "cpu_ops.h"

#include "../../core/cpu_isa.h"

enum { TR = 4, TC = 24, KC = 128, TB = 192 };

/* y[0, cnt) (cnt clamped to [0, 8]) = v, or += v unless first */
static NX_AVX2 inline void store8(float *y, __m256 v, bool first, int64_t cnt)
{
    if (cnt >= 8) {
        _mm256_storeu_ps(y, first ? v : _mm256_add_ps(v, _mm256_loadu_ps(y)));
    } else if (cnt > 0) {
        const __m256i m = nx_tail8(cnt);
        _mm256_maskstore_ps(y, m, first ? v : _mm256_add_ps(v, _mm256_maskload_ps(y, m)));
    }
}

/* rows [0, nr) and columns [0, nc) of y (nr <= 4, nc <= 24) = or += the sums over kc rows of x
 * (ldx apart, 24 columns readable) of w[c * 8 + r] x[c] */
static NX_AVX2 void tile(float *y, int64_t ldy, const float *w, const float *x, int64_t ldx, int64_t kc, bool first,
                         int nr, int64_t nc)
{
    float out[4][24];
    nx_tile4x24(out, w, x, ldx, kc, 1, 0);
    for (int r = 0; r < nr; r++)
        for (int q = 0; q < 3; q++) store8(y + r * ldy + 8 * q, _mm256_loadu_ps(out[r] + 8 * q), first, nc - 8 * q);
}

static NX_AVX2 void gemm_tiles_avx2(float *y, int64_t ldy, const float *wp, const float *x, int64_t ldx, int64_t K,
                                    int64_t O, int64_t n)
{
    for (int64_t c0 = 0; c0 < K; c0 += KC) {
        const int64_t kc = K - c0 < KC ? K - c0 : KC;
        for (int64_t b0 = 0; b0 < n; b0 += TB) {
            const int64_t b1 = n - b0 < TB ? n : b0 + TB;
            for (int64_t o0 = 0; o0 < O; o0 += 8)
                for (int64_t t0 = b0; t0 < b1; t0 += TC)
                    for (int64_t h = 0; h < 8 && o0 + h < O; h += TR) {
                        const int nr = O - o0 - h < TR ? (int)(O - o0 - h) : TR;
                        tile(y + (o0 + h) * ldy + t0, ldy, wp + o0 * K + c0 * 8 + h, x + c0 * ldx + t0, ldx, kc,
                             c0 == 0, nr, n - t0 < TC ? n - t0 : TC);
                    }
        }
    }
}

void nx_cpu_gemm_tiles(float *y, int64_t ldy, const float *wp, const float *x, int64_t ldx, int64_t K, int64_t O,
                       int64_t n)
{
    if (nx_cpu_has_avx512()) nx_cpu_gemm_tiles_avx512(y, ldy, wp, x, ldx, K, O, n);
    else gemm_tiles_avx2(y, ldy, wp, x, ldx, K, O, n);
}
