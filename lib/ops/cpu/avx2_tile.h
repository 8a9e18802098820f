/* avx2_tile.h — the AVX2 register tile shared by nx_cpu_gemm_tiles' AVX2 form
 * (gemm_tiles_avx2.c) and the direct conv1d's (conv1d_direct.c): 4 rows x 24 columns, 12 ymm
 * accumulators fed per reduction step by 3 loads of x and 4 broadcasts of w — the widest tile
 * AVX2's 16 registers hold. */
#ifndef NX_AVX2_TILE_H
#define NX_AVX2_TILE_H

#include "avx2_util.h"

#include <stdbool.h>

#define NX_TILE_FMA3(r)                                             \
    do {                                                            \
        const __m256 wv = _mm256_broadcast_ss(w + r);               \
        a##r##0 = _mm256_fmadd_ps(wv, x0, a##r##0);                 \
        a##r##1 = _mm256_fmadd_ps(wv, x1, a##r##1);                 \
        a##r##2 = _mm256_fmadd_ps(wv, x2, a##r##2);                 \
    } while (0)

#define NX_TILE_OUT3(r)                                             \
    do {                                                            \
        _mm256_storeu_ps(out[r], a##r##0);                          \
        _mm256_storeu_ps(out[r] + 8, a##r##1);                      \
        _mm256_storeu_ps(out[r] + 16, a##r##2);                     \
    } while (0)

/* out[r][0 .. 24) (row r < 4) = sum over c < kc and tap t < k of w[(c k + t) 8 + r] x[c ldx + t d ..]:
 * w packed as the direct conv's weights (8 rows a step; pass w + 4 for a block's second half),
 * x's 24 columns readable from every row and tap. The accumulators are named variables, not an
 * array, so that they stay in registers whatever the caller does with the sums. */
static inline NX_AVX2 __attribute__((always_inline)) void nx_tile4x24(float out[4][24], const float *w, const float *x,
                                                                     int64_t ldx, int64_t kc, int64_t k, int64_t d)
{
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    for (int64_t c = 0; c < kc; c++, x += ldx)
        for (int64_t t = 0; t < k; t++, w += 8) {
            const float *xt = x + t * d;
            const __m256 x0 = _mm256_loadu_ps(xt), x1 = _mm256_loadu_ps(xt + 8), x2 = _mm256_loadu_ps(xt + 16);
            NX_TILE_FMA3(0);
            NX_TILE_FMA3(1);
            NX_TILE_FMA3(2);
            NX_TILE_FMA3(3);
        }
    NX_TILE_OUT3(0);
    NX_TILE_OUT3(1);
    NX_TILE_OUT3(2);
    NX_TILE_OUT3(3);
}

#undef NX_TILE_FMA3
#undef NX_TILE_OUT3

#endif
