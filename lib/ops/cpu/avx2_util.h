/* avx2_util.h — the small AVX2 pieces the CPU kernels' 8-lane forms share (cpu_isa.h level
 * NX_ISA_AVX2: AVX2 + FMA + F16C). Functions using them carry NX_AVX2 too. */
#ifndef NX_AVX2_UTIL_H
#define NX_AVX2_UTIL_H

#include <immintrin.h>
#include <stdint.h>

#define NX_AVX2 __attribute__((target("avx2,fma,f16c")))

/* lanes [0, rem) set (rem clamped to [0, 8]): the mask of a partial vector for maskload/store */
static inline NX_AVX2 __m256i nx_tail8(int64_t rem)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem >= 8 ? 8 : rem <= 0 ? 0 : (int)rem),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline NX_AVX2 float nx_hsum8(__m256 v)
{
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    return _mm_cvtss_f32(_mm_add_ss(a, _mm_movehdup_ps(a)));
}

static inline NX_AVX2 float nx_hmax8(__m256 v)
{
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    return _mm_cvtss_f32(_mm_max_ss(a, _mm_movehdup_ps(a)));
}

#endif
